/*
 * parallel.c: source.options.parallelism N. Each range of the boundary is
 * read by a child process on its own connection (read_range, given by the
 * caller) and written as rows to a pipe, then an end line with its count
 * and watermark. The parent copies whole lines from the pipes into the one
 * stream as they come, so a range's rows keep their order (and a key lives
 * in one range), and combines the ends. Processes rather than threads:
 * db-lib's handlers, dp_die and the bcp copy are per process, and a range
 * that fails takes only its child down; the parent then stops the others
 * and fails the run with the range's exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extract.h"

/* One range's child: its pipe, the partial line read from it, its end. */
struct range_child {
	pid_t pid;        /* 0 once reaped */
	int fd;           /* the pipe's read end, -1 at EOF */
	struct dp_buf in; /* bytes read, not yet a whole line; owned */
	json_t *end;      /* the range's end message body, owned; NULL until read */
};

struct merge {
	struct range_child *kids; /* n of them, owned */
	int n;
	struct row_writer *rw; /* borrowed: where the rows go */
	const char *sql_type;  /* the watermark column's, for comparing */
	json_t *low, *high;    /* the run's watermark so far, owned */
};

/* Stop every child still running and reap it. */
static void
stop_children(struct merge *mg)
{
	for (int i = 0; i < mg->n; i++)
		if (mg->kids[i].pid > 0)
			kill(mg->kids[i].pid, SIGTERM);
	for (int i = 0; i < mg->n; i++)
		if (mg->kids[i].pid > 0) {
			while (waitpid(mg->kids[i].pid, NULL, 0) < 0 && errno == EINTR)
				;
			mg->kids[i].pid = 0;
		}
}

static _Noreturn void __attribute__((format(printf, 3, 4))) merge_die(struct merge *mg, int code, const char *fmt, ...)
{
	stop_children(mg);
	dp_writer_flush(mg->rw->w);
	va_list ap;
	va_start(ap, fmt);
	char *msg = dp_vstrfmt(fmt, ap);
	va_end(ap);
	dp_die(code, "%s", msg);
}

/* Keep the lower low and the higher high of a range's watermark. */
static void
merge_watermark(struct merge *mg, json_t *wm)
{
	json_t *low = json_object_get(wm, "low"), *high = json_object_get(wm, "high");
	if (low && !json_is_null(low) && (!mg->low || dp_compare_watermarks(low, mg->low, mg->sql_type) < 0)) {
		json_decref(mg->low);
		mg->low = json_incref(low);
	}
	if (high && !json_is_null(high) && (!mg->high || dp_compare_watermarks(high, mg->high, mg->sql_type) > 0)) {
		json_decref(mg->high);
		mg->high = json_incref(high);
	}
}

/* One whole line of range i: a row for the stream, or the range's end. */
static void
take_line(struct merge *mg, int i, const char *line, size_t len)
{
	struct range_child *k = &mg->kids[i];
	if (len && line[0] == '{') {
		if (k->end)
			merge_die(mg, DP_EXIT_FAILURE, "range %d/%d wrote a row after its end", i + 1, mg->n);
		if (dp_writer_line(mg->rw->w, line, len))
			merge_die(mg, DP_EXIT_FAILURE, "%s", dp_writer_error(mg->rw->w));
		mg->rw->rows++;
		return;
	}
	json_t *msg = json_loadb(line, len, 0, NULL);
	json_t *body = json_array_get(msg, 1);
	if (!json_is_object(body) || strcmp(json_string_value(json_array_get(msg, 0)) ?: "", "end"))
		merge_die(mg, DP_EXIT_FAILURE, "range %d/%d wrote a line that is neither a row nor its end", i + 1,
		          mg->n);
	k->end = json_incref(body);
	merge_watermark(mg, json_object_get(body, "watermark"));
	json_decref(msg);
}

/* Read what range i has, pass on its whole lines; at EOF reap the child:
 * one that failed, or stopped without its end, fails the run. */
static void
drain(struct merge *mg, int i)
{
	struct range_child *k = &mg->kids[i];
	dp_buf_reserve(&k->in, 1 << 16);
	ssize_t n = read(k->fd, k->in.p + k->in.len, k->in.cap - k->in.len);
	if (n < 0 && errno == EINTR)
		return;
	if (n < 0)
		merge_die(mg, DP_EXIT_FAILURE, "range %d/%d: reading its rows: %s", i + 1, mg->n, strerror(errno));
	if (n > 0) {
		k->in.len += (size_t)n;
		char *start = k->in.p, *nl, *stop = k->in.p + k->in.len;
		while ((nl = memchr(start, '\n', (size_t)(stop - start)))) {
			take_line(mg, i, start, (size_t)(nl - start));
			start = nl + 1;
		}
		k->in.len = (size_t)(stop - start);
		memmove(k->in.p, start, k->in.len);
		return;
	}
	close(k->fd);
	k->fd = -1;
	int status = 0;
	while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
		;
	k->pid = 0;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (code)
		merge_die(mg, code, "range %d/%d %s %d; the stream has no end message", i + 1, mg->n,
		          WIFEXITED(status) ? "exited" : "was killed by signal",
		          WIFEXITED(status) ? code : WTERMSIG(status));
	if (!k->end || k->in.len)
		merge_die(mg, DP_EXIT_FAILURE, "range %d/%d stopped without its end; the stream has no end message",
		          i + 1, mg->n);
}

/* Start range i's child: it reads the range into the pipe and exits. */
static void
spawn_range(struct merge *mg, int i, read_range_fn read_range, void *ctx)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		merge_die(mg, DP_EXIT_FAILURE, "cannot create a pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t parent = getpid(), pid = fork();
	if (pid < 0)
		merge_die(mg, DP_EXIT_FAILURE, "cannot start range %d/%d: %s", i + 1, mg->n, strerror(errno));
	if (pid == 0) {
		/* A parent killed outright (SIGKILL) takes its ranges with it,
		 * rather than leaving them reading from the server. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(DP_EXIT_INTERRUPTED);
		close(fds[0]);
		for (int k = 0; k < i; k++)
			close(mg->kids[k].fd);
		/* Only the parent writes the stream. */
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		read_range(ctx, i + 1, fds[1]);
	}
	close(fds[1]);
	mg->kids[i] = (struct range_child){.pid = pid, .fd = fds[0]};
}

void
parallel_read(int n, read_range_fn read_range, void *ctx, struct row_writer *rw, int progress)
{
	struct merge mg = {.kids = dp_xcalloc((size_t)n, sizeof *mg.kids), .n = n, .rw = rw};
	if (rw->inc >= 0)
		mg.sql_type = rw->s->cols[rw->inc].sql_type;
	for (int i = 0; i < n; i++)
		spawn_range(&mg, i, read_range, ctx);
	struct pollfd *pfd = dp_xcalloc((size_t)n, sizeof *pfd);
	int *which = dp_xcalloc((size_t)n, sizeof *which);
	double start = dp_now(), last = start;
	for (;;) {
		int open = 0;
		for (int i = 0; i < n; i++)
			if (mg.kids[i].fd >= 0) {
				pfd[open] = (struct pollfd){.fd = mg.kids[i].fd, .events = POLLIN};
				which[open++] = i;
			}
		if (!open)
			break;
		int ready = poll(pfd, (nfds_t)open, 1000);
		if (dp_interrupted)
			merge_die(&mg, DP_EXIT_INTERRUPTED,
			          "interrupted after %llu rows; the stream has no end message", rw->rows);
		for (int r = 0; ready > 0 && r < open; r++)
			if (pfd[r].revents)
				drain(&mg, which[r]);
		if (progress && dp_now() - last >= 1) {
			last = dp_now();
			fprintf(stderr, "\r%s: %llu rows, %.0f rows/s, %d of %d ranges reading   ", dp_progname,
			        rw->rows, rw->rows / (last - start), open, n);
		}
	}
	if (progress)
		fprintf(stderr, "\r%s: %llu rows in %.1f s from %d ranges            \n", dp_progname, rw->rows,
		        dp_now() - start, n);
	unsigned long long said = 0;
	for (int i = 0; i < n; i++)
		said += (unsigned long long)json_integer_value(json_object_get(mg.kids[i].end, "rows"));
	if (said != rw->rows)
		merge_die(&mg, DP_EXIT_FAILURE, "the ranges counted %llu rows, %llu came through", said, rw->rows);
	free(rw->wm.low);
	free(rw->wm.high);
	rw->wm.low = mg.low ? json_dumps(mg.low, JSON_ENCODE_ANY) : NULL;
	rw->wm.high = mg.high ? json_dumps(mg.high, JSON_ENCODE_ANY) : NULL;
	json_decref(mg.low);
	json_decref(mg.high);
	for (int i = 0; i < n; i++) {
		json_decref(mg.kids[i].end);
		free(mg.kids[i].in.p);
	}
	free(mg.kids);
	free(pfd);
	free(which);
}
