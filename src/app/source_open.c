/* Opening the source a command line names: the S3 client or the local
 * mirror, from the resolved SOURCE and the -o options. */
#include <stdlib.h>
#include <string.h>

#include "wivaudit/cachedir.h"
#include "wivaudit/source_open.h"
#include "wivaudit/source_spec.h"

struct wiv_source *wiv_source_open(struct wiv_options *o, char **prefix,
				   char **bucket, char *err, size_t errlen)
{
	struct wiv_source_spec spec;
	struct wiv_source *src = NULL;

	if (wiv_source_spec_resolve(o->source, o->prefix, &spec, err,
				    errlen) != 0)
		return NULL;
	if (!o->region && spec.region)
		o->region = strdup(spec.region);
	if (spec.dir) {
		src = wiv_source_dir_new(spec.dir, err, errlen);
	} else {
		struct wiv_s3_config s3 = {
			.bucket = spec.bucket,
			.endpoint = o->endpoint,
			.region = o->region,
			.profile = o->profile,
			.cafile = o->cafile,
			.path_style = o->path_style,
			.parallel = o->parallel,
			.retries = o->retries,
			.timeout_s = o->timeout,
		};
		src = wiv_source_s3_new(&s3, err, errlen);
	}
	if (src) {
		*prefix = spec.prefix;
		spec.prefix = NULL;
		if (bucket) {
			*bucket = spec.bucket;
			spec.bucket = NULL;
		}
	}
	wiv_source_spec_free(&spec);
	return src;
}

struct wiv_cache *wiv_source_open_cache(const struct wiv_options *o,
					char *err, size_t errlen)
{
	return wiv_cache_open(o->cache_dir,
			      o->cache_dir_default ? WIV_CACHEDIR_PARENTS : 0,
			      o->cache_size, err, errlen);
}

struct wiv_tree_config wiv_source_tree_config(const struct wiv_options *o,
					      struct wiv_source *src,
					      struct wiv_cache *cache,
					      const char *prefix,
					      const char *bucket)
{
	return (struct wiv_tree_config){
		.source = src,
		.cache = cache,
		.prefix = prefix,
		.bucket = bucket,
		.layout = o->layout,
		.window_s = o->window,
		.list_ttl_s = o->list_ttl,
		.parallel = o->parallel,
		.readahead_days = o->readahead,
		.offline = o->offline,
		.max_object_events = (size_t)o->max_object_events,
		.max_object_bytes = o->max_object_bytes,
	};
}
