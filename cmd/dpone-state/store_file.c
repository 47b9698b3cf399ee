/*
 * store_file.c: state in one JSON file for local use (state.type: file).
 *
 *   {"job": NAME, "record": {...}, "lease": {...}, "history": [{...}, ...]}
 *
 * Readers and writers take an exclusive flock on PATH.lock (a file that is
 * never replaced) for the whole read-modify-write; the new content goes to
 * PATH.tmp, is fsynced, renamed over PATH, and the directory is fsynced, so
 * a crash leaves either the old state or the new one, never a torn file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

struct file_store {
	struct store base;
	char *path, *lock_path;
	int lock_fd;
};

/* The directories above the file path. */
static int
make_parent_dirs(const char *path)
{
	char *copy = dp_xstrdup(path);
	char *slash = strrchr(copy, '/');
	int rc = 0;
	if (slash && slash != copy) {
		*slash = '\0';
		rc = dp_mkdir_p(copy, 0755);
	}
	free(copy);
	return rc;
}

/* The whole document, or a new empty one when the file does not exist. */
static json_t *
load_doc(struct file_store *f, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_load_file(f->path, JSON_REJECT_DUPLICATES, &jerr);
	const char *job = json_string_value(json_object_get(doc, "job"));
	if (json_is_object(doc) && job && strcmp(job, f->base.job) && !f->base.adopt) {
		/* Two manifests sharing one state.path would move each other's
		 * watermark: a run of one would start where the other stopped. */
		snprintf(err, errlen,
		         "%s holds the state of job %s, not of this manifest's job %s: give each job its own "
		         "state.path, or take this one over with dpone-state MANIFEST reset --to VALUE",
		         f->path, job, f->base.job);
		f->base.misfit = 1;
		json_decref(doc);
		return NULL;
	}
	if (json_is_object(doc)) {
		json_object_set_new(doc, "job", json_string(f->base.job)); /* adopted by reset */
		return doc;
	}
	json_decref(doc);
	if (access(f->path, F_OK) < 0 && errno == ENOENT)
		return json_pack("{s:s, s:[]}", "job", f->base.job, "history");
	snprintf(err, errlen, "%s:%d: not a dpone state file: %s", f->path, jerr.line, jerr.text);
	return NULL;
}

static int
save_doc(struct file_store *f, json_t *doc, char *err, size_t errlen)
{
	char *text = json_dumps(doc, JSON_INDENT(1));
	if (!text)
		dp_die(DP_EXIT_FAILURE, "cannot encode the state of %s", f->path);
	struct dp_buf file = {0};
	dp_buf_str(&file, text);
	dp_buf_char(&file, '\n');
	free(text);
	int rc = dp_write_file_durably(f->path, file.p, file.len);
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot write: %s", f->path, strerror(errno));
	free(file.p);
	return rc;
}

static int
lock_file(struct file_store *f, char *err, size_t errlen)
{
	while (flock(f->lock_fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "%s: cannot lock: %s", f->lock_path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void
take(json_t *doc, const char *key, json_t **out)
{
	json_t *v = json_object_get(doc, key);
	*out = json_is_object(v) ? json_incref(v) : NULL;
}

/* The document read under the lock, for a reader; NULL with err set. */
static json_t *
read_doc(struct file_store *f, char *err, size_t errlen)
{
	if (lock_file(f, err, errlen) < 0)
		return NULL;
	json_t *doc = load_doc(f, err, errlen);
	flock(f->lock_fd, LOCK_UN);
	return doc;
}

static int
file_read(struct store *s, struct job_state *out, char *err, size_t errlen)
{
	json_t *doc = read_doc((struct file_store *)s, err, errlen);
	if (!doc)
		return s->misfit ? DP_EXIT_USAGE : DP_EXIT_STATE;
	take(doc, "record", &out->record);
	take(doc, "lease", &out->lease);
	json_decref(doc);
	return 0;
}

static void
put(json_t *doc, const char *key, json_t *v)
{
	if (v)
		json_object_set(doc, key, v);
	else
		json_object_del(doc, key);
}

static int
file_update(struct store *s, state_update_fn fn, void *ctx, char *err, size_t errlen)
{
	struct file_store *f = (struct file_store *)s;
	if (lock_file(f, err, errlen) < 0)
		return DP_EXIT_STATE;
	int rc = DP_EXIT_STATE;
	json_t *doc = load_doc(f, err, errlen), *history = NULL;
	if (!doc && s->misfit)
		rc = DP_EXIT_USAGE;
	struct job_state st = {0};
	if (doc) {
		take(doc, "record", &st.record);
		take(doc, "lease", &st.lease);
		rc = fn(&st, &history, ctx, err, errlen);
	}
	if (doc && !rc) {
		put(doc, "record", st.record);
		put(doc, "lease", st.lease);
		if (history) {
			json_t *list = json_object_get(doc, "history");
			if (!json_is_array(list))
				json_object_set_new(doc, "history", list = json_array());
			size_t n = json_array_size(list);
			json_t *folded = n ? history_fold(json_array_get(list, n - 1), history) : NULL;
			if (folded)
				json_array_set_new(list, n - 1, folded);
			else
				json_array_append(list, history);
		}
		rc = save_doc(f, doc, err, errlen) < 0 ? DP_EXIT_STATE : 0;
	}
	flock(f->lock_fd, LOCK_UN);
	job_state_clear(&st);
	json_decref(history);
	json_decref(doc);
	return rc;
}

static int
file_history(struct store *s, json_t **out, char *err, size_t errlen)
{
	json_t *doc = read_doc((struct file_store *)s, err, errlen);
	if (!doc)
		return DP_EXIT_STATE;
	json_t *list = json_object_get(doc, "history");
	*out = json_is_array(list) ? json_incref(list) : json_array();
	json_decref(doc);
	return 0;
}

static void
file_close(struct store *s)
{
	struct file_store *f = (struct file_store *)s;
	close(f->lock_fd);
	free(f->path);
	free(f->lock_path);
	free(f->base.job);
	free(f);
}

static int
file_probe(struct store *s, json_t *out, char *err, size_t errlen)
{
	struct file_store *f = (struct file_store *)s;
	char *dircopy = dp_xstrdup(f->path);
	int writable = access(dirname(dircopy), W_OK) == 0;
	free(dircopy);
	json_object_set_new(out, "path", json_string(f->path));
	json_object_set_new(out, "writable", json_boolean(writable));
	if (!writable) {
		snprintf(err, errlen, "%s: its directory is not writable", f->path);
		return DP_EXIT_STATE;
	}
	return 0;
}

/* ---- key indexes: PATH.keys/NAME.ndjson.zst ---- */

static char *
keys_file(const struct file_store *f, const char *name)
{
	return dp_strfmt("%s.keys/%s.ndjson.zst", f->path, name);
}

static int
file_put_keys(struct store *s, const char *path, const char *name, char *err, size_t errlen)
{
	struct file_store *f = (struct file_store *)s;
	char *dest = keys_file(f, name), *tmp = dp_strfmt("%s.tmp", dest);
	int in = open(path, O_RDONLY | O_CLOEXEC), out = -1, rc = DP_EXIT_STATE;
	if (in >= 0 && make_parent_dirs(dest) == 0)
		out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in < 0 || out < 0)
		snprintf(err, errlen, "storing the key index: %s: %s", in < 0 ? path : tmp, strerror(errno));
	else if (copy_fd(in, out) < 0 || fsync(out) < 0)
		snprintf(err, errlen, "storing the key index: %s: %s", tmp, strerror(errno));
	else if (close(out) < 0 || (out = -1, rename(tmp, dest) < 0))
		snprintf(err, errlen, "storing the key index: %s: %s", dest, strerror(errno));
	else
		rc = 0;
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	if (rc)
		unlink(tmp);
	free(tmp);
	free(dest);
	return rc;
}

static int
file_get_keys(struct store *s, const char *name, int fd, char *err, size_t errlen)
{
	char *src = keys_file((struct file_store *)s, name);
	int in = open(src, O_RDONLY | O_CLOEXEC), rc = 0;
	if (in < 0 || copy_fd(in, fd) < 0) {
		snprintf(err, errlen, "the key index %s: %s", src, strerror(errno));
		rc = DP_EXIT_STATE;
	}
	if (in >= 0)
		close(in);
	free(src);
	return rc;
}

static int
file_drop_keys(struct store *s, const char *keep, char *err, size_t errlen)
{
	struct file_store *f = (struct file_store *)s;
	char *dir = dp_strfmt("%s.keys", f->path);
	char *prefix = key_index_name(f->base.job, "");
	DIR *d = opendir(dir);
	struct dirent *e;
	(void)err;
	(void)errlen;
	while (d && (e = readdir(d))) {
		/* The job's indexes share the first 16 hex digits (the job's hash). */
		if (strncmp(e->d_name, prefix, 17) || (keep && !strncmp(e->d_name, keep, strlen(keep))))
			continue;
		char *path = dp_strfmt("%s/%s", dir, e->d_name);
		unlink(path);
		free(path);
	}
	if (d)
		closedir(d);
	free(prefix);
	free(dir);
	return 0;
}

static const struct store_ops file_ops = {file_read,  file_update,   file_history,  file_close,
                                          file_probe, file_put_keys, file_get_keys, file_drop_keys};

struct store *
store_file_open(const char *path, const char *job, int *code, char *err, size_t errlen)
{
	if (make_parent_dirs(path) < 0) {
		snprintf(err, errlen, "%s: cannot create its directory: %s", path, strerror(errno));
		*code = DP_EXIT_STATE;
		return NULL;
	}
	struct file_store *f = dp_xcalloc(1, sizeof *f);
	f->base.ops = &file_ops;
	f->base.job = dp_xstrdup(job);
	f->path = dp_xstrdup(path);
	f->lock_path = dp_strfmt("%s.lock", path);
	f->lock_fd = open(f->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f->lock_fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", f->lock_path, strerror(errno));
		*code = DP_EXIT_STATE;
		file_close(&f->base);
		return NULL;
	}
	return &f->base;
}
