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

/* libcurl is called through the pointers below: no type-checking macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "dpone.h"

/* libcurl is opened on the first Vault read (see dp_library_open). */
#define CURL_FUNCTIONS(X)      \
	X(curl_global_init)    \
	X(curl_easy_init)      \
	X(curl_easy_escape)    \
	X(curl_free)           \
	X(curl_slist_append)   \
	X(curl_easy_setopt)    \
	X(curl_easy_perform)   \
	X(curl_easy_getinfo)   \
	X(curl_easy_strerror)  \
	X(curl_slist_free_all) \
	X(curl_easy_cleanup)   \
	X(curl_version_info)

static struct {
#define CURL_POINTER(f) __typeof__(f) *f;
	CURL_FUNCTIONS(CURL_POINTER)
} cu;

/* 0 once libcurl is loaded and initialised, else -1 with why in err (a
 * later call tries again). */
static int
load_curl(char *err, size_t errlen)
{
	static const char *const sonames[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
	static int loaded;
	if (loaded)
		return 0;
	char why[256];
	void *lib = dp_library_open("libcurl", sonames, why, sizeof why);
#define CURL_RESOLVE(f)                                                                                \
	if (lib && !(cu.f = (__typeof__(cu.f))dp_library_symbol(lib, "libcurl", #f, why, sizeof why))) \
		lib = NULL;
	CURL_FUNCTIONS(CURL_RESOLVE)
	if (lib && cu.curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(why, sizeof why, "libcurl failed to initialise");
		lib = NULL;
	}
	if (!lib) {
		snprintf(err, errlen, "vault: %s", why);
		return -1;
	}
	loaded = 1;
	return 0;
}

const char *
dp_vault_curl_version(char *err, size_t errlen)
{
	return load_curl(err, errlen) < 0 ? NULL : cu.curl_version_info(CURLVERSION_NOW)->version;
}

#define MAX_ANSWER (1u << 20)

struct answer {
	char *buf;
	size_t len;
	int too_big;
};

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t add = size * n;
	if (a->len + add > MAX_ANSWER) {
		a->too_big = 1;
		return 0;
	}
	a->buf = dp_xrealloc(a->buf, a->len + add + 1);
	memcpy(a->buf + a->len, p, add);
	a->len += add;
	a->buf[a->len] = '\0';
	return add;
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

static char *
escape_path(CURL *curl, const char *path)
{
	/* Escape each segment but keep the slashes between them. */
	char *out = dp_xstrdup("");
	const char *p = path;
	while (*p) {
		size_t n = strcspn(p, "/");
		char *seg = cu.curl_easy_escape(curl, p, (int)n);
		char *next = dp_strfmt("%s%s%s", out, *out ? "/" : "", seg ? seg : "");
		cu.curl_free(seg);
		free(out);
		out = next;
		p += n;
		while (*p == '/')
			p++;
	}
	return out;
}

static json_t *
parse_answer(struct answer *a, const char *url_path, int *code, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(a->buf ? a->buf : "", a->len, 0, &jerr);
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
	if (load_curl(err, errlen) < 0) {
		memset(token, 0, strlen(token));
		free(token);
		return NULL;
	}
	CURL *curl = cu.curl_easy_init();
	if (!curl)
		dp_die(DP_EXIT_FAILURE, "vault: cannot start libcurl");
	char *epath = escape_path(curl, path);
	char *emount = escape_path(curl, mount);
	size_t alen = strlen(addr);
	char *url = dp_strfmt("%.*s/v1/%s/data/%s", (int)(alen && addr[alen - 1] == '/' ? alen - 1 : alen), addr,
	                      emount, epath);
	char *url_path = dp_strfmt("%s/data/%s", mount, path);
	char *token_header = dp_strfmt("X-Vault-Token: %s", token);
	struct curl_slist *headers = cu.curl_slist_append(NULL, token_header);
	const char *ns = getenv("VAULT_NAMESPACE");
	char *ns_header = ns && *ns ? dp_strfmt("X-Vault-Namespace: %s", ns) : NULL;
	if (ns_header)
		headers = cu.curl_slist_append(headers, ns_header);
	struct answer a = {0};
	char curl_err[CURL_ERROR_SIZE] = "";
	cu.curl_easy_setopt(curl, CURLOPT_URL, url);
	cu.curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	cu.curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	cu.curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
	cu.curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	cu.curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	cu.curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	cu.curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	cu.curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	const char *cacert = getenv("VAULT_CACERT");
	if (cacert && *cacert)
		cu.curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);
	CURLcode rc = cu.curl_easy_perform(curl);
	long status = 0;
	cu.curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	json_t *data = NULL;
	if (a.too_big)
		snprintf(err, errlen, "vault %s: answer larger than %u bytes", url_path, MAX_ANSWER);
	else if (rc != CURLE_OK)
		snprintf(err, errlen, "vault: cannot reach VAULT_ADDR: %s",
		         curl_err[0] ? curl_err : cu.curl_easy_strerror(rc));
	else if (status == 404)
		snprintf(err, errlen, "vault %s: no such secret (HTTP 404)", url_path);
	else if (status == 403)
		snprintf(err, errlen, "vault %s: permission denied (HTTP 403): check the token and its policy",
		         url_path);
	else if (status != 200)
		snprintf(err, errlen, "vault %s: HTTP %ld", url_path, status);
	else
		data = parse_answer(&a, url_path, code, err, errlen);
	/* Wipe what held the token before freeing it. */
	memset(token_header, 0, strlen(token_header));
	memset(token, 0, strlen(token));
	cu.curl_slist_free_all(headers);
	cu.curl_easy_cleanup(curl);
	free(token_header);
	free(token);
	free(ns_header);
	free(url);
	free(url_path);
	free(epath);
	free(emount);
	free(a.buf);
	return data;
}
