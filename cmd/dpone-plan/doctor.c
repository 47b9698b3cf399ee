/*
 * doctor.c: dpone doctor, the runbook's first step: can a run of this
 * manifest work from here? Each check asks the stage that will do the work
 * (dpone-extract --check, dpone-produce --check, dpone-state check), so
 * the doctor sees what a run would see. Every failure comes with a fix.
 */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include <zstd.h>

#include "plan.h"

/* Seconds of clock difference that are worth a warning. */
#define SKEW_WARN_SECONDS 5

struct report {
	json_t *checks; /* [{check, status (ok|warn|fail), detail, fix?, exit?}] */
	int code;       /* the first blocking failure's exit status, else 0 */
};

static void
add(struct report *r, const char *check, const char *status, const char *detail, const char *fix, int code)
{
	json_t *c = json_pack("{s:s, s:s, s:s}", "check", check, "status", status, "detail", detail);
	if (fix)
		json_object_set_new(c, "fix", json_string(fix));
	if (code) {
		json_object_set_new(c, "exit", json_integer(code));
		if (!r->code)
			r->code = code;
	}
	json_array_append_new(r->checks, c);
}

/* The last line a stage wrote on stderr, without its program name. */
static const char *
last_message(char *err)
{
	size_t n = strlen(err);
	while (n && err[n - 1] == '\n')
		err[--n] = '\0';
	char *line = strrchr(err, '\n');
	line = line ? line + 1 : err;
	char *colon = strstr(line, ": ");
	return colon && !strncmp(line, "dpone-", 6) ? colon + 2 : line;
}

/* Run a stage's check; its JSON (owned) or NULL after adding a failure. */
static json_t *
probe(struct report *r, const char *check, char *const argv[], const char *fix)
{
	int code;
	char *err = NULL;
	char *out = dp_run_capture_err(argv, &code, &err);
	json_t *doc = out ? json_loads(out, 0, NULL) : NULL;
	if (code || !json_is_object(doc)) {
		const char *why = json_string_value(json_object_get(doc, "problem"));
		add(r, check, "fail",
		    why           ? why
		    : err && *err ? last_message(err)
		                  : "no answer",
		    fix, code > 0 ? code : DP_EXIT_FAILURE);
		json_decref(doc);
		doc = NULL;
	}
	free(out);
	free(err);
	return doc;
}

/* The libraries opened only when a run needs them (the package's
 * Recommends): each one's absence is a warning naming what needs it. */
static void
check_libraries(struct report *r)
{
	char why[256], pq_why[256];
	const char *curl = dp_vault_curl_version(why, sizeof why);
	static const char *const pq_sonames[] = {DP_LIBPQ_SONAME, NULL};
	void *pq = dp_library_open("libpq", pq_sonames, pq_why, sizeof pq_why);
	char *text = dp_strfmt("jansson %s, libyaml %s, zstd %s, libcurl %s, libpq %s", JANSSON_VERSION,
	                       yaml_get_version_string(), ZSTD_versionString(), curl ? curl : why,
	                       pq ? DP_LIBPQ_SONAME : pq_why);
	const char *fix = !curl && !pq ? "install libcurl4 (Vault connections, Pushgateway, OpenLineage) and libpq5 "
	                                 "(state type postgres) if the jobs use them"
	                  : !curl ? "install libcurl4 if a job uses Vault connections, a Pushgateway or OpenLineage"
	                  : !pq   ? "install libpq5 if a job keeps its state in PostgreSQL"
	                          : NULL;
	add(r, "libraries", fix ? "warn" : "ok", text, fix, 0);
	free(text);
}

/* Seconds between a server's UTC text ("YYYY-MM-DDTHH:MM:SS...") and now. */
static void
check_skew(struct report *r, const char *who, const char *server_utc)
{
	long long at;
	if (!server_utc || dp_timestamp_utc(server_utc, &at) < 0)
		return;
	long long skew = llabs(at - (long long)time(NULL));
	char *detail = dp_strfmt("%s's clock is %lld s from this machine's", who, skew);
	add(r, "clock", skew > SKEW_WARN_SECONDS ? "warn" : "ok", detail,
	    skew > SKEW_WARN_SECONDS ? "synchronise the clocks (NTP): freshness checks and run times compare them"
	                             : NULL,
	    0);
	free(detail);
}

/* boundary_safety: active_transactions needs to see the open transactions. */
static void
check_late_commits(struct report *r, const json_t *late)
{
	if (!late)
		return;
	const char *column = json_string_value(json_object_get(late, "column"));
	if (json_is_true(json_object_get(late, "visible"))) {
		char *detail =
			dp_strfmt("the open transactions are visible: runs read %s only below the oldest one", column);
		add(r, "late commits", "ok", detail, NULL, 0);
		free(detail);
		return;
	}
	char *detail = dp_strfmt("cannot see the open transactions (%s): a late commit below a run's high watermark "
	                         "of %s is read only within source.options.lookback",
	                         json_string_value(json_object_get(late, "error")), column);
	add(r, "late commits", "warn", detail,
	    "GRANT VIEW SERVER STATE TO the login (Azure SQL: VIEW DATABASE STATE), or set source.options.lookback", 0);
	free(detail);
}

static void
check_source(struct report *r, const char *manifest)
{
	char *argv[] = {"dpone-extract", "-q", "--check", (char *)manifest, NULL};
	json_t *doc = probe(r, "source", argv,
	                    "check the source connection (host, port, user, password, database), "
	                    "that the login may read the table, and the table's name in source.table");
	if (!doc)
		return;
	const char *updateability = json_string_value(json_object_get(doc, "updateability"));
	char *detail = dp_strfmt("logged in; %s.%s readable, %d columns (%s, %d-byte packets%s%s)",
	                         json_string_value(json_object_get(doc, "schema")),
	                         json_string_value(json_object_get(doc, "table")),
	                         (int)json_integer_value(json_object_get(doc, "columns")),
	                         json_string_value(json_object_get(doc, "library")),
	                         (int)json_integer_value(json_object_get(doc, "packet_size")),
	                         updateability ? ", database " : "", updateability ? updateability : "");
	add(r, "source", "ok", detail, NULL, 0);
	free(detail);
	check_late_commits(r, json_object_get(doc, "late_commit"));
	check_skew(r, "SQL Server", json_string_value(json_object_get(doc, "server_utc")));
	json_decref(doc);
}

static void
check_sink(struct report *r, const char *manifest)
{
	char *argv[] = {"dpone-produce", "-q", "--check", (char *)manifest, NULL};
	json_t *doc = probe(r, "sink", argv,
	                    "check the Kafka connection (brokers, SASL/TLS settings), and that the topic "
	                    "exists and this principal may describe and write it");
	if (!doc)
		return;
	const char *problem = json_string_value(json_object_get(doc, "problem"));
	char *detail =
		dp_strfmt("%d brokers; topic %s: %s (%s)", (int)json_integer_value(json_object_get(doc, "brokers")),
	                  json_string_value(json_object_get(doc, "topic")), problem ? problem : "exists",
	                  json_string_value(json_object_get(doc, "library")));
	add(r, "sink", problem ? "warn" : "ok", detail, NULL, 0);
	free(detail);
	json_decref(doc);
}

static void
check_state(struct report *r, const char *manifest)
{
	char *argv[] = {"dpone-state", "-q", (char *)manifest, "check", NULL};
	json_t *doc = probe(r, "state", argv,
	                    "check the state connection and that this login may create, read and "
	                    "write the state tables (or that state.path's directory is writable)");
	if (!doc)
		return;
	const char *where = json_string_value(json_object_get(doc, "path"));
	char *detail =
		dp_strfmt("%s state readable and writable%s%s%s", json_string_value(json_object_get(doc, "backend")),
	                  where ? " at " : "", where ? where : "",
	                  json_object_get(doc, "lease") && !json_is_null(json_object_get(doc, "lease"))
	                          ? "; a run holds the job's lease now"
	                          : "");
	add(r, "state", "ok", detail, NULL, 0);
	free(detail);
	check_skew(r, "PostgreSQL", json_string_value(json_object_get(doc, "server_utc")));
	json_decref(doc);
}

/* The artifact directory, or the nearest directory above it that exists,
 * must be writable; nothing is created. */
static void
check_artifacts(struct report *r, const struct dp_manifest *m)
{
	if (!json_is_true(dp_manifest_get(m, "observability.artifacts.enabled"))) {
		add(r, "artifacts", "ok", "disabled", NULL, 0);
		return;
	}
	const char *path = dp_manifest_str(m, "observability.artifacts.path");
	char *dir = dp_xstrdup(path);
	while (access(dir, F_OK) < 0 && strcmp(dir, ".") && strcmp(dir, "/")) {
		char *up = dp_xstrdup(dirname(dir));
		free(dir);
		dir = up;
	}
	struct stat st;
	int is_dir = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
	int ok = is_dir && access(dir, W_OK) == 0;
	char *detail = dp_strfmt("%s: %s", path, ok ? "writable" : !is_dir ? "not a directory" : "not writable");
	add(r, "artifacts", ok ? "ok" : "fail", detail,
	    ok ? NULL
	       : "make observability.artifacts.path writable for the "
	         "user that runs dpone, or set observability.artifacts.enabled: false",
	    ok ? 0 : DP_EXIT_FAILURE);
	free(detail);
	free(dir);
}

/* Strategy cdc: the capture instance exists and the committed offset is
 * still retained; asked of dpone-extract --plan, which decides both. */
static void
check_cdc(struct report *r, const struct dp_manifest *m, const char *manifest)
{
	if (m->strategy != DP_CDC)
		return;
	int code;
	json_t *state = dp_committed_state(m, manifest, &code);
	json_t *offset = json_object_get(json_object_get(json_object_get(state, "record"), "watermark"), "value");
	char *argv[] = {"dpone-extract", "-q", "--plan", (char *)manifest, NULL, NULL, NULL};
	if (json_is_string(offset)) {
		argv[4] = "--from";
		argv[5] = (char *)json_string_value(offset);
	}
	json_t *doc =
		probe(r, "cdc", argv,
	              "enable change data capture for the table (sys.sp_cdc_enable_db, "
	              "sys.sp_cdc_enable_table) and check source.options.capture_instance; see dpone-extract(1), CDC");
	json_decref(state);
	if (!doc)
		return;
	json_t *b = json_object_get(doc, "boundary");
	int snapshot = json_is_true(json_object_get(b, "snapshot"));
	char *detail =
		dp_strfmt("capture instance %s, oldest LSN %s; the next run %s %lld %s",
	                  json_string_value(json_object_get(b, "capture_instance")),
	                  json_string_value(json_object_get(b, "min_lsn")), snapshot ? "snapshots the table," : "reads",
	                  (long long)json_integer_value(json_object_get(doc, "rows")), snapshot ? "rows" : "changes");
	json_decref(doc);
	add(r, "cdc", "ok", detail, NULL, 0);
	free(detail);
}

static void
print_text(FILE *out, const json_t *checks)
{
	size_t i;
	json_t *c;
	json_array_foreach(checks, i, c) {
		fprintf(out, "%-4s  %-9s  %s\n", json_string_value(json_object_get(c, "status")),
		        json_string_value(json_object_get(c, "check")),
		        json_string_value(json_object_get(c, "detail")));
		if (json_object_get(c, "fix"))
			fprintf(out, "      %-9s  fix: %s\n", "", json_string_value(json_object_get(c, "fix")));
	}
}

int
doctor(const struct dp_manifest *m, const char *manifest_path, int json)
{
	struct report r = {.checks = json_array()};
	check_libraries(&r);
	add(&r, "manifest", "ok", manifest_path, NULL, 0);
	check_source(&r, manifest_path);
	check_cdc(&r, m, manifest_path);
	check_sink(&r, manifest_path);
	check_state(&r, manifest_path);
	check_artifacts(&r, m);
	if (json) {
		json_t *doc = json_pack("{s:s, s:b, s:O}", "job", dp_manifest_str(m, "name"), "ready", !r.code,
		                        "checks", r.checks);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else {
		print_text(stdout, r.checks);
		printf("%s\n", r.code ? "dpone doctor: something above blocks a run" : "dpone doctor: ready to run");
	}
	json_decref(r.checks);
	return r.code;
}
