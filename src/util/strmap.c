/* Open addressing with linear probing; grown at half load. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/strmap.h"

uint64_t wiv_hash64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* The map's own hash, kept in memory only: eight bytes a step (names and
 * digests are tens of bytes, and a day's directory hashes each twice), then
 * murmur3's finalizer so that the low bits that pick a slot mix them all.
 * wiv_hash64 stays byte-wise because inode numbers derive from it. */
static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;
	for (; len >= 8; key += 8, len -= 8) {
		memcpy(&w, key, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	if (len) {
		w = 0;
		memcpy(&w, key, len);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

bool wiv_strmap_get(const struct wiv_strmap *m, const char *key, size_t len,
		    uint32_t *value)
{
	if (m->cap == 0)
		return false;
	uint64_t h = key_hash(key, len);
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct wiv_strmap_slot *s = &m->slots[i];
		if (!s->key)
			return false;
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
			*value = s->value;
			return true;
		}
	}
}

static void insert_slot(struct wiv_strmap_slot *slots, size_t cap,
			const struct wiv_strmap_slot *slot)
{
	size_t i = slot->hash & (cap - 1);
	while (slots[i].key)
		i = (i + 1) & (cap - 1);
	slots[i] = *slot;
}

static int grow(struct wiv_strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct wiv_strmap_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			insert_slot(slots, cap, &m->slots[i]);
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int wiv_strmap_put(struct wiv_strmap *m, const char *key, size_t len,
		   uint32_t value)
{
	if ((m->n + 1) * 2 > m->cap && grow(m) != 0)
		return ENOMEM;
	struct wiv_strmap_slot slot = {
		.key = key, .len = len, .hash = key_hash(key, len),
		.value = value};
	insert_slot(m->slots, m->cap, &slot);
	m->n++;
	return 0;
}

void wiv_strmap_clear(struct wiv_strmap *m)
{
	free(m->slots);
	*m = (struct wiv_strmap){0};
}
