/*
 * keys.c: the key index snapshot_reconciliation keeps with the state (see
 * dpone-extract's reconcile.c): checking a staged one before it is stored,
 * and the name it is stored under. The backends store the bytes as they
 * are (store_file.c: files beside the state file; store_pg.c: chunks in a
 * table), so the index moves with the record that names it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

char *
key_index_name(const char *job, const char *run_id)
{
	char a[65], b[65];
	dp_sha256_hex(job, strlen(job), a);
	dp_sha256_hex(run_id, strlen(run_id), b);
	return dp_strfmt("%.16s-%.16s", a, b);
}

int
key_index_verify(const char *path, long long keys, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "the staged key index %s: %s", path, strerror(errno));
		return DP_EXIT_STATE;
	}
	struct dp_reader *r = dp_reader_open(fd, path, DP_READ_VALIDATE_ROWS);
	int got, rc = 0;
	char *last = NULL;
	size_t last_len = 0;
	while (!rc && (got = dp_reader_next(r)) > 0) {
		json_t *h = dp_reader_header(r);
		const char *kind = json_string_value(json_object_get(h, "kind"));
		if (!kind || strcmp(kind, "key_index")) {
			snprintf(err, errlen, "%s is not a key index (its header's kind is not key_index)", path);
			rc = DP_EXIT_STREAM;
		} else if (dp_reader_kind(r) == DP_LINE_ROW) {
			size_t len;
			const char *line = dp_reader_line(r, &len);
			if (last && dp_keysort_compare(line, len, last, last_len) <= 0) {
				snprintf(err, errlen, "%s:%llu: keys out of order", path, dp_reader_lineno(r));
				rc = DP_EXIT_STREAM;
			}
			free(last);
			last = dp_xstrndup(line, len);
			last_len = len;
		}
	}
	if (!rc && got < 0) {
		snprintf(err, errlen, "%s", dp_reader_error(r));
		rc = dp_reader_error_code(r);
	}
	if (!rc && dp_reader_rows(r) != (unsigned long long)keys) {
		snprintf(err, errlen, "%s holds %llu keys, the reconciliation message says %lld", path,
		         dp_reader_rows(r), keys);
		rc = DP_EXIT_STREAM;
	}
	free(last);
	dp_reader_close(r);
	close(fd);
	return rc;
}

int
copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			done += w;
		}
	}
	return 0;
}
