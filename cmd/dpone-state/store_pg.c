/*
 * store_pg.c: state in PostgreSQL (state.type: postgres), through libpq.
 * Tables (created if absent; SCHEMA.TABLE from state.table, default
 * etl_state.dpone_state):
 *
 *   CREATE SCHEMA IF NOT EXISTS etl_state;
 *   CREATE TABLE IF NOT EXISTS etl_state.dpone_state (
 *     job text PRIMARY KEY, run_id text, watermark text,
 *     record json, lease json, updated_at timestamptz NOT NULL DEFAULT now());
 *   CREATE TABLE IF NOT EXISTS etl_state.dpone_state_history (
 *     id bigserial PRIMARY KEY, job text NOT NULL, run_id text, kind text NOT NULL,
 *     watermark_before text, watermark_after text, entry json NOT NULL,
 *     committed_at timestamptz NOT NULL DEFAULT now());
 *   CREATE TABLE IF NOT EXISTS etl_state.dpone_state_keys (   -- when a job first stores one
 *     job text NOT NULL, name text NOT NULL, seq int NOT NULL, chunk bytea NOT NULL,
 *     PRIMARY KEY (job, name, seq));
 *
 * record and entry are the JSON documents dpone-state works with, kept as
 * json (text, byte for byte: a watermark keeps every digit); run_id and the
 * watermark columns are copies for people reading the table with psql.
 * An update runs in one transaction that first takes
 * pg_advisory_xact_lock on the job, so updates of one job are serialised
 * whoever runs them, and a failure rolls everything back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store.h"

/* libpq is opened when a postgres state is, not linked: runs with a file
 * state (and every dpone-state call of the wrapper) skip loading it and its
 * dependencies (see dp_library_open). */
#define PQ_FUNCTIONS(X)         \
	X(PQclear)              \
	X(PQconnectdbParams)    \
	X(PQerrorMessage)       \
	X(PQescapeIdentifier)   \
	X(PQexec)               \
	X(PQexecParams)         \
	X(PQfinish)             \
	X(PQfreemem)            \
	X(PQgetResult)          \
	X(PQgetisnull)          \
	X(PQgetlength)          \
	X(PQgetvalue)           \
	X(PQlibVersion)         \
	X(PQntuples)            \
	X(PQresultErrorMessage) \
	X(PQresultStatus)       \
	X(PQsendQueryParams)    \
	X(PQsetNoticeProcessor) \
	X(PQsetSingleRowMode)   \
	X(PQstatus)

static struct {
#define PQ_POINTER(f) __typeof__(f) *f;
	PQ_FUNCTIONS(PQ_POINTER)
} pq;

/* 0 once libpq is loaded, else -1 with why in err (a later call tries
 * again). */
static int
load_libpq(char *err, size_t errlen)
{
	static const char *const sonames[] = {DP_LIBPQ_SONAME, NULL};
	static int loaded;
	if (loaded)
		return 0;
	void *lib = dp_library_open("libpq", sonames, err, errlen);
#define PQ_RESOLVE(f)                                                                            \
	if (lib && !(pq.f = (__typeof__(pq.f))dp_library_symbol(lib, "libpq", #f, err, errlen))) \
		lib = NULL;
	PQ_FUNCTIONS(PQ_RESOLVE)
	loaded = lib != NULL;
	return loaded ? 0 : -1;
}

struct pg_store {
	struct store base;
	PGconn *db;
	char *table, *history_table, *schema; /* quoted identifiers, owned */
	char *lock_key;                       /* "dpone:" SCHEMA.TABLE ":" JOB */
};

static int
pg_fail(struct pg_store *p, PGresult *res, const char *what, char *err, size_t errlen)
{
	const char *msg = res ? pq.PQresultErrorMessage(res) : pq.PQerrorMessage(p->db);
	snprintf(err, errlen, "state database: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
	pq.PQclear(res);
	return DP_EXIT_STATE;
}

/* Run SQL with text parameters; the result, or NULL after pg_fail. */
static PGresult *
run(struct pg_store *p, const char *sql, int n, const char *const *params, const char *what, char *err, size_t errlen)
{
	PGresult *res = pq.PQexecParams(p->db, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = pq.PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	pg_fail(p, res, what, err, errlen);
	return NULL;
}

/* SQL without parameters, possibly several statements. */
static int
exec_sql(struct pg_store *p, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *res = pq.PQexec(p->db, sql);
	if (pq.PQresultStatus(res) != PGRES_COMMAND_OK && pq.PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_fail(p, res, what, err, errlen);
	pq.PQclear(res);
	return 0;
}

static void
quiet_notice(void *arg, const char *message)
{
	(void)arg, (void)message; /* "already exists, skipping" and the like */
}

static int
tables_exist(struct pg_store *p)
{
	const char *names[] = {p->table, p->history_table};
	PGresult *res = pq.PQexecParams(p->db, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", 2,
	                                NULL, names, NULL, NULL, 0);
	int yes = pq.PQresultStatus(res) == PGRES_TUPLES_OK && pq.PQntuples(res) == 1 &&
	          !strcmp(pq.PQgetvalue(res, 0, 0), "t");
	pq.PQclear(res);
	return yes;
}

static int
create_tables(struct pg_store *p, char *err, size_t errlen)
{
	if (tables_exist(p))
		return 0;
	char *ddl = dp_strfmt("CREATE SCHEMA IF NOT EXISTS %s;"
	                      "CREATE TABLE IF NOT EXISTS %s (job text PRIMARY KEY, run_id text, watermark text,"
	                      " record json, lease json, updated_at timestamptz NOT NULL DEFAULT now());"
	                      "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, job text NOT NULL, run_id text,"
	                      " kind text NOT NULL, watermark_before text, watermark_after text, entry json NOT NULL,"
	                      " committed_at timestamptz NOT NULL DEFAULT now())",
	                      p->schema, p->table, p->history_table);
	/* Two first runs may create the tables at once: serialise that too. */
	int rc = exec_sql(p, "BEGIN", "begin", err, errlen);
	if (!rc) {
		const char *key[] = {"dpone:ddl"};
		PGresult *res = run(p, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, key, "lock", err, errlen);
		rc = res ? 0 : DP_EXIT_STATE;
		pq.PQclear(res);
	}
	if (!rc)
		rc = exec_sql(p, ddl, "create the state tables", err, errlen);
	if (!rc)
		rc = exec_sql(p, "COMMIT", "commit", err, errlen);
	else
		pq.PQclear(pq.PQexec(p->db, "ROLLBACK"));
	free(ddl);
	return rc;
}

static json_t *
json_column(PGresult *res, int col)
{
	if (!pq.PQntuples(res) || pq.PQgetisnull(res, 0, col))
		return NULL;
	json_t *v = json_loads(pq.PQgetvalue(res, 0, col), 0, NULL);
	if (v && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

static int
select_state(struct pg_store *p, struct job_state *out, int for_update, char *err, size_t errlen)
{
	char *sql =
		dp_strfmt("SELECT record, lease FROM %s WHERE job = $1%s", p->table, for_update ? " FOR UPDATE" : "");
	const char *params[] = {p->base.job};
	PGresult *res = run(p, sql, 1, params, "read the state", err, errlen);
	free(sql);
	if (!res)
		return DP_EXIT_STATE;
	out->record = json_column(res, 0);
	out->lease = json_column(res, 1);
	pq.PQclear(res);
	return 0;
}

static int
pg_read(struct store *s, struct job_state *out, char *err, size_t errlen)
{
	return select_state((struct pg_store *)s, out, 0, err, errlen);
}

static char *
dump_or_null(json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* The job's newest history entry and its id (inside the update's
 * transaction, under its lock); *last NULL when there is none. */
static int
last_history(struct pg_store *p, json_t **last, char **id, char *err, size_t errlen)
{
	char *sql = dp_strfmt("SELECT id, entry FROM %s WHERE job = $1 ORDER BY id DESC LIMIT 1", p->history_table);
	const char *params[] = {p->base.job};
	PGresult *res = run(p, sql, 1, params, "read the history", err, errlen);
	free(sql);
	if (!res)
		return DP_EXIT_STATE;
	*last = NULL;
	*id = NULL;
	if (pq.PQntuples(res) == 1) {
		*id = dp_xstrdup(pq.PQgetvalue(res, 0, 0));
		*last = json_loads(pq.PQgetvalue(res, 0, 1), 0, NULL);
	}
	pq.PQclear(res);
	return 0;
}

static int
append_history(struct pg_store *p, json_t *history, char *err, size_t errlen)
{
	char *entry = dump_or_null(history);
	char *before = dump_or_null(json_object_get(history, "watermark_before"));
	char *after = dump_or_null(json_object_get(history, "watermark_after"));
	const char *hp[] = {p->base.job,
	                    json_string_value(json_object_get(history, "run_id")),
	                    json_string_value(json_object_get(history, "kind")),
	                    before,
	                    after,
	                    entry};
	char *sql = dp_strfmt("INSERT INTO %s (job, run_id, kind, watermark_before, watermark_after, entry) "
	                      "VALUES ($1, $2, $3, $4, $5, $6)",
	                      p->history_table);
	PGresult *res = run(p, sql, 6, hp, "write the history", err, errlen);
	int rc = res ? 0 : DP_EXIT_STATE;
	pq.PQclear(res);
	free(sql);
	free(entry);
	free(before);
	free(after);
	return rc;
}

/* Appended, or folded into the newest entry (history_fold). */
static int
write_history(struct pg_store *p, json_t *history, char *err, size_t errlen)
{
	json_t *last;
	char *id;
	int rc = last_history(p, &last, &id, err, errlen);
	if (rc)
		return rc;
	json_t *folded = history_fold(last, history);
	if (folded) {
		char *entry = dump_or_null(folded);
		const char *fp[] = {id, entry};
		char *sql = dp_strfmt("UPDATE %s SET entry = $2 WHERE id = $1", p->history_table);
		PGresult *res = run(p, sql, 2, fp, "write the history", err, errlen);
		rc = res ? 0 : DP_EXIT_STATE;
		pq.PQclear(res);
		free(sql);
		free(entry);
	} else {
		rc = append_history(p, history, err, errlen);
	}
	json_decref(folded);
	json_decref(last);
	free(id);
	return rc;
}

static int
write_state(struct pg_store *p, struct job_state *st, json_t *history, char *err, size_t errlen)
{
	json_t *wm = json_object_get(json_object_get(st->record, "watermark"), "value");
	char *record = dump_or_null(st->record), *lease = dump_or_null(st->lease), *wm_text = dump_or_null(wm);
	const char *params[] = {p->base.job, json_string_value(json_object_get(st->record, "run_id")), wm_text, record,
	                        lease};
	char *sql = dp_strfmt("INSERT INTO %s (job, run_id, watermark, record, lease) VALUES ($1, $2, $3, $4, $5) "
	                      "ON CONFLICT (job) DO UPDATE SET run_id = $2, watermark = $3, record = $4, lease = $5, "
	                      "updated_at = now()",
	                      p->table);
	PGresult *res = run(p, sql, 5, params, "write the state", err, errlen);
	free(sql);
	int rc = res ? 0 : DP_EXIT_STATE;
	pq.PQclear(res);
	if (!rc && history)
		rc = write_history(p, history, err, errlen);
	free(record);
	free(lease);
	free(wm_text);
	return rc;
}

static int
pg_update(struct store *s, state_update_fn fn, void *ctx, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	struct job_state st = {0};
	json_t *history = NULL;
	int rc = exec_sql(p, "BEGIN", "begin", err, errlen);
	if (!rc) {
		const char *key[] = {p->lock_key};
		PGresult *res =
			run(p, "SELECT pg_advisory_xact_lock(hashtext($1))", 1, key, "lock the job", err, errlen);
		rc = res ? 0 : DP_EXIT_STATE;
		pq.PQclear(res);
	}
	if (!rc)
		rc = select_state(p, &st, 1, err, errlen);
	if (!rc)
		rc = fn(&st, &history, ctx, err, errlen);
	if (!rc)
		rc = write_state(p, &st, history, err, errlen);
	if (!rc)
		rc = exec_sql(p, "COMMIT", "commit", err, errlen);
	else
		pq.PQclear(pq.PQexec(p->db, "ROLLBACK"));
	job_state_clear(&st);
	json_decref(history);
	return rc;
}

static int
pg_history(struct store *s, json_t **out, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char *sql = dp_strfmt("SELECT entry FROM %s WHERE job = $1 ORDER BY id", p->history_table);
	const char *params[] = {p->base.job};
	PGresult *res = run(p, sql, 1, params, "read the history", err, errlen);
	free(sql);
	if (!res)
		return DP_EXIT_STATE;
	*out = json_array();
	for (int i = 0; i < pq.PQntuples(res); i++)
		json_array_append_new(*out, json_loads(pq.PQgetvalue(res, i, 0), 0, NULL) ?: json_null());
	pq.PQclear(res);
	return 0;
}

static void
pg_close(struct store *s)
{
	struct pg_store *p = (struct pg_store *)s;
	free(p->table);
	free(p->history_table);
	free(p->schema);
	if (p->db)
		pq.PQfinish(p->db);
	free(p->lock_key);
	free(p->base.job);
	free(p);
}

/* The server's clock and whether this login may write the state tables. */
static int
pg_probe(struct store *s, json_t *out, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char *sql = dp_strfmt(
		"SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), "
		"has_table_privilege('%s', 'SELECT, INSERT, UPDATE') AND has_table_privilege('%s', 'INSERT'), "
		"current_setting('server_version')",
		p->table, p->history_table);
	PGresult *res = run(p, sql, 0, NULL, "check the state tables", err, errlen);
	free(sql);
	if (!res)
		return DP_EXIT_STATE;
	char lib[32];
	snprintf(lib, sizeof lib, "libpq %d", pq.PQlibVersion());
	json_object_set_new(out, "library", json_string(lib));
	json_object_set_new(out, "server_version", json_string(pq.PQgetvalue(res, 0, 2)));
	json_object_set_new(out, "server_utc", json_string(pq.PQgetvalue(res, 0, 0)));
	int writable = !strcmp(pq.PQgetvalue(res, 0, 1), "t");
	json_object_set_new(out, "writable", json_boolean(writable));
	pq.PQclear(res);
	if (!writable) {
		snprintf(err, errlen, "this login may read but not write the state tables (grant INSERT, UPDATE)");
		return DP_EXIT_STATE;
	}
	return 0;
}

/* ---- key indexes: SCHEMA.TABLE_keys, 1 MiB bytea chunks ---- */

#define KEY_CHUNK (1 << 20)

static char *
keys_table(const struct pg_store *p)
{
	/* p->table is "schema"."table": the keys table sits beside it. */
	size_t n = strlen(p->table);
	return dp_strfmt("%.*s_keys\"", (int)(n - 1), p->table);
}

static int
pg_put_keys(struct store *s, const char *path, const char *name, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char *table = keys_table(p);
	char *ddl = dp_strfmt("CREATE TABLE IF NOT EXISTS %s (job text NOT NULL, name text NOT NULL, seq int NOT NULL,"
	                      " chunk bytea NOT NULL, PRIMARY KEY (job, name, seq))",
	                      table);
	char *ins = dp_strfmt("INSERT INTO %s (job, name, seq, chunk) VALUES ($1, $2, $3, $4)", table);
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	char *chunk = dp_xmalloc(KEY_CHUNK);
	if (fd < 0) {
		snprintf(err, errlen, "storing the key index: %s: %s", path, strerror(errno));
		rc = DP_EXIT_STATE;
	}
	if (!rc)
		rc = exec_sql(p, "BEGIN", "begin", err, errlen);
	if (!rc)
		rc = exec_sql(p, ddl, "create the key index table", err, errlen);
	for (int seq = 0; !rc; seq++) {
		ssize_t n = 0, got;
		while (n < KEY_CHUNK && (got = read(fd, chunk + n, (size_t)(KEY_CHUNK - n))) > 0)
			n += got;
		if (n == 0)
			break;
		char seqtext[16];
		snprintf(seqtext, sizeof seqtext, "%d", seq);
		const char *vals[4] = {p->base.job, name, seqtext, chunk};
		int lens[4] = {0, 0, 0, (int)n}, formats[4] = {0, 0, 0, 1};
		PGresult *res = pq.PQexecParams(p->db, ins, 4, NULL, vals, lens, formats, 0);
		if (pq.PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = pg_fail(p, res, "store the key index", err, errlen);
		else
			pq.PQclear(res);
	}
	if (!rc)
		rc = exec_sql(p, "COMMIT", "commit", err, errlen);
	else
		pq.PQclear(pq.PQexec(p->db, "ROLLBACK"));
	if (fd >= 0)
		close(fd);
	free(chunk);
	free(ins);
	free(ddl);
	free(table);
	return rc;
}

/* Row by row (single-row mode): memory is one chunk, whatever the index. */
static int
pg_get_keys(struct store *s, const char *name, int fd, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char *table = keys_table(p);
	char *sql = dp_strfmt("SELECT chunk FROM %s WHERE job = $1 AND name = $2 ORDER BY seq", table);
	const char *vals[2] = {p->base.job, name};
	int rc = 0;
	if (!pq.PQsendQueryParams(p->db, sql, 2, NULL, vals, NULL, NULL, 1) || !pq.PQsetSingleRowMode(p->db))
		rc = pg_fail(p, NULL, "read the key index", err, errlen);
	PGresult *res;
	while (!rc && (res = pq.PQgetResult(p->db))) {
		ExecStatusType st = pq.PQresultStatus(res);
		if (st == PGRES_SINGLE_TUPLE) {
			const char *data = pq.PQgetvalue(res, 0, 0);
			size_t n = (size_t)pq.PQgetlength(res, 0, 0);
			for (size_t done = 0; done < n;) {
				ssize_t w = write(fd, data + done, n - done);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					snprintf(err, errlen, "writing the key index: %s", strerror(errno));
					rc = DP_EXIT_FAILURE;
					break;
				}
				done += (size_t)w;
			}
			pq.PQclear(res);
		} else if (st != PGRES_TUPLES_OK) {
			rc = pg_fail(p, res, "read the key index", err, errlen);
		} else {
			pq.PQclear(res);
		}
	}
	while (rc && (res = pq.PQgetResult(p->db)))
		pq.PQclear(res);
	free(sql);
	free(table);
	return rc;
}

static int
pg_drop_keys(struct store *s, const char *keep, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	char *table = keys_table(p);
	char *sql = dp_strfmt("DELETE FROM %s WHERE job = $1 AND name IS DISTINCT FROM $2", table);
	const char *name[1] = {table};
	PGresult *res = run(p, "SELECT to_regclass($1) IS NOT NULL", 1, name, "find the key index table", err, errlen);
	int rc = res ? 0 : DP_EXIT_STATE;
	int present = res && !strcmp(pq.PQgetvalue(res, 0, 0), "t");
	pq.PQclear(res);
	if (!rc && present) {
		const char *vals[2] = {p->base.job, keep};
		res = run(p, sql, 2, vals, "remove old key indexes", err, errlen);
		rc = res ? 0 : DP_EXIT_STATE;
		pq.PQclear(res);
	}
	free(sql);
	free(table);
	return rc;
}

static const struct store_ops pg_ops = {pg_read,  pg_update,   pg_history,  pg_close,
                                        pg_probe, pg_put_keys, pg_get_keys, pg_drop_keys};

static PGconn *
connect_db(const struct dp_conn *c)
{
	/* Keywords, not a conninfo string: nothing to quote, no secret in argv. */
	const char *keys[32], *vals[32];
	int n = 0;
	char port[16];
	snprintf(port, sizeof port, "%d", c->port ? c->port : 5432);
	keys[n] = "host", vals[n++] = c->host;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "user", vals[n++] = c->user;
	keys[n] = "password", vals[n++] = c->password;
	keys[n] = "dbname", vals[n++] = c->database;
	keys[n] = "application_name", vals[n++] = "dpone-state";
	keys[n] = "connect_timeout", vals[n++] = "10";
	const char *k;
	json_t *v;
	json_object_foreach(c->params, k, v) {
		if (n < 30 && json_is_string(v)) {
			keys[n] = k;
			vals[n++] = json_string_value(v);
		}
	}
	keys[n] = NULL;
	vals[n] = NULL;
	return pq.PQconnectdbParams(keys, vals, 0);
}

/* A quoted identifier in malloc'd memory. */
static char *
quote_ident(PGconn *db, const char *name)
{
	char *q = pq.PQescapeIdentifier(db, name, strlen(name));
	char *out = dp_xstrdup(q ? q : "\"\"");
	pq.PQfreemem(q);
	return out;
}

struct store *
store_pg_open(const struct dp_conn *conn, const char *schema, const char *table, const char *job, int *code, char *err,
              size_t errlen)
{
	if (load_libpq(err, errlen) < 0) {
		*code = DP_EXIT_STATE;
		return NULL;
	}
	struct pg_store *p = dp_xcalloc(1, sizeof *p);
	p->base.ops = &pg_ops;
	p->base.job = dp_xstrdup(job);
	p->db = connect_db(conn);
	if (pq.PQstatus(p->db) != CONNECTION_OK) {
		const char *msg = pq.PQerrorMessage(p->db);
		snprintf(err, errlen, "cannot connect to the state database %s (%s): %.*s", conn->id, conn->origin,
		         (int)strcspn(msg, "\n"), msg);
		*code = DP_EXIT_STATE;
		pg_close(&p->base);
		return NULL;
	}
	pq.PQsetNoticeProcessor(p->db, quiet_notice, NULL);
	p->schema = quote_ident(p->db, schema);
	char *t = quote_ident(p->db, table);
	char *history = dp_strfmt("%s_history", table);
	char *h = quote_ident(p->db, history);
	p->table = dp_strfmt("%s.%s", p->schema, t);
	p->history_table = dp_strfmt("%s.%s", p->schema, h);
	p->lock_key = dp_strfmt("dpone:%s.%s:%s", schema, table, job);
	free(t);
	free(h);
	free(history);
	if ((*code = create_tables(p, err, errlen))) {
		pg_close(&p->base);
		return NULL;
	}
	return &p->base;
}
