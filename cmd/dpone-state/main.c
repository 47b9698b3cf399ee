/*
 * dpone-state: read and advance the state of the manifest's job: the
 * watermark of the last committed run, a lease that keeps two runs of the
 * job apart, and the history of commits. The rules (compare-and-set,
 * leases) are here; where the state lives is store_file.c / store_pg.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* As laid out on the terminal (and in the man page's SYNOPSIS). */
/* clang-format off */
static const char usage_text[] =
	"usage: dpone-state [-hqV] [--registry FILE] [--print-manifest] [--run-id ID] [--ttl SECONDS]\n"
	"                   [--holder-pid PID] [--to VALUE] [--force] [--watermark] [--clear]\n"
	"                   [--chunk I/N] [--boundary-file FILE] MANIFEST COMMAND\n"
	"Read and advance the state of the manifest's job.\n"
	"Commands:\n"
	"  get            the committed state as JSON (--watermark: only its value)\n"
	"  commit         advance state from dpone-produce's summary on stdin\n"
	"  history        one JSON line per commit or reset, oldest first\n"
	"  reset          set the watermark to --to VALUE (null clears it)\n"
	"  lock           take the job's lease for --run-id ID (for --ttl seconds)\n"
	"  unlock         give the lease of --run-id ID back (--force: whoever holds it)\n"
	"  schema         the schema last published, as JSON (--clear: forget it)\n"
	"  check          can runs read and write the state? JSON on stdout\n"
	"  keys           the committed key index of snapshot_reconciliation, on stdout\n"
	"                 (--clear: forget it; the next run deletes nothing)\n"
	"  chunk-plan     --chunk I/N --boundary-file FILE: the boundary of the open chunked run\n"
	"                 into FILE, or FILE (planned by dpone-extract --boundary) recorded as it;\n"
	"                 prints none, recorded or delivered (chunk I's receipt is in)\n"
	"  chunk-receipt  --chunk I/N: record chunk I's summary (stdin); the last of N commits\n"
	"  report         metrics and lineage for run --run-id (--event start, or its end:\n"
	"                 --exit-code N, --started EPOCH, --error TEXT, the summary on stdin)\n"
	DP_CLI_COMMON_HELP
	"      --run-id ID     the run taking or giving back the lease (commit: whose lease it is made under)\n"
	"      --ttl SECONDS   how long a lease lasts unless given back (default: state.lease_ttl)\n"
	"      --holder-pid PID  lock: the process holding the lease (default: this one's parent)\n"
	"      --to VALUE      reset: the new watermark, as JSON or as text\n"
	"      --force         unlock a lease another run holds\n"
	"      --watermark     get: print only the watermark's value\n"
	"      --clear         schema, keys: forget the published schema or the key index\n"
	"      --event start|end  report: the run begins, or it ended (default)\n"
	"      --exit-code N   report: the run's exit status\n"
	"      --started EPOCH report: when the run began, in seconds since the epoch\n"
	"      --error TEXT    report: the cause of a failed run\n"
	"      --chunk I/N     chunk-plan, chunk-receipt: chunk I of a run spread over N processes\n"
	"      --boundary-file FILE  chunk-plan: where the boundary goes, or comes from\n"
	"See dpone-state(1); exit codes are listed there.\n";
/* clang-format on */

enum {
	OPT_RUN_ID = OPT_EXTRA,
	OPT_TTL,
	OPT_TO,
	OPT_FORCE,
	OPT_WATERMARK,
	OPT_CLEAR,
	OPT_HOLDER_PID,
	OPT_EVENT,
	OPT_EXIT_CODE,
	OPT_STARTED,
	OPT_ERROR,
	OPT_CHUNK,
	OPT_BOUNDARY_FILE
};

struct options {
	const char *run_id, *to;
	long long ttl;        /* 0: state.lease_ttl */
	long long holder_pid; /* lock: the process that holds the lease (0: this one's parent) */
	int force, watermark_only, clear, quiet;
	int chunk_i, chunk_n;      /* --chunk I/N */
	const char *boundary_file; /* chunk-plan */
	const struct dp_manifest *m;
	const char *manifest_path; /* as given, for the commands a message suggests */
	struct report_options report;
};

static int
handle_option(int id, const char *arg, void *ctx)
{
	struct options *o = ctx;
	switch (id) {
	case OPT_RUN_ID: o->run_id = arg; return 0;
	case OPT_TO: o->to = arg; return 0;
	case OPT_FORCE: o->force = 1; return 0;
	case OPT_WATERMARK: o->watermark_only = 1; return 0;
	case OPT_CLEAR: o->clear = 1; return 0;
	case OPT_TTL:
		if (dp_parse_ll(arg, &o->ttl) < 0 || o->ttl < 1) {
			dp_warn("--ttl %s: expected a number of seconds", arg);
			return -1;
		}
		return 0;
	case OPT_EVENT:
		if (strcmp(arg, "start") && strcmp(arg, "end")) {
			dp_warn("--event %s: expected start or end", arg);
			return -1;
		}
		o->report.start = !strcmp(arg, "start");
		return 0;
	case OPT_EXIT_CODE: {
		long long code;
		if (dp_parse_ll(arg, &code) < 0 || code < 0 || code > 255) {
			dp_warn("--exit-code %s: expected 0 to 255", arg);
			return -1;
		}
		o->report.exit_code = (int)code;
		return 0;
	}
	case OPT_STARTED: {
		char *end;
		o->report.started = strtod(arg, &end);
		if (end == arg || *end || o->report.started < 0) {
			dp_warn("--started %s: expected epoch seconds", arg);
			return -1;
		}
		return 0;
	}
	case OPT_ERROR: o->report.error = arg; return 0;
	case OPT_BOUNDARY_FILE: o->boundary_file = arg; return 0;
	case OPT_CHUNK:
		if (sscanf(arg, "%d/%d", &o->chunk_i, &o->chunk_n) != 2 || o->chunk_n < 1 || o->chunk_i < 1 ||
		    o->chunk_i > o->chunk_n || o->chunk_n > 10000) {
			dp_warn("--chunk %s: expected I/N with 1 <= I <= N", arg);
			return -1;
		}
		return 0;
	case OPT_HOLDER_PID:
		if (dp_parse_ll(arg, &o->holder_pid) < 0 || o->holder_pid < 1 || o->holder_pid > INT_MAX) {
			dp_warn("--holder-pid %s: expected a process id", arg);
			return -1;
		}
		return 0;
	}
	return -1;
}

static char *
utc_now(void)
{
	char buf[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return dp_xstrdup(buf);
}

/* JSON text of v for messages ("none" for NULL); the caller frees it. */
static char *
show(const json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : dp_xstrdup("none");
}

static json_t *
watermark_value(const json_t *record)
{
	return json_object_get(json_object_get(record, "watermark"), "value");
}

/* ---- commit ---- */

/* What a summary stream says about its run. */
struct summary {
	json_t *header, *delivery, *checks, *end; /* owned */
	json_t *reconciliation;                   /* snapshot_reconciliation's message, owned */
};

/* hash_reconciliation: what dpone-check hashed on the way in against what
 * dpone-produce hashed on the way out (unless duplicate_policy dropped
 * rows, which makes them differ by design). */
static void
reconcile_hashes(struct summary *sum)
{
	size_t i;
	json_t *r;
	const char *published = json_string_value(json_object_get(sum->delivery, "row_hash"));
	json_int_t dropped = json_integer_value(json_object_get(sum->delivery, "duplicates_dropped"));
	json_array_foreach(json_object_get(sum->checks, "results"), i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *extracted = json_string_value(json_object_get(r, "row_hash"));
		if (dp_check_type(type) != DP_CHECK_HASH || !extracted || !published || dropped)
			continue;
		if (strcmp(extracted, published)) {
			const char *severity = json_string_value(json_object_get(r, "severity"));
			const char *mode = json_string_value(json_object_get(sum->checks, "mode"));
			if ((severity && !strcmp(severity, "warning")) || (mode && !strcmp(mode, "warn")))
				dp_warn("warning: hash_reconciliation: rows extracted hash %s, rows published %s",
				        extracted, published);
			else
				dp_die(DP_EXIT_QUALITY,
				       "stdin: hash_reconciliation failed: the rows extracted hash to %s, the rows "
				       "published to %s; state not advanced",
				       extracted, published);
		}
	}
}

static void
summary_free(struct summary *sum)
{
	json_decref(sum->header);
	json_decref(sum->reconciliation);
	json_decref(sum->delivery);
	json_decref(sum->checks);
	json_decref(sum->end);
	*sum = (struct summary){0};
}

static void
read_summary(struct summary *sum)
{
	struct dp_reader *r = dp_reader_open(0, "stdin", DP_READ_SUMMARY);
	int got;
	while ((got = dp_reader_next(r)) > 0) {
		const char *name = dp_reader_control_name(r);
		json_t *body = json_array_get(dp_reader_control(r), 1);
		if (!strcmp(name, "delivery"))
			sum->delivery = json_incref(body);
		else if (!strcmp(name, "checks"))
			sum->checks = json_incref(body);
		else if (!strcmp(name, "end"))
			sum->end = json_incref(body);
		else if (!strcmp(name, "reconciliation"))
			sum->reconciliation = json_incref(body);
	}
	if (got < 0)
		dp_die(dp_reader_error_code(r), "%s; state not advanced", dp_reader_error(r));
	sum->header = json_incref(dp_reader_header(r));
	dp_reader_close(r);
	if (!sum->delivery)
		dp_die(DP_EXIT_STREAM,
		       "stdin: no delivery message: commit reads the summary dpone-produce writes; state not advanced");
	json_int_t messages = json_integer_value(json_object_get(sum->delivery, "messages"));
	json_int_t delivered = json_integer_value(json_object_get(sum->delivery, "delivered"));
	json_int_t failed = json_integer_value(json_object_get(sum->delivery, "failed"));
	if (failed || delivered != messages)
		dp_die(DP_EXIT_SINK,
		       "stdin: the delivery message reports %lld of %lld messages delivered, %lld failed; "
		       "state not advanced",
		       (long long)delivered, (long long)messages, (long long)failed);
	/* Read back from the broker: the partitions written to must have moved
	 * by at least what was delivered, or messages were lost there. */
	json_t *appended = json_object_get(sum->delivery, "topic_appended");
	if (json_is_integer(appended) && json_integer_value(appended) < delivered)
		dp_die(DP_EXIT_SINK,
		       "stdin: the topic's end offsets moved by %lld, fewer than the %lld messages reported "
		       "delivered: messages were lost on the broker; state not advanced",
		       (long long)json_integer_value(appended), (long long)delivered);
	if (sum->checks && json_is_false(json_object_get(sum->checks, "passed")))
		dp_die(DP_EXIT_QUALITY, "stdin: the run's quality checks failed; state not advanced");
	reconcile_hashes(sum);
}

static int refuse_open_chunked_run(const struct job_state *st, const struct options *o, char *err, size_t errlen);

struct commit_ctx {
	const struct options *o;
	struct summary *sum;
	const char *lease_holder; /* --run-id: the run whose lease this commit is made under, or NULL */
	json_t *key_index;        /* the stored key index ({name, keys}), or NULL */
	json_t *result;           /* the record written, for stdout */
	char *moved;              /* "A -> B", for the message */
};

/* The column whose values this manifest's runs start from, or NULL when
 * its runs read no incremental boundary. */
static const char *
watermark_column(const struct dp_manifest *m)
{
	if (m->strategy == DP_CDC)
		return "__$start_lsn";
	return dp_manifest_incremental(m) ? dp_manifest_str(m, "source.options.incremental_column") : NULL;
}

/* A watermark committed for another column is no place to start this
 * manifest's runs from (a renamed or changed incremental_column): refused,
 * until reset takes the state over. */
static int
check_column(const struct options *o, const json_t *record, char *err, size_t errlen)
{
	const char *want = watermark_column(o->m);
	const char *have = json_string_value(json_object_get(json_object_get(record, "watermark"), "column"));
	if (!want || !have || !strcasecmp(want, have))
		return 0;
	snprintf(err, errlen,
	         "the state holds the watermark of column %s, but this manifest's runs start from column %s: a run "
	         "would compare another column's value; start the job over with dpone-state %s reset --to VALUE "
	         "(null: from the beginning)",
	         have, want, o->m->path);
	return DP_EXIT_USAGE;
}

/* The compare-and-set: the run must start where state still is. */
static int
check_start(struct job_state *st, json_t *boundary, const char *run_id, const char *lease_holder, char *err,
            size_t errlen)
{
	json_t *current = watermark_value(st->record), *from = json_object_get(boundary, "from");
	const char *kind = json_string_value(json_object_get(boundary, "kind"));
	const char *last_run = json_string_value(json_object_get(st->record, "run_id"));
	if (run_id && last_run && !strcmp(run_id, last_run)) {
		snprintf(err, errlen, "run %s is already committed; nothing was overwritten", run_id);
		return DP_EXIT_CONFLICT;
	}
	/* A job's first commit may start anywhere (dpone batch run --from on a
	 * new job); after that, only where state stands. */
	int first = !st->record ||
	            (!json_object_get(st->record, "committed_at") && !json_object_get(st->record, "reset_at"));
	int from_state = kind && (!strcmp(kind, "incremental") || !strcmp(kind, "cdc"));
	if (from_state && !first && !json_equal(current, from) && (current || from)) {
		char *a = show(from), *b = show(current);
		snprintf(err, errlen,
		         "state moved since run %s planned: it started from watermark %s, state is now %s "
		         "(run %s); nothing was overwritten",
		         run_id ? run_id : "?", a, b, last_run ? last_run : "reset");
		free(a);
		free(b);
		return DP_EXIT_CONFLICT;
	}
	const char *owner = json_string_value(json_object_get(st->lease, "owner"));
	json_int_t expires = json_integer_value(json_object_get(st->lease, "expires_at"));
	int ours = (run_id && !strcmp(owner ? owner : "", run_id)) ||
	           (lease_holder && owner && !strcmp(owner, lease_holder));
	if (owner && !ours && expires > (json_int_t)time(NULL)) {
		snprintf(err, errlen, "run %s holds the job's lock; nothing was overwritten", owner);
		return DP_EXIT_CONFLICT;
	}
	return 0;
}

static int
commit_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	struct commit_ctx *c = ctx;
	json_t *header = c->sum->header, *end = c->sum->end;
	json_t *boundary = json_object_get(header, "boundary");
	const char *run_id = json_string_value(json_object_get(header, "run_id"));
	int rc = check_column(c->o, st->record, err, errlen);
	if (!rc && !json_object_get(boundary, "plan"))
		rc = refuse_open_chunked_run(st, c->o, err, errlen);
	if (!rc)
		rc = check_start(st, boundary, run_id, c->lease_holder, err, errlen);
	if (rc)
		return rc;
	json_t *seen = json_object_get(end, "watermark");
	const char *column = json_string_value(json_object_get(seen, "column"));
	if (!column)
		column = json_string_value(json_object_get(boundary, "column"));
	const char *sql_type = json_string_value(json_object_get(dp_header_column(header, column), "sql_type"));
	json_t *before = watermark_value(st->record), *after = before, *high = json_object_get(seen, "high");
	/* Never backwards: a lookback may re-read only rows below state. */
	if (high && !json_is_null(high) && (!before || dp_compare_watermarks(high, before, sql_type) > 0))
		after = high;
	char *now = utc_now();
	json_t *record = json_pack("{s:s?, s:s, s:O?, s:O?, s:O?, s:O?, s:O?}", "run_id", run_id, "committed_at", now,
	                           "rows", json_object_get(end, "rows"), "deletes", json_object_get(end, "deletes"),
	                           "boundary", boundary, "delivery", c->sum->delivery, "checks", c->sum->checks);
	/* The schema this run published: the next run's schema evolution
	 * compares with it (dpone-check). */
	json_t *columns = json_object_get(header, "columns");
	if (json_is_array(columns))
		json_object_set(record, "schema", columns);
	json_object_set_new(
		record, "watermark",
		after ? json_pack("{s:s?, s:s?, s:O}", "column", column, "sql_type", sql_type, "value", after)
		      : json_null());
	if (c->key_index)
		json_object_set(record, "key_index", c->key_index);
	/* Where the run's messages are (partition, first and last offset): a
	 * message is traced to its run by them, without a header on each. */
	*history = json_pack("{s:s, s:s?, s:s, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "kind", "commit", "run_id", run_id,
	                     "committed_at", now, "watermark_before", before, "watermark_after", after, "rows",
	                     json_object_get(end, "rows"), "boundary", boundary, "checks", c->sum->checks, "partitions",
	                     json_object_get(c->sum->delivery, "partitions"));
	if (json_object_get(header, "schema_changes"))
		json_object_set(*history, "schema_changes", json_object_get(header, "schema_changes"));
	json_t *recon = c->sum->reconciliation;
	if (recon)
		json_object_set_new(
			*history, "reconciliation",
			json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "mode", json_object_get(recon, "mode"),
		                  "previous_keys", json_object_get(recon, "previous_keys"), "current_keys",
		                  json_object_get(recon, "current_keys"), "missing", json_object_get(recon, "missing"),
		                  "deleted", json_object_get(recon, "deleted"), "missing_list",
		                  json_object_get(recon, "missing_list")));
	char *a = show(before), *b = show(after);
	c->moved = dp_strfmt("%s -> %s", a, b);
	free(a);
	free(b);
	free(now);
	json_decref(st->record);
	st->record = record;
	c->result = json_incref(record);
	return 0;
}

/* ---- the commands ---- */

static void
print_json(const json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	puts(text);
	free(text);
}

static int
cmd_get(struct store *s, const struct options *o, char *err, size_t errlen)
{
	struct job_state st = {0};
	int rc = s->ops->read(s, &st, err, errlen);
	if (!rc)
		rc = check_column(o, st.record, err, errlen);
	if (rc) {
		job_state_clear(&st);
		return rc;
	}
	json_t *wm = watermark_value(st.record);
	if (o->watermark_only) {
		/* Only where a run starts from it: what dpone-extract --from takes. */
		if (wm && !json_is_null(wm) && dp_manifest_incremental(o->m))
			print_json(wm);
	} else {
		json_t *out = json_pack("{s:s, s:O?, s:O?}", "job", s->job, "record", st.record, "lease", st.lease);
		print_json(out);
		json_decref(out);
	}
	job_state_clear(&st);
	return 0;
}

static int
cmd_commit(struct store *s, const struct options *o, char *err, size_t errlen)
{
	struct summary sum = {0};
	read_summary(&sum);
	if (!sum.checks && json_array_size(dp_manifest_get(o->m, "quality.checks")) && o->m->quality != DP_QUALITY_OFF)
		dp_warn("warning: the manifest's quality.checks were not run for this commit (no checks message in the "
		        "summary: dpone-check belongs between dpone-extract and dpone-produce)");
	struct commit_ctx c = {o, &sum, o->run_id, NULL, NULL, NULL};
	json_t *staged = json_object_get(sum.reconciliation, "key_index");
	const char *staged_path = json_string_value(json_object_get(staged, "path"));
	char *index_name = NULL;
	if (staged_path) {
		/* Stored before the record that names it, verified first. */
		json_int_t keys = json_integer_value(json_object_get(staged, "keys"));
		const char *run_id = json_string_value(json_object_get(sum.header, "run_id"));
		int vrc = key_index_verify(staged_path, keys, err, errlen);
		if (vrc)
			return vrc;
		index_name = key_index_name(s->job, run_id ? run_id : "");
		if ((vrc = s->ops->put_keys(s, staged_path, index_name, err, errlen))) {
			free(index_name);
			return vrc;
		}
		c.key_index = json_pack("{s:s, s:I, s:s?}", "name", index_name, "keys", keys, "run_id", run_id);
	}
	int rc = s->ops->update(s, commit_update, &c, err, errlen);
	/* The old index goes once the new record is written; after a failure
	 * the next commit removes what this one stored. */
	if (!rc && index_name && s->ops->drop_keys(s, index_name, err, errlen))
		dp_warn("warning: removing old key indexes: %s", err);
	free(index_name);
	json_decref(c.key_index);
	if (!rc) {
		json_object_set_new(c.result, "job", json_string(s->job));
		print_json(c.result);
		long long rows = (long long)json_integer_value(json_object_get(c.result, "rows"));
		if (!o->quiet)
			dp_warn("committed run %s: watermark %s, %lld row%s",
			        json_string_value(json_object_get(c.result, "run_id")), c.moved, rows,
			        rows == 1 ? "" : "s");
	}
	json_decref(c.result);
	free(c.moved);
	summary_free(&sum);
	return rc;
}

static int
reset_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	const struct options *o = ctx;
	json_t *value = json_loads(o->to, JSON_DECODE_ANY, NULL);
	if (!value)
		value = json_string(o->to); /* plain text, such as a date */
	json_t *before = watermark_value(st->record);
	char *now = utc_now();
	*history = json_pack("{s:s, s:s, s:O?, s:O}", "kind", "reset", "committed_at", now, "watermark_before", before,
	                     "watermark_after", value);
	json_t *record = st->record ? json_deep_copy(st->record) : json_object();
	json_t *wm = json_object_get(record, "watermark");
	if (json_is_null(value)) {
		json_object_set_new(record, "watermark", json_null());
	} else {
		/* The manifest's column, even over another one's: a reset takes
		 * the state over (see check_column). */
		const char *column = watermark_column(o->m);
		const char *old = json_string_value(json_object_get(wm, "column"));
		if (json_is_object(wm) && (!column || (old && !strcasecmp(old, column))))
			json_object_set(wm, "value", value);
		else
			json_object_set_new(record, "watermark",
			                    json_pack("{s:s?, s:O}", "column", column, "value", value));
	}
	json_object_set_new(record, "reset_at", json_string(now));
	if (json_object_get(record, "chunked_run")) {
		/* A reset abandons an open chunked run: its chunks are refused. */
		json_object_set(*history, "abandoned_chunked_run", json_object_get(record, "chunked_run"));
		json_object_del(record, "chunked_run");
	}
	json_object_del(record, "run_id"); /* a reset is no run: the next commit compares watermarks only */
	json_decref(st->record);
	st->record = record;
	json_decref(value);
	free(now);
	return 0;
}

/* schema --clear: the next commit publishes a new schema; audited. */
static int
schema_clear_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)ctx, (void)err, (void)errlen;
	json_t *published = json_object_get(st->record, "schema");
	if (!published)
		return 0;
	char *now = utc_now();
	*history =
		json_pack("{s:s, s:s, s:O}", "kind", "schema_clear", "committed_at", now, "schema_before", published);
	json_object_del(st->record, "schema");
	free(now);
	return 0;
}

static int
keys_clear_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)ctx, (void)err, (void)errlen;
	json_t *index = json_object_get(st->record, "key_index");
	if (!index)
		return 0;
	char *now = utc_now();
	*history = json_pack("{s:s, s:s, s:O}", "kind", "keys_clear", "committed_at", now, "key_index_before", index);
	json_object_del(st->record, "key_index");
	free(now);
	return 0;
}

/* keys: the committed key index (a zstd-compressed dpone stream) on
 * stdout; --clear forgets it, audited, and removes the stored ones. */
static int
cmd_keys(struct store *s, const struct options *o, char *err, size_t errlen)
{
	if (o->clear) {
		int rc = s->ops->update(s, keys_clear_update, NULL, err, errlen);
		return rc ? rc : s->ops->drop_keys(s, NULL, err, errlen);
	}
	struct job_state st = {0};
	int rc = s->ops->read(s, &st, err, errlen);
	if (rc)
		return rc;
	const char *name = json_string_value(json_object_get(json_object_get(st.record, "key_index"), "name"));
	if (!name) {
		snprintf(err, errlen, "job %s has no key index (no snapshot_reconciliation run was committed)", s->job);
		rc = DP_EXIT_STATE;
	} else if (isatty(1)) {
		snprintf(err, errlen,
		         "the key index is zstd-compressed: pipe it (dpone-state M keys | zstdcat | jq .)");
		rc = DP_EXIT_USAGE;
	} else {
		rc = s->ops->get_keys(s, name, 1, err, errlen);
	}
	job_state_clear(&st);
	return rc;
}

/* check: the backend answers, the job's state reads, runs may write it. */
static int
cmd_check(struct store *s, const struct options *o, char *err, size_t errlen)
{
	struct job_state st = {0};
	int rc = s->ops->read(s, &st, err, errlen);
	if (rc)
		return rc;
	json_t *out = json_pack("{s:s, s:b, s:O?}", "backend", dp_manifest_str(o->m, "state.type"), "readable", 1,
	                        "lease", st.lease);
	job_state_clear(&st);
	rc = s->ops->probe(s, out, err, errlen);
	if (!rc)
		print_json(out);
	json_decref(out);
	return rc;
}

static int
cmd_schema(struct store *s, const struct options *o, char *err, size_t errlen)
{
	if (o->clear)
		return s->ops->update(s, schema_clear_update, (void *)o, err, errlen);
	struct job_state st = {0};
	int rc = s->ops->read(s, &st, err, errlen);
	if (rc)
		return rc;
	json_t *published = json_object_get(st.record, "schema");
	print_json(published ? published : json_null());
	job_state_clear(&st);
	return 0;
}

/* ---- chunks: one run spread over N processes (batch run --chunk I/N) ----
 * While its chunks are delivered, the record holds the open chunked run:
 * {"plan": RUN_ID, "ranges": N, "boundary": {...}, "planned_at": TIME,
 * "receipts": {"I": {...}}}. The first chunk to start records the
 * boundary dpone-extract planned; the others read it; each delivered
 * chunk adds its receipt; the one that completes the set commits the whole
 * run, once, under the same compare-and-set as commit. */

static json_t *
chunked_run(const struct job_state *st)
{
	return json_object_get(st->record, "chunked_run");
}

/* "chunked run P (k of N chunks delivered)" */
static void
describe_chunked_run(const json_t *cr, char *out, size_t len)
{
	const char *plan = json_string_value(json_object_get(cr, "plan"));
	snprintf(out, len, "chunked run %s (%zu of %lld chunks delivered)", plan ? plan : "?",
	         json_object_size(json_object_get(cr, "receipts")),
	         (long long)json_integer_value(json_object_get(cr, "ranges")));
}

/* A whole run (lock) may not start while a chunked run is open: its
 * commit would drop the chunks' receipts. */
static int
refuse_open_chunked_run(const struct job_state *st, const struct options *o, char *err, size_t errlen)
{
	const json_t *cr = chunked_run(st);
	if (!cr)
		return 0;
	char what[256];
	describe_chunked_run(cr, what, sizeof what);
	snprintf(err, errlen,
	         "%s is open: deliver its missing chunks (dpone batch run %s --chunk I/%lld), or abandon it "
	         "(dpone-state %s reset --to VALUE)",
	         what, o->manifest_path, (long long)json_integer_value(json_object_get(cr, "ranges")),
	         o->manifest_path);
	return DP_EXIT_CONFLICT;
}

/* Record a newly planned boundary as the open chunked run of o->chunk_n
 * ranges, if it starts where state is and no whole run holds the lease. */
static int
record_chunked_run(struct job_state *st, const struct options *o, json_t *planned, char *err, size_t errlen)
{
	int rc = check_column(o, st->record, err, errlen);
	if (!rc)
		rc = check_start(st, planned, o->run_id, NULL, err, errlen);
	if (rc)
		return rc;
	json_t *boundary = json_deep_copy(planned);
	json_object_set_new(boundary, "plan", json_string(o->run_id));
	char *now = utc_now();
	if (!st->record)
		st->record = json_object();
	json_object_set_new(st->record, "chunked_run",
	                    json_pack("{s:s, s:i, s:o, s:s, s:{}}", "plan", o->run_id, "ranges", o->chunk_n, "boundary",
	                              boundary, "planned_at", now, "receipts"));
	free(now);
	return 0;
}

struct chunk_plan_ctx {
	const struct options *o;
	json_t *planned;     /* the boundary dpone-extract --boundary planned, or NULL; borrowed */
	json_t *recorded;    /* out: the open chunked run's boundary, a new reference */
	const char *verdict; /* out: none, recorded, delivered */
};

static int
chunk_plan_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)history;
	struct chunk_plan_ctx *c = ctx;
	const struct options *o = c->o;
	c->verdict = "none";
	if (!chunked_run(st) && !c->planned)
		return 0;
	int rc = chunked_run(st) ? 0 : record_chunked_run(st, o, c->planned, err, errlen);
	if (rc)
		return rc;
	json_t *cr = chunked_run(st);
	if (json_integer_value(json_object_get(cr, "ranges")) != o->chunk_n) {
		char what[256];
		describe_chunked_run(cr, what, sizeof what);
		snprintf(err, errlen,
		         "%s is open, of %lld chunks, not %d: run its chunks as I/%lld, or abandon it "
		         "(dpone-state %s reset --to VALUE)",
		         what, (long long)json_integer_value(json_object_get(cr, "ranges")), o->chunk_n,
		         (long long)json_integer_value(json_object_get(cr, "ranges")), o->manifest_path);
		return DP_EXIT_CONFLICT;
	}
	char key[16];
	snprintf(key, sizeof key, "%d", o->chunk_i);
	c->verdict = json_object_get(json_object_get(cr, "receipts"), key) ? "delivered" : "recorded";
	c->recorded = json_incref(json_object_get(cr, "boundary"));
	return 0;
}

/* chunk-plan: the open chunked run's boundary into --boundary-file, or the
 * boundary that file holds (planned by dpone-extract --boundary) recorded
 * as the open run; prints none, recorded or delivered. */
static int
cmd_chunk_plan(struct store *s, const struct options *o, char *err, size_t errlen)
{
	json_t *planned = NULL;
	if (access(o->boundary_file, F_OK) == 0) {
		json_error_t jerr;
		planned = json_load_file(o->boundary_file, 0, &jerr);
		if (!json_is_object(planned) || !o->run_id) {
			snprintf(err, errlen, "%s: %s", o->boundary_file,
			         !o->run_id ? "recording a plan needs --run-id ID, the plan's name"
			                    : "not a boundary (dpone-extract --boundary writes one)");
			json_decref(planned);
			return DP_EXIT_USAGE;
		}
	}
	struct chunk_plan_ctx c = {o, planned, NULL, NULL};
	int rc = s->ops->update(s, chunk_plan_update, &c, err, errlen);
	if (!rc && c.recorded) {
		char *tmp = dp_strfmt("%s.tmp", o->boundary_file);
		if (json_dump_file(c.recorded, tmp, JSON_COMPACT) < 0 || rename(tmp, o->boundary_file) < 0) {
			snprintf(err, errlen, "%s: %s", o->boundary_file, strerror(errno));
			rc = DP_EXIT_FAILURE;
		}
		free(tmp);
	}
	if (!rc)
		puts(c.verdict);
	json_decref(c.recorded);
	json_decref(planned);
	return rc;
}

/* The summary of the whole chunked run, from its receipts, for
 * commit_update: the planned boundary, rows and messages summed, the
 * highest watermark any chunk saw. Members owned by sum. */
static void
whole_run_summary(const json_t *cr, const json_t *chunk_header, struct summary *sum)
{
	json_t *receipts = json_object_get(cr, "receipts");
	json_int_t rows = 0, messages = 0;
	json_t *high = NULL, *partitions = json_array(), *checks = json_object(), *r;
	const char *key;
	json_t *boundary = json_object_get(cr, "boundary");
	const char *column = json_string_value(json_object_get(boundary, "column"));
	const char *sql_type = json_string_value(json_object_get(dp_header_column(chunk_header, column), "sql_type"));
	int passed = 1;
	json_object_foreach(receipts, key, r) {
		rows += json_integer_value(json_object_get(r, "rows"));
		messages += json_integer_value(json_object_get(r, "delivered"));
		json_t *h = json_object_get(r, "high");
		if (h && !json_is_null(h) && (!high || dp_compare_watermarks(h, high, sql_type) > 0))
			high = h;
		json_array_extend(partitions, json_object_get(r, "partitions"));
		if (json_is_object(json_object_get(r, "checks"))) {
			json_object_set(checks, key, json_object_get(r, "checks"));
			passed &= !json_is_false(json_object_get(json_object_get(r, "checks"), "passed"));
		}
	}
	sum->header = json_deep_copy(chunk_header);
	json_object_set(sum->header, "boundary", boundary);
	json_object_set(sum->header, "run_id", json_object_get(cr, "plan"));
	sum->end = json_pack("{s:I}", "rows", rows);
	if (high)
		json_object_set_new(sum->end, "watermark", json_pack("{s:s?, s:O}", "column", column, "high", high));
	sum->delivery = json_pack("{s:I, s:I, s:I, s:o}", "messages", messages, "delivered", messages, "failed",
	                          (json_int_t)0, "partitions", partitions);
	sum->checks = json_object_size(checks) ? json_pack("{s:b, s:o}", "passed", passed, "chunks", checks) : NULL;
	if (!sum->checks)
		json_decref(checks);
}

struct chunk_receipt_ctx {
	const struct options *o;
	struct summary *sum; /* the chunk's */
	json_t *result;      /* out: what to print */
	char *moved;         /* out: the watermark's move, when the run completed */
};

/* A summary that is not chunk o's of the open chunked run is refused: a
 * stale chunk (of a run completed, abandoned or planned again). */
static int
check_receipt(const struct job_state *st, const struct chunk_receipt_ctx *c, char *err, size_t errlen)
{
	json_t *boundary = json_object_get(c->sum->header, "boundary");
	const char *plan = json_string_value(json_object_get(boundary, "plan"));
	const char *chunk = json_string_value(json_object_get(boundary, "chunk"));
	char want[32];
	snprintf(want, sizeof want, "%d/%d", c->o->chunk_i, c->o->chunk_n);
	if (!plan || !chunk || strcmp(chunk, want)) {
		snprintf(err, errlen,
		         "stdin: the summary is not of chunk %s of a chunked run (its boundary: chunk %s, plan %s)",
		         want, chunk ? chunk : "none", plan ? plan : "none");
		return DP_EXIT_STREAM;
	}
	const char *open = json_string_value(json_object_get(chunked_run(st), "plan"));
	if (open && !strcmp(open, plan))
		return 0;
	const char *last = json_string_value(json_object_get(st->record, "run_id"));
	snprintf(err, errlen,
	         "chunk %s of run %s is stale: %s%s; its rows were published, state does not take them "
	         "(nothing was changed)",
	         want, plan,
	         last && !strcmp(last, plan) ? "that run is complete and committed already"
	         : open                      ? "the open chunked run is "
	                                     : "no chunked run is open (abandoned by a reset)",
	         last && !strcmp(last, plan) ? ""
	         : open                      ? open
	                                     : "");
	return DP_EXIT_CONFLICT;
}

static int
chunk_receipt_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	struct chunk_receipt_ctx *c = ctx;
	int rc = check_receipt(st, c, err, errlen);
	if (rc)
		return rc;
	json_t *cr = chunked_run(st), *receipts = json_object_get(cr, "receipts");
	char key[16], *now = utc_now();
	snprintf(key, sizeof key, "%d", c->o->chunk_i);
	json_t *seen = json_object_get(c->sum->end, "watermark");
	json_object_set_new(receipts, key,
	                    json_pack("{s:O?, s:s, s:O?, s:O?, s:O?, s:O?, s:O?}", "run_id",
	                              json_object_get(c->sum->header, "run_id"), "received_at", now, "rows",
	                              json_object_get(c->sum->end, "rows"), "delivered",
	                              json_object_get(c->sum->delivery, "delivered"), "high",
	                              json_object_get(seen, "high"), "partitions",
	                              json_object_get(c->sum->delivery, "partitions"), "checks", c->sum->checks));
	free(now);
	json_int_t ranges = json_integer_value(json_object_get(cr, "ranges"));
	size_t have = json_object_size(receipts);
	if ((json_int_t)have < ranges) {
		c->result = json_pack("{s:O, s:i, s:I, s:I, s:b}", "plan", json_object_get(cr, "plan"), "chunk",
		                      c->o->chunk_i, "receipts", (json_int_t)have, "ranges", ranges, "complete", 0);
		return 0;
	}
	struct summary whole = {0};
	whole_run_summary(cr, c->sum->header, &whole);
	json_t *all = json_incref(receipts);
	struct commit_ctx cc = {c->o, &whole, NULL, NULL, NULL, NULL};
	rc = commit_update(st, history, &cc, err, errlen);
	if (!rc) {
		json_object_set(*history, "chunks", all);
		c->result = cc.result;
		json_object_set_new(c->result, "complete", json_true());
		c->moved = cc.moved;
	} else {
		json_decref(cc.result);
		free(cc.moved);
	}
	json_decref(all);
	summary_free(&whole);
	return rc;
}

/* chunk-receipt: chunk I's summary (stdin) recorded; the last of the N
 * commits the whole run. */
static int
cmd_chunk_receipt(struct store *s, const struct options *o, char *err, size_t errlen)
{
	struct summary sum = {0};
	read_summary(&sum);
	struct chunk_receipt_ctx c = {o, &sum, NULL, NULL};
	int rc = s->ops->update(s, chunk_receipt_update, &c, err, errlen);
	if (!rc) {
		print_json(c.result);
		if (!o->quiet && c.moved)
			dp_warn("committed run %s (%d chunks): watermark %s, %lld rows",
			        json_string_value(json_object_get(c.result, "run_id")), o->chunk_n, c.moved,
			        (long long)json_integer_value(json_object_get(c.result, "rows")));
		else if (!o->quiet)
			dp_warn("chunk %d/%d of run %s delivered: %lld of %d chunks in; state moves when all are",
			        o->chunk_i, o->chunk_n, json_string_value(json_object_get(c.result, "plan")),
			        (long long)json_integer_value(json_object_get(c.result, "receipts")), o->chunk_n);
	}
	json_decref(c.result);
	free(c.moved);
	summary_free(&sum);
	return rc;
}

/* ---- leases ---- */

/* What identifies a process across pid reuse: its start time in clock ticks
 * since boot (/proc/PID/stat, field 22), "" if unknown. */
static void
process_start(long long pid, char *out, size_t len)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%lld/stat", pid);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		snprintf(out, len, "%.*s", (int)strcspn(p + 1, " "), p + 1);
}

static void
read_line_file(const char *path, char *out, size_t len)
{
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f && fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* This machine: host name and boot id (a reboot ends every process). */
struct machine {
	char host[256], boot_id[64];
};

static void
this_machine(struct machine *mc)
{
	if (gethostname(mc->host, sizeof mc->host) < 0)
		snprintf(mc->host, sizeof mc->host, "?");
	mc->host[sizeof mc->host - 1] = '\0';
	read_line_file("/proc/sys/kernel/random/boot_id", mc->boot_id, sizeof mc->boot_id);
}

static const char *
lease_str(json_t *lease, const char *name)
{
	const char *v = json_string_value(json_object_get(lease, name));
	return v ? v : "?";
}

/* The holder is provably gone: a process of this machine and this boot,
 * whose pid no longer runs, or runs another program since (start time). A
 * holder on another machine is never assumed dead. */
static int
holder_is_gone(json_t *lease, const struct machine *mc)
{
	json_int_t pid = json_integer_value(json_object_get(lease, "pid"));
	if (!pid || strcmp(lease_str(lease, "host"), mc->host))
		return 0;
	if (*mc->boot_id && strcmp(lease_str(lease, "boot_id"), mc->boot_id))
		return 1;
	if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		return 1;
	char start[32];
	process_start(pid, start, sizeof start);
	return *start && strcmp(start, lease_str(lease, "pid_start")) != 0;
}

/* "run R (host H, pid P, taken N s ago)" */
static void
describe_holder(json_t *lease, time_t now, char *out, size_t len)
{
	snprintf(out, len, "run %s (host %s, pid %lld, taken %lld s ago)", lease_str(lease, "owner"),
	         lease_str(lease, "host"), (long long)json_integer_value(json_object_get(lease, "pid")),
	         (long long)(now - json_integer_value(json_object_get(lease, "acquired_at"))));
}

static int
lock_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)history;
	const struct options *o = ctx;
	const char *owner = json_string_value(json_object_get(st->lease, "owner"));
	json_int_t expires = json_integer_value(json_object_get(st->lease, "expires_at"));
	time_t now = time(NULL);
	int rc;
	struct machine mc;
	this_machine(&mc);
	char holder[512];
	if (owner && strcmp(owner, o->run_id)) {
		describe_holder(st->lease, now, holder, sizeof holder);
		if (expires <= (json_int_t)now)
			dp_warn("taking over the lease of %s: it expired %lld s ago", holder,
			        (long long)(now - expires));
		else if (holder_is_gone(st->lease, &mc))
			dp_warn("taking over the lease of %s: that process is gone", holder);
		else {
			snprintf(err, errlen,
			         "the job is locked by %s for %lld more seconds; wait for it, or if that run is gone: "
			         "dpone-state %s unlock --force",
			         holder, (long long)(expires - now), o->manifest_path);
			return DP_EXIT_CONFLICT;
		}
	}
	if ((rc = refuse_open_chunked_run(st, o, err, errlen)))
		return rc;
	long long pid = o->holder_pid ? o->holder_pid : (long long)getppid();
	long long ttl = o->ttl ? o->ttl : dp_duration_seconds(dp_manifest_str(o->m, "state.lease_ttl"));
	char start[32];
	process_start(pid, start, sizeof start);
	json_decref(st->lease);
	st->lease = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I}", "owner", o->run_id, "host", mc.host, "pid",
	                      (json_int_t)pid, "pid_start", start, "boot_id", mc.boot_id, "acquired_at",
	                      (json_int_t)now, "expires_at", (json_int_t)(now + ttl));
	return 0;
}

static int
unlock_update(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen)
{
	(void)history;
	const struct options *o = ctx;
	const char *owner = json_string_value(json_object_get(st->lease, "owner"));
	if (owner && !o->force && (!o->run_id || strcmp(owner, o->run_id))) {
		char holder[512];
		describe_holder(st->lease, time(NULL), holder, sizeof holder);
		snprintf(err, errlen,
		         "the lock belongs to %s, not %s; nothing was changed (if that run is gone: dpone-state %s "
		         "unlock --force)",
		         holder, o->run_id ? o->run_id : "(no --run-id)", o->manifest_path);
		return DP_EXIT_CONFLICT;
	}
	json_decref(st->lease);
	st->lease = NULL;
	return 0;
}

static int
cmd_history(struct store *s, const struct options *o, char *err, size_t errlen)
{
	(void)o;
	json_t *list;
	int rc = s->ops->history(s, &list, err, errlen);
	if (rc)
		return rc;
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
		print_json(e);
	json_decref(list);
	return 0;
}

static int
cmd_reset(struct store *s, const struct options *o, char *err, size_t errlen)
{
	s->adopt = 1;
	return s->ops->update(s, reset_update, (void *)o, err, errlen);
}

static int
cmd_lock(struct store *s, const struct options *o, char *err, size_t errlen)
{
	return s->ops->update(s, lock_update, (void *)o, err, errlen);
}

static int
cmd_unlock(struct store *s, const struct options *o, char *err, size_t errlen)
{
	return s->ops->update(s, unlock_update, (void *)o, err, errlen);
}

/* The commands, git-style: name, what runs it, the option it cannot do
 * without (NEEDS_*), and the message when it is missing. */
enum { NEEDS_NOTHING, NEEDS_TO, NEEDS_RUN_ID, NEEDS_CHUNK };
static const struct command {
	const char *name;
	int (*run)(struct store *s, const struct options *o, char *err, size_t errlen);
	int needs;
	const char *missing;
} commands[] = {
	{"get", cmd_get, NEEDS_NOTHING, NULL},
	{"commit", cmd_commit, NEEDS_NOTHING, NULL},
	{"history", cmd_history, NEEDS_NOTHING, NULL},
	{"reset", cmd_reset, NEEDS_TO, "reset needs --to VALUE (null clears the watermark)"},
	{"lock", cmd_lock, NEEDS_RUN_ID, "lock needs --run-id ID"},
	{"unlock", cmd_unlock, NEEDS_NOTHING, NULL},
	{"schema", cmd_schema, NEEDS_NOTHING, NULL},
	{"check", cmd_check, NEEDS_NOTHING, NULL},
	{"keys", cmd_keys, NEEDS_NOTHING, NULL},
	{"chunk-plan", cmd_chunk_plan, NEEDS_CHUNK, "chunk-plan needs --chunk I/N and --boundary-file FILE"},
	{"chunk-receipt", cmd_chunk_receipt, NEEDS_CHUNK, "chunk-receipt needs --chunk I/N"},
	{"report", NULL, NEEDS_RUN_ID, "report needs --run-id ID"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* The command named name; exits with a suggestion when there is none. */
static const struct command *
find_command(const char *name)
{
	const char *names[NCOMMANDS + 1];
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (!strcmp(commands[i].name, name))
			return &commands[i];
		names[i] = commands[i].name;
	}
	names[NCOMMANDS] = NULL;
	const char *near = dp_did_you_mean(name, names);
	if (near)
		dp_die(DP_EXIT_USAGE, "unknown command '%s' (did you mean '%s'?)", name, near);
	dp_die(DP_EXIT_USAGE, "unknown command '%s'", name);
}

/* The store, or NULL with an exit code in *code and why in err. */
static struct store *
try_open_store(const struct dp_manifest *m, int *code, char *err, size_t errlen)
{
	struct store *s;
	const char *job = dp_manifest_str(m, "name");
	if (m->state_type == DP_STATE_POSTGRES) {
		struct dp_conn conn;
		dp_cli_resolve(m, "state", "postgres", &conn);
		s = store_pg_open(&conn, dp_manifest_str(m, "state.table.schema"),
		                  dp_manifest_str(m, "state.table.name"), job, code, err, errlen);
		dp_conn_free(&conn);
	} else {
		s = store_file_open(dp_manifest_str(m, "state.path"), job, code, err, errlen);
	}
	return s;
}

static struct store *
open_store(const struct dp_manifest *m)
{
	char err[1024];
	int code = 0;
	struct store *s = try_open_store(m, &code, err, sizeof err);
	if (!s)
		dp_die(code, "%s", err);
	return s;
}

/* report: the state is read for the metrics (watermark, last success) if
 * it can be; a state backend that is down makes them fewer, not a failure. */
static _Noreturn void
report(const struct dp_manifest *m, const struct options *o)
{
	char err[1024];
	int code = 0;
	struct job_state st = {0};
	struct store *s = o->report.start ? NULL : try_open_store(m, &code, err, sizeof err);
	if (!o->report.start && (!s || s->ops->read(s, &st, err, sizeof err)))
		dp_warn("warning: report: the state could not be read (%s): no watermark metrics", err);
	if (s)
		s->ops->close(s);
	struct report_options ro = o->report;
	ro.run_id = o->run_id;
	report_run(m, st.record, &ro);
	job_state_clear(&st);
	dp_exit_flushing_stdout(DP_EXIT_OK);
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {{"run-id", required_argument, NULL, OPT_RUN_ID},
	                                      {"ttl", required_argument, NULL, OPT_TTL},
	                                      {"holder-pid", required_argument, NULL, OPT_HOLDER_PID},
	                                      {"event", required_argument, NULL, OPT_EVENT},
	                                      {"exit-code", required_argument, NULL, OPT_EXIT_CODE},
	                                      {"started", required_argument, NULL, OPT_STARTED},
	                                      {"error", required_argument, NULL, OPT_ERROR},
	                                      {"to", required_argument, NULL, OPT_TO},
	                                      {"force", no_argument, NULL, OPT_FORCE},
	                                      {"watermark", no_argument, NULL, OPT_WATERMARK},
	                                      {"clear", no_argument, NULL, OPT_CLEAR},
	                                      {"chunk", required_argument, NULL, OPT_CHUNK},
	                                      {"boundary-file", required_argument, NULL, OPT_BOUNDARY_FILE},
	                                      {NULL, 0, NULL, 0}};
	struct options o = {0};
	struct dp_cli cli;
	dp_cli_parse_ex(argc, argv, usage_text, 1, extra, handle_option, &o, &cli);
	const char *command = cli.nmore ? cli.more[0] : NULL;
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	if (!command) {
		fputs(usage_text, stderr);
		dp_die(DP_EXIT_USAGE, "missing COMMAND");
	}
	const struct command *cmd = find_command(command);
	if ((cmd->needs == NEEDS_TO && !o.to) || (cmd->needs == NEEDS_RUN_ID && !o.run_id) ||
	    (cmd->needs == NEEDS_CHUNK && (!o.chunk_n || (!strcmp(command, "chunk-plan") && !o.boundary_file))))
		dp_die(DP_EXIT_USAGE, "%s", cmd->missing);
	o.quiet = cli.quiet;
	o.m = m;
	char *manifest_abs = realpath(cli.manifest_path, NULL); /* owned */
	o.manifest_path = manifest_abs ? manifest_abs : cli.manifest_path;

	if (!cmd->run)
		report(m, &o); /* does not return */
	struct store *s = open_store(m);
	char err[1024] = "";
	int rc = cmd->run(s, &o, err, sizeof err);
	s->ops->close(s);
	dp_manifest_free(m);
	free(manifest_abs);
	if (rc)
		dp_die(rc, "%s %s: %s", command, rc == DP_EXIT_CONFLICT ? "refused" : "failed", err);
	dp_exit_flushing_stdout(0);
}
