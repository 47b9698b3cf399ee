/*
 * stream.c: the stream reader (libcommon/stream.c) and the JSON validator
 * under it. The first byte picks the reader flags, the rest is the stream
 * (plain or zstd). Properties: the reader never crashes, leaks or reads out
 * of bounds; every row it passes with DP_READ_VALIDATE_ROWS is accepted by
 * jansson; and dp_json_validate agrees with jansson on the whole input.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpone.h"
#include "fuzz.h"

/* jansson rejects numbers it cannot hold and NUL in object keys; they are
 * valid JSON all the same. */
static int
jansson_accepts(const char *buf, size_t len, int *representable)
{
	json_error_t jerr;
	json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	*representable = v || !(strstr(jerr.text, "overflow") || strstr(jerr.text, "too big") ||
	                        strstr(jerr.text, "NUL byte in object key"));
	json_decref(v);
	return v != NULL;
}

/* On valid JSON, the members found while validating are the ones
 * dp_scan_object finds (names chosen to hit short keys, twice). */
static void
check_members_agree(const char *buf, size_t len)
{
	static char *const names[] = {"a", "id", "a", ""};
	static const size_t lens[] = {1, 2, 1, 0};
	struct dp_span found[4], scanned[4];
	if (dp_json_validate_members(buf, len, names, lens, 4, found, NULL) < 0)
		fuzz_fail("dp_json_validate_members refuses what dp_json_validate accepts");
	if (dp_scan_object(buf, len, names, 4, scanned) < 0)
		return; /* not an object: nothing to find */
	for (int i = 0; i < 4; i++)
		if (found[i].p != scanned[i].p || found[i].n != scanned[i].n)
			fuzz_fail("member %s: validator and dp_scan_object disagree", names[i]);
}

static void
check_validator_agrees(const char *buf, size_t len)
{
	struct dp_json_error derr;
	int representable, theirs = jansson_accepts(buf, len, &representable);
	int ours = dp_json_validate(buf, len, &derr) == 0;
	/* jansson takes a NUL byte after a value as the end of its input; the
	 * validator (rightly) does not, so only that direction may differ. */
	if (theirs && !ours && memchr(buf, '\0', len))
		return;
	if (representable && ours != theirs)
		fuzz_fail("dp_json_validate says %s, jansson says %s", ours ? "valid" : "invalid",
		          theirs ? "valid" : "invalid");
	if (ours)
		check_members_agree(buf, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int once;
	if (!once++)
		setenv("DPONE_MAX_LINE_BYTES", "65536", 1); /* so the too-long path is reachable */
	if (size < 1)
		return 0;
	int flags = data[0] & (DP_READ_VALIDATE_ROWS | DP_READ_SUMMARY);
	check_validator_agrees((const char *)data + 1, size - 1);
	int fd = fuzz_memfd(data + 1, size - 1);
	if (fd < 0)
		return 0;
	struct dp_reader *r = dp_reader_open(fd, "fuzz", flags);
	int got;
	while ((got = dp_reader_next(r)) > 0) {
		size_t len;
		const char *line = dp_reader_line(r, &len);
		if (dp_reader_kind(r) == DP_LINE_CONTROL) {
			if (!dp_reader_control_name(r) || !json_is_array(dp_reader_control(r)))
				fuzz_fail("control line %llu without a name or array", dp_reader_lineno(r));
			json_t *h = dp_reader_header(r);
			if (h)
				dp_header_column(h, "id");
		} else if (flags & DP_READ_VALIDATE_ROWS) {
			int representable;
			if (!jansson_accepts(line, len, &representable) && representable)
				fuzz_fail("row line %llu passed validation but jansson rejects it",
				          dp_reader_lineno(r));
		}
	}
	if (got < 0 && (!dp_reader_error(r) || dp_reader_error_code(r) <= 0))
		fuzz_fail("a reader error without a message or exit code");
	dp_reader_close(r);
	close(fd);
	return 0;
}
