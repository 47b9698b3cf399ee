/*
 * json_check.c: a strict, allocation-free JSON validator.
 *
 * Stages that pass rows through untouched still must not pass garbage on;
 * parsing every row with jansson would cost ten times the copy. This checks
 * RFC 8259 grammar and UTF-8 (as jansson does: no overlongs, no surrogates
 * in UTF-8, no lone \u surrogates) with an explicit stack, so a hostile row
 * cannot overflow the C stack.
 */
#include <stdint.h>
#include <string.h>

#include "dpone.h"

#define MAX_DEPTH 512

struct scan {
	const unsigned char *p, *end, *start;
	const char *what;
	unsigned long escapes; /* escapes seen so far in strings */
};

static int
fail(struct scan *s, const char *what)
{
	if (!s->what)
		s->what = what;
	return -1;
}

static void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(struct scan *s, unsigned *out)
{
	unsigned v = 0;
	if (s->end - s->p < 4)
		return fail(s, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned c = *s->p++, d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail(s, "invalid \\u escape");
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

static int
escape(struct scan *s)
{
	unsigned u, lo;
	if (s->p >= s->end)
		return fail(s, "unterminated string");
	s->escapes++;
	switch (*s->p++) {
	case '"':
	case '\\':
	case '/':
	case 'b':
	case 'f':
	case 'n':
	case 'r':
	case 't': return 0;
	case 'u':
		if (hex4(s, &u))
			return -1;
		if (u >= 0xDC00 && u <= 0xDFFF)
			return fail(s, "lone low surrogate in \\u escape");
		if (u < 0xD800 || u > 0xDBFF)
			return 0;
		if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
			return fail(s, "lone high surrogate in \\u escape");
		s->p += 2;
		if (hex4(s, &lo))
			return -1;
		if (lo < 0xDC00 || lo > 0xDFFF)
			return fail(s, "invalid surrogate pair in \\u escape");
		return 0;
	default: return fail(s, "invalid escape in string");
	}
}

size_t
dp_utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], cp;
	size_t need;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		min = 0x80;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		min = 0x800;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) <= need)
		return 0;
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	/* No overlong forms, nothing past U+10FFFF, no surrogates: as jansson. */
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need + 1;
}

/* One UTF-8 sequence starting with a byte >= 0x80. */
static int
utf8(struct scan *s)
{
	size_t k = dp_utf8_len(s->p, s->end);
	if (!k)
		return fail(s, "invalid UTF-8");
	s->p += k;
	return 0;
}

static int
string(struct scan *s)
{
	s->p++; /* opening quote */
	for (;;) {
		/* Fast path over plain ASCII, eight bytes at a time while no byte
		 * is a quote, a backslash, a control character or non-ASCII. */
		while (s->end - s->p >= 8) {
			uint64_t v;
			memcpy(&v, s->p, 8);
			const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
			uint64_t quote = v ^ (ones * '"'), backslash = v ^ (ones * '\\');
			uint64_t special = (v | ((v - ones * 0x20) & ~v) | ((quote - ones) & ~quote) |
			                    ((backslash - ones) & ~backslash)) &
			                   high;
			if (special) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				/* The lowest flagged byte is the first special one (a
				 * false flag can only sit above a true one). */
				s->p += __builtin_ctzll(special) / 8;
#endif
				break;
			}
			s->p += 8;
		}
		while (s->p < s->end && *s->p >= 0x20 && *s->p < 0x80 && *s->p != '"' && *s->p != '\\')
			s->p++;
		if (s->p >= s->end)
			return fail(s, "unterminated string");
		unsigned c = *s->p;
		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c == '\\') {
			s->p++;
			if (escape(s))
				return -1;
		} else if (c < 0x20) {
			return fail(s, "control character in string");
		} else if (utf8(s)) {
			return -1;
		}
	}
}

static int
digits(struct scan *s)
{
	const unsigned char *from = s->p;
	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > from ? 0 : fail(s, "invalid number");
}

static int
number(struct scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0') {
		s->p++;
	} else if (digits(s)) {
		return -1;
	}
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (digits(s))
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s))
			return -1;
	}
	return 0;
}

static int
literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return fail(s, "invalid literal");
	s->p += n;
	return 0;
}

/* A scalar, or the opening of a container (pushed by the caller). */
static int
scalar(struct scan *s)
{
	switch (*s->p) {
	case '"': return string(s);
	case 't': return literal(s, "true");
	case 'f': return literal(s, "false");
	case 'n': return literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return number(s);
		return fail(s, "unexpected character");
	}
}

/* What a row's top-level member names are expected to be, in order (the
 * stream header's columns), so that the common row is checked for
 * duplicate names by one comparison a member. */
struct expected_names {
	char *const *quoted; /* each name as a JSON string, quotes included */
	const size_t *lens;
	size_t n;
	int off; /* a name differed from the expected one (or came past them) */
};

static int validate(const char *buf, size_t len, char *const *names, const size_t *lens, size_t n, struct dp_span *out,
                    struct dp_json_error *err, struct expected_names *expect);

int
dp_json_validate(const char *buf, size_t len, struct dp_json_error *err)
{
	return validate(buf, len, NULL, NULL, 0, NULL, err, NULL);
}

int
dp_json_validate_members(const char *buf, size_t len, char *const *names, const size_t *lens, size_t n,
                         struct dp_span *out, struct dp_json_error *err)
{
	return validate(buf, len, names, lens, n, out, err, NULL);
}

int
dp_json_validate_row(const char *buf, size_t len, char *const *expect, const size_t *expect_lens, size_t nexpect,
                     char *const *names, const size_t *lens, size_t n, struct dp_span *out, struct dp_json_error *err)
{
	struct expected_names e = {expect, expect_lens, nexpect, 0};
	if (validate(buf, len, names, lens, n, out, err, &e))
		return -1;
	if (!e.off)
		return 0; /* the header's names, in order: distinct */
	/* Another order or other names: look at all of them (the rare row). */
	size_t at;
	int dup = dp_duplicate_name(buf, len, &at);
	if (!dup)
		return 0;
	if (err) {
		err->offset = at;
		err->what = dup > 0 ? "a member name appears twice in the row (consumers would keep one value, dpone "
		                      "another)"
		                    : "more than 8191 members in one row";
	}
	return -1;
}

/* a[0..n) == b[0..n), inline: names are short, and this runs for every
 * member of every row (memcmp's call costs more than the comparison). */
static inline int
same_bytes(const char *a, const unsigned char *b, size_t n)
{
	uint64_t x, y;
	if (n >= 8) {
		for (size_t i = 0; i + 8 < n; i += 8) {
			memcpy(&x, a + i, 8);
			memcpy(&y, b + i, 8);
			if (x != y)
				return 0;
		}
		memcpy(&x, a + n - 8, 8); /* the last 8, overlapping */
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a[i] != b[i])
			return 0;
	return 1;
}

static int
validate(const char *buf, size_t len, char *const *names, const size_t *lens, size_t n, struct dp_span *out,
         struct dp_json_error *err, struct expected_names *expect)
{
	/* How many of the expected names the object had so far, in order, and
	 * whether it went off them. */
	size_t expected = 0;
	int off = 0;
	struct scan s = {(const unsigned char *)buf, (const unsigned char *)buf + len, (const unsigned char *)buf, NULL,
	                 0};
	char stack[MAX_DEPTH]; /* '{' or '[' per open container */
	int depth = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		out[i] = (struct dp_span){NULL, 0};
	const char *key = NULL; /* the top-level member being read, quoted */
	size_t key_len = 0;
	int key_escaped = 0;
	const unsigned char *value = NULL;

	skip_ws(&s);
	for (;;) {
		/* Expect a value. */
		if (s.p >= s.end) {
			rc = fail(&s, "unexpected end of input");
			break;
		}
		if (*s.p == '{' || *s.p == '[') {
			if (depth == MAX_DEPTH) {
				rc = fail(&s, "nesting too deep");
				break;
			}
			char open = (char)*s.p++;
			stack[depth++] = open;
			skip_ws(&s);
			if (s.p < s.end && *s.p == (open == '{' ? '}' : ']')) {
				s.p++;
				depth--;
				goto after_value;
			}
			if (open == '{')
				goto object_key;
			continue;
		}
		if (scalar(&s)) {
			rc = -1;
			break;
		}
after_value:
		if (key && depth == 1) { /* a top-level member's value ends here */
			dp_member_take(key, key + key_len, key_escaped, names, lens, n, out,
			               (struct dp_span){(const char *)value, (size_t)(s.p - value)});
			key = NULL;
		}
		skip_ws(&s);
		if (depth == 0) {
			if (s.p != s.end)
				rc = fail(&s, "trailing data after value");
			break;
		}
		if (s.p >= s.end) {
			rc = fail(&s, "unexpected end of input");
			break;
		}
		if (*s.p == ',') {
			s.p++;
			skip_ws(&s);
			if (stack[depth - 1] == '{')
				goto object_key;
			continue;
		}
		if (*s.p == (stack[depth - 1] == '{' ? '}' : ']')) {
			s.p++;
			depth--;
			goto after_value;
		}
		rc = fail(&s, stack[depth - 1] == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
		break;
object_key:
		if (s.p >= s.end || *s.p != '"') {
			rc = fail(&s, "expected a string key");
			break;
		}
		const unsigned char *name = s.p;
		unsigned long escapes = s.escapes;
		if (string(&s)) {
			rc = -1;
			break;
		}
		if (depth == 1 && expect && !off) {
			size_t qlen = (size_t)(s.p - name);
			if (expected < expect->n && expect->lens[expected] == qlen &&
			    same_bytes(expect->quoted[expected], name, qlen))
				expected++;
			else
				off = 1; /* not the expected names: the caller looks at all */
		}
		if (n && depth == 1) {
			key = (const char *)name;
			key_len = (size_t)(s.p - name);
			key_escaped = s.escapes != escapes;
		}
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':') {
			rc = fail(&s, "expected ':' after key");
			break;
		}
		s.p++;
		skip_ws(&s);
		if (depth == 1)
			value = s.p;
	}
	if (expect)
		expect->off = off;
	if (rc && err) {
		err->offset = (size_t)(s.p - s.start);
		err->what = s.what;
	}
	return rc;
}
