/* A small open-addressing map from byte strings to 32-bit values. Keys are
 * borrowed: they must outlive the map. Used for per-directory name lookup
 * and re-delivery detection, where a node-per-entry map would cost more than
 * the entries themselves. */
#ifndef WIVAUDIT_STRMAP_H
#define WIVAUDIT_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wiv_strmap_slot {
	const char *key;
	size_t len;
	uint64_t hash;
	uint32_t value;
};

struct wiv_strmap {
	struct wiv_strmap_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

/* FNV-1a, 64 bits. */
uint64_t wiv_hash64(const void *data, size_t len);

/* Looks key up; returns true and sets *value if present. */
bool wiv_strmap_get(const struct wiv_strmap *m, const char *key, size_t len,
		    uint32_t *value);

/* Adds key (which must not be present). Returns 0 or ENOMEM. */
int wiv_strmap_put(struct wiv_strmap *m, const char *key, size_t len,
		   uint32_t value);

/* Frees the slots (not the keys) and empties the map. */
void wiv_strmap_clear(struct wiv_strmap *m);

#endif
