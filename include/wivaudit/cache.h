/* On-disk cache of split objects. One entry per (source, key, ETag, layout):
 * a single file holding every event's laid-out text followed by an index of
 * the events, written to a temp file and renamed into place, with checksums
 * so that a damaged entry is detected on use rather than served. */
#ifndef WIVAUDIT_CACHE_H
#define WIVAUDIT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wivaudit/split.h"

struct wiv_cache;
struct wiv_cache_writer;

/* One event as recorded in an entry's index. */
struct wiv_cached_event {
	uint64_t offset;     /* of the text inside the entry's data */
	uint32_t length;     /* text length, the file's st_size */
	uint32_t crc;        /* crc32 of the text */
	uint32_t position;   /* index in the object's array */
	enum wiv_id_kind id_kind;
	bool has_created_at;
	double created_at;
	char *id;            /* id bytes (see wiv_id_kind), NUL-terminated too */
	size_t id_len;
	char *event_type;    /* NULL if the event had none */
	uint8_t digest[WIV_DIGEST_LEN];
};

enum wiv_object_status {
	WIV_OBJECT_OK,
	WIV_OBJECT_BAD, /* the body was unusable; remembered so it is logged once */
};

/* The index of one object, as loaded from or written to the cache. */
struct wiv_object_index {
	enum wiv_object_status status;
	size_t n_events;
	struct wiv_cached_event *events;
};

/* Opens (creating, 0700) the cache directory. max_bytes bounds the total
 * size of entries; least recently used entries are evicted beyond it.
 * Returns a new cache, or NULL with a one-line message in err. */
struct wiv_cache *wiv_cache_open(const char *dir, uint64_t max_bytes, char *err,
				 size_t errlen);

/* Closes the cache; NULL is a no-op. */
void wiv_cache_close(struct wiv_cache *c);

/* entry_id names an entry; callers build it from source identity, key, ETag
 * and layout. Loads that entry's index into *out (caller frees with
 * wiv_object_index_free) and marks the entry recently used. Returns 0,
 * ENOENT if absent, or EBADMSG if damaged (the entry is then removed and
 * logged with key_for_log). */
int wiv_cache_lookup(struct wiv_cache *c, const char *entry_id,
		     const char *key_for_log, struct wiv_object_index **out);

/* Starts writing an entry. Returns NULL (errno set) on failure. */
struct wiv_cache_writer *wiv_cache_writer_new(struct wiv_cache *c,
					      const char *entry_id);

/* Appends one event. Returns 0 or a positive errno. */
int wiv_cache_writer_add(struct wiv_cache_writer *w, const struct wiv_event *ev);

/* Finishes the entry atomically (fsync-free temp file + rename), frees w,
 * and returns its index in *out (caller frees). With status BAD the events
 * added are dropped and only the verdict is stored. Returns 0 or errno. */
int wiv_cache_writer_commit(struct wiv_cache_writer *w,
			    enum wiv_object_status status,
			    struct wiv_object_index **out);

/* Discards an unfinished entry and frees w; NULL is a no-op. */
void wiv_cache_writer_abort(struct wiv_cache_writer *w);

/* Reads one event's text (ev->length bytes) into buf and checks its crc.
 * Returns 0, ENOENT if the entry is gone (evicted), or EBADMSG if damaged
 * (the entry is then removed and logged with key_for_log). */
int wiv_cache_read_event(struct wiv_cache *c, const char *entry_id,
			 const char *key_for_log,
			 const struct wiv_cached_event *ev, char *buf);

/* Frees an index; NULL is a no-op. */
void wiv_object_index_free(struct wiv_object_index *idx);

#endif
