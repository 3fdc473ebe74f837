/* Reading the bucket name from the configuration file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "wivaudit/config.h"

static int candidate_paths(char paths[3][4096])
{
	int n = 0;
	const char *env = getenv("WIVAUDIT_CONFIG");
	if (env && *env) {
		/* An explicit path is the only one tried: a typo must not
		 * silently fall back to another bucket. */
		snprintf(paths[n++], 4096, "%s", env);
		return n;
	}
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	if (xdg && *xdg)
		snprintf(paths[n++], 4096, "%s/wivaudit/config.json", xdg);
	else if (home && *home)
		snprintf(paths[n++], 4096, "%s/.config/wivaudit/config.json",
			 home);
	snprintf(paths[n++], 4096, "/etc/wivaudit/config.json");
	return n;
}

/* jansson quotes the text near a syntax error as it is in the file: keep a
 * newline or escape sequence there from breaking the one-line message. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static char *optional_string(json_t *root, const char *name)
{
	json_t *v = json_object_get(root, name);
	return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int wiv_config_load(struct wiv_config *cfg, char *err, size_t errlen)
{
	char paths[3][4096];
	int n = candidate_paths(paths);
	const char *path = NULL;
	for (int i = 0; i < n && !path; i++)
		if (access(paths[i], F_OK) == 0)
			path = paths[i];
	if (!path) {
		snprintf(err, errlen,
			 "no source given and no configuration file (%s%s%s)",
			 paths[0], n > 1 ? ", " : "", n > 1 ? paths[n - 1] : "");
		return ENOENT;
	}

	json_error_t jerr;
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		printable(err);
		return EINVAL;
	}
	json_t *bucket = json_object_get(root, "bucket_name");
	if (!json_is_string(bucket) || json_string_length(bucket) == 0) {
		snprintf(err, errlen, "%s: no \"bucket_name\" string", path);
		json_decref(root);
		return EINVAL;
	}
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = strdup(path);
	cfg->bucket_name = strdup(json_string_value(bucket));
	cfg->prefix = optional_string(root, "prefix");
	cfg->region = optional_string(root, "region");
	json_decref(root);
	return 0;
}

void wiv_config_free(struct wiv_config *cfg)
{
	free(cfg->path);
	free(cfg->bucket_name);
	free(cfg->prefix);
	free(cfg->region);
}
