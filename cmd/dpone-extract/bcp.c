/*
 * bcp.c: export_mode: bcp. db-lib bulk copy out (DB_QUERYOUT) writes the
 * boundary's rows into a staged host file, in character form with a 4-byte
 * length before every value (no terminators, so any text is safe; length 0
 * is NULL, a single NUL byte is the empty string, as bcp writes them).
 * Temporal columns are converted on the server with style 121, which keeps
 * all seven fractional digits (db-lib's own conversion stops at
 * milliseconds). The host file then becomes a zstd NDJSON artifact with
 * the same rows dpone-extract writes in stream mode, and the same lines go
 * to stdout as they are written; the artifact can be replayed into
 * dpone-produce later without touching the source.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "extract.h"

/* The select-list item that copies column c out as exact text. */
char *
bcp_select_item(const struct column *c)
{
	char *q = quote_name(c->name), *item;
	if (!strcmp(c->logical, "date") || !strcmp(c->logical, "time") || !strcmp(c->logical, "timestamp") ||
	    !strcmp(c->logical, "timestamp_tz"))
		item = dp_strfmt("CONVERT(varchar(40), %s, 121)", q);
	else
		item = dp_xstrdup(q);
	free(q);
	return item;
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

/* "2026-11-26 10:00:00.1234567 +05:30" -> the stream's form for the type. */
static int
text_temporal(struct dp_buf *b, const struct column *c, const char *t)
{
	char date[11] = "", clock[9] = "", frac[8] = "0000000", offset[7] = "";
	const char *p = t;
	if (strcmp(c->logical, "time")) {
		if (strlen(p) < 10 || p[4] != '-' || p[7] != '-')
			return -1;
		memcpy(date, p, 10);
		p += 10;
		if (*p == ' ' || *p == 'T')
			p++;
	}
	if (strcmp(c->logical, "date")) {
		if (strlen(p) < 8 || p[2] != ':' || p[5] != ':')
			return -1;
		memcpy(clock, p, 8);
		p += 8;
		if (*p == '.') {
			size_t n = strspn(p + 1, "0123456789");
			memcpy(frac, p + 1, n > 7 ? 7 : n);
			p += 1 + n;
		}
		if (*p == ' ')
			p++;
		if (*p == '+' || *p == '-') {
			if (strlen(p) != 6)
				return -1;
			memcpy(offset, p, 6);
			p += 6;
		}
	}
	if (*p)
		return -1;
	int digits = !strcmp(c->data_type, "smalldatetime") ? 0 : c->scale >= 0 ? c->scale : 0;
	dp_buf_char(b, '"');
	dp_buf_str(b, date);
	if (*date && *clock)
		dp_buf_char(b, 'T');
	if (*clock) {
		if (!strcmp(c->data_type, "smalldatetime"))
			clock[6] = clock[7] = '0';
		dp_buf_str(b, clock);
		if (digits > 0) {
			dp_buf_char(b, '.');
			dp_buf_add(b, frac, (size_t)digits);
		}
	}
	dp_buf_str(b, offset);
	dp_buf_char(b, '"');
	return 0;
}

/* How a column's bcp text becomes JSON: picked once a column, before the
 * first row, so no value pays for comparing type names. */
enum text_kind { TEXT_STRING, TEXT_BOOLEAN, TEXT_INTEGER, TEXT_DECIMAL, TEXT_FLOAT, TEXT_UUID, TEXT_BINARY, TEXT_TEMPORAL };

static enum text_kind
text_kind(const struct column *c)
{
	static const char *const logical[] = {
		[TEXT_STRING] = "string", [TEXT_BOOLEAN] = "boolean", [TEXT_INTEGER] = "integer", [TEXT_DECIMAL] = "decimal",
		[TEXT_FLOAT] = "float", [TEXT_UUID] = "uuid", [TEXT_BINARY] = "binary"};
	for (int k = TEXT_STRING; k < TEXT_TEMPORAL; k++)
		if (!strcmp(c->logical, logical[k]))
			return (enum text_kind)k;
	return TEXT_TEMPORAL; /* date, time, timestamp, timestamp_tz */
}

static int
text_binary(struct dp_buf *b, const struct column *c, const char *t, size_t n, const struct encoding *enc)
{
	if (n % 2)
		return -1;
	BYTE *bytes = dp_xmalloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)t[2 * i]), lo = hexval((unsigned char)t[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(bytes);
			return -1;
		}
		bytes[i] = (BYTE)(hi << 4 | lo);
	}
	int rc = encode_value(b, c, SYBVARBINARY, bytes, (DBINT)(n / 2), enc);
	free(bytes);
	return rc;
}

/* One bcp text value as the stream's JSON for column c; -1 if it is not
 * a value of the column. */
static int
text_value(struct dp_buf *b, const struct column *c, enum text_kind kind, const char *t, size_t n,
           const struct encoding *enc)
{
	char *end;
	switch (kind) {
	case TEXT_STRING:
		encode_string(b, t, n);
		return 0;
	case TEXT_BOOLEAN:
		dp_buf_str(b, strcmp(t, "0") ? "true" : "false");
		return 0;
	case TEXT_INTEGER: {
		errno = 0;
		long long v = strtoll(t, &end, 10);
		if (errno || *end)
			return -1;
		encode_int(b, v, enc->bigint_as_string && !strcmp(c->data_type, "bigint"));
		return 0;
	}
	case TEXT_DECIMAL:
		return text_decimal(b, t, c->scale >= 0 ? c->scale : 4);
	case TEXT_FLOAT: {
		double d = strtod(t, &end);
		if (*end)
			return -1;
		if (strcmp(c->data_type, "real"))
			return encode_value(b, c, SYBFLT8, (const BYTE *)&d, 8, enc);
		float f = (float)d;
		return encode_value(b, c, SYBREAL, (const BYTE *)&f, 4, enc);
	}
	case TEXT_UUID: {
		char lower[40];
		snprintf(lower, sizeof lower, "%s", t);
		for (char *p = lower; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		encode_string(b, lower, strlen(lower));
		return 0;
	}
	case TEXT_BINARY:
		return text_binary(b, c, t, n, enc);
	case TEXT_TEMPORAL:
		break;
	}
	return text_temporal(b, c, t);
}

static int
read_exact(FILE *fp, void *p, size_t n)
{
	return fread(p, 1, n, fp) == n ? 0 : -1;
}

/*
 * Copy the query out into host_path, then convert it into rows on w.
 * Returns the row count; watermark values of column inc are kept like
 * stream mode keeps them. Exits on errors.
 */
unsigned long long
bcp_extract(struct source *s, const char *sql, const char *host_path, struct dp_writer *w, struct dp_writer *out,
            json_t *header, const struct encoding *enc, struct watermark *wm)
{
	source_clear_error();
	if (bcp_init(s->db, sql, host_path, NULL, DB_QUERYOUT) == FAIL || bcp_columns(s->db, s->ncols) == FAIL)
		dp_die(DP_EXIT_SOURCE, "bulk copy out could not start: %s", source_error());
	for (int i = 1; i <= s->ncols; i++)
		if (bcp_colfmt(s->db, i, SYBCHAR, 4, -1, NULL, 0, i) == FAIL)
			dp_die(DP_EXIT_SOURCE, "bulk copy out: column %d: %s", i, source_error());
	DBINT copied = 0;
	if (bcp_exec(s->db, &copied) == FAIL || source_failed())
		dp_die(DP_EXIT_SOURCE, "bulk copy out failed after %d rows: %s", (int)copied,
		       source_error()[0] ? source_error() : "the connection was lost");
	FILE *fp = fopen(host_path, "rb");
	if (!fp)
		dp_die(DP_EXIT_FAILURE, "%s: %s", host_path, strerror(errno));
	/* The copy is complete: from here on the rows go to the artifact and
	 * to stdout together (a failed copy wrote nothing on stdout). */
	if (dp_writer_control(out, "header", json_incref(header)))
		dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(out));
	enum text_kind *kinds = dp_xcalloc((size_t)s->ncols, sizeof *kinds);
	for (int i = 0; i < s->ncols; i++)
		kinds[i] = text_kind(&s->cols[i]);
	struct dp_buf row = {0}, val = {0};
	unsigned long long rows = 0;
	int32_t len;
	while (read_exact(fp, &len, 4) == 0) {
		row.len = 0;
		dp_buf_char(&row, '{');
		size_t inc_at = 0, inc_len = 0;
		for (int i = 0; i < s->ncols; i++) {
			if (i && read_exact(fp, &len, 4))
				dp_die(DP_EXIT_SOURCE, "%s: row %llu is cut short", host_path, rows + 1);
			if (len < 0 || len > (1 << 30))
				dp_die(DP_EXIT_SOURCE, "%s: row %llu: bad value length %d", host_path, rows + 1, (int)len);
			/* Text at least as long as the JSON it becomes, halved for UTF-16. */
			if (enc->max_row_bytes && (size_t)len > 2 * enc->max_row_bytes + 2)
				dp_die(DP_EXIT_SINK, "row %llu, column %s: a value of %d bytes, more than sink.options.delivery."
				       "max_message_bytes (%zu) allows a message: it could not be published; nothing after it was "
				       "read", rows + 1, s->cols[i].name, (int)len, enc->max_row_bytes);
			val.len = 0;
			dp_buf_reserve(&val, (size_t)len + 1);
			if (read_exact(fp, val.p, (size_t)len))
				dp_die(DP_EXIT_SOURCE, "%s: row %llu is cut short", host_path, rows + 1);
			val.p[len] = '\0';
			if (i)
				dp_buf_char(&row, ',');
			dp_buf_str(&row, s->cols[i].json_key);
			size_t at = row.len;
			if (len == 0)
				dp_buf_add(&row, "null", 4);
			else if (text_value(&row, &s->cols[i], kinds[i], val.p, len == 1 && val.p[0] == '\0' ? 0 : (size_t)len, enc))
				dp_die(DP_EXIT_SOURCE, "%s: row %llu, column %s: '%.40s' is not a %s value", host_path, rows + 1,
				       s->cols[i].name, val.p, s->cols[i].sql_type);
			if (i == s->inc) {
				inc_at = at;
				inc_len = row.len - at;
			}
		}
		dp_buf_char(&row, '}');
		emit_row(w, out, &row, inc_at, inc_len, wm, enc, rows + 1);
		rows++;
	}
	fclose(fp);
	free(kinds);
	free(row.p);
	free(val.p);
	if (rows != (unsigned long long)copied)
		dp_die(DP_EXIT_SOURCE, "bulk copy out reported %d rows but %llu were staged", (int)copied, rows);
	return rows;
}
