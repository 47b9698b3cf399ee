/*
 * dpone-check: the manifest's quality checks, as a stage of the pipeline.
 * It copies the stream from stdin to stdout unchanged and, just before the
 * end message, writes ["checks", {...}] with each check's result, so that
 * the checks are decided before the data is visible wherever that is
 * possible: dpone-produce aborts its exactly_once transaction and
 * dpone-state refuses to commit when they did not pass. Memory stays
 * bounded: counters per check, and a key set for unique.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* As laid out on the terminal (and in the man page's SYNOPSIS). */
/* clang-format off */
static const char usage_text[] =
	"usage: dpone-check [-hqV] [--registry FILE] [--print-manifest] MANIFEST < STREAM\n"
	"Run the manifest's quality checks on the stream, passing it through.\n"
	DP_CLI_COMMON_HELP
	"See dpone-check(1); exit codes are listed there.\n";
/* clang-format on */

/* One check of the manifest and what the stream showed it. */
struct check {
	json_t *spec; /* the manifest's entry (borrowed) */
	enum dp_check_type kind;
	char **columns; /* the columns it looks at (strings borrowed) */
	size_t ncolumns;
	int scan_at; /* where its columns start in the run's scan list */
	unsigned long long violations;
	struct dp_keyset *seen; /* unique */
	struct dp_buf sample;   /* a violating key or column, for the report */
	struct dp_buf max;      /* freshness: the latest value seen (text) */
};

/* dpone-extract --count for the run's boundary, running beside the stream. */
struct source_count {
	pid_t pid;           /* 0: not started */
	int fd;              /* its stdout */
	const char *why_not; /* static: why it was not started */
};

struct run {
	const struct dp_manifest *m;
	const char *manifest_path;
	struct source_count count;
	struct check *checks;
	size_t nchecks;
	char **scan_names; /* every column any check reads, in scan order */
	size_t nscan;
	unsigned long long rows;
	int hashing;               /* a hash_reconciliation check is configured */
	struct contract *contract; /* the type contract, or NULL */
	const json_t *header;      /* borrowed from the reader */
	uint64_t row_hash;         /* sum of the rows' SHA-256 prefixes */
	struct dp_buf id;
};

/* The check's columns: columns, column, or what its kind defaults to. */
static void
check_columns(struct run *rn, struct check *c, json_t *header)
{
	json_t *list = json_object_get(c->spec, "columns");
	json_t *one = json_object_get(c->spec, "column");
	json_t *fallback = NULL;
	if (c->kind == DP_CHECK_UNIQUE)
		fallback = json_array_size(dp_manifest_get(rn->m, "sink.strategy.unique_key"))
		                   ? dp_manifest_get(rn->m, "sink.strategy.unique_key")
		                   : json_object_get(header, "key");
	else if (c->kind == DP_CHECK_FRESHNESS)
		fallback = json_object_get(json_object_get(header, "boundary"), "column");
	if (!json_array_size(list) && one)
		list = json_pack("[O]", one);
	else if (!json_array_size(list) && json_is_string(fallback))
		list = json_pack("[O]", fallback);
	else
		json_incref(list = json_array_size(list) ? list : fallback);
	c->ncolumns = json_array_size(list);
	c->columns = dp_xcalloc(c->ncolumns + 1, sizeof *c->columns);
	for (size_t i = 0; i < c->ncolumns; i++)
		c->columns[i] = dp_xstrdup(json_string_value(json_array_get(list, i)));
	json_decref(list);
	if ((c->kind == DP_CHECK_UNIQUE || c->kind == DP_CHECK_FRESHNESS || c->kind == DP_CHECK_NOT_NULL) &&
	    !c->ncolumns)
		dp_die(DP_EXIT_USAGE, "%s check: no column to check (give column or columns)",
		       json_string_value(json_object_get(c->spec, "type")));
}

/* Count the source rows of the boundary the stream was extracted with:
 * the same manifest, from the same watermark to the same high one. */
static void
start_count(struct run *rn, json_t *boundary)
{
	if (json_object_get(boundary, "chunk")) {
		rn->count.why_not = "a chunk of the boundary is not counted on its own";
		return;
	}
	char *from = NULL, *to = NULL;
	const char *kind = json_string_value(json_object_get(boundary, "kind"));
	if (kind && !strcmp(kind, "incremental")) {
		json_t *f = json_object_get(boundary, "from"), *h = json_object_get(boundary, "high");
		from = f ? json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
		to = h && !json_is_null(h) ? json_dumps(h, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	}
	char *argv[10];
	int n = 0;
	argv[n++] = "dpone-extract";
	argv[n++] = "-q";
	argv[n++] = "--count";
	if (from)
		argv[n++] = "--from", argv[n++] = from;
	if (to)
		argv[n++] = "--to", argv[n++] = to;
	argv[n++] = (char *)rn->manifest_path;
	argv[n] = NULL;
	rn->count.fd = dp_spawn_reader(argv, &rn->count.pid);
	if (rn->count.fd < 0) {
		rn->count.pid = 0;
		rn->count.why_not = "dpone-extract could not be started";
	}
	free(from);
	free(to);
}

/* The source count, or -1 with why in *why (static). */
static long long
finish_count(struct run *rn, const char **why)
{
	if (!rn->count.pid) {
		*why = rn->count.why_not ? rn->count.why_not : "not started";
		return -1;
	}
	char buf[64];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof buf - 1 && (n = read(rn->count.fd, buf + got, sizeof buf - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(rn->count.fd);
	int status = dp_spawn_wait(rn->count.pid);
	rn->count.pid = 0;
	long long count;
	buf[strcspn(buf, "\n")] = '\0';
	if (status || dp_parse_ll(buf, &count) < 0) {
		*why = "dpone-extract --count failed (its message is above)";
		return -1;
	}
	return count;
}

static void
plan_checks(struct run *rn, json_t *header)
{
	json_t *specs = dp_manifest_get(rn->m, "quality.checks");
	if (rn->m->quality == DP_QUALITY_OFF)
		specs = NULL;
	rn->nchecks = json_array_size(specs);
	rn->checks = dp_xcalloc(rn->nchecks + 1, sizeof *rn->checks);
	size_t total = 0;
	for (size_t i = 0; i < rn->nchecks; i++) {
		struct check *c = &rn->checks[i];
		c->spec = json_array_get(specs, i);
		c->kind = (enum dp_check_type)dp_check_type(json_string_value(json_object_get(c->spec, "type")));
		check_columns(rn, c, header);
		c->scan_at = (int)total;
		total += c->ncolumns;
		if (c->kind == DP_CHECK_UNIQUE)
			c->seen = dp_keyset_new();
	}
	rn->scan_names = dp_xcalloc(total + 1, sizeof *rn->scan_names);
	for (size_t i = 0; i < rn->nchecks; i++)
		for (size_t j = 0; j < rn->checks[i].ncolumns; j++)
			rn->scan_names[rn->nscan++] = rn->checks[i].columns[j];
}

static int
is_null(struct dp_span v)
{
	return !v.p || (v.n == 4 && !memcmp(v.p, "null", 4));
}

static void
note_sample(struct check *c, const char *text, size_t n)
{
	if (!c->sample.len)
		dp_buf_add(&c->sample, text, n);
}

static void
check_row(struct run *rn, struct check *c, const char *line, size_t len, const struct dp_span *sp,
          unsigned long long lineno)
{
	const struct dp_span *v = sp + c->scan_at;
	char err[256];
	switch (c->kind) {
	case DP_CHECK_NOT_NULL:
		for (size_t i = 0; i < c->ncolumns; i++)
			if (is_null(v[i])) {
				c->violations++;
				note_sample(c, c->columns[i], strlen(c->columns[i]));
			}
		break;
	case DP_CHECK_UNIQUE:
		if (dp_key_identity(c->columns, c->ncolumns, line, len, &rn->id, err, sizeof err) < 0)
			dp_die(DP_EXIT_STREAM, "stdin:%llu: unique check: %s", lineno, err);
		if (dp_keyset_put(c->seen, rn->id.p, rn->id.len, (uint32_t)(lineno > UINT32_MAX ? UINT32_MAX : lineno),
		                  0)) {
			c->violations++;
			note_sample(c, rn->id.p, rn->id.len);
		}
		break;
	case DP_CHECK_FRESHNESS:
		if (!is_null(v[0])) {
			/* Timestamps are written fixed-width: text order is time order. */
			rn->id.len = 0;
			dp_buf_value_text(&rn->id, v[0]);
			if (!c->max.len || (rn->id.len == c->max.len && memcmp(rn->id.p, c->max.p, rn->id.len) > 0) ||
			    rn->id.len > c->max.len) {
				c->max.len = 0;
				dp_buf_add(&c->max, rn->id.p, rn->id.len);
			}
		}
		break;
	default: break;
	}
}

/* sp: the values of rn->scan_names in the row, as the reader found them. */
static void
take_row(struct run *rn, const char *line, size_t len, const struct dp_span *sp, unsigned long long lineno)
{
	rn->rows++;
	if (rn->hashing) /* a sum: the same whatever the order of the rows */
		rn->row_hash += dp_row_hash(line, len);
	for (size_t i = 0; i < rn->nchecks; i++)
		check_row(rn, &rn->checks[i], line, len, sp, lineno);
}

/* ---- deciding ---- */

/* Violations allowed: tolerance {mode, value}, tolerance_pct, or none. */
/* Seconds since a timestamp (see dp_timestamp_utc), or -1. */
static long long
age_of(const char *ts)
{
	long long t;
	return dp_timestamp_utc(ts, &t) < 0 ? -1 : (long long)time(NULL) - t;
}

/* The verdict of one check: "pass", "fail" or "deferred", with what was seen. */
static json_t *
decide(struct run *rn, struct check *c)
{
	json_t *spec = c->spec;
	json_t *r = dp_check_result(spec);
	int ok = 1;
	char *why = NULL;
	switch (c->kind) {
	case DP_CHECK_MIN_ROWS:
	case DP_CHECK_MAX_ROWS: ok = dp_rows_check(c->kind, spec, rn->rows, &why); break;
	case DP_CHECK_NOT_NULL:
	case DP_CHECK_UNIQUE:
		ok = c->violations <= dp_check_allowed(spec, rn->rows);
		why = dp_strfmt("%llu %s in %llu rows (%g allowed)%s%.*s", c->violations,
		                c->kind == DP_CHECK_UNIQUE ? "duplicate keys" : "nulls", rn->rows,
		                dp_check_allowed(spec, rn->rows),
		                c->sample.len ? c->kind == DP_CHECK_UNIQUE ? ", first duplicate " : ", first in " : "",
		                (int)c->sample.len, c->sample.p ? c->sample.p : "");
		json_object_set_new(r, "violations", json_integer((json_int_t)c->violations));
		break;
	case DP_CHECK_FRESHNESS: {
		long long max_age = dp_duration_seconds(json_string_value(json_object_get(spec, "max_age")));
		char *latest = c->max.len ? dp_xstrndup(c->max.p, c->max.len) : NULL;
		long long age = latest ? age_of(latest) : -1;
		ok = latest && age >= -86400 && max_age >= 0 && age <= max_age;
		why = latest ? dp_strfmt("latest %s %s is %lld s old, at most %lld s wanted", c->columns[0], latest,
		                         age, max_age)
		             : dp_strfmt("no value of %s in this run", c->columns[0]);
		free(latest);
		break;
	}
	case DP_CHECK_HASH: {
		char hex[17];
		snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rn->row_hash);
		json_object_set_new(r, "row_hash", json_string(hex));
		json_object_set_new(r, "status", json_string("deferred"));
		json_object_set_new(r, "detail", json_string("compared with what dpone-produce published, at commit"));
		return r;
	}
	case DP_CHECK_SOURCE_COUNT: {
		const char *fail_why = NULL;
		long long source = finish_count(rn, &fail_why);
		if (source < 0) {
			ok = 0;
			why = dp_strfmt("the source could not be counted: %s", fail_why);
			break;
		}
		ok = dp_source_count_check(spec, source, rn->rows, &why);
		json_object_set_new(r, "source_rows", json_integer(source));
		break;
	}
	}
	dp_check_verdict(rn->m, r, ok, why);
	return r;
}

/* The checks message (libcommon's dp_checks_message, as dpone-produce
 * builds it when no check stage runs); sets *passed and *idle. */
static json_t *
verdict(struct run *rn, int *passed, int *idle, int quiet)
{
	json_t *results = json_array();
	for (size_t i = 0; i < rn->nchecks; i++)
		json_array_append_new(results, decide(rn, &rn->checks[i]));
	int contract_failed;
	json_t *contract = contract_result(rn->contract, rn->header, &contract_failed);
	return dp_checks_message(rn->m, results, contract, contract_failed, rn->rows, quiet, passed, idle);
}

static void
run_free(struct run *rn)
{
	for (size_t i = 0; i < rn->nchecks; i++) {
		struct check *c = &rn->checks[i];
		for (size_t j = 0; j < c->ncolumns; j++)
			free(c->columns[j]);
		free(c->columns);
		dp_keyset_free(c->seen);
		free(c->sample.p);
		free(c->max.p);
	}
	free(rn->checks);
	free(rn->scan_names);
	free(rn->id.p);
}

int
main(int argc, char **argv)
{
	struct dp_cli cli;
	dp_cli_parse(argc, argv, usage_text, 0, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	dp_catch_interrupts();
	struct run rn = {.m = m,
	                 .manifest_path = cli.manifest_path,
	                 .hashing = dp_manifest_has_check(m, DP_CHECK_HASH),
	                 .contract = contract_load(m)};
	struct dp_evolution ev = {0};
	dp_evolve_prepare(m, cli.manifest_path, &ev);
	struct dp_reader *r = dp_reader_open(0, "stdin", DP_READ_VALIDATE_ROWS);
	struct dp_writer *w = dp_writer_open(1, "stdout", 0);
	int got, passed = 1, idle = 0;
	struct dp_buf renamed = {0}, nulled = {0};
	while ((got = dp_reader_next(r)) > 0) {
		size_t len;
		const char *line = dp_reader_line(r, &len);
		if (dp_reader_kind(r) == DP_LINE_ROW) {
			take_row(&rn, line, len, dp_reader_members(r), dp_reader_lineno(r));
			if (contract_row(rn.contract, line, len, &nulled)) {
				line = nulled.p;
				len = nulled.len;
			}
			if (dp_evolve_row(&ev, line, len, &renamed)) {
				line = renamed.p;
				len = renamed.len;
			}
		} else if (!strcmp(dp_reader_control_name(r), "header")) {
			/* Decided before any row passes: a breaking change stops here. */
			json_t *header = dp_evolve_header(m, dp_reader_header(r), &ev);
			plan_checks(&rn, dp_reader_header(r));
			dp_reader_want(r, rn.scan_names, rn.nscan);
			rn.header = dp_reader_header(r);
			contract_header(rn.contract, rn.header);
			if (json_object_get(header, "schema_changes")) {
				if (dp_writer_control(w, "header", header) < 0)
					dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
				continue;
			}
			json_decref(header);
		} else if (!strcmp(dp_reader_control_name(r), "end")) {
			/* Counted after the rows were read: rows that arrived late
			 * inside the boundary show as a difference. */
			for (size_t i = 0; i < rn.nchecks; i++)
				if (rn.checks[i].kind == DP_CHECK_SOURCE_COUNT && !rn.count.pid && !rn.count.why_not)
					start_count(&rn, json_object_get(dp_reader_header(r), "boundary"));
			if (dp_writer_control(w, "checks", verdict(&rn, &passed, &idle, cli.quiet)) < 0)
				dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
		}
		if (dp_writer_line(w, line, len) < 0)
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
	}
	if (got < 0)
		dp_die(dp_reader_error_code(r), "%s; the stream stops here without checks or end", dp_reader_error(r));
	if (dp_writer_close(w) < 0)
		dp_die(DP_EXIT_FAILURE, "stdout: write error");
	dp_reader_close(r);
	run_free(&rn);
	dp_evolution_free(&ev);
	contract_free(rn.contract);
	free(renamed.p);
	free(nulled.p);
	dp_manifest_free(m);
	if (idle && cli.quiet)
		exit(DP_EXIT_IDLE);
	if (idle)
		dp_die(DP_EXIT_IDLE, "nothing new: no rows, and min_rows wants some; nothing is published and state "
		                     "does not advance (exit 11, idle)");
	if (!passed)
		dp_die(DP_EXIT_QUALITY, "quality checks failed (quality.mode fail); state will not advance");
	return 0;
}
