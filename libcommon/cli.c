/* cli.c: the command-line behaviour all dpone commands share. */
#include <getopt.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>

#include "dpone.h"

enum { OPT_REGISTRY = 256, OPT_PRINT_MANIFEST, OPT_LOG_FORMAT };

static int log_format_given; /* --log-format was on the command line */

void
dp_cli_parse_ex(int argc, char **argv, const char *usage_text, int max_more, const struct option *extra,
                int (*handle)(int id, const char *arg, void *ctx), void *ctx, struct dp_cli *cli)
{
	static const struct option common[] = {{"help", no_argument, NULL, 'h'},
	                                       {"version", no_argument, NULL, 'V'},
	                                       {"quiet", no_argument, NULL, 'q'},
	                                       {"registry", required_argument, NULL, OPT_REGISTRY},
	                                       {"print-manifest", no_argument, NULL, OPT_PRINT_MANIFEST},
	                                       {"log-format", required_argument, NULL, OPT_LOG_FORMAT}};
	size_t nextra = 0;
	while (extra && extra[nextra].name)
		nextra++;
	size_t ncommon = sizeof common / sizeof common[0];
	struct option *longopts = dp_xcalloc(ncommon + nextra + 1, sizeof *longopts);
	memcpy(longopts, common, sizeof common);
	if (nextra)
		memcpy(longopts + ncommon, extra, nextra * sizeof *longopts);
	int ch;
	memset(cli, 0, sizeof *cli);
	dp_setprogname(argv[0]);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":hVq", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h': fputs(usage_text, stdout); dp_exit_flushing_stdout(DP_EXIT_OK);
		case 'V': printf("%s %s\n", dp_progname, DPONE_VERSION); dp_exit_flushing_stdout(DP_EXIT_OK);
		case 'q': cli->quiet = 1; break;
		case OPT_REGISTRY: dp_registry_set_path(optarg); break;
		case OPT_PRINT_MANIFEST: cli->print_manifest = 1; break;
		case OPT_LOG_FORMAT:
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				dp_warn("--log-format %s: expected text or json", optarg);
				exit(DP_EXIT_USAGE);
			}
			dp_log_set_format(optarg);
			log_format_given = 1;
			break;
		case ':':
			dp_warn("option %s needs a value", argv[optind - 1]);
			fputs(usage_text, stderr);
			exit(DP_EXIT_USAGE);
		default:
			if (ch >= OPT_EXTRA && handle) {
				if (handle(ch, optarg, ctx) == 0)
					break;
				fputs(usage_text, stderr);
				exit(DP_EXIT_USAGE);
			}
			if (optopt)
				dp_warn("unknown option -%c", optopt);
			else
				dp_warn("unknown option %s", argv[optind - 1]);
			fputs(usage_text, stderr);
			exit(DP_EXIT_USAGE);
		}
	}
	free(longopts);
	if (argc == optind || argc - optind - 1 > max_more) {
		dp_warn(argc == optind ? "missing MANIFEST" : "too many operands");
		fputs(usage_text, stderr);
		exit(DP_EXIT_USAGE);
	}
	cli->manifest_path = argv[optind];
	cli->more = argv + optind + 1;
	cli->nmore = argc - optind - 1;
}

void
dp_cli_parse(int argc, char **argv, const char *usage_text, int max_more, struct dp_cli *cli)
{
	dp_cli_parse_ex(argc, argv, usage_text, max_more, NULL, NULL, NULL, cli);
}

struct dp_manifest *
dp_cli_load_manifest(const char *path)
{
	char err[1024];
	struct dp_manifest *m = dp_manifest_load(path, err, sizeof err);
	if (!m)
		dp_die(DP_EXIT_USAGE, "%s", err);
	dp_log_set_job(dp_manifest_str(m, "name"));
	/* The manifest's log_format, unless --log-format or DPONE_LOG_FORMAT said. */
	const char *env = getenv("DPONE_LOG_FORMAT");
	if (!log_format_given && !(env && *env))
		dp_log_set_format(dp_manifest_str(m, "observability.log_format"));
	return m;
}

/* A process about to hold a password makes no core dump and keeps its
 * /proc files (environ, mem) from other processes of the same user;
 * DPONE_CORE_DUMPS=1 keeps the default, for debugging a crash. */
static void
protect_secrets(void)
{
	const char *env = getenv("DPONE_CORE_DUMPS");
	if (!env || strcmp(env, "1"))
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void
dp_cli_resolve(const struct dp_manifest *m, const char *section, const char *kind, struct dp_conn *out)
{
	char err[1024], path[64];
	protect_secrets();
	snprintf(path, sizeof path, "%s.connection_id", section);
	const char *id = dp_manifest_str(m, path);
	snprintf(path, sizeof path, "%s.connection_type", section);
	const char *type = dp_manifest_str(m, path);
	int rc = dp_conn_resolve(id, type, kind, out, err, sizeof err);
	if (rc)
		dp_die(rc, "%s", err);
}

void
dp_cli_print_manifest(const struct dp_manifest *m)
{
	struct dp_conn src, sink;
	dp_cli_resolve(m, "source", "mssql", &src);
	dp_cli_resolve(m, "sink", "kafka", &sink);
	json_t *out = dp_json_redact(json_deep_copy(m->root));
	json_t *conns = json_object();
	json_object_set_new(conns, "source", dp_conn_redacted(&src));
	json_object_set_new(conns, "sink", dp_conn_redacted(&sink));
	if (m->state_type == DP_STATE_POSTGRES) {
		struct dp_conn state;
		dp_cli_resolve(m, "state", "postgres", &state);
		json_object_set_new(conns, "state", dp_conn_redacted(&state));
		dp_conn_free(&state);
	}
	json_object_set_new(out, "connections", conns);
	json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
	putchar('\n');
	json_decref(out);
	dp_conn_free(&src);
	dp_conn_free(&sink);
	dp_exit_flushing_stdout(DP_EXIT_OK);
}
