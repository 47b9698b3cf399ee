/*
 * signals.c: SIGINT/SIGTERM handling shared by the stages. The handler only
 * sets a flag; it is installed without SA_RESTART so that a stage blocked in
 * read(2) on its input wakes up and the stream reader can report the stop.
 */
#include <signal.h>
#include <time.h>

#include "dpone.h"

volatile sig_atomic_t dp_interrupted;

static void
on_signal(int sig)
{
	dp_interrupted = sig;
	/* The next stage may stop first: a write to it then fails (EPIPE) and
	 * this stage exits 130 saying where it was, instead of dying of
	 * SIGPIPE without a word. sigaction is async-signal-safe. */
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ignore, NULL);
}

void
dp_catch_interrupts(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

double
dp_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
