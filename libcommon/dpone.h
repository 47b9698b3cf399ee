/*
 * dpone.h: the one public header of libcommon, shared by every dpone command.
 *
 * Ownership rule used throughout: a function returning `char *` or a struct
 * pointer hands the caller ownership (free with the matching _free or _close function);
 * a `const` return or a json_t documented as "borrowed" stays owned by its
 * parent and lives as long as it does.
 */
#ifndef DPONE_H
#define DPONE_H

#include <signal.h>
#include <sys/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* From the file VERSION, through the Makefile (-DDPONE_VERSION): one place. */
#ifndef DPONE_VERSION
#define DPONE_VERSION "unknown"
#endif

/* ---- exit codes (exit_codes.def is the single table) ---- */
enum dp_exit {
#define X(name, num, label, text) DP_EXIT_##name = num,
#include "exit_codes.def"
#undef X
};
/* Short label of an exit code ("sink"), or "unknown". */
const char *dp_exit_label(int code);

/* ---- errors and memory (err.c), in the style of sbase's eprintf ---- */
extern const char *dp_progname;
void dp_setprogname(const char *argv0);
/* Print "prog: message" on stderr as one line. An errno is reported one
 * way everywhere: "...: %s", strerror(errno) in the message itself. */
void dp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Diagnostics as text ("prog: message") or as one JSON object per line
 * (--log-format json, observability.log_format, DPONE_LOG_FORMAT=json):
 * time, level (error, warning: a message starting "warning: ", else info),
 * stage, job, run_id (DPONE_RUN_ID unless set), message, and what the
 * message names (file/line/column/key, stream_line, exit_code). */
void dp_log_set_format(const char *format);
void dp_log_set_job(const char *job);
void dp_log_set_run_id(const char *run_id);
int dp_log_json(void);
/* Print "prog: message" and _exit(code), after the cleanup set by dp_on_die.
 * (noreturn twice: cppcheck reads the attribute, not C11's keyword.) */
_Noreturn void dp_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void dp_on_die(void (*cleanup)(void));
/* A command's classification of its error exits: dp_die's code goes
 * through it (dpone-extract maps a transient source failure to 12). */
void dp_on_die_classify(int (*classify)(int code));
void *dp_xmalloc(size_t n);
void *dp_xcalloc(size_t nmemb, size_t n);
void *dp_xrealloc(void *p, size_t n);
char *dp_xstrdup(const char *s);
char *dp_xstrndup(const char *s, size_t n);
/* printf into a new string; the caller frees it. */
char *dp_strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *dp_vstrfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Flush and close a stream, reporting any write error; 0 when all went out. */
int dp_fshut(FILE *fp, const char *name);

/* ---- a growable byte buffer (buf.c); the owner frees p ---- */
struct dp_buf {
	char *p;
	size_t len, cap;
};
void dp_buf_reserve(struct dp_buf *b, size_t more);
/* The appends run for every value of every row: inline, growing out of
 * line only when the buffer is full. */
static inline void
dp_buf_add(struct dp_buf *b, const void *p, size_t n)
{
	if (!n)
		return; /* b->p may still be NULL: memcpy must not see it */
	if (b->cap - b->len < n)
		dp_buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}
static inline void
dp_buf_str(struct dp_buf *b, const char *s)
{
	dp_buf_add(b, s, strlen(s));
}
static inline void
dp_buf_char(struct dp_buf *b, char c)
{
	if (b->cap == b->len)
		dp_buf_reserve(b, 1);
	b->p[b->len++] = c;
}

/* ---- fields of valid JSON without parsing it (json_scan.c) ---- */
/* Bytes of one JSON value inside a line; p is NULL when the field is absent. */
struct dp_span {
	const char *p;
	size_t n;
};
/* Whether a valid JSON object names a top-level member twice (names
 * compared decoded): 1 with the second's offset in *at, 0, or -1 with *at
 * when it has more than 8191 members. Not thread-safe (one table). */
int dp_duplicate_name(const char *obj, size_t len, size_t *at);
/* Find the values of names (n of them) among the members of the JSON object
 * obj[0..len), which must be valid JSON. Returns 0, -1 if it is not an object. */
int dp_scan_object(const char *obj, size_t len, char *const *names, size_t n, struct dp_span *out);
/* The member named q..qe (with its quotes, valid JSON; escaped: it has a
 * backslash) has the value v: out[i] = v for each names[i] (lens[i] long)
 * it is that has no value yet, so a name asked for twice gets it twice.
 * Returns how many it set. */
size_t dp_member_take(const char *q, const char *qe, int escaped, char *const *names, const size_t *lens, size_t n,
                      struct dp_span *out, struct dp_span v);
/* The object in the second element of a control line ["delete", {...}, ...]. */
int dp_control_object(const char *line, size_t len, struct dp_span *out);
/* Copy the object obj[0..len) (valid JSON) to out with the members named
 * from[i] renamed to[i], everything else byte for byte. 0, or -1. */
int dp_rename_members(const char *obj, size_t len, char *const *from, char *const *to, size_t n, struct dp_buf *out);
/* Append a value in canonical form (compact; strings as jansson writes them;
 * a number in one form a value: -0 is 0, 1.0 and 1e0 are 1, 1.50 is 1.5),
 * as keys are built, so that equal keys are one key on one partition. */
void dp_buf_value(struct dp_buf *b, struct dp_span v);
/* Append a value as text: a string's characters without quotes, else its
 * JSON (numbers canonical as above). */
void dp_buf_value_text(struct dp_buf *b, struct dp_span v);
/* Append the compact JSON of any value / a JSON string literal for s. */
void dp_buf_json(struct dp_buf *b, const json_t *v);
void dp_buf_json_string(struct dp_buf *b, const char *s);
/* Canonical bytes of the values of names in obj, as a JSON array: the
 * identity of a row's key. 0, or -1 with why in err. */
int dp_key_identity(char *const *names, size_t n, const char *obj, size_t len, struct dp_buf *out, char *err,
                    size_t errlen);

/* ---- a set of keys in bounded memory (keyset.c): 16-43 bytes per key ---- */
struct dp_keyset;
struct dp_keyset *dp_keyset_new(void);
/* Add key with line (> 0). Returns the line the key already had, or 0 when
 * it is new; replace: an existing key takes the new line. */
uint32_t dp_keyset_put(struct dp_keyset *ks, const void *key, size_t len, uint32_t line, int replace);
/* The key's line, or 0 when it is not in the set. */
uint32_t dp_keyset_find(const struct dp_keyset *ks, const void *key, size_t len);
size_t dp_keyset_count(const struct dp_keyset *ks);
void dp_keyset_free(struct dp_keyset *ks);

/* ---- sorting keys in bounded memory (keysort.c) ---- */
struct dp_keysort;
/* Sort with at most memory_bytes of keys in memory (at least 1 MiB); the
 * rest spills to unlinked files under TMPDIR. */
struct dp_keysort *dp_keysort_new(size_t memory_bytes);
/* Add a key; 0, or -1 with errno (a temporary file could not be written). */
int dp_keysort_add(struct dp_keysort *ks, const char *key, size_t len);
/* No more keys: prepare the merge; 0 or -1 with errno. */
int dp_keysort_finish(struct dp_keysort *ks);
/* The next key in byte order, duplicates dropped: 1 (key valid until the
 * next call), 0 at the end, -1 with errno. */
int dp_keysort_next(struct dp_keysort *ks, const char **key, size_t *len);
/* Keys written to temporary files so far. */
unsigned long long dp_keysort_spilled(const struct dp_keysort *ks);
void dp_keysort_free(struct dp_keysort *ks);
/* The order keys sort in: bytes, then length. */
int dp_keysort_compare(const char *a, size_t alen, const char *b, size_t blen);

/* ---- small helpers (util.c) ---- */
size_t dp_edit_distance(const char *a, const char *b);
/* The candidate closest to word (NULL-terminated list), or NULL if none is close. */
const char *dp_did_you_mean(const char *word, const char *const *candidates);
/* Parse a whole decimal integer; 0 on success. */
int dp_parse_ll(const char *s, long long *out);
/* Nonzero if p..end is not empty and holds only the digits 0-9. */
int dp_all_digits(const char *p, const char *end);
/* watermark.c: <0, 0, >0 as a is below, equal to, above b in the order of
 * the column's SQL type (sql_type may be NULL). */
int dp_compare_watermarks(const json_t *a, const json_t *b, const char *sql_type);
/* Seconds in a duration written 30s, 15m, 2h or 1d; -1 for anything else. */
long long dp_duration_seconds(const char *s);
/* Seconds since the epoch of a timestamp written YYYY-MM-DD[THH:MM:SS[.f]]
 * with an optional +hh:mm / -hh:mm / Z (UTC when there is none); 0 or -1. */
int dp_timestamp_utc(const char *text, long long *seconds);
/* A new temporary file under TMPDIR (else /tmp), already unlinked, open
 * for writing and reading back; NULL with errno. */
FILE *dp_tmpfile(const char *prefix);
/* All n bytes of data to fd, through short writes and EINTR; 0, or -1 with errno. */
int dp_write_all(int fd, const void *data, size_t n);
/* The libpq dpone-state opens (and dpone doctor looks for); the Debian
 * package Recommends libpq5 for it. */
#define DP_LIBPQ_SONAME "libpq.so.5"
/* Libraries only some runs need (libcurl for Vault, libpq for a postgres
 * state) are opened on first use rather than linked: loading one with its
 * dependencies costs every process ~6 ms at start-up. The first of sonames
 * (NULL-terminated) that loads, or NULL with why in err. */
void *dp_library_open(const char *what, const char *const *sonames, char *err, size_t errlen);
/* A function of such a library, or NULL with why in err. */
void *dp_library_symbol(void *lib, const char *what, const char *name, char *err, size_t errlen);
/* Replace path with len bytes of data, durably (see util.c); 0, or -1 with errno. */
int dp_write_file_durably(const char *path, const void *data, size_t len);
/* fsync the directory holding path, so that a rename into it is durable. */
void dp_fsync_dir(const char *path);
/* mkdir -p: dir and every missing parent, new ones with mode; 0, or -1
 * with errno (the component that failed is not named: say dir). */
int dp_mkdir_p(const char *dir, mode_t mode);

/* ---- signals and time (signals.c) ---- */
/* Set to the signal number by SIGINT/SIGTERM once dp_catch_interrupts ran.
 * A stream reader blocked on its input then fails with DP_EXIT_INTERRUPTED. */
extern volatile sig_atomic_t dp_interrupted;
void dp_catch_interrupts(void);
/* Seconds on the monotonic clock, for elapsed times and progress. */
double dp_now(void);

/* ---- SHA-256 (sha256.c): for hashes others must be able to recompute ---- */
struct dp_sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char block[64];
	size_t used;
};
void dp_sha256_init(struct dp_sha256 *s);
void dp_sha256_update(struct dp_sha256 *s, const void *data, size_t n);
void dp_sha256_final(struct dp_sha256 *s, unsigned char out[32]);
/* Lowercase hex digest of data, NUL-terminated. */
void dp_sha256_hex(const void *data, size_t n, char out[65]);
/* The first 8 bytes of a row line's SHA-256, big-endian. Summed over rows
 * (mod 2^64) they give an order-free hash of a set of rows: dpone-check
 * sums the rows extracted, dpone-produce the rows published. */
uint64_t dp_row_hash(const char *line, size_t len);

/* ---- strict JSON validation for the row hot path (json_check.c) ---- */
struct dp_json_error {
	size_t offset;    /* byte offset of the first offending byte */
	const char *what; /* static message */
};
/* Length (1..4) of the valid UTF-8 sequence at p, or 0 if it is not one. */
size_t dp_utf8_len(const unsigned char *p, const unsigned char *end);
/* 0 if buf[0..len) is exactly one RFC 8259 JSON value in valid UTF-8
 * (no lone surrogates), as jansson would accept it; -1 otherwise. */
int dp_json_validate(const char *buf, size_t len, struct dp_json_error *err);
/* The same, also finding the values of names (n of them, lens their
 * lengths) among the members of a top-level object as dp_scan_object does,
 * in the same pass. */
int dp_json_validate_members(const char *buf, size_t len, char *const *names, const size_t *lens, size_t n,
                             struct dp_span *out, struct dp_json_error *err);
/* dp_json_validate_members for a stream row: also refuses a top-level
 * member name that appears twice (jansson and most consumers keep the last
 * value, a scan for a key the first). expect (nexpect names, as JSON
 * strings with their quotes, expect_lens their lengths) are the names a row
 * usually has, in order, all distinct: a row that has those, or the first
 * of them, is checked at the cost of one comparison a member; any other
 * goes through dp_duplicate_name (and is not thread-safe, as it is not). */
int dp_json_validate_row(const char *buf, size_t len, char *const *expect, const size_t *expect_lens, size_t nexpect,
                         char *const *names, const size_t *lens, size_t n, struct dp_span *out,
                         struct dp_json_error *err);

/* ---- the dpone stream (stream.c); documented in dpone-stream(7) ---- */
#define DP_STREAM_PROTOCOL 1
#define DP_MAX_LINE_DEFAULT (64u << 20)
/* Control messages are parsed into a tree (jansson): a bound on their bytes
 * (DPONE_MAX_CONTROL_BYTES), nesting and values keeps that tree small
 * whatever the input; rows are never parsed into one. */
#define DP_MAX_CONTROL_DEFAULT (1u << 20)
#define DP_MAX_CONTROL_DEPTH 32
#define DP_MAX_CONTROL_VALUES 100000

enum dp_line_kind { DP_LINE_ROW, DP_LINE_CONTROL };
enum dp_reader_flags {
	DP_READ_VALIDATE_ROWS = 1, /* check every row is valid JSON (else only its framing) */
	DP_READ_SUMMARY = 2        /* a summary stream (dpone-produce's output): no rows, and
	                            * end's counts are not checked against it */
};

struct dp_reader;
/* Reads the stream on fd (plain or zstd, detected by magic). name is used in
 * messages ("stdin"). The fd is not closed by dp_reader_close. */
struct dp_reader *dp_reader_open(int fd, const char *name, int flags);
/* 1: a line is ready (header, row, delete, end, any control message);
 * 0: the stream ended properly and was consumed to EOF;
 * -1: error, see dp_reader_error/dp_reader_error_code. */
int dp_reader_next(struct dp_reader *r);
/* The current line without its newline; borrowed until the next call. */
const char *dp_reader_line(const struct dp_reader *r, size_t *len);
enum dp_line_kind dp_reader_kind(const struct dp_reader *r);
unsigned long long dp_reader_lineno(const struct dp_reader *r);
/* For a control line: its name and the parsed array (borrowed). */
const char *dp_reader_control_name(const struct dp_reader *r);
json_t *dp_reader_control(const struct dp_reader *r);
/* The header's body object once seen (borrowed), else NULL. */
json_t *dp_reader_header(const struct dp_reader *r);
/* The column object named name in a header body (borrowed), or NULL. */
json_t *dp_header_column(const json_t *header, const char *name);
/* Ask for the values of the top-level members names (n of them, borrowed
 * until the reader is closed) of every row from now on: found while the row
 * is validated, so that a stage needing a few fields scans a row only once. */
void dp_reader_want(struct dp_reader *r, char *const *names, size_t n);
/* For a row line: the values of the wanted names, in their order (a span's
 * p is NULL when the row has no such member); borrowed until the next call. */
const struct dp_span *dp_reader_members(const struct dp_reader *r);
unsigned long long dp_reader_rows(const struct dp_reader *r);
unsigned long long dp_reader_deletes(const struct dp_reader *r);
unsigned long long dp_reader_bytes(const struct dp_reader *r);
const char *dp_reader_error(const struct dp_reader *r);
int dp_reader_error_code(const struct dp_reader *r);
void dp_reader_close(struct dp_reader *r);

struct dp_writer;
/* Buffered writer on fd; zstd_level > 0 compresses. The fd is not closed. */
struct dp_writer *dp_writer_open(int fd, const char *name, int zstd_level);
/* Write len bytes and a newline; 0 or -1 (see dp_writer_error). */
int dp_writer_line(struct dp_writer *w, const char *buf, size_t len);
/* Write ["name", body]; body is stolen (may be NULL for {}). */
int dp_writer_control(struct dp_writer *w, const char *name, json_t *body);
/* Write any JSON value compactly on one line (not stolen). */
int dp_writer_json(struct dp_writer *w, const json_t *value);
int dp_writer_flush(struct dp_writer *w);
const char *dp_writer_error(const struct dp_writer *w);
/* Flush, end the zstd frame, free. 0 if everything was written. */
int dp_writer_close(struct dp_writer *w);

/* ---- manifest (manifest.c, manifest_schema.c); see dpone-manifest(5) ---- */
/* The manifest's choices that commands branch on, each one table: its
 * enum here, the values manifest_schema.c accepts (in enum order), and the
 * field of struct dp_manifest it is resolved into at load. */
#define DP_STRATEGIES(X)                                         \
	X(DP_FULL_REFRESH, "full_refresh")                       \
	X(DP_INCREMENTAL_APPEND, "incremental_append")           \
	X(DP_INCREMENTAL_MERGE, "incremental_merge")             \
	X(DP_REPLACE, "replace")                                 \
	X(DP_PARTITION_REPLACE, "partition_replace")             \
	X(DP_SNAPSHOT_RECONCILIATION, "snapshot_reconciliation") \
	X(DP_CDC, "cdc")
#define DP_DELIVERY_MODES(X)                 \
	X(DP_AT_LEAST_ONCE, "at_least_once") \
	X(DP_IDEMPOTENT, "idempotent")       \
	X(DP_EXACTLY_ONCE, "exactly_once")
#define DP_QUALITY_MODES(X)        \
	X(DP_QUALITY_FAIL, "fail") \
	X(DP_QUALITY_WARN, "warn") \
	X(DP_QUALITY_OFF, "off")
#define DP_STATE_TYPES(X)        \
	X(DP_STATE_FILE, "file") \
	X(DP_STATE_POSTGRES, "postgres")
#define DP_EXPORT_MODES(X)            \
	X(DP_EXPORT_STREAM, "stream") \
	X(DP_EXPORT_BCP, "bcp")
#define DP_BIGINT_MODES(X)            \
	X(DP_BIGINT_NUMBER, "number") \
	X(DP_BIGINT_STRING, "string")
#define DP_BINARY_MODES(X)            \
	X(DP_BINARY_BASE64, "base64") \
	X(DP_BINARY_HEX, "hex")
#define DP_BREAKING_POLICIES(X)     \
	X(DP_BREAKING_FAIL, "fail") \
	X(DP_BREAKING_VARIANT, "variant")
/* quality.checks[].type (resolved by dp_check_type, one per check). */
#define DP_CHECK_TYPES(X)                               \
	X(DP_CHECK_MIN_ROWS, "min_rows")                \
	X(DP_CHECK_MAX_ROWS, "max_rows")                \
	X(DP_CHECK_SOURCE_COUNT, "source_target_count") \
	X(DP_CHECK_NOT_NULL, "not_null")                \
	X(DP_CHECK_UNIQUE, "unique")                    \
	X(DP_CHECK_FRESHNESS, "freshness")              \
	X(DP_CHECK_HASH, "hash_reconciliation")
#define DP_ENUM_ID(id, name) id,
#define DP_ENUM_NAME(id, name) name,
enum dp_strategy { DP_STRATEGIES(DP_ENUM_ID) };
enum dp_delivery_mode { DP_DELIVERY_MODES(DP_ENUM_ID) };
enum dp_quality_mode { DP_QUALITY_MODES(DP_ENUM_ID) };
enum dp_state_type { DP_STATE_TYPES(DP_ENUM_ID) };
enum dp_export_mode { DP_EXPORT_MODES(DP_ENUM_ID) };
enum dp_bigint_mode { DP_BIGINT_MODES(DP_ENUM_ID) };
enum dp_binary_mode { DP_BINARY_MODES(DP_ENUM_ID) };
enum dp_breaking_policy { DP_BREAKING_POLICIES(DP_ENUM_ID) };
/* sink.options.dpone_headers: the dpone.* headers a message may carry
 * (dpone-produce(1), Headers). */
#define DP_DPONE_HEADERS(X)                 \
	X(DP_HEADER_RUN_ID, "run_id")       \
	X(DP_HEADER_SOURCE, "source")       \
	X(DP_HEADER_WATERMARK, "watermark") \
	X(DP_HEADER_CHANGE, "change")
enum dp_dpone_header { DP_DPONE_HEADERS(DP_ENUM_ID) };
extern const char *const dp_dpone_header_names[];
enum dp_check_type { DP_CHECK_TYPES(DP_ENUM_ID) };

struct dp_manifest {
	char *path;
	json_t *root;                        /* resolved: defaults applied, key lists normalized */
	json_t *marks;                       /* "a.b[0].c" -> [line, column] of the value in the file */
	enum dp_strategy strategy;           /* sink.strategy.mode */
	enum dp_delivery_mode delivery;      /* sink.options.delivery.mode */
	enum dp_quality_mode quality;        /* quality.mode */
	enum dp_state_type state_type;       /* state.type */
	enum dp_export_mode export_mode;     /* source.options.export_mode */
	enum dp_bigint_mode bigint_as;       /* source.options.bigint_as */
	enum dp_binary_mode binary_as;       /* source.options.binary_as */
	enum dp_breaking_policy on_breaking; /* schema_evolution.on_breaking */
};
/* The check type named name (a value the manifest accepted), or -1. */
int dp_check_type(const char *name);
/* Load and check a manifest. On error returns NULL and writes one line
 * "FILE:LINE:COL: key.path: message" into err. Warnings go to stderr. */
struct dp_manifest *dp_manifest_load(const char *path, char *err, size_t errlen);
void dp_manifest_free(struct dp_manifest *m);
/* Borrowed value at a dotted path ("sink.strategy.mode"), or NULL. */
json_t *dp_manifest_get(const struct dp_manifest *m, const char *path);
const char *dp_manifest_str(const struct dp_manifest *m, const char *path);
long long dp_manifest_int(const struct dp_manifest *m, const char *path, long long dflt);
/* Format "FILE:LINE:COL: path: " for messages about a key, into buf. */
const char *dp_manifest_where(const struct dp_manifest *m, const char *path, char *buf, size_t len);
/* path as the manifest at manifest_path means it: a relative path is the
 * manifest's neighbour (not the working directory's), made absolute; the
 * caller frees it. One rule for every path a manifest names. */
char *dp_path_beside(const char *manifest_path, const char *path);
/* Nonzero if runs read an incremental boundary (low, high] from committed
 * state: strategy cdc (an LSN offset), or incremental_append or
 * incremental_merge with an incremental_column. */
int dp_manifest_incremental(const struct dp_manifest *m);
/* 0 if text is one T-SQL boolean expression dpone may paste into a WHERE
 * clause (source_custom_predicate); else -1 with why and where in why. */
int dp_sql_predicate_check(const char *text, char *why, size_t whylen);
/* Nonzero if quality.checks has a check of type and quality.mode is not off. */
/* The manifest's sink.options.dpone_headers as bits, 1 << enum dp_dpone_header each. */
unsigned dp_manifest_dpone_headers(const struct dp_manifest *m);
int dp_manifest_has_check(const struct dp_manifest *m, enum dp_check_type type);

/* Generic YAML loading shared by the manifest and the connection registry.
 * Scalars are typed by the YAML 1.2 core schema (plain true/false, null,
 * integers, floats; quoted scalars stay strings). marks may be NULL. */
json_t *dp_yaml_load_file(const char *path, json_t *marks, char *err, size_t errlen);

/* ---- HTTP through libcurl, opened on first use (http.c) ---- */

struct dp_http_request {
	const char *method; /* NULL: GET, or POST when there is a body */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated (an entry NULL ends it too) */
	const char *body;           /* or NULL */
	size_t body_len;
	const char *user, *password;   /* basic auth, or NULL */
	const char *cacert;            /* a CA file, or NULL for the system's */
	long connect_timeout, timeout; /* seconds; 0: 10 and 30 */
};
struct dp_http_answer {
	long status;
	char *body; /* owned, NUL-terminated, or NULL */
	size_t len;
	int too_big;
};
/* 0 with the answer (any HTTP status), or -1 with why in err (no answer). */
int dp_http_request(const struct dp_http_request *rq, struct dp_http_answer *a, char *err, size_t errlen);
void dp_http_answer_free(struct dp_http_answer *a);
/* path with each segment URL-escaped, slashes kept; the caller frees it
 * (NULL if libcurl cannot be loaded). */
char *dp_http_escape_path(const char *path);
/* The libcurl version, or NULL with why in err. */
const char *dp_http_library_version(char *err, size_t errlen);

/* ---- connection registry (registry.c, vault.c); see dpone-manifest(5) ---- */
struct dp_conn {
	char *id;
	char *kind; /* "mssql", "kafka", "postgres", "http" or "https" */
	char *host; /* first host (mssql, postgres, http) */
	char *url;  /* http(s): the URL without user and password, safe to print */
	int port;
	char *user;
	char *password; /* secret: never printed */
	char *database;
	char *brokers;  /* kafka: "host:port,host:port" */
	json_t *params; /* other settings, string -> string; may hold secrets */
	char *origin;   /* where it came from, safe to print: "env DPONE_CONN_X" */
};
/* Resolve connection id through connection_type env|file|vault. kind is the
 * expected kind or NULL. Returns 0, or an exit code with a one-line message
 * (never containing a secret) in err. */
int dp_conn_resolve(const char *id, const char *connection_type, const char *kind, struct dp_conn *out, char *err,
                    size_t errlen);
void dp_conn_free(struct dp_conn *c);
/* A JSON description with every secret replaced by "***"; the caller owns it. */
json_t *dp_conn_redacted(const struct dp_conn *c);
/* A file holding secrets (the registry, a Vault token file) must be the
 * user's own and private: owned by the effective user, no access for group
 * or others. 0, or -1 with a one-line message and the command that fixes
 * it in err (what names the file's role: "registry", "Vault token file"). */
int dp_check_secret_file(const char *path, const char *what, char *err, size_t errlen);
/* Nonzero if a setting of that name holds a secret (password, token, ...). */
int dp_is_secret_key(const char *key);
/* Replace, in doc and everything under it, the value of every member whose
 * name dp_is_secret_key calls secret by "***": what every writer of a
 * manifest, plan or artifact shows (sink.options.properties' sasl.password,
 * ssl.key.password, ...). Returns doc. */
json_t *dp_json_redact(json_t *doc);
/* Name of the environment variable holding connection id; the caller frees it. */
char *dp_conn_env_name(const char *id);
/* Use the registry file path (--registry) instead of DPONE_REGISTRY and
 * the defaults, here and in the stages this process starts (it sets
 * DPONE_REGISTRY for them); NULL goes back to the defaults. */
void dp_registry_set_path(const char *path);

/* Vault / OpenBao KV v2 read: GET $VAULT_ADDR/v1/<mount>/data/<path>.
 * Returns the secret's data object (owned), or NULL with err set. */
json_t *dp_vault_read(const char *mount, const char *path, int *code, char *err, size_t errlen);
/* The version of the libcurl Vault reads go through, or NULL with why in err. */
const char *dp_vault_curl_version(char *err, size_t errlen);

/* ---- shared command-line handling (cli.c) ---- */
struct dp_cli {
	const char *manifest_path; /* the first operand */
	char **more;               /* operands after it (borrowed from argv) */
	int nmore;
	int quiet;
	int print_manifest;
};
/* The --help lines of the options dp_cli_parse handles, for usage texts. */
#define DP_CLI_COMMON_HELP                                                                  \
	"  -h, --help          show this help and exit\n"                                   \
	"  -V, --version       show the version and exit\n"                                 \
	"  -q, --quiet         no progress on stderr\n"                                     \
	"      --registry FILE connection registry for connection_type: file\n"             \
	"      --print-manifest  print the resolved manifest (secrets redacted) and exit\n" \
	"      --log-format text|json  diagnostics as text or one JSON object per line\n"
/* Parse the options every command shares (-h, -V, -q, --registry FILE,
 * --print-manifest), a MANIFEST operand and at most max_more operands after
 * it. usage_text is printed by --help on stdout (exit 0) and after a usage
 * error on stderr (exit 2). */
void dp_cli_parse(int argc, char **argv, const char *usage_text, int max_more, struct dp_cli *cli);
/* The same with a command's own long options (NULL-terminated; their val
 * must be OPT_EXTRA or more): handle(val, optarg, ctx) returns 0, or -1
 * after printing why the value is wrong (then: usage, exit 2). */
#define OPT_EXTRA 512
struct option;
void dp_cli_parse_ex(int argc, char **argv, const char *usage_text, int max_more, const struct option *extra,
                     int (*handle)(int id, const char *arg, void *ctx), void *ctx, struct dp_cli *cli);
/* Load the manifest or die with DP_EXIT_USAGE and its one-line error. */
struct dp_manifest *dp_cli_load_manifest(const char *path);
/* Resolve the connection at section ("source", "sink", "state") of the
 * manifest, or die with the resolver's exit code. */
void dp_cli_resolve(const struct dp_manifest *m, const char *section, const char *kind, struct dp_conn *out);
/* --print-manifest: the resolved manifest with its connections resolved and
 * redacted, as indented JSON on stdout; exits. */
_Noreturn void dp_cli_print_manifest(const struct dp_manifest *m);
/* ---- schema evolution (schema.c); see dpone-manifest(5) ---- */
/* Where on_breaking: variant routes a column's values of a new type. */
#define DP_VARIANT_PREFIX "__dpone__nc__"
/* The changes from the published columns to the current ones (both arrays
 * of stream header column objects), as a new array of {column, change,
 * from, to, breaking}; change is added, widened, narrowed, type_changed,
 * null_allowed, null_refused or dropped. */
json_t *dp_schema_diff(const json_t *published, const json_t *current);
/* How many of the changes are breaking. */
size_t dp_schema_breaking(const json_t *changes);

/* ---- running another stage (spawn.c) ---- */
/* The program name beside this executable (as the dpone wrapper finds its
 * stages), else name itself for a PATH search; the caller frees it. */
char *dp_sibling_path(const char *name);
/* Run argv (argv[0] a stage name, found as dp_sibling_path finds it) with
 * its stderr passed through; returns its stdout (owned, NUL-terminated) and
 * its exit status in *code (128+N for signal N), or NULL and *code -1 if
 * it could not start (a warning says why). */
char *dp_run_capture(char *const argv[], int *code);
/* The same with its stderr captured too, into *err_out (owned). */
char *dp_run_capture_err(char *const argv[], int *code, char **err_out);
/* Start argv with its stdout on a pipe; the pipe's read end, or -1 (said
 * on stderr). Its stderr is ours. Reap it with dp_spawn_wait. */
int dp_spawn_reader(char *const argv[], pid_t *pid);
/* Wait for pid: its exit status, 128 + signal, or -1. */
int dp_spawn_wait(pid_t pid);
/* The job's committed state as dpone-state get prints it ({job, record,
 * lease}; owned), read through dpone-state so that every backend works; a
 * state file that does not exist yet is not created just to be read.
 * NULL with dpone-state's exit status in *code when it failed. */
json_t *dp_committed_state(const struct dp_manifest *m, const char *manifest_path, int *code);

/* checks.c: what dpone-check and dpone-produce share about checks. */
/* 1 when a run needs dpone-check between extract and produce: a check that
 * reads rows, a type contract, variant columns, or cdc's source count;
 * min_rows and max_rows are decided by dpone-produce from the rows it read,
 * source_target_count from the count dpone-extract puts in its end. */
int dp_manifest_check_stage(const struct dp_manifest *m);
/* min_rows or max_rows (kind) on rows: ok, and why (owned, for the result). */
int dp_rows_check(int kind, const json_t *spec, unsigned long long rows, char **why);
/* A check's result object {type, severity, name?} (owned), then its status
 * and detail (why, which this frees) once decided. */
json_t *dp_check_result(const json_t *spec);
void dp_check_verdict(const struct dp_manifest *m, json_t *r, int ok, char *why);
/* The checks message's body from the decided results (taken) and the
 * contract's result (taken, or NULL); says each failure on stderr; sets
 * *passed, and *idle when the run read no rows and only min_rows failed. */
json_t *dp_checks_message(const struct dp_manifest *m, json_t *results, json_t *contract, int contract_failed,
                          unsigned long long rows, int quiet, int *passed, int *idle);
/* What a check with a tolerance allows on rows (tolerance, tolerance_pct). */
double dp_check_allowed(const json_t *spec, unsigned long long rows);
/* source_target_count: the source's count against the stream's rows. */
int dp_source_count_check(const json_t *spec, long long source, unsigned long long rows, char **why);
/* The same for a manifest whose checks need no check stage: min_rows,
 * max_rows, and source_target_count from source_rows (the count
 * dpone-extract put in the end message; -1 when there is none). */
json_t *dp_rows_checks_message(const struct dp_manifest *m, unsigned long long rows, long long source_rows, int quiet,
                               int *passed, int *idle);

/* evolve.c: schema evolution against the schema last published (kept in
 * the job's state by dpone-state commit). */
struct dp_evolution {
	json_t *published;  /* the columns last published, or NULL; owned */
	char *published_by; /* the run that published them; owned */
	char **from, **to;  /* on_breaking: variant renames, owned */
	size_t nrename;
};
/* Read the published schema from state, before the stream: the run's
 * lease keeps it from changing meanwhile. Dies when state cannot be read.
 * Nothing to do when schema_evolution is disabled. */
void dp_evolve_prepare(const struct dp_manifest *m, const char *manifest_path, struct dp_evolution *ev);
/* Compare the header's columns with the published schema. Breaking changes
 * stop the run here (exit 8), before a row reaches dpone-produce, unless
 * on_breaking is variant. Returns the header to pass on (owned): the
 * input's, with schema_changes added when something changed. */
json_t *dp_evolve_header(const struct dp_manifest *m, const json_t *header, struct dp_evolution *ev);
/* A row as it goes on: with variant columns renamed (into out, returns 1),
 * or unchanged (returns 0). */
int dp_evolve_row(const struct dp_evolution *ev, const char *line, size_t len, struct dp_buf *out);
void dp_evolution_free(struct dp_evolution *ev);

/* Close stdout, turning a failed write into DP_EXIT_FAILURE, and exit. */
_Noreturn void dp_exit_flushing_stdout(int code);

#endif
