/*
 * json-agree: check that dp_json_validate accepts exactly what jansson
 * accepts. Each input line is a case; every case is also mutated (bytes
 * flipped, cut, inserted) a few hundred times with a fixed seed. Numbers
 * too large for jansson (it says "overflow" or "too big") are valid JSON and are left
 * out of the comparison. Prints "agree on N inputs" or each disagreement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpone.h"

static unsigned long long rng = 0x9E3779B97F4A7C15ull;

static unsigned
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

/* The top-level members dp_json_validate_members finds in a valid object:
 * the same spans as dp_scan_object, and (keys being unique) the values
 * jansson has for them. Asked for: each of the object's first keys, one of
 * them twice, and a name it does not have. */
static int
compare_members(const char *buf, size_t len, json_t *v)
{
	char *names[6];
	size_t n = 0;
	const char *key;
	json_t *value;
	json_object_foreach(v, key, value) {
		if (n == 4)
			break;
		names[n++] = (char *)key;
	}
	if (n)
		names[n++] = names[0];
	names[n++] = "\x01 no such member";
	struct dp_span found[6], scanned[6];
	struct dp_json_error derr;
	size_t lens[6];
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(names[i]);
	if (dp_json_validate_members(buf, len, names, lens, n, found, &derr) < 0 ||
	    dp_scan_object(buf, len, names, n, scanned) < 0) {
		printf("members: valid object refused on: %.*s\n", (int)(len > 200 ? 200 : len), buf);
		return 1;
	}
	json_t *unique = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	for (size_t i = 0; i < n; i++) {
		json_t *want = unique ? json_object_get(unique, names[i]) : NULL;
		json_t *got =
			found[i].p ? json_loadb(found[i].p, found[i].n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
		int same_span = found[i].p == scanned[i].p && found[i].n == scanned[i].n;
		int same_value = !unique || (want ? got && json_equal(want, got) : !found[i].p);
		json_decref(got);
		if (!same_span || !same_value) {
			printf("members: %s for member %s on: %.*s\n",
			       same_span ? "not jansson's value" : "not dp_scan_object's span", names[i],
			       (int)(len > 200 ? 200 : len), buf);
			json_decref(unique);
			return 1;
		}
	}
	json_decref(unique);
	return 0;
}

static int
compare(const char *buf, size_t len)
{
	struct dp_json_error derr;
	json_error_t jerr;
	int ours = dp_json_validate(buf, len, &derr) == 0;
	json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	int theirs = v != NULL;
	if (ours && json_is_object(v) && compare_members(buf, len, v)) {
		json_decref(v);
		return 1;
	}
	json_decref(v);
	if (!theirs && (strstr(jerr.text, "overflow") || strstr(jerr.text, "too big")))
		return 0;
	if (ours == theirs)
		return 0;
	printf("disagree: ours=%s jansson=%s (%s) on: %.*s\n", ours ? "valid" : "invalid", theirs ? "valid" : "invalid",
	       theirs ? "" : jerr.text, (int)(len > 200 ? 200 : len), buf);
	return 1;
}

static const char alphabet[] = "{}[]\",:\\/0123456789-+.eEtrufalsn \t\n\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80\xff";

int
main(void)
{
	char *line = NULL, *mut = NULL;
	size_t cap = 0, inputs = 0, bad = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		bad += compare(line, (size_t)n);
		inputs++;
		mut = dp_xrealloc(mut, (size_t)n + 2);
		for (int i = 0; i < 300; i++) {
			size_t len = (size_t)n;
			memcpy(mut, line, len);
			size_t at = len ? next_rand() % len : 0;
			switch (next_rand() % 3) {
			case 0:
				if (len)
					mut[at] = alphabet[next_rand() % (sizeof alphabet - 1)];
				break;
			case 1: len = at; break;
			default:
				memmove(mut + at + 1, mut + at, len - at);
				mut[at] = alphabet[next_rand() % (sizeof alphabet - 1)];
				len++;
			}
			bad += compare(mut, len);
			inputs++;
		}
	}
	free(line);
	free(mut);
	if (bad)
		return 1;
	printf("agree on %zu inputs\n", inputs);
	return 0;
}
