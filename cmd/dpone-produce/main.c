/*
 * dpone-produce: publish a dpone stream from stdin to the manifest's Kafka
 * topic and write the delivery summary on stdout: the stream's header, any
 * control messages it carries, a "delivery" message, and the stream's "end"
 * only when every message was delivered (and, with exactly_once, the
 * transaction committed), so that nothing downstream commits state for a
 * run that did not fully land.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "produce.h"

/* As laid out on the terminal (and in the man page's SYNOPSIS). */
/* clang-format off */
static const char usage_text[] =
	"usage: dpone-produce [-hqV] [--registry FILE] [--print-manifest] [--dry-run] [--check]\n"
	"                     [--create-topic DESIGN] [--drain-timeout SECONDS] [--transactional-id ID]\n"
	"                     [--force] [--progress MODE] [--commit-record FILE] MANIFEST < STREAM\n"
	"Publish the dpone stream on stdin to the manifest's Kafka topic.\n"
	DP_CLI_COMMON_HELP
	"      --dry-run       read and check the stream, build every message, send nothing\n"
	"      --check         ask the cluster about the topic (no stream is read), print JSON and exit\n"
	"      --create-topic DESIGN  create the missing topic as DESIGN (JSON) says, and exit\n"
	"      --drain-timeout SECONDS  after SIGINT/SIGTERM, wait this long for deliveries (10)\n"
	"      --transactional-id ID    exactly_once: the transactional id (default dpone.NAME)\n"
	"      --commit-record FILE     once delivered (committed), write the summary to FILE durably\n"
	"      --force         publish a stream another job, table or strategy wrote\n"
	"      --progress MODE tty (one line drawn in place), lines (one every 10 s) or none\n"
	"See dpone-produce(1); exit codes are listed there.\n";
/* clang-format on */

enum {
	OPT_DRY_RUN = OPT_EXTRA,
	OPT_DRAIN,
	OPT_TXN_ID,
	OPT_CHECK,
	OPT_CREATE_TOPIC,
	OPT_COMMIT_RECORD,
	OPT_FORCE,
	OPT_PROGRESS
};

struct options {
	int dry_run, check, force;
	int progress; /* enum progress_mode, or -1: tty on a terminal */
	double drain_timeout;
	const char *transactional_id, *create_topic, *commit_record;
};

static int
handle_option(int id, const char *arg, void *ctx)
{
	struct options *o = ctx;
	char *end;
	switch (id) {
	case OPT_DRY_RUN: o->dry_run = 1; return 0;
	case OPT_CHECK: o->check = 1; return 0;
	case OPT_CREATE_TOPIC: o->create_topic = arg; return 0;
	case OPT_TXN_ID: o->transactional_id = arg; return 0;
	case OPT_COMMIT_RECORD: o->commit_record = arg; return 0;
	case OPT_FORCE: o->force = 1; return 0;
	case OPT_PROGRESS:
		o->progress = !strcmp(arg, "tty")     ? PROGRESS_TTY
		              : !strcmp(arg, "lines") ? PROGRESS_LINES
		              : !strcmp(arg, "none")  ? PROGRESS_NONE
		                                      : -2;
		if (o->progress == -2) {
			dp_warn("--progress %s: expected tty, lines or none", arg);
			return -1;
		}
		return 0;
	case OPT_DRAIN:
		o->drain_timeout = strtod(arg, &end);
		if (end == arg || *end || o->drain_timeout < 0) {
			dp_warn("--drain-timeout %s: expected a number of seconds", arg);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* One run: its inputs, the message format and where messages go. */
struct run {
	const struct dp_manifest *m;
	char *chunk_txn_id; /* a chunk's transactional id, owned; or NULL */
	struct dp_reader *r;
	struct dp_writer *out;
	struct dedupe *dedupe; /* duplicate_policy, or NULL */
	struct sink *sink;     /* NULL with --dry-run */
	struct format fmt;
	struct msgbufs bufs;
	struct change chg; /* the change message the next row belongs to (cdc) */
	unsigned long long rows, deletes, messages;
	double start;
	struct progress progress;
	int quiet;                /* -q: an idle run exits without a word */
	int force;                /* --force: publish a stream from another job */
	char bootstrap[256];      /* the first broker, host:port (for lineage; no secret) */
	int started;              /* the header was read and the format built */
	int saw_checks;           /* the stream had a checks message (dpone-check ran) */
	int checks_failed;        /* a checks message said they did not pass */
	int idle;                 /* ... only because the run read no rows (min_rows) */
	int hashing;              /* hash_reconciliation is configured */
	size_t max_message_bytes; /* sink.options.delivery.max_message_bytes */
	uint64_t row_hash;        /* dp_row_hash summed over the rows published */
	char *end_line;           /* the stream's end message, owned */
	const char *record_path;  /* --commit-record FILE, or NULL */
	char *prepared_path;      /* FILE.prepared, owned */
	struct dp_buf record;     /* what goes to stdout, kept for the commit record */
};

static enum dup_policy
dup_policy_of(const char *name)
{
	return !strcmp(name, "keep_last") ? DUP_KEEP_LAST : !strcmp(name, "keep_first") ? DUP_KEEP_FIRST : DUP_FAIL;
}

/* Stop the run: abort or drain the sink, write what is known, exit. */
static _Noreturn void run_fail(struct run *rn, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static json_t *run_summary(const struct run *rn);

static _Noreturn void
run_fail(struct run *rn, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = dp_vstrfmt(fmt, ap);
	va_end(ap);
	if (!rn->started) /* nothing was built or sent: just say why */
		dp_die(code, "%s", why);
	if (rn->sink)
		sink_abort(rn->sink);
	json_t *summary = run_summary(rn);
	const char *txn = json_string_value(json_object_get(summary, "transaction"));
	if (rn->out) {
		/* The summary without an end: downstream sees a failed run. */
		dp_writer_control(rn->out, "delivery", json_incref(summary));
		dp_writer_flush(rn->out);
	}
	if (rn->sink && sink_error(rn->sink) && code != DP_EXIT_SINK && strcmp(why, sink_error(rn->sink)))
		dp_warn("%s", sink_error(rn->sink));
	progress_stop(&rn->progress, 0);
	if (code == DP_EXIT_IDLE && rn->quiet) { /* as dp_die, without a word */
		fflush(stdout);
		_exit(code);
	}
	dp_die(code, "%s (%llu of %llu messages delivered%s%s)", why, rn->sink ? sink_delivered(rn->sink) : 0,
	       rn->messages, txn ? "; transaction " : "", txn ? txn : "");
}

static json_t *
run_summary(const struct run *rn)
{
	json_t *o = rn->sink ? sink_summary(rn->sink)
	                     : json_pack("{s:s, s:I}", "topic", "(dry run)", "messages", (json_int_t)rn->messages);
	json_object_set_new(o, "rows", json_integer((json_int_t)rn->rows));
	json_object_set_new(o, "deletes", json_integer((json_int_t)rn->deletes));
	if (rn->dedupe)
		json_object_set_new(o, "duplicates_dropped", json_integer((json_int_t)dedupe_dropped(rn->dedupe)));
	json_object_set_new(o, "mode", json_string(dp_manifest_str(rn->m, "sink.options.delivery.mode")));
	if (rn->bootstrap[0])
		json_object_set_new(o, "bootstrap", json_string(rn->bootstrap));
	if (rn->hashing) {
		char hex[17];
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rn->row_hash);
		json_object_set_new(o, "row_hash", json_string(hex));
	}
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)((dp_now() - rn->start) * 1000)));
	return o;
}

static void
send_message(struct run *rn, const struct message *msg)
{
	rn->messages++;
	if (!rn->sink) {
		/* A dry run refuses what a real run would (librdkafka's check). */
		size_t size = message_wire_size(msg, rn->fmt.headers, rn->fmt.nheaders);
		if (size > rn->max_message_bytes)
			run_fail(rn, DP_EXIT_SINK,
			         "stdin line %llu: a message of %zu bytes is more than sink.options.delivery."
			         "max_message_bytes allows",
			         dp_reader_lineno(rn->r), msg->has_value ? msg->value_len : 0);
		return;
	}
	if (sink_send(rn->sink, msg, dp_reader_lineno(rn->r)) < 0) {
		if (dp_interrupted)
			run_fail(rn, DP_EXIT_INTERRUPTED, "interrupted at stdin line %llu", dp_reader_lineno(rn->r));
		run_fail(rn, DP_EXIT_SINK, "%s", sink_error(rn->sink));
	}
	sink_poll(rn->sink);
}

static void
handle_row(struct run *rn, const char *line, size_t len)
{
	char err[256];
	struct message msg;
	__atomic_store_n(&rn->rows, rn->rows + 1, __ATOMIC_RELAXED); /* progress.c reads it */
	if (rn->dedupe && !dedupe_keep(rn->dedupe, line, len, 0, dp_reader_lineno(rn->r)))
		return;
	const struct change *chg = rn->chg.pending ? &rn->chg : NULL;
	rn->chg.pending = 0;
	if (format_row(&rn->fmt, line, len, dp_reader_members(rn->r), chg, &rn->bufs, &msg, err, sizeof err) < 0)
		run_fail(rn, DP_EXIT_STREAM, "stdin:%llu: %s", dp_reader_lineno(rn->r), err);
	if (rn->hashing)
		rn->row_hash += dp_row_hash(line, len);
	send_message(rn, &msg);
}

static void
handle_delete(struct run *rn, const char *line, size_t len)
{
	char err[256];
	struct message msgs[2];
	int n;
	rn->deletes++;
	if (rn->dedupe && !dedupe_keep(rn->dedupe, line, len, 1, dp_reader_lineno(rn->r)))
		return;
	if (format_delete(&rn->fmt, line, len, &rn->bufs, msgs, &n, err, sizeof err) < 0)
		run_fail(rn, DP_EXIT_STREAM, "stdin:%llu: %s", dp_reader_lineno(rn->r), err);
	for (int i = 0; i < n; i++)
		send_message(rn, &msgs[i]);
}

static void
write_line(struct run *rn, const char *line, size_t len)
{
	if (rn->record_path) {
		dp_buf_add(&rn->record, line, len);
		dp_buf_char(&rn->record, '\n');
	}
	if (dp_writer_line(rn->out, line, len) < 0)
		run_fail(rn, DP_EXIT_FAILURE, "%s", dp_writer_error(rn->out));
}

/*
 * The commit record: everything this run writes on stdout, in the file
 * --commit-record names, so that whoever commits state does not depend on
 * this process living on to exit 0. It is written durably to FILE.prepared
 * before the commit (the fsync is slow) and renamed to FILE the moment the
 * commit returned: a process killed after that finds FILE complete, one
 * killed before leaves only FILE.prepared, which nobody reads.
 */
/* The record could not be kept: said once, and no more is tried. */
static void
record_lost(struct run *rn, const char *path)
{
	dp_warn("--commit-record %s: %s; the run goes on, its summary goes to stdout only", path, strerror(errno));
	rn->record_path = NULL;
}

/* The record's text: what was recorded, then delivery and end (a dp_buf the caller frees). */
static struct dp_buf
record_text(const struct run *rn, const json_t *summary)
{
	json_t *msg = json_pack("[sO]", "delivery", summary);
	char *delivery = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (!delivery)
		dp_die(DP_EXIT_FAILURE, "cannot build the delivery message");
	struct dp_buf text = {0};
	dp_buf_add(&text, rn->record.p, rn->record.len);
	dp_buf_str(&text, delivery);
	dp_buf_char(&text, '\n');
	dp_buf_str(&text, rn->end_line);
	dp_buf_char(&text, '\n');
	free(delivery);
	return text;
}

static void
record_write(struct run *rn, const char *path, const json_t *summary)
{
	struct dp_buf text = record_text(rn, summary);
	if (dp_write_file_durably(path, text.p, text.len) < 0)
		record_lost(rn, path);
	free(text.p);
}

static void
record_prepare(struct run *rn, const json_t *summary)
{
	if (rn->record_path)
		record_write(rn, rn->prepared_path, summary);
}

static void
record_drop(struct run *rn)
{
	if (rn->record_path)
		unlink(rn->prepared_path);
}

/* The commit returned: one rename makes the record count. */
static void
record_publish(struct run *rn)
{
	if (!rn->record_path)
		return;
	if (rename(rn->prepared_path, rn->record_path) == 0)
		dp_fsync_dir(rn->record_path);
	else
		record_lost(rn, rn->record_path);
}

/* The header's member NAME differs from WANT (case-insensitively for SQL
 * Server names); an absent member or want matches anything. */
static int
differs(json_t *obj, const char *name, const char *want, int fold_case)
{
	const char *got = json_string_value(json_object_get(obj, name));
	if (!got || !want)
		return 0;
	return fold_case ? strcasecmp(got, want) != 0 : strcmp(got, want) != 0;
}

static const char *
member_or_unknown(json_t *obj, const char *name)
{
	const char *v = json_string_value(json_object_get(obj, name));
	return v ? v : "?";
}

/* A stream replayed into the wrong manifest would publish one table's rows
 * to another's topic, or merge rows cut for another strategy: refused
 * unless --force. */
static void
check_origin(const struct run *rn, json_t *header)
{
	const struct dp_manifest *m = rn->m;
	json_t *src = json_object_get(header, "source");
	static const struct {
		const char *what, *member, *path;
		int in_source, fold_case;
	} origin[] = {{"job", "job", "name", 0, 0},
	              {"table", "table", "source.table.name", 1, 1},
	              {"schema", "schema", "source.table.schema", 1, 1},
	              {"database", "database", "source.table.database", 1, 1},
	              {"strategy", "strategy", "sink.strategy.mode", 0, 0}};
	for (size_t i = 0; i < sizeof origin / sizeof *origin && !rn->force; i++)
		if (differs(origin[i].in_source ? src : header, origin[i].member, dp_manifest_str(m, origin[i].path),
		            origin[i].fold_case))
			dp_die(DP_EXIT_USAGE,
			       "stdin:1: the stream is from job %s (%s.%s, strategy %s) and the manifest is job %s "
			       "(%s.%s, "
			       "strategy %s): the %s differs, so it is not published here (--force publishes it "
			       "anyway)",
			       member_or_unknown(header, "job"), member_or_unknown(src, "schema"),
			       member_or_unknown(src, "table"), member_or_unknown(header, "strategy"),
			       dp_manifest_str(m, "name"), dp_manifest_str(m, "source.table.schema"),
			       dp_manifest_str(m, "source.table.name"), dp_manifest_str(m, "sink.strategy.mode"),
			       origin[i].what);
}

/* A chunk of a run spread over processes (batch run --chunk I/N) has a
 * transactional id of its own, ID.chunk-I-of-N: chunks running at once
 * would fence each other's transactions with one id. */
static void
chunk_transactional_id(struct run *rn, struct sink_options *so)
{
	json_t *boundary = json_object_get(dp_reader_header(rn->r), "boundary");
	const char *chunk = json_string_value(json_object_get(boundary, "chunk"));
	int i, n;
	if (!so->transactional || !so->default_id || !chunk || sscanf(chunk, "%d/%d", &i, &n) != 2)
		return;
	rn->chunk_txn_id = dp_strfmt("%s.chunk-%d-of-%d", so->transactional_id, i, n);
	so->transactional_id = rn->chunk_txn_id;
}

/* After the header: the message format and, unless dry, the producer. */
static void
start(struct run *rn, const struct dp_conn *conn, struct sink_options *so)
{
	check_origin(rn, dp_reader_header(rn->r));
	if (so)
		chunk_transactional_id(rn, so);
	format_init(&rn->fmt, rn->m, dp_reader_header(rn->r));
	dp_reader_want(rn->r, rn->fmt.scan_names, rn->fmt.nscan);
	rn->started = 1;
	if (so) {
		rn->sink = sink_open(rn->m, conn, so);
		sink_set_headers(rn->sink, rn->fmt.headers, rn->fmt.nheaders);
		progress_set_delivered(&rn->progress, sink_delivered_counter(rn->sink));
	}
	progress_phase(&rn->progress, PHASE_PUBLISHING);
}

static void
publish(struct run *rn, const struct dp_conn *conn, struct sink_options *so)
{
	int got;
	while ((got = dp_reader_next(rn->r)) > 0) {
		size_t len;
		const char *line = dp_reader_line(rn->r, &len);
		if (dp_reader_kind(rn->r) == DP_LINE_ROW) {
			handle_row(rn, line, len);
			continue;
		}
		const char *name = dp_reader_control_name(rn->r);
		if (rn->chg.pending)
			run_fail(rn, DP_EXIT_STREAM,
			         "stdin:%llu: a change message must be followed by its row, not by %s",
			         dp_reader_lineno(rn->r), name);
		if (!strcmp(name, "change")) {
			char err[256];
			if (change_read(dp_reader_control(rn->r), &rn->chg, err, sizeof err) < 0)
				run_fail(rn, DP_EXIT_STREAM, "stdin:%llu: %s", dp_reader_lineno(rn->r), err);
		} else if (!strcmp(name, "header")) {
			write_line(rn, line, len);
			start(rn, conn, so);
		} else if (!strcmp(name, "delete")) {
			handle_delete(rn, line, len);
		} else if (!strcmp(name, "end")) {
			rn->end_line = dp_xstrndup(line, len);
		} else {
			write_line(rn, line, len); /* not ours: passed through in place */
			json_t *body = json_array_get(dp_reader_control(rn->r), 1);
			rn->saw_checks |= !strcmp(name, "checks");
			if (!strcmp(name, "checks") && json_is_false(json_object_get(body, "passed"))) {
				rn->checks_failed = 1;
				rn->idle = json_is_true(json_object_get(body, "idle"));
			}
		}
		if (dp_interrupted)
			run_fail(rn, DP_EXIT_INTERRUPTED, "interrupted at stdin line %llu", dp_reader_lineno(rn->r));
	}
	if (got < 0) {
		int code = dp_reader_error_code(rn->r);
		run_fail(rn, code, "%s%s", dp_reader_error(rn->r),
		         code == DP_EXIT_STREAM ? "; the run is incomplete and must not be committed" : "");
	}
}

/* No check stage ran (dp_manifest_check_stage: only min_rows and max_rows
 * are configured): they are decided here from the rows read, with the
 * functions dpone-check uses, and the checks message written as it would. */
static void
decide_count_checks(struct run *rn)
{
	if (rn->saw_checks || dp_manifest_check_stage(rn->m) || rn->m->quality == DP_QUALITY_OFF ||
	    !json_array_size(dp_manifest_get(rn->m, "quality.checks")))
		return;
	int passed, idle;
	json_t *end = rn->end_line ? json_loads(rn->end_line, 0, NULL) : NULL;
	json_t *counted = json_object_get(json_array_get(end, 1), "source_rows");
	long long source_rows = json_is_integer(counted) ? (long long)json_integer_value(counted) : -1;
	json_decref(end);
	json_t *msg = json_pack("[s, o]", "checks",
	                        dp_rows_checks_message(rn->m, rn->rows, source_rows, rn->quiet, &passed, &idle));
	char *line = json_dumps(msg, JSON_COMPACT);
	write_line(rn, line, strlen(line)); /* into the commit record too */
	free(line);
	json_decref(msg);
	rn->checks_failed = !passed;
	rn->idle = idle;
}

static void
finish(struct run *rn)
{
	decide_count_checks(rn);
	progress_phase(&rn->progress, PHASE_FLUSHING);
	if (rn->sink && sink_flush(rn->sink) < 0)
		run_fail(rn, dp_interrupted ? DP_EXIT_INTERRUPTED : DP_EXIT_SINK, "%s",
		         sink_error(rn->sink) ? sink_error(rn->sink) : "a message was not delivered");
	/* Checks decided before the data is visible keep it invisible. */
	if (rn->checks_failed && rn->idle && !rn->messages)
		run_fail(rn, DP_EXIT_IDLE, "nothing new (no rows; min_rows wants some): nothing was published");
	if (rn->checks_failed)
		run_fail(rn, DP_EXIT_QUALITY, "the stream's quality checks failed%s",
		         rn->m->delivery == DP_EXACTLY_ONCE ? "; nothing becomes visible to read_committed consumers"
		         : !rn->messages                    ? "; nothing was published, and state does not advance"
		                                            : "; the rows were published (delivery is not "
		                                              "transactional) but state does not advance");
	/* The summary (with the offsets read back) is made, and the commit
	 * record prepared with it, before the commit: once the transaction is
	 * committed the rows are visible, and as little as possible may stand
	 * between that and the record of it. */
	int transactional = rn->sink && rn->m->delivery == DP_EXACTLY_ONCE;
	json_t *summary = run_summary(rn);
	if (transactional)
		json_object_set_new(summary, "transaction", json_string("committed")); /* what the record will say */
	record_prepare(rn, summary);
	if (rn->sink && sink_commit(rn->sink) < 0) {
		record_drop(rn);
		json_decref(summary);
		run_fail(rn, DP_EXIT_SINK, "%s", sink_error(rn->sink));
	}
	record_publish(rn);
	if (transactional) {
		/* A broker may leave an open transaction's records out of the end
		 * offsets (the mock cluster did, once in 200 chaos runs): then
		 * they are read back again, now that the transaction is committed,
		 * and the record says so. */
		json_t *appended = json_object_get(summary, "topic_appended");
		if (!appended || json_integer_value(appended) < (json_int_t)sink_delivered(rn->sink)) {
			json_decref(summary);
			summary = run_summary(rn);
			if (rn->record_path)
				record_write(rn, rn->record_path, summary);
		}
	}
	progress_phase(&rn->progress, PHASE_DONE);
	progress_stop(&rn->progress, 1);
	rn->record_path = NULL; /* what follows on stdout is in the record */
	if (dp_writer_control(rn->out, "delivery", summary) < 0)
		run_fail(rn, DP_EXIT_FAILURE, "%s", dp_writer_error(rn->out));
	write_line(rn, rn->end_line, strlen(rn->end_line));
	if (dp_writer_close(rn->out) < 0)
		dp_die(DP_EXIT_FAILURE, "stdout: write error");
	rn->out = NULL;
}

static char *
default_transactional_id(const struct dp_manifest *m)
{
	const char *id = dp_manifest_str(m, "sink.options.delivery.transactional_id");
	return id ? dp_xstrdup(id) : dp_strfmt("dpone.%s", dp_manifest_str(m, "name"));
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {{"dry-run", no_argument, NULL, OPT_DRY_RUN},
	                                      {"drain-timeout", required_argument, NULL, OPT_DRAIN},
	                                      {"transactional-id", required_argument, NULL, OPT_TXN_ID},
	                                      {"check", no_argument, NULL, OPT_CHECK},
	                                      {"create-topic", required_argument, NULL, OPT_CREATE_TOPIC},
	                                      {"commit-record", required_argument, NULL, OPT_COMMIT_RECORD},
	                                      {"force", no_argument, NULL, OPT_FORCE},
	                                      {"progress", required_argument, NULL, OPT_PROGRESS},
	                                      {NULL, 0, NULL, 0}};
	struct options o = {.drain_timeout = 10, .progress = -1};
	struct dp_cli cli;
	dp_cli_parse_ex(argc, argv, usage_text, 0, extra, handle_option, &o, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	const char *topic = dp_manifest_str(m, "sink.topic");
	if (!topic)
		topic = dp_manifest_str(m, "sink.options.topic");
	if (!topic)
		dp_die(DP_EXIT_USAGE, "%s: sink.topic: missing (the topic to produce to)", cli.manifest_path);
	struct dp_conn conn;
	dp_cli_resolve(m, "sink", "kafka", &conn);
	if (o.create_topic) {
		json_error_t jerr;
		json_t *design = json_loads(o.create_topic, 0, &jerr);
		if (!json_is_object(design))
			dp_die(DP_EXIT_USAGE, "--create-topic: not a JSON object: %s", jerr.text);
		int code = sink_create_designed(m, &conn, topic, design);
		json_decref(design);
		dp_conn_free(&conn);
		dp_manifest_free(m);
		dp_exit_flushing_stdout(code);
	}
	if (o.check) {
		int code;
		json_t *probe = sink_probe(m, &conn, topic, &code);
		char *text = json_dumps(probe, JSON_COMPACT);
		puts(text);
		free(text);
		json_decref(probe);
		dp_conn_free(&conn);
		dp_manifest_free(m);
		dp_exit_flushing_stdout(code);
	}
	dp_catch_interrupts();

	char *txn_id = o.transactional_id ? dp_xstrdup(o.transactional_id) : default_transactional_id(m);
	json_t *flush_timeout = dp_manifest_get(m, "sink.options.delivery.flush_timeout");
	struct sink_options so = {.topic = topic,
	                          .transactional = m->delivery == DP_EXACTLY_ONCE,
	                          .transactional_id = txn_id,
	                          .default_id = !o.transactional_id,
	                          .stall_timeout = flush_timeout ? json_number_value(flush_timeout) : 0,
	                          .drain_timeout = o.drain_timeout,
	                          .quiet = cli.quiet};
	struct run rn = {.m = m,
	                 .start = dp_now(),
	                 .quiet = cli.quiet,
	                 .force = o.force,
	                 .hashing = dp_manifest_has_check(m, DP_CHECK_HASH),
	                 .max_message_bytes =
	                         (size_t)dp_manifest_int(m, "sink.options.delivery.max_message_bytes", 1000000),
	                 .record_path = o.dry_run ? NULL : o.commit_record};
	if (rn.record_path)
		rn.prepared_path = dp_strfmt("%s.prepared", rn.record_path);
	int in = 0;
	char **names = NULL; /* the unique key for duplicate_policy; strings borrowed from m */
	if (m->strategy == DP_INCREMENTAL_MERGE) {
		json_t *uk = dp_manifest_get(m, "sink.strategy.unique_key");
		size_t n = json_array_size(uk);
		names = dp_xcalloc(n + 1, sizeof *names);
		for (size_t i = 0; i < n; i++)
			names[i] = (char *)json_string_value(json_array_get(uk, i));
		rn.dedupe =
			dedupe_spool(0, dup_policy_of(dp_manifest_str(m, "sink.strategy.duplicate_policy")), names, n);
		in = dedupe_fd(rn.dedupe);
	}
	rn.r = dp_reader_open(in, "stdin", DP_READ_VALIDATE_ROWS);
	rn.out = dp_writer_open(1, "stdout", 0);
	if (o.progress < 0)
		o.progress = !cli.quiet && isatty(2) ? PROGRESS_TTY : PROGRESS_NONE;
	progress_start(&rn.progress, (enum progress_mode)o.progress, &rn.rows, NULL);
	if (conn.brokers)
		snprintf(rn.bootstrap, sizeof rn.bootstrap, "%.*s", (int)strcspn(conn.brokers, ","), conn.brokers);
	publish(&rn, &conn, o.dry_run ? NULL : &so);
	finish(&rn);

	if (!cli.quiet && o.progress == PROGRESS_NONE)
		dp_warn("%llu rows, %llu messages %s to %s", rn.rows, rn.messages,
		        rn.sink ? "delivered" : "built (dry run)", topic);
	sink_close(rn.sink);
	dedupe_free(rn.dedupe);
	free(names);
	dp_reader_close(rn.r);
	format_free(&rn.fmt);
	msgbufs_free(&rn.bufs);
	free(rn.chg.before.p);
	free(rn.end_line);
	free(rn.record.p);
	free(rn.prepared_path);
	free(txn_id);
	free(rn.chunk_txn_id);
	dp_conn_free(&conn);
	dp_manifest_free(m);
	return 0;
}
