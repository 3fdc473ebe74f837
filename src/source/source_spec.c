/* SOURCE arguments: s3://bucket[/prefix], a directory, a bucket name, or the
 * configuration file's bucket_name. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wivaudit/config.h"
#include "wivaudit/source_spec.h"

/* S3's rules for new buckets; a bare word must follow them to be taken for
 * a bucket rather than a mistyped directory. */
static bool is_bucket_name(const char *s)
{
	size_t len = strlen(s);
	if (len < 3 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

/* "", or the prefix with no leading and exactly one trailing slash. */
static char *normalize_prefix(const char *p)
{
	while (p && *p == '/')
		p++;
	if (!p || !*p)
		return strdup("");
	size_t len = strlen(p);
	while (len && p[len - 1] == '/')
		len--;
	char *out = malloc(len + 2);
	if (out) {
		memcpy(out, p, len);
		strcpy(out + len, "/");
	}
	return out;
}

int wiv_source_spec_resolve(const char *source, const char *opt_prefix,
			    struct wiv_source_spec *spec, char *err,
			    size_t errlen)
{
	struct wiv_config cfg = {0};
	const char *spec_prefix = NULL;
	struct stat st;
	int rc = 0;

	memset(spec, 0, sizeof(*spec));
	if (!source) {
		rc = wiv_config_load(&cfg, err, errlen);
		if (rc)
			return rc;
		spec->bucket = strdup(cfg.bucket_name);
		spec->config_path = strdup(cfg.path);
		if (cfg.region)
			spec->region = strdup(cfg.region);
		spec_prefix = cfg.prefix;
		if (!spec->bucket || !spec->config_path ||
		    (cfg.region && !spec->region))
			rc = ENOMEM;
	} else if (strncmp(source, "s3://", 5) == 0) {
		const char *b = source + 5;
		const char *slash = strchr(b, '/');
		spec->bucket =
		    slash ? strndup(b, (size_t)(slash - b)) : strdup(b);
		spec_prefix = slash ? slash + 1 : NULL;
		if (!spec->bucket)
			rc = ENOMEM;
	} else if (stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
		spec->dir = strdup(source);
		if (!spec->dir)
			rc = ENOMEM;
	} else if (is_bucket_name(source)) {
		spec->bucket = strdup(source);
		if (!spec->bucket)
			rc = ENOMEM;
	} else {
		snprintf(
		    err, errlen,
		    "source '%s' is neither s3://bucket[/prefix], a bucket "
		    "name, nor a directory",
		    source);
		rc = EINVAL;
	}

	if (!rc && spec_prefix && *spec_prefix && opt_prefix) {
		snprintf(err, errlen,
			 "the prefix is given twice (in the "
			 "source and as -o prefix=)");
		rc = EINVAL;
	}
	if (!rc && spec->bucket && !is_bucket_name(spec->bucket)) {
		snprintf(err, errlen, "'%s' is not a valid S3 bucket name",
			 spec->bucket);
		rc = EINVAL;
	}
	if (!rc) {
		spec->prefix =
		    normalize_prefix(opt_prefix ? opt_prefix : spec_prefix);
		if (!spec->prefix)
			rc = ENOMEM;
	}
	if (rc == ENOMEM)
		snprintf(err, errlen, "out of memory");
	wiv_config_free(&cfg);
	if (rc)
		wiv_source_spec_free(spec);
	return rc;
}

void wiv_source_spec_free(struct wiv_source_spec *spec)
{
	free(spec->bucket);
	free(spec->dir);
	free(spec->prefix);
	free(spec->region);
	free(spec->config_path);
	memset(spec, 0, sizeof(*spec));
}
