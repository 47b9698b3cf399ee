/*
 * state.c: dpone-state's file backend reading a state file it did not
 * write (hand-edited, truncated, hostile), and the watermark order a
 * commit relies on to never move state backwards. Input: the file's bytes.
 * Properties: no crash or leak; a refusal has a message; every watermark
 * found compares equal to itself, and any two compare antisymmetrically
 * under each SQL type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../cmd/dpone-state/store.h"
#include "fuzz.h"

static const char *const sql_types[] = {NULL, "bigint", "datetime2(7)", "rowversion", "binary(8)", "varchar(40)"};

static int
sign(int v)
{
	return (v > 0) - (v < 0);
}

static void
check_order(const json_t *a, const json_t *b)
{
	for (size_t i = 0; i < sizeof sql_types / sizeof sql_types[0]; i++) {
		if (dp_compare_watermarks(a, a, sql_types[i]))
			fuzz_fail("a watermark is not equal to itself as %s", sql_types[i] ? sql_types[i] : "untyped");
		if (sign(dp_compare_watermarks(a, b, sql_types[i])) != -sign(dp_compare_watermarks(b, a, sql_types[i])))
			fuzz_fail("watermarks compare both ways the same as %s",
			          sql_types[i] ? sql_types[i] : "untyped");
	}
}

static char state_dir[] = "/tmp/dpone-fuzz-state.XXXXXX", state_file[64];

static void
remove_state_dir(void)
{
	const char *const suffixes[] = {"", ".lock", ".tmp"};
	char name[80];
	for (size_t i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "%s%s", state_file, suffixes[i]);
		unlink(name);
	}
	rmdir(state_dir);
}

/* One private directory per process, removed at exit. */
static const char *
state_path(void)
{
	if (!state_file[0]) {
		if (!mkdtemp(state_dir))
			abort();
		snprintf(state_file, sizeof state_file, "%s/state.json", state_dir);
		atexit(remove_state_dir);
	}
	return state_file;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = state_path();
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp))
		abort();
	int code = 0;
	char err[1024] = "";
	struct store *s = store_file_open(path, "job", &code, err, sizeof err);
	if (!s) {
		if (!err[0] || !code)
			fuzz_fail("store refused without a message or code");
		return 0;
	}
	struct job_state st = {0};
	json_t *history = NULL;
	if (s->ops->read(s, &st, err, sizeof err) == 0 && s->ops->history(s, &history, err, sizeof err) == 0) {
		json_t *mine = json_object_get(json_object_get(st.record, "watermark"), "value");
		size_t i;
		json_t *h;
		json_array_foreach(history, i, h) {
			json_t *other = json_object_get(h, "watermark_after");
			if (mine && other)
				check_order(mine, other);
			if (other)
				check_order(other, json_object_get(h, "watermark_before"));
		}
	}
	json_decref(history);
	job_state_clear(&st);
	s->ops->close(s);
	return 0;
}
