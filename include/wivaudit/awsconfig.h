/* The AWS shared files: ~/.aws/credentials and ~/.aws/config (or the files
 * AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name), read the way the AWS
 * CLI reads them. A profile's settings are merged from both files, the
 * credentials file winning. Functions return 0 or a positive errno. */
#ifndef WIVAUDIT_AWSCONFIG_H
#define WIVAUDIT_AWSCONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* The settings of a profile that wivaudit uses. */
enum wiv_awsconfig_key {
	WIV_AWSCONFIG_ACCESS_KEY_ID,
	WIV_AWSCONFIG_SECRET_ACCESS_KEY,
	WIV_AWSCONFIG_SESSION_TOKEN,
	WIV_AWSCONFIG_CREDENTIAL_PROCESS,
	WIV_AWSCONFIG_ROLE_ARN,
	WIV_AWSCONFIG_SOURCE_PROFILE,
	WIV_AWSCONFIG_CREDENTIAL_SOURCE,
	WIV_AWSCONFIG_EXTERNAL_ID,
	WIV_AWSCONFIG_ROLE_SESSION_NAME,
	WIV_AWSCONFIG_DURATION_SECONDS,
	WIV_AWSCONFIG_WEB_IDENTITY_TOKEN_FILE,
	WIV_AWSCONFIG_REGION,
	WIV_AWSCONFIG_SSO_SESSION,
	WIV_AWSCONFIG_SSO_START_URL,
	WIV_AWSCONFIG_SSO_REGION,
	WIV_AWSCONFIG_SSO_ACCOUNT_ID,
	WIV_AWSCONFIG_SSO_ROLE_NAME,
	WIV_AWSCONFIG_NKEYS
};

struct wiv_awsconfig_profile {
	char *name;
	bool found; /* the profile has a section in either file */
	/* Merged values, NULL when unset or empty. */
	char *value[WIV_AWSCONFIG_NKEYS];
	/* Which file value[k] came from: true for the credentials file. */
	bool in_credentials[WIV_AWSCONFIG_NKEYS];
	char *credentials_path; /* the files looked at; NULL without $HOME */
	char *config_path;
};

/* The environment variable name, or NULL when it is unset or empty (the
 * AWS SDKs treat both alike). Borrowed. */
const char *wiv_awsconfig_env(const char *name);

/* The profile to use: name when non-empty, else AWS_PROFILE, else
 * "default". Returns a borrowed string. */
const char *wiv_awsconfig_profile_name(const char *name);

/* Loads profile name (as resolved by wiv_awsconfig_profile_name) from both
 * files into p (clear it with wiv_awsconfig_profile_clear, also after an
 * error). A missing file or section is not an error: p->found says. Returns
 * 0, ENOMEM, or the errno of a file that exists but cannot be read (with a
 * message in err). */
int wiv_awsconfig_profile_load(const char *name,
			       struct wiv_awsconfig_profile *p, char *err,
			       size_t errlen);

/* Reads the settings of the config file's [sso-session NAME] section into
 * values (WIV_AWSCONFIG_NKEYS new strings or NULLs, wiped and freed by the
 * caller) and sets *found. Returns 0 (also when the file or section is
 * missing), ENOMEM, or the errno of a failed read. */
int wiv_awsconfig_sso_session_load(const struct wiv_awsconfig_profile *p,
				   const char *name, bool *found,
				   char **values);

/* "$HOME/.aws/" followed by rel, the way the AWS CLI finds its own files
 * (getpwuid when HOME is unset). Returns a new string, or NULL when there
 * is no home directory or no memory. */
char *wiv_awsconfig_home_file(const char *rel);

/* Wipes and frees what p holds and zeroes it. Safe on a zeroed struct. */
void wiv_awsconfig_profile_clear(struct wiv_awsconfig_profile *p);

/* The value of key in p, or NULL (borrowed). */
const char *wiv_awsconfig_get(const struct wiv_awsconfig_profile *p,
			      enum wiv_awsconfig_key key);

/* The setting's name as written in the files, e.g. "role_arn". */
const char *wiv_awsconfig_key_name(enum wiv_awsconfig_key key);

#endif
