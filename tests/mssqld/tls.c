/*
 * tls.c: TLS as SQL Server speaks it ([MS-TDS] 2.2.6.5, 3.3.5.1). The
 * PRELOGIN ENCRYPTION option is answered from what the client asked and
 * whether the server has a certificate (-c CERT -k KEY) and forces
 * encryption (-E, or control: tls force on). When both sides agree, the
 * TLS handshake travels inside PRELOGIN packets; then TLS runs directly
 * on the socket, under the TDS packets: for the LOGIN7 message only
 * (ENCRYPT_OFF: login encryption, what FreeTDS's "request" gets) or for
 * the whole session (ENCRYPT_ON, ENCRYPT_REQ).
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "mssqld.h"

static SSL_CTX *ctx;
static int force;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;

int
tls_init(const char *cert, const char *key, int force_encryption)
{
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "mssqld: %s, %s: cannot load the certificate and key\n", cert, key);
		return -1;
	}
	/* TLS 1.2 at most, as SQL Server negotiates inside a TDS 7.x PRELOGIN
	 * (TLS 1.3 comes with TDS 8.0's strict encryption): in 1.2 the
	 * server speaks last in the handshake, so the client reads once more
	 * and sends its buffered Finished first. No session tickets. */
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	force = force_encryption;
	return 0;
}

void
tls_set_force(int on)
{
	pthread_mutex_lock(&tls_lock);
	force = on;
	pthread_mutex_unlock(&tls_lock);
}

int
tls_available(void)
{
	return ctx != NULL;
}

int
tls_answer(int client)
{
	pthread_mutex_lock(&tls_lock);
	int forced = force;
	pthread_mutex_unlock(&tls_lock);
	if (!ctx)
		return ENCRYPT_NOT_SUP;
	switch (client) {
	case ENCRYPT_OFF: return forced ? ENCRYPT_REQ : ENCRYPT_OFF;
	case ENCRYPT_ON:
	case ENCRYPT_REQ: return ENCRYPT_ON;
	default: return forced ? ENCRYPT_REQ : ENCRYPT_NOT_SUP;
	}
}

/* Send what the TLS engine wrote (a handshake flight) in PRELOGIN packets. */
static int
send_flight(struct conn *c, BIO *out)
{
	char buf[16384];
	int n, sent = 0;
	while ((n = BIO_read(out, buf, sizeof buf)) > 0) {
		tds_put_type(c, TDS_PKT_PRELOGIN, buf, (size_t)n);
		sent = 1;
	}
	return sent ? tds_flush(c, 1) : 0;
}

int
tls_handshake(struct conn *c)
{
	SSL *ssl = SSL_new(ctx);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, in, out);
	SSL_set_accept_state(ssl);
	for (;;) {
		int rc = SSL_do_handshake(ssl);
		if (send_flight(c, out) < 0)
			break;
		if (rc == 1) {
			/* From here TLS is under the TDS packets, on the socket. */
			BIO *sock = BIO_new_socket(c->fd, BIO_NOCLOSE);
			SSL_set_bio(ssl, sock, sock);
			c->tls = ssl;
			return 0;
		}
		if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
			break;
		unsigned char type, *d;
		size_t len;
		if (tds_read_message(c, &type, &d, &len) || type != TDS_PKT_PRELOGIN)
			break;
		BIO_write(in, d, (int)len);
	}
	ERR_clear_error();
	SSL_free(ssl);
	return -1;
}

void
tls_end(struct conn *c)
{
	/* Login-only encryption: the client drops TLS after LOGIN7 without a
	 * close_notify; so does the server. */
	SSL_free(c->tls);
	c->tls = NULL;
}

int
tls_read(struct conn *c, void *p, size_t n)
{
	int got = SSL_read(c->tls, p, (int)n);
	return got > 0 ? got : -1;
}

int
tls_write(struct conn *c, const void *p, size_t n)
{
	int put = SSL_write(c->tls, p, (int)n);
	return put > 0 ? put : -1;
}

int
tls_pending(struct conn *c)
{
	return c->tls && SSL_pending(c->tls) > 0;
}
