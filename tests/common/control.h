/* control.h: the line-per-command control port the stand-ins share. */
#ifndef CONTROL_H
#define CONTROL_H

#include <stddef.h>

struct control_client {
	int fd;
	char buf[4096];
	size_t len;
};

/* Run one command line, writing a one-line answer ("ok ...", "error: ...") into reply. */
typedef void (*control_fn)(char *line, char *reply, size_t len, void *ctx);

/* Listen on 127.0.0.1:port (0 picks one; *bound gets it); exits on failure. */
int control_listen(const char *prog, int port, int *bound);
/* Read what a client sent and answer each complete line; -1 when it is closed
 * (or sent a line too long to be a command). */
int control_serve(struct control_client *c, control_fn run, void *ctx);

#endif
