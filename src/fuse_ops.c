/* FUSE high-level operations over the tree. Everything is read-only: the
 * mount is made with -o ro, so the kernel answers EROFS to every write,
 * create, rename or chmod before it reaches us. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "wivaudit/fuse_ops.h"

static struct wiv_fs *fs(void)
{
	return fuse_get_context()->private_data;
}

static void fill_stat(const struct wiv_fs *f, const struct wiv_node_attr *a,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->is_dir ? (S_IFDIR | 0555) : (S_IFREG | 0444);
	st->st_nlink = a->nlink;
	st->st_uid = f->uid;
	st->st_gid = f->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec =
		(time_t)a->mtime_s;
}

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct wiv_fs *f = fs();
	/* Inode numbers come from the tree, so they survive remounts. */
	cfg->use_ino = 1;
	/* Event files never change once seen: keep their pages. */
	cfg->kernel_cache = 1;
	/* Directories may gain entries when a listing is refreshed, so the
	 * kernel may trust a name or attribute for one listing TTL. */
	cfg->entry_timeout = f->list_ttl_s;
	cfg->attr_timeout = f->list_ttl_s;
	cfg->negative_timeout = f->list_ttl_s < 5 ? f->list_ttl_s : 5;
	conn->want |= conn->capable & FUSE_CAP_READDIRPLUS;
	f->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	return f;
}

static int op_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct wiv_node_attr a;
	int err = wiv_tree_stat(fs()->tree, path, &a);
	if (err)
		return -err;
	fill_stat(fs(), &a, st);
	return 0;
}

struct fill_state {
	void *buf;
	fuse_fill_dir_t filler;
	const struct wiv_fs *fs;
};

/* "." and ".." take offsets 1 and 2; the tree's children follow. */
#define FIRST_CHILD_OFFSET 2

static int fill_one(void *arg, const char *name, const struct wiv_node_attr *a,
		    off_t next)
{
	struct fill_state *s = arg;
	struct stat st;
	fill_stat(s->fs, a, &st);
	return s->filler(s->buf, name, &st, next + FIRST_CHILD_OFFSET,
			 FUSE_FILL_DIR_PLUS);
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct fill_state s = {.buf = buf, .filler = filler, .fs = fs()};
	if (offset < 1 && filler(buf, ".", NULL, 1, 0))
		return 0;
	if (offset < 2 && filler(buf, "..", NULL, 2, 0))
		return 0;
	off_t start = offset > FIRST_CHILD_OFFSET ? offset - FIRST_CHILD_OFFSET : 0;
	return -wiv_tree_readdir(fs()->tree, path, start, fill_one, &s);
}

/* Open, read, release are three round trips per file for grep; a kernel
 * that supports it stops sending open (and release) after one ENOSYS, and
 * reads then come by path. Event pages stay cached either way. */
static int op_open(const char *path, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	if (fs()->no_open)
		return -ENOSYS;
	struct wiv_event_handle *h;
	int err = wiv_tree_open(fs()->tree, path, &h);
	if (err)
		return -err;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;
	return 0;
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct wiv_event_handle *h = (void *)(uintptr_t)fi->fh;
	size_t n;
	int err = h ? wiv_tree_read(fs()->tree, h, buf, size, off, &n)
		    : wiv_tree_read_path(fs()->tree, path, buf, size, off, &n);
	return err ? -err : (int)n;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
	wiv_event_handle_free((void *)(uintptr_t)fi->fh);
	return 0;
}

static int xattr_result(int err, size_t len)
{
	return err ? -err : (int)len;
}

static int op_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	size_t len = 0;
	int err = wiv_tree_xattr(fs()->tree, path, name, value, size, &len);
	return xattr_result(err, len);
}

static int op_listxattr(const char *path, char *list, size_t size)
{
	size_t len = 0;
	int err = wiv_tree_xattr(fs()->tree, path, NULL, list, size, &len);
	return xattr_result(err, len);
}

static int op_statfs(const char *path, struct statvfs *st)
{
	memset(st, 0, sizeof(*st));
	st->f_bsize = 4096;
	st->f_frsize = 4096;
	st->f_namemax = 255;
	st->f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	return 0;
}

static const struct fuse_operations operations = {
	.init = op_init,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.statfs = op_statfs,
};

const struct fuse_operations *wiv_fuse_operations(void)
{
	return &operations;
}
