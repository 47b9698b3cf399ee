/*
 * encode.c: SQL Server values as JSON, written straight into the row
 * buffer (jansson's encoder would cost ten times more on this path). The
 * type matrix is documented in dpone-extract(1):
 *   bit → true/false; tinyint..int → number; bigint → number (or string);
 *   decimal, numeric, money, smallmoney → string with exactly the scale;
 *   real, float → the shortest number that reads back to the same value;
 *   char family → UTF-8 string (char keeps its blanks);
 *   date → "YYYY-MM-DD"; time(n), datetime2(n) → n fractional digits;
 *   datetime → 3 digits as SQL Server rounds them; smalldatetime → ":00";
 *   datetimeoffset(n) → local time with ±HH:MM; uniqueidentifier →
 *   lowercase canonical; binary family → base64 (or hex); NULL → null.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

static const struct {
	const char *type, *logical;
} logical_types[] = {
	{"bit", "boolean"},
	{"tinyint", "integer"},
	{"smallint", "integer"},
	{"int", "integer"},
	{"bigint", "integer"},
	{"decimal", "decimal"},
	{"numeric", "decimal"},
	{"money", "decimal"},
	{"smallmoney", "decimal"},
	{"real", "float"},
	{"float", "float"},
	{"char", "string"},
	{"varchar", "string"},
	{"nchar", "string"},
	{"nvarchar", "string"},
	{"text", "string"},
	{"ntext", "string"},
	{"sysname", "string"},
	{"date", "date"},
	{"time", "time"},
	{"datetime", "timestamp"},
	{"smalldatetime", "timestamp"},
	{"datetime2", "timestamp"},
	{"datetimeoffset", "timestamp_tz"},
	{"uniqueidentifier", "uuid"},
	{"binary", "binary"},
	{"varbinary", "binary"},
	{"image", "binary"},
	{"timestamp", "binary"},
	{"rowversion", "binary"},
};

const char *
logical_type(const char *data_type)
{
	for (size_t i = 0; i < sizeof logical_types / sizeof logical_types[0]; i++)
		if (!strcmp(logical_types[i].type, data_type))
			return logical_types[i].logical;
	return NULL;
}

/* ---- strings ---- */

void
encode_string(struct dp_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	dp_buf_reserve(b, n + 2);
	b->p[b->len++] = '"';
	while (p < end) {
		/* Copy the run that needs no escaping in one go. */
		const unsigned char *run = p;
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			dp_buf_add(b, (const char *)run, (size_t)(p - run));
		if (p >= end)
			break;
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			dp_buf_add(b, esc, 2);
			p++;
		} else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			if (c == '\n')
				dp_buf_add(b, "\\n", 2);
			else if (c == '\t')
				dp_buf_add(b, "\\t", 2);
			else if (c == '\r')
				dp_buf_add(b, "\\r", 2);
			else
				dp_buf_add(b, esc, 6);
			p++;
		} else {
			size_t k = dp_utf8_len(p, end);
			if (k) {
				dp_buf_add(b, (const char *)p, k);
				p += k;
			} else {
				dp_buf_add(b, "\xEF\xBF\xBD", 3); /* invalid UTF-8 from the server: U+FFFD */
				p++;
			}
		}
	}
	dp_buf_char(b, '"');
}

/* UTF-16LE (an nchar/nvarchar/ntext value as the server stores it, read as
 * varbinary: source_select_list) as a JSON string: one pass, no iconv. An
 * unpaired surrogate becomes U+FFFD. */
static void
encode_utf16le(struct dp_buf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	dp_buf_reserve(b, 6 * (n / 2) + 2); /* "\\u001f" is the longest a unit becomes */
	char *o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i + 1 < n; i += 2) {
		unsigned u = p[i] | (unsigned)p[i + 1] << 8;
		if (u >= 0x20 && u < 0x80 && u != '"' && u != '\\') {
			*o++ = (char)u;
		} else if (u < 0x80) {
			*o++ = '\\';
			switch (u) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '\n': *o++ = 'n'; break;
			case '\t': *o++ = 't'; break;
			case '\r': *o++ = 'r'; break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[u >> 4];
				*o++ = hex[u & 15];
			}
		} else if (u < 0x800) {
			*o++ = (char)(0xC0 | u >> 6);
			*o++ = (char)(0x80 | (u & 0x3F));
		} else if (u >= 0xD800 && u < 0xDC00 && i + 3 < n && (p[i + 3] & 0xFC) == 0xDC) {
			unsigned lo = p[i + 2] | (unsigned)p[i + 3] << 8;
			unsigned cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			*o++ = (char)(0xF0 | cp >> 18);
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*o++ = (char)(0x80 | (cp & 0x3F));
			i += 2;
		} else {
			if (u >= 0xD800 && u < 0xE000)
				u = 0xFFFD;
			*o++ = (char)(0xE0 | u >> 12);
			*o++ = (char)(0x80 | ((u >> 6) & 0x3F));
			*o++ = (char)(0x80 | (u & 0x3F));
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

/* ---- numbers ---- */

/* Decimal digits without printf: this runs for every number of every row. */
static size_t
format_u64(char *out, unsigned long long v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* width digits, zero-padded */
static void
put_digits(char *out, unsigned long v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
encode_int(struct dp_buf *b, long long v, int quoted)
{
	char tmp[32];
	size_t n = 0;
	if (quoted)
		tmp[n++] = '"';
	if (v < 0)
		tmp[n++] = '-';
	n += format_u64(tmp + n, v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v);
	if (quoted)
		tmp[n++] = '"';
	dp_buf_add(b, tmp, n);
}

/* The shortest decimal text that reads back to exactly the same value;
 * -1 for NaN and the infinities, which JSON cannot write (SQL Server cannot
 * store them, so one means the reply is broken). */
static int
encode_float(struct dp_buf *b, double v, int single)
{
	char tmp[40];
	if (!isfinite(v))
		return -1;
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, v);
		double back = strtod(tmp, NULL);
		if (single ? (float)back == (float)v : back == v)
			break;
	}
	dp_buf_str(b, tmp); /* "1e+20" is JSON */
	return 0;
}

/* Digits of an unsigned 128-bit magnitude with exactly scale decimals. */
static void
encode_scaled(struct dp_buf *b, int negative, unsigned __int128 mag, int scale)
{
	char digits[64], out[72];
	int n = 0;
	size_t o = 0;
	do {
		digits[n++] = (char)('0' + (int)(mag % 10));
		mag /= 10;
	} while (mag);
	while (n <= scale)
		digits[n++] = '0';
	out[o++] = '"';
	if (negative)
		out[o++] = '-';
	for (int i = n - 1; i >= 0; i--) {
		out[o++] = digits[i];
		if (i == scale && scale > 0)
			out[o++] = '.';
	}
	out[o++] = '"';
	dp_buf_add(b, out, o);
}

/* Bytes of a DBNUMERIC's array for a precision (sign byte included). */
static int
numeric_bytes(int precision)
{
	static const int bytes[] = {1,  2,  2,  3,  3,  4,  4,  4,  5,  5,  6,  6,  6,  7,  7,  8,  8,  9,  9, 9,
	                            10, 10, 11, 11, 11, 12, 12, 13, 13, 14, 14, 14, 15, 15, 16, 16, 16, 17, 17};
	return precision >= 0 && precision <= 38 ? bytes[precision] : 17;
}

/* -1 for a scale no decimal(p,s) has (s <= p <= 38). */
static int
encode_numeric(struct dp_buf *b, const DBNUMERIC *num)
{
	if (num->scale > 38)
		return -1;
	unsigned __int128 mag = 0;
	int n = numeric_bytes(num->precision);
	for (int i = 1; i < n; i++)
		mag = mag << 8 | num->array[i];
	encode_scaled(b, num->array[0] != 0 && mag != 0, mag, num->scale);
	return 0;
}

/* ---- dates ---- */

static void
civil_from_days(long z, int *y, int *m, int *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = (long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

/* days counted from 1900-01-01, as db-lib gives them */
#define DAYS_1900_FROM_1970 (-25567L)
/* 0001-01-01 and 9999-12-31, the range of every SQL Server date type */
#define FIRST_DAY_1900 (-693595L)
#define LAST_DAY_1900 2958463L
/* 100 ns ticks in a day */
#define TICKS_PER_DAY 864000000000LL

static int
date_in_range(long long days_since_1900)
{
	return days_since_1900 >= FIRST_DAY_1900 && days_since_1900 <= LAST_DAY_1900;
}

static void
put_date(struct dp_buf *b, long days_since_1900)
{
	int y, m, d;
	char tmp[10];
	civil_from_days(days_since_1900 + DAYS_1900_FROM_1970, &y, &m, &d);
	put_digits(tmp, (unsigned long)y, 4);
	tmp[4] = '-';
	put_digits(tmp + 5, (unsigned long)m, 2);
	tmp[7] = '-';
	put_digits(tmp + 8, (unsigned long)d, 2);
	dp_buf_add(b, tmp, 10);
}

/* HH:MM:SS and `digits` fractional digits of a time in 100 ns units. */
static void
put_time(struct dp_buf *b, unsigned long long ticks, int digits)
{
	char tmp[20];
	unsigned long long secs = ticks / 10000000ULL, frac = ticks % 10000000ULL;
	put_digits(tmp, (unsigned long)(secs / 3600 % 100), 2);
	tmp[2] = ':';
	put_digits(tmp + 3, (unsigned long)(secs / 60 % 60), 2);
	tmp[5] = ':';
	put_digits(tmp + 6, (unsigned long)(secs % 60), 2);
	size_t n = 8;
	if (digits > 0) {
		char f[7];
		put_digits(f, (unsigned long)frac, 7);
		tmp[n++] = '.';
		memcpy(tmp + n, f, (size_t)digits);
		n += (size_t)digits;
	}
	dp_buf_add(b, tmp, n);
}

/* -1 for a date outside 0001..9999, a time past midnight or an offset
 * beyond ±14:00: what no SQL Server value is. */
static int
encode_datetimeall(struct dp_buf *b, const struct column *c, int dbtype, const DBDATETIMEALL *dt)
{
	int digits = c->scale >= 0 && c->scale <= 7 ? c->scale : (int)dt->time_prec;
	long long days = dt->date;
	unsigned long long ticks = dt->time;
	if ((dbtype != SYBMSTIME && !date_in_range(days)) || ticks >= (unsigned long long)TICKS_PER_DAY ||
	    dt->offset < -840 || dt->offset > 840)
		return -1;
	if (dbtype == SYBMSDATETIMEOFFSET) {
		/* db-lib holds UTC and the offset; the text is the local time. */
		long long t = days * TICKS_PER_DAY + (long long)ticks + (long long)dt->offset * 600000000LL;
		days = t / TICKS_PER_DAY;
		ticks = (unsigned long long)(t - days * TICKS_PER_DAY);
		if ((long long)ticks < 0) {
			ticks += (unsigned long long)TICKS_PER_DAY;
			days--;
		}
		if (!date_in_range(days)) /* 0001-01-01T00:00-01:00 */
			return -1;
	}
	dp_buf_char(b, '"');
	if (dbtype != SYBMSTIME)
		put_date(b, (long)days);
	if (dbtype == SYBMSDATETIME2 || dbtype == SYBMSDATETIMEOFFSET)
		dp_buf_char(b, 'T');
	if (dbtype != SYBMSDATE)
		put_time(b, ticks, digits);
	if (dbtype == SYBMSDATETIMEOFFSET) {
		char tmp[16];
		int off = dt->offset;
		snprintf(tmp, sizeof tmp, "%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
		dp_buf_str(b, tmp);
	}
	dp_buf_char(b, '"');
	return 0;
}

/* -1 outside 1753..9999 (datetime) and days or ticks no server sends. */
static int
encode_datetime(struct dp_buf *b, const DBDATETIME *dt)
{
	/* 1/300 s ticks shown as SQL Server shows them: .000, .003, .007 */
	long long ms = ((long long)dt->dttime * 10 + 1) / 3;
	long days = dt->dtdays;
	if (dt->dttime < 0 || dt->dttime >= 300L * 86400 || !date_in_range(days))
		return -1;
	dp_buf_char(b, '"');
	put_date(b, days);
	dp_buf_char(b, 'T');
	put_time(b, (unsigned long long)ms * 10000ULL, 3);
	dp_buf_char(b, '"');
	return 0;
}

static int
encode_smalldatetime(struct dp_buf *b, const DBDATETIME4 *dt)
{
	if (dt->minutes >= 1440)
		return -1;
	dp_buf_char(b, '"');
	put_date(b, dt->days);
	dp_buf_char(b, 'T');
	put_time(b, (unsigned long long)dt->minutes * 600000000ULL, 0);
	dp_buf_char(b, '"');
	return 0;
}

/* ---- binary ---- */

static void
encode_binary(struct dp_buf *b, const BYTE *p, DBINT n, int hex)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char hx[] = "0123456789abcdef";
	size_t len = (size_t)n;
	dp_buf_reserve(b, len * 2 + 4);
	b->p[b->len++] = '"';
	if (hex) {
		for (size_t i = 0; i < len; i++) {
			b->p[b->len++] = hx[p[i] >> 4];
			b->p[b->len++] = hx[p[i] & 15];
		}
	} else {
		size_t i = 0;
		for (; i + 2 < len; i += 3) {
			unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
			char q[4] = {b64[v >> 18], b64[v >> 12 & 63], b64[v >> 6 & 63], b64[v & 63]};
			memcpy(b->p + b->len, q, 4);
			b->len += 4;
		}
		if (i < len) {
			unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
			char q[4] = {b64[v >> 18], b64[v >> 12 & 63], i + 1 < len ? b64[v >> 6 & 63] : '=', '='};
			memcpy(b->p + b->len, q, 4);
			b->len += 4;
		}
	}
	b->p[b->len++] = '"';
}

static void
encode_guid(struct dp_buf *b, const BYTE *g)
{
	/* The first three groups are little-endian on the wire. */
	char tmp[48];
	snprintf(tmp, sizeof tmp, "\"%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\"", g[3],
	         g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
	dp_buf_str(b, tmp);
}

static long long
le_int(const BYTE *p, DBINT n)
{
	switch (n) {
	case 1: return p[0];
	case 2: {
		int16_t v;
		memcpy(&v, p, 2);
		return v;
	}
	case 4: {
		int32_t v;
		memcpy(&v, p, 4);
		return v;
	}
	default: {
		int64_t v;
		memcpy(&v, p, 8);
		return v;
	}
	}
}

int
encode_value(struct dp_buf *b, const struct column *c, int dbtype, const BYTE *data, DBINT len,
             const struct encoding *enc)
{
	if (!data) {
		dp_buf_add(b, "null", 4);
		return 0;
	}
	switch (dbtype) {
	case SYBBIT:
	case SYBBITN: dp_buf_str(b, data[0] ? "true" : "false"); return 0;
	case SYBINT1:
	case SYBINT2:
	case SYBINT4:
	case SYBINT8:
	case SYBINTN: encode_int(b, le_int(data, len), len == 8 && enc->bigint_as_string); return 0;
	case SYBFLT8:
	case SYBREAL:
	case SYBFLTN:
		if (len == 4) {
			float f;
			memcpy(&f, data, 4);
			return encode_float(b, f, 1);
		} else {
			double d;
			memcpy(&d, data, 8);
			return encode_float(b, d, 0);
		}
	case SYBDECIMAL:
	case SYBNUMERIC: return encode_numeric(b, (const DBNUMERIC *)data);
	case SYBMONEY:
	case SYBMONEY4:
	case SYBMONEYN: {
		long long v;
		if (len == 4) {
			DBMONEY4 m4;
			memcpy(&m4, data, 4);
			v = m4.mny4;
		} else {
			DBMONEY m;
			memcpy(&m, data, sizeof m);
			v = (long long)((unsigned long long)(unsigned)m.mnyhigh << 32 | m.mnylow);
		}
		encode_scaled(b, v < 0, v < 0 ? (unsigned __int128)(0 - (unsigned long long)v) : (unsigned __int128)v,
		              4);
		return 0;
	}
	case SYBDATETIME:
	case SYBDATETIMN:
	case SYBDATETIME4:
		if (len == 4)
			return encode_smalldatetime(b, (const DBDATETIME4 *)data);
		return encode_datetime(b, (const DBDATETIME *)data);
	case SYBMSDATE:
	case SYBMSTIME:
	case SYBMSDATETIME2:
	case SYBMSDATETIMEOFFSET: return encode_datetimeall(b, c, dbtype, (const DBDATETIMEALL *)data);
	case DP_SYBUNIQUE: encode_guid(b, data); return 0;
	case SYBBINARY:
	case SYBVARBINARY:
	case SYBIMAGE:
		if (c->logical[0] == 's') /* string: an n-type read as its UTF-16 bytes */
			encode_utf16le(b, data, (size_t)len);
		else
			encode_binary(b, data, len, enc->binary_as_hex);
		return 0;
	default:
		/* The character types, already UTF-8 (the login asks db-lib for it). */
		encode_string(b, (const char *)data, (size_t)len);
		return 0;
	}
}
