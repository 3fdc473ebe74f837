/* Streaming splitter: the body of one audit object (gzip of a JSON array, or
 * a plain JSON array) in, one laid-out event at a time out. Memory is bounded
 * by the largest single event, never by the object size. */
#ifndef WIVAUDIT_SPLIT_H
#define WIVAUDIT_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wiv_layout {
	WIV_LAYOUT_PRETTY,  /* as `jq .`: 2-space indent, "key": value */
	WIV_LAYOUT_COMPACT, /* as `jq -c`: one line */
};

enum wiv_id_kind {
	WIV_ID_NONE,   /* missing, empty string, or not a string/number */
	WIV_ID_STRING, /* id holds the decoded string bytes (may hold NUL) */
	WIV_ID_NUMBER, /* id holds the number's JSON text as delivered */
};

#define WIV_DIGEST_LEN 16

struct wiv_event {
	size_t position;          /* index in the array, counting skipped elements */
	const char *text;         /* laid-out event, ends with one '\n' */
	size_t text_len;
	enum wiv_id_kind id_kind;
	const char *id;           /* see wiv_id_kind; NULL for WIV_ID_NONE */
	size_t id_len;
	bool has_created_at;      /* created_at present and a JSON number */
	double created_at;        /* epoch seconds */
	const char *event_type;   /* NUL-terminated, NULL if missing/not a string */
	/* Truncated SHA-256 of the event's canonical form (json_canon.h):
	 * equal digests mean a re-delivery of the same event. */
	uint8_t digest[WIV_DIGEST_LEN];
};

/* Called once per valid event (a JSON object), in array order. Pointers are
 * borrowed until the callback returns. Return 0 to go on, non-zero to stop. */
typedef int (*wiv_event_fn)(void *arg, const struct wiv_event *ev);

struct wiv_splitter;

/* Returns a new splitter; key is only used in log lines. max_event_bytes
 * bounds one event's raw text (larger: the object is rejected). */
struct wiv_splitter *wiv_splitter_new(enum wiv_layout layout,
				      size_t max_event_bytes, const char *key,
				      wiv_event_fn on_event, void *arg);

/* Ceilings on one object, far above what Wiv writes (a few thousand events,
 * a few MB): they bound the memory, disk and CPU a hostile object costs. */
#define WIV_DEFAULT_MAX_OBJECT_EVENTS 200000u
#define WIV_DEFAULT_MAX_OBJECT_BYTES (256ull << 20)

/* Bounds the object: more than max_elements array elements (objects or
 * not) or more than max_bytes of decompressed body make it over a ceiling
 * (EFBIG, logged once with the limit and the key). The decompressed bytes
 * also bound the inflating a gzip bomb costs. 0: no ceiling (the default). */
void wiv_splitter_set_limits(struct wiv_splitter *s, size_t max_elements,
			     uint64_t max_bytes);

/* Feeds the next bytes of the body (compressed or plain, as delivered).
 * Returns 0, EBADMSG if the body is already known to be bad (logged once
 * with the key), EFBIG if it is over a ceiling (likewise), or ECANCELED if
 * on_event asked to stop. */
int wiv_splitter_feed(struct wiv_splitter *s, const void *data, size_t len);

/* Ends the body. Returns 0 if the whole body was a good array (gzip CRC and
 * length checked, array closed), else EBADMSG or EFBIG (logged once with
 * the key).
 * A caller must discard events of a body that did not finish with 0. */
int wiv_splitter_finish(struct wiv_splitter *s);

/* Number of non-object elements skipped so far (each logged). */
size_t wiv_splitter_skipped(const struct wiv_splitter *s);

/* Frees the splitter; NULL is a no-op. */
void wiv_splitter_free(struct wiv_splitter *s);

/* Lays out one complete JSON value given as raw text (no validation beyond
 * what layout needs): strings and numbers are copied byte for byte, only
 * whitespace changes. Returns a malloc'd NUL-terminated string ending in
 * '\n' with its length in *out_len, or NULL if the text is not one value. */
char *wiv_json_layout(const char *raw, size_t len, enum wiv_layout layout,
		      size_t *out_len);

#endif
