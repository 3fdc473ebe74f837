/* The tree: listings give orgs and days, split objects give events.
 *
 * Locking: one mutex guards every structure here. Listings and downloads run
 * with it released; their results are merged back under it. Objects are never
 * freed before the tree (an open file may still point at one), so a pointer
 * to an object stays valid for the life of the mount. Event directories are
 * built on demand, kept in a bounded LRU, and only used under the lock. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wivaudit/daterule.h"
#include "wivaudit/fetch.h"
#include "wivaudit/keys.h"
#include "wivaudit/listing_store.h"
#include "wivaudit/log.h"
#include "wivaudit/naming.h"
#include "wivaudit/strmap.h"
#include "wivaudit/tree.h"

/* How long a failed download is remembered before it is tried again. */
#define RETRY_FAILED_AFTER_S 5
/* Between full listings of an org, refreshes only ask for keys newer than
 * the newest known of each type (start-after). A full listing every this
 * many TTLs notices objects that were replaced or deleted. */
#define FULL_LISTING_EVERY_TTLS 10

/* Whether an object's split events are in the cache. Indexes themselves are
 * not kept in memory: a directory is built from them and they are freed. */
enum object_state { OBJ_UNKNOWN, OBJ_LOADING, OBJ_CACHED, OBJ_FAILED };

struct object {
	char *key;
	char *etag;
	char *entry_id;
	uint64_t size;   /* as listed: a body of another size is not whole */
	int64_t key_ms;
	enum wiv_log_type type;
	enum object_state state;
	int error;
	bool offline_logged;
	time_t failed_at;
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
	struct wiv_strmap by_name;
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
	struct wiv_tree_observer observer;

	struct object *retired; /* replaced by a newer listing */
	struct org **retired_orgs; /* gone from the bucket */
	size_t nretired_orgs;
	struct wiv_strmap ignored_keys; /* logged once each */
	char **ignored_key_store;
	size_t nignored;
};

enum depth { D_ROOT, D_ORG, D_YEAR, D_MONTH, D_DAY, D_TYPE, D_EVENT };

struct tree_path {
	enum depth depth;
	char org[256];
	int year, month, mday;
	enum wiv_log_type type;
	const char *file;
};

static time_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

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

/* ---- listings ---- */

static void log_ignored_key(struct wiv_tree *t, const char *key)
{
	uint32_t unused;
	if (wiv_strmap_get(&t->ignored_keys, key, strlen(key), &unused))
		return;
	char *copy = strdup(key);
	char **store = realloc(t->ignored_key_store,
			       (t->nignored + 1) * sizeof(*store));
	if (!copy || !store) {
		free(copy);
		free(store == t->ignored_key_store ? NULL : store);
		return;
	}
	t->ignored_key_store = store;
	store[t->nignored++] = copy;
	wiv_strmap_put(&t->ignored_keys, copy, strlen(copy), 0);
	wiv_warn("ignoring key '%s': not {org_id}/{org|user|api}-audit-logs-"
		 "{epoch_ms}.json.gz (%zu such keys so far)",
		 key, t->nignored);
}

struct root_collect {
	struct wiv_tree *t;
	char **names;
	size_t n;
	char **stray_keys; /* logged once listed */
	size_t nstray;
};

static int collect_org(void *arg, const char *common_prefix)
{
	struct root_collect *rc = arg;
	const char *name = common_prefix + strlen(rc->t->cfg.prefix);
	size_t len = strlen(name);
	if (len && name[len - 1] == '/')
		len--;
	if (!wiv_org_name_valid(name, len)) {
		char **s = realloc(rc->stray_keys, (rc->nstray + 1) * sizeof(*s));
		if (s && (s[rc->nstray] = strdup(common_prefix))) {
			rc->stray_keys = s;
			rc->nstray++;
		} else if (s) {
			rc->stray_keys = s;
		}
		return 0;
	}
	char **names = realloc(rc->names, (rc->n + 1) * sizeof(*names));
	if (!names)
		return ENOMEM;
	rc->names = names;
	if (!(names[rc->n] = strndup(name, len)))
		return ENOMEM;
	rc->n++;
	return 0;
}

static int collect_stray_object(void *arg, const struct wiv_object_info *obj)
{
	struct root_collect *rc = arg;
	char **s = realloc(rc->stray_keys, (rc->nstray + 1) * sizeof(*s));
	if (!s)
		return ENOMEM;
	rc->stray_keys = s;
	if ((s[rc->nstray] = strdup(obj->key)))
		rc->nstray++;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct org *find_org(struct wiv_tree *t, const char *name)
{
	size_t lo = 0, hi = t->norgs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(t->orgs[mid]->name, name);
		if (c == 0)
			return t->orgs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void tell_listing_changed(struct wiv_tree *t, const char *org)
{
	if (t->observer.listing_changed)
		t->observer.listing_changed(t->observer.arg, org);
}

/* Merges a fresh list of org names: known orgs keep their state. */
static void merge_orgs(struct wiv_tree *t, char **names, size_t n)
{
	qsort(names, n, sizeof(*names), compare_names);
	struct org **orgs = calloc(n ? n : 1, sizeof(*orgs));
	if (!orgs)
		return;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (kept && strcmp(orgs[kept - 1]->name, names[i]) == 0)
			continue;
		struct org *o = find_org(t, names[i]);
		if (!o) {
			o = calloc(1, sizeof(*o));
			if (!o)
				continue;
			o->name = strdup(names[i]);
			o->newest_ms = -1;
		}
		orgs[kept++] = o;
	}
	/* Orgs that vanished from the bucket stay allocated (an event
	 * directory may still point at them) but leave the tree. */
	for (size_t i = 0; i < t->norgs; i++) {
		bool still = false;
		for (size_t k = 0; k < kept && !still; k++)
			still = orgs[k] == t->orgs[i];
		struct org **r = still ? NULL
				       : realloc(t->retired_orgs,
						 (t->nretired_orgs + 1) *
							 sizeof(*r));
		if (r) {
			r[t->nretired_orgs++] = t->orgs[i];
			t->retired_orgs = r;
		}
	}
	bool changed = kept != t->norgs;
	for (size_t i = 0; i < kept && !changed; i++)
		changed = orgs[i] != t->orgs[i];
	free(t->orgs);
	t->orgs = orgs;
	t->norgs = kept;
	if (changed)
		tell_listing_changed(t, NULL);
}

/* Monotonic time at which a listing made at wall-clock time listed_at was
 * made, so that its age counts against the TTL across remounts. */
static time_t mono_of_wall(int64_t listed_at)
{
	int64_t age = (int64_t)time(NULL) - listed_at;
	return now_s() - (time_t)(age < 0 ? INT32_MAX : age);
}

static void listing_id(const struct wiv_tree *t, const char *org, char *out,
		       size_t len)
{
	snprintf(out, len, "%s|%s|%s%s", org ? "org" : "root",
		 t->cfg.source->identity, t->cfg.prefix, org ? org : "");
}

/* A listing error that means "cannot reach S3" rather than "S3 said no":
 * then the last listing is served, as offline. */
static bool is_unreachable(int err)
{
	return err == EIO || err == ETIMEDOUT || err == ECONNREFUSED ||
	       err == EHOSTUNREACH || err == ENETUNREACH;
}

static void log_serving_cache(struct wiv_tree *t, int err)
{
	if (t->unreachable_logged)
		return;
	t->unreachable_logged = true;
	wiv_warn("cannot reach the bucket (%s): serving the cached listings",
		 strerror(err));
}

static void save_root_listing(struct wiv_tree *t)
{
	struct wiv_listing l = {.listed_at = time(NULL), .n = t->norgs};
	l.entries = calloc(t->norgs ? t->norgs : 1, sizeof(*l.entries));
	if (!l.entries)
		return;
	for (size_t i = 0; i < t->norgs; i++)
		l.entries[i] = (struct wiv_listing_entry){
			.key = t->orgs[i]->name, .etag = ""};
	char id[1024];
	listing_id(t, NULL, id, sizeof(id));
	wiv_listing_save(t->cfg.cache_dir, id, &l);
	free(l.entries);
}

static bool load_root_listing(struct wiv_tree *t)
{
	char id[1024];
	listing_id(t, NULL, id, sizeof(id));
	struct wiv_listing *l;
	if (wiv_listing_load(t->cfg.cache_dir, id, &l) != 0)
		return false;
	char **names = calloc(l->n ? l->n : 1, sizeof(*names));
	if (names) {
		for (size_t i = 0; i < l->n; i++)
			names[i] = l->entries[i].key;
		merge_orgs(t, names, l->n);
		t->root_listed = true;
		t->root_listed_at = mono_of_wall(l->listed_at);
	}
	free(names);
	wiv_listing_free(l);
	return t->root_listed;
}

/* Makes sure the org list is fresh: from disk at first, then from the
 * source once its TTL ran out (or at once with force, for the probe).
 * Called and returns with the lock held. */
static int ensure_root_listed(struct wiv_tree *t, bool force)
{
	if (!t->root_listed)
		load_root_listing(t);
	if (t->cfg.offline) {
		if (t->root_listed)
			return 0;
		wiv_err("offline, and no listing of the bucket is cached");
		return EIO;
	}
	for (;;) {
		if (t->root_listed && !force &&
		    now_s() - t->root_listed_at < (time_t)t->cfg.list_ttl_s)
			return 0;
		if (force && t->root_listed_from_source)
			return 0;
		if (!t->root_listing)
			break;
		pthread_cond_wait(&t->changed, &t->lock);
	}
	t->root_listing = true;
	pthread_mutex_unlock(&t->lock);

	struct root_collect rc = {.t = t};
	int err = wiv_source_list(t->cfg.source, t->cfg.prefix, "/", NULL,
				  collect_stray_object, collect_org, &rc);

	pthread_mutex_lock(&t->lock);
	t->root_listing = false;
	if (err == 0) {
		merge_orgs(t, rc.names, rc.n);
		t->root_listed = true;
		t->root_listed_from_source = true;
		t->root_listed_at = now_s();
		t->unreachable_logged = false;
		for (size_t i = 0; i < rc.nstray; i++)
			log_ignored_key(t, rc.stray_keys[i]);
		save_root_listing(t);
	} else if (t->root_listed && is_unreachable(err)) {
		log_serving_cache(t, err);
		t->root_listed_at = now_s();
		err = 0;
	}
	for (size_t i = 0; i < rc.n; i++)
		free(rc.names[i]);
	free(rc.names);
	for (size_t i = 0; i < rc.nstray; i++)
		free(rc.stray_keys[i]);
	free(rc.stray_keys);
	pthread_cond_broadcast(&t->changed);
	return err;
}

struct listed_object {
	char *key;
	char *etag;
	uint64_t size;
	struct wiv_key parsed;
};

struct org_collect {
	struct wiv_tree *t;
	struct listed_object *objs;
	size_t n, cap;
	char **stray_keys;
	size_t nstray;
};

static int collect_object(void *arg, const struct wiv_object_info *info)
{
	struct org_collect *oc = arg;
	struct wiv_key parsed;
	if (wiv_key_parse(info->key, strlen(oc->t->cfg.prefix), &parsed) != 0) {
		char **s = realloc(oc->stray_keys, (oc->nstray + 1) * sizeof(*s));
		if (!s)
			return ENOMEM;
		oc->stray_keys = s;
		if ((s[oc->nstray] = strdup(info->key)))
			oc->nstray++;
		return 0;
	}
	if (oc->n == oc->cap) {
		size_t cap = oc->cap ? oc->cap * 2 : 64;
		struct listed_object *objs = realloc(oc->objs, cap * sizeof(*objs));
		if (!objs)
			return ENOMEM;
		oc->objs = objs;
		oc->cap = cap;
	}
	struct listed_object *lo = &oc->objs[oc->n];
	lo->key = strdup(info->key);
	lo->etag = strdup(info->etag ? info->etag : "");
	if (!lo->key || !lo->etag) {
		free(lo->key);
		free(lo->etag);
		return ENOMEM;
	}
	lo->size = info->size;
	lo->parsed = parsed;
	lo->parsed.org = lo->key + (parsed.org - info->key);
	oc->n++;
	return 0;
}

static int compare_objects(const void *a, const void *b)
{
	const struct object *x = *(struct object *const *)a;
	const struct object *y = *(struct object *const *)b;
	if (x->key_ms != y->key_ms)
		return x->key_ms < y->key_ms ? -1 : 1;
	return strcmp(x->key, y->key);
}

static int compare_days(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Sorted unique days of sorted objects. */
static int64_t *unique_days(struct object **objs, size_t n, size_t *ndays)
{
	int64_t *days = malloc((n ? n : 1) * sizeof(*days));
	size_t k = 0;
	if (!days) {
		*ndays = 0;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t d = wiv_day_of_ms(objs[i]->key_ms);
		if (k == 0 || days[k - 1] != d)
			days[k++] = d;
	}
	*ndays = k;
	return days;
}

/* Maps each listed key of the org to its object, for carrying objects over
 * from one listing to the next in linear time. */
static int index_known_objects(struct org *o, struct wiv_strmap *known,
			       struct object ***all)
{
	size_t total = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		total += o->types[ty].n;
	*all = malloc((total ? total : 1) * sizeof(**all));
	if (!*all)
		return ENOMEM;
	size_t k = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		for (size_t i = 0; i < o->types[ty].n; i++) {
			struct object *obj = o->types[ty].objs[i];
			(*all)[k] = obj;
			if (wiv_strmap_put(known, obj->key, strlen(obj->key),
					   (uint32_t)k))
				return ENOMEM;
			k++;
		}
	return 0;
}

static struct object *new_object(struct wiv_tree *t, struct listed_object *lo)
{
	struct object *obj = calloc(1, sizeof(*obj));
	if (!obj)
		return NULL;
	obj->key = lo->key;
	obj->etag = lo->etag;
	lo->key = lo->etag = NULL;
	obj->size = lo->size;
	obj->key_ms = lo->parsed.key_ms;
	obj->type = lo->parsed.type;
	if (asprintf(&obj->entry_id, "%s|%s|%s|%d", t->cfg.source->identity,
		     obj->key, obj->etag, (int)t->cfg.layout) < 0) {
		free(obj->key);
		free(obj->etag);
		free(obj);
		return NULL;
	}
	return obj;
}

/* Replaces the org's objects with a fresh listing. Objects with the same
 * key and ETag carry over (with their loaded index). */
static void merge_org_listing(struct wiv_tree *t, struct org *o,
			      struct org_collect *oc)
{
	struct type_listing fresh[WIV_TYPE_COUNT] = {0};
	struct wiv_strmap known = {0};
	struct object **old_objs = NULL;
	bool *carried = NULL;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		fresh[ty].objs = calloc(oc->n ? oc->n : 1, sizeof(struct object *));
		if (!fresh[ty].objs)
			goto fail;
	}
	if (index_known_objects(o, &known, &old_objs))
		goto fail;
	carried = calloc(known.n ? known.n : 1, sizeof(*carried));
	if (!carried)
		goto fail;
	bool changed = !o->listed;
	for (size_t i = 0; i < oc->n; i++) {
		struct listed_object *lo = &oc->objs[i];
		if (lo->parsed.org_len != strlen(o->name) ||
		    memcmp(lo->parsed.org, o->name, lo->parsed.org_len) != 0)
			continue;
		enum wiv_log_type ty = lo->parsed.type;
		uint32_t k;
		struct object *obj = NULL;
		if (wiv_strmap_get(&known, lo->key, strlen(lo->key), &k) &&
		    strcmp(old_objs[k]->etag, lo->etag) == 0) {
			if (carried[k])
				continue; /* listed twice */
			obj = old_objs[k];
			carried[k] = true;
		} else {
			obj = new_object(t, lo);
			if (!obj)
				continue;
			changed = true;
		}
		fresh[ty].objs[fresh[ty].n++] = obj;
	}

	/* Objects no longer listed are retired, never freed early. */
	for (size_t k = 0; k < known.n; k++) {
		if (carried[k])
			continue;
		changed = true;
		old_objs[k]->next_retired = t->retired;
		t->retired = old_objs[k];
	}
	free(carried);
	free(old_objs);
	wiv_strmap_clear(&known);

	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		struct type_listing *old = &o->types[ty];
		free(old->objs);
		free(old->days);
		qsort(fresh[ty].objs, fresh[ty].n, sizeof(struct object *),
		      compare_objects);
		fresh[ty].days = unique_days(fresh[ty].objs, fresh[ty].n,
					     &fresh[ty].ndays);
		o->types[ty] = fresh[ty];
	}

	size_t nall = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		nall += o->types[ty].ndays;
	free(o->days);
	o->days = malloc((nall ? nall : 1) * sizeof(*o->days));
	o->ndays = 0;
	o->newest_ms = -1;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		struct type_listing *tl = &o->types[ty];
		if (o->days)
			memcpy(o->days + o->ndays, tl->days,
			       tl->ndays * sizeof(*o->days));
		o->ndays += tl->ndays;
		if (tl->n && tl->objs[tl->n - 1]->key_ms > o->newest_ms)
			o->newest_ms = tl->objs[tl->n - 1]->key_ms;
	}
	if (o->days) {
		qsort(o->days, o->ndays, sizeof(*o->days), compare_days);
		size_t k = 0;
		for (size_t i = 0; i < o->ndays; i++)
			if (k == 0 || o->days[k - 1] != o->days[i])
				o->days[k++] = o->days[i];
		o->ndays = k;
	} else {
		o->ndays = 0;
	}
	if (changed) {
		o->generation++;
		tell_listing_changed(t, o->name);
	}
	return;
fail:
	wiv_err("out of memory merging the listing of %s", o->name);
	free(carried);
	free(old_objs);
	wiv_strmap_clear(&known);
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		free(fresh[ty].objs);
}

static void save_org_listing(struct wiv_tree *t, struct org *o)
{
	size_t n = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		n += o->types[ty].n;
	struct wiv_listing l = {.listed_at = time(NULL), .n = 0};
	l.entries = calloc(n ? n : 1, sizeof(*l.entries));
	if (!l.entries)
		return;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		for (size_t i = 0; i < o->types[ty].n; i++)
			l.entries[l.n++] = (struct wiv_listing_entry){
				.key = o->types[ty].objs[i]->key,
				.etag = o->types[ty].objs[i]->etag,
				.size = o->types[ty].objs[i]->size};
	char id[1024];
	listing_id(t, o->name, id, sizeof(id));
	wiv_listing_save(t->cfg.cache_dir, id, &l);
	free(l.entries);
}

/* Adds a known object to a collection as if it had just been listed. */
static int collect_known(struct org_collect *oc, const struct object *obj)
{
	struct wiv_object_info info = {.key = obj->key, .etag = obj->etag,
				       .size = obj->size};
	return collect_object(oc, &info);
}

static void org_collect_free(struct org_collect *oc)
{
	for (size_t i = 0; i < oc->n; i++) {
		free(oc->objs[i].key);
		free(oc->objs[i].etag);
	}
	free(oc->objs);
	for (size_t i = 0; i < oc->nstray; i++)
		free(oc->stray_keys[i]);
	free(oc->stray_keys);
}

static void load_org_listing(struct wiv_tree *t, struct org *o)
{
	char id[1024];
	listing_id(t, o->name, id, sizeof(id));
	struct wiv_listing *l;
	if (wiv_listing_load(t->cfg.cache_dir, id, &l) != 0)
		return;
	struct org_collect oc = {.t = t};
	int err = 0;
	for (size_t i = 0; i < l->n && !err; i++) {
		struct wiv_object_info info = {.key = l->entries[i].key,
					       .etag = l->entries[i].etag,
					       .size = l->entries[i].size};
		err = collect_object(&oc, &info);
	}
	if (!err) {
		merge_org_listing(t, o, &oc);
		o->listed = true;
		o->listed_at = mono_of_wall(l->listed_at);
	}
	org_collect_free(&oc);
	wiv_listing_free(l);
}

/* The newest key of a type in byte order: where start-after resumes. */
static const char *newest_key(const struct type_listing *tl)
{
	const char *newest = NULL;
	for (size_t i = 0; i < tl->n; i++)
		if (!newest || strcmp(tl->objs[i]->key, newest) > 0)
			newest = tl->objs[i]->key;
	return newest;
}

struct org_list_plan {
	bool full;
	char prefixes[WIV_TYPE_COUNT][1100]; /* org prefix + type word */
	char *start_after[WIV_TYPE_COUNT];
};

/* Lists the org from the source, unlocked. A full listing is one paginated
 * LIST of the whole org; an incremental one asks, per type, only for keys
 * after the newest known (the keys of a type sort by time). */
static int list_org(struct wiv_tree *t, const char *org_prefix,
		    const struct org_list_plan *plan, struct org_collect *oc)
{
	if (plan->full)
		return wiv_source_list(t->cfg.source, org_prefix, NULL, NULL,
				       collect_object, NULL, oc);
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		int err = wiv_source_list(t->cfg.source, plan->prefixes[ty],
					  NULL, plan->start_after[ty],
					  collect_object, NULL, oc);
		if (err)
			return err;
	}
	return 0;
}

/* Makes sure the org's listing is fresh: from disk at first, then from the
 * source once its TTL ran out. Called and returns with the lock held. */
static int ensure_org_listed(struct wiv_tree *t, struct org *o)
{
	if (!o->listed)
		load_org_listing(t, o);
	if (t->cfg.offline) {
		if (o->listed)
			return 0;
		wiv_err("offline, and no listing of %s is cached", o->name);
		return EIO;
	}
	for (;;) {
		if (o->listed &&
		    now_s() - o->listed_at < (time_t)t->cfg.list_ttl_s)
			return 0;
		if (!o->listing)
			break;
		pthread_cond_wait(&t->changed, &t->lock);
	}
	o->listing = true;

	char org_prefix[1024];
	snprintf(org_prefix, sizeof(org_prefix), "%s%s/", t->cfg.prefix,
		 o->name);
	struct org_list_plan plan = {
		.full = o->full_listed_at == 0 ||
			now_s() - o->full_listed_at >=
				(time_t)t->cfg.list_ttl_s *
					FULL_LISTING_EVERY_TTLS,
	};
	struct org_collect oc = {.t = t};
	int err = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT && !plan.full; ty++) {
		const struct type_listing *tl = &o->types[ty];
		snprintf(plan.prefixes[ty], sizeof(plan.prefixes[ty]),
			 "%s%s-audit-logs-", org_prefix, wiv_type_name(ty));
		const char *newest = newest_key(tl);
		plan.start_after[ty] = newest ? strdup(newest) : NULL;
		for (size_t i = 0; i < tl->n && !err; i++)
			err = collect_known(&oc, tl->objs[i]);
	}
	pthread_mutex_unlock(&t->lock);

	if (!err)
		err = list_org(t, org_prefix, &plan, &oc);

	pthread_mutex_lock(&t->lock);
	o->listing = false;
	if (err == 0) {
		unsigned generation = o->generation;
		merge_org_listing(t, o, &oc);
		o->listed = true;
		o->listed_at = now_s();
		if (plan.full)
			o->full_listed_at = o->listed_at;
		t->unreachable_logged = false;
		for (size_t i = 0; i < oc.nstray; i++)
			log_ignored_key(t, oc.stray_keys[i]);
		if (o->generation != generation || plan.full)
			save_org_listing(t, o);
	} else if (o->listed && is_unreachable(err)) {
		log_serving_cache(t, err);
		o->listed_at = now_s();
		err = 0;
	}
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		free(plan.start_after[ty]);
	org_collect_free(&oc);
	pthread_cond_broadcast(&t->changed);
	return err;
}

/* The org named by the path, listed. Lock held. */
static int get_org(struct wiv_tree *t, const char *name, struct org **out)
{
	int err = ensure_root_listed(t, false);
	if (err)
		return err;
	struct org *o = find_org(t, name);
	if (!o)
		return ENOENT;
	err = ensure_org_listed(t, o);
	if (err)
		return err;
	*out = o;
	return 0;
}

static bool has_day(const int64_t *days, size_t n, int64_t day)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (days[mid] == day)
			return true;
		if (days[mid] < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* First object with key_ms >= ms. */
static size_t first_object_from(const struct type_listing *tl, int64_t ms)
{
	size_t lo = 0, hi = tl->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (tl->objs[mid]->key_ms < ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Newest key timestamp in [from_ms, to_ms) over the given types, or -1. */
static int64_t newest_between(const struct org *o, int type_mask,
			      int64_t from_ms, int64_t to_ms)
{
	int64_t newest = -1;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		if (!(type_mask & (1 << ty)))
			continue;
		const struct type_listing *tl = &o->types[ty];
		size_t end = first_object_from(tl, to_ms);
		if (end > 0 && tl->objs[end - 1]->key_ms >= from_ms &&
		    tl->objs[end - 1]->key_ms > newest)
			newest = tl->objs[end - 1]->key_ms;
	}
	return newest;
}

/* ---- objects ---- */

/* Returns the object's index (caller frees), from the cache or downloaded
 * into it. One download per object at a time: others wait for it and then
 * read the cache. Lock not held. */
static int fetch_index(struct wiv_tree *t, struct object *obj,
		       struct wiv_object_index **out)
{
	pthread_mutex_lock(&t->lock);
	for (;;) {
		if (obj->state == OBJ_FAILED &&
		    now_s() - obj->failed_at < RETRY_FAILED_AFTER_S) {
			int err = obj->error;
			pthread_mutex_unlock(&t->lock);
			return err;
		}
		if (obj->state != OBJ_LOADING)
			break;
		pthread_cond_wait(&t->changed, &t->lock);
	}
	obj->state = OBJ_LOADING;
	pthread_mutex_unlock(&t->lock);

	struct wiv_fetch_request req = {
		.source = t->cfg.source,
		.cache = t->cfg.cache,
		.layout = t->cfg.layout,
		.key = obj->key,
		.etag = obj->etag,
		.entry_id = obj->entry_id,
		.size = obj->size,
		.cache_only = t->cfg.offline,
	};
	int err = wiv_fetch_object(&req, out);
	if (err == ENOENT && t->cfg.offline) {
		if (!obj->offline_logged)
			wiv_err("offline: %s was never fetched, so its events "
				"cannot be shown", obj->key);
		obj->offline_logged = true;
		err = EIO;
	}

	pthread_mutex_lock(&t->lock);
	if (err == 0) {
		obj->state = OBJ_CACHED;
	} else {
		obj->state = OBJ_FAILED;
		obj->error = err;
		obj->failed_at = now_s();
	}
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	return err;
}

struct load_batch {
	struct wiv_tree *t;
	struct object **objs;
	struct wiv_object_index **indexes;
	size_t n;
	atomic_size_t next;
	atomic_int first_error;
};

static void *load_worker(void *arg)
{
	struct load_batch *b = arg;
	size_t i;
	while ((i = atomic_fetch_add(&b->next, 1)) < b->n) {
		int err = fetch_index(b->t, b->objs[i], &b->indexes[i]);
		int none = 0;
		if (err)
			atomic_compare_exchange_strong(&b->first_error, &none,
						       err);
	}
	return NULL;
}

/* Fetches the indexes of objs into indexes[] (NULL where it failed),
 * cfg.parallel at a time. Lock not held. Returns the first error. */
static int load_indexes(struct wiv_tree *t, struct object **objs, size_t n,
			struct wiv_object_index **indexes)
{
	struct load_batch b = {.t = t, .objs = objs, .indexes = indexes,
			       .n = n};
	/* An object already cached in this mount costs a read of its index,
	 * less than starting a thread: threads are for the others. */
	size_t uncached = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < n; i++)
		uncached += objs[i]->state != OBJ_CACHED;
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
	return atomic_load(&b.first_error);
}

static void free_indexes(struct wiv_object_index **indexes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		wiv_object_index_free(indexes[i]);
	free(indexes);
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

static bool type_has_day(void *arg, int64_t day)
{
	const struct type_listing *tl = arg;
	return has_day(tl->days, tl->ndays, day);
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
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir_path, name);
	e->ino = wiv_tree_path_ino(path);
	d->n++;
	return 0;
}

/* Builds the events of one day/type directory from loaded objects. */
static int build_event_dir(struct wiv_tree *t, struct event_dir *d,
			   struct object **objs,
			   struct wiv_object_index **indexes, size_t nobjs)
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
		const struct wiv_object_index *idx = indexes[i];
		if (idx->status != WIV_OBJECT_OK)
			continue;
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

static struct event_dir *find_event_dir(struct wiv_tree *t, struct org *o,
					int64_t day, enum wiv_log_type type)
{
	for (struct event_dir *d = t->dir_buckets[dir_bucket(t, o, day, type)];
	     d; d = d->hash_next)
		if (d->org == o && d->day == day && d->type == type)
			return d;
	return NULL;
}

/* The built event directory of org/day/type, loading the objects it needs.
 * Called and returns with the lock held (released while downloading). */
static int get_event_dir(struct wiv_tree *t, struct org *o, int64_t day,
			 enum wiv_log_type type, struct event_dir **out)
{
	for (int attempt = 0;; attempt++) {
		struct event_dir *d = find_event_dir(t, o, day, type);
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
		size_t first = first_object_from(tl, from);
		size_t last = first_object_from(tl, to + 1);
		size_t n = last - first;
		struct object **objs = malloc((n ? n : 1) * sizeof(*objs));
		if (!objs)
			return ENOMEM;
		memcpy(objs, tl->objs + first, n * sizeof(*objs));
		unsigned generation = o->generation;

		struct wiv_object_index **indexes =
			calloc(n ? n : 1, sizeof(*indexes));
		if (!indexes) {
			free(objs);
			return ENOMEM;
		}
		pthread_mutex_unlock(&t->lock);
		int err = load_indexes(t, objs, n, indexes);
		pthread_mutex_lock(&t->lock);
		if (err) {
			free_indexes(indexes, n);
			free(objs);
			return err == ENOENT || err == ESTALE ? EIO : err;
		}
		/* The listing changed meanwhile: build from the new one. */
		if (o->generation != generation && attempt < 3) {
			free_indexes(indexes, n);
			free(objs);
			continue;
		}

		d = calloc(1, sizeof(*d));
		if (d) {
			d->org = o;
			d->day = day;
			d->type = type;
			d->generation = generation;
			err = build_event_dir(t, d, objs, indexes, n);
		}
		free_indexes(indexes, n);
		free(objs);
		if (!d || err) {
			if (d)
				event_dir_free(d);
			return err ? err : ENOMEM;
		}
		/* Another thread may have built it meanwhile. */
		struct event_dir *other = find_event_dir(t, o, day, type);
		if (other)
			drop_event_dir(t, other);
		lru_push_front(t, d);
		dir_index_add(t, d);
		t->lru_entries += d->n;
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
		if (has_day(o->types[ty].days, o->types[ty].ndays, day))
			mask |= 1 << ty;
	return mask;
}

static int popcount(int mask)
{
	return __builtin_popcount((unsigned)mask);
}

static int stat_root(struct wiv_tree *t, struct wiv_node_attr *out)
{
	int err = ensure_root_listed(t, false);
	if (err)
		return err;
	/* The root's mtime is its newest delivery, which needs every org. */
	int64_t newest = -1;
	for (size_t i = 0; i < t->norgs; i++) {
		struct org *o = t->orgs[i];
		if (ensure_org_listed(t, o) == 0 && o->newest_ms > newest)
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
		if (!has_day(o->types[tp->type].days, o->types[tp->type].ndays,
			     first))
			return ENOENT;
		mask = 1 << tp->type;
		subdirs = 0;
	}
	if (subdirs == 0 && tp->depth != D_TYPE)
		return ENOENT;
	dir_attr(out, path, subdirs,
		 newest_between(o, mask, first * WIV_MS_PER_DAY,
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
	};
}

/* The entry at an event path. Lock held. */
static int find_entry(struct wiv_tree *t, const struct tree_path *tp,
		      struct org *o, struct entry **out)
{
	int64_t day = path_day(tp);
	if (!has_day(o->types[tp->type].days, o->types[tp->type].ndays, day))
		return ENOENT;
	struct event_dir *d;
	int err = get_event_dir(t, o, day, tp->type, &d);
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
	return get_org(t, tp->org, org);
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
			if (ensure_org_listed(t, child) != 0 ||
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
		if (!has_day(o->types[tp.type].days, o->types[tp.type].ndays,
			     day)) {
			err = ENOENT;
			break;
		}
		struct event_dir *d;
		err = get_event_dir(t, o, day, tp.type, &d);
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

/* What a read needs of an event file, copied out of its directory so that
 * the tree lock is not held while reading the cache. */
struct event_ref {
	struct object *obj;
	struct wiv_cached_event event; /* offset, length and crc only */
};

static int find_event_ref(struct wiv_tree *t, const char *path,
			  struct event_ref *ref)
{
	struct tree_path tp;
	struct org *o;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
	if (!err && tp.depth != D_EVENT)
		err = EISDIR;
	struct entry *e = NULL;
	if (!err)
		err = find_entry(t, &tp, o, &e);
	if (!err) {
		ref->obj = e->obj;
		ref->event.offset = e->offset;
		ref->event.length = e->length;
		ref->event.crc = e->crc;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* Reads the event text (ref->event.length bytes) from the cache, refetching
 * the object if its entry was evicted or found damaged meanwhile. */
static int read_event_text(struct wiv_tree *t, const struct event_ref *ref,
			   char *text)
{
	int err = wiv_cache_read_event(t->cfg.cache, ref->obj->entry_id,
				       ref->obj->key, &ref->event, text);
	if (err != ENOENT && err != EBADMSG)
		return err;
	/* Same key and ETag: the refetched entry holds the same texts at the
	 * same offsets. */
	struct wiv_object_index *index = NULL;
	err = fetch_index(t, ref->obj, &index);
	wiv_object_index_free(index);
	if (!err)
		err = wiv_cache_read_event(t->cfg.cache, ref->obj->entry_id,
					   ref->obj->key, &ref->event, text);
	return err ? EIO : 0;
}

int wiv_tree_read_path(struct wiv_tree *t, const char *path, char *buf,
		       size_t size, off_t off, size_t *nread)
{
	struct event_ref ref;
	*nread = 0;
	int err = find_event_ref(t, path, &ref);
	if (err || off < 0 || (uint64_t)off >= ref.event.length)
		return err;
	/* Events are small and read whole: the text's checksum covers it. */
	char *text = malloc(ref.event.length);
	if (!text)
		return ENOMEM;
	err = read_event_text(t, &ref, text);
	if (!err) {
		size_t avail = ref.event.length - (size_t)off;
		*nread = size < avail ? size : avail;
		memcpy(buf, text + off, *nread);
	}
	free(text);
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

int wiv_tree_xattr(struct wiv_tree *t, const char *path, const char *name,
		   char *buf, size_t size, size_t *len)
{
	struct tree_path tp;
	struct org *o;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &tp, &o);
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
	int err = ensure_root_listed(t, true);
	pthread_mutex_unlock(&t->lock);
	return err;
}

static void object_free(struct object *obj)
{
	free(obj->key);
	free(obj->etag);
	free(obj->entry_id);
	free(obj);
}

static void org_free(struct org *o)
{
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		for (size_t k = 0; k < o->types[ty].n; k++)
			object_free(o->types[ty].objs[k]);
		free(o->types[ty].objs);
		free(o->types[ty].days);
	}
	free(o->days);
	free(o->name);
	free(o);
}

void wiv_tree_free(struct wiv_tree *t)
{
	if (!t)
		return;
	while (t->lru_head)
		drop_event_dir(t, t->lru_head);
	free(t->dir_buckets);
	for (size_t i = 0; i < t->norgs; i++)
		org_free(t->orgs[i]);
	for (size_t i = 0; i < t->nretired_orgs; i++)
		org_free(t->retired_orgs[i]);
	free(t->retired_orgs);
	free(t->orgs);
	while (t->retired) {
		struct object *next = t->retired->next_retired;
		object_free(t->retired);
		t->retired = next;
	}
	for (size_t i = 0; i < t->nignored; i++)
		free(t->ignored_key_store[i]);
	free(t->ignored_key_store);
	wiv_strmap_clear(&t->ignored_keys);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->changed);
	free(t);
}
