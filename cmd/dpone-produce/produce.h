/*
 * produce.h: the parts of dpone-produce. main.c reads the stream and drives
 * the run; message.c turns stream lines into Kafka keys, values and headers;
 * sink.c owns librdkafka (configuration, topic check, delivery accounting,
 * transactions); dedupe.c applies duplicate_policy.
 */
#ifndef PRODUCE_H
#define PRODUCE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dpone.h"

enum envelope { ENV_FLAT, ENV_DEBEZIUM, ENV_DPONE };
/* Bits of struct format's dpone_headers (dp_manifest_dpone_headers). */
#define HEADER_BIT(h) (1u << (h))
/* KEY_PRIMARY becomes KEY_UNIQUE or KEY_NULL once the header is read. */
enum key_mode { KEY_UNIQUE, KEY_PRIMARY, KEY_FIELDS, KEY_HASH_ROW, KEY_NULL };

struct header_kv {
	char *name, *value;
};

/* How stream lines become messages; built once from the manifest and header. */
struct format {
	enum envelope envelope;
	enum key_mode key_mode;
	int key_as_value;      /* key.format: value (one column) */
	char **key_names;      /* owned */
	char **key_names_json; /* the same as JSON string literals, owned */
	size_t nkey;
	int deletes_enabled, tombstone, rewrite;
	char *op_field;            /* deletes.op_field, owned */
	char *op_field_json;       /* the same as a JSON string literal, owned */
	char *row_marker;          /* member appended to flat rows ("__deleted":"false"), or NULL; owned */
	char *soft_delete_column;  /* snapshot_reconciliation soft_delete: the flag column, or NULL; owned */
	const char *row_op;        /* debezium op for rows: r, c or u */
	char *source_json;         /* envelope "source" object, owned */
	char *metadata_json;       /* dpone envelope "metadata" object, owned */
	char *watermark_column;    /* boundary column for the watermark header, or NULL */
	unsigned dpone_headers;    /* which dpone.* headers each message carries (HEADER_BIT bits) */
	struct header_kv *headers; /* fixed headers (run id, source, manifest map) */
	size_t nheaders;
	char **scan_names; /* key columns then the watermark column (borrowed strings) */
	size_t nscan;
};

void format_init(struct format *f, const struct dp_manifest *m, json_t *header);
void format_free(struct format *f);

/* Buffers the messages of one line are built in, reused line after line. */
struct msgbufs {
	struct dp_buf key, value, aux;
};
void msgbufs_free(struct msgbufs *b);

/* A CDC change message (["change", {op, lsn, seqval[, before]}]): what the
 * row after it is. Texts are copied from the line; reused line after line. */
struct change {
	char op[2]; /* c (insert) or u (update) */
	char lsn[32], seqval[32];
	struct dp_buf before; /* the before image's JSON (all update old), or empty */
	int pending;          /* read, its row not yet */
};

#define MAX_LINE_HEADERS 5
/* A message ready for the sink. key, value and the header values point into
 * a struct msgbufs or into the stream line: valid until the next line. */
struct message {
	const char *key, *value;
	size_t key_len, value_len;
	int has_key, has_value;
	const char *hname[MAX_LINE_HEADERS]; /* static names */
	const char *hval[MAX_LINE_HEADERS];
	size_t hval_len[MAX_LINE_HEADERS];
	int nh;
};

/* The bytes librdkafka counts against message.max.bytes for msg with the
 * fixed headers (the record's worst-case overhead, key, value, serialized
 * headers), so that --dry-run refuses what a real run would. */
size_t message_wire_size(const struct message *msg, const struct header_kv *fixed, size_t nfixed);
/* Build the message for a row line, described by chg when a change
 * message came before it (else NULL); sp: the values of f->scan_names in
 * the line (dp_reader_members). Returns 0, or -1 with why in err. */
int format_row(const struct format *f, const char *line, size_t len, const struct dp_span *sp, const struct change *chg,
               struct msgbufs *b, struct message *msg, char *err, size_t errlen);
/* Read a change message (the reader's parsed array) into chg; 0 or -1. */
int change_read(json_t *msg, struct change *chg, char *err, size_t errlen);
/* Build what a delete line publishes: the delete event and/or the tombstone,
 * *nmsg (1 or 2) messages in msgs. */
int format_delete(const struct format *f, const char *line, size_t len, struct msgbufs *b, struct message msgs[2],
                  int *nmsg, char *err, size_t errlen);

/* ---- duplicate_policy (dedupe.c) ---- */
struct dedupe;
enum dup_policy { DUP_FAIL, DUP_KEEP_LAST, DUP_KEEP_FIRST };
/* Pass 1: read the whole stream from fd into an unlinked spool file under
 * TMPDIR, indexing unique keys. Dies (DP_EXIT_QUALITY) on a duplicate with
 * policy fail, (DP_EXIT_STREAM) on a bad stream. */
struct dedupe *dedupe_spool(int fd, enum dup_policy policy, char **key_names, size_t nkey);
/* The spool, rewound, to be read as the stream for pass 2. */
int dedupe_fd(const struct dedupe *d);
/* 1 if the row or delete at lineno is the one its key keeps. */
int dedupe_keep(struct dedupe *d, const char *line, size_t len, int is_delete, unsigned long long lineno);
unsigned long long dedupe_dropped(const struct dedupe *d);
void dedupe_free(struct dedupe *d);

/* ---- the Kafka side (sink.c) ---- */
struct sink;
struct sink_options {
	const char *topic;
	int transactional;
	const char *transactional_id;
	int default_id;       /* transactional_id is the default: a chunk's gets its suffix */
	double stall_timeout; /* fail a flush after this long without progress; 0: never */
	double drain_timeout; /* after SIGINT/SIGTERM, wait this long for deliveries */
	int quiet;
};
/* --check: the library, the cluster's brokers and the topic (exists,
 * partitions, problem), as a new JSON object; creates nothing. *code is 0,
 * or the exit status a run would meet. Dies when the cluster cannot be asked. */
json_t *sink_probe(const struct dp_manifest *m, const struct dp_conn *conn, const char *topic, int *code);
/* --create-topic: create a missing topic as designed ({partitions,
 * replication_factor, configs}); says what it did on stdout. Dies on failure. */
int sink_create_designed(const struct dp_manifest *m, const struct dp_conn *conn, const char *topic,
                         const json_t *design);
/* Connect, check (or create) the topic, begin the transaction. Dies on failure. */
struct sink *sink_open(const struct dp_manifest *m, const struct dp_conn *conn, const struct sink_options *o);
/* Headers every message carries (borrowed: h must outlive s). */
void sink_set_headers(struct sink *s, const struct header_kv *h, size_t n);
/* Queue one message (copied), waiting while the local queue is full.
 * 0, or -1 when interrupted while waiting. */
int sink_send(struct sink *s, const struct message *msg, unsigned long long lineno);
/* Serve delivery reports without blocking. */
void sink_poll(struct sink *s);
/* Wait for every queued message; 0 when all were delivered. */
int sink_flush(struct sink *s);
/* Commit (exactly_once) after a successful flush; 0 or -1. */
int sink_commit(struct sink *s);
/* Abort the transaction (exactly_once) or drain for drain_timeout (others). */
void sink_abort(struct sink *s);
unsigned long long sink_failed(const struct sink *s);
unsigned long long sink_delivered(const struct sink *s);
/* The delivered count itself, for a reader on another thread (stored
 * atomically by the delivery callback). */
const unsigned long long *sink_delivered_counter(const struct sink *s);
/* Why the run failed on the Kafka side, or NULL. */
const char *sink_error(const struct sink *s);
/* The delivery summary (counts, bytes, partitions, offsets); caller owns it. */
json_t *sink_summary(struct sink *s);
void sink_close(struct sink *s);

/* progress.c: the run's progress on stderr while it runs. */
#include <pthread.h>
enum progress_mode { PROGRESS_NONE, PROGRESS_TTY, PROGRESS_LINES };
enum progress_phase { PHASE_WAITING, PHASE_PUBLISHING, PHASE_FLUSHING, PHASE_DONE };
struct progress {
	enum progress_mode mode;
	const unsigned long long *rows;      /* the run's counter (borrowed) */
	const unsigned long long *delivered; /* the sink's, once there is one (borrowed) */
	int phase;                           /* enum progress_phase */
	double start;
	int stop;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
};
/* Start drawing (nothing for PROGRESS_NONE); counters are read atomically. */
void progress_start(struct progress *p, enum progress_mode mode, const unsigned long long *rows,
                    const unsigned long long *delivered);
void progress_phase(struct progress *p, enum progress_phase phase);
void progress_set_delivered(struct progress *p, const unsigned long long *delivered);
/* Stop the thread; say_last: draw the final line, else clear the line. */
void progress_stop(struct progress *p, int say_last);

#endif
