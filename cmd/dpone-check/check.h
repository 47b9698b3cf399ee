/* check.h: the parts of dpone-check, private to it. */
#ifndef CHECK_H
#define CHECK_H

#include "dpone.h"

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
