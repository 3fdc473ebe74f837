/* The cache's bounds. cache_size covers the entries and the temp files
 * being written: a writer reserves space ahead of what it writes, and
 * eviction (least recently used first) makes room before the bound is
 * crossed rather than after. The cache's filesystem keeps a margin of free
 * space: when it runs short, or a write meets ENOSPC or EDQUOT, entries are
 * evicted too. What still does not fit is the writer's to serve from
 * memory (cache.c).
 *
 * Recency is the entry file's mtime, set explicitly on use so that it
 * survives remounts whatever the filesystem's atime mode. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache_internal.h"
#include "wivaudit/cachedir.h"
#include "wivaudit/log.h"

/* A writer reserves ahead of what it has written by a 64th of the bound,
 * at most this much. */
#define RESERVE_STEP (1u << 20)
/* Free space kept on the cache's filesystem: a twentieth of it, at most
 * this. */
#define MARGIN_MAX (64u << 20)

struct scan_item {
	struct timespec mtime;
	uint64_t size;
	char name[WIV_CACHE_NAME_LEN];
};

struct scan {
	uint64_t total;
	bool collect;
	struct scan_item *items;
	size_t n, cap;
	/* At open: the first symlink met, relative to the cache directory. */
	char *link;
	size_t linklen;
	bool found_link;
};

static bool is_entry_name(const char *s)
{
	size_t len = strlen(s);

	return len == WIV_CACHE_BASE_LEN &&
	       strcmp(s + len - 4, WIV_CACHE_SUFFIX) == 0;
}

static bool is_sub_name(const char *s)
{
	return strlen(s) == 2 && strspn(s, "0123456789abcdef") == 2;
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
	memcpy(it->name + 3, base, WIV_CACHE_BASE_LEN + 1);
	return 0;
}

static void note_link(struct scan *s, const char *sub, const char *base)
{
	if (s->link && !s->found_link)
		snprintf(s->link, s->linklen, "objects/%s%s%s", sub,
			 base ? "/" : "", base ? base : "");
	s->found_link = true;
}

/* Temp files: a live writer's (another daemon's) count toward the bound,
 * this process's are counted by their reservations, and the rest were
 * left by a killed process and are removed. */
static void scan_tmp(struct scan *s, int dir_fd, const char *name,
		     const struct stat *st)
{
	if (wiv_cachedir_tmp_is_ours(name) ||
	    wiv_cachedir_clean_tmp(dir_fd, name))
		return;
	s->total += (uint64_t)st->st_size;
}

static int scan_sub(struct scan *s, DIR *d, const char *sub)
{
	struct dirent *de;
	int err = 0;

	while (!err && (de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] ||
		     (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISLNK(st.st_mode)) {
			note_link(s, sub, de->d_name);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (wiv_cachedir_is_tmp(de->d_name)) {
			scan_tmp(s, dirfd(d), de->d_name, &st);
			continue;
		}
		if (!is_entry_name(de->d_name))
			continue;
		s->total += (uint64_t)st.st_size;
		if (s->collect)
			err = scan_add(s, sub, de->d_name, &st);
	}
	return err;
}

/* Sums (and with s->collect lists) every entry and removes abandoned temp
 * files. One readdir per subdirectory and one fstatat per entry: well
 * under a second for tens of thousands of entries. */
static int scan_dir(struct wiv_cache *c, struct scan *s)
{
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
		err = wiv_cachedir_sub(c->obj_fd, de->d_name, false, &fd);
		if (err == ELOOP)
			note_link(s, de->d_name, NULL);
		if (err) {
			err = 0;
			continue;
		}
		d = fdopendir(fd);
		if (!d) {
			err = errno;
			close(fd);
			break;
		}
		err = scan_sub(s, d, de->d_name);
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

/* Removes the oldest entries of s but keep until s->total <= target.
 * Returns the bytes removed. */
static uint64_t remove_oldest(struct wiv_cache *c, struct scan *s,
			      const char *keep, uint64_t target)
{
	uint64_t removed = 0, n = 0;

	if (s->n)
		qsort(s->items, s->n, sizeof(s->items[0]), by_mtime);
	for (size_t i = 0; i < s->n && s->total > target; i++) {
		struct scan_item *it = &s->items[i];
		struct stat st;

		if (strcmp(it->name, keep) == 0)
			continue;
		/* Used or rewritten since the scan: no longer the oldest. */
		if (!wiv_cache_stat_entry(c, it->name, &st) &&
		    ts_cmp(&st.st_mtim, &it->mtime) != 0)
			continue;
		if (wiv_cache_unlink_entry(c, it->name) != 0)
			continue;
		wiv_cache_slot_forget(c, it->name);
		s->total -= it->size;
		removed += it->size;
		n++;
	}
	atomic_fetch_add(&c->evicted, n);
	return removed;
}

/* Writes and reads need no lock between daemons sharing the directory
 * (rename is atomic, readers hold whole files), but eviction does: two
 * daemons scanning at once would each remove their own oldest share and
 * together empty the cache far below the bound. The flock on "lock" makes
 * one evict while the other skips and catches up (its total resynced) at
 * its next eviction. Within the process, evict_mu does the same; with
 * wait, a caller waits for an eviction under way instead of skipping. */
static uint64_t evict(struct wiv_cache *c, const char *keep, uint64_t target,
		      bool wait)
{
	struct scan s = {.collect = true};
	uint64_t removed = 0;
	int err;

	if (wait)
		pthread_mutex_lock(&c->evict_mu);
	else if (pthread_mutex_trylock(&c->evict_mu) != 0)
		return 0;
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0)
		goto out;
	err = scan_dir(c, &s);
	if (err) {
		wiv_warn("cache: cannot scan for eviction: %s", strerror(err));
	} else {
		removed = remove_oldest(c, &s, keep, target);
		/* Commits that raced with the scan may be lost from the
		 * count; the next eviction scan corrects it. */
		pthread_mutex_lock(&c->mu);
		c->total_bytes = s.total;
		pthread_mutex_unlock(&c->mu);
	}
	flock(c->lock_fd, LOCK_UN);
out:
	pthread_mutex_unlock(&c->evict_mu);
	free(s.items);
	return removed;
}

int wiv_cache_space_open(struct wiv_cache *c, char *link, size_t linklen)
{
	struct scan s = {.link = link, .linklen = linklen};
	int err = scan_dir(c, &s);

	if (err)
		return err;
	if (s.found_link)
		return ELOOP;
	c->total_bytes = s.total;
	/* The bound may have been lowered since the entries were written. */
	if (s.total > c->max_bytes)
		evict(c, "", c->max_bytes / 10 * 9, true);
	return 0;
}

uint64_t wiv_cache_space_evict(struct wiv_cache *c, const char *keep,
			       uint64_t target)
{
	return evict(c, keep, target, true);
}

/* Takes need bytes of cache_size if they fit. */
static bool take(struct wiv_cache *c, uint64_t need, uint64_t *others)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = c->total_bytes + c->reserved + need <= c->max_bytes;
	if (ok)
		c->reserved += need;
	*others = c->reserved - (ok ? need : 0);
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void give_back(struct wiv_cache *c, uint64_t bytes)
{
	pthread_mutex_lock(&c->mu);
	c->reserved -= bytes < c->reserved ? bytes : c->reserved;
	pthread_mutex_unlock(&c->mu);
}

static uint64_t total(struct wiv_cache *c)
{
	uint64_t t;

	pthread_mutex_lock(&c->mu);
	t = c->total_bytes;
	pthread_mutex_unlock(&c->mu);
	return t;
}

/* Free bytes on the cache's filesystem, and the margin to keep. */
static int free_space(struct wiv_cache *c, uint64_t *avail, uint64_t *margin)
{
	struct statvfs vs;

	if (fstatvfs(c->dir_fd, &vs) != 0)
		return errno;
	*avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	*margin = (uint64_t)vs.f_blocks * vs.f_frsize / 20;
	if (*margin > MARGIN_MAX)
		*margin = MARGIN_MAX;
	return 0;
}

/* Makes sure the filesystem has need bytes free, evicting to restore the
 * margin when it is short. Returns 0 or ENOSPC. */
static int ensure_free(struct wiv_cache *c, uint64_t need,
		       struct wiv_cache_shortfall *sf)
{
	uint64_t avail = 0, margin = 0, t;

	if (free_space(c, &avail, &margin) != 0 || avail >= need + margin)
		return 0;
	t = total(c);
	wiv_cache_space_evict(c, "",
			      t > need + margin - avail
				  ? t - (need + margin - avail)
				  : 0);
	if (free_space(c, &avail, &margin) != 0 || avail >= need)
		return 0;
	sf->needed = need;
	sf->free = avail;
	return ENOSPC;
}

int wiv_cache_space_reserve(struct wiv_cache *c, uint64_t *held, uint64_t end,
			    struct wiv_cache_shortfall *sf)
{
	uint64_t step, want, need, others, room;
	int err;

	if (end <= *held)
		return 0;
	memset(sf, 0, sizeof(*sf));
	sf->needed = end;
	if (end > c->max_bytes)
		return EFBIG;
	step = c->max_bytes / 64 < RESERVE_STEP ? c->max_bytes / 64
						 : RESERVE_STEP;
	want = end + step < c->max_bytes ? end + step : c->max_bytes;
	need = want - *held;
	if (!take(c, need, &others)) {
		/* Evict ahead, to 90% of what the other writers leave, so
		 * that a scan runs once per tenth of the bound written. */
		room = c->max_bytes > others + need
			   ? c->max_bytes - others - need
			   : 0;
		if (room > c->max_bytes / 10 * 9)
			room = c->max_bytes / 10 * 9;
		evict(c, "", room, true);
		if (!take(c, need, &others)) {
			sf->held = others;
			return EFBIG;
		}
	}
	/* The filesystem needs room for what is about to be written; the
	 * step reserved ahead is cache_size's business only. */
	err = ensure_free(c, end - *held, sf);
	if (err) {
		give_back(c, need);
		return err;
	}
	*held = want;
	return 0;
}

bool wiv_cache_space_free_up(struct wiv_cache *c, uint64_t bytes)
{
	uint64_t avail = 0, margin = 0, t = total(c);

	if (free_space(c, &avail, &margin) == 0)
		bytes += margin;
	return wiv_cache_space_evict(c, "", t > bytes ? t - bytes : 0) > 0;
}

void wiv_cache_space_commit(struct wiv_cache *c, uint64_t *held,
			    uint64_t new_size, uint64_t old_size,
			    const char *keep)
{
	bool over;

	pthread_mutex_lock(&c->mu);
	c->reserved -= *held < c->reserved ? *held : c->reserved;
	*held = 0;
	c->total_bytes += new_size;
	c->total_bytes -= old_size < c->total_bytes ? old_size : c->total_bytes;
	over = c->total_bytes > c->max_bytes;
	pthread_mutex_unlock(&c->mu);
	if (over)
		evict(c, keep, c->max_bytes / 10 * 9, false);
}

void wiv_cache_space_release(struct wiv_cache *c, uint64_t *held)
{
	give_back(c, *held);
	*held = 0;
}

uint64_t wiv_cache_space_avail(struct wiv_cache *c)
{
	uint64_t avail = 0, margin = 0;

	return free_space(c, &avail, &margin) == 0 ? avail : 0;
}

void wiv_cache_space_removed(struct wiv_cache *c, uint64_t bytes)
{
	pthread_mutex_lock(&c->mu);
	c->total_bytes -= bytes < c->total_bytes ? bytes : c->total_bytes;
	pthread_mutex_unlock(&c->mu);
}
