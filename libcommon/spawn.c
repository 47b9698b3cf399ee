/*
 * spawn.c: running a sibling stage (dpone-extract, dpone-state) and
 * reading what it prints, for commands that ask another stage (dpone-check
 * counts through dpone-extract --count, dpone-plan asks extract and state).
 */
#include <errno.h>
#include <limits.h>
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

char *
dp_run_capture(char *const argv[], int *code)
{
	int pipefd[2];
	if (pipe(pipefd) < 0)
		dp_die(DP_EXIT_FAILURE, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	posix_spawn_file_actions_addclose(&fa, pipefd[1]);
	char *prog = dp_sibling_path(argv[0]);
	pid_t pid;
	int err = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
	if (err == ENOENT && !strchr(prog, '/'))
		err = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	free(prog);
	if (err) {
		close(pipefd[0]);
		dp_warn("%s: cannot start: %s", argv[0], strerror(err));
		*code = -1;
		return NULL;
	}
	struct dp_buf out = {0};
	char chunk[8192];
	ssize_t n;
	while ((n = read(pipefd[0], chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		dp_buf_add(&out, chunk, (size_t)n);
	}
	close(pipefd[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	dp_buf_char(&out, '\0');
	return out.p;
}

json_t *
dp_committed_state(const struct dp_manifest *m, const char *manifest_path, int *code)
{
	const char *path = dp_manifest_str(m, "state.path");
	*code = 0;
	if (!strcmp(dp_manifest_str(m, "state.type"), "file") && path && access(path, F_OK) < 0)
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
