/* buf.c: the growable byte buffer the row encoder and message builder
 * write into, reused line after line so the hot path does not allocate
 * (the appends are inline, in dpone.h). */
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
