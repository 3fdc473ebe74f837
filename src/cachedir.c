/* The default cache directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wivaudit/cachedir.h"

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
