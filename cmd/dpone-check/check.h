/* check.h: the parts of dpone-check, private to it. */
#ifndef CHECK_H
#define CHECK_H

#include "dpone.h"

/* evolve.c: schema evolution against the schema last published (kept in
 * the job's state by dpone-state commit). */
struct evolution {
	json_t *published;  /* the columns last published, or NULL; owned */
	char *published_by; /* the run that published them; owned */
	char **from, **to;  /* on_breaking: variant renames, owned */
	size_t nrename;
};
/* Read the published schema from state, before the stream: the run's
 * lease keeps it from changing meanwhile. Dies when state cannot be read. */
void evolve_prepare(const struct dp_manifest *m, const char *manifest_path, struct evolution *ev);
/* Compare the header's columns with the published schema. Breaking changes
 * stop the run here (exit 8), before a row reaches dpone-produce, unless
 * on_breaking is variant. Returns the header to pass on (owned): the
 * input's, with schema_changes added when something changed. */
json_t *evolve_header(const struct dp_manifest *m, const json_t *header, struct evolution *ev);
/* A row as it goes on: with variant columns renamed (into out, returns 1),
 * or unchanged (returns 0). */
int evolve_row(const struct evolution *ev, const char *line, size_t len, struct dp_buf *out);
void evolution_free(struct evolution *ev);

/* contract.c: the manifest's type contract, or NULL when it has none
 * (dies with file:line:col on a bad contract file). */
struct contract;
struct contract *contract_load(const struct dp_manifest *m);
/* The header's key (for sample keys) and which pinned columns are missing. */
void contract_header(struct contract *k, const json_t *header);
/* Check one row; with empty_string: null and a "" in it, the row to pass
 * on is written into out and 1 returned, else 0. */
int contract_row(struct contract *k, const char *line, size_t len, struct dp_buf *out);
/* The checks message's result for the contract (owned), or NULL when off
 * or none; *failed when enforcement is strict and something broke it. */
json_t *contract_result(struct contract *k, const json_t *header, int *failed);
void contract_free(struct contract *k);

#endif
