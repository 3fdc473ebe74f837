/* What a SOURCE argument names: s3://bucket[/prefix], a bare bucket name, a
 * local directory mirroring a bucket, or (no argument) the bucket of the
 * configuration file. Resolved without touching S3. */
#ifndef WIVAUDIT_SOURCE_SPEC_H
#define WIVAUDIT_SOURCE_SPEC_H

#include <stddef.h>

struct wiv_source_spec {
	char *bucket;	   /* NULL for a directory */
	char *dir;	   /* the local mirror, or NULL */
	char *prefix;	   /* "" or "p/": no leading, one trailing slash */
	char *region;	   /* from the configuration file, or NULL */
	char *config_path; /* the configuration file read, or NULL */
};

/* Resolves source (NULL: the configuration file) and the -o prefix= value
 * (NULL if not given) into spec. Returns 0, or EINVAL / ENOENT / ENOMEM
 * with a one-line message in err. */
int wiv_source_spec_resolve(const char *source, const char *opt_prefix,
			    struct wiv_source_spec *spec, char *err,
			    size_t errlen);

/* Frees the strings in spec and zeroes it. */
void wiv_source_spec_free(struct wiv_source_spec *spec);

#endif
