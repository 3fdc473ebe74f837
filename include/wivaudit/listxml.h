/* Streaming parsers (expat) for the two XML bodies S3 sends us: a
 * ListObjectsV2 result page and an <Error> body. Pure: bytes in, callbacks
 * and fields out, no I/O. Functions return 0 or a positive errno. */
#ifndef WIVAUDIT_LISTXML_H
#define WIVAUDIT_LISTXML_H

#include <stdbool.h>
#include <stddef.h>

#include "wivaudit/source.h"

/* One ListObjectsV2 page being parsed. */
struct wiv_listxml;

/* Starts a page parser that calls on_object for each <Contents> (key, ETag
 * with its quotes stripped, size, storage class) and on_prefix for each
 * <CommonPrefixes><Prefix>, in document order; either may be NULL. Returns a
 * new parser (free with wiv_listxml_free), or NULL when out of memory. */
struct wiv_listxml *wiv_listxml_new(wiv_list_object_fn on_object,
				    wiv_list_prefix_fn on_prefix, void *arg);

/* Feeds the next len bytes of the body; final is true with the last chunk
 * (len may be 0). Returns 0, ECANCELED when a callback returned non-zero,
 * EBADMSG when the body is not a well-formed ListBucketResult, or ENOMEM.
 * After an error the parser only repeats it. */
int wiv_listxml_feed(struct wiv_listxml *p, const void *data, size_t len,
		     bool final);

/* Tells the parser that the request asked for encoding-type=url: every
 * <Key> and <CommonPrefixes><Prefix> is then url-decoded before the
 * callbacks see it. Decided by the request, not by the page's
 * <EncodingType>, which some S3-compatible stores send after the keys. */
void wiv_listxml_url_encoded(struct wiv_listxml *p);

/* How many entries of the page were skipped because their url encoding was
 * broken or held %00 (real S3 never sends one). */
long wiv_listxml_undecodable(const struct wiv_listxml *p);

/* After a successful final feed: whether S3 has more pages, and the token
 * that asks for the next one (borrowed; NULL when there is none). */
bool wiv_listxml_truncated(const struct wiv_listxml *p);
const char *wiv_listxml_next_token(const struct wiv_listxml *p);

/* <KeyCount> as S3 stated it (-1 when absent), and how many keys plus
 * prefixes the page actually carried, to check one against the other. */
long wiv_listxml_key_count(const struct wiv_listxml *p);
long wiv_listxml_seen(const struct wiv_listxml *p);

/* Frees the parser; NULL is a no-op. */
void wiv_listxml_free(struct wiv_listxml *p);

/* The fields of an S3 <Error> body we log or act on; empty when absent. */
struct wiv_s3_error {
	char code[64];	   /* "NoSuchKey", "SlowDown", ... */
	char message[256]; /* human text, cut to fit */
	char region[64];   /* <Region> of a wrong-region answer */
	char bucket[256];  /* <BucketName> */
};

/* Parses a whole <Error> body (or STS's <ErrorResponse><Error>) into err
 * (always initialised). Returns 0 when it was such a document with a
 * <Code>, else EBADMSG. */
int wiv_listxml_parse_error(const void *body, size_t len,
			    struct wiv_s3_error *err);

#endif
