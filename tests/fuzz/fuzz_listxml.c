/* libFuzzer harness for the ListObjectsV2 page parser and the <Error> body
 * parser. The first input byte picks the chunk size and after how many
 * entries a callback asks to stop (0: never); the rest is the body.
 * Properties beyond "no crash": feeding in small chunks gives exactly what
 * feeding at once gives (same entries, same outcome, same token), with and
 * without url decoding (where every entry is either handed out or counted as
 * undecodable), every string handed out is NUL-terminated within its field,
 * and an error body's fields always are. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/listxml.h"

struct trace {
	uint64_t hash; /* FNV-1a over every entry */
	long entries;
	long stop_after;
};

static void mix(struct trace *t, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		t->hash = (t->hash ^ b[i]) * 0x100000001b3ULL;
}

static int counted(struct trace *t)
{
	t->entries++;
	return t->stop_after && t->entries >= t->stop_after;
}

static int on_object(void *arg, const struct wiv_object_info *o)
{
	struct trace *t = arg;
	mix(t, "O", 1);
	mix(t, o->key, strlen(o->key) + 1);
	mix(t, o->etag, strlen(o->etag) + 1);
	mix(t, &o->size, sizeof(o->size));
	return counted(t);
}

static int on_prefix(void *arg, const char *prefix)
{
	struct trace *t = arg;
	mix(t, "P", 1);
	mix(t, prefix, strlen(prefix) + 1);
	return counted(t);
}

static uint64_t parse(const uint8_t *data, size_t size, size_t chunk,
		      long stop_after, bool url, int *rc)
{
	struct trace t = {.hash = 0xcbf29ce484222325ULL,
			  .stop_after = stop_after};
	struct wiv_listxml *p = wiv_listxml_new(on_object, on_prefix, &t);
	if (!p)
		abort();
	if (url)
		wiv_listxml_url_encoded(p);
	*rc = 0;
	for (size_t off = 0; off < size && !*rc; off += chunk)
		*rc = wiv_listxml_feed(p, data + off,
				       size - off < chunk ? size - off : chunk,
				       false);
	if (!*rc)
		*rc = wiv_listxml_feed(p, NULL, 0, true);
	/* After an error the parser only repeats it. */
	if (*rc && wiv_listxml_feed(p, "<x/>", 4, true) != *rc)
		abort();
	mix(&t, rc, sizeof(*rc));
	if (!*rc) {
		bool more = wiv_listxml_truncated(p);
		const char *next = wiv_listxml_next_token(p);
		long kc = wiv_listxml_key_count(p), seen = wiv_listxml_seen(p);
		if (seen != t.entries + wiv_listxml_undecodable(p) || kc < -1 ||
		    (!url && wiv_listxml_undecodable(p)))
			abort();
		mix(&t, &more, sizeof(more));
		if (next)
			mix(&t, next, strlen(next) + 1);
		mix(&t, &kc, sizeof(kc));
	}
	wiv_listxml_free(p);
	return t.hash;
}

static void check_field(const char *f, size_t cap)
{
	if (strnlen(f, cap) >= cap)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = (data[0] & 0x1f) + 1;
	long stop_after = data[0] >> 5;
	data++;
	size--;

	for (int url = 0; url < 2; url++) {
		int rc_whole, rc_chunked;
		uint64_t whole = parse(data, size, size ? size : 1, stop_after,
				       url, &rc_whole);
		uint64_t chunked =
		    parse(data, size, chunk, stop_after, url, &rc_chunked);
		if (whole != chunked || rc_whole != rc_chunked)
			abort();
	}

	struct wiv_s3_error e;
	int rc = wiv_listxml_parse_error(data, size, &e);
	check_field(e.code, sizeof(e.code));
	check_field(e.message, sizeof(e.message));
	check_field(e.region, sizeof(e.region));
	check_field(e.bucket, sizeof(e.bucket));
	if (rc == 0 && !e.code[0])
		abort();
	return 0;
}
