/*
 * cdc.c: change data capture as SQL Server exposes it.
 *
 * sys.sp_cdc_enable_db creates cdc.change_tables, cdc.lsn_time_mapping and
 * cdc.captured_columns; sys.sp_cdc_enable_table creates cdc.<instance>_CT
 * and SQLite triggers on the source table that write one change row per
 * insert (operation 2), delete (1) and update (3 before, 4 after). Each
 * transaction gets one increasing 10-byte LSN, each change a seqval; a
 * transaction's LSN enters lsn_time_mapping when it commits, which is what
 * sys.fn_cdc_get_max_lsn() reads. sys.sp_cdc_cleanup_change_table moves
 * the low water mark, after which older LSNs are out of retention (313).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mssqld.h"

static void
lsn_bytes(uint64_t v, unsigned char out[10])
{
	out[0] = out[1] = 0;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t
lsn_value(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = n > 8 ? n - 8 : 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static char *
lsn_hex(const unsigned char b[10])
{
	char *s = malloc(24);
	for (int i = 0; i < 10; i++)
		sprintf(s + 2 * i, "%02X", b[i]);
	return s;
}

static int
run(sqlite3 *db, const char *sql, struct sqlerr *e)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	if (e)
		sqlerr_set(e, 50000, 16, "mssqld: %s", msg ? msg : "SQLite error");
	sqlite3_free(msg);
	return -1;
}

/* ---- SQLite functions (per connection) ---- */

static void
fn_lsn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	struct conn *c = sqlite3_user_data(ctx);
	if (!c->have_lsn) {
		lsn_bytes(next_lsn(), c->cur_lsn);
		c->have_lsn = 1;
	}
	sqlite3_result_blob(ctx, c->cur_lsn, 10, SQLITE_TRANSIENT);
}

static void
fn_seq(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	struct conn *c = sqlite3_user_data(ctx);
	if (!sqlite3_value_int(argv[0]))
		c->last_seq = next_lsn();
	unsigned char b[10];
	lsn_bytes(c->last_seq, b);
	sqlite3_result_blob(ctx, b, 10, SQLITE_TRANSIENT);
}

static void
fn_mask(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	unsigned char b[128] = {0};
	int n = (argc + 7) / 8;
	/* Bit i (column ordinal i + 1) counts from the last byte, as SQL Server's mask. */
	for (int i = 0; i < argc; i++)
		if (sqlite3_value_int(argv[i]))
			b[n - 1 - i / 8] |= (unsigned char)(1u << (i % 8));
	sqlite3_result_blob(ctx, b, n ? n : 1, SQLITE_TRANSIENT);
}

static int
query_blob(sqlite3 *db, const char *sql, const char *arg, unsigned char out[10])
{
	sqlite3_stmt *st;
	int found = 0;
	memset(out, 0, 10);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_BLOB &&
	    sqlite3_column_bytes(st, 0) == 10) {
		memcpy(out, sqlite3_column_blob(st, 0), 10);
		found = 1;
	}
	sqlite3_finalize(st);
	return found;
}

static void
fn_min_lsn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	unsigned char b[10];
	query_blob(sqlite3_context_db_handle(ctx),
	           "SELECT start_lsn FROM \"cdc.change_tables\" WHERE capture_instance = ?1",
	           (const char *)sqlite3_value_text(argv[0]), b);
	sqlite3_result_blob(ctx, b, 10, SQLITE_TRANSIENT);
}

static void
fn_max_lsn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	unsigned char b[10];
	query_blob(sqlite3_context_db_handle(ctx), "SELECT max(start_lsn) FROM \"cdc.lsn_time_mapping\"", NULL, b);
	sqlite3_result_blob(ctx, b, 10, SQLITE_TRANSIENT);
}

static void
fn_step_lsn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	int delta = *(int *)sqlite3_user_data(ctx);
	if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	unsigned char b[10];
	lsn_bytes(lsn_value(sqlite3_value_blob(argv[0]), sqlite3_value_bytes(argv[0])) + (uint64_t)(int64_t)delta, b);
	sqlite3_result_blob(ctx, b, 10, SQLITE_TRANSIENT);
}

static void
fn_lsn_time(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_stmt *st;
	sqlite3_prepare_v2(sqlite3_context_db_handle(ctx),
	                   "SELECT tran_end_time FROM \"cdc.lsn_time_mapping\" WHERE start_lsn <= ?1"
	                   " ORDER BY start_lsn DESC LIMIT 1",
	                   -1, &st, NULL);
	sqlite3_bind_value(st, 1, argv[0]);
	if (st && sqlite3_step(st) == SQLITE_ROW)
		sqlite3_result_value(ctx, sqlite3_column_value(st, 0));
	else
		sqlite3_result_null(ctx);
	sqlite3_finalize(st);
}

void
cdc_register(sqlite3 *db, struct conn *c)
{
	static int plus = 1, minus = -1;
	sqlite3_create_function(db, "tds_cdc_lsn", 0, SQLITE_UTF8, c, fn_lsn, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_seq", 1, SQLITE_UTF8, c, fn_seq, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_mask", -1, SQLITE_UTF8, NULL, fn_mask, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_min_lsn", 1, SQLITE_UTF8, NULL, fn_min_lsn, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_max_lsn", 0, SQLITE_UTF8, NULL, fn_max_lsn, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_increment_lsn", 1, SQLITE_UTF8, &plus, fn_step_lsn, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_decrement_lsn", 1, SQLITE_UTF8, &minus, fn_step_lsn, NULL, NULL);
	sqlite3_create_function(db, "tds_cdc_lsn_time", 1, SQLITE_UTF8, NULL, fn_lsn_time, NULL, NULL);
}

/* A committed transaction's LSN becomes visible to fn_cdc_get_max_lsn. */
void
cdc_statement_end(struct conn *c)
{
	if (!c->have_lsn || c->in_tran)
		return;
	c->have_lsn = 0;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(
		    c->db, "INSERT OR IGNORE INTO \"cdc.lsn_time_mapping\" VALUES (?1, tds_now(), tds_now(), ?1, ?1)",
		    -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_blob(st, 1, c->cur_lsn, 10, SQLITE_TRANSIENT);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* ---- catalog of capture instances ---- */

static int
cdc_enabled(sqlite3 *db)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT value FROM __tds_meta WHERE key = 'cdc_enabled'", -1, &st, NULL);
	int on = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return on;
}

/* Register a cdc.* table in the catalog so that it can be queried. */
static void
register_table(sqlite3 *db, const char *name, const char *const *cols, int ncols)
{
	struct stmt s;
	memset(&s, 0, sizeof s);
	s.kind = S_CREATE_TABLE;
	s.from.schema = "cdc";
	s.from.name = (char *)name;
	s.defs = calloc((size_t)ncols, sizeof *s.defs);
	s.ndefs = ncols;
	for (int i = 0; i < ncols; i++) {
		const char *sp = strrchr(cols[i], ' ');
		s.defs[i].name = strndup(cols[i], (size_t)(sp - cols[i]));
		type_parse_text(sp + 1, &s.defs[i].type);
	}
	struct sqlerr e;
	catalog_create_table(db, &s, &e);
	for (int i = 0; i < ncols; i++)
		free(s.defs[i].name);
	free(s.defs);
}

static int
enable_db(struct conn *c, struct sqlerr *e)
{
	static const char *const change_tables[] = {
		"object_id int",          "source_object_id int", "capture_instance nvarchar(128)",
		"start_lsn binary(10)",   "create_date datetime", "supports_net_changes bit",
		"role_name nvarchar(128)"};
	static const char *const mapping[] = {"start_lsn binary(10)", "tran_begin_time datetime",
	                                      "tran_end_time datetime", "tran_id varbinary(10)",
	                                      "tran_begin_lsn binary(10)"};
	static const char *const captured[] = {"object_id int", "column_name nvarchar(128)", "column_id int",
	                                       "column_type nvarchar(128)", "column_ordinal int"};
	if (cdc_enabled(c->db))
		return 0;
	catalog_create_schema(c->db, "cdc", NULL);
	register_table(c->db, "change_tables", change_tables, 7);
	register_table(c->db, "lsn_time_mapping", mapping, 5);
	register_table(c->db, "captured_columns", captured, 5);
	return run(c->db,
	           "CREATE UNIQUE INDEX IF NOT EXISTS cdc_lsn ON \"cdc.lsn_time_mapping\"(start_lsn);"
	           "INSERT OR REPLACE INTO __tds_meta VALUES ('cdc_enabled', 1)",
	           e);
}

int
cdc_drop_triggers(sqlite3 *db, const struct table_info *t)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT capture_instance FROM \"cdc.change_tables\" WHERE source_object_id = ?1", -1,
	                   &st, NULL);
	sqlite3_bind_int64(st, 1, t->object_id);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		const char *ci = (const char *)sqlite3_column_text(st, 0);
		char *sql =
			sqlite3_mprintf("DROP TRIGGER IF EXISTS \"cdc_%w_ins\"; DROP TRIGGER IF EXISTS \"cdc_%w_del\";"
		                        "DROP TRIGGER IF EXISTS \"cdc_%w_upd\"",
		                        ci, ci, ci);
		run(db, sql, NULL);
		sqlite3_free(sql);
	}
	sqlite3_finalize(st);
	return 0;
}

/* The trigger bodies for one capture instance. */
static int
create_instance_triggers(sqlite3 *db, const struct table_info *t, const char *ci, struct sqlerr *e)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db,
	                   "SELECT column_name, column_type FROM \"cdc.captured_columns\" c"
	                   " JOIN \"cdc.change_tables\" t ON t.object_id = c.object_id"
	                   " WHERE t.capture_instance = ?1 ORDER BY column_ordinal",
	                   -1, &st, NULL);
	sqlite3_bind_text(st, 1, ci, -1, SQLITE_TRANSIENT);
	char *newv = sqlite3_mprintf(""), *oldv = sqlite3_mprintf(""), *changed = sqlite3_mprintf(""),
	     *all = sqlite3_mprintf("");
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		struct stype captured;
		type_parse_text((const char *)sqlite3_column_text(st, 1), &captured);
		const struct column_info *now = NULL;
		for (int i = 0; i < t->ncols; i++)
			if (!strcasecmp(t->cols[i].name, name))
				now = &t->cols[i];
		list_add(&all, "1");
		if (!now) {
			/* A captured column dropped since: NULL, never changed. */
			list_add(&newv, "NULL");
			list_add(&oldv, "NULL");
			list_add(&changed, "0");
			continue;
		}
		char from[64], to[64];
		type_format(&now->type, from, sizeof from);
		type_format(&captured, to, sizeof to);
		if (!strcmp(from, to)) {
			list_add(&newv, "NEW.\"%w\"", name);
			list_add(&oldv, "OLD.\"%w\"", name);
		} else {
			/* A type changed since: the change table keeps the captured type. */
			list_add(&newv, "tds_conv(NEW.\"%w\", '%s', '%s')", name, from, to);
			list_add(&oldv, "tds_conv(OLD.\"%w\", '%s', '%s')", name, from, to);
		}
		list_add(&changed, "OLD.\"%w\" IS NOT NEW.\"%w\"", name, name);
	}
	sqlite3_finalize(st);
	char src[300], ct[300];
	storage_name(t->schema, t->name, src, sizeof src);
	snprintf(ct, sizeof ct, "cdc.%s_CT", ci);
	char *sql = sqlite3_mprintf(
		"CREATE TRIGGER \"cdc_%w_ins\" AFTER INSERT ON \"%w\" BEGIN INSERT INTO \"%w\" VALUES"
		" (tds_cdc_lsn(), NULL, tds_cdc_seq(0), 2, tds_cdc_mask(%s), %s, 1); END;"
		"CREATE TRIGGER \"cdc_%w_del\" AFTER DELETE ON \"%w\" BEGIN INSERT INTO \"%w\" VALUES"
		" (tds_cdc_lsn(), NULL, tds_cdc_seq(0), 1, tds_cdc_mask(%s), %s, 1); END;"
		"CREATE TRIGGER \"cdc_%w_upd\" AFTER UPDATE ON \"%w\" BEGIN"
		" INSERT INTO \"%w\" VALUES (tds_cdc_lsn(), NULL, tds_cdc_seq(0), 3, tds_cdc_mask(%s), %s, 1);"
		" INSERT INTO \"%w\" VALUES (tds_cdc_lsn(), NULL, tds_cdc_seq(1), 4, tds_cdc_mask(%s), %s, 1); END;",
		ci, src, ct, all, newv, ci, src, ct, all, oldv, ci, src, ct, changed, oldv, ct, changed, newv);
	int rc = run(db, sql, e);
	sqlite3_free(sql);
	sqlite3_free(newv);
	sqlite3_free(oldv);
	sqlite3_free(changed);
	sqlite3_free(all);
	return rc;
}

int
cdc_create_triggers(sqlite3 *db, const struct table_info *t, struct sqlerr *e)
{
	sqlite3_stmt *st;
	int rc = 0;
	sqlite3_prepare_v2(db, "SELECT capture_instance FROM \"cdc.change_tables\" WHERE source_object_id = ?1", -1,
	                   &st, NULL);
	sqlite3_bind_int64(st, 1, t->object_id);
	while (rc == 0 && st && sqlite3_step(st) == SQLITE_ROW) {
		char ci[260];
		snprintf(ci, sizeof ci, "%s", sqlite3_column_text(st, 0));
		rc = create_instance_triggers(db, t, ci, e);
	}
	sqlite3_finalize(st);
	return rc;
}

static int
drop_instance(sqlite3 *db, const char *ci, struct sqlerr *e)
{
	struct stmt s;
	memset(&s, 0, sizeof s);
	char name[300];
	snprintf(name, sizeof name, "%s_CT", ci);
	s.from.schema = "cdc";
	s.from.name = name;
	s.if_exists = 1;
	char *sql = sqlite3_mprintf("DROP TRIGGER IF EXISTS \"cdc_%w_ins\"; DROP TRIGGER IF EXISTS \"cdc_%w_del\";"
	                            "DROP TRIGGER IF EXISTS \"cdc_%w_upd\";"
	                            "DELETE FROM \"cdc.captured_columns\" WHERE object_id IN"
	                            " (SELECT object_id FROM \"cdc.change_tables\" WHERE capture_instance = %Q);"
	                            "DELETE FROM \"cdc.change_tables\" WHERE capture_instance = %Q",
	                            ci, ci, ci, ci, ci);
	int rc = run(db, sql, e);
	sqlite3_free(sql);
	return rc ? rc : catalog_drop_table(db, &s, e);
}

int
cdc_drop_capture(sqlite3 *db, const struct table_info *t, struct sqlerr *e)
{
	sqlite3_stmt *st;
	char cis[2][260];
	int n = 0;
	sqlite3_prepare_v2(db, "SELECT capture_instance FROM \"cdc.change_tables\" WHERE source_object_id = ?1", -1,
	                   &st, NULL);
	sqlite3_bind_int64(st, 1, t->object_id);
	while (st && sqlite3_step(st) == SQLITE_ROW && n < 2)
		snprintf(cis[n++], sizeof cis[0], "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	for (int i = 0; i < n; i++)
		if (drop_instance(db, cis[i], e))
			return -1;
	return 0;
}

/* ---- procedures ---- */

/* Named (@source_name = ...) or positional argument, evaluated. */
static int
proc_arg(struct conn *c, const struct stmt *s, const char *name, int pos, struct value *v, struct sqlerr *e)
{
	memset(v, 0, sizeof *v);
	int idx = -1;
	for (int i = 0; i < s->nargs; i++)
		if (s->arg_names[i] && !strcasecmp(s->arg_names[i], name))
			idx = i;
	if (idx < 0 && pos < s->nargs && !s->arg_names[pos])
		idx = pos;
	if (idx < 0)
		return 1;
	struct expr *x = s->args[idx];
	if (x->kind == E_LIT) {
		*v = x->lit;
		if (v->text)
			v->text = strdup(v->text);
		if (v->blob) {
			v->blob = malloc(v->len + 1);
			memcpy(v->blob, x->lit.blob, v->len);
		}
		return 0;
	}
	if (x->kind == E_VAR) {
		for (int i = 0; i < c->nvars; i++)
			if (!strcasecmp(c->vars[i].name, x->name)) {
				*v = c->vars[i].v;
				if (v->text)
					v->text = strdup(v->text);
				if (v->blob) {
					v->blob = malloc(v->len + 1);
					memcpy(v->blob, c->vars[i].v.blob, v->len);
				}
				return 0;
			}
		sqlerr_set(e, 137, 15, "Must declare the scalar variable \"%s\".", x->name);
		return -1;
	}
	if (x->kind == E_COL && !x->qual) {
		/* EXEC p bare_word: SQL Server takes an unquoted word as a string. */
		v->kind = V_TEXT;
		v->text = strdup(x->name);
		v->len = strlen(x->name);
		return 0;
	}
	sqlerr_set(e, 102, 15, "Incorrect syntax near '('.");
	return -1;
}

static int
arg_text(struct conn *c, const struct stmt *s, const char *name, int pos, char *buf, size_t len, struct sqlerr *e)
{
	struct value v;
	int rc = proc_arg(c, s, name, pos, &v, e);
	buf[0] = '\0';
	if (rc)
		return rc;
	if (v.kind == V_TEXT)
		snprintf(buf, len, "%s", v.text);
	else if (v.kind == V_INT)
		snprintf(buf, len, "%lld", v.i);
	int null = v.kind == V_NULL;
	value_clear(&v);
	return null ? 1 : 0;
}

static int
missing_param(const char *proc, const char *param, struct sqlerr *e)
{
	sqlerr_set(e, 201, 16, "Procedure or function '%s' expects parameter '%s', which was not supplied.", proc,
	           param);
	return -1;
}

static int
enable_table(struct conn *c, const struct stmt *s, struct sqlerr *e)
{
	char schema[129], table[129], ci[260], role[129];
	if (!cdc_enabled(c->db)) {
		sqlerr_set(e, 22901, 16,
		           "The database '%s' is not enabled for Change Data Capture. Ensure that the correct database "
		           "context is set and retry the operation. To report on the databases enabled for Change Data "
		           "Capture, query the is_cdc_enabled column in the sys.databases catalog view.",
		           c->database);
		return -1;
	}
	int rc;
	if ((rc = arg_text(c, s, "@source_schema", 0, schema, sizeof schema, e)) != 0)
		return rc < 0 ? rc : missing_param("sp_cdc_enable_table", "@source_schema", e);
	if ((rc = arg_text(c, s, "@source_name", 1, table, sizeof table, e)) != 0)
		return rc < 0 ? rc : missing_param("sp_cdc_enable_table", "@source_name", e);
	if ((rc = arg_text(c, s, "@role_name", 2, role, sizeof role, e)) < 0)
		return rc;
	if ((rc = arg_text(c, s, "@capture_instance", 3, ci, sizeof ci, e)) < 0)
		return rc;
	struct table_info t;
	if (catalog_table(c->db, schema, table, &t) || t.is_view) {
		sqlerr_set(e, 22931, 16,
		           "Source table '%s.%s' does not exist in the current database. Ensure that the correct "
		           "database context is set. Specify a valid schema and table name for the database.",
		           schema, table);
		return -1;
	}
	if (!*ci)
		snprintf(ci, sizeof ci, "%s_%s", t.schema, t.name);
	unsigned char existing[10];
	if (query_blob(c->db, "SELECT start_lsn FROM \"cdc.change_tables\" WHERE capture_instance = ?1", ci,
	               existing)) {
		table_info_free(&t);
		sqlerr_set(
			e, 22926, 16,
			"Could not create a capture instance because the capture instance name '%s' already exists in "
			"the current database. Specify an explicit unique name for the parameter @capture_instance.",
			ci);
		return -1;
	}
	sqlite3_stmt *st;
	sqlite3_prepare_v2(c->db, "SELECT count(*) FROM \"cdc.change_tables\" WHERE source_object_id = ?1", -1, &st,
	                   NULL);
	sqlite3_bind_int64(st, 1, t.object_id);
	int instances = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (instances >= 2) {
		table_info_free(&t);
		sqlerr_set(e, 22928, 16,
		           "Could not enable Change Data Capture for source table '%s.%s'. Two capture instances "
		           "already exist for the table.",
		           schema, table);
		return -1;
	}
	/* The change table: the CDC columns, then every column of the source. */
	const char *fixed[] = {"__$start_lsn binary(10)", "__$end_lsn binary(10)", "__$seqval binary(10)",
	                       "__$operation int", "__$update_mask varbinary(128)"};
	int ncols = 5 + t.ncols + 1;
	char **cols = calloc((size_t)ncols, sizeof *cols);
	for (int i = 0; i < 5; i++)
		cols[i] = strdup(fixed[i]);
	for (int i = 0; i < t.ncols; i++) {
		char tn[64];
		struct stype ty = t.cols[i].type;
		if (ty.base == T_ROWVERSION)
			ty = (struct stype){T_BINARY, 8, 0, 0};
		type_format(&ty, tn, sizeof tn);
		cols[5 + i] = malloc(strlen(t.cols[i].name) + strlen(tn) + 2);
		sprintf(cols[5 + i], "%s %s", t.cols[i].name, tn);
	}
	cols[ncols - 1] = strdup("__$command_id int");
	run(c->db, "SAVEPOINT tds_cdc", NULL);
	char ctname[300];
	snprintf(ctname, sizeof ctname, "%s_CT", ci);
	register_table(c->db, ctname, (const char *const *)cols, ncols);
	for (int i = 0; i < ncols; i++)
		free(cols[i]);
	free(cols);
	/* The instance is valid from an LSN of its own, committed at once. */
	unsigned char lsn[10];
	lsn_bytes(next_lsn(), lsn);
	long long ct_id = t.object_id * 1000 + instances + 1;
	sqlite3_prepare_v2(c->db, "INSERT INTO \"cdc.change_tables\" VALUES (?1, ?2, ?3, ?4, tds_now(), 0, ?5)", -1,
	                   &st, NULL);
	sqlite3_bind_int64(st, 1, ct_id);
	sqlite3_bind_int64(st, 2, t.object_id);
	sqlite3_bind_text(st, 3, ci, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 4, lsn, 10, SQLITE_TRANSIENT);
	if (*role)
		sqlite3_bind_text(st, 5, role, -1, SQLITE_TRANSIENT);
	sqlite3_step(st);
	sqlite3_finalize(st);
	for (int i = 0; i < t.ncols; i++) {
		char tn[64];
		type_format(&t.cols[i].type, tn, sizeof tn);
		char *sql = sqlite3_mprintf("INSERT INTO \"cdc.captured_columns\" VALUES (%lld, %Q, %d, %Q, %d)", ct_id,
		                            t.cols[i].name, t.cols[i].ordinal, tn, i + 1);
		run(c->db, sql, NULL);
		sqlite3_free(sql);
	}
	sqlite3_prepare_v2(c->db, "INSERT INTO \"cdc.lsn_time_mapping\" VALUES (?1, tds_now(), tds_now(), ?1, ?1)", -1,
	                   &st, NULL);
	sqlite3_bind_blob(st, 1, lsn, 10, SQLITE_TRANSIENT);
	sqlite3_step(st);
	sqlite3_finalize(st);
	char *sql = sqlite3_mprintf("UPDATE __tds_tables SET capture_instance = %Q WHERE object_id = %lld", ci,
	                            t.object_id);
	run(c->db, sql, NULL);
	sqlite3_free(sql);
	rc = create_instance_triggers(c->db, &t, ci, e);
	run(c->db, rc ? "ROLLBACK TO tds_cdc; RELEASE tds_cdc" : "RELEASE tds_cdc", NULL);
	table_info_free(&t);
	return rc;
}

static int
cleanup(struct conn *c, const struct stmt *s, struct sqlerr *e)
{
	char ci[260];
	struct value lwm;
	int rc;
	if ((rc = arg_text(c, s, "@capture_instance", 0, ci, sizeof ci, e)) != 0)
		return rc < 0 ? rc : missing_param("sp_cdc_cleanup_change_table", "@capture_instance", e);
	if ((rc = proc_arg(c, s, "@low_water_mark", 1, &lwm, e)) != 0 || lwm.kind != V_BLOB)
		return rc < 0 ? rc : missing_param("sp_cdc_cleanup_change_table", "@low_water_mark", e);
	unsigned char cur[10], b[10];
	if (!query_blob(c->db, "SELECT start_lsn FROM \"cdc.change_tables\" WHERE capture_instance = ?1", ci, cur)) {
		value_clear(&lwm);
		sqlerr_set(e, 22964, 16,
		           "LSN %s, specified as the new low endpoint for the change table associated with capture "
		           "instance '%s', is not within the Change Data Capture timeline.",
		           "?", ci);
		return -1;
	}
	lsn_bytes(lsn_value(lwm.blob, (int)lwm.len), b);
	value_clear(&lwm);
	char *hex = lsn_hex(b);
	char *sql = sqlite3_mprintf("DELETE FROM \"cdc.%w_CT\" WHERE \"__$start_lsn\" < x'%s';"
	                            "UPDATE \"cdc.change_tables\" SET start_lsn = x'%s' WHERE capture_instance = %Q",
	                            ci, hex, hex, ci);
	free(hex);
	rc = run(c->db, sql, e);
	sqlite3_free(sql);
	return rc;
}

static int
disable_table(struct conn *c, const struct stmt *s, struct sqlerr *e)
{
	char ci[260];
	int rc = arg_text(c, s, "@capture_instance", 2, ci, sizeof ci, e);
	if (rc < 0)
		return rc;
	if (!*ci || !strcasecmp(ci, "all")) {
		char schema[129], table[129];
		struct table_info t;
		arg_text(c, s, "@source_schema", 0, schema, sizeof schema, e);
		arg_text(c, s, "@source_name", 1, table, sizeof table, e);
		if (catalog_table(c->db, schema, table, &t))
			return missing_param("sp_cdc_disable_table", "@source_name", e);
		rc = cdc_drop_capture(c->db, &t, e);
		table_info_free(&t);
		return rc;
	}
	return drop_instance(c->db, ci, e);
}

int
cdc_exec_proc(struct conn *c, const struct stmt *s, struct sqlerr *e)
{
	const char *name = s->name;
	if (!strncasecmp(name, "sys.", 4))
		name += 4;
	if (!strcasecmp(name, "sp_cdc_enable_db"))
		return enable_db(c, e);
	if (!strcasecmp(name, "sp_cdc_enable_table"))
		return enable_table(c, s, e);
	if (!strcasecmp(name, "sp_cdc_disable_table"))
		return disable_table(c, s, e);
	if (!strcasecmp(name, "sp_cdc_cleanup_change_table"))
		return cleanup(c, s, e);
	if (!strcasecmp(name, "sp_cdc_start_job") || !strcasecmp(name, "sp_cdc_stop_job"))
		return 0; /* capture is synchronous here: there is no job to run */
	sqlerr_set(e, 2812, 16, "Could not find stored procedure '%s'.", s->name);
	return -1;
}

int
cdc_table_function(struct conn *c, const struct tableref *from, char *sql, size_t len, struct table_info *t,
                   struct sqlerr *e)
{
	static const char prefix[] = "fn_cdc_get_all_changes_";
	if (!from->schema || strcasecmp(from->schema, "cdc") || strncasecmp(from->name, prefix, sizeof prefix - 1)) {
		sqlerr_set(e, 208, 16, "Invalid object name '%s%s%s'.", from->schema ? from->schema : "",
		           from->schema ? "." : "", from->name);
		return -1;
	}
	const char *ci = from->name + sizeof prefix - 1;
	unsigned char min[10], max[10];
	if (!query_blob(c->db, "SELECT start_lsn FROM \"cdc.change_tables\" WHERE capture_instance = ?1", ci, min)) {
		sqlerr_set(e, 208, 16, "Invalid object name 'cdc.%s'.", from->name);
		return -1;
	}
	query_blob(c->db, "SELECT max(start_lsn) FROM \"cdc.lsn_time_mapping\"", NULL, max);
	if (from->nargs != 3) {
		sqlerr_set(e, 313, 16,
		           "An insufficient number of arguments were supplied for the procedure or function "
		           "cdc.fn_cdc_get_all_changes_%s.",
		           ci);
		return -1;
	}
	struct stmt fake;
	memset(&fake, 0, sizeof fake);
	fake.args = from->args;
	fake.nargs = from->nargs;
	char *names[3] = {NULL, NULL, NULL};
	fake.arg_names = names;
	struct value lo, hi, filter;
	if (proc_arg(c, &fake, "", 0, &lo, e) < 0 || proc_arg(c, &fake, "", 1, &hi, e) < 0 ||
	    proc_arg(c, &fake, "", 2, &filter, e) < 0)
		return -1;
	int all_update_old = filter.kind == V_TEXT && !strcasecmp(filter.text, "all update old");
	int filter_ok = filter.kind == V_TEXT && (all_update_old || !strcasecmp(filter.text, "all"));
	uint64_t l = lo.kind == V_BLOB ? lsn_value(lo.blob, (int)lo.len) : 0;
	uint64_t h = hi.kind == V_BLOB ? lsn_value(hi.blob, (int)hi.len) : 0;
	int bad = lo.kind != V_BLOB || hi.kind != V_BLOB || !filter_ok || l < lsn_value(min, 10) ||
	          h > lsn_value(max, 10) || l > h;
	value_clear(&lo);
	value_clear(&hi);
	value_clear(&filter);
	if (bad) {
		/* Out of range is an error, never an empty answer: SQL Server's 313. */
		sqlerr_set(e, 313, 16,
		           "An insufficient number of arguments were supplied for the procedure or function "
		           "cdc.fn_cdc_get_all_changes_%s.",
		           ci);
		return -1;
	}
	char ctname[300];
	snprintf(ctname, sizeof ctname, "%s_CT", ci);
	struct table_info ct;
	if (catalog_table(c->db, "cdc", ctname, &ct)) {
		sqlerr_set(e, 208, 16, "Invalid object name 'cdc.%s'.", ctname);
		return -1;
	}
	/* The function's columns: all of the change table's but __$end_lsn and __$command_id. */
	memset(t, 0, sizeof *t);
	snprintf(t->schema, sizeof t->schema, "cdc");
	snprintf(t->name, sizeof t->name, "%s", from->name);
	t->cols = calloc((size_t)ct.ncols, sizeof *t->cols);
	char *list = sqlite3_mprintf("");
	for (int i = 0; i < ct.ncols; i++) {
		if (!strcmp(ct.cols[i].name, "__$end_lsn") || !strcmp(ct.cols[i].name, "__$command_id"))
			continue;
		t->cols[t->ncols] = ct.cols[i];
		t->cols[t->ncols].nullable =
			strncmp(ct.cols[i].name, "__$", 3) != 0 || !strcmp(ct.cols[i].name, "__$update_mask");
		t->ncols++;
		list_add(&list, "\"%w\"", ct.cols[i].name);
	}
	unsigned char lb[10], hb[10];
	lsn_bytes(l, lb);
	lsn_bytes(h, hb);
	char *lh = lsn_hex(lb), *hh = lsn_hex(hb);
	snprintf(sql, len,
	         "(SELECT %s FROM \"cdc.%s_CT\" WHERE \"__$start_lsn\" BETWEEN x'%s' AND x'%s'%s"
	         " ORDER BY \"__$start_lsn\", \"__$seqval\", \"__$operation\")",
	         list, ci, lh, hh, all_update_old ? "" : " AND \"__$operation\" <> 3");
	free(lh);
	free(hh);
	sqlite3_free(list);
	table_info_free(&ct);
	return 0;
}
