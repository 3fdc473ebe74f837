/* AWS Signature Version 4, as a pure function of the request: canonical
 * request in, Authorization header value out. No I/O, no clock, no curl, so
 * it can be checked against AWS's published examples byte for byte.
 * Functions return 0 or a positive errno (ENOMEM, EINVAL). */
#ifndef WIVAUDIT_SIGV4_H
#define WIVAUDIT_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Hex SHA-256 of the empty body: the x-amz-content-sha256 of a GET. */
#define WIV_SIGV4_EMPTY_SHA256                                                 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* One header to sign; the name in any case, the value as sent. */
struct wiv_sigv4_header {
	const char *name;
	const char *value;
};

/* One query parameter, not yet encoded; a NULL value signs as empty. */
struct wiv_sigv4_param {
	const char *name;
	const char *value;
};

struct wiv_sigv4_request {
	const char *method;
	/* Canonical URI, already encoded (wiv_sigv4_uri_encode with
	 * keep_slash): S3 signs the path exactly as sent, once-encoded. */
	const char *path;
	/* Canonical query (wiv_sigv4_canonical_query), "" when none. */
	const char *query;
	/* Every header to sign (host and x-amz-date at least), any order;
	 * a repeated name is signed as its values joined by ','. */
	const struct wiv_sigv4_header *headers;
	size_t nheaders;
	/* Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". */
	const char *payload_hash;
};

struct wiv_sigv4_scope {
	const char *amz_date; /* "20150830T123600Z" (UTC) */
	const char *region;
	const char *service; /* "s3" */
};

/* Percent-encodes s as AWS wants it: only A-Z a-z 0-9 - . _ ~ stay, every
 * other byte becomes %XX (upper-case hex); '/' stays too when keep_slash
 * (an S3 key path), else it is %2F (a query value). Returns a new string the
 * caller frees, or NULL when out of memory. */
char *wiv_sigv4_uri_encode(const char *s, bool keep_slash);

/* Builds the canonical query string from raw parameters: each name and value
 * encoded, sorted by encoded name then value, joined with '&'. The result is
 * also what to send on the wire. Sets *out to a new string (caller frees).
 * Returns 0 or ENOMEM. */
int wiv_sigv4_canonical_query(const struct wiv_sigv4_param *params, size_t n,
			      char **out);

/* Builds the canonical request and, when signed_headers is non-NULL, the
 * "host;x-amz-date" list. Both are new strings the caller frees. Returns 0,
 * EINVAL (a header name or value with a line break, or no header) or
 * ENOMEM. */
int wiv_sigv4_canonical_request(const struct wiv_sigv4_request *req, char **out,
				char **signed_headers);

/* Writes the hex SHA-256 of data (64 digits and a NUL) to out. */
void wiv_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* Builds "AWS4-HMAC-SHA256\n<date>\n<scope>\n<hash of canonical request>".
 * Sets *out to a new string (caller frees). Returns 0, EINVAL (malformed
 * amz_date) or ENOMEM. */
int wiv_sigv4_string_to_sign(const struct wiv_sigv4_scope *scope,
			     const char *canonical_request, char **out);

/* Derives the signing key from secret and scope and writes the hex signature
 * of string_to_sign to out. Returns 0, EINVAL or EIO (crypto failure). */
int wiv_sigv4_signature(const char *secret, const struct wiv_sigv4_scope *scope,
			const char *string_to_sign, char out[65]);

/* Signs req and sets *out to the whole Authorization header value
 * ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...", a new
 * string the caller frees). The secret is only read. Returns 0 or an errno of
 * the steps above. */
int wiv_sigv4_authorization(const struct wiv_sigv4_request *req,
			    const struct wiv_sigv4_scope *scope,
			    const char *access_key_id, const char *secret,
			    char **out);

/* Formats t as an x-amz-date ("YYYYMMDDTHHMMSSZ", UTC) into out. */
void wiv_sigv4_amz_date(time_t t, char out[17]);

#endif
