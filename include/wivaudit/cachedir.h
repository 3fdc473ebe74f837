/* The cache directory: where it is when no cache_dir is given (the one rule
 * shared by mount.wivaudit and the wivaudit command), how it is opened
 * without following anybody's symlinks, and the temp files written in it.
 * Everything below the directory is reached from its descriptor with
 * openat and friends, never by a path. */
#ifndef WIVAUDIT_CACHEDIR_H
#define WIVAUDIT_CACHEDIR_H

#include <stdbool.h>
#include <stddef.h>

/* /var/cache/wivaudit as root, else $XDG_CACHE_HOME/wivaudit, else
 * ~/.cache/wivaudit. Returns a new string (caller frees), or NULL if
 * neither XDG_CACHE_HOME nor HOME is set (or out of memory). */
char *wiv_cachedir_default(void);

/* What wiv_cachedir_open may do. */
enum {
	WIV_CACHEDIR_CREATE = 1,  /* create the directory itself (0700) */
	WIV_CACHEDIR_PARENTS = 2, /* and its missing parents (0700) */
	WIV_CACHEDIR_PRIVATE = 4, /* it must be ours: modes looser than 0700
				   * are tightened, another owner refused */
};

/* Opens the directory at path, component by component: a symlink is
 * followed only where no other user could have put it (owned by root or
 * us, in a directory only root or we can write), and the directory itself
 * must not be one. Returns 0 with a new descriptor in *fd, or errno with a
 * one-line reason in err. */
int wiv_cachedir_open(const char *path, int flags, int *fd, char *err,
		      size_t errlen);

/* Opens the subdirectory name of dir_fd without following a symlink,
 * creating it (0700) first if create. Returns 0 with a new descriptor in
 * *fd, ELOOP if name is a symlink, or errno. */
int wiv_cachedir_sub(int dir_fd, const char *name, bool create, int *fd);

/* Longest name wiv_cachedir_tmp_create writes, with its NUL. */
#define WIV_CACHEDIR_TMP_LEN 48

/* Creates a temp file ".tmp.PID.N" (0600) in dir_fd and takes a flock on
 * it, which says "a live writer's" to wiv_cachedir_clean_tmp. Returns 0
 * with the name in name and a read-write descriptor in *fd, or errno. */
int wiv_cachedir_tmp_create(int dir_fd, char name[WIV_CACHEDIR_TMP_LEN],
			    int *fd);

/* Whether name is a temp file of this process's writers. */
bool wiv_cachedir_tmp_is_ours(const char *name);

/* Whether name looks like a temp file (ours, another daemon's, or one a
 * killed process left behind). */
bool wiv_cachedir_is_tmp(const char *name);

/* Removes the temp file name of dir_fd unless a live writer holds it.
 * Returns true if it was removed. */
bool wiv_cachedir_clean_tmp(int dir_fd, const char *name);

#endif
