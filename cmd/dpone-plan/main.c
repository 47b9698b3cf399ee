/*
 * dpone-plan: what a run of the manifest would do, for a reviewer, without
 * changing anything. The plan is one JSON document (--format json; the keys
 * are in dpone-plan(1)), rendered as Markdown by default. The boundary and
 * its SQL come from dpone-extract --plan and the state from dpone-state get,
 * so the plan shows exactly what those stages will do.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"

/* As laid out on the terminal (and in the man page's SYNOPSIS). */
/* clang-format off */
static const char usage_text[] =
	"usage: dpone-plan [-hqV] [--registry FILE] [--print-manifest] [--get KEY] [--format md|json]\n"
	"                  [--from VALUE] [--to VALUE] [--doctor] [--physical [--throughput N] [--apply]] MANIFEST\n"
	"Show what a run of the manifest would do, without changing anything.\n"
	DP_CLI_COMMON_HELP
	"      --get KEY       print a value of the resolved manifest (a.b.c), a line per --get, and exit\n"
	"      --format F      md (the default, for people) or json (for programs)\n"
	"      --from VALUE    plan a manual window starting after VALUE (as dpone batch run --from)\n"
	"      --to VALUE      plan a manual window ending at VALUE (as dpone batch run --to)\n"
	"      --doctor        check that a run can work from here (dpone doctor)\n"
	"      --physical      the topic design (dpone schema physical-plan)\n"
	"      --throughput N  --physical: expected messages per second\n"
	"      --apply         --physical: create the topic so if it is missing\n"
	"See dpone-plan(1); exit codes are listed there.\n";
/* clang-format on */

enum { OPT_GET = OPT_EXTRA, OPT_FORMAT, OPT_FROM, OPT_TO, OPT_DOCTOR, OPT_PHYSICAL, OPT_THROUGHPUT, OPT_APPLY };

#define MAX_GET 16

struct options {
	const char *get[MAX_GET]; /* --get KEYs, in order (argv strings) */
	int nget;
	const char *format, *from, *to;
	int quiet, doctor, physical, apply;
	double throughput;
};

static int
handle_option(int id, const char *arg, void *ctx)
{
	struct options *o = ctx;
	switch (id) {
	case OPT_GET:
		if (o->nget == MAX_GET) {
			dp_warn("--get: at most %d keys", MAX_GET);
			return -1;
		}
		o->get[o->nget++] = arg;
		return 0;
	case OPT_FROM: o->from = arg; return 0;
	case OPT_TO: o->to = arg; return 0;
	case OPT_DOCTOR: o->doctor = 1; return 0;
	case OPT_PHYSICAL: o->physical = 1; return 0;
	case OPT_APPLY: o->apply = 1; return 0;
	case OPT_THROUGHPUT: {
		char *end;
		o->throughput = strtod(arg, &end);
		if (end == arg || *end || o->throughput <= 0) {
			dp_warn("--throughput %s: expected messages per second", arg);
			return -1;
		}
		return 0;
	}
	case OPT_FORMAT:
		if (strcmp(arg, "md") && strcmp(arg, "json")) {
			dp_warn("--format %s: expected md or json", arg);
			return -1;
		}
		o->format = arg;
		return 0;
	}
	return -1;
}

/* --get KEY...: a line per key: a string as it is (as JSON if it holds a
 * newline, so that lines stay lines), numbers, booleans, objects and lists
 * as compact JSON, an empty line for an absent key. For scripts such as
 * the dpone wrapper, which have no YAML parser: one process for all the
 * values it needs. SECTION.connection_env, which no manifest holds, is the
 * environment variable a connection_type env connection of SECTION is read
 * from (empty for another type): the wrapper gives each stage only its own.
 * run.pending_path, no manifest key either, is where a delivered run that
 * could not commit waits for the next run: beside the manifest, like every
 * path of the job. run.check_stage: whether dpone-check runs between extract
 * and produce (dp_manifest_check_stage). run.retry_backoff_seconds:
 * source.options.retry_backoff in seconds, for the wrapper's arithmetic. */
static _Noreturn void
print_values(const struct dp_manifest *m, const char *const *keys, int n)
{
	static const char suffix[] = ".connection_env";
	for (int i = 0; i < n; i++) {
		size_t len = strlen(keys[i]), slen = sizeof suffix - 1;
		if (len > slen && !strcmp(keys[i] + len - slen, suffix)) {
			char path[96];
			snprintf(path, sizeof path, "%.*s.connection_type", (int)(len - slen), keys[i]);
			const char *type = dp_manifest_str(m, path);
			snprintf(path, sizeof path, "%.*s.connection_id", (int)(len - slen), keys[i]);
			const char *id = dp_manifest_str(m, path);
			char *var = id && type && !strcmp(type, "env") ? dp_conn_env_name(id) : NULL;
			puts(var ? var : "");
			free(var);
			continue;
		}
		if (!strcmp(keys[i], "run.retry_backoff_seconds")) {
			printf("%lld\n", dp_duration_seconds(dp_manifest_str(m, "source.options.retry_backoff")));
			continue;
		}
		if (!strcmp(keys[i], "run.check_stage")) {
			puts(dp_manifest_check_stage(m) ? "true" : "false");
			continue;
		}
		if (!strcmp(keys[i], "run.pending_path")) {
			char *rel = dp_strfmt(".dpone/pending/%s", dp_manifest_str(m, "name"));
			char *abs = dp_path_beside(m->path, rel);
			puts(abs);
			free(abs);
			free(rel);
			continue;
		}
		json_t *v = dp_manifest_get(m, keys[i]);
		if (json_is_string(v) && !strchr(json_string_value(v), '\n')) {
			puts(json_string_value(v));
		} else if (v && !json_is_null(v)) {
			char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			puts(text);
			free(text);
		} else {
			putchar('\n');
		}
	}
	dp_exit_flushing_stdout(DP_EXIT_OK);
}

json_t *
ask_stage(char *const argv[])
{
	int code;
	char *out = dp_run_capture(argv, &code);
	if (code)
		dp_die(code < 0 ? DP_EXIT_FAILURE : code,
		       "cannot plan: %s failed (exit status %d); nothing was changed", argv[0], code);
	json_error_t jerr;
	json_t *doc = json_loads(out, JSON_DECODE_ANY, &jerr);
	if (!doc)
		dp_die(DP_EXIT_FAILURE, "%s printed what is not JSON: %s", argv[0], jerr.text);
	free(out);
	return doc;
}

static json_t *
connections(const struct dp_manifest *m)
{
	json_t *conns = json_object();
	static const char *const sections[][2] = {{"source", "mssql"}, {"sink", "kafka"}, {"state", "postgres"}};
	for (int i = 0; i < 3; i++) {
		if (i == 2 && m->state_type != DP_STATE_POSTGRES)
			continue;
		struct dp_conn c;
		dp_cli_resolve(m, sections[i][0], sections[i][1], &c);
		json_object_set_new(conns, sections[i][0], dp_conn_redacted(&c));
		dp_conn_free(&c);
	}
	return conns;
}

static json_t *
extract_plan(const char *manifest_path, const char *from_text, const char *to)
{
	char *argv[10];
	int n = 0;
	argv[n++] = "dpone-extract";
	argv[n++] = "-q";
	argv[n++] = "--plan";
	if (from_text)
		argv[n++] = "--from", argv[n++] = (char *)from_text;
	if (to)
		argv[n++] = "--to", argv[n++] = (char *)to;
	argv[n++] = (char *)manifest_path;
	argv[n] = NULL;
	return ask_stage(argv);
}

/* How the run reaches Kafka and when its rows become visible. */
static json_t *
delivery_path(const struct dp_manifest *m)
{
	const char *mode = dp_manifest_str(m, "sink.options.delivery.mode");
	int txn = m->delivery == DP_EXACTLY_ONCE;
	const char *staging = txn ? "one Kafka transaction for the whole run (transactional.id dpone.<name>)"
	                          : "none: each message is visible to consumers once delivered";
	const char *finalization = txn ? "the transaction commits after the stream's end arrived, every delivery "
	                                 "succeeded and the quality checks passed; otherwise it is aborted and "
	                                 "read_committed consumers see none of the run"
	                               : "none on Kafka: the run is final when dpone-state commits the watermark; a "
	                                 "failed run leaves state where it was, so the rerun re-sends (at least once)";
	return json_pack("{s:s, s:b, s:s, s:s}", "delivery", mode, "transactional", txn, "staging", staging,
	                 "finalization", finalization);
}

static const char *
check_decided(const char *type, int transactional)
{
	if (dp_check_type(type) == DP_CHECK_HASH)
		return "at commit, by dpone-state, after publishing: a mismatch keeps state where it was";
	return transactional ? "at the end of the stream, before the Kafka transaction commits: a failure aborts it, "
	                       "so no row of the run becomes visible"
	                     : "at the end of the stream, before state is committed: rows already delivered stay "
	                       "visible if it fails, and state does not advance";
}

static json_t *
quality(const struct dp_manifest *m)
{
	const char *mode = dp_manifest_str(m, "quality.mode");
	int txn = m->delivery == DP_EXACTLY_ONCE;
	json_t *checks = json_array(), *c;
	size_t i;
	json_array_foreach(dp_manifest_get(m, "quality.checks"), i, c) {
		json_t *entry = json_deep_copy(c);
		const char *type = json_string_value(json_object_get(c, "type"));
		json_object_set_new(entry, "decided", json_string(check_decided(type, txn)));
		json_array_append_new(checks, entry);
	}
	static const char *const effects[] = {
		[DP_QUALITY_FAIL] = "a failed check (severity error) fails the run",
		[DP_QUALITY_WARN] = "a failed check is reported and the run goes on",
		[DP_QUALITY_OFF] = "checks are not run",
	};
	const char *effect = effects[m->quality];
	return json_pack("{s:s, s:s, s:o}", "mode", mode, "effect", effect, "checks", checks);
}

/* What state will be after a successful run: never backwards. */
static json_t *
state_section(const struct dp_manifest *m, json_t *current, const json_t *boundary)
{
	json_t *record = json_object_get(current, "record");
	json_t *before = json_object_get(json_object_get(record, "watermark"), "value");
	const char *kind = json_string_value(json_object_get(boundary, "kind"));
	json_t *high = json_object_get(boundary, "high");
	json_t *after = before;
	const char *why = "unchanged: this strategy keeps no watermark; the run is recorded in history";
	if (kind && !strcmp(kind, "incremental")) {
		if (high && !json_is_null(high)) {
			after = high;
			why = "the boundary's high watermark, if the run commits";
		} else {
			why = "unchanged: the source has no rows in the boundary";
		}
	}
	json_t *s = json_pack("{s:s, s:O?, s:O?, s:O?, s:s, s:O?}", "type", dp_manifest_str(m, "state.type"),
	                      "last_run", json_object_get(record, "run_id"), "last_commit",
	                      json_object_get(record, "committed_at"), "watermark_before", before,
	                      "watermark_after_reason", why, "lease", json_object_get(current, "lease"));
	json_object_set(s, "watermark_after", after ? after : json_null());
	/* dpone batch run --chunk: the open chunked run, which a whole run waits for. */
	json_t *chunked = json_object_get(record, "chunked_run");
	if (chunked) {
		/* the chunks whose receipts are in, in chunk order */
		json_t *receipts = json_object_get(chunked, "receipts"), *done = json_array();
		json_int_t ranges = json_integer_value(json_object_get(chunked, "ranges"));
		for (json_int_t i = 1; i <= ranges; i++) {
			char key[24];
			snprintf(key, sizeof key, "%lld", (long long)i);
			if (json_object_get(receipts, key))
				json_array_append_new(done, json_integer(i));
		}
		json_object_set_new(s, "chunked_run",
		                    json_pack("{s:O?, s:O?, s:O?, s:o}", "plan", json_object_get(chunked, "plan"),
		                              "ranges", json_object_get(chunked, "ranges"), "planned_at",
		                              json_object_get(chunked, "planned_at"), "delivered", done));
	}
	if (m->state_type == DP_STATE_FILE)
		json_object_set_new(s, "path", json_string(dp_manifest_str(m, "state.path")));
	else
		json_object_set_new(s, "table",
		                    json_pack("{s:s, s:s}", "schema", dp_manifest_str(m, "state.table.schema"), "name",
		                              dp_manifest_str(m, "state.table.name")));
	return s;
}

/* Schema evolution as dpone-check will decide it at the header. */
static json_t *
schema_section(const struct dp_manifest *m, const json_t *current, const json_t *columns)
{
	json_t *record = json_object_get(current, "record");
	json_t *published = json_object_get(record, "schema");
	int enabled = json_is_true(dp_manifest_get(m, "schema_evolution.enabled"));
	const char *on_breaking = dp_manifest_str(m, "schema_evolution.on_breaking");
	json_t *s = json_pack("{s:b, s:s, s:O?}", "enabled", enabled, "on_breaking", on_breaking, "published_by",
	                      json_object_get(record, "run_id"));
	if (!enabled || !json_is_array(published)) {
		json_object_set_new(s, "changes", json_array());
		json_object_set_new(s, "verdict",
		                    json_string(!enabled ? "not compared (schema_evolution.enabled: false)"
		                                         : "no schema published yet: this run publishes the first"));
		return s;
	}
	json_t *changes = dp_schema_diff(published, columns);
	size_t breaking = dp_schema_breaking(changes), i;
	json_t *c;
	json_array_foreach(changes, i, c)
		json_object_set_new(c, "action",
		                    json_string(!json_is_true(json_object_get(c, "breaking")) ? "applied"
		                                : !strcmp(on_breaking, "variant")             ? "variant"
		                                                                              : "fails the run"));
	json_object_set_new(s, "changes", changes);
	json_object_set_new(s, "breaking", json_integer((json_int_t)breaking));
	json_object_set_new(s, "verdict",
	                    json_string(!json_array_size(changes) ? "unchanged"
	                                : !breaking               ? "compatible: the changes are applied and recorded"
	                                : !strcmp(on_breaking, "variant")
	                                        ? "breaking: the changed columns' values go to " DP_VARIANT_PREFIX
	                                          "<column>"
	                                        : "breaking: the run will fail before anything is published"));
	return s;
}

static json_t *
sink_section(const struct dp_manifest *m)
{
	json_t *s =
		json_pack("{s:s, s:s, s:O, s:O, s:O, s:O}", "type", "kafka", "topic", dp_manifest_str(m, "sink.topic"),
	                  "format", dp_manifest_get(m, "sink.options.message_format"), "envelope",
	                  dp_manifest_get(m, "sink.options.envelope"), "key", dp_manifest_get(m, "sink.options.key"),
	                  "deletes", dp_manifest_get(m, "sink.options.deletes"));
	json_t *path = delivery_path(m);
	json_object_update(s, path);
	json_decref(path);
	json_t *compression = dp_manifest_get(m, "sink.options.delivery.compression_type");
	if (compression)
		json_object_set(s, "compression_type", compression);
	return s;
}

static json_t *
build_plan(const struct dp_manifest *m, const char *manifest_path, const struct options *o)
{
	int code;
	json_t *current = dp_committed_state(m, manifest_path, &code);
	if (!current)
		dp_die(code < 0 ? DP_EXIT_FAILURE : code,
		       "cannot plan: dpone-state failed (exit status %d); nothing was "
		       "changed",
		       code);
	json_t *committed = json_object_get(json_object_get(json_object_get(current, "record"), "watermark"), "value");
	char *from = NULL;
	if (o->from)
		from = dp_xstrdup(o->from);
	else if (dp_manifest_incremental(m) && committed && !json_is_null(committed))
		from = json_dumps(committed, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *extract = extract_plan(manifest_path, from, o->to);
	free(from);
	json_t *boundary = json_object_get(extract, "boundary");
	json_object_set(boundary, "sql", json_object_get(extract, "sql"));
	json_object_set(boundary, "count_sql", json_object_get(extract, "count_sql"));
	json_object_set(boundary, "rows", json_object_get(extract, "rows"));
	if (json_object_get(extract, "ranges"))
		json_object_set(boundary, "ranges", json_object_get(extract, "ranges"));
	json_t *strategy = json_deep_copy(dp_manifest_get(m, "sink.strategy"));
	json_t *source =
		json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "type",
	                  json_object_get(json_object_get(extract, "source"), "type"), "schema",
	                  json_object_get(json_object_get(extract, "source"), "schema"), "table",
	                  json_object_get(json_object_get(extract, "source"), "table"), "export_mode",
	                  json_object_get(extract, "export_mode"), "batch_size", json_object_get(extract, "batch_size"),
	                  "columns", json_object_get(extract, "columns"), "key", json_object_get(extract, "key"));
	json_t *artifacts = json_deep_copy(dp_manifest_get(m, "observability.artifacts"));
	json_object_set_new(artifacts, "run_directory",
	                    json_pack("s+", dp_manifest_str(m, "observability.artifacts.path"), "/RUN_ID"));
	json_t *plan = json_pack("{s:i, s:s, s:s, s:b, s:o, s:o, s:O, s:o, s:o, s:o, s:o, s:o}", "plan_version", 1,
	                         "job", dp_manifest_str(m, "name"), "manifest", manifest_path, "changes_nothing", 1,
	                         "connections", connections(m), "source", source, "boundary", boundary, "strategy",
	                         strategy, "sink", sink_section(m), "state", state_section(m, current, boundary),
	                         "quality", quality(m), "artifacts", artifacts);
	json_object_set_new(plan, "schema", schema_section(m, current, json_object_get(extract, "columns")));
	if (json_object_get(extract, "reconciliation"))
		json_object_set(plan, "reconciliation", json_object_get(extract, "reconciliation"));
	json_decref(extract);
	json_decref(current);
	return plan;
}

/* --physical [--apply]: print the design; with --apply, dpone-produce
 * creates the topic with it when it is missing. The exit status. */
static int
physical(const struct dp_manifest *m, const char *manifest_path, const struct options *o)
{
	json_t *p = physical_plan(m, manifest_path, o->throughput);
	if (!strcmp(o->format, "json")) {
		json_dumpf(p, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
		putchar('\n');
	} else {
		physical_markdown(stdout, p);
	}
	int code = 0;
	if (o->apply) {
		fflush(stdout);
		char *design = json_dumps(p, JSON_COMPACT);
		char *argv[] = {"dpone-produce", "-q", "--create-topic", design, (char *)manifest_path, NULL};
		char *out = dp_run_capture(argv, &code);
		fputs(out ? out : "", stdout);
		free(out);
		free(design);
		if (code < 0)
			code = DP_EXIT_FAILURE;
	}
	json_decref(p);
	return code;
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {{"get", required_argument, NULL, OPT_GET},
	                                      {"format", required_argument, NULL, OPT_FORMAT},
	                                      {"from", required_argument, NULL, OPT_FROM},
	                                      {"to", required_argument, NULL, OPT_TO},
	                                      {"doctor", no_argument, NULL, OPT_DOCTOR},
	                                      {"physical", no_argument, NULL, OPT_PHYSICAL},
	                                      {"throughput", required_argument, NULL, OPT_THROUGHPUT},
	                                      {"apply", no_argument, NULL, OPT_APPLY},
	                                      {NULL, 0, NULL, 0}};
	struct dp_cli cli;
	struct options o = {.format = "md"};
	dp_cli_parse_ex(argc, argv, usage_text, 0, extra, handle_option, &o, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	if (o.nget)
		print_values(m, o.get, o.nget);
	if (o.doctor) {
		int code = doctor(m, cli.manifest_path, !strcmp(o.format, "json"));
		dp_manifest_free(m);
		dp_exit_flushing_stdout(code);
	}
	if (o.physical) {
		int code = physical(m, cli.manifest_path, &o);
		dp_manifest_free(m);
		dp_exit_flushing_stdout(code);
	}
	if ((o.from || o.to) && !dp_manifest_incremental(m))
		dp_die(DP_EXIT_USAGE,
		       "--from and --to bound an incremental run: strategy %s reads no incremental boundary",
		       dp_manifest_str(m, "sink.strategy.mode"));
	json_t *plan = build_plan(m, cli.manifest_path, &o);
	if (!strcmp(o.format, "json")) {
		json_dumpf(plan, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
		putchar('\n');
	} else {
		plan_markdown(stdout, plan);
	}
	json_decref(plan);
	dp_manifest_free(m);
	dp_exit_flushing_stdout(DP_EXIT_OK);
}
