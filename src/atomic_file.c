/* Temp file + rename. No fsync: every reader of these files checks what it
 * reads (or can live with an older copy), and syncing on every listing
 * refresh would cost more than rebuilding a lost file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "wivaudit/atomic_file.h"

int wiv_atomic_write(const char *path, const void *data, size_t len)
{
	/* Unique per process and call, so that threads and daemons sharing a
	 * directory never write the same temp file. */
	static unsigned counter;
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%u", path, (int)getpid(),
		 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));

	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      0600);
	if (fd < 0)
		return errno;
	int err = 0;
	if (write(fd, data, len) != (ssize_t)len)
		err = errno ? errno : EIO;
	if (close(fd) != 0 && !err)
		err = errno;
	if (!err && rename(tmp, path) != 0)
		err = errno;
	if (err)
		unlink(tmp);
	return err;
}
