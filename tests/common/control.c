/* control.c: a loopback listener and the line protocol of the stand-ins'
 * control ports (tests/kafkad, tests/mssqld). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control.h"

int
control_listen(const char *prog, int port, int *bound)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in sa = {
		.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t slen = sizeof sa;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 64) ||
	    getsockname(fd, (struct sockaddr *)&sa, &slen)) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d: %s\n", prog, port, strerror(errno));
		exit(1);
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

int
control_serve(struct control_client *c, control_fn run, void *ctx)
{
	ssize_t got = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
	if (got <= 0)
		return -1;
	c->len += (size_t)got;
	char *nl;
	while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
		*nl = '\0';
		char reply[1024];
		run(c->buf, reply, sizeof reply - 1, ctx);
		size_t rlen = strlen(reply);
		reply[rlen++] = '\n';
		if (write(c->fd, reply, rlen) != (ssize_t)rlen)
			return -1;
		size_t used = (size_t)(nl - c->buf) + 1;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	return c->len == sizeof c->buf - 1 ? -1 : 0;
}
