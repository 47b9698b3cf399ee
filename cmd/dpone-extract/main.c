/*
 * dpone-extract: read the manifest's SQL Server table and write the dpone
 * stream on stdout. This build loads and checks the manifest and resolves
 * the source connection; reading from SQL Server is not in it yet.
 */
#include <stdlib.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-extract [-hqV] [--registry FILE] [--print-manifest] MANIFEST\n"
	"Write the rows of the manifest's SQL Server table as a dpone stream on stdout.\n"
	DP_CLI_COMMON_HELP
	"See dpone-extract(1); exit codes are listed there.\n";

int
main(int argc, char **argv)
{
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 0, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	struct dp_conn src;
	dp_cli_resolve(m, "source", "mssql", &src);
	dp_conn_free(&src);
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "reading from SQL Server is not available in this build yet; no stream was written");
}
