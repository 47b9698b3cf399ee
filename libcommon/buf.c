/* buf.c: the growable byte buffer the row encoder and message builder
 * write into, reused line after line so the hot path does not allocate. */
#include <string.h>

#include "dpone.h"

void
dp_buf_reserve(struct dp_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	b->p = dp_xrealloc(b->p, cap);
	b->cap = cap;
}

void
dp_buf_add(struct dp_buf *b, const void *p, size_t n)
{
	if (!n)
		return; /* b->p may still be NULL: memcpy must not see it */
	dp_buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void
dp_buf_str(struct dp_buf *b, const char *s)
{
	dp_buf_add(b, s, strlen(s));
}

void
dp_buf_char(struct dp_buf *b, char c)
{
	dp_buf_reserve(b, 1);
	b->p[b->len++] = c;
}
