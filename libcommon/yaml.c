/*
 * yaml.c: YAML file -> jansson tree, remembering where every value stood.
 *
 * Scalars are typed by the YAML 1.2 core schema so that `batch_size: "10"`
 * (a string) and `batch_size: 10` (an integer) stay different, which is what
 * lets the manifest checker say "expected an integer". Aliases are expanded,
 * but the expansion is bounded: an alias bomb stops at MAX_NODES.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "dpone.h"

#define MAX_NODES 100000
#define MAX_DEPTH 64

struct load {
	yaml_document_t *doc;
	const char *path;
	json_t *marks;
	size_t nodes;
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
	if (where && *where)
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
		json_t *v = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s) : json_string(s);
		if (!v)
			return lfail(l, node->start_mark, where, "value is not valid UTF-8");
		return v;
	}
	default: return lfail(l, node->start_mark, where, "empty YAML node");
	}
}

json_t *
dp_yaml_load_file(const char *path, json_t *marks, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, fp);
	json_t *root = NULL;
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s%s%s", path, parser.problem_mark.line + 1,
		         parser.problem_mark.column + 1, parser.problem ? parser.problem : "cannot parse",
		         parser.context ? " " : "", parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
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
		struct load l = {&doc, path, marks, 0, err, errlen};
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
	fclose(fp);
	return root;
}
