/*
 * dedupe.c: duplicate_policy for incremental_merge. Deciding which of two
 * rows with the same key to keep needs the whole batch, so pass 1 copies the
 * stream to an unlinked spool file while it indexes keys, and pass 2
 * publishes from the spool. Nothing is sent before the batch is known to be
 * complete and, with policy fail, free of duplicates.
 *
 * Memory: libcommon's key set (keyset.c) maps each key to the line that
 * keeps it: 10M distinct keys peaked at 394 MiB RSS in bench/produce.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "produce.h"

struct dedupe {
	int fd;
	enum dup_policy policy;
	char **names; /* borrowed */
	size_t nkey;
	char *names_text; /* "a, b" for messages, owned */
	struct dp_keyset *keys;
	unsigned long long dropped;
	struct dp_buf id;
};

/* The key identity of a row or delete line into d->id; dies on a bad line. */
static void
identify(struct dedupe *d, const char *line, size_t len, int is_delete, unsigned long long lineno)
{
	char err[256];
	struct dp_span obj = {line, len};
	if (is_delete && dp_control_object(line, len, &obj) < 0)
		dp_die(DP_EXIT_STREAM, "stdin:%llu: a delete message needs a key object", lineno);
	if (dp_key_identity(d->names, d->nkey, obj.p, obj.n, &d->id, err, sizeof err) < 0)
		dp_die(DP_EXIT_STREAM, "stdin:%llu: %s (duplicate_policy needs the unique key in every row)", lineno,
		       err);
}

static void
index_line(struct dedupe *d, const char *line, size_t len, int is_delete, unsigned long long lineno)
{
	if (lineno > UINT32_MAX)
		dp_die(DP_EXIT_STREAM, "stdin:%llu: duplicate_policy handles batches of up to %u lines", lineno,
		       UINT32_MAX);
	identify(d, line, len, is_delete, lineno);
	uint32_t first = dp_keyset_put(d->keys, d->id.p, d->id.len, (uint32_t)lineno, d->policy == DUP_KEEP_LAST);
	if (first && d->policy == DUP_FAIL)
		dp_die(DP_EXIT_QUALITY,
		       "stdin:%llu: duplicate key %.*s (unique_key %s), first seen on line %u "
		       "(duplicate_policy: fail; nothing was published)",
		       lineno, (int)d->id.len, d->id.p, d->names_text, first);
}

static int
spool_file(void)
{
	const char *dir = getenv("TMPDIR");
	/* mkstemp's template: the name ends in six X characters it replaces. */
	char suffix[7];
	memset(suffix, 'X', 6);
	suffix[6] = '\0';
	char *path = dp_strfmt("%s/dpone-produce-%s", dir && *dir ? dir : "/tmp", suffix);
	int fd = mkstemp(path);
	if (fd < 0)
		dp_die(DP_EXIT_FAILURE, "%s: cannot create the duplicate_policy spool file: %s", path, strerror(errno));
	unlink(path); /* gone with the process, whatever happens */
	free(path);
	return fd;
}

struct dedupe *
dedupe_spool(int in, enum dup_policy policy, char **key_names, size_t nkey)
{
	struct dedupe *d = dp_xcalloc(1, sizeof *d);
	d->policy = policy;
	d->names = key_names;
	d->nkey = nkey;
	struct dp_buf text = {0};
	for (size_t i = 0; i < nkey; i++) {
		dp_buf_str(&text, i ? ", " : "");
		dp_buf_str(&text, key_names[i]);
	}
	dp_buf_add(&text, "", 1);
	d->names_text = text.p;
	d->fd = spool_file();
	d->keys = dp_keyset_new();
	struct dp_reader *r = dp_reader_open(in, "stdin", DP_READ_VALIDATE_ROWS);
	struct dp_writer *w = dp_writer_open(d->fd, "spool", 0);
	int got;
	while ((got = dp_reader_next(r)) > 0) {
		size_t len;
		const char *line = dp_reader_line(r, &len);
		int is_delete = dp_reader_kind(r) == DP_LINE_CONTROL && !strcmp(dp_reader_control_name(r), "delete");
		if (dp_reader_kind(r) == DP_LINE_ROW || is_delete)
			index_line(d, line, len, is_delete, dp_reader_lineno(r));
		if (dp_writer_line(w, line, len) < 0)
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
	}
	if (got < 0)
		dp_die(dp_reader_error_code(r), "%s; nothing was published", dp_reader_error(r));
	if (dp_writer_close(w) < 0)
		dp_die(DP_EXIT_FAILURE, "duplicate_policy spool: write error: %s", strerror(errno));
	dp_reader_close(r);
	if (lseek(d->fd, 0, SEEK_SET) < 0)
		dp_die(DP_EXIT_FAILURE, "duplicate_policy spool: %s", strerror(errno));
	return d;
}

int
dedupe_fd(const struct dedupe *d)
{
	return d->fd;
}

int
dedupe_keep(struct dedupe *d, const char *line, size_t len, int is_delete, unsigned long long lineno)
{
	identify(d, line, len, is_delete, lineno);
	if (dp_keyset_find(d->keys, d->id.p, d->id.len) == lineno)
		return 1;
	d->dropped++;
	return 0;
}

unsigned long long
dedupe_dropped(const struct dedupe *d)
{
	return d->dropped;
}

void
dedupe_free(struct dedupe *d)
{
	if (!d)
		return;
	close(d->fd);
	dp_keyset_free(d->keys);
	free(d->id.p);
	free(d->names_text);
	free(d);
}
