/*
 * source.c: SQL Server through FreeTDS db-lib. Connecting, reading the
 * catalog, and turning watermark values into typed T-SQL literals: values
 * never reach the SQL text except as CAST(N'...' AS type) with quotes
 * doubled, or as validated numbers and 0x... binary literals.
 */
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

static char last_error[1024];
static int failed;
static int transient; /* the failure is one a retry may pass */

/* SQL Server errors a retry may pass: deadlock victim (1205) and Azure SQL's
 * transient errors (40197, 40501, 40613, 49918-49920). */
static const int transient_errors[] = {1205, 40197, 40501, 40613, 49918, 49919, 49920};

int
source_transient(void)
{
	return transient;
}

/* source.options.login_timeout / query_timeout, and the state of a query
 * being cancelled: by SIGINT/SIGTERM or by the query timeout. */
static struct {
	long long login_s, query_s;
	const char *login_text, *query_text; /* as the manifest wrote them */
	int logging_in;
	double cancel_sent; /* when the ATTENTION went; 0: not yet */
} limits;

/* Seconds a server gets to acknowledge an ATTENTION before the connection
 * is closed instead (a server stuck in I/O may not read it). */
#define ATTENTION_GRACE 1.0

const char *
source_error(void)
{
	return last_error;
}
int
source_failed(void)
{
	return failed;
}
void
source_clear_error(void)
{
	failed = 0;
	last_error[0] = '\0';
}

/* db-lib's timeout error (the server silent for query_timeout, or the
 * interrupt handler below asking): first an ATTENTION, which a server
 * answers by ending the query; if that is not acknowledged, the connection
 * is closed. */
static int
on_timeout(void)
{
	if (limits.logging_in) {
		snprintf(last_error, sizeof last_error,
		         "no answer to the login within source.options.login_timeout (%s)", limits.login_text);
		failed = 1;
		return INT_CANCEL;
	}
	if (!failed && dp_interrupted)
		snprintf(last_error, sizeof last_error, "interrupted: the query was cancelled");
	else if (!failed)
		snprintf(last_error, sizeof last_error,
		         "the server sent nothing for source.options.query_timeout (%s): the query was cancelled",
		         limits.query_text);
	failed = 1;
	if (limits.cancel_sent == 0) {
		limits.cancel_sent = dp_now();
		return INT_TIMEOUT; /* FreeTDS sends the ATTENTION and waits on */
	}
	return INT_CANCEL;
}

/* db-lib's interrupt check, called every second a read waits: a signal
 * starts the cancel; an ATTENTION left unanswered ends the connection. */
static int
interrupt_due(void *db)
{
	(void)db;
	if (limits.cancel_sent == 0)
		return dp_interrupted != 0;
	return dp_now() - limits.cancel_sent >= ATTENTION_GRACE;
}

static int
interrupt_now(void *db)
{
	(void)db;
	return INT_CANCEL; /* to on_timeout, through db-lib's timeout error */
}

static int
on_error(DBPROCESS *db, int severity, int dberr, int oserr, char *dberrstr, char *oserrstr)
{
	(void)db;
	(void)severity;
	if (dberr == SYBETIME)
		return on_timeout();
	/* The connection went away mid-result (reset, EOF, dead process). */
	if (dberr == SYBESEOF || dberr == SYBEREAD || dberr == SYBEDDNE)
		transient = 1;
	/* Keep the first cause; later errors are usually its consequences. */
	if (!failed) {
		if (oserr && oserr != DBNOERR && oserrstr)
			snprintf(last_error, sizeof last_error, "%s (%s)", dberrstr ? dberrstr : "db-lib error",
			         oserrstr);
		else
			snprintf(last_error, sizeof last_error, "%s (db-lib %d)", dberrstr ? dberrstr : "db-lib error",
			         dberr);
	}
	failed = 1;
	return INT_CANCEL;
}

static int
on_message(DBPROCESS *db, DBINT number, int state, int severity, char *text, char *server, char *proc, int line)
{
	(void)db;
	(void)state;
	(void)server;
	(void)proc;
	(void)line;
	if (severity <= 10)
		return 0; /* informational: "Changed database context to ..." */
	if (!failed || !strncmp(last_error, "General SQL Server error", 24) || strstr(last_error, "(db-lib 20018)"))
		snprintf(last_error, sizeof last_error, "SQL Server error %d: %s", (int)number, text ? text : "");
	for (size_t i = 0; i < sizeof transient_errors / sizeof *transient_errors; i++)
		transient |= number == transient_errors[i];
	failed = 1;
	return 0;
}

char *
source_column_list(const struct source *s, int keys_only)
{
	struct dp_buf b = {0};
	int n = keys_only ? s->nkey : s->ncols;
	for (int i = 0; i < n; i++) {
		char *q = quote_name(s->cols[keys_only ? s->key[i] : i].name);
		dp_buf_str(&b, i ? ", " : "");
		dp_buf_str(&b, q);
		free(q);
	}
	dp_buf_char(&b, '\0');
	return b.p;
}

char *
source_select_list(const struct source *s)
{
	struct dp_buf b = {0};
	for (int i = 0; i < s->ncols; i++) {
		const struct column *c = &s->cols[i];
		char *q = quote_name(c->name);
		dp_buf_str(&b, i ? ", " : "");
		if (!strcmp(c->data_type, "nvarchar") || !strcmp(c->data_type, "nchar")) {
			char *cast = c->max_length > 0 && c->max_length <= 4000
			                     ? dp_strfmt("CAST(%s AS varbinary(%d))", q, 2 * c->max_length)
			                     : dp_strfmt("CAST(%s AS varbinary(max))", q);
			dp_buf_str(&b, cast);
			free(cast);
		} else {
			dp_buf_str(&b, q);
		}
		free(q);
	}
	dp_buf_char(&b, '\0');
	return b.p;
}

char *
source_table_name(const struct source *s)
{
	char *schema = quote_name(s->schema), *table = quote_name(s->table);
	char *both = dp_strfmt("%s.%s", schema, table);
	free(schema);
	free(table);
	return both;
}

void
source_free(struct source *s)
{
	if (s->db)
		dbclose(s->db);
	for (int i = 0; i < s->ncols; i++)
		free(s->cols[i].json_key);
	free(s->cols);
	free(s->key);
	memset(s, 0, sizeof *s);
}

/* open + s with every `close` doubled + close; the caller frees it. */
static char *
enclose(const char *open, const char *s, char close)
{
	size_t n = strlen(open);
	char *out = dp_xmalloc(n + strlen(s) * 2 + 2), *o = out;
	memcpy(o, open, n);
	o += n;
	for (const char *p = s; *p; p++) {
		if (*p == close)
			*o++ = close;
		*o++ = *p;
	}
	*o++ = close;
	*o = '\0';
	return out;
}

char *
quote_name(const char *name)
{
	return enclose("[", name, ']');
}

/* N'text' with quotes doubled; the caller frees it. */
static char *
nstring(const char *s)
{
	return enclose("N'", s, '\'');
}

/* Why dbopen failed, in words about the cause: FreeTDS says "Server name
 * not found in configuration files" for a host name that does not resolve. */
static const char *
connect_failure(const char *host)
{
	static char why[1200];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &ai);
	if (ai)
		freeaddrinfo(ai);
	if (rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL
#ifdef EAI_NODATA
	    || rc == EAI_NODATA
#endif
	) {
		snprintf(why, sizeof why, "the host name %s did not resolve (%s)", host, gai_strerror(rc));
		return why;
	}
	return last_error[0] ? last_error : "login failed";
}

void
source_set_timeouts(const struct dp_manifest *m)
{
	limits.login_text = dp_manifest_str(m, "source.options.login_timeout");
	limits.query_text = dp_manifest_str(m, "source.options.query_timeout");
	limits.login_s = dp_duration_seconds(limits.login_text);
	limits.query_s = dp_duration_seconds(limits.query_text);
}

/* The connection's SQL Server parameters (URL query or registry fields),
 * applied to the login: packet_size (512..32767: TDS packets; bigger ones
 * read faster, Microsoft's bcp guidance) and application_intent
 * (read_only: may be routed to a readable availability-group secondary). */
static void
apply_login_params(LOGINREC *login, const struct dp_conn *conn)
{
	const char *packet = json_string_value(json_object_get(conn->params, "packet_size"));
	if (packet) {
		long long n;
		if (dp_parse_ll(packet, &n) < 0 || n < 512 || n > 32767)
			dp_die(DP_EXIT_CONNECTION, "connection %s (%s): packet_size '%s': expected 512 to 32767 bytes",
			       conn->id, conn->origin, packet);
		DBSETLPACKET(login, (int)n);
	}
	const char *intent = json_string_value(json_object_get(conn->params, "application_intent"));
	if (intent) {
		if (strcmp(intent, "read_only") && strcmp(intent, "read_write"))
			dp_die(DP_EXIT_CONNECTION,
			       "connection %s (%s): application_intent '%s': expected read_only or read_write",
			       conn->id, conn->origin, intent);
		DBSETLREADONLY(login, !strcmp(intent, "read_only"));
	}
}

void
source_connect(struct source *s, const struct dp_conn *conn, const char *database, int bcp, size_t max_row_bytes)
{
	if (dbinit() == FAIL)
		dp_die(DP_EXIT_SOURCE, "db-lib: cannot initialise");
	dberrhandle(on_error);
	dbmsghandle(on_message);
	LOGINREC *login = dblogin();
	DBSETLUSER(login, conn->user ? conn->user : "");
	DBSETLPWD(login, conn->password ? conn->password : "");
	DBSETLAPP(login, "dpone-extract");
	DBSETLCHARSET(login, "UTF-8");
	DBSETLVERSION(login, DBVERSION_74);
	if (bcp)
		BCP_SETL(login, TRUE);
	apply_login_params(login, conn);
	const char *db = database ? database : conn->database;
	if (db && *db)
		DBSETLDBNAME(login, db);
	char server[600];
	snprintf(server, sizeof server, "%s:%d", conn->host, conn->port);
	struct freetds_conf tls;
	int named = freetds_conf_begin(conn, &tls);
	dbsetlogintime((int)limits.login_s);
	limits.logging_in = 1;
	s->db = dbopen(login, named ? "dpone" : server);
	limits.logging_in = 0;
	freetds_conf_end(&tls);
	dbloginfree(login);
	if (!s->db)
		dp_die(DP_EXIT_SOURCE, "cannot connect to %s (%s): %s%s", conn->id, server, connect_failure(conn->host),
		       freetds_conf_hint(conn, &tls));
	snprintf(s->server, sizeof s->server, "%s", server);
	dbsettime((int)limits.query_s);
	dbsetinterrupt(s->db, interrupt_due, interrupt_now);
	/* (max) values would be cut at db-lib's default text size otherwise;
	 * and no value longer than a message may be is read whole: twice the
	 * limit in bytes (UTF-16 takes at most twice the UTF-8 of the JSON), so
	 * a value cut here is one whose row is over the limit anyway, which
	 * emit_row refuses. Memory stays bounded by the limit. */
	long long textsize = max_row_bytes ? 2 * (long long)max_row_bytes + 2 : 2147483647;
	char *set = dp_strfmt("SET TEXTSIZE %lld", textsize > 2147483647 ? 2147483647 : textsize);
	int set_failed = source_query(s, set);
	free(set);
	if (!set_failed)
		while (dbnextrow(s->db) != NO_MORE_ROWS)
			;
	dbcanquery(s->db);
	if (failed)
		dp_die(DP_EXIT_SOURCE, "%s", last_error);
	/* The login's database, as the server confirmed it (ENVCHANGE). */
	const char *in_use = dbname(s->db);
	snprintf(s->database, sizeof s->database, "%s", in_use && *in_use ? in_use : db ? db : "");
}

int
source_query(struct source *s, const char *sql)
{
	source_clear_error();
	if (dbcmd(s->db, sql) == FAIL || dbsqlexec(s->db) == FAIL)
		return -1;
	RETCODE rc;
	/* Skip results without columns (SET ..., DECLARE) up to the rows. */
	while ((rc = dbresults(s->db)) == SUCCEED)
		if (dbnumcols(s->db) > 0)
			return 0;
	return rc == NO_MORE_RESULTS && !failed ? 0 : -1;
}

/* The value of column i of the current row as text (db-lib conversion). */
static char *
column_text(DBPROCESS *db, int i)
{
	BYTE *data = dbdata(db, i);
	DBINT len = dbdatlen(db, i);
	if (!data)
		return NULL;
	int type = dbcoltype(db, i);
	if (type == SYBCHAR || type == SYBVARCHAR || type == SYBTEXT || type == SYBNVARCHAR || type == SYBNTEXT)
		return dp_xstrndup((const char *)data, (size_t)len);
	char tmp[256];
	DBINT n = dbconvert(db, type, data, len, SYBCHAR, (BYTE *)tmp, sizeof tmp - 1);
	if (n < 0)
		return NULL;
	tmp[n] = '\0';
	return dp_xstrdup(tmp);
}

static int
int_or(const char *s, int dflt)
{
	return s ? atoi(s) : dflt;
}

static void
describe(struct column *c, const char *type, const char *nullable, const char *chars, const char *prec,
         const char *scale, const char *dtprec)
{
	snprintf(c->data_type, sizeof c->data_type, "%s", type);
	for (char *p = c->data_type; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	c->nullable = nullable && !strcmp(nullable, "YES");
	c->precision = c->scale = c->max_length = -1;
	const char *t = c->data_type;
	if (!strcmp(t, "decimal") || !strcmp(t, "numeric")) {
		c->precision = int_or(prec, 18);
		c->scale = int_or(scale, 0);
		snprintf(c->sql_type, sizeof c->sql_type, "%s(%d,%d)", t, c->precision, c->scale);
	} else if (!strcmp(t, "money") || !strcmp(t, "smallmoney")) {
		c->precision = int_or(prec, 19);
		c->scale = 4;
		snprintf(c->sql_type, sizeof c->sql_type, "%s", t);
	} else if (!strcmp(t, "time") || !strcmp(t, "datetime2") || !strcmp(t, "datetimeoffset")) {
		c->scale = int_or(dtprec, 7);
		snprintf(c->sql_type, sizeof c->sql_type, "%s(%d)", t, c->scale);
	} else if (!strcmp(t, "datetime")) {
		c->scale = 3;
		snprintf(c->sql_type, sizeof c->sql_type, "%s", t);
	} else if (chars && (strstr(t, "char") || strstr(t, "binary"))) {
		c->max_length = atoi(chars);
		if (c->max_length < 0)
			snprintf(c->sql_type, sizeof c->sql_type, "%s(max)", t);
		else
			snprintf(c->sql_type, sizeof c->sql_type, "%s(%d)", t, c->max_length);
	} else {
		snprintf(c->sql_type, sizeof c->sql_type, "%s", t);
	}
	c->logical = logical_type(t);
}

int
source_column(const struct source *s, const char *name)
{
	for (int i = 0; i < s->ncols; i++)
		if (!strcasecmp(s->cols[i].name, name))
			return i;
	return -1;
}

static void
read_columns(struct source *s, const struct dp_manifest *m)
{
	char *sch = nstring(s->schema), *tab = nstring(s->table);
	char *sql = dp_strfmt("SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION,"
	                      " NUMERIC_SCALE, DATETIME_PRECISION FROM INFORMATION_SCHEMA.COLUMNS"
	                      " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
	                      sch, tab);
	free(sch);
	free(tab);
	if (source_query(s, sql))
		dp_die(DP_EXIT_SOURCE, "reading the columns of %s.%s: %s", s->schema, s->table, source_error());
	free(sql);
	while (dbnextrow(s->db) == REG_ROW) {
		char *f[7];
		for (int i = 0; i < 7; i++)
			f[i] = column_text(s->db, i + 1);
		s->cols = dp_xrealloc(s->cols, (size_t)(s->ncols + 1) * sizeof *s->cols);
		struct column *c = &s->cols[s->ncols++];
		memset(c, 0, sizeof *c);
		snprintf(c->name, sizeof c->name, "%s", f[0] ? f[0] : "");
		describe(c, f[1] ? f[1] : "", f[2], f[3], f[4], f[5], f[6]);
		for (int i = 0; i < 7; i++)
			free(f[i]);
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the columns of %s.%s: %s", s->schema, s->table, source_error());
	char where[1024];
	if (s->ncols == 0)
		dp_die(DP_EXIT_SOURCE, "%stable %s.%s does not exist (or has no columns visible to this login)",
		       dp_manifest_where(m, "source.table.name", where, sizeof where), s->schema, s->table);
	for (int i = 0; i < s->ncols; i++)
		if (!s->cols[i].logical)
			dp_die(DP_EXIT_SOURCE, "column %s has type %s, which dpone does not read", s->cols[i].name,
			       s->cols[i].data_type);
}

/* Keep only the manifest's allow-list of columns, in its order. */
static void
apply_allow_list(struct source *s, const struct dp_manifest *m)
{
	json_t *list = dp_manifest_get(m, "source.options.columns");
	if (!list)
		return;
	struct column *kept = dp_xcalloc(json_array_size(list), sizeof *kept);
	size_t i;
	json_t *v;
	char where[1024];
	json_array_foreach(list, i, v) {
		int k = source_column(s, json_string_value(v));
		if (k < 0) {
			snprintf(where, sizeof where, "source.options.columns[%zu]", i);
			dp_die(DP_EXIT_SOURCE, "%scolumn '%s' is not in %s.%s",
			       dp_manifest_where(m, where, where, sizeof where), json_string_value(v), s->schema,
			       s->table);
		}
		kept[i] = s->cols[k];
	}
	free(s->cols);
	s->cols = kept;
	s->ncols = (int)json_array_size(list);
}

static void
add_key(struct source *s, int column)
{
	s->key = dp_xrealloc(s->key, (size_t)(s->nkey + 1) * sizeof *s->key);
	s->key[s->nkey++] = column;
}

static void
read_primary_key(struct source *s, char ***names, int *n)
{
	char *sch = nstring(s->schema), *tab = nstring(s->table);
	char *sql = dp_strfmt("SELECT CONSTRAINT_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = %s"
	                      " AND TABLE_NAME = %s AND CONSTRAINT_TYPE = 'PRIMARY KEY'",
	                      sch, tab);
	char *pk = NULL;
	if (source_query(s, sql) == 0)
		while (dbnextrow(s->db) == REG_ROW)
			if (!pk)
				pk = column_text(s->db, 1);
	free(sql);
	*n = 0;
	*names = NULL;
	if (pk) {
		char *pkq = nstring(pk);
		sql = dp_strfmt(
			"SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND"
			" TABLE_NAME = %s AND CONSTRAINT_NAME = %s ORDER BY ORDINAL_POSITION",
			sch, tab, pkq);
		if (source_query(s, sql) == 0)
			while (dbnextrow(s->db) == REG_ROW) {
				*names = dp_xrealloc(*names, (size_t)(*n + 1) * sizeof **names);
				(*names)[(*n)++] = column_text(s->db, 1);
			}
		free(sql);
		free(pkq);
		free(pk);
	}
	free(sch);
	free(tab);
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the primary key of %s.%s: %s", s->schema, s->table, source_error());
}

/* name in lower case into buf (SQL Server's default collations ignore
 * case, so the suggestion does too). */
static const char *
folded(const char *name, char *buf, size_t len)
{
	size_t i = 0;
	for (; name[i] && i + 1 < len; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[i] = '\0';
	return buf;
}

/* The table's column closest to name (borrowed). */
static const char *
closest_column(const struct source *s, const char *name)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	char a[260], b[260];
	for (int i = 0; i < s->ncols; i++) {
		size_t d = dp_edit_distance(folded(name, a, sizeof a), folded(s->cols[i].name, b, sizeof b));
		if (d < best_d) {
			best_d = d;
			best = s->cols[i].name;
		}
	}
	return best;
}

/* One name the manifest (or its contract) gives as a column of the table. */
static void
check_column_name(const struct source *s, const char *where, const char *name)
{
	if (!name || source_column(s, name) >= 0)
		return;
	const char *near = closest_column(s, name);
	dp_die(DP_EXIT_USAGE, "%scolumn '%s' is not in %s.%s%s%s%s", where, name, s->schema, s->table,
	       near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
}

/* A string or a list of strings at path; list entries are path[i]. */
static void
check_column_value(const struct source *s, const struct dp_manifest *m, const char *path, json_t *v)
{
	char at[256], where[1024];
	if (json_is_string(v)) {
		check_column_name(s, dp_manifest_where(m, path, where, sizeof where), json_string_value(v));
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		snprintf(at, sizeof at, "%s[%zu]", path, i);
		check_column_name(s, dp_manifest_where(m, at, where, sizeof where), json_string_value(item));
	}
}

/* The contract's columns (contract.columns in its own file). */
static void
check_contract_columns(const struct source *s, const struct dp_manifest *m)
{
	const char *path = dp_manifest_str(m, "contract");
	if (!path)
		return;
	char err[1024], where[1200];
	json_t *marks = json_object();
	json_t *doc = dp_yaml_load_file(path, marks, err, sizeof err);
	if (!doc)
		dp_die(DP_EXIT_USAGE, "%s", err);
	const char *name;
	json_t *spec;
	json_object_foreach(json_object_get(json_object_get(doc, "contract"), "columns"), name, spec) {
		snprintf(where, sizeof where, "%s: contract.columns.%s: ", path, name);
		check_column_name(s, where, name);
	}
	json_decref(doc);
	json_decref(marks);
}

/*
 * Every column the manifest names is checked against the table before
 * anything is read, so that a misspelling is a usage error at plan, doctor
 * and run start, not a run that publishes and then fails (a not_null
 * check on a missing column would count every value as null).
 */
static void
check_column_references(const struct source *s, const struct dp_manifest *m)
{
	static const char *const paths[] = {"source.options.incremental_column", "source.options.columns",
	                                    "sink.strategy.unique_key", "sink.options.key.fields",
	                                    "sink.strategy.window.column"};
	for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
		check_column_value(s, m, paths[i], dp_manifest_get(m, paths[i]));
	size_t i;
	json_t *check;
	char path[128];
	json_array_foreach(dp_manifest_get(m, "quality.checks"), i, check) {
		snprintf(path, sizeof path, "quality.checks[%zu].column", i);
		check_column_value(s, m, path, json_object_get(check, "column"));
		snprintf(path, sizeof path, "quality.checks[%zu].columns", i);
		check_column_value(s, m, path, json_object_get(check, "columns"));
	}
	check_contract_columns(s, m);
	/* soft_delete's flag is added to each message: a column of that name
	 * would be there twice. */
	const char *flag = dp_manifest_str(m, "sink.strategy.soft_delete_column");
	const char *mode = dp_manifest_str(m, "sink.strategy.delete_mode");
	char where[1024];
	if (flag && mode && !strcmp(mode, "soft_delete") && source_column(s, flag) >= 0)
		dp_die(DP_EXIT_USAGE,
		       "%s'%s' is a column of %s.%s, so the soft-delete flag would be in each message twice: "
		       "choose a name the table does not have",
		       dp_manifest_where(m, "sink.strategy.soft_delete_column", where, sizeof where), flag, s->schema,
		       s->table);
}

void
source_discover(struct source *s, const struct dp_manifest *m)
{
	snprintf(s->schema, sizeof s->schema, "%s", dp_manifest_str(m, "source.table.schema"));
	snprintf(s->table, sizeof s->table, "%s", dp_manifest_str(m, "source.table.name"));
	read_columns(s, m);
	check_column_references(s, m);
	apply_allow_list(s, m);
	char where[1024];
	const char *inc = dp_manifest_str(m, "source.options.incremental_column");
	s->inc = -1;
	if (inc && (s->inc = source_column(s, inc)) < 0)
		dp_die(DP_EXIT_SOURCE, "%scolumn '%s' is not in %s.%s",
		       dp_manifest_where(m, "source.options.incremental_column", where, sizeof where), inc, s->schema,
		       s->table);
	json_t *ukey = dp_manifest_get(m, "sink.strategy.unique_key");
	size_t i;
	json_t *v;
	if (ukey) {
		json_array_foreach(ukey, i, v) {
			int k = source_column(s, json_string_value(v));
			if (k < 0)
				dp_die(DP_EXIT_SOURCE, "%scolumn '%s' is not in %s.%s",
				       dp_manifest_where(m, "sink.strategy.unique_key", where, sizeof where),
				       json_string_value(v), s->schema, s->table);
			add_key(s, k);
		}
	} else {
		char **names;
		int n;
		read_primary_key(s, &names, &n);
		for (int k = 0; k < n; k++) {
			int idx = source_column(s, names[k]);
			if (idx >= 0)
				add_key(s, idx);
			free(names[k]);
		}
		free(names);
	}
	for (int k = 0; k < s->ncols; k++) {
		struct dp_buf b = {0};
		encode_string(&b, s->cols[k].name, strlen(s->cols[k].name));
		dp_buf_char(&b, ':');
		s->cols[k].json_key_len = b.len;
		dp_buf_char(&b, '\0');
		s->cols[k].json_key = b.p;
	}
}

char *
source_scalar_json(struct source *s, const char *sql, const struct column *as, const struct encoding *enc)
{
	char *json = source_try_scalar_json(s, sql, as, enc);
	if (!json)
		dp_die(DP_EXIT_SOURCE, "%s", source_error());
	return json;
}

char *
source_try_scalar_json(struct source *s, const char *sql, const struct column *as, const struct encoding *enc)
{
	if (source_query(s, sql)) {
		dbcancel(s->db);
		return NULL;
	}
	struct dp_buf b = {0};
	while (dbnextrow(s->db) == REG_ROW) {
		if (b.len)
			continue;
		if (encode_value(&b, as, dbcoltype(s->db, 1), dbdata(s->db, 1), dbdatlen(s->db, 1), enc))
			dp_die(DP_EXIT_SOURCE, "column %s: the server sent a value no %s column can hold (%s)",
			       as->name, as->sql_type, sql);
	}
	if (source_failed()) {
		dbcancel(s->db);
		free(b.p);
		return NULL;
	}
	if (!b.len)
		dp_buf_str(&b, "null");
	dp_buf_char(&b, '\0');
	return b.p;
}

/* "AAAAAAAAB9E=" -> "0x00000000000007D1", or NULL if it is not base64. */
static char *
base64_to_hex_literal(const char *s)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s);
	if (n == 0 || n % 4)
		return NULL;
	char *out = dp_xmalloc(n / 4 * 6 + 3), *o = out;
	*o++ = '0';
	*o++ = 'x';
	for (size_t i = 0; i < n; i += 4) {
		unsigned v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			const char *p = s[i + k] ? strchr(alphabet, s[i + k]) : NULL;
			if (s[i + k] == '=' && i + 4 == n && k >= 2) {
				pad++;
				v <<= 6;
			} else if (!p || pad) {
				free(out);
				return NULL;
			} else {
				v = v << 6 | (unsigned)(p - alphabet);
			}
		}
		for (int k = 0; k < 3 - pad; k++)
			o += sprintf(o, "%02X", (v >> (16 - 8 * k)) & 0xFF);
	}
	*o = '\0';
	return out;
}

char *
sql_literal(const struct column *c, const char *json_value)
{
	json_error_t jerr;
	json_t *v = json_loads(json_value, JSON_DECODE_ANY, &jerr);
	char *out = NULL;
	const char *lt = c->logical;
	if (!v)
		return NULL;
	if (json_is_integer(v) && (!strcmp(lt, "integer"))) {
		out = dp_strfmt("%lld", (long long)json_integer_value(v));
	} else if (json_is_boolean(v) && !strcmp(lt, "boolean")) {
		out = dp_xstrdup(json_is_true(v) ? "1" : "0");
	} else if (json_is_string(v) && !strcmp(lt, "binary")) {
		/* Binary watermarks (rowversion): 0x... hex, or base64 as the stream writes them. */
		const char *h = json_string_value(v);
		if ((h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) &&
		    strspn(h + 2, "0123456789abcdefABCDEF") == strlen(h + 2))
			out = dp_xstrdup(h);
		else
			out = base64_to_hex_literal(h);
	} else if (json_is_string(v) || json_is_number(v)) {
		char *text = json_is_string(v) ? dp_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
		char *q = nstring(text);
		out = dp_strfmt("CAST(%s AS %s)", q, c->sql_type);
		free(q);
		free(text);
	}
	json_decref(v);
	return out;
}
