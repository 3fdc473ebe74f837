/* On-disk cache of split objects.
 *
 * Layout: <dir>/objects/ab/abcdef....wvc, one file per entry, named by the
 * hex SHA-256 of the entry id. A file is
 *
 *	header   HDR_LEN bytes, little-endian (see H_* offsets)
 *	data     the event texts back to back
 *	index    n_events records: REC_FIXED bytes (see R_* offsets), then the
 *	         id bytes, then the event_type bytes
 *	key      the object key, for messages and `wivaudit cache verify`
 *
 * The header carries its own crc32, the crc32s of the index and of the key,
 * and the SHA-256 of the entry id (a file copied under another name is
 * refused); each record carries the crc32 of its text, checked on every
 * read. Entries are written to a temp file in the same directory and renamed
 * into place, so readers (in this process or another daemon sharing the
 * directory) only ever see whole entries; a crash leaves at worst a stray
 * temp file, removed by a later open. No fsync: after a power loss a torn
 * entry fails its checks and is refetched, which is cheaper than syncing
 * every object.
 *
 * An entry that cannot be kept on disk (larger than cache_size, a full
 * filesystem even after eviction, a write error, a symlink in the way) is
 * written to a memfd in the same format instead: served from memory, not
 * kept. See cache_space.c for the bounds, cache_files.c for how entry files
 * are reached. */
#include "wivaudit/cache.h"
#include "cache_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "wivaudit/cachedir.h"
#include "wivaudit/log.h"
#include "wivaudit/mount_stats.h"

#define MAGIC "WIVCACHE"
/* Entries of another version are refetched, never converted. */
#define FORMAT_VERSION 3

#define H_MAGIC 0
#define H_VERSION 8
#define H_STATUS 12
#define H_N_EVENTS 16
#define H_INDEX_CRC 20
#define H_DATA_LEN 24
#define H_INDEX_LEN 32
#define H_ID_HASH 40
#define H_KEY_LEN 72
#define H_KEY_CRC 76
#define H_CRC 80
#define HDR_LEN 84
/* S3 keys are at most 1024 bytes; anything longer is damage. */
#define MAX_KEY_LEN 4096

#define R_OFFSET 0
#define R_LENGTH 8
#define R_CRC 12
#define R_POSITION 16
#define R_ID_KIND 20
#define R_HAS_CREATED 21
#define R_CREATED 22
#define R_ID_LEN 30
#define R_TYPE_LEN 34
#define R_DIGEST 38
#define REC_FIXED (R_DIGEST + WIV_DIGEST_LEN)

#define NO_TYPE UINT32_MAX

/* The reason given for an entry of another format version: not damage. */
static const char other_version[] = "written by another version";

#define NAME_LEN WIV_CACHE_NAME_LEN
/* The stats file of a mount is rewritten at most this often (ms). */
#define PUBLISH_INTERVAL_MS 1000
#define WRITE_BUF (64 * 1024)

struct wiv_cache_writer {
	struct wiv_cache *c;
	char *key;
	uint8_t hash[SHA256_DIGEST_LENGTH];
	char name[NAME_LEN];
	char tmp[WIV_CACHEDIR_TMP_LEN];
	int sub_fd; /* objects/XX; -1 once in memory */
	int fd;	    /* the temp file, or the memfd once in memory */
	bool in_memory;
	uint64_t held; /* of cache_size, for the temp file */
	uint64_t written_end; /* of what the temp file holds */
	uint32_t n_events;
	uint64_t data_len; /* text bytes added, flushed or not */
	uint64_t flushed;
	unsigned char *index;
	size_t index_len, index_cap;
	size_t buf_len;
	unsigned char buf[WRITE_BUF];
};

/* What wiv_object_index_free releases: one block holding the index, its
 * events and their strings. */
struct index_block {
	struct wiv_object_index idx;
	struct wiv_cached_event events[];
};

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t crc(const void *p, size_t len)
{
	return (uint32_t)crc32_z(0, p, len);
}

static void entry_name(const char *entry_id, uint8_t hash[SHA256_DIGEST_LENGTH],
		       char name[NAME_LEN])
{
	static const char hex[] = "0123456789abcdef";

	SHA256((const unsigned char *)entry_id, strlen(entry_id), hash);
	name[0] = hex[hash[0] >> 4];
	name[1] = hex[hash[0] & 15];
	name[2] = '/';
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		name[3 + 2 * i] = hex[hash[i] >> 4];
		name[4 + 2 * i] = hex[hash[i] & 15];
	}
	memcpy(name + 3 + 2 * SHA256_DIGEST_LENGTH, WIV_CACHE_SUFFIX, sizeof(WIV_CACHE_SUFFIX));
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		done += (size_t)n;
	}
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes a damaged entry, but only if name still is the file fd reads:
 * another thread may already have removed it, or replaced it with a good
 * copy. Logs once per removal. */
static void discard(struct wiv_cache *c, const char *name, int fd,
		    const char *key_for_log, const char *why)
{
	struct stat a, b;

	if (fstat(fd, &a) == 0 && wiv_cache_stat_entry(c, name, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
	    wiv_cache_unlink_entry(c, name) == 0) {
		wiv_cache_space_removed(c, (uint64_t)b.st_size);
		if (why == other_version)
			wiv_info("cache: replacing the entry for %s (%s)",
				 key_for_log, why);
		else
			wiv_warn("cache: removed damaged entry for %s (%s)",
				 key_for_log, why);
	}
	wiv_cache_slot_forget(c, name);
}

/* --- index encoding -------------------------------------------------- */

/* Decodes and validates n index records against a data section of data_len
 * bytes. Returns 0 with a new index in *out, ENOMEM, or EBADMSG with the
 * reason in *why. */
static int decode_index(const unsigned char *p, size_t len, uint32_t n,
			uint64_t data_len, enum wiv_object_status status,
			struct wiv_object_index **out, const char **why)
{
	struct index_block *b;
	char *strings;
	size_t pos = 0;

	if (n > len / REC_FIXED) {
		*why = "event count exceeds the index";
		return EBADMSG;
	}
	/* Strings take at most the index bytes plus two NULs per event. */
	b = malloc(sizeof(*b) + n * sizeof(b->events[0]) + len + 2 * (size_t)n);
	if (!b)
		return ENOMEM;
	strings = (char *)&b->events[n];
	b->idx.status = status;
	b->idx.n_events = n;
	b->idx.events = b->events;
	for (uint32_t i = 0; i < n; i++) {
		struct wiv_cached_event *ev = &b->events[i];
		const unsigned char *r = p + pos;
		uint32_t id_len, type_len;
		uint64_t bits;

		if (len - pos < REC_FIXED) {
			*why = "index record truncated";
			goto bad;
		}
		ev->offset = get_u64(r + R_OFFSET);
		ev->length = get_u32(r + R_LENGTH);
		ev->crc = get_u32(r + R_CRC);
		ev->position = get_u32(r + R_POSITION);
		if (ev->offset > data_len ||
		    ev->length > data_len - ev->offset) {
			*why = "index points past the data";
			goto bad;
		}
		if (r[R_ID_KIND] > WIV_ID_NUMBER || r[R_HAS_CREATED] > 1) {
			*why = "bad index record";
			goto bad;
		}
		ev->id_kind = (enum wiv_id_kind)r[R_ID_KIND];
		ev->has_created_at = r[R_HAS_CREATED];
		bits = get_u64(r + R_CREATED);
		memcpy(&ev->created_at, &bits, sizeof(bits));
		memcpy(ev->digest, r + R_DIGEST, WIV_DIGEST_LEN);
		id_len = get_u32(r + R_ID_LEN);
		type_len = get_u32(r + R_TYPE_LEN);
		pos += REC_FIXED;
		if (id_len > len - pos ||
		    (ev->id_kind == WIV_ID_NONE && id_len != 0)) {
			*why = "bad id length";
			goto bad;
		}
		ev->id = strings;
		ev->id_len = id_len;
		memcpy(strings, p + pos, id_len);
		strings[id_len] = '\0';
		strings += id_len + 1;
		pos += id_len;
		if (type_len == NO_TYPE) {
			ev->event_type = NULL;
			continue;
		}
		if (type_len > len - pos || memchr(p + pos, '\0', type_len)) {
			*why = "bad event_type length";
			goto bad;
		}
		ev->event_type = strings;
		memcpy(strings, p + pos, type_len);
		strings[type_len] = '\0';
		strings += type_len + 1;
		pos += type_len;
	}
	if (pos != len) {
		*why = "index size mismatch";
		goto bad;
	}
	*out = &b->idx;
	return 0;
bad:
	free(b);
	return EBADMSG;
}

/* The fields of an entry's header. */
struct header {
	uint32_t status, n_events, index_crc, key_len, key_crc;
	uint64_t data_len, index_len;
	uint8_t id_hash[SHA256_DIGEST_LENGTH];
};

/* Reads and checks the header of the entry file open on fd (stat st)
 * against the file's size. Returns 0, EBADMSG with the reason in *why,
 * EPROTONOSUPPORT for an entry of another format version, or errno. On a
 * header checksum mismatch *hd is filled all the same (for diagnosis). */
static int read_header(int fd, const struct stat *st, struct header *hd,
		       const char **why)
{
	unsigned char h[HDR_LEN];
	uint64_t rest;
	ssize_t got;

	if (!S_ISREG(st->st_mode)) {
		*why = "not a regular file";
		return EBADMSG;
	}
	got = pread_full(fd, h, HDR_LEN, 0);
	if (got < 0)
		return errno;
	if (got < HDR_LEN) {
		*why = "truncated header";
		return EBADMSG;
	}
	if (memcmp(h + H_MAGIC, MAGIC, 8) != 0) {
		*why = "not a cache entry";
		return EBADMSG;
	}
	if (get_u32(h + H_VERSION) != FORMAT_VERSION) {
		*why = other_version;
		return EPROTONOSUPPORT;
	}
	hd->status = get_u32(h + H_STATUS);
	hd->n_events = get_u32(h + H_N_EVENTS);
	hd->index_crc = get_u32(h + H_INDEX_CRC);
	hd->data_len = get_u64(h + H_DATA_LEN);
	hd->index_len = get_u64(h + H_INDEX_LEN);
	hd->key_len = get_u32(h + H_KEY_LEN);
	hd->key_crc = get_u32(h + H_KEY_CRC);
	memcpy(hd->id_hash, h + H_ID_HASH, SHA256_DIGEST_LENGTH);
	if (crc(h, H_CRC) != get_u32(h + H_CRC)) {
		*why = "header checksum mismatch";
		return EBADMSG;
	}
	if (hd->status > WIV_OBJECT_BAD ||
	    (hd->status == WIV_OBJECT_BAD &&
	     (hd->n_events || hd->data_len || hd->index_len))) {
		*why = "bad status";
		return EBADMSG;
	}
	rest = (uint64_t)st->st_size - HDR_LEN;
	if (hd->key_len > MAX_KEY_LEN || hd->data_len > rest ||
	    hd->index_len > rest - hd->data_len ||
	    hd->key_len != rest - hd->data_len - hd->index_len) {
		*why = "size mismatch (truncated?)";
		return EBADMSG;
	}
	return 0;
}

/* Reads and checks the index and the key of an entry whose header passed
 * (one read: they are adjacent). Returns 0 with a new index in *out (if
 * out), EBADMSG with the reason in *why, or errno. If key, *key is set to
 * a new copy of the key whenever the key is intact, even if the index is
 * not (the caller frees it either way). */
static int read_index(int fd, const struct header *hd,
		      struct wiv_object_index **out, char **key,
		      const char **why)
{
	size_t len = hd->index_len + hd->key_len;
	unsigned char *buf = malloc(len + 1);
	const unsigned char *k = buf + hd->index_len;
	bool key_ok;
	ssize_t got;
	int err = 0;

	if (!buf)
		return ENOMEM;
	got = pread_full(fd, buf, len, HDR_LEN + hd->data_len);
	if (got < 0) {
		err = errno;
		goto out;
	}
	if ((uint64_t)got != len) {
		*why = "truncated index";
		err = EBADMSG;
		goto out;
	}
	key_ok = crc(k, hd->key_len) == hd->key_crc &&
		 !memchr(k, '\0', hd->key_len);
	if (key_ok && key && !(*key = strndup((const char *)k, hd->key_len))) {
		err = ENOMEM;
	} else if (crc(buf, hd->index_len) != hd->index_crc) {
		*why = "index checksum mismatch";
		err = EBADMSG;
	} else if (!key_ok) {
		*why = "key checksum mismatch";
		err = EBADMSG;
	} else if (out) {
		err = decode_index(buf, hd->index_len, hd->n_events,
				   hd->data_len,
				   (enum wiv_object_status)hd->status, out,
				   why);
	}
out:
	free(buf);
	return err;
}

/* Reads and checks a whole entry but the texts. Returns 0, EBADMSG
 * (another version's entry included) with the reason in *why, or another
 * errno (ENOMEM, a read error). */
static int load(int fd, const struct stat *st,
		const uint8_t hash[SHA256_DIGEST_LENGTH],
		struct wiv_object_index **out, const char **why)
{
	struct header hd;
	int err = read_header(fd, st, &hd, why);

	if (err == EPROTONOSUPPORT)
		return EBADMSG;
	if (err)
		return err;
	if (memcmp(hd.id_hash, hash, SHA256_DIGEST_LENGTH) != 0) {
		*why = "entry of another id";
		return EBADMSG;
	}
	return read_index(fd, &hd, out, NULL, why);
}

/* Whether base (64 hex digits + ".wvc") names the entry of hash. */
static bool name_matches(const char *base, const uint8_t *hash)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		if (base[2 * i] != hex[hash[i] >> 4] ||
		    base[2 * i + 1] != hex[hash[i] & 15])
			return false;
	return true;
}

/* Checks every event text against its crc. */
static int check_texts(int fd, const struct wiv_object_index *idx,
		       const char **why)
{
	char *buf = NULL;
	size_t cap = 0;
	int err = 0;

	for (size_t i = 0; i < idx->n_events && !err; i++) {
		const struct wiv_cached_event *ev = &idx->events[i];
		ssize_t got;

		if (ev->length > cap) {
			char *b = realloc(buf, ev->length);
			if (!b) {
				err = ENOMEM;
				break;
			}
			buf = b;
			cap = ev->length;
		}
		got = pread_full(fd, buf, ev->length, HDR_LEN + ev->offset);
		if (got < 0) {
			err = errno;
		} else if ((size_t)got != ev->length ||
			   crc(buf, ev->length) != ev->crc) {
			*why = "event checksum mismatch";
			err = EBADMSG;
		}
	}
	free(buf);
	return err;
}

int wiv_cache_inspect(int fd, const char *base_name, bool deep,
		      struct wiv_cache_entry_info *info, const char **why)
{
	struct wiv_object_index *idx = NULL;
	struct header hd;
	struct stat st;
	int err;

	info->key = NULL;
	if (fstat(fd, &st) != 0)
		return errno;
	info->bytes = (uint64_t)st.st_size;
	err = read_header(fd, &st, &hd, why);
	if (err == EBADMSG && strcmp(*why, "header checksum mismatch") == 0 &&
	    hd.key_len <= MAX_KEY_LEN && hd.data_len <= info->bytes &&
	    hd.index_len <= info->bytes &&
	    hd.data_len + hd.index_len + hd.key_len + HDR_LEN ==
		    (uint64_t)st.st_size) {
		const char *ignored;
		/* The key is still worth naming if its own crc holds. */
		if (read_index(fd, &hd, NULL, &info->key, &ignored) == ENOMEM)
			return ENOMEM;
	}
	if (err)
		return err;
	info->status = (enum wiv_object_status)hd.status;
	info->n_events = hd.n_events;
	err = read_index(fd, &hd, deep ? &idx : NULL, &info->key, why);
	if (!err && !name_matches(base_name, hd.id_hash)) {
		*why = "entry of another id";
		err = EBADMSG;
	}
	if (!err && deep)
		err = check_texts(fd, idx, why);
	wiv_object_index_free(idx);
	return err;
}

/* --- counters -------------------------------------------------------- */

/* Writes the stats file, unless publishing stopped meanwhile. */
static void publish(struct wiv_cache *c)
{
	int err = 0;

	pthread_mutex_lock(&c->pub_mu);
	if (atomic_load(&c->publishing)) {
		c->pub.updated_at = time(NULL);
		c->pub.hits = atomic_load(&c->hits);
		c->pub.misses = atomic_load(&c->misses);
		c->pub.downloads = atomic_load(&c->downloads);
		c->pub.download_bytes = atomic_load(&c->download_bytes);
		c->pub.over_limit = atomic_load(&c->over_limit);
		c->pub.evicted = atomic_load(&c->evicted);
		c->pub.uncached = atomic_load(&c->uncached);
		c->pub.missing = atomic_load(&c->missing);
		err = wiv_mount_stats_write(c->dir_fd, &c->pub);
	}
	pthread_mutex_unlock(&c->pub_mu);
	if (err == ELOOP && !atomic_exchange(&c->pub_link_logged, true))
		wiv_err("cache: %s/mounts is a symlink: not followed; this "
			"mount's counters are not published (remove it, or run "
			"'wivaudit cache verify --repair')", c->dir);
	else if (err)
		wiv_debug("cache: cannot write the stats file: %s",
			  strerror(err));
}

/* Adds n to a counter, and publishes if the last publication is older than
 * PUBLISH_INTERVAL_MS. */
static void count(struct wiv_cache *c, atomic_uint_fast64_t *counter,
		  uint64_t n)
{
	int_fast64_t last, now;

	atomic_fetch_add(counter, n);
	if (!atomic_load(&c->publishing))
		return;
	now = mono_ms();
	last = atomic_load(&c->last_pub_ms);
	if (now - last >= PUBLISH_INTERVAL_MS &&
	    atomic_compare_exchange_strong(&c->last_pub_ms, &last, now))
		publish(c);
}

void wiv_cache_note_download(struct wiv_cache *c, uint64_t bytes)
{
	atomic_fetch_add(&c->download_bytes, bytes);
	count(c, &c->downloads, 1);
}

void wiv_cache_note_over_limit(struct wiv_cache *c)
{
	/* Rare and worth seeing at once: published now, unthrottled. */
	atomic_fetch_add(&c->over_limit, 1);
	if (atomic_load(&c->publishing))
		publish(c);
}

void wiv_cache_note_missing(struct wiv_cache *c)
{
	/* Rare, and what a user checks for after an audit: published at
	 * once rather than with the next counter that changes. */
	atomic_fetch_add(&c->missing, 1);
	if (atomic_load(&c->publishing))
		publish(c);
}

void wiv_cache_counters(struct wiv_cache *c, struct wiv_cache_counters *out)
{
	out->hits = atomic_load(&c->hits);
	out->misses = atomic_load(&c->misses);
	out->downloads = atomic_load(&c->downloads);
	out->download_bytes = atomic_load(&c->download_bytes);
	out->over_limit = atomic_load(&c->over_limit);
	out->evicted = atomic_load(&c->evicted);
	out->uncached = atomic_load(&c->uncached);
	out->missing = atomic_load(&c->missing);
}

int wiv_cache_publish(struct wiv_cache *c, const char *mountpoint,
		      const char *source)
{
	char *m = strdup(mountpoint), *s = strdup(source);

	if (!m || !s) {
		free(m);
		free(s);
		return ENOMEM;
	}
	pthread_mutex_lock(&c->pub_mu);
	free(c->pub.mountpoint);
	free(c->pub.source);
	c->pub.mountpoint = m;
	c->pub.source = s;
	c->pub.pid = getpid();
	c->pub.started_at = time(NULL);
	c->pub.cache_bound = c->max_bytes;
	atomic_store(&c->publishing, true);
	pthread_mutex_unlock(&c->pub_mu);
	atomic_store(&c->last_pub_ms, mono_ms());
	publish(c);
	return 0;
}

void wiv_cache_unpublish(struct wiv_cache *c)
{
	pthread_mutex_lock(&c->pub_mu);
	if (atomic_load(&c->publishing))
		wiv_mount_stats_remove(c->dir_fd, c->pub.pid);
	atomic_store(&c->publishing, false);
	free(c->pub.mountpoint);
	free(c->pub.source);
	c->pub.mountpoint = c->pub.source = NULL;
	pthread_mutex_unlock(&c->pub_mu);
}

/* --- public ---------------------------------------------------------- */

/* Formats the refusal of a symlink at rel (relative to the cache). */
static void refuse_link(const struct wiv_cache *c, const char *rel, char *err,
			size_t errlen)
{
	snprintf(err, errlen,
		 "cache directory %s: %s is a symlink, and the cache never "
		 "follows one: remove it (or run 'wivaudit cache verify "
		 "--repair')", c->dir, rel);
}

/* Opens (creating) objects/ and lock; refuses a symlink in their place, in
 * the place of listings/ or mounts/, or anywhere in objects/. */
static int open_layout(struct wiv_cache *c, char *err, size_t errlen)
{
	static const char *const others[] = {"listings", "mounts"};
	char link[WIV_CACHE_NAME_LEN + 16];
	struct stat st;
	int e = wiv_cachedir_sub(c->dir_fd, "objects", true, &c->obj_fd);

	if (!e) {
		c->lock_fd = openat(c->dir_fd, "lock",
				    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
				    0600);
		e = c->lock_fd < 0 ? errno : 0;
		if (e == ELOOP)
			refuse_link(c, "lock", err, errlen);
	} else if (e == ELOOP) {
		refuse_link(c, "objects", err, errlen);
	}
	for (int i = 0; i < 2 && !e; i++)
		if (fstatat(c->dir_fd, others[i], &st, AT_SYMLINK_NOFOLLOW) ==
			0 &&
		    S_ISLNK(st.st_mode)) {
			e = ELOOP;
			refuse_link(c, others[i], err, errlen);
		}
	if (!e) {
		e = wiv_cache_space_open(c, link, sizeof(link));
		if (e == ELOOP)
			refuse_link(c, link, err, errlen);
	}
	if (e && e != ELOOP)
		snprintf(err, errlen, "cache directory %s: %s", c->dir,
			 strerror(e));
	return e;
}

struct wiv_cache *wiv_cache_open(const char *dir, int dir_flags,
				 uint64_t max_bytes, char *err, size_t errlen)
{
	struct wiv_cache *c;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "cache: %s", strerror(ENOMEM));
		return NULL;
	}
	c->dir_fd = c->obj_fd = c->lock_fd = -1;
	for (size_t i = 0; i < sizeof(c->slots) / sizeof(c->slots[0]); i++)
		c->slots[i].fd = -1;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->pub_mu, NULL);
	pthread_mutex_init(&c->evict_mu, NULL);
	c->dir = strdup(dir);
	if (!c->dir) {
		snprintf(err, errlen, "cache: %s", strerror(ENOMEM));
		goto bad;
	}
	/* From here on the directory is only reached through dir_fd: a
	 * rename or a symlink swapped in later redirects nothing. */
	if (wiv_cachedir_open(dir,
			      dir_flags | WIV_CACHEDIR_CREATE |
				  WIV_CACHEDIR_PRIVATE,
			      &c->dir_fd, err, errlen) != 0 ||
	    open_layout(c, err, errlen) != 0)
		goto bad;
	return c;
bad:
	wiv_cache_close(c);
	return NULL;
}

void wiv_cache_close(struct wiv_cache *c)
{
	if (!c)
		return;
	wiv_cache_unpublish(c);
	wiv_cache_slots_close(c);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	if (c->obj_fd >= 0)
		close(c->obj_fd);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->pub_mu);
	pthread_mutex_destroy(&c->evict_mu);
	free(c->dir);
	free(c);
}

int wiv_cache_dir_fd(const struct wiv_cache *c)
{
	return c->dir_fd;
}

/* Loads the index of the memory entry name, if there is one. Returns 0,
 * or ENOENT. */
static int lookup_memory(struct wiv_cache *c, const char *name,
			 const uint8_t *hash, struct wiv_object_index **out)
{
	const char *why = NULL;
	bool touch;
	struct stat st;
	int fd, err, slot = wiv_cache_slot_acquire(c, name, true, &fd, &touch);

	if (slot < 0)
		return ENOENT;
	err = fstat(fd, &st) == 0 ? load(fd, &st, hash, out, &why) : errno;
	wiv_cache_slot_release(c, slot);
	if (err)
		wiv_cache_slot_forget(c, name);
	return err ? ENOENT : 0;
}

int wiv_cache_lookup(struct wiv_cache *c, const char *entry_id,
		     const char *key_for_log, struct wiv_object_index **out)
{
	uint8_t hash[SHA256_DIGEST_LENGTH];
	char name[NAME_LEN];
	const char *why = NULL;
	struct stat st;
	int fd, err;

	entry_name(entry_id, hash, name);
	if (lookup_memory(c, name, hash, out) == 0) {
		count(c, &c->hits, 1);
		return 0;
	}
	err = wiv_cache_open_entry_file(c, name, &fd);
	if (err) {
		count(c, &c->misses, 1);
		/* A symlink in the way (logged) is fetched around. */
		return err == ELOOP ? ENOENT : err;
	}
	if (fstat(fd, &st) != 0) {
		err = errno;
		close(fd);
		count(c, &c->misses, 1);
		return err;
	}
	err = load(fd, &st, hash, out, &why);
	if (err == EBADMSG)
		discard(c, name, fd, key_for_log, why);
	if (err) {
		close(fd);
		count(c, &c->misses, 1);
		return err;
	}
	futimens(fd, NULL);
	if (wiv_cache_slot_insert(c, name, fd, &st, false) < 0)
		close(fd);
	count(c, &c->hits, 1);
	return 0;
}

/* Gets a descriptor on entry name, from the descriptor cache if possible.
 * Returns 0 with *slot (or -1: *fd is the caller's to close), or errno. */
static int open_entry(struct wiv_cache *c, const char *name, int *fd, int *slot)
{
	bool touch = false;
	struct stat st;

	*slot = wiv_cache_slot_acquire(c, name, false, fd, &touch);
	if (*slot < 0) {
		int err = wiv_cache_open_entry_file(c, name, fd);
		if (err)
			return err == ELOOP ? ENOENT : err;
		if (fstat(*fd, &st) == 0)
			*slot = wiv_cache_slot_insert(c, name, *fd, &st, true);
		touch = true;
	}
	if (touch)
		futimens(*fd, NULL);
	return 0;
}

static void close_entry(struct wiv_cache *c, int fd, int slot)
{
	if (slot >= 0)
		wiv_cache_slot_release(c, slot);
	else
		close(fd);
}

/* Whether name now is another file than fd (ENOENT: none), or 0. */
static int replaced(struct wiv_cache *c, const char *name, int fd)
{
	struct stat a, b;

	if (wiv_cache_stat_entry(c, name, &b) != 0)
		return ENOENT;
	if (fstat(fd, &a) == 0 &&
	    (a.st_dev != b.st_dev || a.st_ino != b.st_ino))
		return EAGAIN;
	return 0;
}

int wiv_cache_read_event(struct wiv_cache *c, const char *entry_id,
			 const char *key_for_log,
			 const struct wiv_cached_event *ev, char *buf)
{
	return wiv_cache_read_events(c, entry_id, key_for_log, ev, 1, buf);
}

/* Whether each of the n texts now in buf matches its crc. */
static bool texts_intact(const struct wiv_cached_event *evs, size_t n,
			 const char *buf)
{
	for (size_t i = 0; i < n; buf += evs[i].length, i++)
		if (crc(buf, evs[i].length) != evs[i].crc)
			return false;
	return true;
}

int wiv_cache_read_events(struct wiv_cache *c, const char *entry_id,
			  const char *key_for_log,
			  const struct wiv_cached_event *evs, size_t n,
			  char *buf)
{
	uint8_t hash[SHA256_DIGEST_LENGTH];
	char name[NAME_LEN];
	int fd, slot, err;
	ssize_t got;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += evs[i].length;
	entry_name(entry_id, hash, name);
	for (int attempt = 0;; attempt++) {
		err = open_entry(c, name, &fd, &slot);
		if (err)
			return err;
		got = pread_full(fd, buf, len, HDR_LEN + evs[0].offset);
		if (got < 0)
			err = errno;
		else if ((size_t)got == len && texts_intact(evs, n, buf))
			err = 0;
		/* A cached descriptor may still read a file since replaced or
		 * evicted, while the caller's index is of the current one. */
		else if ((err = replaced(c, name, fd)) != 0)
			wiv_cache_slot_forget(c, name);
		else {
			discard(c, name, fd, key_for_log,
				(size_t)got < len ? "event past end of file"
						  : "event checksum mismatch");
			err = EBADMSG;
		}
		close_entry(c, fd, slot);
		if (err != EAGAIN || attempt > 0)
			return err == EAGAIN ? EBADMSG : err;
	}
}

/* Logs, once per cause, why an entry is served from memory. */
static void note_memory(struct wiv_cache_writer *w, int why,
			const struct wiv_cache_shortfall *sf)
{
	struct wiv_cache *c = w->c;

	if (why == EFBIG && !atomic_exchange(&c->oversize_logged, true))
		wiv_warn("cache: the entry for %s needs %" PRIu64 " bytes or "
			 "more, %s cache_size (%" PRIu64 " bytes): served from "
			 "memory, not kept; later ones are counted as "
			 "'uncached' by 'wivaudit cache stats'",
			 w->key, sf->needed,
			 sf->needed > c->max_bytes
			     ? "more than"
			     : "more than the entries in use and the "
			       "downloads under way leave of",
			 c->max_bytes);
	else if ((why == ENOSPC || why == EDQUOT) &&
		 !atomic_exchange(&c->full_logged, true))
		wiv_err("cache: the filesystem of %s is full (needed %" PRIu64
			" bytes, free %" PRIu64 ", cache_size %" PRIu64
			") even after evicting: objects are served from "
			"memory, uncached, until space returns",
			c->dir, sf->needed,
			sf->free ? sf->free : wiv_cache_space_avail(c),
			c->max_bytes);
	else if (why != EFBIG && why != ENOSPC && why != EDQUOT &&
		 why != ELOOP && !atomic_exchange(&c->io_logged, true))
		wiv_err("cache: cannot write the entry for %s in %s: %s; "
			"served from memory, not kept", w->key, c->dir,
			strerror(why));
}

/* Copies bytes [0, len) of fd to mfd. */
static int copy_out(int fd, int mfd, uint64_t len)
{
	size_t cap = 64 * 1024;
	char *buf = malloc(cap);
	int err = buf ? 0 : ENOMEM;

	for (uint64_t off = 0; !err && off < len; off += cap) {
		size_t n = len - off < cap ? (size_t)(len - off) : cap;
		ssize_t got = pread_full(fd, buf, n, off);
		if (got != (ssize_t)n)
			err = got < 0 ? errno : EIO;
		else
			err = pwrite_full(mfd, buf, n, off);
	}
	free(buf);
	return err;
}

/* Moves the unfinished entry to memory (why: the cause, for the log): what
 * was written so far is copied to a memfd and the temp file removed.
 * Returns 0 or errno. */
static int to_memory(struct wiv_cache_writer *w, int why,
		     const struct wiv_cache_shortfall *sf)
{
	int mfd = memfd_create("wivaudit-entry", MFD_CLOEXEC), err;

	if (mfd < 0)
		return errno;
	if (w->fd >= 0) {
		err = copy_out(w->fd, mfd, w->written_end);
		if (err) {
			close(mfd);
			return err;
		}
		unlinkat(w->sub_fd, w->tmp, 0);
		close(w->fd);
	}
	if (w->sub_fd >= 0)
		close(w->sub_fd);
	w->sub_fd = -1;
	w->fd = mfd;
	w->in_memory = true;
	wiv_cache_space_release(w->c, &w->held);
	note_memory(w, why, sf);
	return 0;
}

/* Writes len bytes at off of the entry: to the temp file within the space
 * reserved for it, or to memory once the disk cannot take it. */
static int w_pwrite(struct wiv_cache_writer *w, const void *buf, size_t len,
		    uint64_t off)
{
	struct wiv_cache_shortfall sf = {.needed = len};
	int err;

	if (!w->in_memory) {
		err = wiv_cache_space_reserve(w->c, &w->held, off + len, &sf);
		if (!err) {
			err = pwrite_full(w->fd, buf, len, off);
			if ((err == ENOSPC || err == EDQUOT) &&
			    wiv_cache_space_free_up(w->c, len))
				err = pwrite_full(w->fd, buf, len, off);
		}
		if (!err) {
			if (off + len > w->written_end)
				w->written_end = off + len;
			return 0;
		}
		err = to_memory(w, err, &sf);
		if (err)
			return err;
	}
	return pwrite_full(w->fd, buf, len, off);
}

struct wiv_cache_writer *wiv_cache_writer_new(struct wiv_cache *c,
					      const char *entry_id,
					      const char *key)
{
	struct wiv_cache_writer *w;
	struct wiv_cache_shortfall sf = {0};
	int err;

	if (strlen(key) > MAX_KEY_LEN) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->c = c;
	w->sub_fd = w->fd = -1;
	w->key = strdup(key);
	if (!w->key) {
		free(w);
		return NULL;
	}
	entry_name(entry_id, w->hash, w->name);
	err = wiv_cache_open_sub(c, w->name, true, &w->sub_fd);
	if (!err)
		err = wiv_cachedir_tmp_create(w->sub_fd, w->tmp, &w->fd);
	if (err && (err = to_memory(w, err, &sf)) != 0) {
		if (w->sub_fd >= 0)
			close(w->sub_fd);
		free(w->key);
		free(w);
		errno = err;
		return NULL;
	}
	return w;
}

static int flush(struct wiv_cache_writer *w)
{
	int err = w_pwrite(w, w->buf, w->buf_len, HDR_LEN + w->flushed);

	if (!err) {
		w->flushed += w->buf_len;
		w->buf_len = 0;
	}
	return err;
}

int wiv_cache_writer_add(struct wiv_cache_writer *w, const struct wiv_event *ev)
{
	size_t id_len = ev->id_kind == WIV_ID_NONE ? 0 : ev->id_len;
	size_t type_len = ev->event_type ? strlen(ev->event_type) : 0;
	size_t need = REC_FIXED + id_len + type_len;
	unsigned char *r;
	uint64_t bits;
	int err;

	if (ev->id_kind > WIV_ID_NUMBER || (id_len && !ev->id))
		return EINVAL;
	if (ev->text_len > UINT32_MAX || ev->position > UINT32_MAX ||
	    id_len >= UINT32_MAX || type_len >= NO_TYPE ||
	    w->n_events == UINT32_MAX)
		return EOVERFLOW;
	if (w->index_cap - w->index_len < need) {
		size_t cap = w->index_cap ? w->index_cap : 4096;
		while (cap - w->index_len < need)
			cap *= 2;
		r = realloc(w->index, cap);
		if (!r)
			return ENOMEM;
		w->index = r;
		w->index_cap = cap;
	}
	if (w->buf_len + ev->text_len > WRITE_BUF) {
		err = flush(w);
		if (err)
			return err;
	}
	if (ev->text_len > WRITE_BUF) {
		err = w_pwrite(w, ev->text, ev->text_len, HDR_LEN + w->flushed);
		if (err)
			return err;
		w->flushed += ev->text_len;
	} else {
		memcpy(w->buf + w->buf_len, ev->text, ev->text_len);
		w->buf_len += ev->text_len;
	}

	r = w->index + w->index_len;
	put_u64(r + R_OFFSET, w->data_len);
	put_u32(r + R_LENGTH, (uint32_t)ev->text_len);
	put_u32(r + R_CRC, crc(ev->text, ev->text_len));
	put_u32(r + R_POSITION, (uint32_t)ev->position);
	r[R_ID_KIND] = (unsigned char)ev->id_kind;
	r[R_HAS_CREATED] = ev->has_created_at;
	memcpy(&bits, &ev->created_at, sizeof(bits));
	put_u64(r + R_CREATED, ev->has_created_at ? bits : 0);
	put_u32(r + R_ID_LEN, (uint32_t)id_len);
	put_u32(r + R_TYPE_LEN, ev->event_type ? (uint32_t)type_len : NO_TYPE);
	memcpy(r + R_DIGEST, ev->digest, WIV_DIGEST_LEN);
	if (id_len)
		memcpy(r + REC_FIXED, ev->id, id_len);
	if (type_len)
		memcpy(r + REC_FIXED + id_len, ev->event_type, type_len);
	w->index_len += need;
	w->data_len += ev->text_len;
	w->n_events++;
	return 0;
}

int wiv_cache_writer_commit(struct wiv_cache_writer *w,
			    enum wiv_object_status status,
			    struct wiv_object_index **out)
{
	struct wiv_cache *c = w->c;
	struct wiv_object_index *idx = NULL;
	unsigned char h[HDR_LEN];
	const char *why = NULL;
	size_t key_len = strlen(w->key);
	struct stat st, old;
	int err = 0;

	if (status == WIV_OBJECT_BAD) {
		w->n_events = 0;
		w->data_len = w->flushed = 0;
		w->index_len = w->buf_len = 0;
		w->written_end = 0;
		if (ftruncate(w->fd, 0) != 0)
			err = errno;
	}
	if (!err)
		err = flush(w);
	if (!err)
		err = w_pwrite(w, w->index, w->index_len,
			       HDR_LEN + w->data_len);
	if (!err)
		err = w_pwrite(w, w->key, key_len,
			       HDR_LEN + w->data_len + w->index_len);
	if (!err) {
		memcpy(h + H_MAGIC, MAGIC, 8);
		put_u32(h + H_VERSION, FORMAT_VERSION);
		put_u32(h + H_STATUS, (uint32_t)status);
		put_u32(h + H_N_EVENTS, w->n_events);
		put_u32(h + H_INDEX_CRC, crc(w->index, w->index_len));
		put_u64(h + H_DATA_LEN, w->data_len);
		put_u64(h + H_INDEX_LEN, w->index_len);
		memcpy(h + H_ID_HASH, w->hash, SHA256_DIGEST_LENGTH);
		put_u32(h + H_KEY_LEN, (uint32_t)key_len);
		put_u32(h + H_KEY_CRC, crc(w->key, key_len));
		put_u32(h + H_CRC, crc(h, H_CRC));
		err = w_pwrite(w, h, HDR_LEN, 0);
	}
	/* Decoding what was just encoded builds the same index a lookup
	 * would return, from the same code. */
	if (!err && out)
		err = decode_index(w->index, w->index_len, w->n_events,
				   w->data_len, status, &idx, &why);
	if (!err && fstat(w->fd, &st) != 0)
		err = errno;
	if (err) {
		wiv_cache_writer_abort(w);
		return err;
	}
	if (w->in_memory) {
		err = wiv_cache_mem_insert(c, w->name, w->fd,
					   (uint64_t)st.st_size);
		if (err) {
			wiv_object_index_free(idx);
			wiv_cache_writer_abort(w);
			return err;
		}
		count(c, &c->uncached, 1);
		goto done;
	}
	if (wiv_cache_stat_entry(c, w->name, &old) != 0)
		old.st_size = 0;
	/* renameat replaces a symlink planted at the name, never its
	 * target. */
	if (renameat(w->sub_fd, w->tmp, w->sub_fd, w->name + 3) != 0) {
		err = errno;
		wiv_object_index_free(idx);
		wiv_cache_writer_abort(w);
		return err;
	}
	if (wiv_cache_slot_insert(c, w->name, w->fd, &st, false) < 0)
		close(w->fd);
	close(w->sub_fd);
	wiv_cache_space_commit(c, &w->held, (uint64_t)st.st_size,
			       (uint64_t)old.st_size, w->name);
	if (atomic_exchange(&c->full_logged, false))
		wiv_info("cache: entries fit on the filesystem of %s again",
			 c->dir);
done:
	free(w->index);
	free(w->key);
	free(w);
	if (out)
		*out = idx;
	return 0;
}

void wiv_cache_writer_abort(struct wiv_cache_writer *w)
{
	if (!w)
		return;
	if (!w->in_memory)
		unlinkat(w->sub_fd, w->tmp, 0);
	close(w->fd);
	if (w->sub_fd >= 0)
		close(w->sub_fd);
	wiv_cache_space_release(w->c, &w->held);
	free(w->index);
	free(w->key);
	free(w);
}

struct wiv_object_index *wiv_object_index_new_empty(enum wiv_object_status status)
{
	struct index_block *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->idx.status = status;
	b->idx.events = b->events;
	return &b->idx;
}

void wiv_object_index_free(struct wiv_object_index *idx)
{
	free(idx);
}
