/* The tree DESIGN.md describes, built lazily from listings and split
 * objects: /org/yyyy/mm/dd/type/event.json. Paths are absolute, as FUSE
 * gives them. Functions return 0 or a positive errno. */
#ifndef WIVAUDIT_TREE_H
#define WIVAUDIT_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wivaudit/cache.h"
#include "wivaudit/source.h"
#include "wivaudit/split.h"

/* Events of built directories kept in memory unless configured: about
 * 200 bytes each. */
#define WIV_TREE_DEFAULT_MAX_EVENTS 65536

struct wiv_tree_config {
	struct wiv_source *source; /* borrowed */
	struct wiv_cache *cache;   /* borrowed */
	const char *prefix;        /* key prefix, "" or ending in '/' */
	enum wiv_layout layout;
	int64_t window_s;
	unsigned list_ttl_s;
	unsigned parallel;         /* concurrent object downloads */
	unsigned readahead_days;   /* days a directory walk fetches ahead
				      (0: none) */
	const char *bucket;        /* for the restore command of an archived
				      object; NULL for a directory source */
	bool offline;              /* never contact the source */
	size_t max_events;         /* events of built directories kept (0:
				      WIV_TREE_DEFAULT_MAX_EVENTS) */
	size_t max_object_events;  /* ceilings on one object (0: none) */
	uint64_t max_object_bytes;
};

/* Told of changes the kernel's caches must follow. Called with the tree
 * locked, so they must not call back into the tree. */
struct wiv_tree_observer {
	/* The day_path/type directory was dropped from memory. */
	void (*dir_dropped)(void *arg, const char *day_path, const char *type);
	/* The listing of org changed (org NULL: the list of orgs), so the
	 * directories below it may now list other children. */
	void (*listing_changed)(void *arg, const char *org);
	/* Objects of org were deleted or replaced: a name of one of its event
	 * files may now be another file (another inode), or none. */
	void (*files_replaced)(void *arg, const char *org);
	void *arg;
};

/* Where an event file's text is: one version of one object, and the place
 * of the text in its cache entry. Valid for the life of the tree, whatever
 * the bucket does meanwhile. */
struct wiv_tree_file {
	const void *object;
	uint64_t offset;
	uint32_t length;
	uint32_t crc;
};

struct wiv_node_attr {
	bool is_dir;
	uint64_t ino;     /* stable: derived from the path (and, for an
			     event file, its object's ETag) */
	uint64_t size;    /* exact for event files */
	int64_t mtime_s;
	unsigned nlink;
	/* Only is_dir and ino are known (a listing that must not download):
	 * the caller asks for the rest with a stat of the child. */
	bool name_only;
	/* An event file of the tree's own layout: the version it shows
	 * (object NULL for anything else). */
	struct wiv_tree_file file;
};

struct wiv_tree;

/* Returns a new tree, or NULL if out of memory. */
struct wiv_tree *wiv_tree_new(const struct wiv_tree_config *cfg);

/* Frees the tree; NULL is a no-op. */
void wiv_tree_free(struct wiv_tree *t);

/* Sets (NULL: clears) who is told of changes. The observer is copied. */
void wiv_tree_set_observer(struct wiv_tree *t,
			   const struct wiv_tree_observer *obs);

/* The inode number of path: a hash of it, the same in every mount. */
uint64_t wiv_tree_path_ino(const char *path);

/* Lists the top of the bucket once, so that a wrong bucket, endpoint or
 * credentials fail before anything is mounted. */
int wiv_tree_probe(struct wiv_tree *t);

/* Attributes of the node at path: ENOENT if there is none. */
int wiv_tree_stat(struct wiv_tree *t, const char *path,
		  struct wiv_node_attr *out);

/* Called once per child, in a stable order; next is the offset that resumes
 * the listing after this child. Non-zero stops the walk. */
typedef int (*wiv_dirent_fn)(void *arg, const char *name,
			     const struct wiv_node_attr *attr, off_t next);

/* Lists the children of the directory at path from offset start (0: the
 * first child; ENOTDIR for a file). The order never changes for a given
 * listing, so offsets stay valid across calls (telldir/seekdir). */
int wiv_tree_readdir(struct wiv_tree *t, const char *path, off_t start,
		     wiv_dirent_fn fn, void *arg);

/* Reads up to size bytes at off of the event file that file names, as it
 * was when its attributes were taken; *nread is 0 at end of file. An fd
 * keeps reading the version it opened after the object is replaced or
 * deleted; EIO if its cache entry was evicted meanwhile and the bucket no
 * longer holds that version. */
int wiv_tree_read_file(struct wiv_tree *t, const struct wiv_tree_file *file,
		       char *buf, size_t size, off_t off, size_t *nread);

/* Called with the text of one event file of a directory; non-zero stops
 * the walk. */
typedef int (*wiv_event_text_fn)(void *arg, uint64_t ino, const char *text,
				 size_t len);

/* Hands the texts of the event files of the day/type directory at path to
 * fn, in listing order from the file at offset start, until max_bytes of
 * text would be passed. ENOTDIR if path is not a day/type directory. */
int wiv_tree_event_texts(struct wiv_tree *t, const char *path, size_t start,
			 size_t max_bytes, wiv_event_text_fn fn, void *arg);

/* Extended attributes of event files: user.wivaudit.key, .etag and
 * .event_type; of a day/type directory, user.wivaudit.missing when some
 * objects' events cannot be shown (one "KEY\tREASON\tDETAIL" line each). With name NULL, lists the names ("\0"-separated). Writes at
 * most size bytes to buf (size 0: only *len is set); ERANGE if too small,
 * ENODATA for an unknown name. */
int wiv_tree_xattr(struct wiv_tree *t, const char *path, const char *name,
		   char *buf, size_t size, size_t *len);

#endif
