/* The cache directory: its default place, opening it safely, temp files. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wivaudit/cachedir.h"
#include "wivaudit/log.h"

#define TMP_PREFIX ".tmp."
/* As the kernel's own bound on symlinks in one lookup. */
#define MAX_LINKS 40

char *wiv_cachedir_default(void)
{
	char path[4096];
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	if (geteuid() == 0)
		snprintf(path, sizeof(path), "/var/cache/wivaudit");
	else if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/wivaudit", xdg);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/.cache/wivaudit", home);
	else
		return NULL;
	return strdup(path);
}

/* Moves the next component of *rest into comp; returns false at the end.
 * *last says no component follows it. */
static bool next_comp(const char **rest, char comp[NAME_MAX + 1], bool *last)
{
	const char *s = *rest, *e;

	while (*s == '/')
		s++;
	*rest = s;
	if (!*s)
		return false;
	e = strchr(s, '/');
	if (!e)
		e = s + strlen(s);
	if ((size_t)(e - s) > NAME_MAX)
		return false;
	memcpy(comp, s, (size_t)(e - s));
	comp[e - s] = '\0';
	*rest = e;
	while (*e == '/')
		e++;
	*last = *e == '\0';
	return true;
}

/* Whether a symlink (stat lnk) in a directory (stat dir) can only have been
 * put there by root or us: nobody else may replace it. */
static bool trusted_link(const struct stat *lnk, const struct stat *dir)
{
	uid_t me = geteuid();
	bool dir_ours = dir->st_uid == 0 || dir->st_uid == me;

	if (lnk->st_uid != 0 && lnk->st_uid != me)
		return false;
	return (dir_ours && !(dir->st_mode & (S_IWGRP | S_IWOTH))) ||
	       (dir->st_mode & S_ISVTX);
}

/* Replaces the walk's pending path with the link's target followed by what
 * was left after the link. */
static int expand_link(int fd, const char *comp, const char *rest,
		       char *pending, size_t len)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(fd, comp, target, sizeof(target) - 1);
	int w;

	if (n < 0)
		return errno;
	target[n] = '\0';
	w = snprintf(pending, len, "%s/%s", target, rest);
	return w < 0 || (size_t)w >= len ? ENAMETOOLONG : 0;
}

/* The directory itself: ours and 0700, tightened if need be. */
static int make_private(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return errno;
	/* Entries hold audit data and pass their checksums by construction:
	 * a directory another user controls could feed us forged events. */
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "cache directory %s: owned by uid %u, not by us "
			 "(uid %u)", path, (unsigned)st.st_uid,
			 (unsigned)geteuid());
		return EPERM;
	}
	if ((st.st_mode & 077) == 0)
		return 0;
	if (fchmod(fd, 0700) != 0) {
		int e = errno;
		snprintf(err, errlen, "cache directory %s: mode %03o, and "
			 "cannot make it 0700: %s", path,
			 (unsigned)(st.st_mode & 0777), strerror(e));
		return e;
	}
	wiv_warn("cache directory %s: mode was %03o; made it 0700 (it holds "
		 "audit data)", path, (unsigned)(st.st_mode & 0777));
	return 0;
}

/* One step of the walk: comp (a directory, created if missing and allowed)
 * below fd (stat *cur). Returns 0 with the new fd and stat, 1 if comp was
 * a trusted symlink (pending then holds the rest of the walk), or errno
 * with the reason in err. */
static int step(int *fd, struct stat *cur, const char *comp, bool last,
		const char **rest, char *pending, size_t plen, int flags,
		const char *path, char *err, size_t errlen)
{
	bool create = last ? flags & WIV_CACHEDIR_CREATE
			   : flags & WIV_CACHEDIR_PARENTS;
	struct stat st;
	int nfd, e;

	if (fstatat(*fd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		e = errno;
		if (e != ENOENT || !create ||
		    (mkdirat(*fd, comp, 0700) != 0 && errno != EEXIST) ||
		    fstatat(*fd, comp, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			e = e == ENOENT && create ? errno : e;
			snprintf(err, errlen, "cache directory %s: %s: %s",
				 path, comp, strerror(e));
			return e;
		}
	}
	if (S_ISLNK(st.st_mode)) {
		if (!trusted_link(&st, cur)) {
			snprintf(err, errlen,
				 "cache directory %s: %s is a symlink (owner "
				 "uid %u, in a directory of uid %u, mode %03o) "
				 "that another user could have placed; not "
				 "followed: give the real directory",
				 path, comp, (unsigned)st.st_uid,
				 (unsigned)cur->st_uid,
				 (unsigned)(cur->st_mode & 07777));
			return ELOOP;
		}
		e = expand_link(*fd, comp, *rest, pending, plen);
		if (e)
			snprintf(err, errlen, "cache directory %s: %s: %s",
				 path, comp, strerror(e));
		return e ? e : 1;
	}
	nfd = openat(*fd, comp,
		     (last ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW |
			 O_CLOEXEC);
	if (nfd < 0 || fstat(nfd, &st) != 0) {
		e = errno;
		snprintf(err, errlen, "cache directory %s: %s: %s", path, comp,
			 e == ELOOP ? "became a symlink; not followed"
				    : strerror(e));
		if (nfd >= 0)
			close(nfd);
		return e;
	}
	close(*fd);
	*fd = nfd;
	*cur = st;
	return 0;
}

int wiv_cachedir_open(const char *path, int flags, int *fd, char *err,
		      size_t errlen)
{
	char pending[2][PATH_MAX + NAME_MAX + 2], comp[NAME_MAX + 1];
	const char *rest = path;
	struct stat cur;
	int links = 0, which = 0, e = 0;
	bool last = false, any = false;

	if (flags & WIV_CACHEDIR_PARENTS)
		flags |= WIV_CACHEDIR_CREATE;
	*fd = open(path[0] == '/' ? "/" : ".",
		   O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &cur) != 0) {
		e = errno;
		snprintf(err, errlen, "cache directory %s: %s", path,
			 strerror(e));
		goto fail;
	}
	while (next_comp(&rest, comp, &last)) {
		any = true;
		e = step(fd, &cur, comp, last, &rest, pending[which],
			 sizeof(pending[0]), flags, path, err, errlen);
		if (e == 1) {
			if (++links > MAX_LINKS) {
				e = ELOOP;
				snprintf(err, errlen, "cache directory %s: %s",
					 path, strerror(e));
				goto fail;
			}
			rest = pending[which];
			which ^= 1;
			if (rest[0] == '/') {
				close(*fd);
				*fd = open("/", O_PATH | O_DIRECTORY |
						    O_CLOEXEC);
				if (*fd < 0 || fstat(*fd, &cur) != 0) {
					e = errno;
					goto fail;
				}
			}
			continue;
		}
		if (e)
			goto fail;
	}
	/* "/" or "." alone, or a component longer than NAME_MAX. */
	if (!any || *rest) {
		e = !any ? EINVAL : ENAMETOOLONG;
		snprintf(err, errlen, "cache directory %s: %s", path,
			 strerror(e));
		goto fail;
	}
	if (flags & WIV_CACHEDIR_PRIVATE) {
		e = make_private(*fd, path, err, errlen);
		if (e)
			goto fail;
	}
	return 0;
fail:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return e ? e : EIO;
}

int wiv_cachedir_sub(int dir_fd, const char *name, bool create, int *fd)
{
	struct stat st;
	int err;

	if (create && mkdirat(dir_fd, name, 0700) != 0 && errno != EEXIST)
		return errno;
	*fd = openat(dir_fd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	err = errno;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode))
		return ELOOP;
	return err;
}

int wiv_cachedir_tmp_create(int dir_fd, char name[WIV_CACHEDIR_TMP_LEN],
			    int *fd)
{
	static atomic_ulong counter;
	struct stat st;

	for (int tries = 0; tries < 100; tries++) {
		snprintf(name, WIV_CACHEDIR_TMP_LEN, TMP_PREFIX "%ld.%lu",
			 (long)getpid(), atomic_fetch_add(&counter, 1));
		*fd = openat(dir_fd, name,
			     O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			     0600);
		if (*fd < 0 && errno == EEXIST)
			continue; /* a dead process's, with a recycled pid */
		if (*fd < 0)
			return errno;
		/* A cleaner may have judged the file abandoned between the
		 * open and the lock and unlinked it: then take another. */
		if (flock(*fd, LOCK_EX) == 0 && fstat(*fd, &st) == 0 &&
		    st.st_nlink > 0)
			return 0;
		close(*fd);
	}
	*fd = -1;
	return EEXIST;
}

bool wiv_cachedir_tmp_is_ours(const char *name)
{
	char prefix[32];
	int n = snprintf(prefix, sizeof(prefix), TMP_PREFIX "%ld.",
			 (long)getpid());

	return strncmp(name, prefix, (size_t)n) == 0;
}

bool wiv_cachedir_is_tmp(const char *name)
{
	/* Older versions wrote listing temp files as NAME.tmp.PID.N. */
	return strstr(name, TMP_PREFIX) != NULL;
}

bool wiv_cachedir_clean_tmp(int dir_fd, const char *name)
{
	struct stat a, b;
	bool removed = false;
	int fd = openat(dir_fd, name,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return false;
	/* Writers hold a flock from creation to rename; the name must
	 * still be this file (not a newer one under a recycled name). */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 &&
	    S_ISREG(a.st_mode) &&
	    fstatat(dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		removed = unlinkat(dir_fd, name, 0) == 0;
	close(fd);
	return removed;
}
