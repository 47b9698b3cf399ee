/* util.c: small helpers: strings, numbers, time, temporary and durable files. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dpone.h"

size_t
dp_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1; /* not worth suggesting anything that long */
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			if (up + 1 < best)
				best = up + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *
dp_did_you_mean(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (; *candidates; candidates++) {
		size_t d = dp_edit_distance(word, *candidates);
		if (d < best_d) {
			best_d = d;
			best = *candidates;
		}
	}
	/* Close enough to be a typo: at most a third of the word wrong. */
	size_t limit = strlen(word) / 3 + 1;
	return best_d <= limit ? best : NULL;
}

int
dp_parse_ll(const char *s, long long *out)
{
	char *end;
	if (!*s)
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

long long
dp_duration_seconds(const char *s)
{
	char *end;
	long long n = strtoll(s, &end, 10);
	long long unit = !strcmp(end, "s")   ? 1
	                 : !strcmp(end, "m") ? 60
	                 : !strcmp(end, "h") ? 3600
	                 : !strcmp(end, "d") ? 86400
	                                     : 0;
	return end == s || n < 0 || !unit ? -1 : n * unit;
}

int
dp_timestamp_utc(const char *text, long long *seconds)
{
	struct tm tm = {0};
	int oh = 0, om = 0;
	char sign = 0;
	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	           &tm.tm_sec) < 3)
		return -1;
	const char *zone = strlen(text) > 10 ? strpbrk(text + 10, "+-Z") : NULL;
	if (zone && *zone != 'Z' && sscanf(zone, "%c%2d:%2d", &sign, &oh, &om) != 3)
		sign = 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*seconds = (long long)timegm(&tm) - (sign == '+' ? 1 : sign == '-' ? -1 : 0) * (oh * 3600LL + om * 60);
	return 0;
}

int
dp_all_digits(const char *p, const char *end)
{
	if (p >= end)
		return 0;
	for (; p < end; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

FILE *
dp_tmpfile(const char *prefix)
{
	const char *dir = getenv("TMPDIR");
	char *path = dp_strfmt("%s/%s.123456", dir && *dir ? dir : "/tmp", prefix);
	memset(path + strlen(path) - 6, 'X', 6); /* mkstemp's template */
	int fd = mkstemp(path);
	if (fd >= 0)
		unlink(path); /* gone when closed, whatever happens to the process */
	free(path);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "w+");
	if (!f)
		close(fd);
	return f;
}

/* All n bytes to fd, through short writes and EINTR; 0, or -1 with errno. */
int
dp_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t put = write(fd, p, n);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		p += put;
		n -= (size_t)put;
	}
	return 0;
}

/* Written to PATH.tmp, fsynced, renamed over PATH, and the directory
 * fsynced: whoever finds PATH finds all of it, even after a crash. */
int
dp_write_file_durably(const char *path, const void *data, size_t len)
{
	char *tmp = dp_strfmt("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int ok = fd >= 0 && !dp_write_all(fd, data, len) && !fsync(fd);
	if (fd >= 0 && close(fd) < 0)
		ok = 0;
	ok = ok && !rename(tmp, path);
	int saved = errno;
	if (!ok)
		unlink(tmp);
	free(tmp);
	if (ok)
		dp_fsync_dir(path);
	errno = saved;
	return ok ? 0 : -1;
}

void
dp_fsync_dir(const char *path)
{
	char *dir = dp_xstrdup(path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(dir);
}

void *
dp_library_open(const char *what, const char *const *sonames, char *err, size_t errlen)
{
	for (const char *const *name = sonames; *name; name++) {
		void *lib = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
		if (lib)
			return lib;
		snprintf(err, errlen, "cannot load %s (%s): %s", what, *name, dlerror());
	}
	return NULL;
}

void *
dp_library_symbol(void *lib, const char *what, const char *name, char *err, size_t errlen)
{
	void *sym = dlsym(lib, name);
	if (!sym)
		snprintf(err, errlen, "%s has no %s: %s", what, name, dlerror());
	return sym;
}

int
dp_mkdir_p(const char *dir, mode_t mode)
{
	char *path = dp_xstrdup(dir);
	int rc = 0;
	/* Each parent in turn (an existing one is fine), then dir itself. */
	for (char *p = path + 1; *p && !rc; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			rc = -1;
		*p = '/';
	}
	if (!rc && mkdir(path, mode) < 0 && errno != EEXIST)
		rc = -1;
	int saved = errno;
	free(path);
	errno = saved;
	return rc;
}
