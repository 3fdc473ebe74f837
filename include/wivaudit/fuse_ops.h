/* The FUSE operations: the only place that turns errno into -errno. */
#ifndef WIVAUDIT_FUSE_OPS_H
#define WIVAUDIT_FUSE_OPS_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse.h>

#include "wivaudit/tree.h"

/* Handed to fuse_new as private data. */
struct wiv_fs {
	struct wiv_tree *tree;
	uid_t uid;
	gid_t gid;
	double list_ttl_s;
	bool no_open; /* the kernel may skip open/release: see op_open */
};

/* The operation table (static storage). */
const struct fuse_operations *wiv_fuse_operations(void);

#endif
