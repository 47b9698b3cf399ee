/* err.c: one-line diagnostics and checked allocation, after sbase's eprintf. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dpone.h"

const char *dp_progname = "dpone";

static const struct {
	int code;
	const char *label;
} exit_labels[] = {
#define X(name, num, label, text) {num, label},
#include "exit_codes.def"
#undef X
};

const char *
dp_exit_label(int code)
{
	for (size_t i = 0; i < sizeof(exit_labels) / sizeof(exit_labels[0]); i++)
		if (exit_labels[i].code == code)
			return exit_labels[i].label;
	return "unknown";
}

void
dp_setprogname(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');
	dp_progname = slash ? slash + 1 : argv0;
}

/* The log format (text or json) and what each JSON line names. */
static struct {
	int json;
	char job[256], run_id[128];
} log_ctx = {-1, "", ""};

void
dp_log_set_format(const char *format)
{
	log_ctx.json = format && !strcmp(format, "json");
}

void
dp_log_set_job(const char *job)
{
	snprintf(log_ctx.job, sizeof log_ctx.job, "%s", job ? job : "");
}

void
dp_log_set_run_id(const char *run_id)
{
	snprintf(log_ctx.run_id, sizeof log_ctx.run_id, "%s", run_id ? run_id : "");
}

int
dp_log_json(void)
{
	if (log_ctx.json < 0) {
		const char *env = getenv("DPONE_LOG_FORMAT");
		log_ctx.json = env && !strcmp(env, "json");
		if (!log_ctx.run_id[0])
			dp_log_set_run_id(getenv("DPONE_RUN_ID"));
	}
	return log_ctx.json;
}

/* Append s (n bytes) to out as JSON string content; no allocation. */
static size_t
json_escape_into(char *out, size_t at, size_t cap, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n && at + 7 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[at++] = '\\';
			out[at++] = (char)c;
		} else if (c < 0x20) {
			out[at++] = '\\';
			out[at++] = 'u';
			out[at++] = '0';
			out[at++] = '0';
			out[at++] = hex[c >> 4];
			out[at++] = hex[c & 15];
		} else {
			out[at++] = (char)c;
		}
	}
	return at;
}

static size_t
json_member(char *out, size_t at, size_t cap, const char *name, const char *value, size_t n)
{
	int k = snprintf(out + at, cap > at ? cap - at : 0, ",\"%s\":\"", name);
	at = k < 0 || at + (size_t)k >= cap ? at : at + (size_t)k;
	at = json_escape_into(out, at, cap, value, n);
	if (at + 1 < cap)
		out[at++] = '"';
	return at;
}

/* "FILE:LINE:COL: key.path: ..." (a manifest error) or "stdin:LINE: ..." (a
 * stream error): the fields a log search wants, added to the JSON line. */
static size_t
json_where(char *out, size_t at, size_t cap, const char *msg)
{
	const char *c1 = strchr(msg, ':');
	if (!c1 || c1 == msg || strchr(" \t", *msg))
		return at;
	char *end;
	long line = strtol(c1 + 1, &end, 10);
	if (end == c1 + 1 || *end != ':')
		return at;
	if (!strncmp(msg, "stdin", (size_t)(c1 - msg)) && end[1] == ' ') {
		int k = snprintf(out + at, cap > at ? cap - at : 0, ",\"stream_line\":%ld", line);
		return k < 0 || at + (size_t)k >= cap ? at : at + (size_t)k;
	}
	long col = strtol(end + 1, &end, 10);
	if (*end != ':' || end[1] != ' ')
		return at;
	const char *key = end + 2, *key_end = strstr(key, ": ");
	at = json_member(out, at, cap, "file", msg, (size_t)(c1 - msg));
	int k = snprintf(out + at, cap > at ? cap - at : 0, ",\"line\":%ld,\"column\":%ld", line, col);
	at = k < 0 || at + (size_t)k >= cap ? at : at + (size_t)k;
	if (key_end && !memchr(key, ' ', (size_t)(key_end - key)))
		at = json_member(out, at, cap, "key", key, (size_t)(key_end - key));
	return at;
}

/* One JSON object: time, level, stage, job, run_id, message, and what the
 * message names (exit_code for an error exit). */
static size_t
json_line(char *out, size_t cap, const char *level, int exit_code, const char *msg)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t w = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + w, sizeof when - w, ".%03ldZ", ts.tv_nsec / 1000000);
	int k = snprintf(out, cap, "{\"time\":\"%s\",\"level\":\"%s\"", when, level);
	size_t at = k < 0 ? 0 : (size_t)k;
	at = json_member(out, at, cap, "stage", dp_progname, strlen(dp_progname));
	if (log_ctx.job[0])
		at = json_member(out, at, cap, "job", log_ctx.job, strlen(log_ctx.job));
	if (log_ctx.run_id[0])
		at = json_member(out, at, cap, "run_id", log_ctx.run_id, strlen(log_ctx.run_id));
	at = json_member(out, at, cap, "message", msg, strlen(msg));
	at = json_where(out, at, cap, msg);
	if (exit_code >= 0) {
		k = snprintf(out + at, cap > at ? cap - at : 0, ",\"exit_code\":%d,\"exit\":\"%s\"", exit_code,
		             dp_exit_label(exit_code));
		at = k < 0 || at + (size_t)k >= cap ? at : at + (size_t)k;
	}
	if (at + 1 < cap)
		out[at++] = '}';
	return at;
}

/* One line on stderr, written with a single write(2): stages of one
 * pipeline share stderr, and their lines must not interleave mid-line.
 * No allocation (it reports malloc failing too); a line is cut at 4 KiB.
 * exit_code: the status an error exit leaves with, or -1. */
static void
vwarn(int exit_code, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[4096], line[8192];
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	if (n < 0)
		msg[0] = '\0';
	size_t len;
	if (dp_log_json()) {
		const char *text = msg, *level = exit_code >= 0 && exit_code != DP_EXIT_IDLE ? "error" : "info";
		if (!strncmp(msg, "warning: ", 9)) {
			text = msg + 9;
			level = "warning";
		}
		len = json_line(line, sizeof line - 1, level, exit_code, text);
	} else {
		n = snprintf(line, sizeof line - 1, "%s: %s", dp_progname, msg);
		len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
	}
	line[len++] = '\n';
	fflush(stderr);
	(void)dp_write_all(2, line, len);
	errno = saved;
}

void
dp_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(-1, fmt, ap);
	va_end(ap);
}

static void (*die_cleanup)(void);
static int (*die_classify)(int code);

void
dp_on_die(void (*cleanup)(void))
{
	die_cleanup = cleanup;
}

void
dp_on_die_classify(int (*classify)(int code))
{
	die_classify = classify;
}

/* The status an error exit leaves with: 130 once interrupted (whatever
 * failed then failed because of it), else the command's classification
 * (dpone-extract: a transient source failure is 12, not 4). */
static int
exit_status(int code)
{
	if (dp_interrupted && code != DP_EXIT_USAGE)
		return DP_EXIT_INTERRUPTED;
	return die_classify ? die_classify(code) : code;
}

/* An error exit: say why, undo what was staged, and leave at once. _exit,
 * not exit: nothing half-written on stdout may be flushed after the
 * message, and a process dying on purpose has no leaks worth reporting. */
void
dp_die(int code, const char *fmt, ...)
{
	code = exit_status(code);
	va_list ap;
	va_start(ap, fmt);
	vwarn(code, fmt, ap);
	va_end(ap);
	if (die_cleanup)
		die_cleanup();
	fflush(stderr);
	_exit(code);
}

void *
dp_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		dp_die(DP_EXIT_FAILURE, "malloc: %s", strerror(errno));
	return p;
}

void *
dp_xcalloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (!p)
		dp_die(DP_EXIT_FAILURE, "calloc: %s", strerror(errno));
	return p;
}

void *
dp_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		dp_die(DP_EXIT_FAILURE, "realloc: %s", strerror(errno));
	return p;
}

char *
dp_xstrdup(const char *s)
{
	return dp_xstrndup(s, strlen(s));
}

char *
dp_xstrndup(const char *s, size_t n)
{
	char *p = dp_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
dp_vstrfmt(const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	if (n < 0)
		dp_die(DP_EXIT_FAILURE, "vsnprintf: %s", strerror(errno));
	char *s = dp_xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, again);
	va_end(again);
	return s;
}

char *
dp_strfmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = dp_vstrfmt(fmt, ap);
	va_end(ap);
	return s;
}

int
dp_fshut(FILE *fp, const char *name)
{
	int ret = 0;
	/* fflush before ferror: buffered data may fail to go out only now. */
	if (fflush(fp) && !ret) {
		dp_warn("%s: write error: %s", name, strerror(errno));
		ret = -1;
	}
	if (ferror(fp) && !ret) {
		dp_warn("%s: write error", name);
		ret = -1;
	}
	if (fclose(fp) && !ret) {
		dp_warn("%s: close error: %s", name, strerror(errno));
		ret = -1;
	}
	return ret;
}

void
dp_exit_flushing_stdout(int code)
{
	if (dp_fshut(stdout, "stdout") && code == DP_EXIT_OK)
		code = DP_EXIT_FAILURE;
	exit(code);
}
