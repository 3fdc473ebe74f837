/* Temp file + rename, inside one directory reached by its descriptor. No
 * fsync: every reader of these files checks what it reads (or can live with
 * an older copy), and syncing on every listing refresh would cost more than
 * rebuilding a lost file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "wivaudit/atomic_file.h"
#include "wivaudit/cachedir.h"

int wiv_atomic_write(int dir_fd, const char *name, const void *data,
		     size_t len)
{
	char tmp[WIV_CACHEDIR_TMP_LEN];
	const char *p = data;
	size_t done = 0;
	int fd, err = wiv_cachedir_tmp_create(dir_fd, tmp, &fd);

	if (err)
		return err;
	while (!err && done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0 && errno != EINTR)
			err = errno;
		else if (n > 0)
			done += (size_t)n;
	}
	/* renameat replaces a symlink at name, never what it points to. */
	if (!err && renameat(dir_fd, tmp, dir_fd, name) != 0)
		err = errno;
	if (err)
		unlinkat(dir_fd, tmp, 0);
	if (close(fd) != 0 && !err)
		err = errno;
	return err;
}
