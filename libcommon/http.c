/*
 * http.c: one HTTP request through libcurl, opened on first use (see
 * dp_library_open): Vault reads, Pushgateway pushes and OpenLineage events
 * go through here. Answers are bounded (1 MiB); credentials go only into
 * the Authorization header libcurl builds, never into the URL kept for
 * messages.
 */
#include <string.h>

/* libcurl is called through the pointers below: no type-checking macros. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "dpone.h"

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
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	loaded = 1;
	return 0;
}

const char *
dp_http_library_version(char *err, size_t errlen)
{
	return load_curl(err, errlen) < 0 ? NULL : cu.curl_version_info(CURLVERSION_NOW)->version;
}

#define MAX_ANSWER (1u << 20)

static size_t
collect(char *p, size_t size, size_t n, void *arg)
{
	struct dp_http_answer *a = arg;
	size_t add = size * n;
	if (a->len + add > MAX_ANSWER) {
		a->too_big = 1;
		return 0;
	}
	a->body = dp_xrealloc(a->body, a->len + add + 1);
	memcpy(a->body + a->len, p, add);
	a->len += add;
	a->body[a->len] = '\0';
	return add;
}

char *
dp_http_escape_path(const char *path)
{
	char err[256];
	if (load_curl(err, sizeof err) < 0)
		return NULL;
	CURL *curl = cu.curl_easy_init();
	if (!curl)
		return NULL;
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
	cu.curl_easy_cleanup(curl);
	return out;
}

int
dp_http_request(const struct dp_http_request *rq, struct dp_http_answer *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof *a);
	if (load_curl(err, errlen) < 0)
		return -1;
	CURL *curl = cu.curl_easy_init();
	if (!curl) {
		snprintf(err, errlen, "cannot start libcurl");
		return -1;
	}
	struct curl_slist *headers = NULL;
	for (size_t i = 0; rq->headers && rq->headers[i]; i++)
		headers = cu.curl_slist_append(headers, rq->headers[i]);
	char curl_err[CURL_ERROR_SIZE] = "";
	cu.curl_easy_setopt(curl, CURLOPT_URL, rq->url);
	cu.curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	cu.curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	cu.curl_easy_setopt(curl, CURLOPT_WRITEDATA, a);
	cu.curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	cu.curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)(rq->connect_timeout ? rq->connect_timeout : 10));
	cu.curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)(rq->timeout ? rq->timeout : 30));
	cu.curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	cu.curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rq->method)
		cu.curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, rq->method);
	if (rq->body) {
		cu.curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->body);
		cu.curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
	}
	if (rq->user) {
		cu.curl_easy_setopt(curl, CURLOPT_USERNAME, rq->user);
		cu.curl_easy_setopt(curl, CURLOPT_PASSWORD, rq->password ? rq->password : "");
	}
	if (rq->cacert && *rq->cacert)
		cu.curl_easy_setopt(curl, CURLOPT_CAINFO, rq->cacert);
	CURLcode rc = cu.curl_easy_perform(curl);
	long status = 0;
	cu.curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	a->status = status;
	cu.curl_slist_free_all(headers);
	cu.curl_easy_cleanup(curl);
	if (a->too_big) {
		snprintf(err, errlen, "answer larger than %u bytes", MAX_ANSWER);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_err[0] ? curl_err : cu.curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

void
dp_http_answer_free(struct dp_http_answer *a)
{
	free(a->body);
	a->body = NULL;
	a->len = 0;
}
