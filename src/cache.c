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
 * Recency for LRU eviction is the file's mtime, set explicitly on use so it
 * survives remounts whatever the filesystem's atime mode. */
#include "wivaudit/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

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

/* "ab/" + 64 hex digits + ".wvc" */
#define SUFFIX ".wvc"
#define BASE_LEN (2 * SHA256_DIGEST_LENGTH + sizeof(SUFFIX) - 1)
#define NAME_LEN (3 + BASE_LEN + 1)
#define TMP_PREFIX ".tmp."
#define TMP_NAME_LEN 64

/* A temp file untouched this long belongs to a writer that died. */
#define STRAY_TMP_AGE (15 * 60)
/* Reads refresh an entry's recency at most this often (seconds): enough
 * precision for LRU without a metadata write per read. */
#define TOUCH_INTERVAL 60
#define FD_SLOTS 32
/* The stats file of a mount is rewritten at most this often (ms). */
#define PUBLISH_INTERVAL_MS 1000
#define WRITE_BUF (64 * 1024)

/* Open entry files kept for reads. A slot is keyed by entry file name; a
 * stale slot (entry replaced or removed) is closed by its last user. A slot
 * may go on reading an entry another daemon evicted: harmless, as an entry
 * id always names the same content, and the space returns with the slot. */
struct fd_slot {
	char name[NAME_LEN];
	int fd; /* -1: free */
	dev_t dev;
	ino_t ino;
	unsigned refs;
	bool stale;
	uint64_t used;
	time_t touched;
};

struct wiv_cache {
	int dir_fd;
	int obj_fd;
	int lock_fd;
	uint64_t max_bytes;
	/* Protects everything below; never held across file I/O other than
	 * close() of a descriptor nobody uses any more. */
	pthread_mutex_t mu;
	/* Bytes of entries on disk as far as this process knows; another
	 * daemon's writes make it drift, and every eviction scan resets it. */
	uint64_t total_bytes;
	bool evicting;
	uint64_t tick;
	unsigned long tmp_counter;
	struct fd_slot slots[FD_SLOTS];

	/* Since open; atomics, so the lookup path takes no lock for them. */
	atomic_uint_fast64_t hits, misses, downloads, download_bytes;
	atomic_uint_fast64_t over_limit;
	atomic_uint_fast64_t missing;
	/* Publishing them for `wivaudit cache stats`: pub_mu serializes
	 * writers of the stats file and guards pub; last_pub_ms picks, without
	 * the lock, the one caller a second that writes. */
	atomic_bool publishing;
	atomic_int_fast64_t last_pub_ms;
	pthread_mutex_t pub_mu;
	struct wiv_mount_stats pub;
	char *dir;
};

struct wiv_cache_writer {
	struct wiv_cache *c;
	char *key;
	uint8_t hash[SHA256_DIGEST_LENGTH];
	char name[NAME_LEN];
	char tmp[TMP_NAME_LEN];
	int fd;
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
	memcpy(name + 3 + 2 * SHA256_DIGEST_LENGTH, SUFFIX, sizeof(SUFFIX));
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

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- descriptor cache ------------------------------------------------ */

/* Marks slot i stale; returns its fd if the caller must close it (no user
 * left), else -1. Called with c->mu held. */
static int retire_slot(struct wiv_cache *c, int i)
{
	int fd = -1;

	c->slots[i].stale = true;
	if (c->slots[i].refs == 0) {
		fd = c->slots[i].fd;
		c->slots[i].fd = -1;
	}
	return fd;
}

/* Finds an open descriptor for name and takes a reference on it. Returns
 * the slot, or -1. *touch says the caller should refresh the recency. */
static int slot_acquire(struct wiv_cache *c, const char *name, int *fd,
			bool *touch)
{
	int found = -1;

	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *s = &c->slots[i];
		if (s->fd >= 0 && !s->stale && strcmp(s->name, name) == 0) {
			time_t now = mono_now();
			s->refs++;
			s->used = ++c->tick;
			*touch = now - s->touched >= TOUCH_INTERVAL;
			if (*touch)
				s->touched = now;
			*fd = s->fd;
			found = i;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

static void slot_release(struct wiv_cache *c, int i)
{
	int fd = -1;

	pthread_mutex_lock(&c->mu);
	if (--c->slots[i].refs == 0 && c->slots[i].stale) {
		fd = c->slots[i].fd;
		c->slots[i].fd = -1;
	}
	pthread_mutex_unlock(&c->mu);
	if (fd >= 0)
		close(fd);
}

/* Hands fd (open on entry name, inode st) to the descriptor cache, holding
 * one reference if hold. Returns the slot, or -1 if the cache did not take
 * the fd (the caller still owns it). A slot for an older file of the same
 * name is retired. */
static int slot_insert(struct wiv_cache *c, const char *name, int fd,
		       const struct stat *st, bool hold)
{
	int victim = -1, closing[2] = {-1, -1};

	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *s = &c->slots[i];
		if (s->fd < 0 || s->stale || strcmp(s->name, name) != 0)
			continue;
		if (s->dev == st->st_dev && s->ino == st->st_ino) {
			pthread_mutex_unlock(&c->mu);
			return -1;
		}
		closing[0] = retire_slot(c, i);
	}
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *s = &c->slots[i];
		if (s->fd < 0) {
			victim = i;
			break;
		}
		if (s->refs == 0 &&
		    (victim < 0 || s->used < c->slots[victim].used))
			victim = i;
	}
	if (victim >= 0) {
		struct fd_slot *s = &c->slots[victim];
		closing[1] = s->fd;
		memcpy(s->name, name, NAME_LEN);
		s->fd = fd;
		s->dev = st->st_dev;
		s->ino = st->st_ino;
		s->refs = hold ? 1 : 0;
		s->stale = false;
		s->used = ++c->tick;
		s->touched = mono_now();
	}
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < 2; i++)
		if (closing[i] >= 0)
			close(closing[i]);
	return victim;
}

/* Drops the cached descriptor of an entry that was removed. */
static void slot_forget(struct wiv_cache *c, const char *name)
{
	int fd = -1;

	pthread_mutex_lock(&c->mu);
	for (int i = 0; i < FD_SLOTS; i++) {
		struct fd_slot *s = &c->slots[i];
		if (s->fd >= 0 && !s->stale && strcmp(s->name, name) == 0) {
			fd = retire_slot(c, i);
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	if (fd >= 0)
		close(fd);
}

/* Called with c->mu held. */
static void adjust_total(struct wiv_cache *c, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > c->total_bytes)
		c->total_bytes = 0;
	else
		c->total_bytes += (uint64_t)delta;
}

/* Removes a damaged entry, but only if name still is the file fd reads:
 * another thread may already have removed it, or replaced it with a good
 * copy. Logs once per removal. */
static void discard(struct wiv_cache *c, const char *name, int fd,
		    const char *key_for_log, const char *why)
{
	struct stat a, b;

	if (fstat(fd, &a) == 0 &&
	    fstatat(c->obj_fd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
	    unlinkat(c->obj_fd, name, 0) == 0) {
		pthread_mutex_lock(&c->mu);
		adjust_total(c, -(int64_t)b.st_size);
		pthread_mutex_unlock(&c->mu);
		if (why == other_version)
			wiv_info("cache: replacing the entry for %s (%s)",
				 key_for_log, why);
		else
			wiv_warn("cache: removed damaged entry for %s (%s)",
				 key_for_log, why);
	}
	slot_forget(c, name);
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

/* Whether base (64 hex digits + SUFFIX) names the entry of hash. */
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

/* --- directory scan and eviction ------------------------------------- */

struct scan_item {
	struct timespec mtime;
	uint64_t size;
	char name[NAME_LEN];
};

struct scan {
	uint64_t total;
	bool collect;
	struct scan_item *items;
	size_t n, cap;
};

static bool is_entry_name(const char *s)
{
	size_t len = strlen(s);

	return len == BASE_LEN && strcmp(s + len - 4, SUFFIX) == 0;
}

/* A temp file is a writer's until rename; writers hold a flock on it, so a
 * temp file that is old and unlocked was left by a dead process. */
static void clean_stray(int dir_fd, const char *name, time_t now)
{
	struct stat st;
	int fd;

	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	    now - st.st_mtim.tv_sec < STRAY_TMP_AGE)
		return;
	fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlinkat(dir_fd, name, 0);
	close(fd);
}

static int scan_add(struct scan *s, const char *sub, const char *base,
		    const struct stat *st)
{
	struct scan_item *it;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		struct scan_item *p = realloc(s->items, cap * sizeof(*p));
		if (!p)
			return ENOMEM;
		s->items = p;
		s->cap = cap;
	}
	it = &s->items[s->n++];
	it->mtime = st->st_mtim;
	it->size = (uint64_t)st->st_size;
	memcpy(it->name, sub, 2);
	it->name[2] = '/';
	memcpy(it->name + 3, base, BASE_LEN + 1);
	return 0;
}

static bool is_tmp_name(const char *s)
{
	return strncmp(s, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0;
}

static bool is_sub_name(const char *s)
{
	return strlen(s) == 2 && strspn(s, "0123456789abcdef") == 2;
}

static int scan_sub(struct scan *s, DIR *d, const char *sub, bool clean,
		    time_t now)
{
	struct dirent *de;
	int err = 0;

	while (!err && (de = readdir(d))) {
		struct stat st;

		if (is_tmp_name(de->d_name)) {
			if (clean)
				clean_stray(dirfd(d), de->d_name, now);
			continue;
		}
		if (!is_entry_name(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		s->total += (uint64_t)st.st_size;
		if (s->collect)
			err = scan_add(s, sub, de->d_name, &st);
	}
	return err;
}

/* Sums (and with s->collect lists) every entry; removes stray temp files if
 * clean. One readdir per subdirectory and one fstatat per entry: well under
 * a second for tens of thousands of entries. */
static int scan_dir(struct wiv_cache *c, bool clean, struct scan *s)
{
	time_t now = time(NULL);
	struct dirent *de;
	int fd, err = 0;
	DIR *top;

	fd = openat(c->obj_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	top = fdopendir(fd);
	if (!top) {
		err = errno;
		close(fd);
		return err;
	}
	while (!err && (de = readdir(top))) {
		DIR *d;

		if (!is_sub_name(de->d_name))
			continue;
		fd = openat(c->obj_fd, de->d_name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		d = fdopendir(fd);
		if (!d) {
			err = errno;
			close(fd);
			break;
		}
		err = scan_sub(s, d, de->d_name, clean, now);
		closedir(d);
	}
	closedir(top);
	return err;
}

static int ts_cmp(const struct timespec *x, const struct timespec *y)
{
	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? -1 : 1;
	if (x->tv_nsec != y->tv_nsec)
		return x->tv_nsec < y->tv_nsec ? -1 : 1;
	return 0;
}

static int by_mtime(const void *a, const void *b)
{
	return ts_cmp(&((const struct scan_item *)a)->mtime,
		      &((const struct scan_item *)b)->mtime);
}

/* Removes least recently used entries, never keep, until the total is
 * under 90% of the bound, so that eviction (a full scan) runs once per
 * tenth of the cache written rather than on every commit.
 *
 * Writes and reads need no lock between daemons sharing the directory
 * (rename is atomic, readers hold whole files), but eviction does: two
 * daemons scanning at once would each remove their own oldest tenth and
 * together empty the cache far below the bound. The flock on "lock" makes one
 * evict while the other skips and catches up (its total resynced) at its next
 * eviction. */
static void evict(struct wiv_cache *c, const char *keep)
{
	struct scan s = {.collect = true};
	uint64_t target = c->max_bytes / 10 * 9;
	int err;

	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return;
	err = scan_dir(c, false, &s);
	if (err) {
		wiv_warn("cache: cannot scan for eviction: %s", strerror(err));
		goto out;
	}
	qsort(s.items, s.n, sizeof(s.items[0]), by_mtime);
	for (size_t i = 0; i < s.n && s.total > target; i++) {
		struct scan_item *it = &s.items[i];
		struct stat st;

		if (strcmp(it->name, keep) == 0)
			continue;
		/* Used or rewritten since the scan: no longer the oldest. */
		if (!fstatat(c->obj_fd, it->name, &st, AT_SYMLINK_NOFOLLOW) &&
		    ts_cmp(&st.st_mtim, &it->mtime) != 0)
			continue;
		if (unlinkat(c->obj_fd, it->name, 0) != 0 && errno != ENOENT)
			continue;
		slot_forget(c, it->name);
		s.total -= it->size;
	}
	/* Commits that raced with the scan may be lost from the count; the
	 * next eviction scan corrects it. */
	pthread_mutex_lock(&c->mu);
	c->total_bytes = s.total;
	pthread_mutex_unlock(&c->mu);
out:
	free(s.items);
	flock(c->lock_fd, LOCK_UN);
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
		c->pub.missing = atomic_load(&c->missing);
		err = wiv_mount_stats_write(c->dir, &c->pub);
	}
	pthread_mutex_unlock(&c->pub_mu);
	if (err)
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
		wiv_mount_stats_remove(c->dir, c->pub.pid);
	atomic_store(&c->publishing, false);
	free(c->pub.mountpoint);
	free(c->pub.source);
	c->pub.mountpoint = c->pub.source = NULL;
	pthread_mutex_unlock(&c->pub_mu);
}

/* --- public ---------------------------------------------------------- */

struct wiv_cache *wiv_cache_open(const char *dir, uint64_t max_bytes, char *err,
				 size_t errlen)
{
	struct scan s = {0};
	struct wiv_cache *c;
	struct stat st;
	int e;

	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "cache: %s", strerror(ENOMEM));
		return NULL;
	}
	c->dir_fd = c->obj_fd = c->lock_fd = -1;
	for (int i = 0; i < FD_SLOTS; i++)
		c->slots[i].fd = -1;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->pub_mu, NULL);
	c->dir = strdup(dir);
	if (!c->dir) {
		snprintf(err, errlen, "cache: %s", strerror(ENOMEM));
		goto bad;
	}

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create cache directory %s: %s",
			 dir, strerror(errno));
		goto bad;
	}
	c->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dir_fd < 0 || fstat(c->dir_fd, &st) != 0) {
		snprintf(err, errlen, "cache directory %s: %s", dir,
			 strerror(errno));
		goto bad;
	}
	/* Entries hold audit data and pass their checksums by construction:
	 * a directory another user can write to could feed us forged events. */
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "cache directory %s: owned by uid %u, not by us", dir,
			 (unsigned)st.st_uid);
		goto bad;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen,
			 "cache directory %s: writable by group or others "
			 "(mode %03o); chmod 700 it",
			 dir, (unsigned)(st.st_mode & 0777));
		goto bad;
	}
	if (mkdirat(c->dir_fd, "objects", 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cache directory %s: objects: %s", dir,
			 strerror(errno));
		goto bad;
	}
	c->obj_fd = openat(c->dir_fd, "objects",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (c->obj_fd >= 0)
		c->lock_fd =
		    openat(c->dir_fd, "lock",
			   O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (c->lock_fd < 0) {
		snprintf(err, errlen, "cache directory %s: %s", dir,
			 strerror(errno));
		goto bad;
	}
	e = scan_dir(c, true, &s);
	if (e) {
		snprintf(err, errlen, "cache directory %s: %s", dir,
			 strerror(e));
		goto bad;
	}
	c->total_bytes = s.total;
	/* The bound may have been lowered since the entries were written. */
	if (s.total > max_bytes)
		evict(c, "");
	return c;
bad:
	wiv_cache_close(c);
	return NULL;
}

void wiv_cache_close(struct wiv_cache *c)
{
	if (!c)
		return;
	for (int i = 0; i < FD_SLOTS; i++)
		if (c->slots[i].fd >= 0)
			close(c->slots[i].fd);
	if (c->dir_fd >= 0)
		close(c->dir_fd);
	if (c->obj_fd >= 0)
		close(c->obj_fd);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	wiv_cache_unpublish(c);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->pub_mu);
	free(c->dir);
	free(c);
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
	fd = openat(c->obj_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = errno;
		count(c, &c->misses, 1);
		return err;
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
	if (slot_insert(c, name, fd, &st, false) < 0)
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

	*slot = slot_acquire(c, name, fd, &touch);
	if (*slot < 0) {
		*fd =
		    openat(c->obj_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (*fd < 0)
			return errno;
		if (fstat(*fd, &st) == 0)
			*slot = slot_insert(c, name, *fd, &st, true);
		touch = true;
	}
	if (touch)
		futimens(*fd, NULL);
	return 0;
}

static void close_entry(struct wiv_cache *c, int fd, int slot)
{
	if (slot >= 0)
		slot_release(c, slot);
	else
		close(fd);
}

/* Whether name now is another file than fd (ENOENT: none), or 0. */
static int replaced(struct wiv_cache *c, const char *name, int fd)
{
	struct stat a, b;

	if (fstatat(c->obj_fd, name, &b, AT_SYMLINK_NOFOLLOW) != 0)
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
			slot_forget(c, name);
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

struct wiv_cache_writer *wiv_cache_writer_new(struct wiv_cache *c,
					      const char *entry_id,
					      const char *key)
{
	struct wiv_cache_writer *w = malloc(sizeof(*w));
	char sub[3];

	if (!w)
		return NULL;
	w->c = c;
	if (strlen(key) > MAX_KEY_LEN) {
		free(w);
		errno = ENAMETOOLONG;
		return NULL;
	}
	w->key = strdup(key);
	if (!w->key) {
		free(w);
		return NULL;
	}
	entry_name(entry_id, w->hash, w->name);
	w->n_events = 0;
	w->data_len = w->flushed = 0;
	w->index = NULL;
	w->index_len = w->index_cap = 0;
	w->buf_len = 0;
	memcpy(sub, w->name, 2);
	sub[2] = '\0';
	if (mkdirat(c->obj_fd, sub, 0700) != 0 && errno != EEXIST)
		goto bad;
	/* pid + counter is unique among live writers; a stale file of a dead
	 * process with a recycled pid only costs another try. */
	for (int tries = 0;; tries++) {
		unsigned long n;

		pthread_mutex_lock(&c->mu);
		n = c->tmp_counter++;
		pthread_mutex_unlock(&c->mu);
		snprintf(w->tmp, sizeof(w->tmp), "%s/" TMP_PREFIX "%ld.%lu",
			 sub, (long)getpid(), n);
		w->fd = openat(c->obj_fd, w->tmp,
			       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd >= 0)
			break;
		if (errno != EEXIST || tries == 100)
			goto bad;
	}
	flock(w->fd, LOCK_EX);
	return w;
bad:
	free(w->key);
	free(w);
	return NULL;
}

static int flush(struct wiv_cache_writer *w)
{
	int err = pwrite_full(w->fd, w->buf, w->buf_len, HDR_LEN + w->flushed);

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
		err = pwrite_full(w->fd, ev->text, ev->text_len,
				  HDR_LEN + w->flushed);
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
	int64_t delta;
	bool over;
	int err = 0;

	if (status == WIV_OBJECT_BAD) {
		w->n_events = 0;
		w->data_len = w->flushed = 0;
		w->index_len = w->buf_len = 0;
		if (ftruncate(w->fd, 0) != 0)
			err = errno;
	}
	if (!err)
		err = flush(w);
	if (!err)
		err = pwrite_full(w->fd, w->index, w->index_len,
				  HDR_LEN + w->data_len);
	if (!err)
		err = pwrite_full(w->fd, w->key, key_len,
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
		err = pwrite_full(w->fd, h, HDR_LEN, 0);
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
	if (fstatat(c->obj_fd, w->name, &old, AT_SYMLINK_NOFOLLOW) != 0)
		old.st_size = 0;
	if (renameat(c->obj_fd, w->tmp, c->obj_fd, w->name) != 0) {
		err = errno;
		wiv_object_index_free(idx);
		wiv_cache_writer_abort(w);
		return err;
	}
	if (slot_insert(c, w->name, w->fd, &st, false) < 0)
		close(w->fd);

	delta = (int64_t)st.st_size - (int64_t)old.st_size;
	pthread_mutex_lock(&c->mu);
	adjust_total(c, delta);
	over = c->total_bytes > c->max_bytes && !c->evicting;
	if (over)
		c->evicting = true;
	pthread_mutex_unlock(&c->mu);
	if (over) {
		evict(c, w->name);
		pthread_mutex_lock(&c->mu);
		c->evicting = false;
		pthread_mutex_unlock(&c->mu);
	}
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
	unlinkat(w->c->obj_fd, w->tmp, 0);
	close(w->fd);
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
