/*
 * store.h: where dpone-state keeps a job's state. A store holds, per job,
 * the committed record, the run lease (lock) and the history. Every change
 * is one locked read-modify-write (update), so the compare-and-set rules
 * live once, in main.c, whatever the backend: a JSON file (store_file.c)
 * or PostgreSQL (store_pg.c).
 */
#ifndef STORE_H
#define STORE_H

#include <jansson.h>

#include "dpone.h"

/* A job's state; each member owned, NULL when absent. */
struct job_state {
	json_t *record; /* the last commit: watermark, run id, counts, boundary */
	json_t *lease;  /* {"owner": RUN_ID, "expires_at": EPOCH_SECONDS} */
};
void job_state_clear(struct job_state *st);

/* Decide the new state from the current one: change *st in place and set
 * *history (owned, may stay NULL) for the history table. 0 to write it,
 * or an exit code (nothing is written) with why in err. */
typedef int (*state_update_fn)(struct job_state *st, json_t **history, void *ctx, char *err, size_t errlen);

struct store;
struct store_ops {
	int (*read)(struct store *s, struct job_state *out, char *err, size_t errlen);
	int (*update)(struct store *s, state_update_fn fn, void *ctx, char *err, size_t errlen);
	/* Every history entry of the job, oldest first (a new array). */
	int (*history)(struct store *s, json_t **out, char *err, size_t errlen);
	void (*close)(struct store *s);
	/* check: what a run needs of the backend, added to out (an object). */
	int (*probe)(struct store *s, json_t *out, char *err, size_t errlen);
	/* snapshot_reconciliation's key index (keys.c): store the file at
	 * path under name, write the one stored under name to fd, remove the
	 * job's indexes but keep (NULL: all). */
	int (*put_keys)(struct store *s, const char *path, const char *name, char *err, size_t errlen);
	int (*get_keys)(struct store *s, const char *name, int fd, char *err, size_t errlen);
	int (*drop_keys)(struct store *s, const char *keep, char *err, size_t errlen);
};
struct store {
	const struct store_ops *ops;
	char *job;  /* the manifest's name, owned */
	int adopt;  /* reset: take over a state file written for another job */
	int misfit; /* the last read or update refused a state of another job */
};

/* Both return NULL with an exit code in *code and why in err. */
struct store *store_file_open(const char *path, const char *job, int *code, char *err, size_t errlen);
struct store *store_pg_open(const struct dp_conn *conn, const char *schema, const char *table, const char *job,
                            int *code, char *err, size_t errlen);

/* keys.c: the name a run's key index is stored under (job and run id
 * hashed: safe as a file name); the caller frees it. */
char *key_index_name(const char *job, const char *run_id);
/* A staged key index is what it claims: a key_index stream of exactly
 * keys keys in order. 0, or an exit code with why in err. */
int key_index_verify(const char *path, long long keys, char *err, size_t errlen);
/* Copy in to out (fds) to the end; 0 or -1 with errno. */
int copy_fd(int in, int out);

/* record.c: consecutive commits that found nothing (0 rows, watermark
 * unchanged) are one history entry, or history would grow by one line per
 * idle cron tick: the first's, with "empty_runs" (how many) and the newest
 * one's "last_run_id" and "last_committed_at". The entry that replaces
 * last (a new one), or NULL to append entry. */
json_t *history_fold(json_t *last, json_t *entry);

/* report.c: dpone-state report. */
struct report_options {
	int start;          /* --event start: the run begins */
	const char *run_id; /* --run-id */
	int exit_code;      /* --exit-code: the run's status */
	double started;     /* --started: epoch seconds the run began (0: now) */
	const char *error;  /* --error: the cause of a failed run, or NULL */
};
/* Metrics and lineage for the run (its summary on stdin at the end);
 * prints what went where as JSON. Always 0: a destination that is down is
 * a warning and a count, not a failed run. record: the state after the run. */
int report_run(const struct dp_manifest *m, json_t *record, const struct report_options *ro);

#endif
