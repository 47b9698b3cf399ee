/*
 * manifest.c: the manifest loader (YAML → JSON, the schema check, defaults)
 * and the YAML loader the connection registry uses. Input is a YAML file.
 * Properties: no crash, leak, hang or unbounded growth (the file's size,
 * nesting, scalar length and tags are checked on the events before a tree
 * is built; aliases are expanded within a node and byte budget); a refusal
 * always comes with a message. Seeds: tags, deep nesting, long keys.
 */
#include <stdio.h>
#include <unistd.h>

#include "dpone.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = fuzz_memfd(data, size);
	if (fd < 0)
		return 0;
	char path[64], err[1024] = "";
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct dp_manifest *m = dp_manifest_load(path, err, sizeof err);
	if (m) {
		dp_manifest_get(m, "sink.strategy.mode");
		dp_manifest_incremental(m);
		dp_manifest_has_check(m, DP_CHECK_MIN_ROWS);
		char where[256];
		dp_manifest_where(m, "source.table", where, sizeof where);
		dp_manifest_free(m);
	} else if (!err[0]) {
		fuzz_fail("manifest refused without a message");
	}
	json_t *marks = json_object();
	err[0] = '\0';
	json_t *doc = dp_yaml_load_file(path, marks, err, sizeof err);
	if (!doc && !err[0])
		fuzz_fail("YAML refused without a message");
	json_decref(doc);
	json_decref(marks);
	close(fd);
	return 0;
}
