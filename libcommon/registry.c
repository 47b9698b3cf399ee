/*
 * registry.c: turn a manifest's connection_id into host, port, credentials.
 *
 * Three places a connection can come from (connection_type):
 *   env    DPONE_CONN_<ID> holds a URL (mssql://user:pass@host:port/db?k=v)
 *   file   a YAML registry, refused when group or others can read it
 *   vault  a KV v2 secret in HashiCorp Vault or OpenBao
 * Messages name where a connection came from but never print its URL or
 * any value of a secret setting.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpone.h"

static char *registry_path_option;

void
dp_registry_set_path(const char *path)
{
	free(registry_path_option);
	registry_path_option = path ? dp_xstrdup(path) : NULL;
	/* Stages this one starts (dp_run_capture) use the same registry. */
	if (path)
		setenv("DPONE_REGISTRY", path, 1);
}

int
dp_check_secret_file(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
		         "%s: %s holds secrets but belongs to uid %u, not to the user running dpone (uid %u); "
		         "run chown %u %s",
		         path, what, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(), path);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
		         "%s: %s holds secrets but group or others may access it (mode %03o); run chmod 600 %s", path,
		         what, (unsigned)(st.st_mode & 0777), path);
		return -1;
	}
	return 0;
}

int
dp_is_secret_key(const char *key)
{
	static const char *const words[] = {"pass", "secret", "token", "credential", "private", "key.pem", NULL};
	char lower[128];
	size_t i;
	for (i = 0; i < sizeof lower - 1 && key[i]; i++)
		lower[i] = (char)tolower((unsigned char)key[i]);
	lower[i] = '\0';
	for (const char *const *w = words; *w; w++)
		if (strstr(lower, *w))
			return 1;
	return 0;
}

json_t *
dp_json_redact(json_t *doc)
{
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(doc)) {
		json_object_foreach(doc, k, v) {
			if (dp_is_secret_key(k) && !json_is_null(v))
				json_object_set_new(doc, k, json_string("***"));
			else
				dp_json_redact(v);
		}
	} else if (json_is_array(doc)) {
		json_array_foreach(doc, i, v)
			dp_json_redact(v);
	}
	return doc;
}

char *
dp_conn_env_name(const char *id)
{
	char *name = dp_strfmt("DPONE_CONN_%s", id);
	for (char *p = name + 11; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	return name;
}

void
dp_conn_free(struct dp_conn *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->kind);
	free(c->host);
	free(c->url);
	free(c->user);
	if (c->password) {
		/* Do not leave the secret in freed heap memory. */
		volatile char *p = c->password;
		while (*p)
			*p++ = 0;
		free(c->password);
	}
	free(c->database);
	free(c->brokers);
	json_decref(c->params);
	free(c->origin);
	memset(c, 0, sizeof *c);
}

json_t *
dp_conn_redacted(const struct dp_conn *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "type", json_string(c->kind));
	json_object_set_new(o, "origin", json_string(c->origin));
	if (c->host)
		json_object_set_new(o, "host", json_string(c->host));
	if (c->port)
		json_object_set_new(o, "port", json_integer(c->port));
	if (c->brokers)
		json_object_set_new(o, "brokers", json_string(c->brokers));
	if (c->database)
		json_object_set_new(o, "database", json_string(c->database));
	if (c->user)
		json_object_set_new(o, "user", json_string(c->user));
	if (c->password)
		json_object_set_new(o, "password", json_string("***"));
	json_t *params = json_object();
	const char *k;
	json_t *v;
	json_object_foreach(c->params, k, v)
		json_object_set_new(params, k, dp_is_secret_key(k) ? json_string("***") : json_deep_copy(v));
	json_object_set_new(o, "params", params);
	return o;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape or NUL. */
static char *
pct_decode(const char *s, size_t n)
{
	char *out = dp_xmalloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n) {
				free(out);
				return NULL;
			}
			int a = hexval((unsigned char)s[i + 1]), b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0 || (a == 0 && b == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(a << 4 | b);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static int
default_port(const char *kind)
{
	if (!strcmp(kind, "mssql"))
		return 1433;
	if (!strcmp(kind, "postgres"))
		return 5432;
	if (!strcmp(kind, "http"))
		return 80;
	if (!strcmp(kind, "https"))
		return 443;
	return 9092;
}

static int
set_host_port(struct dp_conn *c, const char *hp, size_t n, char *err, size_t errlen)
{
	const char *colon = memchr(hp, ':', n);
	size_t hlen = colon ? (size_t)(colon - hp) : n;
	if (hlen == 0) {
		snprintf(err, errlen, "connection %s (%s): no host", c->id, c->origin);
		return -1;
	}
	c->host = dp_xstrndup(hp, hlen);
	c->port = default_port(c->kind);
	if (colon) {
		char *ps = dp_xstrndup(colon + 1, n - hlen - 1);
		long long port;
		int bad = dp_parse_ll(ps, &port) || port < 1 || port > 65535;
		free(ps);
		if (bad) {
			snprintf(err, errlen, "connection %s (%s): port is not a number from 1 to 65535", c->id,
			         c->origin);
			return -1;
		}
		c->port = (int)port;
	}
	return 0;
}

/* Query string k=v&k=v into c->params. */
static int
parse_query(struct dp_conn *c, const char *q, char *err, size_t errlen)
{
	while (*q) {
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		if (!eq) {
			snprintf(err, errlen, "connection %s (%s): URL parameter without '='", c->id, c->origin);
			return -1;
		}
		char *k = pct_decode(q, (size_t)(eq - q));
		char *v = pct_decode(eq + 1, n - (size_t)(eq - q) - 1);
		if (!k || !v || !*k) {
			free(k);
			free(v);
			snprintf(err, errlen, "connection %s (%s): bad escape in URL parameters", c->id, c->origin);
			return -1;
		}
		json_object_set_new(c->params, k, json_string(v));
		free(k);
		free(v);
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* Take the Kafka SASL credentials from user:pass@ if given there. */
static void
kafka_userinfo(struct dp_conn *c)
{
	if (c->user && !json_object_get(c->params, "sasl_username"))
		json_object_set_new(c->params, "sasl_username", json_string(c->user));
	if (c->password && !json_object_get(c->params, "sasl_password"))
		json_object_set_new(c->params, "sasl_password", json_string(c->password));
}

static int
parse_url(struct dp_conn *c, const char *url, char *err, size_t errlen)
{
	static const struct {
		const char *scheme, *kind;
	} schemes[] = {{"mssql", "mssql"},         {"sqlserver", "mssql"}, {"kafka", "kafka"}, {"postgres", "postgres"},
	               {"postgresql", "postgres"}, {"http", "http"},       {"https", "https"}};
	const char *sep = strstr(url, "://");
	if (!sep) {
		snprintf(err, errlen, "connection %s (%s): not a URL (expected mssql://, kafka:// or postgres://)",
		         c->id, c->origin);
		return -1;
	}
	for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (strlen(schemes[i].scheme) == (size_t)(sep - url) &&
		    !strncmp(url, schemes[i].scheme, (size_t)(sep - url)))
			c->kind = dp_xstrdup(schemes[i].kind);
	if (!c->kind) {
		snprintf(err, errlen,
		         "connection %s (%s): unknown URL scheme (expected mssql, kafka, postgres, http or https)",
		         c->id, c->origin);
		return -1;
	}
	const char *rest = sep + 3;
	size_t auth_len = strcspn(rest, "/?");
	const char *at = NULL;
	for (const char *p = rest; p < rest + auth_len; p++)
		if (*p == '@')
			at = p; /* the last '@': passwords may contain an escaped one */
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		c->user = pct_decode(rest, colon ? (size_t)(colon - rest) : (size_t)(at - rest));
		if (colon)
			c->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
		if (!c->user || (colon && !c->password)) {
			snprintf(err, errlen, "connection %s (%s): bad escape in user or password", c->id, c->origin);
			return -1;
		}
		auth_len -= (size_t)(at + 1 - rest);
		rest = at + 1;
	}
	if (!strcmp(c->kind, "kafka")) {
		if (auth_len == 0) {
			snprintf(err, errlen, "connection %s (%s): no brokers", c->id, c->origin);
			return -1;
		}
		c->brokers = dp_xstrndup(rest, auth_len);
	} else if (set_host_port(c, rest, auth_len, err, errlen)) {
		return -1;
	}
	if (!strcmp(c->kind, "http") || !strcmp(c->kind, "https")) {
		/* An HTTP endpoint (Pushgateway, OpenLineage): the URL without its
		 * user and password, which go in an Authorization header. */
		c->url = dp_strfmt("%s://%.*s%s", c->kind, (int)auth_len, rest, rest + auth_len);
		return 0;
	}
	rest += auth_len;
	if (*rest == '/') {
		size_t dlen = strcspn(rest + 1, "?");
		if (dlen && !(c->database = pct_decode(rest + 1, dlen))) {
			snprintf(err, errlen, "connection %s (%s): bad escape in database name", c->id, c->origin);
			return -1;
		}
		rest += 1 + dlen;
	}
	if (*rest == '?' && parse_query(c, rest + 1, err, errlen))
		return -1;
	if (!strcmp(c->kind, "kafka"))
		kafka_userinfo(c);
	return 0;
}

static char *
scalar_text(json_t *v)
{
	if (json_is_string(v))
		return dp_xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return dp_strfmt("%lld", (long long)json_integer_value(v));
	if (json_is_real(v))
		return dp_strfmt("%.17g", json_real_value(v));
	if (json_is_boolean(v))
		return dp_xstrdup(json_is_true(v) ? "true" : "false");
	return NULL;
}

static const char *
first_key(json_t *fields, const char *const *names)
{
	for (; *names; names++)
		if (json_object_get(fields, *names))
			return *names;
	return NULL;
}

/* A connection given as fields (registry file entry or vault secret). */
static int
from_fields(struct dp_conn *c, json_t *fields, char *err, size_t errlen)
{
	static const char *const url_keys[] = {"url", "uri", NULL};
	static const char *const user_keys[] = {"user", "username", "login", NULL};
	static const char *const broker_keys[] = {"brokers", "bootstrap_servers", "bootstrap.servers", NULL};
	static const char *const known[] = {"url",
	                                    "uri",
	                                    "type",
	                                    "host",
	                                    "port",
	                                    "user",
	                                    "username",
	                                    "login",
	                                    "password",
	                                    "database",
	                                    "brokers",
	                                    "bootstrap_servers",
	                                    "bootstrap.servers",
	                                    NULL};
	if (!json_is_object(fields)) {
		snprintf(err, errlen, "connection %s (%s): expected a mapping of settings", c->id, c->origin);
		return -1;
	}
	const char *k = first_key(fields, url_keys);
	if (k) {
		char *url = scalar_text(json_object_get(fields, k));
		int rc = url ? parse_url(c, url, err, errlen) : -1;
		if (!url)
			snprintf(err, errlen, "connection %s (%s): %s must be a string", c->id, c->origin, k);
		free(url);
		if (rc)
			return -1;
	} else {
		c->kind = scalar_text(json_object_get(fields, "type"));
		if (!c->kind || (strcmp(c->kind, "mssql") && strcmp(c->kind, "kafka") && strcmp(c->kind, "postgres"))) {
			snprintf(err, errlen, "connection %s (%s): needs url, or type mssql|kafka|postgres", c->id,
			         c->origin);
			return -1;
		}
		const char *bk = first_key(fields, broker_keys);
		char *host = scalar_text(json_object_get(fields, "host"));
		if (!strcmp(c->kind, "kafka")) {
			c->brokers = bk ? scalar_text(json_object_get(fields, bk)) : NULL;
			free(host);
			if (!c->brokers) {
				snprintf(err, errlen, "connection %s (%s): kafka needs brokers", c->id, c->origin);
				return -1;
			}
		} else {
			char *port = scalar_text(json_object_get(fields, "port"));
			char *hp = host ? (port ? dp_strfmt("%s:%s", host, port) : dp_xstrdup(host)) : dp_xstrdup("");
			int rc = set_host_port(c, hp, strlen(hp), err, errlen);
			free(host);
			free(port);
			free(hp);
			if (rc)
				return -1;
		}
		const char *uk = first_key(fields, user_keys);
		if (uk)
			c->user = scalar_text(json_object_get(fields, uk));
		c->password = scalar_text(json_object_get(fields, "password"));
		c->database = scalar_text(json_object_get(fields, "database"));
		if (!strcmp(c->kind, "kafka"))
			kafka_userinfo(c);
	}
	/* Every other scalar setting is a parameter (sasl_*, ssl_*, client_id, ...). */
	const char *name;
	json_t *v;
	json_object_foreach(fields, name, v) {
		int is_known = 0;
		for (const char *const *p = known; *p; p++)
			is_known |= !strcmp(*p, name);
		if (is_known)
			continue;
		char *text = scalar_text(v);
		if (!text) {
			snprintf(err, errlen, "connection %s (%s): setting %s must be a scalar", c->id, c->origin,
			         name);
			return -1;
		}
		json_object_set_new(c->params, name, json_string(text));
		free(text);
	}
	return 0;
}

static int
resolve_env(struct dp_conn *c, char *err, size_t errlen)
{
	char *var = dp_conn_env_name(c->id);
	c->origin = dp_strfmt("env %s", var);
	const char *url = getenv(var);
	free(var);
	if (!url || !*url) {
		snprintf(err, errlen, "connection %s: %s is not set (it holds the connection URL)", c->id,
		         c->origin + 4);
		return DP_EXIT_CONNECTION;
	}
	return parse_url(c, url, err, errlen) ? DP_EXIT_USAGE : 0;
}

static char *
find_registry_file(void)
{
	if (registry_path_option)
		return dp_xstrdup(registry_path_option);
	const char *env = getenv("DPONE_REGISTRY");
	if (env && *env)
		return dp_xstrdup(env);
	char *candidates[3] = {dp_xstrdup(".dpone/connections.yaml"), NULL, dp_xstrdup("/etc/dpone/connections.yaml")};
	const char *home = getenv("HOME");
	if (home)
		candidates[1] = dp_strfmt("%s/.config/dpone/connections.yaml", home);
	char *found = NULL;
	for (int i = 0; i < 3; i++) {
		if (!found && candidates[i] && access(candidates[i], F_OK) == 0)
			found = candidates[i];
		else
			free(candidates[i]);
	}
	return found;
}

static int
resolve_file(struct dp_conn *c, char *err, size_t errlen)
{
	char *path = find_registry_file();
	if (!path) {
		snprintf(err, errlen,
		         "connection %s: no registry file (use --registry, DPONE_REGISTRY, "
		         ".dpone/connections.yaml or ~/.config/dpone/connections.yaml)",
		         c->id);
		return DP_EXIT_CONNECTION;
	}
	c->origin = dp_strfmt("file %s", path);
	if (access(path, F_OK) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return DP_EXIT_CONNECTION;
	}
	if (dp_check_secret_file(path, "registry", err, errlen) < 0) {
		free(path);
		return DP_EXIT_USAGE;
	}
	json_t *marks = json_object();
	json_t *doc = dp_yaml_load_file(path, marks, err, errlen);
	int rc = 0;
	json_t *conns = json_object_get(doc, "connections");
	if (!doc) {
		rc = DP_EXIT_USAGE;
	} else if (!json_is_object(conns)) {
		snprintf(err, errlen, "%s: expected a top-level 'connections:' mapping", path);
		rc = DP_EXIT_USAGE;
	} else if (!json_object_get(conns, c->id)) {
		snprintf(err, errlen, "%s: no connection named %s", path, c->id);
		rc = DP_EXIT_CONNECTION;
	} else if (from_fields(c, json_object_get(conns, c->id), err, errlen)) {
		rc = DP_EXIT_USAGE;
	}
	json_decref(doc);
	json_decref(marks);
	free(path);
	return rc;
}

static int
resolve_vault(struct dp_conn *c, char *err, size_t errlen)
{
	const char *mount = getenv("DPONE_VAULT_MOUNT");
	const char *prefix = getenv("DPONE_VAULT_PREFIX");
	if (!mount || !*mount)
		mount = "secret";
	if (!prefix)
		prefix = "dpone/connections";
	char *path = *prefix ? dp_strfmt("%s/%s", prefix, c->id) : dp_xstrdup(c->id);
	c->origin = dp_strfmt("vault %s/data/%s", mount, path);
	int code = 0;
	json_t *data = dp_vault_read(mount, path, &code, err, errlen);
	free(path);
	if (!data)
		return code ? code : DP_EXIT_CONNECTION;
	int rc = from_fields(c, data, err, errlen) ? DP_EXIT_USAGE : 0;
	json_decref(data);
	return rc;
}

int
dp_conn_resolve(const char *id, const char *connection_type, const char *kind, struct dp_conn *out, char *err,
                size_t errlen)
{
	memset(out, 0, sizeof *out);
	out->id = dp_xstrdup(id);
	out->params = json_object();
	int rc;
	if (!strcmp(connection_type, "env"))
		rc = resolve_env(out, err, errlen);
	else if (!strcmp(connection_type, "file"))
		rc = resolve_file(out, err, errlen);
	else if (!strcmp(connection_type, "vault"))
		rc = resolve_vault(out, err, errlen);
	else {
		snprintf(err, errlen, "connection %s: unknown connection_type %s", id, connection_type);
		rc = DP_EXIT_USAGE;
	}
	if (rc == 0 && kind && strcmp(out->kind, kind)) {
		snprintf(err, errlen, "connection %s (%s) is a %s connection, but a %s one is needed here", id,
		         out->origin, out->kind, kind);
		rc = DP_EXIT_USAGE;
	}
	if (rc) {
		/* parse failures return -1 from helpers: map to usage */
		if (rc < 0)
			rc = DP_EXIT_USAGE;
		dp_conn_free(out);
	}
	return rc;
}
