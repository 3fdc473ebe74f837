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

/* Writes the listing named listing_id under dir/listings. Returns 0 or
 * errno (logged). */
int wiv_listing_save(const char *dir, const char *listing_id,
		     const struct wiv_listing *l);

/* Reads a listing. Returns 0 with *out owned by the caller, ENOENT if there
 * is none, or EBADMSG if it is damaged (then removed, and logged). */
int wiv_listing_load(const char *dir, const char *listing_id,
		     struct wiv_listing **out);

/* Checks the listing file at path (checksum and syntax) without changing
 * it. Returns 0, EBADMSG if it is damaged, or errno. */
int wiv_listing_check_file(const char *path);

/* Frees a listing; NULL is a no-op. */
void wiv_listing_free(struct wiv_listing *l);

#endif
