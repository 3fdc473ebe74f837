/* The download pipeline of one object: source body → splitter → cache
 * entry. Memory stays bounded by one event whatever the object size. */
#ifndef WIVAUDIT_FETCH_H
#define WIVAUDIT_FETCH_H

#include <stdbool.h>

#include "wivaudit/cache.h"
#include "wivaudit/source.h"
#include "wivaudit/split.h"

/* Largest single event accepted; a bigger one makes its object bad. */
#define WIV_MAX_EVENT_BYTES (16u << 20)

struct wiv_fetch_request {
	struct wiv_source *source;
	struct wiv_cache *cache;
	enum wiv_layout layout;
	const char *key;
	const char *etag;
	const char *entry_id; /* the cache entry to write */
	uint64_t size;        /* as listed: any other body length is a fault */
	size_t max_events;    /* ceilings (wiv_splitter_set_limits; 0: none) */
	uint64_t max_bytes;
	bool cache_only;      /* offline: ENOENT rather than a download */
};

/* Returns the object's index from the cache, or (unless cache_only)
 * downloads, splits and caches it first. A body that is not a usable array
 * yields an index with status WIV_OBJECT_BAD (logged once by the splitter,
 * and remembered). One over a ceiling yields WIV_OBJECT_OVER_LIMIT (logged
 * and counted, not cached: the verdict depends on the mount's options).
 * Returns 0 with *out owned by the caller, or the source's errno (nothing
 * cached). */
int wiv_fetch_object(const struct wiv_fetch_request *req,
		     struct wiv_object_index **out);

#endif
