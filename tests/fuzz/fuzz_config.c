/* libFuzzer harness for the JSON configuration file: the input is the file,
 * read through wiv_config_load with WIVAUDIT_CONFIG naming a memfd.
 * Properties beyond "no crash": success means a non-empty bucket_name, and
 * a failure comes with a one-line message naming the file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wivaudit/config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("config.json", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	setenv("WIVAUDIT_CONFIG", path, 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (ftruncate(fd, 0) != 0 ||
	    (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	struct wiv_config cfg;
	char err[512];
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	int rc = wiv_config_load(&cfg, err, sizeof(err));
	if (rc == 0) {
		if (!cfg.path || strcmp(cfg.path, path) != 0 ||
		    !cfg.bucket_name || !cfg.bucket_name[0])
			abort();
		wiv_config_free(&cfg);
	} else if (strnlen(err, sizeof(err)) >= sizeof(err) ||
		   strchr(err, '\n') || !strstr(err, path)) {
		abort();
	}
	return 0;
}
