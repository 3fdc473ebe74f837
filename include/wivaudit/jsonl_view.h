/* The JSON Lines view of the tree (-o layout=jsonl): Hive-partitioned
 * directories with one file per day and type,
 *
 *     /org=ORG/date=YYYY-MM-DD/type=TYPE/events.jsonl
 *
 * holding, one compact line each, exactly the events of the tree's
 * /ORG/YYYY/MM/DD/TYPE directory in its order. Paths are absolute; the
 * functions mirror wiv_tree_stat, _readdir, _read_file and _xattr and
 * return 0 or a positive errno. */
#ifndef WIVAUDIT_JSONL_VIEW_H
#define WIVAUDIT_JSONL_VIEW_H

#include <stddef.h>
#include <sys/types.h>

#include "wivaudit/tree.h"

/* The file name inside each type=… directory. */
#define WIV_JSONL_FILE "events.jsonl"

/* Attributes of the node at path: ENOENT if there is none. The size of an
 * events.jsonl needs its day's objects; directories need listings only. */
int wiv_jsonl_stat(struct wiv_tree *t, const char *path,
		   struct wiv_node_attr *out);

/* Lists the children of the directory at path from offset start, as
 * wiv_tree_readdir does. The events.jsonl of a type=… directory is listed
 * by name only (attr->name_only), so listing never downloads an object. */
int wiv_jsonl_readdir(struct wiv_tree *t, const char *path, off_t start,
		      wiv_dirent_fn fn, void *arg);

/* Reads up to size bytes at off of the events.jsonl at path; *nread is 0
 * at end of file. Only the events that overlap the range are read. */
int wiv_jsonl_read(struct wiv_tree *t, const char *path, char *buf,
		   size_t size, off_t off, size_t *nread);

/* Extended attributes of a type=… directory and its events.jsonl: those of
 * the tree's day/type directory. Same contract as wiv_tree_xattr. */
int wiv_jsonl_xattr(struct wiv_tree *t, const char *path, const char *name,
		    char *buf, size_t size, size_t *len);

#endif
