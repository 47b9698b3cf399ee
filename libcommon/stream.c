/*
 * stream.c: framing of the dpone stream (see dpone-stream(7)).
 *
 * One JSON value per line. Rows are objects and are recognised by their
 * first byte, so they are handed out without being parsed; control messages
 * are arrays ["name", {...}] and are parsed with jansson. The reader enforces
 * the protocol (header first, end last, end's row count equal to the rows
 * seen) because a consumer that commits on a truncated stream loses rows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "dpone.h"

#define READ_CHUNK (256u << 10)
static const unsigned char zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};

struct dp_reader {
	int fd;
	char *name;
	int flags;
	size_t max_line;
	size_t max_control; /* bytes of a control message */

	char *buf; /* lines are framed in buf[start..end) */
	size_t cap, start, end;
	int eof;     /* no more bytes will come from the source */
	int sniffed; /* the first bytes were checked for the zstd magic */

	ZSTD_DStream *zds; /* non-NULL once the input proved compressed */
	unsigned char *zin;
	size_t zin_len, zin_pos;
	int zin_eof;
	size_t zret; /* last ZSTD_decompressStream hint; 0 at a frame end */

	const char *line; /* current line, inside buf */
	size_t line_len;
	enum dp_line_kind kind;
	unsigned long long lineno, rows, deletes, bytes;
	json_t *control; /* current control message (owned) */
	const char *control_name;
	json_t *header; /* header body (owned) */
	int seen_end;

	char *const *want; /* top-level members asked for by dp_reader_want (borrowed) */
	size_t *want_lens; /* their lengths (owned) */
	size_t nwant;
	struct dp_span *members; /* their values in the current row (owned) */

	char **column_json;  /* the header's column names as JSON strings (owned) */
	size_t *column_lens; /* their lengths (owned) */
	size_t ncolumns;

	char *error;
	int error_code;
};

static int rfail(struct dp_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
rfail(struct dp_reader *r, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	free(r->error);
	r->error = dp_strfmt("%s:%llu: %s", r->name, r->lineno, msg);
	r->error_code = code;
	return -1;
}

struct dp_reader *
dp_reader_open(int fd, const char *name, int flags)
{
	struct dp_reader *r = dp_xcalloc(1, sizeof *r);
	r->fd = fd;
	r->name = dp_xstrdup(name);
	r->flags = flags;
	r->max_line = DP_MAX_LINE_DEFAULT;
	const char *env = getenv("DPONE_MAX_LINE_BYTES");
	long long v;
	if (env && !dp_parse_ll(env, &v) && v > 0)
		r->max_line = (size_t)v;
	r->max_control = DP_MAX_CONTROL_DEFAULT;
	env = getenv("DPONE_MAX_CONTROL_BYTES");
	if (env && !dp_parse_ll(env, &v) && v > 0)
		r->max_control = (size_t)v;
	r->cap = READ_CHUNK * 4;
	r->buf = dp_xmalloc(r->cap);
	return r;
}

void
dp_reader_close(struct dp_reader *r)
{
	if (!r)
		return;
	json_decref(r->control);
	json_decref(r->header);
	if (r->zds)
		ZSTD_freeDStream(r->zds);
	free(r->zin);
	free(r->members);
	free(r->want_lens);
	for (size_t i = 0; i < r->ncolumns; i++)
		free(r->column_json[i]);
	free(r->column_json);
	free(r->column_lens);
	free(r->buf);
	free(r->name);
	free(r->error);
	free(r);
}

/* read(2) that retries on EINTR unless the stage was told to stop; -1 on
 * error (errno EINTR: interrupted by SIGINT/SIGTERM). */
static ssize_t
read_some(int fd, void *p, size_t n)
{
	ssize_t got;
	do {
		if (dp_interrupted) { /* the signal may have come before the read */
			errno = EINTR;
			return -1;
		}
		got = read(fd, p, n);
	} while (got < 0 && errno == EINTR);
	return got;
}

static int
read_failed(struct dp_reader *r)
{
	if (errno == EINTR)
		return rfail(r, DP_EXIT_INTERRUPTED, "interrupted by a signal while reading");
	return rfail(r, DP_EXIT_FAILURE, "read error: %s", strerror(errno));
}

/* Move the first bytes read into the zstd input buffer and switch to it. */
static void
start_zstd(struct dp_reader *r)
{
	r->zds = ZSTD_createDStream();
	if (!r->zds)
		dp_die(DP_EXIT_FAILURE, "zstd: cannot create decompression stream");
	ZSTD_initDStream(r->zds);
	size_t n = r->end - r->start;
	size_t zcap = ZSTD_DStreamInSize();
	if (zcap < n)
		zcap = n;
	r->zin = dp_xmalloc(zcap);
	memcpy(r->zin, r->buf + r->start, n);
	r->zin_len = n;
	r->zin_pos = 0;
	r->end = r->start;
	r->zret = 1;
}

static int
fill_raw(struct dp_reader *r, size_t room)
{
	ssize_t got = read_some(r->fd, r->buf + r->end, room);
	if (got < 0)
		return read_failed(r);
	if (got == 0)
		r->eof = 1;
	r->end += (size_t)got;
	r->bytes += (unsigned long long)got;
	return 0;
}

static int
fill_zstd(struct dp_reader *r, size_t room)
{
	ZSTD_outBuffer out = {r->buf + r->end, room, 0};
	while (out.pos == 0) {
		if (r->zin_pos == r->zin_len && !r->zin_eof) {
			ssize_t got = read_some(r->fd, r->zin, ZSTD_DStreamInSize());
			if (got < 0)
				return read_failed(r);
			r->zin_len = (size_t)got;
			r->zin_pos = 0;
			if (got == 0)
				r->zin_eof = 1;
		}
		if (r->zin_pos == r->zin_len && r->zin_eof) {
			if (r->zret != 0)
				return rfail(r, DP_EXIT_STREAM,
				             "compressed input is truncated (zstd frame not finished)");
			r->eof = 1;
			break;
		}
		ZSTD_inBuffer in = {r->zin, r->zin_len, r->zin_pos};
		size_t ret = ZSTD_decompressStream(r->zds, &out, &in);
		r->zin_pos = in.pos;
		if (ZSTD_isError(ret))
			return rfail(r, DP_EXIT_STREAM, "corrupt compressed input: %s", ZSTD_getErrorName(ret));
		r->zret = ret;
	}
	r->end += out.pos;
	r->bytes += out.pos;
	return 0;
}

/* Make room and read more; keeps buf[start..end). */
static int
fill(struct dp_reader *r)
{
	if (r->start > 0 && (r->end == r->cap || r->start > r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == r->cap) {
		if (r->cap >= r->max_line + 1)
			return rfail(r, DP_EXIT_STREAM, "line longer than %zu bytes (DPONE_MAX_LINE_BYTES)",
			             r->max_line);
		size_t ncap = r->cap * 2;
		if (ncap > r->max_line + 1)
			ncap = r->max_line + 1;
		r->buf = dp_xrealloc(r->buf, ncap);
		r->cap = ncap;
	}
	size_t room = r->cap - r->end;
	if (room > READ_CHUNK * 4)
		room = READ_CHUNK * 4;
	if (r->zds)
		return fill_zstd(r, room);
	if (fill_raw(r, room))
		return -1;
	/* The first bytes decide whether the input is zstd. */
	if (!r->sniffed) {
		r->sniffed = 1;
		while (r->end - r->start < 4 && !r->eof)
			if (fill_raw(r, r->cap - r->end))
				return -1;
		if (r->end - r->start >= 4 && !memcmp(r->buf + r->start, zstd_magic, 4)) {
			start_zstd(r);
			return fill_zstd(r, r->cap - r->end);
		}
	}
	return 0;
}

static int
check_header(struct dp_reader *r, json_t *body)
{
	json_t *proto = json_object_get(body, "protocol");
	if (!json_is_integer(proto))
		return rfail(r, DP_EXIT_STREAM, "header has no integer \"protocol\"");
	if (json_integer_value(proto) != DP_STREAM_PROTOCOL)
		return rfail(r, DP_EXIT_STREAM, "unsupported stream protocol %lld (this reader speaks %d)",
		             (long long)json_integer_value(proto), DP_STREAM_PROTOCOL);
	json_t *cols = json_object_get(body, "columns");
	if (!json_is_array(cols))
		return rfail(r, DP_EXIT_STREAM, "header has no \"columns\" array");
	size_t i;
	json_t *col;
	json_t *names = json_object();
	json_array_foreach(cols, i, col) {
		json_t *name = json_object_get(col, "name");
		if (!json_is_string(name) || json_object_get(names, json_string_value(name))) {
			json_decref(names);
			return json_is_string(name)
			               ? rfail(r, DP_EXIT_STREAM, "header names column %s twice",
			                       json_string_value(name))
			               : rfail(r, DP_EXIT_STREAM, "header column %zu has no \"name\"", i + 1);
		}
		json_object_set(names, json_string_value(name), name);
	}
	json_decref(names);
	/* What rows are checked against for duplicate names (dp_json_validate_row). */
	r->ncolumns = json_array_size(cols);
	r->column_json = dp_xcalloc(r->ncolumns + 1, sizeof *r->column_json);
	r->column_lens = dp_xcalloc(r->ncolumns + 1, sizeof *r->column_lens);
	json_array_foreach(cols, i, col) {
		r->column_json[i] = json_dumps(json_object_get(col, "name"), JSON_ENCODE_ANY);
		r->column_lens[i] = strlen(r->column_json[i]);
	}
	r->header = json_incref(body);
	return 0;
}

static int
check_end(struct dp_reader *r, json_t *body)
{
	/* The count is what proves the stream whole: it is required. */
	json_t *rows = json_object_get(body, "rows");
	if (!json_is_integer(rows) || json_integer_value(rows) < 0)
		return rfail(r, DP_EXIT_STREAM, "end message: \"rows\" is %s, not the count of rows",
		             rows ? "not a whole number" : "missing");
	if (r->flags & DP_READ_SUMMARY) {
		if (r->rows || r->deletes)
			return rfail(r, DP_EXIT_STREAM, "a summary stream carries no rows or deletes");
		r->seen_end = 1; /* its counts describe the data, not the summary */
		return 0;
	}
	if ((unsigned long long)json_integer_value(rows) != r->rows)
		return rfail(r, DP_EXIT_STREAM, "end message says %lld rows but %llu were read",
		             (long long)json_integer_value(rows), r->rows);
	json_t *dels = json_object_get(body, "deletes");
	if (dels && (!json_is_integer(dels) || (unsigned long long)json_integer_value(dels) != r->deletes))
		return rfail(r, DP_EXIT_STREAM, "end message's \"deletes\" does not match the %llu deletes read",
		             r->deletes);
	r->seen_end = 1;
	return 0;
}

/* Refuse a control line whose tree would be large, before building it:
 * its bytes, its nesting and its number of values (strings skipped). */
static int
check_control_shape(struct dp_reader *r)
{
	if (r->line_len > r->max_control)
		return rfail(r, DP_EXIT_STREAM, "control message of %zu bytes, more than %zu (DPONE_MAX_CONTROL_BYTES)",
		             r->line_len, r->max_control);
	int depth = 0;
	size_t values = 1;
	for (const char *p = r->line, *end = r->line + r->line_len; p < end; p++) {
		switch (*p) {
		case '"':
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			break;
		case '[':
		case '{':
			if (++depth > DP_MAX_CONTROL_DEPTH)
				return rfail(r, DP_EXIT_STREAM, "control message nested deeper than %d",
				             DP_MAX_CONTROL_DEPTH);
			break;
		case ']':
		case '}': depth--; break;
		case ',':
			if (++values > DP_MAX_CONTROL_VALUES)
				return rfail(r, DP_EXIT_STREAM, "control message with more than %d values",
				             DP_MAX_CONTROL_VALUES);
			break;
		}
	}
	return 0;
}

static int
take_control(struct dp_reader *r)
{
	json_error_t jerr;
	json_decref(r->control);
	r->control = NULL;
	if (check_control_shape(r))
		return -1;
	r->control = json_loadb(r->line, r->line_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!r->control)
		return rfail(r, DP_EXIT_STREAM, "invalid control message: %s", jerr.text);
	if (json_array_size(r->control) < 2 || !json_is_string(json_array_get(r->control, 0)) ||
	    !json_is_object(json_array_get(r->control, 1)))
		return rfail(r, DP_EXIT_STREAM, "control message must be [\"name\", {...}]");
	r->control_name = json_string_value(json_array_get(r->control, 0));
	json_t *body = json_array_get(r->control, 1);
	int is_header = !strcmp(r->control_name, "header");
	if (r->header == NULL && !is_header)
		return rfail(r, DP_EXIT_STREAM, "stream must start with a header message, not \"%s\"", r->control_name);
	if (is_header)
		return r->header ? rfail(r, DP_EXIT_STREAM, "second header message") : check_header(r, body);
	if (!strcmp(r->control_name, "end"))
		return check_end(r, body);
	if (!strcmp(r->control_name, "delete"))
		r->deletes++;
	return 0;
}

static int
take_row(struct dp_reader *r)
{
	if (!r->header)
		return rfail(r, DP_EXIT_STREAM, "row before the header message");
	if (r->line[r->line_len - 1] != '}')
		return rfail(r, DP_EXIT_STREAM, "row is not a complete JSON object");
	if (r->flags & DP_READ_VALIDATE_ROWS) {
		struct dp_json_error jerr;
		if (dp_json_validate_row(r->line, r->line_len, r->column_json, r->column_lens, r->ncolumns, r->want,
		                         r->want_lens, r->nwant, r->members, &jerr))
			return rfail(r, DP_EXIT_STREAM, "invalid row at byte %zu: %s", jerr.offset + 1, jerr.what);
	} else if (r->nwant && dp_scan_object(r->line, r->line_len, r->want, r->nwant, r->members) < 0) {
		return rfail(r, DP_EXIT_STREAM, "row is not a JSON object");
	}
	r->rows++;
	return 0;
}

/* Point r->line at the next complete line; 0 at EOF with nothing left. */
static int
frame_line(struct dp_reader *r)
{
	size_t scanned = 0;
	for (;;) {
		char *nl = memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned);
		if (nl) {
			r->line = r->buf + r->start;
			r->line_len = (size_t)(nl - r->line);
			r->start += r->line_len + 1;
			break;
		}
		if (r->eof) {
			if (r->end == r->start)
				return 0;
			/* A last line without its newline is still a line. */
			r->line = r->buf + r->start;
			r->line_len = r->end - r->start;
			r->start = r->end;
			break;
		}
		scanned = r->end - r->start;
		if (fill(r))
			return -1;
	}
	if (r->line_len > r->max_line)
		return rfail(r, DP_EXIT_STREAM, "line longer than %zu bytes (DPONE_MAX_LINE_BYTES)", r->max_line);
	if (r->line_len && r->line[r->line_len - 1] == '\r')
		r->line_len--;
	return 1;
}

int
dp_reader_next(struct dp_reader *r)
{
	if (r->error)
		return -1;
	r->lineno++; /* errors while framing name the line being read */
	int got = frame_line(r);
	if (got < 0)
		return -1;
	if (got == 0) {
		r->lineno--;
		if (r->seen_end)
			return 0;
		if (!r->header)
			return rfail(r, DP_EXIT_STREAM, "empty stream: no header message");
		return rfail(r, DP_EXIT_STREAM, "stream is truncated: no end message after %llu rows", r->rows);
	}
	if (r->seen_end)
		return rfail(r, DP_EXIT_STREAM, "data after the end message");
	if (r->line_len == 0)
		return rfail(r, DP_EXIT_STREAM, "empty line");
	switch (r->line[0]) {
	case '{':
		r->kind = DP_LINE_ROW;
		r->control_name = NULL;
		return take_row(r) ? -1 : 1;
	case '[': r->kind = DP_LINE_CONTROL; return take_control(r) ? -1 : 1;
	default: return rfail(r, DP_EXIT_STREAM, "line is neither a row ({...}) nor a control message ([...])");
	}
}

const char *
dp_reader_line(const struct dp_reader *r, size_t *len)
{
	*len = r->line_len;
	return r->line;
}

void
dp_reader_want(struct dp_reader *r, char *const *names, size_t n)
{
	r->want = names;
	r->nwant = n;
	free(r->members);
	free(r->want_lens);
	r->members = dp_xcalloc(n + 1, sizeof *r->members);
	r->want_lens = dp_xcalloc(n + 1, sizeof *r->want_lens);
	for (size_t i = 0; i < n; i++)
		r->want_lens[i] = strlen(names[i]);
}

const struct dp_span *
dp_reader_members(const struct dp_reader *r)
{
	return r->kind == DP_LINE_ROW ? r->members : NULL;
}
enum dp_line_kind
dp_reader_kind(const struct dp_reader *r)
{
	return r->kind;
}
unsigned long long
dp_reader_lineno(const struct dp_reader *r)
{
	return r->lineno;
}
const char *
dp_reader_control_name(const struct dp_reader *r)
{
	return r->kind == DP_LINE_CONTROL ? r->control_name : NULL;
}
json_t *
dp_reader_control(const struct dp_reader *r)
{
	return r->kind == DP_LINE_CONTROL ? r->control : NULL;
}
json_t *
dp_reader_header(const struct dp_reader *r)
{
	return r->header;
}
unsigned long long
dp_reader_rows(const struct dp_reader *r)
{
	return r->rows;
}
unsigned long long
dp_reader_deletes(const struct dp_reader *r)
{
	return r->deletes;
}
unsigned long long
dp_reader_bytes(const struct dp_reader *r)
{
	return r->bytes;
}
const char *
dp_reader_error(const struct dp_reader *r)
{
	return r->error;
}
int
dp_reader_error_code(const struct dp_reader *r)
{
	return r->error ? r->error_code : DP_EXIT_OK;
}

/* ---- writer ---- */

struct dp_writer {
	int fd;
	char *name;
	char *buf;
	size_t cap, len;
	ZSTD_CStream *zcs;
	char *zout;
	size_t zout_cap;
	char *error;
};

struct dp_writer *
dp_writer_open(int fd, const char *name, int zstd_level)
{
	struct dp_writer *w = dp_xcalloc(1, sizeof *w);
#ifdef F_SETPIPE_SZ
	/* Between two stages, a 1 MiB pipe instead of 64 KiB: each side
	 * sleeps and wakes a sixteenth as often (bounded; a failure is fine). */
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		fcntl(fd, F_SETPIPE_SZ, 1 << 20);
#endif
	w->fd = fd;
	w->name = dp_xstrdup(name);
	w->cap = READ_CHUNK;
	w->buf = dp_xmalloc(w->cap);
	if (zstd_level > 0) {
		w->zcs = ZSTD_createCStream();
		if (!w->zcs)
			dp_die(DP_EXIT_FAILURE, "zstd: cannot create compression stream");
		ZSTD_CCtx_setParameter(w->zcs, ZSTD_c_compressionLevel, zstd_level);
		w->zout_cap = ZSTD_CStreamOutSize();
		w->zout = dp_xmalloc(w->zout_cap);
	}
	return w;
}

static int
wfail(struct dp_writer *w, const char *what)
{
	if (!w->error)
		w->error = dp_strfmt("%s: %s: %s", w->name, what, strerror(errno));
	return -1;
}

static int
write_all(struct dp_writer *w, const char *p, size_t n)
{
	return dp_write_all(w->fd, p, n) ? wfail(w, "write error") : 0;
}

static int
compress_out(struct dp_writer *w, const char *p, size_t n, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {p, n, 0};
	for (;;) {
		ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
		size_t left = ZSTD_compressStream2(w->zcs, &out, &in, mode);
		if (ZSTD_isError(left)) {
			errno = EIO;
			return wfail(w, ZSTD_getErrorName(left));
		}
		if (write_all(w, w->zout, out.pos))
			return -1;
		if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
			return 0;
	}
}

int
dp_writer_flush(struct dp_writer *w)
{
	if (w->error)
		return -1;
	int rc = w->zcs ? compress_out(w, w->buf, w->len, ZSTD_e_continue) : write_all(w, w->buf, w->len);
	w->len = 0;
	return rc;
}

int
dp_writer_line(struct dp_writer *w, const char *p, size_t n)
{
	if (w->error)
		return -1;
	if (w->len + n + 1 > w->cap) {
		if (dp_writer_flush(w))
			return -1;
		if (n + 1 > w->cap) {
			/* A line larger than the buffer goes out directly. */
			int rc = w->zcs ? compress_out(w, p, n, ZSTD_e_continue) : write_all(w, p, n);
			if (rc)
				return -1;
			w->buf[w->len++] = '\n';
			return 0;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->buf[w->len++] = '\n';
	return 0;
}

int
dp_writer_json(struct dp_writer *w, const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		dp_die(DP_EXIT_FAILURE, "cannot encode a control message");
	int rc = dp_writer_line(w, text, strlen(text));
	free(text);
	return rc;
}

int
dp_writer_control(struct dp_writer *w, const char *name, json_t *body)
{
	json_t *msg = json_pack("[so]", name, body ? body : json_object());
	if (!msg)
		dp_die(DP_EXIT_FAILURE, "cannot build control message %s", name);
	int rc = dp_writer_json(w, msg);
	json_decref(msg);
	return rc;
}

const char *
dp_writer_error(const struct dp_writer *w)
{
	return w->error;
}

int
dp_writer_close(struct dp_writer *w)
{
	int rc = dp_writer_flush(w);
	if (!rc && w->zcs)
		rc = compress_out(w, NULL, 0, ZSTD_e_end);
	if (rc)
		dp_warn("%s", w->error);
	if (w->zcs)
		ZSTD_freeCStream(w->zcs);
	free(w->zout);
	free(w->buf);
	free(w->name);
	free(w->error);
	free(w);
	return rc;
}

json_t *
dp_header_column(const json_t *header, const char *name)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(header, "columns"), i, c)
		if (name && !strcmp(json_string_value(json_object_get(c, "name")), name))
			return c;
	return NULL;
}
