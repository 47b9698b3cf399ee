/*
 * freetds_conf.c: the source connection's settings that FreeTDS (1.3 in
 * Debian bookworm) takes only from freetds.conf: the encryption level, the
 * CA file and the host-name check (encrypt, ca_file,
 * trust_server_certificate), and a named instance (instance: the port is
 * asked of the SQL Server Browser, UDP 1434). For a connection that names
 * any of them (URL query or registry fields) this file writes a private
 * freetds.conf (mode 0600, in TMPDIR) with one section for the server,
 * points FREETDSCONF at it for the login, and removes it at once. No
 * secret goes into it: the password stays in the login record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract.h"

/* The encryption a connection asks for: one row per level. */
static const struct {
	const char *name, *freetds; /* freetds: the freetds.conf value, NULL: not in this FreeTDS */
	int verifies;               /* the certificate and host name are checked by default */
} levels[] = {{"off", "off", 0}, {"request", "request", 0}, {"require", "require", 1}, {"strict", NULL, 1}};

static const char *
param(const struct dp_conn *conn, const char *name)
{
	return json_string_value(json_object_get(conn->params, name));
}

static int
level_of(const struct dp_conn *conn, const char *encrypt)
{
	for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
		if (!strcmp(encrypt, levels[i].name))
			return (int)i;
	dp_die(DP_EXIT_CONNECTION, "connection %s (%s): encrypt '%s': expected off, request, require or strict",
	       conn->id, conn->origin, encrypt);
}

/* The CA file's path, checked, or "system" (the system's trust store). */
static const char *
ca_file_of(const struct dp_conn *conn)
{
	const char *ca = param(conn, "ca_file");
	if (!ca || !strcmp(ca, "system"))
		return "system";
	if (access(ca, R_OK) < 0)
		dp_die(DP_EXIT_CONNECTION, "connection %s (%s): ca_file %s: %s", conn->id, conn->origin, ca,
		       strerror(errno));
	return ca;
}

/* trust_server_certificate: true skips the certificate and host-name checks. */
static int
trusts_any(const struct dp_conn *conn)
{
	const char *t = param(conn, "trust_server_certificate");
	if (!t || !strcmp(t, "false"))
		return 0;
	if (strcmp(t, "true"))
		dp_die(DP_EXIT_CONNECTION, "connection %s (%s): trust_server_certificate '%s': expected true or false",
		       conn->id, conn->origin, t);
	return 1;
}

int
freetds_conf_begin(const struct dp_conn *conn, struct freetds_conf *t)
{
	*t = (struct freetds_conf){0};
	const char *encrypt = param(conn, "encrypt"), *instance = param(conn, "instance");
	int tls = encrypt || param(conn, "ca_file") || param(conn, "trust_server_certificate");
	if (!tls && !instance)
		return 0;
	int lv = level_of(conn, encrypt ? encrypt : "request");
	if (!levels[lv].freetds)
		dp_die(DP_EXIT_UNAVAILABLE,
		       "connection %s (%s): encrypt=%s (TDS 8.0) needs FreeTDS 1.4 or later; this is %s: use "
		       "encrypt=require",
		       conn->id, conn->origin, levels[lv].name, dbversion());
	int trust = trusts_any(conn);
	/* verified: require checks by default; request only with a ca_file. */
	int verify = !trust && (levels[lv].verifies || param(conn, "ca_file"));
	const char *tmp = getenv("TMPDIR");
	char *path = dp_strfmt("%s/dpone-freetds.123456", tmp && *tmp ? tmp : "/tmp");
	memset(path + strlen(path) - 6, 'X', 6); /* mkstemp's template ends in six X */
	int fd = mkstemp(path);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f)
		dp_die(DP_EXIT_FAILURE, "cannot write a private freetds.conf in %s: %s", tmp && *tmp ? tmp : "/tmp",
		       strerror(errno));
	fprintf(f, "[dpone]\n\thost = %s\n\ttds version = 7.4\n", conn->host);
	if (instance)
		fprintf(f, "\tinstance = %s\n", instance);
	else
		fprintf(f, "\tport = %d\n", conn->port);
	if (tls)
		fprintf(f, "\tencryption = %s\n", levels[lv].freetds);
	if (verify)
		fprintf(f, "\tca file = %s\n\tcheck certificate hostname = yes\n", ca_file_of(conn));
	if (fclose(f))
		dp_die(DP_EXIT_FAILURE, "%s: %s", path, strerror(errno));
	const char *before = getenv("FREETDSCONF");
	t->saved_conf = before ? dp_xstrdup(before) : NULL;
	t->conf = path;
	t->instance = instance;
	t->level = tls ? levels[lv].name : NULL;
	t->verified = verify;
	setenv("FREETDSCONF", path, 1);
	return 1;
}

void
freetds_conf_end(struct freetds_conf *t)
{
	if (!t->conf)
		return;
	unlink(t->conf);
	if (t->saved_conf)
		setenv("FREETDSCONF", t->saved_conf, 1);
	else
		unsetenv("FREETDSCONF");
	free(t->conf);
	free(t->saved_conf);
	t->conf = t->saved_conf = NULL;
}

const char *
freetds_conf_hint(const struct dp_conn *conn, const struct freetds_conf *t)
{
	static char hint[1024];
	if (t->instance && !t->level) {
		snprintf(hint, sizeof hint,
		         " (instance %s: its port is asked of the SQL Server Browser on %s, UDP 1434; is it running "
		         "and reachable?)",
		         t->instance, conn->host);
		return hint;
	}
	if (!t->level)
		return "";
	if (!strcmp(t->level, "off"))
		snprintf(hint, sizeof hint,
		         " (encrypt=off: a server that requires encryption, as SQL Server 2022 and Azure SQL can, "
		         "refuses it: use encrypt=require)");
	else if (t->verified)
		snprintf(hint, sizeof hint,
		         " (encrypt=%s: if the TLS handshake failed, the server's certificate did not verify against "
		         "%s%s or does not name %s; TDSDUMP=/dev/stderr shows which)",
		         t->level, strcmp(ca_file_of(conn), "system") ? "ca_file " : "the system's CA certificates",
		         strcmp(ca_file_of(conn), "system") ? ca_file_of(conn) : "", conn->host);
	else
		snprintf(hint, sizeof hint, " (encrypt=%s)", t->level);
	return hint;
}
