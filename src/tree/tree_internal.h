/* Internal to the tree: the structures shared by src/tree/tree.c (paths,
 * event directories, files) and src/tree/catalog.c (orgs and objects from
 * listings). Everything here is guarded by wiv_tree.lock. */
#ifndef WIVAUDIT_TREE_INTERNAL_H
#define WIVAUDIT_TREE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "wivaudit/cache.h"
#include "wivaudit/keys.h"
#include "wivaudit/jobs.h"
#include "wivaudit/missing.h"
#include "wivaudit/strmap.h"
#include "wivaudit/tree.h"

/* Whether an object's split events are in the cache. Indexes themselves are
 * not kept in memory: a directory is built from them and they are freed. */
enum object_state { OBJ_UNKNOWN, OBJ_LOADING, OBJ_CACHED, OBJ_FAILED };

struct object {
	char *key;
	char *etag;
	char *storage_class; /* as last listed; "" when the listing named none */
	char *entry_id;
	uint64_t size;   /* as listed: a body of another size is not whole */
	int64_t key_ms;
	enum wiv_log_type type;
	enum object_state state;
	int error;
	unsigned loads_done; /* tells a waiter that the load it waited for ended */
	/* Why this version of the object cannot be shown, if it cannot;
	 * logged and counted once. */
	enum wiv_missing_reason missing;
	bool missing_noted;
	bool offline_logged;
	bool over_limit;      /* over a ceiling: skipped, never fetched again */
	bool prefetch_queued; /* waiting in the read-ahead queue */
	time_t failed_at;
	/* Its index, kept while recently used so that neighbouring days'
	 * directories do not read it again; users counts builds using it. */
	struct wiv_object_index *index;
	unsigned index_users;
	struct object *index_prev, *index_next; /* tree's kept-index LRU */
	struct object *next_retired;
};

struct type_listing {
	struct object **objs; /* sorted by (key_ms, key) */
	size_t n;
	int64_t *days;        /* sorted key days, unique */
	size_t ndays;
};

struct org {
	char *name;
	bool listed;
	bool listing;         /* a listing is under way */
	time_t listed_at;
	time_t full_listed_at; /* 0: no full listing in this mount yet */
	unsigned generation;  /* bumped when the set of objects changes */
	struct type_listing types[WIV_TYPE_COUNT];
	int64_t *days;        /* union of the types' days */
	size_t ndays;
	int64_t newest_ms;    /* newest key timestamp, -1 if none */
	/* The day of each type's last built directory (INT64_MIN: none), to
	 * tell a walk through the days from a directory listed on its own. */
	int64_t walked_day[WIV_TYPE_COUNT];
};

/* Everything an event file needs, so that a built directory does not pin
 * its objects' indexes in memory. */
struct entry {
	char *name;
	char *event_type;     /* NULL if the event had none */
	struct object *obj;
	uint64_t offset;      /* of the text in the object's cache entry */
	uint32_t length;
	uint32_t crc;
	int64_t mtime_s;
	uint64_t ino;
};

struct event_dir {
	struct org *org;
	int64_t day;
	enum wiv_log_type type;
	unsigned generation;
	struct entry *entries; /* in (key_ms, key, position) order */
	size_t n;
	/* Objects within W of the day whose events cannot be shown (their
	 * reason in obj->missing), in key order. */
	struct object **missing;
	size_t nmissing;
	struct wiv_strmap by_name;
	uint64_t serial;       /* unique per build: tells a rebuilt one apart */
	/* The JSON Lines view's end offset of each event's line (n + 1
	 * entries, [0] = 0), or NULL until that view first needs it. */
	uint64_t *line_ends;
	struct event_dir *lru_prev, *lru_next;
	struct event_dir *hash_next; /* chain in the tree's dir index */
};

struct wiv_tree {
	struct wiv_tree_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a listing or download finished */

	struct org **orgs;      /* sorted by name */
	size_t norgs;
	bool root_listed;
	bool root_listing;
	bool root_listed_from_source; /* at least once in this mount */
	time_t root_listed_at;
	bool unreachable_logged;

	struct event_dir *lru_head, *lru_tail; /* most recent first */
	size_t lru_entries; /* events in the built directories */
	/* The built directories by (org, day, type): every read and lookup
	 * finds its directory here, and the LRU may hold thousands. */
	struct event_dir **dir_buckets;
	size_t ndir_buckets; /* a power of two */
	size_t ndirs;
	uint64_t dir_serial; /* of the last directory built */
	struct wiv_tree_observer observer;
	/* Indexes kept in memory, most recent first, bounded by events. */
	struct object *index_head, *index_tail;
	size_t index_events;
	struct wiv_jobs *prefetch; /* NULL: no read-ahead */

	struct object *retired; /* replaced by a newer listing */
	struct org **retired_orgs; /* gone from the bucket */
	size_t nretired_orgs;
	bool read_ok; /* an object was read: a 403 on one key is that key's */
	struct wiv_strmap ignored_keys; /* logged once each */
	char **ignored_key_store;
	size_t nignored;
};

/* Seconds on a clock that never jumps: TTLs and retry delays. */
static inline time_t wiv_tree_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Makes sure the list of orgs is fresh: from disk at first, then from the
 * source once its TTL ran out (or at once with force). Lock held; released
 * while listing. Returns 0 or errno. */
int wiv_catalog_ensure_root(struct wiv_tree *t, bool force);

/* Makes sure the org's listing is fresh, likewise. */
int wiv_catalog_ensure_org(struct wiv_tree *t, struct org *o);

/* Lists the org again in full at once, unless a full listing ended after
 * since (monotonic seconds): a listed object was found gone or changed. */
int wiv_catalog_relist_org(struct wiv_tree *t, struct org *o, time_t since);

/* The org named name, with a fresh listing (ENOENT if there is none). */
int wiv_catalog_get_org(struct wiv_tree *t, const char *name,
			struct org **out);

/* Whether the sorted days contain day. */
bool wiv_catalog_has_day(const int64_t *days, size_t n, int64_t day);

/* Index of the first object with key_ms >= ms. */
size_t wiv_catalog_first_object(const struct type_listing *tl, int64_t ms);

/* Newest key timestamp in [from_ms, to_ms) over the types in type_mask, or
 * -1 if there is none. */
int64_t wiv_catalog_newest_between(const struct org *o, int type_mask,
				   int64_t from_ms, int64_t to_ms);

/* What a read needs of an event file, copied out of its directory so that
 * the tree lock is not held while reading the cache. */
struct event_ref {
	struct object *obj;
	struct wiv_cached_event event; /* offset, length and crc only */
};

/* The built event directory of org/day/type, loading the objects it needs.
 * Called and returns with the lock held (released while downloading).
 * Returns 0 or errno. */
int wiv_tree_event_dir(struct wiv_tree *t, struct org *o, int64_t day,
		       enum wiv_log_type type, struct event_dir **out);

/* The built directory of org/day/type if it is in memory, else NULL. Lock
 * held. */
struct event_dir *wiv_tree_find_event_dir(struct wiv_tree *t, struct org *o,
					  int64_t day, enum wiv_log_type type);

/* Copies what a read of entry e needs into *ref. */
void wiv_tree_entry_ref(const struct entry *e, struct event_ref *ref);

/* Reads the event text (ref->event.length bytes) from the cache into text,
 * refetching the object if its entry was evicted or damaged meanwhile. Lock
 * not held. Returns 0 or errno. */
int wiv_tree_read_event(struct wiv_tree *t, const struct event_ref *ref,
			char *text);

/* Reads the texts of n events of obj that lie back to back in its cache
 * entry (see wiv_cache_read_events) into text, as wiv_tree_read_event. */
int wiv_tree_read_events(struct wiv_tree *t, struct object *obj,
			 const struct wiv_cached_event *evs, size_t n,
			 char *text);

/* Drops the org's built event directories at once and tells the observer
 * that its files were replaced: after objects were deleted or replaced, so
 * that new opens look their names up again. Lock held. */
void wiv_tree_drop_org_dirs(struct wiv_tree *t, struct org *o);

/* Frees every org and object, the retired ones too. */
void wiv_catalog_free(struct wiv_tree *t);

#endif
