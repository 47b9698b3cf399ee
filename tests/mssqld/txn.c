/*
 * txn.c: the server's open transactions, as SQL Server's DMVs and
 * MIN_ACTIVE_ROWVERSION() see them.
 *
 * A session's explicit transaction (BEGIN TRAN) is registered here with
 * its begin time and the first rowversion it allocated; its INSERTs are
 * held in the session (exec.c) and written when it commits, so that other
 * sessions go on writing meanwhile and never see them before: what read
 * committed snapshot isolation shows of a transaction that commits late.
 * sys.dm_tran_active_transactions and sys.dm_tran_database_transactions
 * are views over the eponymous virtual table tds_dm_tran, which reads this
 * registry; without VIEW SERVER STATE (control: permission
 * view-server-state off) reading it is error 300, as on SQL Server.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "mssqld.h"

struct open_txn {
	const struct conn *c; /* the session; NULL: free slot */
	long long id;
	int database_id;
	double begin; /* epoch seconds, UTC */
	uint64_t first_rv;
};

static pthread_mutex_t txn_lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_txn txns[256];
static long long txn_ids = 100000;
static int server_state_denied;

void
txn_begin(const struct conn *c)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	pthread_mutex_lock(&txn_lock);
	for (size_t i = 0; i < sizeof txns / sizeof *txns; i++)
		if (!txns[i].c) {
			txns[i] = (struct open_txn){c, ++txn_ids, database_id(c->database),
			                            (double)tv.tv_sec + tv.tv_usec / 1e6, 0};
			break;
		}
	pthread_mutex_unlock(&txn_lock);
}

void
txn_end(const struct conn *c)
{
	pthread_mutex_lock(&txn_lock);
	for (size_t i = 0; i < sizeof txns / sizeof *txns; i++)
		if (txns[i].c == c)
			txns[i].c = NULL;
	pthread_mutex_unlock(&txn_lock);
}

uint64_t
txn_rowversion(const struct conn *c)
{
	uint64_t rv = next_rowversion();
	pthread_mutex_lock(&txn_lock);
	for (size_t i = 0; i < sizeof txns / sizeof *txns; i++)
		if (txns[i].c == c && c && !txns[i].first_rv)
			txns[i].first_rv = rv;
	pthread_mutex_unlock(&txn_lock);
	return rv;
}

uint64_t
min_active_rowversion(void)
{
	uint64_t min = current_rowversion() + 1;
	pthread_mutex_lock(&txn_lock);
	for (size_t i = 0; i < sizeof txns / sizeof *txns; i++)
		if (txns[i].c && txns[i].first_rv && txns[i].first_rv < min)
			min = txns[i].first_rv;
	pthread_mutex_unlock(&txn_lock);
	return min;
}

void
txn_set_server_state_denied(int denied)
{
	pthread_mutex_lock(&txn_lock);
	server_state_denied = denied;
	pthread_mutex_unlock(&txn_lock);
}

/* ---- tds_dm_tran: an eponymous virtual table, one row per open transaction ---- */

struct dm_cursor {
	sqlite3_vtab_cursor base;
	struct open_txn rows[256];
	int n, at;
};

static int
dm_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
	(void)aux, (void)argc, (void)argv, (void)err;
	int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(transaction_id INTEGER, database_id INTEGER, "
	                                  "begin_time TEXT)");
	if (rc != SQLITE_OK)
		return rc;
	*out = sqlite3_malloc(sizeof **out);
	if (!*out)
		return SQLITE_NOMEM;
	memset(*out, 0, sizeof **out);
	return SQLITE_OK;
}

static int
dm_disconnect(sqlite3_vtab *vt)
{
	sqlite3_free(vt);
	return SQLITE_OK;
}

static int
dm_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
	(void)vt;
	info->estimatedCost = 10;
	return SQLITE_OK;
}

static int
dm_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	(void)vt;
	struct dm_cursor *cur = calloc(1, sizeof *cur);
	if (!cur)
		return SQLITE_NOMEM;
	*out = &cur->base;
	return SQLITE_OK;
}

static int
dm_close(sqlite3_vtab_cursor *cur)
{
	free(cur);
	return SQLITE_OK;
}

static int
dm_filter(sqlite3_vtab_cursor *base, int idx, const char *idx_str, int argc, sqlite3_value **argv)
{
	(void)idx, (void)idx_str, (void)argc, (void)argv;
	struct dm_cursor *cur = (struct dm_cursor *)base;
	pthread_mutex_lock(&txn_lock);
	int denied = server_state_denied;
	cur->n = cur->at = 0;
	for (size_t i = 0; i < sizeof txns / sizeof *txns; i++)
		if (txns[i].c)
			cur->rows[cur->n++] = txns[i];
	pthread_mutex_unlock(&txn_lock);
	if (denied) {
		sqlite3_free(base->pVtab->zErrMsg);
		base->pVtab->zErrMsg = sqlite3_mprintf(
			"300|VIEW SERVER STATE permission was denied on object 'server', database 'master'.");
		return SQLITE_ERROR;
	}
	return SQLITE_OK;
}

static int
dm_next(sqlite3_vtab_cursor *base)
{
	((struct dm_cursor *)base)->at++;
	return SQLITE_OK;
}

static int
dm_eof(sqlite3_vtab_cursor *base)
{
	struct dm_cursor *cur = (struct dm_cursor *)base;
	return cur->at >= cur->n;
}

static int
dm_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
	struct dm_cursor *cur = (struct dm_cursor *)base;
	const struct open_txn *t = &cur->rows[cur->at];
	if (col == 0) {
		sqlite3_result_int64(ctx, t->id);
	} else if (col == 1) {
		sqlite3_result_int(ctx, t->database_id);
	} else {
		/* datetime text, as the stand-in stores datetime2 (UTC: the
		 * stand-in's local clock is UTC) */
		char buf[64];
		time_t secs = (time_t)t->begin;
		struct tm tm;
		gmtime_r(&secs, &tm);
		snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%07ld", tm.tm_year + 1900, tm.tm_mon + 1,
		         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)((t->begin - (double)secs) * 1e7));
		sqlite3_result_text(ctx, buf, -1, SQLITE_TRANSIENT);
	}
	return SQLITE_OK;
}

static int
dm_rowid(sqlite3_vtab_cursor *base, sqlite3_int64 *rowid)
{
	*rowid = ((struct dm_cursor *)base)->at;
	return SQLITE_OK;
}

static sqlite3_module dm_module = {.iVersion = 0,
                                   .xConnect = dm_connect,
                                   .xBestIndex = dm_best_index,
                                   .xDisconnect = dm_disconnect,
                                   .xOpen = dm_open,
                                   .xClose = dm_close,
                                   .xFilter = dm_filter,
                                   .xNext = dm_next,
                                   .xEof = dm_eof,
                                   .xColumn = dm_column,
                                   .xRowid = dm_rowid};

void
txn_register(sqlite3 *db)
{
	sqlite3_create_module(db, "tds_dm_tran", &dm_module, NULL);
}
