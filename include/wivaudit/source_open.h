/* Opening the source a command line names, as mount.wivaudit does. */
#ifndef WIVAUDIT_SOURCE_OPEN_H
#define WIVAUDIT_SOURCE_OPEN_H

#include <stddef.h>

#include "wivaudit/opts.h"
#include "wivaudit/source.h"

/* Opens o->source (s3://bucket[/prefix], a directory, a bare bucket name,
 * or NULL: the bucket of the configuration file) with o's endpoint,
 * region, credentials and fault options; o->region is filled from the
 * configuration file if unset. Returns the source with its key prefix in
 * *prefix and, unless bucket is NULL, the bucket name in *bucket (NULL for
 * a directory; caller frees them), or NULL with a one-line message in
 * err. */
struct wiv_source *wiv_source_open(struct wiv_options *o, char **prefix,
				   char **bucket, char *err, size_t errlen);

#endif
