/*
 * spawn.c: running a sibling stage (dpone-extract, dpone-state) and
 * reading what it prints, for commands that ask another stage (dpone-check
 * counts through dpone-extract --count, dpone-plan asks extract and state).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dpone.h"

extern char **environ;

char *
dp_sibling_path(const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *path = dp_strfmt("%s/%s", self, name);
			if (access(path, X_OK) == 0)
				return path;
			free(path);
		}
	}
	return dp_xstrdup(name);
}

/* Read fds[0..n) to EOF into bufs (both at once: neither pipe can fill). */
static void
drain(int *fds, struct dp_buf *bufs, int n)
{
	struct pollfd pfd[2];
	int open = n;
	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
	char chunk[8192];
	while (open > 0) {
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t got = read(pfd[i].fd, chunk, sizeof chunk);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open--;
				continue;
			}
			dp_buf_add(&bufs[i], chunk, (size_t)got);
		}
	}
}

/* A pipe whose write end becomes the child's stdout under fa. */
static void
stdout_to_pipe(int pipefd[2], posix_spawn_file_actions_t *fa)
{
	if (pipe(pipefd) < 0)
		dp_die(DP_EXIT_FAILURE, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(fa);
	posix_spawn_file_actions_adddup2(fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(fa, pipefd[0]);
	posix_spawn_file_actions_addclose(fa, pipefd[1]);
}

/* Start the stage argv[0] (beside this program, else on PATH) with fa;
 * 0 or an errno value. */
static int
start_sibling(char *const argv[], const posix_spawn_file_actions_t *fa, pid_t *pid)
{
	char *prog = dp_sibling_path(argv[0]);
	int err = posix_spawn(pid, prog, fa, NULL, argv, environ);
	if (err == ENOENT && !strchr(prog, '/'))
		err = posix_spawnp(pid, prog, fa, NULL, argv, environ);
	free(prog);
	return err;
}

char *
dp_run_capture(char *const argv[], int *code)
{
	return dp_run_capture_err(argv, code, NULL);
}

char *
dp_run_capture_err(char *const argv[], int *code, char **err_out)
{
	int pipefd[2], errfd[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	stdout_to_pipe(pipefd, &fa);
	if (err_out && pipe(errfd) < 0)
		dp_die(DP_EXIT_FAILURE, "pipe: %s", strerror(errno));
	if (err_out) {
		posix_spawn_file_actions_adddup2(&fa, errfd[1], 2);
		posix_spawn_file_actions_addclose(&fa, errfd[0]);
		posix_spawn_file_actions_addclose(&fa, errfd[1]);
	}
	pid_t pid;
	int err = start_sibling(argv, &fa, &pid);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (err_out)
		close(errfd[1]);
	if (err) {
		close(pipefd[0]);
		if (err_out) {
			close(errfd[0]);
			*err_out = dp_strfmt("%s: cannot start: %s", argv[0], strerror(err));
		} else {
			dp_warn("%s: cannot start: %s", argv[0], strerror(err));
		}
		*code = -1;
		return NULL;
	}
	struct dp_buf bufs[2] = {{0}, {0}};
	int fds[2] = {pipefd[0], errfd[0]};
	drain(fds, bufs, err_out ? 2 : 1);
	if (err_out) {
		dp_buf_char(&bufs[1], '\0');
		*err_out = bufs[1].p;
	}
	struct dp_buf out = bufs[0];
	*code = dp_spawn_wait(pid);
	dp_buf_char(&out, '\0');
	return out.p;
}

json_t *
dp_committed_state(const struct dp_manifest *m, const char *manifest_path, int *code)
{
	const char *path = dp_manifest_str(m, "state.path");
	*code = 0;
	if (m->state_type == DP_STATE_FILE && path && access(path, F_OK) < 0)
		return json_pack("{s:s, s:n, s:n}", "job", dp_manifest_str(m, "name"), "record", "lease");
	char *argv[] = {"dpone-state", "-q", (char *)manifest_path, "get", NULL};
	char *out = dp_run_capture(argv, code);
	if (*code) {
		free(out);
		return NULL;
	}
	json_error_t jerr;
	json_t *doc = json_loads(out, 0, &jerr);
	free(out);
	if (!json_is_object(doc)) {
		dp_warn("dpone-state get printed what is not a JSON object: %s", jerr.text);
		json_decref(doc);
		*code = DP_EXIT_FAILURE;
		return NULL;
	}
	return doc;
}

int
dp_spawn_reader(char *const argv[], pid_t *pid)
{
	int pipefd[2];
	posix_spawn_file_actions_t fa;
	stdout_to_pipe(pipefd, &fa);
	int err = start_sibling(argv, &fa, pid);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (err) {
		close(pipefd[0]);
		dp_warn("%s: cannot start: %s", argv[0], strerror(err));
		return -1;
	}
	return pipefd[0];
}

int
dp_spawn_wait(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
