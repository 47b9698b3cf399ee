/*
 * cdc.c: strategy cdc. SQL Server change data capture read through
 * cdc.fn_cdc_get_all_changes_<capture instance> between the committed
 * offset and sys.fn_cdc_get_max_lsn() (read once, before any change), in
 * pages of batch_size changes, or an initial snapshot of the table when
 * no offset exists. The offset is (commit LSN, seqval): every change at or
 * below it was published. It is written "0x<20 hex>:0x<20 hex>", fixed
 * width, so text order is LSN order; a run that read everything up to the
 * high LSN ends at (high, 0xFF...), which no seqval exceeds.
 *
 * Stream shape (dpone-stream(7)): an insert or an update's after image is
 * a ["change", {op, lsn, seqval[, before]}] line then the row; a delete is
 * ["delete", {key}, {op, lsn, seqval, before}]; snapshot rows are plain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

#define LSN_LEN 10
#define LSN_COLUMN "__$start_lsn"

struct lsn {
	unsigned char b[LSN_LEN];
};

/* Every change at or below (lsn, seq) is published. */
struct offset {
	struct lsn lsn, seq;
};

struct capture {
	char name[260];
	long long object_id; /* the change table's */
	struct lsn start;    /* its first LSN (fn_cdc_get_min_lsn moves with cleanup) */
};

struct cdc_plan {
	struct capture ci;
	char committed_ci[260]; /* the instance the offset was read on, from state; "" if unknown */
	struct lsn min, high;   /* the instance's oldest LSN, the run's high LSN */
	struct offset from;     /* the committed offset (have_from) */
	int have_from;
	int snapshot;          /* read the table, not the changes */
	int empty;             /* no change can lie in the window */
	struct lsn query_from; /* the function's @from_lsn when reading changes */
	const char *why;       /* why a snapshot, for the boundary and the plan */
	json_t *boundary;      /* the header's boundary object */
};

/* ---- LSN text ---- */

static void
lsn_text(const struct lsn *l, char out[2 * LSN_LEN + 3])
{
	out[0] = '0';
	out[1] = 'x';
	for (int i = 0; i < LSN_LEN; i++)
		sprintf(out + 2 + 2 * i, "%02X", l->b[i]);
}

static int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "0x" and 1..20 hex digits, right-aligned into l; 0 or -1. */
static int
lsn_parse(const char *s, size_t n, struct lsn *l)
{
	if (n < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || n - 2 > 2 * LSN_LEN)
		return -1;
	memset(l, 0, sizeof *l);
	int pos = 2 * LSN_LEN - 1;
	for (size_t i = n; i > 2; i--, pos--) {
		int v = hex_digit((unsigned char)s[i - 1]);
		if (v < 0)
			return -1;
		l->b[pos / 2] |= (unsigned char)(pos % 2 ? v : v << 4);
	}
	return 0;
}

static int
lsn_cmp(const struct lsn *a, const struct lsn *b)
{
	return memcmp(a->b, b->b, LSN_LEN);
}

static void
lsn_increment(struct lsn *l)
{
	for (int i = LSN_LEN - 1; i >= 0 && ++l->b[i] == 0; i--)
		;
}

static int
lsn_is_max(const struct lsn *l)
{
	for (int i = 0; i < LSN_LEN; i++)
		if (l->b[i] != 0xFF)
			return 0;
	return 1;
}

static char *
offset_text(const struct lsn *lsn, const struct lsn *seq)
{
	char a[2 * LSN_LEN + 3], b[2 * LSN_LEN + 3];
	lsn_text(lsn, a);
	lsn_text(seq, b);
	return dp_strfmt("%s:%s", a, b);
}

/* An offset as --from gives it: "0xLSN:0xSEQVAL", or "0xLSN" (the whole
 * transaction published), in JSON quotes or not. 0 or -1. */
static int
offset_parse(const char *text, struct offset *o)
{
	size_t n = strlen(text);
	if (n >= 2 && text[0] == '"' && text[n - 1] == '"') {
		text++;
		n -= 2;
	}
	const char *colon = memchr(text, ':', n);
	if (lsn_parse(text, colon ? (size_t)(colon - text) : n, &o->lsn))
		return -1;
	if (!colon) {
		memset(o->seq.b, 0xFF, LSN_LEN);
		return 0;
	}
	return lsn_parse(colon + 1, n - (size_t)(colon + 1 - text), &o->seq);
}

/* ---- asking the server ---- */

/* The one binary(10) value a query returns; 0, or -1 when it returned NULL. */
static int
query_lsn(struct source *s, const char *sql, struct lsn *out, const char *what)
{
	if (source_query(s, sql))
		dp_die(DP_EXIT_SOURCE, "%s: %s", what, source_error());
	int found = 0;
	while (dbnextrow(s->db) == REG_ROW) {
		const BYTE *p = dbdata(s->db, 1);
		DBINT len = dbdatlen(s->db, 1);
		if (found || !p || len <= 0 || len > LSN_LEN)
			continue;
		memset(out, 0, sizeof *out);
		memcpy(out->b + LSN_LEN - len, p, (size_t)len);
		found = 1;
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "%s: %s", what, source_error());
	return found ? 0 : -1;
}

/* The table's capture instances, oldest first; how many (at most max). */
static int
read_captures(struct source *s, struct capture *out, int max)
{
	char *table = source_table_name(s);
	/* quote doubling: the bracketed name may hold quotes */
	struct dp_buf lit = {0};
	dp_buf_str(&lit, "N'");
	for (const char *p = table; *p; p++) {
		if (*p == '\'')
			dp_buf_char(&lit, '\'');
		dp_buf_char(&lit, *p);
	}
	dp_buf_str(&lit, "'");
	dp_buf_char(&lit, '\0');
	char *sql = dp_strfmt("SELECT capture_instance, object_id, start_lsn FROM cdc.change_tables"
	                      " WHERE source_object_id = OBJECT_ID(%s) ORDER BY start_lsn",
	                      lit.p);
	free(lit.p);
	if (source_query(s, sql)) {
		if (strstr(source_error(), "Invalid object name"))
			dp_die(DP_EXIT_SOURCE,
			       "change data capture is not enabled in this database (no cdc.change_tables): "
			       "EXEC sys.sp_cdc_enable_db, then sys.sp_cdc_enable_table for %s",
			       table);
		dp_die(DP_EXIT_SOURCE, "reading the capture instances of %s: %s", table, source_error());
	}
	int n = 0;
	while (dbnextrow(s->db) == REG_ROW) {
		if (n == max)
			continue;
		struct capture *c = &out[n++];
		memset(c, 0, sizeof *c);
		DBINT len = dbdatlen(s->db, 1);
		snprintf(c->name, sizeof c->name, "%.*s", (int)len, (const char *)dbdata(s->db, 1));
		DBINT id = 0;
		if (dbdata(s->db, 2))
			memcpy(&id, dbdata(s->db, 2), sizeof id);
		c->object_id = id;
		len = dbdatlen(s->db, 3);
		if (dbdata(s->db, 3) && len > 0 && len <= LSN_LEN)
			memcpy(c->start.b + LSN_LEN - len, dbdata(s->db, 3), (size_t)len);
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the capture instances of %s: %s", table, source_error());
	free(sql);
	free(table);
	return n;
}

/* The capture instance the job committed its offset on, from state; "" if none. */
static void
committed_instance(const struct dp_manifest *m, const char *manifest_path, char *out, size_t cap)
{
	int code;
	out[0] = '\0';
	if (!manifest_path)
		return;
	json_t *doc = dp_committed_state(m, manifest_path, &code);
	const char *ci = json_string_value(
		json_object_get(json_object_get(json_object_get(doc, "record"), "boundary"), "capture_instance"));
	if (ci)
		snprintf(out, cap, "%s", ci);
	json_decref(doc);
}

/* The instance to read: the pinned one, else the committed one, else the
 * newest; committed (260 bytes) gets the committed one's name. */
static void
choose_instance(struct source *s, const struct dp_manifest *m, const char *manifest_path, int have_from,
                struct capture *chosen, char *committed)
{
	struct capture found[2];
	int n = read_captures(s, found, 2);
	const char *pinned = dp_manifest_str(m, "source.options.capture_instance");
	committed[0] = '\0';
	if (have_from)
		committed_instance(m, manifest_path, committed, 260);
	if (!n)
		dp_die(DP_EXIT_SOURCE,
		       "change data capture is not enabled for %s.%s: EXEC sys.sp_cdc_enable_table "
		       "@source_schema = N'%s', @source_name = N'%s', @role_name = NULL; nothing was read",
		       s->schema, s->table, s->schema, s->table);
	const char *want = pinned ? pinned : *committed ? committed : found[n - 1].name;
	int k = -1;
	for (int i = 0; i < n; i++)
		if (!strcmp(found[i].name, want))
			k = i;
	if (k < 0 && pinned) {
		char where[1024];
		dp_die(DP_EXIT_SOURCE, "%scapture instance '%s' does not exist for %s.%s (it has: %s%s%s)",
		       dp_manifest_where(m, "source.options.capture_instance", where, sizeof where), pinned, s->schema,
		       s->table, found[0].name, n > 1 ? ", " : "", n > 1 ? found[1].name : "");
	}
	if (k < 0) {
		/* The committed instance is gone: its changes went with it. */
		dp_die(DP_EXIT_SOURCE,
		       "capture instance '%s', on which the committed offset was read, no longer exists "
		       "for %s.%s (it now has %s%s%s): changes between the offset and the new instance's start may be "
		       "lost. "
		       "Re-snapshot: dpone-state MANIFEST reset --to null, then run with source.options.snapshot: "
		       "initial "
		       "and source.options.capture_instance: %s",
		       committed, s->schema, s->table, found[0].name, n > 1 ? ", " : "", n > 1 ? found[1].name : "",
		       found[n - 1].name);
	}
	if (!pinned && n > 1 && k != n - 1)
		dp_warn("warning: %s.%s has a newer capture instance '%s' (after an ALTER TABLE?); still reading '%s', "
		        "where the offset was committed. To switch without a gap, set source.options.capture_instance: "
		        "%s "
		        "once a run has committed past its first LSN (see dpone-extract(1), CDC)",
		        s->schema, s->table, found[n - 1].name, found[k].name, found[n - 1].name);
	if (*committed && strcmp(committed, found[k].name))
		dp_warn("capture instance changed from '%s' to '%s'", committed, found[k].name);
	*chosen = found[k];
}

/* Keep only the captured columns of s (table order); warn about the others. */
static void
keep_captured_columns(struct source *s, const struct capture *ci)
{
	char *sql =
		dp_strfmt("SELECT column_name FROM cdc.captured_columns WHERE object_id = %lld ORDER BY column_ordinal",
	                  ci->object_id);
	if (source_query(s, sql))
		dp_die(DP_EXIT_SOURCE, "reading the columns of capture instance %s: %s", ci->name, source_error());
	free(sql);
	int *captured = dp_xcalloc((size_t)s->ncols + 1, sizeof *captured);
	while (dbnextrow(s->db) == REG_ROW) {
		char name[260];
		snprintf(name, sizeof name, "%.*s", (int)dbdatlen(s->db, 1), (const char *)dbdata(s->db, 1));
		int k = source_column(s, name);
		if (k >= 0)
			captured[k] = 1;
		else
			dp_warn("warning: column %s, captured by %s, is no longer in %s.%s: its values are not read",
			        name, ci->name, s->schema, s->table);
	}
	if (source_failed())
		dp_die(DP_EXIT_SOURCE, "reading the columns of capture instance %s: %s", ci->name, source_error());
	int *map = dp_xcalloc((size_t)s->ncols + 1, sizeof *map), n = 0;
	for (int i = 0; i < s->ncols; i++) {
		if (captured[i]) {
			map[i] = n;
			s->cols[n++] = s->cols[i];
			continue;
		}
		map[i] = -1;
		dp_warn("warning: column %s of %s.%s is not captured by %s (added after the instance was created?): "
		        "its "
		        "values are not in the changes and it is left out of the stream; to capture it, create a new "
		        "capture instance and switch to it (dpone-extract(1), CDC)",
		        s->cols[i].name, s->schema, s->table, ci->name);
		free(s->cols[i].json_key);
	}
	for (int k = 0; k < s->nkey; k++) {
		if (map[s->key[k]] < 0)
			dp_die(DP_EXIT_SOURCE, "key column %s is not captured by %s: changes could not be keyed",
			       s->cols[s->key[k]].name, ci->name);
		s->key[k] = map[s->key[k]];
	}
	s->ncols = n;
	s->inc = -1;
	free(map);
	free(captured);
}

/* ---- the plan ---- */

static int
seq_done(const struct offset *o)
{
	return lsn_is_max(&o->seq);
}

static void
plan_cdc(struct source *s, const struct dp_manifest *m, const struct cdc_request *rq, struct cdc_plan *p)
{
	memset(p, 0, sizeof *p);
	if (rq->from && offset_parse(rq->from, &p->from))
		dp_die(DP_EXIT_USAGE,
		       "--from %s: a CDC offset is 0xLSN:0xSEQVAL (20 hex digits each), as dpone-state "
		       "get --watermark prints it",
		       rq->from);
	p->have_from = rq->from != NULL;
	choose_instance(s, m, rq->manifest_path, p->have_from, &p->ci, p->committed_ci);
	keep_captured_columns(s, &p->ci);
	if (s->nkey == 0)
		dp_die(DP_EXIT_SOURCE,
		       "%s.%s has no primary key and the manifest no unique_key: CDC changes could not "
		       "be keyed",
		       s->schema, s->table);
	char *ci = dp_strfmt("SELECT sys.fn_cdc_get_min_lsn(N'%s')", p->ci.name);
	if (strchr(p->ci.name, '\''))
		dp_die(DP_EXIT_SOURCE, "capture instance %s: a quote in its name is not supported", p->ci.name);
	if (query_lsn(s, ci, &p->min, "reading the capture instance's oldest LSN"))
		dp_die(DP_EXIT_SOURCE, "capture instance %s has no minimum LSN (disabled meanwhile?)", p->ci.name);
	free(ci);
	if (rq->to) {
		struct offset to;
		if (offset_parse(rq->to, &to))
			dp_die(DP_EXIT_USAGE, "--to %s: expected an LSN, 0x and up to 20 hex digits", rq->to);
		p->high = to.lsn;
	} else if (query_lsn(s, "SELECT sys.fn_cdc_get_max_lsn()", &p->high, "reading the maximum LSN")) {
		dp_die(DP_EXIT_SOURCE,
		       "sys.fn_cdc_get_max_lsn() is NULL: no change has been captured in this database yet");
	}
	const char *mode = dp_manifest_str(m, "source.options.snapshot");
	if (p->have_from) {
		p->query_from = p->from.lsn;
		if (seq_done(&p->from))
			lsn_increment(&p->query_from);
		if (lsn_cmp(&p->query_from, &p->min) < 0) {
			char off[2 * LSN_LEN + 3], min[2 * LSN_LEN + 3];
			lsn_text(&p->from.lsn, off);
			lsn_text(&p->min, min);
			if (*p->committed_ci && strcmp(p->committed_ci, p->ci.name))
				dp_die(DP_EXIT_SOURCE,
				       "capture instance %s starts at LSN %s, after the committed offset %s: the "
				       "changes between are only in %s, where the offset was read. Keep source.options."
				       "capture_instance: %s until a run commits past %s, then switch; nothing was "
				       "read",
				       p->ci.name, min, off, p->committed_ci, p->committed_ci, min);
			if (strcmp(mode, "when_needed"))
				dp_die(DP_EXIT_SOURCE,
				       "the committed offset %s is out of capture instance %s's retention: its "
				       "oldest change is now %s, so changes after the offset were cleaned up (SQL "
				       "Server error 313 "
				       "if read); nothing was read and state is unchanged. Re-snapshot: set "
				       "source.options.snapshot: "
				       "when_needed, or dpone-state MANIFEST reset --to null and run again",
				       off, p->ci.name, min);
			dp_warn("warning: the committed offset %s is out of %s's retention (oldest change %s): "
			        "snapshot: "
			        "when_needed reads the table again; rows deleted in the lost window stay in the topic "
			        "(a "
			        "snapshot_reconciliation job finds them)",
			        off, p->ci.name, min);
			p->snapshot = 1;
			p->why = "offset out of retention";
		}
	} else if (strcmp(mode, "never")) {
		p->snapshot = 1;
		p->why = "no committed offset";
	} else {
		p->query_from = p->min; /* every change still retained */
	}
	if (!p->snapshot && lsn_cmp(&p->query_from, &p->high) > 0)
		p->empty = 1;

	char high[2 * LSN_LEN + 3], min[2 * LSN_LEN + 3], *high_off;
	lsn_text(&p->high, high);
	lsn_text(&p->min, min);
	struct lsn all = {{0}};
	memset(all.b, 0xFF, LSN_LEN);
	high_off = offset_text(&p->high, &all);
	p->boundary =
		json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "kind", "cdc", "column", LSN_COLUMN, "capture_instance",
	                  p->ci.name, "min_lsn", min, "high", high_off, "snapshot", p->snapshot);
	if (p->why)
		json_object_set_new(p->boundary, "snapshot_reason", json_string(p->why));
	if (p->have_from) {
		char *from = offset_text(&p->from.lsn, &p->from.seq);
		json_object_set_new(p->boundary, "from", json_string(from));
		if (!p->snapshot)
			json_object_set_new(p->boundary, "low", json_string(from));
		free(from);
	}
	const char *predicate = dp_manifest_str(m, "source.options.source_custom_predicate");
	if (predicate)
		dp_die(DP_EXIT_USAGE, "source.options.source_custom_predicate does not apply to strategy cdc: a change "
		                      "cannot be skipped without losing it");
	free(high_off);
}

/* ---- SQL ---- */

static const char *
row_filter(const struct dp_manifest *m)
{
	const char *f = dp_manifest_str(m, "source.options.row_filter_option");
	return f && !strcmp(f, "all update old") ? "all update old" : "all";
}

/* Position of the last change read, for keyset paging: (lsn, seqval, operation). */
struct position {
	struct lsn lsn, seq;
	int op;
};

/* The changes after pos (a page of top rows, or all when top is 0); what
 * is "COUNT_BIG(*)" for --count. The caller frees it. */
static char *
changes_sql(const struct source *s, const struct dp_manifest *m, const struct cdc_plan *p, const struct position *pos,
            long long top, const char *what)
{
	char from[2 * LSN_LEN + 3], high[2 * LSN_LEN + 3], l[2 * LSN_LEN + 3], q[2 * LSN_LEN + 3];
	lsn_text(&p->query_from, from);
	lsn_text(&p->high, high);
	lsn_text(&pos->lsn, l);
	lsn_text(&pos->seq, q);
	char *fn_name = dp_strfmt("fn_cdc_get_all_changes_%s", p->ci.name);
	char *fn = quote_name(fn_name);
	char *cols = what ? dp_xstrdup(what) : source_column_list(s, 0);
	char *topn = top > 0 ? dp_strfmt("TOP (%lld) ", top) : dp_xstrdup("");
	char *sql = dp_strfmt(
		"SELECT %s%s%s FROM cdc.%s(%s, %s, N'%s') WHERE __$start_lsn > %s OR (__$start_lsn = %s AND "
		"(__$seqval > %s OR (__$seqval = %s AND __$operation > %d)))%s",
		topn, what ? "" : "__$start_lsn, __$seqval, __$operation, ", cols, fn, from, high, row_filter(m), l, l,
		q, q, pos->op, what ? "" : " ORDER BY __$start_lsn, __$seqval, __$operation");
	free(topn);
	free(cols);
	free(fn);
	free(fn_name);
	return sql;
}

static void
start_position(const struct cdc_plan *p, struct position *pos)
{
	memset(pos, 0, sizeof *pos);
	if (p->have_from) {
		pos->lsn = p->from.lsn;
		pos->seq = p->from.seq;
		pos->op = 4; /* the offset's change itself, whatever its operation, is done */
	}
}

static char *
snapshot_sql(const struct source *s)
{
	char *table = source_table_name(s), *cols = source_column_list(s, 0), *order = source_column_list(s, 1);
	char *sql = dp_strfmt("SELECT %s FROM %s ORDER BY %s", cols, table, order);
	free(order);
	free(cols);
	free(table);
	return sql;
}

/* ---- reading changes ---- */

struct change_counts {
	unsigned long long inserts, updates, deletes, rows;
	char first[2 * (2 * LSN_LEN + 3)]; /* the first change's "lsn:seqval", or "" */
};

static _Noreturn void
changes_failed(const struct cdc_plan *p, unsigned long long changes)
{
	if (strstr(source_error(), "error 313"))
		dp_die(DP_EXIT_SOURCE,
		       "capture instance %s no longer holds the changes after the offset (SQL Server error "
		       "313: retention cleanup ran during the run?) after %llu changes; the stream has no end message; "
		       "re-snapshot with source.options.snapshot: when_needed",
		       p->ci.name, changes);
	dp_die(dp_interrupted ? DP_EXIT_INTERRUPTED : DP_EXIT_SOURCE,
	       "reading changes failed after %llu changes: %s; the stream has no end message", changes,
	       source_error()[0] ? source_error() : "the connection was lost");
}

/* The current result row's columns (from column 4 on) as a JSON object in
 * rw->row, not yet emitted; at[i], len[i]: where column i's value is. */
static void
encode_change_row(struct source *s, struct row_writer *rw, size_t *at, size_t *len, unsigned long long number)
{
	row_open(rw);
	for (int i = 0; i < s->ncols; i++) {
		at[i] = row_member(rw, i);
		if (encode_value(&rw->row, &s->cols[i], dbcoltype(s->db, i + 4), dbdata(s->db, i + 4),
		                 dbdatlen(s->db, i + 4), rw->enc))
			dp_die(DP_EXIT_SOURCE,
			       "change %llu, column %s: the server sent a value no %s column can hold; the "
			       "stream has no end message",
			       number, s->cols[i].name, s->cols[i].sql_type);
		len[i] = rw->row.len - at[i];
	}
	dp_buf_char(&rw->row, '}');
}

static void
write_line(struct dp_writer *w, const struct dp_buf *b)
{
	if (dp_writer_line(w, b->p, b->len))
		dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(w));
}

static void
fixed_lsn(struct source *s, int col, struct lsn *out)
{
	DBINT len = dbdatlen(s->db, col);
	memset(out, 0, sizeof *out);
	if (dbdata(s->db, col) && len > 0 && len <= LSN_LEN)
		memcpy(out->b + LSN_LEN - len, dbdata(s->db, col), (size_t)len);
}

struct change_bufs {
	struct dp_buf line, before;
	size_t *at, *len;
	int have_before;
};

/* One change of the current result row into the stream. */
static void
emit_change(struct source *s, struct row_writer *rw, struct change_bufs *cb, struct position *pos,
            struct change_counts *n)
{
	struct dp_buf *row = &rw->row;
	DBINT op = 0;
	if (dbdata(s->db, 3))
		memcpy(&op, dbdata(s->db, 3), sizeof op);
	fixed_lsn(s, 1, &pos->lsn);
	fixed_lsn(s, 2, &pos->seq);
	pos->op = (int)op;
	unsigned long long number = n->inserts + n->updates + n->deletes + 1;
	encode_change_row(s, rw, cb->at, cb->len, number);
	char lsn[2 * LSN_LEN + 3], seq[2 * LSN_LEN + 3];
	lsn_text(&pos->lsn, lsn);
	lsn_text(&pos->seq, seq);
	if (!n->first[0])
		snprintf(n->first, sizeof n->first, "%s:%s", lsn, seq);
	if (op == 3) { /* update before image: carried with the after image */
		cb->before.len = 0;
		dp_buf_add(&cb->before, row->p, row->len);
		cb->have_before = 1;
		return;
	}
	struct dp_buf *l = &cb->line;
	l->len = 0;
	if (op == 1) {
		dp_buf_str(l, "[\"delete\",{");
		for (int k = 0; k < s->nkey; k++) {
			int c = s->key[k];
			dp_buf_str(l, k ? "," : "");
			dp_buf_str(l, s->cols[c].json_key);
			dp_buf_add(l, row->p + cb->at[c], cb->len[c]);
		}
		dp_buf_str(l, "},{\"op\":\"d\",\"lsn\":\"");
		dp_buf_str(l, lsn);
		dp_buf_str(l, "\",\"seqval\":\"");
		dp_buf_str(l, seq);
		dp_buf_str(l, "\",\"before\":");
		dp_buf_add(l, row->p, row->len);
		dp_buf_str(l, "}]");
		write_line(rw->w, l);
		n->deletes++;
		cb->have_before = 0;
		return;
	}
	if (op != 2 && op != 4)
		dp_die(DP_EXIT_SOURCE, "change %llu: unknown __$operation %d; the stream has no end message", number,
		       (int)op);
	dp_buf_str(l, op == 2 ? "[\"change\",{\"op\":\"c\",\"lsn\":\"" : "[\"change\",{\"op\":\"u\",\"lsn\":\"");
	dp_buf_str(l, lsn);
	dp_buf_str(l, "\",\"seqval\":\"");
	dp_buf_str(l, seq);
	dp_buf_char(l, '"');
	if (op == 4 && cb->have_before) {
		dp_buf_str(l, ",\"before\":");
		dp_buf_add(l, cb->before.p, cb->before.len);
	}
	dp_buf_str(l, "}]");
	write_line(rw->w, l);
	cb->have_before = 0;
	row_emit(rw, row);
	n->rows++;
	if (op == 2)
		n->inserts++;
	else
		n->updates++;
}

static void
read_changes(struct source *s, const struct dp_manifest *m, const struct cdc_plan *p, struct row_writer *rw,
             int progress, struct change_counts *n)
{
	long long batch = dp_manifest_int(m, "source.options.batch_size", 50000);
	struct change_bufs cb = {.at = dp_xcalloc((size_t)s->ncols + 1, sizeof *cb.at),
	                         .len = dp_xcalloc((size_t)s->ncols + 1, sizeof *cb.len)};
	struct position pos;
	start_position(p, &pos);
	double start = dp_now(), last = start;
	for (;;) {
		char *sql = changes_sql(s, m, p, &pos, batch, NULL);
		int failed = source_query(s, sql);
		free(sql);
		unsigned long long changes = n->inserts + n->updates + n->deletes;
		if (failed)
			changes_failed(p, changes);
		long long got = 0;
		RETCODE rc;
		while ((rc = dbnextrow(s->db)) == REG_ROW) {
			got++;
			emit_change(s, rw, &cb, &pos, n);
			if (dp_interrupted) {
				dbcancel(s->db);
				dp_writer_flush(rw->w);
				dp_die(DP_EXIT_INTERRUPTED,
				       "interrupted after %llu changes; the stream has no end message",
				       n->inserts + n->updates + n->deletes);
			}
		}
		if (rc != NO_MORE_ROWS || source_failed())
			changes_failed(p, n->inserts + n->updates + n->deletes);
		if (dp_writer_flush(rw->w))
			dp_die(DP_EXIT_FAILURE, "%s", dp_writer_error(rw->w));
		if (progress && dp_now() - last >= 1) {
			last = dp_now();
			fprintf(stderr, "\r%s: %llu changes   ", dp_progname, n->inserts + n->updates + n->deletes);
		}
		/* A before image waits for its after image, which the next page starts with. */
		if (got < batch)
			break;
	}
	if (cb.have_before)
		dp_die(DP_EXIT_SOURCE, "an update's before image (__$operation 3) came without its after image; the "
		                       "stream has no end message");
	if (progress)
		fprintf(stderr, "\r%s: %llu changes in %.1f s\n", dp_progname, n->inserts + n->updates + n->deletes,
		        dp_now() - start);
	free(cb.at);
	free(cb.len);
	free(cb.line.p);
	free(cb.before.p);
}

/* ---- --count, --plan, a run ---- */

static char *
count_changes(struct source *s, const struct dp_manifest *m, const struct cdc_plan *p, char **count_sql)
{
	struct column as = {.logical = "integer"};
	struct encoding plain = {0};
	if (p->snapshot) {
		char *table = source_table_name(s);
		*count_sql = dp_strfmt("SELECT COUNT_BIG(*) FROM %s", table);
		free(table);
	} else if (p->empty) {
		*count_sql = dp_xstrdup("SELECT 0");
	} else {
		struct position pos;
		start_position(p, &pos);
		*count_sql = changes_sql(s, m, p, &pos, 0, "COUNT_BIG(*)");
	}
	if (p->empty)
		return dp_xstrdup("0");
	return source_scalar_json(s, *count_sql, &as, &plain);
}

int
cdc_extract(struct source *s, const struct dp_manifest *m, const struct cdc_request *rq, const struct encoding *enc)
{
	struct cdc_plan p;
	plan_cdc(s, m, rq, &p);
	struct position pos;
	start_position(&p, &pos);
	char *sql = p.snapshot ? snapshot_sql(s)
	            : p.empty
	                    ? dp_xstrdup("-- nothing to read: no change was captured after the offset")
	                    : changes_sql(s, m, &p, &pos, dp_manifest_int(m, "source.options.batch_size", 50000), NULL);
	if (rq->count || rq->plan) {
		char *count_sql;
		char *n = count_changes(s, m, &p, &count_sql);
		if (rq->count)
			printf("%s\n", n);
		else
			print_plan(s, m, p.boundary, enc, &(struct plan_queries){sql, count_sql, n, NULL}, NULL);
		free(n);
		free(count_sql);
		free(sql);
		json_decref(p.boundary);
		return DP_EXIT_OK;
	}
	json_t *header = run_header(s, m, rq->manifest_path, rq->run_id, json_incref(p.boundary), enc);
	struct dp_writer *w = dp_writer_open(1, "stdout", 0);
	dp_writer_control(w, "header", header);
	double start = dp_now();
	struct change_counts n = {0};
	struct row_writer rw;
	row_writer_init(&rw, w, s, enc, 0);
	if (p.snapshot) {
		/* The high LSN was read before the table: a change committed while
		 * it is read is replayed by the next run, harmless as an upsert. */
		if (source_query(s, sql))
			dp_die(DP_EXIT_SOURCE, "the snapshot query failed: %s", source_error());
		n.rows = stream_rows(s, &rw, rq->progress, dp_manifest_int(m, "source.options.batch_size", 50000));
	} else if (!p.empty) {
		read_changes(s, m, &p, &rw, rq->progress, &n);
	}
	row_writer_free(&rw);
	free(sql);
	json_t *end = json_pack("{s:I, s:I, s:{s:I, s:I, s:I}, s:{s:s, s:o, s:O}, s:{s:I}}", "rows", (json_int_t)n.rows,
	                        "deletes", (json_int_t)n.deletes, "changes", "insert", (json_int_t)n.inserts, "update",
	                        (json_int_t)n.updates, "delete", (json_int_t)n.deletes, "watermark", "column",
	                        LSN_COLUMN, "low", n.first[0] ? json_string(n.first) : json_null(), "high",
	                        json_object_get(p.boundary, "high"), "source", "elapsed_ms",
	                        (json_int_t)((dp_now() - start) * 1000));
	dp_writer_control(w, "end", end);
	json_decref(p.boundary);
	return dp_writer_close(w) ? DP_EXIT_FAILURE : DP_EXIT_OK;
}
