/* check.h: the parts of dpone-check, private to it. */
#ifndef CHECK_H
#define CHECK_H

#include "dpone.h"

/* evolve.c: schema evolution against the schema last published (kept in
 * the job's state by dpone-state commit). */
struct evolution {
	char **from, **to; /* on_breaking: variant renames, owned */
	size_t nrename;
};
/* Compare the header's columns with the published schema. Breaking changes
 * stop the run here (exit 8), before a row reaches dpone-produce, unless
 * on_breaking is variant. Returns the header to pass on (owned): the
 * input's, with schema_changes added when something changed. */
json_t *evolve_header(const struct dp_manifest *m, const char *manifest_path, const json_t *header,
                      struct evolution *ev);
/* A row as it goes on: with variant columns renamed (into out, returns 1),
 * or unchanged (returns 0). */
int evolve_row(const struct evolution *ev, const char *line, size_t len, struct dp_buf *out);
void evolution_free(struct evolution *ev);

#endif
