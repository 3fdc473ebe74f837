/* STS AssumeRole and AssumeRoleWithWebIdentity over the http loop. */
#include "wivaudit/sts.h"
#include "wivaudit/secret.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>
#include <openssl/crypto.h>

#include "wivaudit/http.h"
#include "wivaudit/sigv4.h"

/* An answer is about 2 KiB; an OIDC token up to a few KiB. */
#define MAX_ANSWER (64 * 1024)
#define MAX_FIELD (16 * 1024)

/* STS answers within seconds; a slow network gets a few tries. */
#define STS_TIMEOUT_S 10
#define STS_RETRIES 2

/* --- the answer --- */

enum field { F_ID, F_SECRET, F_TOKEN, F_EXPIRATION, F_NONE };

static const char *const field_names[] = {"AccessKeyId", "SecretAccessKey",
					  "SessionToken", "Expiration"};

struct answer {
	XML_Parser xp;
	int depth;
	bool in_credentials;
	int credentials_depth;
	enum field cur;
	char *text; /* MAX_FIELD + 1 bytes, wiped at the end */
	size_t len;
	char *value[4];
	int err;
};

static void XMLCALL on_start(void *data, const XML_Char *name,
			     const XML_Char **attrs)
{
	struct answer *a = data;

	(void)attrs;
	a->depth++;
	a->cur = F_NONE;
	a->len = 0;
	if (strcmp(name, "Credentials") == 0 && !a->in_credentials) {
		a->in_credentials = true;
		a->credentials_depth = a->depth;
	} else if (a->in_credentials && a->depth == a->credentials_depth + 1) {
		for (int f = 0; f < F_NONE; f++)
			if (strcmp(name, field_names[f]) == 0)
				a->cur = (enum field)f;
	}
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct answer *a = data;

	if (a->cur == F_NONE)
		return;
	if ((size_t)len > MAX_FIELD - a->len) {
		a->err = EBADMSG;
		XML_StopParser(a->xp, XML_FALSE);
		return;
	}
	memcpy(a->text + a->len, s, (size_t)len);
	a->len += (size_t)len;
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	struct answer *a = data;

	(void)name;
	if (a->cur != F_NONE) {
		a->text[a->len] = '\0';
		wiv_secret_free(a->value[a->cur]);
		if (!(a->value[a->cur] = strdup(a->text))) {
			a->err = ENOMEM;
			XML_StopParser(a->xp, XML_FALSE);
		}
		a->cur = F_NONE;
	}
	if (a->in_credentials && a->depth == a->credentials_depth)
		a->in_credentials = false;
	a->depth--;
}

int wiv_sts_parse_credentials(const void *xml, size_t len,
			      struct wiv_creds *out)
{
	struct answer a = {.cur = F_NONE};
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len > MAX_ANSWER)
		return EBADMSG;
	a.text = malloc(MAX_FIELD + 1);
	a.xp = XML_ParserCreate("UTF-8");
	if (!a.text || !a.xp) {
		rc = ENOMEM;
		goto out;
	}
	XML_SetUserData(a.xp, &a);
	XML_SetElementHandler(a.xp, on_start, on_end);
	XML_SetCharacterDataHandler(a.xp, on_text);
	if (XML_Parse(a.xp, xml, (int)len, XML_TRUE) != XML_STATUS_OK)
		rc = a.err ? a.err : EBADMSG;
	if (!rc &&
	    (!a.value[F_ID] || !a.value[F_SECRET] || !*a.value[F_ID] ||
	     !*a.value[F_SECRET] || !a.value[F_EXPIRATION] ||
	     wiv_creds_parse_time(a.value[F_EXPIRATION], &out->expiration)))
		rc = EBADMSG;
	if (!rc) {
		out->access_key_id = a.value[F_ID];
		out->secret_access_key = a.value[F_SECRET];
		out->session_token = a.value[F_TOKEN];
		a.value[F_ID] = a.value[F_SECRET] = a.value[F_TOKEN] = NULL;
	}
out:
	for (int f = 0; f < F_NONE; f++)
		wiv_secret_free(a.value[f]);
	if (a.text) {
		OPENSSL_cleanse(a.text, MAX_FIELD + 1);
		free(a.text);
	}
	if (a.xp)
		XML_ParserFree(a.xp);
	if (rc)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* --- the request --- */

struct form {
	char *s;
	size_t len, cap;
	int err;
};

/* Appends "&name=value", form-encoded; a NULL value adds nothing. The
 * buffer is grown by hand so that no copy of a token is left unwiped. */
static void form_add(struct form *f, const char *name, const char *value)
{
	char *v;

	if (f->err || !value)
		return;
	if (!(v = wiv_sigv4_uri_encode(value, false))) {
		f->err = ENOMEM;
		return;
	}
	size_t need = f->len + strlen(name) + strlen(v) + 3;
	if (need > f->cap) {
		size_t cap = need * 2;
		char *s = malloc(cap);
		if (!s) {
			f->err = ENOMEM;
			wiv_secret_free(v);
			return;
		}
		if (f->s) {
			memcpy(s, f->s, f->len + 1);
			OPENSSL_cleanse(f->s, f->cap);
			free(f->s);
		}
		f->s = s;
		f->cap = cap;
	}
	f->len += (size_t)sprintf(f->s + f->len, "%s%s=%s", f->len ? "&" : "",
				  name, v);
	wiv_secret_free(v);
}

struct endpoint {
	char url[512];
	char host[256];
	char path[256];
	char region[64];
};

/* AWS_ENDPOINT_URL_STS, else the regional endpoint of role->region. */
static int find_endpoint(const struct wiv_sts_role *role, struct endpoint *e,
			 char *err, size_t errlen)
{
	const char *set = getenv("AWS_ENDPOINT_URL_STS");
	const char *region =
	    role->region && *role->region ? role->region : "us-east-1";
	const char *p;

	snprintf(e->region, sizeof(e->region), "%s", region);
	if (set && *set) {
		snprintf(e->url, sizeof(e->url), "%s", set);
	} else {
		const char *dom = strncmp(region, "cn-", 3) == 0
				      ? "amazonaws.com.cn"
				      : "amazonaws.com";
		snprintf(e->url, sizeof(e->url), "https://sts.%s.%s", region,
			 dom);
	}
	p = strstr(e->url, "://");
	if (!p || (strncmp(e->url, "http://", 7) != 0 &&
		   strncmp(e->url, "https://", 8) != 0)) {
		snprintf(err, errlen,
			 "STS endpoint '%s' must start with http:// or "
			 "https://",
			 e->url);
		return EINVAL;
	}
	p += 3;
	size_t hl = strcspn(p, "/?#");
	if (hl == 0 || hl >= sizeof(e->host) || p[hl + strcspn(p + hl, "?#")]) {
		snprintf(err, errlen,
			 "STS endpoint '%s' has no host, or a query", e->url);
		return EINVAL;
	}
	memcpy(e->host, p, hl);
	e->host[hl] = '\0';
	snprintf(e->path, sizeof(e->path), "%s", p[hl] ? p + hl : "/");
	return 0;
}

/* Posts form to STS (signed with source when non-NULL) and parses the
 * credentials out of the answer. */
static int call(const char *action, const struct wiv_sts_role *role,
		const struct form *form, const struct wiv_creds *source,
		struct wiv_creds *out, char *err, size_t errlen)
{
	struct endpoint e;
	struct wiv_http *http = NULL;
	struct wiv_http_result res;
	char date[17], sha[65], *auth = NULL, *body = NULL;
	char *lines[6] = {0};
	size_t nlines = 0, len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (form->err)
		return form->err;
	rc = find_endpoint(role, &e, err, errlen);
	if (rc)
		return rc;
	wiv_sigv4_amz_date(time(NULL), date);
	static const char ctype[] =
	    "application/x-www-form-urlencoded; charset=utf-8";
	if (source) {
		wiv_sigv4_sha256_hex(form->s, form->len, sha);
		struct wiv_sigv4_header h[4] = {
		    {"host", e.host},
		    {"content-type", ctype},
		    {"x-amz-date", date},
		    {"x-amz-security-token", source->session_token},
		};
		char *path = wiv_sigv4_uri_encode(e.path, true);
		struct wiv_sigv4_request req = {
		    .method = "POST",
		    .path = path,
		    .query = "",
		    .headers = h,
		    .nheaders = source->session_token ? 4 : 3,
		    .payload_hash = sha,
		};
		struct wiv_sigv4_scope scope = {date, e.region, "sts"};
		rc = path ? wiv_sigv4_authorization(
				&req, &scope, source->access_key_id,
				source->secret_access_key, &auth)
			  : ENOMEM;
		free(path);
		if (rc)
			goto out;
	}
	if (asprintf(&lines[nlines++], "Host: %s", e.host) < 0 ||
	    asprintf(&lines[nlines++], "Content-Type: %s", ctype) < 0 ||
	    asprintf(&lines[nlines++], "x-amz-date: %s", date) < 0 ||
	    (source && source->session_token &&
	     asprintf(&lines[nlines++], "x-amz-security-token: %s",
		      source->session_token) < 0) ||
	    (auth &&
	     asprintf(&lines[nlines++], "Authorization: %s", auth) < 0)) {
		lines[--nlines] = NULL;
		rc = ENOMEM;
		goto out;
	}
	struct wiv_http_config hc = {
	    .cafile = getenv("AWS_CA_BUNDLE"),
	    .retries = STS_RETRIES,
	    .timeout_s = STS_TIMEOUT_S,
	};
	rc = wiv_http_new(&hc, &http, err, errlen);
	if (rc)
		goto out;
	char what[64];
	snprintf(what, sizeof(what), "STS %s", action);
	struct wiv_http_small req = {
	    .method = "POST",
	    .what = what,
	    .url = e.url,
	    .headers = (const char *const *)lines,
	    .body = form->s,
	    .max = MAX_ANSWER,
	};
	rc = wiv_http_fetch(http, &req, &body, &len, &res);
	if (rc) {
		char why[320];
		snprintf(err, errlen, "%s at %s for %s failed: %s", what, e.url,
			 role->role_arn,
			 rc == EMSGSIZE
			     ? "answer too long"
			     : wiv_http_describe(&res, why, sizeof(why)));
		goto out;
	}
	rc = wiv_sts_parse_credentials(body, len, out);
	if (rc)
		snprintf(err, errlen,
			 "%s at %s for %s: the answer holds no credentials",
			 what, e.url, role->role_arn);
out:
	if (body) {
		OPENSSL_cleanse(body, len);
		free(body);
	}
	for (size_t i = 0; i < nlines; i++)
		wiv_secret_free(lines[i]);
	free(auth);
	wiv_http_free(http);
	return rc;
}

static void add_common(struct form *f, const char *action,
		       const struct wiv_sts_role *role, char *session,
		       size_t session_len)
{
	if (role->session_name && *role->session_name)
		snprintf(session, session_len, "%s", role->session_name);
	else
		snprintf(session, session_len, "wivaudit-%lld",
			 (long long)time(NULL));
	form_add(f, "Action", action);
	form_add(f, "Version", "2011-06-15");
	form_add(f, "RoleArn", role->role_arn);
	form_add(f, "RoleSessionName", session);
	if (role->duration_s) {
		char d[16];
		snprintf(d, sizeof(d), "%u", role->duration_s);
		form_add(f, "DurationSeconds", d);
	}
}

int wiv_sts_assume_role(const struct wiv_sts_role *role,
			const struct wiv_creds *source, struct wiv_creds *out,
			char *err, size_t errlen)
{
	struct form f = {0};
	char session[128];
	int rc;

	add_common(&f, "AssumeRole", role, session, sizeof(session));
	if (role->external_id && *role->external_id)
		form_add(&f, "ExternalId", role->external_id);
	rc = call("AssumeRole", role, &f, source, out, err, errlen);
	wiv_secret_free(f.s);
	return rc;
}

int wiv_sts_assume_role_with_web_identity(const struct wiv_sts_role *role,
					  const char *token,
					  struct wiv_creds *out, char *err,
					  size_t errlen)
{
	struct form f = {0};
	char session[128];
	int rc;

	add_common(&f, "AssumeRoleWithWebIdentity", role, session,
		   sizeof(session));
	form_add(&f, "WebIdentityToken", token);
	rc =
	    call("AssumeRoleWithWebIdentity", role, &f, NULL, out, err, errlen);
	wiv_secret_free(f.s);
	return rc;
}
