/* The one HTTP request loop of the S3 client: libcurl with kept-alive
 * connections shared by every thread, a stall timeout, retries with
 * exponential backoff and full jitter, resumption of a body cut off midway,
 * and the one place where an HTTP answer becomes an errno:
 *   2xx → 0, 404 → ENOENT, 403 (and an expired token) → EACCES,
 *   412 → ESTALE, throttling / 5xx / timeouts / dropped connections → retry,
 *   then EIO (ETIMEDOUT when the last try timed out); anything else → EIO;
 *   a body callback asking to stop → ECANCELED.
 * It knows nothing of signing: the caller builds (and re-signs) each attempt
 * in a prepare callback. */
#ifndef WIVAUDIT_HTTP_H
#define WIVAUDIT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "wivaudit/listxml.h"
#include "wivaudit/source.h"

struct wiv_http_config {
	const char *cafile; /* NULL: the system bundle */
	unsigned pool;	    /* idle connections kept for reuse (0: 4) */
	unsigned retries;   /* retries after the first attempt */
	unsigned timeout_s; /* connect timeout, and abort when no byte moves
			       for this long (0: 30) */
};

struct wiv_http;

/* Sets *out to a new client (free with wiv_http_free). Returns 0, or ENOMEM
 * / EIO with a one-line message in err. Does not connect. */
int wiv_http_new(const struct wiv_http_config *cfg, struct wiv_http **out,
		 char *err, size_t errlen);

/* Frees the client and closes its connections; NULL is a no-op. No request
 * may be running. */
void wiv_http_free(struct wiv_http *h);

/* One attempt of a request, as the prepare callback sees and fills it. */
struct wiv_http_attempt {
	/* In: */
	unsigned number;  /* 0 for the first try */
	uint64_t offset;  /* body bytes already delivered: resume from here */
	const char *etag; /* ETag of the body delivered so far, or NULL */
	/* Out (the loop frees both after the attempt): */
	char *url;		    /* malloc'd */
	struct curl_slist *headers; /* "Name: value" lines, may be NULL */
};

struct wiv_http_request {
	const char *method; /* "GET"; another is sent as is, with body if any */
	const char *what;   /* for debug lines: "GET org/x.json.gz" */
	/* Builds attempt a; called before every try, so the caller signs with
	 * a fresh date and, when a.offset > 0, asks for "Range: bytes=N-"
	 * (and If-Match). A non-resumable request restarts from byte 0: its
	 * prepare must forget what on_body built. Returns 0 or an errno that
	 * ends the request. */
	int (*prepare)(void *arg, struct wiv_http_attempt *a);
	void *prepare_arg;
	/* Receives the 2xx body, in order, each byte once. */
	wiv_body_fn on_body;
	void *body_arg;
	bool resumable;
	/* Request body (a POST's form), sent as is on every try; NULL for
	 * none. */
	const char *body;
	size_t body_len;
};

/* What the last attempt got, for the caller's log line and decisions. */
struct wiv_http_result {
	long status;	   /* HTTP status, 0 when no answer came */
	unsigned attempts; /* tries made */
	uint64_t bytes;	   /* body bytes delivered to on_body */
	char region[64];   /* x-amz-bucket-region header, or "" */
	char etag[256];	   /* ETag header of the body, quotes kept, or "" */
	char detail[256];  /* transport error text (curl), or "" */
	struct wiv_s3_error s3; /* parsed error body of a non-2xx answer */
};

/* Runs req until it succeeds or fails for good; res (always filled)
 * describes the last attempt. Thread-safe. Returns 0 or an errno as in the
 * table above. Logs retries at debug level only: the caller logs the final
 * failure, with wiv_http_describe. */
int wiv_http_perform(struct wiv_http *h, const struct wiv_http_request *req,
		     struct wiv_http_result *res);

/* A small request whose whole answer is wanted, e.g. from a credential
 * service. url and headers are sent as given on every try. */
struct wiv_http_small {
	const char *method;
	const char *what; /* for log lines: "STS AssumeRole" */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated;
				       may be NULL */
	const char *body;	    /* NULL for none */
	size_t max;		    /* longest 2xx body accepted */
};

/* Performs req with the retry loop and sets *body to its 2xx answer (a new
 * NUL-terminated string of *len bytes; it may hold secrets: the caller wipes
 * and frees it). Returns 0, EMSGSIZE when the answer exceeds req->max, or
 * an errno as for wiv_http_perform; res is always filled. */
int wiv_http_fetch(struct wiv_http *h, const struct wiv_http_small *req,
		   char **body, size_t *len, struct wiv_http_result *res);

/* Writes a short account of a failed result to buf, e.g.
 * "403 SignatureDoesNotMatch: The request signature we calculated..." or
 * "timed out: Operation too slow...". Returns buf. */
const char *wiv_http_describe(const struct wiv_http_result *res, char *buf,
			      size_t len);

#endif
