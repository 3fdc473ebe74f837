/* The JSON Lines view: another projection of the tree's day/type
 * directories (see jsonl_view.h). Directories come from the catalog's
 * listings; an events.jsonl is the built event directory of its day and
 * type, each event's cached text made compact.
 *
 * Reads stream: the directory keeps the end offset of every line
 * (event_dir.line_ends, computed once per build), so a read at offset X
 * finds the line holding X by binary search and reads only the events its
 * range overlaps. Nothing holds a whole day's text. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree_internal.h"
#include "wivaudit/daterule.h"
#include "wivaudit/json_layout.h"
#include "wivaudit/jsonl_view.h"
#include "wivaudit/keys.h"
#include "wivaudit/log.h"

/* Rebuilds of a directory tolerated while measuring its lines. */
#define MEASURE_ATTEMPTS 3
/* Bounds of one read of events back to back in a cache entry. */
#define SPAN_BYTES (1u << 20)
#define SPAN_EVENTS 4096

enum jdepth { J_ROOT, J_ORG, J_DATE, J_TYPE, J_FILE };

struct jsonl_path {
	enum jdepth depth;
	char org[256];
	int64_t day;
	enum wiv_log_type type;
};

/* ---- paths ---- */

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* "YYYY-MM-DD" as a day number, or INT64_MIN. */
static int64_t parse_date(const char *s, size_t len)
{
	int y, m, d;
	if (len != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 4, &y) ||
	    !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d) || m < 1 || m > 12)
		return INT64_MIN;
	return wiv_day_from_ymd(y, m, d);
}

static bool take(const char **p, size_t *len, const char *word)
{
	size_t n = strlen(word);
	if (*len < n || memcmp(*p, word, n) != 0)
		return false;
	*p += n;
	*len -= n;
	return true;
}

static int parse_component(struct jsonl_path *jp, int depth, const char *p,
			   size_t len)
{
	char word[8];
	switch (depth) {
	case J_ROOT:
		if (!take(&p, &len, "org=") || len >= sizeof(jp->org) ||
		    !wiv_org_name_valid(p, len))
			return ENOENT;
		memcpy(jp->org, p, len);
		return 0;
	case J_ORG:
		if (!take(&p, &len, "date="))
			return ENOENT;
		jp->day = parse_date(p, len);
		return jp->day == INT64_MIN ? ENOENT : 0;
	case J_DATE: {
		if (!take(&p, &len, "type=") || len >= sizeof(word))
			return ENOENT;
		memcpy(word, p, len);
		word[len] = '\0';
		int type = wiv_type_from_name(word);
		if (type < 0)
			return ENOENT;
		jp->type = (enum wiv_log_type)type;
		return 0;
	}
	case J_TYPE:
		return len == strlen(WIV_JSONL_FILE) &&
				       memcmp(p, WIV_JSONL_FILE, len) == 0
			       ? 0
			       : ENOENT;
	default:
		return ENOENT;
	}
}

static int parse_path(const char *path, struct jsonl_path *jp)
{
	memset(jp, 0, sizeof(*jp));
	const char *p = path;
	int depth = 0;
	while (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int err = parse_component(jp, depth, p, len);
		if (err)
			return err;
		depth++;
		p += len;
		while (*p == '/')
			p++;
	}
	jp->depth = (enum jdepth)depth;
	return 0;
}

/* The tree's path of the day (type < 0) or day/type directory. */
static void tree_dir_path(const struct jsonl_path *jp, int type, char *out,
			  size_t size)
{
	int y, m, d;
	wiv_day_to_ymd(jp->day, &y, &m, &d);
	snprintf(out, size, "/%s/%04d/%02d/%02d%s%s", jp->org, y, m, d,
		 type < 0 ? "" : "/", type < 0 ? "" : wiv_type_name(type));
}

/* ---- directories ---- */

static int type_mask(const struct org *o, int64_t day)
{
	int mask = 0;
	for (int ty = 0; ty < WIV_TYPE_COUNT; ty++)
		if (wiv_catalog_has_day(o->types[ty].days, o->types[ty].ndays,
					day))
			mask |= 1 << ty;
	return mask;
}

static void dir_attr(struct wiv_node_attr *a, const char *path,
		     unsigned subdirs, int64_t newest_ms)
{
	*a = (struct wiv_node_attr){
		.is_dir = true,
		.ino = wiv_tree_path_ino(path),
		.size = 4096,
		.mtime_s = newest_ms < 0 ? 0 : newest_ms / 1000,
		.nlink = 2 + subdirs,
	};
}

/* Attributes of the org=, date= or type= directory at jp. Lock held. */
static int stat_dir(const struct org *o, const struct jsonl_path *jp,
		    const char *path, struct wiv_node_attr *a)
{
	if (jp->depth == J_ORG) {
		dir_attr(a, path, (unsigned)o->ndays, o->newest_ms);
		return 0;
	}
	int mask = jp->depth == J_DATE ? type_mask(o, jp->day)
				       : type_mask(o, jp->day) & 1 << jp->type;
	if (!mask)
		return ENOENT;
	int64_t from = jp->day * WIV_MS_PER_DAY;
	dir_attr(a, path,
		 jp->depth == J_DATE ? (unsigned)__builtin_popcount(mask) : 0,
		 wiv_catalog_newest_between(o, mask, from,
					    from + WIV_MS_PER_DAY));
	return 0;
}

/* ---- lines ---- */

/* Length of the compact line of an event text laid out as the cache holds
 * it; the compact form itself into *line (borrowed from buf) if wanted. */
static int compact_line(struct wiv_tree *t, const char *text, size_t len,
			struct wiv_jbuf *buf, const char **line,
			size_t *line_len)
{
	if (t->cfg.layout == WIV_LAYOUT_COMPACT) {
		*line = text;
		*line_len = len;
		return 0;
	}
	int err = wiv_json_layout_buf(buf, text, len, WIV_LAYOUT_COMPACT);
	if (err)
		return err;
	*line = buf->data;
	*line_len = buf->len;
	return 0;
}

/* Called with each event's compact line, in order. */
typedef int (*line_fn)(void *arg, size_t i, const char *line, size_t len);

/* Reads the events of refs and hands their compact lines to fn. Events
 * back to back in one cache entry (a run of one object, as the tree's
 * order makes them) are read with one read of up to SPAN_BYTES. Lock not
 * held. Returns 0 or errno. */
static int for_each_line(struct wiv_tree *t, const struct event_ref *refs,
			 size_t n, line_fn fn, void *arg)
{
	struct wiv_cached_event *evs = malloc(SPAN_EVENTS * sizeof(*evs));
	struct wiv_jbuf span = {0}, line = {0};
	int err = evs ? 0 : ENOMEM;
	for (size_t i = 0, j; i < n && !err; i = j) {
		size_t bytes = refs[i].event.length;
		evs[0] = refs[i].event;
		for (j = i + 1; j < n && j - i < SPAN_EVENTS; j++) {
			const struct wiv_cached_event *prev = &refs[j - 1].event;
			if (refs[j].obj != refs[i].obj ||
			    refs[j].event.offset != prev->offset + prev->length ||
			    bytes + refs[j].event.length > SPAN_BYTES)
				break;
			evs[j - i] = refs[j].event;
			bytes += refs[j].event.length;
		}
		span.len = 0;
		err = wiv_jbuf_reserve(&span, bytes ? bytes : 1);
		if (!err)
			err = wiv_tree_read_events(t, refs[i].obj, evs, j - i,
						   span.data);
		const char *text = span.data;
		for (size_t k = i; k < j && !err; k++) {
			const char *l;
			size_t len;
			err = compact_line(t, text, refs[k].event.length, &line,
					   &l, &len);
			/* The text was laid out from valid JSON and passed its
			 * checksum: only a damaged cache gets here. */
			if (err == EINVAL) {
				wiv_err("%s: a cached event is not JSON; clear "
					"the cache (wivaudit cache clear)",
					refs[k].obj->key);
				err = EIO;
			}
			if (!err)
				err = fn(arg, k, l, len);
			text += refs[k].event.length;
		}
	}
	free(evs);
	wiv_jbuf_free(&span);
	wiv_jbuf_free(&line);
	return err;
}

static int add_end(void *arg, size_t i, const char *line, size_t len)
{
	uint64_t *ends = arg;
	ends[i + 1] = ends[i] + len;
	return 0;
}

/* Gives d its line_ends: from the index's lengths when the cache holds
 * compact text, else by reading every event with the lock released.
 * Returns with the lock held and *out valid, or errno. */
static int line_dir(struct wiv_tree *t, struct org *o,
		    const struct jsonl_path *jp, struct event_dir **out)
{
	for (int attempt = 0; attempt < MEASURE_ATTEMPTS; attempt++) {
		struct event_dir *d;
		int err = wiv_tree_event_dir(t, o, jp->day, jp->type, &d);
		if (err)
			return err;
		if (d->line_ends) {
			*out = d;
			return 0;
		}
		uint64_t *ends = malloc((d->n + 1) * sizeof(*ends));
		if (!ends)
			return ENOMEM;
		ends[0] = 0;
		if (t->cfg.layout == WIV_LAYOUT_COMPACT) {
			for (size_t i = 0; i < d->n; i++)
				ends[i + 1] = ends[i] + d->entries[i].length;
			d->line_ends = ends;
			*out = d;
			return 0;
		}
		size_t n = d->n;
		uint64_t serial = d->serial;
		struct event_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
		if (!refs) {
			free(ends);
			return ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			wiv_tree_entry_ref(&d->entries[i], &refs[i]);
		pthread_mutex_unlock(&t->lock);
		err = for_each_line(t, refs, n, add_end, ends);
		free(refs);
		pthread_mutex_lock(&t->lock);
		if (err) {
			free(ends);
			return err;
		}
		/* The directory may have been dropped or rebuilt meanwhile. */
		d = wiv_tree_find_event_dir(t, o, jp->day, jp->type);
		if (d && d->serial == serial && !d->line_ends)
			d->line_ends = ends;
		else
			free(ends);
	}
	return EAGAIN;
}

/* Resolves path to its org (if any) with the lock held. */
static int resolve(struct wiv_tree *t, const char *path, struct jsonl_path *jp,
		   struct org **o)
{
	int err = parse_path(path, jp);
	*o = NULL;
	if (err || jp->depth == J_ROOT)
		return err;
	return wiv_catalog_get_org(t, jp->org, o);
}

/* The file's attributes, its lines measured. Lock held. */
static int stat_file(struct wiv_tree *t, struct org *o,
		     const struct jsonl_path *jp, const char *path,
		     struct wiv_node_attr *a)
{
	struct event_dir *d;
	int err = line_dir(t, o, jp, &d);
	if (err)
		return err;
	int64_t from = jp->day * WIV_MS_PER_DAY;
	int64_t newest = wiv_catalog_newest_between(o, 1 << jp->type, from,
						    from + WIV_MS_PER_DAY);
	*a = (struct wiv_node_attr){
		.ino = wiv_tree_path_ino(path),
		.size = d->line_ends[d->n],
		.mtime_s = newest < 0 ? 0 : newest / 1000,
		.nlink = 1,
	};
	return 0;
}

int wiv_jsonl_stat(struct wiv_tree *t, const char *path,
		   struct wiv_node_attr *out)
{
	struct jsonl_path jp;
	if (parse_path(path, &jp) == 0 && jp.depth == J_ROOT)
		return wiv_tree_stat(t, "/", out); /* the same orgs */
	struct org *o;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &jp, &o);
	if (!err)
		err = stat_dir(o, &jp, path, out);
	if (!err && jp.depth == J_FILE)
		err = stat_file(t, o, &jp, path, out);
	pthread_mutex_unlock(&t->lock);
	return err;
}

struct jsonl_walk {
	const char *path;
	wiv_dirent_fn fn;
	void *arg;
	off_t start, index;
	int stop;
};

static void emit(struct jsonl_walk *w, const char *name,
		 const struct wiv_node_attr *a)
{
	off_t index = w->index++;
	if (!w->stop && index >= w->start)
		w->stop = w->fn(w->arg, name, a, index + 1);
}

/* Emits the child name of the walk's directory, with its attributes from
 * the catalog. Lock held. */
static void emit_dir(struct jsonl_walk *w, const struct org *o,
		     const char *name)
{
	char child[1024];
	struct jsonl_path cjp;
	struct wiv_node_attr a;
	snprintf(child, sizeof(child), "%s/%s", w->path, name);
	if (parse_path(child, &cjp) == 0 && stat_dir(o, &cjp, child, &a) == 0)
		emit(w, name, &a);
}

static void list_orgs(struct wiv_tree *t, struct jsonl_walk *w)
{
	if (wiv_catalog_ensure_root(t, false) != 0)
		return;
	for (size_t i = 0; i < t->norgs && !w->stop; i++) {
		struct org *o = t->orgs[i];
		char name[300];
		snprintf(name, sizeof(name), "org=%s", o->name);
		if (wiv_catalog_ensure_org(t, o) == 0)
			emit_dir(w, o, name);
	}
}

static void list_children(struct wiv_tree *t, const struct jsonl_path *jp,
			  struct org *o, struct jsonl_walk *w)
{
	char name[64];
	int y, m, d;
	switch (jp->depth) {
	case J_ROOT:
		list_orgs(t, w);
		break;
	case J_ORG:
		for (size_t i = 0; i < o->ndays && !w->stop; i++) {
			wiv_day_to_ymd(o->days[i], &y, &m, &d);
			snprintf(name, sizeof(name), "date=%04d-%02d-%02d", y,
				 m, d);
			emit_dir(w, o, name);
		}
		break;
	case J_DATE:
		for (int ty = 0; ty < WIV_TYPE_COUNT && !w->stop; ty++) {
			snprintf(name, sizeof(name), "type=%s",
				 wiv_type_name(ty));
			emit_dir(w, o, name);
		}
		break;
	default: {
		char child[1024];
		snprintf(child, sizeof(child), "%s/%s", w->path,
			 WIV_JSONL_FILE);
		struct wiv_node_attr a = {.ino = wiv_tree_path_ino(child),
					  .nlink = 1, .name_only = true};
		emit(w, WIV_JSONL_FILE, &a);
	}
	}
}

int wiv_jsonl_readdir(struct wiv_tree *t, const char *path, off_t start,
		      wiv_dirent_fn fn, void *arg)
{
	struct jsonl_path jp;
	struct org *o;
	struct wiv_node_attr a;
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &jp, &o);
	if (!err && jp.depth == J_FILE)
		err = ENOTDIR;
	if (!err && jp.depth != J_ROOT)
		err = stat_dir(o, &jp, path, &a);
	if (!err) {
		struct jsonl_walk w = {
			.path = strcmp(path, "/") == 0 ? "" : path,
			.fn = fn, .arg = arg, .start = start};
		list_children(t, &jp, o, &w);
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* ---- reads ---- */

/* The events overlapping [off, off + size) of a file, copied out so that
 * the cache is read with the lock released. */
struct line_range {
	struct event_ref *refs;
	size_t n;
	uint64_t first_start; /* file offset of refs[0]'s line */
};

/* Index of the line holding byte off (ends[n] > off assumed). */
static size_t line_at(const uint64_t *ends, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ends[mid + 1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int find_range(struct wiv_tree *t, const char *path, uint64_t off,
		      size_t size, struct line_range *r)
{
	struct jsonl_path jp;
	struct org *o;
	struct event_dir *d = NULL;
	*r = (struct line_range){0};
	pthread_mutex_lock(&t->lock);
	int err = resolve(t, path, &jp, &o);
	if (!err && jp.depth != J_FILE)
		err = EISDIR;
	struct wiv_node_attr a;
	if (!err)
		err = stat_dir(o, &jp, path, &a);
	if (!err)
		err = line_dir(t, o, &jp, &d);
	if (!err && off < d->line_ends[d->n]) {
		size_t first = line_at(d->line_ends, d->n, off);
		size_t last = first;
		while (last < d->n && d->line_ends[last] < off + size)
			last++;
		r->refs = malloc((last - first) * sizeof(*r->refs));
		if (!r->refs)
			err = ENOMEM;
		for (size_t i = first; !err && i < last; i++)
			wiv_tree_entry_ref(&d->entries[i], &r->refs[r->n++]);
		r->first_start = d->line_ends[first];
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* Copies the part of each line inside the read's range into its buffer. */
struct read_fill {
	char *buf;
	size_t size, done;
	uint64_t off, pos; /* the read's offset; the next line's */
};

static int fill_line(void *arg, size_t i, const char *line, size_t len)
{
	struct read_fill *r = arg;
	uint64_t skip = r->off > r->pos ? r->off - r->pos : 0;
	r->pos += len;
	if (skip >= len)
		return 0;
	size_t n = len - (size_t)skip;
	if (n > r->size - r->done)
		n = r->size - r->done;
	memcpy(r->buf + r->done, line + skip, n);
	r->done += n;
	return 0;
}

int wiv_jsonl_read(struct wiv_tree *t, const char *path, char *buf,
		   size_t size, off_t off, size_t *nread)
{
	struct line_range r;
	*nread = 0;
	if (off < 0)
		return EINVAL;
	int err = find_range(t, path, (uint64_t)off, size, &r);
	struct read_fill fill = {.buf = buf, .size = size, .off = (uint64_t)off,
				 .pos = r.first_start};
	if (!err)
		err = for_each_line(t, r.refs, r.n, fill_line, &fill);
	free(r.refs);
	*nread = err ? 0 : fill.done;
	return err;
}

int wiv_jsonl_xattr(struct wiv_tree *t, const char *path, const char *name,
		    char *buf, size_t size, size_t *len)
{
	struct jsonl_path jp;
	int err = parse_path(path, &jp);
	if (err)
		return err;
	char tree_path[1024];
	if (jp.depth == J_TYPE || jp.depth == J_FILE)
		tree_dir_path(&jp, (int)jp.type, tree_path, sizeof(tree_path));
	else if (jp.depth == J_DATE)
		tree_dir_path(&jp, -1, tree_path, sizeof(tree_path));
	else if (jp.depth == J_ORG)
		snprintf(tree_path, sizeof(tree_path), "/%s", jp.org);
	else
		snprintf(tree_path, sizeof(tree_path), "/");
	return wiv_tree_xattr(t, tree_path, name, buf, size, len);
}
