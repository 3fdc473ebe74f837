/* Listings kept on disk beside the object cache, so that a remount (or an
 * offline mount) starts from the last tree seen instead of re-listing the
 * bucket. Each listing is one small text file with a checksum, written to a
 * temp file and renamed into place. */
#ifndef WIVAUDIT_LISTING_STORE_H
#define WIVAUDIT_LISTING_STORE_H

#include <stddef.h>
#include <stdint.h>

struct wiv_listing_entry {
	char *key;  /* an object key, or an org name in the root listing */
	char *etag; /* "" for org names */
	uint64_t size; /* object size in bytes; 0 for org names */
	char *storage_class; /* as listed, "" if none; NULL for org names */
};

struct wiv_listing {
	int64_t listed_at; /* wall-clock seconds of the LIST it came from */
	size_t n;
	struct wiv_listing_entry *entries;
};

/* Writes the listing named listing_id under listings/ of the cache
 * directory open on cache_fd. Returns 0 or errno (logged once per cause;
 * ELOOP: listings/ is a symlink, not followed). */
int wiv_listing_save(int cache_fd, const char *listing_id,
		     const struct wiv_listing *l);

/* Reads a listing. Returns 0 with *out owned by the caller, ENOENT if there
 * is none, EBADMSG if it is damaged (then removed, and logged), ELOOP if
 * listings/ is a symlink (logged, not followed), or EIO. */
int wiv_listing_load(int cache_fd, const char *listing_id,
		     struct wiv_listing **out);

/* Checks the listing file name in the directory dir_fd (checksum and
 * syntax) without changing it or following a symlink. Returns 0, EBADMSG
 * if it is damaged, or errno (ELOOP for a symlink). */
int wiv_listing_check_file(int dir_fd, const char *name);

/* Frees a listing; NULL is a no-op. */
void wiv_listing_free(struct wiv_listing *l);

#endif
