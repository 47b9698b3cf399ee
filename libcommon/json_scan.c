/*
 * json_scan.c: reading fields out of JSON that is known to be valid (a row
 * the stream reader validated) without parsing it: a scan over the bytes
 * finds the members asked for, and values are copied in canonical form.
 * Used where a stage needs a few fields of every row (keys, watermarks,
 * checks) and must not pay for building a document.
 */
#include <stddef.h>
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
	const char *name = q + 1;
	size_t name_len = (size_t)(qe - q) - 2, taken = 0;
	json_t *decoded = NULL;
	if (escaped) { /* rare: the name must be decoded to compare */
		decoded = json_loadb(q, (size_t)(qe - q), JSON_DECODE_ANY, NULL);
		if (!json_is_string(decoded)) {
			json_decref(decoded);
			return 0;
		}
		name = json_string_value(decoded);
		name_len = json_string_length(decoded);
	}
	for (size_t i = 0; i < n; i++)
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

void
dp_buf_value(struct dp_buf *b, struct dp_span v)
{
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
	if (*v.p != '"') {
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
