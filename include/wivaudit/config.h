/* The JSON configuration file whose bucket_name matches what was sent to
 * Wiv: WIVAUDIT_CONFIG, then ~/.config/wivaudit/config.json, then
 * /etc/wivaudit/config.json. */
#ifndef WIVAUDIT_CONFIG_H
#define WIVAUDIT_CONFIG_H

#include <stddef.h>

struct wiv_config {
	char *path;        /* the file that was read */
	char *bucket_name;
	char *prefix;      /* optional */
	char *region;      /* optional */
};

/* Finds and reads the configuration file. Returns 0, or ENOENT/EINVAL with
 * a one-line message in err naming the file and what is wrong. */
int wiv_config_load(struct wiv_config *cfg, char *err, size_t errlen);

/* Frees the strings in cfg. */
void wiv_config_free(struct wiv_config *cfg);

#endif
