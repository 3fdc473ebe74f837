/* A source is where the audit objects come from: an S3 bucket or a local
 * directory that mirrors one. Everything above this interface is the same for
 * both. Functions return 0 or a positive errno:
 *   ENOENT  no such key / bucket
 *   EACCES  access denied (403) for the credentials or the bucket
 *   EPERM   a GET of one key was denied (403 AccessDenied): may be that key
 *           alone, or every key when the policy lacks s3:GetObject
 *   ENOMEDIUM  the object is archived (403 InvalidObjectState): restore it
 *   ESTALE  the object no longer has the ETag asked for (412)
 *   ETIMEDOUT, EIO  final failure after retries
 *   ECANCELED  a callback asked to stop
 * Implementations log one clear line naming the key for every final failure. */
#ifndef WIVAUDIT_SOURCE_H
#define WIVAUDIT_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct wiv_object_info {
	const char *key;  /* full key, as stored */
	const char *etag; /* as S3 returns it, quotes stripped */
	uint64_t size;
	/* "STANDARD", "GLACIER", ... as listed; "" when the listing named
	 * none (S3 then means STANDARD). */
	const char *storage_class;
};

/* Whether objects of this storage class cannot be read before a restore:
 * GLACIER and DEEP_ARCHIVE (GLACIER_IR and the others read at once). */
static inline bool wiv_storage_class_archived(const char *storage_class)
{
	return storage_class && (strcmp(storage_class, "GLACIER") == 0 ||
				 strcmp(storage_class, "DEEP_ARCHIVE") == 0);
}

/* Listing callbacks; return 0 to go on, non-zero to stop (list then
 * returns ECANCELED). Pointers are borrowed for the duration of the call. */
typedef int (*wiv_list_object_fn)(void *arg, const struct wiv_object_info *obj);
typedef int (*wiv_list_prefix_fn)(void *arg, const char *common_prefix);

/* Body callback: a chunk of the object body, in order, each byte exactly
 * once. Return 0 to go on, non-zero to abort (get then returns ECANCELED). */
typedef int (*wiv_body_fn)(void *arg, const void *data, size_t len);

struct wiv_source;

struct wiv_source_ops {
	/* Lists every key that starts with prefix (all pages, in key order).
	 * With delimiter non-NULL, keys rolled up under a common prefix are
	 * reported through on_prefix instead of on_object. start_after may be
	 * NULL; when set, only keys after it (in byte order) are listed. */
	int (*list)(struct wiv_source *src, const char *prefix,
		    const char *delimiter, const char *start_after,
		    wiv_list_object_fn on_object, wiv_list_prefix_fn on_prefix,
		    void *arg);
	/* Streams the body of key to on_data. With etag non-NULL the body must
	 * have that ETag, else ESTALE. A transient failure mid-body is resumed
	 * (Range + If-Match) so that on_data still sees one continuous body. */
	int (*get)(struct wiv_source *src, const char *key, const char *etag,
		   wiv_body_fn on_data, void *arg);
	void (*destroy)(struct wiv_source *src);
};

struct wiv_source {
	const struct wiv_source_ops *ops;
	/* Stable identity for cache keys, e.g. "s3|http://127.0.0.1:9000|bucket"
	 * or "dir|/abs/path". Owned by the source. */
	const char *identity;
};

static inline int wiv_source_list(struct wiv_source *src, const char *prefix,
				  const char *delimiter, const char *start_after,
				  wiv_list_object_fn on_object,
				  wiv_list_prefix_fn on_prefix, void *arg)
{
	return src->ops->list(src, prefix, delimiter, start_after, on_object,
			      on_prefix, arg);
}

static inline int wiv_source_get(struct wiv_source *src, const char *key,
				 const char *etag, wiv_body_fn on_data, void *arg)
{
	return src->ops->get(src, key, etag, on_data, arg);
}

/* Frees the source; NULL is a no-op. */
static inline void wiv_source_free(struct wiv_source *src)
{
	if (src)
		src->ops->destroy(src);
}

/* Local directory mirroring a bucket (an `aws s3 sync` copy): keys are the
 * relative paths below root. The ETag is derived from size, mtime and inode.
 * Returns a new source, or NULL with a message in err. */
struct wiv_source *wiv_source_dir_new(const char *root, char *err, size_t errlen);

struct wiv_s3_config {
	const char *bucket;
	const char *endpoint;  /* NULL: AWS (https://s3.REGION.amazonaws.com) */
	const char *region;    /* NULL: from env/config, else us-east-1 */
	const char *profile;   /* NULL: AWS_PROFILE, else "default" */
	const char *cafile;    /* NULL: system bundle */
	int path_style;        /* force path-style; implied for IPs/localhost */
	unsigned parallel;     /* connections kept for reuse */
	unsigned retries;      /* retries after the first attempt */
	unsigned timeout_s;    /* per-request stall timeout */
};

/* S3 (or compatible) bucket. Credentials come from the AWS chain. Returns a
 * new source, or NULL with a one-line message in err. Does not contact S3. */
struct wiv_source *wiv_source_s3_new(const struct wiv_s3_config *cfg, char *err,
				     size_t errlen);

/* What an S3 source found out, for diagnostics. No secret is in it. */
struct wiv_s3_status {
	char region[64];        /* the region requests are signed for now */
	int region_followed;    /* S3 named another region, which is used */
	char creds_source[256]; /* where the credentials came from */
	char key_id_hint[32];   /* access key id, all but its last 4 masked */
};

/* Fills st for an S3 source. Returns 0, EINVAL if src is not an S3 source,
 * or the errno of fetching the current credentials. */
int wiv_source_s3_status(struct wiv_source *src, struct wiv_s3_status *st);

#endif
