/*
 * yaml.c: YAML file -> jansson tree, remembering where every value stood.
 *
 * Scalars are typed by the YAML 1.2 core schema so that `batch_size: "10"`
 * (a string) and `batch_size: 10` (an integer) stay different, which is what
 * lets the manifest checker say "expected an integer". Aliases are expanded,
 * but the expansion is bounded: an alias bomb stops at MAX_NODES values or
 * MAX_EXPANDED_BYTES of keys, paths and values, whichever comes first.
 *
 * A manifest may come from anyone who can open a pull request, so nothing
 * is built before its shape is known to be small: the file's size is
 * checked first (DPONE_MAX_YAML_BYTES), then one pass over libyaml's events
 * (which keep no tree) stops at the first value nested deeper than
 * MAX_DEPTH, a scalar longer than MAX_SCALAR_BYTES, or a tag; only then is
 * the document built. The one tag honoured is the core schema's !!str,
 * which makes a plain scalar a string, as YAML says.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "dpone.h"

#define MAX_NODES 100000
#define MAX_DEPTH 64
#define MAX_SCALAR_BYTES (64u << 10)
#define MAX_EXPANDED_BYTES (16u << 20)
#define MAX_YAML_BYTES_DEFAULT (4u << 20)
#define STR_TAG "tag:yaml.org,2002:str"

struct load {
	yaml_document_t *doc;
	const char *path;
	json_t *marks;
	json_t *str_tagged; /* start offsets ("%zu") of the scalars tagged !!str */
	size_t nodes;
	size_t bytes; /* of keys, paths and values built so far */
	char *err;
	size_t errlen;
};

static json_t *lfail(struct load *l, yaml_mark_t mark, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static json_t *
lfail(struct load *l, yaml_mark_t mark, const char *where, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t wlen = where ? strlen(where) : 0;
	if (wlen > 160) /* a path built of long keys: its ends say where */
		snprintf(l->err, l->errlen, "%s:%zu:%zu: %.80s...%s: %s", l->path, mark.line + 1, mark.column + 1,
		         where, where + wlen - 60, msg);
	else if (wlen)
		snprintf(l->err, l->errlen, "%s:%zu:%zu: %s: %s", l->path, mark.line + 1, mark.column + 1, where, msg);
	else
		snprintf(l->err, l->errlen, "%s:%zu:%zu: %s", l->path, mark.line + 1, mark.column + 1, msg);
	return NULL;
}

static int
is_null_text(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static json_t *
plain_scalar(const char *s)
{
	if (is_null_text(s))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	long long ll;
	if (dp_parse_ll(s, &ll) == 0 && (s[0] != '0' || s[1] == '\0'))
		return json_integer(ll);
	/* Floats: digits with a dot or exponent, nothing else. */
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (!*end && !errno && isfinite(d) && strpbrk(s, ".eE") && strspn(s, "+-0123456789.eE") == strlen(s))
		return json_real(d);
	return json_string(s);
}

static void
mark(struct load *l, const char *where, yaml_node_t *node)
{
	if (l->marks && where)
		json_object_set_new(l->marks, where,
		                    json_pack("[II]", (json_int_t)node->start_mark.line + 1,
		                              (json_int_t)node->start_mark.column + 1));
}

static json_t *convert(struct load *l, yaml_node_t *node, const char *where, int depth);

static json_t *
convert_map(struct load *l, yaml_node_t *node, const char *where, int depth)
{
	json_t *obj = json_object();
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
		if (!k || !v || k->type != YAML_SCALAR_NODE) {
			json_decref(obj);
			return lfail(l, k ? k->start_mark : node->start_mark, where, "keys must be plain strings");
		}
		const char *key = (const char *)k->data.scalar.value;
		if (strlen(key) != k->data.scalar.length) {
			json_decref(obj);
			return lfail(l, k->start_mark, where, "key contains a NUL byte");
		}
		char *sub = *where ? dp_strfmt("%s.%s", where, key) : dp_xstrdup(key);
		l->bytes += strlen(sub) + k->data.scalar.length;
		if (json_object_get(obj, key)) {
			json_decref(obj);
			lfail(l, k->start_mark, sub, "duplicate key");
			free(sub);
			return NULL;
		}
		if (l->marks) {
			char *kpath = dp_strfmt("%s#key", sub);
			json_object_set_new(l->marks, kpath,
			                    json_pack("[II]", (json_int_t)k->start_mark.line + 1,
			                              (json_int_t)k->start_mark.column + 1));
			free(kpath);
		}
		json_t *val = convert(l, v, sub, depth + 1);
		free(sub);
		if (!val) {
			json_decref(obj);
			return NULL;
		}
		json_object_set_new(obj, key, val);
	}
	return obj;
}

static json_t *
convert_seq(struct load *l, yaml_node_t *node, const char *where, int depth)
{
	json_t *arr = json_array();
	size_t i = 0;
	for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++, i++) {
		char *sub = dp_strfmt("%s[%zu]", where, i);
		l->bytes += strlen(sub);
		json_t *val = convert(l, yaml_document_get_node(l->doc, *it), sub, depth + 1);
		free(sub);
		if (!val) {
			json_decref(arr);
			return NULL;
		}
		json_array_append_new(arr, val);
	}
	return arr;
}

static json_t *
convert(struct load *l, yaml_node_t *node, const char *where, int depth)
{
	if (!node)
		return lfail(l, (yaml_mark_t){0, 0, 0}, where, "broken YAML document");
	if (++l->nodes > MAX_NODES)
		return lfail(l, node->start_mark, where, "more than %d values after alias expansion", MAX_NODES);
	if (l->bytes > MAX_EXPANDED_BYTES)
		return lfail(l, node->start_mark, where, "more than %u MiB of keys and values after alias expansion",
		             MAX_EXPANDED_BYTES >> 20);
	if (depth > MAX_DEPTH)
		return lfail(l, node->start_mark, where, "nested deeper than %d levels", MAX_DEPTH);
	mark(l, where, node);
	switch (node->type) {
	case YAML_MAPPING_NODE: return convert_map(l, node, where, depth);
	case YAML_SEQUENCE_NODE: return convert_seq(l, node, where, depth);
	case YAML_SCALAR_NODE: {
		const char *s = (const char *)node->data.scalar.value;
		if (strlen(s) != node->data.scalar.length)
			return lfail(l, node->start_mark, where, "value contains a NUL byte");
		l->bytes += node->data.scalar.length;
		char at[32];
		snprintf(at, sizeof at, "%zu", node->start_mark.index);
		int plain = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !json_object_get(l->str_tagged, at);
		json_t *v = plain ? plain_scalar(s) : json_string(s);
		if (!v)
			return lfail(l, node->start_mark, where, "value is not valid UTF-8");
		return v;
	}
	default: return lfail(l, node->start_mark, where, "empty YAML node");
	}
}

static int
yaml_error(yaml_parser_t *parser, const char *path, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s%s%s", path, parser->problem_mark.line + 1,
	         parser->problem_mark.column + 1, parser->problem ? parser->problem : "cannot parse",
	         parser->context ? " " : "", parser->context ? parser->context : "");
	return -1;
}

/* A tag on a node: !!str on a scalar is recorded (its offset into
 * str_tagged); any other is refused. 0 or -1. */
static int
check_tag(const yaml_char_t *tag, int scalar, yaml_mark_t m, json_t *str_tagged, const char *path, char *err,
          size_t errlen)
{
	if (!tag)
		return 0;
	if (scalar && !strcmp((const char *)tag, STR_TAG)) {
		char at[32];
		snprintf(at, sizeof at, "%zu", m.index);
		json_object_set_new(str_tagged, at, json_true());
		return 0;
	}
	snprintf(err, errlen,
	         "%s:%zu:%zu: the YAML tag %.80s is not accepted (a manifest is plain data; only !!str, "
	         "on a scalar, is honoured)",
	         path, m.line + 1, m.column + 1, (const char *)tag);
	return -1;
}

/* One pass over the events, which keep no tree: the limits and the tags,
 * before the document is built. 0 or -1 with err set. */
static int
prescan(FILE *fp, const char *path, json_t *str_tagged, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	int depth = 0, rc = 0, done = 0;
	while (!done && !rc) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			rc = yaml_error(&parser, path, err, errlen);
			break;
		}
		yaml_mark_t m = ev.start_mark;
		switch (ev.type) {
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			rc = check_tag(ev.type == YAML_MAPPING_START_EVENT ? ev.data.mapping_start.tag
			                                                   : ev.data.sequence_start.tag,
			               0, m, str_tagged, path, err, errlen);
			if (!rc && ++depth > MAX_DEPTH) {
				snprintf(err, errlen, "%s:%zu:%zu: nested deeper than %d levels", path, m.line + 1,
				         m.column + 1, MAX_DEPTH);
				rc = -1;
			}
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT: depth--; break;
		case YAML_SCALAR_EVENT:
			rc = check_tag(ev.data.scalar.tag, 1, m, str_tagged, path, err, errlen);
			if (!rc && ev.data.scalar.length > MAX_SCALAR_BYTES) {
				snprintf(err, errlen, "%s:%zu:%zu: a value of %zu bytes, more than %u KiB", path,
				         m.line + 1, m.column + 1, ev.data.scalar.length, MAX_SCALAR_BYTES >> 10);
				rc = -1;
			}
			break;
		case YAML_STREAM_END_EVENT: done = 1; break;
		default: break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return rc;
}

/* The file's size against DPONE_MAX_YAML_BYTES; 0 or -1 with err set. */
static int
check_size(FILE *fp, const char *path, char *err, size_t errlen)
{
	long long limit = MAX_YAML_BYTES_DEFAULT, v;
	const char *env = getenv("DPONE_MAX_YAML_BYTES");
	if (env && !dp_parse_ll(env, &v) && v > 0)
		limit = v;
	struct stat st;
	if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > limit) {
		snprintf(err, errlen,
		         "%s: %lld bytes, more than the %lld a manifest or registry may have "
		         "(DPONE_MAX_YAML_BYTES)",
		         path, (long long)st.st_size, limit);
		return -1;
	}
	return 0;
}

json_t *
dp_yaml_load_file(const char *path, json_t *marks, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	err[0] = '\0';
	json_t *str_tagged = json_object();
	if (check_size(fp, path, err, errlen) || prescan(fp, path, str_tagged, err, errlen) || fseek(fp, 0, SEEK_SET)) {
		if (!err[0])
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		json_decref(str_tagged);
		fclose(fp);
		return NULL;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	json_t *root = NULL;
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_error(&parser, path, err, errlen);
		yaml_parser_delete(&parser);
		json_decref(str_tagged);
		fclose(fp);
		return NULL;
	}
	yaml_node_t *top = yaml_document_get_root_node(&doc);
	if (!top) {
		snprintf(err, errlen, "%s:1:1: the file is empty", path);
	} else if (top->type != YAML_MAPPING_NODE) {
		snprintf(err, errlen, "%s:%zu:%zu: the top level must be a mapping of keys", path,
		         top->start_mark.line + 1, top->start_mark.column + 1);
	} else {
		struct load l = {&doc, path, marks, str_tagged, 0, 0, err, errlen};
		root = convert(&l, top, "", 0);
	}
	/* A second document in the same file is a mistake worth catching. */
	if (root) {
		yaml_document_t next;
		if (yaml_parser_load(&parser, &next)) {
			if (yaml_document_get_root_node(&next)) {
				snprintf(err, errlen, "%s: more than one YAML document", path);
				json_decref(root);
				root = NULL;
			}
			yaml_document_delete(&next);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	json_decref(str_tagged);
	fclose(fp);
	return root;
}
