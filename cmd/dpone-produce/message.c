/*
 * message.c: stream lines to Kafka messages. Rows are valid JSON (the reader
 * checked them), so the fields a key or header needs are found by a small
 * scanner over the line's bytes and the row itself is copied, not parsed and
 * re-encoded: a flat row goes out byte for byte. Deletes are rare and go
 * through jansson. Each envelope and key mode is described in dpone-produce(1).
 */
#include <string.h>
#include <time.h>

#include "produce.h"

void
msgbufs_free(struct msgbufs *b)
{
	free(b->key.p);
	free(b->value.p);
	free(b->aux.p);
}

/* ---- the format, from the manifest and the stream header ---- */

static char **
string_list(json_t *arr, size_t *n)
{
	*n = json_array_size(arr);
	char **out = dp_xcalloc(*n + 1, sizeof *out);
	for (size_t i = 0; i < *n; i++)
		out[i] = dp_xstrdup(json_string_value(json_array_get(arr, i)));
	return out;
}

static char *
json_literal(const char *s)
{
	struct dp_buf b = {0};
	dp_buf_json_string(&b, s);
	dp_buf_add(&b, "", 1);
	return b.p;
}

static char *
dump_compact(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	return s;
}

/* The manifest's key.mode, which the manifest loader always sets. */
static enum key_mode
key_mode_of(const struct dp_manifest *m)
{
	static const struct {
		const char *name;
		enum key_mode mode;
	} modes[] = {{"unique_key", KEY_UNIQUE},
	             {"primary_key", KEY_PRIMARY},
	             {"fields", KEY_FIELDS},
	             {"hash_row", KEY_HASH_ROW},
	             {"null", KEY_NULL}};
	const char *mode = dp_manifest_str(m, "sink.options.key.mode");
	for (size_t i = 0; mode && i < sizeof modes / sizeof *modes; i++)
		if (!strcmp(mode, modes[i].name))
			return modes[i].mode;
	return KEY_NULL;
}

/* Key mode primary_key: the key the stream header names (the table's
 * primary key); none makes the messages unkeyed, said once. */
static json_t *
primary_key_names(struct format *f, const struct dp_manifest *m, json_t *header)
{
	json_t *names = json_object_get(header, "key");
	if (json_array_size(names)) {
		f->key_mode = KEY_UNIQUE;
		return names;
	}
	if (json_is_true(dp_manifest_get(m, "sink.options.deletes.tombstone")))
		dp_die(DP_EXIT_USAGE, "a tombstone deletes a key, and the table has no primary key: name the key "
		                      "(sink.strategy.unique_key or sink.options.key.fields)");
	dp_warn("warning: the table has no primary key and the manifest names no key: messages are unkeyed (set "
	        "sink.options.key.fields, or key.mode: null to say unkeyed is meant)");
	f->key_mode = KEY_NULL;
	return NULL;
}

static void
init_key(struct format *f, const struct dp_manifest *m, json_t *header)
{
	char where[512];
	f->key_mode = key_mode_of(m);
	json_t *names = NULL;
	const char *path = NULL;
	if (f->key_mode == KEY_UNIQUE)
		names = dp_manifest_get(m, path = "sink.strategy.unique_key");
	if (f->key_mode == KEY_UNIQUE && !names) /* cdc: the table's primary key, as the header names it */
		names = json_object_get(header, "key");
	if (f->key_mode == KEY_PRIMARY)
		names = primary_key_names(f, m, header);
	if (f->key_mode == KEY_FIELDS) {
		names = dp_manifest_get(m, path = "sink.options.key.fields");
		if (!json_array_size(names) && dp_manifest_str(m, "sink.options.key.field"))
			names = dp_manifest_get(m, path = "sink.options.key.field");
	}
	if (json_is_string(names)) {
		json_t *one = json_pack("[O]", names);
		f->key_names = string_list(one, &f->nkey);
		json_decref(one);
	} else if (names) {
		f->key_names = string_list(names, &f->nkey);
	} else {
		f->key_names = dp_xcalloc(1, sizeof *f->key_names);
	}
	f->key_names_json = dp_xcalloc(f->nkey + 1, sizeof *f->key_names_json);
	for (size_t i = 0; i < f->nkey; i++) {
		if (!dp_header_column(header, f->key_names[i]))
			dp_die(DP_EXIT_USAGE, "%skey column %s is not a column of the stream (see its header)",
			       dp_manifest_where(m, path, where, sizeof where), f->key_names[i]);
		f->key_names_json[i] = json_literal(f->key_names[i]);
	}
	const char *format = dp_manifest_str(m, "sink.options.key.format");
	f->key_as_value = format && !strcmp(format, "value");
	if (f->key_as_value && f->nkey != 1 && f->key_mode != KEY_HASH_ROW && f->key_mode != KEY_NULL)
		dp_die(DP_EXIT_USAGE, "%skey.format value needs exactly one key column, not %zu",
		       dp_manifest_where(m, "sink.options.key.format", where, sizeof where), f->nkey);
}

static const char *
row_op_of(const char *strategy)
{
	if (!strcmp(strategy, "incremental_append"))
		return "c";
	if (!strcmp(strategy, "incremental_merge") || !strcmp(strategy, "cdc"))
		return "u";
	return "r"; /* full_refresh, replace, snapshot_reconciliation: a snapshot read */
}

static void
add_header(struct format *f, const char *name, const char *value)
{
	f->headers = dp_xrealloc(f->headers, (f->nheaders + 1) * sizeof *f->headers);
	f->headers[f->nheaders++] = (struct header_kv){dp_xstrdup(name), dp_xstrdup(value)};
}

static void
init_headers(struct format *f, const struct dp_manifest *m, json_t *header)
{
	json_t *src = json_object_get(header, "source");
	const char *run_id = json_string_value(json_object_get(header, "run_id"));
	f->dpone_headers = dp_manifest_dpone_headers(m);
	if (run_id && (f->dpone_headers & HEADER_BIT(DP_HEADER_RUN_ID)))
		add_header(f, "dpone.run_id", run_id);
	struct dp_buf table = {0}; /* database.schema.table, as far as known */
	static const char *const parts[] = {"database", "schema", "table"};
	for (int i = 0; i < 3; i++) {
		const char *part = json_string_value(json_object_get(src, parts[i]));
		if (!part)
			continue;
		dp_buf_str(&table, table.len ? "." : "");
		dp_buf_str(&table, part);
	}
	dp_buf_add(&table, "", 1);
	if (f->dpone_headers & HEADER_BIT(DP_HEADER_SOURCE))
		add_header(f, "dpone.source", table.p);
	free(table.p);
	const char *k;
	json_t *v;
	json_object_foreach(dp_manifest_get(m, "sink.options.headers"), k, v) {
		if (json_is_string(v)) {
			add_header(f, k, json_string_value(v));
		} else {
			char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			add_header(f, k, text);
			free(text);
		}
	}
}

static void
init_envelope(struct format *f, const struct dp_manifest *m, json_t *header)
{
	const char *env = dp_manifest_str(m, "sink.options.envelope");
	f->envelope = !strcmp(env, "debezium") ? ENV_DEBEZIUM : !strcmp(env, "dpone") ? ENV_DPONE : ENV_FLAT;
	json_t *always = dp_manifest_get(m, "sink.options.always_envelope");
	if (f->envelope == ENV_FLAT && json_is_true(always))
		f->envelope = ENV_DPONE; /* the Python dpone's meaning of always_envelope */
	const char *strategy = dp_manifest_str(m, "sink.strategy.mode");
	f->row_op = row_op_of(strategy);
	/* A CDC run that snapshots the table reads rows, as Debezium's op r. */
	if (json_is_true(json_object_get(json_object_get(header, "boundary"), "snapshot")))
		f->row_op = "r";
	json_t *src = json_object_get(header, "source");
	json_t *run_id = json_object_get(header, "run_id");
	f->source_json = dump_compact(json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:O?, s:O?, s:s}", "version",
	                                        DPONE_VERSION, "connector", "dpone", "name", dp_manifest_str(m, "name"),
	                                        "db", json_object_get(src, "database"), "schema",
	                                        json_object_get(src, "schema"), "table", json_object_get(src, "table"),
	                                        "run_id", run_id, "snapshot", *f->row_op == 'r' ? "true" : "false"));
	f->metadata_json = dump_compact(json_pack("{s:O?, s:s, s:s}", "run_id", run_id, "job",
	                                          dp_manifest_str(m, "name"), "strategy", strategy));
}

/* snapshot_reconciliation: its delete_mode says what a delete message
 * publishes, whatever sink.options.deletes says. */
static void
init_reconciliation(struct format *f, const struct dp_manifest *m)
{
	const char *mode = dp_manifest_str(m, "sink.strategy.delete_mode");
	f->deletes_enabled = strcmp(mode, "report_only") != 0;
	f->tombstone = !strcmp(mode, "tombstone");
	f->rewrite = 0;
	free(f->row_marker);
	f->row_marker = NULL;
	if (!strcmp(mode, "soft_delete")) {
		f->soft_delete_column = dp_xstrdup(dp_manifest_str(m, "sink.strategy.soft_delete_column"));
		if (f->envelope == ENV_FLAT) {
			char *name = json_literal(f->soft_delete_column);
			f->row_marker = dp_strfmt("%s:false", name);
			free(name);
		}
	}
}

void
format_init(struct format *f, const struct dp_manifest *m, json_t *header)
{
	memset(f, 0, sizeof *f);
	init_key(f, m, header);
	init_envelope(f, m, header);
	f->deletes_enabled = json_is_true(dp_manifest_get(m, "sink.options.deletes.enabled"));
	f->tombstone = json_is_true(dp_manifest_get(m, "sink.options.deletes.tombstone"));
	f->rewrite = json_is_true(dp_manifest_get(m, "sink.options.deletes.rewrite"));
	f->op_field = dp_xstrdup(dp_manifest_str(m, "sink.options.deletes.op_field"));
	f->op_field_json = json_literal(f->op_field);
	/* Flat rows carry a delete marker only where deletes are events. */
	if (f->envelope == ENV_FLAT && f->deletes_enabled && f->rewrite)
		f->row_marker = dp_xstrdup("\"__deleted\":\"false\"");
	else if (f->envelope == ENV_FLAT && f->deletes_enabled && !f->tombstone)
		f->row_marker = dp_strfmt("%s:\"upsert\"", f->op_field_json);
	if (m->strategy == DP_SNAPSHOT_RECONCILIATION)
		init_reconciliation(f, m);
	const char *wm = json_string_value(json_object_get(json_object_get(header, "boundary"), "column"));
	if (!wm)
		wm = dp_manifest_str(m, "source.options.incremental_column");
	init_headers(f, m, header);
	if (wm && dp_header_column(header, wm) && (f->dpone_headers & HEADER_BIT(DP_HEADER_WATERMARK)))
		f->watermark_column = dp_xstrdup(wm);
	/* The scanner looks for the key columns and the watermark column at once. */
	f->scan_names = dp_xcalloc(f->nkey + 2, sizeof *f->scan_names);
	for (size_t i = 0; i < f->nkey; i++)
		f->scan_names[f->nscan++] = f->key_names[i];
	if (f->watermark_column)
		f->scan_names[f->nscan++] = f->watermark_column;
}

void
format_free(struct format *f)
{
	for (size_t i = 0; i < f->nkey; i++) {
		free(f->key_names[i]);
		free(f->key_names_json[i]);
	}
	free(f->key_names);
	free(f->key_names_json);
	free(f->scan_names);
	free(f->op_field);
	free(f->op_field_json);
	free(f->row_marker);
	free(f->soft_delete_column);
	free(f->source_json);
	free(f->metadata_json);
	free(f->watermark_column);
	for (size_t i = 0; i < f->nheaders; i++) {
		free(f->headers[i].name);
		free(f->headers[i].value);
	}
	free(f->headers);
}

/* ---- building messages ---- */

static long long
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
ob_ll(struct dp_buf *b, long long v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%lld", v);
	dp_buf_add(b, tmp, (size_t)n);
}

/* The key of a row or delete from the spans of its key columns. */
static int
build_key(const struct format *f, const struct dp_span *sp, struct dp_buf *kb, struct message *msg, char *err,
          size_t errlen)
{
	kb->len = 0;
	for (size_t i = 0; i < f->nkey; i++)
		if (!sp[i].p) {
			snprintf(err, errlen, "no value for key column %s", f->key_names[i]);
			return -1;
		}
	if (f->key_as_value) {
		if (sp[0].n == 4 && !memcmp(sp[0].p, "null", 4)) {
			msg->has_key = 0; /* a null key value is a message without a key */
			return 0;
		}
		dp_buf_value_text(kb, sp[0]);
	} else {
		dp_buf_add(kb, "{", 1);
		for (size_t i = 0; i < f->nkey; i++) {
			if (i)
				dp_buf_add(kb, ",", 1);
			dp_buf_str(kb, f->key_names_json[i]);
			dp_buf_add(kb, ":", 1);
			dp_buf_value(kb, sp[i]);
		}
		dp_buf_add(kb, "}", 1);
	}
	msg->key = kb->p;
	msg->key_len = kb->len;
	msg->has_key = 1;
	return 0;
}

/* {"before":B,"after":A,"op":OP,"source":{...},"ts_ms":N}, B and A JSON. */
static void
debezium_value(const struct format *f, struct dp_buf *vb, const char *before, size_t blen, const char *after,
               size_t alen, const char *op)
{
	dp_buf_str(vb, "{\"before\":");
	dp_buf_add(vb, before, blen);
	dp_buf_str(vb, ",\"after\":");
	dp_buf_add(vb, after, alen);
	dp_buf_str(vb, ",\"op\":\"");
	dp_buf_str(vb, op);
	dp_buf_str(vb, "\",\"source\":");
	dp_buf_str(vb, f->source_json);
	dp_buf_str(vb, ",\"ts_ms\":");
	ob_ll(vb, wall_ms());
	dp_buf_add(vb, "}", 1);
}

/* {"op":OP,"data":D,"metadata":{...},"source":{...},"schema_version":1}. */
static void
dpone_value(const struct format *f, struct dp_buf *vb, const char *op, const char *data, size_t dlen)
{
	dp_buf_str(vb, "{\"op\":\"");
	dp_buf_str(vb, op);
	dp_buf_str(vb, "\",\"data\":");
	dp_buf_add(vb, data, dlen);
	dp_buf_str(vb, ",\"metadata\":");
	dp_buf_str(vb, f->metadata_json);
	dp_buf_str(vb, ",\"source\":");
	dp_buf_str(vb, f->source_json);
	dp_buf_str(vb, ",\"schema_version\":1}");
}

/* The row's value in its envelope. */
static void
build_row_value(const struct format *f, const char *line, size_t len, const struct change *chg, struct dp_buf *vb,
                struct message *msg)
{
	vb->len = 0;
	if (f->envelope == ENV_FLAT && !f->row_marker) {
		msg->value = line; /* the row as is, not re-encoded */
		msg->value_len = len;
		msg->has_value = 1;
		return;
	}
	if (f->envelope == ENV_FLAT) {
		const char *close = line + len;
		while (close > line && close[-1] != '}')
			close--;
		close--;
		const char *first = (const char *)memchr(line, '{', len) + 1; /* rows are objects */
		while (first < close && (*first == ' ' || *first == '\t' || *first == '\r' || *first == '\n'))
			first++;
		dp_buf_add(vb, line, (size_t)(close - line));
		if (first != close) /* not {} */
			dp_buf_add(vb, ",", 1);
		dp_buf_str(vb, f->row_marker);
		dp_buf_add(vb, "}", 1);
	} else if (f->envelope == ENV_DEBEZIUM && chg) {
		if (chg->before.len)
			debezium_value(f, vb, chg->before.p, chg->before.len, line, len, chg->op);
		else
			debezium_value(f, vb, "null", 4, line, len, chg->op);
	} else if (f->envelope == ENV_DEBEZIUM) {
		debezium_value(f, vb, "null", 4, line, len, f->row_op);
	} else {
		dpone_value(f, vb, "upsert", line, len);
	}
	msg->value = vb->p;
	msg->value_len = vb->len;
	msg->has_value = 1;
}

static void
add_line_header(struct message *msg, const char *name, const char *value, size_t len)
{
	msg->hname[msg->nh] = name;
	msg->hval[msg->nh] = value;
	msg->hval_len[msg->nh] = len;
	msg->nh++;
}

int
change_read(json_t *msg, struct change *chg, char *err, size_t errlen)
{
	json_t *body = json_array_get(msg, 1);
	const char *op = json_string_value(json_object_get(body, "op"));
	const char *lsn = json_string_value(json_object_get(body, "lsn"));
	const char *seq = json_string_value(json_object_get(body, "seqval"));
	json_t *before = json_object_get(body, "before");
	if (!op || (strcmp(op, "c") && strcmp(op, "u") && strcmp(op, "r")) || !lsn || !seq ||
	    strlen(lsn) >= sizeof chg->lsn || strlen(seq) >= sizeof chg->seqval ||
	    (before && !json_is_object(before))) {
		snprintf(err, errlen,
		         "a change message needs op (c, u or r), lsn and seqval (0x hex), and before, if "
		         "any, an object");
		return -1;
	}
	snprintf(chg->op, sizeof chg->op, "%s", op);
	snprintf(chg->lsn, sizeof chg->lsn, "%s", lsn);
	snprintf(chg->seqval, sizeof chg->seqval, "%s", seq);
	chg->before.len = 0;
	if (before)
		dp_buf_json(&chg->before, before);
	chg->pending = 1;
	return 0;
}

/* The bytes of the zigzag varint of a length, as Kafka's record format
 * writes it (a length is never negative here, so zigzag doubles it). */
static size_t
varint_size(size_t len)
{
	unsigned long long z = (unsigned long long)len << 1;
	size_t n = 1;
	while (z >= 0x80) {
		z >>= 7;
		n++;
	}
	return n;
}

/* A header as a v2 record serializes it: name and value, each after its length. */
static size_t
header_size(const char *name, size_t value_len)
{
	size_t name_len = strlen(name);
	return varint_size(name_len) + name_len + varint_size(value_len) + value_len;
}

size_t
message_wire_size(const struct message *msg, const struct header_kv *fixed, size_t nfixed)
{
	/* librdkafka's RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: length, attributes,
	 * timestamp and offset deltas, key and value lengths, header count. */
	size_t size = 36 + (msg->has_key ? msg->key_len : 0) + (msg->has_value ? msg->value_len : 0);
	for (size_t i = 0; i < nfixed; i++)
		size += header_size(fixed[i].name, strlen(fixed[i].value));
	for (int i = 0; i < msg->nh; i++)
		size += header_size(msg->hname[i], msg->hval_len[i]);
	return size;
}

int
format_row(const struct format *f, const char *line, size_t len, const struct dp_span *sp, const struct change *chg,
           struct msgbufs *b, struct message *msg, char *err, size_t errlen)
{
	memset(msg, 0, sizeof *msg);
	if (f->key_mode == KEY_UNIQUE || f->key_mode == KEY_FIELDS) {
		if (build_key(f, sp, &b->key, msg, err, errlen) < 0)
			return -1;
	} else if (f->key_mode == KEY_HASH_ROW) {
		b->key.len = 0;
		dp_buf_reserve(&b->key, 65);
		dp_sha256_hex(line, len, b->key.p);
		b->key.len = 64;
		msg->key = b->key.p;
		msg->key_len = 64;
		msg->has_key = 1;
	}
	build_row_value(f, line, len, chg, &b->value, msg);
	if (f->watermark_column && sp[f->nkey].p) {
		b->aux.len = 0;
		dp_buf_value_text(&b->aux, sp[f->nkey]);
		add_line_header(msg, "dpone.watermark", b->aux.p, b->aux.len);
	}
	if (chg && (f->dpone_headers & HEADER_BIT(DP_HEADER_CHANGE))) {
		add_line_header(msg, "dpone.lsn", chg->lsn, strlen(chg->lsn));
		add_line_header(msg, "dpone.seqval", chg->seqval, strlen(chg->seqval));
		add_line_header(msg, "dpone.op", chg->op, strlen(chg->op));
	}
	return 0;
}

/* The delete event's value, or 0 when the delete is published as a
 * tombstone only (flat envelope, tombstone on, no rewrite). */
static int
build_delete_value(const struct format *f, json_t *key, json_t *before, struct dp_buf *vb)
{
	vb->len = 0;
	if (f->envelope == ENV_FLAT) {
		if (f->tombstone && !f->rewrite)
			return 0;
		json_t *v = json_deep_copy(f->rewrite ? before : key);
		if (f->soft_delete_column)
			json_object_set_new(v, f->soft_delete_column, json_true());
		else if (f->rewrite)
			json_object_set_new(v, "__deleted", json_string("true"));
		else
			json_object_set_new(v, f->op_field, json_string("delete"));
		dp_buf_json(vb, v);
		json_decref(v);
		return 1;
	}
	char *image = json_dumps(before, JSON_COMPACT);
	if (f->envelope == ENV_DEBEZIUM)
		debezium_value(f, vb, image, strlen(image), "null", 4, "d");
	else
		dpone_value(f, vb, "delete", image, strlen(image));
	free(image);
	return 1;
}

/* lsn, seqval and op of a CDC delete as headers, their text kept in aux. */
static void
delete_headers(json_t *meta, struct dp_buf *aux, struct message *msg)
{
	static const char *const names[] = {"lsn", "seqval", "op"};
	static const char *const header_names[] = {"dpone.lsn", "dpone.seqval", "dpone.op"};
	size_t at[3];
	aux->len = 0;
	msg->nh = 0;
	for (int i = 0; i < 3; i++) {
		const char *v = json_string_value(json_object_get(meta, names[i]));
		if (!v)
			continue;
		at[msg->nh] = aux->len;
		msg->hname[msg->nh] = header_names[i];
		msg->hval_len[msg->nh] = strlen(v);
		dp_buf_str(aux, v);
		msg->nh++;
	}
	for (int i = 0; i < msg->nh; i++)
		msg->hval[i] = aux->p + at[i];
}

int
format_delete(const struct format *f, const char *line, size_t len, struct msgbufs *b, struct message msgs[2],
              int *nmsg, char *err, size_t errlen)
{
	*nmsg = 0;
	if (!f->deletes_enabled) {
		snprintf(err, errlen,
		         "a delete message, but sink.options.deletes.enabled is false (deletes are never dropped "
		         "silently)");
		return -1;
	}
	if (f->key_mode != KEY_UNIQUE && f->key_mode != KEY_FIELDS) {
		snprintf(err, errlen,
		         "a delete message needs key mode unique_key or fields to name the key it deletes");
		return -1;
	}
	struct dp_span obj, sp[f->nkey + 1];
	if (dp_control_object(line, len, &obj) < 0 || dp_scan_object(obj.p, obj.n, f->key_names, f->nkey, sp) < 0) {
		snprintf(err, errlen, "a delete message needs a key object as its second element");
		return -1;
	}
	struct message key_only = {0};
	if (build_key(f, sp, &b->key, &key_only, err, errlen) < 0)
		return -1;
	json_t *msgj = json_loadb(line, len, 0, NULL);
	json_t *key = json_array_get(msgj, 1), *meta = json_array_get(msgj, 2);
	json_t *before = json_object_get(meta, "before");
	if (!json_is_object(before))
		before = key;
	if (build_delete_value(f, key, before, &b->value)) {
		msgs[*nmsg] = key_only;
		msgs[*nmsg].value = b->value.p;
		msgs[*nmsg].value_len = b->value.len;
		msgs[*nmsg].has_value = 1;
		if (f->dpone_headers & HEADER_BIT(DP_HEADER_CHANGE))
			delete_headers(meta, &b->aux, &msgs[*nmsg]);
		(*nmsg)++;
	}
	if (f->tombstone) {
		msgs[*nmsg] = key_only; /* a null value: compaction removes the key */
		if (f->dpone_headers & HEADER_BIT(DP_HEADER_CHANGE))
			delete_headers(meta, &b->aux, &msgs[*nmsg]);
		(*nmsg)++;
	}
	json_decref(msgj);
	return 0;
}
