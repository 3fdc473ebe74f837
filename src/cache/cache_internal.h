/* Shared between the files of the cache (cache.c: entry format, lookups,
 * writer, counters; cache_files.c: reaching entry files and keeping their
 * descriptors; cache_space.c: the bounds, eviction and a full disk). Not a
 * public interface. */
#ifndef WIVAUDIT_CACHE_INTERNAL_H
#define WIVAUDIT_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/sha.h>

#include "wivaudit/cache.h"
#include "wivaudit/mount_stats.h"

/* "ab/" + 64 hex digits + ".wvc": an entry's name below objects/ */
#define WIV_CACHE_SUFFIX ".wvc"
#define WIV_CACHE_BASE_LEN                                                     \
	(2 * SHA256_DIGEST_LENGTH + sizeof(WIV_CACHE_SUFFIX) - 1)
#define WIV_CACHE_NAME_LEN (3 + WIV_CACHE_BASE_LEN + 1)

/* Descriptors kept open on disk entries, and entries kept in memory. */
#define WIV_CACHE_FD_SLOTS 32
#define WIV_CACHE_MEM_SLOTS 64

/* An open entry file (disk) or a memory-only entry (a memfd). A slot is
 * keyed by entry name; a stale slot (entry replaced or removed) is closed by
 * its last user. A slot may go on reading an entry another daemon evicted:
 * harmless, as an entry id always names the same content, and the space
 * returns with the slot. */
struct wiv_cache_slot {
	char name[WIV_CACHE_NAME_LEN];
	int fd; /* -1: free */
	dev_t dev;
	ino_t ino;
	unsigned refs;
	bool stale;
	uint64_t used;
	time_t touched;
	uint64_t size; /* of a memory entry */
};

struct wiv_cache {
	int dir_fd;
	int obj_fd;
	int lock_fd;
	uint64_t max_bytes;
	/* Protects everything below; never held across file I/O other than
	 * close() of a descriptor nobody uses any more. */
	pthread_mutex_t mu;
	/* Bytes of entries on disk as far as this process knows (other
	 * daemons' temp files included); another daemon's writes make it
	 * drift, and every eviction scan resets it. */
	uint64_t total_bytes;
	/* Bytes of cache_size held by this process's writers for their temp
	 * files, ahead of writing them. */
	uint64_t reserved;
	uint64_t mem_bytes; /* of memory entries */
	uint64_t tick;
	/* Disk slots first, then memory slots. */
	struct wiv_cache_slot slots[WIV_CACHE_FD_SLOTS + WIV_CACHE_MEM_SLOTS];
	/* One eviction at a time in this process (held across file I/O). */
	pthread_mutex_t evict_mu;
	/* Log once: a full disk (re-armed once entries fit again), an entry
	 * over cache_size, another write error, a symlink in objects/. */
	atomic_bool full_logged, oversize_logged, io_logged, link_logged;

	/* Since open; atomics, so the lookup path takes no lock for them. */
	atomic_uint_fast64_t hits, misses, downloads, download_bytes;
	atomic_uint_fast64_t over_limit, evicted, uncached, missing;
	/* Publishing them for `wivaudit cache stats`: pub_mu serializes
	 * writers of the stats file and guards pub; last_pub_ms picks, without
	 * the lock, the one caller a second that writes. */
	atomic_bool publishing, pub_link_logged;
	atomic_int_fast64_t last_pub_ms;
	pthread_mutex_t pub_mu;
	struct wiv_mount_stats pub;
	char *dir;
};

/* --- cache_files.c ---------------------------------------------------- */

/* Opens objects/XX of the entry name "XX/..." without following a
 * symlink (one there is logged once, naming it), creating it if create.
 * Returns 0 with a new *fd, or errno (ELOOP for a symlink). */
int wiv_cache_open_sub(struct wiv_cache *c, const char *name, bool create,
		       int *fd);

/* Opens entry name read-only, never through a symlink. Returns 0 with a
 * new *fd, or errno (ELOOP: a symlink, logged once). */
int wiv_cache_open_entry_file(struct wiv_cache *c, const char *name, int *fd);

/* fstatat/unlinkat of entry name, not following symlinks. Return 0 or
 * errno. */
int wiv_cache_stat_entry(struct wiv_cache *c, const char *name,
			 struct stat *st);
int wiv_cache_unlink_entry(struct wiv_cache *c, const char *name);

/* Finds an open descriptor (disk or memory) for name and takes a
 * reference on it. Returns the slot, or -1. *touch says the caller should
 * refresh the recency. With memory_only, disk slots are not looked at. */
int wiv_cache_slot_acquire(struct wiv_cache *c, const char *name,
			   bool memory_only, int *fd, bool *touch);

/* Drops the reference of wiv_cache_slot_acquire (or of an insert with
 * hold). */
void wiv_cache_slot_release(struct wiv_cache *c, int slot);

/* Hands fd (open on disk entry name, inode st) to the descriptor cache,
 * holding one reference if hold. Returns the slot, or -1 if the cache did
 * not take the fd (the caller still owns it). Slots of an older file of
 * the same name, memory ones included, are retired. */
int wiv_cache_slot_insert(struct wiv_cache *c, const char *name, int fd,
			  const struct stat *st, bool hold);

/* Keeps the memory entry on fd (size bytes) as name, dropping least
 * recently used memory entries beyond the memory budget (the newest one is
 * always kept). Returns 0, or ENOSPC if every memory slot is in use (the
 * caller still owns fd). */
int wiv_cache_mem_insert(struct wiv_cache *c, const char *name, int fd,
			 uint64_t size);

/* Drops the descriptors (disk and memory) of an entry that was removed. */
void wiv_cache_slot_forget(struct wiv_cache *c, const char *name);

/* Closes every slot; for wiv_cache_close. */
void wiv_cache_slots_close(struct wiv_cache *c);

/* Seconds on a coarse monotonic clock. */
time_t wiv_cache_mono_now(void);

/* --- cache_space.c ---------------------------------------------------- */

/* Sums the entries at open into c->total_bytes and removes temp files no
 * live writer holds. Returns 0, ELOOP with the symlink's path (relative
 * to the cache directory) in link, or errno. */
int wiv_cache_space_open(struct wiv_cache *c, char *link, size_t linklen);

/* Removes least recently used entries, never keep, until the entries take
 * at most target bytes. Returns the bytes removed. */
uint64_t wiv_cache_space_evict(struct wiv_cache *c, const char *keep,
			       uint64_t target);

/* What a refused reservation was short of, for the log. */
struct wiv_cache_shortfall {
	uint64_t needed;   /* bytes asked for */
	uint64_t free;     /* free on the filesystem (ENOSPC) */
	uint64_t held;     /* held by other writers (EFBIG) */
};

/* Lets a writer grow its temp file to end bytes: takes *held up to end (in
 * steps) out of cache_size, evicting ahead to make room, and keeps a
 * margin of free space on the cache's filesystem, evicting when it runs
 * short. Returns 0, EFBIG if cache_size cannot hold it, or ENOSPC if the
 * filesystem cannot even after evicting (details in *sf). */
int wiv_cache_space_reserve(struct wiv_cache *c, uint64_t *held, uint64_t end,
			    struct wiv_cache_shortfall *sf);

/* Evicts to free bytes on a filesystem that answered ENOSPC or EDQUOT.
 * Returns whether anything was removed. */
bool wiv_cache_space_free_up(struct wiv_cache *c, uint64_t bytes);

/* Gives back a writer's reservation (*held becomes 0) and, if committed,
 * counts the entry's size (replacing old_size bytes) in the total; evicts
 * if the total is over the bound. keep is the entry just committed. */
void wiv_cache_space_commit(struct wiv_cache *c, uint64_t *held,
			    uint64_t new_size, uint64_t old_size,
			    const char *keep);

/* Gives back a writer's reservation; *held becomes 0. */
void wiv_cache_space_release(struct wiv_cache *c, uint64_t *held);

/* Free bytes on the cache's filesystem (0 if unknown). */
uint64_t wiv_cache_space_avail(struct wiv_cache *c);

/* Subtracts bytes of an entry removed outside eviction. */
void wiv_cache_space_removed(struct wiv_cache *c, uint64_t bytes);

#endif
