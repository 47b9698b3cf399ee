/*
 * exec.c: run a parsed batch. Each statement is translated into one SQLite
 * statement over the storage tables; expressions are typed on the way, so
 * values meet in one type (SQL Server's data type precedence) and literals
 * are converted once, exactly, before SQLite sees them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mssqld.h"

#define CMD_SELECT 0xC1
#define CMD_INSERT 0xC3
#define CMD_DELETE 0xC4
#define CMD_UPDATE 0xC5

/* A translated expression: SQL text, or a literal still to be bound. */
struct frag {
	char *sql;
	struct stype t;
	int is_lit;
	struct value lit;
	int nullable;
	int is_agg;     /* an aggregate (COUNT, MIN, ...) */
	int is_col;     /* a bare column */
	char name[130]; /* the column name it carries, for result sets */
};

static int
tolower_ascii(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

struct xlate {
	struct conn *c;
	struct table_info *t; /* the FROM table, or NULL */
	const char *alias;
	struct value *binds;
	struct stype *bind_types;
	int nbinds;
	struct sqlerr *e;
};

static int translate(struct xlate *x, struct expr *ex, struct frag *f);

static void
frag_free(struct frag *f)
{
	free(f->sql);
	value_clear(&f->lit);
	memset(f, 0, sizeof *f);
}

static char *
strfmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = malloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* "name" with embedded quotes doubled, for SQLite. */
static char *
quote_ident(const char *name)
{
	size_t n = strlen(name);
	char *out = malloc(n * 2 + 3), *o = out;
	*o++ = '"';
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			*o++ = '"';
		*o++ = *p;
	}
	*o++ = '"';
	*o = '\0';
	return out;
}

/* Emit a fragment: literals become bound parameters ?N. */
static char *
emit(struct xlate *x, struct frag *f)
{
	if (!f->is_lit)
		return strdup(f->sql);
	if (f->t.base == T_NULL)
		return strdup("NULL");
	x->binds = realloc(x->binds, (size_t)(x->nbinds + 1) * sizeof *x->binds);
	x->bind_types = realloc(x->bind_types, (size_t)(x->nbinds + 1) * sizeof *x->bind_types);
	x->binds[x->nbinds] = f->lit;
	memset(&f->lit, 0, sizeof f->lit);
	x->bind_types[x->nbinds] = f->t;
	x->nbinds++;
	return strfmt("?%d", x->nbinds);
}

static int
bind_all(struct xlate *x, sqlite3_stmt *st)
{
	for (int i = 0; i < x->nbinds; i++)
		if (value_bind(st, i + 1, &x->binds[i], &x->bind_types[i]) != SQLITE_OK)
			return -1;
	return 0;
}

static void
xlate_free(struct xlate *x)
{
	for (int i = 0; i < x->nbinds; i++)
		value_clear(&x->binds[i]);
	free(x->binds);
	free(x->bind_types);
	x->binds = NULL;
	x->bind_types = NULL;
	x->nbinds = 0;
}

/* ---- type rules ---- */

static int
precedence(enum tbase b)
{
	static const enum tbase order[] = {T_BINARY,        T_VARBINARY,     T_ROWVERSION, T_CHAR,
	                                   T_VARCHAR,       T_NCHAR,         T_NVARCHAR,   T_UNIQUEIDENTIFIER,
	                                   T_BIT,           T_TINYINT,       T_SMALLINT,   T_INT,
	                                   T_BIGINT,        T_SMALLMONEY,    T_MONEY,      T_DECIMAL,
	                                   T_NUMERIC,       T_REAL,          T_FLOAT,      T_TIME,
	                                   T_DATE,          T_SMALLDATETIME, T_DATETIME,   T_DATETIME2,
	                                   T_DATETIMEOFFSET};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		if (order[i] == b)
			return (int)i + 1;
	return 0;
}

/* Types whose storage forms compare correctly with each other. */
static int
family(enum tbase b)
{
	switch (b) {
	case T_BIT:
	case T_TINYINT:
	case T_SMALLINT:
	case T_INT:
	case T_BIGINT:
	case T_REAL:
	case T_FLOAT: return 1;
	case T_DECIMAL:
	case T_NUMERIC:
	case T_MONEY:
	case T_SMALLMONEY: return 2;
	case T_CHAR:
	case T_VARCHAR:
	case T_NCHAR:
	case T_NVARCHAR: return 3;
	case T_BINARY:
	case T_VARBINARY:
	case T_ROWVERSION: return 4;
	case T_UNIQUEIDENTIFIER: return 5;
	case T_DATE: return 6;
	case T_TIME: return 7;
	case T_SMALLDATETIME:
	case T_DATETIME:
	case T_DATETIME2: return 8;
	case T_DATETIMEOFFSET: return 9;
	default: return 0;
	}
}

/* A type wide enough for values of t in comparisons. */
static struct stype
widen(struct stype t)
{
	if (t.base == T_DECIMAL || t.base == T_NUMERIC || t.base == T_MONEY || t.base == T_SMALLMONEY) {
		t.base = T_NUMERIC;
		t.prec = 38;
	} else if (type_is_char(t.base)) {
		t.base = T_NVARCHAR;
		t.len = -1;
	} else if (t.base == T_VARBINARY || t.base == T_BINARY) {
		t.base = T_VARBINARY;
		t.len = -1;
	} else if (t.base == T_DATETIME2 || t.base == T_DATETIMEOFFSET || t.base == T_TIME) {
		t.scale = 7;
	} else if (t.base == T_DATETIME || t.base == T_SMALLDATETIME) {
		t.base = T_DATETIME2;
		t.scale = 7;
	}
	return t;
}

/* Convert fragment f to type to: at once for a literal, else in SQLite. */
static int
convert_frag(struct xlate *x, struct frag *f, const struct stype *to)
{
	if (f->t.base == T_NULL) {
		f->t = *to;
		return 0;
	}
	if (f->is_lit) {
		if (value_convert(&f->lit, &f->t, to, x->e))
			return -1;
		f->t = *to;
		return 0;
	}
	char from_name[64], to_name[64];
	type_format(&f->t, from_name, sizeof from_name);
	type_format(to, to_name, sizeof to_name);
	char *sql = strfmt("tds_conv(%s, '%s', '%s')", f->sql, from_name, to_name);
	free(f->sql);
	f->sql = sql;
	f->t = *to;
	return 0;
}

/* Bring a and b to one comparable type. */
static int
reconcile(struct xlate *x, struct frag *a, struct frag *b)
{
	if (a->t.base == T_NULL || b->t.base == T_NULL)
		return 0;
	int fa = family(a->t.base), fb = family(b->t.base);
	if (fa == fb && fa != 2)
		return 0;
	if (fa == 2 && fb == 2) {
		/* The decimal storage compares across scales already. */
		return 0;
	}
	struct frag *lo = precedence(a->t.base) < precedence(b->t.base) ? a : b;
	struct frag *hi = lo == a ? b : a;
	struct stype target = widen(hi->t);
	if (family(hi->t.base) == 2 && family(lo->t.base) == 1 && !lo->is_lit) {
		/* An integer column against a decimal: compare as decimals. */
		return convert_frag(x, lo, &target);
	}
	if (!hi->is_lit && lo->is_lit) {
		/* Convert the literal to the column's exact type: keeps indexes. */
		struct stype exact = hi->t;
		if (type_is_char(exact.base))
			exact = widen(exact);
		return convert_frag(x, lo, &exact);
	}
	return convert_frag(x, lo, &target);
}

/* ---- expressions ---- */

static struct column_info *
find_column(struct table_info *t, const char *name)
{
	for (int i = 0; t && i < t->ncols; i++)
		if (!strcasecmp(t->cols[i].name, name))
			return &t->cols[i];
	return NULL;
}

static int
lit_frag(struct frag *f, const struct value *v, const struct stype *t)
{
	memset(f, 0, sizeof *f);
	f->is_lit = 1;
	f->t = *t;
	f->lit = *v;
	if (v->text)
		f->lit.text = strdup(v->text);
	if (v->blob) {
		f->lit.blob = malloc(v->len ? v->len : 1);
		memcpy(f->lit.blob, v->blob, v->len);
	}
	f->nullable = v->kind == V_NULL;
	return 0;
}

static int
text_frag(struct frag *f, const char *s, int unicode)
{
	struct value v = {.kind = V_TEXT, .text = (char *)s, .len = strlen(s)};
	struct stype t = {.base = unicode ? T_NVARCHAR : T_VARCHAR, .len = 128};
	return lit_frag(f, &v, &t);
}

static int
int_frag(struct frag *f, long long i)
{
	struct value v = {.kind = V_INT, .i = i};
	struct stype t = {.base = T_INT};
	return lit_frag(f, &v, &t);
}

/* A rowversion value, binary(8) big-endian, as MIN_ACTIVE_ROWVERSION() and
 * @@DBTS return it. */
static int
rowversion_frag(struct frag *f, uint64_t rv)
{
	static const struct stype t_rv = {T_BINARY, 8, 0, 0};
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(rv >> (56 - 8 * i));
	struct value v = {.kind = V_BLOB, .blob = b, .len = 8};
	return lit_frag(f, &v, &t_rv);
}

static struct variable *
find_var(struct conn *c, const char *name)
{
	for (int i = 0; i < c->nvars; i++)
		if (!strcasecmp(c->vars[i].name, name))
			return &c->vars[i];
	return NULL;
}

static int
translate_global(struct xlate *x, struct expr *ex, struct frag *f)
{
	const char *n = ex->name + 2;
	if (!strcasecmp(n, "VERSION"))
		return text_frag(f, server.version, 1);
	if (!strcasecmp(n, "SERVERNAME") || !strcasecmp(n, "SERVICENAME"))
		return text_frag(f, "MSSQLD", 1);
	if (!strcasecmp(n, "SPID"))
		return int_frag(f, x->c->spid);
	if (!strcasecmp(n, "TRANCOUNT"))
		return int_frag(f, x->c->in_tran);
	if (!strcasecmp(n, "MAX_PRECISION")) /* what jTDS asks at login */
		return int_frag(f, 38);
	if (!strcasecmp(n, "DBTS"))
		return rowversion_frag(f, current_rowversion());
	if (!strcasecmp(n, "ROWCOUNT"))
		return int_frag(f, x->c->rowcount);
	if (!strcasecmp(n, "ERROR"))
		return int_frag(f, 0);
	if (!strcasecmp(n, "LANGUAGE"))
		return text_frag(f, "us_english", 1);
	sqlerr_set(x->e, 137, 15, "Must declare the scalar variable \"%s\".", ex->name);
	return -1;
}

static const char *
server_property(const char *name)
{
	static const char *const props[][2] = {{"ProductVersion", "15.0.4000.0"},
	                                       {"ProductLevel", "RTM"},
	                                       {"Edition", "Developer Edition (64-bit)"},
	                                       {"EngineEdition", "3"},
	                                       {"ServerName", "MSSQLD"},
	                                       {"MachineName", "MSSQLD"},
	                                       {"Collation", "SQL_Latin1_General_CP1_CI_AS"},
	                                       {"ProductMajorVersion", "15"},
	                                       {"IsFullTextInstalled", "0"},
	                                       {"InstanceName", NULL}};
	for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
		if (!strcasecmp(props[i][0], name))
			return props[i][1];
	return NULL;
}

/* func(args) mapped to an SQLite function of the same meaning. */
static int
simple_function(struct xlate *x, struct expr *ex, struct frag *f, const char *sqlname, const struct stype *result)
{
	char *args = strdup("");
	for (int i = 0; i < ex->nargs; i++) {
		struct frag a;
		if (translate(x, ex->args[i], &a)) {
			free(args);
			return -1;
		}
		char *s = emit(x, &a);
		char *joined = strfmt("%s%s%s", args, i ? ", " : "", s);
		free(args);
		free(s);
		args = joined;
		frag_free(&a);
	}
	memset(f, 0, sizeof *f);
	f->sql = strfmt("%s(%s)", sqlname, args);
	free(args);
	f->t = *result;
	f->nullable = 1;
	return 0;
}

static int
translate_aggregate(struct xlate *x, struct expr *ex, struct frag *f, const char *lname)
{
	memset(f, 0, sizeof *f);
	f->is_agg = 1;
	if (!strcmp(lname, "count") || !strcmp(lname, "count_big")) {
		f->t.base = !strcmp(lname, "count") ? T_INT : T_BIGINT;
		if (ex->star) {
			f->sql = strdup("count(*)");
			return 0;
		}
		if (ex->nargs != 1)
			goto wrong_args;
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		char *s = emit(x, &a);
		f->sql = strfmt("count(%s)", s);
		free(s);
		frag_free(&a);
		return 0;
	}
	if (ex->nargs != 1 || ex->star)
		goto wrong_args;
	struct frag a;
	if (translate(x, ex->args[0], &a))
		return -1;
	if ((!strcmp(lname, "sum") || !strcmp(lname, "avg")) && family(a.t.base) != 1) {
		sqlerr_set(x->e, 50000, 16, "mssqld: %s over %s values is not supported by the stand-in", lname,
		           type_is_char(a.t.base) ? "character" : "non-integer");
		frag_free(&a);
		return -1;
	}
	char *s = emit(x, &a);
	const char *coll = type_is_char(a.t.base) ? " COLLATE TSQL" : "";
	f->sql = strfmt("%s(%s%s)", lname, s, coll);
	free(s);
	f->t = a.t;
	if (!strcmp(lname, "sum") && (a.t.base == T_TINYINT || a.t.base == T_SMALLINT || a.t.base == T_BIT))
		f->t.base = T_INT;
	f->nullable = 1;
	frag_free(&a);
	return 0;
wrong_args:
	sqlerr_set(x->e, 174, 15, "The %s function requires 1 argument(s).", lname);
	return -1;
}

/* OBJECT_ID's argument as SQL Server reads it: [schema].[name] or
 * schema.name or name, brackets optional, ]] inside brackets one ].
 * The last two parts into schema and name; how many parts, or -1. */
static int
object_name_parts(const char *s, char *schema, char *name, size_t cap)
{
	char parts[4][300];
	int n = 0;
	for (;;) {
		size_t len = 0;
		if (n == 4)
			return -1;
		if (*s == '[') {
			for (s++; *s && !(s[0] == ']' && s[1] != ']'); s++) {
				if (s[0] == ']')
					s++;
				if (len + 1 < sizeof parts[n])
					parts[n][len++] = *s;
			}
			if (*s++ != ']')
				return -1;
		} else {
			for (; *s && *s != '.'; s++)
				if (len + 1 < sizeof parts[n])
					parts[n][len++] = *s;
		}
		parts[n++][len] = '\0';
		if (*s != '.')
			break;
		s++;
	}
	if (*s)
		return -1;
	snprintf(name, cap, "%s", parts[n - 1]);
	snprintf(schema, cap, "%s", n > 1 ? parts[n - 2] : "");
	return n;
}

static int
translate_function(struct xlate *x, struct expr *ex, struct frag *f)
{
	char lname[260];
	size_t i;
	for (i = 0; i < sizeof lname - 1 && ex->name[i]; i++)
		lname[i] = (char)tolower_ascii(ex->name[i]);
	lname[i] = '\0';
	const char *base = strncmp(lname, "sys.", 4) ? (strncmp(lname, "dbo.", 4) ? lname : lname + 4) : lname + 4;
	static const struct stype t_dt2 = {T_DATETIME2, 0, 0, 7}, t_int = {T_INT, 0, 0, 0},
				  t_lsn = {T_BINARY, 10, 0, 0}, t_guid = {T_UNIQUEIDENTIFIER, 16, 0, 0},
				  t_dt = {T_DATETIME, 0, 0, 3};
	if (!strcmp(base, "count") || !strcmp(base, "count_big") || !strcmp(base, "min") || !strcmp(base, "max") ||
	    !strcmp(base, "sum") || !strcmp(base, "avg"))
		return translate_aggregate(x, ex, f, base);
	if (!strcmp(base, "sysutcdatetime") || !strcmp(base, "sysdatetime"))
		return simple_function(x, ex, f, "tds_now", &t_dt2);
	if (!strcmp(base, "getdate") || !strcmp(base, "getutcdate")) {
		int rc = simple_function(x, ex, f, "tds_now", &t_dt2);
		return rc ? rc : convert_frag(x, f, &t_dt);
	}
	if (!strcmp(base, "newid"))
		return simple_function(x, ex, f, "tds_newid", &t_guid);
	if (!strcmp(base, "db_name") && ex->nargs == 0)
		return text_frag(f, x->c->database, 1);
	if (!strcmp(base, "db_id") && ex->nargs == 0)
		return int_frag(f, database_id(x->c->database));
	if (!strcmp(base, "min_active_rowversion") && ex->nargs == 0)
		return rowversion_frag(f, min_active_rowversion());
	if (!strcmp(base, "schema_name") && ex->nargs == 0)
		return text_frag(f, "dbo", 1);
	if (!strcmp(base, "suser_sname") || !strcmp(base, "user_name") || !strcmp(base, "system_user"))
		return text_frag(f, x->c->user, 1);
	/* DATABASEPROPERTYEX(db, 'Updateability'): READ_ONLY for a read-only
	 * intent session (a readable secondary's answer), else READ_WRITE. */
	if (!strcmp(base, "databasepropertyex") && ex->nargs == 2 && ex->args[1]->kind == E_LIT &&
	    ex->args[1]->lit.kind == V_TEXT && !strcasecmp(ex->args[1]->lit.text, "Updateability"))
		return text_frag(f, x->c->read_only_intent ? "READ_ONLY" : "READ_WRITE", 1);
	if (!strcmp(base, "serverproperty") && ex->nargs == 1 && ex->args[0]->kind == E_LIT &&
	    ex->args[0]->lit.kind == V_TEXT) {
		const char *v = server_property(ex->args[0]->lit.text);
		if (!v) {
			struct value nv = {0};
			struct stype nt = {.base = T_NVARCHAR, .len = 128};
			return lit_frag(f, &nv, &nt);
		}
		return text_frag(f, v, 1);
	}
	if (!strcmp(base, "object_id") && ex->nargs >= 1 && ex->args[0]->kind == E_LIT &&
	    ex->args[0]->lit.kind == V_TEXT) {
		char schema[300], name[300];
		struct table_info ti;
		int parts = object_name_parts(ex->args[0]->lit.text, schema, name, sizeof name);
		int found = parts > 0 && catalog_table(x->c->db, parts > 1 ? schema : NULL, name, &ti) == 0;
		struct value v = {.kind = found ? V_INT : V_NULL, .i = found ? ti.object_id : 0};
		if (found)
			table_info_free(&ti);
		return lit_frag(f, &v, &t_int);
	}
	if (!strcmp(base, "isnull") || !strcmp(base, "coalesce")) {
		if (ex->nargs < 2) {
			sqlerr_set(x->e, 174, 15, "The %s function requires 2 argument(s).", base);
			return -1;
		}
		struct frag a, b;
		if (translate(x, ex->args[0], &a))
			return -1;
		if (translate(x, ex->args[1], &b) || convert_frag(x, &b, &a.t)) {
			frag_free(&a);
			return -1;
		}
		char *sa = emit(x, &a), *sb = emit(x, &b);
		memset(f, 0, sizeof *f);
		f->sql = strfmt("coalesce(%s, %s)", sa, sb);
		f->t = a.t;
		f->nullable = b.nullable;
		free(sa);
		free(sb);
		frag_free(&a);
		frag_free(&b);
		return 0;
	}
	if (ex->nargs == 1 && (!strcmp(base, "len") || !strcmp(base, "upper") || !strcmp(base, "lower") ||
	                       !strcmp(base, "ltrim") || !strcmp(base, "rtrim"))) {
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		char *arg = emit(x, &a);
		memset(f, 0, sizeof *f);
		/* LEN ignores trailing blanks; the others keep the argument's type. */
		f->sql = !strcmp(base, "len") ? strfmt("length(rtrim(%s))", arg) : strfmt("%s(%s)", base, arg);
		f->t = !strcmp(base, "len") ? t_int : a.t;
		f->nullable = 1;
		free(arg);
		frag_free(&a);
		return 0;
	}
	if (!strcmp(base, "replicate") && ex->nargs == 2) {
		/* The argument's type, as (max) when it is one (else SQL Server
		 * stops at 8000 bytes; the stand-in does not). */
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		struct stype t = a.t;
		frag_free(&a);
		return simple_function(x, ex, f, "tds_replicate", &t);
	}
	/* Change data capture functions. */
	if (!strcmp(lname, "sys.fn_cdc_get_min_lsn"))
		return simple_function(x, ex, f, "tds_cdc_min_lsn", &t_lsn);
	if (!strcmp(lname, "sys.fn_cdc_get_max_lsn"))
		return simple_function(x, ex, f, "tds_cdc_max_lsn", &t_lsn);
	if (!strcmp(lname, "sys.fn_cdc_increment_lsn"))
		return simple_function(x, ex, f, "tds_cdc_increment_lsn", &t_lsn);
	if (!strcmp(lname, "sys.fn_cdc_decrement_lsn"))
		return simple_function(x, ex, f, "tds_cdc_decrement_lsn", &t_lsn);
	if (!strcmp(lname, "sys.fn_cdc_map_lsn_to_time"))
		return simple_function(x, ex, f, "tds_cdc_lsn_time", &t_dt);
	sqlerr_set(x->e, 195, 15, "'%s' is not a recognized built-in function name.", ex->name);
	return -1;
}

static int
translate_compare(struct xlate *x, const char *op, struct frag *a, struct frag *b, struct frag *f)
{
	if (reconcile(x, a, b))
		return -1;
	char *sa = emit(x, a), *sb = emit(x, b);
	const char *coll = type_is_char(a->t.base) && type_is_char(b->t.base) ? " COLLATE TSQL" : "";
	memset(f, 0, sizeof *f);
	f->sql = strfmt("(%s %s %s%s)", sa, op, sb, coll);
	f->t.base = T_BIT;
	free(sa);
	free(sb);
	return 0;
}

static int
translate_binary(struct xlate *x, struct expr *ex, struct frag *f)
{
	struct frag a, b;
	if (translate(x, ex->args[0], &a))
		return -1;
	if (translate(x, ex->args[1], &b)) {
		frag_free(&a);
		return -1;
	}
	const char *op = ex->name;
	int rc = 0;
	if (!strcmp(op, "AND") || !strcmp(op, "OR")) {
		char *sa = emit(x, &a), *sb = emit(x, &b);
		memset(f, 0, sizeof *f);
		f->sql = strfmt("(%s %s %s)", sa, op, sb);
		f->t.base = T_BIT;
		free(sa);
		free(sb);
	} else if (strchr("=<>", op[0])) {
		rc = translate_compare(x, op, &a, &b, f);
	} else if (op[0] == '+' && type_is_char(a.t.base) && type_is_char(b.t.base)) {
		char *sa = emit(x, &a), *sb = emit(x, &b);
		memset(f, 0, sizeof *f);
		f->sql = strfmt("(%s || %s)", sa, sb);
		/* varchar(a) + char(b) is varchar(a + b), up to the type's limit. */
		int unicode = type_is_unicode(a.t.base) || type_is_unicode(b.t.base);
		int limit = unicode ? 4000 : 8000;
		int len = a.t.len < 0 || b.t.len < 0 || a.t.len + b.t.len > limit ? -1 : a.t.len + b.t.len;
		f->t = (struct stype){unicode ? T_NVARCHAR : T_VARCHAR, len, 0, 0};
		f->nullable = 1;
		free(sa);
		free(sb);
	} else if (family(a.t.base) == 1 && family(b.t.base) == 1) {
		char *sa = emit(x, &a), *sb = emit(x, &b);
		memset(f, 0, sizeof *f);
		int real = a.t.base == T_FLOAT || a.t.base == T_REAL || b.t.base == T_FLOAT || b.t.base == T_REAL;
		if (op[0] == '/' && !real)
			f->sql = strfmt("tds_idiv(%s, %s)", sa, sb);
		else
			f->sql = strfmt("(%s %s %s)", sa, op, sb);
		f->t.base = real ? T_FLOAT : (a.t.base == T_BIGINT || b.t.base == T_BIGINT) ? T_BIGINT : T_INT;
		f->nullable = 1;
		free(sa);
		free(sb);
	} else {
		sqlerr_set(x->e, 50000, 16, "mssqld: the operator %s on these types is not supported by the stand-in",
		           op);
		rc = -1;
	}
	frag_free(&a);
	frag_free(&b);
	return rc;
}

static int
translate(struct xlate *x, struct expr *ex, struct frag *f)
{
	memset(f, 0, sizeof *f);
	switch (ex->kind) {
	case E_LIT: return lit_frag(f, &ex->lit, &ex->type);
	case E_COL: {
		struct column_info *col = find_column(x->t, ex->name);
		if (ex->qual && x->t && strcasecmp(ex->qual, x->t->name) &&
		    (!x->alias || strcasecmp(ex->qual, x->alias))) {
			sqlerr_set(x->e, 4104, 16, "The multi-part identifier \"%s.%s\" could not be bound.", ex->qual,
			           ex->name);
			return -1;
		}
		if (!col) {
			sqlerr_set(x->e, 207, 16, "Invalid column name '%s'.", ex->name);
			return -1;
		}
		f->sql = quote_ident(col->name);
		f->t = col->type;
		f->nullable = col->nullable;
		f->is_col = 1;
		snprintf(f->name, sizeof f->name, "%s", col->name);
		return 0;
	}
	case E_VAR: {
		struct variable *v = find_var(x->c, ex->name);
		if (!v) {
			sqlerr_set(x->e, 137, 15, "Must declare the scalar variable \"%s\".", ex->name);
			return -1;
		}
		return lit_frag(f, &v->v, &v->type);
	}
	case E_GLOBAL: return translate_global(x, ex, f);
	case E_FUNC: return translate_function(x, ex, f);
	case E_UNARY: {
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		if (!strcmp(ex->name, "-") && family(a.t.base) != 1) {
			frag_free(&a);
			sqlerr_set(x->e, 50000, 16,
			           "mssqld: unary minus on this type is not supported by the stand-in");
			return -1;
		}
		char *s = emit(x, &a);
		f->sql = strfmt(!strcmp(ex->name, "NOT") ? "(NOT %s)" : "(-%s)", s);
		f->t = !strcmp(ex->name, "NOT") ? (struct stype){T_BIT, 0, 0, 0} : a.t;
		free(s);
		frag_free(&a);
		return 0;
	}
	case E_BINARY: return translate_binary(x, ex, f);
	case E_ISNULL: {
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		char *s = emit(x, &a);
		f->sql = strfmt("(%s IS %sNULL)", s, ex->negate ? "NOT " : "");
		f->t.base = T_BIT;
		free(s);
		frag_free(&a);
		return 0;
	}
	case E_IN:
	case E_BETWEEN: {
		char *all = strdup("");
		for (int i = 1; i < ex->nargs; i++) {
			struct frag a, b, cmp;
			if (translate(x, ex->args[0], &a))
				goto fail_list;
			if (translate(x, ex->args[i], &b)) {
				frag_free(&a);
				goto fail_list;
			}
			const char *op = ex->kind == E_IN ? "=" : i == 1 ? ">=" : "<=";
			int rc = translate_compare(x, op, &a, &b, &cmp);
			frag_free(&a);
			frag_free(&b);
			if (rc)
				goto fail_list;
			char *joined =
				strfmt("%s%s%s", all, i > 1 ? (ex->kind == E_IN ? " OR " : " AND ") : "", cmp.sql);
			free(all);
			all = joined;
			frag_free(&cmp);
		}
		f->sql = strfmt("(%s(%s))", ex->negate ? "NOT " : "", all);
		f->t.base = T_BIT;
		free(all);
		return 0;
fail_list:
		free(all);
		return -1;
	}
	case E_CAST: {
		struct frag a;
		if (translate(x, ex->args[0], &a))
			return -1;
		if (type_is_char(ex->type.base) && ex->style >= 0 && !type_is_char(a.t.base) && !a.is_lit) {
			char tn[64], tt[64];
			type_format(&a.t, tn, sizeof tn);
			type_format(&ex->type, tt, sizeof tt);
			char *s = emit(x, &a);
			f->sql =
				strfmt("tds_conv(tds_text(%s, '%s', %d), 'nvarchar(max)', '%s')", s, tn, ex->style, tt);
			f->t = ex->type;
			f->nullable = 1;
			free(s);
			frag_free(&a);
			return 0;
		}
		if (convert_frag(x, &a, &ex->type)) {
			frag_free(&a);
			return -1;
		}
		*f = a;
		f->is_col = 0;
		f->nullable = 1;
		return 0;
	}
	case E_STAR:
	case E_CASE: break;
	}
	sqlerr_set(x->e, 102, 15, "Incorrect syntax near '*'.");
	return -1;
}

/* Evaluate a constant expression (no table) to a value of its type. */
static int
eval_const(struct conn *c, struct expr *ex, struct value *out, struct stype *type, struct sqlerr *e)
{
	struct xlate x = {.c = c, .e = e};
	struct frag f;
	memset(out, 0, sizeof *out);
	if (translate(&x, ex, &f))
		return -1;
	*type = f.t;
	if (f.is_lit) {
		*out = f.lit;
		memset(&f.lit, 0, sizeof f.lit);
		frag_free(&f);
		return 0;
	}
	char *s = emit(&x, &f);
	char *sql = strfmt("SELECT %s", s);
	free(s);
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK && bind_all(&x, st) == 0) {
		int step = sqlite3_step(st);
		if (step == SQLITE_ROW)
			rc = value_from_storage(sqlite3_column_value(st, 0), type, out, e);
		else
			sqlerr_set(e, 50000, 16, "%s", sqlite3_errmsg(c->db));
	} else {
		sqlerr_set(e, 50000, 16, "%s", sqlite3_errmsg(c->db));
	}
	sqlite3_finalize(st);
	free(sql);
	frag_free(&f);
	xlate_free(&x);
	return rc;
}

/* An SQLite error as SQL Server's: tds_conv errors carry "NUMBER|message". */
static void
sqlite_error(struct conn *c, struct sqlerr *e, const struct table_info *t)
{
	const char *msg = sqlite3_errmsg(c->db);
	int ext = sqlite3_extended_errcode(c->db);
	char *bar = strchr(msg, '|');
	if (bar && bar - msg < 7) {
		sqlerr_set(e, atoi(msg), 16, "%s", bar + 1);
	} else if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE) {
		sqlerr_set(
			e, 2627, 14,
			"Violation of PRIMARY KEY constraint 'PK__%s'. Cannot insert duplicate key in object '%s.%s'.",
			t ? t->name : "?", t ? t->schema : "dbo", t ? t->name : "?");
	} else if (ext == SQLITE_BUSY || ext == SQLITE_LOCKED) {
		sqlerr_set(e, 1222, 16, "Lock request time out period exceeded.");
	} else {
		sqlerr_set(e, 50000, 16, "mssqld: %s", msg);
	}
}

/* ---- DONE bookkeeping: the last DONE of a batch has no MORE bit ---- */

static void
flush_pending(struct conn *c, int more)
{
	if (!c->pending.valid)
		return;
	/* Inside an RPC, statements end with DONEINPROC. */
	tok_done(c, c->in_rpc ? 0xFF : 0xFD, c->pending.status | (more ? DONE_MORE : 0), c->pending.curcmd,
	         c->pending.rows);
	c->pending.valid = 0;
}

static void
done(struct conn *c, unsigned status, unsigned curcmd, uint64_t rows)
{
	flush_pending(c, 1);
	if (c->nocount)
		status &= ~(unsigned)DONE_COUNT;
	c->pending.valid = 1;
	c->pending.status = status;
	c->pending.curcmd = curcmd;
	c->pending.rows = rows;
}

/* ---- SELECT ---- */

static int
resolve_table(struct conn *c, struct tableref *r, struct table_info *t, char *storage, size_t len, struct sqlerr *e)
{
	if (r->db && strcasecmp(r->db, c->database)) {
		sqlerr_set(e, 50000, 16, "mssqld: cross-database references are not supported by the stand-in");
		return -1;
	}
	if (r->is_func)
		return cdc_table_function(c, r, storage, len, t, e);
	if (catalog_table(c->db, r->schema, r->name, t)) {
		sqlerr_set(e, 208, 16, "Invalid object name '%s%s%s'.", r->schema ? r->schema : "",
		           r->schema ? "." : "", r->name);
		return -1;
	}
	char name[300];
	storage_name(t->schema, t->name, name, sizeof name);
	char *q = quote_ident(name);
	snprintf(storage, len, "%s", q);
	free(q);
	return 0;
}

struct select_plan {
	struct rcol *cols;
	int ncols;
	char *sql;
	int assign; /* SELECT @v = ... */
	char **assign_vars;
};

static int
build_select(struct conn *c, struct stmt *s, struct xlate *x, struct select_plan *plan, struct table_info *t,
             int *has_table)
{
	char from[700] = "";
	struct sqlerr *e = x->e;
	*has_table = 0;
	if (s->has_from) {
		if (resolve_table(c, &s->from, t, from, sizeof from, e))
			return -1;
		*has_table = 1;
		x->t = t;
		x->alias = s->from.alias;
	}
	char *list = strdup("");
	int any_agg = 0, any_col = 0;
	char bad_col[130] = "";
	for (int i = 0; i < s->nitems; i++) {
		struct select_item *it = &s->items[i];
		if (it->assign_var)
			plan->assign = 1;
		if (it->e->kind == E_STAR) {
			if (!*has_table) {
				sqlerr_set(e, 263, 16, "Must specify table to select from.");
				goto fail;
			}
			for (int k = 0; k < t->ncols; k++) {
				plan->cols = realloc(plan->cols, (size_t)(plan->ncols + 1) * sizeof *plan->cols);
				struct rcol *rc = &plan->cols[plan->ncols++];
				memset(rc, 0, sizeof *rc);
				snprintf(rc->name, sizeof rc->name, "%s", t->cols[k].name);
				rc->type = t->cols[k].type;
				rc->nullable = t->cols[k].nullable;
				rc->identity = t->cols[k].identity;
				char *q = quote_ident(t->cols[k].name);
				char *joined = strfmt("%s%s%s", list, *list ? ", " : "", q);
				free(list);
				free(q);
				list = joined;
				any_col = 1;
				snprintf(bad_col, sizeof bad_col, "%s", t->cols[k].name);
			}
			continue;
		}
		struct frag f;
		if (translate(x, it->e, &f))
			goto fail;
		any_agg |= f.is_agg;
		if (f.is_col) {
			any_col = 1;
			snprintf(bad_col, sizeof bad_col, "%s", f.name);
		}
		plan->cols = realloc(plan->cols, (size_t)(plan->ncols + 1) * sizeof *plan->cols);
		plan->assign_vars = realloc(plan->assign_vars, (size_t)(plan->ncols + 1) * sizeof *plan->assign_vars);
		plan->assign_vars[plan->ncols] = it->assign_var;
		struct rcol *rc = &plan->cols[plan->ncols++];
		memset(rc, 0, sizeof *rc);
		snprintf(rc->name, sizeof rc->name, "%s", it->alias ? it->alias : f.is_col ? f.name : "");
		rc->type = f.t.base == T_NULL ? (struct stype){T_INT, 0, 0, 0} : f.t;
		rc->nullable = f.is_col ? f.nullable : 1;
		if (f.is_col) {
			struct column_info *ci = find_column(t, f.name);
			rc->identity = ci && ci->identity;
		}
		char *sf = emit(x, &f);
		char *joined = strfmt("%s%s%s", list, *list ? ", " : "", sf);
		free(list);
		free(sf);
		list = joined;
		frag_free(&f);
	}
	if (any_agg && any_col) {
		sqlerr_set(e, 8120, 16,
		           "Column '%s.%s' is invalid in the select list because it is not contained in either an "
		           "aggregate function or the GROUP BY clause.",
		           t->name, bad_col);
		goto fail;
	}
	char *where = NULL, *order = strdup("");
	if (s->where) {
		struct frag f;
		if (translate(x, s->where, &f)) {
			free(order);
			goto fail;
		}
		where = emit(x, &f);
		frag_free(&f);
	}
	for (int i = 0; i < s->norder; i++) {
		struct frag f;
		struct expr *oe = s->order[i].e;
		char *term = NULL;
		if (oe->kind == E_LIT && oe->lit.kind == V_INT) {
			if (oe->lit.i < 1 || oe->lit.i > plan->ncols) {
				sqlerr_set(e, 108, 16,
				           "The ORDER BY position number %lld is out of range of the number of items "
				           "in the select list.",
				           oe->lit.i);
				free(where);
				free(order);
				goto fail;
			}
			term = strfmt("%lld%s", oe->lit.i,
			              type_is_char(plan->cols[oe->lit.i - 1].type.base) ? " COLLATE TSQL" : "");
		} else {
			if (translate(x, oe, &f)) {
				free(where);
				free(order);
				goto fail;
			}
			char *sf = emit(x, &f);
			term = strfmt("%s%s", sf, type_is_char(f.t.base) ? " COLLATE TSQL" : "");
			free(sf);
			frag_free(&f);
		}
		char *joined =
			strfmt("%s%s%s%s", order, *order ? ", " : " ORDER BY ", term, s->order[i].desc ? " DESC" : "");
		free(order);
		free(term);
		order = joined;
	}
	char limit[40] = "";
	if (s->top >= 0)
		snprintf(limit, sizeof limit, " LIMIT %d", s->top);
	plan->sql = strfmt("SELECT %s%s%s%s%s%s%s", list, *has_table ? " FROM " : "", from, where ? " WHERE " : "",
	                   where ? where : "", order, limit);
	free(where);
	free(order);
	free(list);
	return 0;
fail:
	free(list);
	return -1;
}

static void
set_variable(struct conn *c, const char *name, const struct value *v, const struct stype *from)
{
	struct variable *var = find_var(c, name);
	if (!var)
		return;
	value_clear(&var->v);
	var->v = *v;
	if (v->text)
		var->v.text = strdup(v->text);
	if (v->blob) {
		var->v.blob = malloc(v->len ? v->len : 1);
		memcpy(var->v.blob, v->blob, v->len);
	}
	struct sqlerr e;
	if (from && value_convert(&var->v, from, &var->type, &e))
		value_clear(&var->v);
}

static int
stream_rows(struct conn *c, sqlite3_stmt *st, struct select_plan *plan, struct sqlerr *e, uint64_t *rows, int *attn)
{
	long drop_after, error_after, stall_after;
	int stall_ms;
	int faulted = fault_peek(sqlite3_sql(st), &drop_after, &error_after, &stall_after, &stall_ms);
	int step;
	*rows = 0;
	*attn = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (faulted) {
			if (drop_after >= 0 && (long)*rows == drop_after && fault_fire()) {
				tds_flush(c, 0);
				shutdown(c->fd, SHUT_RDWR);
				c->out_broken = 1;
				return -2;
			}
			if (error_after >= 0 && (long)*rows == error_after && fault_fire()) {
				sqlerr_set(e, 1205, 13,
				           "Transaction (Process ID %d) was deadlocked on lock resources with another "
				           "process and has been chosen as the deadlock victim. Rerun the transaction.",
				           c->spid);
				return -1;
			}
			if (stall_after >= 0 && (long)*rows == stall_after && fault_fire()) {
				tds_flush(c, 0);
				/* A real server's wait (a lock, a slow plan) ends at an
				 * ATTENTION: sleep in slices, watching for one. */
				for (int slept = 0; slept < stall_ms; slept += 20) {
					if (tds_attention_pending(c)) {
						*attn = 1;
						return 0;
					}
					usleep(20 * 1000);
				}
			}
		}
		if (tok_row(c, plan->cols, plan->ncols, st, 0, e))
			return -1;
		(*rows)++;
		if ((*rows & 255) == 0 && tds_attention_pending(c)) {
			*attn = 1;
			return 0;
		}
		if (c->out_broken)
			return -2;
	}
	if (step != SQLITE_DONE) {
		sqlite_error(c, e, NULL);
		return -1;
	}
	return 0;
}

static int
exec_select(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct xlate x = {.c = c, .e = e};
	struct select_plan plan = {0};
	struct table_info t = {0};
	int has_table, rc = -1;
	if (build_select(c, s, &x, &plan, &t, &has_table))
		goto out;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, plan.sql, -1, &st, NULL) != SQLITE_OK || bind_all(&x, st)) {
		sqlite_error(c, e, NULL);
		sqlite3_finalize(st);
		goto out;
	}
	if (plan.assign) {
		int step;
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			for (int i = 0; i < plan.ncols; i++) {
				struct value v;
				if (value_from_storage(sqlite3_column_value(st, i), &plan.cols[i].type, &v, e) == 0) {
					set_variable(c, plan.assign_vars[i], &v, &plan.cols[i].type);
					value_clear(&v);
				}
			}
		}
		sqlite3_finalize(st);
		done(c, DONE_COUNT, CMD_SELECT, 0);
		rc = 0;
		goto out;
	}
	tok_colmetadata(c, plan.cols, plan.ncols);
	if (c->fmtonly) {
		sqlite3_finalize(st);
		done(c, 0, CMD_SELECT, 0);
		rc = 0;
		goto out;
	}
	uint64_t rows;
	int attn;
	rc = stream_rows(c, st, &plan, e, &rows, &attn);
	sqlite3_finalize(st);
	if (rc == -2)
		goto out;
	if (attn) {
		c->attention = 0;
		flush_pending(c, 1);
		tok_done(c, 0xFD, DONE_ATTN, CMD_SELECT, 0);
		rc = 1; /* the batch ends here */
		goto out;
	}
	if (rc == 0) {
		c->rowcount = (long long)rows;
		done(c, DONE_COUNT, CMD_SELECT, rows);
	}
out:
	free(plan.cols);
	free(plan.assign_vars);
	free(plan.sql);
	xlate_free(&x);
	if (has_table || t.cols)
		table_info_free(&t);
	return rc;
}

/* ---- INSERT / UPDATE / DELETE ---- */

static int
check_length(const struct column_info *col, const struct value *v, const struct table_info *t, struct conn *c,
             struct sqlerr *e)
{
	if (v->kind == V_NULL || col->type.len <= 0)
		return 0;
	size_t n = v->len;
	if (type_is_char(col->type.base)) {
		/* characters (UTF-16 units for nchar), not bytes */
		n = 0;
		for (size_t i = 0; i < v->len; i++) {
			unsigned char ch = (unsigned char)v->text[i];
			if ((ch & 0xC0) != 0x80)
				n += (ch >= 0xF0 && type_is_unicode(col->type.base)) ? 2 : 1;
		}
		/* trailing blanks beyond the length are dropped, as SQL Server does */
		size_t trail = 0;
		while (trail < v->len && v->text[v->len - 1 - trail] == ' ')
			trail++;
		if (n > (size_t)col->type.len && n - trail <= (size_t)col->type.len)
			return 0;
	} else if (!type_is_binary(col->type.base)) {
		return 0;
	}
	if (n > (size_t)col->type.len) {
		sqlerr_set(e, 2628, 16,
		           "String or binary data would be truncated in table '%s.%s.%s', column '%s'. Truncated "
		           "value: '%.*s'.",
		           c->database, t->schema, t->name, col->name,
		           type_is_char(col->type.base) ? (int)(col->type.len < 40 ? col->type.len : 40) : 0,
		           type_is_char(col->type.base) ? v->text : "");
		return -1;
	}
	return 0;
}

static int
not_null_error(struct conn *c, const struct table_info *t, const char *col, const char *what, struct sqlerr *e)
{
	sqlerr_set(e, 515, 16,
	           "Cannot insert the value NULL into column '%s', table '%s.%s.%s'; column does not allow nulls. %s "
	           "fails.",
	           col, c->database, t->schema, t->name, what);
	return -1;
}

/* The value of one column for one inserted row, converted to its type. */
static int
insert_value(struct conn *c, struct table_info *t, struct column_info *col, struct expr *ex, struct value *v,
             struct sqlerr *e)
{
	struct stype ty;
	memset(v, 0, sizeof *v);
	if (col->type.base == T_ROWVERSION) {
		uint64_t rv = c->in_tran ? txn_rowversion(c) : next_rowversion();
		v->kind = V_BLOB;
		v->blob = malloc(8);
		v->len = 8;
		for (int i = 0; i < 8; i++)
			v->blob[i] = (unsigned char)(rv >> (56 - 8 * i));
		return 0;
	}
	if (col->identity) {
		v->kind = V_INT;
		v->i = catalog_next_identity(c->db, t);
		return 0;
	}
	if (!ex && col->dflt[0]) {
		struct batch b;
		char *sql = strfmt("SELECT %s", col->dflt);
		int rc = parse_batch(sql, &b, e);
		free(sql);
		if (rc)
			return -1;
		rc = eval_const(c, b.stmts[0].items[0].e, v, &ty, e);
		batch_free(&b);
		if (rc)
			return -1;
	} else if (ex) {
		if (eval_const(c, ex, v, &ty, e))
			return -1;
	} else {
		ty.base = T_NULL;
	}
	if (v->kind == V_NULL) {
		if (!col->nullable)
			return not_null_error(c, t, col->name, "INSERT", e);
		return 0;
	}
	if (value_convert(v, &ty, &col->type, e))
		return -1;
	return check_length(col, v, t, c, e);
}

/* An open transaction's INSERT: its values now (rowversion, SYSUTCDATETIME()
 * as of the statement), its rows written when the transaction commits. */
static int
hold_rows(struct conn *c, struct stmt *s, struct table_info *t, const int *map, const char *sql, struct sqlerr *e)
{
	uint64_t rows = 0;
	for (int r = 0; r < s->nrows; r++) {
		if (c->nheld == c->held_cap) {
			c->held_cap = c->held_cap ? 2 * c->held_cap : 16;
			c->held = realloc(c->held, (size_t)c->held_cap * sizeof *c->held);
		}
		struct held_row *h = &c->held[c->nheld];
		*h = (struct held_row){.sql = strdup(sql),
		                       .vals = calloc((size_t)t->ncols, sizeof *h->vals),
		                       .types = calloc((size_t)t->ncols, sizeof *h->types),
		                       .n = t->ncols};
		snprintf(h->schema, sizeof h->schema, "%s", t->schema);
		snprintf(h->name, sizeof h->name, "%s", t->name);
		c->nheld++;
		for (int i = 0; i < t->ncols; i++) {
			struct expr *ex = map[i] && s->rows[r] ? s->rows[r][map[i] - 1] : NULL;
			h->types[i] = t->cols[i].type;
			if (insert_value(c, t, &t->cols[i], ex, &h->vals[i], e))
				return -1;
		}
		rows++;
	}
	c->rowcount = (long long)rows;
	done(c, DONE_COUNT, CMD_INSERT, rows);
	return 0;
}

static void
drop_held(struct conn *c)
{
	for (int k = 0; k < c->nheld; k++) {
		for (int i = 0; i < c->held[k].n; i++)
			value_clear(&c->held[k].vals[i]);
		free(c->held[k].vals);
		free(c->held[k].types);
		free(c->held[k].sql);
	}
	free(c->held);
	c->held = NULL;
	c->nheld = c->held_cap = 0;
}

/* Take SQLite's write lock for the open transaction and write what it
 * held; on an error (a duplicate key) nothing of it stays. */
static int
lock_transaction(struct conn *c, struct sqlerr *e)
{
	if (c->tran_locked)
		return 0;
	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite_error(c, e, NULL);
		return -1;
	}
	c->tran_locked = 1;
	for (int k = 0; k < c->nheld; k++) {
		struct held_row *h = &c->held[k];
		struct table_info t = {0};
		snprintf(t.schema, sizeof t.schema, "%s", h->schema);
		snprintf(t.name, sizeof t.name, "%s", h->name);
		sqlite3_stmt *st = NULL;
		int ok = sqlite3_prepare_v2(c->db, h->sql, -1, &st, NULL) == SQLITE_OK;
		for (int i = 0; ok && i < h->n; i++)
			value_bind(st, i + 1, &h->vals[i], &h->types[i]);
		ok = ok && sqlite3_step(st) == SQLITE_DONE;
		if (!ok)
			sqlite_error(c, e, &t);
		sqlite3_finalize(st);
		if (!ok) {
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			c->tran_locked = 0;
			drop_held(c);
			return -1;
		}
	}
	drop_held(c);
	return 0;
}

void
exec_session_end(struct conn *c)
{
	if (c->in_tran && c->tran_locked && c->db)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	if (c->in_tran)
		txn_end(c);
	drop_held(c);
	c->in_tran = c->tran_locked = 0;
}

static int
exec_insert(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct table_info t;
	char storage[700];
	if (resolve_table(c, &s->from, &t, storage, sizeof storage, e))
		return -1;
	int rc = -1, ncols = t.ncols;
	int *map = calloc((size_t)ncols, sizeof *map); /* table column -> value index + 1 */
	int nvalues = s->ncols < 0 ? -s->ncols : s->ncols;
	if (t.is_view) {
		sqlerr_set(e, 4406, 16,
		           "Update or insert of view or function '%s' failed because it contains a derived or constant "
		           "field.",
		           t.name);
		goto out;
	}
	if (s->ncols > 0) {
		for (int i = 0; i < s->ncols; i++) {
			struct column_info *col = find_column(&t, s->cols[i]);
			if (!col) {
				sqlerr_set(e, 207, 16, "Invalid column name '%s'.", s->cols[i]);
				goto out;
			}
			if (col->identity) {
				sqlerr_set(e, 544, 16,
				           "Cannot insert explicit value for identity column in table '%s' when "
				           "IDENTITY_INSERT is set to OFF.",
				           t.name);
				goto out;
			}
			if (col->type.base == T_ROWVERSION) {
				sqlerr_set(e, 273, 16,
				           "Cannot insert an explicit value into a timestamp column. Use INSERT with a "
				           "column list to exclude the timestamp column, or insert a DEFAULT into the "
				           "timestamp column.");
				goto out;
			}
			map[col - t.cols] = i + 1;
		}
	} else if (s->rows[0]) {
		int k = 0;
		for (int i = 0; i < ncols; i++)
			if (!t.cols[i].identity && t.cols[i].type.base != T_ROWVERSION)
				map[i] = ++k;
		if (k != nvalues) {
			sqlerr_set(e, 213, 16,
			           "Column name or number of supplied values does not match table definition.");
			goto out;
		}
	}
	char *names = strdup(""), *marks = strdup("");
	for (int i = 0; i < ncols; i++) {
		char *q = quote_ident(t.cols[i].name);
		char *n2 = strfmt("%s%s%s", names, i ? ", " : "", q),
		     *m2 = strfmt("%s%s?%d", marks, i ? ", " : "", i + 1);
		free(q);
		free(names);
		free(marks);
		names = n2;
		marks = m2;
	}
	char *sql = strfmt("INSERT INTO %s (%s) VALUES (%s)", storage, names, marks);
	free(names);
	free(marks);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite_error(c, e, &t);
		free(sql);
		goto out;
	}
	if (c->in_tran && !c->tran_locked) {
		sqlite3_finalize(st);
		rc = hold_rows(c, s, &t, map, sql, e);
		free(sql);
		goto out;
	}
	free(sql);
	sqlite3_exec(c->db, "SAVEPOINT tds_stmt", NULL, NULL, NULL);
	uint64_t rows = 0;
	int ok = 1;
	for (int r = 0; r < s->nrows && ok; r++) {
		sqlite3_reset(st);
		for (int i = 0; i < ncols && ok; i++) {
			struct value v;
			struct expr *ex = map[i] && s->rows[r] ? s->rows[r][map[i] - 1] : NULL;
			if (insert_value(c, &t, &t.cols[i], ex, &v, e)) {
				ok = 0;
				break;
			}
			value_bind(st, i + 1, &v, &t.cols[i].type);
			value_clear(&v);
		}
		if (ok && sqlite3_step(st) != SQLITE_DONE) {
			sqlite_error(c, e, &t);
			ok = 0;
		}
		rows += (uint64_t)ok;
	}
	sqlite3_finalize(st);
	if (ok) {
		sqlite3_exec(c->db, "RELEASE tds_stmt", NULL, NULL, NULL);
		c->rowcount = (long long)rows;
		done(c, DONE_COUNT, CMD_INSERT, rows);
		rc = 0;
	} else {
		sqlite3_exec(c->db, "ROLLBACK TO tds_stmt; RELEASE tds_stmt", NULL, NULL, NULL);
	}
out:
	free(map);
	table_info_free(&t);
	return rc;
}

static int
exec_update_delete(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct table_info t;
	char storage[700];
	if (resolve_table(c, &s->from, &t, storage, sizeof storage, e))
		return -1;
	struct xlate x = {.c = c, .t = &t, .e = e};
	int rc = -1;
	char *sets = strdup("");
	if (s->kind == S_UPDATE) {
		for (int i = 0; i < s->ncols; i++) {
			struct column_info *col = find_column(&t, s->cols[i]);
			struct frag f;
			if (!col) {
				sqlerr_set(e, 207, 16, "Invalid column name '%s'.", s->cols[i]);
				goto out;
			}
			if (col->identity || col->type.base == T_ROWVERSION) {
				sqlerr_set(e, 8102, 16, "Cannot update identity column '%s'.", col->name);
				goto out;
			}
			if (translate(&x, s->set_vals[i], &f))
				goto out;
			if (f.t.base == T_NULL && !col->nullable) {
				frag_free(&f);
				not_null_error(c, &t, col->name, "UPDATE", e);
				goto out;
			}
			if ((f.t.base != col->type.base || f.is_lit) && convert_frag(&x, &f, &col->type)) {
				frag_free(&f);
				goto out;
			}
			if (f.is_lit && check_length(col, &f.lit, &t, c, e)) {
				frag_free(&f);
				goto out;
			}
			char *q = quote_ident(col->name), *v = emit(&x, &f);
			char *guarded = col->nullable ? strdup(v) : strfmt("tds_notnull(%s, '%s')", v, col->name);
			char *joined = strfmt("%s%s%s = %s", sets, *sets ? ", " : "", q, guarded);
			free(q);
			free(v);
			free(guarded);
			free(sets);
			sets = joined;
			frag_free(&f);
		}
		for (int i = 0; i < t.ncols; i++) {
			if (t.cols[i].type.base == T_ROWVERSION) {
				char *q = quote_ident(t.cols[i].name);
				char *joined = strfmt("%s, %s = tds_rowversion()", sets, q);
				free(q);
				free(sets);
				sets = joined;
			}
		}
	}
	char *where = NULL;
	if (s->where) {
		struct frag f;
		if (translate(&x, s->where, &f))
			goto out;
		where = emit(&x, &f);
		frag_free(&f);
	}
	char *sql = s->kind == S_UPDATE
	                    ? strfmt("UPDATE %s SET %s%s%s", storage, sets, where ? " WHERE " : "", where ? where : "")
	                    : strfmt("DELETE FROM %s%s%s", storage, where ? " WHERE " : "", where ? where : "");
	free(where);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK || bind_all(&x, st)) {
		sqlite_error(c, e, &t);
	} else {
		sqlite3_exec(c->db, "SAVEPOINT tds_stmt", NULL, NULL, NULL);
		if (sqlite3_step(st) == SQLITE_DONE) {
			sqlite3_exec(c->db, "RELEASE tds_stmt", NULL, NULL, NULL);
			uint64_t n = (uint64_t)sqlite3_changes(c->db);
			c->rowcount = (long long)n;
			done(c, DONE_COUNT, s->kind == S_UPDATE ? CMD_UPDATE : CMD_DELETE, n);
			rc = 0;
		} else {
			const char *msg = sqlite3_errmsg(c->db);
			if (strstr(msg, "515|"))
				not_null_error(c, &t, strchr(msg, '|') + 1, "UPDATE", e);
			else
				sqlite_error(c, e, &t);
			sqlite3_exec(c->db, "ROLLBACK TO tds_stmt; RELEASE tds_stmt", NULL, NULL, NULL);
		}
	}
	sqlite3_finalize(st);
	free(sql);
out:
	free(sets);
	xlate_free(&x);
	table_info_free(&t);
	return rc;
}

/* ---- variables, options, transactions ---- */

static int
exec_declare(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	for (int i = 0; i < s->nvars; i++) {
		if (find_var(c, s->vars[i])) {
			sqlerr_set(e, 134, 15,
			           "The variable name '%s' has already been declared. Variable names must be unique "
			           "within a query batch or stored procedure.",
			           s->vars[i]);
			return -1;
		}
		c->vars = realloc(c->vars, (size_t)(c->nvars + 1) * sizeof *c->vars);
		struct variable *v = &c->vars[c->nvars++];
		memset(v, 0, sizeof *v);
		snprintf(v->name, sizeof v->name, "%s", s->vars[i]);
		v->type = s->var_types[i];
		if (s->var_vals[i]) {
			struct value val;
			struct stype ty;
			if (eval_const(c, s->var_vals[i], &val, &ty, e))
				return -1;
			if (value_convert(&val, &ty, &v->type, e)) {
				value_clear(&val);
				return -1;
			}
			v->v = val;
		}
	}
	return 0;
}

static int
exec_set_var(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct variable *v = find_var(c, s->vars[0]);
	if (!v) {
		sqlerr_set(e, 137, 15, "Must declare the scalar variable \"%s\".", s->vars[0]);
		return -1;
	}
	struct value val;
	struct stype ty;
	if (eval_const(c, s->var_vals[0], &val, &ty, e))
		return -1;
	if (value_convert(&val, &ty, &v->type, e)) {
		value_clear(&val);
		return -1;
	}
	value_clear(&v->v);
	v->v = val;
	return 0;
}

static int
exec_set_option(struct conn *c, struct stmt *s)
{
	const char *value = s->vars[0];
	int on = !strcasecmp(value, "ON");
	if (!strcasecmp(s->name, "FMTONLY"))
		c->fmtonly = on;
	else if (!strcasecmp(s->name, "NOCOUNT"))
		c->nocount = on;
	else if (!strcasecmp(s->name, "TEXTSIZE"))
		c->textsize = atoll(value) > 0 ? atoll(value) : 0; /* SET TEXTSIZE 0: the default (here: none) */
	/* ANSI_*, QUOTED_IDENTIFIER, DATEFORMAT, LANGUAGE, ARITHABORT,
	 * CONCAT_NULL_YIELDS_NULL, TRANSACTION ISOLATION LEVEL, IMPLICIT_TRANSACTIONS,
	 * LOCK_TIMEOUT, XACT_ABORT: accepted; the stand-in behaves as with the defaults. */
	return 0;
}

/* BEGIN TRAN registers the transaction (txn.c) and takes no lock: its
 * INSERTs are held until COMMIT writes them (lock_transaction), other
 * writes take SQLite's write lock at once. */
static int
exec_transaction(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	if (s->kind == S_BEGIN) {
		if (c->in_tran++ == 0)
			txn_begin(c);
		return 0;
	}
	if (c->in_tran == 0) {
		if (s->kind == S_COMMIT)
			sqlerr_set(e, 3902, 16,
			           "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.");
		else
			sqlerr_set(e, 3903, 16,
			           "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.");
		return -1;
	}
	if (s->kind == S_COMMIT && --c->in_tran > 0)
		return 0;
	int rc = 0;
	if (s->kind == S_COMMIT && !c->tran_locked && c->nheld)
		rc = lock_transaction(c, e);
	if (c->tran_locked)
		sqlite3_exec(c->db, s->kind == S_COMMIT && !rc ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	drop_held(c);
	c->in_tran = c->tran_locked = 0;
	txn_end(c);
	if (s->kind == S_ROLLBACK || rc)
		c->have_lsn = 0; /* the changes, and their LSN, are gone */
	return rc;
}

static void
drop_variables(struct conn *c)
{
	for (int i = 0; i < c->nvars; i++)
		value_clear(&c->vars[i].v);
	free(c->vars);
	c->vars = NULL;
	c->nvars = 0;
}

/* Errors that end the statement only; others end the batch, as in SQL Server. */
static int
statement_level(int number)
{
	return number == 2627 || number == 515 || number == 2628 || number == 544 || number == 8102 || number == 273 ||
	       number == 3902 || number == 3903 || number == 8152;
}

static int exec_statement(struct conn *c, struct stmt *s, struct sqlerr *e);

static int
exec_if(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	struct value v;
	struct stype ty;
	if (eval_const(c, s->cond, &v, &ty, e))
		return -1;
	int truth = v.kind == V_INT && v.i;
	value_clear(&v);
	if (truth)
		return exec_statement(c, s->then_stmt, e);
	return 0;
}

/* Statements that write otherwise than by INSERT: inside an explicit
 * transaction they take the write lock first. */
static int
writes_in_place(enum skind kind)
{
	switch (kind) {
	case S_UPDATE:
	case S_DELETE:
	case S_TRUNCATE:
	case S_CREATE_TABLE:
	case S_DROP_TABLE:
	case S_ALTER_ADD:
	case S_ALTER_COLUMN:
	case S_ALTER_DROP:
	case S_CREATE_INDEX:
	case S_CREATE_SCHEMA:
	case S_EXEC:
	case S_INSERT_BULK: return 1;
	default: return 0;
	}
}

static int
exec_statement(struct conn *c, struct stmt *s, struct sqlerr *e)
{
	if (c->in_tran && writes_in_place(s->kind) && lock_transaction(c, e))
		return -1;
	switch (s->kind) {
	case S_SELECT: return exec_select(c, s, e);
	case S_INSERT: return exec_insert(c, s, e);
	case S_UPDATE:
	case S_DELETE: return exec_update_delete(c, s, e);
	case S_TRUNCATE: {
		struct stmt d = *s;
		d.kind = S_DELETE;
		d.where = NULL;
		return exec_update_delete(c, &d, e);
	}
	case S_CREATE_TABLE:
	case S_DROP_TABLE:
	case S_ALTER_ADD:
	case S_ALTER_COLUMN:
	case S_ALTER_DROP: {
		int rc = s->kind == S_CREATE_TABLE ? catalog_create_table(c->db, s, e)
		         : s->kind == S_DROP_TABLE ? catalog_drop_table(c->db, s, e)
		                                   : catalog_alter(c->db, s, e);
		if (rc == 0)
			done(c, 0, 0xC6, 0);
		return rc;
	}
	case S_CREATE_INDEX:
		if (catalog_create_index(c->db, s, e))
			return -1;
		done(c, 0, 0xC6, 0);
		return 0;
	case S_CREATE_SCHEMA:
		if (catalog_create_schema(c->db, s->name, e))
			return -1;
		done(c, 0, 0xC6, 0);
		return 0;
	case S_DECLARE: return exec_declare(c, s, e);
	case S_SET_VAR: return exec_set_var(c, s, e);
	case S_SET_OPTION:
		exec_set_option(c, s);
		done(c, 0, 0xBE, 0);
		return 0;
	case S_USE:
		if (exec_use_database(c, s->name, e))
			return -1;
		done(c, 0, 0xE2, 0);
		return 0;
	case S_BEGIN:
	case S_COMMIT:
	case S_ROLLBACK:
		if (exec_transaction(c, s, e))
			return -1;
		done(c, 0, 0xD4, 0);
		return 0;
	case S_EXEC:
		if (cdc_exec_proc(c, s, e))
			return -1;
		done(c, 0, 0xE0, 0);
		return 0;
	case S_IF: return exec_if(c, s, e);
	case S_INSERT_BULK: return exec_insert_bulk_begin(c, s, e);
	}
	return 0;
}

int
exec_batch(struct conn *c, const char *sql)
{
	struct batch b;
	struct sqlerr e = {0};
	int failed = 0, cancelled = 0;
	c->pending.valid = 0;
	if (parse_batch(sql, &b, &e)) {
		tok_error(c, &e);
		if (c->in_rpc)
			tok_rpc_end(c, 1);
		else
			tok_done(c, 0xFD, DONE_ERROR, 0, 0);
		drop_variables(c);
		return tds_flush(c, 1);
	}
	for (int i = 0; i < b.n; i++) {
		memset(&e, 0, sizeof e);
		int rc = exec_statement(c, &b.stmts[i], &e);
		if (rc == -2 || c->out_broken)
			break; /* connection dropped on purpose, or lost */
		if (rc == 1) {
			cancelled = 1; /* attention acknowledged: that DONE ends the batch */
			break;
		}
		if (rc < 0) {
			failed = 1;
			flush_pending(c, 1);
			tok_error(c, &e);
			done(c, DONE_ERROR, 0, 0);
			if (!statement_level(e.number))
				break;
		}
		cdc_statement_end(c);
	}
	batch_free(&b);
	drop_variables(c);
	if (c->out_broken)
		return -1;
	if (cancelled) {
		/* nothing more: the client discards up to the DONE with ATTN */
	} else if (c->in_rpc) {
		flush_pending(c, 1);
		tok_rpc_end(c, failed);
	} else if (c->pending.valid) {
		flush_pending(c, 0);
	} else if (!c->attention) {
		tok_done(c, 0xFD, failed ? DONE_ERROR : 0, 0, 0);
	}
	return tds_flush(c, 1);
}

int
exec_use_database(struct conn *c, const char *name, struct sqlerr *e)
{
	char path[4200];
	int ok = 0;
	for (int i = 0; i < server.ndatabases; i++)
		if (!strcasecmp(server.databases[i], name)) {
			name = server.databases[i];
			ok = 1;
		}
	if (!ok) {
		sqlerr_set(e, 911, 16, "Database '%s' does not exist. Make sure that the name is entered correctly.",
		           name);
		return -1;
	}
	snprintf(path, sizeof path, "%.4000s/%.128s.sqlite", server.dir, name);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlerr_set(e, 4060, 11, "Cannot open database \"%s\" requested by the login.", name);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 30000);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF", NULL, NULL, NULL);
	types_register(db);
	cdc_register(db, c);
	if (c->db)
		sqlite3_close(c->db);
	c->db = db;
	snprintf(c->database, sizeof c->database, "%.128s", name);
	return 0;
}
