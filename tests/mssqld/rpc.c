/*
 * rpc.c: RPC requests (sp_executesql; the prepared statements ODBC and
 * JDBC drivers use: sp_prepare, sp_execute, sp_prepexec, sp_unprepare;
 * named procedures, [MS-TDS] 2.2.6.6) and bulk load (INSERT BULK then a BULK LOAD message, 2.2.6.1),
 * which is what freebcp sends to copy rows in.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mssqld.h"

static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Skip ALL_HEADERS at the start of a batch or RPC payload. */
const unsigned char *
skip_all_headers(const unsigned char *p, const unsigned char *end)
{
	if (end - p >= 4) {
		uint32_t total = get_u32(p);
		if (total >= 4 && total <= (uint32_t)(end - p))
			return p + total;
	}
	return p;
}

struct rpc_param {
	char name[130];
	struct stype type;
	struct value v;
};

static int
read_bvarchar(const unsigned char **pp, const unsigned char *end, char *out, size_t len)
{
	const unsigned char *p = *pp;
	if (p >= end)
		return -1;
	size_t n = (size_t)*p++ * 2;
	if ((size_t)(end - p) < n)
		return -1;
	char *s = utf16_to_utf8(p, n, NULL);
	snprintf(out, len, "%s", s);
	free(s);
	*pp = p + n;
	return 0;
}

/* Declarations "@a int, @b nvarchar(10)" into name/type pairs. */
static int
parse_declarations(const char *decl, struct rpc_param *params, int max)
{
	struct batch b;
	struct sqlerr e;
	char *sql = malloc(strlen(decl) + 16);
	sprintf(sql, "DECLARE %s", decl);
	int n = 0;
	if (parse_batch(sql, &b, &e) == 0 && b.n == 1 && b.stmts[0].kind == S_DECLARE) {
		for (int i = 0; i < b.stmts[0].nvars && n < max; i++, n++) {
			snprintf(params[n].name, sizeof params[n].name, "%s", b.stmts[0].vars[i]);
			params[n].type = b.stmts[0].var_types[i];
		}
		batch_free(&b);
	} else {
		n = -1;
	}
	free(sql);
	return n;
}

static void
finish_rpc(struct conn *c, int failed)
{
	tok_rpc_end(c, failed);
	tds_flush(c, 1);
}

static int
run_named_proc(struct conn *c, const char *name, struct rpc_param *ps, int np)
{
	struct stmt s;
	struct sqlerr e = {0};
	memset(&s, 0, sizeof s);
	s.kind = S_EXEC;
	s.name = (char *)name;
	s.args = calloc((size_t)np + 1, sizeof *s.args);
	s.arg_names = calloc((size_t)np + 1, sizeof *s.arg_names);
	s.nargs = np;
	for (int i = 0; i < np; i++) {
		struct expr *x = calloc(1, sizeof *x);
		x->kind = E_LIT;
		x->lit = ps[i].v;
		x->type = ps[i].type;
		s.args[i] = x;
		s.arg_names[i] = ps[i].name[0] ? ps[i].name : NULL;
	}
	int rc = cdc_exec_proc(c, &s, &e);
	if (rc)
		tok_error(c, &e);
	cdc_statement_end(c);
	for (int i = 0; i < np; i++)
		free(s.args[i]); /* the values belong to ps */
	free(s.args);
	free(s.arg_names);
	finish_rpc(c, rc != 0);
	return 0;
}

static void
rpc_fail(struct conn *c, int number, const char *msg)
{
	struct sqlerr e;
	sqlerr_set(&e, number, 16, "%s", msg);
	tok_error(c, &e);
	finish_rpc(c, 1);
}

/* Run stmt with its declarations decl ("@a int, @b nvarchar(10)") bound to
 * the values vals[0..nv): by name, else by position; the values are taken. */
static int
execute_with(struct conn *c, const char *stmt, const char *decl, struct rpc_param *vals, int nv)
{
	struct rpc_param params[64];
	int nd = decl && *decl ? parse_declarations(decl, params, 64) : 0;
	struct sqlerr e;
	if (nd < 0) {
		sqlerr_set(&e, 102, 15, "Incorrect syntax near '%.60s'.", decl);
		tok_error(c, &e);
		finish_rpc(c, 1);
		return 0;
	}
	c->vars = calloc((size_t)nd + 1, sizeof *c->vars);
	c->nvars = nd;
	for (int i = 0; i < nd; i++) {
		struct variable *v = &c->vars[i];
		snprintf(v->name, sizeof v->name, "%s", params[i].name);
		v->type = params[i].type;
		struct rpc_param *src = NULL;
		for (int k = 0; k < nv; k++)
			if (!strcasecmp(vals[k].name, params[i].name))
				src = &vals[k];
		if (!src && i < nv && !vals[i].name[0])
			src = &vals[i];
		if (!src)
			continue;
		v->v = src->v;
		memset(&src->v, 0, sizeof src->v);
		if (value_convert(&v->v, &src->type, &v->type, &e)) {
			tok_error(c, &e);
			finish_rpc(c, 1);
			return 0;
		}
	}
	return exec_batch(c, stmt);
}

static struct prepared *
find_prepared(struct conn *c, const struct rpc_param *handle)
{
	for (int i = 0; handle->v.kind == V_INT && i < c->nprepared; i++)
		if (c->prepared[i].handle == handle->v.i)
			return &c->prepared[i];
	return NULL;
}

/* Keep decl and stmt under a new handle, to return as the RPC's output. */
static struct prepared *
prepare(struct conn *c, const char *decl, const char *stmt)
{
	c->prepared = realloc(c->prepared, (size_t)(c->nprepared + 1) * sizeof *c->prepared);
	struct prepared *p = &c->prepared[c->nprepared++];
	*p = (struct prepared){++c->next_handle, strdup(decl ? decl : ""), strdup(stmt)};
	c->rpc_handle_out = p->handle;
	return p;
}

void
rpc_session_end(struct conn *c)
{
	for (int i = 0; i < c->nprepared; i++) {
		free(c->prepared[i].decl);
		free(c->prepared[i].sql);
	}
	free(c->prepared);
	c->prepared = NULL;
	c->nprepared = 0;
}

/* The procedures of prepared statements, by id ([MS-TDS] 2.2.6.6) and name. */
enum { PROC_EXECUTESQL = 10, PROC_PREPARE = 11, PROC_EXECUTE = 12, PROC_PREPEXEC = 13, PROC_UNPREPARE = 15 };
static const struct {
	int id;
	const char *name;
} procs[] = {{PROC_EXECUTESQL, "sp_executesql"},
             {PROC_PREPARE, "sp_prepare"},
             {PROC_EXECUTE, "sp_execute"},
             {PROC_PREPEXEC, "sp_prepexec"},
             {PROC_UNPREPARE, "sp_unprepare"}};

/* How often each was called, server-wide (control: rpc-counts). */
static unsigned long proc_calls[sizeof procs / sizeof *procs];
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;

static int
proc_id(int procid, const char *name)
{
	const char *base = !strncasecmp(name, "sys.", 4) ? name + 4 : name;
	for (size_t i = 0; i < sizeof procs / sizeof *procs; i++)
		if (procid == procs[i].id || !strcasecmp(base, procs[i].name)) {
			pthread_mutex_lock(&calls_lock);
			proc_calls[i]++;
			pthread_mutex_unlock(&calls_lock);
			return procs[i].id;
		}
	return 0;
}

void
rpc_counts(char *out, size_t len)
{
	size_t at = 0;
	pthread_mutex_lock(&calls_lock);
	for (size_t i = 0; i < sizeof procs / sizeof *procs && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%s=%lu", i ? " " : "", procs[i].name, proc_calls[i]);
	pthread_mutex_unlock(&calls_lock);
}

static int
text_param(const struct rpc_param *ps, int np, int i)
{
	return i < np && (ps[i].v.kind == V_TEXT || ps[i].v.kind == V_NULL);
}

/* sp_prepare, sp_execute, sp_prepexec, sp_unprepare. */
static int
prepared_rpc(struct conn *c, int id, struct rpc_param *ps, int np)
{
	if (id == PROC_PREPARE || id == PROC_PREPEXEC) {
		/* @handle OUTPUT, @params, @stmt[, @options | values...] */
		if (!text_param(ps, np, 1) || !text_param(ps, np, 2) || ps[2].v.kind != V_TEXT) {
			rpc_fail(c, 201, "Procedure or function expects parameter '@stmt', which was not supplied.");
			return 0;
		}
		struct prepared *p = prepare(c, ps[1].v.kind == V_TEXT ? ps[1].v.text : "", ps[2].v.text);
		if (id == PROC_PREPARE) {
			finish_rpc(c, 0);
			return 0;
		}
		return execute_with(c, p->sql, p->decl, ps + 3, np - 3);
	}
	struct prepared *p = np >= 1 ? find_prepared(c, &ps[0]) : NULL;
	if (!p) {
		rpc_fail(c, 8179, "Could not find prepared statement with handle.");
		return 0;
	}
	if (id == PROC_EXECUTE) {
		char *sql = strdup(p->sql), *decl = strdup(p->decl); /* the batch may unprepare it */
		int rc = execute_with(c, sql, decl, ps + 1, np - 1);
		free(sql);
		free(decl);
		return rc;
	}
	free(p->decl);
	free(p->sql);
	*p = c->prepared[--c->nprepared];
	finish_rpc(c, 0);
	return 0;
}

int
exec_rpc(struct conn *c, const unsigned char *data, size_t len)
{
	const unsigned char *end = data + len, *p = skip_all_headers(data, end);
	char name[260] = "";
	int procid = 0;
	if (end - p < 4)
		return -1;
	unsigned namelen = p[0] | p[1] << 8;
	p += 2;
	if (namelen == 0xFFFF) {
		procid = p[0] | p[1] << 8;
		p += 2;
	} else {
		if ((size_t)(end - p) < namelen * 2u)
			return -1;
		char *s = utf16_to_utf8(p, namelen * 2u, NULL);
		snprintf(name, sizeof name, "%s", s);
		free(s);
		p += namelen * 2u;
	}
	p += 2; /* option flags */
	struct rpc_param ps[64];
	int np = 0;
	while (p < end && np < 64 && *p != 0x80 && *p != 0xFF) {
		struct rpc_param *rp = &ps[np];
		memset(rp, 0, sizeof *rp);
		int plp;
		if (read_bvarchar(&p, end, rp->name, sizeof rp->name) || p >= end)
			return -1;
		p++; /* status flags */
		if (wire_read_typeinfo(&p, end, &rp->type, &plp) || wire_read_value(&p, end, &rp->type, plp, &rp->v))
			return -1;
		np++;
	}
	int rc = 0;
	c->in_rpc = 1;
	int id = proc_id(procid, name);
	if (id == PROC_EXECUTESQL) {
		if (np < 1 || ps[0].v.kind != V_TEXT)
			rpc_fail(c, 201,
			         "Procedure or function 'sp_executesql' expects parameter '@statement', which was not "
			         "supplied.");
		else
			rc = execute_with(c, ps[0].v.text, np >= 2 && ps[1].v.kind == V_TEXT ? ps[1].v.text : NULL,
			                  ps + 2, np - 2);
	} else if (id) {
		rc = prepared_rpc(c, id, ps, np);
	} else if (procid) {
		struct sqlerr e;
		sqlerr_set(&e, 2812, 16, "Could not find stored procedure 'procedure id %d'.", procid);
		tok_error(c, &e);
		finish_rpc(c, 1);
	} else {
		rc = run_named_proc(c, name, ps, np);
	}
	c->in_rpc = 0;
	for (int i = 0; i < np; i++)
		value_clear(&ps[i].v);
	return rc;
}

/* ---- bulk load ---- */

int
exec_insert_bulk_begin(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct table_info t;
	if (catalog_table(c->db, s->from.schema, s->from.name, &t) || t.is_view) {
		sqlerr_set(e, 208, 16, "Invalid object name '%s'.", s->from.name);
		return -1;
	}
	table_info_free(&c->bulk_table);
	c->bulk_table = t;
	c->bulk_ready = 1;
	return 0;
}

static int
bulk_fail(struct conn *c, const char *msg)
{
	struct sqlerr e;
	sqlerr_set(&e, 4866, 16, "The bulk load failed. %s", msg);
	tok_error(c, &e);
	tok_done(c, 0xFD, DONE_ERROR, 0, 0);
	c->bulk_ready = 0;
	return tds_flush(c, 1);
}

int
exec_bulk(struct conn *c, const unsigned char *data, size_t len)
{
	const unsigned char *p = data, *end = data + len;
	if (!c->bulk_ready)
		return bulk_fail(c, "No INSERT BULK statement came first.");
	struct table_info *t = &c->bulk_table;
	if (p >= end || *p != 0x81)
		return bulk_fail(c, "The data stream has no column metadata.");
	p++;
	int ncols = p[0] | p[1] << 8;
	p += 2;
	struct stype types[1024];
	int plps[1024], target[1024];
	if (ncols > 1024)
		return bulk_fail(c, "Too many columns.");
	for (int i = 0; i < ncols; i++) {
		char name[130];
		if (end - p < 6)
			return bulk_fail(c, "Truncated column metadata.");
		p += 6; /* user type, flags */
		if (wire_read_typeinfo(&p, end, &types[i], &plps[i]) || read_bvarchar(&p, end, name, sizeof name))
			return bulk_fail(c, "Unsupported column metadata.");
		target[i] = -1;
		for (int k = 0; k < t->ncols; k++)
			if (!strcasecmp(t->cols[k].name, name))
				target[i] = k;
		if (target[i] < 0)
			return bulk_fail(c, "A column of the data stream is not in the table.");
	}
	char *names = sqlite3_mprintf(""), *marks = sqlite3_mprintf("");
	for (int i = 0; i < ncols; i++) {
		list_add(&names, "\"%w\"", t->cols[target[i]].name);
		list_add(&marks, "?%d", i + 1);
	}
	char sname[300];
	storage_name(t->schema, t->name, sname, sizeof sname);
	char *sql = sqlite3_mprintf("INSERT INTO \"%w\" (%s) VALUES (%s)", sname, names, marks);
	sqlite3_free(names);
	sqlite3_free(marks);
	sqlite3_stmt *st = NULL;
	int prc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (prc != SQLITE_OK)
		return bulk_fail(c, sqlite3_errmsg(c->db));
	sqlite3_exec(c->db, "SAVEPOINT tds_bulk", NULL, NULL, NULL);
	uint64_t rows = 0;
	struct sqlerr e = {0};
	int failed = 0;
	while (p < end && *p == 0xD1 && !failed) {
		p++;
		sqlite3_reset(st);
		for (int i = 0; i < ncols; i++) {
			struct value v;
			struct column_info *col = &t->cols[target[i]];
			if (wire_read_value(&p, end, &types[i], plps[i], &v)) {
				sqlerr_set(&e, 4866, 16, "The bulk load failed. Row %llu has a malformed value.",
				           (unsigned long long)rows + 1);
				failed = 1;
				break;
			}
			if (v.kind == V_NULL && !col->nullable) {
				sqlerr_set(&e, 515, 16,
				           "Cannot insert the value NULL into column '%s', table '%s.%s.%s'; column "
				           "does not allow nulls. INSERT fails.",
				           col->name, c->database, t->schema, t->name);
				failed = 1;
			} else if (value_convert(&v, &types[i], &col->type, &e)) {
				failed = 1;
			} else {
				value_bind(st, i + 1, &v, &col->type);
			}
			value_clear(&v);
			if (failed)
				break;
		}
		if (!failed && sqlite3_step(st) != SQLITE_DONE) {
			sqlerr_set(
				&e, 2627, 14,
				"Violation of PRIMARY KEY constraint. Cannot insert duplicate key in object '%s.%s'.",
				t->schema, t->name);
			failed = 1;
		}
		rows += !failed;
	}
	sqlite3_finalize(st);
	c->bulk_ready = 0;
	if (failed) {
		sqlite3_exec(c->db, "ROLLBACK TO tds_bulk; RELEASE tds_bulk", NULL, NULL, NULL);
		tok_error(c, &e);
		tok_done(c, 0xFD, DONE_ERROR, 0, 0);
	} else {
		sqlite3_exec(c->db, "RELEASE tds_bulk", NULL, NULL, NULL);
		cdc_statement_end(c);
		tok_done(c, 0xFD, DONE_COUNT, 0xF0, rows);
	}
	return tds_flush(c, 1);
}
