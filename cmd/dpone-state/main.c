/*
 * dpone-state: read and advance the manifest's watermark. This build checks
 * the subcommand and loads the manifest; the state backends are not in it
 * yet, so nothing is read or committed.
 */
#include <stdlib.h>
#include <string.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-state [-hqV] [--registry FILE] [--print-manifest] MANIFEST COMMAND\n"
	"Read and advance the watermark of the manifest's job.\n"
	"Commands: get, commit, history, reset, lock, unlock\n"
	DP_CLI_COMMON_HELP
	"See dpone-state(1); exit codes are listed there.\n";

int
main(int argc, char **argv)
{
	static const char *const commands[] = {"get", "commit", "history", "reset", "lock", "unlock", NULL};
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 1, &cli);
	const char *command = cli.nmore ? cli.more[0] : NULL;
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	if (!command) {
		fputs(usage_text, stderr);
		dp_die(DP_EXIT_USAGE, "missing COMMAND");
	}
	int known = 0;
	for (const char *const *c = commands; *c; c++)
		known |= !strcmp(*c, command);
	if (!known) {
		const char *near = dp_did_you_mean(command, commands);
		if (near)
			dp_die(DP_EXIT_USAGE, "unknown command '%s' (did you mean '%s'?)", command, near);
		dp_die(DP_EXIT_USAGE, "unknown command '%s'", command);
	}
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "state %s is not available in this build yet; no state was read or changed", command);
}
