/*
 * kafkad: librdkafka's mock cluster as a standalone Kafka stand-in for the
 * tests. It speaks the real Kafka protocol on loopback TCP (kcat and
 * librdkafka clients connect to it as to any cluster), supports idempotent
 * and transactional producers, and takes fault commands while it runs.
 *
 *   kafkad [-b BROKERS] [-t TOPIC:PARTITIONS[:REPLICATION]]...
 *
 * On start it prints two lines on stdout and flushes them:
 *   bootstrap=127.0.0.1:PORT,127.0.0.1:PORT,...
 *   control=127.0.0.1:PORT
 * The control port takes one command per line and answers one line, "ok"
 * (or "ok VALUE") or "error: ...":
 *   ping
 *   bootstrap
 *   topic create NAME PARTITIONS [REPLICATION]
 *   topic error NAME ERROR              metadata error for a topic (or NO_ERROR)
 *   broker down ID|-1 / broker up ID|-1
 *   broker rtt ID|-1 MS
 *   errors push APIKEY ERROR [ERROR...] the next requests of APIKEY fail
 *   errors produce ERROR [ERROR...]     the same for Produce (ApiKey 0)
 *   errors clear APIKEY
 *   shutdown
 * ERROR is a librdkafka error name without its RD_KAFKA_RESP_ERR_ prefix,
 * such as NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT or _TRANSPORT (the
 * last makes the broker drop the connection). SIGTERM or SIGINT stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "control.h"

#define MAX_CLIENTS 32
#define MAX_WORDS 40

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "kafkad: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(2);
}

/* Error code by name ("NOT_LEADER_FOR_PARTITION"); 0 on success. */
static int
error_by_name(const char *name, rd_kafka_resp_err_t *out)
{
	const struct rd_kafka_err_desc *descs;
	size_t n;
	rd_kafka_get_err_descs(&descs, &n);
	for (size_t i = 0; i < n; i++) {
		if (descs[i].name && !strcmp(descs[i].name, name)) {
			*out = descs[i].code;
			return 0;
		}
	}
	return -1;
}

static int
parse_int(const char *s, long *out)
{
	char *end;
	errno = 0;
	*out = strtol(s, &end, 10);
	return (errno || !*s || *end) ? -1 : 0;
}

/* Run one command; the answer goes into reply. */
static void
run_command(rd_kafka_mock_cluster_t *mc, char *line, char *reply, size_t len)
{
	char *w[MAX_WORDS];
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save); tok && n < MAX_WORDS;
	     tok = strtok_r(NULL, " \t\r\n", &save))
		w[n++] = tok;
	long a, b;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	snprintf(reply, len, "ok");
	if (n == 1 && !strcmp(w[0], "ping")) {
		return;
	} else if (n == 1 && !strcmp(w[0], "bootstrap")) {
		snprintf(reply, len, "ok %s", rd_kafka_mock_cluster_bootstraps(mc));
	} else if (n == 1 && !strcmp(w[0], "shutdown")) {
		stopping = 1;
	} else if ((n == 4 || n == 5) && !strcmp(w[0], "topic") && !strcmp(w[1], "create")) {
		if (parse_int(w[3], &a) || a < 1 || (n == 5 && (parse_int(w[4], &b) || b < 1)))
			snprintf(reply, len, "error: topic create NAME PARTITIONS [REPLICATION]");
		else
			err = rd_kafka_mock_topic_create(mc, w[2], (int)a, n == 5 ? (int)b : 1);
	} else if (n == 4 && !strcmp(w[0], "topic") && !strcmp(w[1], "error")) {
		rd_kafka_resp_err_t e;
		if (error_by_name(w[3], &e))
			snprintf(reply, len, "error: unknown error name %s", w[3]);
		else
			rd_kafka_mock_topic_set_error(mc, w[2], e);
	} else if (n == 3 && !strcmp(w[0], "broker") && (!strcmp(w[1], "down") || !strcmp(w[1], "up"))) {
		if (parse_int(w[2], &a))
			snprintf(reply, len, "error: broker %s ID|-1", w[1]);
		else if (!strcmp(w[1], "down"))
			err = rd_kafka_mock_broker_set_down(mc, (int32_t)a);
		else
			err = rd_kafka_mock_broker_set_up(mc, (int32_t)a);
	} else if (n == 4 && !strcmp(w[0], "broker") && !strcmp(w[1], "rtt")) {
		if (parse_int(w[2], &a) || parse_int(w[3], &b))
			snprintf(reply, len, "error: broker rtt ID|-1 MS");
		else
			err = rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b);
	} else if (n >= 3 && !strcmp(w[0], "errors") && (!strcmp(w[1], "push") || !strcmp(w[1], "produce"))) {
		int first = !strcmp(w[1], "push") ? 3 : 2;
		a = 0; /* ProduceRequest */
		if (first == 3 && (n < 4 || parse_int(w[2], &a))) {
			snprintf(reply, len, "error: errors push APIKEY ERROR [ERROR...]");
			return;
		}
		rd_kafka_resp_err_t errs[MAX_WORDS];
		for (int i = first; i < n; i++) {
			if (error_by_name(w[i], &errs[i - first])) {
				snprintf(reply, len, "error: unknown error name %s", w[i]);
				return;
			}
		}
		rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)(n - first), errs);
	} else if (n == 3 && !strcmp(w[0], "errors") && !strcmp(w[1], "clear")) {
		if (parse_int(w[2], &a))
			snprintf(reply, len, "error: errors clear APIKEY");
		else
			rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
	} else {
		snprintf(reply, len, "error: unknown command (see kafkad.c)");
	}
	if (err)
		snprintf(reply, len, "error: %s", rd_kafka_err2str(err));
}

/* control_serve's callback: ctx is the mock cluster. */
static void
command_for_cluster(char *line, char *reply, size_t len, void *ctx)
{
	run_command(ctx, line, reply, len);
}

int
main(int argc, char **argv)
{
	int brokers = 3, ch;
	char *topics[64];
	int ntopics = 0;
	while ((ch = getopt(argc, argv, "b:t:")) != -1) {
		switch (ch) {
		case 'b': brokers = atoi(optarg); break;
		case 't':
			if (ntopics < 64)
				topics[ntopics++] = optarg;
			break;
		default:
			fprintf(stderr, "usage: kafkad [-b BROKERS] [-t TOPIC:PARTITIONS[:REPLICATION]]...\n");
			return 2;
		}
	}
	if (brokers < 1 || brokers > 16)
		die("brokers must be 1..16%s", "");

	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* The handle only hosts the mock cluster; keep it quiet. */
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk)
		die("rd_kafka_new: %s", errstr);
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc)
		die("cannot create the mock cluster%s", "");
	for (int i = 0; i < ntopics; i++) {
		char *spec = topics[i];
		char *p1 = strchr(spec, ':');
		char *p2 = p1 ? strchr(p1 + 1, ':') : NULL;
		int parts = p1 ? atoi(p1 + 1) : 1, repl = p2 ? atoi(p2 + 1) : 1;
		if (p1)
			*p1 = '\0';
		if (parts < 1 || repl < 1 || rd_kafka_mock_topic_create(mc, spec, parts, repl))
			die("cannot create topic %s", spec);
	}

	int port;
	int lfd = control_listen("kafkad", 0, &port);
	printf("bootstrap=%s\ncontrol=127.0.0.1:%d\n", rd_kafka_mock_cluster_bootstraps(mc), port);
	if (fflush(stdout))
		die("stdout: %s", strerror(errno));

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct control_client clients[MAX_CLIENTS];
	int nclients = 0;
	while (!stopping) {
		struct pollfd pfd[MAX_CLIENTS + 1];
		pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (int i = 0; i < nclients; i++)
			pfd[i + 1] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
		int ready = poll(pfd, (nfds_t)nclients + 1, 200);
		if (ready <= 0)
			continue;
		for (int i = nclients - 1; i >= 0; i--) {
			if (pfd[i + 1].revents && control_serve(&clients[i], command_for_cluster, mc)) {
				close(clients[i].fd);
				clients[i] = clients[--nclients];
			}
		}
		if (pfd[0].revents & POLLIN) {
			int cfd = accept(lfd, NULL, NULL);
			if (cfd >= 0 && nclients < MAX_CLIENTS)
				clients[nclients++] = (struct control_client){.fd = cfd, .len = 0};
			else if (cfd >= 0)
				close(cfd);
		}
	}
	for (int i = 0; i < nclients; i++)
		close(clients[i].fd);
	close(lfd);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
