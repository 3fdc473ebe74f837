/* What a running mount publishes about its use of a cache directory, for
 * `wivaudit cache stats`: one small text file per daemon,
 * <cache_dir>/mounts/<pid>.stats, replaced atomically. A file whose daemon
 * is gone (killed, crashed) is stale; the reader removes it. */
#ifndef WIVAUDIT_MOUNT_STATS_H
#define WIVAUDIT_MOUNT_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct wiv_mount_stats {
	pid_t pid;
	char *mountpoint;
	char *source;
	int64_t started_at; /* wall-clock seconds */
	int64_t updated_at;
	uint64_t cache_bound; /* cache_size of the mount */
	uint64_t hits;	      /* cache lookups that found the object */
	uint64_t misses;      /* ... that did not */
	uint64_t downloads;   /* objects downloaded and stored */
	uint64_t download_bytes;
	uint64_t over_limit;  /* objects skipped for a ceiling */
	uint64_t evicted;     /* entries removed to stay within bounds */
	uint64_t uncached;    /* objects served from memory, not kept */
	uint64_t missing;     /* objects whose events cannot be shown */
};

/* Writes (temp file + rename) the stats file of s->pid under mounts/ of
 * the cache directory open on cache_fd. Returns 0 or errno (ELOOP:
 * mounts/ is a symlink, not followed). */
int wiv_mount_stats_write(int cache_fd, const struct wiv_mount_stats *s);

/* Removes the stats file of pid; a missing one is fine. */
void wiv_mount_stats_remove(int cache_fd, pid_t pid);

/* Reads the stats files of the daemons still running, sorted by pid, and
 * removes those of daemons that are gone. Returns 0 with a new array in
 * *out (free with wiv_mount_stats_free) and its length in *n, or errno. */
int wiv_mount_stats_list(int cache_fd, struct wiv_mount_stats **out,
			 size_t *n);

/* Frees an array from wiv_mount_stats_list; NULL is a no-op. */
void wiv_mount_stats_free(struct wiv_mount_stats *s, size_t n);

#endif
