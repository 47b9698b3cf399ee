/*
 * manifest.c: load a manifest, check it against manifest_schema, apply
 * defaults and the guide's rules, and keep it as JSON for every stage, with
 * the choices commands branch on (strategy, delivery mode, ...) resolved
 * into dpone.h's enums once, here.
 * Every error names FILE:LINE:COL and the key path, and only the first one
 * is reported: it is usually the cause of the rest.
 */
#include <limits.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dpone.h"
#include "manifest_schema.h"

struct check {
	const char *file;
	json_t *marks;
	char *err;
	size_t errlen;
};

/* Line and column of path in marks ("#key" asks for the key itself). */
static void
where_of(json_t *marks, const char *path, long long *line, long long *col)
{
	json_t *m = json_object_get(marks, path);
	if (!m) {
		/* Fall back to the closest parent that has a position. */
		char *p = dp_xstrdup(path);
		char *cut;
		while (!m && (cut = strrchr(p, '.')) != NULL) {
			*cut = '\0';
			m = json_object_get(marks, p);
		}
		free(p);
	}
	*line = m ? json_integer_value(json_array_get(m, 0)) : 1;
	*col = m ? json_integer_value(json_array_get(m, 1)) : 1;
}

static int cfail(struct check *c, const char *mark_path, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
cfail(struct check *c, const char *mark_path, const char *path, const char *fmt, ...)
{
	char msg[384];
	long long line, col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	where_of(c->marks, mark_path, &line, &col);
	snprintf(c->err, c->errlen, "%s:%lld:%lld: %s: %s", c->file, line, col, path, msg);
	return -1;
}

static char *
join(const char *parent, const char *name)
{
	return *parent ? dp_strfmt("%s.%s", parent, name) : dp_xstrdup(name);
}

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static json_t *default_value(const struct key *k);
static int check_map(struct check *c, json_t *obj, const struct key *schema, const char *path);

static int
check_enum(struct check *c, const struct key *k, json_t *v, const char *path)
{
	if (!json_is_string(v))
		return cfail(c, path, path, "expected one of the names listed in dpone-manifest(5), got %s",
		             type_name(v));
	const char *s = json_string_value(v);
	for (const char *const *e = k->values; *e; e++)
		if (!strcmp(*e, s))
			return 0;
	char allowed[256] = "";
	for (const char *const *e = k->values; *e; e++) {
		strncat(allowed, *e, sizeof allowed - strlen(allowed) - 1);
		if (e[1])
			strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
	}
	const char *near = dp_did_you_mean(s, k->values);
	if (near)
		return cfail(c, path, path, "'%s' is not one of %s (did you mean '%s'?)", s, allowed, near);
	return cfail(c, path, path, "'%s' is not one of %s", s, allowed);
}

static int
check_number(struct check *c, const struct key *k, json_t *v, const char *path)
{
	if (k->kind == K_INT && !json_is_integer(v))
		return cfail(c, path, path, "expected an integer, got %s", type_name(v));
	if (k->kind == K_NUM && !json_is_number(v))
		return cfail(c, path, path, "expected a number, got %s", type_name(v));
	double d = json_number_value(v);
	if ((k->min != 0 || k->max != 0) && (d < k->min || d > k->max))
		return cfail(c, path, path, "%g is out of range [%g, %g]", d, k->min, k->max);
	if (k->min == 0 && k->max == 0 && d < 0)
		return cfail(c, path, path, "must not be negative");
	return 0;
}

/* String or list of non-empty, distinct strings; replaced by a list. */
static int
check_keylist(struct check *c, json_t *parent, const char *name, json_t *v, const char *path, int allow_scalar)
{
	if (json_is_string(v) && allow_scalar) {
		json_object_set_new(parent, name, json_pack("[O]", v));
		v = json_object_get(parent, name);
	}
	if (!json_is_array(v))
		return cfail(c, path, path, "expected %s, got %s",
		             allow_scalar ? "a column name or a list of them" : "a list of strings", type_name(v));
	size_t i, j;
	json_t *item;
	json_array_foreach(v, i, item) {
		char *ipath = dp_strfmt("%s[%zu]", path, i);
		if (!json_is_string(item) || !*json_string_value(item)) {
			int rc = cfail(c, ipath, ipath, "expected a non-empty string, got %s", type_name(item));
			free(ipath);
			return rc;
		}
		for (j = 0; j < i; j++)
			if (json_equal(item, json_array_get(v, j))) {
				int rc = cfail(c, ipath, ipath, "'%s' is listed twice", json_string_value(item));
				free(ipath);
				return rc;
			}
		free(ipath);
	}
	return 0;
}

static int
check_scalarmap(struct check *c, json_t *v, const char *path)
{
	if (!json_is_object(v))
		return cfail(c, path, path, "expected a mapping of names to values, got %s", type_name(v));
	const char *name;
	json_t *item;
	void *tmp;
	json_object_foreach_safe(v, tmp, name, item) {
		char *ipath = join(path, name);
		char *text = NULL;
		if (json_is_string(item))
			text = dp_xstrdup(json_string_value(item));
		else if (json_is_integer(item))
			text = dp_strfmt("%lld", (long long)json_integer_value(item));
		else if (json_is_real(item))
			text = dp_strfmt("%.17g", json_real_value(item));
		else if (json_is_boolean(item))
			text = dp_xstrdup(json_is_true(item) ? "true" : "false");
		if (!text) {
			int rc = cfail(c, ipath, ipath, "expected a scalar value, got %s", type_name(item));
			free(ipath);
			return rc;
		}
		json_object_set_new(v, name, json_string(text));
		free(text);
		free(ipath);
	}
	return 0;
}

static int
check_value(struct check *c, json_t *parent, const struct key *k, json_t *v, const char *path)
{
	switch (k->kind) {
	case K_MAP:
		if (!json_is_object(v))
			return cfail(c, path, path, "expected a mapping, got %s", type_name(v));
		return check_map(c, v, k->children, path);
	case K_STR:
		if (json_is_integer(v)) {
			char *text = dp_strfmt("%lld", (long long)json_integer_value(v));
			json_object_set_new(parent, k->name, json_string(text));
			free(text);
			return 0;
		}
		if (!json_is_string(v))
			return cfail(c, path, path, "expected a string, got %s", type_name(v));
		if (!*json_string_value(v) && (k->flags & REQUIRED))
			return cfail(c, path, path, "must not be empty");
		return 0;
	case K_INT:
	case K_NUM: return check_number(c, k, v, path);
	case K_BOOL:
		return json_is_boolean(v) ? 0 : cfail(c, path, path, "expected true or false, got %s", type_name(v));
	case K_ENUM: return check_enum(c, k, v, path);
	case K_STRLIST: return check_keylist(c, parent, k->name, v, path, 0);
	case K_KEYLIST: return check_keylist(c, parent, k->name, v, path, 1);
	case K_SCALARMAP: return check_scalarmap(c, v, path);
	case K_MAPLIST: {
		if (!json_is_array(v))
			return cfail(c, path, path, "expected a list, got %s", type_name(v));
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item) {
			char *ipath = dp_strfmt("%s[%zu]", path, i);
			int rc = json_is_object(item)
			                 ? check_map(c, item, k->children, ipath)
			                 : cfail(c, ipath, ipath, "expected a mapping, got %s", type_name(item));
			free(ipath);
			if (rc)
				return rc;
		}
		return 0;
	}
	}
	return 0;
}

static json_t *
default_value(const struct key *k)
{
	if (k->kind == K_MAP && (k->flags & AUTO))
		return json_object();
	if (!k->dflt)
		return NULL;
	switch (k->kind) {
	case K_INT: return json_integer(atoll(k->dflt));
	case K_NUM: return json_real(atof(k->dflt));
	case K_BOOL: return json_boolean(!strcmp(k->dflt, "true"));
	default: return json_string(k->dflt);
	}
}

static int
unknown_key(struct check *c, const struct key *schema, const char *name, const char *path)
{
	const char *names[64];
	size_t n = 0;
	for (const struct key *k = schema; k->name && n < 63; k++)
		names[n++] = k->name;
	names[n] = NULL;
	char *kpath = dp_strfmt("%s#key", path);
	const char *near = dp_did_you_mean(name, names);
	int rc = near ? cfail(c, kpath, path, "unknown key (did you mean '%s'?)", near)
	              : cfail(c, kpath, path, "unknown key (see dpone-manifest(5) for the keys allowed here)");
	free(kpath);
	return rc;
}

static int
check_map(struct check *c, json_t *obj, const struct key *schema, const char *path)
{
	const char *name;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(obj, tmp, name, v) {
		const struct key *k = schema;
		while (k->name && strcmp(k->name, name))
			k++;
		char *sub = join(path, name);
		int rc = 0;
		if (!k->name)
			rc = unknown_key(c, schema, name, sub);
		else if (json_is_null(v))
			json_object_del(obj, name); /* `key:` with no value means absent */
		else
			rc = check_value(c, obj, k, v, sub);
		free(sub);
		if (rc)
			return rc;
	}
	for (const struct key *k = schema; k->name; k++) {
		if (json_object_get(obj, k->name))
			continue;
		char *sub = join(path, k->name);
		int rc = 0;
		if (k->flags & REQUIRED) {
			rc = cfail(c, path, sub, "missing required key");
		} else {
			json_t *d = default_value(k);
			if (d) {
				json_object_set_new(obj, k->name, d);
				if (k->kind == K_MAP)
					rc = check_map(c, json_object_get(obj, k->name), k->children, sub);
			}
		}
		free(sub);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the guide's rules, checked once the shape is right ---- */

/* The value at a dotted path ("sink.strategy.mode") below root (borrowed). */
static json_t *
json_at(json_t *root, const char *path)
{
	json_t *v = root;
	char *p = dp_xstrdup(path), *save = NULL;
	for (char *tok = strtok_r(p, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
		v = json_object_get(v, tok);
	free(p);
	return v;
}

static const char *
sget(json_t *root, const char *path)
{
	return json_string_value(json_at(root, path));
}

static int
has_column(json_t *columns, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(columns, i, v)
		if (!strcmp(json_string_value(v), name))
			return 1;
	return 0;
}

static int
rule_types(struct check *c, json_t *root)
{
	const char *mode = sget(root, "sink.strategy.mode");
	const char *src = sget(root, "source.type");
	if (strcmp(src, "mssql")) {
		if (!strcmp(mode, "cdc"))
			return cfail(c, "source.type", "source.type",
			             "'%s': strategy cdc reads SQL Server change data capture and needs type mssql",
			             src);
		return cfail(c, "source.type", "source.type", "'%s' is not supported: dpone reads from mssql", src);
	}
	const char *sink = sget(root, "sink.type");
	if (strcmp(sink, "kafka"))
		return cfail(c, "sink.type", "sink.type", "'%s' is not supported: dpone writes to kafka", sink);
	return 0;
}

static int
rule_topic(struct check *c, json_t *root)
{
	json_t *sink = json_object_get(root, "sink");
	const char *top = sget(root, "sink.topic");
	const char *opt = sget(root, "sink.options.topic");
	if (top && opt && strcmp(top, opt))
		return cfail(c, "sink.options.topic", "sink.options.topic",
		             "'%s' differs from sink.topic '%s'; give the topic once", opt, top);
	if (!top && !opt)
		return cfail(c, "sink", "sink.topic", "missing required key");
	if (!top)
		json_object_set_new(sink, "topic", json_string(opt));
	if (!*sget(root, "sink.topic"))
		return cfail(c, "sink.topic", "sink.topic", "must not be empty");
	return 0;
}

static int
rule_strategy(struct check *c, json_t *root)
{
	json_t *strategy = json_at(root, "sink.strategy");
	const char *mode = sget(root, "sink.strategy.mode");
	json_t *ukey = json_object_get(strategy, "unique_key");
	if (!strcmp(mode, "partition_replace"))
		return cfail(c, "sink.strategy.mode", "sink.strategy.mode",
		             "partition_replace is not supported for Kafka sinks because a topic is an append-only "
		             "event log; use incremental_merge with merge_policy: event_upsert");
	if ((!strcmp(mode, "incremental_merge") || !strcmp(mode, "snapshot_reconciliation")) && !ukey)
		return cfail(c, "sink.strategy", "sink.strategy.unique_key",
		             "%s needs unique_key (a column name or a list of them)", mode);
	if (!strcmp(mode, "incremental_append") && !sget(root, "source.options.incremental_column"))
		return cfail(c, "source.options", "source.options.incremental_column",
		             "incremental_append needs the column that bounds each run");
	return 0;
}

/* Options that mean something to some strategies only. Written for
 * another they would be ignored, which the README promises never happens:
 * an error, naming the strategies they are for. */
static const struct {
	const char *path, *strategies; /* space-separated */
} strategy_options[] = {
	{"source.options.incremental_column", "incremental_append incremental_merge snapshot_reconciliation"},
	{"source.options.lookback", "incremental_append incremental_merge"},
	{"source.options.boundary_safety", "incremental_append incremental_merge"},
	{"source.options.clock_margin", "incremental_append incremental_merge"},
	{"source.options.timestamp_clock", "incremental_append incremental_merge"},
	{"source.options.capture_instance", "cdc"},
	{"source.options.snapshot", "cdc"},
	{"source.options.row_filter_option", "cdc"},
	{"sink.strategy.merge_policy", "incremental_merge"},
	{"sink.strategy.duplicate_policy", "incremental_merge"},
	{"sink.strategy.delete_mode", "snapshot_reconciliation"},
	{"sink.strategy.soft_delete_column", "snapshot_reconciliation"},
	{"sink.strategy.max_delete_pct", "snapshot_reconciliation"},
	{"sink.strategy.reconcile_memory_mb", "snapshot_reconciliation"},
	{"sink.strategy.window", "replace"},
	/* Ranges of a boundary: cdc reads changes in LSN order, and a range's
	 * keys are not the table's for snapshot_reconciliation. */
	{"source.options.parallelism", "full_refresh incremental_append incremental_merge replace"},
	{"source.options.split_column", "full_refresh incremental_append incremental_merge replace"},
};

static int
word_in(const char *word, const char *words)
{
	size_t n = strlen(word);
	for (const char *p = words; (p = strstr(p, word)); p += n)
		if ((p == words || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return 1;
	return 0;
}

static int
rule_strategy_options(struct check *c, json_t *root)
{
	const char *mode = sget(root, "sink.strategy.mode");
	for (size_t i = 0; i < sizeof strategy_options / sizeof *strategy_options; i++) {
		const char *path = strategy_options[i].path;
		/* Written in the file (a default is not the user's choice). */
		if (json_object_get(c->marks, path) && !word_in(mode, strategy_options[i].strategies))
			return cfail(c, path, path, "does not apply to strategy %s (it is for %s): remove it", mode,
			             strategy_options[i].strategies);
	}
	return 0;
}

static int
rule_columns(struct check *c, json_t *root)
{
	json_t *columns = json_at(root, "source.options.columns");
	if (!columns)
		return 0;
	json_t *ukey = json_at(root, "sink.strategy.unique_key");
	size_t i;
	json_t *v;
	json_array_foreach(ukey, i, v)
		if (!has_column(columns, json_string_value(v)))
			return cfail(c, "sink.strategy.unique_key", "sink.strategy.unique_key",
			             "'%s' is not in source.options.columns", json_string_value(v));
	const char *inc = sget(root, "source.options.incremental_column");
	if (inc && !has_column(columns, inc))
		return cfail(c, "source.options.incremental_column", "source.options.incremental_column",
		             "'%s' is not in source.options.columns", inc);
	return 0;
}

static int
rule_key(struct check *c, json_t *root)
{
	json_t *key = json_at(root, "sink.options.key");
	json_t *ukey = json_at(root, "sink.strategy.unique_key");
	json_t *field = json_object_get(key, "field");
	if (field) {
		/* `field:` is the single-column spelling of `fields:`. */
		if (json_object_get(key, "fields"))
			return cfail(c, "sink.options.key.field", "sink.options.key.field",
			             "give field or fields, not both");
		json_object_set_new(key, "fields", json_pack("[O]", field));
		json_object_del(key, "field");
	}
	const char *mode = json_string_value(json_object_get(key, "mode"));
	/* Without a key named, messages are keyed by the table's primary key
	 * (cdc: unique_key falls back to it too); dpone-produce warns and sends
	 * them unkeyed when the table has none. */
	int cdc = !strcmp(sget(root, "sink.strategy.mode"), "cdc");
	if (!mode) {
		mode = json_object_get(key, "fields") ? "fields" : ukey || cdc ? "unique_key" : "primary_key";
		json_object_set_new(key, "mode", json_string(mode));
	}
	if (!strcmp(mode, "unique_key") && !ukey && !cdc)
		return cfail(c, "sink.options.key.mode", "sink.options.key.mode",
		             "unique_key needs sink.strategy.unique_key (or use fields, hash_row or null)");
	if (!strcmp(mode, "fields") && !json_array_size(json_object_get(key, "fields")))
		return cfail(c, "sink.options.key", "sink.options.key.fields",
		             "key mode fields needs the list of columns");
	json_t *deletes = json_at(root, "sink.options.deletes");
	if (cdc && !json_is_true(json_object_get(deletes, "enabled")))
		return cfail(
			c, "sink.options.deletes", "sink.options.deletes.enabled",
			"strategy cdc publishes the source's deletes: set deletes: {enabled: true} (with tombstone: "
			"true for compacted topics)");
	if (json_is_true(json_object_get(deletes, "enabled")) && json_is_true(json_object_get(deletes, "tombstone")) &&
	    !strcmp(mode, "null"))
		return cfail(c, "sink.options.deletes.tombstone", "sink.options.deletes.tombstone",
		             "a tombstone deletes a key, so key.mode must not be null");
	json_t *registry = json_at(root, "sink.options.schema_registry");
	if (json_is_true(json_object_get(registry, "enabled")))
		return cfail(
			c, "sink.options.schema_registry.enabled", "sink.options.schema_registry.enabled",
			"a schema registry is not supported; dpone writes JSON with the schema in its stream header");
	return 0;
}

/* sink.options.dpone_headers: which dpone.* headers messages carry
 * (dpone-produce(1), Headers); the default is what a run can be traced by
 * at the least cost measured (README, Benchmarks). */
#define DPONE_HEADERS_DEFAULT "[]"

static int
rule_dpone_headers(struct check *c, json_t *root)
{
	json_t *opts = json_at(root, "sink.options");
	json_t *list = json_object_get(opts, "dpone_headers");
	if (!list) {
		json_object_set_new(opts, "dpone_headers", json_loads(DPONE_HEADERS_DEFAULT, 0, NULL));
		return 0;
	}
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		int known = 0;
		for (const char *const *n = dp_dpone_header_names; *n; n++)
			known |= !strcmp(*n, json_string_value(v));
		if (!known) {
			char path[64];
			snprintf(path, sizeof path, "sink.options.dpone_headers[%zu]", i);
			return cfail(c, path, path, "'%s' is not one of run_id, source, watermark, change",
			             json_string_value(v));
		}
	}
	return 0;
}

/* Keys holding a duration (30s, 15m, 2h, 1d), read with one parser when
 * the manifest loads; lookback and checks' max_age have their own rules
 * (lookback may be a number, max_age is per check). */
static int
rule_durations(struct check *c, json_t *root)
{
	static const char *const paths[] = {"source.options.login_timeout", "source.options.query_timeout",
	                                    "source.options.retry_backoff", "source.options.clock_margin",
	                                    "state.lease_ttl"};
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
		const char *t = sget(root, paths[i]);
		if (t && dp_duration_seconds(t) <= 0)
			return cfail(
				c, paths[i], paths[i],
				"'%s' is not a duration: write a whole number above 0 and s, m, h or d (30s, 15m, 2h, "
				"1d)",
				t);
	}
	return 0;
}

static int
rule_state(struct check *c, json_t *root)
{
	json_t *state = json_object_get(root, "state");
	if (!strcmp(sget(root, "state.type"), "postgres") && !sget(root, "state.connection_id"))
		return cfail(c, "state", "state.connection_id", "state type postgres needs a connection_id");
	if (!json_object_get(state, "path")) {
		char *p = dp_strfmt(".dpone/state/%s.json", sget(root, "name"));
		json_object_set_new(state, "path", json_string(p));
		free(p);
	}
	json_t *artifacts = json_at(root, "observability.artifacts");
	if (!json_object_get(artifacts, "path")) {
		char *p = dp_strfmt(".dpone/runs/%s", sget(root, "name"));
		json_object_set_new(artifacts, "path", json_string(p));
		free(p);
	}
	/* Where a job keeps things does not depend on where it is started
	 * from (cron starts it in HOME): relative paths are the manifest's. */
	static const char *const paths[][2] = {{"state", "path"},
	                                       {"observability.artifacts", "path"},
	                                       {"", "contract"},
	                                       {"observability.metrics", "textfile_dir"},
	                                       {"observability.lineage", "file"}};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		json_t *parent = *paths[i][0] ? json_at(root, paths[i][0]) : root;
		const char *value = json_string_value(json_object_get(parent, paths[i][1]));
		if (value && value[0] != '/') {
			char *abs = dp_path_beside(c->file, value);
			json_object_set_new(parent, paths[i][1], json_string(abs));
			free(abs);
		}
	}
	return 0;
}

char *
dp_path_beside(const char *manifest_path, const char *path)
{
	if (path[0] == '/')
		return dp_xstrdup(path);
	char *copy = dp_xstrdup(manifest_path), dir[PATH_MAX];
	const char *base = dirname(copy);
	char *abs = realpath(base, dir) ? dp_strfmt("%s/%s", dir, path) : dp_strfmt("%s/%s", base, path);
	free(copy);
	return abs;
}

/* The predicate is pasted into every query's WHERE clause; the lookback
 * is parsed here, once, not when a run needs it. */
static int
rule_source_options(struct check *c, json_t *root)
{
	const char *lookback = sget(root, "source.options.lookback");
	long long n;
	if (lookback && dp_parse_ll(lookback, &n) && dp_duration_seconds(lookback) < 0)
		return cfail(
			c, "source.options.lookback", "source.options.lookback",
			"'%s' is neither a number (integer columns) nor a duration (30s, 15m, 2h, 1d: date and time "
			"columns)",
			lookback);
	const char *safety = sget(root, "source.options.boundary_safety");
	if (safety && !strcmp(safety, "lookback") && !lookback)
		return cfail(c, "source.options.boundary_safety", "source.options.boundary_safety",
		             "lookback protects from late commits only with source.options.lookback set (how far "
		             "back each run reads again)");
	const char *predicate = sget(root, "source.options.source_custom_predicate");
	char why[384];
	if (predicate && dp_sql_predicate_check(predicate, why, sizeof why) < 0)
		return cfail(c, "source.options.source_custom_predicate", "source.options.source_custom_predicate",
		             "%s", why);
	return 0;
}

/* Nonzero if the existing directories a and b are one (NULL: no). */
static int
same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	return a && b && realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

/* A run prunes old runs in the artifacts directory: it must be dpone's
 * own, never the root, the home directory or the manifest's directory,
 * where other files live. */
static int
rule_artifacts(struct check *c, json_t *root)
{
	if (!json_is_true(json_at(root, "observability.artifacts.enabled")))
		return 0;
	const char *path = sget(root, "observability.artifacts.path");
	char *file = dp_xstrdup(c->file);
	const char *why = same_dir(path, "/")              ? "the root directory"
	                  : same_dir(path, getenv("HOME")) ? "the home directory"
	                  : same_dir(path, dirname(file))  ? "the manifest's own directory"
	                                                   : NULL;
	free(file);
	if (why)
		return cfail(c, "observability.artifacts.path", "observability.artifacts.path",
		             "'%s' is %s: runs prune old run directories there; give a directory of their own "
		             "(the default is .dpone/runs/NAME)",
		             path, why);
	return 0;
}

static int
rule_checks(struct check *c, json_t *root)
{
	json_t *checks = json_at(root, "quality.checks");
	size_t i;
	json_t *chk;
	json_array_foreach(checks, i, chk) {
		const char *type = json_string_value(json_object_get(chk, "type"));
		char path[64];
		snprintf(path, sizeof path, "quality.checks[%zu]", i);
		int kind = dp_check_type(type);
		int needs_threshold = kind == DP_CHECK_MIN_ROWS || kind == DP_CHECK_MAX_ROWS;
		int needs_column = kind == DP_CHECK_NOT_NULL;
		if (needs_threshold && !json_object_get(chk, "threshold"))
			return cfail(c, path, path, "%s needs threshold", type);
		if (needs_column && !json_object_get(chk, "column") && !json_object_get(chk, "columns"))
			return cfail(c, path, path, "%s needs column or columns", type);
		if (kind == DP_CHECK_FRESHNESS && !json_object_get(chk, "max_age"))
			return cfail(c, path, path, "freshness needs max_age (for example 24h)");
		const char *max_age = json_string_value(json_object_get(chk, "max_age"));
		if (max_age && dp_duration_seconds(max_age) < 0) {
			char key[96];
			snprintf(key, sizeof key, "%s.max_age", path);
			return cfail(c, key, key,
			             "'%s' is not a duration: write a whole number and s, m, h or d (30s, 15m, 2h, 1d)",
			             max_age);
		}
		if (json_object_get(chk, "tolerance") && json_object_get(chk, "tolerance_pct"))
			return cfail(c, path, path, "give tolerance or tolerance_pct, not both");
		if (!strcmp(type, "unique") && !strcmp(sget(root, "sink.strategy.mode"), "cdc"))
			return cfail(c, path, path,
			             "unique does not apply to strategy cdc: a key may change several times "
			             "in one run, each change an event");
	}
	return 0;
}

static int
rule_name(struct check *c, json_t *root)
{
	const char *name = sget(root, "name");
	/* The name becomes part of file paths and Kafka transactional ids. */
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(name) ||
	    name[0] == '.')
		return cfail(c, "name", "name", "'%s' may use only letters, digits, '_', '-' and '.'", name);
	return 0;
}

static int
apply_rules(struct check *c, json_t *root)
{
	int (*rules[])(struct check *, json_t *) = {
		rule_name,    rule_types,          rule_topic,     rule_strategy,      rule_strategy_options,
		rule_columns, rule_source_options, rule_durations, rule_dpone_headers, rule_key,
		rule_state,   rule_artifacts,      rule_checks};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
		if (rules[i](c, root))
			return -1;
	return 0;
}

/* The index of the value at path in names (checked by the schema, and
 * defaulted, so it is there). */
static int
enum_at(const struct dp_manifest *m, const char *path, const char *const *names)
{
	const char *v = dp_manifest_str(m, path);
	for (int i = 0; v && names[i]; i++)
		if (!strcmp(v, names[i]))
			return i;
	return 0;
}

static void
resolve_enums(struct dp_manifest *m)
{
	m->strategy = (enum dp_strategy)enum_at(m, "sink.strategy.mode", dp_strategy_names);
	m->delivery = (enum dp_delivery_mode)enum_at(m, "sink.options.delivery.mode", dp_delivery_mode_names);
	m->quality = (enum dp_quality_mode)enum_at(m, "quality.mode", dp_quality_mode_names);
	m->state_type = (enum dp_state_type)enum_at(m, "state.type", dp_state_type_names);
	m->export_mode = (enum dp_export_mode)enum_at(m, "source.options.export_mode", dp_export_mode_names);
	m->bigint_as = (enum dp_bigint_mode)enum_at(m, "source.options.bigint_as", dp_bigint_mode_names);
	m->binary_as = (enum dp_binary_mode)enum_at(m, "source.options.binary_as", dp_binary_mode_names);
	m->on_breaking = (enum dp_breaking_policy)enum_at(m, "schema_evolution.on_breaking", dp_breaking_policy_names);
}

int
dp_check_type(const char *name)
{
	for (int i = 0; name && dp_check_type_names[i]; i++)
		if (!strcmp(name, dp_check_type_names[i]))
			return i;
	return -1;
}

struct dp_manifest *
dp_manifest_load(const char *path, char *err, size_t errlen)
{
	json_t *marks = json_object();
	json_t *root = dp_yaml_load_file(path, marks, err, errlen);
	if (!root) {
		json_decref(marks);
		return NULL;
	}
	struct check c = {path, marks, err, errlen};
	if (check_map(&c, root, manifest_schema, "") || apply_rules(&c, root)) {
		json_decref(root);
		json_decref(marks);
		return NULL;
	}
	struct dp_manifest *m = dp_xcalloc(1, sizeof *m);
	m->path = dp_xstrdup(path);
	m->root = root;
	m->marks = marks;
	resolve_enums(m);
	return m;
}

void
dp_manifest_free(struct dp_manifest *m)
{
	if (!m)
		return;
	json_decref(m->root);
	json_decref(m->marks);
	free(m->path);
	free(m);
}

json_t *
dp_manifest_get(const struct dp_manifest *m, const char *path)
{
	return json_at(m->root, path);
}

const char *
dp_manifest_str(const struct dp_manifest *m, const char *path)
{
	return json_string_value(dp_manifest_get(m, path));
}

long long
dp_manifest_int(const struct dp_manifest *m, const char *path, long long dflt)
{
	json_t *v = dp_manifest_get(m, path);
	return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

const char *
dp_manifest_where(const struct dp_manifest *m, const char *path, char *buf, size_t len)
{
	long long line, col;
	where_of(m->marks, path, &line, &col);
	snprintf(buf, len, "%s:%lld:%lld: %s: ", m->path, line, col, path);
	return buf;
}

int
dp_manifest_incremental(const struct dp_manifest *m)
{
	const char *mode = dp_manifest_str(m, "sink.strategy.mode");
	return !strcmp(mode, "cdc") || (dp_manifest_str(m, "source.options.incremental_column") &&
	                                (!strcmp(mode, "incremental_append") || !strcmp(mode, "incremental_merge")));
}

unsigned
dp_manifest_dpone_headers(const struct dp_manifest *m)
{
	unsigned bits = 0;
	size_t i;
	json_t *v;
	json_array_foreach(dp_manifest_get(m, "sink.options.dpone_headers"), i, v)
		for (unsigned k = 0; dp_dpone_header_names[k]; k++)
			if (!strcmp(json_string_value(v), dp_dpone_header_names[k]))
				bits |= 1u << k;
	return bits;
}

int
dp_manifest_has_check(const struct dp_manifest *m, enum dp_check_type type)
{
	if (m->quality == DP_QUALITY_OFF)
		return 0;
	size_t i;
	json_t *c;
	json_array_foreach(dp_manifest_get(m, "quality.checks"), i, c)
		if (dp_check_type(json_string_value(json_object_get(c, "type"))) == (int)type)
			return 1;
	return 0;
}
