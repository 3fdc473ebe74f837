/* One log function for the whole daemon: stderr in the foreground, syslog
 * once daemonized. Messages never contain secrets.
 *
 * Every line is escaped whole after formatting (escape.h): a control byte,
 * C1 control, backslash or invalid UTF-8 byte in any argument (a key, an
 * event field, an ETag, a server's error text) prints as a visible escape,
 * so a key holding a newline cannot forge a second line and no ESC reaches
 * the terminal. Pass untrusted text raw with %s; never escape it first (it
 * would be escaped twice) and never put a newline in a format. */
#ifndef WIVAUDIT_LOG_H
#define WIVAUDIT_LOG_H

#include <stdbool.h>

enum wiv_log_level { WIV_LOG_ERR, WIV_LOG_WARN, WIV_LOG_INFO, WIV_LOG_DEBUG };

/* Logs one line (no trailing newline needed), escaped. Thread-safe. A line
 * longer than 4 KiB is cut, and the cut marked with WIV_ESC_CUT. */
void wiv_log(enum wiv_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Debug lines are dropped unless enabled (-d). */
void wiv_log_set_debug(bool enabled);
bool wiv_log_debug_enabled(void);

/* From now on, lines go to syslog(3) (ident "wivaudit") instead of stderr. */
void wiv_log_use_syslog(void);

#define wiv_err(...) wiv_log(WIV_LOG_ERR, __VA_ARGS__)
#define wiv_warn(...) wiv_log(WIV_LOG_WARN, __VA_ARGS__)
#define wiv_info(...) wiv_log(WIV_LOG_INFO, __VA_ARGS__)
#define wiv_debug(...) wiv_log(WIV_LOG_DEBUG, __VA_ARGS__)

#endif
