#include "wivaudit/creds.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "wivaudit/log.h"

/* Temporary credentials are reloaded this long before they expire, so a
 * request signed now is not refused on arrival. */
#define REFRESH_MARGIN_S 300

/* One link of the chain. Returns 0 with out filled, ENOENT when this source
 * has nothing (try the next), or another errno with a message in err. */
typedef int (*loader_fn)(const char *profile, bool explicit_profile,
			 struct wiv_creds *out, char *err, size_t errlen);

struct wiv_creds_provider {
	pthread_mutex_t lock; /* guards cur across refreshes */
	char *profile;
	bool explicit_profile;
	loader_fn loader; /* the source that answered; asked again on expiry */
	struct wiv_creds cur;
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

void wiv_creds_clear(struct wiv_creds *c)
{
	wipe_free(c->access_key_id);
	wipe_free(c->secret_access_key);
	wipe_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

int wiv_creds_copy(struct wiv_creds *dst, const struct wiv_creds *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->access_key_id = strdup(src->access_key_id);
	dst->secret_access_key = strdup(src->secret_access_key);
	if (src->session_token)
		dst->session_token = strdup(src->session_token);
	if (!dst->access_key_id || !dst->secret_access_key ||
	    (src->session_token && !dst->session_token)) {
		wiv_creds_clear(dst);
		return ENOMEM;
	}
	dst->expiration = src->expiration;
	memcpy(dst->source, src->source, sizeof(dst->source));
	return 0;
}

static const char *nonempty_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static const char *profile_name(const char *profile)
{
	if (profile && *profile)
		return profile;
	const char *env = nonempty_env("AWS_PROFILE");
	return env ? env : "default";
}

/* Path of a file under ~/.aws unless env names another one. Returns a new
 * string, or NULL when there is no home directory or no memory. */
static char *aws_file(const char *env, const char *name)
{
	const char *set = nonempty_env(env), *home = nonempty_env("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096], *path;

	if (set)
		return strdup(set);
	if (!home && getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 &&
	    res)
		home = res->pw_dir;
	if (!home)
		return NULL;
	if (asprintf(&path, "%s/.aws/%s", home, name) < 0)
		return NULL;
	return path;
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

/* Reads keys[i] of [section] in an AWS ini file into values[i] (new strings,
 * NULL when absent). Returns 0 when the section exists, ENOENT when the file
 * or section does not, or the errno of a failed read. */
static int ini_get(const char *path, const char *section,
		   const char *const *keys, char **values, size_t n)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	bool in = false, found = false;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		values[i] = NULL;
	if (!f)
		return errno == ENOENT || errno == ENOTDIR ? ENOENT : errno;
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line), *eq;
		if (*s == '#' || *s == ';' || *s == '\0')
			continue;
		if (*s == '[') {
			char *end = strchr(s, ']');
			if (end)
				*end = '\0';
			in = strcmp(trim(s + 1), section) == 0;
			found |= in;
			continue;
		}
		if (!in || !(eq = strchr(s, '=')))
			continue;
		*eq = '\0';
		const char *k = trim(s);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(k, keys[i]) != 0)
				continue;
			char *v = strdup(trim(eq + 1));
			if (!v) {
				rc = ENOMEM;
				goto out;
			}
			wipe_free(values[i]);
			values[i] = v;
		}
	}
	if (ferror(f))
		rc = EIO;
	else if (!found)
		rc = ENOENT;
out:
	if (line) {
		OPENSSL_cleanse(line, cap);
		free(line);
	}
	fclose(f);
	if (rc)
		for (size_t i = 0; i < n; i++) {
			wipe_free(values[i]);
			values[i] = NULL;
		}
	return rc;
}

static int from_env(const char *profile, bool explicit_profile,
		    struct wiv_creds *out, char *err, size_t errlen)
{
	const char *id = nonempty_env("AWS_ACCESS_KEY_ID");
	const char *secret = nonempty_env("AWS_SECRET_ACCESS_KEY");
	const char *token = nonempty_env("AWS_SESSION_TOKEN");

	(void)profile;
	/* As with the AWS CLI's --profile: a profile asked for by name wins
	 * over keys that happen to be in the environment. */
	if (explicit_profile || (!id && !secret))
		return ENOENT;
	if (!id || !secret) {
		snprintf(err, errlen, "%s is set but %s is not",
			 id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			 id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return EINVAL;
	}
	struct wiv_creds c = {.access_key_id = (char *)id,
			      .secret_access_key = (char *)secret,
			      .session_token = (char *)token};
	snprintf(c.source, sizeof(c.source), "environment");
	return wiv_creds_copy(out, &c);
}

static const char *const key_names[] = {
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token"};

static int from_ini(const char *path, const char *section, const char *what,
		    const char *profile, struct wiv_creds *out, char *err,
		    size_t errlen)
{
	char *v[3];
	int rc = ini_get(path, section, key_names, v, 3);

	if (rc == ENOENT)
		return ENOENT;
	if (rc) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(rc));
		return rc;
	}
	if (!v[0] && !v[1]) {
		rc = ENOENT;
	} else if (!v[0] || !v[1] || !*v[0] || !*v[1]) {
		snprintf(err, errlen, "%s: profile '%s' lacks %s", path,
			 profile, v[0] && *v[0] ? key_names[1] : key_names[0]);
		rc = EINVAL;
	} else {
		out->access_key_id = v[0];
		out->secret_access_key = v[1];
		out->session_token = v[2] && *v[2] ? v[2] : NULL;
		out->expiration = 0;
		snprintf(out->source, sizeof(out->source), "%s %s, profile %s",
			 what, path, profile);
		if (!out->session_token)
			wipe_free(v[2]);
		return 0;
	}
	for (int i = 0; i < 3; i++)
		wipe_free(v[i]);
	return rc;
}

static int from_credentials_file(const char *profile, bool explicit_profile,
				 struct wiv_creds *out, char *err,
				 size_t errlen)
{
	char *path = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	int rc;

	(void)explicit_profile;
	if (!path)
		return ENOENT;
	rc = from_ini(path, profile, "shared credentials file", profile, out,
		      err, errlen);
	free(path);
	return rc;
}

/* Config-file sections are "[profile NAME]", except "[default]". */
static char *config_section(const char *profile)
{
	char *s;

	if (strcmp(profile, "default") == 0)
		return strdup("default");
	return asprintf(&s, "profile %s", profile) < 0 ? NULL : s;
}

static int from_config_file(const char *profile, bool explicit_profile,
			    struct wiv_creds *out, char *err, size_t errlen)
{
	char *path = aws_file("AWS_CONFIG_FILE", "config");
	char *section = config_section(profile);
	int rc = ENOENT;

	(void)explicit_profile;
	if (path && section)
		rc = from_ini(path, section, "config file", profile, out, err,
			      errlen);
	free(path);
	free(section);
	return rc;
}

static const loader_fn chain[] = {from_env, from_credentials_file,
				  from_config_file};

int wiv_creds_provider_new(const char *profile, struct wiv_creds_provider **out,
			   char *err, size_t errlen)
{
	struct wiv_creds_provider *p = calloc(1, sizeof(*p));
	int rc = ENOENT;

	*out = NULL;
	if (!p || !(p->profile = strdup(profile_name(profile)))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->explicit_profile = profile && *profile;
	for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
		rc = chain[i](p->profile, p->explicit_profile, &p->cur, err,
			      errlen);
		if (rc != ENOENT) {
			p->loader = chain[i];
			break;
		}
	}
	if (rc == ENOENT)
		snprintf(err, errlen,
			 "no AWS credentials found for profile '%s' (set "
			 "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or add the "
			 "profile to ~/.aws/credentials)",
			 p->profile);
	if (rc) {
		wiv_creds_provider_free(p);
		return rc;
	}
	wiv_info("AWS credentials from %s", p->cur.source);
	*out = p;
	return 0;
}

int wiv_creds_provider_get(struct wiv_creds_provider *p, struct wiv_creds *out)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	if (p->cur.expiration &&
	    time(NULL) + REFRESH_MARGIN_S >= p->cur.expiration) {
		struct wiv_creds fresh = {0};
		char err[256] = "";
		rc = p->loader(p->profile, p->explicit_profile, &fresh, err,
			       sizeof(err));
		if (!rc) {
			wiv_creds_clear(&p->cur);
			p->cur = fresh;
		} else {
			wiv_warn("cannot refresh AWS credentials from %s: %s",
				 p->cur.source, err[0] ? err : strerror(rc));
		}
	}
	/* A failed refresh still hands out the old keys while they last. */
	if (!rc || time(NULL) < p->cur.expiration)
		rc = wiv_creds_copy(out, &p->cur);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void wiv_creds_provider_free(struct wiv_creds_provider *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	wiv_creds_clear(&p->cur);
	free(p->profile);
	free(p);
}

int wiv_creds_region(const char *profile, char *out, size_t outlen)
{
	const char *env = nonempty_env("AWS_REGION");
	char *v = NULL;
	int rc = ENOENT;

	if (!env)
		env = nonempty_env("AWS_DEFAULT_REGION");
	if (env) {
		rc = 0;
	} else {
		char *path = aws_file("AWS_CONFIG_FILE", "config");
		char *section = config_section(profile_name(profile));
		static const char *const region_key[] = {"region"};
		if (path && section &&
		    ini_get(path, section, region_key, &v, 1) == 0 && v && *v)
			rc = 0;
		free(path);
		free(section);
		env = v;
	}
	if (!rc && (size_t)snprintf(out, outlen, "%s", env) >= outlen)
		rc = ENAMETOOLONG;
	free(v);
	return rc;
}
