/* Small files replaced whole: readers (in this process or another daemon
 * sharing the directory) see the old content or the new, never a mix. */
#ifndef WIVAUDIT_ATOMIC_FILE_H
#define WIVAUDIT_ATOMIC_FILE_H

#include <stddef.h>

/* Writes len bytes of data to a temp file in dir_fd (mode 0600), then
 * renames it over name there. Returns 0 or errno (the temp file is
 * removed). */
int wiv_atomic_write(int dir_fd, const char *name, const void *data,
		     size_t len);

#endif
