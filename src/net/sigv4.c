#include "wivaudit/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hexdig[] = "0123456789abcdef";

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

char *wiv_sigv4_uri_encode(const char *s, bool keep_slash)
{
	static const char up[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *p = out;

	if (!out)
		return NULL;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (unreserved(*c) || (keep_slash && *c == '/')) {
			*p++ = (char)*c;
		} else {
			*p++ = '%';
			*p++ = up[*c >> 4];
			*p++ = up[*c & 15];
		}
	}
	*p = '\0';
	return out;
}

struct enc_param {
	char *name;
	char *value;
};

static int cmp_param(const void *a, const void *b)
{
	const struct enc_param *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->value, y->value);
}

int wiv_sigv4_canonical_query(const struct wiv_sigv4_param *params, size_t n,
			      char **out)
{
	struct enc_param *enc = calloc(n ? n : 1, sizeof(*enc));
	size_t len = 1;
	int rc = ENOMEM;

	*out = NULL;
	if (!enc)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		enc[i].name = wiv_sigv4_uri_encode(params[i].name, false);
		enc[i].value = wiv_sigv4_uri_encode(
		    params[i].value ? params[i].value : "", false);
		if (!enc[i].name || !enc[i].value)
			goto done;
		len += strlen(enc[i].name) + strlen(enc[i].value) + 2;
	}
	qsort(enc, n, sizeof(*enc), cmp_param);
	char *q = malloc(len), *p = q;
	if (!q)
		goto done;
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s=%s", i ? "&" : "", enc[i].name,
			     enc[i].value);
	*p = '\0';
	*out = q;
	rc = 0;
done:
	for (size_t i = 0; i < n; i++) {
		free(enc[i].name);
		free(enc[i].value);
	}
	free(enc);
	return rc;
}

struct canon_header {
	char *name;  /* lower case */
	char *value; /* trimmed, inner runs of blanks folded to one space */
	size_t order;
};

/* Headers sort by name; repeated names keep the order they were given in,
 * because their values are signed joined in that order. */
static int cmp_header(const void *a, const void *b)
{
	const struct canon_header *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static char *lower_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static char *fold_value(const char *s)
{
	char *d = malloc(strlen(s) + 1), *p = d;
	bool blank = false;

	if (!d)
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s; s++) {
		if (*s == ' ' || *s == '\t') {
			blank = true;
			continue;
		}
		if (blank && p != d)
			*p++ = ' ';
		blank = false;
		*p++ = *s;
	}
	*p = '\0';
	return d;
}

/* A growing string; on allocation failure it latches ENOMEM. */
struct buf {
	char *s;
	size_t len, cap;
	int err;
};

static void buf_add(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *t = realloc(b->s, cap);
		if (!t) {
			b->err = ENOMEM;
			return;
		}
		b->s = t;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

int wiv_sigv4_canonical_request(const struct wiv_sigv4_request *req, char **out,
				char **signed_headers)
{
	struct canon_header *h;
	struct buf cr = {0}, sh = {0};
	size_t n = req->nheaders;
	int rc = ENOMEM;

	*out = NULL;
	if (signed_headers)
		*signed_headers = NULL;
	if (n == 0)
		return EINVAL;
	h = calloc(n, sizeof(*h));
	if (!h)
		return ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct wiv_sigv4_header *in = &req->headers[i];
		if (strpbrk(in->name, "\r\n:") || strpbrk(in->value, "\r\n")) {
			rc = EINVAL;
			goto done;
		}
		h[i].name = lower_dup(in->name);
		h[i].value = fold_value(in->value);
		h[i].order = i;
		if (!h[i].name || !h[i].value)
			goto done;
	}
	qsort(h, n, sizeof(*h), cmp_header);

	buf_add(&cr, req->method);
	buf_add(&cr, "\n");
	buf_add(&cr, req->path);
	buf_add(&cr, "\n");
	buf_add(&cr, req->query ? req->query : "");
	buf_add(&cr, "\n");
	for (size_t i = 0; i < n; i++) {
		bool first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
		bool last = i + 1 == n || strcmp(h[i].name, h[i + 1].name) != 0;
		if (first) {
			buf_add(&cr, h[i].name);
			buf_add(&cr, ":");
			if (i)
				buf_add(&sh, ";");
			buf_add(&sh, h[i].name);
		} else {
			buf_add(&cr, ",");
		}
		buf_add(&cr, h[i].value);
		if (last)
			buf_add(&cr, "\n");
	}
	buf_add(&cr, "\n");
	buf_add(&cr, sh.s ? sh.s : "");
	buf_add(&cr, "\n");
	buf_add(&cr, req->payload_hash);
	if (cr.err || sh.err)
		goto done;
	*out = cr.s;
	cr.s = NULL;
	if (signed_headers) {
		*signed_headers = sh.s;
		sh.s = NULL;
	}
	rc = 0;
done:
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].value);
	}
	free(h);
	free(cr.s);
	free(sh.s);
	return rc;
}

void wiv_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != 32) {
		/* Only fails when OpenSSL cannot allocate: a digest that
		 * matches nothing makes the request fail loudly at S3. */
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	hex(md, 32, out);
}

static bool valid_amz_date(const char *d)
{
	if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)d[i]))
			return false;
	return true;
}

int wiv_sigv4_string_to_sign(const struct wiv_sigv4_scope *scope,
			     const char *canonical_request, char **out)
{
	char hash[65];

	*out = NULL;
	if (!valid_amz_date(scope->amz_date))
		return EINVAL;
	wiv_sigv4_sha256_hex(canonical_request, strlen(canonical_request),
			     hash);
	if (asprintf(out, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
		     scope->amz_date, scope->amz_date, scope->region,
		     scope->service, hash) < 0) {
		*out = NULL;
		return ENOMEM;
	}
	return 0;
}

static bool hmac(const void *key, size_t keylen, const char *msg,
		 unsigned char out[32])
{
	unsigned int len = 0;

	return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
		    strlen(msg), out, &len) &&
	       len == 32;
}

int wiv_sigv4_signature(const char *secret, const struct wiv_sigv4_scope *scope,
			const char *string_to_sign, char out[65])
{
	unsigned char k[32], sig[32];
	char date[9];
	char *kdate;
	bool ok;

	if (!valid_amz_date(scope->amz_date))
		return EINVAL;
	memcpy(date, scope->amz_date, 8);
	date[8] = '\0';
	if (asprintf(&kdate, "AWS4%s", secret) < 0)
		return ENOMEM;
	ok = hmac(kdate, strlen(kdate), date, k) &&
	     hmac(k, 32, scope->region, k) && hmac(k, 32, scope->service, k) &&
	     hmac(k, 32, "aws4_request", k) && hmac(k, 32, string_to_sign, sig);
	OPENSSL_cleanse(kdate, strlen(kdate));
	free(kdate);
	OPENSSL_cleanse(k, sizeof(k));
	if (!ok)
		return EIO;
	hex(sig, 32, out);
	return 0;
}

int wiv_sigv4_authorization(const struct wiv_sigv4_request *req,
			    const struct wiv_sigv4_scope *scope,
			    const char *access_key_id, const char *secret,
			    char **out)
{
	char *creq = NULL, *signed_headers = NULL, *sts = NULL;
	char sig[65];
	int rc;

	*out = NULL;
	rc = wiv_sigv4_canonical_request(req, &creq, &signed_headers);
	if (!rc)
		rc = wiv_sigv4_string_to_sign(scope, creq, &sts);
	if (!rc)
		rc = wiv_sigv4_signature(secret, scope, sts, sig);
	if (!rc && asprintf(out,
			    "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/"
			    "aws4_request, SignedHeaders=%s, Signature=%s",
			    access_key_id, scope->amz_date, scope->region,
			    scope->service, signed_headers, sig) < 0) {
		*out = NULL;
		rc = ENOMEM;
	}
	free(creq);
	free(signed_headers);
	free(sts);
	return rc;
}

void wiv_sigv4_amz_date(time_t t, char out[17])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
