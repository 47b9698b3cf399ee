/*
 * lex.c: T-SQL tokens. Bracketed identifiers with ]] escapes, double-quoted
 * identifiers, '' inside strings, N'' strings, 0x binary literals, @vars
 * and @@globals, -- and nested block comments.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "mssqld.h"

static void
push(struct lexer *lx, enum tok_kind kind, const char *text, size_t n, int line, int pos)
{
	if (lx->n == lx->cap) {
		lx->cap = lx->cap ? lx->cap * 2 : 64;
		lx->toks = realloc(lx->toks, (size_t)lx->cap * sizeof *lx->toks);
	}
	struct token *t = &lx->toks[lx->n++];
	t->kind = kind;
	t->text = malloc(n + 1);
	memcpy(t->text, text, n);
	t->text[n] = '\0';
	t->line = line;
	t->pos = pos;
}

static int
ident_start(unsigned char c)
{
	return isalpha(c) || c == '_' || c == '#' || c >= 0x80;
}

static int
ident_char(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '#' || c == '$' || c == '@' || c >= 0x80;
}

/* A quoted run ('...', [...], "..."), doubling the closing character to
 * escape it. Returns the length consumed, or 0 if unterminated. */
static size_t
quoted(const char *s, char close, char **out, size_t *outlen)
{
	size_t i = 1, o = 0;
	char *buf = malloc(strlen(s) + 1);
	for (;;) {
		if (!s[i]) {
			free(buf);
			return 0;
		}
		if (s[i] == close) {
			if (s[i + 1] == close) {
				buf[o++] = close;
				i += 2;
				continue;
			}
			i++;
			break;
		}
		buf[o++] = s[i++];
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return i;
}

int
lex_batch(const char *sql, struct lexer *lx, struct sqlerr *e)
{
	const char *s = sql;
	int line = 1;
	memset(lx, 0, sizeof *lx);
	while (*s) {
		unsigned char c = (unsigned char)*s;
		int pos = (int)(s - sql);
		if (c == '\n') {
			line++;
			s++;
		} else if (isspace(c)) {
			s++;
		} else if (c == '-' && s[1] == '-') {
			while (*s && *s != '\n')
				s++;
		} else if (c == '/' && s[1] == '*') {
			int depth = 0;
			do {
				if (s[0] == '/' && s[1] == '*') {
					depth++;
					s += 2;
				} else if (s[0] == '*' && s[1] == '/') {
					depth--;
					s += 2;
				} else {
					line += *s == '\n';
					s++;
				}
			} while (depth && *s);
			if (depth) {
				sqlerr_set(e, 113, 15, "Missing end comment mark '*/'.");
				return -1;
			}
		} else if (c == '\'' || ((c == 'N' || c == 'n') && s[1] == '\'')) {
			int national = c != '\'';
			char *text;
			size_t n, used = quoted(s + national, '\'', &text, &n);
			if (!used) {
				sqlerr_set(e, 105, 15, "Unclosed quotation mark after the character string '%.100s'.",
				           s + national + 1);
				return -1;
			}
			push(lx, national ? TK_NSTRING : TK_STRING, text, n, line, pos);
			for (size_t i = 0; i < n; i++)
				line += text[i] == '\n';
			free(text);
			s += national + used;
		} else if (c == '[' || c == '"') {
			char *text;
			size_t n, used = quoted(s, c == '[' ? ']' : '"', &text, &n);
			if (!used) {
				sqlerr_set(e, 105, 15, "Unclosed quotation mark after the character string '%.100s'.",
				           s + 1);
				return -1;
			}
			push(lx, TK_QIDENT, text, n, line, pos);
			free(text);
			s += used;
		} else if (c == '0' && (s[1] == 'x' || s[1] == 'X')) {
			size_t n = 2;
			while (isxdigit((unsigned char)s[n]))
				n++;
			push(lx, TK_BINARY, s + 2, n - 2, line, pos);
			s += n;
		} else if (isdigit(c) || (c == '.' && isdigit((unsigned char)s[1]))) {
			size_t n = 0;
			enum tok_kind kind = TK_INT;
			while (isdigit((unsigned char)s[n]))
				n++;
			if (s[n] == '.') {
				kind = TK_DEC;
				n++;
				while (isdigit((unsigned char)s[n]))
					n++;
			}
			if ((s[n] == 'e' || s[n] == 'E') &&
			    (isdigit((unsigned char)s[n + 1]) ||
			     ((s[n + 1] == '+' || s[n + 1] == '-') && isdigit((unsigned char)s[n + 2])))) {
				kind = TK_FLOAT;
				n += 2;
				while (isdigit((unsigned char)s[n]))
					n++;
			}
			push(lx, kind, s, n, line, pos);
			s += n;
		} else if (c == '@') {
			size_t n = s[1] == '@' ? 2 : 1;
			while (ident_char((unsigned char)s[n]))
				n++;
			push(lx, TK_VAR, s, n, line, pos);
			s += n;
		} else if (ident_start(c)) {
			size_t n = 1;
			while (ident_char((unsigned char)s[n]))
				n++;
			push(lx, TK_IDENT, s, n, line, pos);
			s += n;
		} else {
			static const char *const two[] = {"<>", "!=", "<=", ">=", "!<", "!>", NULL};
			size_t n = 1;
			for (const char *const *op = two; *op; op++)
				if (s[0] == (*op)[0] && s[1] == (*op)[1])
					n = 2;
			if (n == 1 && !strchr("=<>+-*/%(),.;~&|^", c)) {
				sqlerr_set(e, 102, 15, "Incorrect syntax near '%c'.", c);
				return -1;
			}
			push(lx, TK_OP, s, n, line, pos);
			s += n;
		}
	}
	push(lx, TK_EOF, "", 0, line, (int)(s - sql));
	return 0;
}

void
lex_free(struct lexer *lx)
{
	for (int i = 0; i < lx->n; i++)
		free(lx->toks[i].text);
	free(lx->toks);
	memset(lx, 0, sizeof *lx);
}
