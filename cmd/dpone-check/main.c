/*
 * dpone-check: run the manifest's quality checks. This build loads and
 * checks the manifest; running the checks is not in it yet.
 */
#include <stdlib.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-check [-hqV] [--registry FILE] [--print-manifest] MANIFEST\n"
	"Run the manifest's quality checks.\n"
	DP_CLI_COMMON_HELP
	"See dpone-check(1); exit codes are listed there.\n";

int
main(int argc, char **argv)
{
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 0, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "quality checks are not available in this build yet; nothing was checked");
}
