/*
 * tds.c: TDS 7.4 packets and tokens ([MS-TDS] 2.2), both directions.
 * Replies are cut into packets of the negotiated size and written in
 * batches of packets, so a large result costs few system calls.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mssqld.h"

#define SEND_BATCH (64u << 10)

/* ---- output buffers ---- */

static void
ob_grow(struct outbuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap * 2 : 256;
	while (cap < b->len + n)
		cap *= 2;
	b->p = realloc(b->p, cap);
	b->cap = cap;
}

void
ob_byte(struct outbuf *b, unsigned v)
{
	ob_grow(b, 1);
	b->p[b->len++] = (unsigned char)v;
}
void
ob_u16(struct outbuf *b, unsigned v)
{
	ob_byte(b, v & 0xFF);
	ob_byte(b, v >> 8 & 0xFF);
}
void
ob_u32(struct outbuf *b, uint32_t v)
{
	ob_u16(b, v & 0xFFFF);
	ob_u16(b, v >> 16);
}
void
ob_u64(struct outbuf *b, uint64_t v)
{
	ob_u32(b, (uint32_t)v);
	ob_u32(b, (uint32_t)(v >> 32));
}

void
ob_bytes(struct outbuf *b, const void *p, size_t n)
{
	ob_grow(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
ob_ucs2(struct outbuf *b, const char *utf8, unsigned maxchars, int wide_len)
{
	size_t n = strlen(utf8);
	unsigned char *tmp = malloc(n * 4 + 2);
	size_t bytes = utf8_to_utf16(utf8, n, tmp);
	if (bytes / 2 > maxchars)
		bytes = maxchars * 2;
	if (wide_len)
		ob_u16(b, (unsigned)(bytes / 2));
	else
		ob_byte(b, (unsigned)(bytes / 2));
	ob_bytes(b, tmp, bytes);
	free(tmp);
}

void
ob_bvarchar(struct outbuf *b, const char *utf8)
{
	ob_ucs2(b, utf8, 255, 0);
}
void
ob_usvarchar(struct outbuf *b, const char *utf8)
{
	ob_ucs2(b, utf8, 65535, 1);
}

/* ---- packets ---- */

static int
read_full(struct conn *c, void *p, size_t n)
{
	unsigned char *q = p;
	while (n) {
		ssize_t got = c->tls ? tls_read(c, q, n) : read(c->fd, q, n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		q += got;
		n -= (size_t)got;
	}
	return 0;
}

static int
write_full(struct conn *c, const void *p, size_t n)
{
	const unsigned char *q = p;
	while (n) {
		ssize_t put = c->tls ? tls_write(c, q, n) : write(c->fd, q, n);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		q += put;
		n -= (size_t)put;
	}
	return 0;
}

int
tds_read_message(struct conn *c, unsigned char *type, unsigned char **data, size_t *len)
{
	c->in_len = 0;
	for (;;) {
		unsigned char h[8];
		if (read_full(c, h, 8))
			return -1;
		size_t plen = (size_t)(h[2] << 8 | h[3]);
		if (plen < 8 || plen > 65535)
			return -1;
		*type = h[0];
		if (c->in_len + plen > c->in_cap) {
			c->in_cap = (c->in_len + plen) * 2;
			c->in = realloc(c->in, c->in_cap);
		}
		if (read_full(c, c->in + c->in_len, plen - 8))
			return -1;
		c->in_len += plen - 8;
		if (h[1] & 0x01)
			break;
		if (c->in_len > (256u << 20))
			return -1; /* no message of ours is that large */
	}
	*data = c->in;
	*len = c->in_len;
	return 0;
}

/* c->out holds whole packets waiting to be written, then the packet being
 * filled: its 8-byte header slot and c->out_fill payload bytes. */
static unsigned char *
open_packet(struct conn *c)
{
	return c->out + c->out_len;
}

static int
send_batch(struct conn *c)
{
	if (c->out_broken)
		return -1;
	/* A remote server: each packet takes its time (delay packet-us). */
	long delay = packet_delay_us();
	if (delay > 0 && c->out_len) {
		long packets = (long)((c->out_len + c->packet_size - 1) / c->packet_size);
		struct timespec ts = {(time_t)(delay * packets / 1000000), (delay * packets % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	if (write_full(c, c->out, c->out_len)) {
		c->out_broken = 1;
		return -1;
	}
	c->out_len = 0;
	return 0;
}

static void
close_packet(struct conn *c, int eom)
{
	unsigned char *h = open_packet(c);
	size_t total = 8 + c->out_fill;
	h[0] = c->out_type ? c->out_type : TDS_PKT_REPLY;
	h[1] = eom ? 0x01 : 0x00;
	h[2] = (unsigned char)(total >> 8);
	h[3] = (unsigned char)total;
	h[4] = (unsigned char)(c->spid >> 8);
	h[5] = (unsigned char)c->spid;
	h[6] = ++c->out_packet_id;
	h[7] = 0;
	c->out_len += total;
	c->out_fill = 0;
}

static void
ensure_capacity(struct conn *c)
{
	/* Room for a batch of packets and one more of the largest size. */
	if (!c->out)
		c->out = malloc(SEND_BATCH + 2 * 32768);
}

void
tds_put(struct conn *c, const void *p, size_t n)
{
	const unsigned char *q = p;
	size_t payload_max = c->packet_size - 8;
	ensure_capacity(c);
	while (n) {
		size_t room = payload_max - c->out_fill;
		size_t take = n < room ? n : room;
		memcpy(open_packet(c) + 8 + c->out_fill, q, take);
		c->out_fill += take;
		q += take;
		n -= take;
		if (c->out_fill == payload_max && n) {
			close_packet(c, 0);
			if (c->out_len >= SEND_BATCH)
				send_batch(c);
		}
	}
}

void
tds_put_type(struct conn *c, unsigned char type, const void *p, size_t n)
{
	c->out_type = type;
	tds_put(c, p, n);
}

int
tds_flush(struct conn *c, int eom)
{
	ensure_capacity(c);
	if (c->out_fill || eom)
		close_packet(c, eom);
	int rc = send_batch(c);
	c->out_type = 0;
	return rc;
}

int
tds_attention_pending(struct conn *c)
{
	if (c->attention)
		return 1;
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	if (!tls_pending(c) && poll(&pfd, 1, 0) <= 0)
		return 0;
	unsigned char h[8];
	if (read_full(c, h, 8)) {
		c->out_broken = 1;
		return 1; /* the client is gone: stop sending */
	}
	size_t plen = (size_t)(h[2] << 8 | h[3]);
	unsigned char skip[512];
	while (plen > 8) {
		size_t n = plen - 8 < sizeof skip ? plen - 8 : sizeof skip;
		if (read_full(c, skip, n))
			break;
		plen -= n;
	}
	if (h[0] == TDS_PKT_ATTENTION)
		c->attention = 1;
	return c->attention;
}

/* ---- tokens ---- */

static void
put_outbuf(struct conn *c, struct outbuf *b)
{
	tds_put(c, b->p, b->len);
	free(b->p);
}

void
tok_done(struct conn *c, unsigned token, unsigned status, unsigned curcmd, uint64_t rows)
{
	struct outbuf b = {0};
	ob_byte(&b, token);
	ob_u16(&b, status);
	ob_u16(&b, curcmd);
	ob_u64(&b, rows);
	put_outbuf(c, &b);
}

static void
message_token(struct conn *c, unsigned token, int number, int state, int cls, const char *msg, int line)
{
	struct outbuf body = {0}, b = {0};
	ob_u32(&body, (uint32_t)number);
	ob_byte(&body, (unsigned)state);
	ob_byte(&body, (unsigned)cls);
	ob_usvarchar(&body, msg);
	ob_bvarchar(&body, "mssqld");
	ob_bvarchar(&body, "");
	ob_u32(&body, (uint32_t)line);
	ob_byte(&b, token);
	ob_u16(&b, (unsigned)body.len);
	ob_bytes(&b, body.p, body.len);
	free(body.p);
	put_outbuf(c, &b);
}

void
tok_error(struct conn *c, const struct sqlerr *e)
{
	message_token(c, 0xAA, e->number, e->state ? e->state : 1, e->cls ? e->cls : 16, e->msg, 1);
}

void
tok_info(struct conn *c, int number, const char *msg)
{
	message_token(c, 0xAB, number, 1, 0, msg, 1);
}

void
tok_envchange_str(struct conn *c, int type, const char *newv, const char *oldv)
{
	struct outbuf body = {0}, b = {0};
	ob_byte(&body, (unsigned)type);
	ob_bvarchar(&body, newv);
	ob_bvarchar(&body, oldv);
	ob_byte(&b, 0xE3);
	ob_u16(&b, (unsigned)body.len);
	ob_bytes(&b, body.p, body.len);
	free(body.p);
	put_outbuf(c, &b);
}

/* SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, CI+AS flags, sort id 52. */
static const unsigned char collation[5] = {0x09, 0x04, 0xD0, 0x00, 0x34};

void
tok_envchange_collation(struct conn *c)
{
	unsigned char b[] = {0xE3, 8, 0, 7, 5, 0, 0, 0, 0, 0, 0};
	memcpy(b + 5, collation, 5);
	b[10] = 0;
	tds_put(c, b, sizeof b);
}

void
tok_loginack(struct conn *c)
{
	struct outbuf body = {0}, b = {0};
	/* LOGIN7 carries the version little-endian, LOGINACK big-endian:
	 * 7.4 is 74 00 00 04 here. ob_u32 writes little-endian, so swap. */
	uint32_t version_be = __builtin_bswap32(c->tds_version);
	ob_byte(&body, 1); /* interface: SQL */
	ob_u32(&body, version_be);
	ob_bvarchar(&body, "Microsoft SQL Server");
	ob_bytes(&body, "\x0f\x00\x0f\xa0", 4); /* 15.0.4000 */
	ob_byte(&b, 0xAD);
	ob_u16(&b, (unsigned)body.len);
	ob_bytes(&b, body.p, body.len);
	free(body.p);
	put_outbuf(c, &b);
}

void
tok_rpc_end(struct conn *c, int failed)
{
	unsigned char rs[5] = {0x79, 0, 0, 0, 0};
	tds_put(c, rs, sizeof rs);
	if (c->rpc_handle_out >= 0) {
		/* RETURNVALUE: ordinal 0, @handle, an output parameter, INTN(4). */
		struct outbuf b = {0};
		ob_byte(&b, 0xAC);
		ob_u16(&b, 0);
		ob_bvarchar(&b, "@handle");
		ob_byte(&b, 0x01);
		ob_u32(&b, 0);
		ob_u16(&b, 0);
		ob_byte(&b, 0x26);
		ob_byte(&b, 4);
		ob_byte(&b, 4);
		ob_u32(&b, (uint32_t)c->rpc_handle_out);
		put_outbuf(c, &b);
		c->rpc_handle_out = -1;
	}
	tok_done(c, 0xFE, failed ? DONE_ERROR : 0, 0xE0, 0);
}

/* ---- TYPE_INFO out ---- */

static int
time_len(int scale)
{
	return scale <= 2 ? 3 : scale <= 4 ? 4 : 5;
}

static int
dec_len(int prec)
{
	return prec <= 9 ? 5 : prec <= 19 ? 9 : prec <= 28 ? 13 : 17;
}

static void
put_typeinfo(struct outbuf *b, const struct stype *t)
{
	switch (t->base) {
	case T_NULL:
		ob_byte(b, 0x26);
		ob_byte(b, 4);
		break;
	case T_BIT:
		ob_byte(b, 0x68);
		ob_byte(b, 1);
		break;
	case T_TINYINT:
		ob_byte(b, 0x26);
		ob_byte(b, 1);
		break;
	case T_SMALLINT:
		ob_byte(b, 0x26);
		ob_byte(b, 2);
		break;
	case T_INT:
		ob_byte(b, 0x26);
		ob_byte(b, 4);
		break;
	case T_BIGINT:
		ob_byte(b, 0x26);
		ob_byte(b, 8);
		break;
	case T_DECIMAL:
	case T_NUMERIC:
		ob_byte(b, t->base == T_DECIMAL ? 0x6A : 0x6C);
		ob_byte(b, (unsigned)dec_len(t->prec));
		ob_byte(b, (unsigned)t->prec);
		ob_byte(b, (unsigned)t->scale);
		break;
	case T_MONEY:
		ob_byte(b, 0x6E);
		ob_byte(b, 8);
		break;
	case T_SMALLMONEY:
		ob_byte(b, 0x6E);
		ob_byte(b, 4);
		break;
	case T_REAL:
		ob_byte(b, 0x6D);
		ob_byte(b, 4);
		break;
	case T_FLOAT:
		ob_byte(b, 0x6D);
		ob_byte(b, 8);
		break;
	case T_DATE: ob_byte(b, 0x28); break;
	case T_TIME:
		ob_byte(b, 0x29);
		ob_byte(b, (unsigned)t->scale);
		break;
	case T_DATETIME2:
		ob_byte(b, 0x2A);
		ob_byte(b, (unsigned)t->scale);
		break;
	case T_DATETIMEOFFSET:
		ob_byte(b, 0x2B);
		ob_byte(b, (unsigned)t->scale);
		break;
	case T_SMALLDATETIME:
		ob_byte(b, 0x6F);
		ob_byte(b, 4);
		break;
	case T_DATETIME:
		ob_byte(b, 0x6F);
		ob_byte(b, 8);
		break;
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR: {
		static const unsigned char tok[] = {
			[T_CHAR] = 0xAF, [T_VARCHAR] = 0xA7, [T_NCHAR] = 0xEF, [T_NVARCHAR] = 0xE7};
		ob_byte(b, tok[t->base]);
		ob_u16(b, t->len < 0 ? 0xFFFF : (unsigned)type_max_bytes(t));
		ob_bytes(b, collation, 5);
		break;
	}
	case T_BINARY:
	case T_ROWVERSION:
		ob_byte(b, 0xAD);
		ob_u16(b, (unsigned)t->len);
		break;
	case T_VARBINARY:
		ob_byte(b, 0xA5);
		ob_u16(b, t->len < 0 ? 0xFFFF : (unsigned)t->len);
		break;
	case T_UNIQUEIDENTIFIER:
		ob_byte(b, 0x24);
		ob_byte(b, 16);
		break;
	}
}

void
tok_colmetadata(struct conn *c, const struct rcol *cols, int ncols)
{
	struct outbuf b = {0};
	ob_byte(&b, 0x81);
	ob_u16(&b, (unsigned)ncols);
	for (int i = 0; i < ncols; i++) {
		ob_u32(&b, cols[i].type.base == T_ROWVERSION ? 0x50 : 0);
		/* fNullable, usUpdateable = read/write, fIdentity */
		unsigned flags = (cols[i].nullable ? 0x01 : 0) | (1u << 2) | (cols[i].identity ? 0x10 : 0);
		ob_u16(&b, flags);
		put_typeinfo(&b, &cols[i].type);
		ob_bvarchar(&b, cols[i].name);
	}
	put_outbuf(c, &b);
}

/* ---- values out ---- */

static void
put_le(struct outbuf *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		ob_byte(b, (unsigned)(v >> (8 * i)) & 0xFF);
}

/* SET TEXTSIZE of the connection whose row is being written: (max) values
 * longer than it are cut, as SQL Server cuts them. 0: no limit. */
static _Thread_local size_t plp_limit;

static void
put_plp(struct outbuf *b, const unsigned char *p, size_t n)
{
	if (plp_limit && n > plp_limit)
		n = plp_limit;
	ob_u64(b, n);
	while (n) {
		size_t chunk = n > 8000 ? 8000 : n;
		ob_u32(b, (uint32_t)chunk);
		ob_bytes(b, p, chunk);
		p += chunk;
		n -= chunk;
	}
	ob_u32(b, 0);
}

static void
put_var(struct outbuf *b, const struct stype *t, const unsigned char *p, size_t n)
{
	if (t->len < 0) {
		put_plp(b, p, n);
	} else {
		ob_u16(b, (unsigned)n);
		ob_bytes(b, p, n);
	}
}

static void
put_null(struct outbuf *b, const struct stype *t)
{
	if ((type_is_char(t->base) || t->base == T_VARBINARY) && t->len < 0)
		ob_u64(b, 0xFFFFFFFFFFFFFFFFull);
	else if (type_is_char(t->base) || type_is_binary(t->base))
		ob_u16(b, 0xFFFF);
	else
		ob_byte(b, 0);
}

static void
put_time_bytes(struct outbuf *b, long long ticks, int scale)
{
	static const long long p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
	put_le(b, (uint64_t)(ticks / p10[7 - scale]), time_len(scale));
}

static const int days_1900 = 693595; /* 1900-01-01 in days since 0001-01-01 */

static void
put_value(struct outbuf *b, const struct stype *t, const struct value *v)
{
	switch (t->base) {
	case T_NULL: ob_byte(b, 0); break;
	case T_BIT:
		ob_byte(b, 1);
		ob_byte(b, v->i ? 1 : 0);
		break;
	case T_TINYINT:
		ob_byte(b, 1);
		put_le(b, (uint64_t)v->i, 1);
		break;
	case T_SMALLINT:
		ob_byte(b, 2);
		put_le(b, (uint64_t)v->i, 2);
		break;
	case T_INT:
		ob_byte(b, 4);
		put_le(b, (uint64_t)v->i, 4);
		break;
	case T_BIGINT:
		ob_byte(b, 8);
		put_le(b, (uint64_t)v->i, 8);
		break;
	case T_DECIMAL:
	case T_NUMERIC: {
		int len = dec_len(t->prec);
		ob_byte(b, (unsigned)len);
		ob_byte(b, v->neg && v->mag ? 0 : 1);
		unsigned __int128 m = v->mag;
		for (int i = 0; i < len - 1; i++) {
			ob_byte(b, (unsigned)(m & 0xFF));
			m >>= 8;
		}
		break;
	}
	case T_MONEY:
	case T_SMALLMONEY: {
		long long x = (long long)(v->neg ? 0 - (unsigned long long)v->mag
		                                 : (unsigned long long)v->mag); /* -2^63 too */
		if (t->base == T_MONEY) {
			ob_byte(b, 8);
			put_le(b, (uint64_t)((unsigned long long)x >> 32), 4);
			put_le(b, (uint64_t)x & 0xFFFFFFFFu, 4);
		} else {
			ob_byte(b, 4);
			put_le(b, (uint64_t)x, 4);
		}
		break;
	}
	case T_REAL: {
		float f = (float)v->r;
		uint32_t u;
		memcpy(&u, &f, 4);
		ob_byte(b, 4);
		put_le(b, u, 4);
		break;
	}
	case T_FLOAT: {
		uint64_t u;
		memcpy(&u, &v->r, 8);
		ob_byte(b, 8);
		put_le(b, u, 8);
		break;
	}
	case T_DATE:
		ob_byte(b, 3);
		put_le(b, (uint64_t)v->days, 3);
		break;
	case T_TIME:
		ob_byte(b, (unsigned)time_len(t->scale));
		put_time_bytes(b, v->ticks, t->scale);
		break;
	case T_DATETIME2:
		ob_byte(b, (unsigned)time_len(t->scale) + 3);
		put_time_bytes(b, v->ticks, t->scale);
		put_le(b, (uint64_t)v->days, 3);
		break;
	case T_DATETIMEOFFSET:
		ob_byte(b, (unsigned)time_len(t->scale) + 5);
		put_time_bytes(b, v->ticks, t->scale);
		put_le(b, (uint64_t)v->days, 3);
		put_le(b, (uint64_t)(int64_t)v->offset, 2);
		break;
	case T_DATETIME: {
		ob_byte(b, 8);
		put_le(b, (uint64_t)(int64_t)(v->days - days_1900), 4);
		put_le(b, (uint64_t)((v->ticks * 300 + 5000000) / 10000000), 4);
		break;
	}
	case T_SMALLDATETIME:
		ob_byte(b, 4);
		put_le(b, (uint64_t)(v->days - days_1900), 2);
		put_le(b, (uint64_t)(v->ticks / 600000000LL), 2);
		break;
	case T_CHAR:
	case T_VARCHAR: {
		unsigned char *tmp = malloc(v->len + 1);
		size_t n = utf8_to_cp1252(v->text, v->len, tmp);
		put_var(b, t, tmp, n);
		free(tmp);
		break;
	}
	case T_NCHAR:
	case T_NVARCHAR: {
		unsigned char *tmp = malloc(v->len * 2 + 4);
		size_t n = utf8_to_utf16(v->text, v->len, tmp);
		put_var(b, t, tmp, n);
		free(tmp);
		break;
	}
	case T_BINARY:
	case T_VARBINARY:
	case T_ROWVERSION: put_var(b, t, v->blob, v->len); break;
	case T_UNIQUEIDENTIFIER: {
		const unsigned char *g = v->blob;
		unsigned char w[16] = {g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6]};
		memcpy(w + 8, g + 8, 8);
		ob_byte(b, 16);
		ob_bytes(b, w, 16);
		break;
	}
	}
}

int
tok_row(struct conn *c, const struct rcol *cols, int ncols, sqlite3_stmt *st, int first_col, struct sqlerr *e)
{
	struct outbuf b = c->rowbuf; /* reused row after row; freed with the connection */
	int nulls = 0;
	plp_limit = (size_t)c->textsize;
	b.len = 0;
	for (int i = 0; i < ncols; i++)
		nulls += sqlite3_column_type(st, first_col + i) == SQLITE_NULL;
	int nbc = nulls * 4 > ncols && ncols > 1;
	ob_byte(&b, nbc ? 0xD2 : 0xD1);
	if (nbc) {
		size_t at = b.len;
		for (int i = 0; i < (ncols + 7) / 8; i++)
			ob_byte(&b, 0);
		for (int i = 0; i < ncols; i++)
			if (sqlite3_column_type(st, first_col + i) == SQLITE_NULL)
				b.p[at + (size_t)i / 8] |= (unsigned char)(1u << (i % 8));
	}
	for (int i = 0; i < ncols; i++) {
		sqlite3_value *sv = sqlite3_column_value(st, first_col + i);
		if (sqlite3_value_type(sv) == SQLITE_NULL) {
			if (!nbc)
				put_null(&b, &cols[i].type);
			continue;
		}
		struct value v;
		if (value_from_storage(sv, &cols[i].type, &v, e)) {
			c->rowbuf = b;
			return -1;
		}
		put_value(&b, &cols[i].type, &v);
		value_clear(&v);
	}
	tds_put(c, b.p, b.len);
	c->rowbuf = b;
	return 0;
}

/* ---- TYPE_INFO and values in (RPC parameters, bulk load rows) ---- */

static int
need(const unsigned char *p, const unsigned char *end, size_t n)
{
	return (size_t)(end - p) >= n ? 0 : -1;
}

static uint64_t
get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int
wire_read_typeinfo(const unsigned char **pp, const unsigned char *end, struct stype *t, int *plp)
{
	const unsigned char *p = *pp;
	memset(t, 0, sizeof *t);
	*plp = 0;
	if (need(p, end, 1))
		return -1;
	unsigned tok = *p++;
	unsigned len;
	switch (tok) {
	/* Fixed-length types: their values have no length byte; *plp = 10 + size. */
	case 0x30:
		t->base = T_TINYINT;
		*plp = 11;
		break;
	case 0x32:
		t->base = T_BIT;
		*plp = 11;
		break;
	case 0x34:
		t->base = T_SMALLINT;
		*plp = 12;
		break;
	case 0x38:
		t->base = T_INT;
		*plp = 14;
		break;
	case 0x7F:
		t->base = T_BIGINT;
		*plp = 18;
		break;
	case 0x3B:
		t->base = T_REAL;
		*plp = 14;
		break;
	case 0x3E:
		t->base = T_FLOAT;
		*plp = 18;
		break;
	case 0x3D:
		t->base = T_DATETIME;
		*plp = 18;
		break;
	case 0x3A:
		t->base = T_SMALLDATETIME;
		*plp = 14;
		break;
	case 0x3C:
		t->base = T_MONEY;
		t->prec = 19;
		t->scale = 4;
		*plp = 18;
		break;
	case 0x7A:
		t->base = T_SMALLMONEY;
		t->prec = 10;
		t->scale = 4;
		*plp = 14;
		break;
	case 0x1F: t->base = T_NULL; break;
	case 0x26:
	case 0x68:
	case 0x6D:
	case 0x6E:
	case 0x6F:
	case 0x24:
		if (need(p, end, 1))
			return -1;
		len = *p++;
		if (tok == 0x26)
			t->base = len == 1 ? T_TINYINT : len == 2 ? T_SMALLINT : len == 4 ? T_INT : T_BIGINT;
		else if (tok == 0x68)
			t->base = T_BIT;
		else if (tok == 0x6D)
			t->base = len == 4 ? T_REAL : T_FLOAT;
		else if (tok == 0x6E) {
			t->base = len == 4 ? T_SMALLMONEY : T_MONEY;
			t->scale = 4;
			t->prec = len == 4 ? 10 : 19;
		} else if (tok == 0x6F)
			t->base = len == 4 ? T_SMALLDATETIME : T_DATETIME;
		else
			t->base = T_UNIQUEIDENTIFIER, t->len = 16;
		break;
	case 0x6A:
	case 0x6C:
	case 0x37:
	case 0x3F:
		if (need(p, end, 3))
			return -1;
		t->base = (tok == 0x6A || tok == 0x37) ? T_DECIMAL : T_NUMERIC;
		t->prec = p[1];
		t->scale = p[2];
		p += 3;
		break;
	case 0x28: t->base = T_DATE; break;
	case 0x29:
	case 0x2A:
	case 0x2B:
		if (need(p, end, 1))
			return -1;
		t->base = tok == 0x29 ? T_TIME : tok == 0x2A ? T_DATETIME2 : T_DATETIMEOFFSET;
		t->scale = *p++;
		break;
	case 0xA7:
	case 0xAF:
	case 0xE7:
	case 0xEF:
		if (need(p, end, 7))
			return -1;
		len = (unsigned)get_le(p, 2);
		p += 7; /* max length + collation */
		t->base = tok == 0xA7 ? T_VARCHAR : tok == 0xAF ? T_CHAR : tok == 0xE7 ? T_NVARCHAR : T_NCHAR;
		t->len = len == 0xFFFF ? -1 : (int)(tok >= 0xE7 ? len / 2 : len);
		*plp = len == 0xFFFF;
		break;
	case 0xA5:
	case 0xAD:
		if (need(p, end, 2))
			return -1;
		len = (unsigned)get_le(p, 2);
		p += 2;
		t->base = tok == 0xA5 ? T_VARBINARY : T_BINARY;
		t->len = len == 0xFFFF ? -1 : (int)len;
		*plp = len == 0xFFFF;
		break;
	case 0x23:
	case 0x63:
	case 0x22:
		/* text, ntext, image in RPC: 4-byte length, collation for text. */
		if (need(p, end, tok == 0x22 ? 4 : 9))
			return -1;
		p += tok == 0x22 ? 4 : 9;
		t->base = tok == 0x23 ? T_VARCHAR : tok == 0x63 ? T_NVARCHAR : T_VARBINARY;
		t->len = -1;
		*plp = 2; /* values carry a 4-byte length */
		break;
	default: return -1;
	}
	*pp = p;
	return 0;
}

static int
read_plp(const unsigned char **pp, const unsigned char *end, unsigned char **out, size_t *outlen, int *isnull)
{
	const unsigned char *p = *pp;
	if (need(p, end, 8))
		return -1;
	uint64_t total = get_le(p, 8);
	p += 8;
	*isnull = total == 0xFFFFFFFFFFFFFFFFull;
	size_t len = 0, cap = 256;
	unsigned char *buf = malloc(cap);
	while (!*isnull) {
		if (need(p, end, 4)) {
			free(buf);
			return -1;
		}
		uint32_t chunk = (uint32_t)get_le(p, 4);
		p += 4;
		if (chunk == 0)
			break;
		if (need(p, end, chunk)) {
			free(buf);
			return -1;
		}
		while (len + chunk > cap)
			cap *= 2;
		unsigned char *bigger = realloc(buf, cap);
		if (!bigger) {
			free(buf);
			return -1;
		}
		buf = bigger;
		memcpy(buf + len, p, chunk);
		len += chunk;
		p += chunk;
	}
	*out = buf;
	*outlen = len;
	*pp = p;
	return 0;
}

int
wire_read_value(const unsigned char **pp, const unsigned char *end, const struct stype *t, int plp, struct value *v)
{
	const unsigned char *p = *pp;
	memset(v, 0, sizeof *v);
	unsigned char *bytes = NULL;
	size_t n = 0;
	int isnull = 0;
	if (type_is_char(t->base) || type_is_binary(t->base)) {
		if (plp == 1) {
			if (read_plp(&p, end, &bytes, &n, &isnull))
				return -1;
		} else {
			int lw = plp == 2 ? 4 : 2;
			if (need(p, end, (size_t)lw))
				return -1;
			uint64_t len = get_le(p, lw);
			p += lw;
			isnull = lw == 2 ? len == 0xFFFF : len == 0xFFFFFFFFu;
			if (!isnull) {
				if (need(p, end, len))
					return -1;
				bytes = malloc(len + 1);
				memcpy(bytes, p, len);
				n = len;
				p += len;
			}
		}
		if (!isnull) {
			if (type_is_unicode(t->base)) {
				v->text = utf16_to_utf8(bytes, n, &v->len);
				v->kind = V_TEXT;
				free(bytes);
			} else if (type_is_char(t->base)) {
				v->text = cp1252_to_utf8(bytes, n, &v->len);
				v->kind = V_TEXT;
				free(bytes);
			} else {
				v->blob = bytes;
				v->len = n;
				v->kind = V_BLOB;
			}
		} else {
			free(bytes);
		}
		*pp = p;
		return 0;
	}
	if (t->base == T_NULL) {
		*pp = p;
		return 0;
	}
	unsigned len;
	if (plp >= 10) {
		len = (unsigned)plp - 10;
	} else {
		if (need(p, end, 1))
			return -1;
		len = *p++;
	}
	if (len == 0) {
		*pp = p;
		return 0;
	}
	if (need(p, end, len))
		return -1;
	switch (t->base) {
	case T_BIT:
	case T_TINYINT:
	case T_SMALLINT:
	case T_INT:
	case T_BIGINT: {
		uint64_t u = get_le(p, (int)len);
		int bits = (int)len * 8;
		long long x = bits < 64 && (u >> (bits - 1)) & 1 && t->base != T_TINYINT && t->base != T_BIT
		                      ? (long long)(u | (~0ull << bits))
		                      : (long long)u;
		v->kind = V_INT;
		v->i = x;
		break;
	}
	case T_REAL:
	case T_FLOAT:
		v->kind = V_REAL;
		if (len == 4) {
			uint32_t u = (uint32_t)get_le(p, 4);
			float f;
			memcpy(&f, &u, 4);
			v->r = f;
		} else {
			uint64_t u = get_le(p, 8);
			memcpy(&v->r, &u, 8);
		}
		break;
	case T_DECIMAL:
	case T_NUMERIC:
		v->kind = V_DEC;
		v->neg = p[0] == 0;
		for (int i = (int)len - 1; i >= 1; i--)
			v->mag = v->mag << 8 | p[i];
		v->scale = t->scale;
		break;
	case T_MONEY:
	case T_SMALLMONEY: {
		long long x = len == 8 ? (long long)((uint64_t)get_le(p, 4) << 32 | get_le(p + 4, 4))
		                       : (long long)(int32_t)get_le(p, 4);
		v->kind = V_DEC;
		v->neg = x < 0;
		v->mag = x < 0 ? (unsigned __int128)(-(x + 1)) + 1 : (unsigned __int128)x;
		v->scale = 4;
		break;
	}
	case T_DATE:
		v->kind = V_TIME;
		v->has_date = 1;
		v->days = (int)get_le(p, 3);
		break;
	case T_TIME:
	case T_DATETIME2:
	case T_DATETIMEOFFSET: {
		static const long long p10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};
		int tl = time_len(t->scale);
		v->kind = V_TIME;
		v->has_time = 1;
		v->ticks = (long long)get_le(p, tl) * p10[7 - t->scale];
		if (t->base != T_TIME) {
			v->has_date = 1;
			v->days = (int)get_le(p + tl, 3);
		}
		if (t->base == T_DATETIMEOFFSET) {
			v->has_offset = 1;
			v->offset = (int16_t)get_le(p + tl + 3, 2);
		}
		break;
	}
	case T_DATETIME:
	case T_SMALLDATETIME:
		v->kind = V_TIME;
		v->has_date = v->has_time = 1;
		if (len == 8) {
			v->days = (int)(int32_t)get_le(p, 4) + days_1900;
			long long t300 = (long long)get_le(p + 4, 4);
			v->ticks = t300 * 10000000 / 300 + ((t300 * 10000000) % 300 >= 150);
		} else {
			v->days = (int)get_le(p, 2) + days_1900;
			v->ticks = (long long)get_le(p + 2, 2) * 600000000LL;
		}
		break;
	case T_UNIQUEIDENTIFIER: {
		unsigned char g[16] = {p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6]};
		memcpy(g + 8, p + 8, 8);
		v->kind = V_BLOB;
		v->blob = malloc(16);
		memcpy(v->blob, g, 16);
		v->len = 16;
		break;
	}
	default: return -1;
	}
	p += len;
	*pp = p;
	return 0;
}
