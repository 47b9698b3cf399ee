/*
 * report.c: dpone-state MANIFEST report: what a run tells the world beyond
 * its state. At the start of a run (--event start) an OpenLineage START
 * event; at its end, from the run's exit status and its summary on stdin
 * (what there is of it: a failed run's may be cut short), Prometheus
 * metrics (a textfile for node_exporter, a push to a Pushgateway) and the
 * OpenLineage COMPLETE, FAIL or ABORT event. A destination that is down is
 * a warning and a count on stdout, never a failed run: reporting runs after
 * the commit and must not change what the run did.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

/* dpone has no public home to point at: URNs, which the spec's "uri"
 * format allows. The dpone facet is described in dpone(1), LINEAGE. */
#define PRODUCER_URI "urn:dpone:" DPONE_VERSION
#define LINEAGE_SCHEMA "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define DPONE_FACET_SCHEMA "urn:dpone:facet:run:1"

/* What the run's summary says (each member owned, NULL when absent). */
struct run_summary {
	json_t *header, *checks, *delivery, *end;
};

/* Every control message on stdin, tolerantly: a failed run's summary may
 * stop anywhere, and what is there is still worth reporting. */
static void
read_run_summary(struct run_summary *rs)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		json_t *msg = line[0] == '[' ? json_loadb(line, (size_t)n, JSON_DECODE_ANY, NULL) : NULL;
		const char *name = json_string_value(json_array_get(msg, 0));
		json_t *body = json_array_get(msg, 1);
		json_t **slot = !name                       ? NULL
		                : !strcmp(name, "header")   ? &rs->header
		                : !strcmp(name, "checks")   ? &rs->checks
		                : !strcmp(name, "delivery") ? &rs->delivery
		                : !strcmp(name, "end")      ? &rs->end
		                                            : NULL;
		if (slot && json_is_object(body)) {
			json_decref(*slot);
			*slot = json_incref(body);
		}
		json_decref(msg);
	}
	free(line);
}

static void
run_summary_free(struct run_summary *rs)
{
	json_decref(rs->header);
	json_decref(rs->checks);
	json_decref(rs->delivery);
	json_decref(rs->end);
}

/* One run, as reported. */
struct run_report {
	const struct run_summary *summary;
	json_t *record; /* the job's state after the run (borrowed), or NULL */
	const char *outcome, *run_id;
	const char *error; /* the cause of a failed run, or NULL */
	int exit_code;
	double started, finished; /* epoch seconds */
};

/* ---- outcome ---- */

/* A run's outcome, from its exit status (one table, as documented in
 * dpone-state(1), report). */
static const struct {
	int exit_code;
	const char *outcome;
} outcomes[] = {
	{DP_EXIT_OK, "success"},           {DP_EXIT_IDLE, "nothing_new"},      {DP_EXIT_QUALITY, "quality_failed"},
	{DP_EXIT_SOURCE, "source_failed"}, {DP_EXIT_STREAM, "source_failed"},  {DP_EXIT_SINK, "sink_failed"},
	{DP_EXIT_STATE, "state_failed"},   {DP_EXIT_CONFLICT, "state_failed"}, {DP_EXIT_INTERRUPTED, "interrupted"},
};
static const char *const outcome_names[] = {"success",     "nothing_new",  "quality_failed", "source_failed",
                                            "sink_failed", "state_failed", "interrupted",    "failed"};

static const char *
outcome_of(int exit_code, const struct run_summary *rs)
{
	if (exit_code == DP_EXIT_OK && json_integer_value(json_object_get(rs->end, "rows")) == 0)
		return "nothing_new";
	for (size_t i = 0; i < sizeof outcomes / sizeof *outcomes; i++)
		if (outcomes[i].exit_code == exit_code)
			return outcomes[i].outcome;
	return "failed";
}

/* ---- metrics ---- */

/* A label value as the exposition format wants it: \, " and newline escaped. */
static void
label_value(struct dp_buf *b, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			dp_buf_char(b, '\\');
		if (*v == '\n') {
			dp_buf_add(b, "\\n", 2);
			continue;
		}
		dp_buf_char(b, *v);
	}
}

struct metrics {
	struct dp_buf text;
	char *labels; /* dpone_job="...",table="...",topic="..." */
};

static void
metric_head(struct metrics *mt, const char *name, const char *type, const char *help)
{
	char *head = dp_strfmt("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	dp_buf_add(&mt->text, head, strlen(head));
	free(head);
}

/* name{labels[,extra]} value */
static void
metric_sample(struct metrics *mt, const char *name, const char *extra, double value)
{
	char *line = dp_strfmt("%s{%s%s%s} %.17g\n", name, mt->labels, extra ? "," : "", extra ? extra : "", value);
	dp_buf_add(&mt->text, line, strlen(line));
	free(line);
}

static void
metric(struct metrics *mt, const char *name, const char *type, const char *help, double value)
{
	metric_head(mt, name, type, help);
	metric_sample(mt, name, NULL, value);
}

/* Seconds since the epoch of a date/time watermark written as dpone
 * writes them (ISO 8601; datetimeoffset with its offset), taken as UTC
 * when it has no offset; -1 if it is not one. */
static double
time_value(const char *v)
{
	struct tm tm = {0};
	int off_sign = 0, off_h = 0, off_m = 0;
	char *rest = strptime(v, "%Y-%m-%d", &tm);
	if (!rest)
		return -1;
	double frac = 0;
	if (*rest == 'T' || *rest == ' ') {
		rest = strptime(rest + 1, "%H:%M:%S", &tm);
		if (!rest)
			return -1;
		if (*rest == '.') {
			char *end;
			frac = strtod(rest, &end);
			rest = end;
		}
		if ((*rest == '+' || *rest == '-') && sscanf(rest + 1, "%2d:%2d", &off_h, &off_m) == 2)
			off_sign = *rest == '+' ? 1 : -1;
	}
	return (double)timegm(&tm) + frac - off_sign * (off_h * 3600 + off_m * 60);
}

/* The state's watermark as a number, and for date/time columns the lag. */
static void
watermark_metrics(struct metrics *mt, json_t *record, double now)
{
	json_t *wm = json_object_get(record, "watermark");
	json_t *value = json_object_get(wm, "value");
	const char *sql_type = json_string_value(json_object_get(wm, "sql_type"));
	if (!value || json_is_null(value))
		return;
	double number = -1;
	int is_time = 0;
	if (json_is_integer(value))
		number = (double)json_integer_value(value);
	else if (json_is_string(value) && sql_type && (strstr(sql_type, "date") || strstr(sql_type, "time")))
		is_time = (number = time_value(json_string_value(value))) >= 0;
	else if (json_is_string(value) && sql_type && strstr(sql_type, "int"))
		number = strtod(json_string_value(value), NULL);
	if (number < 0 && json_is_string(value)) {
		/* rowversion, an LSN: a label, not a number a float would round. */
		struct dp_buf extra = {0};
		dp_buf_add(&extra, "value=\"", 7);
		label_value(&extra, json_string_value(value));
		dp_buf_add(&extra, "\"", 1);
		dp_buf_char(&extra, '\0');
		metric_head(mt, "dpone_watermark_info", "gauge",
		            "The committed watermark, as a label (binary values).");
		metric_sample(mt, "dpone_watermark_info", extra.p, 1);
		free(extra.p);
		return;
	}
	metric(mt, "dpone_watermark", "gauge",
	       "The committed watermark as a number: epoch seconds for date and time columns, else the value.", number);
	if (is_time)
		metric(mt, "dpone_watermark_lag_seconds", "gauge",
		       "Now minus the committed watermark (date and time columns, read as UTC).", now - number);
}

/* One sample per check type: 1 if a check of that type failed. */
static void
check_metrics(struct metrics *mt, json_t *checks)
{
	json_t *results = json_object_get(checks, "results");
	if (!json_array_size(results))
		return;
	metric_head(mt, "dpone_last_run_check_failed", "gauge",
	            "1 if a quality check of this type failed (or warned) in the last run that ran checks.");
	json_t *seen = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		const char *type = json_string_value(json_object_get(r, "type"));
		const char *status = json_string_value(json_object_get(r, "status"));
		if (!type)
			continue;
		int failed = status && strcmp(status, "pass") != 0;
		json_object_set_new(seen, type, json_boolean(failed || json_is_true(json_object_get(seen, type))));
	}
	const char *type;
	json_t *failed;
	json_object_foreach(seen, type, failed) {
		struct dp_buf extra = {0};
		dp_buf_add(&extra, "check=\"", 7);
		label_value(&extra, type);
		dp_buf_add(&extra, "\"", 1);
		dp_buf_char(&extra, '\0');
		metric_sample(mt, "dpone_last_run_check_failed", extra.p, json_is_true(failed));
		free(extra.p);
	}
	json_decref(seen);
}

static char *
metrics_labels(const struct dp_manifest *m)
{
	struct dp_buf b = {0};
	dp_buf_add(&b, "dpone_job=\"", 11);
	label_value(&b, dp_manifest_str(m, "name"));
	dp_buf_add(&b, "\",table=\"", 9);
	label_value(&b, dp_manifest_str(m, "source.table.schema"));
	dp_buf_char(&b, '.');
	label_value(&b, dp_manifest_str(m, "source.table.name"));
	dp_buf_add(&b, "\",topic=\"", 9);
	label_value(&b, dp_manifest_str(m, "sink.topic")); /* the loader puts sink.options.topic there */
	dp_buf_add(&b, "\"", 1);
	dp_buf_char(&b, '\0');
	return b.p;
}

static void
build_metrics(struct metrics *mt, const struct dp_manifest *m, const struct run_report *rr)
{
	mt->labels = metrics_labels(m);
	metric_head(mt, "dpone_last_run_outcome", "gauge",
	            "The last run's outcome: 1 for the one it had, 0 for the others.");
	for (size_t i = 0; i < sizeof outcome_names / sizeof *outcome_names; i++) {
		char *extra = dp_strfmt("outcome=\"%s\"", outcome_names[i]);
		metric_sample(mt, "dpone_last_run_outcome", extra, !strcmp(outcome_names[i], rr->outcome));
		free(extra);
	}
	metric(mt, "dpone_last_run_exit_code", "gauge", "The last run's exit status (dpone(1), EXIT STATUS).",
	       rr->exit_code);
	metric(mt, "dpone_last_run_timestamp_seconds", "gauge", "When the last run ended.", rr->finished);
	metric(mt, "dpone_last_run_duration_seconds", "gauge", "How long the last run took.",
	       rr->finished - rr->started);
	/* A run that found nothing new worked too: it is a success for the
	 * alert that asks whether the job works, though it commits nothing. */
	const char *committed = json_string_value(json_object_get(rr->record, "committed_at"));
	double last_success = committed ? time_value(committed) : -1;
	if (!strcmp(rr->outcome, "success") || !strcmp(rr->outcome, "nothing_new"))
		last_success = rr->finished;
	if (last_success >= 0)
		metric(mt, "dpone_last_success_timestamp_seconds", "gauge",
		       "When a run of the job last succeeded (committed, or found nothing new).", last_success);
	json_t *delivery = rr->summary->delivery, *end = rr->summary->end;
	metric(mt, "dpone_last_run_rows_read", "gauge", "Rows the last run read (its end message).",
	       (double)json_integer_value(json_object_get(end, "rows")));
	metric(mt, "dpone_last_run_messages_delivered", "gauge", "Messages the last run delivered to Kafka.",
	       (double)json_integer_value(json_object_get(delivery, "delivered")));
	metric(mt, "dpone_last_run_messages_failed", "gauge", "Messages of the last run Kafka did not take.",
	       (double)json_integer_value(json_object_get(delivery, "failed")));
	metric(mt, "dpone_last_run_bytes", "gauge", "Bytes of the messages the last run delivered.",
	       (double)json_integer_value(json_object_get(delivery, "bytes")));
	watermark_metrics(mt, rr->record, rr->finished);
	check_metrics(mt, rr->summary->checks);
	dp_buf_char(&mt->text, '\0');
	mt->text.len--;
}

/* A file name from the job name: letters, digits, _ . - kept. */
static char *
textfile_path(const char *dir, const char *job)
{
	char *name = dp_strfmt("dpone_%s.prom", job);
	for (char *p = name; *p; p++)
		if (!(*p == '_' || *p == '.' || *p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			*p = '_';
	char *path = dp_strfmt("%s/%s", dir, name);
	free(name);
	return path;
}

/* Written beside, then renamed: a scrape never sees half a file. */
static int
write_textfile(const char *dir, const char *job, const struct dp_buf *text, char *err, size_t errlen)
{
	char *path = textfile_path(dir, job);
	char *tmp = dp_strfmt("%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = fd < 0 || dp_write_all(fd, text->p, text->len) < 0 || fsync(fd) < 0;
	if (fd >= 0 && close(fd) < 0)
		rc = 1;
	if (!rc && rename(tmp, path) < 0)
		rc = 1;
	if (rc) {
		snprintf(err, errlen, "metrics textfile %s: %s", path, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(path);
	return rc ? -1 : 0;
}

/* An http(s) connection of the manifest (Pushgateway, OpenLineage), or -1
 * with why in err. */
static int
endpoint(const struct dp_manifest *m, const char *section, struct dp_conn *out, char *err, size_t errlen)
{
	char path[128];
	snprintf(path, sizeof path, "%s.connection_id", section);
	const char *id = dp_manifest_str(m, path);
	snprintf(path, sizeof path, "%s.connection_type", section);
	const char *type = dp_manifest_str(m, path);
	memset(out, 0, sizeof *out);
	if (dp_conn_resolve(id, type, NULL, out, err, errlen))
		return -1;
	if (!out->url) {
		snprintf(err, errlen, "connection %s (%s): expected an http:// or https:// URL", id, out->origin);
		dp_conn_free(out);
		memset(out, 0, sizeof *out);
		return -1;
	}
	return 0;
}

/* Send body to the http(s) endpoint of the manifest's section (to url,
 * or to the connection's own URL when NULL): 0 on a 2xx answer, else -1
 * with "what URL: why" in err. The URL in messages has no credentials. */
static int
send_to_endpoint(const struct dp_manifest *m, const char *section, const char *what, const char *method,
                 const char *path, const char *content_type, const char *body, size_t len, char *err, size_t errlen)
{
	struct dp_conn conn;
	if (endpoint(m, section, &conn, err, errlen) < 0)
		return -1;
	size_t ul = strlen(conn.url);
	char *url = path ? dp_strfmt("%.*s%s", (int)(ul && conn.url[ul - 1] == '/' ? ul - 1 : ul), conn.url, path)
	                 : dp_xstrdup(conn.url);
	char *type = dp_strfmt("Content-Type: %s", content_type);
	const char *headers[] = {type, NULL};
	struct dp_http_request rq = {.method = method,
	                             .url = url,
	                             .headers = headers,
	                             .body = body,
	                             .body_len = len,
	                             .user = conn.user,
	                             .password = conn.password,
	                             .cacert = json_string_value(json_object_get(conn.params, "cacert"))};
	struct dp_http_answer a;
	char why[512];
	int rc = dp_http_request(&rq, &a, why, sizeof why);
	if (rc < 0)
		snprintf(err, errlen, "%s %s: %s", what, conn.url, why);
	else if (a.status / 100 != 2)
		snprintf(err, errlen, "%s %s: HTTP %ld", what, conn.url, a.status);
	rc = rc < 0 || a.status / 100 != 2 ? -1 : 0;
	dp_http_answer_free(&a);
	free(type);
	free(url);
	dp_conn_free(&conn);
	return rc;
}

/* PUT to the Pushgateway's group job="dpone", dpone_job=NAME: the
 * Prometheus pattern for batch jobs (the group holds the last run). */
static int
push_metrics(const struct dp_manifest *m, const struct dp_buf *text, char *err, size_t errlen)
{
	char *job = dp_http_escape_path(dp_manifest_str(m, "name"));
	char *path = dp_strfmt("/metrics/job/dpone/dpone_job/%s", job ? job : "");
	int rc = send_to_endpoint(m, "observability.metrics.pushgateway", "pushgateway", "PUT", path,
	                          "text/plain; version=0.0.4", text->p, text->len, err, errlen);
	free(path);
	free(job);
	return rc;
}

/* ---- lineage ---- */

/* The run's OpenLineage runId: a UUID (version 8, RFC 9562) made from the
 * job and run id, so the START and the end event of a run agree without
 * keeping anything. */
static void
lineage_run_uuid(const char *job, const char *run_id, char out[37])
{
	char *seed = dp_strfmt("%s\n%s", job, run_id);
	unsigned char h[32];
	struct dp_sha256 sha;
	dp_sha256_init(&sha);
	dp_sha256_update(&sha, seed, strlen(seed));
	dp_sha256_final(&sha, h);
	free(seed);
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2],
	         h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
}

static char *
iso_time(double t)
{
	char buf[64];
	time_t sec = (time_t)t;
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)((t - (double)sec) * 1000));
	return dp_xstrdup(buf);
}

static json_t *
facet(json_t *body, const char *schema_url)
{
	json_object_set_new(body, "_producer", json_string(PRODUCER_URI));
	json_object_set_new(body, "_schemaURL", json_string(schema_url));
	return body;
}

/* sqlserver://host:port, database.schema.table (the OpenLineage naming
 * spec), with a schema facet from the header's columns. */
static json_t *
input_dataset(const struct dp_manifest *m, json_t *header)
{
	json_t *src = json_object_get(header, "source");
	const char *server = json_string_value(json_object_get(src, "server"));
	if (!server)
		return NULL;
	const char *db = json_string_value(json_object_get(src, "database"));
	char *ns = dp_strfmt("sqlserver://%s", server);
	char *name = dp_strfmt("%s%s%s.%s", db ? db : "", db ? "." : "", dp_manifest_str(m, "source.table.schema"),
	                       dp_manifest_str(m, "source.table.name"));
	json_t *fields = json_array();
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(header, "columns"), i, c)
		json_array_append_new(fields, json_pack("{s:O?, s:O?}", "name", json_object_get(c, "name"), "type",
		                                        json_object_get(c, "sql_type")));
	json_t *ds = json_pack("{s:s, s:s, s:{s:o}}", "namespace", ns, "name", name, "facets", "schema",
	                       facet(json_pack("{s:o}", "fields", fields),
	                             "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json"));
	free(ns);
	free(name);
	return ds;
}

/* kafka://bootstrap-host:port, the topic. */
static json_t *
output_dataset(json_t *delivery)
{
	const char *bootstrap = json_string_value(json_object_get(delivery, "bootstrap"));
	const char *topic = json_string_value(json_object_get(delivery, "topic"));
	if (!bootstrap || !topic)
		return NULL;
	char *ns = dp_strfmt("kafka://%s", bootstrap);
	json_t *ds = json_pack("{s:s, s:s}", "namespace", ns, "name", topic);
	free(ns);
	return ds;
}

static const char *
event_type(const struct run_report *rr)
{
	if (!rr->outcome)
		return "START";
	if (!strcmp(rr->outcome, "interrupted"))
		return "ABORT";
	return !strcmp(rr->outcome, "success") || !strcmp(rr->outcome, "nothing_new") ? "COMPLETE" : "FAIL";
}

static json_t *
lineage_event(const struct dp_manifest *m, const struct run_report *rr)
{
	char uuid[37];
	lineage_run_uuid(dp_manifest_str(m, "name"), rr->run_id, uuid);
	char *when = iso_time(rr->outcome ? rr->finished : rr->started);
	json_t *run_facets = json_object();
	if (rr->outcome) {
		const struct run_summary *rs = rr->summary;
		json_object_set_new(run_facets, "dpone",
		                    facet(json_pack("{s:s, s:s, s:i, s:O?, s:O?, s:O?, s:O?}", "dpone_run_id",
		                                    rr->run_id, "outcome", rr->outcome, "exit_code", rr->exit_code,
		                                    "rows", json_object_get(rs->end, "rows"), "messages_delivered",
		                                    json_object_get(rs->delivery, "delivered"), "boundary",
		                                    json_object_get(rs->header, "boundary"), "checks",
		                                    json_object_get(rs->checks, "results")),
		                          DPONE_FACET_SCHEMA));
		if (rr->error)
			json_object_set_new(
				run_facets, "errorMessage",
				facet(json_pack("{s:s, s:s}", "message", rr->error, "programmingLanguage", "C"),
			              "https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json"));
	}
	json_t *inputs = json_array(), *outputs = json_array();
	json_t *in = rr->outcome ? input_dataset(m, rr->summary->header) : NULL;
	json_t *out = rr->outcome ? output_dataset(rr->summary->delivery) : NULL;
	if (in)
		json_array_append_new(inputs, in);
	if (out)
		json_array_append_new(outputs, out);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:o}, s:{s:s, s:s}, s:o, s:o}", "eventType",
	                       event_type(rr), "eventTime", when, "producer", PRODUCER_URI, "schemaURL", LINEAGE_SCHEMA,
	                       "run", "runId", uuid, "facets", run_facets, "job", "namespace",
	                       dp_manifest_str(m, "observability.lineage.namespace"), "name",
	                       dp_manifest_str(m, "name"), "inputs", inputs, "outputs", outputs);
	free(when);
	return ev;
}

static int
append_lineage_file(const char *path, const char *text, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char *line = dp_strfmt("%s\n", text);
	/* One write per event: lines of concurrent runs do not interleave. */
	int rc = fd < 0 || dp_write_all(fd, line, strlen(line)) < 0;
	if (fd >= 0 && close(fd) < 0)
		rc = 1;
	if (rc)
		snprintf(err, errlen, "lineage file %s: %s", path, strerror(errno));
	free(line);
	return rc ? -1 : 0;
}

static int
post_lineage(const struct dp_manifest *m, const char *text, char *err, size_t errlen)
{
	return send_to_endpoint(m, "observability.lineage", "lineage", NULL, NULL, "application/json", text,
	                        strlen(text), err, errlen);
}

/* ---- the command ---- */

/* Each destination's result into out ("ok", "off" or the error), a warning
 * for each failure; the number of failures. */
static int
deliver(const struct dp_manifest *m, const struct run_report *rr, json_t *out)
{
	int failures = 0;
	char err[1024];
	struct {
		const char *name;
		int on;
		int rc;
	} done[4] = {{"textfile", 0, 0}, {"pushgateway", 0, 0}, {"lineage_file", 0, 0}, {"lineage_http", 0, 0}};
	struct metrics mt = {0};
	if (rr->outcome)
		build_metrics(&mt, m, rr);
	const char *dir = dp_manifest_str(m, "observability.metrics.textfile_dir");
	if ((done[0].on = rr->outcome && dir))
		done[0].rc = write_textfile(dir, dp_manifest_str(m, "name"), &mt.text, err, sizeof err);
	if (done[0].rc)
		json_object_set_new(out, "textfile", json_string(err));
	if ((done[1].on = rr->outcome && dp_manifest_get(m, "observability.metrics.pushgateway")))
		done[1].rc = push_metrics(m, &mt.text, err, sizeof err);
	if (done[1].rc)
		json_object_set_new(out, "pushgateway", json_string(err));
	json_t *ev = dp_manifest_get(m, "observability.lineage") ? lineage_event(m, rr) : NULL;
	char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	const char *file = dp_manifest_str(m, "observability.lineage.file");
	if ((done[2].on = text && file))
		done[2].rc = append_lineage_file(file, text, err, sizeof err);
	if (done[2].rc)
		json_object_set_new(out, "lineage_file", json_string(err));
	if ((done[3].on = text && dp_manifest_str(m, "observability.lineage.connection_id")))
		done[3].rc = post_lineage(m, text, err, sizeof err);
	if (done[3].rc)
		json_object_set_new(out, "lineage_http", json_string(err));
	for (size_t i = 0; i < sizeof done / sizeof *done; i++) {
		if (done[i].rc) {
			failures++;
			dp_warn("warning: report: %s", json_string_value(json_object_get(out, done[i].name)));
		} else {
			json_object_set_new(out, done[i].name, json_string(done[i].on ? "ok" : "off"));
		}
	}
	free(text);
	json_decref(ev);
	free(mt.text.p);
	free(mt.labels);
	return failures;
}

int
report_run(const struct dp_manifest *m, json_t *record, const struct report_options *ro)
{
	struct run_summary rs = {0};
	struct run_report rr = {.summary = &rs,
	                        .record = record,
	                        .run_id = ro->run_id,
	                        .error = ro->error,
	                        .exit_code = ro->exit_code,
	                        .started = ro->started > 0 ? ro->started : (double)time(NULL)};
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	rr.finished = (double)now.tv_sec + now.tv_nsec / 1e9;
	if (!ro->start) {
		read_run_summary(&rs);
		rr.outcome = outcome_of(ro->exit_code, &rs);
	}
	json_t *out = json_pack("{s:s, s:s}", "event", ro->start ? "start" : "end", "lineage_event", event_type(&rr));
	if (rr.outcome)
		json_object_set_new(out, "outcome", json_string(rr.outcome));
	int failures = deliver(m, &rr, out);
	json_object_set_new(out, "failures", json_integer(failures));
	char *text = json_dumps(out, JSON_COMPACT);
	puts(text);
	free(text);
	json_decref(out);
	run_summary_free(&rs);
	return 0;
}
