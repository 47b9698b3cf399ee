/*
 * sql_predicate.c: source.options.source_custom_predicate is pasted into
 * the WHERE clause of every query dpone builds (plan, doctor, count and
 * run alike), so it must be one boolean expression and nothing else. A
 * tokenizer that knows T-SQL's strings ('...' and N'...', quotes doubled),
 * bracketed and quoted names ([a]]b], "a""b") and comments reads it, and
 * refuses what could end the expression or start another statement:
 * statement separators, comments, parentheses that do not balance (a ')'
 * before its '(' would close dpone's own), unterminated strings or names,
 * and keywords that start a statement (SELECT only inside parentheses, for
 * a subquery such as id IN (SELECT ...)).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dpone.h"

/* Keywords that start (or control) a statement: never in an expression. */
static const char *const statement_words[] = {
	"INSERT", "UPDATE",     "DELETE",    "MERGE",       "DROP",       "CREATE",     "ALTER",     "TRUNCATE",
	"EXEC",   "EXECUTE",    "GRANT",     "REVOKE",      "DENY",       "DECLARE",    "SET",       "USE",
	"BEGIN",  "COMMIT",     "ROLLBACK",  "SAVE",        "WAITFOR",    "SHUTDOWN",   "DBCC",      "KILL",
	"BACKUP", "RESTORE",    "BULK",      "RECONFIGURE", "GO",         "OPENROWSET", "OPENQUERY", "OPENDATASOURCE",
	"INTO",   "UPDATETEXT", "WRITETEXT", "READTEXT",    "CHECKPOINT", "PRINT",      "RAISERROR", "THROW",
	"RETURN", "GOTO",       "WHILE",     "BREAK",       "CONTINUE",   "UNION",      "EXCEPT",    "INTERSECT",
	"WITH",   NULL};

struct tokens {
	const char *text, *p;
	int depth;
	char *why;
	size_t whylen;
};

static int __attribute__((format(printf, 2, 3))) refuse(struct tokens *t, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(t->why, t->whylen, "%s (at character %zu); give one boolean expression, such as region = N'EU'", msg,
	         (size_t)(t->p - t->text) + 1);
	return -1;
}

/* Past a quoted run that ends with close, a doubled close being part of it. */
static int
skip_quoted(struct tokens *t, char close, const char *what)
{
	const char *start = t->p++;
	for (; *t->p; t->p++) {
		if (*t->p != close)
			continue;
		if (t->p[1] == close) {
			t->p++;
			continue;
		}
		t->p++;
		return 0;
	}
	t->p = start;
	return refuse(t, "an unterminated %s", what);
}

static int
word(struct tokens *t)
{
	const char *start = t->p;
	while (isalnum((unsigned char)*t->p) || (unsigned char)*t->p >= 0x80 || *t->p == '_' || *t->p == '@' ||
	       *t->p == '#' || *t->p == '$')
		t->p++;
	size_t n = (size_t)(t->p - start);
	if (n == 1 && (*start == 'N' || *start == 'n') && *t->p == '\'')
		return skip_quoted(t, '\'', "string"); /* N'...' */
	if (n == 6 && !strncasecmp(start, "SELECT", 6)) {
		if (t->depth == 0) {
			t->p = start;
			return refuse(t, "SELECT outside parentheses starts another query");
		}
		return 0;
	}
	for (const char *const *w = statement_words; *w; w++)
		if (strlen(*w) == n && !strncasecmp(start, *w, n)) {
			t->p = start;
			return refuse(t, "the keyword %.*s starts a statement, not an expression", (int)n, start);
		}
	return 0;
}

static int
token(struct tokens *t)
{
	char c = *t->p;
	if (c == '\'')
		return skip_quoted(t, '\'', "string");
	if (c == '[')
		return skip_quoted(t, ']', "bracketed name");
	if (c == '"')
		return skip_quoted(t, '"', "quoted name");
	if ((c == '-' && t->p[1] == '-') || (c == '/' && t->p[1] == '*'))
		return refuse(t, "a comment");
	if (c == ';')
		return refuse(t, "a statement separator ';'");
	if (c == '(') {
		t->depth++;
	} else if (c == ')') {
		if (--t->depth < 0)
			return refuse(t, "a ')' that closes a parenthesis the predicate did not open");
	} else if (isalpha((unsigned char)c) || (unsigned char)c >= 0x80 || c == '_' || c == '@' || c == '#') {
		return word(t);
	}
	t->p++;
	return 0;
}

int
dp_sql_predicate_check(const char *text, char *why, size_t whylen)
{
	struct tokens t = {text, text, 0, why, whylen};
	while (*t.p == ' ' || *t.p == '\t' || *t.p == '\n' || *t.p == '\r')
		t.p++;
	if (!*t.p)
		return refuse(&t, "an empty predicate");
	while (*t.p)
		if (token(&t))
			return -1;
	if (t.depth > 0)
		return refuse(&t, "%d '(' never closed", t.depth);
	return 0;
}
