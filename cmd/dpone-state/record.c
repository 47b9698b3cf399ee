/*
 * record.c: what every backend shares about a job's record: freeing it,
 * and folding the history of runs that found nothing.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"

/* A commit that found nothing: no rows, state where it was, nothing else
 * to remember (schema changes, a reconciliation). */
static int
is_empty_commit(json_t *e)
{
	const char *kind = json_string_value(json_object_get(e, "kind"));
	json_t *rows = json_object_get(e, "rows");
	json_t *before = json_object_get(e, "watermark_before"), *after = json_object_get(e, "watermark_after");
	int unchanged = before && after ? json_equal(before, after) : !before && !after;
	return kind && !strcmp(kind, "commit") && json_is_integer(rows) && json_integer_value(rows) == 0 && unchanged &&
	       !json_object_get(e, "schema_changes") && !json_object_get(e, "reconciliation");
}

json_t *
history_fold(json_t *last, json_t *entry)
{
	if (!last || !is_empty_commit(last) || !is_empty_commit(entry))
		return NULL;
	json_t *folded = json_deep_copy(last);
	json_int_t runs = json_integer_value(json_object_get(last, "empty_runs"));
	json_object_set_new(folded, "empty_runs", json_integer(runs ? runs + 1 : 2));
	json_object_set(folded, "last_run_id", json_object_get(entry, "run_id"));
	json_object_set(folded, "last_committed_at", json_object_get(entry, "committed_at"));
	return folded;
}

void
job_state_clear(struct job_state *st)
{
	json_decref(st->record);
	json_decref(st->lease);
	st->record = st->lease = NULL;
}
