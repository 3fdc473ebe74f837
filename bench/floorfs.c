/* The FUSE floor: a trivial read-only low-level FUSE filesystem that loads
 * a directory tree into RAM before it mounts and serves it from there with
 * every cheap trick on: readdirplus, no open/opendir round trips where the
 * kernel allows them (then it also keeps pages and caches listings), day-long
 * entry and attribute timeouts, replies straight out of memory, a
 * multithreaded loop. No FUSE filesystem can serve the same files much
 * faster, so a mount's time over this one's is its own overhead.
 *
 *	floorfs SOURCE_DIR MOUNTPOINT [-f] [-o fuse_options]
 *
 * Only directories and regular files are loaded (others are skipped); node
 * ids are indexes into one array that never changes after loading, so
 * forgets need no bookkeeping. Not installed: bench/run.sh uses it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

/* Nothing here ever changes while mounted. */
#define TIMEOUT_S 86400.0

struct node {
	char *name;
	struct stat st;
	char *data;	  /* file contents */
	size_t *children; /* directory: node indexes sorted by name */
	size_t nchildren;
	size_t parent;
};

static struct node *nodes;
static size_t nnodes, cap_nodes;
static size_t total_bytes;

/* Node id = index + 1: the root (index 0) is FUSE_ROOT_ID. */
static struct node *node_of(fuse_ino_t ino)
{
	return ino >= 1 && ino <= nnodes ? &nodes[ino - 1] : NULL;
}

static size_t new_node(const char *name, const struct stat *st, size_t parent)
{
	if (nnodes == cap_nodes) {
		cap_nodes = cap_nodes ? cap_nodes * 2 : 1024;
		nodes = realloc(nodes, cap_nodes * sizeof(*nodes));
		if (!nodes) {
			perror("floorfs");
			exit(1);
		}
	}
	struct node *n = &nodes[nnodes];
	memset(n, 0, sizeof(*n));
	n->name = strdup(name);
	n->st = *st;
	n->st.st_ino = nnodes + 1;
	n->parent = parent;
	return nnodes++;
}

static int read_file(int dirfd, const char *name, struct node *n)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t size = (size_t)n->st.st_size, got = 0;
	n->data = malloc(size ? size : 1);
	while (n->data && got < size) {
		ssize_t r = read(fd, n->data + got, size - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!n->data || got != size)
		return -1;
	total_bytes += size;
	return 0;
}

static int compare_children(const void *a, const void *b)
{
	return strcmp(nodes[*(const size_t *)a].name,
		      nodes[*(const size_t *)b].name);
}

/* Loads the directory open at dirfd into node index self. */
static int load_dir(int dirfd, size_t self)
{
	DIR *dir = fdopendir(dirfd);
	if (!dir) {
		close(dirfd);
		return -1;
	}
	size_t cap = 0, n = 0, *kids = NULL;
	struct dirent *de;
	int err = 0;
	while (!err && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
			continue;
		size_t child = new_node(de->d_name, &st, self);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			kids = realloc(kids, cap * sizeof(*kids));
			if (!kids)
				return -1;
		}
		kids[n++] = child;
		if (S_ISDIR(st.st_mode)) {
			int fd = openat(dirfd, de->d_name,
					O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			err = fd < 0 ? -1 : load_dir(fd, child);
		} else {
			err = read_file(dirfd, de->d_name, &nodes[child]);
		}
		if (err)
			fprintf(stderr, "floorfs: cannot load %s\n",
				de->d_name);
	}
	closedir(dir);
	qsort(kids, n, sizeof(*kids), compare_children);
	nodes[self].children = kids;
	nodes[self].nchildren = n;
	return err;
}

static void fill_entry(const struct node *n, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->st.st_ino;
	e->attr = n->st;
	e->attr_timeout = e->entry_timeout = TIMEOUT_S;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/* The kernel's default read-ahead is plenty for small files. */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = node_of(parent);
	if (!p || !S_ISDIR(p->st.st_mode)) {
		fuse_reply_err(req, p ? ENOTDIR : ENOENT);
		return;
	}
	size_t lo = 0, hi = p->nchildren;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, nodes[p->children[mid]].name);
		if (c == 0) {
			struct fuse_entry_param e;
			fill_entry(&nodes[p->children[mid]], &e);
			fuse_reply_entry(req, &e);
			return;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* A negative entry, cached as long as the rest. */
	struct fuse_entry_param e = {.entry_timeout = TIMEOUT_S};
	fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &n->st, TIMEOUT_S);
}

/* The kernel caches the listing (and the pages) it gets after an ENOSYS
 * here; a kernel that does not know no_opendir gets the same by flags. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

/* Offsets: 1 ".", 2 "..", then child i at i + 3. */
static void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     int plus)
{
	struct node *d = node_of(ino);
	if (!d || !S_ISDIR(d->st.st_mode)) {
		fuse_reply_err(req, d ? ENOTDIR : ENOENT);
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (size_t i = (size_t)off; i < d->nchildren + 2; i++) {
		const struct node *n = i == 0	? d
				       : i == 1 ? &nodes[d->parent]
						: &nodes[d->children[i - 2]];
		const char *name = i == 0 ? "." : i == 1 ? ".." : n->name;
		struct fuse_entry_param e;
		fill_entry(n, &e);
		size_t room = size - used;
		size_t need =
		    plus ? fuse_add_direntry_plus(req, buf + used, room, name,
						  &e, (off_t)i + 1)
			 : fuse_add_direntry(req, buf + used, room, name,
					     &e.attr, (off_t)i + 1);
		if (need > room)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	read_dir(req, ino, size, off, 1);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct node *n = node_of(ino);
	if (!n || !S_ISREG(n->st.st_mode)) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	size_t len = (size_t)n->st.st_size;
	size_t from = off < 0 || (size_t)off > len ? len : (size_t)off;
	size_t count = len - from < size ? len - from : size;
	fuse_reply_buf(req, n->data + from, count);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st = {.f_bsize = 4096,
			     .f_frsize = 4096,
			     .f_files = nnodes,
			     .f_namemax = 255};
	fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops operations = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .open = op_open,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .read = op_read,
    .statfs = op_statfs,
};

int main(int argc, char **argv)
{
	if (argc < 3 || argv[1][0] == '-') {
		fprintf(stderr,
			"usage: %s SOURCE_DIR MOUNTPOINT [-f] "
			"[-o fuse_options]\n",
			argv[0]);
		return 2;
	}
	const char *source = argv[1];
	struct stat st;
	int fd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(source);
		return 1;
	}
	new_node("", &st, 0);
	if (load_dir(fd, 0) != 0)
		return 1;
	fprintf(stderr, "floorfs: %zu nodes, %zu bytes of files in memory\n",
		nnodes, total_bytes);

	/* argv without SOURCE_DIR, then our mount options. */
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	for (int i = 0; i < argc; i++)
		if (i != 1 && fuse_opt_add_arg(&args, argv[i]) != 0)
			return 1;
	fuse_opt_add_arg(&args, "-oro,fsname=floorfs,subtype=floorfs");
	struct fuse_cmdline_opts opts;
	if (fuse_parse_cmdline(&args, &opts) != 0 || !opts.mountpoint) {
		fprintf(stderr, "floorfs: no mount point\n");
		return 2;
	}
	int rc = 1;
	struct fuse_session *se =
	    fuse_session_new(&args, &operations, sizeof(operations), NULL);
	if (se && fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, opts.mountpoint) == 0) {
			if (fuse_daemonize(opts.foreground) == 0) {
				struct fuse_loop_config *loop =
				    fuse_loop_cfg_create();
				fuse_loop_cfg_set_clone_fd(loop, 1);
				fuse_loop_cfg_set_max_threads(loop, 16);
				rc = fuse_session_loop_mt(se, loop) ? 1 : 0;
				fuse_loop_cfg_destroy(loop);
			}
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	if (se)
		fuse_session_destroy(se);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return rc;
}
