/* Wiv's object keys: {prefix}{org_id}/{org|user|api}-audit-logs-{ms}.json.gz */
#ifndef WIVAUDIT_KEYS_H
#define WIVAUDIT_KEYS_H

#include <stddef.h>
#include <stdint.h>

enum wiv_log_type { WIV_TYPE_ORG, WIV_TYPE_USER, WIV_TYPE_API, WIV_TYPE_COUNT };

struct wiv_key {
	const char *org;  /* points into the key; not NUL-terminated */
	size_t org_len;
	enum wiv_log_type type;
	int64_t key_ms;   /* epoch milliseconds from the key */
};

/* Parses key (with the first prefix_len bytes being the configured prefix,
 * already checked by the caller). Returns 0, or EINVAL if the key does not
 * have Wiv's shape, its org_id could not be a directory name, or its
 * timestamp is outside years 1970-9999. */
int wiv_key_parse(const char *key, size_t prefix_len, struct wiv_key *out);

/* True if name can be an org directory: non-empty, no '/', no control byte
 * (C0, DEL or C1), not starting with '.'. */
int wiv_org_name_valid(const char *name, size_t len);

/* "org", "user" or "api". */
const char *wiv_type_name(enum wiv_log_type type);

/* The type named name, or -1. */
int wiv_type_from_name(const char *name);

#endif
