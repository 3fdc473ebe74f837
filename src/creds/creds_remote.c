/* Credentials served over HTTP by the platform: the ECS/EKS container
 * endpoint and EC2 instance metadata (IMDSv2). */
#include "wivaudit/credsrc.h"
#include "wivaudit/awsconfig.h"
#include "wivaudit/secret.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "wivaudit/http.h"

#define MAX_ANSWER (64 * 1024)

/* The container agent answers at once; botocore gives it 2 s and 3 tries. */
#define CONTAINER_TIMEOUT_S 2
#define CONTAINER_RETRIES 2
#define CONTAINER_HOST "http://169.254.170.2"

/* Instance metadata gets one second per request, so a machine that is not
 * on EC2 does not hold up the mount (the AWS CLI does the same). */
#define IMDS_TIMEOUT_S 1
#define IMDS_TOKEN_TTL "21600"

/* One GET or PUT with a fresh client. */
static int fetch(const char *method, const char *what, const char *url,
		 const char *const *headers, unsigned timeout_s,
		 unsigned retries, char **body, size_t *len,
		 struct wiv_http_result *res, char *err, size_t errlen)
{
	struct wiv_http_config hc = {
	    .cafile = getenv("AWS_CA_BUNDLE"),
	    .retries = retries,
	    .timeout_s = timeout_s,
	};
	struct wiv_http *h;
	int rc = wiv_http_new(&hc, &h, err, errlen);

	if (rc)
		return rc;
	struct wiv_http_small req = {.method = method,
				     .what = what,
				     .url = url,
				     .headers = headers,
				     .max = MAX_ANSWER};
	rc = wiv_http_fetch(h, &req, body, len, res);
	wiv_http_free(h);
	if (rc) {
		char why[320];
		snprintf(err, errlen, "%s %s failed: %s", what, url,
			 rc == EMSGSIZE
			     ? "answer too long"
			     : wiv_http_describe(res, why, sizeof(why)));
	}
	return rc;
}

static void free_body(char *body, size_t len)
{
	if (body) {
		OPENSSL_cleanse(body, len);
		free(body);
	}
}

/* Parses a credentials JSON answer of what into out. */
static int parse(const char *what, const char *body, size_t len,
		 struct wiv_creds *out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(body, len, 0, &jerr);
	const char *code = json_string_value(json_object_get(doc, "Code"));
	char why[128] = "is not a JSON object";
	int rc = EINVAL;

	if (!json_is_object(doc))
		;
	else if (code && strcmp(code, "Success") != 0)
		snprintf(why, sizeof(why), "says Code \"%.64s\"", code);
	else
		rc = wiv_credsrc_from_json(doc, "Token", out, why, sizeof(why));
	json_decref(doc);
	if (rc)
		snprintf(err, errlen, "the answer of %s %s", what, why);
	return rc;
}

/* Plain http may only carry the authorization token to this machine or
 * to the container agent's link-local addresses, as the AWS SDKs allow. */
static bool allowed_full_uri(const char *url)
{
	unsigned char a[16];
	char host[256];
	const char *p;

	if (strncmp(url, "https://", 8) == 0)
		return true;
	if (strncmp(url, "http://", 7) != 0)
		return false;
	p = url + 7;
	size_t n = strcspn(p, "/?#");
	if (n >= sizeof(host))
		return false;
	memcpy(host, p, n);
	host[n] = '\0';
	if (host[0] == '[') {
		char *end = strchr(host, ']');
		if (!end)
			return false;
		*end = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
		if (inet_pton(AF_INET6, host, a) != 1)
			return false;
		/* fd00:ec2::23, EKS Pod Identity's agent. */
		static const unsigned char eks6[16] = {0xfd, 0x00, 0x0e,
						       0xc2, [15] = 0x23};
		static const unsigned char loop6[16] = {[15] = 1};
		return memcmp(a, loop6, 16) == 0 || memcmp(a, eks6, 16) == 0;
	}
	char *colon = strchr(host, ':');
	if (colon)
		*colon = '\0';
	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) != 1)
		return false;
	return a[0] == 127 || strcmp(host, "169.254.170.2") == 0 ||
	       strcmp(host, "169.254.170.23") == 0;
}

/* The authorization token, from its file (read each time: it is rotated)
 * or the variable. Sets *out to a new string or NULL when none is set. */
static int container_token(char **out, char *err, size_t errlen)
{
	const char *file =
	    wiv_awsconfig_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *value = wiv_awsconfig_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	char *t = NULL;
	size_t cap = 0;
	ssize_t n;

	*out = NULL;
	if (file) {
		FILE *f = fopen(file, "re");
		if (!f) {
			int rc = errno;
			snprintf(
			    err, errlen,
			    "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_"
			    "FILE %s: %s",
			    file, strerror(rc));
			return rc;
		}
		n = getdelim(&t, &cap, '\0', f);
		fclose(f);
		while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r'))
			t[--n] = '\0';
		if (n <= 0) {
			free(t);
			snprintf(err, errlen, "%s is empty", file);
			return EINVAL;
		}
	} else if (value && !(t = strdup(value))) {
		return ENOMEM;
	}
	if (t && strpbrk(t, "\r\n")) {
		wiv_secret_free(t);
		snprintf(err, errlen,
			 "the container authorization token holds a line "
			 "break");
		return EINVAL;
	}
	*out = t;
	return 0;
}

int wiv_credsrc_container(struct wiv_creds *out, char *err, size_t errlen)
{
	const char *rel =
	    wiv_awsconfig_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = wiv_awsconfig_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	char *url = NULL, *token = NULL, *auth = NULL, *body = NULL;
	struct wiv_http_result res;
	size_t len = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!rel && !full)
		return ENOENT;
	if (rel ? asprintf(&url, "%s%s%s", CONTAINER_HOST,
			   rel[0] == '/' ? "" : "/", rel) < 0
		: !(url = strdup(full))) {
		url = NULL;
		return ENOMEM;
	}
	if (!rel && !allowed_full_uri(url)) {
		snprintf(err, errlen,
			 "AWS_CONTAINER_CREDENTIALS_FULL_URI %s: plain http is "
			 "only allowed to a loopback address or the container "
			 "agent",
			 url);
		rc = EINVAL;
		goto out;
	}
	rc = container_token(&token, err, errlen);
	if (rc)
		goto out;
	if (token && asprintf(&auth, "Authorization: %s", token) < 0) {
		auth = NULL;
		rc = ENOMEM;
		goto out;
	}
	const char *headers[] = {auth, NULL};
	rc = fetch("GET", "container credentials", url, headers,
		   CONTAINER_TIMEOUT_S, CONTAINER_RETRIES, &body, &len, &res,
		   err, errlen);
	if (!rc)
		rc = parse("the container endpoint", body, len, out, err,
			   errlen);
	if (!rc)
		snprintf(out->source, sizeof(out->source),
			 "container credentials endpoint %s", url);
out:
	free_body(body, len);
	wiv_secret_free(auth);
	wiv_secret_free(token);
	free(url);
	return rc;
}

static bool is_true(const char *v)
{
	return v && strcasecmp(v, "true") == 0;
}

int wiv_credsrc_imds(struct wiv_creds *out, char *err, size_t errlen)
{
	const char *base = wiv_awsconfig_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode =
	    wiv_awsconfig_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	char root[512], *url = NULL, *token = NULL, *tokhdr = NULL;
	char *body = NULL;
	struct wiv_http_result res;
	size_t len = 0, tlen = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if (is_true(getenv("AWS_EC2_METADATA_DISABLED"))) {
		snprintf(err, errlen,
			 "instance metadata disabled by "
			 "AWS_EC2_METADATA_DISABLED");
		return ENOENT;
	}
	if (!base)
		base = mode && strcasecmp(mode, "IPv6") == 0
			   ? "http://[fd00:ec2::254]"
			   : "http://169.254.169.254";
	snprintf(root, sizeof(root), "%s", base);
	for (size_t n = strlen(root); n && root[n - 1] == '/';)
		root[--n] = '\0';

	/* IMDSv2: every request carries a session token from a PUT. */
	static const char *const ttl[] = {
	    "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL, NULL};
	if (asprintf(&url, "%s/latest/api/token", root) < 0) {
		url = NULL;
		return ENOMEM;
	}
	rc = fetch("PUT", "EC2 instance metadata token", url, ttl,
		   IMDS_TIMEOUT_S, 0, &token, &tlen, &res, err, errlen);
	if (rc) {
		/* No answer, or no IMDSv2: not on EC2 as far as we go. */
		if (rc != ENOMEM)
			rc = ENOENT;
		goto out;
	}
	if (!tlen || strpbrk(token, "\r\n") ||
	    asprintf(&tokhdr, "X-aws-ec2-metadata-token: %s", token) < 0) {
		tokhdr = NULL;
		snprintf(err, errlen,
			 "instance metadata at %s sent a bad token", root);
		rc = EIO;
		goto out;
	}
	const char *headers[] = {tokhdr, NULL};

	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/",
		     root) < 0) {
		url = NULL;
		rc = ENOMEM;
		goto out;
	}
	rc = fetch("GET", "EC2 instance role name", url, headers,
		   IMDS_TIMEOUT_S, 1, &body, &len, &res, err, errlen);
	if (rc == ENOENT)
		snprintf(err, errlen,
			 "instance metadata at %s: no IAM role attached to "
			 "this instance",
			 root);
	if (rc)
		goto out;
	char role[256];
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(body, "\r\n"), body);
	free_body(body, len);
	body = NULL;
	if (!role[0] || strchr(role, '/')) {
		snprintf(err, errlen,
			 "instance metadata at %s names no usable role", root);
		rc = role[0] ? EIO : ENOENT;
		goto out;
	}
	free(url);
	if (asprintf(&url, "%s/latest/meta-data/iam/security-credentials/%s",
		     root, role) < 0) {
		url = NULL;
		rc = ENOMEM;
		goto out;
	}
	rc = fetch("GET", "EC2 instance role credentials", url, headers,
		   IMDS_TIMEOUT_S, 1, &body, &len, &res, err, errlen);
	if (!rc)
		rc = parse("instance metadata", body, len, out, err, errlen);
	if (!rc)
		snprintf(out->source, sizeof(out->source),
			 "EC2 instance metadata %.100s, role %.100s", root,
			 role);
out:
	free_body(body, len);
	free_body(token, tlen);
	wiv_secret_free(tokhdr);
	free(url);
	return rc;
}
