/* The one escaping rule for text that came from the bucket or an event (keys,
 * event fields, ETags, server error bodies, names under the cache) before it
 * is printed anywhere: a log line, a terminal, a report.
 *
 *   backslash          \\        (so no escape below can be forged)
 *   \n \r \t           \n \r \t
 *   other C0, DEL      \xNN      (\x1b, \x07, \x7f; lowercase hex)
 *   C1 (U+0080-U+009F) \u00NN    (\u009b: a one-byte CSI on some terminals)
 *   invalid UTF-8      \xNN per byte (overlong forms, surrogates, code
 *                      points over U+10FFFF, truncated sequences, stray
 *                      continuation bytes)
 *   anything else      unchanged (valid UTF-8 stays readable)
 *
 * wiv_log applies it to every line it prints (log.h), so log call sites pass
 * raw text. Everything else that prints untrusted text (the wivaudit
 * command's reports and errors) passes it through wiv_esc(). */
#ifndef WIVAUDIT_ESCAPE_H
#define WIVAUDIT_ESCAPE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Appended where the escaped text did not fit. */
#define WIV_ESC_CUT "[...]"

/* Escapes len bytes of in into out (cap >= sizeof(WIV_ESC_CUT) bytes),
 * always NUL-terminated. What does not fit is dropped at a whole escape and
 * WIV_ESC_CUT marks the cut. Returns the length written. 4 * len + 1 bytes
 * always suffice. */
size_t wiv_escape(const char *in, size_t len, char *out, size_t cap);

/* Room for a key (1024 bytes) escaped byte by byte, or a long path. */
#define WIV_ESC_SIZE 8192

struct wiv_esc {
	char s[WIV_ESC_SIZE];
};

/* s escaped (NULL gives "(null)"), for use inside one printf call:
 * printf("%s\n", wiv_esc(key).s). The array lives until the end of the full
 * expression (C11 6.2.4p8), so never keep the pointer. */
struct wiv_esc wiv_esc(const char *s);

/* A formatted line is cut at this many bytes before escaping. */
#define WIV_ESC_LINE_RAW 4096
#define WIV_ESC_LINE_SIZE (4 * WIV_ESC_LINE_RAW + sizeof(WIV_ESC_CUT))

/* vsnprintf, then the whole result escaped into out (WIV_ESC_LINE_SIZE
 * bytes), the cut marked if the line was longer than WIV_ESC_LINE_RAW: for
 * one-line messages whose arguments may come from the bucket. */
void wiv_escape_vformat(char *out, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Writes s to f as one POSIX shell word, so that a printed command can be
 * pasted whatever a bucket name or key holds: as is when it is made of
 * plain characters only, else single-quoted (a quote as '\''). This quotes;
 * it does not escape controls (the printing site still does). */
void wiv_escape_shell_word(FILE *f, const char *s);

#endif
