/* Re-layout of raw JSON text as `jq .` (or `jq -c`) prints it, without ever
 * decoding a string or a number: an event file must show escapes and number
 * text exactly as Wiv delivered them, which no parse-and-dump round trip
 * guarantees (jansson prints 0.1 as 0.10000000000000001, jq turns 1e400 into
 * 1.7976931348623157e+308, both decode "\u00e9"). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/json_layout.h"

/* Bytes that end a scalar (a number or a literal). */
static inline bool ends_scalar(char c)
{
	switch (c) {
	case ' ':
	case '\t':
	case '\n':
	case '\r':
	case ',':
	case ':':
	case '[':
	case ']':
	case '{':
	case '}':
	case '"':
		return true;
	}
	return false;
}

int wiv_jbuf_reserve(struct wiv_jbuf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return ENOMEM;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int wiv_jbuf_append(struct wiv_jbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	int rc = wiv_jbuf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

void wiv_jbuf_free(struct wiv_jbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* p is at an opening quote. memchr finds quote candidates quickly; a quote
 * is escaped exactly when an odd run of backslashes precedes it (the run is
 * maximal, so its first backslash always starts an escape). */
static const char *string_end(const char *p, const char *end)
{
	const char *start = ++p;
	for (;;) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		if (!q)
			return NULL;
		const char *b = q;
		while (b > start && b[-1] == '\\')
			b--;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
}

static const char *scalar_end(const char *p, const char *end)
{
	while (p < end && !ends_scalar(*p))
		p++;
	return p;
}

const char *wiv_json_value_end(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return string_end(p, end);
	if (*p != '{' && *p != '[') {
		const char *q = scalar_end(p, end);
		return q > p ? q : NULL;
	}
	size_t depth = 0;
	while (p < end) {
		switch (*p) {
		case '"':
			p = string_end(p, end);
			if (!p)
				return NULL;
			continue;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	return NULL;
}

/* What the grammar allows next. */
enum expect { X_VALUE, X_KEY, X_COLON, X_NEXT, X_DONE };

struct layout {
	struct wiv_jbuf *out;
	bool pretty;
	size_t depth;
	/* One bit per open container: set for an object. */
	unsigned char is_object[WIV_JSON_MAX_DEPTH / 8];
};

/* out always has room for what the layout of the rest of the input needs
 * in compact form (see wiv_json_layout_buf), so only pretty output grows. */
static inline int put(struct layout *l, const char *p, size_t n)
{
	struct wiv_jbuf *b = l->out;
	if (b->cap - b->len < n) {
		int rc = wiv_jbuf_reserve(b, n);
		if (rc)
			return rc;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Starts a new line at the current depth (pretty only). */
static int newline(struct layout *l)
{
	if (!l->pretty)
		return 0;
	size_t n = 1 + 2 * l->depth;
	int rc = wiv_jbuf_reserve(l->out, n);
	if (rc)
		return rc;
	char *o = l->out->data + l->out->len;
	o[0] = '\n';
	memset(o + 1, ' ', n - 1);
	l->out->len += n;
	return 0;
}

static bool in_object(const struct layout *l)
{
	size_t d = l->depth - 1;
	return l->is_object[d / 8] & (1u << (d % 8));
}

static int open_container(struct layout *l, char c)
{
	if (l->depth == WIV_JSON_MAX_DEPTH)
		return EINVAL;
	size_t d = l->depth++;
	if (c == '{')
		l->is_object[d / 8] |= (unsigned char)(1u << (d % 8));
	else
		l->is_object[d / 8] &= (unsigned char)~(1u << (d % 8));
	int rc = put(l, &c, 1);
	return rc ? rc : newline(l);
}

int wiv_json_layout_buf(struct wiv_jbuf *out, const char *raw, size_t len,
			enum wiv_layout layout)
{
	struct layout l = {.out = out, .pretty = layout == WIV_LAYOUT_PRETTY};
	const char *p = raw, *end = raw + len;
	enum expect x = X_VALUE;
	int rc = 0;

	out->len = 0;
	/* Compact output never outgrows its input, its newline and NUL:
	 * one reservation up front keeps put() off the slow path. */
	if (len > SIZE_MAX - 2)
		return ENOMEM;
	rc = wiv_jbuf_reserve(out, len + 2);
	if (rc)
		return rc;
	for (p = wiv_json_skip_ws(p, end); p < end && !rc;
	     p = wiv_json_skip_ws(p, end)) {
		char c = *p;
		const char *q;

		switch (x) {
		case X_DONE:
			return EINVAL;
		case X_COLON:
			if (c != ':')
				return EINVAL;
			rc = l.pretty ? put(&l, ": ", 2) : put(&l, ":", 1);
			x = X_VALUE;
			p++;
			continue;
		case X_NEXT:
			if (c == ',') {
				rc = put(&l, ",", 1);
				if (!rc)
					rc = newline(&l);
				x = in_object(&l) ? X_KEY : X_VALUE;
			} else if (c == (in_object(&l) ? '}' : ']')) {
				l.depth--;
				rc = newline(&l);
				if (!rc)
					rc = put(&l, &c, 1);
				x = l.depth ? X_NEXT : X_DONE;
			} else {
				return EINVAL;
			}
			p++;
			continue;
		case X_KEY:
			if (c != '"')
				return EINVAL;
			break;
		case X_VALUE:
			break;
		}

		if (c == '"') {
			q = string_end(p, end);
			if (!q)
				return EINVAL;
			rc = put(&l, p, (size_t)(q - p));
			x = x == X_KEY ? X_COLON : l.depth ? X_NEXT : X_DONE;
			p = q;
		} else if (c == '{' || c == '[') {
			/* jq prints an empty container as {} or [] on one line.
			 */
			char close = c == '{' ? '}' : ']';
			q = wiv_json_skip_ws(p + 1, end);
			if (q < end && *q == close) {
				char pair[2] = {c, close};
				rc = put(&l, pair, 2);
				x = l.depth ? X_NEXT : X_DONE;
				p = q + 1;
			} else {
				rc = open_container(&l, c);
				x = c == '{' ? X_KEY : X_VALUE;
				p++;
			}
		} else {
			q = scalar_end(p, end);
			if (q == p)
				return EINVAL;
			rc = put(&l, p, (size_t)(q - p));
			x = l.depth ? X_NEXT : X_DONE;
			p = q;
		}
	}
	if (rc)
		return rc;
	if (x != X_DONE)
		return EINVAL;
	rc = wiv_jbuf_reserve(out, 2);
	if (rc)
		return rc;
	out->data[out->len++] = '\n';
	out->data[out->len] = '\0';
	return 0;
}

char *wiv_json_layout(const char *raw, size_t len, enum wiv_layout layout,
		      size_t *out_len)
{
	struct wiv_jbuf out = {0};
	if (wiv_json_layout_buf(&out, raw, len, layout)) {
		wiv_jbuf_free(&out);
		return NULL;
	}
	*out_len = out.len;
	return out.data;
}
