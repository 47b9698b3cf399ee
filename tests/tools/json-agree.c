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

static int
compare(const char *buf, size_t len)
{
	struct dp_json_error derr;
	json_error_t jerr;
	int ours = dp_json_validate(buf, len, &derr) == 0;
	json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	int theirs = v != NULL;
	json_decref(v);
	if (!theirs && (strstr(jerr.text, "overflow") || strstr(jerr.text, "too big")))
		return 0;
	if (ours == theirs)
		return 0;
	printf("disagree: ours=%s jansson=%s (%s) on: %.*s\n", ours ? "valid" : "invalid",
	       theirs ? "valid" : "invalid", theirs ? "" : jerr.text, (int)(len > 200 ? 200 : len), buf);
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
			case 1:
				len = at;
				break;
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
