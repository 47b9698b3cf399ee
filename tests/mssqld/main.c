/*
 * mssqld: a TDS 7.4 SQL Server stand-in over SQLite, for dpone's tests.
 *
 *   mssqld -d DIR [-p PORT] [-u USER:PASSWORD]... [-D DATABASE]... [-c CERT -k KEY [-E]]
 *
 * With a certificate and key (PEM) it offers TLS in PRELOGIN (tls.c);
 * -E forces encryption, as SQL Server's Force Encryption does.
 *
 * It listens on 127.0.0.1 (PORT 0, the default, picks a free one), keeps
 * each database in DIR/NAME.sqlite ("master" always exists), and prints on
 * stdout, then flushes:
 *   port=PORT
 *   control=127.0.0.1:CONTROL_PORT
 * The control port takes one command per line and answers "ok" or
 * "error: ...":
 *   ping
 *   fault drop-after-rows N [TEXT]       drop the connection after N rows
 *   fault error-after-rows N [TEXT]      an error (1205) after N rows
 *   fault stall-after-rows N MS [TEXT]   stop MS milliseconds after N rows
 *     each applies once, to the next result set (whose SQL contains TEXT)
 *   fault refuse-logins on|off    logins fail with error 18456 while on
 *   permission view-server-state on|off   off: the DMVs answer error 300
 *   tls force on|off              on: every client must encrypt (-E)
 *   tls-sessions                  "ok logins=N sessions=M": logins over TLS,
 *                                 and of them the sessions encrypted whole
 *   rpc-counts                    "ok sp_executesql=N sp_prepare=N ...": the
 *                                 RPCs of prepared statements served so far
 *   delay packet-us N             every reply packet waits N microseconds
 *                                 before it is sent, on every connection
 *                                 (a remote server; 0: none)
 *   fault clear
 *   shutdown
 * SIGTERM or SIGINT stops it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "mssqld.h"

struct server_config server;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rowversion_counter = 0x7D0;
static uint64_t lsn_counter;
static uint64_t spid_counter = 50;
static struct faults faults = {-1, -1, -1, 0, 0, ""};
static volatile sig_atomic_t stopping;
static long delay_us; /* delay packet-us; under lock */

/* The next value of a server-wide counter. */
static uint64_t
counter_next(uint64_t *counter)
{
	pthread_mutex_lock(&lock);
	uint64_t v = ++*counter;
	pthread_mutex_unlock(&lock);
	return v;
}

uint64_t
next_rowversion(void)
{
	return counter_next(&rowversion_counter);
}

uint64_t
current_rowversion(void)
{
	pthread_mutex_lock(&lock);
	uint64_t v = rowversion_counter;
	pthread_mutex_unlock(&lock);
	return v;
}

int
database_id(const char *name)
{
	if (!strcasecmp(name, "master"))
		return 1;
	for (int i = 0; i < server.ndatabases; i++)
		if (!strcasecmp(server.databases[i], name))
			return 5 + i;
	return 0;
}
uint64_t
next_lsn(void)
{
	return counter_next(&lsn_counter);
}
int
next_spid(void)
{
	return (int)counter_next(&spid_counter);
}

/* The faults armed for a query with this SQL (-1 where none); they stay
 * armed until fault_fire says one went off. */
int
fault_peek(const char *sql, long *drop, long *error, long *stall, int *stall_ms)
{
	pthread_mutex_lock(&lock);
	int applies = !faults.match[0] || strstr(sql, faults.match) != NULL;
	*drop = applies ? faults.drop_after_rows : -1;
	*error = applies ? faults.error_after_rows : -1;
	*stall = applies ? faults.stall_after_rows : -1;
	*stall_ms = faults.stall_ms;
	pthread_mutex_unlock(&lock);
	return *drop >= 0 || *error >= 0 || *stall >= 0;
}

/* Disarm the faults when one fires; 0 if another connection was first. */
int
fault_fire(void)
{
	pthread_mutex_lock(&lock);
	int armed = faults.drop_after_rows >= 0 || faults.error_after_rows >= 0 || faults.stall_after_rows >= 0;
	faults.drop_after_rows = faults.error_after_rows = faults.stall_after_rows = -1;
	faults.match[0] = '\0';
	pthread_mutex_unlock(&lock);
	return armed;
}

long
packet_delay_us(void)
{
	pthread_mutex_lock(&lock);
	long v = delay_us;
	pthread_mutex_unlock(&lock);
	return v;
}

int
fault_refuse_logins(void)
{
	pthread_mutex_lock(&lock);
	int v = faults.refuse_logins;
	pthread_mutex_unlock(&lock);
	return v;
}

/* ---- login ---- */

/* The client's PRELOGIN ENCRYPTION value (option 0x01), ENCRYPT_NOT_SUP
 * when it sent none. */
static int
prelogin_encryption(const unsigned char *d, size_t len)
{
	for (size_t at = 0; at + 5 <= len && d[at] != 0xFF; at += 5) {
		size_t off = (size_t)(d[at + 1] << 8 | d[at + 2]), n = (size_t)(d[at + 3] << 8 | d[at + 4]);
		if (d[at] == 0x01 && n >= 1 && off < len)
			return d[off];
	}
	return ENCRYPT_NOT_SUP;
}

static void
send_prelogin_reply(struct conn *c, int encryption)
{
	/* VERSION, ENCRYPTION, INSTOPT, THREADID, MARS (off) */
	unsigned char reply[] = {0x00, 0,    26,   0,    6,    0x01, 0,    32,   0,    1,    0x02, 0,
	                         33,   0,    1,    0x03, 0,    34,   0,    0,    0x04, 0,    34,   0,
	                         1,    0xFF, 0x0F, 0x00, 0x0F, 0xA0, 0x00, 0x00, 0x02, 0x00, 0x00};
	reply[32] = (unsigned char)encryption;
	tds_put(c, reply, sizeof reply);
	tds_flush(c, 1);
}

static unsigned long tls_logins, tls_sessions; /* control: tls-sessions; under lock */

/* PRELOGIN: answer ENCRYPTION; when both sides encrypt, the TLS handshake,
 * then LOGIN7 over TLS (the rest of the session too, unless the client
 * asked for login encryption only). 0, or -1 to close the connection. */
static int
negotiate(struct conn *c, const unsigned char *d, size_t len)
{
	int asked = prelogin_encryption(d, len), answer = tls_answer(asked);
	send_prelogin_reply(c, answer);
	if (answer == ENCRYPT_NOT_SUP)
		return asked == ENCRYPT_ON || asked == ENCRYPT_REQ ? -1 : 0;
	if (asked == ENCRYPT_NOT_SUP || tls_handshake(c))
		return -1; /* a forced server, a client without TLS: SQL Server closes */
	c->encrypt_all = answer != ENCRYPT_OFF;
	pthread_mutex_lock(&lock);
	tls_logins++;
	tls_sessions += (unsigned long)c->encrypt_all;
	pthread_mutex_unlock(&lock);
	return 0;
}

static char *
login_string(const unsigned char *d, size_t len, int at, int decode_password)
{
	size_t off = (size_t)(d[at] | d[at + 1] << 8), chars = (size_t)(d[at + 2] | d[at + 3] << 8);
	if (off + chars * 2 > len)
		return strdup("");
	unsigned char *tmp = malloc(chars * 2 + 1);
	memcpy(tmp, d + off, chars * 2);
	if (decode_password)
		for (size_t i = 0; i < chars * 2; i++) {
			unsigned x = tmp[i] ^ 0xA5u;
			tmp[i] = (unsigned char)((x << 4 | x >> 4) & 0xFF);
		}
	char *s = utf16_to_utf8(tmp, chars * 2, NULL);
	free(tmp);
	return s;
}

static int
login_failed(struct conn *c, const char *user, int number, const char *extra)
{
	struct sqlerr e;
	if (extra) {
		sqlerr_set(&e, number, 11, "%s", extra);
		tok_error(c, &e);
	}
	sqlerr_set(&e, 18456, 14, "Login failed for user '%s'.", user);
	tok_error(c, &e);
	tok_done(c, 0xFD, DONE_ERROR, 0, 0);
	tds_flush(c, 1);
	return -1;
}

static int
do_login(struct conn *c)
{
	unsigned char type, *d;
	size_t len;
	if (tds_read_message(c, &type, &d, &len))
		return -1;
	if (type == TDS_PKT_PRELOGIN) {
		if (negotiate(c, d, len) || tds_read_message(c, &type, &d, &len))
			return -1;
		c->encrypted = c->tls != NULL;
		if (c->tls && !c->encrypt_all)
			tls_end(c);
	}
	if (type != TDS_PKT_LOGIN7 || len < 94)
		return -1;
	uint32_t packet = (uint32_t)(d[8] | d[9] << 8 | d[10] << 16 | (uint32_t)d[11] << 24);
	/* Answer in the client's version, up to 7.4 (0x74000004 little-endian on the wire). */
	uint32_t version = (uint32_t)(d[4] | d[5] << 8 | d[6] << 16 | (uint32_t)d[7] << 24);
	c->tds_version = version >= 0x72000000 && version <= 0x74000004 ? version : 0x74000004;
	char *user = login_string(d, len, 40, 0), *password = login_string(d, len, 44, 1);
	char *database = login_string(d, len, 68, 0);
	int ok = 0;
	for (int i = 0; i < server.nusers; i++)
		if (!strcmp(server.users[i][0], user) && !strcmp(server.users[i][1], password))
			ok = 1;
	memset(password, 0, strlen(password));
	free(password);
	int rc = 0;
	struct sqlerr e;
	if (fault_refuse_logins() || !ok) {
		rc = login_failed(c, user, 0, NULL);
	} else if (exec_use_database(c, *database ? database : server.databases[server.default_db], &e)) {
		char msg[600];
		snprintf(msg, sizeof msg, "Cannot open database \"%s\" requested by the login. The login failed.",
		         database);
		rc = login_failed(c, user, 4060, msg);
	} else {
		snprintf(c->user, sizeof c->user, "%s", user);
		/* ApplicationIntent=ReadOnly (TypeFlags, bit 5): the stand-in plays
		 * the readable secondary such a login is routed to. */
		c->read_only_intent = (d[26] & 0x20) != 0;
		if (packet >= 512 && packet <= 32767)
			c->packet_size = packet;
		char msg[300], size[16];
		tok_envchange_str(c, 1, c->database, "master");
		snprintf(msg, sizeof msg, "Changed database context to '%s'.", c->database);
		tok_info(c, 5701, msg);
		tok_envchange_collation(c);
		tok_envchange_str(c, 2, "us_english", "");
		tok_info(c, 5703, "Changed language setting to us_english.");
		tok_loginack(c);
		snprintf(size, sizeof size, "%zu", c->packet_size);
		tok_envchange_str(c, 4, size, "4096");
		tok_done(c, 0xFD, 0, 0, 0);
		/* The reply goes out in 4096-byte packets; later ones use the new size. */
		size_t negotiated = c->packet_size;
		c->packet_size = 4096;
		tds_flush(c, 1);
		c->packet_size = negotiated;
	}
	free(user);
	free(database);
	return rc;
}

/* ---- connections ---- */

static void
serve_messages(struct conn *c)
{
	unsigned char type, *d;
	size_t len;
	while (!c->out_broken && tds_read_message(c, &type, &d, &len) == 0) {
		if (type == TDS_PKT_SQL_BATCH) {
			const unsigned char *p = skip_all_headers(d, d + len);
			char *sql = utf16_to_utf8(p, (size_t)(d + len - p), NULL);
			exec_batch(c, sql);
			free(sql);
		} else if (type == TDS_PKT_RPC) {
			if (exec_rpc(c, d, len))
				break;
		} else if (type == TDS_PKT_BULK) {
			exec_bulk(c, d, len);
		} else if (type == TDS_PKT_ATTENTION) {
			c->attention = 0;
			tok_done(c, 0xFD, DONE_ATTN, 0, 0);
			tds_flush(c, 1);
		} else if (type == 0x0E) {
			/* Transaction manager requests: answered, nothing to do. */
			tok_done(c, 0xFD, 0, 0, 0);
			tds_flush(c, 1);
		} else {
			break;
		}
	}
}

static void *
connection_main(void *arg)
{
	struct conn *c = arg;
	if (do_login(c) == 0)
		serve_messages(c);
	exec_session_end(c);
	rpc_session_end(c);
	if (c->db)
		sqlite3_close(c->db);
	close(c->fd);
	table_info_free(&c->bulk_table);
	free(c->out);
	free(c->in);
	free(c->rowbuf.p);
	free(c);
	return NULL;
}

/* ---- control port ---- */

/* The text after the first `skip` words of line, or "". */
static const char *
rest_after(const char *line, int skip)
{
	const char *p = line;
	for (int i = 0; i < skip; i++) {
		p += strspn(p, " \t");
		p += strcspn(p, " \t");
	}
	p += strspn(p, " \t");
	return p;
}

static void
control_command(char *line, char *reply, size_t len, void *ctx)
{
	(void)ctx;
	char *w[6] = {0};
	int n = 0;
	line[strcspn(line, "\r\n")] = '\0';
	char copy[1024];
	snprintf(copy, sizeof copy, "%s", line);
	for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok && n < 6; tok = strtok_r(NULL, " \t", &save))
		w[n++] = tok;
	/* drop/error-after-rows N [TEXT], stall-after-rows N MS [TEXT]: the
	 * fault waits for a query whose SQL contains TEXT. */
	int has_match = n >= 4 && !strcmp(w[0], "fault") &&
	                (!strcmp(w[1], "drop-after-rows") || !strcmp(w[1], "error-after-rows"));
	has_match |= n >= 5 && !strcmp(w[0], "fault") && !strcmp(w[1], "stall-after-rows");
	char match[256] = "";
	if (has_match) {
		snprintf(match, sizeof match, "%s", rest_after(copy, !strcmp(w[1], "stall-after-rows") ? 4 : 3));
		n = !strcmp(w[1], "stall-after-rows") ? 4 : 3;
	}
	snprintf(reply, len, "ok");
	pthread_mutex_lock(&lock);
	if (n >= 3 && !strcmp(w[0], "fault") && strcmp(w[1], "refuse-logins"))
		snprintf(faults.match, sizeof faults.match, "%s", match);
	if (n == 1 && !strcmp(w[0], "ping")) {
	} else if (n == 1 && !strcmp(w[0], "shutdown")) {
		stopping = 1;
	} else if (n == 3 && !strcmp(w[0], "fault") && !strcmp(w[1], "drop-after-rows")) {
		faults.drop_after_rows = atol(w[2]);
	} else if (n == 3 && !strcmp(w[0], "fault") && !strcmp(w[1], "error-after-rows")) {
		faults.error_after_rows = atol(w[2]);
	} else if (n == 4 && !strcmp(w[0], "fault") && !strcmp(w[1], "stall-after-rows")) {
		faults.stall_after_rows = atol(w[2]);
		faults.stall_ms = atoi(w[3]);
	} else if (n == 3 && !strcmp(w[0], "fault") && !strcmp(w[1], "refuse-logins")) {
		faults.refuse_logins = !strcmp(w[2], "on");
	} else if (n == 1 && !strcmp(w[0], "tls-sessions")) {
		snprintf(reply, len, "ok logins=%lu sessions=%lu", tls_logins, tls_sessions);
	} else if (n == 3 && !strcmp(w[0], "tls") && !strcmp(w[1], "force")) {
		tls_set_force(!strcmp(w[2], "on"));
	} else if (n == 1 && !strcmp(w[0], "rpc-counts")) {
		char counts[256];
		rpc_counts(counts, sizeof counts);
		snprintf(reply, len, "ok %s", counts);
	} else if (n == 3 && !strcmp(w[0], "permission") && !strcmp(w[1], "view-server-state")) {
		txn_set_server_state_denied(!strcmp(w[2], "off"));
	} else if (n == 3 && !strcmp(w[0], "delay") && !strcmp(w[1], "packet-us") && atol(w[2]) >= 0) {
		delay_us = atol(w[2]);
	} else if (n == 2 && !strcmp(w[0], "fault") && !strcmp(w[1], "clear")) {
		faults = (struct faults){-1, -1, -1, 0, 0, ""};
		txn_set_server_state_denied(0);
	} else {
		snprintf(reply, len, "error: unknown command (see tests/mssqld/main.c)");
	}
	pthread_mutex_unlock(&lock);
}

/* ---- start ---- */

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
init_database(const char *name)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s.sqlite", server.dir, name);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "mssqld: %s: %s\n", path, sqlite3_errmsg(db));
		exit(1);
	}
	sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	types_register(db);
	if (catalog_init(db)) {
		fprintf(stderr, "mssqld: %s: cannot create the catalog: %s\n", path, sqlite3_errmsg(db));
		exit(1);
	}
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO __tds_meta VALUES ('db_name', %Q)", name);
	sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
	sqlite3_close(db);
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: mssqld -d DIR [-p PORT] [-u USER:PASSWORD]... [-D DATABASE]... [-c CERT -k KEY [-E]]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	int port = 0, ch;
	snprintf(server.databases[server.ndatabases++], sizeof server.databases[0], "master");
	const char *cert = NULL, *key = NULL;
	int force_tls = 0;
	while ((ch = getopt(argc, argv, "d:p:u:D:c:k:E")) != -1) {
		switch (ch) {
		case 'd': snprintf(server.dir, sizeof server.dir, "%s", optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'E': force_tls = 1; break;
		case 'u': {
			char *colon = strchr(optarg, ':');
			if (!colon || server.nusers == 16)
				usage();
			snprintf(server.users[server.nusers][0], 129, "%.*s", (int)(colon - optarg), optarg);
			snprintf(server.users[server.nusers][1], 129, "%s", colon + 1);
			server.nusers++;
			/* Keep the password out of /proc/PID/cmdline. */
			memset(colon + 1, 'x', strlen(colon + 1));
			break;
		}
		case 'D':
			if (server.ndatabases == 16)
				usage();
			snprintf(server.databases[server.ndatabases], sizeof server.databases[0], "%s", optarg);
			server.default_db = server.ndatabases++;
			break;
		default: usage();
		}
	}
	if (!server.dir[0] || !cert != !key || (force_tls && !cert))
		usage();
	if (cert && tls_init(cert, key, force_tls))
		exit(1);
	if (server.nusers == 0) {
		snprintf(server.users[0][0], 129, "sa");
		snprintf(server.users[0][1], 129, "%s",
		         getenv("MSSQLD_SA_PASSWORD") ? getenv("MSSQLD_SA_PASSWORD") : "");
		server.nusers = 1;
	}
	snprintf(server.version, sizeof server.version,
	         "Microsoft SQL Server 2019 (RTM) - 15.0.4000.0 (X64)\n\tdpone tests/mssqld: a TDS 7.4 stand-in on "
	         "SQLite %s",
	         sqlite3_libversion());
	mkdir(server.dir, 0700);
	sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
	for (int i = 0; i < server.ndatabases; i++)
		init_database(server.databases[i]);
	/* LSNs grow across restarts: they start from the clock. */
	lsn_counter = (uint64_t)time(NULL) << 20;

	int bound, cport;
	int lfd = control_listen("mssqld", port, &bound);
	int cfd = control_listen("mssqld", 0, &cport);
	printf("port=%d\ncontrol=127.0.0.1:%d\n", bound, cport);
	fflush(stdout);

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

	struct control_client ctl[16];
	int nctl = 0;
	while (!stopping) {
		struct pollfd pfd[18];
		pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = cfd, .events = POLLIN};
		for (int i = 0; i < nctl; i++)
			pfd[2 + i] = (struct pollfd){.fd = ctl[i].fd, .events = POLLIN};
		if (poll(pfd, (nfds_t)2 + (nfds_t)nctl, 200) <= 0)
			continue;
		for (int i = nctl - 1; i >= 0; i--)
			if (pfd[2 + i].revents && control_serve(&ctl[i], control_command, NULL)) {
				close(ctl[i].fd);
				ctl[i] = ctl[--nctl];
			}
		if (pfd[1].revents & POLLIN) {
			int fd = accept(cfd, NULL, NULL);
			if (fd >= 0 && nctl < 16)
				ctl[nctl++] = (struct control_client){.fd = fd};
			else if (fd >= 0)
				close(fd);
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				continue;
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			struct conn *c = calloc(1, sizeof *c);
			c->fd = fd;
			c->spid = next_spid();
			c->packet_size = 4096;
			c->rpc_handle_out = -1;
			pthread_t th;
			if (pthread_create(&th, &attr, connection_main, c)) {
				close(fd);
				free(c);
			}
		}
	}
	close(lfd);
	close(cfd);
	return 0;
}
