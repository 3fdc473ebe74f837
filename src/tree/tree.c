/* The tree: paths, day/type directories of events, and reads. The orgs and
 * objects it is built from come from the catalog (catalog.c).
 *
 * Locking: one mutex guards every structure here. Listings and downloads run
 * with it released; their results are merged back under it. Objects are never
 * freed before the tree, so a pointer to one stays valid for the life of the
 * mount. Event directories are built on demand, kept in an LRU bounded by
 * their number of events, and only used under the lock. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tree_internal.h"
#include "wivaudit/daterule.h"
#include "wivaudit/fetch.h"
#include "wivaudit/keys.h"
#include "wivaudit/log.h"
#include "wivaudit/naming.h"
#include "wivaudit/strmap.h"
#include "wivaudit/tree.h"

enum depth { D_ROOT, D_ORG, D_YEAR, D_MONTH, D_DAY, D_TYPE, D_EVENT };

struct tree_path {
	enum depth depth;
	char org[256];
	int year, month, mday;
	enum wiv_log_type type;
	const char *file;
};

uint64_t wiv_tree_path_ino(const char *path)
{
	/* FUSE reserves 1 for the root; keep the rest well away from it. */
	uint64_t h = wiv_hash64(path, strlen(path));
	return h < 2 ? h + 2 : h;
}

/* ---- paths ---- */

static bool all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int parse_number(const char *s, size_t len, size_t want, int *out)
{
	if (len != want || !all_digits(s, len))
		return ENOENT;
	int v = 0;
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (s[i] - '0');
	*out = v;
	return 0;
}

static int parse_path(const char *path, struct tree_path *tp)
{
	memset(tp, 0, sizeof(*tp));
	const char *p = path;
	while (*p == '/')
		p++;
	int depth = 0;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		switch (depth) {
		case D_ROOT:
			if (len >= sizeof(tp->org) || !wiv_org_name_valid(p, len))
				return ENOENT;
			memcpy(tp->org, p, len);
			break;
		case D_ORG:
			if (parse_number(p, len, 4, &tp->year))
				return ENOENT;
			break;
		case D_YEAR:
			if (parse_number(p, len, 2, &tp->month) ||
			    tp->month < 1 || tp->month > 12)
				return ENOENT;
			break;
		case D_MONTH:
			if (parse_number(p, len, 2, &tp->mday) ||
			    wiv_day_from_ymd(tp->year, tp->month, tp->mday) ==
				    INT64_MIN)
				return ENOENT;
			break;
		case D_DAY: {
			char word[8];
			if (len >= sizeof(word))
				return ENOENT;
			memcpy(word, p, len);
			word[len] = '\0';
			int type = wiv_type_from_name(word);
			if (type < 0)
				return ENOENT;
			tp->type = (enum wiv_log_type)type;
			break;
		}
		case D_TYPE:
			if (end)
				return ENOENT;
			tp->file = p;
			break;
		default:
			return ENOENT;
		}
		depth++;
		p += len;
		while (*p == '/')
			p++;
	}
	tp->depth = (enum depth)depth;
	return 0;
}

static int64_t path_day(const struct tree_path *tp)
{
	return wiv_day_from_ymd(tp->year, tp->month, tp->mday);
}

/* ---- object indexes ---- */

static void index_unlink(struct wiv_tree *t, struct object *obj)
{
	if (obj->index_prev)
		obj->index_prev->index_next = obj->index_next;
	else
		t->index_head = obj->index_next;
	if (obj->index_next)
		obj->index_next->index_prev = obj->index_prev;
	else
		t->index_tail = obj->index_prev;
	obj->index_prev = obj->index_next = NULL;
}

static void index_push_front(struct wiv_tree *t, struct object *obj)
{
	obj->index_next = t->index_head;
	obj->index_prev = NULL;
	if (t->index_head)
		t->index_head->index_prev = obj;
	t->index_head = obj;
	if (!t->index_tail)
		t->index_tail = obj;
}

/* Frees least recently used indexes nobody is building from, down to a
 * quarter of the events kept in built directories: enough for a walk to
 * reuse each index for the days on either side. Lock held. */
static void trim_indexes(struct wiv_tree *t)
{
	struct object *obj = t->index_tail;
	while (obj && t->index_events > t->cfg.max_events / 4) {
		struct object *prev = obj->index_prev;
		if (obj->index_users == 0) {
			index_unlink(t, obj);
			t->index_events -= obj->index->n_events;
			wiv_object_index_free(obj->index);
			obj->index = NULL;
		}
		obj = prev;
	}
}

/* Done building from the object's index. Lock held. */
static void release_index(struct wiv_tree *t, struct object *obj)
{
	obj->index_users--;
	trim_indexes(t);
}

/* The error a failure that is known to last gives again without a request:
 * this version of the object is gone or changed (until the listing drops
 * it), or denied (until the next listing). A transient failure is tried
 * again on the next access. Lock held. */
static int remembered_error(const struct wiv_tree *t, const struct object *obj)
{
	if (obj->state != OBJ_FAILED ||
	    wiv_missing_of_errno(obj->error, true) != obj->missing)
		return 0; /* not the failure that made it missing */
	if (obj->missing == WIV_MISSING_GONE ||
	    obj->missing == WIV_MISSING_CHANGED)
		return obj->error;
	if (obj->missing == WIV_MISSING_DENIED &&
	    wiv_tree_now() - obj->failed_at < (time_t)t->cfg.list_ttl_s)
		return obj->error;
	return 0;
}

/* Downloads (or reads from the cache) the object's index, one download per
 * object at a time: others wait for it and share its outcome. With out,
 * the caller gets a new index to free. Without, the index is kept in
 * memory (or the one kept is used) and counted as in use until
 * release_index. An archived object is read from the cache only: a GET
 * would be refused. Lock not held. Returns 0 or errno (ENOMEDIUM for an
 * archived object not in the cache). */
static int load_index(struct wiv_tree *t, struct object *obj,
		      struct wiv_object_index **out)
{
	pthread_mutex_lock(&t->lock);
	for (;;) {
		if (!out && obj->index) {
			obj->index_users++;
			index_unlink(t, obj);
			index_push_front(t, obj);
			pthread_mutex_unlock(&t->lock);
			return 0;
		}
		int known = remembered_error(t, obj);
		if (known) {
			pthread_mutex_unlock(&t->lock);
			return known;
		}
		if (obj->state != OBJ_LOADING)
			break;
		unsigned waited_for = obj->loads_done;
		while (obj->state == OBJ_LOADING)
			pthread_cond_wait(&t->changed, &t->lock);
		if (obj->state == OBJ_FAILED && obj->loads_done != waited_for) {
			int err = obj->error;
			pthread_mutex_unlock(&t->lock);
			return err;
		}
	}
	bool over_limit = obj->over_limit;
	obj->state = OBJ_LOADING;
	bool archived = wiv_storage_class_archived(obj->storage_class);
	pthread_mutex_unlock(&t->lock);

	struct wiv_fetch_request req = {
		.source = t->cfg.source,
		.cache = t->cfg.cache,
		.layout = t->cfg.layout,
		.key = obj->key,
		.etag = obj->etag,
		.entry_id = obj->entry_id,
		.size = obj->size,
		.cache_only = t->cfg.offline || archived,
		.max_events = t->cfg.max_object_events,
		.max_bytes = t->cfg.max_object_bytes,
	};
	struct wiv_object_index *index = NULL;
	int err;
	/* Its verdict stands for the mount: logged and counted once. */
	if (over_limit) {
		index = wiv_object_index_new_empty(WIV_OBJECT_OVER_LIMIT);
		err = index ? 0 : ENOMEM;
	} else {
		err = wiv_fetch_object(&req, &index);
	}
	if (err == ENOENT && archived) {
		err = ENOMEDIUM;
	} else if (err == ENOENT && t->cfg.offline) {
		if (!obj->offline_logged)
			wiv_err("offline: %s was never fetched, so its events "
				"cannot be shown", obj->key);
		obj->offline_logged = true;
		err = EIO;
	}

	pthread_mutex_lock(&t->lock);
	obj->loads_done++;
	if (err == 0) {
		obj->state = OBJ_CACHED;
		obj->over_limit = index->status == WIV_OBJECT_OVER_LIMIT;
		t->read_ok = true;
		if (out) {
			*out = index;
		} else {
			/* Loads are one at a time and only this kind keeps
			 * an index, so none is kept yet. */
			obj->index = index;
			obj->index_users++;
			index_push_front(t, obj);
			t->index_events += index->n_events;
		}
	} else {
		obj->state = OBJ_FAILED;
		obj->error = err;
		obj->failed_at = wiv_tree_now();
	}
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* Gets the object's index for a build: the kept one, the one another
 * thread is loading, or a loaded one that is then kept. Lock not held;
 * release_index when done. */
static int acquire_index(struct wiv_tree *t, struct object *obj)
{
	return load_index(t, obj, NULL);
}

struct load_batch {
	struct wiv_tree *t;
	struct object **objs;
	int *errors;
	size_t n;
	atomic_size_t next;
};

static void *load_worker(void *arg)
{
	struct load_batch *b = arg;
	size_t i;
	while ((i = atomic_fetch_add(&b->next, 1)) < b->n)
		b->errors[i] = acquire_index(b->t, b->objs[i]);
	return NULL;
}

/* Acquires the indexes of objs (errors[i] is 0 for those acquired, else
 * why not), cfg.parallel downloads at a time. Lock not held. */
static void acquire_indexes(struct wiv_tree *t, struct object **objs, size_t n,
			    int *errors)
{
	struct load_batch b = {.t = t, .objs = objs, .errors = errors, .n = n};
	/* An object already cached in this mount costs a read of its index,
	 * less than starting a thread: threads are for the others. */
	size_t uncached = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++)
		uncached += objs[i]->state != OBJ_CACHED && !objs[i]->index;
	pthread_mutex_unlock(&t->lock);
	size_t nthreads = uncached < t->cfg.parallel ? uncached
						     : t->cfg.parallel;
	pthread_t threads[256];
	size_t started = 0;
	for (; started + 1 < nthreads; started++)
		if (pthread_create(&threads[started], NULL, load_worker, &b))
			break;
	load_worker(&b);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

/* Releases what acquire_indexes acquired and frees the arrays. Lock held. */
static void release_indexes(struct wiv_tree *t, struct object **objs,
			    int *errors, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (errors[i] == 0)
			release_index(t, objs[i]);
	free(errors);
	free(objs);
}

/* Records that obj's events cannot be shown, logging and counting it the
 * first time. Returns whether this was the first time. Lock held. */
static bool note_missing(struct wiv_tree *t, struct object *obj,
			 enum wiv_missing_reason reason)
{
	obj->missing = reason;
	if (obj->missing_noted)
		return false;
	obj->missing_noted = true;
	wiv_missing_log(reason, obj->key, obj->storage_class, t->cfg.bucket);
	wiv_cache_note_missing(t->cfg.cache);
	return true;
}

/* Sorts out the failures of a build's objects: an object that cannot be
 * read as listed is missing from the directory; any other failure fails
 * the whole directory (never a silently partial one). Sets *relist when an
 * object was newly found gone or changed. Lock held. Returns 0 or the
 * directory's errno. */
static int triage_failures(struct wiv_tree *t, struct object **objs,
			   const int *errors, size_t n, bool *relist)
{
	int err = 0;
	*relist = false;
	for (size_t i = 0; i < n; i++) {
		if (!errors[i])
			continue;
		enum wiv_missing_reason r =
			wiv_missing_of_errno(errors[i], t->read_ok);
		if (r == WIV_MISSING_NONE) {
			/* A 403 before any object was read is the bucket's. */
			if (!err)
				err = errors[i] == EPERM ? EACCES : errors[i];
			continue;
		}
		bool first = note_missing(t, objs[i], r);
		*relist |= first && (r == WIV_MISSING_GONE ||
				     r == WIV_MISSING_CHANGED);
	}
	return err;
}

/* ---- read-ahead ---- */

/* Run by a read-ahead thread: brings an object into the cache, and its
 * index into the kept ones, before the walk reaches its days. */
static void prefetch_object(void *arg, void *item)
{
	struct wiv_tree *t = arg;
	struct object *obj = item;
	pthread_mutex_lock(&t->lock);
	obj->prefetch_queued = false;
	bool wanted = obj->state == OBJ_UNKNOWN && !obj->index;
	pthread_mutex_unlock(&t->lock);
	if (!wanted || acquire_index(t, obj))
		return;
	pthread_mutex_lock(&t->lock);
	release_index(t, obj);
	pthread_mutex_unlock(&t->lock);
}

/* Whether day follows prev among the type's key days, nothing between. */
static bool follows(const struct type_listing *tl, int64_t prev, int64_t day)
{
	if (prev == INT64_MIN || prev >= day)
		return false;
	size_t lo = 0, hi = tl->ndays; /* the first day after prev */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (tl->days[mid] <= prev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == tl->ndays || tl->days[lo] >= day;
}

/* A walk that builds a type's days in order (grep -r, rsync, tar) will
 * want the next days soon: their objects are queued for download in the
 * background, so that downloading overlaps reading. A day listed on its
 * own (not right after the one before it) fetches nothing more. Lock held. */
static void read_ahead(struct wiv_tree *t, struct org *o,
		       enum wiv_log_type type, int64_t day)
{
	const struct type_listing *tl = &o->types[type];
	bool walking = follows(tl, o->walked_day[type], day);
	o->walked_day[type] = day;
	if (!walking || !t->prefetch)
		return;
	/* Objects up to `to` were loaded for this day (get_event_dir). */
	int64_t w_ms = t->cfg.window_s * 1000;
	int64_t to = (day + 1) * WIV_MS_PER_DAY + w_ms;
	int64_t ahead_to =
	    (day + 1 + (int64_t)t->cfg.readahead_days) * WIV_MS_PER_DAY + w_ms;
	size_t last = wiv_catalog_first_object(tl, ahead_to + 1);
	for (size_t i = wiv_catalog_first_object(tl, to + 1); i < last; i++) {
		struct object *obj = tl->objs[i];
		if (obj->state != OBJ_UNKNOWN || obj->index ||
		    obj->prefetch_queued)
			continue;
		if (!wiv_jobs_push(t->prefetch, obj))
			break;
		obj->prefetch_queued = true;
	}
}

/* ---- event directories ---- */

static void lru_unlink(struct wiv_tree *t, struct event_dir *d)
{
	if (d->lru_prev)
		d->lru_prev->lru_next = d->lru_next;
	else
		t->lru_head = d->lru_next;
	if (d->lru_next)
		d->lru_next->lru_prev = d->lru_prev;
	else
		t->lru_tail = d->lru_prev;
	d->lru_prev = d->lru_next = NULL;
}

static void lru_push_front(struct wiv_tree *t, struct event_dir *d)
{
	d->lru_next = t->lru_head;
	d->lru_prev = NULL;
	if (t->lru_head)
		t->lru_head->lru_prev = d;
	t->lru_head = d;
	if (!t->lru_tail)
		t->lru_tail = d;
}

static size_t dir_bucket(const struct wiv_tree *t, const struct org *o,
			 int64_t day, enum wiv_log_type type)
{
	uint64_t h = ((uint64_t)(uintptr_t)o * 0x9e3779b97f4a7c15ULL) ^
		     ((uint64_t)day * 0xc2b2ae3d27d4eb4fULL) ^ (uint64_t)type;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (size_t)h & (t->ndir_buckets - 1);
}

static void dir_index_grow(struct wiv_tree *t)
{
	size_t nb = t->ndir_buckets * 2;
	struct event_dir **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	struct event_dir **old = t->dir_buckets;
	size_t nold = t->ndir_buckets;
	t->dir_buckets = b;
	t->ndir_buckets = nb;
	for (size_t i = 0; i < nold; i++)
		for (struct event_dir *d = old[i], *next; d; d = next) {
			next = d->hash_next;
			size_t k = dir_bucket(t, d->org, d->day, d->type);
			d->hash_next = b[k];
			b[k] = d;
		}
	free(old);
}

static void dir_index_add(struct wiv_tree *t, struct event_dir *d)
{
	size_t k = dir_bucket(t, d->org, d->day, d->type);
	d->hash_next = t->dir_buckets[k];
	t->dir_buckets[k] = d;
	if (++t->ndirs > t->ndir_buckets)
		dir_index_grow(t);
}

static void dir_index_remove(struct wiv_tree *t, struct event_dir *d)
{
	struct event_dir **pp =
		&t->dir_buckets[dir_bucket(t, d->org, d->day, d->type)];
	while (*pp && *pp != d)
		pp = &(*pp)->hash_next;
	if (*pp) {
		*pp = d->hash_next;
		t->ndirs--;
	}
}

static void event_dir_free(struct event_dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->entries[i].name);
		free(d->entries[i].event_type);
	}
	free(d->entries);
	free(d->line_ends);
	free(d->missing);
	wiv_strmap_clear(&d->by_name);
	free(d);
}

static void drop_event_dir(struct wiv_tree *t, struct event_dir *d)
{
	lru_unlink(t, d);
	dir_index_remove(t, d);
	t->lru_entries -= d->n;
	if (t->observer.dir_dropped) {
		char path[1024];
		int y, m, dd;
		wiv_day_to_ymd(d->day, &y, &m, &dd);
		snprintf(path, sizeof(path), "/%s/%04d/%02d/%02d", d->org->name,
			 y, m, dd);
		t->observer.dir_dropped(t->observer.arg, path,
					wiv_type_name(d->type));
	}
	event_dir_free(d);
}

void wiv_tree_drop_org_dirs(struct wiv_tree *t, struct org *o)
{
	for (struct event_dir *d = t->lru_head, *next; d; d = next) {
		next = d->lru_next;
		if (d->org == o)
			drop_event_dir(t, d);
	}
	if (t->observer.files_replaced)
		t->observer.files_replaced(t->observer.arg, o->name);
}

static bool type_has_day(void *arg, int64_t day)
{
	const struct type_listing *tl = arg;
	return wiv_catalog_has_day(tl->days, tl->ndays, day);
}

static int add_entry(struct event_dir *d, size_t *cap, const char *dir_path,
		     struct object *obj, const struct wiv_cached_event *ev,
		     const char *base, int64_t mtime_s)
{
	char name[WIV_NAME_MAX + 32];
	snprintf(name, sizeof(name), "%s.json", base);
	uint32_t unused;
	/* A different event already holds the name: ~2, ~3, ... */
	for (unsigned n = 2; wiv_strmap_get(&d->by_name, name, strlen(name),
					    &unused);
	     n++)
		snprintf(name, sizeof(name), "%s~%u.json", base, n);

	if (d->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct entry *e = realloc(d->entries, c * sizeof(*e));
		if (!e)
			return ENOMEM;
		d->entries = e;
		*cap = c;
	}
	struct entry *e = &d->entries[d->n];
	*e = (struct entry){
		.name = strdup(name),
		.event_type = ev->event_type ? strdup(ev->event_type) : NULL,
		.obj = obj,
		.offset = ev->offset,
		.length = ev->length,
		.crc = ev->crc,
		.mtime_s = mtime_s,
	};
	if (!e->name || (ev->event_type && !e->event_type) ||
	    wiv_strmap_put(&d->by_name, e->name, strlen(e->name),
			   (uint32_t)d->n)) {
		free(e->name);
		free(e->event_type);
		return ENOMEM;
	}
	/* Another version of the object is another file: an fd open on the
	 * old one keeps its inode, and its page cache, to itself. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s\n%s", dir_path, name, obj->etag);
	e->ino = wiv_tree_path_ino(path);
	d->n++;
	return 0;
}

/* Adds obj to the directory's missing objects. */
static int add_missing(struct event_dir *d, struct object *obj)
{
	struct object **m =
		realloc(d->missing, (d->nmissing + 1) * sizeof(*m));
	if (!m)
		return ENOMEM;
	d->missing = m;
	m[d->nmissing++] = obj;
	return 0;
}

/* Builds the events of one day/type directory from the loaded objects
 * (errors[i] == 0); the others, and those with a bad body, are named as
 * missing. Lock held. */
static int build_event_dir(struct wiv_tree *t, struct event_dir *d,
			   struct object **objs, const int *errors,
			   size_t nobjs)
{
	char dir_path[1024];
	int y, m, dd;
	wiv_day_to_ymd(d->day, &y, &m, &dd);
	snprintf(dir_path, sizeof(dir_path), "/%s/%04d/%02d/%02d/%s",
		 d->org->name, y, m, dd, wiv_type_name(d->type));

	const struct type_listing *tl = &d->org->types[d->type];
	struct wiv_strmap seen = {0};
	size_t cap = 0;
	int err = 0;
	for (size_t i = 0; i < nobjs && !err; i++) {
		struct object *obj = objs[i];
		if (errors[i]) {
			err = add_missing(d, obj);
			continue;
		}
		const struct wiv_object_index *idx = obj->index;
		if (idx->status != WIV_OBJECT_OK) {
			note_missing(t, obj,
				     idx->status == WIV_OBJECT_OVER_LIMIT
					     ? WIV_MISSING_OVER_LIMIT
					     : WIV_MISSING_BAD);
			err = add_missing(d, obj);
			continue;
		}
		obj->missing = WIV_MISSING_NONE;
		for (size_t k = 0; k < idx->n_events && !err; k++) {
			const struct wiv_cached_event *ev = &idx->events[k];
			struct wiv_event_date date = wiv_event_date(
				ev->has_created_at, ev->created_at,
				obj->key_ms, t->cfg.window_s, type_has_day,
				(void *)tl);
			if (date.day != d->day)
				continue;
			uint32_t unused;
			const char *digest = (const char *)ev->digest;
			if (wiv_strmap_get(&seen, digest, WIV_DIGEST_LEN,
					   &unused))
				continue; /* a re-delivery */
			err = wiv_strmap_put(&seen, digest, WIV_DIGEST_LEN, 0);
			if (err)
				break;
			char base[WIV_NAME_MAX + 1];
			wiv_event_name(ev->id_kind, ev->id, ev->id_len,
				       obj->key_ms, ev->position, base);
			err = add_entry(d, &cap, dir_path, obj, ev, base,
					date.mtime_s);
		}
	}
	wiv_strmap_clear(&seen);
	return err;
}

struct event_dir *wiv_tree_find_event_dir(struct wiv_tree *t, struct org *o,
					  int64_t day, enum wiv_log_type type)
{
	for (struct event_dir *d = t->dir_buckets[dir_bucket(t, o, day, type)];
	     d; d = d->hash_next)
		if (d->org == o && d->day == day && d->type == type)
			return d;
	return NULL;
}

int wiv_tree_event_dir(struct wiv_tree *t, struct org *o, int64_t day,
			 enum wiv_log_type type, struct event_dir **out)
{
	for (int attempt = 0;; attempt++) {
		struct event_dir *d = wiv_tree_find_event_dir(t, o, day, type);
		if (d && d->generation == o->generation) {
			lru_unlink(t, d);
			lru_push_front(t, d);
			*out = d;
			return 0;
		}
		if (d)
			drop_event_dir(t, d);

		/* Objects whose events may fall on this day: key within W. */
		const struct type_listing *tl = &o->types[type];
		int64_t from = day * WIV_MS_PER_DAY - t->cfg.window_s * 1000;
		int64_t to = (day + 1) * WIV_MS_PER_DAY + t->cfg.window_s * 1000;
		size_t first = wiv_catalog_first_object(tl, from);
		size_t last = wiv_catalog_first_object(tl, to + 1);
		size_t n = last - first;
		struct object **objs = malloc((n ? n : 1) * sizeof(*objs));
		if (!objs)
			return ENOMEM;
		memcpy(objs, tl->objs + first, n * sizeof(*objs));
		unsigned generation = o->generation;

		int *errors = calloc(n ? n : 1, sizeof(*errors));
		if (!errors) {
			free(objs);
			return ENOMEM;
		}
		pthread_mutex_unlock(&t->lock);
		time_t started = wiv_tree_now();
		acquire_indexes(t, objs, n, errors);
		pthread_mutex_lock(&t->lock);
		bool relist;
		int err = triage_failures(t, objs, errors, n, &relist);
		if (err) {
			release_indexes(t, objs, errors, n);
			return err == EACCES || err == ENOMEM ? err : EIO;
		}
		/* A listed object is gone or changed: the bucket moved on, so
		 * list the org again now and build from what it holds. */
		if (relist && attempt < 3) {
			release_indexes(t, objs, errors, n);
			err = wiv_catalog_relist_org(t, o, started);
			if (err)
				return err;
			continue;
		}
		/* The listing changed meanwhile: build from the new one. */
		if (o->generation != generation && attempt < 3) {
			release_indexes(t, objs, errors, n);
			continue;
		}

		d = calloc(1, sizeof(*d));
		if (d) {
			d->org = o;
			d->day = day;
			d->type = type;
			d->generation = generation;
			d->serial = ++t->dir_serial;
			err = build_event_dir(t, d, objs, errors, n);
		}
		release_indexes(t, objs, errors, n);
		if (!d || err) {
			if (d)
				event_dir_free(d);
			return err ? err : ENOMEM;
		}
		/* Another thread may have built it meanwhile. */
		struct event_dir *other = wiv_tree_find_event_dir(t, o, day, type);
		if (other)
			drop_event_dir(t, other);
		lru_push_front(t, d);
		dir_index_add(t, d);
		t->lru_entries += d->n;
		read_ahead(t, o, type, day);
		while (t->lru_entries > t->cfg.max_events &&
		       t->lru_tail != d)
			drop_event_dir(t, t->lru_tail);
		*out = d;
		return 0;
	}
}

/* ---- nodes ---- */

static void dir_attr(struct wiv_node_attr *a, const char *path,
		     unsigned subdirs, int64_t newest_ms)
{
	*a = (struct wiv_node_attr){
		.is_dir = true,
		.ino = strcmp(path, "/") == 0 ? 1 : wiv_tree_path_ino(path),
		.size = 4096,
		.mtime_s = newest_ms < 0 ? 0 : newest_ms / 1000,
		.nlink = 2 + subdirs,
	};
}

/* Day range [first, end) of a year or month, as day numbers. */
static void month_range(int year, int month, int64_t *first, int64_t *end)
{
	*first = wiv_day_from_ymd(year, month, 1);
	*end = month == 12 ? wiv_day_from_ymd(year + 1, 1, 1)
			   : wiv_day_from_ymd(year, month + 1, 1);
}

static void year_range(int year, int64_t *first, int64_t *end)
{
	*first = wiv_day_from_ymd(year, 1, 1);
	*end = wiv_day_from_ymd(year + 1, 1, 1);
}

/* Distinct children of a day range: years (by=0), months (by=1), days
 * (by=2). Calls fn with each child's number if fn is set; returns the count. */
static unsigned count_children(const struct org *o, int64_t first, int64_t end,
			       int by, void (*fn)(void *, int), void *arg)
{
	unsigned count = 0;
	int last = -1;
	for (size_t i = 0; i < o->ndays; i++) {
		if (o->days[i] < first || o->days[i] >= end)
			continue;
		int y, m, d;
		wiv_day_to_ymd(o->days[i], &y, &m, &d);
		int child = by == 0 ? y : by == 1 ? m : d;
		if (child != last) {
			count++;
			last = child;
			if (fn)
				fn(arg, child);
		}
	}
	return count;
}

static int type_mask_of_day(const struct org *o, int64_t day)
{
	int mask = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		if (wiv_catalog_has_day(o->types[ty].days, o->types[ty].ndays, day))
			mask |= 1 << ty;
	return mask;
}

static int popcount(int mask)
{
	return __builtin_popcount((unsigned)mask);
}

static int stat_root(struct wiv_tree *t, struct wiv_node_attr *out)
{
	int err = wiv_catalog_ensure_root(t, false);
	if (err)
		return err;
	/* The root's mtime is its newest delivery, which needs every org. */
	int64_t newest = -1;
	for (size_t i = 0; i < t->norgs; i++) {
		struct org *o = t->orgs[i];
		if (wiv_catalog_ensure_org(t, o) == 0 && o->newest_ms > newest)
			newest = o->newest_ms;
	}
	dir_attr(out, "/", (unsigned)t->norgs, newest);
	return 0;
}

/* Everything above the event files: answered from listings alone. */
static int stat_dir(struct wiv_tree *t, const char *path,
		    const struct tree_path *tp, struct org *o,
		    struct wiv_node_attr *out)
{
	int64_t first, end;
	switch (tp->depth) {
	case D_ORG:
		dir_attr(out, path, count_children(o, INT64_MIN, INT64_MAX, 0,
						   NULL, NULL),
			 o->newest_ms);
		return 0;
	case D_YEAR:
		year_range(tp->year, &first, &end);
		break;
	case D_MONTH:
		month_range(tp->year, tp->month, &first, &end);
		break;
	case D_DAY:
	case D_TYPE:
		first = path_day(tp);
		end = first + 1;
		break;
	default:
		return ENOENT;
	}
	int mask = (1 << WIV_TYPE_COUNT) - 1;
	unsigned subdirs;
	if (tp->depth == D_YEAR) {
		subdirs = count_children(o, first, end, 1, NULL, NULL);
	} else if (tp->depth == D_MONTH) {
		subdirs = count_children(o, first, end, 2, NULL, NULL);
	} else if (tp->depth == D_DAY) {
		subdirs = (unsigned)popcount(type_mask_of_day(o, first));
	} else {
		if (!wiv_catalog_has_day(o->types[tp->type].days, o->types[tp->type].ndays,
			     first))
			return ENOENT;
		mask = 1 << tp->type;
		subdirs = 0;
	}
	if (subdirs == 0 && tp->depth != D_TYPE)
		return ENOENT;
	dir_attr(out, path, subdirs,
		 wiv_catalog_newest_between(o, mask, first * WIV_MS_PER_DAY,
				end * WIV_MS_PER_DAY));
	return 0;
}

static void entry_attr(const struct entry *e, struct wiv_node_attr *a)
{
	*a = (struct wiv_node_attr){
		.is_dir = false,
		.ino = e->ino,
		.size = e->length,
		.mtime_s = e->mtime_s,
		.nlink = 1,
		.file = {.object = e->obj, .offset = e->offset,
			 .length = e->length, .crc = e->crc},
	};
}

/* The entry at an event path. Lock held. */
static int find_entry(struct wiv_tree *t, const struct tree_path *tp,
		      struct org *o, struct entry **out)
{
	int64_t day = path_day(tp);
	if (!wiv_catalog_has_day(o->types[tp->type].days, o->types[tp->type].ndays, day))
		return ENOENT;
	struct event_dir *d;
	int err = wiv_tree_event_dir(t, o, day, tp->type, &d);
	if (err)
		return err;
	uint32_t i;
	if (!wiv_strmap_get(&d->by_name, tp->file, strlen(tp->file), &i))
		return ENOENT;
	*out = &d->entries[i];
	return 0;
}

/* Resolves path to its org (if any) with the lock held. */
static int resolve(struct wiv_tree *t, const char *path, struct tree_path *tp,
		   struct org **org)
{
	int err = parse_path(path, tp);
	if (err)
		return err;
	*org = NULL;
	if (tp->depth == D_ROOT)
		return 0;
	return wiv_catalog_get_org(t, tp->org, org);
}

int wiv_tree_stat(struct wiv_tree *t, const char *path,
		  struct wiv_node_attr *out)
{
	struct tree_path tp;
	struct org *o;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
	if (!err) {
		if (tp.depth == D_ROOT) {
			err = stat_root(t, out);
		} else if (tp.depth == D_EVENT) {
			struct entry *e;
			err = find_entry(t, &tp, o, &e);
			if (!err)
				entry_attr(e, out);
		} else {
			err = stat_dir(t, path, &tp, o, out);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

struct child_walk {
	const char *path;
	const struct tree_path *tp;
	struct wiv_tree *t;
	struct org *o;
	wiv_dirent_fn fn;
	void *arg;
	off_t start; /* children before this index were listed already */
	off_t index; /* of the next child */
	int stop;
};

/* Hands one child to the caller unless it comes before the start offset:
 * the order of children is stable, so an offset names a child. */
static void emit(struct child_walk *w, const char *name,
		 const struct wiv_node_attr *a)
{
	off_t index = w->index++;
	if (!w->stop && index >= w->start)
		w->stop = w->fn(w->arg, name, a, index + 1);
}

static void emit_child(void *arg, int number)
{
	struct child_walk *w = arg;
	if (w->stop)
		return;
	char name[16], child[1024];
	snprintf(name, sizeof(name), w->tp->depth == D_ORG ? "%04d" : "%02d",
		 number);
	snprintf(child, sizeof(child), "%s/%s", w->path, name);
	struct tree_path ctp;
	struct wiv_node_attr a;
	if (parse_path(child, &ctp) == 0 &&
	    stat_dir(w->t, child, &ctp, w->o, &a) == 0)
		emit(w, name, &a);
}

int wiv_tree_readdir(struct wiv_tree *t, const char *path, off_t start,
		     wiv_dirent_fn fn, void *arg)
{
	struct tree_path tp;
	struct org *o;
	struct wiv_node_attr a;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
	if (err)
		goto out;
	if (tp.depth == D_EVENT) {
		err = ENOTDIR;
		goto out;
	}
	if (tp.depth != D_ROOT && tp.depth != D_TYPE &&
	    (err = stat_dir(t, path, &tp, o, &a)) != 0)
		goto out;

	struct child_walk w = {.path = strcmp(path, "/") == 0 ? "" : path,
			       .tp = &tp, .t = t, .o = o, .fn = fn, .arg = arg,
			       .start = start};
	int64_t first, end;
	switch (tp.depth) {
	case D_ROOT:
		for (size_t i = 0; i < t->norgs && !w.stop; i++) {
			struct org *child = t->orgs[i];
			char cpath[1024];
			snprintf(cpath, sizeof(cpath), "/%s", child->name);
			struct tree_path ctp;
			if (wiv_catalog_ensure_org(t, child) != 0 ||
			    parse_path(cpath, &ctp) != 0 ||
			    stat_dir(t, cpath, &ctp, child, &a) != 0)
				continue;
			emit(&w, child->name, &a);
		}
		break;
	case D_ORG:
		count_children(o, INT64_MIN, INT64_MAX, 0, emit_child, &w);
		break;
	case D_YEAR:
		year_range(tp.year, &first, &end);
		count_children(o, first, end, 1, emit_child, &w);
		break;
	case D_MONTH:
		month_range(tp.year, tp.month, &first, &end);
		count_children(o, first, end, 2, emit_child, &w);
		break;
	case D_DAY: {
		int mask = type_mask_of_day(o, path_day(&tp));
		for (int ty = 0; ty < WIV_TYPE_COUNT && !w.stop; ty++) {
			if (!(mask & (1 << ty)))
				continue;
			char cpath[1024];
			snprintf(cpath, sizeof(cpath), "%s/%s", path,
				 wiv_type_name(ty));
			struct tree_path ctp;
			if (parse_path(cpath, &ctp) == 0 &&
			    stat_dir(t, cpath, &ctp, o, &a) == 0)
				emit(&w, wiv_type_name(ty), &a);
		}
		break;
	}
	case D_TYPE: {
		int64_t day = path_day(&tp);
		if (!wiv_catalog_has_day(o->types[tp.type].days, o->types[tp.type].ndays,
			     day)) {
			err = ENOENT;
			break;
		}
		struct event_dir *d;
		err = wiv_tree_event_dir(t, o, day, tp.type, &d);
		/* Large directories come in many calls: start where asked. */
		for (size_t i = (size_t)start; !err && i < d->n && !w.stop;
		     i++) {
			entry_attr(&d->entries[i], &a);
			w.stop = fn(arg, d->entries[i].name, &a, (off_t)i + 1);
		}
		break;
	}
	default:
		err = ENOENT;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* ---- files ---- */

void wiv_tree_entry_ref(const struct entry *e, struct event_ref *ref)
{
	ref->obj = e->obj;
	ref->event.offset = e->offset;
	ref->event.length = e->length;
	ref->event.crc = e->crc;
}

int wiv_tree_read_events(struct wiv_tree *t, struct object *obj,
			 const struct wiv_cached_event *evs, size_t n,
			 char *text)
{
	int err = wiv_cache_read_events(t->cfg.cache, obj->entry_id, obj->key,
					evs, n, text);
	if (err != ENOENT && err != EBADMSG)
		return err;
	/* Same key and ETag: the refetched entry holds the same texts at the
	 * same offsets. */
	struct wiv_object_index *index = NULL;
	err = load_index(t, obj, &index);
	wiv_object_index_free(index);
	if (!err)
		err = wiv_cache_read_events(t->cfg.cache, obj->entry_id,
					    obj->key, evs, n, text);
	return err ? EIO : 0;
}

int wiv_tree_read_event(struct wiv_tree *t, const struct event_ref *ref,
			char *text)
{
	return wiv_tree_read_events(t, ref->obj, &ref->event, 1, text);
}

int wiv_tree_read_file(struct wiv_tree *t, const struct wiv_tree_file *file,
		       char *buf, size_t size, off_t off, size_t *nread)
{
	/* Objects are never freed before the tree (the catalog retires
	 * them). */
	struct event_ref ref = {
		.obj = (struct object *)file->object,
		.event = {.offset = file->offset, .length = file->length,
			  .crc = file->crc},
	};
	*nread = 0;
	if (off < 0 || (uint64_t)off >= ref.event.length)
		return 0;
	/* Events are small and read whole: the text's checksum covers it. */
	char *text = malloc(ref.event.length);
	if (!text)
		return ENOMEM;
	int err = wiv_tree_read_event(t, &ref, text);
	if (!err) {
		size_t avail = ref.event.length - (size_t)off;
		*nread = size < avail ? size : avail;
		memcpy(buf, text + off, *nread);
	}
	free(text);
	return err;
}

int wiv_tree_event_texts(struct wiv_tree *t, const char *path, size_t start,
			 size_t max_bytes, wiv_event_text_fn fn, void *arg)
{
	struct tree_path tp;
	struct org *o;
	struct event_dir *d = NULL;
	struct file_ref {
		uint64_t ino;
		struct event_ref ref;
	} *files = NULL;
	size_t n = 0, bytes = 0, longest = 0;

	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
	if (!err && tp.depth != D_TYPE)
		err = ENOTDIR;
	if (!err && !wiv_catalog_has_day(o->types[tp.type].days,
					 o->types[tp.type].ndays,
					 path_day(&tp)))
		err = ENOENT;
	if (!err)
		err = wiv_tree_event_dir(t, o, path_day(&tp), tp.type, &d);
	if (!err && d->n > start) {
		files = malloc((d->n - start) * sizeof(*files));
		if (!files)
			err = ENOMEM;
	}
	for (size_t i = start; !err && i < d->n; i++) {
		const struct entry *e = &d->entries[i];
		if (bytes + e->length > max_bytes)
			break;
		bytes += e->length;
		longest = e->length > longest ? e->length : longest;
		files[n].ino = e->ino;
		wiv_tree_entry_ref(e, &files[n].ref);
		n++;
	}
	pthread_mutex_unlock(&t->lock);

	char *text = n ? malloc(longest ? longest : 1) : NULL;
	if (n && !text)
		err = ENOMEM;
	for (size_t i = 0; i < n && !err; i++) {
		err = wiv_tree_read_event(t, &files[i].ref, text);
		if (!err && fn(arg, files[i].ino, text,
			       files[i].ref.event.length))
			break;
	}
	free(text);
	free(files);
	return err;
}

static int put_value(const char *value, size_t vlen, char *buf, size_t size,
		     size_t *len)
{
	*len = vlen;
	if (size == 0)
		return 0;
	if (size < vlen)
		return ERANGE;
	memcpy(buf, value, vlen);
	return 0;
}

#define MISSING_XATTR "user.wivaudit.missing"

/* The attribute of a day/type directory: one line per object whose events
 * it cannot show, present only when there is one. Lock held. */
static int dir_xattr(struct wiv_tree *t, struct org *o,
		     const struct tree_path *tp, const char *name, char *buf,
		     size_t size, size_t *len)
{
	int64_t day = path_day(tp);
	if (!wiv_catalog_has_day(o->types[tp->type].days,
				 o->types[tp->type].ndays, day))
		return ENOENT;
	struct event_dir *d;
	int err = wiv_tree_event_dir(t, o, day, tp->type, &d);
	if (err)
		return err;
	if (!name)
		return d->nmissing ? put_value(MISSING_XATTR,
					       sizeof(MISSING_XATTR), buf,
					       size, len)
				   : put_value("", 0, buf, size, len);
	if (strcmp(name, MISSING_XATTR) != 0 || !d->nmissing)
		return ENODATA;
	char *text = NULL;
	size_t text_len = 0;
	FILE *mem = open_memstream(&text, &text_len);
	if (!mem)
		return ENOMEM;
	for (size_t i = 0; i < d->nmissing; i++)
		wiv_missing_put_line(mem, d->missing[i]->missing,
				     d->missing[i]->key,
				     d->missing[i]->storage_class,
				     t->cfg.bucket);
	err = fclose(mem) == 0 ? put_value(text, text_len, buf, size, len)
			       : ENOMEM;
	free(text);
	return err;
}

int wiv_tree_xattr(struct wiv_tree *t, const char *path, const char *name,
		   char *buf, size_t size, size_t *len)
{
	struct tree_path tp;
	struct org *o;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
	if (!err && tp.depth == D_TYPE) {
		err = dir_xattr(t, o, &tp, name, buf, size, len);
		pthread_mutex_unlock(&t->lock);
		return err;
	}
	struct entry *e = NULL;
	if (!err && tp.depth == D_EVENT)
		err = find_entry(t, &tp, o, &e);
	if (err || !e) {
		pthread_mutex_unlock(&t->lock);
		return err ? err : (name ? ENODATA : put_value("", 0, buf, size, len));
	}
	const char *event_type = e->event_type;
	if (!name) {
		static const char names[] = "user.wivaudit.key\0"
					    "user.wivaudit.etag\0"
					    "user.wivaudit.event_type";
		size_t names_len = event_type ? sizeof(names)
					      : sizeof("user.wivaudit.key\0"
						       "user.wivaudit.etag");
		err = put_value(names, names_len, buf, size, len);
	} else if (strcmp(name, "user.wivaudit.key") == 0) {
		err = put_value(e->obj->key, strlen(e->obj->key), buf, size, len);
	} else if (strcmp(name, "user.wivaudit.etag") == 0) {
		err = put_value(e->obj->etag, strlen(e->obj->etag), buf, size, len);
	} else if (strcmp(name, "user.wivaudit.event_type") == 0 && event_type) {
		err = put_value(event_type, strlen(event_type), buf, size, len);
	} else {
		err = ENODATA;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* ---- life cycle ---- */

struct wiv_tree *wiv_tree_new(const struct wiv_tree_config *cfg)
{
	struct wiv_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->cfg = *cfg;
	if (!t->cfg.max_events)
		t->cfg.max_events = WIV_TREE_DEFAULT_MAX_EVENTS;
	t->ndir_buckets = 256;
	t->dir_buckets = calloc(t->ndir_buckets, sizeof(*t->dir_buckets));
	if (!t->dir_buckets) {
		free(t);
		return NULL;
	}
	/* The queue holds the objects of a few days of every type; fetching
	 * them takes a quarter of the connections, at least one. */
	if (t->cfg.readahead_days && !t->cfg.offline) {
		unsigned threads = t->cfg.parallel / 4 ? t->cfg.parallel / 4 : 1;
		t->prefetch = wiv_jobs_new(threads, 64, prefetch_object, NULL, t);
		if (!t->prefetch) {
			free(t->dir_buckets);
			free(t);
			return NULL;
		}
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->changed, NULL);
	return t;
}

void wiv_tree_set_observer(struct wiv_tree *t,
			   const struct wiv_tree_observer *obs)
{
	pthread_mutex_lock(&t->lock);
	t->observer = obs ? *obs : (struct wiv_tree_observer){0};
	pthread_mutex_unlock(&t->lock);
}



int wiv_tree_probe(struct wiv_tree *t)
{
	pthread_mutex_lock(&t->lock);
	int err = wiv_catalog_ensure_root(t, true);
	pthread_mutex_unlock(&t->lock);
	return err;
}

void wiv_tree_free(struct wiv_tree *t)
{
	if (!t)
		return;
	wiv_jobs_free(t->prefetch);
	while (t->lru_head)
		drop_event_dir(t, t->lru_head);
	free(t->dir_buckets);
	wiv_catalog_free(t);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->changed);
	free(t);
}
