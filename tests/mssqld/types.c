/*
 * types.c: SQL Server types, and the forms their values take.
 *
 * Storage (what SQLite holds) is chosen so that SQLite's own comparisons
 * and ORDER BY give SQL Server's answers without losing a digit:
 *   bit, tinyint..bigint         INTEGER
 *   real, float                  REAL
 *   decimal, numeric, money      TEXT, 77 characters: '1' (>= 0) or '0'
 *                                (< 0), then 38 integer and 38 fraction
 *                                digits, nines-complemented when negative,
 *                                so text order is numeric order at any scale
 *   date                         TEXT 'YYYY-MM-DD'
 *   time                         TEXT 'HH:MM:SS.fffffff'
 *   datetime2, datetime,         TEXT 'YYYY-MM-DD HH:MM:SS.fffffff'
 *   smalldatetime                (datetime keeps its 1/300 s ticks exactly)
 *   datetimeoffset               TEXT 'YYYY-MM-DD HH:MM:SS.fffffff+HH:MM',
 *                                the date and time in UTC
 *   char family                  TEXT (UTF-8), collated TSQL: case- and
 *                                trailing-space-insensitive like CI_AS
 *   binary family, rowversion    BLOB
 *   uniqueidentifier             TEXT 'XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX'
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mssqld.h"

#define DEC_DIGITS 38
static const unsigned __int128 TEN38 = (unsigned __int128)10000000000000000000ull * 10000000000000000000ull;

void
sqlerr_set(struct sqlerr *e, int number, int cls, const char *fmt, ...)
{
	va_list ap;
	e->number = number;
	e->cls = cls;
	e->state = 1;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

/* ---- type names ---- */

static const struct {
	const char *name;
	enum tbase base;
} type_names[] = {
	{"bit", T_BIT},
	{"tinyint", T_TINYINT},
	{"smallint", T_SMALLINT},
	{"int", T_INT},
	{"bigint", T_BIGINT},
	{"decimal", T_DECIMAL},
	{"numeric", T_NUMERIC},
	{"money", T_MONEY},
	{"smallmoney", T_SMALLMONEY},
	{"real", T_REAL},
	{"float", T_FLOAT},
	{"date", T_DATE},
	{"time", T_TIME},
	{"smalldatetime", T_SMALLDATETIME},
	{"datetime", T_DATETIME},
	{"datetime2", T_DATETIME2},
	{"datetimeoffset", T_DATETIMEOFFSET},
	{"char", T_CHAR},
	{"varchar", T_VARCHAR},
	{"nchar", T_NCHAR},
	{"nvarchar", T_NVARCHAR},
	{"binary", T_BINARY},
	{"varbinary", T_VARBINARY},
	{"uniqueidentifier", T_UNIQUEIDENTIFIER},
	{"rowversion", T_ROWVERSION},
	{"timestamp", T_ROWVERSION},
	{"text", T_VARCHAR},
	{"ntext", T_NVARCHAR},
	{"image", T_VARBINARY},
	{"sysname", T_NVARCHAR},
	{"character", T_CHAR},
	{"integer", T_INT},
	{"dec", T_DECIMAL},
};

/* args: lengths or precision/scale as written; -1 stands for max. */
int
type_from_name(const char *name, int nargs, const long *args, struct stype *t)
{
	char lower[32];
	size_t i;
	for (i = 0; i < sizeof lower - 1 && name[i]; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	memset(t, 0, sizeof *t);
	for (i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (!strcmp(type_names[i].name, lower))
			break;
	if (i == sizeof type_names / sizeof type_names[0])
		return -1;
	t->base = type_names[i].base;
	switch (t->base) {
	case T_DECIMAL:
	case T_NUMERIC:
		t->prec = nargs >= 1 ? (int)args[0] : 18;
		t->scale = nargs >= 2 ? (int)args[1] : 0;
		if (t->prec < 1 || t->prec > 38 || t->scale < 0 || t->scale > t->prec || nargs > 2)
			return -2;
		break;
	case T_MONEY:
		t->prec = 19;
		t->scale = 4;
		break;
	case T_SMALLMONEY:
		t->prec = 10;
		t->scale = 4;
		break;
	case T_FLOAT:
		if (nargs == 1 && args[0] >= 1 && args[0] <= 24)
			t->base = T_REAL;
		else if (nargs > 1 || (nargs == 1 && (args[0] < 1 || args[0] > 53)))
			return -2;
		break;
	case T_TIME:
	case T_DATETIME2:
	case T_DATETIMEOFFSET:
		t->scale = nargs >= 1 ? (int)args[0] : 7;
		if (t->scale < 0 || t->scale > 7 || nargs > 1)
			return -2;
		break;
	case T_DATETIME: t->scale = 3; break;
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR:
	case T_BINARY:
	case T_VARBINARY: {
		int maxlen = (t->base == T_NCHAR || t->base == T_NVARCHAR) ? 4000 : 8000;
		if (!strcmp(lower, "text") || !strcmp(lower, "ntext") || !strcmp(lower, "image"))
			t->len = -1;
		else if (!strcmp(lower, "sysname"))
			t->len = 128;
		else
			t->len = nargs >= 1 ? (int)args[0] : 1;
		if (nargs > 1 || (t->len != -1 && (t->len < 1 || t->len > maxlen)) ||
		    (t->len == -1 && (t->base == T_CHAR || t->base == T_NCHAR || t->base == T_BINARY)))
			return -2;
		break;
	}
	case T_ROWVERSION: t->len = 8; break;
	case T_UNIQUEIDENTIFIER: t->len = 16; break;
	default:
		if (nargs)
			return -2;
	}
	return 0;
}

static const char *
base_name(enum tbase b)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (type_names[i].base == b)
			return type_names[i].name;
	return "null";
}

void
type_format(const struct stype *t, char *buf, size_t len)
{
	const char *n = base_name(t->base);
	switch (t->base) {
	case T_DECIMAL:
	case T_NUMERIC: snprintf(buf, len, "%s(%d,%d)", n, t->prec, t->scale); break;
	case T_TIME:
	case T_DATETIME2:
	case T_DATETIMEOFFSET: snprintf(buf, len, "%s(%d)", n, t->scale); break;
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR:
	case T_BINARY:
	case T_VARBINARY:
		if (t->len < 0)
			snprintf(buf, len, "%s(max)", n);
		else
			snprintf(buf, len, "%s(%d)", n, t->len);
		break;
	default: snprintf(buf, len, "%s", n);
	}
}

int
type_parse_text(const char *text, struct stype *t)
{
	char name[32];
	long args[2];
	int nargs = 0;
	size_t n = strcspn(text, "(");
	if (n >= sizeof name)
		return -1;
	memcpy(name, text, n);
	name[n] = '\0';
	const char *p = text + n;
	if (*p == '(') {
		p++;
		while (*p && *p != ')' && nargs < 2) {
			if (!strncmp(p, "max", 3)) {
				args[nargs++] = -1;
				p += 3;
			} else {
				args[nargs++] = strtol(p, (char **)&p, 10);
			}
			if (*p == ',')
				p++;
		}
	}
	return type_from_name(name, nargs, args, t);
}

int
type_is_char(enum tbase b)
{
	return b == T_CHAR || b == T_VARCHAR || b == T_NCHAR || b == T_NVARCHAR;
}
int
type_is_unicode(enum tbase b)
{
	return b == T_NCHAR || b == T_NVARCHAR;
}
int
type_is_binary(enum tbase b)
{
	return b == T_BINARY || b == T_VARBINARY || b == T_ROWVERSION;
}
int
type_is_numeric(enum tbase b)
{
	return b >= T_BIT && b <= T_FLOAT;
}
int
type_is_temporal(enum tbase b)
{
	return b >= T_DATE && b <= T_DATETIMEOFFSET;
}

int
type_max_bytes(const struct stype *t)
{
	if (t->len < 0)
		return -1;
	return type_is_unicode(t->base) ? t->len * 2 : t->len;
}

/* ---- values ---- */

void
value_clear(struct value *v)
{
	free(v->text);
	free(v->blob);
	memset(v, 0, sizeof *v);
}

static void
set_text(struct value *v, const char *s, size_t n)
{
	char *copy = malloc(n + 1);
	memcpy(copy, s, n);
	copy[n] = '\0';
	value_clear(v);
	v->kind = V_TEXT;
	v->text = copy;
	v->len = n;
}

static void
set_blob(struct value *v, const unsigned char *p, size_t n)
{
	unsigned char *copy = malloc(n ? n : 1);
	if (n)
		memcpy(copy, p, n);
	value_clear(v);
	v->kind = V_BLOB;
	v->blob = copy;
	v->len = n;
}

/* ---- calendar: days since 0001-01-01 ---- */

static long
days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468 + 719162; /* shift so 0001-01-01 is 0 */
}

static void
civil_from_days(long z, int *y, int *m, int *d)
{
	z += 719468 - 719162;
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

#define TICKS_PER_DAY 864000000000LL
static const long long pow10_ll[] = {1LL, 10LL, 100LL, 1000LL, 10000LL, 100000LL, 1000000LL, 10000000LL};

/* n decimal digits at s, or -1. */
static long
digits_at(const char *s, int n)
{
	long v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* The storage forms ('YYYY-MM-DD', 'HH:MM:SS.fffffff', both with a space)
 * have fixed positions: read them without sscanf, which is most of the
 * cost of streaming a table. Returns 1 if s was one of them. */
static int
parse_storage_fast(const char *s, size_t n, struct value *v)
{
	memset(v, 0, sizeof *v);
	v->kind = V_TIME;
	const char *t = NULL;
	if (n >= 10 && s[4] == '-' && s[7] == '-') {
		long y = digits_at(s, 4), m = digits_at(s + 5, 2), d = digits_at(s + 8, 2);
		if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31)
			return 0;
		v->has_date = 1;
		v->days = (int)days_from_civil(y, (unsigned)m, (unsigned)d);
		if (n == 10)
			return 1;
		if (s[10] != ' ')
			return 0;
		t = s + 11;
		n -= 11;
	} else {
		t = s;
	}
	if (n != 16 || t[2] != ':' || t[5] != ':' || t[8] != '.')
		return 0;
	long h = digits_at(t, 2), mi = digits_at(t + 3, 2), sec = digits_at(t + 6, 2), frac = digits_at(t + 9, 7);
	if (h < 0 || mi < 0 || sec < 0 || frac < 0)
		return 0;
	v->has_time = 1;
	v->ticks = ((long long)h * 3600 + mi * 60 + sec) * 10000000LL + frac;
	return 1;
}

/* Parse 'YYYY-MM-DD', 'YYYYMMDD', times, 'T' or ' ', offsets, 'Z'. */
static int
parse_datetime_text(const char *s, struct value *v)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	long long frac = 0;
	memset(v, 0, sizeof *v);
	v->kind = V_TIME;
	while (*s == ' ')
		s++;
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10) {
		v->has_date = 1;
	} else if (strlen(s) >= 8 && strspn(s, "0123456789") == 8 && sscanf(s, "%4d%2d%2d", &y, &mo, &d) == 3) {
		n = 8;
		v->has_date = 1;
	}
	if (v->has_date) {
		if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31)
			return -1;
		long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
		int cy, cm, cd;
		civil_from_days(days, &cy, &cm, &cd);
		if (cy != y || cm != mo || cd != d)
			return -1; /* 2026-02-30 */
		v->days = (int)days;
		s += n;
		if (*s == 'T' || *s == ' ')
			s++;
		while (*s == ' ')
			s++;
	}
	if (isdigit((unsigned char)*s)) {
		n = 0;
		if (sscanf(s, "%2d:%2d%n", &h, &mi, &n) != 2)
			return -1;
		s += n;
		if (*s == ':') {
			if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
				return -1;
			sec = (s[1] - '0') * 10 + (s[2] - '0');
			s += 3;
			if (*s == '.') {
				s++;
				int digits = 0;
				while (isdigit((unsigned char)*s)) {
					if (digits < 7) {
						frac = frac * 10 + (*s - '0');
						digits++;
					} else if (digits == 7 && *s >= '5') {
						frac++; /* round the 8th digit */
						digits++;
					}
					s++;
				}
				for (int k = digits > 7 ? 7 : digits; k < 7; k++)
					frac *= 10;
			}
		}
		if (h > 23 || mi > 59 || sec > 59)
			return -1;
		v->has_time = 1;
		v->ticks = ((long long)h * 3600 + mi * 60 + sec) * 10000000LL + frac;
	}
	while (*s == ' ')
		s++;
	if (*s == 'Z') {
		v->has_offset = 1;
		s++;
	} else if ((*s == '+' || *s == '-') && v->has_time) {
		int oh, om;
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || oh > 14 || om > 59)
			return -1;
		v->has_offset = 1;
		v->offset = (oh * 60 + om) * (*s == '-' ? -1 : 1);
		s += 1 + n;
	}
	while (*s == ' ')
		s++;
	if (*s || (!v->has_date && !v->has_time))
		return -1;
	if (v->has_offset) {
		/* Keep the instant in UTC, as datetimeoffset does. */
		long long t = (long long)v->days * TICKS_PER_DAY + v->ticks - (long long)v->offset * 600000000LL;
		v->days = (int)(t / TICKS_PER_DAY);
		v->ticks = t % TICKS_PER_DAY;
		if (v->ticks < 0) {
			v->ticks += TICKS_PER_DAY;
			v->days--;
		}
	}
	return 0;
}

static void
format_date(int days, char *buf)
{
	int y, m, d;
	civil_from_days(days, &y, &m, &d);
	sprintf(buf, "%04d-%02d-%02d", y, m, d);
}

static void
format_time(long long ticks, int scale, char *buf)
{
	long long secs = ticks / 10000000LL, frac = ticks % 10000000LL;
	int n = sprintf(buf, "%02lld:%02lld:%02lld", secs / 3600 % 100, secs / 60 % 60, secs % 60);
	if (scale > 0 && scale <= 7) {
		char digits[24];
		snprintf(digits, sizeof digits, "%07lld", frac < 0 ? 0 : frac % 10000000LL);
		buf[n] = '.';
		memcpy(buf + n + 1, digits, (size_t)scale);
		buf[n + 1 + scale] = '\0';
	}
}

/* Round ticks to scale digits; may carry into the next day. */
static void
round_ticks(struct value *v, int scale)
{
	long long unit = pow10_ll[7 - scale];
	long long r = (v->ticks + unit / 2) / unit * unit;
	if (r >= TICKS_PER_DAY) {
		r -= TICKS_PER_DAY;
		v->days++;
	}
	v->ticks = r;
}

/* ---- decimals ---- */

static void
dec_to_digits(unsigned __int128 x, char *buf, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		buf[i] = (char)('0' + (int)(x % 10));
		x /= 10;
	}
	buf[width] = '\0';
}

static unsigned __int128
pow10_128(int n)
{
	unsigned __int128 r = 1;
	while (n-- > 0)
		r *= 10;
	return r;
}

static int
digits_of(unsigned __int128 x)
{
	int n = 0;
	while (x) {
		n++;
		x /= 10;
	}
	return n;
}

/* Storage text of a decimal value. buf has room for 78 bytes. */
static void
dec_storage(const struct value *v, char *buf)
{
	unsigned __int128 scale_pow = pow10_128(v->scale);
	unsigned __int128 ip = v->mag / scale_pow, fp = (v->mag % scale_pow) * pow10_128(DEC_DIGITS - v->scale);
	int neg = v->neg && v->mag != 0;
	buf[0] = neg ? '0' : '1';
	dec_to_digits(ip, buf + 1, DEC_DIGITS);
	dec_to_digits(fp, buf + 1 + DEC_DIGITS, DEC_DIGITS);
	if (neg)
		for (int i = 1; i <= 2 * DEC_DIGITS; i++)
			buf[i] = (char)('9' - buf[i] + '0');
}

static int
dec_from_storage(const char *s, size_t n, int scale, struct value *v)
{
	if (n != 1 + 2 * DEC_DIGITS)
		return -1;
	char digits[2 * DEC_DIGITS + 1];
	int neg = s[0] == '0';
	for (int i = 0; i < 2 * DEC_DIGITS; i++)
		digits[i] = neg ? (char)('9' - s[1 + i] + '0') : s[1 + i];
	unsigned __int128 ip = 0, fp = 0;
	for (int i = 0; i < DEC_DIGITS; i++)
		ip = ip * 10 + (unsigned)(digits[i] - '0');
	for (int i = 0; i < scale; i++)
		fp = fp * 10 + (unsigned)(digits[DEC_DIGITS + i] - '0');
	memset(v, 0, sizeof *v);
	v->kind = V_DEC;
	v->neg = neg;
	v->scale = scale;
	v->mag = ip * pow10_128(scale) + fp;
	return 0;
}

/* Parse "-12.3400", "1e3" is not a decimal. */
static int
dec_parse(const char *s, struct value *v)
{
	memset(v, 0, sizeof *v);
	v->kind = V_DEC;
	while (*s == ' ')
		s++;
	if (*s == '-' || *s == '+')
		v->neg = *s++ == '-';
	int seen = 0, frac = 0, intdigits = 0;
	for (; *s; s++) {
		if (isdigit((unsigned char)*s)) {
			if (intdigits + frac >= 38 && !(intdigits == 0 && *s == '0' && !frac))
				return -2;
			v->mag = v->mag * 10 + (unsigned)(*s - '0');
			if (frac)
				v->scale++;
			else if (v->mag)
				intdigits++;
			seen = 1;
		} else if (*s == '.' && !frac) {
			frac = 1;
		} else {
			break;
		}
		if (frac && v->scale > 38)
			return -2;
	}
	while (*s == ' ')
		s++;
	return seen && !*s ? 0 : -1;
}

static int
dec_rescale(struct value *v, int scale)
{
	while (v->scale < scale) {
		if (v->mag > TEN38 / 10)
			return -1;
		v->mag *= 10;
		v->scale++;
	}
	if (v->scale > scale) {
		unsigned __int128 div = pow10_128(v->scale - scale);
		unsigned __int128 q = v->mag / div, r = v->mag % div;
		if (r * 2 >= div)
			q++; /* half away from zero, as SQL Server rounds */
		v->mag = q;
		v->scale = scale;
	}
	return 0;
}

static char *
dec_text(const struct value *v)
{
	char digits[80];
	dec_to_digits(v->mag, digits, 39);
	const char *p = digits;
	int intlen = 39 - v->scale;
	while (intlen > 1 && *p == '0') {
		p++;
		intlen--;
	}
	char *out = malloc(84);
	int n = sprintf(out, "%s%.*s", v->neg && v->mag ? "-" : "", intlen, p);
	if (v->scale)
		sprintf(out + n, ".%s", p + intlen);
	return out;
}

/* ---- GUIDs ---- */

static int
guid_parse(const char *s, unsigned char out[16])
{
	while (*s == ' ' || *s == '{')
		s++;
	int k = 0;
	for (int i = 0; k < 16 && s[i]; i++) {
		if (s[i] == '-' && (i == 8 || i == 13 || i == 18 || i == 23))
			continue;
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]))
			return -1;
		char hex[3] = {s[i], s[i + 1], 0};
		out[k++] = (unsigned char)strtol(hex, NULL, 16);
		i++;
		if (k == 16) {
			const char *rest = s + i + 1;
			while (*rest == '}' || *rest == ' ')
				rest++;
			return *rest ? -1 : 0;
		}
	}
	return -1;
}

static void
guid_format(const unsigned char g[16], char *buf)
{
	sprintf(buf, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", g[0], g[1], g[2], g[3],
	        g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
}

/* ---- storage -> value ---- */

int
value_from_storage(sqlite3_value *sv, const struct stype *t, struct value *v, struct sqlerr *e)
{
	memset(v, 0, sizeof *v);
	int st = sqlite3_value_type(sv);
	if (st == SQLITE_NULL)
		return 0;
	const char *text = NULL;
	size_t n = 0;
	/* Only text-stored types need the text (asking converts numbers). */
	if (st == SQLITE_TEXT) {
		text = (const char *)sqlite3_value_text(sv);
		n = (size_t)sqlite3_value_bytes(sv);
	} else if (t->base != T_BIT && t->base != T_TINYINT && t->base != T_SMALLINT && t->base != T_INT &&
	           t->base != T_BIGINT && t->base != T_REAL && t->base != T_FLOAT && !type_is_binary(t->base)) {
		text = (const char *)sqlite3_value_text(sv);
		n = (size_t)sqlite3_value_bytes(sv);
	}
	switch (t->base) {
	case T_BIT:
	case T_TINYINT:
	case T_SMALLINT:
	case T_INT:
	case T_BIGINT:
		v->kind = V_INT;
		v->i = sqlite3_value_int64(sv);
		return 0;
	case T_REAL:
	case T_FLOAT:
		v->kind = V_REAL;
		v->r = sqlite3_value_double(sv);
		return 0;
	case T_DECIMAL:
	case T_NUMERIC:
	case T_MONEY:
	case T_SMALLMONEY:
		if (dec_from_storage(text, n, t->scale, v) == 0)
			return 0;
		break;
	case T_DATE:
	case T_TIME:
	case T_SMALLDATETIME:
	case T_DATETIME:
	case T_DATETIME2:
	case T_DATETIMEOFFSET:
		if (t->base != T_DATETIMEOFFSET && parse_storage_fast(text, n, v))
			return 0;
		if (parse_datetime_text(text, v) == 0) {
			if (v->has_offset) {
				/* Stored datetimeoffset text is already UTC: undo the shift. */
				long long utc = (long long)v->days * TICKS_PER_DAY + v->ticks +
				                (long long)v->offset * 600000000LL;
				v->days = (int)(utc / TICKS_PER_DAY);
				v->ticks = utc % TICKS_PER_DAY;
			}
			return 0;
		}
		break;
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR:
	case T_NULL: set_text(v, text, n); return 0;
	case T_BINARY:
	case T_VARBINARY:
	case T_ROWVERSION: {
		const void *blob = sqlite3_value_blob(sv);
		set_blob(v, blob, (size_t)sqlite3_value_bytes(sv));
		return 0;
	}
	case T_UNIQUEIDENTIFIER: {
		unsigned char g[16];
		if (guid_parse(text, g) == 0) {
			set_blob(v, g, 16);
			return 0;
		}
		break;
	}
	}
	sqlerr_set(e, 50000, 16, "mssqld: corrupt stored value for its column type");
	return -1;
}

/* ---- conversion ---- */

static int
conversion_failed(struct sqlerr *e, const struct value *v, const struct stype *from, const struct stype *to)
{
	char tn[64];
	type_format(to, tn, sizeof tn);
	char *p = strchr(tn, '(');
	if (p && !type_is_char(to->base))
		*p = '\0';
	if (type_is_temporal(to->base) && v->kind == V_TEXT) {
		sqlerr_set(e, 241, 16, "Conversion failed when converting date and/or time from character string.");
	} else if ((to->base == T_DECIMAL || to->base == T_NUMERIC) && v->kind == V_TEXT) {
		sqlerr_set(e, 8114, 16, "Error converting data type %s to numeric.",
		           from && type_is_unicode(from->base) ? "nvarchar" : "varchar");
	} else if (to->base == T_UNIQUEIDENTIFIER) {
		sqlerr_set(e, 8169, 16,
		           "Conversion failed when converting from a character string to uniqueidentifier.");
	} else if (v->kind == V_TEXT) {
		sqlerr_set(e, 245, 16, "Conversion failed when converting the %s value '%.200s' to data type %s.",
		           from && type_is_unicode(from->base) ? "nvarchar" : "varchar", v->text, tn);
	} else {
		char fn[64] = "value";
		if (from)
			type_format(from, fn, sizeof fn);
		sqlerr_set(e, 529, 16, "Explicit conversion from data type %s to %s is not allowed.", fn, tn);
	}
	return -1;
}

static int
overflow(struct sqlerr *e, const char *from, const struct stype *to)
{
	char tn[64];
	type_format(to, tn, sizeof tn);
	char *p = strchr(tn, '(');
	if (p)
		*p = '\0';
	sqlerr_set(e, 8115, 16, "Arithmetic overflow error converting %s to data type %s.", from, tn);
	return -1;
}

static int
int_range(enum tbase b, long long x)
{
	switch (b) {
	case T_BIT: return 1;
	case T_TINYINT: return x >= 0 && x <= 255;
	case T_SMALLINT: return x >= -32768 && x <= 32767;
	case T_INT: return x >= -2147483648LL && x <= 2147483647LL;
	default: return 1;
	}
}

static int
to_integer(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	long long x;
	switch (v->kind) {
	case V_INT: x = v->i; break;
	case V_REAL:
		if (!(v->r > -9.3e18 && v->r < 9.3e18))
			return overflow(e, "float", to);
		x = (long long)v->r;
		break;
	case V_DEC: {
		unsigned __int128 q = v->mag / pow10_128(v->scale);
		if (q > (unsigned __int128)9223372036854775807LL + (v->neg ? 1 : 0))
			return overflow(e, "numeric", to);
		x = v->neg ? (long long)(0 - (unsigned long long)q) : (long long)q;
		break;
	}
	case V_TEXT: {
		const char *s = v->text;
		while (*s == ' ')
			s++;
		if (to->base == T_BIT && (!strcasecmp(s, "true") || !strcasecmp(s, "false"))) {
			x = !strcasecmp(s, "true");
			break;
		}
		char *end;
		errno = 0;
		x = strtoll(s, &end, 10);
		while (*end == ' ')
			end++;
		if (errno || end == s || *end)
			return conversion_failed(e, v, from, to);
		break;
	}
	default: return conversion_failed(e, v, from, to);
	}
	if (to->base == T_BIT)
		x = x != 0;
	if (!int_range(to->base, x))
		return overflow(e, "expression", to);
	value_clear(v);
	v->kind = V_INT;
	v->i = x;
	return 0;
}

static int
to_decimal(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	struct value d;
	memset(&d, 0, sizeof d);
	switch (v->kind) {
	case V_INT:
		d.kind = V_DEC;
		d.neg = v->i < 0;
		d.mag = v->i < 0 ? (unsigned __int128)(-(v->i + 1)) + 1 : (unsigned __int128)v->i;
		break;
	case V_DEC: d = *v; break;
	case V_REAL: {
		char buf[64];
		if (!isfinite(v->r))
			return overflow(e, "float", to);
		snprintf(buf, sizeof buf, "%.*f", to->scale + 1 > 17 ? 17 : to->scale + 1, v->r);
		if (dec_parse(buf, &d))
			return overflow(e, "float", to);
		break;
	}
	case V_TEXT:
		if (dec_parse(v->text, &d))
			return conversion_failed(e, v, from, to);
		break;
	default: return conversion_failed(e, v, from, to);
	}
	if (dec_rescale(&d, to->scale) || digits_of(d.mag) > to->prec)
		return overflow(e, v->kind == V_TEXT ? "varchar" : "numeric", to);
	if (to->base == T_MONEY && d.mag > (unsigned __int128)9223372036854775807ULL + (d.neg ? 1 : 0))
		return overflow(e, "numeric", to);
	if (to->base == T_SMALLMONEY && d.mag > (unsigned __int128)2147483647ULL + (d.neg ? 1 : 0))
		return overflow(e, "numeric", to);
	value_clear(v);
	*v = d;
	v->kind = V_DEC;
	return 0;
}

static int
to_real(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	double r;
	switch (v->kind) {
	case V_INT: r = (double)v->i; break;
	case V_REAL: r = v->r; break;
	case V_DEC: {
		char *t = dec_text(v);
		r = strtod(t, NULL);
		free(t);
		break;
	}
	case V_TEXT: {
		char *end;
		errno = 0;
		r = strtod(v->text, &end);
		while (*end == ' ')
			end++;
		if (end == v->text || *end || !isfinite(r))
			return conversion_failed(e, v, from, to);
		break;
	}
	default: return conversion_failed(e, v, from, to);
	}
	if (to->base == T_REAL) {
		if (fabs(r) > 3.40282346638528859812e+38)
			return overflow(e, "float", to);
		r = (double)(float)r;
	}
	value_clear(v);
	v->kind = V_REAL;
	v->r = r;
	return 0;
}

static int
to_temporal(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	struct value tv;
	if (v->kind == V_TEXT) {
		if (parse_datetime_text(v->text, &tv))
			return conversion_failed(e, v, from, to);
		if (tv.has_offset && to->base != T_DATETIMEOFFSET) {
			/* A literal's offset is dropped, keeping its local time. */
			long long t =
				(long long)tv.days * TICKS_PER_DAY + tv.ticks + (long long)tv.offset * 600000000LL;
			tv.days = (int)(t / TICKS_PER_DAY);
			tv.ticks = t % TICKS_PER_DAY;
		}
	} else if (v->kind == V_TIME) {
		tv = *v;
		if (from && from->base == T_DATETIMEOFFSET && to->base != T_DATETIMEOFFSET) {
			long long t =
				(long long)tv.days * TICKS_PER_DAY + tv.ticks + (long long)tv.offset * 600000000LL;
			tv.days = (int)(t / TICKS_PER_DAY);
			tv.ticks = t % TICKS_PER_DAY;
		}
	} else {
		return conversion_failed(e, v, from, to);
	}
	tv.kind = V_TIME;
	tv.text = NULL;
	tv.blob = NULL;
	if (!tv.has_date)
		tv.days = (int)days_from_civil(1900, 1, 1);
	switch (to->base) {
	case T_DATE: tv.ticks = 0; break;
	case T_TIME:
		round_ticks(&tv, to->scale);
		tv.days = 0;
		break;
	case T_DATETIME2: round_ticks(&tv, to->scale); break;
	case T_DATETIMEOFFSET:
		round_ticks(&tv, to->scale);
		tv.has_offset = 1;
		break;
	case T_DATETIME: {
		/* 1/300 s ticks, as SQL Server stores them. */
		long long t300 = (tv.ticks * 300 + 5000000) / 10000000;
		tv.ticks = t300 * 10000000 / 300 + ((t300 * 10000000) % 300 >= 150 ? 1 : 0);
		if (tv.ticks >= TICKS_PER_DAY) {
			tv.ticks -= TICKS_PER_DAY;
			tv.days++;
		}
		if (tv.days < days_from_civil(1753, 1, 1))
			goto out_of_range;
		break;
	}
	case T_SMALLDATETIME: {
		long long minute = 600000000LL;
		tv.ticks = (tv.ticks + minute / 2 - 1) / minute * minute; /* 29.998 s rounds down */
		if (tv.ticks >= TICKS_PER_DAY) {
			tv.ticks -= TICKS_PER_DAY;
			tv.days++;
		}
		if (tv.days < days_from_civil(1900, 1, 1) || tv.days > days_from_civil(2079, 6, 6))
			goto out_of_range;
		break;
	}
	default: break;
	}
	if (tv.days > days_from_civil(9999, 12, 31))
		goto out_of_range;
	value_clear(v);
	*v = tv;
	return 0;
out_of_range:
	sqlerr_set(e, 242, 16,
	           "The conversion of a varchar data type to a %s data type resulted in an out-of-range value.",
	           to->base == T_DATETIME ? "datetime" : "smalldatetime");
	return -1;
}

static char *
blob_hex(const unsigned char *p, size_t n, int prefix)
{
	char *out = malloc(n * 2 + 3);
	char *o = out;
	if (prefix) {
		*o++ = '0';
		*o++ = 'x';
	}
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%02X", p[i]);
	*o = '\0';
	return out;
}

static const char *const month_abbr[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *
temporal_text(const struct value *v, const struct stype *t, int style)
{
	char date[16], tm[32], out[80];
	long long ticks = v->ticks;
	int days = v->days;
	if (t->base == T_DATETIMEOFFSET) {
		long long lt = (long long)days * TICKS_PER_DAY + ticks + (long long)v->offset * 600000000LL;
		days = (int)(lt / TICKS_PER_DAY);
		ticks = lt % TICKS_PER_DAY;
	}
	format_date(days, date);
	if ((t->base == T_DATETIME || t->base == T_SMALLDATETIME) && (style == -1 || style == 0 || style == 100)) {
		int y, m, d;
		civil_from_days(days, &y, &m, &d);
		long long mins = ticks / 600000000LL;
		int h = (int)(mins / 60), mi = (int)(mins % 60);
		snprintf(out, sizeof out, "%s %2d %d %2d:%02d%s", month_abbr[m - 1], d, y, h % 12 ? h % 12 : 12, mi,
		         h < 12 ? "AM" : "PM");
		return strdup(out);
	}
	int scale = t->base == T_DATETIME ? 3 : t->base == T_SMALLDATETIME ? 0 : t->scale;
	struct value r = *v;
	r.ticks = ticks;
	r.days = days;
	if (t->base == T_DATETIME) {
		long long ms = (ticks + 5000) / 10000; /* .000 .003 .007 */
		r.ticks = ms * 10000;
	}
	format_time(r.ticks, scale, tm);
	char sep = (style == 126 || style == 127) ? 'T' : ' ';
	switch (t->base) {
	case T_DATE: snprintf(out, sizeof out, "%s", date); break;
	case T_TIME: snprintf(out, sizeof out, "%s", tm); break;
	case T_DATETIMEOFFSET:
		snprintf(out, sizeof out, "%s%c%s %c%02d:%02d", date, sep, tm, v->offset < 0 ? '-' : '+',
		         abs(v->offset) / 60, abs(v->offset) % 60);
		break;
	default: snprintf(out, sizeof out, "%s%c%s", date, sep, tm);
	}
	return strdup(out);
}

char *
value_to_text(const struct value *v, const struct stype *t, int style)
{
	char buf[64];
	switch (v->kind) {
	case V_NULL: return NULL;
	case V_INT: snprintf(buf, sizeof buf, "%lld", v->i); return strdup(buf);
	case V_REAL: snprintf(buf, sizeof buf, "%.17g", v->r); return strdup(buf);
	case V_DEC: return dec_text(v);
	case V_TEXT: return strdup(v->text);
	case V_TIME: return temporal_text(v, t, style);
	case V_BLOB:
		if (t && t->base == T_UNIQUEIDENTIFIER) {
			char g[40];
			guid_format(v->blob, g);
			return strdup(g);
		}
		if (style == 1 || style == 2)
			return blob_hex(v->blob, v->len, style == 1);
		{
			char *s = malloc(v->len + 1);
			memcpy(s, v->blob, v->len);
			s[v->len] = '\0';
			return s;
		}
	}
	return NULL;
}

static int
to_char(struct value *v, const struct stype *from, const struct stype *to)
{
	char *text;
	if (v->kind == V_TEXT)
		text = strdup(v->text);
	else
		text = value_to_text(v, from, -1);
	size_t n = strlen(text);
	size_t ascii = 0;
	while (ascii < n && (unsigned char)text[ascii] < 0x80)
		ascii++;
	if (!type_is_unicode(to->base) && ascii < n) {
		/* Only non-ASCII text can change on its way through CP1252. */
		size_t fitted;
		char *f = utf8_fit_cp1252(text, n, &fitted);
		free(text);
		text = f;
		n = fitted;
	}
	/* Truncate (CAST silently truncates; INSERT checks length first). */
	if (to->len > 0) {
		size_t chars = 0, i = 0;
		while (i < n && chars < (size_t)to->len) {
			unsigned char ch = (unsigned char)text[i];
			size_t step = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
			/* A non-BMP character takes two UTF-16 units in nvarchar. */
			chars += (step == 4 && type_is_unicode(to->base)) ? 2 : 1;
			if (chars > (size_t)to->len)
				break;
			i += step;
		}
		n = i;
		text[n] = '\0';
		if ((to->base == T_CHAR || to->base == T_NCHAR) && chars < (size_t)to->len) {
			size_t pad = (size_t)to->len - chars;
			text = realloc(text, n + pad + 1);
			memset(text + n, ' ', pad);
			n += pad;
			text[n] = '\0';
		}
	}
	value_clear(v);
	v->kind = V_TEXT;
	v->text = text;
	v->len = n;
	return 0;
}

static int
to_binary(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	unsigned char buf[8];
	switch (v->kind) {
	case V_BLOB: break;
	case V_TEXT:
		if (from && (from->base == T_NCHAR || from->base == T_NVARCHAR)) {
			/* nchar/nvarchar are UTF-16LE, as SQL Server stores them */
			unsigned char *u = malloc(2 * v->len + 2);
			size_t n = utf8_to_utf16(v->text, v->len, u);
			set_blob(v, u, n);
			free(u);
		} else {
			set_blob(v, (unsigned char *)v->text, v->len);
		}
		break;
	case V_INT: {
		int size = from && from->base == T_BIGINT                             ? 8
		           : from && from->base == T_SMALLINT                         ? 2
		           : from && (from->base == T_TINYINT || from->base == T_BIT) ? 1
		                                                                      : 4;
		for (int i = 0; i < size; i++)
			buf[i] = (unsigned char)((unsigned long long)v->i >> (8 * (size - 1 - i)));
		set_blob(v, buf, (size_t)size);
		break;
	}
	default: return conversion_failed(e, v, from, to);
	}
	if (to->base == T_ROWVERSION && v->len != 8)
		return conversion_failed(e, v, from, to);
	if (to->len > 0 && v->len > (size_t)to->len)
		v->len = (size_t)to->len;
	if (to->base == T_BINARY && v->len < (size_t)to->len) {
		v->blob = realloc(v->blob, (size_t)to->len);
		memset(v->blob + v->len, 0, (size_t)to->len - v->len);
		v->len = (size_t)to->len;
	}
	return 0;
}

int
value_convert(struct value *v, const struct stype *from, const struct stype *to, struct sqlerr *e)
{
	if (v->kind == V_NULL)
		return 0;
	switch (to->base) {
	case T_BIT:
	case T_TINYINT:
	case T_SMALLINT:
	case T_INT:
	case T_BIGINT:
		if (v->kind == V_TIME || v->kind == V_BLOB)
			return conversion_failed(e, v, from, to);
		return to_integer(v, from, to, e);
	case T_DECIMAL:
	case T_NUMERIC:
	case T_MONEY:
	case T_SMALLMONEY: return to_decimal(v, from, to, e);
	case T_REAL:
	case T_FLOAT: return to_real(v, from, to, e);
	case T_DATE:
	case T_TIME:
	case T_SMALLDATETIME:
	case T_DATETIME:
	case T_DATETIME2:
	case T_DATETIMEOFFSET: return to_temporal(v, from, to, e);
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR: return to_char(v, from, to);
	case T_BINARY:
	case T_VARBINARY:
	case T_ROWVERSION: return to_binary(v, from, to, e);
	case T_UNIQUEIDENTIFIER: {
		unsigned char g[16];
		if (v->kind == V_BLOB && v->len == 16)
			return 0;
		if (v->kind != V_TEXT || guid_parse(v->text, g))
			return conversion_failed(e, v, from, to);
		set_blob(v, g, 16);
		return 0;
	}
	case T_NULL: return 0;
	}
	return conversion_failed(e, v, from, to);
}

/* ---- value -> storage ---- */

static void
storage_text(const struct value *v, const struct stype *t, char *buf, size_t len)
{
	char date[16], tm[32];
	switch (t->base) {
	case T_DECIMAL:
	case T_NUMERIC:
	case T_MONEY:
	case T_SMALLMONEY: dec_storage(v, buf); return;
	case T_DATE: format_date(v->days, buf); return;
	case T_TIME: format_time(v->ticks, 7, buf); return;
	case T_DATETIMEOFFSET:
		format_date(v->days, date);
		format_time(v->ticks, 7, tm);
		snprintf(buf, len, "%s %s%c%02d:%02d", date, tm, v->offset < 0 ? '-' : '+', abs(v->offset) / 60,
		         abs(v->offset) % 60);
		return;
	case T_UNIQUEIDENTIFIER: guid_format(v->blob, buf); return;
	default:
		format_date(v->days, date);
		format_time(v->ticks, 7, tm);
		snprintf(buf, len, "%s %s", date, tm);
	}
}

void
value_result(sqlite3_context *ctx, const struct value *v, const struct stype *t)
{
	char buf[128];
	switch (v->kind) {
	case V_NULL: sqlite3_result_null(ctx); return;
	case V_INT: sqlite3_result_int64(ctx, v->i); return;
	case V_REAL: sqlite3_result_double(ctx, v->r); return;
	case V_TEXT: sqlite3_result_text(ctx, v->text, (int)v->len, SQLITE_TRANSIENT); return;
	case V_BLOB:
		if (t->base == T_UNIQUEIDENTIFIER)
			break;
		sqlite3_result_blob(ctx, v->blob, (int)v->len, SQLITE_TRANSIENT);
		return;
	default: break;
	}
	storage_text(v, t, buf, sizeof buf);
	sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
}

int
value_bind(sqlite3_stmt *st, int idx, const struct value *v, const struct stype *t)
{
	char buf[128];
	switch (v->kind) {
	case V_NULL: return sqlite3_bind_null(st, idx);
	case V_INT: return sqlite3_bind_int64(st, idx, v->i);
	case V_REAL: return sqlite3_bind_double(st, idx, v->r);
	case V_TEXT: return sqlite3_bind_text(st, idx, v->text, (int)v->len, SQLITE_TRANSIENT);
	case V_BLOB:
		if (t->base == T_UNIQUEIDENTIFIER)
			break;
		return sqlite3_bind_blob(st, idx, v->blob, (int)v->len, SQLITE_TRANSIENT);
	default: break;
	}
	storage_text(v, t, buf, sizeof buf);
	return sqlite3_bind_text(st, idx, buf, -1, SQLITE_TRANSIENT);
}

int
literal_type(const struct value *v, struct stype *t)
{
	memset(t, 0, sizeof *t);
	switch (v->kind) {
	case V_NULL: t->base = T_NULL; break;
	case V_INT: t->base = (v->i >= -2147483648LL && v->i <= 2147483647LL) ? T_INT : T_BIGINT; break;
	case V_REAL: t->base = T_FLOAT; break;
	case V_DEC: {
		int d = digits_of(v->mag);
		t->base = T_NUMERIC;
		t->scale = v->scale;
		t->prec = d > v->scale ? d : v->scale;
		if (t->prec < 1)
			t->prec = 1;
		break;
	}
	case V_TEXT:
		t->base = T_VARCHAR;
		t->len = v->len ? (int)v->len : 1;
		break;
	case V_BLOB:
		t->base = T_VARBINARY;
		t->len = v->len ? (int)v->len : 1;
		break;
	case V_TIME:
		t->base = T_DATETIME2;
		t->scale = 7;
		break;
	}
	if ((t->base == T_VARCHAR || t->base == T_VARBINARY) && t->len > 8000)
		t->len = -1;
	return 0;
}

/* ---- character sets ---- */

static const unsigned short cp1252_high[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                               0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                               0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                               0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

/* Next code point of UTF-8 text; invalid bytes become U+FFFD. */
static unsigned
utf8_next(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	unsigned c = *s++;
	int more = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
	if (more < 0) {
		*p = s;
		return 0xFFFD;
	}
	c &= more == 0 ? 0x7F : more == 1 ? 0x1F : more == 2 ? 0x0F : 0x07;
	while (more-- > 0) {
		if (s >= end || (*s & 0xC0) != 0x80) {
			*p = s;
			return 0xFFFD;
		}
		c = c << 6 | (*s++ & 0x3F);
	}
	*p = s;
	return c;
}

static int
cp1252_byte(unsigned cp)
{
	if (cp < 0x80 || (cp >= 0xA0 && cp <= 0xFF))
		return (int)cp;
	for (int i = 0; i < 32; i++)
		if (cp1252_high[i] == cp)
			return 0x80 + i;
	return -1;
}

size_t
utf8_to_utf16(const char *s, size_t n, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t o = 0;
	while (p < end) {
		unsigned cp = utf8_next(&p, end);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			unsigned hi = 0xD800 + (cp >> 10), lo = 0xDC00 + (cp & 0x3FF);
			out[o++] = (unsigned char)hi;
			out[o++] = (unsigned char)(hi >> 8);
			out[o++] = (unsigned char)lo;
			out[o++] = (unsigned char)(lo >> 8);
		} else {
			out[o++] = (unsigned char)cp;
			out[o++] = (unsigned char)(cp >> 8);
		}
	}
	return o;
}

static size_t
utf8_put(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

char *
utf16_to_utf8(const unsigned char *p, size_t nbytes, size_t *outlen)
{
	char *out = malloc(nbytes * 2 + 1), *o = out;
	for (size_t i = 0; i + 1 < nbytes; i += 2) {
		unsigned u = p[i] | p[i + 1] << 8;
		if (u >= 0xD800 && u <= 0xDBFF && i + 3 < nbytes) {
			unsigned lo = p[i + 2] | p[i + 3] << 8;
			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			}
		}
		o += utf8_put(u, o);
	}
	*o = '\0';
	if (outlen)
		*outlen = (size_t)(o - out);
	return out;
}

size_t
utf8_to_cp1252(const char *s, size_t n, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t o = 0;
	while (p < end) {
		int b = cp1252_byte(utf8_next(&p, end));
		out[o++] = (unsigned char)(b < 0 ? '?' : b);
	}
	return o;
}

char *
cp1252_to_utf8(const unsigned char *p, size_t n, size_t *outlen)
{
	char *out = malloc(n * 3 + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		unsigned c = p[i];
		o += utf8_put(c >= 0x80 && c < 0xA0 ? cp1252_high[c - 0x80] : c, o);
	}
	*o = '\0';
	if (outlen)
		*outlen = (size_t)(o - out);
	return out;
}

char *
utf8_fit_cp1252(const char *s, size_t n, size_t *outlen)
{
	unsigned char *bytes = malloc(n + 1);
	size_t m = utf8_to_cp1252(s, n, bytes);
	char *out = cp1252_to_utf8(bytes, m, outlen);
	free(bytes);
	return out;
}

/* ---- SQLite glue ---- */

static unsigned
fold(unsigned cp)
{
	if (cp >= 'A' && cp <= 'Z')
		return cp + 32;
	if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)
		return cp + 32;
	return cp;
}

/* The TSQL collation: like SQL_Latin1_General_CP1_CI_AS, case-insensitive,
 * and trailing spaces do not count. */
static int
tsql_collate(void *arg, int n1, const void *s1, int n2, const void *s2)
{
	(void)arg;
	const unsigned char *a = s1, *b = s2, *ae = a + n1, *be = b + n2;
	while (ae > a && ae[-1] == ' ')
		ae--;
	while (be > b && be[-1] == ' ')
		be--;
	while (a < ae && b < be) {
		unsigned ca = fold(utf8_next(&a, ae)), cb = fold(utf8_next(&b, be));
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return (a < ae) - (b < be);
}

/* The type named by a constant argument, parsed once per statement. */
static const struct stype *
arg_type(sqlite3_context *ctx, sqlite3_value **argv, int i)
{
	struct stype *t = sqlite3_get_auxdata(ctx, i);
	if (t)
		return t;
	t = malloc(sizeof *t);
	if (!t || type_parse_text((const char *)sqlite3_value_text(argv[i]), t)) {
		free(t);
		return NULL;
	}
	sqlite3_set_auxdata(ctx, i, t, free);
	/* set_auxdata may free at once (argument not constant): ask again. */
	struct stype *kept = sqlite3_get_auxdata(ctx, i);
	if (kept)
		return kept;
	static __thread struct stype scratch[3];
	type_parse_text((const char *)sqlite3_value_text(argv[i]), &scratch[i]);
	return &scratch[i];
}

/* tds_conv(value, 'from', 'to') */
static void
fn_conv(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	struct sqlerr e;
	const struct stype *fromp = arg_type(ctx, argv, 1), *top = arg_type(ctx, argv, 2);
	if (!fromp || !top) {
		sqlite3_result_error(ctx, "50000|bad type in tds_conv", -1);
		return;
	}
	struct stype from = *fromp, to = *top;
	struct value v;
	if (value_from_storage(argv[0], &from, &v, &e) || value_convert(&v, &from, &to, &e)) {
		char msg[600];
		snprintf(msg, sizeof msg, "%d|%s", e.number, e.msg);
		sqlite3_result_error(ctx, msg, -1);
		value_clear(&v);
		return;
	}
	value_result(ctx, &v, &to);
	value_clear(&v);
}

/* tds_text(value, 'type', style): the text CONVERT(varchar, ...) gives. */
static void
fn_text(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	struct sqlerr e;
	struct value v;
	const struct stype *tp = arg_type(ctx, argv, 1);
	if (!tp) {
		sqlite3_result_error(ctx, "50000|bad type in tds_text", -1);
		return;
	}
	struct stype t = *tp;
	if (value_from_storage(argv[0], &t, &v, &e)) {
		sqlite3_result_error(ctx, "50000|corrupt value", -1);
		return;
	}
	char *s = value_to_text(&v, &t, sqlite3_value_int(argv[2]));
	if (s)
		sqlite3_result_text(ctx, s, -1, free);
	else
		sqlite3_result_null(ctx);
	value_clear(&v);
}

static void
fn_now(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char buf[64];
	snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%07ld", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	         tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 100);
	sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
}

static void
fn_newid(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	unsigned char g[16];
	sqlite3_randomness(16, g);
	g[7] = (g[7] & 0x0F) | 0x40;
	g[8] = (g[8] & 0x3F) | 0x80;
	char buf[40];
	guid_format(g, buf);
	sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
}

static void
fn_rowversion(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	uint64_t rv = next_rowversion();
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(rv >> (56 - 8 * i));
	sqlite3_result_blob(ctx, b, 8, SQLITE_TRANSIENT);
}

/* tds_notnull(value, 'column'): NULL fails as SQL Server's 515. */
static void
fn_notnull(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
		char msg[300];
		snprintf(msg, sizeof msg, "515|%s", sqlite3_value_text(argv[1]));
		sqlite3_result_error(ctx, msg, -1);
		return;
	}
	sqlite3_result_value(ctx, argv[0]);
}

/* Integer division that fails on zero, as SQL Server's does (8134). */
static void
fn_idiv(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	long long b = sqlite3_value_int64(argv[1]);
	if (b == 0) {
		sqlite3_result_error(ctx, "8134|Divide by zero error encountered.", -1);
		return;
	}
	sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]) / b);
}

/* REPLICATE(x, n): x n times, text or binary as x is. */
static void
fn_replicate(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL ||
	    sqlite3_value_int64(argv[1]) < 0) {
		sqlite3_result_null(ctx);
		return;
	}
	int blob = sqlite3_value_type(argv[0]) == SQLITE_BLOB;
	const void *p = blob ? sqlite3_value_blob(argv[0]) : (const void *)sqlite3_value_text(argv[0]);
	sqlite3_uint64 len = (sqlite3_uint64)sqlite3_value_bytes(argv[0]),
		       n = (sqlite3_uint64)sqlite3_value_int64(argv[1]);
	if (len && n > 2000000000ull / len) {
		sqlite3_result_error_toobig(ctx);
		return;
	}
	unsigned char *out = sqlite3_malloc64(len * n + 1);
	if (!out) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	for (sqlite3_uint64 i = 0; i < n; i++)
		memcpy(out + i * len, p, len);
	if (blob)
		sqlite3_result_blob64(ctx, out, len * n, sqlite3_free);
	else
		sqlite3_result_text64(ctx, (char *)out, len * n, sqlite3_free, SQLITE_UTF8);
}

void
types_register(sqlite3 *db)
{
	sqlite3_create_function(db, "tds_replicate", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_replicate, NULL,
	                        NULL);
	sqlite3_create_function(db, "tds_notnull", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_notnull, NULL, NULL);
	sqlite3_create_function(db, "tds_idiv", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_idiv, NULL, NULL);
	sqlite3_create_collation(db, "TSQL", SQLITE_UTF8, NULL, tsql_collate);
	sqlite3_create_function(db, "tds_conv", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_conv, NULL, NULL);
	sqlite3_create_function(db, "tds_text", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, fn_text, NULL, NULL);
	sqlite3_create_function(db, "tds_now", 0, SQLITE_UTF8, NULL, fn_now, NULL, NULL);
	sqlite3_create_function(db, "tds_newid", 0, SQLITE_UTF8, NULL, fn_newid, NULL, NULL);
	sqlite3_create_function(db, "tds_rowversion", 0, SQLITE_UTF8, NULL, fn_rowversion, NULL, NULL);
	txn_register(db);
}
