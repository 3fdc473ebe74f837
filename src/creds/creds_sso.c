/* IAM Identity Center (SSO) profiles: the access token that `aws sso login`
 * caches under ~/.aws/sso/cache is traded for role credentials at the
 * portal's GetRoleCredentials. wivaudit never logs in itself: an expired
 * token means running `aws sso login` again. */
#include "wivaudit/credsrc.h"
#include "wivaudit/awsconfig.h"
#include "wivaudit/secret.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "wivaudit/http.h"
#include "wivaudit/sigv4.h"

#define MAX_ANSWER (64 * 1024)
#define PORTAL_TIMEOUT_S 10
#define PORTAL_RETRIES 2

/* Where the profile's SSO settings live and what they say. */
struct sso {
	const char *profile;
	const char *session;   /* sso_session, NULL in the legacy form */
	const char *start_url; /* names the token cache of the legacy form */
	const char *region;
	const char *account;
	const char *role;
};

/* The hint every token problem ends with. */
static void login_hint(const struct sso *s, char *buf, size_t len)
{
	snprintf(buf, len, "run `aws sso login --profile %s`%s%s%s",
		 s->profile, s->session ? " (sso-session '" : "",
		 s->session ? s->session : "", s->session ? "')" : "");
}

/* The cache file: the hex SHA-1 of the session name, or of the start URL
 * for the legacy form, as the AWS CLI names it. */
static char *cache_file(const struct sso *s)
{
	const char *key = s->session ? s->session : s->start_url;
	unsigned char md[SHA_DIGEST_LENGTH];
	char rel[64];
	int n = snprintf(rel, sizeof(rel), "sso/cache/");

	SHA1((const unsigned char *)key, strlen(key), md);
	for (size_t i = 0; i < sizeof(md); i++)
		n += snprintf(rel + n, sizeof(rel) - (size_t)n, "%02x", md[i]);
	snprintf(rel + n, sizeof(rel) - (size_t)n, ".json");
	return wiv_awsconfig_home_file(rel);
}

/* expiresAt: "2026-01-28T09:05:07Z", or "...UTC" from older CLIs. */
static int parse_expiry(const char *v, time_t *out)
{
	char buf[64];
	size_t n = strlen(v);

	if (n >= sizeof(buf))
		return EINVAL;
	memcpy(buf, v, n + 1);
	if (n > 3 && strcmp(buf + n - 3, "UTC") == 0)
		strcpy(buf + n - 3, "Z");
	return wiv_creds_parse_time(buf, out);
}

/* Reads the cached access token into *token (a new string, wiped by the
 * caller). Returns 0, or EACCES when it is missing, unreadable or expired,
 * with the fix in err. */
static int read_token(const struct sso *s, char **token, char *err,
		      size_t errlen)
{
	char hint[256], *path = cache_file(s);
	json_error_t jerr;
	json_t *doc = NULL;
	time_t exp;
	int rc = EACCES;

	*token = NULL;
	login_hint(s, hint, sizeof(hint));
	if (!path) {
		snprintf(err, errlen, "out of memory");
		return ENOMEM;
	}
	doc = json_load_file(path, 0, &jerr);
	const char *tok =
	    json_string_value(json_object_get(doc, "accessToken"));
	const char *when =
	    json_string_value(json_object_get(doc, "expiresAt"));
	if (!doc) {
		snprintf(err, errlen, "no SSO login cached for profile '%s' "
				      "(%s: %s): %s",
			 s->profile, path, jerr.text, hint);
	} else if (!tok || !*tok || !when || parse_expiry(when, &exp)) {
		snprintf(err, errlen,
			 "the SSO token cache %s lacks accessToken or a valid "
			 "expiresAt: %s",
			 path, hint);
	} else if (exp <= time(NULL)) {
		snprintf(err, errlen,
			 "the SSO login of profile '%s' expired at %s: %s",
			 s->profile, when, hint);
	} else if (!(*token = strdup(tok))) {
		snprintf(err, errlen, "out of memory");
		rc = ENOMEM;
	} else {
		rc = 0;
	}
	json_decref(doc);
	free(path);
	return rc;
}

/* Takes the profile's settings, from its sso-session section when it names
 * one. Returns 0, ENOENT when the profile is not an SSO profile, or EINVAL
 * with what is missing in err. */
static int settings(const struct wiv_awsconfig_profile *p, char **session_vals,
		    struct sso *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->profile = p->name;
	s->session = wiv_awsconfig_get(p, WIV_AWSCONFIG_SSO_SESSION);
	s->start_url = wiv_awsconfig_get(p, WIV_AWSCONFIG_SSO_START_URL);
	s->region = wiv_awsconfig_get(p, WIV_AWSCONFIG_SSO_REGION);
	s->account = wiv_awsconfig_get(p, WIV_AWSCONFIG_SSO_ACCOUNT_ID);
	s->role = wiv_awsconfig_get(p, WIV_AWSCONFIG_SSO_ROLE_NAME);
	if (!s->session && !s->start_url)
		return ENOENT;
	if (s->session) {
		bool found;
		int rc = wiv_awsconfig_sso_session_load(p, s->session, &found,
							session_vals);
		if (rc) {
			snprintf(err, errlen, "cannot read %s: %s",
				 p->config_path, strerror(rc));
			return rc;
		}
		if (!found) {
			snprintf(err, errlen,
				 "profile '%s' names sso_session '%s', but %s "
				 "has no [sso-session %s]",
				 p->name, s->session, p->config_path,
				 s->session);
			return EINVAL;
		}
		s->start_url = session_vals[WIV_AWSCONFIG_SSO_START_URL];
		s->region = session_vals[WIV_AWSCONFIG_SSO_REGION];
	}
	const char *missing = !s->start_url ? "sso_start_url"
			      : !s->region  ? "sso_region"
			      : !s->account ? "sso_account_id"
			      : !s->role    ? "sso_role_name"
					    : NULL;
	if (missing) {
		snprintf(err, errlen, "SSO profile '%s' lacks %s", p->name,
			 missing);
		return EINVAL;
	}
	return 0;
}

/* GetRoleCredentials' URL: AWS_ENDPOINT_URL_SSO, as the AWS SDKs allow,
 * else the portal of sso_region. */
static char *portal_url(const struct sso *s)
{
	const char *base = wiv_awsconfig_env("AWS_ENDPOINT_URL_SSO");
	char *account = wiv_sigv4_uri_encode(s->account, false);
	char *role = wiv_sigv4_uri_encode(s->role, false);
	char *url = NULL;
	size_t n = base ? strlen(base) : 0;

	while (n && base[n - 1] == '/')
		n--;
	if (account && role &&
	    (base ? asprintf(&url,
			     "%.*s/federation/credentials?account_id=%s&"
			     "role_name=%s",
			     (int)n, base, account, role)
		  : asprintf(&url,
			     "https://portal.sso.%s.amazonaws.com/federation/"
			     "credentials?account_id=%s&role_name=%s",
			     s->region, account, role)) < 0)
		url = NULL;
	free(account);
	free(role);
	return url;
}

/* {"roleCredentials": {"accessKeyId", "secretAccessKey", "sessionToken",
 * "expiration" (epoch milliseconds)}} into out. */
static int parse_answer(const char *body, size_t len, struct wiv_creds *out)
{
	json_t *doc = json_loadb(body, len, 0, NULL);
	json_t *rc_obj = json_object_get(doc, "roleCredentials");
	const char *id =
	    json_string_value(json_object_get(rc_obj, "accessKeyId"));
	const char *secret =
	    json_string_value(json_object_get(rc_obj, "secretAccessKey"));
	const char *token =
	    json_string_value(json_object_get(rc_obj, "sessionToken"));
	json_t *exp = json_object_get(rc_obj, "expiration");
	int rc = EINVAL;

	if (id && *id && secret && *secret && token && *token &&
	    json_is_integer(exp) && json_integer_value(exp) > 0) {
		out->access_key_id = strdup(id);
		out->secret_access_key = strdup(secret);
		out->session_token = strdup(token);
		out->expiration = (time_t)(json_integer_value(exp) / 1000);
		rc = out->access_key_id && out->secret_access_key &&
			     out->session_token
			 ? 0
			 : ENOMEM;
		if (rc)
			wiv_creds_clear(out);
	}
	json_decref(doc);
	return rc;
}

/* Asks the portal; the token travels only in its header. */
static int get_role_credentials(const struct sso *s, const char *token,
				struct wiv_creds *out, char *err,
				size_t errlen)
{
	struct wiv_http_config hc = {.cafile = getenv("AWS_CA_BUNDLE"),
				     .retries = PORTAL_RETRIES,
				     .timeout_s = PORTAL_TIMEOUT_S};
	struct wiv_http_result res;
	struct wiv_http *h = NULL;
	char *url = portal_url(s), *hdr = NULL, *body = NULL, hint[256];
	size_t len = 0;
	int rc;

	login_hint(s, hint, sizeof(hint));
	if (!url || asprintf(&hdr, "x-amz-sso_bearer_token: %s", token) < 0) {
		hdr = NULL;
		rc = ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = wiv_http_new(&hc, &h, err, errlen);
	if (rc)
		goto out;
	const char *headers[] = {hdr, NULL};
	struct wiv_http_small req = {.method = "GET",
				     .what = "SSO GetRoleCredentials",
				     .url = url,
				     .headers = headers,
				     .max = MAX_ANSWER};
	rc = wiv_http_fetch(h, &req, &body, &len, &res);
	if (rc == 0 && (rc = parse_answer(body, len, out)) == EINVAL)
		snprintf(err, errlen,
			 "the SSO portal %s sent no usable roleCredentials",
			 url);
	else if (rc && (res.status == 401 || res.status == 403)) {
		/* 401: the token was revoked or expired early; 403: this
		 * login may not use the account or role. */
		snprintf(err, errlen,
			 res.status == 401
			     ? "the SSO portal refused the login of profile "
			       "'%s' (expired or signed out): %s"
			     : "the SSO login of profile '%s' may not use "
			       "account %s, role %s (sso_account_id, "
			       "sso_role_name?)",
			 s->profile, res.status == 401 ? hint : s->account,
			 s->role);
		rc = EACCES;
	} else if (rc) {
		char why[320];
		snprintf(err, errlen, "SSO GetRoleCredentials at %s failed: %s",
			 url,
			 rc == EMSGSIZE
			     ? "answer too long"
			     : wiv_http_describe(&res, why, sizeof(why)));
	}
out:
	if (body) {
		OPENSSL_cleanse(body, len);
		free(body);
	}
	wiv_http_free(h);
	wiv_secret_free(hdr);
	free(url);
	return rc;
}

int wiv_credsrc_sso(const struct wiv_awsconfig_profile *p,
		    struct wiv_creds *out, char *err, size_t errlen)
{
	char *session_vals[WIV_AWSCONFIG_NKEYS] = {0}, *token = NULL;
	struct sso s;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = settings(p, session_vals, &s, err, errlen);
	if (!rc)
		rc = read_token(&s, &token, err, errlen);
	if (!rc)
		rc = get_role_credentials(&s, token, out, err, errlen);
	if (!rc)
		snprintf(out->source, sizeof(out->source),
			 "IAM Identity Center (SSO) profile %.60s%s%.60s%s, "
			 "account %.20s, role %.60s",
			 s.profile, s.session ? " (sso-session " : "",
			 s.session ? s.session : "", s.session ? ")" : "",
			 s.account, s.role);
	wiv_secret_free(token);
	for (int i = 0; i < WIV_AWSCONFIG_NKEYS; i++)
		wiv_secret_free(session_vals[i]);
	return rc;
}
