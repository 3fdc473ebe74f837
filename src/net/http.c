#include "wivaudit/http.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "wivaudit/log.h"

/* Backoff before retry n is uniform in [0, min(CAP, BASE * 2^n)) ms: "full
 * jitter", so that many threads throttled together do not return together. */
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 20000

/* An error body is a few hundred bytes; keep enough for any of them. */
#define MAX_ERROR_BODY (16 * 1024)

struct wiv_http {
	pthread_mutex_t lock; /* guards idle[] */
	CURL **idle;
	unsigned nidle, pool;
	/* DNS answers and TLS sessions are shared by all handles; each handle
	 * keeps its own live connection, reused while it sits in idle[]. */
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	char *cafile;
	unsigned retries, timeout_s;
};

/* State of one attempt, seen by the curl callbacks. */
struct xfer {
	const struct wiv_http_request *req;
	CURL *easy;
	long status; /* of the response being received */
	int64_t content_length;
	int64_t range_start; /* from Content-Range, -1 when absent */
	int64_t range_total;
	char etag[256];
	char region[64];
	uint64_t offset; /* where this attempt's 2xx body starts */
	uint64_t skip;	 /* bytes to drop: the server ignored our Range */
	uint64_t got;	 /* 2xx body bytes received in this attempt */
	uint64_t *delivered;
	int cb_err; /* why a callback stopped the transfer */
	int64_t moved;	  /* bytes moved either way, as on_progress last saw */
	int64_t moved_at; /* when they last changed, monotonic ms */
	int64_t stall_ms; /* abort when nothing moved for this long */
	char *errbody;
	size_t errlen;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access a,
		       void *arg)
{
	struct wiv_http *h = arg;

	(void)e;
	(void)a;
	pthread_mutex_lock(&h->share_lock[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *arg)
{
	struct wiv_http *h = arg;

	(void)e;
	pthread_mutex_unlock(&h->share_lock[data]);
}

int wiv_http_new(const struct wiv_http_config *cfg, struct wiv_http **out,
		 char *err, size_t errlen)
{
	struct wiv_http *h;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl: %s",
			 curl_easy_strerror(global_rc));
		return EIO;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		goto nomem;
	pthread_mutex_init(&h->lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_lock[i], NULL);
	h->pool = cfg->pool ? cfg->pool : 4;
	h->retries = cfg->retries;
	h->timeout_s = cfg->timeout_s ? cfg->timeout_s : 30;
	h->idle = calloc(h->pool, sizeof(*h->idle));
	h->share = curl_share_init();
	if (!h->idle || !h->share ||
	    (cfg->cafile && !(h->cafile = strdup(cfg->cafile)))) {
		wiv_http_free(h);
		goto nomem;
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	*out = h;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return ENOMEM;
}

void wiv_http_free(struct wiv_http *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < h->nidle; i++)
		curl_easy_cleanup(h->idle[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_lock[i]);
	pthread_mutex_destroy(&h->lock);
	free(h->idle);
	free(h->cafile);
	free(h);
}

static CURL *take_handle(struct wiv_http *h)
{
	CURL *e = NULL;

	pthread_mutex_lock(&h->lock);
	if (h->nidle)
		e = h->idle[--h->nidle];
	pthread_mutex_unlock(&h->lock);
	if (e)
		curl_easy_reset(e); /* keeps the live connection */
	else
		e = curl_easy_init();
	return e;
}

static void give_back(struct wiv_http *h, CURL *e)
{
	pthread_mutex_lock(&h->lock);
	if (h->nidle < h->pool) {
		h->idle[h->nidle++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&h->lock);
	if (e)
		curl_easy_cleanup(e);
}

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Aborts the transfer once no byte moved for stall_ms. curl's low-speed
 * check would do, but it averages over a window of about five seconds, so
 * a stall right after a burst of bytes went unnoticed that much longer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;
	int64_t now = now_ms();

	(void)dltotal;
	(void)ultotal;
	if ((int64_t)(dlnow + ulnow) != x->moved) {
		x->moved = (int64_t)(dlnow + ulnow);
		x->moved_at = now;
		return 0;
	}
	if (now - x->moved_at < x->stall_ms)
		return 0;
	x->cb_err = ETIMEDOUT;
	return 1;
}

static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	char val[256];
	const char *colon = memchr(buf, ':', len);

	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A new response (after a 100 Continue, say): forget the
		 * headers of the previous one. */
		x->content_length = -1;
		x->range_start = x->range_total = -1;
		x->etag[0] = '\0';
		x->region[0] = '\0';
		return len;
	}
	if (!colon)
		return len;
	size_t nlen = (size_t)(colon - buf);
	copy_value(val, sizeof(val), colon + 1, len - nlen - 1);
#define IS(name) (nlen == strlen(name) && strncasecmp(buf, name, nlen) == 0)
	if (IS("content-length")) {
		char *end;
		long long v = strtoll(val, &end, 10);
		x->content_length = (*val && !*end && v >= 0) ? v : -1;
	} else if (IS("content-range")) {
		long long a, b, t;
		if (sscanf(val, "bytes %lld-%lld/%lld", &a, &b, &t) == 3) {
			x->range_start = a;
			x->range_total = t;
		}
	} else if (IS("etag")) {
		copy_value(x->etag, sizeof(x->etag), val, strlen(val));
	} else if (IS("x-amz-bucket-region")) {
		copy_value(x->region, sizeof(x->region), val, strlen(val));
	}
#undef IS
	return len;
}

static size_t on_write(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (x->status == 0)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status < 200 || x->status > 299) {
		size_t room = MAX_ERROR_BODY - x->errlen;
		size_t take = len < room ? len : room;
		if (take) {
			memcpy(x->errbody + x->errlen, buf, take);
			x->errlen += take;
		}
		return len;
	}
	if (x->got == 0 && x->offset > 0) {
		/* Resuming: a 206 must start where we stopped; a 200 means
		 * the server ignored Range, so drop what we already have. */
		if (x->status == 206 && x->range_start != (int64_t)x->offset) {
			x->cb_err = EIO;
			return 0;
		}
		if (x->status == 200)
			x->skip = x->offset;
	}
	x->got += len;
	if (x->skip >= len) {
		x->skip -= len;
		return len;
	}
	buf += x->skip;
	size_t give = len - (size_t)x->skip;
	x->skip = 0;
	if (x->req->on_body && x->req->on_body(x->req->body_arg, buf, give)) {
		x->cb_err = ECANCELED;
		return 0;
	}
	*x->delivered += give;
	return len;
}

enum verdict { DONE, RETRY, FAIL };

static bool transient_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

/* Maps one finished attempt to done / retry / fail and the errno it would
 * end with. */
static enum verdict judge(CURLcode c, const struct xfer *x,
			  const struct wiv_s3_error *s3, int *err)
{
	long st = x->status;

	if (c != CURLE_OK) {
		if (x->cb_err) {
			*err = x->cb_err;
			return x->cb_err == ECANCELED ? FAIL : RETRY;
		}
		*err = c == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO;
		return transient_curl(c) ? RETRY : FAIL;
	}
	if (st >= 200 && st <= 299) {
		/* curl catches most cut-off bodies; this catches the rest. */
		if (x->content_length >= 0 &&
		    x->got != (uint64_t)x->content_length) {
			*err = EIO;
			return RETRY;
		}
		*err = 0;
		return DONE;
	}
	*err = EIO;
	switch (st) {
	case 404:
		*err = ENOENT;
		return FAIL;
	case 403:
		*err = EACCES;
		return FAIL;
	case 412:
		*err = ESTALE;
		return FAIL;
	case 400:
		if (strcmp(s3->code, "RequestTimeout") == 0)
			return RETRY;
		if (strcmp(s3->code, "ExpiredToken") == 0 ||
		    strcmp(s3->code, "TokenRefreshRequired") == 0)
			*err = EACCES;
		return FAIL;
	case 408:
	case 504:
		*err = ETIMEDOUT;
		return RETRY;
	case 429:
	case 500:
	case 502:
	case 503:
		return RETRY;
	default:
		return FAIL;
	}
}

static void backoff(unsigned failures)
{
	static __thread unsigned seed;
	unsigned long ceiling = BACKOFF_BASE_MS;

	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed ^
		       (unsigned)getpid();
	for (unsigned i = 0; i < failures && ceiling < BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > BACKOFF_CAP_MS)
		ceiling = BACKOFF_CAP_MS;
	unsigned long ms = (unsigned long)rand_r(&seed) % ceiling;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void setup(struct wiv_http *h, struct xfer *x,
		  const struct wiv_http_attempt *a, char *errbuf)
{
	CURL *e = x->easy;

	curl_easy_setopt(e, CURLOPT_URL, a->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers);
	if (x->req->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->req->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)x->req->body_len);
	}
	if (strcmp(x->req->method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->req->method);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* S3 keys may hold "/../" or "//": send the path exactly as signed. */
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long)h->timeout_s);
	/* No overall timeout: a large object may take long, but it must keep
	 * moving. */
	x->moved = 0;
	x->moved_at = now_ms();
	x->stall_ms = (int64_t)h->timeout_s * 1000;
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
	if (h->cafile)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->cafile);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
}

static void free_attempt(struct wiv_http_attempt *a)
{
	free(a->url);
	curl_slist_free_all(a->headers);
	a->url = NULL;
	a->headers = NULL;
}

int wiv_http_perform(struct wiv_http *h, const struct wiv_http_request *req,
		     struct wiv_http_result *res)
{
	char errbuf[CURL_ERROR_SIZE];
	char etag[256] = "";
	uint64_t delivered = 0;
	int64_t total = -1; /* whole body size once known */
	unsigned failures = 0;
	int err = 0;
	struct xfer x = {.req = req, .delivered = &delivered};

	memset(res, 0, sizeof(*res));
	x.errbody = malloc(MAX_ERROR_BODY);
	if (!x.errbody)
		return ENOMEM;
	for (;;) {
		struct wiv_http_attempt a = {.number = res->attempts};
		uint64_t before = delivered;

		if (req->resumable) {
			a.offset = delivered;
			a.etag = etag[0] ? etag : NULL;
			/* Cut off after the last byte: nothing left to ask. */
			if (total >= 0 && delivered == (uint64_t)total) {
				err = 0;
				break;
			}
		} else {
			delivered = 0;
		}
		err = req->prepare(req->prepare_arg, &a);
		if (err) {
			free_attempt(&a);
			break;
		}
		x.easy = take_handle(h);
		if (!x.easy) {
			free_attempt(&a);
			err = ENOMEM;
			break;
		}
		x.status = 0;
		x.content_length = x.range_start = x.range_total = -1;
		x.etag[0] = x.region[0] = '\0';
		x.offset = a.offset;
		x.skip = x.got = 0;
		x.cb_err = 0;
		x.errlen = 0;
		errbuf[0] = '\0';
		setup(h, &x, &a, errbuf);
		CURLcode c = curl_easy_perform(x.easy);
		if (x.status == 0)
			curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE,
					  &x.status);
		give_back(h, x.easy);
		wiv_debug("%s %s -> %ld, %" PRIu64 " body bytes", req->method,
			  a.url, x.status, x.got);
		free_attempt(&a);
		res->attempts++;

		res->status = x.status;
		snprintf(res->region, sizeof(res->region), "%s", x.region);
		if (x.status >= 200 && x.status <= 299) {
			if (!etag[0])
				snprintf(etag, sizeof(etag), "%s", x.etag);
			if (total < 0 && x.status == 200 &&
			    x.content_length >= 0)
				total = x.content_length;
			else if (total < 0 && x.range_total >= 0)
				total = x.range_total;
		}
		memset(&res->s3, 0, sizeof(res->s3));
		if (x.errlen)
			wiv_listxml_parse_error(x.errbody, x.errlen, &res->s3);
		res->detail[0] = '\0';
		if (c != CURLE_OK && x.cb_err == ETIMEDOUT)
			snprintf(res->detail, sizeof(res->detail),
				 "no byte moved for %u s", h->timeout_s);
		else if (c != CURLE_OK)
			snprintf(res->detail, sizeof(res->detail), "%s",
				 errbuf[0] ? errbuf : curl_easy_strerror(c));
		else if (x.status / 100 == 2 && x.content_length >= 0 &&
			 x.got != (uint64_t)x.content_length)
			snprintf(res->detail, sizeof(res->detail),
				 "body cut short: %" PRIu64 " of %" PRId64
				 " bytes",
				 x.got, x.content_length);

		enum verdict v = judge(c, &x, &res->s3, &err);
		if (v == DONE || v == FAIL)
			break;
		/* A try that moved the body forward is progress, not a
		 * failure: only stalls count towards the retry limit. */
		if (req->resumable && delivered > before)
			failures = 0;
		else
			failures++;
		if (failures > h->retries)
			break;
		char what[320];
		wiv_debug("%s: %s; trying again (%u failed in a row, %u "
			  "allowed)",
			  req->what, wiv_http_describe(res, what, sizeof(what)),
			  failures, h->retries);
		backoff(failures);
	}
	res->bytes = delivered;
	snprintf(res->etag, sizeof(res->etag), "%s", etag);
	free(x.errbody);
	return err;
}

struct small {
	const struct wiv_http_small *req;
	char *buf; /* req->max + 1 bytes once the body starts */
	size_t len;
	int err; /* why small_body stopped the transfer */
};

static void wipe(char *buf, size_t len)
{
	if (buf) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
}

static int small_prepare(void *arg, struct wiv_http_attempt *a)
{
	struct small *sm = arg;
	const char *const *h = sm->req->headers;

	/* A retry starts the body over. */
	sm->len = 0;
	if (!(a->url = strdup(sm->req->url)))
		return ENOMEM;
	for (; h && *h; h++) {
		struct curl_slist *n = curl_slist_append(a->headers, *h);
		if (!n)
			return ENOMEM;
		a->headers = n;
	}
	return 0;
}

static int small_body(void *arg, const void *data, size_t len)
{
	struct small *sm = arg;

	if (len > sm->req->max - sm->len) {
		sm->err = EMSGSIZE;
		return 1;
	}
	if (!sm->buf && !(sm->buf = malloc(sm->req->max + 1))) {
		sm->err = ENOMEM;
		return 1;
	}
	memcpy(sm->buf + sm->len, data, len);
	sm->len += len;
	return 0;
}

int wiv_http_fetch(struct wiv_http *h, const struct wiv_http_small *req,
		   char **body, size_t *len, struct wiv_http_result *res)
{
	struct small sm = {.req = req};
	struct wiv_http_request r = {
	    .method = req->method,
	    .what = req->what,
	    .prepare = small_prepare,
	    .prepare_arg = &sm,
	    .on_body = small_body,
	    .body_arg = &sm,
	    .body = req->body,
	    .body_len = req->body ? strlen(req->body) : 0,
	};
	int rc = wiv_http_perform(h, &r, res);

	*body = NULL;
	*len = 0;
	if (rc == ECANCELED && sm.err)
		rc = sm.err;
	if (!rc && !sm.buf && !(sm.buf = malloc(1)))
		rc = ENOMEM;
	if (rc) {
		wipe(sm.buf, sm.buf ? req->max + 1 : 0);
		return rc;
	}
	sm.buf[sm.len] = '\0';
	*body = sm.buf;
	*len = sm.len;
	return 0;
}

const char *wiv_http_describe(const struct wiv_http_result *res, char *buf,
			      size_t len)
{
	if (res->detail[0] && res->status / 100 != 2 && res->status)
		snprintf(buf, len, "%ld %s: %s", res->status,
			 res->s3.code[0] ? res->s3.code : "error", res->detail);
	else if (res->detail[0])
		snprintf(buf, len, "%s", res->detail);
	else if (res->s3.code[0] && res->s3.message[0])
		snprintf(buf, len, "%ld %s: %s", res->status, res->s3.code,
			 res->s3.message);
	else if (res->s3.code[0])
		snprintf(buf, len, "%ld %s", res->status, res->s3.code);
	else
		snprintf(buf, len, "HTTP %ld", res->status);
	return buf;
}
