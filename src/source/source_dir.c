/* A local directory that mirrors a bucket, e.g. an `aws s3 sync` copy. Keys
 * are paths relative to the root; the listing walks the tree and sorts it
 * so that callers see what S3 would show. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wivaudit/log.h"
#include "wivaudit/source.h"

struct dir_source {
	struct wiv_source base;
	char *root;
};

struct key_list {
	char **keys;
	size_t n, cap;
};

static int key_list_add(struct key_list *l, const char *key)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		char **keys = realloc(l->keys, cap * sizeof(*keys));
		if (!keys)
			return ENOMEM;
		l->keys = keys;
		l->cap = cap;
	}
	if (!(l->keys[l->n] = strdup(key)))
		return ENOMEM;
	l->n++;
	return 0;
}

static void key_list_free(struct key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
}

static int compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pseudo-ETag of a file: it changes whenever the content could have. */
static void file_etag(const struct stat *st, char *out, size_t len)
{
	snprintf(out, len, "%" PRIx64 "-%" PRIx64 "%09ld-%" PRIx64,
		 (uint64_t)st->st_size, (uint64_t)st->st_mtim.tv_sec,
		 st->st_mtim.tv_nsec, (uint64_t)st->st_ino);
}

/* Collects the keys below rel (a directory relative to the root, "" for the
 * root itself) that start with prefix. With shallow, directories are
 * recorded as "name/" instead of being entered. */
static int walk(const char *root, const char *rel, const char *prefix,
		bool shallow, struct key_list *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : errno;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char key[4096];
		int kn = snprintf(key, sizeof(key), "%s%s", rel, de->d_name);
		/* Room for the "/" of a directory too. S3 keys are at most
		 * 1,024 bytes, so a longer path cannot be part of a mirror. */
		if (kn < 0 || (size_t)kn + 1 >= sizeof(key)) {
			wiv_warn("ignoring a path under %s/%s: longer than any "
				 "S3 key",
				 root, rel);
			continue;
		}
		size_t klen = (size_t)kn, plen = strlen(prefix);
		/* Enter a directory only if keys below it can match. */
		bool could_match = strncmp(key, prefix, klen < plen ? klen : plen) == 0;
		if (!could_match)
			continue;
		struct stat st;
		char full[8192];
		snprintf(full, sizeof(full), "%s/%s", root, key);
		if (stat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			strcat(key, "/");
			if (shallow && klen + 1 >= plen)
				rc = key_list_add(out, key);
			else
				rc = walk(root, key, prefix, shallow, out);
		} else if (S_ISREG(st.st_mode) && klen >= plen) {
			rc = key_list_add(out, key);
		}
	}
	closedir(d);
	return rc;
}

static int dir_list(struct wiv_source *src, const char *prefix,
		    const char *delimiter, const char *start_after,
		    wiv_list_object_fn on_object, wiv_list_prefix_fn on_prefix,
		    void *arg)
{
	struct dir_source *ds = (struct dir_source *)src;
	/* Only "/" can be a delimiter here: it is the directory separator. */
	bool shallow = delimiter && strcmp(delimiter, "/") == 0;
	char rel[4096];
	snprintf(rel, sizeof(rel), "%s", prefix);
	char *slash = strrchr(rel, '/');
	if (slash)
		slash[1] = '\0';
	else
		rel[0] = '\0';

	struct key_list keys = {0};
	int rc = walk(ds->root, rel, prefix, shallow, &keys);
	if (rc) {
		wiv_err("listing %s/%s: %s", ds->root, rel, strerror(rc));
		key_list_free(&keys);
		return rc;
	}
	qsort(keys.keys, keys.n, sizeof(*keys.keys), compare_keys);

	for (size_t i = 0; i < keys.n && rc == 0; i++) {
		const char *key = keys.keys[i];
		if (start_after && strcmp(key, start_after) <= 0)
			continue;
		size_t len = strlen(key);
		if (key[len - 1] == '/') {
			if (on_prefix && on_prefix(arg, key))
				rc = ECANCELED;
			continue;
		}
		char full[8192], etag[64];
		struct stat st;
		snprintf(full, sizeof(full), "%s/%s", ds->root, key);
		if (stat(full, &st) != 0)
			continue;
		file_etag(&st, etag, sizeof(etag));
		struct wiv_object_info info = {
			.key = key, .etag = etag, .size = (uint64_t)st.st_size};
		if (on_object(arg, &info))
			rc = ECANCELED;
	}
	key_list_free(&keys);
	return rc;
}

static bool key_is_safe(const char *key)
{
	return key[0] != '/' && strncmp(key, "../", 3) != 0 &&
	       !strstr(key, "/../");
}

static int dir_get(struct wiv_source *src, const char *key, const char *etag,
		   wiv_body_fn on_data, void *arg)
{
	struct dir_source *ds = (struct dir_source *)src;
	if (!key_is_safe(key))
		return ENOENT;
	char path[8192];
	snprintf(path, sizeof(path), "%s/%s", ds->root, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		wiv_err("reading %s: %s", path, strerror(err));
		return err == ENOENT || err == EACCES ? err : EIO;
	}
	struct stat st;
	char actual[64];
	if (fstat(fd, &st) != 0) {
		close(fd);
		return EIO;
	}
	file_etag(&st, actual, sizeof(actual));
	if (etag && strcmp(etag, actual) != 0) {
		close(fd);
		return ESTALE;
	}

	static const size_t chunk = 256 * 1024;
	char *buf = malloc(chunk);
	int rc = buf ? 0 : ENOMEM;
	while (rc == 0) {
		ssize_t n = read(fd, buf, chunk);
		if (n < 0) {
			wiv_err("reading %s: %s", path, strerror(errno));
			rc = EIO;
		} else if (n == 0) {
			break;
		} else if (on_data(arg, buf, (size_t)n)) {
			rc = ECANCELED;
		}
	}
	free(buf);
	close(fd);
	return rc;
}

static void dir_destroy(struct wiv_source *src)
{
	struct dir_source *ds = (struct dir_source *)src;
	free((char *)ds->base.identity);
	free(ds->root);
	free(ds);
}

static const struct wiv_source_ops dir_ops = {
	.list = dir_list,
	.get = dir_get,
	.destroy = dir_destroy,
};

struct wiv_source *wiv_source_dir_new(const char *root, char *err, size_t errlen)
{
	char *abs = realpath(root, NULL);
	struct stat st;
	if (!abs || stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "source directory %s: %s", root,
			 abs ? "not a directory" : strerror(errno));
		free(abs);
		return NULL;
	}
	if (access(abs, R_OK | X_OK) != 0) {
		snprintf(err, errlen, "source directory %s: %s", root,
			 strerror(errno));
		free(abs);
		return NULL;
	}
	struct dir_source *ds = calloc(1, sizeof(*ds));
	char *identity = NULL;
	if (!ds || asprintf(&identity, "dir|%s", abs) < 0) {
		snprintf(err, errlen, "out of memory");
		free(ds);
		free(abs);
		return NULL;
	}
	ds->base.ops = &dir_ops;
	ds->base.identity = identity;
	ds->root = abs;
	return &ds->base;
}
