/*
 * keysort.c: sort a stream of keys (byte strings) in bounded memory. Keys
 * gather in an arena of at most the configured bytes (texts plus one
 * pointer each); a full arena is sorted and written to an unlinked
 * temporary file as a run; at the end the runs and what is left in memory
 * are merged, duplicates dropped. Memory is the arena plus a 64 KiB
 * buffer per run, whatever the number of keys: snapshot_reconciliation's
 * 10M keys stay far below 256 MiB (bench/reconcile measures it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpone.h"

#define RUN_BUFFER (64 * 1024)

struct run {
	FILE *f;
	char *key; /* the run's current key, owned */
	size_t len, cap;
	int done;
};

struct dp_keysort {
	size_t budget; /* arena bytes + pointer bytes allowed */
	char *arena;   /* length-prefixed keys, owned */
	size_t used, cap;
	size_t *at; /* offsets of the keys in the arena, owned */
	size_t n, atcap;
	struct run *runs; /* spilled runs, then the arena as one more source */
	size_t nruns;
	size_t mem_next; /* merge: next arena key */
	char *last;      /* merge: the key returned last, owned */
	size_t last_len, last_cap;
	int have_last, finished;
	unsigned long long spilled;
};

struct dp_keysort *
dp_keysort_new(size_t memory_bytes)
{
	struct dp_keysort *ks = dp_xcalloc(1, sizeof *ks);
	ks->budget = memory_bytes < 1 << 20 ? 1 << 20 : memory_bytes;
	return ks;
}

/* The key stored at offset off of the arena. */
static const char *
key_at(const struct dp_keysort *ks, size_t off, size_t *len)
{
	const char *p = ks->arena + off;
	uint32_t n;
	memcpy(&n, p, sizeof n);
	*len = n;
	return p + sizeof n;
}

/* The i-th key in the arena's (sorted) order. */
static const char *
arena_key(const struct dp_keysort *ks, size_t i, size_t *len)
{
	return key_at(ks, ks->at[i], len);
}

int
dp_keysort_compare(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static const struct dp_keysort *sorting; /* qsort has no context argument */

static int
cmp_at(const void *x, const void *y)
{
	size_t la, lb;
	const char *a = key_at(sorting, *(const size_t *)x, &la);
	const char *b = key_at(sorting, *(const size_t *)y, &lb);
	return dp_keysort_compare(a, la, b, lb);
}

static void
sort_arena(struct dp_keysort *ks)
{
	sorting = ks;
	qsort(ks->at, ks->n, sizeof *ks->at, cmp_at);
	sorting = NULL;
}

static FILE *
temp_file(void)
{
	FILE *f = dp_tmpfile("dpone-keys");
	if (f)
		setvbuf(f, NULL, _IOFBF, RUN_BUFFER);
	return f;
}

/* Write the sorted arena as a run and empty it. */
static int
spill(struct dp_keysort *ks)
{
	sort_arena(ks);
	FILE *f = temp_file();
	if (!f)
		return -1;
	for (size_t i = 0; i < ks->n; i++) {
		size_t len;
		const char *k = arena_key(ks, i, &len);
		uint32_t n = (uint32_t)len;
		if (fwrite(&n, sizeof n, 1, f) != 1 || fwrite(k, 1, len, f) != len) {
			fclose(f);
			return -1;
		}
	}
	if (fflush(f) || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -1;
	}
	ks->runs = dp_xrealloc(ks->runs, (ks->nruns + 1) * sizeof *ks->runs);
	ks->runs[ks->nruns++] = (struct run){.f = f};
	ks->spilled += ks->n;
	ks->used = ks->n = 0;
	return 0;
}

int
dp_keysort_add(struct dp_keysort *ks, const char *key, size_t len)
{
	if (len > UINT32_MAX) {
		errno = EFBIG;
		return -1;
	}
	size_t need = sizeof(uint32_t) + len;
	if (ks->n && ks->used + need + (ks->n + 1) * sizeof *ks->at > ks->budget && spill(ks) < 0)
		return -1;
	if (ks->used + need > ks->cap) {
		size_t cap = ks->cap ? ks->cap : 1 << 16;
		while (cap < ks->used + need)
			cap *= 2;
		if (cap > ks->budget && ks->budget > ks->used + need)
			cap = ks->budget; /* grow to the budget, never past it */
		ks->arena = dp_xrealloc(ks->arena, cap);
		ks->cap = cap;
	}
	if (ks->n == ks->atcap) {
		ks->atcap = ks->atcap ? ks->atcap * 2 : 4096;
		ks->at = dp_xrealloc(ks->at, ks->atcap * sizeof *ks->at);
	}
	uint32_t n = (uint32_t)len;
	ks->at[ks->n++] = ks->used;
	memcpy(ks->arena + ks->used, &n, sizeof n);
	memcpy(ks->arena + ks->used + sizeof n, key, len);
	ks->used += need;
	return 0;
}

/* The run's next key into r->key; 0, or -1 on a read error. */
static int
run_advance(struct run *r)
{
	uint32_t n;
	if (fread(&n, sizeof n, 1, r->f) != 1) {
		r->done = 1;
		return ferror(r->f) ? -1 : 0;
	}
	if (n > r->cap) {
		r->cap = n;
		r->key = dp_xrealloc(r->key, r->cap);
	}
	r->len = n;
	if (fread(r->key, 1, n, r->f) != n) {
		r->done = 1;
		return -1;
	}
	return 0;
}

int
dp_keysort_finish(struct dp_keysort *ks)
{
	sort_arena(ks);
	for (size_t i = 0; i < ks->nruns; i++)
		if (run_advance(&ks->runs[i]) < 0)
			return -1;
	ks->finished = 1;
	return 0;
}

int
dp_keysort_next(struct dp_keysort *ks, const char **key, size_t *len)
{
	for (;;) {
		/* The smallest head among the runs and the arena. */
		const char *best = NULL;
		size_t best_len = 0;
		long best_run = -1; /* -1: none, -2: the arena */
		for (size_t i = 0; i < ks->nruns; i++) {
			struct run *r = &ks->runs[i];
			if (!r->done && (!best || dp_keysort_compare(r->key, r->len, best, best_len) < 0)) {
				best = r->key;
				best_len = r->len;
				best_run = (long)i;
			}
		}
		if (ks->mem_next < ks->n) {
			size_t l;
			const char *k = arena_key(ks, ks->mem_next, &l);
			if (!best || dp_keysort_compare(k, l, best, best_len) < 0) {
				best = k;
				best_len = l;
				best_run = -2;
			}
		}
		if (!best)
			return 0;
		int dup = ks->have_last && dp_keysort_compare(best, best_len, ks->last, ks->last_len) == 0;
		if (!dup) {
			if (best_len > ks->last_cap) {
				ks->last_cap = best_len;
				ks->last = dp_xrealloc(ks->last, ks->last_cap);
			}
			memcpy(ks->last, best, best_len);
			ks->last_len = best_len;
			ks->have_last = 1;
		}
		if (best_run == -2)
			ks->mem_next++;
		else if (run_advance(&ks->runs[best_run]) < 0)
			return -1;
		if (!dup) {
			*key = ks->last;
			*len = ks->last_len;
			return 1;
		}
	}
}

unsigned long long
dp_keysort_spilled(const struct dp_keysort *ks)
{
	return ks->spilled;
}

void
dp_keysort_free(struct dp_keysort *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->nruns; i++) {
		fclose(ks->runs[i].f);
		free(ks->runs[i].key);
	}
	free(ks->runs);
	free(ks->arena);
	free(ks->at);
	free(ks->last);
	free(ks);
}
