/* extract.h: the parts of dpone-extract, private to it. */
#ifndef EXTRACT_H
#define EXTRACT_H

#include <stddef.h>

#include <sybdb.h>

#include "dpone.h"

/* db-lib reports uniqueidentifier as type 36, which sybdb.h does not name. */
#define DP_SYBUNIQUE 36

struct encoding {
	int bigint_as_string; /* source.options.bigint_as: string */
	int binary_as_hex;    /* source.options.binary_as: hex */
	size_t max_row_bytes; /* sink.options.delivery.max_message_bytes; 0: none */
};

/* One column of the extracted table, from the catalog. */
struct column {
	char name[260];
	char data_type[64]; /* INFORMATION_SCHEMA.DATA_TYPE: "decimal", "datetime2" */
	char sql_type[80];  /* with its sizes: "decimal(18,2)", "nvarchar(max)" */
	/* boolean, integer, decimal, float, string, date, time, timestamp,
	 * timestamp_tz, uuid, binary */
	const char *logical;
	int nullable;
	int precision, scale, max_length; /* -1 where the type has none; max_length -1 = (max) */
	char *json_key;                   /* "name": pre-escaped, owned */
	size_t json_key_len;
};

/* The watermark seen so far: the JSON of the incremental column's first
 * and last non-null values (rows come ordered by it); owned strings. */
struct watermark {
	char *low, *high;
};

/* ---- encode.c ---- */
/* Append the JSON of one value (db-lib type and raw data) to b; -1 (b
 * unchanged or partly written) for a value no SQL Server column can hold:
 * NaN or infinity, a date outside 0001..9999, a time past midnight, a
 * decimal scale over 38. The caller names the column and stops. */
int encode_value(struct dp_buf *b, const struct column *c, int dbtype, const BYTE *data, DBINT len,
                 const struct encoding *enc);
/* Append an integer, in quotes when quoted (bigint_as: string). */
void encode_int(struct dp_buf *b, long long v, int quoted);
/* Append a JSON string (escaped; invalid UTF-8 becomes U+FFFD). */
void encode_string(struct dp_buf *b, const char *s, size_t n);
/* The logical type of a SQL Server DATA_TYPE, or NULL if unsupported. */
const char *logical_type(const char *data_type);

/* ---- source.c ---- */
struct source {
	DBPROCESS *db;
	char database[260]; /* the one the session uses, "" if the server named none */
	char server[600];   /* host:port connected to (no secret; for lineage) */
	char schema[260], table[260];
	struct column *cols;
	int ncols;
	int *key; /* indexes into cols: the unique or primary key */
	int nkey;
	int inc; /* index of the incremental column, or -1 */
};

/* The source failed in a way a retry may pass (source.c's list). */
int source_transient(void);
/* source.options.login_timeout and query_timeout, for source_connect. */
void source_set_timeouts(const struct dp_manifest *m);
/* Connect with db-lib (bulk copy enabled when bcp), values cut a little
 * over max_row_bytes (0: none); exits with DP_EXIT_SOURCE and a one-line
 * error. */
void source_connect(struct source *s, const struct dp_conn *conn, const char *database, int bcp, size_t max_row_bytes);
/* Read columns and key from the catalog; exits on a missing table/column. */
void source_discover(struct source *s, const struct dp_manifest *m);
/* Run a query whose one row and column is wanted as JSON (NULL → "null");
 * the caller frees it. */
char *source_scalar_json(struct source *s, const char *sql, const struct column *as, const struct encoding *enc);
/* The same, or NULL when the query failed (why in source_error()). */
char *source_try_scalar_json(struct source *s, const char *sql, const struct column *as, const struct encoding *enc);
/* A typed T-SQL literal for a watermark value given as JSON text. */
char *sql_literal(const struct column *c, const char *json_value);
/* "[a], [b], ...": every column, or the key columns in key order; the
 * caller frees it. */
char *source_column_list(const struct source *s, int keys_only);
/* The SELECT list of a stream-mode read: every column, nchar and nvarchar
 * as CAST(... AS varbinary(2n)), their UTF-16 bytes, which encode.c turns
 * into JSON in one pass instead of db-lib's iconv; the caller frees it. */
char *source_select_list(const struct source *s);
/* [schema].[table], quoted; the caller frees it. */
char *source_table_name(const struct source *s);
/* The index of the column named name (case-insensitive), or -1. */
int source_column(const struct source *s, const char *name);
/* Close the connection and free what discovery read. */
void source_free(struct source *s);
/* [name] with ] doubled; the caller frees it. */
char *quote_name(const char *name);
/* The last error db-lib or the server reported, for messages. */
const char *source_error(void);
int source_failed(void);
void source_clear_error(void);
/* Execute SQL and leave its results ready for dbnextrow; 0 or -1. */
int source_query(struct source *s, const char *sql);

/* ---- emit.c: the stream and the plan dpone-extract writes ---- */
/* The key column names as a JSON array; a new reference. */
json_t *key_names(const struct source *s);
/* The header's columns array for s's columns; a new reference. */
json_t *header_columns(const struct source *s);
/* The stream header; takes the reference to boundary. */
json_t *stream_header(const struct source *s, const struct dp_manifest *m, const char *run_id, json_t *boundary,
                      const struct encoding *enc);
/* The header a run writes: stream_header's, and when no check stage runs
 * (dp_manifest_check_stage) with schema evolution decided here on it, as
 * dpone-check would (breaking changes exit 8 before any row). */
json_t *run_header(const struct source *s, const struct dp_manifest *m, const char *manifest_path, const char *run_id,
                   json_t *boundary, const struct encoding *enc);
/* What --plan shows of the queries a run would send (borrowed strings). */
struct plan_queries {
	const char *sql;       /* the rows' SELECT */
	const char *count_sql; /* its COUNT_BIG(*) */
	const char *rows;      /* the count it returned, as JSON */
	json_t *ranges;        /* parallelism: each range's where, sql, rows; or NULL */
};
/* --plan: what a run would read, as one JSON document on stdout (dpone-plan's
 * input); reconciliation may be NULL. */
void print_plan(const struct source *s, const struct dp_manifest *m, json_t *boundary, const struct encoding *enc,
                const struct plan_queries *q, json_t *reconciliation);

/* Rows on their way to the stream: each is built in row (row_open,
 * row_member and row_member_end for every column, row_close) or handed
 * over whole (row_emit), checked against enc->max_row_bytes, written to w,
 * and its value of column inc kept as the watermark. */
struct row_writer {
	struct dp_writer *w;        /* borrowed */
	const struct source *s;     /* borrowed: the columns */
	const struct encoding *enc; /* borrowed */
	int inc;                    /* the column whose values make the watermark, or -1 */
	struct dp_buf row;          /* the row being built; owned */
	size_t inc_at, inc_len;     /* column inc's value in row (inc_len 0: none) */
	struct watermark wm;        /* owned */
	unsigned long long rows;    /* rows written */
	/* When set, sees every row before it is written (the keys that
	 * snapshot_reconciliation gathers); row_number counts from 1. */
	void (*tap)(void *ctx, const char *row, size_t len, unsigned long long row_number);
	void *tap_ctx;
};
void row_writer_init(struct row_writer *rw, struct dp_writer *w, const struct source *s, const struct encoding *enc,
                     int track_watermark);
/* Free the row buffer and the watermark (not w). */
void row_writer_free(struct row_writer *rw);
static inline void
row_open(struct row_writer *rw)
{
	rw->row.len = 0;
	rw->inc_len = 0;
	dp_buf_char(&rw->row, '{');
}
/* Append column i's separator and "name":; returns where its value starts. */
static inline size_t
row_member(struct row_writer *rw, int i)
{
	if (i)
		dp_buf_char(&rw->row, ',');
	dp_buf_add(&rw->row, rw->s->cols[i].json_key, rw->s->cols[i].json_key_len);
	return rw->row.len;
}
/* Column i's value, started at at, is complete. */
static inline void
row_member_end(struct row_writer *rw, int i, size_t at)
{
	if (i == rw->inc) {
		rw->inc_at = at;
		rw->inc_len = rw->row.len - at;
	}
}
/* Close the row being built and emit it. */
void row_close(struct row_writer *rw);
/* Write a finished row. A row longer than max_row_bytes stops the run (its
 * number in the message): it could not be published. */
void row_emit(struct row_writer *rw, const struct dp_buf *row);
/* Stream the rows of the current result through rw; returns how many.
 * Exits on errors and signals. Every batch_size rows the output is
 * flushed, so a reader downstream sees the rows in batches of that size at
 * most. */
unsigned long long stream_rows(struct source *s, struct row_writer *rw, int progress, long long batch_size);

/* ---- freetds_conf.c ---- */
/* A connection's freetds.conf settings, while its login is made. */
struct freetds_conf {
	char *conf, *saved_conf; /* the private freetds.conf and the FREETDSCONF before it; owned */
	const char *level;       /* off, request, require; NULL: the connection names no encryption */
	const char *instance;    /* a named instance, or NULL (borrowed from the connection) */
	int verified;            /* the certificate and host name are checked */
};
/* 1 when the connection names encryption (encrypt, ca_file,
 * trust_server_certificate) or an instance: then dbopen the server
 * "dpone"; 0 otherwise. Exits on a bad value (10) or encrypt=strict (9). */
int freetds_conf_begin(const struct dp_conn *conn, struct freetds_conf *t);
/* After dbopen: the private freetds.conf goes. */
void freetds_conf_end(struct freetds_conf *t);
/* What a failed login's message adds about encryption ("" when none). */
const char *freetds_conf_hint(const struct dp_conn *conn, const struct freetds_conf *t);

/* ---- safety.c ---- */
/* source.options.boundary_safety for an incremental column c. */
struct late_commit {
	char *below;   /* JSON: the column's values below it are committed; NULL: no bound (owned) */
	json_t *about; /* what the plan shows: policy, each candidate, reason (owned) */
};
/* Ask the server what bounds c (MIN_ACTIVE_ROWVERSION(), the oldest open
 * transaction); a server that will not say is a warning, never an exit. */
void late_commit_bound(struct source *s, const struct dp_manifest *m, const struct column *c,
                       const struct encoding *enc, struct late_commit *lc);
/* --check: can this login see the open transactions the manifest's
 * boundary_safety needs ({visible, column[, error]}), or NULL when the
 * job needs none. */
json_t *late_commit_probe(struct source *s, const struct dp_manifest *m, const struct encoding *enc);

/* ---- parallel.c ---- */
/* Read range i (1-based) of the boundary on a connection of its own and
 * write its rows, then ["end",{"rows":N,"watermark":{"low":..,"high":..}}],
 * to fd; exit 0, or with the error's status. Runs in a child process. */
typedef void (*read_range_fn)(void *ctx, int i, int fd);
/* Run n children of read_range concurrently and copy their rows, line by
 * line, to rw's writer (rw->rows counts them; rw->wm becomes the lowest
 * low and the highest high of theirs). A child that fails stops the
 * others, and the process exits with its status. */
void parallel_read(int n, read_range_fn read_range, void *ctx, struct row_writer *rw, int progress);

/* ---- cdc.c ---- */
struct cdc_request {
	const char *from, *to; /* committed offset, manual high LSN; NULL if not given */
	const char *run_id;
	const char *manifest_path; /* to read the committed capture instance from state */
	int count, plan, progress;
};
/* Strategy cdc: --count, --plan, or a run (initial snapshot or changes);
 * returns the exit status (errors exit). */
int cdc_extract(struct source *s, const struct dp_manifest *m, const struct cdc_request *rq,
                const struct encoding *enc);

/* ---- reconcile.c ---- */
struct reconcile;
/* For strategy snapshot_reconciliation (else NULL): a reconciliation
 * that gathers the keys of the rows given to reconcile_tap. */
struct reconcile *reconcile_start(const struct source *s, const struct dp_manifest *m, const char *manifest_path,
                                  const char *run_id);
/* A row_writer tap (ctx: the struct reconcile): the row's key into the
 * running reconciliation. */
void reconcile_tap(void *ctx, const char *row, size_t len, unsigned long long row_number);
/* After the last row: compare with the committed key index, stage the new
 * one, check max_delete_pct (exits 8), write the deletes and the
 * reconciliation message to w. Returns the deletes written. */
unsigned long long reconcile_finish(struct reconcile *rc, struct dp_writer *w);
/* --plan: gather the keys of the boundary (where may be NULL) with a
 * query of the key columns alone. */
void reconcile_keys_from(struct reconcile *rc, struct source *s, const char *where, const struct encoding *enc);
/* --plan: what a run would find missing and delete, a new object; every
 * missing key also goes to list, one per line, unless it is NULL. */
json_t *reconcile_plan(struct reconcile *rc, FILE *list);
void reconcile_free(struct reconcile *rc);
/* dp_die's cleanup: the staged key index of a run that did not finish. */
void reconcile_remove_staged(void);

/* ---- bcp.c ---- */
/* Bulk-copy sql out, converting the copy into rows through rw (whose
 * writer is the artifact; nothing on stdout) as it arrives; returns how
 * many. Exits on errors. */
unsigned long long bcp_extract(struct source *s, const char *sql, struct row_writer *rw);
/* Write the finished artifact's stream on stdout. */
void bcp_replay(const char *artifact);

/* ---- infer.c ---- */
/* --infer: profile the first sample rows; a contract YAML on stdout. */
void infer_contract(struct source *s, const struct encoding *enc, long long sample);

#endif
