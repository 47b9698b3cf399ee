/*
 * contract.c: type contracts (dpone-manifest(5), contract). A contract
 * file pins a logical type, and whether NULL is allowed, per column; every
 * row's values are checked against it as they pass, with counts and a few
 * sample keys per column. enforcement: strict fails the run (before the
 * data is visible where the delivery allows, as the other checks), warn
 * reports, off ignores the file. empty_string: keep leaves "" alone,
 * reject counts it as a violation, as_null sends it on as null.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define SAMPLE_KEYS 3

static const char *const logical_types[] = {"boolean", "integer",   "decimal",      "float", "string", "date",
                                            "time",    "timestamp", "timestamp_tz", "uuid",  "binary", NULL};

struct pinned {
	char *name;          /* owned */
	const char *logical; /* static, from logical_types */
	int nullable;
	unsigned long long type_errors, nulls, empties;
	json_t *sample_keys;
};

struct contract {
	char *path;
	const char *enforcement, *empty_string; /* static */
	struct pinned *cols;
	size_t ncols;
	char **names; /* cols[i].name, for dp_scan_object */
	char **key;   /* the header's key, for sample keys; owned */
	size_t nkey;
};

static const char *
one_of(const char *v, const char *const *allowed)
{
	for (size_t i = 0; v && allowed[i]; i++)
		if (!strcmp(v, allowed[i]))
			return allowed[i];
	return NULL;
}

static _Noreturn void
bad(const char *path, json_t *marks, const char *key, const char *what)
{
	json_t *at = json_object_get(marks, key);
	dp_die(DP_EXIT_USAGE, "%s:%lld:%lld: %s: %s", path, (long long)json_integer_value(json_array_get(at, 0)),
	       (long long)json_integer_value(json_array_get(at, 1)), key, what);
}

/* The contract file's path: relative paths are the manifest's neighbours. */
static char *
contract_path(const struct dp_manifest *m)
{
	return dp_path_beside(m->path, dp_manifest_str(m, "contract"));
}

struct contract *
contract_load(const struct dp_manifest *m)
{
	if (!dp_manifest_str(m, "contract"))
		return NULL;
	static const char *const enforcements[] = {"strict", "warn", "off", NULL};
	static const char *const empties[] = {"keep", "reject", "as_null", NULL};
	char *path = contract_path(m), err[1024];
	json_t *marks = json_object();
	json_t *doc = dp_yaml_load_file(path, marks, err, sizeof err);
	if (!doc)
		dp_die(DP_EXIT_USAGE, "%s", err);
	json_t *c = json_object_get(doc, "contract");
	if (!json_is_object(c))
		bad(path, marks, "contract", "missing: a contract file has one map, contract");
	const char *enforcement = json_string_value(json_object_get(c, "enforcement"));
	const char *empty = json_string_value(json_object_get(c, "empty_string"));
	struct contract *k = dp_xcalloc(1, sizeof *k);
	k->path = path;
	k->enforcement = one_of(enforcement ? enforcement : "warn", enforcements);
	k->empty_string = one_of(empty ? empty : "keep", empties);
	if (!k->enforcement)
		bad(path, marks, "contract.enforcement", "expected strict, warn or off");
	if (!k->empty_string)
		bad(path, marks, "contract.empty_string", "expected keep, reject or as_null");
	json_t *cols = json_object_get(c, "columns");
	if (!json_is_object(cols) || !json_object_size(cols))
		bad(path, marks, "contract.columns", "expected a map of column: {logical_type, nullable}");
	k->cols = dp_xcalloc(json_object_size(cols), sizeof *k->cols);
	k->names = dp_xcalloc(json_object_size(cols), sizeof *k->names);
	const char *name;
	json_t *spec;
	json_object_foreach(cols, name, spec) {
		char key[600];
		snprintf(key, sizeof key, "contract.columns.%s.logical_type", name);
		const char *logical = one_of(json_string_value(json_object_get(spec, "logical_type")), logical_types);
		if (!logical)
			bad(path, marks, key,
			    "expected one of boolean, integer, decimal, float, string, date, time, timestamp, "
			    "timestamp_tz, uuid, binary");
		struct pinned *p = &k->cols[k->ncols];
		p->name = dp_xstrdup(name);
		p->logical = logical;
		p->nullable = !json_is_false(json_object_get(spec, "nullable"));
		p->sample_keys = json_array();
		k->names[k->ncols++] = p->name;
	}
	json_decref(doc);
	json_decref(marks);
	return k;
}

void
contract_header(struct contract *k, const json_t *header)
{
	if (!k)
		return;
	json_t *key = json_object_get(header, "key");
	k->nkey = json_array_size(key);
	k->key = dp_xcalloc(k->nkey + 1, sizeof *k->key);
	for (size_t i = 0; i < k->nkey; i++)
		k->key[i] = dp_xstrdup(json_string_value(json_array_get(key, i)));
	for (size_t i = 0; i < k->ncols; i++)
		if (!dp_header_column(header, k->cols[i].name))
			k->cols[i].type_errors = 1; /* reported as missing below */
}

/* Does the JSON value v (not null) have the shape of the logical type? */
static int
fits(const char *logical, const char *v, size_t n)
{
	const char *e = v + n;
	int str = *v == '"';
	const char *s = v + 1, *se = e - 1; /* a string's characters */
	if (!strcmp(logical, "boolean"))
		return (n == 4 && !memcmp(v, "true", 4)) || (n == 5 && !memcmp(v, "false", 5));
	if (!strcmp(logical, "integer"))
		return str ? dp_all_digits(s + (*s == '-'), se) : dp_all_digits(v + (*v == '-'), e);
	if (!strcmp(logical, "decimal")) {
		if (!str)
			return 0;
		const char *dot = memchr(s, '.', (size_t)(se - s));
		const char *whole = s + (*s == '-');
		return dot ? dp_all_digits(whole, dot) && dp_all_digits(dot + 1, se) : dp_all_digits(whole, se);
	}
	if (!strcmp(logical, "float"))
		return !str && *v != 't' && *v != 'f' && *v != '{' && *v != '[';
	if (!str)
		return 0;
	size_t len = (size_t)(se - s);
	if (!strcmp(logical, "date"))
		return len == 10 && s[4] == '-' && s[7] == '-';
	if (!strcmp(logical, "time"))
		return len >= 8 && s[2] == ':' && s[5] == ':';
	if (!strcmp(logical, "timestamp"))
		return len >= 19 && s[4] == '-' && s[10] == 'T' && s[13] == ':' && !memchr(s + 19, '+', len - 19);
	if (!strcmp(logical, "timestamp_tz"))
		return len >= 25 && s[4] == '-' && s[10] == 'T' && (se[-6] == '+' || se[-6] == '-') && se[-3] == ':';
	if (!strcmp(logical, "uuid"))
		return len == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-';
	return 1; /* string, binary: any JSON string */
}

static void
note_key(struct contract *k, struct pinned *p, const char *line, size_t len)
{
	if (json_array_size(p->sample_keys) >= SAMPLE_KEYS || !k->nkey)
		return;
	struct dp_buf id = {0};
	char err[256];
	if (dp_key_identity(k->key, k->nkey, line, len, &id, err, sizeof err) == 0) {
		json_t *values = json_loadb(id.p, id.len, 0, NULL), *key = json_object();
		for (size_t i = 0; i < k->nkey; i++)
			json_object_set(key, k->key[i], json_array_get(values, i));
		json_array_append_new(p->sample_keys, key);
		json_decref(values);
	}
	free(id.p);
}

int
contract_row(struct contract *k, const char *line, size_t len, struct dp_buf *out)
{
	if (!k)
		return 0;
	struct dp_span sp[k->ncols + 1];
	dp_scan_object(line, len, k->names, k->ncols, sp);
	int nulled = 0;
	for (size_t i = 0; i < k->ncols; i++) {
		struct pinned *p = &k->cols[i];
		if (!sp[i].p)
			continue; /* a missing column is counted once, at the header */
		int is_null = sp[i].n == 4 && !memcmp(sp[i].p, "null", 4);
		int is_empty = sp[i].n == 2 && !memcmp(sp[i].p, "\"\"", 2);
		if (is_empty && !strcmp(k->empty_string, "as_null")) {
			is_null = 1;
			nulled = 1;
		}
		int bad_value = 0;
		if (is_null && !p->nullable)
			p->nulls++, bad_value = 1;
		else if (is_empty && !strcmp(k->empty_string, "reject"))
			p->empties++, bad_value = 1;
		else if (!is_null && !is_empty && !fits(p->logical, sp[i].p, sp[i].n))
			p->type_errors++, bad_value = 1;
		if (bad_value)
			note_key(k, p, line, len);
	}
	if (!nulled)
		return 0;
	/* empty_string: as_null: the row goes on with its "" as null. */
	out->len = 0;
	const char *at = line;
	for (;;) {
		const char *next = NULL;
		for (size_t i = 0; i < k->ncols; i++)
			if (sp[i].p && sp[i].n == 2 && !memcmp(sp[i].p, "\"\"", 2) && sp[i].p >= at &&
			    (!next || sp[i].p < next))
				next = sp[i].p;
		if (!next)
			break;
		dp_buf_add(out, at, (size_t)(next - at));
		dp_buf_add(out, "null", 4);
		at = next + 2;
	}
	dp_buf_add(out, at, (size_t)(line + len - at));
	return 1;
}

json_t *
contract_result(struct contract *k, const json_t *header, int *failed)
{
	*failed = 0;
	if (!k || !strcmp(k->enforcement, "off"))
		return NULL;
	json_t *cols = json_array();
	unsigned long long total = 0;
	for (size_t i = 0; i < k->ncols; i++) {
		struct pinned *p = &k->cols[i];
		int missing = !dp_header_column(header, p->name);
		unsigned long long n = p->type_errors + p->nulls + p->empties;
		if (!n)
			continue;
		total += n;
		json_t *c = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:O}", "column", p->name, "logical_type",
		                      p->logical, "violations", (json_int_t)n, "type",
		                      (json_int_t)(missing ? 0 : p->type_errors), "null", (json_int_t)p->nulls,
		                      "empty_string", (json_int_t)p->empties, "sample_keys", p->sample_keys);
		if (missing)
			json_object_set_new(c, "missing", json_true());
		json_array_append_new(cols, c);
	}
	const char *status = !total ? "pass" : !strcmp(k->enforcement, "strict") ? "fail" : "warn";
	*failed = !strcmp(status, "fail");
	char *detail = total ? dp_strfmt("%llu values break the contract %s in %zu columns", total, k->path,
	                                 json_array_size(cols))
	                     : dp_strfmt("every value keeps the contract %s", k->path);
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "type", "contract", "status", status, "enforcement",
	                      k->enforcement, "detail", detail, "violations", (json_int_t)total, "columns", cols);
	free(detail);
	return r;
}

void
contract_free(struct contract *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->ncols; i++) {
		free(k->cols[i].name);
		json_decref(k->cols[i].sample_keys);
	}
	for (size_t i = 0; i < k->nkey; i++)
		free(k->key[i]);
	free(k->key);
	free(k->cols);
	free(k->names);
	free(k->path);
	free(k);
}
