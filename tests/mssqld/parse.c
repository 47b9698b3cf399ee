/*
 * parse.c: recursive descent over the T-SQL subset the stand-in runs.
 * Anything outside it is a syntax error (102, or 156 near a keyword), as
 * SQL Server reports it: the stand-in never guesses at a statement.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mssqld.h"

struct parser {
	struct lexer lx;
	struct sqlerr *e;
	jmp_buf fail;
};

static const char *const reserved[] = {
	"ADD",      "ALL",    "ALTER",  "AND",         "AS",       "ASC",     "BEGIN",    "BETWEEN", "BY",     "CASE",
	"CHECK",    "COLUMN", "COMMIT", "CONSTRAINT",  "CONVERT",  "CREATE",  "DECLARE",  "DEFAULT", "DELETE", "DESC",
	"DISTINCT", "DROP",   "ELSE",   "END",         "EXEC",     "EXECUTE", "EXISTS",   "FROM",    "GROUP",  "HAVING",
	"IDENTITY", "IF",     "IN",     "INSERT",      "INTO",     "IS",      "JOIN",     "KEY",     "LIKE",   "NOT",
	"NULL",     "ON",     "OR",     "ORDER",       "PRIMARY",  "PRINT",   "ROLLBACK", "SELECT",  "SET",    "TABLE",
	"THEN",     "TOP",    "TRAN",   "TRANSACTION", "TRUNCATE", "UNION",   "UPDATE",   "USE",     "VALUES", "WHEN",
	"WHERE",    "WITH",   "WHILE",  "CAST",        NULL};

static int
is_reserved(const char *w)
{
	for (const char *const *r = reserved; *r; r++)
		if (!strcasecmp(*r, w))
			return 1;
	return 0;
}

static struct token *
peek(struct parser *p)
{
	return &p->lx.toks[p->lx.at];
}

static struct token *
peek2(struct parser *p)
{
	return &p->lx.toks[p->lx.at + (p->lx.toks[p->lx.at].kind == TK_EOF ? 0 : 1)];
}

static struct token *
next(struct parser *p)
{
	struct token *t = peek(p);
	if (t->kind != TK_EOF)
		p->lx.at++;
	return t;
}

static _Noreturn void
syntax_error(struct parser *p)
{
	struct token *t = peek(p);
	if (t->kind == TK_EOF && p->lx.at > 0)
		t = &p->lx.toks[p->lx.at - 1];
	if (t->kind == TK_IDENT && is_reserved(t->text))
		sqlerr_set(p->e, 156, 15, "Incorrect syntax near the keyword '%s'.", t->text);
	else if (t->kind == TK_STRING || t->kind == TK_NSTRING)
		sqlerr_set(p->e, 102, 15, "Incorrect syntax near '%.100s'.", t->text);
	else
		sqlerr_set(p->e, 102, 15, "Incorrect syntax near '%.100s'.", *t->text ? t->text : ";");
	p->e->state = t->line; /* kept for the line number in the ERROR token */
	longjmp(p->fail, 1);
}

static int
is_word(struct token *t, const char *w)
{
	return t->kind == TK_IDENT && !strcasecmp(t->text, w);
}

static int
accept_word(struct parser *p, const char *w)
{
	if (is_word(peek(p), w)) {
		next(p);
		return 1;
	}
	return 0;
}

static void
expect_word(struct parser *p, const char *w)
{
	if (!accept_word(p, w))
		syntax_error(p);
}

static int
is_op(struct token *t, const char *op)
{
	return t->kind == TK_OP && !strcmp(t->text, op);
}

static int
accept_op(struct parser *p, const char *op)
{
	if (is_op(peek(p), op)) {
		next(p);
		return 1;
	}
	return 0;
}

static void
expect_op(struct parser *p, const char *op)
{
	if (!accept_op(p, op))
		syntax_error(p);
}

/* An identifier: plain (not reserved) or quoted. */
static char *
ident(struct parser *p)
{
	struct token *t = peek(p);
	if (t->kind == TK_QIDENT || (t->kind == TK_IDENT && !is_reserved(t->text))) {
		next(p);
		return strdup(t->text);
	}
	syntax_error(p);
}

static void *
grow(void *arr, int n, size_t size)
{
	/* Arrays grow by doubling at powers of two. */
	if (n == 0 || (n & (n - 1)) == 0)
		arr = realloc(arr, (size_t)(n ? n * 2 : 1) * size);
	return arr;
}

#define APPEND(arr, n, val)                              \
	do {                                             \
		(arr) = grow((arr), (n), sizeof *(arr)); \
		(arr)[(n)++] = (val);                    \
	} while (0)

/* ---- types ---- */

static struct stype
parse_type(struct parser *p)
{
	struct token *t = peek(p);
	if (t->kind != TK_IDENT && t->kind != TK_QIDENT)
		syntax_error(p);
	char *name = strdup(next(p)->text);
	/* "double precision" and "national character varying" are rare; skip. */
	long args[2];
	int nargs = 0;
	if (accept_op(p, "(")) {
		do {
			struct token *a = next(p);
			if (is_word(a, "max"))
				args[nargs++] = -1;
			else if (a->kind == TK_INT && nargs < 2)
				args[nargs++] = atol(a->text);
			else
				syntax_error(p);
		} while (nargs < 2 && accept_op(p, ","));
		expect_op(p, ")");
	}
	struct stype ty;
	int rc = type_from_name(name, nargs, args, &ty);
	if (rc == -1) {
		sqlerr_set(p->e, 2715, 16, "Column, parameter, or variable #1: Cannot find data type %s.", name);
		free(name);
		longjmp(p->fail, 1);
	}
	if (rc == -2) {
		sqlerr_set(p->e, 2750, 16,
		           "Column or parameter #1: Specified column precision or length is not valid for type %s.",
		           name);
		free(name);
		longjmp(p->fail, 1);
	}
	free(name);
	return ty;
}

/* ---- expressions ---- */

static struct expr *
new_expr(enum ekind k)
{
	struct expr *x = calloc(1, sizeof *x);
	x->kind = k;
	x->style = -1;
	return x;
}

void
expr_free(struct expr *x)
{
	if (!x)
		return;
	free(x->name);
	free(x->qual);
	value_clear(&x->lit);
	for (int i = 0; i < x->nargs; i++)
		expr_free(x->args[i]);
	free(x->args);
	free(x);
}

static struct expr *parse_expr(struct parser *p);

static struct expr *
binary(const char *op, struct expr *a, struct expr *b)
{
	struct expr *x = new_expr(E_BINARY);
	x->name = strdup(op);
	APPEND(x->args, x->nargs, a);
	APPEND(x->args, x->nargs, b);
	return x;
}

static void
parse_args(struct parser *p, struct expr *x)
{
	expect_op(p, "(");
	if (accept_op(p, ")"))
		return;
	do
		APPEND(x->args, x->nargs, parse_expr(p));
	while (accept_op(p, ","));
	expect_op(p, ")");
}

static struct expr *
literal_from(struct parser *p, struct token *t)
{
	struct expr *x = new_expr(E_LIT);
	switch (t->kind) {
	case TK_STRING:
	case TK_NSTRING:
		x->lit.kind = V_TEXT;
		x->lit.text = strdup(t->text);
		x->lit.len = strlen(t->text);
		literal_type(&x->lit, &x->type);
		if (t->kind == TK_NSTRING) {
			x->type.base = T_NVARCHAR;
			x->type.len = x->lit.len > 4000 ? -1 : (x->lit.len ? (int)x->lit.len : 1);
		}
		break;
	case TK_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(t->text, &end, 10);
		if (errno == ERANGE) {
			/* Too large for bigint: a numeric literal. */
			struct value dv = {.kind = V_TEXT, .text = t->text, .len = strlen(t->text)};
			struct stype to = {.base = T_NUMERIC, .prec = 38, .scale = 0};
			struct value tmp = {0};
			tmp.kind = V_TEXT;
			tmp.text = strdup(dv.text);
			tmp.len = dv.len;
			if (value_convert(&tmp, NULL, &to, p->e))
				longjmp(p->fail, 1);
			x->lit = tmp;
		} else {
			x->lit.kind = V_INT;
			x->lit.i = v;
		}
		literal_type(&x->lit, &x->type);
		break;
	}
	case TK_DEC: {
		struct stype to = {.base = T_NUMERIC, .prec = 38, .scale = 0};
		const char *dot = strchr(t->text, '.');
		to.scale = dot ? (int)strlen(dot + 1) : 0;
		if (to.scale > 38)
			to.scale = 38;
		x->lit.kind = V_TEXT;
		x->lit.text = strdup(t->text);
		x->lit.len = strlen(t->text);
		if (value_convert(&x->lit, NULL, &to, p->e))
			longjmp(p->fail, 1);
		literal_type(&x->lit, &x->type);
		break;
	}
	case TK_FLOAT:
		x->lit.kind = V_REAL;
		x->lit.r = strtod(t->text, NULL);
		literal_type(&x->lit, &x->type);
		break;
	case TK_BINARY: {
		size_t n = strlen(t->text);
		x->lit.kind = V_BLOB;
		x->lit.len = (n + 1) / 2;
		x->lit.blob = malloc(x->lit.len + 1);
		for (size_t i = 0; i < x->lit.len; i++) {
			/* An odd digit count means a leading 0. */
			char hex[3] = {0};
			size_t at = n % 2 ? (i == 0 ? 0 : 2 * i - 1) : 2 * i;
			if (n % 2 && i == 0)
				hex[0] = t->text[0];
			else
				hex[0] = t->text[at], hex[1] = t->text[at + 1];
			x->lit.blob[i] = (unsigned char)strtol(hex, NULL, 16);
		}
		literal_type(&x->lit, &x->type);
		break;
	}
	default: free(x); syntax_error(p);
	}
	return x;
}

/* name, name.name, ... for columns and functions */
static char *
dotted(struct parser *p, char **last_qual)
{
	char *parts[4];
	int n = 0;
	parts[n++] = ident(p);
	while (n < 4 && is_op(peek(p), ".")) {
		next(p);
		parts[n++] = ident(p);
	}
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += strlen(parts[i]) + 1;
	char *full = malloc(len + 1);
	full[0] = '\0';
	for (int i = 0; i < n; i++) {
		strcat(full, parts[i]);
		if (i < n - 1)
			strcat(full, ".");
	}
	if (last_qual)
		*last_qual = n > 1 ? strdup(parts[n - 2]) : NULL;
	for (int i = 0; i < n; i++)
		free(parts[i]);
	return full;
}

static struct expr *
parse_primary(struct parser *p)
{
	struct token *t = peek(p);
	if (accept_op(p, "(")) {
		struct expr *x = parse_expr(p);
		expect_op(p, ")");
		return x;
	}
	if (t->kind == TK_VAR) {
		next(p);
		struct expr *x = new_expr(t->text[1] == '@' ? E_GLOBAL : E_VAR);
		x->name = strdup(t->text);
		return x;
	}
	if (t->kind != TK_IDENT && t->kind != TK_QIDENT)
		return literal_from(p, next(p));
	if (is_word(t, "NULL")) {
		next(p);
		struct expr *x = new_expr(E_LIT);
		x->type.base = T_NULL;
		return x;
	}
	if (is_word(t, "CAST") && is_op(peek2(p), "(")) {
		next(p);
		expect_op(p, "(");
		struct expr *x = new_expr(E_CAST);
		APPEND(x->args, x->nargs, parse_expr(p));
		expect_word(p, "AS");
		x->type = parse_type(p);
		expect_op(p, ")");
		return x;
	}
	if (is_word(t, "CONVERT") && is_op(peek2(p), "(")) {
		next(p);
		expect_op(p, "(");
		struct expr *x = new_expr(E_CAST);
		x->type = parse_type(p);
		expect_op(p, ",");
		APPEND(x->args, x->nargs, parse_expr(p));
		if (accept_op(p, ",")) {
			struct token *s = next(p);
			if (s->kind != TK_INT)
				syntax_error(p);
			x->style = atoi(s->text);
		}
		expect_op(p, ")");
		return x;
	}
	if (t->kind == TK_IDENT && is_reserved(t->text) && !is_op(peek2(p), "("))
		syntax_error(p);
	char *qual = NULL;
	char *name;
	if (t->kind == TK_IDENT && is_reserved(t->text)) {
		name = strdup(next(p)->text); /* a keyword used as a function: LEFT(...) */
	} else {
		name = dotted(p, &qual);
	}
	if (is_op(peek(p), "(")) {
		struct expr *x = new_expr(E_FUNC);
		x->name = name;
		free(qual);
		if (is_op(peek2(p), "*")) {
			next(p);
			next(p);
			expect_op(p, ")");
			x->star = 1;
		} else {
			parse_args(p, x);
		}
		return x;
	}
	struct expr *x = new_expr(E_COL);
	/* "a.b.c": the column is the last part, the table the one before. */
	char *dot = strrchr(name, '.');
	x->name = strdup(dot ? dot + 1 : name);
	x->qual = qual;
	free(name);
	return x;
}

static struct expr *
parse_unary(struct parser *p)
{
	if (accept_op(p, "-")) {
		struct expr *a = parse_unary(p);
		if (a->kind == E_LIT && a->lit.kind == V_INT) {
			a->lit.i = -a->lit.i;
			literal_type(&a->lit, &a->type);
			return a;
		}
		if (a->kind == E_LIT && (a->lit.kind == V_DEC || a->lit.kind == V_REAL)) {
			a->lit.neg = !a->lit.neg;
			a->lit.r = -a->lit.r;
			return a;
		}
		struct expr *x = new_expr(E_UNARY);
		x->name = strdup("-");
		APPEND(x->args, x->nargs, a);
		return x;
	}
	accept_op(p, "+");
	return parse_primary(p);
}

static struct expr *
parse_mul(struct parser *p)
{
	struct expr *x = parse_unary(p);
	while (is_op(peek(p), "*") || is_op(peek(p), "/") || is_op(peek(p), "%")) {
		char op[2] = {next(p)->text[0], 0};
		x = binary(op, x, parse_unary(p));
	}
	return x;
}

static struct expr *
parse_add(struct parser *p)
{
	struct expr *x = parse_mul(p);
	while (is_op(peek(p), "+") || is_op(peek(p), "-")) {
		char op[2] = {next(p)->text[0], 0};
		x = binary(op, x, parse_mul(p));
	}
	return x;
}

static struct expr *
parse_comparison(struct parser *p)
{
	struct expr *x = parse_add(p);
	static const char *const ops[] = {"=", "<>", "!=", "<", ">", "<=", ">=", "!<", "!>", NULL};
	for (const char *const *op = ops; *op; op++) {
		if (is_op(peek(p), *op)) {
			next(p);
			const char *o = !strcmp(*op, "!=")   ? "<>"
			                : !strcmp(*op, "!<") ? ">="
			                : !strcmp(*op, "!>") ? "<="
			                                     : *op;
			return binary(o, x, parse_add(p));
		}
	}
	if (accept_word(p, "IS")) {
		struct expr *n = new_expr(E_ISNULL);
		n->negate = accept_word(p, "NOT");
		expect_word(p, "NULL");
		APPEND(n->args, n->nargs, x);
		return n;
	}
	int negate = 0;
	if (is_word(peek(p), "NOT") && (is_word(peek2(p), "IN") || is_word(peek2(p), "BETWEEN"))) {
		next(p);
		negate = 1;
	}
	if (accept_word(p, "IN")) {
		struct expr *n = new_expr(E_IN);
		n->negate = negate;
		APPEND(n->args, n->nargs, x);
		expect_op(p, "(");
		do
			APPEND(n->args, n->nargs, parse_expr(p));
		while (accept_op(p, ","));
		expect_op(p, ")");
		return n;
	}
	if (accept_word(p, "BETWEEN")) {
		struct expr *n = new_expr(E_BETWEEN);
		n->negate = negate;
		APPEND(n->args, n->nargs, x);
		APPEND(n->args, n->nargs, parse_add(p));
		expect_word(p, "AND");
		APPEND(n->args, n->nargs, parse_add(p));
		return n;
	}
	if (negate)
		syntax_error(p);
	return x;
}

static struct expr *
parse_not(struct parser *p)
{
	if (accept_word(p, "NOT")) {
		struct expr *x = new_expr(E_UNARY);
		x->name = strdup("NOT");
		APPEND(x->args, x->nargs, parse_not(p));
		return x;
	}
	return parse_comparison(p);
}

static struct expr *
parse_and(struct parser *p)
{
	struct expr *x = parse_not(p);
	while (accept_word(p, "AND"))
		x = binary("AND", x, parse_not(p));
	return x;
}

static struct expr *
parse_expr(struct parser *p)
{
	struct expr *x = parse_and(p);
	while (accept_word(p, "OR"))
		x = binary("OR", x, parse_and(p));
	return x;
}

/* ---- statements ---- */

static int
stmt_start(struct token *t)
{
	static const char *const words[] = {"SELECT",   "INSERT",   "UPDATE", "DELETE", "CREATE",  "DROP",  "ALTER",
	                                    "DECLARE",  "SET",      "USE",    "EXEC",   "EXECUTE", "BEGIN", "COMMIT",
	                                    "ROLLBACK", "TRUNCATE", "IF",     "PRINT",  "WHILE",   NULL};
	if (t->kind != TK_IDENT)
		return 0;
	for (const char *const *w = words; *w; w++)
		if (!strcasecmp(*w, t->text))
			return 1;
	return 0;
}

static void
parse_tablename(struct parser *p, struct tableref *r)
{
	char *parts[3];
	int n = 0;
	parts[n++] = ident(p);
	while (n < 3 && accept_op(p, "."))
		parts[n++] = is_op(peek(p), ".") ? strdup("") : ident(p);
	r->name = parts[n - 1];
	r->schema = n >= 2 ? parts[n - 2] : NULL;
	r->db = n == 3 ? parts[0] : NULL;
	if (r->schema && !*r->schema) {
		free(r->schema);
		r->schema = NULL;
	}
}

static void
parse_from(struct parser *p, struct stmt *s)
{
	parse_tablename(p, &s->from);
	s->has_from = 1;
	if (is_op(peek(p), "(")) {
		struct expr tmp = {0};
		parse_args(p, &tmp);
		s->from.args = tmp.args;
		s->from.nargs = tmp.nargs;
		s->from.is_func = 1;
	}
	if (accept_word(p, "AS") || (peek(p)->kind == TK_QIDENT) ||
	    (peek(p)->kind == TK_IDENT && !is_reserved(peek(p)->text) && !stmt_start(peek(p))))
		s->from.alias = ident(p);
	if (accept_word(p, "WITH")) {
		/* Table hints (NOLOCK, READUNCOMMITTED, ...) change nothing here. */
		expect_op(p, "(");
		do
			free(ident(p));
		while (accept_op(p, ","));
		expect_op(p, ")");
	}
}

static void
parse_select(struct parser *p, struct stmt *s)
{
	s->kind = S_SELECT;
	s->top = -1;
	if (accept_word(p, "TOP")) {
		int paren = accept_op(p, "(");
		struct token *t = next(p);
		if (t->kind != TK_INT)
			syntax_error(p);
		s->top = atoi(t->text);
		if (paren)
			expect_op(p, ")");
	}
	do {
		struct select_item it = {0};
		if (accept_op(p, "*")) {
			it.e = new_expr(E_STAR);
		} else if (peek(p)->kind == TK_VAR && peek(p)->text[1] != '@' && is_op(peek2(p), "=")) {
			it.assign_var = strdup(next(p)->text);
			next(p);
			it.e = parse_expr(p);
		} else {
			it.e = parse_expr(p);
			if (accept_word(p, "AS") || peek(p)->kind == TK_QIDENT || peek(p)->kind == TK_STRING ||
			    (peek(p)->kind == TK_IDENT && !is_reserved(peek(p)->text) && !stmt_start(peek(p)))) {
				struct token *a = next(p);
				if (a->kind != TK_IDENT && a->kind != TK_QIDENT && a->kind != TK_STRING)
					syntax_error(p);
				it.alias = strdup(a->text);
			}
		}
		APPEND(s->items, s->nitems, it);
	} while (accept_op(p, ","));
	if (accept_word(p, "FROM"))
		parse_from(p, s);
	if (accept_word(p, "WHERE"))
		s->where = parse_expr(p);
	if (accept_word(p, "ORDER")) {
		expect_word(p, "BY");
		do {
			struct order_item o = {parse_expr(p), 0};
			if (accept_word(p, "DESC"))
				o.desc = 1;
			else
				accept_word(p, "ASC");
			APPEND(s->order, s->norder, o);
		} while (accept_op(p, ","));
	}
}

static void
parse_insert(struct parser *p, struct stmt *s)
{
	s->kind = S_INSERT;
	if (accept_word(p, "BULK")) {
		/* INSERT BULK t (col type, ...) [WITH (...)]: freebcp in */
		s->kind = S_INSERT_BULK;
		parse_tablename(p, &s->from);
		if (accept_op(p, "(")) {
			do {
				struct coldef d = {0};
				d.name = ident(p);
				d.type = parse_type(p);
				if (accept_word(p, "COLLATE"))
					free(ident(p));
				APPEND(s->defs, s->ndefs, d);
			} while (accept_op(p, ","));
			expect_op(p, ")");
		}
		if (accept_word(p, "WITH")) {
			expect_op(p, "(");
			while (!is_op(peek(p), ")") && peek(p)->kind != TK_EOF)
				next(p);
			expect_op(p, ")");
		}
		return;
	}
	accept_word(p, "INTO");
	parse_tablename(p, &s->from);
	if (accept_op(p, "(")) {
		do
			APPEND(s->cols, s->ncols, ident(p));
		while (accept_op(p, ","));
		expect_op(p, ")");
	}
	if (accept_word(p, "DEFAULT")) {
		expect_word(p, "VALUES");
		struct expr **row = NULL;
		APPEND(s->rows, s->nrows, row);
		return;
	}
	expect_word(p, "VALUES");
	do {
		struct expr **row = NULL;
		int n = 0;
		expect_op(p, "(");
		do
			APPEND(row, n, parse_expr(p));
		while (accept_op(p, ","));
		expect_op(p, ")");
		int expected = s->ncols < 0 ? -s->ncols : s->ncols;
		if (s->nrows && n != expected) {
			sqlerr_set(p->e, 110, 15,
			           "There are fewer columns in the INSERT statement than values specified in the "
			           "VALUES clause.");
			longjmp(p->fail, 1);
		}
		APPEND(s->rows, s->nrows, row);
		if (s->nrows == 1 && !s->ncols)
			s->ncols = -n; /* no column list: n values, checked against the table later */
	} while (accept_op(p, ","));
}

static void
parse_update(struct parser *p, struct stmt *s)
{
	s->kind = S_UPDATE;
	parse_tablename(p, &s->from);
	expect_word(p, "SET");
	do {
		APPEND(s->cols, s->ncols, ident(p));
		s->ncols--;
		expect_op(p, "=");
		int n = s->ncols;
		APPEND(s->set_vals, n, parse_expr(p));
		s->ncols++;
	} while (accept_op(p, ","));
	if (accept_word(p, "FROM"))
		syntax_error(p);
	if (accept_word(p, "WHERE"))
		s->where = parse_expr(p);
}

static void
parse_coldef(struct parser *p, struct coldef *d)
{
	memset(d, 0, sizeof *d);
	d->name = ident(p);
	d->type = parse_type(p);
	for (;;) {
		if (accept_word(p, "NOT")) {
			expect_word(p, "NULL");
			d->not_null = 1;
			d->nullable_given = 1;
		} else if (accept_word(p, "NULL")) {
			d->nullable_given = 1;
		} else if (accept_word(p, "PRIMARY")) {
			expect_word(p, "KEY");
			if (!accept_word(p, "CLUSTERED"))
				accept_word(p, "NONCLUSTERED");
			d->primary_key = 1;
		} else if (accept_word(p, "IDENTITY")) {
			d->identity = 1;
			d->seed = d->step = 1;
			if (accept_op(p, "(")) {
				struct expr *a = parse_unary(p);
				expect_op(p, ",");
				struct expr *b = parse_unary(p);
				expect_op(p, ")");
				if (a->kind != E_LIT || a->lit.kind != V_INT || b->kind != E_LIT ||
				    b->lit.kind != V_INT)
					syntax_error(p);
				d->seed = a->lit.i;
				d->step = b->lit.i;
				expr_free(a);
				expr_free(b);
			}
		} else if (accept_word(p, "DEFAULT")) {
			d->dflt = parse_primary(p);
		} else if (accept_word(p, "CONSTRAINT")) {
			free(ident(p));
		} else if (accept_word(p, "COLLATE")) {
			free(ident(p));
		} else {
			break;
		}
	}
}

static void
parse_create(struct parser *p, struct stmt *s)
{
	if (accept_word(p, "SCHEMA")) {
		s->kind = S_CREATE_SCHEMA;
		s->name = ident(p);
		if (accept_word(p, "AUTHORIZATION"))
			free(ident(p));
		return;
	}
	s->unique = accept_word(p, "UNIQUE");
	if (!accept_word(p, "CLUSTERED"))
		accept_word(p, "NONCLUSTERED");
	if (accept_word(p, "INDEX")) {
		s->kind = S_CREATE_INDEX;
		s->name = ident(p);
		expect_word(p, "ON");
		parse_tablename(p, &s->from);
		expect_op(p, "(");
		do {
			s->cols = realloc(s->cols, (size_t)(s->ncols + 1) * sizeof *s->cols);
			s->cols[s->ncols++] = ident(p);
			if (!accept_word(p, "ASC"))
				accept_word(p, "DESC");
		} while (accept_op(p, ","));
		expect_op(p, ")");
		return;
	}
	if (s->unique)
		syntax_error(p);
	expect_word(p, "TABLE");
	s->kind = S_CREATE_TABLE;
	parse_tablename(p, &s->from);
	expect_op(p, "(");
	do {
		if (is_word(peek(p), "CONSTRAINT") || is_word(peek(p), "PRIMARY")) {
			if (accept_word(p, "CONSTRAINT"))
				s->pk_name = ident(p);
			expect_word(p, "PRIMARY");
			expect_word(p, "KEY");
			if (!accept_word(p, "CLUSTERED"))
				accept_word(p, "NONCLUSTERED");
			expect_op(p, "(");
			do {
				APPEND(s->pk, s->npk, ident(p));
				if (!accept_word(p, "ASC"))
					accept_word(p, "DESC");
			} while (accept_op(p, ","));
			expect_op(p, ")");
		} else {
			struct coldef d;
			parse_coldef(p, &d);
			APPEND(s->defs, s->ndefs, d);
		}
	} while (accept_op(p, ","));
	expect_op(p, ")");
}

static void
parse_alter(struct parser *p, struct stmt *s)
{
	expect_word(p, "TABLE");
	parse_tablename(p, &s->from);
	if (accept_word(p, "ADD")) {
		s->kind = S_ALTER_ADD;
		accept_word(p, "COLUMN");
		do {
			struct coldef d;
			parse_coldef(p, &d);
			APPEND(s->defs, s->ndefs, d);
		} while (accept_op(p, ","));
	} else if (accept_word(p, "ALTER")) {
		expect_word(p, "COLUMN");
		s->kind = S_ALTER_COLUMN;
		struct coldef d;
		memset(&d, 0, sizeof d);
		d.name = ident(p);
		d.type = parse_type(p);
		if (accept_word(p, "NOT")) {
			expect_word(p, "NULL");
			d.not_null = 1;
			d.nullable_given = 1;
		} else if (accept_word(p, "NULL")) {
			d.nullable_given = 1;
		}
		APPEND(s->defs, s->ndefs, d);
	} else if (accept_word(p, "DROP")) {
		expect_word(p, "COLUMN");
		s->kind = S_ALTER_DROP;
		do
			APPEND(s->cols, s->ncols, ident(p));
		while (accept_op(p, ","));
	} else {
		syntax_error(p);
	}
}

static void
parse_declare(struct parser *p, struct stmt *s)
{
	s->kind = S_DECLARE;
	do {
		struct token *t = next(p);
		if (t->kind != TK_VAR || t->text[1] == '@')
			syntax_error(p);
		int n = s->nvars;
		APPEND(s->vars, n, strdup(t->text));
		accept_word(p, "AS");
		n = s->nvars;
		APPEND(s->var_types, n, parse_type(p));
		struct expr *init = accept_op(p, "=") ? parse_expr(p) : NULL;
		APPEND(s->var_vals, s->nvars, init);
	} while (accept_op(p, ","));
}

static void
parse_set(struct parser *p, struct stmt *s)
{
	if (peek(p)->kind == TK_VAR) {
		s->kind = S_SET_VAR;
		int n = 0;
		APPEND(s->vars, n, strdup(next(p)->text));
		expect_op(p, "=");
		APPEND(s->var_vals, s->nvars, parse_expr(p));
		return;
	}
	s->kind = S_SET_OPTION;
	/* Option names may be keywords: SET TRANSACTION ISOLATION LEVEL ... */
	if (peek(p)->kind != TK_IDENT)
		syntax_error(p);
	s->name = strdup(next(p)->text);
	/* The option's words up to the next statement: ON, OFF, 4096, mdy, ... */
	char value[256] = "";
	while (peek(p)->kind != TK_EOF && !is_op(peek(p), ";") && !stmt_start(peek(p))) {
		struct token *t = next(p);
		if (strlen(value) + strlen(t->text) + 2 < sizeof value) {
			if (*value)
				strcat(value, " ");
			strcat(value, t->text);
		}
	}
	int n = 0;
	APPEND(s->vars, n, strdup(value));
}

static void
parse_exec(struct parser *p, struct stmt *s)
{
	s->kind = S_EXEC;
	if (peek(p)->kind == TK_VAR && is_op(peek2(p), "=")) {
		/* EXEC @rc = proc: the return value is not kept. */
		next(p);
		next(p);
	}
	s->name = dotted(p, NULL);
	if (peek(p)->kind == TK_EOF || is_op(peek(p), ";") || stmt_start(peek(p)))
		return;
	do {
		char *name = NULL;
		if (peek(p)->kind == TK_VAR && is_op(peek2(p), "=")) {
			name = strdup(next(p)->text);
			next(p);
		}
		int n = s->nargs;
		APPEND(s->arg_names, n, name);
		APPEND(s->args, s->nargs, parse_expr(p));
	} while (accept_op(p, ","));
}

static void parse_statement(struct parser *p, struct stmt *s);

static void
parse_statement(struct parser *p, struct stmt *s)
{
	memset(s, 0, sizeof *s);
	s->top = -1;
	s->line = peek(p)->line;
	struct token *t = next(p);
	if (is_word(t, "SELECT")) {
		parse_select(p, s);
	} else if (is_word(t, "INSERT")) {
		parse_insert(p, s);
	} else if (is_word(t, "UPDATE")) {
		parse_update(p, s);
	} else if (is_word(t, "DELETE")) {
		s->kind = S_DELETE;
		accept_word(p, "FROM");
		parse_tablename(p, &s->from);
		if (accept_word(p, "WHERE"))
			s->where = parse_expr(p);
	} else if (is_word(t, "TRUNCATE")) {
		expect_word(p, "TABLE");
		s->kind = S_TRUNCATE;
		parse_tablename(p, &s->from);
	} else if (is_word(t, "CREATE")) {
		parse_create(p, s);
	} else if (is_word(t, "DROP")) {
		expect_word(p, "TABLE");
		s->kind = S_DROP_TABLE;
		if (accept_word(p, "IF")) {
			expect_word(p, "EXISTS");
			s->if_exists = 1;
		}
		parse_tablename(p, &s->from);
	} else if (is_word(t, "ALTER")) {
		parse_alter(p, s);
	} else if (is_word(t, "DECLARE")) {
		parse_declare(p, s);
	} else if (is_word(t, "SET")) {
		parse_set(p, s);
	} else if (is_word(t, "USE")) {
		s->kind = S_USE;
		s->name = ident(p);
	} else if (is_word(t, "EXEC") || is_word(t, "EXECUTE")) {
		parse_exec(p, s);
	} else if (is_word(t, "BEGIN")) {
		if (!accept_word(p, "TRAN"))
			expect_word(p, "TRANSACTION");
		s->kind = S_BEGIN;
		if (peek(p)->kind == TK_IDENT && !stmt_start(peek(p)) && !is_reserved(peek(p)->text))
			free(ident(p));
	} else if (is_word(t, "COMMIT") || is_word(t, "ROLLBACK")) {
		s->kind = is_word(t, "COMMIT") ? S_COMMIT : S_ROLLBACK;
		if (accept_word(p, "TRAN") || accept_word(p, "TRANSACTION") || accept_word(p, "WORK"))
			if (peek(p)->kind == TK_IDENT && !stmt_start(peek(p)) && !is_reserved(peek(p)->text))
				free(ident(p));
	} else if (is_word(t, "IF")) {
		s->kind = S_IF;
		s->cond = parse_expr(p);
		s->then_stmt = calloc(1, sizeof *s->then_stmt);
		parse_statement(p, s->then_stmt);
	} else {
		p->lx.at--;
		syntax_error(p);
	}
}

int
parse_batch(const char *sql, struct batch *b, struct sqlerr *e)
{
	struct parser p = {.e = e};
	memset(b, 0, sizeof *b);
	if (lex_batch(sql, &p.lx, e))
		return -1;
	if (setjmp(p.fail)) {
		/* The statements parsed so far are freed with the batch. */
		lex_free(&p.lx);
		batch_free(b);
		return -1;
	}
	while (peek(&p)->kind != TK_EOF) {
		if (accept_op(&p, ";"))
			continue;
		struct stmt s;
		b->stmts = grow(b->stmts, b->n, sizeof *b->stmts);
		parse_statement(&p, &s);
		b->stmts[b->n++] = s;
	}
	lex_free(&p.lx);
	return 0;
}

static void
stmt_free(struct stmt *s)
{
	for (int i = 0; i < s->nitems; i++) {
		expr_free(s->items[i].e);
		free(s->items[i].alias);
		free(s->items[i].assign_var);
	}
	free(s->items);
	free(s->from.db);
	free(s->from.schema);
	free(s->from.name);
	free(s->from.alias);
	for (int i = 0; i < s->from.nargs; i++)
		expr_free(s->from.args[i]);
	free(s->from.args);
	expr_free(s->where);
	for (int i = 0; i < s->norder; i++)
		expr_free(s->order[i].e);
	free(s->order);
	int ncols = s->ncols < 0 ? 0 : s->ncols;
	for (int i = 0; i < ncols; i++)
		free(s->cols[i]);
	free(s->cols);
	int rowlen = s->ncols < 0 ? -s->ncols : s->ncols;
	for (int r = 0; r < s->nrows; r++) {
		for (int i = 0; s->rows[r] && i < rowlen; i++)
			expr_free(s->rows[r][i]);
		free(s->rows[r]);
	}
	free(s->rows);
	for (int i = 0; s->set_vals && i < ncols; i++)
		expr_free(s->set_vals[i]);
	free(s->set_vals);
	for (int i = 0; i < s->ndefs; i++) {
		free(s->defs[i].name);
		expr_free(s->defs[i].dflt);
	}
	free(s->defs);
	for (int i = 0; i < s->npk; i++)
		free(s->pk[i]);
	free(s->pk);
	free(s->pk_name);
	int nvars = s->kind == S_SET_OPTION ? 1 : s->nvars;
	for (int i = 0; i < nvars; i++)
		free(s->vars[i]);
	for (int i = 0; i < s->nvars; i++)
		expr_free(s->var_vals[i]);
	free(s->vars);
	free(s->var_types);
	free(s->var_vals);
	free(s->name);
	for (int i = 0; i < s->nargs; i++) {
		expr_free(s->args[i]);
		free(s->arg_names[i]);
	}
	free(s->args);
	free(s->arg_names);
	expr_free(s->cond);
	if (s->then_stmt) {
		stmt_free(s->then_stmt);
		free(s->then_stmt);
	}
}

void
batch_free(struct batch *b)
{
	for (int i = 0; i < b->n; i++)
		stmt_free(&b->stmts[i]);
	free(b->stmts);
	memset(b, 0, sizeof *b);
}
