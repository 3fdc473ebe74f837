/* Opening what a command line names, as mount.wivaudit does: the source,
 * the cache and the tree's configuration. */
#ifndef WIVAUDIT_SOURCE_OPEN_H
#define WIVAUDIT_SOURCE_OPEN_H

#include <stddef.h>

#include "wivaudit/cache.h"
#include "wivaudit/opts.h"
#include "wivaudit/source.h"
#include "wivaudit/tree.h"

/* Opens o->source (s3://bucket[/prefix], a directory, a bare bucket name,
 * or NULL: the bucket of the configuration file) with o's endpoint,
 * region, credentials and fault options; o->region is filled from the
 * configuration file if unset. Returns the source with its key prefix in
 * *prefix and, unless bucket is NULL, the bucket name in *bucket (NULL for
 * a directory; caller frees them), or NULL with a one-line message in
 * err. */
struct wiv_source *wiv_source_open(struct wiv_options *o, char **prefix,
				   char **bucket, char *err, size_t errlen);

/* Opens o->cache_dir bounded by o->cache_size; the default directory's
 * parents are created (a fresh ~/.cache), a directory given by hand must
 * exist up to its last component. Returns the cache, or NULL with a
 * one-line message in err. */
struct wiv_cache *wiv_source_open_cache(const struct wiv_options *o,
					char *err, size_t errlen);

/* The tree configuration o asks for over src and cache; every pointer in
 * it is borrowed. */
struct wiv_tree_config wiv_source_tree_config(const struct wiv_options *o,
					      struct wiv_source *src,
					      struct wiv_cache *cache,
					      const char *prefix,
					      const char *bucket);

#endif
