/* The FUSE low-level operations over the tree: the only place that turns
 * errno into a FUSE reply.
 *
 * Node ids are the tree's inode numbers, so the kernel and `stat` agree and
 * both survive remounts. The node table maps each id the kernel holds a
 * reference to (lookup count > 0) to its path; it shrinks as the kernel
 * forgets, and the kernel is told to forget a day/type directory when the
 * tree drops it from memory, so neither side grows with the bucket.
 *
 * The kernel keeps directory listings (no opendir round trips, no
 * re-reading on every walk); when the tree's listing of an org changes, the
 * kernel is told to drop what it keeps of that org's directories.
 *
 * A walk that reads what it lists (grep -r, tar) gets most event files
 * written into the kernel's page cache as soon as it has listed their
 * directory, sparing it a READ round trip per file (see push_texts).
 *
 * Everything is read-only: the mount is made with -o ro, so the kernel
 * answers EROFS to every write, create, rename or chmod before it reaches
 * us. Root can lift that flag (`mount -o remount,rw`); then every request
 * that would change something reaches us and is answered EROFS here, not
 * left to libfuse's ENOSYS. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <fuse_lowlevel.h>

#include "wivaudit/fuse_ops.h"
#include "wivaudit/jobs.h"
#include "wivaudit/jsonl_view.h"
#include "wivaudit/log.h"

/* Event files never change once seen: the kernel may trust their names and
 * attributes far longer than a listing's. */
#define EVENT_TIMEOUT_S 3600.0
/* Longest path in the tree: org (255) + date + type + name (~220). */
#define PATH_MAX_LEN 1024
/* At most this much text is pushed into the page cache per directory: a
 * huge directory is read the ordinary way past it. */
#define PUSH_MAX_BYTES (8u << 20)
/* Directories pushed at once. A push waits for any READ of the same page
 * that another walker has in flight, and that READ needs a free thread of
 * the loop (at most LOOP_MAX_THREADS): pushes must never take them all. */
#define PUSH_MAX_CONCURRENT 4
#define LOOP_MAX_THREADS 64

struct node {
	uint64_t ino;
	uint64_t nlookup;
	char *path;
	bool is_dir;
	/* An event file of the tree's layout as it was looked up: its inode
	 * is one version of its object, so reads and attributes follow that
	 * version even after the bucket has moved on. */
	struct wiv_node_attr event;
	struct node *next; /* hash chain */
};

/* What the kernel should drop, done by the notify thread. */
struct notify_request {
	enum { FORGET_ENTRY, DROP_LISTINGS, FORGET_FILES } kind;
	uint64_t parent;       /* FORGET_ENTRY: the day directory */
	char name[8];          /* FORGET_ENTRY: the type directory */
	char *prefix;          /* DROP_LISTINGS: "/" or "/org";
				  FORGET_FILES: "/org" */
};

struct wiv_fuse {
	struct wiv_fs cfg;
	struct fuse_session *se;
	bool no_open;
	bool no_opendir;
	/* READs of event files so far, and their number when the kernel last
	 * finished listing a day/type directory. */
	atomic_uint_fast64_t event_reads;
	atomic_uint_fast64_t event_reads_at_listed;
	atomic_uint pushes; /* under way */

	pthread_mutex_t nodes_lock;
	struct node **buckets;
	size_t nbuckets; /* a power of two */
	size_t nnodes;

	/* The kernel's invalidations wait on a directory's lock, which a
	 * request in flight may hold: they run on their own thread, never in
	 * a request or under a lock. */
	struct wiv_jobs *notify;
};

static struct wiv_fuse *fuse_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- node table ---- */

static size_t bucket_of(const struct wiv_fuse *f, uint64_t ino)
{
	/* Tree inode numbers are hashes already; mix anyway for the root. */
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) >> 20) & (f->nbuckets - 1);
}

static struct node *node_find(struct wiv_fuse *f, uint64_t ino)
{
	for (struct node *n = f->buckets[bucket_of(f, ino)]; n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

static void grow_buckets(struct wiv_fuse *f)
{
	size_t nb = f->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	size_t old = f->nbuckets;
	struct node **ob = f->buckets;
	f->buckets = b;
	f->nbuckets = nb;
	for (size_t i = 0; i < old; i++)
		for (struct node *n = ob[i], *next; n; n = next) {
			next = n->next;
			size_t k = bucket_of(f, n->ino);
			n->next = b[k];
			b[k] = n;
		}
	free(ob);
}

/* Counts one kernel reference to the node a describes, at path. Returns 0
 * or ENOMEM. */
static int node_ref(struct wiv_fuse *f, const struct wiv_node_attr *a,
		    const char *path)
{
	uint64_t ino = a->ino;
	pthread_mutex_lock(&f->nodes_lock);
	struct node *n = node_find(f, ino);
	if (n && strcmp(n->path, path) != 0)
		/* Two paths with one 64-bit hash: vanishingly rare, but it
		 * must not go unnoticed. */
		wiv_err("inode collision: %s and %s share %llu", n->path, path,
			(unsigned long long)ino);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n || !(n->path = strdup(path))) {
			free(n);
			pthread_mutex_unlock(&f->nodes_lock);
			return ENOMEM;
		}
		n->ino = ino;
		n->is_dir = a->is_dir;
		if (a->file.object)
			n->event = *a;
		size_t k = bucket_of(f, ino);
		n->next = f->buckets[k];
		f->buckets[k] = n;
		if (++f->nnodes > f->nbuckets)
			grow_buckets(f);
	}
	n->nlookup++;
	pthread_mutex_unlock(&f->nodes_lock);
	return 0;
}

static void node_forget(struct wiv_fuse *f, uint64_t ino, uint64_t count)
{
	if (ino == FUSE_ROOT_ID)
		return;
	pthread_mutex_lock(&f->nodes_lock);
	struct node **pp = &f->buckets[bucket_of(f, ino)];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	struct node *n = *pp;
	if (n)
		n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
	if (n && n->nlookup == 0) {
		*pp = n->next;
		f->nnodes--;
		free(n->path);
		free(n);
	}
	pthread_mutex_unlock(&f->nodes_lock);
}

/* Copies the path of ino into out. Returns 0 or ESTALE if the kernel asks
 * about an id it was never given (or already forgot). */
static int node_path(struct wiv_fuse *f, uint64_t ino, char *out)
{
	if (ino == FUSE_ROOT_ID) {
		strcpy(out, "/");
		return 0;
	}
	pthread_mutex_lock(&f->nodes_lock);
	struct node *n = node_find(f, ino);
	if (n)
		snprintf(out, PATH_MAX_LEN, "%s", n->path);
	pthread_mutex_unlock(&f->nodes_lock);
	return n ? 0 : ESTALE;
}

/* Copies the attributes of ino into out if it is an event file of the
 * tree's layout. Returns 0, ESTALE for an id the kernel was never given, or
 * ENOENT for any other node. */
static int node_file(struct wiv_fuse *f, uint64_t ino,
		     struct wiv_node_attr *out)
{
	if (ino == FUSE_ROOT_ID)
		return ENOENT;
	pthread_mutex_lock(&f->nodes_lock);
	struct node *n = node_find(f, ino);
	int err = !n ? ESTALE : n->event.file.object ? 0 : ENOENT;
	if (!err)
		*out = n->event;
	pthread_mutex_unlock(&f->nodes_lock);
	return err;
}

static int child_path(struct wiv_fuse *f, uint64_t parent, const char *name,
		      char *out)
{
	char dir[PATH_MAX_LEN];
	int err = node_path(f, parent, dir);
	if (err)
		return err;
	int len = snprintf(out, PATH_MAX_LEN, "%s/%s",
			   strcmp(dir, "/") == 0 ? "" : dir, name);
	return len < PATH_MAX_LEN ? 0 : ENAMETOOLONG;
}

static uint64_t parent_ino(const char *path)
{
	char parent[PATH_MAX_LEN];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return FUSE_ROOT_ID;
	*slash = '\0';
	return wiv_tree_path_ino(parent);
}

/* ---- telling the kernel what to drop ---- */

static void notify_request_free(struct notify_request *r)
{
	free(r->prefix);
	free(r);
}

static void queue_notify(struct wiv_fuse *f, struct notify_request *r)
{
	if (!wiv_jobs_push(f->notify, r))
		notify_request_free(r);
}

/* Called by the tree, with the tree locked: only queue the request. */
static void forget_dropped_dir(void *arg, const char *day_path,
			       const char *type)
{
	struct wiv_fuse *f = arg;
	uint64_t parent = wiv_tree_path_ino(day_path);
	pthread_mutex_lock(&f->nodes_lock);
	bool known = node_find(f, parent) != NULL;
	pthread_mutex_unlock(&f->nodes_lock);
	struct notify_request *r = known ? calloc(1, sizeof(*r)) : NULL;
	if (!r)
		return;
	r->kind = FORGET_ENTRY;
	r->parent = parent;
	snprintf(r->name, sizeof(r->name), "%s", type);
	queue_notify(f, r);
}

/* Queues a request of kind about the prefix of org (NULL: the root). */
static void queue_org_request(struct wiv_fuse *f, int kind, const char *org)
{
	struct notify_request *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->kind = kind;
	if (asprintf(&r->prefix, "/%s%s", org && f->cfg.jsonl ? "org=" : "",
		     org ? org : "") < 0) {
		free(r);
		return;
	}
	queue_notify(f, r);
}

/* Called by the tree, with the tree locked: only queue the request. */
static void drop_changed_listings(void *arg, const char *org)
{
	queue_org_request(arg, DROP_LISTINGS, org);
}

/* Called by the tree, with the tree locked. The kernel trusts an event
 * file's name for EVENT_TIMEOUT_S and its dentry outlives the dropped
 * directory's while an fd holds it: forget each name, so that the next
 * open looks it up and gets the new version's inode (or ENOENT). An fd
 * open on the old inode keeps it. */
static void forget_replaced_files(void *arg, const char *org)
{
	struct wiv_fuse *f = arg;
	if (!f->cfg.jsonl) /* its files are dropped with their listings */
		queue_org_request(f, FORGET_FILES, org);
}

/* Ids of the directories the kernel knows at or below prefix ("/": only
 * the root, whose children are the orgs), and in the JSON Lines view the
 * files too: a day's file grows when an object lands within its window.
 * Returns a malloc'd array. */
static uint64_t *dirs_below(struct wiv_fuse *f, const char *prefix, size_t *n)
{
	size_t len = strlen(prefix);
	*n = 0;
	if (strcmp(prefix, "/") == 0) {
		uint64_t *root = malloc(sizeof(*root));
		if (root) {
			root[0] = FUSE_ROOT_ID;
			*n = 1;
		}
		return root;
	}
	pthread_mutex_lock(&f->nodes_lock);
	uint64_t *ids = malloc((f->nnodes + 1) * sizeof(*ids));
	for (size_t i = 0; ids && i < f->nbuckets; i++)
		for (struct node *nd = f->buckets[i]; nd; nd = nd->next)
			if ((nd->is_dir || f->cfg.jsonl) &&
			    strncmp(nd->path, prefix, len) == 0 &&
			    (nd->path[len] == '\0' || nd->path[len] == '/'))
				ids[(*n)++] = nd->ino;
	pthread_mutex_unlock(&f->nodes_lock);
	return ids;
}

/* Paths of the event files the kernel knows below prefix. Returns a
 * malloc'd array of malloc'd strings. */
static char **files_below(struct wiv_fuse *f, const char *prefix, size_t *n)
{
	size_t len = strlen(prefix);
	*n = 0;
	pthread_mutex_lock(&f->nodes_lock);
	char **paths = malloc((f->nnodes + 1) * sizeof(*paths));
	for (size_t i = 0; paths && i < f->nbuckets; i++)
		for (struct node *nd = f->buckets[i]; nd; nd = nd->next)
			if (nd->event.file.object &&
			    strncmp(nd->path, prefix, len) == 0 &&
			    nd->path[len] == '/' &&
			    (paths[*n] = strdup(nd->path)) != NULL)
				(*n)++;
	pthread_mutex_unlock(&f->nodes_lock);
	return paths;
}

static void forget_files(struct wiv_fuse *f, const char *prefix)
{
	size_t n;
	char **paths = files_below(f, prefix, &n);
	for (size_t i = 0; paths && i < n; i++) {
		const char *name = strrchr(paths[i], '/') + 1;
		fuse_lowlevel_notify_inval_entry(f->se, parent_ino(paths[i]),
						 name, strlen(name));
		free(paths[i]);
	}
	free(paths);
}

/* Run by the notify thread. */
static void run_notify(void *arg, void *item)
{
	struct wiv_fuse *f = arg;
	struct notify_request *r = item;
	if (r->kind == FORGET_ENTRY) {
		fuse_lowlevel_notify_inval_entry(f->se, r->parent, r->name,
						 strlen(r->name));
	} else if (r->kind == FORGET_FILES) {
		forget_files(f, r->prefix);
	} else {
		size_t n;
		uint64_t *ids = dirs_below(f, r->prefix, &n);
		/* Offset 0, length 0: attributes and the whole kept listing. */
		for (size_t i = 0; ids && i < n; i++)
			fuse_lowlevel_notify_inval_inode(f->se, ids[i], 0, 0);
		free(ids);
	}
	notify_request_free(r);
}

static void drop_notify(void *arg, void *item)
{
	notify_request_free(item);
}

/* ---- replies ---- */

static void fill_stat(const struct wiv_fuse *f, const struct wiv_node_attr *a,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->is_dir ? (S_IFDIR | f->cfg.dir_mode)
				 : (S_IFREG | f->cfg.file_mode);
	st->st_nlink = a->nlink;
	st->st_uid = f->cfg.uid;
	st->st_gid = f->cfg.gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec =
		(time_t)a->mtime_s;
}

static double timeout_of(const struct wiv_fuse *f, const struct wiv_node_attr *a)
{
	return a->is_dir || f->cfg.jsonl ? f->cfg.list_ttl_s : EVENT_TIMEOUT_S;
}

/* ---- the layout's view of the tree ---- */

static int view_stat(struct wiv_fuse *f, const char *path,
		     struct wiv_node_attr *a)
{
	return f->cfg.jsonl ? wiv_jsonl_stat(f->cfg.tree, path, a)
			    : wiv_tree_stat(f->cfg.tree, path, a);
}

static int view_readdir(struct wiv_fuse *f, const char *path, off_t start,
			wiv_dirent_fn fn, void *arg)
{
	return f->cfg.jsonl
		       ? wiv_jsonl_readdir(f->cfg.tree, path, start, fn, arg)
		       : wiv_tree_readdir(f->cfg.tree, path, start, fn, arg);
}

/* An event file reads the version its inode is (node_file); an
 * events.jsonl reads its day as it is now. */
static int view_read(struct wiv_fuse *f, uint64_t ino, char *buf, size_t size,
		     off_t off, size_t *n)
{
	struct wiv_node_attr a;
	int err = node_file(f, ino, &a);
	if (!err)
		return wiv_tree_read_file(f->cfg.tree, &a.file, buf, size,
					  off, n);
	if (err != ENOENT)
		return err;
	char path[PATH_MAX_LEN];
	err = node_path(f, ino, path);
	if (!err)
		err = f->cfg.jsonl ? wiv_jsonl_read(f->cfg.tree, path, buf,
						    size, off, n)
				   : EISDIR;
	return err;
}

static int view_xattr(struct wiv_fuse *f, const char *path, const char *name,
		      char *buf, size_t size, size_t *len)
{
	return f->cfg.jsonl
		       ? wiv_jsonl_xattr(f->cfg.tree, path, name, buf, size,
					 len)
		       : wiv_tree_xattr(f->cfg.tree, path, name, buf, size,
					len);
}

static void fill_entry(const struct wiv_fuse *f, const struct wiv_node_attr *a,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	fill_stat(f, a, &e->attr);
	e->attr_timeout = e->entry_timeout = timeout_of(f, a);
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct wiv_fuse *f = userdata;
	/* Plus always: grep and rsync stat every file they list, and one
	 * readdirplus answers what would be a lookup per file. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Open/release are two round trips per file for nothing: a kernel
	 * that can stops sending them after one ENOSYS (and keeps pages). */
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		f->no_open = true;
	}
	/* Likewise opendir; the kernel then keeps listings, which are
	 * dropped when the tree's listing changes (a day directory can gain
	 * events from an object delivered after midnight while its mtime
	 * stays the same, so the kernel's own mtime check is not enough). */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		f->no_opendir = true;
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct wiv_fuse *f = fuse_of(req);
	char path[PATH_MAX_LEN];
	struct wiv_node_attr a;
	struct fuse_entry_param e;
	int err = child_path(f, parent, name, path);
	if (!err)
		err = view_stat(f, path, &a);
	if (err == ENOENT) {
		/* A negative entry, cached for as long as a listing. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = f->cfg.list_ttl_s < 5 ? f->cfg.list_ttl_s : 5;
		fuse_reply_entry(req, &e);
		return;
	}
	if (!err)
		err = node_ref(f, &a, path);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fill_entry(f, &a, &e);
	fuse_reply_entry(req, &e);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	if (fuse_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* Listings may be kept: drop_changed_listings clears them. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(fuse_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(fuse_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct wiv_fuse *f = fuse_of(req);
	char path[PATH_MAX_LEN];
	struct wiv_node_attr a;
	int err = node_file(f, ino, &a);
	if (err == ENOENT) {
		err = node_path(f, ino, path);
		if (!err)
			err = view_stat(f, path, &a);
	}
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	struct stat st;
	fill_stat(f, &a, &st);
	fuse_reply_attr(req, &st, timeout_of(f, &a));
}

struct dir_fill {
	struct wiv_fuse *f;
	fuse_req_t req;
	const char *dir;
	char *buf;
	size_t size, used;
	bool plus;
	int err;
};

/* "." and ".." take offsets 1 and 2; the tree's children follow. */
#define FIRST_CHILD_OFFSET 2

/* ino 0 would hide the entry from readdir(3); the node id stays 0 so that
 * the kernel takes no reference. */
static bool add_dot(struct dir_fill *d, const char *name, uint64_t ino,
		    off_t next)
{
	struct fuse_entry_param e = {.attr = {.st_mode = S_IFDIR,
					      .st_ino = ino}};
	size_t room = d->size - d->used;
	size_t need = d->plus ? fuse_add_direntry_plus(d->req, d->buf + d->used,
						       room, name, &e, next)
			      : fuse_add_direntry(d->req, d->buf + d->used,
						  room, name, &e.attr, next);
	if (need > room)
		return false;
	d->used += need;
	return true;
}

static int add_child(void *arg, const char *name,
		     const struct wiv_node_attr *a, off_t next)
{
	struct dir_fill *d = arg;
	size_t room = d->size - d->used;
	off_t off = next + FIRST_CHILD_OFFSET;
	struct fuse_entry_param e;
	fill_entry(d->f, a, &e);
	if (!d->plus || a->name_only) {
		/* Name only: node id 0, so the kernel looks the name up. */
		struct fuse_entry_param bare = {.attr = e.attr};
		size_t need =
			d->plus ? fuse_add_direntry_plus(d->req, d->buf + d->used,
							 room, name, &bare, off)
				: fuse_add_direntry(d->req, d->buf + d->used,
						    room, name, &e.attr, off);
		if (need > room)
			return 1;
		d->used += need;
		return 0;
	}
	/* Measure first: an entry that does not fit must not be counted as
	 * a lookup the kernel never saw. */
	if (fuse_add_direntry_plus(d->req, NULL, 0, name, &e, off) > room)
		return 1;
	char path[PATH_MAX_LEN];
	if (snprintf(path, sizeof(path), "%s/%s",
		     strcmp(d->dir, "/") == 0 ? "" : d->dir,
		     name) >= (int)sizeof(path) ||
	    node_ref(d->f, a, path) != 0) {
		d->err = ENOMEM;
		return 1;
	}
	d->used += fuse_add_direntry_plus(d->req, d->buf + d->used, room, name,
					  &e, off);
	return 0;
}

static int store_text(void *arg, uint64_t ino, const char *text, size_t len)
{
	struct wiv_fuse *f = arg;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(len);
	buf.buf[0].mem = (void *)text;
	int rc = fuse_lowlevel_notify_store(f->se, ino, 0, &buf, 0);
	/* ENOENT: the kernel let go of that file already; anything else
	 * (a kernel without notify_store) will not get better. */
	return rc != 0 && rc != -ENOENT;
}

/* Called when the kernel asks past the last entry of the day/type directory
 * at path: it has taken every entry from the replies before, so each file
 * has an inode its text can be stored under. That is worth it only for a
 * walker that goes on to read the files: READs reaching us since the last
 * directory was listed say so, and the first file of each directory is
 * left out so that such a walker keeps saying so. A walk that only lists
 * (find, ls -R) pushes nothing after its first directory. */
static void push_texts(struct wiv_fuse *f, const char *path)
{
	uint64_t reads = atomic_load(&f->event_reads);
	if (atomic_exchange(&f->event_reads_at_listed, reads) == reads)
		return;
	if (atomic_fetch_add(&f->pushes, 1) < PUSH_MAX_CONCURRENT)
		wiv_tree_event_texts(f->cfg.tree, path, 1, PUSH_MAX_BYTES,
				     store_text, f);
	atomic_fetch_sub(&f->pushes, 1);
}

static bool is_type_dir(const char *path)
{
	int slashes = 0;
	for (const char *p = path; *p; p++)
		slashes += *p == '/';
	return slashes == 5; /* /org/yyyy/mm/dd/type */
}

static void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     bool plus)
{
	struct wiv_fuse *f = fuse_of(req);
	char path[PATH_MAX_LEN];
	int err = node_path(f, ino, path);
	char *buf = err ? NULL : malloc(size);
	if (!err && !buf)
		err = ENOMEM;
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	struct dir_fill d = {.f = f, .req = req, .dir = path, .buf = buf,
			     .size = size, .plus = plus};
	bool room = true;
	if (off < 1)
		room = add_dot(&d, ".", ino, 1);
	if (room && off < 2)
		room = add_dot(&d, "..", parent_ino(path), 2);
	if (room) {
		off_t start = off > FIRST_CHILD_OFFSET ? off - FIRST_CHILD_OFFSET
						       : 0;
		err = view_readdir(f, path, start, add_child, &d);
	}
	if (!err && d.err && d.used == 0)
		err = d.err;
	if (!err && plus && d.used == 0 && off > FIRST_CHILD_OFFSET &&
	    is_type_dir(path))
		push_texts(f, path);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, d.used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, true);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fuse_of(req)->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct wiv_fuse *f = fuse_of(req);
	char *buf = malloc(size ? size : 1);
	size_t n = 0;
	int err = buf ? view_read(f, ino, buf, size, off, &n) : ENOMEM;
	atomic_fetch_add(&f->event_reads, 1);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct wiv_fuse *f = fuse_of(req);
	char path[PATH_MAX_LEN];
	char *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	int err = node_path(f, ino, path);
	if (!err && size && !buf)
		err = ENOMEM;
	if (!err)
		err = view_xattr(f, path, name, buf, size, &len);
	if (err)
		fuse_reply_err(req, err);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	reply_xattr(req, ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, NULL, size);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_namemax = 255;
	st.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &st);
}

/* ---- changes: refused whatever the mount's flags say ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops operations = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.open = op_open,
	.read = op_read,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

/* ---- life cycle ---- */

struct wiv_fuse *wiv_fuse_new(const struct wiv_fs *cfg, struct fuse_args *args)
{
	struct wiv_fuse *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->cfg = *cfg;
	f->nbuckets = 1024;
	f->buckets = calloc(f->nbuckets, sizeof(*f->buckets));
	pthread_mutex_init(&f->nodes_lock, NULL);
	f->notify = wiv_jobs_new(1, 0, run_notify, drop_notify, f);
	if (f->buckets && f->notify)
		f->se = fuse_session_new(args, &operations, sizeof(operations),
					 f);
	if (!f->se) {
		wiv_fuse_free(f);
		return NULL;
	}
	struct wiv_tree_observer observer = {
		.dir_dropped = forget_dropped_dir,
		.listing_changed = drop_changed_listings,
		.files_replaced = forget_replaced_files,
		.arg = f,
	};
	wiv_tree_set_observer(cfg->tree, &observer);
	return f;
}

struct fuse_session *wiv_fuse_session(struct wiv_fuse *f)
{
	return f->se;
}

int wiv_fuse_loop(struct wiv_fuse *f)
{
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(loop, LOOP_MAX_THREADS);
	int rc = fuse_session_loop_mt(f->se, loop);
	fuse_loop_cfg_destroy(loop);
	return rc;
}

void wiv_fuse_free(struct wiv_fuse *f)
{
	if (!f)
		return;
	if (f->cfg.tree)
		wiv_tree_set_observer(f->cfg.tree, NULL);
	/* Before the session: the notify thread uses it. */
	wiv_jobs_free(f->notify);
	if (f->se)
		fuse_session_destroy(f->se);
	for (size_t i = 0; f->buckets && i < f->nbuckets; i++)
		for (struct node *n = f->buckets[i], *next; n; n = next) {
			next = n->next;
			free(n->path);
			free(n);
		}
	free(f->buckets);
	pthread_mutex_destroy(&f->nodes_lock);
	free(f);
}
