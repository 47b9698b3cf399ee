/*
 * dpone-extract: read the manifest's SQL Server table through FreeTDS
 * db-lib and write it as a dpone stream on stdout: a header with the
 * columns and the planned boundary, one JSON object per row, and an end
 * message with the row count and the watermark actually seen. A failed or
 * interrupted extract writes no end message, so nothing downstream commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "extract.h"

static const char usage_text[] =
	"usage: dpone-extract [-hqV] [--registry FILE] [--print-manifest] [--from VALUE] [--to VALUE]\n"
	"                     [--chunk I/N] [--count] [--plan] [--check] [--infer] [--sample N] [--run-id ID]\n"
	"                     [--missing-keys] MANIFEST\n"
	"Write the rows of the manifest's SQL Server table as a dpone stream on stdout.\n"
	DP_CLI_COMMON_HELP
	"      --from VALUE    exclusive low watermark of an incremental run (else: from the start)\n"
	"      --to VALUE      inclusive high watermark (else: the column's maximum, read once)\n"
	"      --chunk I/N     only the I-th of N disjoint ranges of the boundary\n"
	"      --count         print the number of rows in the boundary and exit\n"
	"      --plan          print the boundary, the SQL and the row count as JSON and exit\n"
	"      --check         log in and read the table's columns; print JSON and exit\n"
	"      --infer         profile a sample of the table; print a type contract (YAML) and exit\n"
	"      --sample N      rows --infer reads (10000)\n"
	"      --run-id ID     the run id written into the stream header\n"
	"      --missing-keys  snapshot_reconciliation: print every key a run would find deleted and exit\n"
	"See dpone-extract(1); exit codes are listed there.\n";

enum { OPT_FROM = OPT_EXTRA, OPT_TO, OPT_CHUNK, OPT_COUNT, OPT_PLAN, OPT_CHECK, OPT_INFER, OPT_SAMPLE, OPT_RUN_ID,
       OPT_MISSING_KEYS };

struct options {
	const char *from, *to, *run_id;
	int chunk_i, chunk_n;
	int count, plan, check, infer, missing_keys;
	long long sample;
};


static int
handle_option(int id, const char *arg, void *ctx)
{
	struct options *o = ctx;
	switch (id) {
	case OPT_FROM: o->from = arg; return 0;
	case OPT_TO: o->to = arg; return 0;
	case OPT_RUN_ID: o->run_id = arg; return 0;
	case OPT_COUNT: o->count = 1; return 0;
	case OPT_PLAN: o->plan = 1; return 0;
	case OPT_CHECK: o->check = 1; return 0;
	case OPT_INFER: o->infer = 1; return 0;
	case OPT_MISSING_KEYS: o->missing_keys = 1; return 0;
	case OPT_SAMPLE:
		if (dp_parse_ll(arg, &o->sample) < 0 || o->sample < 1) {
			dp_warn("--sample %s: expected a number of rows", arg);
			return -1;
		}
		return 0;
	case OPT_CHUNK:
		if (sscanf(arg, "%d/%d", &o->chunk_i, &o->chunk_n) != 2 || o->chunk_n < 1 || o->chunk_i < 1 ||
		    o->chunk_i > o->chunk_n) {
			dp_warn("--chunk %s: expected I/N with 1 <= I <= N", arg);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* A watermark given on the command line, as JSON for the column's type. */
static char *
option_json(const struct column *c, const char *text)
{
	if (!strcmp(c->logical, "integer") || !strcmp(c->logical, "boolean") || text[0] == '"')
		return dp_xstrdup(text);
	json_t *s = json_string(text);
	if (!s)
		dp_die(DP_EXIT_USAGE, "watermark %s is not valid UTF-8", text);
	char *out = json_dumps(s, JSON_ENCODE_ANY);
	json_decref(s);
	return out;
}

/* low minus a lookback, as JSON of the column's type; NULL if the lookback
 * does not fit the type. Temporal values are moved in the text itself,
 * keeping every fractional digit. */
static char *
apply_lookback(const struct column *c, const char *low_json, const char *lookback)
{
	char *end;
	long long amount = strtoll(lookback, &end, 10);
	if (end == lookback || amount < 0)
		return NULL;
	if (!strcmp(c->logical, "integer"))
		return *end ? NULL : dp_strfmt("%lld", strtoll(low_json, NULL, 10) - amount);
	long long span = dp_duration_seconds(lookback), low_secs;
	const char *t = low_json + 1; /* past the quote: YYYY-MM-DDTHH:MM:SS[.fff...] */
	if (span < 0 || strcmp(c->logical, "timestamp") || strlen(low_json) < 21 || dp_timestamp_utc(t, &low_secs) < 0)
		return NULL;
	struct tm tm;
	time_t secs = (time_t)(low_secs - span);
	gmtime_r(&secs, &tm);
	const char *frac = strchr(t + 19, '.');
	size_t fraclen = frac ? strcspn(frac, "\"") : 0;
	return dp_strfmt("\"%04d-%02d-%02dT%02d:%02d:%02d%.*s\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	                 tm.tm_min, tm.tm_sec, (int)fraclen, frac ? frac : "");
}

struct plan {
	char *where;       /* the boundary predicate, or NULL for the whole table */
	char *order;       /* ORDER BY list */
	json_t *boundary;  /* the header's boundary object */
};

/* Narrow the plan's predicate by one more condition, printf-style. */
static void __attribute__((format(printf, 2, 3)))
plan_and(struct plan *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cond = dp_vstrfmt(fmt, ap);
	va_end(ap);
	char *where = p->where ? dp_strfmt("%s AND (%s)", p->where, cond) : dp_strfmt("(%s)", cond);
	free(cond);
	free(p->where);
	p->where = where;
}

/* SELECT what FROM table [WHERE where] [ORDER BY order]; the caller frees it. */
static char *
select_sql(const char *what, const char *table, const char *where, const char *order)
{
	return dp_strfmt("SELECT %s FROM %s%s%s%s%s", what, table, where ? " WHERE " : "", where ? where : "",
	                 order ? " ORDER BY " : "", order ? order : "");
}

/* fn(c) over the planned rows (MIN, MAX), as JSON; the caller frees it. */
static char *
plan_aggregate(struct source *s, const struct plan *p, const char *fn, const struct column *c,
               const struct encoding *enc)
{
	char *col = quote_name(c->name), *table = source_table_name(s);
	char *what = dp_strfmt("%s(%s)", fn, col);
	char *sql = select_sql(what, table, p->where, NULL);
	char *json = source_scalar_json(s, sql, c, enc);
	free(sql);
	free(what);
	free(table);
	free(col);
	return json;
}

static char *
literal_or_die(const struct column *c, const char *json, const char *what)
{
	char *lit = sql_literal(c, json);
	if (!lit)
		dp_die(DP_EXIT_USAGE, "%s %s is not a value of column %s (%s)", what, json, c->name, c->sql_type);
	return lit;
}

/* The extract boundary: incremental (low, high], a window, or everything. */
static void
plan_boundary(struct source *s, const struct dp_manifest *m, const struct options *o, const struct encoding *enc,
              struct plan *p)
{
	const char *mode = dp_manifest_str(m, "sink.strategy.mode");
	const char *predicate = dp_manifest_str(m, "source.options.source_custom_predicate");
	p->boundary = json_object();
	p->where = predicate ? dp_strfmt("(%s)", predicate) : NULL;
	if (predicate)
		json_object_set_new(p->boundary, "predicate", json_string(predicate));
	int incremental = s->inc >= 0 && dp_manifest_incremental(m);
	json_t *window = dp_manifest_get(m, "sink.strategy.window");
	if ((o->from || o->to) && !incremental)
		dp_die(DP_EXIT_USAGE, "--from and --to bound an incremental run: strategy %s%s reads no incremental boundary",
		       mode, s->inc >= 0 ? "" : " without source.options.incremental_column");
	if (incremental) {
		const struct column *c = &s->cols[s->inc];
		char *col = quote_name(c->name);
		char *high;
		if (o->to) {
			high = option_json(c, o->to);
		} else {
			/* The high watermark is read once, before the rows: rows
			 * committed while the run reads are left for the next run. */
			high = plan_aggregate(s, p, "MAX", c, enc);
		}
		json_object_set_new(p->boundary, "kind", json_string("incremental"));
		json_object_set_new(p->boundary, "column", json_string(c->name));
		if (o->from) {
			char *low = option_json(c, o->from);
			/* Where the run starts (the committed watermark), before any
			 * lookback: dpone-state commits only if state is still there. */
			json_object_set_new(p->boundary, "from", json_loads(low, JSON_DECODE_ANY, NULL));
			const char *lookback = dp_manifest_str(m, "source.options.lookback");
			if (lookback) {
				/* Re-read a late-arriving window before the watermark. */
				char *earlier = apply_lookback(c, low, lookback);
				if (!earlier) {
					char where[1024];
					dp_die(DP_EXIT_USAGE, "%s'%s' does not apply to %s (%s): use a number for integer columns, "
					       "or 30s, 15m, 2h, 1d for date and time columns",
					       dp_manifest_where(m, "source.options.lookback", where, sizeof where), lookback, c->name,
					       c->sql_type);
				}
				json_object_set_new(p->boundary, "lookback", json_string(lookback));
				free(low);
				low = earlier;
			}
			char *lit = literal_or_die(c, low, "--from");
			plan_and(p, "%s > %s", col, lit);
			json_object_set_new(p->boundary, "low", json_loads(low, JSON_DECODE_ANY, NULL));
			free(lit);
			free(low);
		}
		if (!strcmp(high, "null")) {
			/* An empty table: nothing is below a maximum that does not exist. */
			plan_and(p, "1 = 0");
		} else {
			char *lit = literal_or_die(c, high, "--to");
			plan_and(p, "%s <= %s", col, lit);
			free(lit);
		}
		json_object_set_new(p->boundary, "high", json_loads(high, JSON_DECODE_ANY, NULL));
		free(high);
		p->order = dp_xstrdup(col);
		free(col);
	} else if (!strcmp(mode, "replace") && window) {
		const char *name = json_string_value(json_object_get(window, "column"));
		int k = source_column(s, name);
		char where[1024];
		if (k < 0)
			dp_die(DP_EXIT_SOURCE, "%scolumn '%s' is not in %s.%s",
			       dp_manifest_where(m, "sink.strategy.window.column", where, sizeof where), name, s->schema, s->table);
		char *col = quote_name(s->cols[k].name);
		json_object_set_new(p->boundary, "kind", json_string("window"));
		json_object_set_new(p->boundary, "column", json_string(s->cols[k].name));
		const char *ends[2] = {"from", "to"};
		for (int e = 0; e < 2; e++) {
			const char *v = json_string_value(json_object_get(window, ends[e]));
			if (!v)
				continue;
			char *js = option_json(&s->cols[k], v);
			char *lit = literal_or_die(&s->cols[k], js, ends[e]);
			plan_and(p, "%s %s %s", col, e ? "<" : ">=", lit);
			json_object_set_new(p->boundary, e ? "high" : "low", json_loads(js, JSON_DECODE_ANY, NULL));
			free(lit);
			free(js);
		}
		p->order = col;
	} else {
		json_object_set_new(p->boundary, "kind", json_string("full"));
	}
	/* Then the key, so that the order (and with it the stream) is stable. */
	for (int k = 0; k < s->nkey; k++) {
		char *kc = quote_name(s->cols[s->key[k]].name);
		char *order = p->order ? dp_strfmt("%s, %s", p->order, kc) : dp_xstrdup(kc);
		free(p->order);
		free(kc);
		p->order = order;
	}
}

/* --chunk I/N: split the range of an integer key (or incremental column)
 * into N disjoint parts; NULLs go to the first. */
static void
plan_chunk(struct source *s, const struct options *o, const struct encoding *enc, struct plan *p)
{
	if (!o->chunk_n)
		return;
	int k = -1;
	if (s->nkey > 0 && !strcmp(s->cols[s->key[0]].logical, "integer"))
		k = s->key[0];
	else if (s->inc >= 0 && !strcmp(s->cols[s->inc].logical, "integer"))
		k = s->inc;
	if (k < 0)
		dp_die(DP_EXIT_USAGE, "--chunk needs an integer key or incremental column to split on");
	char *col = quote_name(s->cols[k].name);
	struct encoding as_numbers = *enc;
	as_numbers.bigint_as_string = 0;
	char *lo = plan_aggregate(s, p, "MIN", &s->cols[k], &as_numbers);
	char *hi = plan_aggregate(s, p, "MAX", &s->cols[k], &as_numbers);
	char chunk[32];
	snprintf(chunk, sizeof chunk, "%d/%d", o->chunk_i, o->chunk_n);
	json_object_set_new(p->boundary, "chunk", json_string(chunk));
	if (!strcmp(lo, "null")) {
		if (o->chunk_i == 1)
			plan_and(p, "%s IS NULL", col);
		else
			plan_and(p, "1 = 0");
	} else {
		__int128 min = strtoll(lo, NULL, 10), max = strtoll(hi, NULL, 10);
		__int128 width = (max - min) / o->chunk_n + 1;
		long long from = (long long)(min + width * (o->chunk_i - 1));
		long long to = (long long)(min + width * o->chunk_i);
		char *range = o->chunk_i == o->chunk_n ? dp_strfmt("%s >= %lld", col, from)
		                                       : dp_strfmt("%s >= %lld AND %s < %lld", col, from, col, to);
		if (o->chunk_i == 1)
			plan_and(p, "(%s) OR %s IS NULL", range, col);
		else
			plan_and(p, "%s", range);
		free(range);
	}
	free(lo);
	free(hi);
	free(col);
}

json_t *
header_columns(const struct source *s)
{
	json_t *cols = json_array();
	for (int i = 0; i < s->ncols; i++) {
		const struct column *c = &s->cols[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "name", c->name, "sql_type", c->sql_type, "logical_type",
		                      c->logical, "nullable", c->nullable);
		if (c->precision >= 0)
			json_object_set_new(o, "precision", json_integer(c->precision));
		if (c->scale >= 0)
			json_object_set_new(o, "scale", json_integer(c->scale));
		if (c->max_length != -1 || strstr(c->sql_type, "(max)"))
			json_object_set_new(o, "max_length", json_integer(c->max_length));
		json_array_append_new(cols, o);
	}
	return cols;
}

/* The SELECT that reads the rows; the caller frees it. */
static char *
rows_sql(const struct source *s, const char *table, const struct plan *p)
{
	char *list = dp_xstrdup("");
	for (int i = 0; i < s->ncols; i++) {
		char *q = quote_name(s->cols[i].name);
		char *next = dp_strfmt("%s%s%s", list, i ? ", " : "", q);
		free(q);
		free(list);
		list = next;
	}
	char *sql = select_sql(list, table, p->where, p->order);
	free(list);
	return sql;
}

/* The modes that answer and stop (--check, --infer, --count, --plan):
 * close the connection, free the manifest, exit 0. */
static _Noreturn void
exit_answered(struct source *s, struct dp_manifest *m)
{
	source_free(s);
	dbexit();
	dp_manifest_free(m);
	dp_exit_flushing_stdout(DP_EXIT_OK);
}

/* --check: the login worked and the table is readable; the server's clock
 * for dpone doctor's skew check. Exits. */
static _Noreturn void
print_check(struct source *s, const struct encoding *enc, struct dp_manifest *m)
{
	struct column utc = {.name = "SYSUTCDATETIME()", .data_type = "datetime2", .sql_type = "datetime2(7)",
	                     .logical = "timestamp", .scale = 7};
	char *now = source_scalar_json(s, "SELECT SYSUTCDATETIME()", &utc, enc);
	json_t *keys = json_array();
	for (int k = 0; k < s->nkey; k++)
		json_array_append_new(keys, json_string(s->cols[s->key[k]].name));
	json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:I}", "library", dbversion(), "schema",
		s->schema, "table", s->table, "columns", s->ncols, "key", keys, "server_utc",
		json_loads(now, JSON_DECODE_ANY, NULL), "local_epoch", (json_int_t)time(NULL));
	char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	puts(text);
	free(text);
	free(now);
	json_decref(doc);
	exit_answered(s, m);
}

void
print_plan(const struct source *s, const struct dp_manifest *m, json_t *boundary, const struct encoding *enc,
           const char *sql, const char *count_sql, const char *rows, json_t *reconciliation)
{
	json_t *keys = json_array();
	for (int k = 0; k < s->nkey; k++)
		json_array_append_new(keys, json_string(s->cols[s->key[k]].name));
	json_t *doc = json_pack("{s:{s:s, s:s, s:s}, s:o, s:o, s:O, s:s, s:s, s:o, s:s, s:I, s:{s:s, s:s}}",
		"source", "type", "mssql", "schema", s->schema, "table", s->table, "columns", header_columns(s),
		"key", keys, "boundary", boundary, "sql", sql, "count_sql", count_sql,
		"rows", json_loads(rows, JSON_DECODE_ANY, NULL),
		"export_mode", dp_manifest_str(m, "source.options.export_mode"),
		"batch_size", (json_int_t)dp_manifest_int(m, "source.options.batch_size", 50000),
		"encoding", "bigint", enc->bigint_as_string ? "string" : "number", "binary",
		enc->binary_as_hex ? "hex" : "base64");
	if (reconciliation)
		json_object_set(doc, "reconciliation", reconciliation);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	puts(text);
	free(text);
	json_decref(doc);
}

json_t *
stream_header(const struct source *s, const struct dp_manifest *m, const char *run_id, json_t *boundary,
              const struct encoding *enc)
{
	json_t *keys = json_array();
	for (int k = 0; k < s->nkey; k++)
		json_array_append_new(keys, json_string(s->cols[s->key[k]].name));
	return json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:o, s:{s:s, s:s}}", "protocol",
	                 DP_STREAM_PROTOCOL, "run_id", run_id, "job", dp_manifest_str(m, "name"), "source", "type",
	                 "mssql", "schema", s->schema, "table", s->table, "columns", header_columns(s), "key", keys,
	                 "boundary", boundary, "encoding", "bigint", enc->bigint_as_string ? "string" : "number",
	                 "binary", enc->binary_as_hex ? "hex" : "base64");
}

static char *
new_run_id(void)
{
	time_t now = time(NULL);
	struct tm tm;
	char stamp[32];
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	return dp_strfmt("%s-%04x", stamp, (unsigned)(getpid() ^ (unsigned)clock()) & 0xFFFF);
}

/* What a failed bcp run must not leave behind. */
static struct {
	char *artifact, *dir;
	int temporary; /* dir is a private temporary directory */
	int complete;  /* the artifact holds the whole run and stays (unless temporary) */
} staged;

/* dp_die's cleanup, and the end of a bcp run: a cut run's artifact is not
 * a replayable extract, so it goes too. */
static void
remove_staged(void)
{
	reconcile_remove_staged();
	if (staged.artifact && (staged.temporary || !staged.complete))
		unlink(staged.artifact);
	if (staged.temporary && staged.dir)
		rmdir(staged.dir);
}

/* Where a bcp run is staged: the run's artifact directory, or a private
 * temporary one (staged.temporary) when artifacts are off. The caller
 * frees the path. */
static char *
stage_directory(const struct dp_manifest *m, const char *run_id)
{
	staged.temporary = !json_is_true(dp_manifest_get(m, "observability.artifacts.enabled"));
	if (staged.temporary) {
		const char *tmp = getenv("TMPDIR");
		char *tmpl = dp_strfmt("%s/dpone-extract.123456", tmp && *tmp ? tmp : "/tmp");
		/* mkdtemp wants the template to end in six X. */
		memset(tmpl + strlen(tmpl) - 6, 'X', 6);
		if (!mkdtemp(tmpl))
			dp_die(DP_EXIT_FAILURE, "cannot create a staging directory in %s: %s", tmp && *tmp ? tmp : "/tmp",
			       strerror(errno));
		return tmpl;
	}
	char *dir = dp_strfmt("%s/%s", dp_manifest_str(m, "observability.artifacts.path"), run_id);
	/* mkdir -p, one component at a time */
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) && errno != EEXIST)
			dp_die(DP_EXIT_FAILURE, "%s: %s", dir, strerror(errno));
		*p = '/';
	}
	if (mkdir(dir, 0700) && errno != EEXIST)
		dp_die(DP_EXIT_FAILURE, "%s: %s", dir, strerror(errno));
	return dir;
}


unsigned long long
stream_rows(struct source *s, struct dp_writer *w, const struct encoding *enc, int progress, long long batch_size,
            struct watermark *wm)
{
	struct dp_buf row = {0};
	unsigned long long rows = 0;
	double start = dp_now(), last = start;
	RETCODE rc;
	int *types = dp_xcalloc((size_t)s->ncols, sizeof *types);
	for (int i = 0; i < s->ncols; i++)
		types[i] = dbcoltype(s->db, i + 1);
	while ((rc = dbnextrow(s->db)) == REG_ROW) {
		row.len = 0;
		dp_buf_char(&row, '{');
		size_t inc_at = 0, inc_len = 0;
		for (int i = 0; i < s->ncols; i++) {
			if (i)
				dp_buf_char(&row, ',');
			dp_buf_add(&row, s->cols[i].json_key, s->cols[i].json_key_len);
			size_t at = row.len;
			if (encode_value(&row, &s->cols[i], types[i], dbdata(s->db, i + 1), dbdatlen(s->db, i + 1), enc))
				dp_die(DP_EXIT_SOURCE, "row %llu, column %s: the server sent a value no %s column can hold "
				       "(not a number, or a date or time out of range); nothing after it was read",
				       rows + 1, s->cols[i].name, s->cols[i].sql_type);
			if (i == s->inc) {
				inc_at = at;
				inc_len = row.len - at;
			}
		}
		dp_buf_char(&row, '}');
		emit_row(w, &row, inc_at, inc_len, wm, enc, rows + 1);
		rows++;
		if (batch_size > 0 && rows % (unsigned long long)batch_size == 0 && dp_writer_flush(w))
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
		if (dp_interrupted) {
			dbcancel(s->db);
			dp_writer_flush(w);
			dp_die(DP_EXIT_INTERRUPTED, "interrupted after %llu rows; the stream has no end message", rows);
		}
		if (progress && (rows & 4095) == 0 && dp_now() - last >= 1) {
			last = dp_now();
			fprintf(stderr, "\r%s: %llu rows, %.0f rows/s   ", dp_progname, rows, rows / (last - start));
		}
	}
	if (progress)
		fprintf(stderr, "\r%s: %llu rows in %.1f s         \n", dp_progname, rows, dp_now() - start);
	free(types);
	free(row.p);
	if (rc != NO_MORE_ROWS || source_failed()) {
		dp_writer_flush(w);
		dp_die(dp_interrupted ? DP_EXIT_INTERRUPTED : DP_EXIT_SOURCE,
		       "reading failed after %llu rows: %s; the stream has no end message", rows,
		       source_error()[0] ? source_error() : "the connection was lost");
	}
	return rows;
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {
		{"from", required_argument, NULL, OPT_FROM}, {"to", required_argument, NULL, OPT_TO},
		{"chunk", required_argument, NULL, OPT_CHUNK}, {"count", no_argument, NULL, OPT_COUNT},
		{"plan", no_argument, NULL, OPT_PLAN}, {"check", no_argument, NULL, OPT_CHECK},
		{"infer", no_argument, NULL, OPT_INFER}, {"sample", required_argument, NULL, OPT_SAMPLE},
		{"run-id", required_argument, NULL, OPT_RUN_ID}, {"missing-keys", no_argument, NULL, OPT_MISSING_KEYS},
		{NULL, 0, NULL, 0}};
	struct options o = {0};
	struct dp_cli cli;
	dp_cli_parse_ex(argc, argv, usage_text, 0, extra, handle_option, &o, &cli);
	struct dp_manifest *m = dp_cli_load_manifest(cli.manifest_path);
	if (cli.print_manifest)
		dp_cli_print_manifest(m);
	int cdc = !strcmp(dp_manifest_str(m, "sink.strategy.mode"), "cdc");
	int bcp = !cdc && !strcmp(dp_manifest_str(m, "source.options.export_mode"), "bcp");

	dp_catch_interrupts();

	struct encoding enc = {
		.bigint_as_string = !strcmp(dp_manifest_str(m, "source.options.bigint_as"), "string"),
		.binary_as_hex = !strcmp(dp_manifest_str(m, "source.options.binary_as"), "hex"),
		.max_row_bytes = (size_t)dp_manifest_int(m, "sink.options.delivery.max_message_bytes", 1000000)};
	struct dp_conn conn;
	dp_cli_resolve(m, "source", "mssql", &conn);
	struct source s = {0};
	source_connect(&s, &conn, dp_manifest_str(m, "source.table.database"), bcp, enc.max_row_bytes);
	dp_conn_free(&conn);
	source_discover(&s, m);
	if (o.check)
		print_check(&s, &enc, m);
	if (o.infer) {
		infer_contract(&s, &enc, o.sample ? o.sample : 10000);
		exit_answered(&s, m);
	}
	if (cdc) {
		if (o.chunk_n)
			dp_die(DP_EXIT_USAGE, "--chunk does not apply to strategy cdc: changes are read in LSN order");
		char *run_id = o.run_id ? dp_xstrdup(o.run_id) : new_run_id();
		struct cdc_request rq = {.from = o.from, .to = o.to, .run_id = run_id, .manifest_path = cli.manifest_path,
		                         .count = o.count, .plan = o.plan, .progress = isatty(2) && !cli.quiet};
		int code = cdc_extract(&s, m, &rq, &enc);
		free(run_id);
		if (code == DP_EXIT_OK && (o.count || o.plan))
			exit_answered(&s, m);
		source_free(&s);
		dbexit();
		dp_manifest_free(m);
		return code;
	}
	if (o.chunk_n && !strcmp(dp_manifest_str(m, "sink.strategy.mode"), "snapshot_reconciliation"))
		dp_die(DP_EXIT_USAGE, "--chunk does not apply to strategy snapshot_reconciliation: a chunk's keys are not "
		       "the table's, and every other key would look deleted");
	struct plan p = {0};
	plan_boundary(&s, m, &o, &enc, &p);
	plan_chunk(&s, &o, &enc, &p);

	if (o.missing_keys) {
		struct reconcile *rc = reconcile_start(&s, m, cli.manifest_path, "plan");
		if (!rc)
			dp_die(DP_EXIT_USAGE, "--missing-keys applies to strategy snapshot_reconciliation");
		reconcile_keys_from(rc, &s, p.where, &enc);
		json_decref(reconcile_plan(rc, stdout));
		reconcile_free(rc);
		free(p.where);
		free(p.order);
		json_decref(p.boundary);
		exit_answered(&s, m);
	}
	char *table = source_table_name(&s);
	char *sql = rows_sql(&s, table, &p);
	if (o.count || o.plan) {
		char *count_sql = select_sql("COUNT_BIG(*)", table, p.where, NULL);
		struct column as = {.logical = "integer"};
		struct encoding as_number = {.binary_as_hex = enc.binary_as_hex}; /* a count, even with bigint_as: string */
		char *n = source_scalar_json(&s, count_sql, &as, &as_number);
		if (o.count) {
			printf("%s\n", n);
		} else {
			/* snapshot_reconciliation: the keys a run would delete, decided now. */
			struct reconcile *rc = reconcile_start(&s, m, cli.manifest_path, "plan");
			json_t *recon = NULL;
			if (rc) {
				reconcile_keys_from(rc, &s, p.where, &enc);
				recon = reconcile_plan(rc, NULL);
				reconcile_free(rc);
			}
			print_plan(&s, m, p.boundary, &enc, sql, count_sql, n, recon);
			json_decref(recon);
		}
		free(n);
		free(count_sql);
		free(sql);
		free(table);
		free(p.where);
		free(p.order);
		json_decref(p.boundary);
		exit_answered(&s, m);
	}
	if (!bcp && source_query(&s, sql))
		dp_die(DP_EXIT_SOURCE, "the query failed: %s", source_error());
	char *run_id = o.run_id ? dp_xstrdup(o.run_id) : new_run_id();
	json_t *header = stream_header(&s, m, run_id, p.boundary, &enc);
	/* bcp mode stages the run in an artifact first, then streams it. */
	char *stage_dir = NULL, *artifact = NULL;
	int stage_fd = 1;
	if (bcp) {
		stage_dir = stage_directory(m, run_id);
		artifact = dp_strfmt("%s/extract.ndjson.zst", stage_dir);
		staged.artifact = artifact;
		staged.dir = stage_dir;
		dp_on_die(remove_staged);
		stage_fd = open(artifact, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (stage_fd < 0)
			dp_die(DP_EXIT_FAILURE, "%s: %s", artifact, strerror(errno));
	}
	struct dp_writer *w = dp_writer_open(stage_fd, bcp ? artifact : "stdout", bcp ? 1 : 0);
	dp_writer_control(w, "header", json_incref(header));
	struct reconcile *rc = reconcile_start(&s, m, cli.manifest_path, run_id);
	if (rc)
		dp_on_die(remove_staged);
	double start = dp_now();
	struct watermark wm = {0};
	unsigned long long rows = bcp ? bcp_extract(&s, sql, w, &enc, &wm)
	                              : stream_rows(&s, w, &enc, isatty(2) && !cli.quiet,
	                                            dp_manifest_int(m, "source.options.batch_size", 50000), &wm);
	json_decref(header);
	free(sql);
	unsigned long long deletes = rc ? reconcile_finish(rc, w) : 0;
	reconcile_free(rc);
	json_t *end = json_pack("{s:I, s:{s:I}}", "rows", (json_int_t)rows, "source", "elapsed_ms",
	                        (json_int_t)((dp_now() - start) * 1000));
	if (deletes)
		json_object_set_new(end, "deletes", json_integer((json_int_t)deletes));
	if (s.inc >= 0 && wm.high)
		json_object_set_new(end, "watermark", json_pack("{s:s, s:o, s:o}", "column", s.cols[s.inc].name, "low",
		                                                json_loads(wm.low, JSON_DECODE_ANY, NULL), "high",
		                                                json_loads(wm.high, JSON_DECODE_ANY, NULL)));
	dp_writer_control(w, "end", end);
	int code = dp_writer_close(w) ? DP_EXIT_FAILURE : DP_EXIT_OK;
	if (bcp) {
		if (close(stage_fd))
			dp_die(DP_EXIT_FAILURE, "%s: %s", artifact, strerror(errno));
		/* The artifact is complete: only now does stdout get the run. */
		if (code == DP_EXIT_OK)
			bcp_replay(artifact);
		staged.complete = code == DP_EXIT_OK;
		remove_staged();
		dp_on_die(NULL);
		free(stage_dir);
		free(artifact);
	}
	source_free(&s);
	dbexit();
	free(wm.low);
	free(wm.high);
	free(run_id);
	free(table);
	free(p.where);
	free(p.order);
	dp_manifest_free(m);
	return code;
}
