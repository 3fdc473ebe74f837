/* The catalog: orgs and their objects, from listings. The root listing
 * (with delimiter) gives the orgs; one paginated listing per org gives its
 * objects, then refreshes ask only for newer keys. Listings are kept on disk
 * (listing_store.c) so that a remount or an offline mount starts from the
 * last tree seen. Objects and orgs are never freed before the tree: event
 * directories and reads may still point at them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tree_internal.h"
#include "wivaudit/daterule.h"
#include "wivaudit/listing_store.h"
#include "wivaudit/log.h"

/* Between full listings of an org, refreshes only ask for keys newer than
 * the newest known of each type (start-after). A full listing every this
 * many TTLs notices objects that were replaced or deleted. */
#define FULL_LISTING_EVERY_TTLS 10

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

/* Strings gathered while listing without the lock, used once it is back. */
struct key_list {
	char **keys;
	size_t n;
};

/* Appends a copy of the first len bytes of s. Returns 0 or ENOMEM. */
static int key_list_add(struct key_list *l, const char *s, size_t len)
{
	char **keys = realloc(l->keys, (l->n + 1) * sizeof(*keys));
	if (!keys)
		return ENOMEM;
	l->keys = keys;
	if (!(keys[l->n] = strndup(s, len)))
		return ENOMEM;
	l->n++;
	return 0;
}

static void key_list_free(struct key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->keys[i]);
	free(l->keys);
}

static void log_ignored_keys(struct wiv_tree *t, const struct key_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		log_ignored_key(t, l->keys[i]);
}

struct root_collect {
	struct wiv_tree *t;
	struct key_list names;
	struct key_list strays; /* logged once listed */
};

static int collect_org(void *arg, const char *common_prefix)
{
	struct root_collect *rc = arg;
	const char *name = common_prefix + strlen(rc->t->cfg.prefix);
	size_t len = strlen(name);
	if (len && name[len - 1] == '/')
		len--;
	if (!wiv_org_name_valid(name, len))
		return key_list_add(&rc->strays, common_prefix,
				    strlen(common_prefix));
	return key_list_add(&rc->names, name, len);
}

static int collect_stray_object(void *arg, const struct wiv_object_info *obj)
{
	struct root_collect *rc = arg;
	return key_list_add(&rc->strays, obj->key, strlen(obj->key));
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
			for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
				o->walked_day[ty] = INT64_MIN;
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
	return wiv_tree_now() - (time_t)(age < 0 ? INT32_MAX : age);
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
	wiv_listing_save(wiv_cache_dir_fd(t->cfg.cache), id, &l);
	free(l.entries);
}

static bool load_root_listing(struct wiv_tree *t)
{
	char id[1024];
	listing_id(t, NULL, id, sizeof(id));
	struct wiv_listing *l;
	if (wiv_listing_load(wiv_cache_dir_fd(t->cfg.cache), id, &l) != 0)
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
int wiv_catalog_ensure_root(struct wiv_tree *t, bool force)
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
		    wiv_tree_now() - t->root_listed_at < (time_t)t->cfg.list_ttl_s)
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
		merge_orgs(t, rc.names.keys, rc.names.n);
		t->root_listed = true;
		t->root_listed_from_source = true;
		t->root_listed_at = wiv_tree_now();
		t->unreachable_logged = false;
		log_ignored_keys(t, &rc.strays);
		save_root_listing(t);
	} else if (t->root_listed && is_unreachable(err)) {
		log_serving_cache(t, err);
		t->root_listed_at = wiv_tree_now();
		err = 0;
	}
	key_list_free(&rc.names);
	key_list_free(&rc.strays);
	pthread_cond_broadcast(&t->changed);
	return err;
}

struct listed_object {
	char *key;
	char *etag;
	char *storage_class;
	uint64_t size;
	struct wiv_key parsed;
};

struct org_collect {
	struct wiv_tree *t;
	struct listed_object *objs;
	size_t n, cap;
	struct key_list strays;
};

static int collect_object(void *arg, const struct wiv_object_info *info)
{
	struct org_collect *oc = arg;
	struct wiv_key parsed;
	if (wiv_key_parse(info->key, strlen(oc->t->cfg.prefix), &parsed) != 0)
		return key_list_add(&oc->strays, info->key, strlen(info->key));
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
	lo->storage_class =
		strdup(info->storage_class ? info->storage_class : "");
	if (!lo->key || !lo->etag || !lo->storage_class) {
		free(lo->key);
		free(lo->etag);
		free(lo->storage_class);
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
	obj->storage_class = lo->storage_class;
	lo->key = lo->etag = lo->storage_class = NULL;
	obj->size = lo->size;
	obj->key_ms = lo->parsed.key_ms;
	obj->type = lo->parsed.type;
	if (asprintf(&obj->entry_id, "%s|%s|%s|%d", t->cfg.source->identity,
		     obj->key, obj->etag, (int)t->cfg.layout) < 0) {
		free(obj->key);
		free(obj->etag);
		free(obj->storage_class);
		free(obj);
		return NULL;
	}
	return obj;
}

/* Follows a carried object's storage class: archived by a lifecycle rule,
 * or back (same ETag) after a restore or a copy. Returns whether its
 * directories must be built again. */
static bool restore_class(struct object *obj, struct listed_object *lo)
{
	if (strcmp(obj->storage_class, lo->storage_class) == 0)
		return false;
	free(obj->storage_class);
	obj->storage_class = lo->storage_class;
	lo->storage_class = NULL;
	if (obj->missing == WIV_MISSING_ARCHIVED) {
		obj->missing = WIV_MISSING_NONE;
		obj->missing_noted = false;
	}
	return true;
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
			changed |= restore_class(obj, lo);
		} else {
			obj = new_object(t, lo);
			if (!obj)
				continue;
			changed = true;
		}
		fresh[ty].objs[fresh[ty].n++] = obj;
	}

	/* Objects no longer listed are retired, never freed early. */
	bool retired = false;
	for (size_t k = 0; k < known.n; k++) {
		if (carried[k])
			continue;
		changed = retired = true;
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
	if (retired)
		wiv_tree_drop_org_dirs(t, o);
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
				.size = o->types[ty].objs[i]->size,
				.storage_class =
					o->types[ty].objs[i]->storage_class};
	char id[1024];
	listing_id(t, o->name, id, sizeof(id));
	wiv_listing_save(wiv_cache_dir_fd(t->cfg.cache), id, &l);
	free(l.entries);
}

/* Adds a known object to a collection as if it had just been listed. */
static int collect_known(struct org_collect *oc, const struct object *obj)
{
	struct wiv_object_info info = {.key = obj->key, .etag = obj->etag,
				       .size = obj->size,
				       .storage_class = obj->storage_class};
	return collect_object(oc, &info);
}

static void org_collect_free(struct org_collect *oc)
{
	for (size_t i = 0; i < oc->n; i++) {
		free(oc->objs[i].key);
		free(oc->objs[i].etag);
		free(oc->objs[i].storage_class);
	}
	free(oc->objs);
	key_list_free(&oc->strays);
}

static void load_org_listing(struct wiv_tree *t, struct org *o)
{
	char id[1024];
	listing_id(t, o->name, id, sizeof(id));
	struct wiv_listing *l;
	if (wiv_listing_load(wiv_cache_dir_fd(t->cfg.cache), id, &l) != 0)
		return;
	struct org_collect oc = {.t = t};
	int err = 0;
	for (size_t i = 0; i < l->n && !err; i++) {
		struct wiv_object_info info = {.key = l->entries[i].key,
					       .etag = l->entries[i].etag,
					       .size = l->entries[i].size,
					       .storage_class =
						       l->entries[i].storage_class};
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

/* Whether a listed object of the org is archived: then every refresh
 * lists the org in full, since only a full listing sees a restore (the
 * storage class of an object already known). */
static bool has_archived(const struct org *o)
{
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		for (size_t i = 0; i < o->types[ty].n; i++)
			if (wiv_storage_class_archived(
				    o->types[ty].objs[i]->storage_class))
				return true;
	return false;
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
int wiv_catalog_ensure_org(struct wiv_tree *t, struct org *o)
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
		    wiv_tree_now() - o->listed_at < (time_t)t->cfg.list_ttl_s)
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
		.full = o->full_listed_at == 0 || has_archived(o) ||
			wiv_tree_now() - o->full_listed_at >=
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
		o->listed_at = wiv_tree_now();
		if (plan.full)
			o->full_listed_at = o->listed_at;
		t->unreachable_logged = false;
		log_ignored_keys(t, &oc.strays);
		if (o->generation != generation || plan.full)
			save_org_listing(t, o);
	} else if (o->listed && is_unreachable(err)) {
		log_serving_cache(t, err);
		o->listed_at = wiv_tree_now();
		err = 0;
	}
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		free(plan.start_after[ty]);
	org_collect_free(&oc);
	pthread_cond_broadcast(&t->changed);
	return err;
}

int wiv_catalog_relist_org(struct wiv_tree *t, struct org *o, time_t since)
{
	if (t->cfg.offline || o->full_listed_at > since)
		return 0;
	o->full_listed_at = 0;
	o->listed_at = wiv_tree_now() - (time_t)t->cfg.list_ttl_s - 1;
	return wiv_catalog_ensure_org(t, o);
}

/* The org named by the path, listed. Lock held. */
int wiv_catalog_get_org(struct wiv_tree *t, const char *name, struct org **out)
{
	int err = wiv_catalog_ensure_root(t, false);
	if (err)
		return err;
	struct org *o = find_org(t, name);
	if (!o)
		return ENOENT;
	err = wiv_catalog_ensure_org(t, o);
	if (err)
		return err;
	*out = o;
	return 0;
}

bool wiv_catalog_has_day(const int64_t *days, size_t n, int64_t day)
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
size_t wiv_catalog_first_object(const struct type_listing *tl, int64_t ms)
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
int64_t wiv_catalog_newest_between(const struct org *o, int type_mask,
			      int64_t from_ms, int64_t to_ms)
{
	int64_t newest = -1;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++) {
		if (!(type_mask & (1 << ty)))
			continue;
		const struct type_listing *tl = &o->types[ty];
		size_t end = wiv_catalog_first_object(tl, to_ms);
		if (end > 0 && tl->objs[end - 1]->key_ms >= from_ms &&
		    tl->objs[end - 1]->key_ms > newest)
			newest = tl->objs[end - 1]->key_ms;
	}
	return newest;
}

static void object_free(struct object *obj)
{
	free(obj->key);
	free(obj->etag);
	free(obj->storage_class);
	free(obj->entry_id);
	wiv_object_index_free(obj->index);
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

void wiv_catalog_free(struct wiv_tree *t)
{
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
}
