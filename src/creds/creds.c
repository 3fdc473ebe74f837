/* The credential chain and the provider that keeps its answer fresh. */
#include "wivaudit/creds.h"
#include "wivaudit/secret.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "wivaudit/awsconfig.h"
#include "wivaudit/credsrc.h"
#include "wivaudit/log.h"
#include "wivaudit/sts.h"

/* Temporary credentials are reloaded this long before they expire, so a
 * request signed now is not refused on arrival. */
#define REFRESH_MARGIN_S 300
/* After a failed reload, the next try comes after at most this long. */
#define RETRY_MAX_S 30
/* source_profile links followed before calling it a loop. */
#define MAX_ROLE_DEPTH 5

/* What a link of the chain needs to know. */
struct ctx {
	const char *profile;
	bool explicit_profile;
};

/* One link of the chain. Returns 0 with out filled, ENOENT when this source
 * has nothing (try the next), or another errno with a message in err. */
typedef int (*link_fn)(const struct ctx *c, struct wiv_creds *out, char *err,
		       size_t errlen);

struct wiv_creds_provider {
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t refreshed;
	char *profile;
	struct ctx ctx;
	link_fn link; /* the source that answered; asked again on expiry */
	struct wiv_creds cur;
	time_t refresh_at; /* 0: cur does not expire */
	bool refreshing;   /* one caller is reloading, lock released */
	int last_err;	   /* of the last failed reload */
};

void wiv_creds_clear(struct wiv_creds *c)
{
	wiv_secret_free(c->access_key_id);
	wiv_secret_free(c->secret_access_key);
	wiv_secret_free(c->session_token);
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

int wiv_creds_parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	int n = 0, oh = 0, om = 0;
	long off = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return EINVAL;
	s += n;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if ((s[0] == '+' || s[0] == '-') &&
	    sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) == 2 && !s[1 + n]) {
		off = (oh * 60L + om) * 60L * (s[0] == '+' ? 1 : -1);
	} else if (strcmp(s, "Z") != 0) {
		return EINVAL;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return EINVAL;
	*out = timegm(&tm) - off;
	return 0;
}

int wiv_credsrc_from_json(const json_t *obj, const char *token_field,
			  struct wiv_creds *out, char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(obj, "AccessKeyId"));
	const char *secret =
	    json_string_value(json_object_get(obj, "SecretAccessKey"));
	const json_t *token = json_object_get(obj, token_field);
	const json_t *exp = json_object_get(obj, "Expiration");
	time_t expiration = 0;

	if (!id || !*id || !secret || !*secret) {
		snprintf(err, errlen, "lacks %s",
			 id && *id ? "SecretAccessKey" : "AccessKeyId");
		return EINVAL;
	}
	if (token && !json_is_null(token) && !json_is_string(token)) {
		snprintf(err, errlen, "has a %s that is not a string",
			 token_field);
		return EINVAL;
	}
	if (exp && !json_is_null(exp) &&
	    (!json_is_string(exp) ||
	     wiv_creds_parse_time(json_string_value(exp), &expiration))) {
		snprintf(err, errlen, "has an Expiration that is not a time");
		return EINVAL;
	}
	const char *t = json_string_value(token);
	struct wiv_creds c = {.access_key_id = (char *)id,
			      .secret_access_key = (char *)secret,
			      .session_token = t && *t ? (char *)t : NULL,
			      .expiration = expiration};
	char source[sizeof(out->source)];
	memcpy(source, out->source, sizeof(source));
	int rc = wiv_creds_copy(out, &c);
	memcpy(out->source, source, sizeof(source));
	if (rc)
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* --- the links --- */

static int from_env(const struct ctx *c, struct wiv_creds *out, char *err,
		    size_t errlen)
{
	const char *id = wiv_awsconfig_env("AWS_ACCESS_KEY_ID");
	const char *secret = wiv_awsconfig_env("AWS_SECRET_ACCESS_KEY");
	const char *token = wiv_awsconfig_env("AWS_SESSION_TOKEN");

	/* As with the AWS CLI's --profile: a profile asked for by name wins
	 * over keys that happen to be in the environment. */
	if (c->explicit_profile || (!id && !secret))
		return ENOENT;
	if (!id || !secret) {
		snprintf(err, errlen, "%s is set but %s is not",
			 id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			 id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return EINVAL;
	}
	struct wiv_creds e = {.access_key_id = (char *)id,
			      .secret_access_key = (char *)secret,
			      .session_token = (char *)token};
	snprintf(e.source, sizeof(e.source), "environment");
	return wiv_creds_copy(out, &e);
}

static int load_profile(const char *name, struct wiv_awsconfig_profile *p,
			char *err, size_t errlen)
{
	int rc = wiv_awsconfig_profile_load(name, p, err, errlen);

	if (rc)
		wiv_awsconfig_profile_clear(p);
	return rc;
}

static const char *get(const struct wiv_awsconfig_profile *p,
		       enum wiv_awsconfig_key k)
{
	return wiv_awsconfig_get(p, k);
}

/* The profile's static keys, when they sit in the credentials file
 * (in_credentials) or the config file (!in_credentials). */
static int profile_keys(const struct wiv_awsconfig_profile *p,
			bool in_credentials, struct wiv_creds *out, char *err,
			size_t errlen)
{
	const char *id = get(p, WIV_AWSCONFIG_ACCESS_KEY_ID);
	const char *secret = get(p, WIV_AWSCONFIG_SECRET_ACCESS_KEY);
	enum wiv_awsconfig_key k =
	    id ? WIV_AWSCONFIG_ACCESS_KEY_ID : WIV_AWSCONFIG_SECRET_ACCESS_KEY;

	if ((!id && !secret) || p->in_credentials[k] != in_credentials)
		return ENOENT;
	const char *path =
	    in_credentials ? p->credentials_path : p->config_path;
	if (!id || !secret) {
		snprintf(
		    err, errlen, "%s: profile '%s' lacks %s", path, p->name,
		    wiv_awsconfig_key_name(id ? WIV_AWSCONFIG_SECRET_ACCESS_KEY
					      : WIV_AWSCONFIG_ACCESS_KEY_ID));
		return EINVAL;
	}
	struct wiv_creds c = {.access_key_id = (char *)id,
			      .secret_access_key = (char *)secret,
			      .session_token =
				  (char *)get(p, WIV_AWSCONFIG_SESSION_TOKEN)};
	snprintf(c.source, sizeof(c.source), "%s %s, profile %s",
		 in_credentials ? "shared credentials file" : "config file",
		 path, p->name);
	return wiv_creds_copy(out, &c);
}

static int profile_process(const struct wiv_awsconfig_profile *p,
			   struct wiv_creds *out, char *err, size_t errlen)
{
	const char *cmd = get(p, WIV_AWSCONFIG_CREDENTIAL_PROCESS);

	if (!cmd)
		return ENOENT;
	return wiv_credsrc_process(cmd, p->name, out, err, errlen);
}

/* STS is asked in the profile's region, as the AWS CLI does. */
static void region_of(const char *profile, char *out, size_t len)
{
	if (wiv_creds_region(profile, out, len))
		snprintf(out, len, "us-east-1");
}

/* Web identity from the environment or the profile p (NULL: environment
 * only), each setting from the environment first, as botocore does. */
static int web_identity(const struct wiv_awsconfig_profile *p,
			struct wiv_creds *out, char *err, size_t errlen)
{
	const char *file = wiv_awsconfig_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *arn = wiv_awsconfig_env("AWS_ROLE_ARN");
	const char *session = wiv_awsconfig_env("AWS_ROLE_SESSION_NAME");
	char region[64], *token = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc;

	if (p) {
		if (!file)
			file = get(p, WIV_AWSCONFIG_WEB_IDENTITY_TOKEN_FILE);
		if (!arn)
			arn = get(p, WIV_AWSCONFIG_ROLE_ARN);
		if (!session)
			session = get(p, WIV_AWSCONFIG_ROLE_SESSION_NAME);
	}
	if (!file)
		return ENOENT;
	if (!arn) {
		snprintf(err, errlen,
			 "web identity token file %s is set but no role ARN "
			 "(AWS_ROLE_ARN or role_arn)",
			 file);
		return EINVAL;
	}
	/* Read afresh on every call: the token file is rotated. */
	FILE *f = fopen(file, "re");
	if (!f) {
		rc = errno;
		snprintf(err, errlen,
			 "cannot read web identity token file %s: %s", file,
			 strerror(rc));
		return rc;
	}
	n = getdelim(&token, &cap, '\0', f);
	fclose(f);
	while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' ||
			 token[n - 1] == ' '))
		token[--n] = '\0';
	if (n <= 0) {
		snprintf(err, errlen, "web identity token file %s is empty",
			 file);
		rc = EINVAL;
		goto out;
	}
	region_of(p ? p->name : NULL, region, sizeof(region));
	struct wiv_sts_role role = {
	    .role_arn = arn, .session_name = session, .region = region};
	rc = wiv_sts_assume_role_with_web_identity(&role, token, out, err,
						   errlen);
	if (!rc)
		snprintf(out->source, sizeof(out->source),
			 "web identity token file %s, role %s", file, arn);
out:
	if (token) {
		OPENSSL_cleanse(token, cap);
		free(token);
	}
	return rc;
}

static int assume_role(const struct wiv_awsconfig_profile *p, int depth,
		       struct wiv_creds *out, char *err, size_t errlen);

/* Whether p is set up to assume a role with other credentials. */
static bool has_role(const struct wiv_awsconfig_profile *p)
{
	return get(p, WIV_AWSCONFIG_ROLE_ARN) &&
	       (get(p, WIV_AWSCONFIG_SOURCE_PROFILE) ||
		get(p, WIV_AWSCONFIG_CREDENTIAL_SOURCE));
}

/* The credentials of a source_profile: its own role when it has one (and
 * no keys), else what it holds itself. */
static int source_profile(const char *name, int depth, struct wiv_creds *out,
			  char *err, size_t errlen)
{
	struct wiv_awsconfig_profile p;
	int rc = load_profile(name, &p, err, errlen);

	if (rc)
		return rc;
	bool keys = get(&p, WIV_AWSCONFIG_ACCESS_KEY_ID) ||
		    get(&p, WIV_AWSCONFIG_SECRET_ACCESS_KEY);
	if (!p.found) {
		snprintf(err, errlen,
			 "source_profile '%s' is in neither %s nor %s", name,
			 p.credentials_path, p.config_path);
		rc = EINVAL;
	} else if (has_role(&p) && !keys) {
		rc = assume_role(&p, depth + 1, out, err, errlen);
	} else {
		rc = get(&p, WIV_AWSCONFIG_WEB_IDENTITY_TOKEN_FILE) &&
			     get(&p, WIV_AWSCONFIG_ROLE_ARN)
			 ? web_identity(&p, out, err, errlen)
			 : ENOENT;
		if (rc == ENOENT)
			rc = wiv_credsrc_sso(&p, out, err, errlen);
		if (rc == ENOENT)
			rc = profile_keys(&p, true, out, err, errlen);
		if (rc == ENOENT)
			rc = profile_process(&p, out, err, errlen);
		if (rc == ENOENT)
			rc = profile_keys(&p, false, out, err, errlen);
		if (rc == ENOENT) {
			snprintf(err, errlen,
				 "source_profile '%s' holds no credentials",
				 name);
			rc = EINVAL;
		}
	}
	wiv_awsconfig_profile_clear(&p);
	return rc;
}

/* credential_source = Environment | Ec2InstanceMetadata | EcsContainer. */
static int named_source(const char *what, struct wiv_creds *out, char *err,
			size_t errlen)
{
	const struct ctx env_only = {NULL, false};
	int rc;

	if (strcmp(what, "Environment") == 0)
		rc = from_env(&env_only, out, err, errlen);
	else if (strcmp(what, "Ec2InstanceMetadata") == 0)
		rc = wiv_credsrc_imds(out, err, errlen);
	else if (strcmp(what, "EcsContainer") == 0)
		rc = wiv_credsrc_container(out, err, errlen);
	else {
		snprintf(err, errlen,
			 "credential_source '%s' is not Environment, "
			 "Ec2InstanceMetadata or EcsContainer",
			 what);
		return EINVAL;
	}
	if (rc == ENOENT) {
		char why[200];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen,
			 "credential_source %s has no credentials%s%s", what,
			 why[0] ? ": " : "", why);
		rc = EINVAL;
	}
	return rc;
}

static int assume_role(const struct wiv_awsconfig_profile *p, int depth,
		       struct wiv_creds *out, char *err, size_t errlen)
{
	const char *src = get(p, WIV_AWSCONFIG_SOURCE_PROFILE);
	const char *arn = get(p, WIV_AWSCONFIG_ROLE_ARN);
	const char *dur = get(p, WIV_AWSCONFIG_DURATION_SECONDS);
	struct wiv_creds base = {0};
	char region[64], *end;
	unsigned long duration = 0;
	int rc;

	if (depth > MAX_ROLE_DEPTH) {
		snprintf(err, errlen,
			 "profile '%s': source_profile links loop or run "
			 "deeper than %d",
			 p->name, MAX_ROLE_DEPTH);
		return ELOOP;
	}
	if (dur && ((duration = strtoul(dur, &end, 10)) < 900 || *end ||
		    duration > 43200)) {
		snprintf(err, errlen,
			 "profile '%s': duration_seconds must be 900 to 43200",
			 p->name);
		return EINVAL;
	}
	if (src)
		rc = strcmp(src, p->name) == 0
			 ? profile_keys(p, true, &base, err, errlen)
			 : source_profile(src, depth, &base, err, errlen);
	else
		rc = named_source(get(p, WIV_AWSCONFIG_CREDENTIAL_SOURCE),
				  &base, err, errlen);
	if (rc == ENOENT)
		rc = profile_keys(p, false, &base, err, errlen);
	if (rc == ENOENT) {
		snprintf(err, errlen,
			 "profile '%s' is its own source_profile but holds no "
			 "keys",
			 p->name);
		rc = EINVAL;
	}
	if (rc)
		return rc;
	region_of(p->name, region, sizeof(region));
	struct wiv_sts_role role = {
	    .role_arn = arn,
	    .session_name = get(p, WIV_AWSCONFIG_ROLE_SESSION_NAME),
	    .external_id = get(p, WIV_AWSCONFIG_EXTERNAL_ID),
	    .duration_s = (unsigned)duration,
	    .region = region,
	};
	rc = wiv_sts_assume_role(&role, &base, out, err, errlen);
	if (!rc)
		snprintf(out->source, sizeof(out->source),
			 "role %.90s of profile %.32s, assumed with "
			 "credentials from %.80s",
			 arn, p->name, base.source);
	wiv_creds_clear(&base);
	return rc;
}

/* Links 2 to 7 all read the profile; each keeps to its own settings. */
enum profile_step {
	P_ROLE,
	P_WEB_IDENTITY,
	P_SSO,
	P_KEYS,
	P_PROCESS,
	P_CONFIG
};

static int from_profile(const struct ctx *c, enum profile_step step,
			struct wiv_creds *out, char *err, size_t errlen)
{
	struct wiv_awsconfig_profile p;
	int rc = load_profile(c->profile, &p, err, errlen);

	if (rc)
		return rc;
	switch (step) {
	case P_ROLE:
		/* As the AWS CLI: a profile named but defined nowhere is an
		 * error, not a reason to look further. */
		if (!p.found && strcmp(p.name, "default") != 0) {
			snprintf(err, errlen,
				 "profile '%s' is in neither %s nor %s", p.name,
				 p.credentials_path, p.config_path);
			rc = EINVAL;
		} else if (has_role(&p)) {
			rc = assume_role(&p, 0, out, err, errlen);
		} else if (get(&p, WIV_AWSCONFIG_ROLE_ARN) &&
			   !get(&p, WIV_AWSCONFIG_WEB_IDENTITY_TOKEN_FILE) &&
			   !wiv_awsconfig_env("AWS_WEB_IDENTITY_TOKEN_FILE")) {
			snprintf(err, errlen,
				 "profile '%s' has role_arn but no "
				 "source_profile, credential_source or "
				 "web_identity_token_file",
				 p.name);
			rc = EINVAL;
		} else {
			rc = ENOENT;
		}
		break;
	case P_WEB_IDENTITY:
		rc = web_identity(&p, out, err, errlen);
		break;
	case P_SSO:
		rc = wiv_credsrc_sso(&p, out, err, errlen);
		break;
	case P_KEYS:
	case P_CONFIG:
		rc = profile_keys(&p, step == P_KEYS, out, err, errlen);
		break;
	case P_PROCESS:
		rc = profile_process(&p, out, err, errlen);
		break;
	}
	wiv_awsconfig_profile_clear(&p);
	return rc;
}

static int from_role(const struct ctx *c, struct wiv_creds *out, char *err,
		     size_t errlen)
{
	return from_profile(c, P_ROLE, out, err, errlen);
}

static int from_web_identity(const struct ctx *c, struct wiv_creds *out,
			     char *err, size_t errlen)
{
	return from_profile(c, P_WEB_IDENTITY, out, err, errlen);
}

static int from_sso(const struct ctx *c, struct wiv_creds *out, char *err,
		    size_t errlen)
{
	return from_profile(c, P_SSO, out, err, errlen);
}

static int from_credentials_file(const struct ctx *c, struct wiv_creds *out,
				 char *err, size_t errlen)
{
	return from_profile(c, P_KEYS, out, err, errlen);
}

static int from_process(const struct ctx *c, struct wiv_creds *out, char *err,
			size_t errlen)
{
	return from_profile(c, P_PROCESS, out, err, errlen);
}

static int from_config_file(const struct ctx *c, struct wiv_creds *out,
			    char *err, size_t errlen)
{
	return from_profile(c, P_CONFIG, out, err, errlen);
}

static int from_container(const struct ctx *c, struct wiv_creds *out, char *err,
			  size_t errlen)
{
	return wiv_credsrc_container(out, err, errlen);
}

static int from_imds(const struct ctx *c, struct wiv_creds *out, char *err,
		     size_t errlen)
{
	return wiv_credsrc_imds(out, err, errlen);
}

static const link_fn chain[] = {
    from_env,	   from_role,		  from_web_identity,
    from_sso,	   from_credentials_file, from_process,
    from_config_file, from_container,	  from_imds,
};

/* --- the provider --- */

/* When to reload credentials that expire at exp, loaded or last tried at
 * now (after a failure when failed). */
static time_t next_refresh(time_t now, time_t exp, bool failed)
{
	time_t left = exp - now;

	if (!exp)
		return 0;
	if (!failed && left > REFRESH_MARGIN_S)
		return exp - REFRESH_MARGIN_S;
	/* Short-lived or failing: try again halfway to the end. */
	left /= 2;
	if (failed && left > RETRY_MAX_S)
		left = RETRY_MAX_S;
	return now + (left > 1 ? left : 1);
}

static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Rejects credentials that are already expired when they arrive. */
static int check_fresh(struct wiv_creds *c, char *err, size_t errlen)
{
	char when[32];

	if (!c->expiration || c->expiration > time(NULL))
		return 0;
	format_time(c->expiration, when, sizeof(when));
	snprintf(err, errlen, "credentials from %s expired at %s (clock?)",
		 c->source, when);
	wiv_creds_clear(c);
	return EACCES;
}

int wiv_creds_provider_new(const char *profile, struct wiv_creds_provider **out,
			   char *err, size_t errlen)
{
	struct wiv_creds_provider *p = calloc(1, sizeof(*p));
	int rc = ENOENT;

	*out = NULL;
	err[0] = '\0';
	if (!p || !(p->profile = strdup(wiv_awsconfig_profile_name(profile)))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->refreshed, NULL);
	p->ctx.profile = p->profile;
	p->ctx.explicit_profile = profile && *profile;
	for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
		err[0] = '\0';
		rc = chain[i](&p->ctx, &p->cur, err, errlen);
		if (rc != ENOENT) {
			p->link = chain[i];
			break;
		}
	}
	if (!rc)
		rc = check_fresh(&p->cur, err, errlen);
	if (rc == ENOENT) {
		/* err holds why instance metadata, the last link, said no. */
		char why[256];
		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen,
			 "no AWS credentials found for profile '%s' (set "
			 "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, add the "
			 "profile to ~/.aws/credentials, or run with a "
			 "container or instance role; %s)",
			 p->profile, why[0] ? why : "no instance metadata");
	}
	if (rc) {
		wiv_creds_provider_free(p);
		return rc;
	}
	p->refresh_at = next_refresh(time(NULL), p->cur.expiration, false);
	if (p->cur.expiration) {
		char when[32];
		format_time(p->cur.expiration, when, sizeof(when));
		wiv_info("AWS credentials from %s, valid until %s",
			 p->cur.source, when);
	} else {
		wiv_info("AWS credentials from %s", p->cur.source);
	}
	*out = p;
	return 0;
}

/* Reloads from the link that answered first. Called with the lock held and
 * p->refreshing set by the caller; drops the lock meanwhile, so readers go
 * on with the old credentials. */
static void refresh(struct wiv_creds_provider *p)
{
	struct wiv_creds fresh = {0};
	char err[512] = "";
	int rc;

	pthread_mutex_unlock(&p->lock);
	rc = p->link(&p->ctx, &fresh, err, sizeof(err));
	if (!rc)
		rc = check_fresh(&fresh, err, sizeof(err));
	pthread_mutex_lock(&p->lock);
	time_t now = time(NULL);
	if (!rc) {
		char when[32];
		format_time(fresh.expiration, when, sizeof(when));
		wiv_debug("refreshed AWS credentials from %s, valid until %s",
			  fresh.source, when);
		wiv_creds_clear(&p->cur);
		p->cur = fresh;
		p->last_err = 0;
		p->refresh_at = next_refresh(now, p->cur.expiration, false);
	} else {
		wiv_warn("cannot refresh AWS credentials from %s: %s",
			 p->cur.source, err[0] ? err : strerror(rc));
		p->last_err = rc == ENOENT ? EACCES : rc;
		p->refresh_at = next_refresh(now, p->cur.expiration, true);
	}
	p->refreshing = false;
	pthread_cond_broadcast(&p->refreshed);
}

int wiv_creds_provider_get(struct wiv_creds_provider *p, struct wiv_creds *out)
{
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	for (;;) {
		time_t now = time(NULL);
		bool expired = p->cur.expiration && now >= p->cur.expiration;
		bool due = p->refresh_at && now >= p->refresh_at;

		if (!due && !expired)
			break;
		if (p->refreshing) {
			/* Single flight: someone else is reloading. */
			if (!expired)
				break;
			pthread_cond_wait(&p->refreshed, &p->lock);
			continue;
		}
		if (!due) {
			/* Expired, and the last reload failed a moment
			 * ago. */
			rc = p->last_err ? p->last_err : EACCES;
			break;
		}
		p->refreshing = true;
		refresh(p);
	}
	if (!rc)
		rc = wiv_creds_copy(out, &p->cur);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void wiv_creds_provider_free(struct wiv_creds_provider *p)
{
	if (!p)
		return;
	pthread_cond_destroy(&p->refreshed);
	pthread_mutex_destroy(&p->lock);
	wiv_creds_clear(&p->cur);
	free(p->profile);
	free(p);
}

int wiv_creds_region(const char *profile, char *out, size_t outlen)
{
	struct wiv_awsconfig_profile p = {0};
	const char *r = wiv_awsconfig_env("AWS_REGION");
	char err[256];
	int rc = ENOENT;

	if (!r)
		r = wiv_awsconfig_env("AWS_DEFAULT_REGION");
	if (!r && !wiv_awsconfig_profile_load(profile, &p, err, sizeof(err)))
		r = get(&p, WIV_AWSCONFIG_REGION);
	if (r)
		rc = (size_t)snprintf(out, outlen, "%s", r) >= outlen
			 ? ENAMETOOLONG
			 : 0;
	wiv_awsconfig_profile_clear(&p);
	return rc;
}
