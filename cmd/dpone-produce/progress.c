/*
 * progress.c: the live progress line of a run (--progress tty) or a plain
 * line every ten seconds (--progress lines, for logs). A thread draws it,
 * so it moves while dpone-produce waits: for the first row (the server
 * still running the query), between rows, and for deliveries. It reads the
 * run's counters, which their writers store atomically; it writes with one
 * write(2) per line, so its lines do not interleave with others' bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "produce.h"

static const char *const phase_names[] = {
	[PHASE_WAITING] = "waiting for the first row (dpone-extract: the server runs the query)",
	[PHASE_PUBLISHING] = "publishing",
	[PHASE_FLUSHING] = "waiting for the last deliveries",
	[PHASE_DONE] = "done",
};

static void
draw(struct progress *p, int last)
{
	double elapsed = dp_now() - p->start;
	unsigned long long rows = __atomic_load_n(p->rows, __ATOMIC_RELAXED);
	const unsigned long long *counter = __atomic_load_n(&p->delivered, __ATOMIC_ACQUIRE);
	unsigned long long delivered = counter ? __atomic_load_n(counter, __ATOMIC_RELAXED) : 0;
	int phase = __atomic_load_n(&p->phase, __ATOMIC_RELAXED);
	char line[512];
	double rate = elapsed > 0 ? (double)rows / elapsed : 0.0;
	if (dp_log_json()) { /* a log line like any other (never drawn in place) */
		dp_warn("progress: %llu row%s read, %llu delivered, %.*f rows/s, %.1f s: %s", rows,
		        rows == 1 ? "" : "s", delivered, rate > 0 && rate < 10 ? 1 : 0, rate, elapsed,
		        phase_names[phase]);
		return;
	}
	int n = snprintf(line, sizeof line, "%s%s: %llu row%s read, %llu delivered, %.*f rows/s, %.1f s: %s%s",
	                 p->mode == PROGRESS_TTY ? "\r" : "", dp_progname, rows, rows == 1 ? "" : "s", delivered,
	                 rate > 0 && rate < 10 ? 1 : 0, rate, elapsed, phase_names[phase],
	                 p->mode == PROGRESS_TTY ? (last ? "\033[K\n" : "\033[K") : "\n");
	if (n > 0 && write(2, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0)
		return; /* stderr gone: nothing to tell anyone */
}

static void *
run_progress(void *arg)
{
	struct progress *p = arg;
	double every = p->mode == PROGRESS_TTY ? 0.5 : 10.0, next = p->start + every;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		double wait = next - dp_now();
		if (wait > 0) {
			until.tv_sec += (time_t)wait;
			until.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&p->wake, &p->lock, &until);
			continue;
		}
		draw(p, 0);
		next += every;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void
progress_start(struct progress *p, enum progress_mode mode, const unsigned long long *rows,
               const unsigned long long *delivered)
{
	p->mode = mode;
	p->rows = rows;
	p->delivered = delivered;
	p->start = dp_now();
	p->phase = PHASE_WAITING;
	if (mode == PROGRESS_NONE)
		return;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	if (pthread_create(&p->thread, NULL, run_progress, p))
		p->mode = PROGRESS_NONE; /* no progress is better than no run */
}

void
progress_phase(struct progress *p, enum progress_phase phase)
{
	__atomic_store_n(&p->phase, phase, __ATOMIC_RELAXED);
}

void
progress_set_delivered(struct progress *p, const unsigned long long *delivered)
{
	__atomic_store_n(&p->delivered, delivered, __ATOMIC_RELEASE);
}

void
progress_stop(struct progress *p, int say_last)
{
	if (p->mode == PROGRESS_NONE)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	if (say_last)
		draw(p, 1);
	else if (p->mode == PROGRESS_TTY && write(2, "\r\033[K", 4) < 0)
		return;
	p->mode = PROGRESS_NONE;
}
