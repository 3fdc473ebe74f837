/* Administration of a cache directory from outside the daemons that use it
 * (`wivaudit cache stats|verify|clear`): walks the entry files and listings
 * directly, so it needs no daemon state and works while daemons run. Every
 * change it makes is one a daemon already copes with: an entry or listing
 * that disappears is fetched again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wivaudit/cache.h"
#include "wivaudit/listing_store.h"

#define ENTRY_SUFFIX ".wvc"
#define ENTRY_NAME_LEN (64 + sizeof(ENTRY_SUFFIX) - 1)
#define TMP_PREFIX ".tmp."
#define LISTING_SUFFIX ".lst"

enum file_kind { F_ENTRY, F_TEMP, F_LISTING };

/* Called for each file of interest: fd of its directory, its name, path
 * relative to the cache directory, and its stat. Non-zero stops the walk. */
typedef int (*file_fn)(void *arg, enum file_kind kind, int dir_fd,
		       const char *name, const char *rel,
		       const struct stat *st);

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_hex(const char *s, size_t len)
{
	return strspn(s, "0123456789abcdef") >= len;
}

static int walk_dir(int dir_fd, const char *sub, bool entries, file_fn fn,
		    void *arg)
{
	int fd = openat(dir_fd, sub,
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	int err = 0;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	d = fdopendir(fd);
	if (!d) {
		err = errno;
		close(fd);
		return err;
	}
	while (!err && (de = readdir(d))) {
		const char *n = de->d_name;
		enum file_kind kind;
		char rel[512];
		struct stat st;

		if (entries && strlen(n) == ENTRY_NAME_LEN && is_hex(n, 64) &&
		    has_suffix(n, ENTRY_SUFFIX))
			kind = F_ENTRY;
		else if (entries && strncmp(n, TMP_PREFIX, 5) == 0)
			kind = F_TEMP;
		else if (!entries && n[0] != '.' &&
			 has_suffix(n, LISTING_SUFFIX))
			kind = F_LISTING;
		else
			continue;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", sub, n);
		err = fn(arg, kind, dirfd(d), n, rel, &st);
	}
	closedir(d);
	return err;
}

/* Calls fn for every entry, temp file and listing under dir. */
static int walk(const char *dir, file_fn fn, void *arg)
{
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int obj_fd, err = 0;
	struct dirent *de;
	DIR *top;

	if (dir_fd < 0)
		return errno;
	obj_fd = openat(dir_fd, "objects",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (obj_fd >= 0) {
		top = fdopendir(obj_fd);
		if (!top) {
			err = errno;
			close(obj_fd);
		}
		while (!err && (de = readdir(top))) {
			char sub[16];

			if (strlen(de->d_name) != 2 || !is_hex(de->d_name, 2))
				continue;
			snprintf(sub, sizeof(sub), "objects/%.2s", de->d_name);
			err = walk_dir(dir_fd, sub, true, fn, arg);
		}
		if (top)
			closedir(top);
	} else if (errno != ENOENT) {
		err = errno;
	}
	if (!err)
		err = walk_dir(dir_fd, "listings", false, fn, arg);
	close(dir_fd);
	return err;
}

/* Removes name from dir_fd if it still is the file st describes: a daemon
 * may have replaced it with a good copy meanwhile. */
static bool remove_if_same(int dir_fd, const char *name, const struct stat *st)
{
	struct stat now;

	return fstatat(dir_fd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	       now.st_dev == st->st_dev && now.st_ino == st->st_ino &&
	       unlinkat(dir_fd, name, 0) == 0;
}

/* --- usage ------------------------------------------------------------ */

static int usage_file(void *arg, enum file_kind kind, int dir_fd,
		      const char *name, const char *rel, const struct stat *st)
{
	struct wiv_cache_usage *u = arg;
	struct wiv_cache_entry_info info;
	const char *why = NULL;
	int fd, err;

	switch (kind) {
	case F_TEMP:
		u->temp_files++;
		u->temp_bytes += (uint64_t)st->st_size;
		return 0;
	case F_LISTING:
		u->listings++;
		u->listing_bytes += (uint64_t)st->st_size;
		return 0;
	case F_ENTRY:
		break;
	}
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0; /* evicted meanwhile */
	u->entries++;
	u->entry_bytes += (uint64_t)st->st_size;
	err = wiv_cache_inspect(fd, name, false, &info, &why);
	close(fd);
	free(info.key);
	if (err == 0 && info.status == WIV_OBJECT_BAD)
		u->bad_objects++;
	else if (err == EPROTONOSUPPORT)
		u->other_format++;
	else if (err)
		u->unreadable++;
	return 0;
}

int wiv_cache_usage(const char *dir, struct wiv_cache_usage *out)
{
	memset(out, 0, sizeof(*out));
	return walk(dir, usage_file, out);
}

/* --- verify ----------------------------------------------------------- */

struct verify {
	const char *dir;
	bool repair;
	wiv_cache_damage_fn fn;
	void *arg;
	struct wiv_cache_verify_result *res;
};

static int verify_file(void *arg, enum file_kind kind, int dir_fd,
		       const char *name, const char *rel, const struct stat *st)
{
	struct verify *v = arg;
	struct wiv_cache_entry_info info = {0};
	const char *why = NULL;
	char path[4096];
	int fd, err = 0;

	switch (kind) {
	case F_TEMP:
		return 0; /* a write under way, or swept by the next mount */
	case F_LISTING:
		snprintf(path, sizeof(path), "%s/%s", v->dir, rel);
		err = wiv_listing_check_file(path);
		if (err == ENOENT)
			return 0;
		v->res->listings++;
		why = err == EBADMSG ? "listing checksum or syntax" : NULL;
		break;
	case F_ENTRY:
		fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return errno == ENOENT ? 0 : errno;
		err = wiv_cache_inspect(fd, name, true, &info, &why);
		close(fd);
		if (err == EPROTONOSUPPORT) {
			v->res->other_format++;
			if (v->repair && remove_if_same(dir_fd, name, st))
				v->res->removed++;
			free(info.key);
			return 0;
		}
		v->res->entries++;
		if (!err)
			v->res->events += info.n_events;
		break;
	}
	if (err && err != EBADMSG) {
		free(info.key);
		return err;
	}
	if (err) {
		v->res->damaged++;
		v->fn(v->arg, rel, info.key, why);
		if (v->repair && remove_if_same(dir_fd, name, st))
			v->res->removed++;
	}
	free(info.key);
	return 0;
}

int wiv_cache_verify(const char *dir, bool repair, wiv_cache_damage_fn fn,
		     void *arg, struct wiv_cache_verify_result *out)
{
	struct verify v = {
	    .dir = dir, .repair = repair, .fn = fn, .arg = arg, .res = out};

	memset(out, 0, sizeof(*out));
	return walk(dir, verify_file, &v);
}

/* --- clear ------------------------------------------------------------ */

static int clear_file(void *arg, enum file_kind kind, int dir_fd,
		      const char *name, const char *rel, const struct stat *st)
{
	struct wiv_cache_clear_result *r = arg;
	int fd;

	switch (kind) {
	case F_ENTRY:
		if (unlinkat(dir_fd, name, 0) == 0) {
			r->entries++;
			r->entry_bytes += (uint64_t)st->st_size;
		}
		break;
	case F_LISTING:
		if (unlinkat(dir_fd, name, 0) == 0) {
			r->listings++;
			r->listing_bytes += (uint64_t)st->st_size;
		}
		break;
	case F_TEMP:
		/* A live writer holds a flock on its temp file. */
		fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			break;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dir_fd, name, 0);
		close(fd);
		break;
	}
	return 0;
}

int wiv_cache_clear(const char *dir, unsigned wait_s,
		    struct wiv_cache_clear_result *out)
{
	char path[4096];
	struct timespec pause = {0, 50 * 1000 * 1000};
	time_t deadline = time(NULL) + wait_s;
	int fd, err;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno;
	/* The eviction lock: a daemon evicting meanwhile would count sizes
	 * of files being removed under it; with the lock held, daemons skip
	 * eviction until we are done. */
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || time(NULL) >= deadline) {
			err = errno == EWOULDBLOCK ? ETIMEDOUT : errno;
			close(fd);
			return err;
		}
		nanosleep(&pause, NULL);
	}
	err = walk(dir, clear_file, out);
	close(fd); /* releases the lock */
	return err;
}
