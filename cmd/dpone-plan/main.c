/*
 * dpone-plan: show what a run of the manifest would do. This build loads
 * and checks the manifest and can print it resolved (--print-manifest);
 * the plan itself is not in it yet.
 */
#include <getopt.h>
#include <stdlib.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-plan [-hqV] [--registry FILE] [--print-manifest] [--get KEY] MANIFEST\n"
	"Show what a run of the manifest would do, without changing anything.\n"
	DP_CLI_COMMON_HELP
	"      --get KEY       print one value of the resolved manifest (a.b.c) and exit\n"
	"See dpone-plan(1); exit codes are listed there.\n";

enum { OPT_GET = OPT_EXTRA };

static int
handle_option(int id, const char *arg, void *ctx)
{
	if (id != OPT_GET)
		return -1;
	*(const char **)ctx = arg;
	return 0;
}

/* --get KEY: strings as they are, numbers and booleans as JSON, nothing
 * for an absent key; objects and lists as compact JSON. For scripts such as
 * the dpone wrapper, which have no YAML parser. */
static _Noreturn void
print_value(const struct dp_manifest *m, const char *key)
{
	json_t *v = dp_manifest_get(m, key);
	if (json_is_string(v)) {
		puts(json_string_value(v));
	} else if (v && !json_is_null(v)) {
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		puts(text);
		free(text);
	}
	dp_exit_flushing_stdout(DP_EXIT_OK);
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {{"get", required_argument, NULL, OPT_GET}, {NULL, 0, NULL, 0}};
	struct dp_cli cli;
	const char *get = NULL;
	dp_cli_parse_ex(argc, argv, usage_text, 0, extra, handle_option, &get, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	if (get)
		print_value(m, get);
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "plans are not available in this build yet; use --print-manifest to see the resolved manifest");
}
