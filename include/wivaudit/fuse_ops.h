/* The FUSE low-level session over the tree. */
#ifndef WIVAUDIT_FUSE_OPS_H
#define WIVAUDIT_FUSE_OPS_H

#include <stdbool.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "wivaudit/tree.h"

struct wiv_fs {
	struct wiv_tree *tree; /* borrowed */
	uid_t uid;
	gid_t gid;
	mode_t file_mode; /* permission bits of event files */
	mode_t dir_mode;
	double list_ttl_s;
	bool jsonl; /* the JSON Lines view (jsonl_view.h), not the tree */
};

struct wiv_fuse;

/* Creates the FUSE session (not yet mounted) with the mount options in
 * args. Returns NULL after libfuse printed why. */
struct wiv_fuse *wiv_fuse_new(const struct wiv_fs *cfg, struct fuse_args *args);

/* The session, for mounting and signal handlers. Borrowed. */
struct fuse_session *wiv_fuse_session(struct wiv_fuse *f);

/* Serves requests until unmounted or signalled. Returns 0 or -1. */
int wiv_fuse_loop(struct wiv_fuse *f);

/* Destroys the session (unmount it first); NULL is a no-op. */
void wiv_fuse_free(struct wiv_fuse *f);

#endif
