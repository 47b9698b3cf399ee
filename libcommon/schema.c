/*
 * schema.c: how a table's columns changed since the schema last published
 * (schema evolution, dpone-manifest(5) schema_evolution). Columns are the
 * stream header's column objects. A change a consumer of the old schema
 * can still read is applied: a new column, a wider type of the same family
 * (int -> bigint, varchar(n) -> more or max, varchar -> nvarchar, decimal
 * precision up with the same scale, real -> float, time scale up,
 * smalldatetime -> datetime -> datetime2), NULL allowed, NOT NULL required,
 * a nullable column gone. Anything else is breaking: another family, a
 * narrower type, a NOT NULL column gone.
 */
#include <string.h>
#include <strings.h>

#include "dpone.h"

static const char *
str(const json_t *col, const char *key)
{
	const char *s = json_string_value(json_object_get(col, key));
	return s ? s : "";
}

static long long
num(const json_t *col, const char *key, long long dflt)
{
	json_t *v = json_object_get(col, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* The SQL type's name without sizes: "decimal(18,2)" -> "decimal". */
static void
base_type(const json_t *col, char *out, size_t len)
{
	const char *t = str(col, "sql_type");
	size_t n = strcspn(t, "(");
	snprintf(out, len, "%.*s", (int)n, t);
}

static int
rank_of(const char *type, const char *const *order)
{
	for (int i = 0; order[i]; i++)
		if (!strcasecmp(type, order[i]))
			return i;
	return -1;
}

/* A character or binary length: (max) is the longest. */
static long long
length_of(const json_t *col)
{
	long long n = num(col, "max_length", -2);
	return n == -1 ? (1LL << 40) : n;
}

/* 1 wider, 0 the same, -1 narrower, -2 another family. */
static int
compare_types(const json_t *a, const json_t *b)
{
	char ta[64], tb[64];
	base_type(a, ta, sizeof ta);
	base_type(b, tb, sizeof tb);
	const char *la = str(a, "logical_type"), *lb = str(b, "logical_type");
	if (strcmp(la, lb))
		return -2;
	if (!strcmp(str(a, "sql_type"), str(b, "sql_type")))
		return 0;
	static const char *const integers[] = {"tinyint", "smallint", "int", "bigint", NULL};
	static const char *const floats[] = {"real", "float", NULL};
	static const char *const timestamps[] = {"smalldatetime", "datetime", "datetime2", NULL};
	if (!strcmp(la, "integer") || !strcmp(la, "float")) {
		int ra = rank_of(ta, !strcmp(la, "integer") ? integers : floats);
		int rb = rank_of(tb, !strcmp(la, "integer") ? integers : floats);
		return rb > ra ? 1 : rb < ra ? -1 : 0;
	}
	if (!strcmp(la, "decimal")) {
		if (strstr(ta, "money") || strstr(tb, "money")) {
			if (!strcasecmp(ta, "smallmoney") && !strcasecmp(tb, "money"))
				return 1;
			return !strcasecmp(ta, "money") && !strcasecmp(tb, "smallmoney") ? -1 : -2;
		}
		if (num(a, "scale", 0) != num(b, "scale", 0))
			return -2;
		long long pa = num(a, "precision", 0), pb = num(b, "precision", 0);
		return pb > pa ? 1 : pb < pa ? -1 : 0;
	}
	if (!strcmp(la, "string") || !strcmp(la, "binary")) {
		/* varchar -> nvarchar widens: every character still fits. */
		int na = ta[0] == 'n' || ta[0] == 'N', nb = tb[0] == 'n' || tb[0] == 'N';
		long long ka = length_of(a), kb = length_of(b);
		if (na > nb || kb < ka)
			return -1;
		return 1;
	}
	if (!strcmp(la, "timestamp") || !strcmp(la, "time") || !strcmp(la, "timestamp_tz")) {
		int ra = rank_of(ta, timestamps), rb = rank_of(tb, timestamps);
		long long sa = num(a, "scale", 0), sb = num(b, "scale", 0);
		if (rb < ra || sb < sa)
			return -1;
		return 1;
	}
	return -2;
}

static json_t *
change(const char *column, const char *kind, const json_t *from, const json_t *to, int breaking)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:b}", "column", column, "change", kind, "from",
	                 from ? str(from, "sql_type") : NULL, "to", to ? str(to, "sql_type") : NULL, "breaking",
	                 breaking);
}

static const json_t *
find_column(const json_t *cols, const char *name)
{
	size_t i;
	json_t *c;
	json_array_foreach(cols, i, c)
		if (!strcasecmp(str(c, "name"), name))
			return c;
	return NULL;
}

json_t *
dp_schema_diff(const json_t *published, const json_t *current)
{
	json_t *changes = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(current, i, c) {
		const char *name = str(c, "name");
		const json_t *old = find_column(published, name);
		if (!old) {
			json_array_append_new(changes, change(name, "added", NULL, c, 0));
			continue;
		}
		int cmp = compare_types(old, c);
		if (cmp == -2)
			json_array_append_new(changes, change(name, "type_changed", old, c, 1));
		else if (cmp == -1)
			json_array_append_new(changes, change(name, "narrowed", old, c, 1));
		else if (cmp == 1)
			json_array_append_new(changes, change(name, "widened", old, c, 0));
		int was = json_is_true(json_object_get(old, "nullable")),
		    is = json_is_true(json_object_get(c, "nullable"));
		if (was != is)
			json_array_append_new(changes, change(name, is ? "null_allowed" : "null_refused", old, c, 0));
	}
	json_array_foreach(published, i, c) {
		const char *name = str(c, "name");
		if (!strncmp(name, DP_VARIANT_PREFIX, strlen(DP_VARIANT_PREFIX)) || find_column(current, name))
			continue;
		int required = !json_is_true(json_object_get(c, "nullable"));
		json_array_append_new(changes, change(name, "dropped", c, NULL, required));
	}
	return changes;
}

size_t
dp_schema_breaking(const json_t *changes)
{
	size_t i, n = 0;
	json_t *c;
	json_array_foreach(changes, i, c)
		n += json_is_true(json_object_get(c, "breaking"));
	return n;
}
