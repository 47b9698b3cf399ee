/*
 * json_scan.c: reading fields out of JSON that is known to be valid (a row
 * the stream reader validated) without parsing it: a scan over the bytes
 * finds the members asked for, and values are copied in canonical form.
 * Used where a stage needs a few fields of every row (keys, watermarks,
 * checks) and must not pay for building a document.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dpone.h"

/* Append the compact JSON of v, any type. */
void
dp_buf_json(struct dp_buf *b, const json_t *v)
{
	size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
	dp_buf_reserve(b, n);
	b->len += json_dumpb(v, b->p + b->len, n, JSON_COMPACT | JSON_ENCODE_ANY);
}

void
dp_buf_json_string(struct dp_buf *b, const char *s)
{
	json_t *v = json_string(s);
	dp_buf_json(b, v);
	json_decref(v);
}

/* ---- scanning valid JSON ---- */

static const char *
skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p is at an opening quote; returns the byte after the closing one. A
 * quote closes the string unless an odd run of backslashes precedes it. */
static const char *
skip_string(const char *p, const char *e)
{
	const char *from = p + 1;
	for (;;) {
		const char *q = memchr(from, '"', (size_t)(e - from));
		if (!q)
			return e;
		size_t backslashes = 0;
		while (q - backslashes > from && q[-1 - (ptrdiff_t)backslashes] == '\\')
			backslashes++;
		if (!(backslashes & 1))
			return q + 1;
		from = q + 1;
	}
}

static const char *
skip_value(const char *p, const char *e)
{
	if (p < e && *p == '"')
		return skip_string(p, e);
	if (p < e && (*p == '{' || *p == '[')) {
		int depth = 0;
		while (p < e) {
			if (*p == '"') {
				p = skip_string(p, e);
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0)
				return p + 1;
			p++;
		}
		return e;
	}
	while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
		p++;
	return p;
}

/* The text of the member name q (len bytes with its quotes), decoded when
 * it has escapes (the rare case; *tmp then holds what must be freed), or
 * NULL if it does not decode; *n its length. */
static const char *
name_text(const char *q, size_t len, int escaped, size_t *n, json_t **tmp)
{
	*tmp = NULL;
	*n = len - 2;
	if (!escaped)
		return q + 1;
	*tmp = json_loadb(q, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	*n = json_string_length(*tmp);
	return json_string_value(*tmp);
}

/* Does the member name at q (quoted, q..qe) equal name? */
static int
name_is(const char *q, const char *qe, const char *name)
{
	size_t len = strlen(name);
	struct dp_span got = {NULL, 0};
	int escaped = memchr(q + 1, '\\', (size_t)(qe - q) - 2) != NULL;
	return dp_member_take(q, qe, escaped, (char *const *)&name, &len, 1, &got, (struct dp_span){q, 0}) == 1;
}

size_t
dp_member_take(const char *q, const char *qe, int escaped, char *const *names, const size_t *lens, size_t n,
               struct dp_span *out, struct dp_span v)
{
	size_t name_len, taken = 0;
	json_t *decoded;
	const char *name = name_text(q, (size_t)(qe - q), escaped, &name_len, &decoded);
	for (size_t i = 0; name && i < n; i++)
		if (!out[i].p && lens[i] == name_len && !memcmp(name, names[i], name_len)) {
			out[i] = v;
			taken++;
		}
	json_decref(decoded);
	return taken;
}

int
dp_scan_object(const char *obj, size_t len, char *const *names, size_t n, struct dp_span *out)
{
	const char *p = obj, *e = obj + len;
	size_t lens[n + 1];
	for (size_t i = 0; i < n; i++) {
		out[i] = (struct dp_span){NULL, 0};
		lens[i] = strlen(names[i]);
	}
	size_t found = 0;
	p = skip_ws(p, e);
	if (p == e || *p != '{')
		return -1;
	for (p = skip_ws(p + 1, e); p < e && *p == '"' && found < n;) {
		const char *q = p, *qe = skip_string(p, e);
		p = skip_ws(qe, e);
		if (p == e || *p != ':')
			return -1;
		const char *v = skip_ws(p + 1, e), *ve = skip_value(v, e);
		found += dp_member_take(q, qe, memchr(q + 1, '\\', (size_t)(qe - q) - 2) != NULL, names, lens, n, out,
		                        (struct dp_span){v, (size_t)(ve - v)});
		p = skip_ws(ve, e);
		if (p < e && *p == ',')
			p = skip_ws(p + 1, e);
	}
	return 0;
}

/* ---- duplicate member names ---- */

/* An open-addressing table of the names' hashes, each slot stamped with
 * the row it belongs to, so nothing is cleared between rows. 8192 slots
 * hold the 4096 columns a SQL Server SELECT may return at half full; a row
 * of more than 8191 members is refused. A row's names hash to the same
 * slots as the row before's: the few cache lines they use stay hot. */
#define NAME_SLOTS 8192
static struct name_slot {
	uint32_t row, hash;
	uint32_t at;  /* the quoted name: offset in the row */
	uint32_t len; /* with its quotes; the top bit: it has escapes */
} seen[NAME_SLOTS];
static uint32_t seen_row;
static size_t seen_count;
static const unsigned char *seen_base; /* the object */

#define ESCAPED 0x80000000u

static void
names_start(const unsigned char *obj)
{
	if (++seen_row == 0) { /* wrapped: stamps of 2^32 rows ago would match */
		memset(seen, 0, sizeof seen);
		seen_row = 1;
	}
	seen_count = 0;
	seen_base = obj;
}

static int
same_name(const struct name_slot *a, const unsigned char *q, uint32_t len, int escaped)
{
	const unsigned char *aq = seen_base + a->at;
	uint32_t alen = a->len & ~ESCAPED;
	if (!(a->len & ESCAPED) && !escaped)
		return alen == len && !memcmp(aq, q, len);
	size_t an, bn;
	json_t *at, *bt;
	const char *as = name_text((const char *)aq, alen, (a->len & ESCAPED) != 0, &an, &at);
	const char *bs = name_text((const char *)q, len, escaped, &bn, &bt);
	int same = as && bs && an == bn && !memcmp(as, bs, an);
	json_decref(at);
	json_decref(bt);
	return same;
}

/* A hash of n bytes at p: a few loads and multiplies whatever n (names
 * are short; this runs for every member of every row). */
static uint32_t
name_hash(const char *p, size_t n)
{
	uint64_t a = 0, b = 0;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&b, p + i, 8);
			a = (a ^ b) * 0xBF58476D1CE4E5B9u;
		}
		memcpy(&b, p + n - 8, 8); /* the last 8, overlapping */
	} else if (n >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + n - 4, 4);
		b = lo | (uint64_t)hi << 32;
	} else if (n) {
		b = (unsigned char)p[0] | (unsigned)(unsigned char)p[n / 2] << 8 |
		    (unsigned)(unsigned char)p[n - 1] << 16;
	}
	uint64_t x = (a ^ b ^ (0x9E3779B97F4A7C15u + n)) * 0x94D049BB133111EBu;
	return (uint32_t)(x ^ (x >> 29) ^ (x >> 32));
}

/* Record a top-level name: 0, 1 if the row already had it, -1 if the row
 * has more names than the table holds. */
static int
name_seen_before(const unsigned char *q, uint32_t len, int escaped)
{
	size_t n;
	json_t *tmp = NULL;
	const char *text = name_text((const char *)q, len, escaped, &n, &tmp);
	uint32_t h = name_hash(text ? text : "", text ? n : 0);
	json_decref(tmp);
	if (++seen_count >= NAME_SLOTS)
		return -1;
	for (uint32_t i = h & (NAME_SLOTS - 1);; i = (i + 1) & (NAME_SLOTS - 1)) {
		struct name_slot *s = &seen[i];
		if (s->row != seen_row) {
			*s = (struct name_slot){seen_row, h, (uint32_t)(q - seen_base), len | (escaped ? ESCAPED : 0)};
			return 0;
		}
		if (s->hash == h && same_name(s, q, len, escaped))
			return 1;
	}
}

int
dp_duplicate_name(const char *obj, size_t len, size_t *at)
{
	const char *p = obj, *e = obj + len;
	names_start((const unsigned char *)obj);
	p = skip_ws(p, e);
	if (p == e || *p != '{')
		return 0;
	for (p = skip_ws(p + 1, e); p < e && *p == '"';) {
		const char *q = p, *qe = skip_string(p, e);
		int escaped = memchr(q + 1, '\\', (size_t)(qe - q) - 2) != NULL;
		int dup = name_seen_before((const unsigned char *)q, (uint32_t)(qe - q), escaped);
		if (dup) {
			*at = (size_t)(q - obj);
			return dup;
		}
		p = skip_ws(qe, e);
		if (p == e || *p != ':')
			return 0;
		p = skip_ws(skip_value(skip_ws(p + 1, e), e), e);
		if (p < e && *p == ',')
			p = skip_ws(p + 1, e);
	}
	return 0;
}

int
dp_control_object(const char *line, size_t len, struct dp_span *out)
{
	const char *p = line, *e = line + len;
	p = skip_ws(p, e);
	if (p == e || *p != '[')
		return -1;
	p = skip_ws(skip_value(skip_ws(p + 1, e), e), e); /* the name */
	if (p == e || *p != ',')
		return -1;
	p = skip_ws(p + 1, e);
	if (p == e || *p != '{')
		return -1;
	*out = (struct dp_span){p, (size_t)(skip_value(p, e) - p)};
	return 0;
}

/* A JSON number (valid) in one form for one value, so that equal keys are
 * one key and land on one partition: -0 is 0, 1.0 and 1e0 are 1, 1.50 is
 * 1.5. Integers without a sign problem, the usual key, are copied as they
 * are. The value is read exactly (digits and a power of ten), never
 * through a double. */
static void
buf_number(struct dp_buf *b, const char *p, size_t n)
{
	const char *e = p + n;
	if (!memchr(p, '.', n) && !memchr(p, 'e', n) && !memchr(p, 'E', n) && !(n == 2 && !memcmp(p, "-0", 2))) {
		dp_buf_add(b, p, n);
		return;
	}
	int negative = *p == '-';
	p += negative;
	char digits[400];
	size_t nd = 0;
	long long exp10 = 0;
	/* value = digits (no leading zero) x 10^exp10; past 400 significant
	 * digits the integer part counts in the exponent, the fraction is cut. */
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (!nd && *p == '0')
			continue;
		if (nd < sizeof digits)
			digits[nd++] = *p;
		else
			exp10++;
	}
	if (p < e && *p == '.') {
		for (p++; p < e && *p >= '0' && *p <= '9'; p++) {
			if (!nd && *p == '0') {
				exp10--;
			} else if (nd < sizeof digits) {
				digits[nd++] = *p;
				exp10--;
			}
		}
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		long long x = 0;
		int xneg = *++p == '-';
		p += *p == '-' || *p == '+';
		for (; p < e && *p >= '0' && *p <= '9'; p++)
			x = x < 100000000 ? x * 10 + (*p - '0') : x;
		exp10 += xneg ? -x : x;
	}
	while (nd && digits[nd - 1] == '0') {
		nd--;
		exp10++;
	}
	if (!nd) {
		dp_buf_char(b, '0');
		return;
	}
	if (negative)
		dp_buf_char(b, '-');
	long long point = (long long)nd + exp10; /* digits before the decimal point */
	if (exp10 >= 0 && point <= 40) {
		dp_buf_add(b, digits, nd);
		for (long long i = 0; i < exp10; i++)
			dp_buf_char(b, '0');
	} else if (exp10 < 0 && point > 0) {
		dp_buf_add(b, digits, (size_t)point);
		dp_buf_char(b, '.');
		dp_buf_add(b, digits + point, nd - (size_t)point);
	} else if (exp10 < 0 && point > -20) {
		dp_buf_add(b, "0.", 2);
		for (long long i = point; i < 0; i++)
			dp_buf_char(b, '0');
		dp_buf_add(b, digits, nd);
	} else {
		char x[32];
		dp_buf_char(b, digits[0]);
		if (nd > 1) {
			dp_buf_char(b, '.');
			dp_buf_add(b, digits + 1, nd - 1);
		}
		snprintf(x, sizeof x, "e%lld", point - 1);
		dp_buf_str(b, x);
	}
}

void
dp_buf_value(struct dp_buf *b, struct dp_span v)
{
	if (*v.p == '-' || (*v.p >= '0' && *v.p <= '9')) {
		buf_number(b, v.p, v.n);
		return;
	}
	int composite = *v.p == '{' || *v.p == '[';
	if (!composite && !(*v.p == '"' && memchr(v.p, '\\', v.n))) {
		dp_buf_add(b, v.p, v.n);
		return;
	}
	json_t *j = json_loadb(v.p, v.n, JSON_DECODE_ANY, NULL);
	dp_buf_json(b, j);
	json_decref(j);
}

void
dp_buf_value_text(struct dp_buf *b, struct dp_span v)
{
	if (*v.p == '-' || (*v.p >= '0' && *v.p <= '9')) {
		buf_number(b, v.p, v.n);
	} else if (*v.p != '"') {
		dp_buf_add(b, v.p, v.n);
	} else if (!memchr(v.p, '\\', v.n)) {
		dp_buf_add(b, v.p + 1, v.n - 2);
	} else {
		json_t *j = json_loadb(v.p, v.n, JSON_DECODE_ANY, NULL);
		dp_buf_add(b, json_string_value(j), json_string_length(j));
		json_decref(j);
	}
}

int
dp_key_identity(char *const *names, size_t n, const char *obj, size_t len, struct dp_buf *out, char *err, size_t errlen)
{
	struct dp_span sp[n + 1];
	out->len = 0;
	if (dp_scan_object(obj, len, names, n, sp) < 0) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	dp_buf_add(out, "[", 1);
	for (size_t i = 0; i < n; i++) {
		if (!sp[i].p) {
			snprintf(err, errlen, "no value for key column %s", names[i]);
			return -1;
		}
		if (i)
			dp_buf_add(out, ",", 1);
		dp_buf_value(out, sp[i]);
	}
	dp_buf_add(out, "]", 1);
	return 0;
}

int
dp_rename_members(const char *obj, size_t len, char *const *from, char *const *to, size_t n, struct dp_buf *out)
{
	const char *p = obj, *e = obj + len, *copied = obj;
	p = skip_ws(p, e);
	if (p == e || *p != '{')
		return -1;
	for (p = skip_ws(p + 1, e); p < e && *p == '"';) {
		const char *q = p, *qe = skip_string(p, e);
		for (size_t i = 0; i < n; i++) {
			if (name_is(q, qe, from[i])) {
				dp_buf_add(out, copied, (size_t)(q - copied));
				dp_buf_json_string(out, to[i]);
				copied = qe;
				break;
			}
		}
		p = skip_ws(qe, e);
		if (p == e || *p != ':')
			return -1;
		p = skip_ws(skip_value(skip_ws(p + 1, e), e), e);
		if (p < e && *p == ',')
			p = skip_ws(p + 1, e);
	}
	dp_buf_add(out, copied, (size_t)(e - copied));
	return 0;
}
