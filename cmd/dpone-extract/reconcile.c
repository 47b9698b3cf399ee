/*
 * reconcile.c: strategy snapshot_reconciliation. Every run publishes the
 * table as a snapshot; the keys of its rows are gathered (keysort, bounded
 * memory) and compared with the key index of the last committed run: the
 * keys this job has published and not deleted. A key in the index that the
 * snapshot lacks was deleted at the source. By delete_mode those keys are
 * listed (report_only: in the reconciliation message and the run's
 * artifacts, and kept in the index so that a later mode still sees them),
 * or written as delete messages (tombstone, soft_delete: dpone-produce
 * turns them into tombstones or flagged upserts). max_delete_pct is
 * decided before the first delete is written.
 *
 * The index is a dpone stream (dpone-stream(7)), zstd-compressed: a header
 * of kind key_index, one key object per line in byte order, end. The new
 * one is staged under TMPDIR and named in the reconciliation message;
 * dpone-state commit stores it with the state, so it moves with the
 * watermark, and dpone-state keys prints the committed one.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract.h"

#define MISSING_SAMPLE 20

struct reconcile {
	const struct dp_manifest *m;
	const char *manifest_path;
	char *run_id;
	char **names;           /* key column names, borrowed from the source's columns */
	const char **json_keys; /* "name": of each, borrowed */
	size_t nkey;
	json_t *key_columns; /* the key columns' header objects, for the index header */
	json_t *key_names;   /* their names, for the index header */
	struct dp_keysort *keys;
	struct dp_buf key; /* scratch: one key object */
	const char *mode;  /* delete_mode */
	unsigned long long rows;
};

struct reconcile *
reconcile_start(const struct source *s, const struct dp_manifest *m, const char *manifest_path, const char *run_id)
{
	if (m->strategy != DP_SNAPSHOT_RECONCILIATION)
		return NULL;
	struct reconcile *rc = dp_xcalloc(1, sizeof *rc);
	rc->m = m;
	rc->manifest_path = manifest_path;
	rc->run_id = dp_xstrdup(run_id);
	rc->nkey = (size_t)s->nkey;
	rc->names = dp_xcalloc(rc->nkey + 1, sizeof *rc->names);
	rc->json_keys = dp_xcalloc(rc->nkey + 1, sizeof *rc->json_keys);
	json_t *all = header_columns(s);
	rc->key_columns = json_array();
	rc->key_names = key_names(s);
	for (size_t k = 0; k < rc->nkey; k++) {
		rc->names[k] = s->cols[s->key[k]].name;
		rc->json_keys[k] = s->cols[s->key[k]].json_key;
		json_array_append(rc->key_columns, json_array_get(all, (size_t)s->key[k]));
	}
	json_decref(all);
	long long mb = dp_manifest_int(m, "sink.strategy.reconcile_memory_mb", 64);
	rc->keys = dp_keysort_new((size_t)mb << 20);
	rc->mode = dp_manifest_str(m, "sink.strategy.delete_mode");
	return rc;
}

static void
add_key(struct reconcile *rc, const struct dp_span *sp, unsigned long long row_number)
{
	rc->key.len = 0;
	dp_buf_char(&rc->key, '{');
	for (size_t k = 0; k < rc->nkey; k++) {
		if (!sp[k].p)
			dp_die(DP_EXIT_SOURCE, "row %llu has no value for key column %s", row_number, rc->names[k]);
		if (sp[k].n == 4 && !memcmp(sp[k].p, "null", 4))
			dp_die(DP_EXIT_SOURCE,
			       "row %llu: key column %s is NULL; snapshot_reconciliation needs a key that "
			       "identifies every row",
			       row_number, rc->names[k]);
		dp_buf_str(&rc->key, k ? "," : "");
		dp_buf_str(&rc->key, rc->json_keys[k]);
		dp_buf_add(&rc->key, sp[k].p, sp[k].n);
	}
	dp_buf_char(&rc->key, '}');
	if (dp_keysort_add(rc->keys, rc->key.p, rc->key.len) < 0)
		dp_die(DP_EXIT_FAILURE, "sorting the snapshot's keys: cannot write a temporary file under TMPDIR: %s",
		       strerror(errno));
	rc->rows++;
}

void
reconcile_tap(void *ctx, const char *row, size_t len, unsigned long long row_number)
{
	struct reconcile *rc = ctx;
	struct dp_span sp[rc->nkey + 1];
	memset(sp, 0, sizeof sp);
	dp_scan_object(row, len, rc->names, rc->nkey, sp);
	add_key(rc, sp, row_number);
}

/* ---- the committed index ---- */

struct previous {
	pid_t pid;
	int fd;
	struct dp_reader *r;
	unsigned long long expected; /* keys the state record says it holds */
	char *last;                  /* the key read before, to check the order */
	size_t last_len;
	const char *key; /* the current key, valid until the next */
	size_t len;
	int done;
};

static json_t *
committed_index(const struct reconcile *rc)
{
	int code;
	json_t *doc = dp_committed_state(rc->m, rc->manifest_path, &code);
	if (!doc)
		dp_die(code ? code : DP_EXIT_STATE, "reading the committed key index: dpone-state get failed");
	json_t *index = json_incref(json_object_get(json_object_get(doc, "record"), "key_index"));
	json_decref(doc);
	return index;
}

static void
previous_next(struct previous *p)
{
	int got;
	while ((got = dp_reader_next(p->r)) > 0 && dp_reader_kind(p->r) != DP_LINE_ROW)
		;
	if (got < 0)
		dp_die(DP_EXIT_STATE, "the committed key index: %s", dp_reader_error(p->r));
	if (!got) {
		p->done = 1;
		if (dp_reader_rows(p->r) != p->expected)
			dp_die(DP_EXIT_STATE, "the committed key index holds %llu keys, its state record says %llu",
			       dp_reader_rows(p->r), p->expected);
		return;
	}
	const char *line = dp_reader_line(p->r, &p->len);
	if (p->last && dp_keysort_compare(line, p->len, p->last, p->last_len) <= 0)
		dp_die(DP_EXIT_STATE, "the committed key index is not in key order at line %llu",
		       dp_reader_lineno(p->r));
	free(p->last);
	p->last = dp_xstrndup(line, p->len);
	p->last_len = p->len;
	p->key = p->last;
}

static void
previous_open(const struct reconcile *rc, json_t *index, struct previous *p)
{
	memset(p, 0, sizeof *p);
	p->fd = -1;
	if (!index) {
		p->done = 1;
		return;
	}
	p->expected = (unsigned long long)json_integer_value(json_object_get(index, "keys"));
	char *argv[] = {"dpone-state", "-q", (char *)rc->manifest_path, "keys", NULL};
	if (!rc->manifest_path || (p->fd = dp_spawn_reader(argv, &p->pid)) < 0)
		dp_die(DP_EXIT_STATE, "cannot read the committed key index (dpone-state keys)");
	p->r = dp_reader_open(p->fd, "the committed key index", DP_READ_VALIDATE_ROWS);
	previous_next(p);
}

static void
previous_close(struct previous *p)
{
	if (!p->r)
		return;
	dp_reader_close(p->r);
	close(p->fd);
	int code = dp_spawn_wait(p->pid);
	if (code)
		dp_die(code > 0 && code < 128 ? code : DP_EXIT_STATE, "dpone-state keys failed (exit %d)", code);
	free(p->last);
}

/* ---- the comparison ---- */

struct outcome {
	unsigned long long previous, current, missing, indexed;
	json_t *sample;          /* the first missing keys */
	FILE *missing_keys;      /* every missing key, one per line (NULL: count only) */
	struct dp_writer *index; /* the new index (NULL: plan only) */
};

static void
missing_key(struct outcome *o, const char *key, size_t len)
{
	o->missing++;
	if (json_array_size(o->sample) < MISSING_SAMPLE)
		json_array_append_new(o->sample, json_loadb(key, len, 0, NULL));
	if (o->missing_keys && (fwrite(key, 1, len, o->missing_keys) != len || putc('\n', o->missing_keys) == EOF))
		dp_die(DP_EXIT_FAILURE, "writing the missing keys under TMPDIR: %s", strerror(errno));
}

static void
index_key(struct outcome *o, const char *key, size_t len)
{
	o->indexed++;
	if (o->index && dp_writer_line(o->index, key, len))
		dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(o->index));
}

/* Merge the snapshot's sorted keys with the committed index's. */
static void
compare(struct reconcile *rc, struct previous *p, struct outcome *o, int keep_missing)
{
	if (dp_keysort_finish(rc->keys) < 0)
		dp_die(DP_EXIT_FAILURE, "sorting the snapshot's keys: %s", strerror(errno));
	const char *cur;
	size_t clen;
	int have = dp_keysort_next(rc->keys, &cur, &clen);
	while (have > 0 || !p->done) {
		if (have < 0)
			dp_die(DP_EXIT_FAILURE, "sorting the snapshot's keys: %s", strerror(errno));
		int c = have <= 0 ? 1 : p->done ? -1 : dp_keysort_compare(cur, clen, p->key, p->len);
		if (c <= 0) {
			index_key(o, cur, clen);
			o->current++;
		} else {
			missing_key(o, p->key, p->len);
			if (keep_missing)
				index_key(o, p->key, p->len);
		}
		if (c >= 0) {
			o->previous++;
			previous_next(p);
		}
		if (c <= 0)
			have = dp_keysort_next(rc->keys, &cur, &clen);
	}
}

static double
delete_pct(const struct outcome *o)
{
	return o->previous ? 100.0 * (double)o->missing / (double)o->previous : 0.0;
}

/* The reconciliation's summary (without the index), a new object. */
static json_t *
summary(const struct reconcile *rc, const struct outcome *o, int deleting)
{
	json_t *max = dp_manifest_get(rc->m, "sink.strategy.max_delete_pct");
	double pct = delete_pct(o);
	int over = max && pct > json_number_value(max);
	json_t *doc = json_pack("{s:s, s:I, s:I, s:I, s:I, s:f, s:O?, s:s, s:O}", "mode", rc->mode, "previous_keys",
	                        (json_int_t)o->previous, "current_keys", (json_int_t)o->current, "missing",
	                        (json_int_t)o->missing, "deleted", (json_int_t)(deleting ? o->missing : 0),
	                        "delete_pct", round(pct * 1000) / 1000, "max_delete_pct", max, "guard",
	                        over ? (deleting ? "fail" : "would fail") : "pass", "missing_sample", o->sample);
	if (!o->previous && !o->missing)
		json_object_set_new(doc, "first_run", json_true());
	return doc;
}

json_t *
reconcile_plan(struct reconcile *rc, FILE *list)
{
	struct previous p;
	json_t *index = committed_index(rc);
	previous_open(rc, index, &p);
	json_decref(index);
	struct outcome o = {.sample = json_array(), .missing_keys = list};
	compare(rc, &p, &o, 0);
	previous_close(&p);
	int deleting = strcmp(rc->mode, "report_only") != 0;
	json_t *doc = summary(rc, &o, deleting);
	json_decref(o.sample);
	return doc;
}

/* --plan: read only the key columns of the boundary, in key order. */
void
reconcile_keys_from(struct reconcile *rc, struct source *s, const char *where, const struct encoding *enc)
{
	char *list = source_column_list(s, 1), *table = source_table_name(s);
	char *sql = dp_strfmt("SELECT %s FROM %s%s%s", list, table, where ? " WHERE " : "", where ? where : "");
	if (source_query(s, sql))
		dp_die(DP_EXIT_SOURCE, "reading the keys: %s", source_error());
	struct dp_buf vals = {0};
	struct dp_span sp[s->nkey + 1];
	size_t at[s->nkey + 1];
	while (dbnextrow(s->db) == REG_ROW) {
		vals.len = 0;
		for (int k = 0; k < s->nkey; k++) {
			at[k] = vals.len;
			const struct column *c = &s->cols[s->key[k]];
			if (encode_value(&vals, c, dbcoltype(s->db, k + 1), dbdata(s->db, k + 1),
			                 dbdatlen(s->db, k + 1), enc))
				dp_die(DP_EXIT_SOURCE, "key %s: a value no %s column can hold", c->name, c->sql_type);
		}
		for (int k = 0; k < s->nkey; k++)
			sp[k] = (struct dp_span){vals.p + at[k], (k + 1 < s->nkey ? at[k + 1] : vals.len) - at[k]};
		add_key(rc, sp, rc->rows + 1);
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the keys: %s", source_error());
	free(vals.p);
	free(sql);
	free(table);
	free(list);
}

/* ---- after the last row of a run ---- */

static char *staged_index; /* removed if the run dies before its end */
static int index_done;     /* the reconciliation message names it: keep it */

void
reconcile_remove_staged(void)
{
	if (staged_index && !index_done)
		unlink(staged_index);
}

static struct dp_writer *
open_index(struct reconcile *rc, int *fd)
{
	const char *tmp = getenv("TMPDIR");
	staged_index = dp_strfmt("%s/dpone-keys-%s.ndjson.zst", tmp && *tmp ? tmp : "/tmp", rc->run_id);
	*fd = open(staged_index, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (*fd < 0)
		dp_die(DP_EXIT_FAILURE, "%s: %s", staged_index, strerror(errno));
	struct dp_writer *w = dp_writer_open(*fd, staged_index, 3);
	dp_writer_control(w, "header",
	                  json_pack("{s:i, s:s, s:s, s:s, s:O, s:O}", "protocol", DP_STREAM_PROTOCOL, "kind",
	                            "key_index", "job", dp_manifest_str(rc->m, "name"), "run_id", rc->run_id, "columns",
	                            rc->key_columns, "key", rc->key_names));
	return w;
}

/* report_only: every missing key into the run's artifacts, when kept. */
static char *
list_missing(const struct reconcile *rc, FILE *missing)
{
	if (!json_is_true(dp_manifest_get(rc->m, "observability.artifacts.enabled")))
		return NULL;
	char *dir = dp_strfmt("%s/%s", dp_manifest_str(rc->m, "observability.artifacts.path"), rc->run_id);
	char *path = dp_strfmt("%s/missing_keys.ndjson", dir);
	struct stat st;
	FILE *out = stat(dir, &st) == 0 ? fopen(path, "w") : NULL;
	free(dir);
	if (!out) {
		dp_warn("warning: cannot write %s (the run's artifact directory is made by dpone batch run)", path);
		free(path);
		return NULL;
	}
	char buf[65536];
	size_t n;
	rewind(missing);
	while ((n = fread(buf, 1, sizeof buf, missing)) > 0)
		fwrite(buf, 1, n, out);
	if (fclose(out))
		dp_die(DP_EXIT_FAILURE, "%s: %s", path, strerror(errno));
	return path;
}

/* The delete messages, from the missing keys' file. */
static unsigned long long
write_deletes(FILE *missing, struct dp_writer *w)
{
	rewind(missing);
	struct dp_buf line = {0};
	char *key = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long long count = 0;
	while ((n = getline(&key, &cap, missing)) > 0) {
		line.len = 0;
		dp_buf_str(&line, "[\"delete\",");
		dp_buf_add(&line, key, (size_t)n - 1);
		dp_buf_char(&line, ']');
		if (dp_writer_line(w, line.p, line.len))
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
		count++;
	}
	free(key);
	free(line.p);
	return count;
}

unsigned long long
reconcile_finish(struct reconcile *rc, struct dp_writer *w)
{
	int deleting = strcmp(rc->mode, "report_only") != 0;
	struct previous p;
	json_t *index = committed_index(rc);
	previous_open(rc, index, &p);
	json_decref(index);
	int fd;
	struct outcome o = {.sample = json_array(), .index = open_index(rc, &fd)};
	if (!(o.missing_keys = dp_tmpfile("dpone-missing")))
		dp_die(DP_EXIT_FAILURE, "a temporary file for the missing keys under TMPDIR: %s", strerror(errno));
	/* report_only deletes nothing, so the index keeps the missing keys:
	 * they are still in the topic, and a later mode must still see them. */
	compare(rc, &p, &o, !deleting);
	previous_close(&p);
	dp_writer_control(o.index, "end", json_pack("{s:I}", "rows", (json_int_t)o.indexed));
	if (dp_writer_close(o.index) || close(fd))
		dp_die(DP_EXIT_FAILURE, "%s: %s", staged_index, strerror(errno));
	json_t *doc = summary(rc, &o, deleting);
	if (deleting && !strcmp(json_string_value(json_object_get(doc, "guard")), "fail"))
		dp_die(DP_EXIT_QUALITY,
		       "snapshot_reconciliation would delete %llu of %llu keys (%.3f%%), more than "
		       "sink.strategy.max_delete_pct (%g%%): no delete was written and the stream has no end, so state "
		       "does not advance. Check the source (an emptied or filtered table?); dpone plan lists the keys",
		       o.missing, o.previous, delete_pct(&o),
		       json_number_value(dp_manifest_get(rc->m, "sink.strategy.max_delete_pct")));
	unsigned long long deleted = 0;
	if (deleting) {
		deleted = write_deletes(o.missing_keys, w);
	} else if (o.missing) {
		char *list = list_missing(rc, o.missing_keys);
		if (list)
			json_object_set_new(doc, "missing_list", json_string(list));
		dp_warn("snapshot_reconciliation (report_only): %llu of %llu published keys are no longer in the "
		        "source; "
		        "nothing was deleted%s%s",
		        o.missing, o.previous, list ? "; the list is in " : "", list ? list : "");
		free(list);
	}
	fclose(o.missing_keys);
	json_object_set_new(doc, "key_index",
	                    json_pack("{s:s, s:I}", "path", staged_index, "keys", (json_int_t)o.indexed));
	dp_writer_control(w, "reconciliation", doc);
	json_decref(o.sample);
	index_done = 1;
	return deleted;
}

void
reconcile_free(struct reconcile *rc)
{
	if (!rc)
		return;
	dp_keysort_free(rc->keys);
	json_decref(rc->key_columns);
	json_decref(rc->key_names);
	free(rc->key.p);
	free(rc->names);
	free(rc->json_keys);
	free(rc->run_id);
	free(rc);
	free(staged_index);
	staged_index = NULL;
}
