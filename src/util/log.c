/* Logging: stderr while in the foreground, syslog once daemonized. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <pthread.h>

#include "wivaudit/escape.h"
#include "wivaudit/log.h"

static bool debug_enabled;
static bool use_syslog;
static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
	[WIV_LOG_ERR] = "error",
	[WIV_LOG_WARN] = "warning",
	[WIV_LOG_INFO] = "info",
	[WIV_LOG_DEBUG] = "debug",
};

static const int syslog_priorities[] = {
	[WIV_LOG_ERR] = LOG_ERR,
	[WIV_LOG_WARN] = LOG_WARNING,
	[WIV_LOG_INFO] = LOG_INFO,
	[WIV_LOG_DEBUG] = LOG_DEBUG,
};

void wiv_log(enum wiv_log_level level, const char *fmt, ...)
{
	if (level == WIV_LOG_DEBUG && !debug_enabled)
		return;

	/* The whole line is escaped, format text included: no argument can
	 * slip through unescaped, whatever the call site forgot. */
	char line[WIV_ESC_LINE_SIZE];
	va_list ap;
	va_start(ap, fmt);
	wiv_escape_vformat(line, fmt, ap);
	va_end(ap);

	if (use_syslog) {
		syslog(syslog_priorities[level], "%s", line);
		return;
	}
	/* One fprintf per line under a lock keeps lines from threads whole. */
	pthread_mutex_lock(&stderr_lock);
	fprintf(stderr, "wivaudit: %s: %s\n", level_names[level], line);
	pthread_mutex_unlock(&stderr_lock);
}

void wiv_log_set_debug(bool enabled)
{
	debug_enabled = enabled;
}

bool wiv_log_debug_enabled(void)
{
	return debug_enabled;
}

void wiv_log_use_syslog(void)
{
	openlog("wivaudit", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}
