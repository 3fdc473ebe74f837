/* libFuzzer harness for the splitter and the layout (built and run by
 * meson: see tests/fuzz/README).
 *
 * The first input byte picks the chunk size and the layout; the rest is the
 * body. Properties checked beyond "no crash": feeding in small chunks gives
 * exactly what feeding at once gives, laying out an event's text again
 * changes nothing, any value jansson accepts is laid out to text that
 * jansson reads back as the same value, and the canonical form accepts what
 * jansson accepts (numbers it cannot hold aside) and gives the layout of a
 * value the value's own canonical bytes. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wivaudit/json_canon.h"
#include "wivaudit/json_layout.h"
#include "wivaudit/split.h"

struct trace {
	enum wiv_layout layout;
	uint64_t hash; /* FNV-1a over every event field */
};

static void mix(struct trace *t, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		t->hash = (t->hash ^ b[i]) * 0x100000001b3ULL;
}

static int on_event(void *arg, const struct wiv_event *ev)
{
	struct trace *t = arg;
	if (ev->text_len == 0 || ev->text[ev->text_len - 1] != '\n' ||
	    ev->text[ev->text_len] != '\0')
		abort();
	size_t len;
	char *again = wiv_json_layout(ev->text, ev->text_len, t->layout, &len);
	if (!again || len != ev->text_len || memcmp(again, ev->text, len))
		abort();
	free(again);
	mix(t, &ev->position, sizeof(ev->position));
	mix(t, ev->text, ev->text_len);
	mix(t, &ev->id_kind, sizeof(ev->id_kind));
	if (ev->id)
		mix(t, ev->id, ev->id_len);
	mix(t, &ev->has_created_at, sizeof(ev->has_created_at));
	if (ev->has_created_at)
		mix(t, &ev->created_at, sizeof(ev->created_at));
	if (ev->event_type)
		mix(t, ev->event_type, strlen(ev->event_type));
	mix(t, ev->digest, sizeof(ev->digest));
	return 0;
}

static uint64_t split(const uint8_t *data, size_t size, size_t chunk,
		      enum wiv_layout layout, int *rc)
{
	struct trace t = {.layout = layout, .hash = 0xcbf29ce484222325ULL};
	struct wiv_splitter *s =
	    wiv_splitter_new(layout, 4096, "fuzz", on_event, &t);
	if (!s)
		abort();
	*rc = 0;
	for (size_t off = 0; off < size && !*rc; off += chunk)
		*rc = wiv_splitter_feed(
		    s, data + off, size - off < chunk ? size - off : chunk);
	if (!*rc)
		*rc = wiv_splitter_finish(s);
	size_t skipped = wiv_splitter_skipped(s);
	mix(&t, &skipped, sizeof(skipped));
	wiv_splitter_free(s);
	return t.hash;
}

static void check_layout(const uint8_t *data, size_t size,
			 enum wiv_layout layout)
{
	const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
	size_t len;
	char *text = wiv_json_layout((const char *)data, size, layout, &len);
	json_t *v = json_loadb((const char *)data, size, flags, NULL);
	if (v) {
		json_t *w = text ? json_loadb(text, len, flags, NULL) : NULL;
		if (!w || !json_equal(v, w))
			abort();
		json_decref(w);
	}
	json_decref(v);
	free(text);
}

static void check_canon(const uint8_t *data, size_t size,
			enum wiv_layout layout)
{
	static struct wiv_json_canon c, again;
	enum wiv_json_type type;
	json_error_t e;
	int rc = wiv_json_canon(&c, (const char *)data, size, &type);
	json_t *v = json_loadb((const char *)data, size,
			       JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	/* jansson takes a NUL byte right after a top-level number for the
	 * end of the text; RFC 8259 (and we) do not. */
	bool jansson_quirk = v && memchr(data, '\0', size);
	if (v ? rc != 0 && !jansson_quirk
	      : json_error_code(&e) != json_error_numeric_overflow &&
		    rc != EINVAL)
		abort();
	json_decref(v);
	if (rc)
		return;
	size_t len;
	char *text = wiv_json_layout((const char *)data, size, layout, &len);
	if (!text || wiv_json_canon(&again, text, len, &type) ||
	    again.out.len != c.out.len ||
	    memcmp(again.out.data, c.out.data, c.out.len) != 0)
		abort();
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum wiv_layout layout =
	    data[0] & 1 ? WIV_LAYOUT_COMPACT : WIV_LAYOUT_PRETTY;
	size_t chunk = (data[0] >> 1) + 1;
	data++;
	size--;

	int rc_whole, rc_chunked;
	uint64_t whole = split(data, size, size ? size : 1, layout, &rc_whole);
	uint64_t chunked = split(data, size, chunk, layout, &rc_chunked);
	if (whole != chunked || rc_whole != rc_chunked)
		abort();
	check_layout(data, size, layout);
	check_canon(data, size, layout);
	return 0;
}
