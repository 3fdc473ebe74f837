/* The S3 source: ListObjectsV2 and GetObject over the http loop, signed with
 * SigV4, following a bucket into its region when it is not where we
 * looked. */
#include "wivaudit/source.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "wivaudit/creds.h"
#include "wivaudit/http.h"
#include "wivaudit/listxml.h"
#include "wivaudit/log.h"
#include "wivaudit/sigv4.h"

struct s3 {
	struct wiv_source base;
	char *identity;
	char *bucket;
	char *scheme;	 /* "https" or "http" */
	char *endpoint;	 /* host[:port] of a custom endpoint; NULL: AWS */
	char *base_path; /* path prefix of a custom endpoint, "" usually */
	bool path_style;
	struct wiv_creds_provider *creds;
	struct wiv_http *http;

	pthread_mutex_t lock; /* guards region, region_followed */
	char region[64];
	bool region_followed;
};

/* One S3 call, as the per-attempt prepare callback needs it. */
struct op {
	struct s3 *s3;
	const char *what; /* "GET key" or "LIST prefix", for logs */
	const char *key;  /* object key; NULL for a bucket listing */
	const struct wiv_sigv4_param *params;
	size_t nparams;
	const char *etag;  /* If-Match (unquoted) asked by the caller */
	char region[64];   /* the region this attempt was signed for */
	struct page *page; /* listing only */
};

struct entry {
	char *key;
	char *etag; /* NULL for a common prefix */
	char *storage_class;
	uint64_t size;
};

struct page {
	struct wiv_listxml *parser;
	struct entry *v;
	size_t n, cap;
	int err; /* ENOMEM while collecting */
};

static void current_region(struct s3 *s, char *out, size_t len)
{
	pthread_mutex_lock(&s->lock);
	snprintf(out, len, "%s", s->region);
	pthread_mutex_unlock(&s->lock);
}

/* Host and unencoded path of key (NULL: the bucket itself) for region. */
static int locate(const struct s3 *s, const char *region, const char *key,
		  char **host, char **path)
{
	const char *dom = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn"
							 : "amazonaws.com";
	int rc;

	if (s->endpoint && s->path_style)
		rc = asprintf(host, "%s", s->endpoint);
	else if (s->endpoint)
		rc = asprintf(host, "%s.%s", s->bucket, s->endpoint);
	else if (s->path_style)
		rc = asprintf(host, "s3.%s.%s", region, dom);
	else
		rc = asprintf(host, "%s.s3.%s.%s", s->bucket, region, dom);
	if (rc < 0) {
		*host = NULL;
		return ENOMEM;
	}
	const char *base = s->endpoint ? s->base_path : "";
	if (s->path_style)
		rc = asprintf(path, "%s/%s%s%s", base, s->bucket,
			      key ? "/" : "", key ? key : "");
	else
		rc = asprintf(path, "%s/%s", base, key ? key : "");
	if (rc < 0) {
		free(*host);
		*host = NULL;
		*path = NULL;
		return ENOMEM;
	}
	return 0;
}

static struct curl_slist *add_header(struct curl_slist *l, int *rc,
				     const char *fmt, const char *a,
				     const char *b)
{
	char *line;
	struct curl_slist *n;

	if (*rc)
		return l;
	if (asprintf(&line, fmt, a, b) < 0) {
		*rc = ENOMEM;
		return l;
	}
	n = curl_slist_append(l, line);
	/* The line may carry the session token. */
	OPENSSL_cleanse(line, strlen(line));
	free(line);
	if (!n) {
		*rc = ENOMEM;
		return l;
	}
	return n;
}

static void clear_page(struct page *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].key);
		free(p->v[i].etag);
		free(p->v[i].storage_class);
	}
	p->n = 0;
	p->err = 0;
	wiv_listxml_free(p->parser);
	p->parser = NULL;
}

static int page_add(struct page *p, const char *key, const char *etag,
		    uint64_t size, const char *storage_class)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 1024;
		struct entry *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return p->err = ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	struct entry *e = &p->v[p->n];
	e->key = strdup(key);
	e->etag = etag ? strdup(etag) : NULL;
	e->size = size;
	e->storage_class = strdup(storage_class ? storage_class : "");
	if (!e->key || (etag && !e->etag) || !e->storage_class) {
		free(e->key);
		free(e->etag);
		free(e->storage_class);
		return p->err = ENOMEM;
	}
	p->n++;
	return 0;
}

static int collect_object(void *arg, const struct wiv_object_info *o)
{
	return page_add(arg, o->key, o->etag, o->size, o->storage_class);
}

static int collect_prefix(void *arg, const char *prefix)
{
	return page_add(arg, prefix, NULL, 0, NULL);
}

static int feed_page(void *arg, const void *data, size_t len)
{
	struct page *p = arg;

	return wiv_listxml_feed(p->parser, data, len, false);
}

/* Signs and builds one attempt: fresh date and credentials each time, so a
 * retry after a long backoff or a credential refresh is still valid. */
static int prepare(void *arg, struct wiv_http_attempt *a)
{
	struct op *op = arg;
	struct s3 *s = op->s3;
	struct wiv_creds c = {0};
	char *host = NULL, *raw = NULL, *path = NULL, *query = NULL;
	char *auth = NULL, date[17], range[48];
	int rc;

	if (op->page) {
		/* A listing restarts from its first byte on a retry. */
		clear_page(op->page);
		op->page->parser =
		    wiv_listxml_new(collect_object, collect_prefix, op->page);
		if (!op->page->parser)
			return ENOMEM;
		wiv_listxml_url_encoded(op->page->parser);
	}
	current_region(s, op->region, sizeof(op->region));
	rc = locate(s, op->region, op->key, &host, &raw);
	if (!rc && !(path = wiv_sigv4_uri_encode(raw, true)))
		rc = ENOMEM;
	if (!rc)
		rc = wiv_sigv4_canonical_query(op->params, op->nparams, &query);
	if (!rc)
		rc = wiv_creds_provider_get(s->creds, &c);
	if (rc)
		goto out;
	wiv_sigv4_amz_date(time(NULL), date);
	struct wiv_sigv4_header h[4] = {
	    {"host", host},
	    {"x-amz-content-sha256", WIV_SIGV4_EMPTY_SHA256},
	    {"x-amz-date", date},
	    {"x-amz-security-token", c.session_token},
	};
	struct wiv_sigv4_request req = {
	    .method = "GET",
	    .path = path,
	    .query = query,
	    .headers = h,
	    .nheaders = c.session_token ? 4 : 3,
	    .payload_hash = WIV_SIGV4_EMPTY_SHA256,
	};
	struct wiv_sigv4_scope scope = {date, op->region, "s3"};
	rc = wiv_sigv4_authorization(&req, &scope, c.access_key_id,
				     c.secret_access_key, &auth);
	if (rc)
		goto out;
	if (asprintf(&a->url, "%s://%s%s%s%s", s->scheme, host, path,
		     *query ? "?" : "", query) < 0) {
		a->url = NULL;
		rc = ENOMEM;
		goto out;
	}
	a->headers = add_header(a->headers, &rc, "%s%s", "Host: ", host);
	a->headers =
	    add_header(a->headers, &rc, "%s%s",
		       "x-amz-content-sha256: ", WIV_SIGV4_EMPTY_SHA256);
	a->headers = add_header(a->headers, &rc, "%s%s", "x-amz-date: ", date);
	if (c.session_token)
		a->headers =
		    add_header(a->headers, &rc, "%s%s",
			       "x-amz-security-token: ", c.session_token);
	a->headers =
	    add_header(a->headers, &rc, "%s%s", "Authorization: ", auth);
	if (op->etag)
		a->headers = add_header(a->headers, &rc, "%s\"%s\"",
					"If-Match: ", op->etag);
	else if (a->etag)
		a->headers =
		    add_header(a->headers, &rc, "%s%s", "If-Match: ", a->etag);
	if (a->offset) {
		snprintf(range, sizeof(range), "%" PRIu64 "-", a->offset);
		a->headers =
		    add_header(a->headers, &rc, "%s%s", "Range: bytes=", range);
	}
out:
	wiv_creds_clear(&c);
	free(host);
	free(raw);
	free(path);
	free(query);
	free(auth);
	return rc;
}

/* After a wrong-region answer: the region S3 says the bucket is in. */
static const char *told_region(const struct wiv_http_result *res)
{
	if (res->status != 301 && res->status != 307 && res->status != 400)
		return NULL;
	if (res->region[0])
		return res->region;
	return res->s3.region[0] ? res->s3.region : NULL;
}

static bool follow_region(struct s3 *s, const struct op *op,
			  const struct wiv_http_result *res)
{
	const char *r = told_region(res);
	bool log;

	if (!r || strcmp(r, op->region) == 0)
		return false;
	pthread_mutex_lock(&s->lock);
	snprintf(s->region, sizeof(s->region), "%s", r);
	log = !s->region_followed;
	s->region_followed = true;
	pthread_mutex_unlock(&s->lock);
	if (log)
		wiv_info("bucket '%s' is in region %s, not %s: following it "
			 "(-o region=%s saves the detour)",
			 s->bucket, r, op->region, r);
	return true;
}

static const char *hint(const struct s3 *s, int rc,
			const struct wiv_http_result *res, char *buf,
			size_t len)
{
	const char *code = res->s3.code;

	if (rc == EACCES) {
		if (!strcmp(code, "SignatureDoesNotMatch") ||
		    !strcmp(code, "InvalidAccessKeyId"))
			return "check the credentials";
		if (!strcmp(code, "RequestTimeTooSkewed"))
			return "check the system clock";
		if (!strcmp(code, "ExpiredToken"))
			return "the session token has expired: renew the "
			       "credentials";
		snprintf(buf, len,
			 "check that these credentials may list and read "
			 "bucket '%s'",
			 s->bucket);
		return buf;
	}
	if (told_region(res) || res->status == 301)
		return "wrong region? try -o region=";
	if (rc == ETIMEDOUT)
		return "S3 did not answer in time: check the network or -o "
		       "timeout=";
	if (res->status == 0 && strstr(res->detail, "certificate"))
		return "check -o cafile=";
	if (res->status == 0)
		return "check the network and -o endpoint=";
	return NULL;
}

/* The one line a final failure leaves in the log. */
static void log_failure(const struct s3 *s, const struct op *op, int rc,
			const struct wiv_http_result *res)
{
	char why[400], buf[160];
	const char *what;

	if (rc == ECANCELED)
		return;
	wiv_http_describe(res, why, sizeof(why));
	if (!strcmp(res->s3.code, "NoSuchBucket")) {
		wiv_err("bucket '%s' does not exist (%s)", s->bucket, why);
		return;
	}
	switch (rc) {
	case ENOENT:
		what = "no such key";
		break;
	case EACCES:
		what = "access denied";
		break;
	case ESTALE:
		wiv_warn("%s: the object changed since it was listed (%s)",
			 op->what, why);
		return;
	case ETIMEDOUT:
		what = "timed out";
		break;
	case EBADMSG:
		wiv_err("%s: S3 sent a listing that is not valid XML",
			op->what);
		return;
	default:
		what = "failed";
	}
	char tries[32] = "";
	if (res->attempts > 1)
		snprintf(tries, sizeof(tries), " after %u tries",
			 res->attempts);
	const char *h = hint(s, rc, res, buf, sizeof(buf));
	wiv_log(rc == ENOENT ? WIV_LOG_WARN : WIV_LOG_ERR, "%s: %s%s (%s)%s%s",
		op->what, what, tries, why, h ? ": " : "", h ? h : "");
}

/* Performs op, following the bucket once into another region. */
static int run(struct s3 *s, struct op *op, wiv_body_fn on_body, void *arg,
	       bool resumable, struct wiv_http_result *res)
{
	struct wiv_http_request req = {.method = "GET",
				       .what = op->what,
				       .prepare = prepare,
				       .prepare_arg = op,
				       .on_body = on_body,
				       .body_arg = arg,
				       .resumable = resumable};
	int rc = wiv_http_perform(s->http, &req, res);

	if (rc && follow_region(s, op, res))
		rc = wiv_http_perform(s->http, &req, res);
	return rc;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->key,
		      ((const struct entry *)b)->key);
}

static int deliver(struct page *p, wiv_list_object_fn on_object,
		   wiv_list_prefix_fn on_prefix, void *arg)
{
	/* S3 sends a page's keys and its common prefixes as two sorted runs;
	 * merged, the caller sees one sequence in key order. */
	if (p->n > 1)
		qsort(p->v, p->n, sizeof(*p->v), cmp_entry);
	for (size_t i = 0; i < p->n; i++) {
		const struct entry *e = &p->v[i];
		if (e->etag) {
			struct wiv_object_info o = {e->key, e->etag, e->size,
						    e->storage_class};
			if (on_object && on_object(arg, &o))
				return ECANCELED;
		} else if (on_prefix && on_prefix(arg, e->key)) {
			return ECANCELED;
		}
	}
	return 0;
}

static int s3_list(struct wiv_source *src, const char *prefix,
		   const char *delimiter, const char *start_after,
		   wiv_list_object_fn on_object, wiv_list_prefix_fn on_prefix,
		   void *arg)
{
	struct s3 *s = (struct s3 *)src;
	struct page page = {0};
	struct wiv_http_result res;
	char *token = NULL, *what = NULL;
	unsigned pages = 0;
	int rc = 0;

	if (asprintf(&what, "LIST s3://%s/%s", s->bucket,
		     prefix ? prefix : "") < 0)
		return ENOMEM;
	do {
		/* XML 1.0 cannot carry a key holding a control byte: without
		 * encoding-type=url one such key makes the whole page (the
		 * bucket root, or an org) unreadable. */
		struct wiv_sigv4_param params[5] = {{"list-type", "2"},
						    {"encoding-type", "url"}};
		size_t n = 2;
		if (prefix && *prefix)
			params[n++] =
			    (struct wiv_sigv4_param){"prefix", prefix};
		if (delimiter && *delimiter)
			params[n++] =
			    (struct wiv_sigv4_param){"delimiter", delimiter};
		if (token)
			params[n++] = (struct wiv_sigv4_param){
			    "continuation-token", token};
		else if (start_after && *start_after)
			params[n++] = (struct wiv_sigv4_param){"start-after",
							       start_after};
		struct op op = {.s3 = s,
				.what = what,
				.params = params,
				.nparams = n,
				.page = &page};

		rc = run(s, &op, feed_page, &page, false, &res);
		if (!rc && page.parser)
			rc = wiv_listxml_feed(page.parser, NULL, 0, true);
		if (!rc && page.err)
			rc = page.err;
		if (rc == ECANCELED && page.parser) {
			/* The parser, not the caller, stopped the body. */
			rc = page.err
				 ? page.err
				 : wiv_listxml_feed(page.parser, NULL, 0, true);
		}
		if (rc) {
			log_failure(s, &op, rc, &res);
			if (rc == EBADMSG)
				rc = EIO;
			break;
		}
		long bad = wiv_listxml_undecodable(page.parser);
		if (bad)
			wiv_warn("%s: skipped %ld listed key(s) whose url "
				 "encoding is broken (not S3's doing; check "
				 "the endpoint)",
				 what, bad);
		long kc = wiv_listxml_key_count(page.parser);
		if (kc >= 0 && kc != wiv_listxml_seen(page.parser))
			wiv_debug("%s: page says KeyCount %ld but holds %ld",
				  what, kc, wiv_listxml_seen(page.parser));
		rc = deliver(&page, on_object, on_prefix, arg);
		if (rc)
			break;
		const char *next = wiv_listxml_next_token(page.parser);
		bool more = wiv_listxml_truncated(page.parser);
		if (more && (!next || (token && strcmp(next, token) == 0))) {
			wiv_err("%s: S3 says there is more but gave no new "
				"continuation token",
				what);
			rc = EIO;
			break;
		}
		free(token);
		token = more ? strdup(next) : NULL;
		if (more && !token)
			rc = ENOMEM;
		pages++;
	} while (!rc && token);
	wiv_debug("%s: %u page(s), rc %d", what, pages, rc);
	clear_page(&page);
	free(page.v);
	free(token);
	free(what);
	return rc;
}

/* A 403 on a GET that concerns the object rather than the credentials:
 * archived, or a policy denying this key. */
static int object_errno(int rc, const struct wiv_http_result *res)
{
	if (rc != EACCES || res->status != 403)
		return rc;
	if (!strcmp(res->s3.code, "InvalidObjectState"))
		return ENOMEDIUM;
	if (!strcmp(res->s3.code, "AccessDenied"))
		return EPERM;
	return rc;
}

static int s3_get(struct wiv_source *src, const char *key, const char *etag,
		  wiv_body_fn on_data, void *arg)
{
	struct s3 *s = (struct s3 *)src;
	struct wiv_http_result res;
	char *what;
	int rc;

	if (!key || !*key)
		return ENOENT;
	if (asprintf(&what, "GET %s", key) < 0)
		return ENOMEM;
	struct op op = {.s3 = s,
			.what = what,
			.key = key,
			.etag = etag && *etag ? etag : NULL};
	rc = run(s, &op, on_data, arg, true, &res);
	rc = object_errno(rc, &res);
	if (rc == EPERM || rc == ENOMEDIUM)
		/* The tree logs these once per key, with the fix. */
		wiv_debug("%s: %s", what, res.s3.code);
	else if (rc)
		log_failure(s, &op, rc, &res);
	else
		wiv_debug("%s: %" PRIu64 " bytes in %u attempt(s)", what,
			  res.bytes, res.attempts);
	free(what);
	return rc;
}

static void s3_destroy(struct wiv_source *src)
{
	struct s3 *s = (struct s3 *)src;

	wiv_http_free(s->http);
	wiv_creds_provider_free(s->creds);
	pthread_mutex_destroy(&s->lock);
	free(s->identity);
	free(s->bucket);
	free(s->scheme);
	free(s->endpoint);
	free(s->base_path);
	free(s);
}

static const struct wiv_source_ops s3_ops = {s3_list, s3_get, s3_destroy};

int wiv_source_s3_status(struct wiv_source *src, struct wiv_s3_status *st)
{
	struct s3 *s = (struct s3 *)src;
	struct wiv_creds c = {0};

	memset(st, 0, sizeof(*st));
	if (src->ops != &s3_ops)
		return EINVAL;
	pthread_mutex_lock(&s->lock);
	snprintf(st->region, sizeof(st->region), "%s", s->region);
	st->region_followed = s->region_followed;
	pthread_mutex_unlock(&s->lock);
	int rc = wiv_creds_provider_get(s->creds, &c);
	if (rc)
		return rc;
	size_t n = strlen(c.access_key_id);
	snprintf(st->creds_source, sizeof(st->creds_source), "%s", c.source);
	snprintf(st->key_id_hint, sizeof(st->key_id_hint), "%s%s",
		 n > 4 ? "..." : "", n > 4 ? c.access_key_id + n - 4 : "");
	wiv_creds_clear(&c);
	return 0;
}

/* Buckets whose names are not one DNS label each cannot be virtual hosts
 * under TLS (the certificate is *.s3.amazonaws.com). */
static bool dns_safe(const char *bucket)
{
	for (const char *c = bucket; *c; c++)
		if (!(islower((unsigned char)*c) ||
		      isdigit((unsigned char)*c) || *c == '-'))
			return false;
	return true;
}

static bool valid_bucket(const char *b)
{
	size_t n = strlen(b);

	if (n < 1 || n > 255)
		return false;
	for (const char *c = b; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr(".-_", *c))
			return false;
	return true;
}

/* Whether host (no port) is an IP address or localhost: such endpoints
 * cannot carry the bucket in the host name. */
static bool literal_host(const char *host)
{
	unsigned char a[16];

	return host[0] == '[' || strcmp(host, "localhost") == 0 ||
	       inet_pton(AF_INET, host, a) == 1;
}

/* Splits "scheme://host[:port][/path]" into s. Returns 0 or EINVAL. */
static int parse_endpoint(struct s3 *s, const char *url, char *err,
			  size_t errlen)
{
	const char *p = strstr(url, "://");

	if (!p || (strncmp(url, "http", 4) != 0) ||
	    (p - url != 4 && p - url != 5) || (p - url == 5 && url[4] != 's')) {
		snprintf(err, errlen,
			 "endpoint '%s' must start with http:// or https://",
			 url);
		return EINVAL;
	}
	s->scheme = strndup(url, (size_t)(p - url));
	p += 3;
	size_t hl = strcspn(p, "/?#");
	if (hl == 0 || p[hl] == '?' || p[hl] == '#') {
		snprintf(err, errlen, "endpoint '%s' has no host, or a query",
			 url);
		return EINVAL;
	}
	s->endpoint = strndup(p, hl);
	s->base_path = strdup(p + hl);
	if (!s->scheme || !s->endpoint || !s->base_path)
		return ENOMEM;
	size_t bl = strlen(s->base_path);
	while (bl && s->base_path[bl - 1] == '/')
		s->base_path[--bl] = '\0';

	char host[256];
	snprintf(host, sizeof(host), "%s", s->endpoint);
	if (host[0] != '[') {
		char *colon = strrchr(host, ':');
		if (colon)
			*colon = '\0';
	}
	if (literal_host(host))
		s->path_style = true;
	return 0;
}

struct wiv_source *wiv_source_s3_new(const struct wiv_s3_config *cfg, char *err,
				     size_t errlen)
{
	struct s3 *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->base.ops = &s3_ops;
	if (!cfg->bucket || !valid_bucket(cfg->bucket)) {
		snprintf(err, errlen, "'%s' is not a valid bucket name",
			 cfg->bucket ? cfg->bucket : "");
		goto fail;
	}
	s->bucket = strdup(cfg->bucket);
	s->path_style = cfg->path_style || !dns_safe(cfg->bucket);
	if (cfg->endpoint && *cfg->endpoint) {
		if (parse_endpoint(s, cfg->endpoint, err, errlen))
			goto fail;
	} else {
		s->scheme = strdup("https");
	}
	if (!s->bucket || !s->scheme)
		goto nomem;
	if (asprintf(&s->identity, "s3|%s|%s",
		     s->endpoint ? cfg->endpoint : "aws", s->bucket) < 0) {
		s->identity = NULL;
		goto nomem;
	}
	s->base.identity = s->identity;

	if (cfg->region && *cfg->region)
		snprintf(s->region, sizeof(s->region), "%s", cfg->region);
	else if (wiv_creds_region(cfg->profile, s->region, sizeof(s->region)))
		snprintf(s->region, sizeof(s->region), "us-east-1");

	rc = wiv_creds_provider_new(cfg->profile, &s->creds, err, errlen);
	if (rc)
		goto fail;
	struct wiv_http_config hc = {
	    .cafile = cfg->cafile,
	    .pool = (cfg->parallel ? cfg->parallel : 1) + 2,
	    .retries = cfg->retries,
	    .timeout_s = cfg->timeout_s,
	};
	if (wiv_http_new(&hc, &s->http, err, errlen))
		goto fail;
	wiv_debug("S3 source %s: %s-style, region %s", s->identity,
		  s->path_style ? "path" : "virtual-host", s->region);
	return &s->base;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	s3_destroy(&s->base);
	return NULL;
}
