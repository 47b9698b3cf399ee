/* err.c: one-line diagnostics and checked allocation, after sbase's eprintf. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
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

/* One line on stderr, written with a single write(2): stages of one
 * pipeline share stderr, and their lines must not interleave mid-line.
 * No allocation (it reports malloc failing too); a line is cut at 4 KiB. */
static void
vwarn(const char *fmt, va_list ap)
{
	int saved = errno;
	char line[4096];
	size_t cap = sizeof line - 1; /* room kept for the newline */
	int n = snprintf(line, cap, "%s: ", dp_progname);
	size_t len = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	n = vsnprintf(line + len, cap - len, fmt, ap);
	len = n < 0 ? len : len + (size_t)n < cap ? len + (size_t)n : cap - 1;
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
	vwarn(fmt, ap);
	va_end(ap);
}

static void (*die_cleanup)(void);

void
dp_on_die(void (*cleanup)(void))
{
	die_cleanup = cleanup;
}

/* An error exit: say why, undo what was staged, and leave at once. _exit,
 * not exit: nothing half-written on stdout may be flushed after the
 * message, and a process dying on purpose has no leaks worth reporting. */
void
dp_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	if (die_cleanup)
		die_cleanup();
	fflush(stderr);
	/* Whatever failed after SIGINT/SIGTERM failed because of it. */
	_exit(dp_interrupted && code != DP_EXIT_USAGE ? DP_EXIT_INTERRUPTED : code);
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
