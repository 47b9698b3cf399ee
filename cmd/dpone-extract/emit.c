/*
 * emit.c: the stream dpone-extract writes (dpone-stream(7)) and the plan
 * it prints: the header and its columns, the rows (built column by column
 * into one reused buffer, checked against max_message_bytes, written, and
 * their incremental values kept as the watermark), and --plan's document.
 * main.c, cdc.c, bcp.c and reconcile.c call down into it; it calls only
 * encode.c, source.c and libcommon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

json_t *
key_names(const struct source *s)
{
	json_t *keys = json_array();
	for (int k = 0; k < s->nkey; k++)
		json_array_append_new(keys, json_string(s->cols[s->key[k]].name));
	return keys;
}

json_t *
header_columns(const struct source *s)
{
	json_t *cols = json_array();
	for (int i = 0; i < s->ncols; i++) {
		const struct column *c = &s->cols[i];
		json_t *o = json_pack("{s:s, s:s, s:s, s:b}", "name", c->name, "sql_type", c->sql_type, "logical_type",
		                      c->logical, "nullable", c->nullable);
		if (c->precision >= 0)
			json_object_set_new(o, "precision", json_integer(c->precision));
		if (c->scale >= 0)
			json_object_set_new(o, "scale", json_integer(c->scale));
		if (c->max_length != -1 || strstr(c->sql_type, "(max)"))
			json_object_set_new(o, "max_length", json_integer(c->max_length));
		json_array_append_new(cols, o);
	}
	return cols;
}

/* {"type":"mssql","database":...,"schema":...,"table":...}; no database
 * when the server named none. */
static json_t *
source_object(const struct source *s)
{
	json_t *o = json_pack("{s:s}", "type", "mssql");
	if (*s->server)
		json_object_set_new(o, "server", json_string(s->server));
	if (*s->database)
		json_object_set_new(o, "database", json_string(s->database));
	json_object_set_new(o, "schema", json_string(s->schema));
	json_object_set_new(o, "table", json_string(s->table));
	return o;
}

json_t *
stream_header(const struct source *s, const struct dp_manifest *m, const char *run_id, json_t *boundary,
              const struct encoding *enc)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:{s:s, s:s}}", "protocol", DP_STREAM_PROTOCOL,
	                 "run_id", run_id, "job", dp_manifest_str(m, "name"), "strategy",
	                 dp_manifest_str(m, "sink.strategy.mode"), "source", source_object(s), "columns",
	                 header_columns(s), "key", key_names(s), "boundary", boundary, "encoding", "bigint",
	                 enc->bigint_as_string ? "string" : "number", "binary", enc->binary_as_hex ? "hex" : "base64");
}

json_t *
run_header(const struct source *s, const struct dp_manifest *m, const char *manifest_path, const char *run_id,
           json_t *boundary, const struct encoding *enc)
{
	json_t *header = stream_header(s, m, run_id, boundary, enc);
	if (dp_manifest_check_stage(m) || !json_is_true(dp_manifest_get(m, "schema_evolution.enabled")))
		return header;
	struct dp_evolution ev = {0};
	dp_evolve_prepare(m, manifest_path, &ev);
	json_t *out = dp_evolve_header(m, header, &ev);
	dp_evolution_free(&ev);
	json_decref(header);
	return out;
}

void
print_plan(const struct source *s, const struct dp_manifest *m, json_t *boundary, const struct encoding *enc,
           const struct plan_queries *q, json_t *reconciliation)
{
	json_t *doc =
		json_pack("{s:o, s:o, s:o, s:O, s:s, s:s, s:o, s:s, s:I, s:{s:s, s:s}}", "source", source_object(s),
	                  "columns", header_columns(s), "key", key_names(s), "boundary", boundary, "sql", q->sql,
	                  "count_sql", q->count_sql, "rows", json_loads(q->rows, JSON_DECODE_ANY, NULL), "export_mode",
	                  dp_manifest_str(m, "source.options.export_mode"), "batch_size",
	                  (json_int_t)dp_manifest_int(m, "source.options.batch_size", 50000), "encoding", "bigint",
	                  enc->bigint_as_string ? "string" : "number", "binary", enc->binary_as_hex ? "hex" : "base64");
	if (reconciliation)
		json_object_set(doc, "reconciliation", reconciliation);
	if (q->ranges)
		json_object_set(doc, "ranges", q->ranges);
	char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
	puts(text);
	free(text);
	json_decref(doc);
}

/* ---- rows ---- */

void
row_writer_init(struct row_writer *rw, struct dp_writer *w, const struct source *s, const struct encoding *enc,
                int track_watermark)
{
	*rw = (struct row_writer){.w = w, .s = s, .enc = enc, .inc = track_watermark ? s->inc : -1};
}

void
row_writer_free(struct row_writer *rw)
{
	free(rw->row.p);
	free(rw->wm.low);
	free(rw->wm.high);
	rw->row.p = rw->wm.low = rw->wm.high = NULL;
}

void
row_emit(struct row_writer *rw, const struct dp_buf *row)
{
	unsigned long long number = rw->rows + 1;
	const struct encoding *enc = rw->enc;
	if (enc->max_row_bytes && row->len > enc->max_row_bytes)
		dp_die(DP_EXIT_SINK,
		       "row %llu is %zu bytes or more as JSON, more than sink.options.delivery."
		       "max_message_bytes (%zu): it could not be published; nothing after it was read (raise the "
		       "limit, "
		       "and the topic's max.message.bytes, or leave the column out with source.options.columns)",
		       number, row->len, enc->max_row_bytes);
	if (rw->tap)
		rw->tap(rw->tap_ctx, row->p, row->len, number);
	if (dp_writer_line(rw->w, row->p, row->len))
		dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(rw->w));
	if (rw->inc_len && strncmp(row->p + rw->inc_at, "null", 4)) {
		if (!rw->wm.low)
			rw->wm.low = dp_xstrndup(row->p + rw->inc_at, rw->inc_len);
		free(rw->wm.high);
		rw->wm.high = dp_xstrndup(row->p + rw->inc_at, rw->inc_len);
	}
	rw->rows++;
}

void
row_close(struct row_writer *rw)
{
	dp_buf_char(&rw->row, '}');
	row_emit(rw, &rw->row);
}

/* Progress on stderr, at most once a second (a terminal only). */
static void
show_progress(struct row_writer *rw, double start, double *last)
{
	if ((rw->rows & 4095) == 0 && dp_now() - *last >= 1) {
		*last = dp_now();
		fprintf(stderr, "\r%s: %llu rows, %.0f rows/s   ", dp_progname, rw->rows, rw->rows / (*last - start));
	}
}

unsigned long long
stream_rows(struct source *s, struct row_writer *rw, int progress, long long batch_size)
{
	double start = dp_now(), last = start;
	unsigned long long first = rw->rows;
	RETCODE rc;
	int *types = dp_xcalloc((size_t)s->ncols, sizeof *types);
	for (int i = 0; i < s->ncols; i++)
		types[i] = dbcoltype(s->db, i + 1);
	while ((rc = dbnextrow(s->db)) == REG_ROW) {
		row_open(rw);
		for (int i = 0; i < s->ncols; i++) {
			size_t at = row_member(rw, i);
			if (encode_value(&rw->row, &s->cols[i], types[i], dbdata(s->db, i + 1), dbdatlen(s->db, i + 1),
			                 rw->enc))
				dp_die(DP_EXIT_SOURCE,
				       "row %llu, column %s: the server sent a value no %s column can hold "
				       "(not a number, or a date or time out of range); nothing after it was read",
				       rw->rows + 1, s->cols[i].name, s->cols[i].sql_type);
			row_member_end(rw, i, at);
		}
		row_close(rw);
		if (batch_size > 0 && rw->rows % (unsigned long long)batch_size == 0 && dp_writer_flush(rw->w))
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(rw->w));
		if (dp_interrupted) {
			dbcancel(s->db);
			dp_writer_flush(rw->w);
			dp_die(DP_EXIT_INTERRUPTED, "interrupted after %llu rows; the stream has no end message",
			       rw->rows);
		}
		if (progress)
			show_progress(rw, start, &last);
	}
	if (progress)
		fprintf(stderr, "\r%s: %llu rows in %.1f s         \n", dp_progname, rw->rows, dp_now() - start);
	free(types);
	if (rc != NO_MORE_ROWS || source_failed()) {
		dp_writer_flush(rw->w);
		dp_die(dp_interrupted ? DP_EXIT_INTERRUPTED : DP_EXIT_SOURCE,
		       "reading failed after %llu rows: %s; the stream has no end message", rw->rows,
		       source_error()[0] ? source_error() : "the connection was lost");
	}
	return rw->rows - first;
}
