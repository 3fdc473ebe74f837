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

/* Finds credentials for profile (NULL: AWS_PROFILE, else "default") in the
 * AWS CLI's order:
 *   1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (skipped
 *      when profile names one explicitly);
 *   2. a role the profile assumes (role_arn with source_profile or
 *      credential_source; external_id, role_session_name, duration_seconds)
 *      through STS AssumeRole;
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN and
 *      AWS_ROLE_SESSION_NAME, or the profile's web_identity_token_file and
 *      role_arn, through STS AssumeRoleWithWebIdentity;
 *   4. IAM Identity Center (SSO): the profile's sso_session or legacy
 *      sso_start_url, with the token `aws sso login` cached (credsrc.h);
 *   5. keys of the profile in the shared credentials file
 *      (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials);
 *   6. the profile's credential_process;
 *   7. keys of the profile in the config file (AWS_CONFIG_FILE, else
 *      ~/.aws/config);
 *   8. ECS container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *      _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]);
 *   9. EC2 instance metadata, IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT,
 *      AWS_EC2_METADATA_DISABLED), given about a second to answer.
 * A source that is configured but fails ends the search with its error
 * rather than falling through to another identity. Sets *out to a new
 * provider (free with wiv_creds_provider_free) and logs the source. Returns
 * 0, or ENOENT / EINVAL / EACCES / EIO ... with a one-line message in err (no
 * secret in it). */
int wiv_creds_provider_new(const char *profile, struct wiv_creds_provider **out,
			   char *err, size_t errlen);

/* Copies the current credentials into out (clear it with wiv_creds_clear).
 * Temporary credentials are reloaded from their source five minutes before
 * they expire (halfway through the life of shorter-lived ones): one caller
 * reloads while the others go on with the old credentials, and only wait
 * when those have expired. Thread-safe. Returns 0, or the errno of a failed
 * reload once the old credentials have expired. */
int wiv_creds_provider_get(struct wiv_creds_provider *p, struct wiv_creds *out);

/* Frees the provider and wipes the secrets it held; NULL is a no-op. */
void wiv_creds_provider_free(struct wiv_creds_provider *p);

/* Finds the region for profile (NULL as above): AWS_REGION,
 * AWS_DEFAULT_REGION, then "region" of [profile NAME] (or [default]) in the
 * config file. Writes it to out. Returns 0, ENOENT when none is set, or
 * ENAMETOOLONG. */
int wiv_creds_region(const char *profile, char *out, size_t outlen);

/* Parses an AWS timestamp ("2026-01-28T09:05:07Z", also with fractional
 * seconds or a "+00:00" offset) into *out. Returns 0 or EINVAL. */
int wiv_creds_parse_time(const char *s, time_t *out);

#endif
