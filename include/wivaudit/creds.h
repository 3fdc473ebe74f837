/* AWS credentials and region, found the way the AWS CLI finds them.
 * A provider walks a chain of sources once at start-up and hands out copies;
 * sources that issue temporary credentials set an expiry, and the provider
 * reloads them before it passes. Secrets are never logged: only the name of
 * the source is. Functions return 0 or a positive errno. */
#ifndef WIVAUDIT_CREDS_H
#define WIVAUDIT_CREDS_H

#include <stddef.h>
#include <time.h>

struct wiv_creds {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL for long-term keys */
	time_t expiration;   /* 0: does not expire */
	/* Where they came from, for logs: "environment",
	 * "shared credentials file /root/.aws/credentials, profile audit". */
	char source[256];
};

/* Makes dst an independent copy of src (strings duplicated). Returns 0 or
 * ENOMEM (dst then holds nothing). */
int wiv_creds_copy(struct wiv_creds *dst, const struct wiv_creds *src);

/* Wipes and frees the strings of c and zeroes it; the struct itself is the
 * caller's. Safe on a zeroed struct. */
void wiv_creds_clear(struct wiv_creds *c);

struct wiv_creds_provider;

/* Finds credentials for profile (NULL: AWS_PROFILE, else "default"):
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 * ~/.aws/credentials), then keys in the config file (AWS_CONFIG_FILE, else
 * ~/.aws/config). Sets *out to a new provider (free with
 * wiv_creds_provider_free). Returns 0, or ENOENT / EINVAL with a one-line
 * message in err (no secret in it). */
int wiv_creds_provider_new(const char *profile, struct wiv_creds_provider **out,
			   char *err, size_t errlen);

/* Copies the current credentials into out (clear it with wiv_creds_clear),
 * first reloading them when they expire within five minutes. Thread-safe.
 * Returns 0, or an errno when a reload was needed and failed. */
int wiv_creds_provider_get(struct wiv_creds_provider *p, struct wiv_creds *out);

/* Frees the provider and wipes the secrets it held; NULL is a no-op. */
void wiv_creds_provider_free(struct wiv_creds_provider *p);

/* Finds the region for profile (NULL as above): AWS_REGION,
 * AWS_DEFAULT_REGION, then "region" of [profile NAME] (or [default]) in the
 * config file. Writes it to out. Returns 0, ENOENT when none is set, or
 * ENAMETOOLONG. */
int wiv_creds_region(const char *profile, char *out, size_t outlen);

#endif
