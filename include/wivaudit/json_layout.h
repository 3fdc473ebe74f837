/* JSON text helpers shared by the splitter: layout into a reused buffer and
 * a raw value scanner. They look at structure only (strings and numbers are
 * opaque byte runs); the splitter validates each event first (json_canon.h). */
#ifndef WIVAUDIT_JSON_LAYOUT_H
#define WIVAUDIT_JSON_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "wivaudit/split.h"

/* Nesting deeper than this is refused, as jansson refuses it. */
#define WIV_JSON_MAX_DEPTH 2048

/* A growable byte buffer, reused from event to event. */
struct wiv_jbuf {
	char *data;
	size_t len;
	size_t cap;
};

/* Makes room for n more bytes after len. Returns 0 or ENOMEM. */
int wiv_jbuf_reserve(struct wiv_jbuf *b, size_t n);

/* Appends n bytes. Returns 0 or ENOMEM. */
int wiv_jbuf_append(struct wiv_jbuf *b, const void *p, size_t n);

/* Frees the bytes and empties the buffer. */
void wiv_jbuf_free(struct wiv_jbuf *b);

static inline bool wiv_json_is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Returns the first non-whitespace byte at or after p, or end. */
static inline const char *wiv_json_skip_ws(const char *p, const char *end)
{
	/* Most calls stop at once, on a byte above ' '. */
	while (p < end && (unsigned char)*p <= ' ' && wiv_json_is_ws(*p))
		p++;
	return p;
}

/* Replaces out's contents with the layout of raw (see wiv_json_layout),
 * followed by a NUL that out->len does not count. Returns 0, EINVAL if raw is
 * not one JSON value or nests deeper than WIV_JSON_MAX_DEPTH, or ENOMEM. */
int wiv_json_layout_buf(struct wiv_jbuf *out, const char *raw, size_t len,
			enum wiv_layout layout);

/* Returns the end of the value whose first byte is at p (a string, a
 * container with its brackets balanced, or a scalar run), or NULL if it does
 * not end before end. */
const char *wiv_json_value_end(const char *p, const char *end);

#endif
