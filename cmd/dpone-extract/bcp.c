/*
 * bcp.c: export_mode: bcp. db-lib bulk copy out (DB_QUERYOUT), on a
 * thread of its own, writes the boundary's rows as a host file into a
 * pipe, with a 4-byte length before every value (length 0 is NULL).
 * Numbers, bits and every date/time type are copied in db-lib's native
 * form (the bytes stream mode reads with dbdata, so the same encoder turns
 * them into JSON, and no value is formatted as text only to be parsed
 * again); the other types in character form (no terminators, so any text
 * is safe; a single NUL byte is the empty string, as bcp writes it). The
 * copy becomes a zstd NDJSON artifact, with the same rows dpone-extract
 * writes in stream mode, as it arrives; only once it is complete does
 * bcp_replay put it on stdout. The artifact can be replayed into
 * dpone-produce later without touching the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "extract.h"

/* The db-lib type column c is copied out as: native where the bytes are
 * db-lib's documented structures (DBNUMERIC, DBDATETIME, DBDATETIMEALL),
 * SYBCHAR for the rest (money's native form is not DBMONEY's layout;
 * empty binary would be indistinguishable from NULL). */
static int
bcp_host_type(const struct column *c)
{
	static const struct {
		const char *name;
		int type;
	} native[] = {{"bit", SYBBIT},
	              {"tinyint", SYBINT1},
	              {"smallint", SYBINT2},
	              {"int", SYBINT4},
	              {"bigint", SYBINT8},
	              {"real", SYBREAL},
	              {"float", SYBFLT8},
	              {"decimal", SYBDECIMAL},
	              {"numeric", SYBNUMERIC},
	              {"datetime", SYBDATETIME},
	              {"smalldatetime", SYBDATETIME4},
	              {"date", SYBMSDATE},
	              {"time", SYBMSTIME},
	              {"datetime2", SYBMSDATETIME2},
	              {"datetimeoffset", SYBMSDATETIMEOFFSET}};
	for (size_t i = 0; i < sizeof native / sizeof *native; i++)
		if (!strcmp(c->data_type, native[i].name))
			return native[i].type;
	return SYBCHAR;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "-12.3" at scale 2 -> "-12.30": the stream's exact-scale form. */
static int
text_decimal(struct dp_buf *b, const char *t, int scale)
{
	const char *dot = strchr(t, '.');
	size_t intlen = dot ? (size_t)(dot - t) : strlen(t);
	size_t fraclen = dot ? strlen(dot + 1) : 0;
	if (strspn(t, "-0123456789.") != strlen(t) || fraclen > (size_t)scale)
		return -1;
	dp_buf_char(b, '"');
	dp_buf_add(b, t, intlen);
	if (scale > 0) {
		dp_buf_char(b, '.');
		if (fraclen)
			dp_buf_add(b, dot + 1, fraclen);
		for (size_t i = fraclen; i < (size_t)scale; i++)
			dp_buf_char(b, '0');
	}
	dp_buf_char(b, '"');
	return 0;
}

/* How a column's host-file value becomes JSON: picked once a column,
 * before the first row, so no value pays for comparing type names. */
enum value_kind { VALUE_NATIVE, VALUE_STRING, VALUE_DECIMAL, VALUE_UUID, VALUE_BINARY };

/* How each column is copied out and read back; one per column. */
struct host_column {
	int type; /* the db-lib host type (bcp_host_type) */
	enum value_kind kind;
};

static enum value_kind
value_kind(const struct column *c, int host_type)
{
	if (host_type != SYBCHAR)
		return VALUE_NATIVE;
	if (!strcmp(c->logical, "decimal")) /* money, smallmoney */
		return VALUE_DECIMAL;
	if (!strcmp(c->logical, "uuid"))
		return VALUE_UUID;
	if (!strcmp(c->logical, "binary"))
		return VALUE_BINARY;
	return VALUE_STRING;
}

/* Hex text as the column's binary JSON; the bytes are decoded into
 * scratch, reused from value to value. */
static int
text_binary(struct dp_buf *b, struct dp_buf *scratch, const struct column *c, const char *t, size_t n,
            const struct encoding *enc)
{
	if (n % 2)
		return -1;
	scratch->len = 0;
	dp_buf_reserve(scratch, n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)t[2 * i]), lo = hexval((unsigned char)t[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		scratch->p[i] = (char)(hi << 4 | lo);
	}
	return encode_value(b, c, SYBVARBINARY, (const BYTE *)scratch->p, (DBINT)(n / 2), enc);
}

/* The native value of host type `type`, n bytes at p, as JSON; -1 if the
 * bytes cannot be one. DBNUMERIC is written without its unused tail. */
static int
native_value(struct dp_buf *b, const struct column *c, int type, const char *p, size_t n, const struct encoding *enc)
{
	if (type == SYBDECIMAL || type == SYBNUMERIC) {
		DBNUMERIC num;
		if (n < 3 || n > sizeof num)
			return -1;
		memset(&num, 0, sizeof num);
		memcpy(&num, p, n);
		return encode_value(b, c, type, (const BYTE *)&num, (DBINT)sizeof num, enc);
	}
	/* Aligned for the encoder's structures. */
	union {
		DBDATETIMEALL dta;
		DBDATETIME dt;
		double d;
		long long ll;
	} v;
	if (n > sizeof v)
		return -1;
	memcpy(&v, p, n);
	return encode_value(b, c, type, (const BYTE *)&v, (DBINT)n, enc);
}

/* One host-file value as the stream's JSON for column c; -1 if it is not
 * a value of the column. Text values are NUL-terminated. */
static int
host_value(struct dp_buf *b, struct dp_buf *scratch, const struct column *c, struct host_column hc, const char *t,
           size_t n, const struct encoding *enc)
{
	switch (hc.kind) {
	case VALUE_NATIVE: return native_value(b, c, hc.type, t, n, enc);
	case VALUE_STRING: encode_string(b, t, n == 1 && t[0] == '\0' ? 0 : n); return 0;
	case VALUE_DECIMAL: return text_decimal(b, t, c->scale >= 0 ? c->scale : 4);
	case VALUE_UUID: {
		char lower[40];
		snprintf(lower, sizeof lower, "%s", t);
		for (char *q = lower; *q; q++)
			*q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
		encode_string(b, lower, strlen(lower));
		return 0;
	}
	case VALUE_BINARY: return text_binary(b, scratch, c, t, n == 1 && t[0] == '\0' ? 0 : n, enc);
	}
	return -1;
}

/* bcp_exec on its own thread, writing the host file into a pipe that the
 * caller converts as it fills: the copy and the conversion overlap, and no
 * host file ever touches the disk. */
struct copy_out {
	DBPROCESS *db;
	int write_fd; /* the pipe's write end; closed by the thread */
	RETCODE rc;
	DBINT copied;
	pthread_t thread;
	int joined;
};

static void *
copy_out_thread(void *arg)
{
	struct copy_out *c = arg;
	c->rc = bcp_exec(c->db, &c->copied);
	close(c->write_fd);
	return NULL;
}

/* Wait for the copy; exits with its error if it failed. */
static void
copy_out_finish(struct copy_out *c, unsigned long long converted)
{
	if (!c->joined)
		pthread_join(c->thread, NULL);
	c->joined = 1;
	if (c->rc == FAIL || source_failed())
		dp_die(DP_EXIT_SOURCE, "bulk copy out failed after %llu rows: %s; nothing was written on stdout",
		       converted, source_error()[0] ? source_error() : "the connection was lost");
}

/* A problem with the host file: the copy's own failure if it had one. */
static _Noreturn void
host_file_error(struct copy_out *c, unsigned long long row, const char *what)
{
	copy_out_finish(c, row - 1);
	dp_die(DP_EXIT_SOURCE, "bulk copy out: row %llu: %s", row, what);
}

static _Noreturn void
bad_value(struct copy_out *cp, unsigned long long row, const struct column *c, enum value_kind kind, const char *t,
          size_t n)
{
	copy_out_finish(cp, row - 1);
	if (kind == VALUE_NATIVE)
		dp_die(DP_EXIT_SOURCE, "bulk copy out: row %llu, column %s: %zu bytes that are not a %s value", row,
		       c->name, n, c->sql_type);
	dp_die(DP_EXIT_SOURCE, "bulk copy out: row %llu, column %s: '%.40s' is not a %s value", row, c->name, t,
	       c->sql_type);
}

/* The pipe's read side: values are used where they lie in the buffer. */
struct host_reader {
	int fd;
	char *buf; /* owned */
	size_t pos, len, cap;
	int error; /* errno of a failed read, 0 */
};

/* n contiguous bytes of the host file, valid until the next call; NULL at
 * the end of the file or on a read error (r->error). */
static const char *
host_take(struct host_reader *r, size_t n)
{
	if (r->len - r->pos < n) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
		if (n > r->cap) {
			r->cap = n + (1 << 16);
			r->buf = dp_xrealloc(r->buf, r->cap);
		}
		while (r->len < n) {
			ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len);
			if (got < 0 && errno == EINTR && !dp_interrupted)
				continue;
			if (got <= 0) {
				r->error = got < 0 ? errno : 0;
				return NULL;
			}
			r->len += (size_t)got;
		}
	}
	const char *p = r->buf + r->pos;
	r->pos += n;
	return p;
}

static int
take_length(struct host_reader *r, int32_t *len)
{
	const char *p = host_take(r, 4);
	if (p)
		memcpy(len, p, 4);
	return p ? 0 : -1;
}

static void
start_copy_out(struct source *s, const char *sql, struct copy_out *c, const struct host_column *hcs,
               struct host_reader *host)
{
	int fds[2];
	char path[32];
	if (pipe(fds))
		dp_die(DP_EXIT_FAILURE, "pipe: %s", strerror(errno));
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	/* db-lib writes the pipe 4 KiB at a time: a deeper pipe lets both
	 * threads run longer between wake-ups (best effort). */
	fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
	/* db-lib opens the host file by name: the pipe's write end is one. */
	snprintf(path, sizeof path, "/dev/fd/%d", fds[1]);
	source_clear_error();
	if (bcp_init(s->db, sql, path, NULL, DB_QUERYOUT) == FAIL || bcp_columns(s->db, s->ncols) == FAIL)
		dp_die(DP_EXIT_SOURCE, "bulk copy out could not start: %s", source_error());
	for (int i = 0; i < s->ncols; i++)
		if (bcp_colfmt(s->db, i + 1, hcs[i].type, 4, -1, NULL, 0, i + 1) == FAIL)
			dp_die(DP_EXIT_SOURCE, "bulk copy out: column %d: %s", i + 1, source_error());
	*c = (struct copy_out){.db = s->db, .write_fd = fds[1]};
	*host = (struct host_reader){.fd = fds[0], .cap = 1 << 16};
	host->buf = dp_xmalloc(host->cap);
	/* SIGINT/SIGTERM go to this thread, which may be waiting in read(2). */
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	int err = pthread_create(&c->thread, NULL, copy_out_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		dp_die(DP_EXIT_FAILURE, "cannot start the bulk copy: %s", strerror(err));
}

/*
 * Copy the query out through db-lib bulk copy and convert it into rows
 * through rw (built and emitted as stream mode's are, onto the artifact) as
 * it arrives. Returns the row count. Exits on errors (the
 * copy's own error first) and on SIGINT/SIGTERM; nothing goes to stdout
 * here (bcp_replay does that once the artifact is complete).
 */
unsigned long long
bcp_extract(struct source *s, const char *sql, struct row_writer *rw)
{
	const struct encoding *enc = rw->enc;
	struct host_column *hcs = dp_xcalloc((size_t)s->ncols, sizeof *hcs);
	for (int i = 0; i < s->ncols; i++) {
		hcs[i].type = bcp_host_type(&s->cols[i]);
		hcs[i].kind = value_kind(&s->cols[i], hcs[i].type);
	}
	struct copy_out copy;
	struct host_reader host;
	start_copy_out(s, sql, &copy, hcs, &host);
	struct dp_buf val = {0}, scratch = {0}; /* scratch: decoded binary */
	unsigned long long rows = 0;
	int32_t len;
	while (take_length(&host, &len) == 0) {
		if (dp_interrupted)
			dp_die(DP_EXIT_INTERRUPTED, "interrupted after %llu rows; nothing was written on stdout", rows);
		row_open(rw);
		for (int i = 0; i < s->ncols; i++) {
			if (i && take_length(&host, &len))
				host_file_error(&copy, rows + 1, "the row is cut short");
			if (len < 0 || len > (1 << 30))
				host_file_error(&copy, rows + 1, "a bad value length");
			/* Text at least as long as the JSON it becomes, halved for UTF-16. */
			if (enc->max_row_bytes && (size_t)len > 2 * enc->max_row_bytes + 2)
				dp_die(DP_EXIT_SINK,
				       "row %llu, column %s: a value of %d bytes, more than sink.options.delivery."
				       "max_message_bytes (%zu) allows a message: it could not be published; nothing "
				       "after it was "
				       "read",
				       rows + 1, s->cols[i].name, (int)len, enc->max_row_bytes);
			const char *v = host_take(&host, (size_t)len);
			if (!v)
				host_file_error(&copy, rows + 1, "the row is cut short");
			if (hcs[i].kind != VALUE_NATIVE && hcs[i].kind != VALUE_STRING) {
				/* The text parsers want it NUL-terminated. */
				val.len = 0;
				dp_buf_add(&val, v, (size_t)len);
				dp_buf_char(&val, '\0');
				v = val.p;
			}
			size_t at = row_member(rw, i);
			if (len == 0)
				dp_buf_add(&rw->row, "null", 4);
			else if (host_value(&rw->row, &scratch, &s->cols[i], hcs[i], v, (size_t)len, enc))
				bad_value(&copy, rows + 1, &s->cols[i], hcs[i].kind, v, (size_t)len);
			row_member_end(rw, i, at);
		}
		row_close(rw);
		rows++;
	}
	if (dp_interrupted)
		dp_die(DP_EXIT_INTERRUPTED, "interrupted after %llu rows; nothing was written on stdout", rows);
	if (host.error) {
		errno = host.error;
		dp_die(DP_EXIT_FAILURE, "bulk copy out: reading the copy: %s", strerror(errno));
	}
	if (host.pos != host.len)
		host_file_error(&copy, rows + 1, "the row is cut short");
	close(host.fd);
	free(host.buf);
	copy_out_finish(&copy, rows);
	free(hcs);
	free(scratch.p);
	free(val.p);
	if (rows != (unsigned long long)copy.copied)
		dp_die(DP_EXIT_SOURCE, "bulk copy out reported %d rows but %llu were converted", (int)copy.copied,
		       rows);
	return rows;
}

/* The finished artifact, decompressed, on stdout: exactly the stream the
 * artifact holds. Exits on errors and on SIGINT/SIGTERM. */
void
bcp_replay(const char *artifact)
{
	int fd = open(artifact, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		dp_die(DP_EXIT_FAILURE, "%s: %s", artifact, strerror(errno));
	ZSTD_DStream *z = ZSTD_createDStream();
	size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
	char *in_buf = dp_xmalloc(in_cap), *out_buf = dp_xmalloc(out_cap);
	if (!z || ZSTD_isError(ZSTD_initDStream(z)))
		dp_die(DP_EXIT_FAILURE, "zstd: cannot start decompressing %s", artifact);
	ssize_t n;
	while ((n = read(fd, in_buf, in_cap)) != 0) {
		if (n < 0 && errno == EINTR && !dp_interrupted)
			continue;
		if (dp_interrupted)
			dp_die(DP_EXIT_INTERRUPTED,
			       "interrupted while writing the staged rows; the stream has no end message");
		if (n < 0)
			dp_die(DP_EXIT_FAILURE, "%s: %s", artifact, strerror(errno));
		ZSTD_inBuffer in = {in_buf, (size_t)n, 0};
		while (in.pos < in.size) {
			ZSTD_outBuffer out = {out_buf, out_cap, 0};
			size_t rc = ZSTD_decompressStream(z, &out, &in);
			if (ZSTD_isError(rc))
				dp_die(DP_EXIT_FAILURE, "%s: %s", artifact, ZSTD_getErrorName(rc));
			if (dp_write_all(1, out_buf, out.pos))
				dp_die(DP_EXIT_FAILURE, "stdout: %s", strerror(errno));
		}
	}
	ZSTD_freeDStream(z);
	free(in_buf);
	free(out_buf);
	close(fd);
}
