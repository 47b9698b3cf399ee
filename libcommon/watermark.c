/*
 * watermark.c: watermarks compared in their SQL type's order, so that a
 * commit never moves state backwards and a parallel extract's ranges
 * combine into one low and high. Integers compare as numbers (also when
 * written as text, bigint_as: string), binary types (rowversion) by their
 * bytes, dates and times as the fixed-width text they are written in.
 */
#include <stdio.h>
#include <string.h>

#include "dpone.h"

static int
b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The bytes of a binary watermark (0x hex or base64) into out; length or -1. */
static int
binary_bytes(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (s += 2; s[0] && s[1] && n < cap; s += 2) {
			unsigned v;
			if (sscanf(s, "%2x", &v) != 1)
				return -1;
			out[n++] = (unsigned char)v;
		}
		return (int)n;
	}
	unsigned acc = 0;
	int bits = 0;
	for (; *s && *s != '='; s++) {
		int v = b64_value((unsigned char)*s);
		if (v < 0)
			return -1;
		acc = acc << 6 | (unsigned)v;
		if ((bits += 6) >= 8 && n < cap) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	return (int)n;
}

static int
is_binary(const char *sql_type)
{
	return sql_type && (!strncmp(sql_type, "rowversion", 10) || !strncmp(sql_type, "timestamp", 9) ||
	                    strstr(sql_type, "binary"));
}

/* Whole numbers written as text (bigint_as: string): by sign, length, digits. */
static int
compare_integer_text(const char *a, const char *b)
{
	int na = *a == '-', nb = *b == '-';
	if (na != nb)
		return na ? -1 : 1;
	size_t la = strlen(a), lb = strlen(b);
	int c = la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
	return na ? -c : c;
}

static int
is_integer_text(const char *s)
{
	s += *s == '-';
	return dp_all_digits(s, s + strlen(s));
}

int
dp_compare_watermarks(const json_t *a, const json_t *b, const char *sql_type)
{
	if (json_is_integer(a) && json_is_integer(b))
		return (json_integer_value(a) > json_integer_value(b)) -
		       (json_integer_value(a) < json_integer_value(b));
	if (json_is_number(a) && json_is_number(b))
		return (json_number_value(a) > json_number_value(b)) - (json_number_value(a) < json_number_value(b));
	const char *sa = json_string_value(a), *sb = json_string_value(b);
	if (!sa || !sb)
		return 0;
	if (is_binary(sql_type)) {
		unsigned char ba[64], bb[64];
		int la = binary_bytes(sa, ba, sizeof ba), lb = binary_bytes(sb, bb, sizeof bb);
		if (la >= 0 && lb >= 0 && la == lb)
			return memcmp(ba, bb, (size_t)la);
	}
	if (is_integer_text(sa) && is_integer_text(sb))
		return compare_integer_text(sa, sb);
	/* Dates and times are written fixed-width, so text order is time order. */
	return strcmp(sa, sb);
}
