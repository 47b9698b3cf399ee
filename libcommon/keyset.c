/*
 * keyset.c: a set of keys, each with a 32-bit line number, in bounded
 * memory whatever the width of the keys: an open-addressing table of 16-byte
 * slots holding 96 bits of the key's SHA-256 and the line. It doubles when
 * three quarters full, so it takes 16 to 43 bytes per distinct key (half as
 * much again while doubling): 10 million keys make a 256 MiB table. Two
 * distinct keys are taken for one with probability about n^2 / 2^97
 * (1e-15 for 10 million keys).
 */
#include <stdlib.h>
#include <string.h>

#include "dpone.h"

struct slot {
	uint64_t h;
	uint32_t h2;
	uint32_t line; /* 0: empty */
};

struct dp_keyset {
	struct slot *table;
	size_t cap, count;
};

static void
key_hash(const void *key, size_t len, uint64_t *h, uint32_t *h2)
{
	struct dp_sha256 s;
	unsigned char d[32];
	dp_sha256_init(&s);
	dp_sha256_update(&s, key, len);
	dp_sha256_final(&s, d);
	memcpy(h, d, 8);
	memcpy(h2, d + 8, 4);
}

static struct slot *
lookup(const struct dp_keyset *ks, uint64_t h, uint32_t h2)
{
	size_t mask = ks->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct slot *s = &ks->table[i];
		if (!s->line || (s->h == h && s->h2 == h2))
			return s;
	}
}

static void
grow(struct dp_keyset *ks)
{
	struct slot *old = ks->table;
	size_t oldcap = ks->cap;
	ks->cap = oldcap ? oldcap * 2 : 1024;
	ks->table = dp_xcalloc(ks->cap, sizeof *ks->table);
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].line)
			*lookup(ks, old[i].h, old[i].h2) = old[i];
	free(old);
}

struct dp_keyset *
dp_keyset_new(void)
{
	struct dp_keyset *ks = dp_xcalloc(1, sizeof *ks);
	grow(ks);
	return ks;
}

/* The slot of key, made room for. */
static struct slot *
slot_of(struct dp_keyset *ks, const void *key, size_t len, uint64_t *h, uint32_t *h2)
{
	key_hash(key, len, h, h2);
	if ((ks->count + 1) * 4 > ks->cap * 3)
		grow(ks);
	return lookup(ks, *h, *h2);
}

uint32_t
dp_keyset_put(struct dp_keyset *ks, const void *key, size_t len, uint32_t line, int replace)
{
	uint64_t h;
	uint32_t h2;
	struct slot *s = slot_of(ks, key, len, &h, &h2);
	uint32_t before = s->line;
	if (!before) {
		*s = (struct slot){h, h2, line};
		ks->count++;
	} else if (replace) {
		s->line = line;
	}
	return before;
}

uint32_t
dp_keyset_find(const struct dp_keyset *ks, const void *key, size_t len)
{
	uint64_t h;
	uint32_t h2;
	key_hash(key, len, &h, &h2);
	return lookup(ks, h, h2)->line;
}

size_t
dp_keyset_count(const struct dp_keyset *ks)
{
	return ks->count;
}

void
dp_keyset_free(struct dp_keyset *ks)
{
	if (!ks)
		return;
	free(ks->table);
	free(ks);
}
