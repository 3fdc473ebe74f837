/* Reaching the cache's entry files and keeping descriptors on them: every
 * entry is reached from the objects/ descriptor through its objects/XX
 * subdirectory, opened without following a symlink; descriptors of recently
 * read entries are kept (disk slots), and so are entries that could not be
 * written to disk (memory slots, each a memfd in the entry format). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache_internal.h"
#include "wivaudit/cachedir.h"
#include "wivaudit/log.h"

/* Memory entries together stay under this, but for the newest one: enough
 * for the days a directory spans, small beside the daemon's other needs. */
#define MEM_BUDGET (64u << 20)

#define N_SLOTS (WIV_CACHE_FD_SLOTS + WIV_CACHE_MEM_SLOTS)
/* Reads refresh an entry's recency at most this often (seconds): enough
 * precision for LRU without a metadata write per read. */
#define TOUCH_INTERVAL 60

time_t wiv_cache_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

int wiv_cache_open_sub(struct wiv_cache *c, const char *name, bool create,
		       int *fd)
{
	char sub[3] = {name[0], name[1], '\0'};
	int err = wiv_cachedir_sub(c->obj_fd, sub, create, fd);

	if (err == ELOOP && !atomic_exchange(&c->link_logged, true))
		wiv_err("cache: %s/objects/%s is a symlink: not followed; "
			"objects under it are served from memory (remove it, "
			"or run 'wivaudit cache verify --repair')",
			c->dir, sub);
	return err;
}

int wiv_cache_open_entry_file(struct wiv_cache *c, const char *name, int *fd)
{
	int sub, err = wiv_cache_open_sub(c, name, false, &sub);

	if (err)
		return err;
	*fd = openat(sub, name + 3, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	err = *fd < 0 ? errno : 0;
	close(sub);
	if (err == ELOOP && !atomic_exchange(&c->link_logged, true))
		wiv_err("cache: %s/objects/%s is a symlink: not followed; "
			"the entry is fetched again", c->dir, name);
	return err;
}

int wiv_cache_stat_entry(struct wiv_cache *c, const char *name,
			 struct stat *st)
{
	int sub, err = wiv_cache_open_sub(c, name, false, &sub);

	if (err)
		return err;
	err = fstatat(sub, name + 3, st, AT_SYMLINK_NOFOLLOW) ? errno : 0;
	close(sub);
	return err;
}

int wiv_cache_unlink_entry(struct wiv_cache *c, const char *name)
{
	int sub, err = wiv_cache_open_sub(c, name, false, &sub);

	if (err)
		return err;
	err = unlinkat(sub, name + 3, 0) ? errno : 0;
	close(sub);
	return err;
}

/* Marks slot i stale; returns its fd if the caller must close it (no user
 * left), else -1. Called with c->mu held. */
static int retire_slot(struct wiv_cache *c, int i)
{
	int fd = -1;

	if (i >= WIV_CACHE_FD_SLOTS && !c->slots[i].stale)
		c->mem_bytes -= c->slots[i].size;
	c->slots[i].stale = true;
	if (c->slots[i].refs == 0) {
		fd = c->slots[i].fd;
		c->slots[i].fd = -1;
	}
	return fd;
}

int wiv_cache_slot_acquire(struct wiv_cache *c, const char *name,
			   bool memory_only, int *fd, bool *touch)
{
	int found = -1;

	pthread_mutex_lock(&c->mu);
	for (int i = memory_only ? WIV_CACHE_FD_SLOTS : 0; i < N_SLOTS; i++) {
		struct wiv_cache_slot *s = &c->slots[i];
		if (s->fd >= 0 && !s->stale && strcmp(s->name, name) == 0) {
			time_t now = wiv_cache_mono_now();
			s->refs++;
			s->used = ++c->tick;
			*touch = i < WIV_CACHE_FD_SLOTS &&
				 now - s->touched >= TOUCH_INTERVAL;
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

void wiv_cache_slot_release(struct wiv_cache *c, int i)
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

/* Retires the slots named name (from index from on), but not one on the
 * file st if st. Returns false if such a slot exists (nothing retired
 * then); fds to close go to closing[0..n). Lock held. */
static bool retire_named(struct wiv_cache *c, const char *name,
			 const struct stat *st, int *closing, int *n)
{
	for (int i = 0; i < N_SLOTS; i++) {
		struct wiv_cache_slot *s = &c->slots[i];
		if (s->fd < 0 || s->stale || strcmp(s->name, name) != 0)
			continue;
		if (st && i < WIV_CACHE_FD_SLOTS && s->dev == st->st_dev &&
		    s->ino == st->st_ino)
			return false;
		closing[(*n)++] = retire_slot(c, i);
	}
	return true;
}

/* Fills slot i; returns the fd it held before (to close), or -1. */
static int fill_slot(struct wiv_cache *c, int i, const char *name, int fd,
		     const struct stat *st, bool hold, uint64_t size)
{
	struct wiv_cache_slot *s = &c->slots[i];
	int old = s->fd;

	memcpy(s->name, name, WIV_CACHE_NAME_LEN);
	s->fd = fd;
	s->dev = st ? st->st_dev : 0;
	s->ino = st ? st->st_ino : 0;
	s->refs = hold ? 1 : 0;
	s->stale = false;
	s->used = ++c->tick;
	s->touched = wiv_cache_mono_now();
	s->size = size;
	return old;
}

static void close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int wiv_cache_slot_insert(struct wiv_cache *c, const char *name, int fd,
			  const struct stat *st, bool hold)
{
	int victim = -1, closing[N_SLOTS + 1], n = 0;

	pthread_mutex_lock(&c->mu);
	if (!retire_named(c, name, st, closing, &n)) {
		pthread_mutex_unlock(&c->mu);
		close_all(closing, n);
		return -1;
	}
	for (int i = 0; i < WIV_CACHE_FD_SLOTS; i++) {
		struct wiv_cache_slot *s = &c->slots[i];
		if (s->fd < 0) {
			victim = i;
			break;
		}
		if (s->refs == 0 &&
		    (victim < 0 || s->used < c->slots[victim].used))
			victim = i;
	}
	if (victim >= 0)
		closing[n++] = fill_slot(c, victim, name, fd, st, hold, 0);
	pthread_mutex_unlock(&c->mu);
	close_all(closing, n);
	return victim;
}

int wiv_cache_mem_insert(struct wiv_cache *c, const char *name, int fd,
			 uint64_t size)
{
	int victim = -1, closing[N_SLOTS + 1], n = 0;

	pthread_mutex_lock(&c->mu);
	retire_named(c, name, NULL, closing, &n);
	for (;;) {
		int lru = -1;
		for (int i = WIV_CACHE_FD_SLOTS; i < N_SLOTS; i++) {
			struct wiv_cache_slot *s = &c->slots[i];
			if (s->fd < 0) {
				victim = i;
				continue;
			}
			if (s->refs == 0 && !s->stale &&
			    (lru < 0 || s->used < c->slots[lru].used))
				lru = i;
		}
		if (lru < 0 ||
		    (victim >= 0 && c->mem_bytes + size <= MEM_BUDGET))
			break;
		closing[n++] = retire_slot(c, lru);
		victim = -1;
	}
	if (victim >= 0) {
		closing[n++] = fill_slot(c, victim, name, fd, NULL, false, size);
		c->mem_bytes += size;
	}
	pthread_mutex_unlock(&c->mu);
	close_all(closing, n);
	return victim >= 0 ? 0 : ENOSPC;
}

void wiv_cache_slot_forget(struct wiv_cache *c, const char *name)
{
	int closing[N_SLOTS], n = 0;

	pthread_mutex_lock(&c->mu);
	retire_named(c, name, NULL, closing, &n);
	pthread_mutex_unlock(&c->mu);
	close_all(closing, n);
}

void wiv_cache_slots_close(struct wiv_cache *c)
{
	for (int i = 0; i < N_SLOTS; i++)
		if (c->slots[i].fd >= 0)
			close(c->slots[i].fd);
}
