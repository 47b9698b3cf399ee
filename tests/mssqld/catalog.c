/*
 * catalog.c: what tables exist and what their columns are.
 *
 * __tds_tables and __tds_columns hold the SQL Server view of each table;
 * the data lives in an SQLite table named "schema.name". The catalog views
 * clients query (INFORMATION_SCHEMA.*, sys.*) are SQLite views over these,
 * registered in the catalog like tables so that they can be selected from.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mssqld.h"

void
storage_name(const char *schema, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s.%s", schema, name);
}

void
list_add(char **list, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *item = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	char *joined = sqlite3_mprintf("%s%s%s", *list ? *list : "", *list && **list ? ", " : "", item);
	sqlite3_free(*list);
	sqlite3_free(item);
	*list = joined;
}

static int
system_type_id(enum tbase b)
{
	switch (b) {
	case T_BIT: return 104;
	case T_TINYINT: return 48;
	case T_SMALLINT: return 52;
	case T_INT: return 56;
	case T_BIGINT: return 127;
	case T_DECIMAL: return 106;
	case T_NUMERIC: return 108;
	case T_MONEY: return 60;
	case T_SMALLMONEY: return 122;
	case T_REAL: return 59;
	case T_FLOAT: return 62;
	case T_DATE: return 40;
	case T_TIME: return 41;
	case T_SMALLDATETIME: return 58;
	case T_DATETIME: return 61;
	case T_DATETIME2: return 42;
	case T_DATETIMEOFFSET: return 43;
	case T_CHAR: return 175;
	case T_VARCHAR: return 167;
	case T_NCHAR: return 239;
	case T_NVARCHAR: return 231;
	case T_BINARY: return 173;
	case T_VARBINARY: return 165;
	case T_UNIQUEIDENTIFIER: return 36;
	case T_ROWVERSION: return 189;
	default: return 0;
	}
}

/* What sys.columns.max_length, precision and scale say for a type. */
static void
sys_sizes(const struct stype *t, int *max_length, int *precision, int *scale)
{
	static const int fixed[] = {[T_BIT] = 1,
	                            [T_TINYINT] = 1,
	                            [T_SMALLINT] = 2,
	                            [T_INT] = 4,
	                            [T_BIGINT] = 8,
	                            [T_MONEY] = 8,
	                            [T_SMALLMONEY] = 4,
	                            [T_REAL] = 4,
	                            [T_FLOAT] = 8,
	                            [T_DATE] = 3,
	                            [T_SMALLDATETIME] = 4,
	                            [T_DATETIME] = 8,
	                            [T_UNIQUEIDENTIFIER] = 16,
	                            [T_ROWVERSION] = 8};
	static const int prec[] = {[T_BIT] = 1,     [T_TINYINT] = 3, [T_SMALLINT] = 5,       [T_INT] = 10,
	                           [T_BIGINT] = 19, [T_MONEY] = 19,  [T_SMALLMONEY] = 10,    [T_REAL] = 24,
	                           [T_FLOAT] = 53,  [T_DATE] = 10,   [T_SMALLDATETIME] = 16, [T_DATETIME] = 23};
	*precision = t->base < (int)(sizeof prec / sizeof prec[0]) ? prec[t->base] : 0;
	*scale = 0;
	*max_length = t->base < (int)(sizeof fixed / sizeof fixed[0]) ? fixed[t->base] : 0;
	switch (t->base) {
	case T_DECIMAL:
	case T_NUMERIC:
		*precision = t->prec;
		*scale = t->scale;
		*max_length = t->prec <= 9 ? 5 : t->prec <= 19 ? 9 : t->prec <= 28 ? 13 : 17;
		break;
	case T_MONEY:
	case T_SMALLMONEY: *scale = 4; break;
	case T_DATETIME: *scale = 3; break;
	case T_TIME:
		*precision = t->scale ? 9 + t->scale : 8;
		*scale = t->scale;
		*max_length = t->scale <= 2 ? 3 : t->scale <= 4 ? 4 : 5;
		break;
	case T_DATETIME2:
		*precision = t->scale ? 20 + t->scale : 19;
		*scale = t->scale;
		*max_length = t->scale <= 2 ? 6 : t->scale <= 4 ? 7 : 8;
		break;
	case T_DATETIMEOFFSET:
		*precision = t->scale ? 27 + t->scale : 26;
		*scale = t->scale;
		*max_length = t->scale <= 2 ? 8 : t->scale <= 4 ? 9 : 10;
		break;
	case T_CHAR:
	case T_VARCHAR:
	case T_BINARY:
	case T_VARBINARY: *max_length = t->len; break;
	case T_NCHAR:
	case T_NVARCHAR: *max_length = t->len < 0 ? -1 : t->len * 2; break;
	default: break;
	}
}

static const char catalog_ddl[] =
	"CREATE TABLE IF NOT EXISTS __tds_meta(key TEXT PRIMARY KEY, value);"
	"CREATE TABLE IF NOT EXISTS __tds_schemas(schema_id INTEGER PRIMARY KEY, name TEXT COLLATE TSQL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS __tds_tables(object_id INTEGER PRIMARY KEY, schema TEXT COLLATE TSQL,"
	" name TEXT COLLATE TSQL, is_view INT DEFAULT 0, ident_next INT, ident_step INT, pk_name TEXT,"
	" capture_instance TEXT, create_date TEXT, UNIQUE(schema, name));"
	"CREATE TABLE IF NOT EXISTS __tds_columns(object_id INT, column_id INT, name TEXT COLLATE TSQL, type TEXT,"
	" nullable INT, is_identity INT, pk_ordinal INT, dflt TEXT, data_type TEXT, max_length INT,"
	" char_len INT, num_prec INT, num_prec_radix INT, num_scale INT, dt_prec INT, system_type_id INT,"
	" precision INT, scale INT, PRIMARY KEY(object_id, column_id));"
	"CREATE TABLE IF NOT EXISTS __tds_types(name TEXT, system_type_id INT, max_length INT, precision INT,"
	" scale INT);";

/* The catalog views: name, SQLite definition, then columns as "name type". */
static const struct {
	const char *schema, *name, *sql;
	const char *cols[24];
} views[] = {
	{"INFORMATION_SCHEMA",
         "TABLES",
         "SELECT (SELECT value FROM __tds_meta WHERE key='db_name') AS TABLE_CATALOG, schema AS TABLE_SCHEMA,"
         " name AS TABLE_NAME, CASE is_view WHEN 1 THEN 'VIEW' ELSE 'BASE TABLE' END AS TABLE_TYPE FROM __tds_tables"
         " WHERE object_id > 1000",
         {"TABLE_CATALOG nvarchar(128)", "TABLE_SCHEMA nvarchar(128)", "TABLE_NAME nvarchar(128)",
          "TABLE_TYPE varchar(10)"}},
	{"INFORMATION_SCHEMA",
         "COLUMNS",
         "SELECT (SELECT value FROM __tds_meta WHERE key='db_name') AS TABLE_CATALOG, t.schema AS TABLE_SCHEMA,"
         " t.name AS TABLE_NAME, c.name AS COLUMN_NAME, c.column_id AS ORDINAL_POSITION, c.dflt AS COLUMN_DEFAULT,"
         " CASE c.nullable WHEN 1 THEN 'YES' ELSE 'NO' END AS IS_NULLABLE, c.data_type AS DATA_TYPE,"
         " c.char_len AS CHARACTER_MAXIMUM_LENGTH, c.num_prec AS NUMERIC_PRECISION,"
         " c.num_prec_radix AS NUMERIC_PRECISION_RADIX, c.num_scale AS NUMERIC_SCALE,"
         " c.dt_prec AS DATETIME_PRECISION FROM __tds_columns c JOIN __tds_tables t USING (object_id)"
         " WHERE t.object_id > 1000",
         {"TABLE_CATALOG nvarchar(128)", "TABLE_SCHEMA nvarchar(128)", "TABLE_NAME nvarchar(128)",
          "COLUMN_NAME nvarchar(128)", "ORDINAL_POSITION int", "COLUMN_DEFAULT nvarchar(4000)",
          "IS_NULLABLE varchar(3)", "DATA_TYPE nvarchar(128)", "CHARACTER_MAXIMUM_LENGTH int",
          "NUMERIC_PRECISION tinyint", "NUMERIC_PRECISION_RADIX smallint", "NUMERIC_SCALE int",
          "DATETIME_PRECISION smallint"}},
	{"INFORMATION_SCHEMA",
         "TABLE_CONSTRAINTS",
         "SELECT (SELECT value FROM __tds_meta WHERE key='db_name') AS CONSTRAINT_CATALOG, schema AS CONSTRAINT_SCHEMA,"
         " pk_name AS CONSTRAINT_NAME, (SELECT value FROM __tds_meta WHERE key='db_name') AS TABLE_CATALOG,"
         " schema AS TABLE_SCHEMA, name AS TABLE_NAME, 'PRIMARY KEY' AS CONSTRAINT_TYPE FROM __tds_tables"
         " WHERE pk_name IS NOT NULL",
         {"CONSTRAINT_CATALOG nvarchar(128)", "CONSTRAINT_SCHEMA nvarchar(128)", "CONSTRAINT_NAME nvarchar(128)",
          "TABLE_CATALOG nvarchar(128)", "TABLE_SCHEMA nvarchar(128)", "TABLE_NAME nvarchar(128)",
          "CONSTRAINT_TYPE varchar(11)"}},
	{"INFORMATION_SCHEMA",
         "KEY_COLUMN_USAGE",
         "SELECT (SELECT value FROM __tds_meta WHERE key='db_name') AS CONSTRAINT_CATALOG, t.schema AS "
         "CONSTRAINT_SCHEMA,"
         " t.pk_name AS CONSTRAINT_NAME, (SELECT value FROM __tds_meta WHERE key='db_name') AS TABLE_CATALOG,"
         " t.schema AS TABLE_SCHEMA, t.name AS TABLE_NAME, c.name AS COLUMN_NAME, c.pk_ordinal AS ORDINAL_POSITION"
         " FROM __tds_columns c JOIN __tds_tables t USING (object_id) WHERE c.pk_ordinal > 0",
         {"CONSTRAINT_CATALOG nvarchar(128)", "CONSTRAINT_SCHEMA nvarchar(128)", "CONSTRAINT_NAME nvarchar(128)",
          "TABLE_CATALOG nvarchar(128)", "TABLE_SCHEMA nvarchar(128)", "TABLE_NAME nvarchar(128)",
          "COLUMN_NAME nvarchar(128)", "ORDINAL_POSITION int"}},
	{"sys",
         "schemas",
         "SELECT name, schema_id, 1 AS principal_id FROM __tds_schemas",
         {"name nvarchar(128)", "schema_id int", "principal_id int"}},
	{"sys",
         "tables",
         "SELECT t.name AS name, t.object_id AS object_id, s.schema_id AS schema_id, 'U' AS type,"
         " 'USER_TABLE' AS type_desc, t.create_date AS create_date,"
         " CASE WHEN t.capture_instance IS NULL THEN 0 ELSE 1 END AS is_tracked_by_cdc"
         " FROM __tds_tables t JOIN __tds_schemas s ON s.name = t.schema WHERE t.is_view = 0 AND t.object_id > 1000",
         {"name nvarchar(128)", "object_id int", "schema_id int", "type char(2)", "type_desc nvarchar(60)",
          "create_date datetime", "is_tracked_by_cdc bit"}},
	{"sys",
         "columns",
         "SELECT object_id, name, column_id, system_type_id, system_type_id AS user_type_id, max_length, precision,"
         " scale, nullable AS is_nullable, is_identity FROM __tds_columns",
         {"object_id int", "name nvarchar(128)", "column_id int", "system_type_id tinyint", "user_type_id int",
          "max_length smallint", "precision tinyint", "scale tinyint", "is_nullable bit", "is_identity bit"}},
	{"sys",
         "types",
         "SELECT name, system_type_id, system_type_id AS user_type_id, max_length, precision, scale,"
         " 1 AS is_nullable FROM __tds_types",
         {"name nvarchar(128)", "system_type_id tinyint", "user_type_id int", "max_length smallint",
          "precision tinyint", "scale tinyint", "is_nullable bit"}},
	{"sys",
         "indexes",
         "SELECT object_id, pk_name AS name, 1 AS index_id, 1 AS type, 'CLUSTERED' AS type_desc, 1 AS is_unique,"
         " 1 AS is_primary_key FROM __tds_tables WHERE pk_name IS NOT NULL",
         {"object_id int", "name nvarchar(128)", "index_id int", "type tinyint", "type_desc nvarchar(60)",
          "is_unique bit", "is_primary_key bit"}},
	/* The open transactions (txn.c), for late-commit-safe boundaries. */
	{"sys",
         "dm_tran_active_transactions",
         "SELECT transaction_id, 'user_transaction' AS name, begin_time AS transaction_begin_time,"
         " 1 AS transaction_type, 2 AS transaction_state FROM tds_dm_tran",
         {"transaction_id bigint", "name nvarchar(32)", "transaction_begin_time datetime", "transaction_type int",
          "transaction_state int"}},
	{"sys",
         "dm_tran_database_transactions",
         "SELECT transaction_id, database_id, begin_time AS database_transaction_begin_time,"
         " 1 AS database_transaction_type, 4 AS database_transaction_state FROM tds_dm_tran",
         {"transaction_id bigint", "database_id int", "database_transaction_begin_time datetime",
          "database_transaction_type int", "database_transaction_state int"}},
	{"sys",
         "index_columns",
         "SELECT object_id, 1 AS index_id, pk_ordinal AS index_column_id, column_id, pk_ordinal AS key_ordinal,"
         " 0 AS is_descending_key, 0 AS is_included_column FROM __tds_columns WHERE pk_ordinal > 0",
         {"object_id int", "index_id int", "index_column_id int", "column_id int", "key_ordinal tinyint",
          "is_descending_key bit", "is_included_column bit"}},
};

static int
exec_sql(sqlite3 *db, const char *sql, struct sqlerr *e)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	if (e) {
		const char *bar = msg ? strchr(msg, '|') : NULL;
		if (bar && bar - msg < 7)
			sqlerr_set(e, atoi(msg), 16, "%s", bar + 1);
		else
			sqlerr_set(e, 50000, 16, "mssqld: %s", msg ? msg : "SQLite error");
	}
	sqlite3_free(msg);
	return -1;
}

/* Insert one __tds_columns row. */
static int
add_column(sqlite3 *db, long long object_id, int column_id, const char *name, const struct stype *t, int nullable,
           int identity, int pk_ordinal, const char *dflt)
{
	char tn[64], dt[64];
	type_format(t, tn, sizeof tn);
	snprintf(dt, sizeof dt, "%s", tn);
	char *paren = strchr(dt, '(');
	if (paren)
		*paren = '\0';
	if (t->base == T_ROWVERSION)
		snprintf(dt, sizeof dt, "timestamp");
	int max_length, precision, scale;
	sys_sizes(t, &max_length, &precision, &scale);
	int is_num = type_is_numeric(t->base);
	int is_dt = type_is_temporal(t->base);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(
		db,
		"INSERT INTO __tds_columns VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
		" ?15, ?16, ?17, ?18)",
		-1, &st, NULL);
	sqlite3_bind_int64(st, 1, object_id);
	sqlite3_bind_int(st, 2, column_id);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, tn, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 5, nullable);
	sqlite3_bind_int(st, 6, identity);
	sqlite3_bind_int(st, 7, pk_ordinal);
	if (dflt && *dflt)
		sqlite3_bind_text(st, 8, dflt, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 9, dt, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 10, max_length);
	if (type_is_char(t->base) || type_is_binary(t->base))
		sqlite3_bind_int(st, 11, t->len);
	if (is_num && t->base != T_BIT) {
		sqlite3_bind_int(st, 12, precision);
		sqlite3_bind_int(st, 13, (t->base == T_REAL || t->base == T_FLOAT) ? 2 : 10);
		if (t->base != T_REAL && t->base != T_FLOAT)
			sqlite3_bind_int(st, 14, scale);
	}
	if (is_dt)
		sqlite3_bind_int(st, 15, t->base == T_DATE ? 0 : t->base == T_SMALLDATETIME ? 0 : t->scale);
	sqlite3_bind_int(st, 16, system_type_id(t->base));
	sqlite3_bind_int(st, 17, precision);
	sqlite3_bind_int(st, 18, scale);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

static long long
new_object_id(sqlite3 *db)
{
	sqlite3_stmt *st;
	long long id = 1001;
	sqlite3_prepare_v2(db, "SELECT coalesce(max(object_id), 1000) + 1 FROM __tds_tables", -1, &st, NULL);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (id <= 1000)
		id = 1001;
	return id;
}

int
catalog_create_schema(sqlite3 *db, const char *name, struct sqlerr *e)
{
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db,
	                   "INSERT INTO __tds_schemas(schema_id, name) VALUES ((SELECT coalesce(max(schema_id), 4) + 1 "
	                   "FROM __tds_schemas), ?1)",
	                   -1, &st, NULL);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	if (rc && e)
		sqlerr_set(e, 2714, 16, "There is already an object named '%s' in the database.", name);
	return rc;
}

int
catalog_init(sqlite3 *db)
{
	if (exec_sql(db, catalog_ddl, NULL))
		return -1;
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT count(*) FROM __tds_tables WHERE is_view = 1", -1, &st, NULL);
	int have = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
	sqlite3_finalize(st);
	if (have)
		return 0;
	exec_sql(db, "BEGIN", NULL);
	static const char *const schemas[][2] = {
		{"1", "dbo"}, {"2", "guest"}, {"3", "INFORMATION_SCHEMA"}, {"4", "sys"}};
	for (size_t i = 0; i < 4; i++) {
		char *sql = sqlite3_mprintf("INSERT OR IGNORE INTO __tds_schemas VALUES (%s, %Q)", schemas[i][0],
		                            schemas[i][1]);
		exec_sql(db, sql, NULL);
		sqlite3_free(sql);
	}
	for (enum tbase b = T_BIT; b <= T_ROWVERSION; b++) {
		struct stype t = {b, 1, 18, 0};
		if (b == T_DECIMAL || b == T_NUMERIC)
			t.prec = 38;
		else if (b == T_TIME || b == T_DATETIME2 || b == T_DATETIMEOFFSET)
			t.scale = 7;
		else if (b == T_VARCHAR || b == T_VARBINARY || b == T_BINARY || b == T_CHAR)
			t.len = 8000;
		else if (b == T_NVARCHAR || b == T_NCHAR)
			t.len = 4000;
		int ml, p, s;
		sys_sizes(&t, &ml, &p, &s);
		char tn[64];
		type_format(&t, tn, sizeof tn);
		*strchrnul(tn, '(') = '\0';
		char *sql = sqlite3_mprintf("INSERT INTO __tds_types VALUES (%Q, %d, %d, %d, %d)",
		                            b == T_ROWVERSION ? "timestamp" : tn, system_type_id(b), ml, p, s);
		exec_sql(db, sql, NULL);
		sqlite3_free(sql);
	}
	long long id = 1;
	for (size_t i = 0; i < sizeof views / sizeof views[0]; i++, id++) {
		char sname[300];
		storage_name(views[i].schema, views[i].name, sname, sizeof sname);
		char *sql = sqlite3_mprintf(
			"CREATE VIEW IF NOT EXISTS \"%w\" AS %s;"
			"INSERT INTO __tds_tables(object_id, schema, name, is_view) VALUES (%lld, %Q, %Q, 1)",
			sname, views[i].sql, id, views[i].schema, views[i].name);
		exec_sql(db, sql, NULL);
		sqlite3_free(sql);
		for (int k = 0; views[i].cols[k]; k++) {
			char cname[64];
			const char *sp = strchr(views[i].cols[k], ' ');
			snprintf(cname, sizeof cname, "%.*s", (int)(sp - views[i].cols[k]), views[i].cols[k]);
			struct stype t;
			type_parse_text(sp + 1, &t);
			add_column(db, id, k + 1, cname, &t, 1, 0, 0, NULL);
		}
	}
	return exec_sql(db, "COMMIT", NULL);
}

void
table_info_free(struct table_info *t)
{
	free(t->cols);
	memset(t, 0, sizeof *t);
}

int
catalog_table(sqlite3 *db, const char *schema, const char *name, struct table_info *t)
{
	memset(t, 0, sizeof *t);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db,
	                   "SELECT object_id, schema, name, is_view, ident_next, ident_step, capture_instance"
	                   " FROM __tds_tables WHERE schema = ?1 AND name = ?2",
	                   -1, &st, NULL);
	sqlite3_bind_text(st, 1, schema ? schema : "dbo", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return -1;
	}
	t->object_id = sqlite3_column_int64(st, 0);
	snprintf(t->schema, sizeof t->schema, "%s", sqlite3_column_text(st, 1));
	snprintf(t->name, sizeof t->name, "%s", sqlite3_column_text(st, 2));
	t->is_view = sqlite3_column_int(st, 3);
	t->ident_next = sqlite3_column_int64(st, 4);
	t->ident_step = sqlite3_column_int64(st, 5);
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		t->cdc = 1;
		snprintf(t->capture_instance, sizeof t->capture_instance, "%s", sqlite3_column_text(st, 6));
	}
	sqlite3_finalize(st);
	sqlite3_prepare_v2(db,
	                   "SELECT name, type, nullable, is_identity, column_id, pk_ordinal, coalesce(dflt, '')"
	                   " FROM __tds_columns WHERE object_id = ?1 ORDER BY column_id",
	                   -1, &st, NULL);
	sqlite3_bind_int64(st, 1, t->object_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		t->cols = realloc(t->cols, (size_t)(t->ncols + 1) * sizeof *t->cols);
		struct column_info *c = &t->cols[t->ncols++];
		memset(c, 0, sizeof *c);
		snprintf(c->name, sizeof c->name, "%s", sqlite3_column_text(st, 0));
		type_parse_text((const char *)sqlite3_column_text(st, 1), &c->type);
		c->nullable = sqlite3_column_int(st, 2);
		c->identity = sqlite3_column_int(st, 3);
		c->ordinal = sqlite3_column_int(st, 4);
		c->pk_ordinal = sqlite3_column_int(st, 5);
		snprintf(c->dflt, sizeof c->dflt, "%s", sqlite3_column_text(st, 6));
	}
	sqlite3_finalize(st);
	return 0;
}

long long
catalog_next_identity(sqlite3 *db, struct table_info *t)
{
	long long v = t->ident_next;
	t->ident_next += t->ident_step ? t->ident_step : 1;
	char *sql = sqlite3_mprintf("UPDATE __tds_tables SET ident_next = %lld WHERE object_id = %lld", t->ident_next,
	                            t->object_id);
	exec_sql(db, sql, NULL);
	sqlite3_free(sql);
	return v;
}

/* The SQLite column definition for a catalog column. */
static char *
storage_column(const char *name, const struct stype *t)
{
	return sqlite3_mprintf("\"%w\"%s", name, type_is_char(t->base) ? " COLLATE TSQL" : "");
}

/* Default expressions are kept as T-SQL text, evaluated at INSERT. */
static void
default_text(const struct expr *d, char *buf, size_t len)
{
	buf[0] = '\0';
	if (!d)
		return;
	if (d->kind == E_FUNC) {
		snprintf(buf, len, "%s()", d->name);
	} else if (d->kind == E_LIT) {
		char *s = value_to_text(&d->lit, &d->type, -1);
		if (!s)
			snprintf(buf, len, "NULL");
		else if (d->lit.kind == V_TEXT) {
			char *q = sqlite3_mprintf("%Q", s);
			snprintf(buf, len, "%s%s", d->type.base == T_NVARCHAR ? "N" : "", q);
			sqlite3_free(q);
		} else if (d->lit.kind == V_BLOB) {
			char *h = value_to_text(&d->lit, &d->type, 1);
			snprintf(buf, len, "%s", h);
			free(h);
		} else {
			snprintf(buf, len, "%s", s);
		}
		free(s);
	} else if (d->kind == E_UNARY && d->args[0]->kind == E_LIT) {
		char *s = value_to_text(&d->args[0]->lit, &d->args[0]->type, -1);
		snprintf(buf, len, "-%s", s ? s : "0");
		free(s);
	}
}

static int
pk_position(const struct stmt *s, const char *name)
{
	for (int i = 0; i < s->npk; i++)
		if (!strcasecmp(s->pk[i], name))
			return i + 1;
	return 0;
}

int
catalog_create_table(sqlite3 *db, const struct stmt *s, struct sqlerr *e)
{
	const char *schema = s->from.schema ? s->from.schema : "dbo";
	struct table_info t;
	if (catalog_table(db, schema, s->from.name, &t) == 0) {
		table_info_free(&t);
		sqlerr_set(e, 2714, 16, "There is already an object named '%s' in the database.", s->from.name);
		return -1;
	}
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT 1 FROM __tds_schemas WHERE name = ?1", -1, &st, NULL);
	sqlite3_bind_text(st, 1, schema, -1, SQLITE_TRANSIENT);
	int schema_ok = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	if (!schema_ok) {
		sqlerr_set(e, 2760, 16,
		           "The specified schema name \"%s\" either does not exist or you do not have permission to "
		           "use it.",
		           schema);
		return -1;
	}
	int inline_pk = 0, identities = 0;
	for (int i = 0; i < s->ndefs; i++) {
		inline_pk += s->defs[i].primary_key;
		identities += s->defs[i].identity;
		for (int k = 0; k < i; k++)
			if (!strcasecmp(s->defs[k].name, s->defs[i].name)) {
				sqlerr_set(e, 2705, 16,
				           "Column names in each table must be unique. Column name '%s' in table '%s' "
				           "is specified more than once.",
				           s->defs[i].name, s->from.name);
				return -1;
			}
	}
	if (inline_pk + (s->npk > 0) > 1) {
		sqlerr_set(e, 8110, 16, "Cannot add multiple PRIMARY KEY constraints to table '%s'.", s->from.name);
		return -1;
	}
	if (identities > 1) {
		sqlerr_set(e, 2744, 16,
		           "Multiple identity columns specified for table '%s'. Only one identity column per table is "
		           "allowed.",
		           s->from.name);
		return -1;
	}
	for (int i = 0; i < s->npk; i++) {
		int found = 0;
		for (int k = 0; k < s->ndefs; k++)
			found |= !strcasecmp(s->defs[k].name, s->pk[i]);
		if (!found) {
			sqlerr_set(e, 1911, 16, "Column name '%s' does not exist in the target table or view.",
			           s->pk[i]);
			return -1;
		}
	}
	long long id = new_object_id(db);
	char sname[300];
	storage_name(schema, s->from.name, sname, sizeof sname);
	char *cols = sqlite3_mprintf("");
	char *pkcols = sqlite3_mprintf("");
	int has_pk = 0;
	long long seed = 1, step = 1;
	exec_sql(db, "SAVEPOINT tds_ddl", NULL);
	for (int i = 0; i < s->ndefs; i++) {
		const struct coldef *d = &s->defs[i];
		int pkpos = d->primary_key ? 1 : pk_position(s, d->name);
		char *cdef = storage_column(d->name, &d->type);
		list_add(&cols, "%s", cdef);
		sqlite3_free(cdef);
		if (d->identity) {
			seed = d->seed;
			step = d->step;
		}
		char dflt[256];
		default_text(d->dflt, dflt, sizeof dflt);
		/* Key columns and identities are NOT NULL, as in SQL Server. */
		int nullable = !(d->not_null || pkpos || d->identity || d->type.base == T_ROWVERSION);
		add_column(db, id, i + 1, d->name, &d->type, nullable, d->identity, pkpos, dflt);
	}
	for (int i = 0; i < s->npk; i++) {
		list_add(&pkcols, "\"%w\"", s->pk[i]);
		has_pk = 1;
	}
	for (int i = 0; i < s->ndefs; i++)
		if (s->defs[i].primary_key) {
			sqlite3_free(pkcols);
			pkcols = sqlite3_mprintf("\"%w\"", s->defs[i].name);
			has_pk = 1;
		}
	char pkname[300];
	snprintf(pkname, sizeof pkname, "%s", s->pk_name ? s->pk_name : "");
	if (has_pk && !s->pk_name)
		snprintf(pkname, sizeof pkname, "PK__%.100s__%08llX", s->from.name,
		         (unsigned long long)id * 2654435761ULL & 0xFFFFFFFF);
	char *sql = sqlite3_mprintf("CREATE TABLE \"%w\" (%s%s%s%s);"
	                            "INSERT INTO __tds_tables(object_id, schema, name, ident_next, ident_step, pk_name,"
	                            " create_date) VALUES (%lld, %Q, %Q, %lld, %lld, %Q, tds_now())",
	                            sname, cols, has_pk ? ", PRIMARY KEY (" : "", has_pk ? pkcols : "",
	                            has_pk ? ")" : "", id, schema, s->from.name, seed, step, has_pk ? pkname : NULL);
	int rc = exec_sql(db, sql, e);
	sqlite3_free(sql);
	sqlite3_free(cols);
	sqlite3_free(pkcols);
	exec_sql(db, rc ? "ROLLBACK TO tds_ddl; RELEASE tds_ddl" : "RELEASE tds_ddl", NULL);
	return rc;
}

int
catalog_drop_table(sqlite3 *db, const struct stmt *s, struct sqlerr *e)
{
	struct table_info t;
	if (catalog_table(db, s->from.schema, s->from.name, &t) || t.is_view) {
		if (t.is_view)
			table_info_free(&t);
		if (s->if_exists)
			return 0;
		sqlerr_set(e, 3701, 11,
		           "Cannot drop the table '%s', because it does not exist or you do not have permission.",
		           s->from.name);
		return -1;
	}
	char sname[300];
	storage_name(t.schema, t.name, sname, sizeof sname);
	char *sql = sqlite3_mprintf("SAVEPOINT tds_ddl; DROP TABLE \"%w\";"
	                            "DELETE FROM __tds_columns WHERE object_id = %lld;"
	                            "DELETE FROM __tds_tables WHERE object_id = %lld; RELEASE tds_ddl",
	                            sname, t.object_id, t.object_id);
	int rc = exec_sql(db, sql, e);
	sqlite3_free(sql);
	if (rc == 0 && t.cdc)
		rc = cdc_drop_capture(db, &t, e);
	table_info_free(&t);
	return rc;
}

/* Rebuild the storage table after a column change: copy every row, with
 * `exprs[i]` giving the new column i from the old row. */
static int
rebuild(sqlite3 *db, const struct table_info *t, struct column_info *cols, int ncols, char **exprs, struct sqlerr *e)
{
	char sname[300];
	storage_name(t->schema, t->name, sname, sizeof sname);
	char *defs = sqlite3_mprintf(""), *names = sqlite3_mprintf(""), *sel = sqlite3_mprintf(""),
	     *pk = sqlite3_mprintf("");
	for (int i = 0; i < ncols; i++) {
		char *cdef = storage_column(cols[i].name, &cols[i].type);
		list_add(&defs, "%s", cdef);
		list_add(&names, "\"%w\"", cols[i].name);
		list_add(&sel, "%s", exprs[i]);
		sqlite3_free(cdef);
	}
	for (int k = 1; k <= ncols; k++)
		for (int i = 0; i < ncols; i++)
			if (cols[i].pk_ordinal == k)
				list_add(&pk, "\"%w\"", cols[i].name);
	char *sql = sqlite3_mprintf("CREATE TABLE \"tds_rebuild\" (%s%s%s%s);"
	                            "INSERT INTO \"tds_rebuild\" (%s) SELECT %s FROM \"%w\";"
	                            "DROP TABLE \"%w\"; ALTER TABLE \"tds_rebuild\" RENAME TO \"%w\"",
	                            defs, *pk ? ", PRIMARY KEY (" : "", pk, *pk ? ")" : "", names, sel, sname, sname,
	                            sname);
	int rc = exec_sql(db, sql, e);
	sqlite3_free(sql);
	sqlite3_free(defs);
	sqlite3_free(names);
	sqlite3_free(sel);
	sqlite3_free(pk);
	return rc;
}

static int
rewrite_columns(sqlite3 *db, const struct table_info *t, struct column_info *cols, int ncols)
{
	char *sql = sqlite3_mprintf("DELETE FROM __tds_columns WHERE object_id = %lld", t->object_id);
	exec_sql(db, sql, NULL);
	sqlite3_free(sql);
	for (int i = 0; i < ncols; i++)
		add_column(db, t->object_id, i + 1, cols[i].name, &cols[i].type, cols[i].nullable, cols[i].identity,
		           cols[i].pk_ordinal, cols[i].dflt);
	return 0;
}

int
catalog_alter(sqlite3 *db, const struct stmt *s, struct sqlerr *e)
{
	struct table_info t;
	if (catalog_table(db, s->from.schema, s->from.name, &t) || t.is_view) {
		sqlerr_set(e, 4902, 16,
		           "Cannot find the object \"%s\" because it does not exist or you do not have permissions.",
		           s->from.name);
		return -1;
	}
	int n = t.ncols, slots = t.ncols + s->ndefs + 1;
	struct column_info *cols = calloc((size_t)slots, sizeof *cols);
	char **exprs = calloc((size_t)slots, sizeof *exprs);
	memcpy(cols, t.cols, (size_t)n * sizeof *cols);
	for (int i = 0; i < n; i++)
		exprs[i] = sqlite3_mprintf("\"%w\"", cols[i].name);
	int rc = -1;
	if (s->kind == S_ALTER_ADD) {
		for (int i = 0; i < s->ndefs; i++) {
			const struct coldef *d = &s->defs[i];
			for (int k = 0; k < n; k++)
				if (!strcasecmp(cols[k].name, d->name)) {
					sqlerr_set(e, 2705, 16,
					           "Column names in each table must be unique. Column name '%s' in "
					           "table '%s' is specified more than once.",
					           d->name, t.name);
					goto out;
				}
			struct column_info *c = &cols[n];
			memset(c, 0, sizeof *c);
			snprintf(c->name, sizeof c->name, "%s", d->name);
			c->type = d->type;
			c->nullable = !d->not_null;
			default_text(d->dflt, c->dflt, sizeof c->dflt);
			/* Existing rows get the default when the column is NOT NULL. */
			if (d->not_null && !c->dflt[0]) {
				sqlite3_stmt *st;
				char sname[300];
				storage_name(t.schema, t.name, sname, sizeof sname);
				char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", sname);
				sqlite3_prepare_v2(db, q, -1, &st, NULL);
				sqlite3_free(q);
				int rows = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
				sqlite3_finalize(st);
				if (rows) {
					sqlerr_set(
						e, 4901, 16,
						"ALTER TABLE only allows columns to be added that can contain nulls, "
						"or have a DEFAULT definition specified, or the column being added is "
						"an identity or timestamp column, or alternatively if none of the "
						"previous conditions are satisfied the table must be empty to allow "
						"addition of this last column. Column '%s' cannot be added to "
						"non-empty table '%s' because it does not satisfy these conditions.",
						d->name, t.name);
					goto out;
				}
			}
			if (d->dflt && d->not_null && d->dflt->kind == E_LIT) {
				struct value v = d->dflt->lit;
				if (v.text)
					v.text = strdup(v.text);
				if (v.blob) {
					v.blob = malloc(v.len + 1);
					memcpy(v.blob, d->dflt->lit.blob, v.len);
				}
				if (value_convert(&v, &d->dflt->type, &d->type, e)) {
					value_clear(&v);
					goto out;
				}
				char *txt = value_to_text(&v, &d->type, -1);
				/* the storage form, as tds_conv from text produces it */
				char tn[64];
				type_format(&d->type, tn, sizeof tn);
				exprs[n] = sqlite3_mprintf("tds_conv(%Q, 'nvarchar(max)', '%s')", txt, tn);
				free(txt);
				value_clear(&v);
			} else {
				exprs[n] = sqlite3_mprintf("NULL");
			}
			n++;
		}
	} else if (s->kind == S_ALTER_COLUMN) {
		const struct coldef *d = &s->defs[0];
		int k;
		for (k = 0; k < n && strcasecmp(cols[k].name, d->name); k++)
			;
		if (k == n) {
			sqlerr_set(e, 4924, 16,
			           "ALTER TABLE ALTER COLUMN failed because column '%s' does not exist in table '%s'.",
			           d->name, t.name);
			goto out;
		}
		char from[64], to[64];
		type_format(&cols[k].type, from, sizeof from);
		type_format(&d->type, to, sizeof to);
		sqlite3_free(exprs[k]);
		exprs[k] = sqlite3_mprintf("tds_conv(\"%w\", '%s', '%s')", cols[k].name, from, to);
		cols[k].type = d->type;
		if (d->nullable_given)
			cols[k].nullable = !d->not_null;
		if (!cols[k].nullable) {
			sqlite3_free(exprs[k]);
			exprs[k] = sqlite3_mprintf("tds_notnull(tds_conv(\"%w\", '%s', '%s'), '%q')", cols[k].name,
			                           from, to, cols[k].name);
		}
	} else {
		for (int i = 0; i < s->ncols; i++) {
			int k;
			for (k = 0; k < n && strcasecmp(cols[k].name, s->cols[i]); k++)
				;
			if (k == n) {
				sqlerr_set(e, 4924, 16,
				           "ALTER TABLE DROP COLUMN failed because column '%s' does not exist in table "
				           "'%s'.",
				           s->cols[i], t.name);
				goto out;
			}
			if (cols[k].pk_ordinal) {
				sqlerr_set(e, 5074, 16, "The object '%s' is dependent on column '%s'.", "PRIMARY KEY",
				           cols[k].name);
				goto out;
			}
			sqlite3_free(exprs[k]);
			memmove(cols + k, cols + k + 1, (size_t)(n - k - 1) * sizeof *cols);
			memmove(exprs + k, exprs + k + 1, (size_t)(n - k - 1) * sizeof *exprs);
			n--;
			exprs[n] = NULL; /* moved down, not to be freed twice */
		}
	}
	exec_sql(db, "SAVEPOINT tds_ddl", NULL);
	if (t.cdc)
		cdc_drop_triggers(db, &t);
	rc = rebuild(db, &t, cols, n, exprs, e);
	if (rc == 0) {
		rewrite_columns(db, &t, cols, n);
		if (t.cdc) {
			struct table_info nt;
			catalog_table(db, t.schema, t.name, &nt);
			rc = cdc_create_triggers(db, &nt, e);
			table_info_free(&nt);
		}
	}
	exec_sql(db, rc ? "ROLLBACK TO tds_ddl; RELEASE tds_ddl" : "RELEASE tds_ddl", NULL);
out:
	for (int i = 0; i < slots; i++)
		sqlite3_free(exprs[i]);
	free(exprs);
	free(cols);
	table_info_free(&t);
	return rc;
}

int
catalog_create_index(sqlite3 *db, const struct stmt *s, struct sqlerr *e)
{
	const char *schema = s->from.schema ? s->from.schema : "dbo";
	struct table_info t;
	if (catalog_table(db, schema, s->from.name, &t)) {
		sqlerr_set(e, 1088, 16,
		           "Cannot find the object \"%s\" because it does not exist or you do not have "
		           "permissions.",
		           s->from.name);
		return -1;
	}
	char *cols = sqlite3_mprintf("");
	int rc = 0;
	for (int i = 0; i < s->ncols && !rc; i++) {
		int found = 0;
		for (int k = 0; k < t.ncols; k++)
			found |= !strcasecmp(t.cols[k].name, s->cols[i]);
		if (!found) {
			sqlerr_set(e, 1911, 16, "Column name '%s' does not exist in the target table or view.",
			           s->cols[i]);
			rc = -1;
		}
		list_add(&cols, "\"%w\"", s->cols[i]);
	}
	char sname[300];
	storage_name(schema, s->from.name, sname, sizeof sname);
	char *sql = rc ? NULL
	               : sqlite3_mprintf("CREATE %sINDEX \"%w.%w\" ON \"%w\" (%s)", s->unique ? "UNIQUE " : "", sname,
	                                 s->name, sname, cols);
	if (sql && sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		if (strstr(sqlite3_errmsg(db), "already exists"))
			sqlerr_set(e, 1913, 16,
			           "The operation failed because an index or statistics with name '%s' already "
			           "exists on table '%s.%s'.",
			           s->name, schema, s->from.name);
		else
			sqlerr_set(e, 1505, 16,
			           "The CREATE UNIQUE INDEX statement terminated because a duplicate key was "
			           "found for the object name '%s.%s'.",
			           schema, s->from.name);
		rc = -1;
	}
	sqlite3_free(sql);
	sqlite3_free(cols);
	table_info_free(&t);
	return rc;
}
