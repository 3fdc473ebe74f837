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
#include "wivaudit/cachedir.h"
#include "wivaudit/listing_store.h"

#define ENTRY_SUFFIX ".wvc"
#define ENTRY_NAME_LEN (64 + sizeof(ENTRY_SUFFIX) - 1)
#define LISTING_SUFFIX ".lst"

/* F_SYMLINK: a symlink anywhere in the layout, never followed. */
enum file_kind { F_ENTRY, F_TEMP, F_LISTING, F_SYMLINK };

/* Called for each file of interest: fd of its directory, its name, path
 * relative to the cache directory, and its stat. Non-zero stops the walk. */
typedef int (*file_fn)(void *arg, enum file_kind kind, int dir_fd,
		       const char *name, const char *rel,
		       const struct stat *st);

enum dir_kind { D_OBJECTS, D_LISTINGS, D_MOUNTS };

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_hex(const char *s, size_t len)
{
	return strspn(s, "0123456789abcdef") >= len;
}

/* The kind of name in a directory of kind dk, or -1 to skip it. */
static int kind_of(enum dir_kind dk, const char *n, const struct stat *st)
{
	if (S_ISLNK(st->st_mode))
		return F_SYMLINK;
	if (!S_ISREG(st->st_mode))
		return -1;
	if (wiv_cachedir_is_tmp(n))
		return F_TEMP;
	if (dk == D_OBJECTS && strlen(n) == ENTRY_NAME_LEN && is_hex(n, 64) &&
	    has_suffix(n, ENTRY_SUFFIX))
		return F_ENTRY;
	if (dk == D_LISTINGS && n[0] != '.' && has_suffix(n, LISTING_SUFFIX))
		return F_LISTING;
	return -1;
}

/* Calls fn for each file of interest in the directory name of parent_fd,
 * whose path relative to the cache directory is prefix + name. */
static int walk_dir(int parent_fd, const char *prefix, const char *name,
		    enum dir_kind dk, file_fn fn, void *arg)
{
	char sub[64];
	struct stat st;
	struct dirent *de;
	int fd, err = 0;
	DIR *d;

	snprintf(sub, sizeof(sub), "%s%s", prefix, name);
	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : errno;
	if (S_ISLNK(st.st_mode))
		return fn(arg, F_SYMLINK, parent_fd, name, sub, &st);
	fd = openat(parent_fd, name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
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
		char rel[512];
		int kind;

		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		kind = kind_of(dk, n, &st);
		if (kind < 0)
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", sub, n);
		err = fn(arg, (enum file_kind)kind, dirfd(d), n, rel, &st);
	}
	closedir(d);
	return err;
}

/* Calls fn for every entry, temp file, listing and symlink of the cache
 * directory open on dir_fd, following no symlink. */
static int walk(int dir_fd, file_fn fn, void *arg)
{
	struct stat st;
	struct dirent *de;
	int obj_fd, err = 0;
	DIR *top;

	/* lock: only a symlink in its place is of interest. */
	if (fstatat(dir_fd, "lock", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		err = fn(arg, F_SYMLINK, dir_fd, "lock", "lock", &st);
	if (err)
		return err;
	if (fstatat(dir_fd, "objects", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		err = fn(arg, F_SYMLINK, dir_fd, "objects", "objects", &st);
	} else if ((obj_fd = openat(dir_fd, "objects",
				    O_RDONLY | O_DIRECTORY | O_CLOEXEC |
					O_NOFOLLOW)) >= 0) {
		top = fdopendir(obj_fd);
		if (!top) {
			err = errno;
			close(obj_fd);
		}
		while (!err && top && (de = readdir(top))) {
			if (strlen(de->d_name) != 2 || !is_hex(de->d_name, 2))
				continue;
			err = walk_dir(dirfd(top), "objects/", de->d_name,
				       D_OBJECTS, fn, arg);
		}
		if (top)
			closedir(top);
	} else if (errno != ENOENT) {
		err = errno;
	}
	if (!err)
		err = walk_dir(dir_fd, "", "listings", D_LISTINGS, fn, arg);
	if (!err)
		err = walk_dir(dir_fd, "", "mounts", D_MOUNTS, fn, arg);
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
	case F_SYMLINK:
		u->symlinks++;
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

int wiv_cache_usage(int dir_fd, struct wiv_cache_usage *out)
{
	memset(out, 0, sizeof(*out));
	return walk(dir_fd, usage_file, out);
}

/* --- verify ----------------------------------------------------------- */

struct verify {
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
	int fd, err = 0;

	switch (kind) {
	case F_TEMP:
		/* A write under way holds a lock on its temp file. */
		v->res->temp_files++;
		if (v->repair && wiv_cachedir_clean_tmp(dir_fd, name))
			v->res->temp_removed++;
		return 0;
	case F_SYMLINK:
		v->res->damaged++;
		v->fn(v->arg, rel, NULL, "symlink, not followed");
		if (v->repair && unlinkat(dir_fd, name, 0) == 0)
			v->res->removed++;
		return 0;
	case F_LISTING:
		err = wiv_listing_check_file(dir_fd, name);
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

int wiv_cache_verify(int dir_fd, bool repair, wiv_cache_damage_fn fn,
		     void *arg, struct wiv_cache_verify_result *out)
{
	struct verify v = {.repair = repair, .fn = fn, .arg = arg, .res = out};

	memset(out, 0, sizeof(*out));
	return walk(dir_fd, verify_file, &v);
}

/* --- clear ------------------------------------------------------------ */

static int clear_file(void *arg, enum file_kind kind, int dir_fd,
		      const char *name, const char *rel, const struct stat *st)
{
	struct wiv_cache_clear_result *r = arg;

	(void)rel;
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
		wiv_cachedir_clean_tmp(dir_fd, name);
		break;
	case F_SYMLINK:
		/* unlinkat removes the link itself, never its target. */
		if (unlinkat(dir_fd, name, 0) == 0)
			r->symlinks++;
		break;
	}
	return 0;
}

int wiv_cache_clear(int dir_fd, unsigned wait_s,
		    struct wiv_cache_clear_result *out)
{
	struct timespec pause = {0, 50 * 1000 * 1000};
	time_t deadline = time(NULL) + wait_s;
	int fd, err;

	memset(out, 0, sizeof(*out));
	fd = openat(dir_fd, "lock", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
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
	err = walk(dir_fd, clear_file, out);
	close(fd); /* releases the lock */
	return err;
}
