/*
 * dpone-produce: publish a dpone stream from stdin to the manifest's Kafka
 * topic. This build loads and checks the manifest and resolves the sink
 * connection; publishing to Kafka is not in it yet, so stdin is not read.
 */
#include <stdlib.h>

#include "dpone.h"

static const char usage_text[] =
	"usage: dpone-produce [-hqV] [--registry FILE] [--print-manifest] MANIFEST < STREAM\n"
	"Publish the dpone stream on stdin to the manifest's Kafka topic.\n"
	DP_CLI_COMMON_HELP
	"See dpone-produce(1); exit codes are listed there.\n";

int
main(int argc, char **argv)
{
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 0, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	struct dp_conn sink;
	dp_cli_resolve(m, "sink", "kafka", &sink);
	dp_conn_free(&sink);
	dp_manifest_free(m);
	dp_die(DP_EXIT_UNAVAILABLE, "publishing to Kafka is not available in this build yet; nothing was read or sent");
}
