/*
 * evolve.c: schema evolution before the load (the guide's five steps), for
 * dpone-check, or for dpone-extract when no check stage runs (see
 * dp_manifest_check_stage): the
 * target schema is the one this job last published, recorded with its
 * state by dpone-state commit; the stream header is compared with it
 * before any row passes. Additions and widening are applied and recorded
 * (schema_changes in the header, then in the state's history); a breaking
 * change fails the run before anything is produced, or with on_breaking:
 * variant sends the column's values under __dpone__nc__<column>, keeping
 * the published column's type for its consumers.
 */
#include <stdlib.h>
#include <string.h>

#include "dpone.h"

static void
describe_breaking(const json_t *changes, struct dp_buf *b)
{
	size_t i;
	json_t *c;
	json_array_foreach(changes, i, c) {
		if (!json_is_true(json_object_get(c, "breaking")))
			continue;
		const char *from = json_string_value(json_object_get(c, "from"));
		const char *to = json_string_value(json_object_get(c, "to"));
		char *item = dp_strfmt(
			"%s%s %s (%s -> %s)", b->len ? "; " : "", json_string_value(json_object_get(c, "column")),
			json_string_value(json_object_get(c, "change")), from ? from : "none", to ? to : "none");
		dp_buf_str(b, item);
		free(item);
	}
	dp_buf_char(b, '\0');
}

static int
is_key(const json_t *header, const char *column)
{
	size_t i;
	json_t *k;
	json_array_foreach(json_object_get(header, "key"), i, k)
		if (!strcmp(json_string_value(k), column))
			return 1;
	return 0;
}

/* on_breaking: variant: the published column stays as it was (its values
 * absent from now on) and the new values go to a variant column. */
static void
route_to_variants(const json_t *published, json_t *header, json_t *changes, struct dp_evolution *ev)
{
	json_t *columns = json_object_get(header, "columns");
	size_t i;
	json_t *c;
	json_array_foreach(changes, i, c) {
		if (!json_is_true(json_object_get(c, "breaking")))
			continue;
		const char *name = json_string_value(json_object_get(c, "column"));
		const char *kind = json_string_value(json_object_get(c, "change"));
		if (!strcmp(kind, "dropped"))
			dp_die(DP_EXIT_QUALITY,
			       "schema evolution: NOT NULL column %s was dropped; a variant column cannot "
			       "stand in for it; nothing was published",
			       name);
		if (is_key(header, name))
			dp_die(DP_EXIT_QUALITY,
			       "schema evolution: key column %s changed (%s); keys cannot move to a variant "
			       "column; nothing was published",
			       name, kind);
		json_object_set_new(c, "action", json_string("variant"));
		ev->from = dp_xrealloc(ev->from, (ev->nrename + 1) * sizeof *ev->from);
		ev->to = dp_xrealloc(ev->to, (ev->nrename + 1) * sizeof *ev->to);
		ev->from[ev->nrename] = dp_xstrdup(name);
		ev->to[ev->nrename] = dp_strfmt("%s%s", DP_VARIANT_PREFIX, name);
		size_t j;
		json_t *col;
		json_array_foreach(columns, j, col) {
			if (strcmp(json_string_value(json_object_get(col, "name")), name))
				continue;
			json_object_set_new(col, "name", json_string(ev->to[ev->nrename]));
			break;
		}
		size_t k;
		json_t *old;
		json_array_foreach(published, k, old)
			if (!strcmp(json_string_value(json_object_get(old, "name")), name))
				json_array_append(columns, old);
		ev->nrename++;
	}
}

void
dp_evolve_prepare(const struct dp_manifest *m, const char *manifest_path, struct dp_evolution *ev)
{
	if (!json_is_true(dp_manifest_get(m, "schema_evolution.enabled")))
		return;
	int code;
	json_t *state = dp_committed_state(m, manifest_path, &code);
	if (!state)
		dp_die(code < 0 ? DP_EXIT_FAILURE : code,
		       "schema evolution: the published schema could not be read from "
		       "state; nothing was published");
	json_t *record = json_object_get(state, "record");
	json_t *published = json_object_get(record, "schema");
	if (json_is_array(published)) { /* else the first run publishes the first schema */
		ev->published = json_incref(published);
		const char *run = json_string_value(json_object_get(record, "run_id"));
		ev->published_by = dp_xstrdup(run ? run : "reset");
	}
	json_decref(state);
}

json_t *
dp_evolve_header(const struct dp_manifest *m, const json_t *header, struct dp_evolution *ev)
{
	json_t *out = json_deep_copy(header);
	if (!ev->published)
		return out;
	json_t *changes = dp_schema_diff(ev->published, json_object_get(header, "columns"));
	size_t i;
	json_t *c;
	json_array_foreach(changes, i, c)
		json_object_set_new(c, "action", json_string("applied"));
	if (dp_schema_breaking(changes)) {
		if (m->on_breaking == DP_BREAKING_FAIL) {
			struct dp_buf why = {0};
			describe_breaking(changes, &why);
			dp_die(DP_EXIT_QUALITY,
			       "schema evolution: breaking change since run %s: %s; nothing was published "
			       "(schema_evolution.on_breaking: variant sends such values to " DP_VARIANT_PREFIX
			       "<column>; "
			       "dpone-state schema --clear accepts the new schema as it is)",
			       ev->published_by, why.p);
		}
		route_to_variants(ev->published, out, changes, ev);
	}
	if (json_array_size(changes))
		json_object_set(out, "schema_changes", changes);
	json_decref(changes);
	return out;
}

int
dp_evolve_row(const struct dp_evolution *ev, const char *line, size_t len, struct dp_buf *out)
{
	if (!ev->nrename)
		return 0;
	out->len = 0;
	if (dp_rename_members(line, len, ev->from, ev->to, ev->nrename, out) < 0)
		return 0;
	return 1;
}

void
dp_evolution_free(struct dp_evolution *ev)
{
	json_decref(ev->published);
	free(ev->published_by);
	for (size_t i = 0; i < ev->nrename; i++) {
		free(ev->from[i]);
		free(ev->to[i]);
	}
	free(ev->from);
	free(ev->to);
}
