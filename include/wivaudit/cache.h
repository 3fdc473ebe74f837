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
	/* Over a ceiling of the mount (max_object_events, max_object_bytes):
	 * in memory only, never stored, as other ceilings may accept it. */
	WIV_OBJECT_OVER_LIMIT,
};

/* The index of one object, as loaded from or written to the cache. */
struct wiv_object_index {
	enum wiv_object_status status;
	size_t n_events;
	struct wiv_cached_event *events;
};

/* Opens (creating, 0700) the cache directory, without following anybody's
 * symlinks (see wiv_cachedir_open; dir_flags may add
 * WIV_CACHEDIR_PARENTS). A directory of ours with looser modes is made
 * 0700; one of another owner, or a symlink anywhere in the layout, is
 * refused. max_bytes bounds the entries and the temp files being written;
 * least recently used entries are evicted to stay within it, and to keep
 * free space on the filesystem. An entry that cannot be kept is served
 * from memory. Returns a new cache, or NULL with a one-line message in
 * err. */
struct wiv_cache *wiv_cache_open(const char *dir, int dir_flags,
				 uint64_t max_bytes, char *err, size_t errlen);

/* The descriptor of the cache directory, for the files kept beside the
 * entries (listings); borrowed, valid until wiv_cache_close. */
int wiv_cache_dir_fd(const struct wiv_cache *c);

/* Closes the cache; NULL is a no-op. */
void wiv_cache_close(struct wiv_cache *c);

/* entry_id names an entry; callers build it from source identity, key, ETag
 * and layout. Loads that entry's index into *out (caller frees with
 * wiv_object_index_free) and marks the entry recently used. Returns 0,
 * ENOENT if absent, or EBADMSG if damaged (the entry is then removed and
 * logged with key_for_log). */
int wiv_cache_lookup(struct wiv_cache *c, const char *entry_id,
		     const char *key_for_log, struct wiv_object_index **out);

/* Starts writing an entry for the object key (stored in the entry, for
 * messages and verification). Returns NULL (errno set) on failure. */
struct wiv_cache_writer *wiv_cache_writer_new(struct wiv_cache *c,
					      const char *entry_id,
					      const char *key);

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

/* Reads the texts of n (>= 1) events of one entry that lie back to back
 * (each offset the previous one's plus its length) into buf with one read,
 * checking every crc. Returns as wiv_cache_read_event. */
int wiv_cache_read_events(struct wiv_cache *c, const char *entry_id,
			  const char *key_for_log,
			  const struct wiv_cached_event *evs, size_t n,
			  char *buf);

/* Returns a new index of no events with that status (caller frees), or
 * NULL if out of memory. */
struct wiv_object_index *wiv_object_index_new_empty(enum wiv_object_status status);

/* Frees an index; NULL is a no-op. */
void wiv_object_index_free(struct wiv_object_index *idx);

/* Counts since the cache was opened. A lookup hits when it returns 0. */
struct wiv_cache_counters {
	uint64_t hits, misses, downloads, download_bytes;
	uint64_t over_limit; /* objects skipped for a ceiling */
	uint64_t evicted;  /* entries removed to stay within the bounds */
	uint64_t uncached; /* entries served from memory, not kept */
	uint64_t missing;  /* objects whose events the tree cannot show */
};

/* Copies the counters into *out. */
void wiv_cache_counters(struct wiv_cache *c, struct wiv_cache_counters *out);

/* Counts one object downloaded and stored, of bytes as downloaded. */
void wiv_cache_note_download(struct wiv_cache *c, uint64_t bytes);

/* Counts one object skipped for being over a ceiling. */
void wiv_cache_note_over_limit(struct wiv_cache *c);

/* Counts one object (key and ETag) whose events cannot be shown. */
void wiv_cache_note_missing(struct wiv_cache *c);

/* Publishes the counters of this process (a mount of source on
 * mountpoint) in <dir>/mounts/<pid>.stats: now, then at most once a second
 * when they change. Call it in the process that serves, after any fork.
 * Returns 0 or ENOMEM. */
int wiv_cache_publish(struct wiv_cache *c, const char *mountpoint,
		      const char *source);

/* Stops publishing and removes the stats file; harmless if not
 * publishing. wiv_cache_close does it too. */
void wiv_cache_unpublish(struct wiv_cache *c);

/* What wiv_cache_inspect learned about an entry file. */
struct wiv_cache_entry_info {
	uint64_t bytes; /* file size */
	enum wiv_object_status status;
	uint32_t n_events;
	char *key; /* the object key, or NULL if unreadable; caller frees */
};

/* Checks the entry file open on fd, whose name in its directory is
 * base_name (64 hex digits + ".wvc"): header, stored key and name, and
 * with deep also the index and every event text. Returns 0, EBADMSG with
 * the reason in *why (info->key is set if it could be read),
 * EPROTONOSUPPORT for an entry of another format version (refetched on
 * use, not damage), or another errno. Never modifies the file. */
int wiv_cache_inspect(int fd, const char *base_name, bool deep,
		      struct wiv_cache_entry_info *info, const char **why);

/* --- administration of a cache directory (no daemon state needed) ---- */

/* Sizes of a cache directory. */
struct wiv_cache_usage {
	uint64_t entries, entry_bytes;
	uint64_t bad_objects;  /* entries recording an unusable object */
	uint64_t other_format; /* entries of another version, to refetch */
	uint64_t unreadable;   /* entries whose header fails its checks */
	uint64_t listings, listing_bytes;
	uint64_t temp_files, temp_bytes; /* writes under way or abandoned */
	uint64_t symlinks; /* anywhere in the layout: never followed */
};

/* Walks the cache directory open on dir_fd (reading each entry's header,
 * following no symlink) and fills *out. Returns 0 or errno. */
int wiv_cache_usage(int dir_fd, struct wiv_cache_usage *out);

/* Called by wiv_cache_verify for each damaged file: path relative to the
 * cache directory, the object key if known (else NULL), the reason. */
typedef void (*wiv_cache_damage_fn)(void *arg, const char *path,
				    const char *key, const char *why);

struct wiv_cache_verify_result {
	uint64_t entries, events, listings; /* checked */
	uint64_t damaged;                   /* reported through the callback */
	uint64_t other_format;
	uint64_t removed;                   /* with repair */
	uint64_t temp_files, temp_removed;  /* abandoned ones, with repair */
};

/* Checks every entry through (header, index, key, every event text) and
 * every listing (checksum, syntax) of the cache directory open on dir_fd,
 * reporting each damaged file, and each symlink (never followed), to fn;
 * with repair, removes them (and entries of another format, and temp
 * files no live writer holds). Returns 0 or errno (the walk itself
 * failed). */
int wiv_cache_verify(int dir_fd, bool repair, wiv_cache_damage_fn fn,
		     void *arg, struct wiv_cache_verify_result *out);

struct wiv_cache_clear_result {
	uint64_t entries, entry_bytes, listings, listing_bytes;
	uint64_t symlinks; /* removed, never followed */
};

/* Removes every entry, listing, abandoned temp file and symlink (the link,
 * not its target) of the cache directory open on dir_fd, under the
 * eviction lock, waiting at most wait_s seconds for it (ETIMEDOUT; ELOOP
 * if the lock is a symlink). Daemons using the directory refetch what they
 * need. Returns 0 or errno. */
int wiv_cache_clear(int dir_fd, unsigned wait_s,
		    struct wiv_cache_clear_result *out);

#endif
