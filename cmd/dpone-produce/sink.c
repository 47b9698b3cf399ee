/*
 * sink.c: everything that talks to librdkafka, in the manner of kcat's
 * producer: every message is accounted for by its delivery report, a full
 * local queue is waited out (never dropped), and the run fails if any
 * delivery failed. exactly_once wraps the run in one transaction.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "produce.h"

struct partition_stat {
	unsigned long long messages;
	long long first, last; /* offsets; -1 while none */
	long long high_before; /* the partition's end offset before the run; -1 unknown */
};

struct sink {
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	char *topic;
	const struct sink_options *o;
	int in_txn;
	const char *txn_state; /* "committed", "aborted" or NULL */
	int partitions;
	struct partition_stat *parts;
	const struct header_kv *fixed; /* headers of every message, borrowed */
	size_t nfixed;
	unsigned long long sent, delivered, failed, bytes;
	char *error;        /* the first failure, owned */
	int readback_stuck; /* an end-offset query did not come back in time */
	char last_log[256];
};

static void sink_fail(struct sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sink_fail(struct sink *s, const char *fmt, ...)
{
	if (s->error)
		return;
	va_list ap;
	va_start(ap, fmt);
	s->error = dp_vstrfmt(fmt, ap);
	va_end(ap);
}

/* ---- callbacks (run inside rd_kafka_poll/flush on this thread) ---- */

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct sink *s = opaque;
	if (m->err) {
		s->failed++;
		sink_fail(s, "message from stdin line %llu was not delivered: %s",
		          (unsigned long long)(uintptr_t)m->_private, rd_kafka_err2str(m->err));
		return;
	}
	__atomic_store_n(&s->delivered, s->delivered + 1, __ATOMIC_RELAXED); /* progress.c reads it */
	s->bytes += m->len + m->key_len;
	if (m->partition >= s->partitions) {
		s->parts = dp_xrealloc(s->parts, (size_t)(m->partition + 1) * sizeof *s->parts);
		for (int p = s->partitions; p <= m->partition; p++)
			s->parts[p] = (struct partition_stat){0, -1, -1, -1};
		s->partitions = m->partition + 1;
	}
	struct partition_stat *ps = &s->parts[m->partition];
	ps->messages++;
	if (ps->first < 0 || m->offset < ps->first)
		ps->first = m->offset;
	if (m->offset > ps->last)
		ps->last = m->offset;
}

static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct sink *s = opaque;
	char fatal[512];
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		rd_kafka_fatal_error(rk, fatal, sizeof fatal);
		sink_fail(s, "fatal producer error: %s", fatal);
		return;
	}
	/* Transient (a broker down, a connection reset): librdkafka retries.
	 * Say it once, not on every retry. */
	if (!s->o->quiet && strncmp(s->last_log, reason, sizeof s->last_log - 1)) {
		snprintf(s->last_log, sizeof s->last_log, "%s", reason);
		dp_warn("kafka: %s (retrying)", reason);
	}
}

static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= 3)
		dp_warn("kafka: %s: %s", fac, buf);
}

/* ---- configuration ---- */

static void
conf_set(rd_kafka_conf_t *c, const char *name, const char *value, const char *from)
{
	char err[512];
	if (rd_kafka_conf_set(c, name, value, err, sizeof err) == RD_KAFKA_CONF_OK)
		return;
	if (dp_is_secret_key(name))
		dp_die(DP_EXIT_USAGE, "%s: Kafka property %s is not accepted", from, name);
	dp_die(DP_EXIT_USAGE, "%s: Kafka property %s: %s", from, name, err);
}

/* Connection settings as the registry spells them (sasl_username) to
 * librdkafka names (sasl.username). */
static void
conf_connection(rd_kafka_conf_t *c, const struct dp_conn *conn)
{
	conf_set(c, "bootstrap.servers", conn->brokers, conn->origin);
	const char *k;
	json_t *v;
	json_object_foreach(conn->params, k, v) {
		char *name = dp_xstrdup(k);
		for (char *p = name; *p; p++)
			if (*p == '_')
				*p = '.';
		conf_set(c, name, json_string_value(v), conn->origin);
		free(name);
	}
}

static void
conf_delivery(rd_kafka_conf_t *c, const struct dp_manifest *m)
{
	static const char *const ints[][2] = {{"linger_ms", "linger.ms"},
	                                      {"batch_num_messages", "batch.num.messages"},
	                                      {"batch_size", "batch.size"},
	                                      {"request_timeout_ms", "request.timeout.ms"},
	                                      {"message_timeout_ms", "message.timeout.ms"},
	                                      {"queue_buffering_max_messages", "queue.buffering.max.messages"},
	                                      {"queue_buffering_max_kbytes", "queue.buffering.max.kbytes"},
	                                      {"transaction_timeout_ms", "transaction.timeout.ms"}};
	char path[128], value[32];
	for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
		snprintf(path, sizeof path, "sink.options.delivery.%s", ints[i][0]);
		json_t *v = dp_manifest_get(m, path);
		if (!json_is_integer(v))
			continue;
		snprintf(value, sizeof value, "%lld", (long long)json_integer_value(v));
		conf_set(c, ints[i][1], value, path);
	}
	/* The largest message; dpone-extract refuses larger rows before they come. */
	snprintf(value, sizeof value, "%lld", dp_manifest_int(m, "sink.options.delivery.max_message_bytes", 1000000));
	conf_set(c, "message.max.bytes", value, "sink.options.delivery.max_message_bytes");
	const char *compression = dp_manifest_str(m, "sink.options.delivery.compression_type");
	if (compression)
		conf_set(c, "compression.type", compression, "sink.options.delivery.compression_type");
}

/* sink.options.properties: any librdkafka property, last, so it wins. */
static void
conf_properties(rd_kafka_conf_t *c, const struct dp_manifest *m)
{
	const char *k;
	json_t *v;
	json_object_foreach(dp_manifest_get(m, "sink.options.properties"), k, v) {
		char *text = json_is_string(v) ? dp_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
		conf_set(c, k, text, "sink.options.properties");
		free(text);
	}
}

static rd_kafka_conf_t *
build_conf(struct sink *s, const struct dp_manifest *m, const struct dp_conn *conn)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	conf_set(c, "client.id", "dpone-produce", "default");
	conf_set(c, "acks", "all", "default");
	/* Keys land where Java clients put them. */
	conf_set(c, "partitioner", "murmur2_random", "default");
	/* A missing topic is an error, not something a metadata request creates. */
	conf_set(c, "allow.auto.create.topics", "false", "default");
	if (m->delivery != DP_AT_LEAST_ONCE)
		conf_set(c, "enable.idempotence", "true", "sink.options.delivery.mode");
	conf_connection(c, conn);
	conf_delivery(c, m);
	if (s->o->transactional)
		conf_set(c, "transactional.id", s->o->transactional_id, "sink.options.delivery.transactional_id");
	conf_properties(c, m);
	rd_kafka_conf_set_opaque(c, s);
	rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
	rd_kafka_conf_set_error_cb(c, on_error);
	rd_kafka_conf_set_log_cb(c, on_log);
	return c;
}

/* ---- the topic ---- */

/* Partition count of the topic, 0 if it does not exist; dies if the
 * cluster cannot be asked. */
static int
topic_partitions(struct sink *s)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 0, s->rkt, &md, 15000);
	if (err)
		dp_die(DP_EXIT_SINK, "cannot read the metadata of topic %s: %s; nothing was sent", s->topic,
		       rd_kafka_err2str(err));
	int n = -1;
	if (md->topic_cnt == 1) {
		err = md->topics[0].err;
		if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			n = 0;
		else if (!err)
			n = md->topics[0].partition_cnt;
	}
	rd_kafka_metadata_destroy(md);
	if (n < 0)
		dp_die(DP_EXIT_SINK, "topic %s: %s; nothing was sent", s->topic, rd_kafka_err2str(err));
	return n;
}

/* CreateTopics for s->topic with parts partitions, repl replicas (-1: the
 * cluster's defaults) and configs (a JSON object, may be NULL); why not,
 * or NULL when it was created. */
static char *
create_topic_as(struct sink *s, int parts, int repl, const json_t *configs)
{
	char err[512];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(s->topic, parts, repl, err, sizeof err);
	if (!nt)
		return dp_xstrdup(err);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)configs, k, v) {
		char *text = json_is_string(v) ? dp_xstrdup(json_string_value(v)) : json_dumps(v, JSON_ENCODE_ANY);
		rd_kafka_NewTopic_set_config(nt, k, text);
		free(text);
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(s->rk);
	rd_kafka_CreateTopics(s->rk, &nt, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	char *why = !ev                        ? dp_xstrdup("no answer within 30 s")
	            : rd_kafka_event_error(ev) ? dp_xstrdup(rd_kafka_event_error_string(ev))
	                                       : NULL;
	if (!why) {
		size_t cnt;
		const rd_kafka_topic_result_t **res =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
		if (cnt == 1 && rd_kafka_topic_result_error(res[0]))
			why = dp_xstrdup(rd_kafka_topic_result_error_string(res[0]));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_NewTopic_destroy(nt);
	return why;
}

static void
create_topic(struct sink *s, const struct dp_manifest *m)
{
	int parts = (int)dp_manifest_int(m, "sink.options.topic_config.partitions", -1);
	int repl = (int)dp_manifest_int(m, "sink.options.topic_config.replication_factor", -1);
	char *why = create_topic_as(s, parts, repl, dp_manifest_get(m, "sink.options.topic_config.configs"));
	if (why)
		dp_die(DP_EXIT_SINK,
		       "topic %s is missing and could not be created (topic_config.auto_create): %s; nothing was sent",
		       s->topic, why);
	if (!s->o->quiet)
		dp_warn("created topic %s", s->topic);
}

/* ---- reading the topic's end offsets back ---- */

/* librdkafka's rd_kafka_query_watermark_offsets() can wait far past its
 * timeout when the brokers are unreachable, so the end offsets are asked
 * for on a thread of their own, given READBACK_SECONDS: the run never
 * hangs on them; when they do not come, the read-back is reported as
 * unavailable. A query is freed by whichever side is last done with it. */
#define READBACK_SECONDS 10

struct offsets_query {
	rd_kafka_t *rk;
	char *topic;
	int n;
	long long *high; /* per partition, -1 unknown */
	int done, refs;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void
query_release(struct offsets_query *q)
{
	pthread_mutex_lock(&q->mu);
	int last = --q->refs == 0;
	pthread_mutex_unlock(&q->mu);
	if (!last)
		return;
	free(q->topic);
	free(q->high);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

static void *
query_thread(void *arg)
{
	struct offsets_query *q = arg;
	for (int p = 0; p < q->n; p++) {
		int64_t low, high;
		q->high[p] = rd_kafka_query_watermark_offsets(q->rk, q->topic, p, &low, &high, 5000) ? -1 : high;
	}
	pthread_mutex_lock(&q->mu);
	q->done = 1;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	query_release(q);
	return NULL;
}

/* The end offset of each of the topic's n partitions into high (-1 each
 * when unknown); 0, or -1 when the brokers did not answer in time (then
 * s->readback_stuck is set: a query may still be waiting inside librdkafka). */
static int
end_offsets(struct sink *s, int n, long long *high)
{
	struct offsets_query *q = dp_xcalloc(1, sizeof *q);
	q->rk = s->rk;
	q->topic = dp_xstrdup(s->topic);
	q->n = n;
	q->high = dp_xcalloc((size_t)n, sizeof *q->high);
	q->refs = 2;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	/* The thread takes no signal: SIGINT/SIGTERM must reach the main
	 * thread, whose blocking read they interrupt (librdkafka's own threads
	 * block them the same way). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_t t;
	int failed = pthread_create(&t, NULL, query_thread, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (failed) {
		q->refs = 1;
		query_release(q);
		return -1;
	}
	pthread_detach(t);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += READBACK_SECONDS;
	pthread_mutex_lock(&q->mu);
	while (!q->done && pthread_cond_timedwait(&q->cv, &q->mu, &deadline) == 0)
		;
	int done = q->done;
	if (done)
		memcpy(high, q->high, (size_t)n * sizeof *high);
	pthread_mutex_unlock(&q->mu);
	query_release(q);
	if (!done)
		s->readback_stuck = 1;
	return done ? 0 : -1;
}

/* How far the partitions this run wrote to moved, read back from the
 * broker after the run: at least the messages delivered (more when others
 * write too, one more per partition for a transaction's commit marker);
 * -1 when the broker could not be asked. */
static long long
appended_on_topic(struct sink *s)
{
	long long *after = dp_xcalloc((size_t)s->partitions, sizeof *after), total = 0;
	if (end_offsets(s, s->partitions, after) < 0)
		total = -1;
	for (int p = 0; p < s->partitions && total >= 0; p++) {
		if (!s->parts[p].messages)
			continue;
		if (after[p] < 0 || s->parts[p].high_before < 0)
			total = -1;
		else
			total += after[p] - s->parts[p].high_before;
	}
	free(after);
	return total;
}

static void
check_topic(struct sink *s, const struct dp_manifest *m)
{
	int n = topic_partitions(s);
	if (!n) {
		if (!json_is_true(dp_manifest_get(m, "sink.options.topic_config.auto_create")))
			dp_die(DP_EXIT_SINK,
			       "topic %s does not exist (create it, or set sink.options.topic_config.auto_create: "
			       "true); "
			       "nothing was sent",
			       s->topic);
		create_topic(s, m);
		for (int tries = 0; !n && tries < 50; tries++) {
			n = topic_partitions(s);
			if (!n)
				usleep(100000);
		}
		if (!n)
			dp_die(DP_EXIT_SINK, "topic %s was created but does not show in the metadata; nothing was sent",
			       s->topic);
	}
	s->partitions = n;
	s->parts = dp_xcalloc((size_t)n, sizeof *s->parts);
	long long *before = dp_xcalloc((size_t)n, sizeof *before);
	if (end_offsets(s, n, before) < 0)
		for (int p = 0; p < n; p++)
			before[p] = -1;
	for (int p = 0; p < n; p++)
		s->parts[p] = (struct partition_stat){0, -1, -1, before[p]};
	free(before);
}

/* ---- transactions ---- */

static void
txn_die(rd_kafka_error_t *e, const char *what)
{
	char *msg = dp_strfmt("%s", rd_kafka_error_string(e));
	rd_kafka_error_destroy(e);
	dp_die(DP_EXIT_SINK, "%s: %s; nothing was sent", what, msg);
}

static void
begin_transaction(struct sink *s)
{
	rd_kafka_error_t *e = rd_kafka_init_transactions(s->rk, 30000);
	if (e)
		txn_die(e, "cannot start the Kafka transaction (init_transactions)");
	if ((e = rd_kafka_begin_transaction(s->rk)))
		txn_die(e, "cannot begin the Kafka transaction");
	s->in_txn = 1;
}

int
sink_commit(struct sink *s)
{
	if (!s->in_txn)
		return 0;
	for (;;) {
		rd_kafka_error_t *e = rd_kafka_commit_transaction(s->rk, 60000);
		if (!e) {
			s->in_txn = 0;
			s->txn_state = "committed";
			/* Said once the broker acknowledged it: what an operator (or
			 * tests/chaos) needs to know whether this run's rows are visible. */
			if (!s->o->quiet)
				dp_warn("transaction committed: %llu messages visible to read_committed consumers",
				        sink_delivered(s));
			return 0;
		}
		int retry = rd_kafka_error_is_retriable(e) && !dp_interrupted;
		if (!retry)
			sink_fail(s, "the Kafka transaction did not commit: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		if (!retry) {
			sink_abort(s);
			return -1;
		}
	}
}

void
sink_abort(struct sink *s)
{
	if (!s->in_txn) {
		/* Not transactional: what is queued goes out, for a bounded time. */
		double until = dp_now() + s->o->drain_timeout;
		while (rd_kafka_outq_len(s->rk) > 0 && dp_now() < until)
			rd_kafka_flush(s->rk, 100);
		return;
	}
	rd_kafka_error_t *e = rd_kafka_abort_transaction(s->rk, (int)(s->o->drain_timeout * 1000) + 1000);
	if (e) {
		dp_warn("the Kafka transaction could not be aborted cleanly (%s); "
		        "the broker aborts it after transaction.timeout.ms, read_committed consumers never see it",
		        rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	s->in_txn = 0;
	s->txn_state = "aborted";
}

/* ---- --check and --create-topic ---- */

/* A producer on topic for asking the cluster, not for sending (s->o set). */
static void
open_bare(struct sink *s, const struct dp_manifest *m, const struct dp_conn *conn, const char *topic)
{
	char err[512];
	s->topic = dp_xstrdup(topic);
	s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, build_conf(s, m, conn), err, sizeof err);
	if (!s->rk)
		dp_die(DP_EXIT_USAGE, "cannot create the Kafka producer: %s", err);
	s->rkt = rd_kafka_topic_new(s->rk, topic, NULL);
}

json_t *
sink_probe(const struct dp_manifest *m, const struct dp_conn *conn, const char *topic, int *code)
{
	struct sink_options o = {.topic = topic, .quiet = 1};
	struct sink s = {.o = &o};
	open_bare(&s, m, conn, topic);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t e = rd_kafka_metadata(s.rk, 0, s.rkt, &md, 10000);
	if (e)
		dp_die(DP_EXIT_SINK, "cannot read the cluster's metadata from %s: %s", conn->brokers,
		       rd_kafka_err2str(e));
	rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	json_t *out = json_pack("{s:s+, s:i, s:s, s:b, s:i}", "library", "librdkafka ", rd_kafka_version_str(),
	                        "brokers", md->broker_cnt, "topic", topic, "exists", !terr, "partitions",
	                        !terr ? md->topics[0].partition_cnt : 0);
	int auto_create = json_is_true(dp_manifest_get(m, "sink.options.topic_config.auto_create"));
	*code = 0;
	if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
		json_object_set_new(out, "problem",
		                    json_string(auto_create ? "the topic does not exist yet; the first run "
		                                              "creates it (topic_config.auto_create)"
		                                            : "the topic does not exist: create it, or set "
		                                              "sink.options.topic_config.auto_create: true"));
		*code = auto_create ? 0 : DP_EXIT_SINK;
	} else if (terr) {
		json_object_set_new(out, "problem", json_string(rd_kafka_err2str(terr)));
		*code = DP_EXIT_SINK;
	}
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(s.rkt);
	rd_kafka_destroy(s.rk);
	free(s.topic);
	return out;
}

/* --create-topic: create the topic as dpone schema physical-plan designed
 * it when it is missing; an existing topic is left as it is. */
int
sink_create_designed(const struct dp_manifest *m, const struct dp_conn *conn, const char *topic, const json_t *design)
{
	struct sink_options o = {.topic = topic, .quiet = 1};
	struct sink s = {.o = &o};
	open_bare(&s, m, conn, topic);
	int have = topic_partitions(&s);
	if (have) {
		printf("topic %s exists with %d partitions: nothing was changed (change its configs with kafka-configs "
		       "if the plan says so)\n",
		       topic, have);
	} else {
		char *why = create_topic_as(&s, (int)json_integer_value(json_object_get(design, "partitions")),
		                            (int)json_integer_value(json_object_get(design, "replication_factor")),
		                            json_object_get(design, "configs"));
		if (why)
			dp_die(DP_EXIT_SINK, "topic %s could not be created: %s", topic, why);
		printf("created topic %s\n", topic);
	}
	rd_kafka_topic_destroy(s.rkt);
	rd_kafka_destroy(s.rk);
	free(s.topic);
	return 0;
}

/* ---- the producer ---- */

struct sink *
sink_open(const struct dp_manifest *m, const struct dp_conn *conn, const struct sink_options *o)
{
	struct sink *s = dp_xcalloc(1, sizeof *s);
	char err[512];
	s->o = o;
	s->topic = dp_xstrdup(o->topic);
	rd_kafka_conf_t *c = build_conf(s, m, conn);
	s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
	if (!s->rk)
		dp_die(DP_EXIT_USAGE, "cannot create the Kafka producer: %s", err);
	s->rkt = rd_kafka_topic_new(s->rk, s->topic, NULL);
	check_topic(s, m);
	if (o->transactional)
		begin_transaction(s);
	return s;
}

void
sink_set_headers(struct sink *s, const struct header_kv *h, size_t n)
{
	s->fixed = h;
	s->nfixed = n;
}

int
sink_send(struct sink *s, const struct message *msg, unsigned long long lineno)
{
	for (;;) {
		/* Room for the line's own headers, so adding them does not regrow;
		 * none at all when there are none (each header list is allocated
		 * per message by librdkafka). */
		rd_kafka_headers_t *hdrs =
			s->nfixed + (size_t)msg->nh ? rd_kafka_headers_new(s->nfixed + MAX_LINE_HEADERS) : NULL;
		for (size_t i = 0; hdrs && i < s->nfixed; i++)
			rd_kafka_header_add(hdrs, s->fixed[i].name, -1, s->fixed[i].value, -1);
		for (int i = 0; hdrs && i < msg->nh; i++)
			rd_kafka_header_add(hdrs, msg->hname[i], -1, msg->hval[i], (ssize_t)msg->hval_len[i]);
		const void *key = msg->has_key ? msg->key : NULL;
		size_t key_len = msg->has_key ? msg->key_len : 0;
		void *value = msg->has_value ? (void *)msg->value : NULL;
		size_t value_len = msg->has_value ? msg->value_len : 0;
		void *opaque = (void *)(uintptr_t)lineno;
		rd_kafka_resp_err_t err =
			hdrs ? rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->rkt),
		                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
		                                 RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_HEADERS(hdrs),
		                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END)
			     : rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(s->rkt),
		                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
		                                 RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_OPAQUE(opaque),
		                                 RD_KAFKA_V_END);
		if (!err) {
			s->sent++;
			return 0;
		}
		if (hdrs)
			rd_kafka_headers_destroy(hdrs); /* not taken on failure */
		if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
			sink_fail(s,
			          "stdin line %llu: a message of %zu bytes is more than sink.options.delivery."
			          "max_message_bytes allows",
			          lineno, msg->has_value ? msg->value_len : 0);
			return -1;
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			sink_fail(s, "cannot queue the message from stdin line %llu: %s", lineno,
			          rd_kafka_err2str(err));
			return -1;
		}
		/* Backpressure: serve delivery reports until there is room. */
		if (dp_interrupted)
			return -1;
		rd_kafka_poll(s->rk, 100);
	}
}

void
sink_poll(struct sink *s)
{
	/* Delivery reports wait in librdkafka's queue (bounded with the
	 * message queue); serving them in batches costs fewer lock trips. */
	if ((s->sent & 63) == 0)
		rd_kafka_poll(s->rk, 0);
}

int
sink_flush(struct sink *s)
{
	unsigned long long seen = s->delivered + s->failed;
	double last_progress = dp_now(), drain_until = 0;
	while (rd_kafka_outq_len(s->rk) > 0 && !s->error) {
		rd_kafka_flush(s->rk, 200);
		double now = dp_now();
		if (s->delivered + s->failed != seen) {
			seen = s->delivered + s->failed;
			last_progress = now;
		}
		if (dp_interrupted && !drain_until)
			drain_until = now + s->o->drain_timeout;
		if (drain_until && now > drain_until) {
			sink_fail(s, "interrupted; %llu messages were not confirmed within the drain timeout",
			          s->sent - s->delivered - s->failed);
			break;
		}
		/* A large run is never failed by a fixed timeout, only by a stall. */
		if (s->o->stall_timeout > 0 && now - last_progress > s->o->stall_timeout) {
			sink_fail(s,
			          "no delivery progress for %.0f s with %llu messages outstanding "
			          "(delivery.flush_timeout)",
			          s->o->stall_timeout, s->sent - s->delivered - s->failed);
			break;
		}
	}
	return s->error || s->failed ? -1 : 0;
}

unsigned long long
sink_failed(const struct sink *s)
{
	return s->failed;
}
const unsigned long long *
sink_delivered_counter(const struct sink *s)
{
	return &s->delivered;
}

unsigned long long
sink_delivered(const struct sink *s)
{
	return s->delivered;
}
const char *
sink_error(const struct sink *s)
{
	return s->error;
}

json_t *
sink_summary(struct sink *s)
{
	json_t *parts = json_array();
	for (int p = 0; p < s->partitions; p++) {
		if (!s->parts[p].messages)
			continue;
		json_array_append_new(parts, json_pack("{s:i, s:I, s:I, s:I}", "partition", p, "messages",
		                                       (json_int_t)s->parts[p].messages, "first_offset",
		                                       (json_int_t)s->parts[p].first, "last_offset",
		                                       (json_int_t)s->parts[p].last));
	}
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:o}", "topic", s->topic, "messages", (json_int_t)s->sent,
	                      "delivered", (json_int_t)s->delivered, "failed", (json_int_t)s->failed, "bytes",
	                      (json_int_t)s->bytes, "partitions", parts);
	if (s->txn_state)
		json_object_set_new(o, "transaction", json_string(s->txn_state));
	/* Read back only after a run that delivered everything: a failed run
	 * is not committed whatever the offsets say. */
	long long appended = !s->delivered ? 0 : s->failed || s->error || s->readback_stuck ? -1 : appended_on_topic(s);
	if (appended >= 0)
		json_object_set_new(o, "topic_appended", json_integer(appended));
	if (s->error)
		json_object_set_new(o, "error", json_string(s->error));
	return o;
}

void
sink_close(struct sink *s)
{
	if (!s)
		return;
	rd_kafka_topic_destroy(s->rkt);
	/* With a query still inside librdkafka, destroying the handle could
	 * wait for it; the process is about to exit anyway. */
	if (!s->readback_stuck)
		rd_kafka_destroy(s->rk);
	free(s->parts);
	free(s->topic);
	free(s->error);
	free(s);
}
