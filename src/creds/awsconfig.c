/* Profiles from the AWS shared credentials and config files. */
#include "wivaudit/awsconfig.h"
#include "wivaudit/secret.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

static const char *const key_names[WIV_AWSCONFIG_NKEYS] = {
    [WIV_AWSCONFIG_ACCESS_KEY_ID] = "aws_access_key_id",
    [WIV_AWSCONFIG_SECRET_ACCESS_KEY] = "aws_secret_access_key",
    [WIV_AWSCONFIG_SESSION_TOKEN] = "aws_session_token",
    [WIV_AWSCONFIG_CREDENTIAL_PROCESS] = "credential_process",
    [WIV_AWSCONFIG_ROLE_ARN] = "role_arn",
    [WIV_AWSCONFIG_SOURCE_PROFILE] = "source_profile",
    [WIV_AWSCONFIG_CREDENTIAL_SOURCE] = "credential_source",
    [WIV_AWSCONFIG_EXTERNAL_ID] = "external_id",
    [WIV_AWSCONFIG_ROLE_SESSION_NAME] = "role_session_name",
    [WIV_AWSCONFIG_DURATION_SECONDS] = "duration_seconds",
    [WIV_AWSCONFIG_WEB_IDENTITY_TOKEN_FILE] = "web_identity_token_file",
    [WIV_AWSCONFIG_REGION] = "region",
    [WIV_AWSCONFIG_SSO_SESSION] = "sso_session",
    [WIV_AWSCONFIG_SSO_START_URL] = "sso_start_url",
    [WIV_AWSCONFIG_SSO_REGION] = "sso_region",
    [WIV_AWSCONFIG_SSO_ACCOUNT_ID] = "sso_account_id",
    [WIV_AWSCONFIG_SSO_ROLE_NAME] = "sso_role_name",
};

const char *wiv_awsconfig_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

const char *wiv_awsconfig_profile_name(const char *name)
{
	if (name && *name)
		return name;
	const char *env = wiv_awsconfig_env("AWS_PROFILE");
	return env ? env : "default";
}

const char *wiv_awsconfig_key_name(enum wiv_awsconfig_key key)
{
	return key_names[key];
}

const char *wiv_awsconfig_get(const struct wiv_awsconfig_profile *p,
			      enum wiv_awsconfig_key key)
{
	return p->value[key];
}

char *wiv_awsconfig_home_file(const char *rel)
{
	const char *home = wiv_awsconfig_env("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096], *path;

	if (!home && getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 &&
	    res)
		home = res->pw_dir;
	if (!home)
		return NULL;
	if (asprintf(&path, "%s/.aws/%s", home, rel) < 0)
		return NULL;
	return path;
}

/* Path of a file under ~/.aws unless env names another one. Returns a new
 * string, or NULL when there is no home directory or no memory. */
static char *aws_file(const char *env, const char *name)
{
	const char *set = wiv_awsconfig_env(env);

	return set ? strdup(set) : wiv_awsconfig_home_file(name);
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Reads the settings of [section] in path into values (new strings, left
 * alone when absent). Sets *found when the section exists. Returns 0 (also
 * when the file does not exist), ENOMEM, or the errno of a failed read. */
static int read_section(const char *path, const char *section, bool *found,
			char **values)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	bool in = false;
	int rc = 0;

	if (!f)
		return errno == ENOENT || errno == ENOTDIR ? 0 : errno;
	while (getline(&line, &cap, f) >= 0) {
		/* An indented line belongs to a nested block ("s3 =" then
		 * "  addressing_style = path"), not to the profile. */
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *s = trim(line), *eq;
		if (*s == '#' || *s == ';' || *s == '\0')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (end)
				*end = '\0';
			in = strcmp(trim(s + 1), section) == 0;
			*found |= in;
			continue;
		}
		if (!in || indented || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		const char *k = trim(s);
		const char *v = trim(eq + 1);
		for (int i = 0; i < WIV_AWSCONFIG_NKEYS; i++) {
			if (strcmp(k, key_names[i]) != 0)
				continue;
			char *dup = *v ? strdup(v) : NULL;
			if (*v && !dup) {
				rc = ENOMEM;
				goto out;
			}
			wiv_secret_free(values[i]);
			values[i] = dup;
		}
	}
	if (ferror(f))
		rc = EIO;
out:
	if (line) {
		OPENSSL_cleanse(line, cap);
		free(line);
	}
	fclose(f);
	return rc;
}

int wiv_awsconfig_profile_load(const char *name,
			       struct wiv_awsconfig_profile *p, char *err,
			       size_t errlen)
{
	char *cfg[WIV_AWSCONFIG_NKEYS] = {0}, *section = NULL;
	int rc;

	memset(p, 0, sizeof(*p));
	name = wiv_awsconfig_profile_name(name);
	p->name = strdup(name);
	p->credentials_path =
	    aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	p->config_path = aws_file("AWS_CONFIG_FILE", "config");
	/* Config-file sections are "[profile NAME]", except "[default]". */
	if (!p->name || (strcmp(name, "default") == 0
			     ? !(section = strdup(name))
			     : asprintf(&section, "profile %s", name) < 0)) {
		section = NULL;
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	rc = p->credentials_path
		 ? read_section(p->credentials_path, name, &p->found, p->value)
		 : 0;
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", p->credentials_path,
			 strerror(rc));
		goto out;
	}
	rc = p->config_path
		 ? read_section(p->config_path, section, &p->found, cfg)
		 : 0;
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", p->config_path,
			 strerror(rc));
		goto out;
	}
	for (int i = 0; i < WIV_AWSCONFIG_NKEYS; i++) {
		p->in_credentials[i] = p->value[i] != NULL;
		if (!p->value[i]) {
			p->value[i] = cfg[i];
			cfg[i] = NULL;
		}
	}
out:
	for (int i = 0; i < WIV_AWSCONFIG_NKEYS; i++)
		wiv_secret_free(cfg[i]);
	free(section);
	return rc;
}

int wiv_awsconfig_sso_session_load(const struct wiv_awsconfig_profile *p,
				   const char *name, bool *found, char **values)
{
	char *section;
	int rc;

	*found = false;
	if (!p->config_path)
		return 0;
	if (asprintf(&section, "sso-session %s", name) < 0)
		return ENOMEM;
	rc = read_section(p->config_path, section, found, values);
	free(section);
	return rc;
}

void wiv_awsconfig_profile_clear(struct wiv_awsconfig_profile *p)
{
	for (int i = 0; i < WIV_AWSCONFIG_NKEYS; i++)
		wiv_secret_free(p->value[i]);
	free(p->name);
	free(p->credentials_path);
	free(p->config_path);
	memset(p, 0, sizeof(*p));
}
