/*
 * dpone-plan: show what a run of the manifest would do. This build loads
 * and checks the manifest and can print it resolved (--print-manifest);
 * the plan itself is not in it yet.
 */
#include <stdlib.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-plan [-hqV] [--registry FILE] [--print-manifest] MANIFEST\n"
	"Show what a run of the manifest would do, without changing anything.\n"
	DP_CLI_COMMON_HELP
	"See dpone-plan(1); exit codes are listed there.\n";

int
main(int argc, char **argv)
{
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 0, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "plans are not available in this build yet; use --print-manifest to see the resolved manifest");
}
