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

/* As laid out on the terminal (and in the man page's SYNOPSIS). */
/* clang-format off */
static const char usage_text[] =
	"usage: dpone-extract [-hqV] [--registry FILE] [--print-manifest] [--from VALUE] [--to VALUE]\n"
	"                     [--chunk I/N] [--count] [--plan] [--check] [--infer] [--sample N] [--run-id ID]\n"
	"                     [--missing-keys] [--boundary-file FILE] [--boundary] [--parallel N] MANIFEST\n"
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
	"      --boundary-file FILE  reuse the boundary FILE holds (a retried run, a chunk), else write it there\n"
	"      --boundary      print the planned boundary (with --chunk: its split) as JSON and exit\n"
	"      --parallel N    read N ranges of the boundary at once, each on its own connection\n"
	"                      (source.options.parallelism)\n"
	"See dpone-extract(1); exit codes are listed there.\n";
/* clang-format on */

enum {
	OPT_FROM = OPT_EXTRA,
	OPT_TO,
	OPT_CHUNK,
	OPT_COUNT,
	OPT_PLAN,
	OPT_CHECK,
	OPT_INFER,
	OPT_SAMPLE,
	OPT_RUN_ID,
	OPT_MISSING_KEYS,
	OPT_BOUNDARY_FILE,
	OPT_BOUNDARY,
	OPT_PARALLEL
};

struct options {
	const char *from, *to, *run_id;
	const char *boundary_file; /* --boundary-file: the first attempt's boundary, for a retry */
	int chunk_i, chunk_n;
	long long parallel; /* --parallel; 0: source.options.parallelism */
	int count, plan, check, infer, missing_keys, boundary_only;
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
	case OPT_BOUNDARY_FILE: o->boundary_file = arg; return 0;
	case OPT_BOUNDARY: o->boundary_only = 1; return 0;
	case OPT_PARALLEL:
		if (dp_parse_ll(arg, &o->parallel) < 0 || o->parallel < 1 || o->parallel > 64) {
			dp_warn("--parallel %s: expected a number of ranges from 1 to 64", arg);
			return -1;
		}
		return 0;
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

/* A source failure a retry may pass (source_transient) is exit 12. */
static int
classify_exit(int code)
{
	return code == DP_EXIT_SOURCE && source_transient() ? DP_EXIT_TRANSIENT : code;
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
	return dp_strfmt("\"%04d-%02d-%02dT%02d:%02d:%02d%.*s\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	                 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)fraclen, frac ? frac : "");
}

/* Everything a mode needs: the command line, the manifest, the source. */
struct job {
	struct options o;
	struct dp_cli cli;
	struct dp_manifest *m; /* owned */
	struct encoding enc;
	struct dp_conn conn; /* the source's connection, for the ranges' own; owned */
	json_t *recorded;    /* the boundary --boundary-file held at start (a retry, a chunk), or NULL; owned */
	struct source s;     /* connected and discovered; owned */
};

/* The boundary split into n ranges of an integer column's [min, max]. */
struct split {
	int col; /* index into the source's columns */
	int n;
	int empty; /* the column has no value inside the boundary */
	long long min, max;
};

/* What a run reads: the boundary's predicate and order, and its header
 * object. All owned; plan_free. */
struct plan {
	char *where;        /* the boundary predicate, or NULL for the whole table */
	char *order;        /* ORDER BY list */
	json_t *boundary;   /* the header's boundary object */
	struct split split; /* split.n > 1: read in that many ranges at once */
};

static void
plan_free(struct plan *p)
{
	free(p->where);
	free(p->order);
	json_decref(p->boundary);
	*p = (struct plan){0};
}

/* Narrow the plan's predicate by one more condition, printf-style. */
static void __attribute__((format(printf, 2, 3))) plan_and(struct plan *p, const char *fmt, ...)
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

/* Order the plan by one more column (quoted here). */
static void
plan_order_by(struct plan *p, const char *name)
{
	char *col = quote_name(name);
	char *order = p->order ? dp_strfmt("%s, %s", p->order, col) : dp_xstrdup(col);
	free(p->order);
	free(col);
	p->order = order;
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

/* Narrow the plan by "column op value" (value as JSON), and record value
 * as the boundary's end (NULL: do not). */
static void
plan_bound(struct plan *p, const struct column *c, const char *op, const char *json, const char *what, const char *end)
{
	char *lit = sql_literal(c, json);
	if (!lit)
		dp_die(DP_EXIT_USAGE, "%s %s is not a value of column %s (%s)", what, json, c->name, c->sql_type);
	char *col = quote_name(c->name);
	plan_and(p, "%s %s %s", col, op, lit);
	if (end)
		json_object_set_new(p->boundary, end, json_loads(json, JSON_DECODE_ANY, NULL));
	free(col);
	free(lit);
}

/* The low side of an incremental boundary: above the committed watermark
 * --from, less the manifest's lookback. */
static void
plan_low(struct job *j, const struct column *c, struct plan *p)
{
	char *low = option_json(c, j->o.from);
	/* Where the run starts (the committed watermark), before any
	 * lookback: dpone-state commits only if state is still there. */
	json_object_set_new(p->boundary, "from", json_loads(low, JSON_DECODE_ANY, NULL));
	const char *lookback = dp_manifest_str(j->m, "source.options.lookback");
	if (lookback) {
		/* Re-read a late-arriving window before the watermark. */
		char *earlier = apply_lookback(c, low, lookback);
		if (!earlier) {
			char where[1024];
			dp_die(DP_EXIT_USAGE,
			       "%s'%s' does not apply to %s (%s): use a number for integer columns, "
			       "or 30s, 15m, 2h, 1d for date and time columns",
			       dp_manifest_where(j->m, "source.options.lookback", where, sizeof where), lookback,
			       c->name, c->sql_type);
		}
		json_object_set_new(p->boundary, "lookback", json_string(lookback));
		free(low);
		low = earlier;
	}
	plan_bound(p, c, ">", low, "--from", "low");
	free(low);
}

/* The high watermark a first attempt of this run read to (JSON, owned), or
 * NULL: --boundary-file names no file yet, or one without a high. */
static char *
retried_high(const struct job *j)
{
	json_t *high = json_object_get(j->recorded, "high");
	return high ? json_dumps(high, JSON_ENCODE_ANY) : NULL;
}

/* The boundary, for a retry of this run (--boundary-file): written once,
 * by the first attempt. */
static void
keep_boundary(const struct job *j, const struct plan *p)
{
	if (!j->o.boundary_file || access(j->o.boundary_file, F_OK) == 0)
		return;
	char *tmp = dp_strfmt("%s.tmp", j->o.boundary_file);
	if (json_dump_file(p->boundary, tmp, JSON_COMPACT) < 0 || rename(tmp, j->o.boundary_file) < 0)
		dp_die(DP_EXIT_FAILURE, "--boundary-file %s: %s", j->o.boundary_file, strerror(errno));
	free(tmp);
}

/* source.options.boundary_safety: the highest value of c below the bound
 * under which every row is committed, instead of MAX (high, taken); the
 * boundary's "safety" says which bound, each candidate and why. */
static char *
bound_late_commits(struct job *j, struct plan *p, const struct column *c, char *high)
{
	struct late_commit lc;
	late_commit_bound(&j->s, j->m, c, &j->enc, &lc);
	json_object_set_new(lc.about, "max", json_loads(high, JSON_DECODE_ANY, NULL));
	if (lc.below && strcmp(high, "null")) {
		struct plan below = {.where = p->where ? dp_xstrdup(p->where) : NULL};
		char *lit = sql_literal(c, lc.below), *col = quote_name(c->name);
		plan_and(&below, "%s < %s", col, lit);
		free(high);
		high = plan_aggregate(&j->s, &below, "MAX", c, &j->enc);
		free(below.where);
		free(lit);
		free(col);
	}
	json_object_set_new(lc.about, "high", json_loads(high, JSON_DECODE_ANY, NULL));
	json_object_set_new(p->boundary, "safety", lc.about);
	free(lc.below);
	return high;
}

/* (low, high] of the incremental column. */
static void
plan_incremental(struct job *j, struct plan *p)
{
	const struct column *c = &j->s.cols[j->s.inc];
	/* The high watermark is read once, before the rows: rows committed
	 * while the run reads are left for the next run. A retried run reads
	 * to the high its first attempt read to (--boundary-file). */
	char *earlier = retried_high(j);
	char *high = earlier   ? earlier
	             : j->o.to ? option_json(c, j->o.to)
	                       : plan_aggregate(&j->s, p, "MAX", c, &j->enc);
	json_object_set_new(p->boundary, "kind", json_string("incremental"));
	json_object_set_new(p->boundary, "column", json_string(c->name));
	if (!earlier && !j->o.to)
		high = bound_late_commits(j, p, c, high);
	if (j->o.from)
		plan_low(j, c, p);
	if (!strcmp(high, "null"))
		plan_and(p, "1 = 0"); /* an empty table: nothing is below a maximum that does not exist */
	else
		plan_bound(p, c, "<=", high, "--to", NULL);
	json_object_set_new(p->boundary, "high", json_loads(high, JSON_DECODE_ANY, NULL));
	free(high);
	plan_order_by(p, c->name);
}

/* replace's window: [from, to) of its column. */
static void
plan_window(struct job *j, json_t *window, struct plan *p)
{
	const char *name = json_string_value(json_object_get(window, "column"));
	int k = source_column(&j->s, name);
	char where[1024];
	if (k < 0)
		dp_die(DP_EXIT_SOURCE, "%scolumn '%s' is not in %s.%s",
		       dp_manifest_where(j->m, "sink.strategy.window.column", where, sizeof where), name, j->s.schema,
		       j->s.table);
	const struct column *c = &j->s.cols[k];
	json_object_set_new(p->boundary, "kind", json_string("window"));
	json_object_set_new(p->boundary, "column", json_string(c->name));
	static const struct {
		const char *key, *op, *end;
	} ends[] = {{"from", ">=", "low"}, {"to", "<", "high"}};
	for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++) {
		const char *v = json_string_value(json_object_get(window, ends[e].key));
		if (!v)
			continue;
		char *js = option_json(c, v);
		plan_bound(p, c, ends[e].op, js, ends[e].key, ends[e].end);
		free(js);
	}
	plan_order_by(p, c->name);
}

/* The extract boundary: incremental (low, high], a window, or everything;
 * ordered by it, then by the key, so that the stream is stable. */
static void
plan_boundary(struct job *j, struct plan *p)
{
	const char *predicate = dp_manifest_str(j->m, "source.options.source_custom_predicate");
	p->boundary = json_object();
	p->where = predicate ? dp_strfmt("(%s)", predicate) : NULL;
	if (predicate)
		json_object_set_new(p->boundary, "predicate", json_string(predicate));
	int incremental = j->s.inc >= 0 && dp_manifest_incremental(j->m);
	json_t *window = dp_manifest_get(j->m, "sink.strategy.window");
	if ((j->o.from || j->o.to) && !incremental)
		dp_die(DP_EXIT_USAGE,
		       "--from and --to bound an incremental run: strategy %s%s reads no incremental boundary",
		       dp_manifest_str(j->m, "sink.strategy.mode"),
		       j->s.inc >= 0 ? "" : " without source.options.incremental_column");
	if (incremental)
		plan_incremental(j, p);
	else if (j->m->strategy == DP_REPLACE && window)
		plan_window(j, window, p);
	else
		json_object_set_new(p->boundary, "kind", json_string("full"));
	for (int k = 0; k < j->s.nkey; k++)
		plan_order_by(p, j->s.cols[j->s.key[k]].name);
}

/* The column ranges split on: source.options.split_column, else an
 * integer key, else an integer incremental column. `why` says what asked
 * (--chunk, parallelism) for the message. */
static int
split_column(const struct job *j, const char *why)
{
	const struct source *s = &j->s;
	const char *named = dp_manifest_str(j->m, "source.options.split_column");
	char where[1024];
	if (named) {
		int k = source_column(s, named);
		if (k < 0 || strcmp(s->cols[k].logical, "integer"))
			dp_die(DP_EXIT_USAGE, "%scolumn '%s' %s: ranges split an integer column",
			       dp_manifest_where(j->m, "source.options.split_column", where, sizeof where), named,
			       k < 0 ? "is not in the table" : "is not an integer column");
		return k;
	}
	if (s->nkey > 0 && !strcmp(s->cols[s->key[0]].logical, "integer"))
		return s->key[0];
	if (s->inc >= 0 && !strcmp(s->cols[s->inc].logical, "integer"))
		return s->inc;
	dp_die(DP_EXIT_USAGE,
	       "%s needs an integer column to split on: the key is not one; name one with "
	       "source.options.split_column",
	       why);
}

/* The split a first attempt or the first chunk planned (--boundary-file),
 * if it is one of n ranges of column col: 1 with *sp filled, else 0. */
static int
recorded_split(const struct job *j, int col, int n, struct split *sp)
{
	json_t *split = json_object_get(j->recorded, "split");
	const char *name = json_string_value(json_object_get(split, "column"));
	json_t *min = json_object_get(split, "min"), *max = json_object_get(split, "max");
	int ok = name && !strcasecmp(name, j->s.cols[col].name) &&
	         json_integer_value(json_object_get(split, "ranges")) == n &&
	         ((json_is_integer(min) && json_is_integer(max)) || (json_is_null(min) && json_is_null(max)));
	if (ok)
		*sp = (struct split){.col = col,
		                     .n = n,
		                     .empty = json_is_null(min),
		                     .min = json_integer_value(min),
		                     .max = json_integer_value(max)};
	return ok;
}

/* Split the planned boundary into n ranges of an integer column, from its
 * MIN and MAX inside the boundary (two queries on the index, planned once:
 * a retry and every chunk of a recorded plan reuse them). Equal widths:
 * skewed keys make uneven ranges, never wrong ones. Recorded in the
 * boundary as "split". */
static void
plan_split(struct job *j, struct plan *p, int n, const char *why, struct split *sp)
{
	int col = split_column(j, why);
	if (!recorded_split(j, col, n, sp)) {
		const struct column *c = &j->s.cols[col];
		struct encoding as_numbers = j->enc;
		as_numbers.bigint_as_string = 0;
		char *lo = plan_aggregate(&j->s, p, "MIN", c, &as_numbers);
		char *hi = plan_aggregate(&j->s, p, "MAX", c, &as_numbers);
		*sp = (struct split){.col = col, .n = n, .empty = !strcmp(lo, "null")};
		if (!sp->empty) {
			sp->min = strtoll(lo, NULL, 10);
			sp->max = strtoll(hi, NULL, 10);
		}
		free(lo);
		free(hi);
	}
	json_object_set_new(p->boundary, "split",
	                    json_pack("{s:s, s:o, s:o, s:i}", "column", j->s.cols[col].name, "min",
	                              sp->empty ? json_null() : json_integer(sp->min), "max",
	                              sp->empty ? json_null() : json_integer(sp->max), "ranges", n));
}

/* Range i (1-based) of the split, as a predicate; NULLs of the column go
 * to the first range. The caller frees it. */
static char *
range_predicate(const struct job *j, const struct split *sp, int i)
{
	char *col = quote_name(j->s.cols[sp->col].name), *out;
	if (sp->empty) {
		out = i == 1 ? dp_strfmt("%s IS NULL", col) : dp_xstrdup("1 = 0");
	} else {
		__int128 width = ((__int128)sp->max - sp->min) / sp->n + 1;
		long long from = (long long)(sp->min + width * (i - 1)), to = (long long)(sp->min + width * i);
		/* Past the maximum (more ranges than values): nothing. */
		char *range = (__int128)sp->min + width * (i - 1) > sp->max ? dp_xstrdup("1 = 0")
		              : i == sp->n                                  ? dp_strfmt("%s >= %lld", col, from)
		                           : dp_strfmt("%s >= %lld AND %s < %lld", col, from, col, to);
		out = i == 1 ? dp_strfmt("(%s) OR %s IS NULL", range, col) : dp_xstrdup(range);
		free(range);
	}
	free(col);
	return out;
}

/* The plan a chunk belongs to (batch run --chunk: the run that planned
 * the recorded boundary), from --boundary-file into the header, so that
 * dpone-state can refuse a chunk of another plan. */
static void
carry_plan_id(const struct job *j, struct plan *p)
{
	json_t *plan = json_object_get(j->recorded, "plan");
	if (json_is_string(plan))
		json_object_set(p->boundary, "plan", plan);
}

/* --chunk I/N: only the I-th range of the boundary. */
static void
plan_chunk(struct job *j, struct plan *p)
{
	const struct options *o = &j->o;
	if (!o->chunk_n)
		return;
	carry_plan_id(j, p);
	struct split sp;
	plan_split(j, p, o->chunk_n, "--chunk", &sp);
	char chunk[32];
	snprintf(chunk, sizeof chunk, "%d/%d", o->chunk_i, o->chunk_n);
	json_object_set_new(p->boundary, "chunk", json_string(chunk));
	char *range = range_predicate(j, &sp, o->chunk_i);
	plan_and(p, "%s", range);
	free(range);
}

/* How many ranges a run reads at once: --parallel, else the manifest's
 * source.options.parallelism; one for a chunk (a chunk is a range). */
static int
parallelism(const struct job *j)
{
	if (j->o.chunk_n)
		return 1;
	return (int)(j->o.parallel ? j->o.parallel : dp_manifest_int(j->m, "source.options.parallelism", 1));
}

/* parallelism N > 1: the boundary's N ranges, planned now. */
static void
plan_parallel(struct job *j, struct plan *p)
{
	int n = parallelism(j);
	if (n > 1)
		plan_split(j, p, n, "source.options.parallelism", &p->split);
}

/* The SELECT that reads the rows (stream: nchar and nvarchar as their
 * UTF-16 bytes, source_select_list); the caller frees it. */
static char *
rows_sql(const struct source *s, const char *table, const struct plan *p, int stream)
{
	char *list = stream ? source_select_list(s) : source_column_list(s, 0);
	char *sql = select_sql(list, table, p->where, p->order);
	free(list);
	return sql;
}

/* The boundary's predicate narrowed to range i of its split; the caller
 * frees it. */
static char *
range_where(const struct job *j, const struct plan *p, int i)
{
	char *range = range_predicate(j, &p->split, i);
	char *where = p->where ? dp_strfmt("%s AND (%s)", p->where, range) : dp_strfmt("(%s)", range);
	free(range);
	return where;
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

/* ---- bcp mode's staged artifact ---- */

/* What a failed bcp run must not leave behind. */
static struct {
	char *artifact, *dir; /* owned */
	int fd;
	int temporary; /* dir is a private temporary directory */
	int complete;  /* the artifact holds the whole run and stays (unless temporary) */
} staged;

/* dp_die's cleanup, and the end of a run: a cut run's artifact is not a
 * replayable extract, so it goes too. */
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
			dp_die(DP_EXIT_FAILURE, "cannot create a staging directory in %s: %s",
			       tmp && *tmp ? tmp : "/tmp", strerror(errno));
		return tmpl;
	}
	char *dir = dp_strfmt("%s/%s", dp_manifest_str(m, "observability.artifacts.path"), run_id);
	if (dp_mkdir_p(dir, 0700) < 0)
		dp_die(DP_EXIT_FAILURE, "%s: %s", dir, strerror(errno));
	return dir;
}

/* Open the run's artifact; its descriptor. */
static int
stage_open(const struct dp_manifest *m, const char *run_id)
{
	staged.dir = stage_directory(m, run_id);
	staged.artifact = dp_strfmt("%s/extract.ndjson.zst", staged.dir);
	dp_on_die(remove_staged);
	staged.fd = open(staged.artifact, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (staged.fd < 0)
		dp_die(DP_EXIT_FAILURE, "%s: %s", staged.artifact, strerror(errno));
	return staged.fd;
}

/* The artifact is written (complete: its end too): put it on stdout,
 * then keep or remove it. */
static void
stage_finish(int complete)
{
	if (close(staged.fd))
		dp_die(DP_EXIT_FAILURE, "%s: %s", staged.artifact, strerror(errno));
	/* The artifact is complete: only now does stdout get the run. */
	if (complete)
		bcp_replay(staged.artifact);
	staged.complete = complete;
	remove_staged();
	dp_on_die(NULL);
	free(staged.dir);
	free(staged.artifact);
	staged.dir = staged.artifact = NULL;
}

/* ---- the modes ---- */

/* The modes that answer and stop (--check, --infer, --count, --plan,
 * --missing-keys): close the connection, free the manifest, exit 0. */
static _Noreturn void
exit_answered(struct job *j)
{
	source_free(&j->s);
	dbexit();
	dp_conn_free(&j->conn);
	json_decref(j->recorded);
	dp_manifest_free(j->m);
	dp_exit_flushing_stdout(DP_EXIT_OK);
}

/* --check: the login worked and the table is readable; the server's clock
 * for dpone doctor's skew check. */
static _Noreturn void
run_check(struct job *j)
{
	struct source *s = &j->s;
	struct column utc = {.name = "SYSUTCDATETIME()",
	                     .data_type = "datetime2",
	                     .sql_type = "datetime2(7)",
	                     .logical = "timestamp",
	                     .scale = 7};
	char *now = source_scalar_json(s, "SELECT SYSUTCDATETIME()", &utc, &j->enc);
	/* READ_ONLY on an availability-group secondary (application_intent). */
	struct column as_text = {.name = "Updateability",
	                         .data_type = "nvarchar",
	                         .sql_type = "nvarchar(128)",
	                         .logical = "string",
	                         .max_length = 128};
	char *updateability = source_scalar_json(
		s, "SELECT CAST(DATABASEPROPERTYEX(DB_NAME(), 'Updateability') AS nvarchar(128))", &as_text, &j->enc);
	json_t *doc =
		json_pack("{s:s, s:i, s:o, s:s, s:s, s:i, s:o, s:o, s:I}", "library", dbversion(), "packet_size",
	                  dbgetpacket(s->db), "updateability", json_loads(updateability, JSON_DECODE_ANY, NULL),
	                  "schema", s->schema, "table", s->table, "columns", s->ncols, "key", key_names(s),
	                  "server_utc", json_loads(now, JSON_DECODE_ANY, NULL), "local_epoch", (json_int_t)time(NULL));
	json_t *late = late_commit_probe(s, j->m, &j->enc);
	if (late)
		json_object_set_new(doc, "late_commit", late);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	puts(text);
	free(text);
	free(now);
	free(updateability);
	json_decref(doc);
	exit_answered(j);
}

static _Noreturn void
run_infer(struct job *j)
{
	infer_contract(&j->s, &j->enc, j->o.sample ? j->o.sample : 10000);
	exit_answered(j);
}

static int
run_cdc(struct job *j)
{
	if (j->o.chunk_n || j->o.parallel > 1)
		dp_die(DP_EXIT_USAGE, "--%s does not apply to strategy cdc: changes are read in LSN order",
		       j->o.chunk_n ? "chunk" : "parallel");
	char *run_id = j->o.run_id ? dp_xstrdup(j->o.run_id) : new_run_id();
	struct cdc_request rq = {.from = j->o.from,
	                         .to = j->o.to,
	                         .run_id = run_id,
	                         .manifest_path = j->cli.manifest_path,
	                         .count = j->o.count,
	                         .plan = j->o.plan,
	                         .progress = isatty(2) && !j->cli.quiet};
	int code = cdc_extract(&j->s, j->m, &rq, &j->enc);
	free(run_id);
	if (code == DP_EXIT_OK && (j->o.count || j->o.plan))
		exit_answered(j);
	return code;
}

/* The keys a snapshot_reconciliation run would find deleted, decided now
 * (NULL for another strategy); every one also to list unless NULL. */
static json_t *
reconcile_preview(struct job *j, const struct plan *p, FILE *list)
{
	struct reconcile *rc = reconcile_start(&j->s, j->m, j->cli.manifest_path, "plan");
	if (!rc)
		return NULL;
	reconcile_keys_from(rc, &j->s, p->where, &j->enc);
	json_t *recon = reconcile_plan(rc, list);
	reconcile_free(rc);
	return recon;
}

/* --boundary: the boundary as planned, for dpone-state to record (batch
 * run --chunk: every chunk reads the recorded one); not one chunk's. */
static _Noreturn void
run_boundary(struct job *j, struct plan *p)
{
	json_object_del(p->boundary, "chunk");
	char *text = json_dumps(p->boundary, JSON_COMPACT | JSON_ENSURE_ASCII);
	puts(text);
	free(text);
	plan_free(p);
	exit_answered(j);
}

static _Noreturn void
run_missing_keys(struct job *j, struct plan *p)
{
	json_t *recon = reconcile_preview(j, p, stdout);
	if (!recon)
		dp_die(DP_EXIT_USAGE, "--missing-keys applies to strategy snapshot_reconciliation");
	json_decref(recon);
	plan_free(p);
	exit_answered(j);
}

/* --plan with parallelism: each range's predicate, SELECT and count, or
 * NULL when the run reads one range. */
static json_t *
plan_ranges(struct job *j, const struct plan *p, const char *table)
{
	if (p->split.n < 2)
		return NULL;
	json_t *ranges = json_array();
	struct column as = {.logical = "integer"};
	struct encoding as_number = {.binary_as_hex = j->enc.binary_as_hex};
	for (int i = 1; i <= p->split.n; i++) {
		char *where = range_where(j, p, i);
		struct plan range = {.where = where, .order = p->order};
		char *sql = rows_sql(&j->s, table, &range, j->m->export_mode != DP_EXPORT_BCP);
		char *count_sql = select_sql("COUNT_BIG(*)", table, where, NULL);
		char *n = source_scalar_json(&j->s, count_sql, &as, &as_number);
		json_array_append_new(ranges, json_pack("{s:i, s:s, s:s, s:o}", "range", i, "where", where, "sql", sql,
		                                        "rows", json_loads(n, JSON_DECODE_ANY, NULL)));
		free(n);
		free(count_sql);
		free(sql);
		free(where);
	}
	return ranges;
}

/* --count and --plan: the boundary's row count, and for --plan the rest
 * of what a run would do. */
static _Noreturn void
run_count_or_plan(struct job *j, struct plan *p)
{
	char *table = source_table_name(&j->s);
	char *sql = rows_sql(&j->s, table, p, j->m->export_mode != DP_EXPORT_BCP);
	char *count_sql = select_sql("COUNT_BIG(*)", table, p->where, NULL);
	struct column as = {.logical = "integer"};
	struct encoding as_number = {.binary_as_hex = j->enc.binary_as_hex}; /* a count, even with bigint_as: string */
	char *n = source_scalar_json(&j->s, count_sql, &as, &as_number);
	if (j->o.count) {
		printf("%s\n", n);
	} else {
		json_t *recon = reconcile_preview(j, p, NULL);
		json_t *ranges = plan_ranges(j, p, table);
		print_plan(&j->s, j->m, p->boundary, &j->enc, &(struct plan_queries){sql, count_sql, n, ranges}, recon);
		json_decref(ranges);
		json_decref(recon);
	}
	free(n);
	free(count_sql);
	free(sql);
	free(table);
	plan_free(p);
	exit_answered(j);
}

/* The end message: rows, deletes, elapsed time, the watermark seen. */
/* source_target_count without a check stage: the source counted for the
 * boundary after the rows were read, as dpone-check counts it (rows
 * committed inside the boundary meanwhile show as a difference). */
static void
add_source_count(struct job *j, const struct plan *p, json_t *end)
{
	if (!dp_manifest_has_check(j->m, DP_CHECK_SOURCE_COUNT) || dp_manifest_check_stage(j->m))
		return;
	char *table = source_table_name(&j->s);
	char *count_sql = select_sql("COUNT_BIG(*)", table, p->where, NULL);
	struct column as = {.logical = "integer"};
	struct encoding as_number = {.binary_as_hex = j->enc.binary_as_hex}; /* a count, even with bigint_as: string */
	char *n = source_scalar_json(&j->s, count_sql, &as, &as_number);
	json_object_set_new(end, "source_rows", json_loads(n, JSON_DECODE_ANY, NULL));
	free(n);
	free(count_sql);
	free(table);
}

static json_t *
end_message(const struct job *j, const struct row_writer *rw, unsigned long long deletes, double start)
{
	json_t *end = json_pack("{s:I, s:{s:I}}", "rows", (json_int_t)rw->rows, "source", "elapsed_ms",
	                        (json_int_t)((dp_now() - start) * 1000));
	if (deletes)
		json_object_set_new(end, "deletes", json_integer((json_int_t)deletes));
	if (j->s.inc >= 0 && rw->wm.high)
		json_object_set_new(end, "watermark",
		                    json_pack("{s:s, s:o, s:o}", "column", j->s.cols[j->s.inc].name, "low",
		                              json_loads(rw->wm.low, JSON_DECODE_ANY, NULL), "high",
		                              json_loads(rw->wm.high, JSON_DECODE_ANY, NULL)));
	return end;
}

/* What a range's child reads (borrowed from the parent's run_rows). */
struct range_job {
	struct job *j;
	const struct plan *p;
	int bcp;
};

/* parallel.c's read_range_fn: range i of the split, on a connection of its
 * own, as rows on fd and its end. */
static _Noreturn void
read_range(void *ctx, int i, int fd)
{
	struct range_job *rj = ctx;
	struct job *j = rj->j;
	dp_on_die(NULL);        /* the staged artifact is the parent's to remove */
	struct source s = j->s; /* the columns discovered; the connection is replaced */
	source_connect(&s, &j->conn, dp_manifest_str(j->m, "source.table.database"), rj->bcp, j->enc.max_row_bytes);
	char *table = source_table_name(&s), *where = range_where(j, rj->p, i);
	struct plan range = {.where = where, .order = rj->p->order};
	char *sql = rows_sql(&s, table, &range, !rj->bcp);
	struct dp_writer *w = dp_writer_open(fd, "a range's pipe", 0);
	struct row_writer rw;
	row_writer_init(&rw, w, &s, &j->enc, 1);
	if (rj->bcp) {
		bcp_extract(&s, sql, &rw);
	} else {
		if (source_query(&s, sql))
			dp_die(DP_EXIT_SOURCE, "range %d/%d: the query failed: %s", i, rj->p->split.n, source_error());
		stream_rows(&s, &rw, 0, dp_manifest_int(j->m, "source.options.batch_size", 50000));
	}
	json_t *wm =
		json_pack("{s:o, s:o}", "low", rw.wm.low ? json_loads(rw.wm.low, JSON_DECODE_ANY, NULL) : json_null(),
	                  "high", rw.wm.high ? json_loads(rw.wm.high, JSON_DECODE_ANY, NULL) : json_null());
	dp_writer_control(w, "end", json_pack("{s:I, s:o}", "rows", (json_int_t)rw.rows, "watermark", wm));
	int failed = dp_writer_close(w);
	row_writer_free(&rw);
	free(sql);
	free(where);
	free(table);
	dbclose(s.db);
	_exit(failed ? DP_EXIT_FAILURE : DP_EXIT_OK);
}

/* A run: header, rows (streamed, or bcp-copied into an artifact that goes
 * to stdout once complete), reconciliation's deletes, end. */
static int
run_rows(struct job *j, struct plan *p, int bcp)
{
	keep_boundary(j, p);
	char *table = source_table_name(&j->s);
	char *sql = rows_sql(&j->s, table, p, !bcp);
	free(table);
	if (!bcp && p->split.n < 2 && source_query(&j->s, sql))
		dp_die(DP_EXIT_SOURCE, "the query failed: %s", source_error());
	char *run_id = j->o.run_id ? dp_xstrdup(j->o.run_id) : new_run_id();
	int out = bcp ? stage_open(j->m, run_id) : 1;
	struct dp_writer *w = dp_writer_open(out, bcp ? staged.artifact : "stdout", bcp ? 1 : 0);
	dp_writer_control(w, "header",
	                  run_header(&j->s, j->m, j->cli.manifest_path, run_id, json_incref(p->boundary), &j->enc));
	struct row_writer rw;
	row_writer_init(&rw, w, &j->s, &j->enc, 1);
	struct reconcile *rc = reconcile_start(&j->s, j->m, j->cli.manifest_path, run_id);
	if (rc) {
		rw.tap = reconcile_tap;
		rw.tap_ctx = rc;
		dp_on_die(remove_staged);
	}
	double start = dp_now();
	if (p->split.n > 1)
		parallel_read(p->split.n, read_range, &(struct range_job){j, p, bcp}, &rw, isatty(2) && !j->cli.quiet);
	else if (bcp)
		bcp_extract(&j->s, sql, &rw);
	else
		stream_rows(&j->s, &rw, isatty(2) && !j->cli.quiet,
		            dp_manifest_int(j->m, "source.options.batch_size", 50000));
	free(sql);
	unsigned long long deletes = rc ? reconcile_finish(rc, w) : 0;
	reconcile_free(rc);
	json_t *end = end_message(j, &rw, deletes, start);
	add_source_count(j, p, end);
	dp_writer_control(w, "end", end);
	int code = dp_writer_close(w) ? DP_EXIT_FAILURE : DP_EXIT_OK;
	if (bcp)
		stage_finish(code == DP_EXIT_OK);
	row_writer_free(&rw);
	free(run_id);
	return code;
}

static void
job_open(struct job *j, int bcp)
{
	struct dp_manifest *m = j->m;
	j->enc = (struct encoding){
		.bigint_as_string = m->bigint_as == DP_BIGINT_STRING,
		.binary_as_hex = m->binary_as == DP_BINARY_HEX,
		.max_row_bytes = (size_t)dp_manifest_int(m, "sink.options.delivery.max_message_bytes", 1000000)};
	dp_cli_resolve(m, "source", "mssql", &j->conn);
	source_set_timeouts(m);
	source_connect(&j->s, &j->conn, dp_manifest_str(m, "source.table.database"), bcp, j->enc.max_row_bytes);
	source_discover(&j->s, m);
}

int
main(int argc, char **argv)
{
	static const struct option extra[] = {{"from", required_argument, NULL, OPT_FROM},
	                                      {"to", required_argument, NULL, OPT_TO},
	                                      {"chunk", required_argument, NULL, OPT_CHUNK},
	                                      {"count", no_argument, NULL, OPT_COUNT},
	                                      {"plan", no_argument, NULL, OPT_PLAN},
	                                      {"check", no_argument, NULL, OPT_CHECK},
	                                      {"infer", no_argument, NULL, OPT_INFER},
	                                      {"sample", required_argument, NULL, OPT_SAMPLE},
	                                      {"run-id", required_argument, NULL, OPT_RUN_ID},
	                                      {"missing-keys", no_argument, NULL, OPT_MISSING_KEYS},
	                                      {"boundary-file", required_argument, NULL, OPT_BOUNDARY_FILE},
	                                      {"parallel", required_argument, NULL, OPT_PARALLEL},
	                                      {"boundary", no_argument, NULL, OPT_BOUNDARY},
	                                      {NULL, 0, NULL, 0}};
	struct job j = {0};
	dp_cli_parse_ex(argc, argv, usage_text, 0, extra, handle_option, &j.o, &j.cli);
	j.m = dp_cli_load_manifest(j.cli.manifest_path);
	if (j.cli.print_manifest)
		dp_cli_print_manifest(j.m);
	int cdc = j.m->strategy == DP_CDC;
	int bcp = !cdc && j.m->export_mode == DP_EXPORT_BCP;
	dp_catch_interrupts();
	dp_on_die_classify(classify_exit);
	/* Read once: the high watermark, split and plan a retry or a chunk reuse. */
	if (j.o.boundary_file)
		j.recorded = json_load_file(j.o.boundary_file, 0, NULL);
	job_open(&j, bcp);
	if (j.o.check)
		run_check(&j);
	if (j.o.infer)
		run_infer(&j);
	int code;
	if (cdc) {
		code = run_cdc(&j);
	} else {
		if (j.o.chunk_n && j.m->strategy == DP_SNAPSHOT_RECONCILIATION)
			dp_die(DP_EXIT_USAGE,
			       "--chunk does not apply to strategy snapshot_reconciliation: a chunk's keys are "
			       "not the table's, and every other key would look deleted");
		if (j.o.parallel > 1 && j.m->strategy == DP_SNAPSHOT_RECONCILIATION)
			dp_die(DP_EXIT_USAGE,
			       "--parallel does not apply to strategy snapshot_reconciliation: every key of the "
			       "table is gathered by one reader");
		struct plan p = {0};
		plan_boundary(&j, &p);
		plan_chunk(&j, &p);
		plan_parallel(&j, &p);
		if (j.o.boundary_only)
			run_boundary(&j, &p);
		if (j.o.missing_keys)
			run_missing_keys(&j, &p);
		if (j.o.count || j.o.plan)
			run_count_or_plan(&j, &p);
		code = run_rows(&j, &p, bcp);
		plan_free(&p);
	}
	source_free(&j.s);
	dbexit();
	dp_conn_free(&j.conn);
	json_decref(j.recorded);
	dp_manifest_free(j.m);
	return code;
}
