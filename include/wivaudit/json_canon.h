/* Validation and canonical form of one JSON value in a single pass, without
 * building a tree: what the splitter needs of every event to tell a
 * re-delivery (the same value, members in any order) from another event.
 *
 * The grammar is RFC 8259's, as strict as jansson's decoder: UTF-8 checked,
 * no unescaped control bytes, no lone surrogates, no NUL in member names,
 * nesting at most WIV_JSON_MAX_DEPTH deep; "\u0000" in strings is allowed.
 *
 * Two texts get the same canonical bytes exactly when they hold the same
 * value up to the order of object members: every value starts with a tag;
 * strings and names are their decoded bytes behind their length; integers
 * that fit 64 bits are their value, other numbers the double they round to
 * (an integer and a real stay apart, as in jansson), or their text when no
 * double holds them; members are sorted by name, and of members with one
 * name the last counts. */
#ifndef WIVAUDIT_JSON_CANON_H
#define WIVAUDIT_JSON_CANON_H

#include <stdbool.h>
#include <stddef.h>

#include "wivaudit/json_layout.h"

enum wiv_json_type {
	WIV_JSON_OBJECT,
	WIV_JSON_ARRAY,
	WIV_JSON_STRING,
	WIV_JSON_NUMBER,
	WIV_JSON_BOOLEAN,
	WIV_JSON_NULL,
};

/* State reused from value to value; zero-initialise, wiv_json_canon_free. */
struct wiv_json_canon {
	struct wiv_jbuf out;   /* canonical bytes of the last value */
	struct wiv_jbuf names; /* decoded names of its top-level members */
	struct wiv_jbuf tmp;
	struct wiv_jbuf members; /* canon_member records of the objects
				    being read */
	struct wiv_jbuf top;     /* canon_top records: top-level members, in
				    text order */
	char error[96];        /* why the last value was refused */
};

/* Reads the JSON text (one value, whitespace around it allowed) into
 * c->out and sets *type. Returns 0, EINVAL (c->error says why), or ENOMEM. */
int wiv_json_canon(struct wiv_json_canon *c, const char *text, size_t len,
		   enum wiv_json_type *type);

/* For an object just read: the raw text of its last top-level member named
 * name (raw points into the text given to wiv_json_canon). */
bool wiv_json_canon_member(const struct wiv_json_canon *c, const char *name,
			   const char **raw, size_t *raw_len);

/* Decodes a string token (quotes included) that wiv_json_canon accepted
 * into out, followed by a NUL that out->len does not count. Returns 0 or
 * ENOMEM. */
int wiv_json_decode_string(const char *raw, size_t len, struct wiv_jbuf *out);

/* Frees what c holds. */
void wiv_json_canon_free(struct wiv_json_canon *c);

#endif
