/*
 * vault.c: read one KV version 2 secret from HashiCorp Vault or OpenBao.
 *
 * GET $VAULT_ADDR/v1/<mount>/data/<path> with the token in X-Vault-Token;
 * the answer is {"data": {"data": {...}, "metadata": {...}}}. The token is
 * read from VAULT_TOKEN, VAULT_TOKEN_FILE or ~/.vault-token and only ever
 * sent in that header.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpone.h"

const char *
dp_vault_curl_version(char *err, size_t errlen)
{
	return dp_http_library_version(err, errlen);
}

/* The token, trimmed; the caller frees it. NULL if there is none, or
 * with why in err when the file holding it is not private. */
static char *
read_token(char *err, size_t errlen)
{
	const char *env = getenv("VAULT_TOKEN");
	if (env && *env)
		return dp_xstrdup(env);
	const char *file = getenv("VAULT_TOKEN_FILE");
	char *path = file && *file    ? dp_xstrdup(file)
	             : getenv("HOME") ? dp_strfmt("%s/.vault-token", getenv("HOME"))
	                              : NULL;
	if (!path || access(path, F_OK) < 0) {
		free(path);
		return NULL;
	}
	int unsafe = dp_check_secret_file(path, "Vault token file", err, errlen) < 0;
	FILE *fp = unsafe ? NULL : fopen(path, "r");
	free(path);
	if (!fp)
		return NULL;
	char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return *buf ? dp_xstrdup(buf) : NULL;
}

static json_t *
parse_answer(struct dp_http_answer *a, const char *url_path, int *code, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(a->body ? a->body : "", a->len, 0, &jerr);
	json_t *data = json_object_get(json_object_get(doc, "data"), "data");
	if (!json_is_object(data)) {
		snprintf(err, errlen, "vault %s: answer is not a KV v2 secret (no data.data object)", url_path);
		json_decref(doc);
		*code = DP_EXIT_CONNECTION;
		return NULL;
	}
	json_incref(data);
	json_decref(doc);
	return data;
}

json_t *
dp_vault_read(const char *mount, const char *path, int *code, char *err, size_t errlen)
{
	*code = DP_EXIT_CONNECTION;
	const char *addr = getenv("VAULT_ADDR");
	if (!addr || !*addr) {
		snprintf(err, errlen, "vault: VAULT_ADDR is not set");
		return NULL;
	}
	err[0] = '\0';
	char *token = read_token(err, errlen);
	if (!token) {
		if (!err[0])
			snprintf(err, errlen, "vault: no token (set VAULT_TOKEN, VAULT_TOKEN_FILE or ~/.vault-token)");
		else
			*code = DP_EXIT_USAGE;
		return NULL;
	}
	char *epath = dp_http_escape_path(path);
	char *emount = dp_http_escape_path(mount);
	if (!epath || !emount) {
		snprintf(err, errlen, "vault: %s", "libcurl could not be loaded (see dpone doctor)");
		memset(token, 0, strlen(token));
		free(token);
		free(epath);
		free(emount);
		return NULL;
	}
	size_t alen = strlen(addr);
	char *url = dp_strfmt("%.*s/v1/%s/data/%s", (int)(alen && addr[alen - 1] == '/' ? alen - 1 : alen), addr,
	                      emount, epath);
	char *url_path = dp_strfmt("%s/data/%s", mount, path);
	char *token_header = dp_strfmt("X-Vault-Token: %s", token);
	const char *ns = getenv("VAULT_NAMESPACE");
	char *ns_header = ns && *ns ? dp_strfmt("X-Vault-Namespace: %s", ns) : NULL;
	const char *headers[] = {token_header, ns_header, NULL};
	struct dp_http_request rq = {.url = url, .headers = headers, .cacert = getenv("VAULT_CACERT")};
	struct dp_http_answer a;
	char why[512];
	json_t *data = NULL;
	if (dp_http_request(&rq, &a, why, sizeof why) < 0)
		snprintf(err, errlen, "vault: cannot reach VAULT_ADDR: %s", why);
	else if (a.status == 404)
		snprintf(err, errlen, "vault %s: no such secret (HTTP 404)", url_path);
	else if (a.status == 403)
		snprintf(err, errlen, "vault %s: permission denied (HTTP 403): check the token and its policy",
		         url_path);
	else if (a.status != 200)
		snprintf(err, errlen, "vault %s: HTTP %ld", url_path, a.status);
	else
		data = parse_answer(&a, url_path, code, err, errlen);
	/* Wipe what held the token before freeing it. */
	memset(token_header, 0, strlen(token_header));
	memset(token, 0, strlen(token));
	free(token_header);
	free(token);
	free(ns_header);
	free(url);
	free(url_path);
	free(epath);
	free(emount);
	dp_http_answer_free(&a);
	return data;
}
