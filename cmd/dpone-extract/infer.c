/*
 * infer.c: dpone schema infer: profile a sample of the source table and
 * write a type contract (dpone-manifest(5), contract) a user can review and
 * commit. The sample is the first N rows the server returns (SELECT TOP (N)
 * without ORDER BY: cheap on any table, but not random; said in the
 * output). Memory stays bounded whatever N: per column a few counters, the
 * smallest and largest value and a 4 KiB HyperLogLog for distinct values.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extract.h"

#define HLL_BITS 12
#define HLL_REGISTERS (1u << HLL_BITS)

/* What the text of a string column's values looks like. */
enum shape { SHAPE_INTEGER, SHAPE_DECIMAL, SHAPE_BOOLEAN, SHAPE_DATE, SHAPE_TIMESTAMP, SHAPE_UUID, NSHAPES };
static const char *const shape_types[NSHAPES] = {"integer", "decimal", "boolean", "date", "timestamp", "uuid"};

struct column_profile {
	unsigned long long values, nulls, empty;
	unsigned long long shapes[NSHAPES]; /* non-empty strings of each shape */
	struct dp_buf min, max;             /* JSON text of the extremes */
	double min_num, max_num;            /* for number-like columns */
	struct dp_buf num_min, num_max;     /* a string column's values that read as numbers, */
	double num_min_num, num_max_num;    /* ordered as numbers: "307" > "99" */
	unsigned char hll[HLL_REGISTERS];
	size_t longest; /* bytes of the longest value's JSON */
};

static int
numeric(const struct column *c)
{
	return !strcmp(c->logical, "integer") || !strcmp(c->logical, "float") || !strcmp(c->logical, "decimal");
}

static void
hll_add(unsigned char *hll, const char *p, size_t n)
{
	uint64_t h = dp_row_hash(p, n);
	unsigned reg = (unsigned)(h >> (64 - HLL_BITS));
	uint64_t rest = h << HLL_BITS | (1ull << (HLL_BITS - 1)); /* never all zero */
	unsigned char rank = (unsigned char)(__builtin_clzll(rest) + 1);
	if (rank > hll[reg])
		hll[reg] = rank;
}

static double
hll_estimate(const unsigned char *hll)
{
	double sum = 0;
	unsigned zeros = 0;
	for (unsigned i = 0; i < HLL_REGISTERS; i++) {
		sum += ldexp(1.0, -hll[i]);
		zeros += !hll[i];
	}
	double m = HLL_REGISTERS, e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	if (e <= 2.5 * m && zeros)
		e = m * log(m / zeros); /* small ranges: linear counting */
	return e;
}

/* The shape of a string value's characters (s..e, no quotes). */
static int
shape_of(const char *s, const char *e)
{
	size_t n = (size_t)(e - s);
	const char *d = s + (s < e && *s == '-');
	const char *dot = memchr(d, '.', (size_t)(e - d));
	if (dp_all_digits(d, e))
		return SHAPE_INTEGER;
	if (dot && dp_all_digits(d, dot) && dp_all_digits(dot + 1, e))
		return SHAPE_DECIMAL;
	if ((n == 4 && !strncasecmp(s, "true", 4)) || (n == 5 && !strncasecmp(s, "false", 5)))
		return SHAPE_BOOLEAN;
	if (n == 10 && s[4] == '-' && s[7] == '-' && dp_all_digits(s, s + 4))
		return SHAPE_DATE;
	if (n >= 19 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == ' ') && s[13] == ':')
		return SHAPE_TIMESTAMP;
	if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-')
		return SHAPE_UUID;
	return -1;
}

/* The text of a JSON scalar without a string's quotes, so that "a" sorts
 * before "a b" (with its quote, '"' > ' '). */
static void
scalar_text(const char *v, size_t n, const char **p, size_t *len)
{
	int quoted = n >= 2 && *v == '"';
	*p = v + quoted;
	*len = n - 2 * (size_t)quoted;
}

static int
text_order(const char *a, size_t an, const char *b, size_t bn)
{
	const char *ap, *bp;
	size_t al, bl;
	scalar_text(a, an, &ap, &al);
	scalar_text(b, bn, &bp, &bl);
	int c = memcmp(ap, bp, al < bl ? al : bl);
	return c ? c : (al > bl) - (al < bl);
}

/* The number a JSON scalar (1.5 or "1.5") holds. v is not NUL-terminated:
 * strtod on it read the encoder's leftover bytes, so 1001 could become
 * 100150. */
static double
number_of(const char *v, size_t n)
{
	char text[64];
	const char *p;
	size_t len;
	scalar_text(v, n, &p, &len);
	if (len >= sizeof text)
		len = sizeof text - 1;
	memcpy(text, p, len);
	text[len] = 0;
	return strtod(text, NULL);
}

static void
keep_extreme(struct dp_buf *b, double *num, const char *v, size_t n, int as_number, int want_less)
{
	int replace = !b->len;
	if (!replace && as_number) {
		double x = number_of(v, n);
		replace = want_less ? x < *num : x > *num;
	} else if (!replace) {
		int c = text_order(v, n, b->p, b->len);
		replace = want_less ? c < 0 : c > 0;
	}
	if (!replace)
		return;
	b->len = 0;
	dp_buf_add(b, v, n);
	if (as_number)
		*num = number_of(v, n);
}

static void
profile_value(struct column_profile *cp, const struct column *c, const char *v, size_t n)
{
	cp->values++;
	if (n == 4 && !memcmp(v, "null", 4)) {
		cp->nulls++;
		return;
	}
	if (n > cp->longest)
		cp->longest = n;
	if (n == 2 && !memcmp(v, "\"\"", 2))
		cp->empty++;
	else if (!strcmp(c->logical, "string") && *v == '"' && !memchr(v, '\\', n)) {
		int sh = shape_of(v + 1, v + n - 1);
		if (sh >= 0)
			cp->shapes[sh]++;
		if (sh == SHAPE_INTEGER || sh == SHAPE_DECIMAL) {
			keep_extreme(&cp->num_min, &cp->num_min_num, v, n, 1, 1);
			keep_extreme(&cp->num_max, &cp->num_max_num, v, n, 1, 0);
		}
	}
	hll_add(cp->hll, v, n);
	keep_extreme(&cp->min, &cp->min_num, v, n, numeric(c), 1);
	keep_extreme(&cp->max, &cp->max_num, v, n, numeric(c), 0);
}

/* The logical type to pin and how sure the sample makes it. */
static const char *
inferred_type(const struct column *c, const struct column_profile *cp, double *confidence)
{
	unsigned long long filled = cp->values - cp->nulls - cp->empty;
	*confidence = 1.0;
	if (strcmp(c->logical, "string") || !filled)
		return c->logical;
	int best = -1;
	for (int s = 0; s < NSHAPES; s++)
		if (best < 0 || cp->shapes[s] > cp->shapes[best])
			best = s;
	double share = (double)cp->shapes[best] / (double)filled;
	if (share >= 0.95) {
		*confidence = share;
		return shape_types[best];
	}
	*confidence = 1.0 - share;
	return "string";
}

static void
print_scalar_json(const char *p, size_t n)
{
	fwrite(p, 1, n, stdout); /* JSON scalars are YAML flow scalars too */
}

static void
print_column(const struct column *c, const struct column_profile *cp, int is_key)
{
	double confidence;
	const char *type = inferred_type(c, cp, &confidence);
	char *name = dp_strfmt("%.*s", (int)strlen(c->json_key) - 1, c->json_key); /* "name" without the ':' */
	printf("    %s:\n      logical_type: %s\n      sql_type: %s\n      nullable: %s\n", name, type, c->sql_type,
	       c->nullable ? "true" : "false");
	if (is_key)
		printf("      key: true\n");
	if (strcmp(type, c->logical))
		printf("      # stored as %s; %.1f%% of the sampled values read as %s\n", c->logical, confidence * 100,
		       type);
	double n = cp->values ? (double)cp->values : 1;
	printf("      profile: {confidence: %.3f, null_ratio: %.4f, empty_string_ratio: %.4f, distinct_estimate: %.0f, "
	       "longest_json_bytes: %zu",
	       confidence, (double)cp->nulls / n, (double)cp->empty / n,
	       fmin(hll_estimate(cp->hll), (double)(cp->values - cp->nulls)), cp->longest);
	/* A string column pinned as a number reports its numeric extremes. */
	int as_number = strcmp(type, c->logical) && (!strcmp(type, "integer") || !strcmp(type, "decimal"));
	const struct dp_buf *min = as_number ? &cp->num_min : &cp->min, *max = as_number ? &cp->num_max : &cp->max;
	if (min->len && min->len <= 200 && max->len <= 200 && strcmp(c->logical, "binary")) {
		printf(", min: ");
		print_scalar_json(min->p, min->len);
		printf(", max: ");
		print_scalar_json(max->p, max->len);
	}
	printf("}\n");
	free(name);
}

void
infer_contract(struct source *s, const struct encoding *enc, long long sample)
{
	char *table = source_table_name(s), *list = source_column_list(s, 0);
	char *sql = dp_strfmt("SELECT TOP (%lld) %s FROM %s", sample, list, table);
	free(list);
	if (source_query(s, sql))
		dp_die(DP_EXIT_SOURCE, "the sample query failed: %s", source_error());
	struct column_profile *cp = dp_xcalloc((size_t)s->ncols, sizeof *cp);
	struct dp_buf v = {0};
	unsigned long long rows = 0;
	size_t widest_row = 0;
	while (dbnextrow(s->db) == REG_ROW) {
		size_t row_bytes = 2;
		for (int i = 0; i < s->ncols; i++) {
			v.len = 0;
			if (encode_value(&v, &s->cols[i], dbcoltype(s->db, i + 1), dbdata(s->db, i + 1),
			                 dbdatlen(s->db, i + 1), enc))
				dp_die(DP_EXIT_SOURCE, "row %llu, column %s: a value no %s column can hold", rows + 1,
				       s->cols[i].name, s->cols[i].sql_type);
			profile_value(&cp[i], &s->cols[i], v.p, v.len);
			row_bytes += strlen(s->cols[i].json_key) + v.len + 1;
		}
		if (row_bytes > widest_row)
			widest_row = row_bytes;
		rows++;
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the sample failed: %s", source_error());
	char stamp[32];
	time_t now = time(NULL);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	printf("# dpone type contract for [%s].[%s], inferred by dpone schema infer on %s\n"
	       "# from a sample of %llu rows (the first the server returned, not a random sample).\n"
	       "# Review the types, then commit it and name it in the manifest (contract: FILE).\n"
	       "contract:\n  table: %s.%s\n  enforcement: warn\n  empty_string: keep\n"
	       "  sample: {rows: %llu, widest_row_json_bytes: %zu}\n  columns:\n",
	       s->schema, s->table, stamp, rows, s->schema, s->table, rows, widest_row);
	for (int i = 0; i < s->ncols; i++) {
		int is_key = 0;
		for (int k = 0; k < s->nkey; k++)
			is_key |= s->key[k] == i;
		print_column(&s->cols[i], &cp[i], is_key);
	}
	for (int i = 0; i < s->ncols; i++) {
		free(cp[i].min.p);
		free(cp[i].max.p);
		free(cp[i].num_min.p);
		free(cp[i].num_max.p);
	}
	free(cp);
	free(v.p);
	free(sql);
	free(table);
}
