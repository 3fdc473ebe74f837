/* Streaming splitter. Two layers: the input layer sniffs gzip or plain text
 * and inflates (gzip members one after another, as gunzip does); the array
 * layer finds each element's raw bytes with a resumable scanner, so only the
 * element in progress is ever buffered, then validates it and takes its
 * canonical form in one pass (json_canon.c) and lays it out from the raw
 * bytes. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "wivaudit/json_canon.h"
#include "wivaudit/json_layout.h"
#include "wivaudit/log.h"
#include "wivaudit/split.h"

#define ZOUT_SIZE 65536
/* Non-object elements logged one by one; beyond, one summary line, so that
 * an object cannot flood the log. */
#define LOGGED_SKIPS 10

static const unsigned char gzip_magic1 = 0x1f;

enum input {
	IN_SNIFF,   /* nothing decided yet */
	IN_PLAIN,   /* plain JSON text */
	IN_MEMBER,  /* inside a gzip member */
	IN_BETWEEN, /* a gzip member ended; another may follow */
	IN_TRAILER, /* bytes after the last member, ignored like gunzip does */
};

enum array_state {
	A_START,   /* before '[' */
	A_FIRST,   /* after '[': an element or ']' */
	A_ELEMENT, /* after ',': an element */
	A_INSIDE,  /* inside an element */
	A_AFTER,   /* after an element: ',' or ']' */
	A_CLOSED,  /* after ']': only whitespace may follow */
};

enum element_kind { E_SCALAR, E_STRING, E_CONTAINER };

struct wiv_splitter {
	enum wiv_layout layout;
	size_t max_event;
	size_t max_elements; /* 0: no ceiling */
	uint64_t max_bytes;  /* 0: no ceiling */
	uint64_t decoded;    /* body bytes after inflating */
	char *key;
	wiv_event_fn on_event;
	void *arg;
	/* Once set, the outcome is decided: EBADMSG, EFBIG, ECANCELED or
	 * ENOMEM. */
	int err;

	enum input in;
	bool held_1f; /* a lone 0x1f that may start a gzip magic */
	z_stream zs;
	bool zs_ready;
	unsigned long long member_offset; /* body offset of this member */
	unsigned long long trailer_len;
	bool trailer_nonzero;

	enum array_state as;
	enum element_kind kind;
	size_t depth;
	bool in_string;
	bool escaped;
	/* Bytes of the element in progress that came in earlier chunks. */
	struct wiv_jbuf elem;
	size_t position;
	size_t skipped;

	struct wiv_jbuf text;
	struct wiv_json_canon canon;
	struct wiv_jbuf id;         /* decoded string id of the event */
	struct wiv_jbuf event_type; /* decoded event_type */
	struct wiv_jbuf number;     /* created_at's text, NUL-terminated */
	EVP_MD_CTX *md;
	unsigned char zout[ZOUT_SIZE];
};

__attribute__((format(printf, 2, 3))) static int bad(struct wiv_splitter *s,
						     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	wiv_err("%s: %s", s->key, msg);
	s->err = EBADMSG;
	return EBADMSG;
}

/* The object is over one of its ceilings: a verdict like a bad body, told
 * apart so that the caller can say which limit to raise. */
static int over_limit(struct wiv_splitter *s, const char *what,
		      unsigned long long limit, const char *option)
{
	wiv_err("%s: more than %llu %s (-o %s=); object skipped", s->key,
		limit, what, option);
	s->err = EFBIG;
	return EFBIG;
}

static int no_memory(struct wiv_splitter *s)
{
	wiv_err("%s: out of memory while splitting", s->key);
	s->err = ENOMEM;
	return ENOMEM;
}

/* How a stray byte reads in a log line. */
static const char *show_byte(char c, char buf[16])
{
	if (isprint((unsigned char)c))
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02x", (unsigned char)c);
	return buf;
}

static const char *type_name(enum wiv_json_type type)
{
	switch (type) {
	case WIV_JSON_OBJECT:
		return "an object";
	case WIV_JSON_ARRAY:
		return "an array";
	case WIV_JSON_STRING:
		return "a string";
	case WIV_JSON_NUMBER:
		return "a number";
	case WIV_JSON_BOOLEAN:
		return "a boolean";
	case WIV_JSON_NULL:
		break;
	}
	return "null";
}

struct wiv_splitter *wiv_splitter_new(enum wiv_layout layout,
				      size_t max_event_bytes, const char *key,
				      wiv_event_fn on_event, void *arg)
{
	struct wiv_splitter *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->layout = layout;
	s->max_event = max_event_bytes;
	s->on_event = on_event;
	s->arg = arg;
	s->key = strdup(key ? key : "");
	s->md = EVP_MD_CTX_new();
	if (!s->key || !s->md) {
		wiv_splitter_free(s);
		return NULL;
	}
	return s;
}

void wiv_splitter_free(struct wiv_splitter *s)
{
	if (!s)
		return;
	if (s->zs_ready)
		inflateEnd(&s->zs);
	wiv_jbuf_free(&s->elem);
	wiv_jbuf_free(&s->text);
	wiv_json_canon_free(&s->canon);
	wiv_jbuf_free(&s->id);
	wiv_jbuf_free(&s->event_type);
	wiv_jbuf_free(&s->number);
	EVP_MD_CTX_free(s->md);
	free(s->key);
	free(s);
}

void wiv_splitter_set_limits(struct wiv_splitter *s, size_t max_elements,
			     uint64_t max_bytes)
{
	s->max_elements = max_elements;
	s->max_bytes = max_bytes;
}

size_t wiv_splitter_skipped(const struct wiv_splitter *s)
{
	return s->skipped;
}

/* ---- one element ---- */

/* The event's id: a non-empty string (decoded) or a number (its text). */
static int set_id(struct wiv_splitter *s, struct wiv_event *ev)
{
	const char *raw;
	size_t len;
	if (!wiv_json_canon_member(&s->canon, "id", &raw, &len))
		return 0;
	if (*raw == '-' || (*raw >= '0' && *raw <= '9')) {
		ev->id_kind = WIV_ID_NUMBER;
		ev->id = raw;
		ev->id_len = len;
	} else if (*raw == '"') {
		int rc = wiv_json_decode_string(raw, len, &s->id);
		if (rc)
			return rc;
		if (s->id.len > 0) {
			ev->id_kind = WIV_ID_STRING;
			ev->id = s->id.data;
			ev->id_len = s->id.len;
		}
	}
	return 0;
}

/* created_at when it is a number that fits: an integer of 64 bits, or a
 * real a double holds. */
static int set_created_at(struct wiv_splitter *s, struct wiv_event *ev)
{
	const char *raw;
	size_t len;
	if (!wiv_json_canon_member(&s->canon, "created_at", &raw, &len) ||
	    !(*raw == '-' || (*raw >= '0' && *raw <= '9')))
		return 0;
	s->number.len = 0;
	if (wiv_jbuf_append(&s->number, raw, len) ||
	    wiv_jbuf_append(&s->number, "", 1))
		return ENOMEM;
	bool integer = !memchr(raw, '.', len) && !memchr(raw, 'e', len) &&
		       !memchr(raw, 'E', len);
	errno = 0;
	double v = integer ? (double)strtoll(s->number.data, NULL, 10)
			   : strtod(s->number.data, NULL);
	if (errno != ERANGE || (!integer && v <= 1 && v >= -1)) {
		ev->has_created_at = true;
		ev->created_at = v;
	}
	return 0;
}

/* event_type when it is a string (up to a NUL it may hold). */
static int set_event_type(struct wiv_splitter *s, struct wiv_event *ev)
{
	const char *raw;
	size_t len;
	if (!wiv_json_canon_member(&s->canon, "event_type", &raw, &len) ||
	    *raw != '"')
		return 0;
	int rc = wiv_json_decode_string(raw, len, &s->event_type);
	if (!rc)
		ev->event_type = s->event_type.data;
	return rc;
}

static int digest(struct wiv_splitter *s, uint8_t out[WIV_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len;
	if (!EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(s->md, s->canon.out.data, s->canon.out.len) ||
	    !EVP_DigestFinal_ex(s->md, md, &md_len))
		return ENOMEM;
	memcpy(out, md, WIV_DIGEST_LEN);
	return 0;
}

static int element(struct wiv_splitter *s, const char *raw, size_t len)
{
	if (s->max_elements && s->position >= s->max_elements)
		return over_limit(s, "events", s->max_elements,
				  "max_object_events");
	size_t pos = s->position++;
	enum wiv_json_type type;
	int rc = wiv_json_canon(&s->canon, raw, len, &type);
	if (rc == ENOMEM)
		return no_memory(s);
	if (rc)
		return bad(s, "invalid JSON in element %zu: %s", pos,
			   s->canon.error);
	if (type != WIV_JSON_OBJECT) {
		if (s->skipped < LOGGED_SKIPS)
			wiv_warn("%s: element %zu is %s, not an object; "
				 "skipped",
				 s->key, pos, type_name(type));
		s->skipped++;
		return 0;
	}

	struct wiv_event ev = {.position = pos};
	rc = wiv_json_layout_buf(&s->text, raw, len, s->layout);
	if (rc == ENOMEM ||
	    (!rc && (digest(s, ev.digest) || set_id(s, &ev) ||
		     set_created_at(s, &ev) || set_event_type(s, &ev))))
		return no_memory(s);
	if (rc)
		return bad(s, "cannot lay out element %zu", pos);
	ev.text = s->text.data;
	ev.text_len = s->text.len;

	if (s->on_event(s->arg, &ev)) {
		s->err = ECANCELED;
		return ECANCELED;
	}
	return 0;
}

/* ---- the array scanner ---- */

/* Scans the element in progress from p. Returns where it ends (exclusive),
 * or NULL if it goes on past end. */
static const char *scan_element(struct wiv_splitter *s, const char *p,
				const char *end)
{
	if (s->kind == E_SCALAR) {
		while (p < end && !wiv_json_is_ws(*p) && *p != ',' && *p != ']')
			p++;
		return p < end ? p : NULL;
	}
	while (p < end) {
		if (s->in_string) {
			if (s->escaped) {
				s->escaped = false;
				p++;
				continue;
			}
			while (p < end && *p != '"' && *p != '\\')
				p++;
			if (p == end)
				break;
			if (*p++ == '\\') {
				s->escaped = true;
				continue;
			}
			s->in_string = false;
			if (s->kind == E_STRING)
				return p;
			continue;
		}
		switch (*p++) {
		case '"':
			s->in_string = true;
			break;
		case '{':
		case '[':
			s->depth++;
			break;
		case '}':
		case ']':
			if (--s->depth == 0)
				return p;
			break;
		}
	}
	return NULL;
}

static void start_element(struct wiv_splitter *s, char c)
{
	s->as = A_INSIDE;
	s->depth = 0;
	s->in_string = false;
	s->escaped = false;
	s->elem.len = 0;
	if (c == '"')
		s->kind = E_STRING;
	else if (c == '{' || c == '[')
		s->kind = E_CONTAINER;
	else
		s->kind = E_SCALAR;
}

static int too_big(struct wiv_splitter *s)
{
	return bad(s, "event %zu larger than %zu bytes", s->position,
		   s->max_event);
}

/* Takes the next non-whitespace byte outside any element; an element's
 * first byte is left for the element scanner. */
static int outside_element(struct wiv_splitter *s, char c)
{
	char shown[16];
	switch (s->as) {
	case A_START:
		if (c != '[')
			return bad(s, "not a JSON array (starts with %s)",
				   show_byte(c, shown));
		if (s->in == IN_PLAIN)
			wiv_warn("%s: body is not gzip-compressed; read as a "
				 "plain JSON array",
				 s->key);
		s->as = A_FIRST;
		return 0;
	case A_FIRST:
	case A_ELEMENT:
		if (c == ']' && s->as == A_FIRST) {
			s->as = A_CLOSED;
			return 0;
		}
		if (c == ',' || c == ']' || c == '}' || c == ':')
			return bad(s,
				   "unexpected %s in the JSON array at "
				   "element %zu",
				   show_byte(c, shown), s->position);
		start_element(s, c);
		return 0;
	case A_AFTER:
		if (c == ',')
			s->as = A_ELEMENT;
		else if (c == ']')
			s->as = A_CLOSED;
		else
			return bad(s,
				   "unexpected %s after element %zu of the "
				   "JSON array",
				   show_byte(c, shown), s->position - 1);
		return 0;
	case A_CLOSED:
		return bad(s, "trailing data after the JSON array (%s)",
			   show_byte(c, shown));
	case A_INSIDE:
		break;
	}
	return 0;
}

static int array_feed(struct wiv_splitter *s, const char *p, size_t n)
{
	const char *end = p + n;
	/* Judged before the bytes, so that a gzip bomb stops at the ceiling
	 * whatever the chunking. */
	s->decoded += n;
	if (s->max_bytes && s->decoded > s->max_bytes)
		return over_limit(s, "bytes decompressed", s->max_bytes,
				  "max_object_bytes");
	while (p < end) {
		const char *q;
		if (s->as == A_INSIDE) {
			q = scan_element(s, p, end);
			size_t part = (size_t)((q ? q : end) - p);
			if (part > s->max_event - s->elem.len)
				return too_big(s);
			if (!q) {
				if (wiv_jbuf_append(&s->elem, p, part))
					return no_memory(s);
				return 0;
			}
			int rc;
			if (s->elem.len == 0) {
				rc = element(s, p, part);
			} else if (wiv_jbuf_append(&s->elem, p, part)) {
				rc = no_memory(s);
			} else {
				rc = element(s, s->elem.data, s->elem.len);
				s->elem.len = 0;
			}
			if (rc)
				return rc;
			s->as = A_AFTER;
			p = q;
			continue;
		}
		p = wiv_json_skip_ws(p, end);
		if (p == end)
			break;
		int rc = outside_element(s, *p);
		if (rc)
			return rc;
		if (s->as != A_INSIDE)
			p++;
	}
	return 0;
}

/* ---- the input layer ---- */

static int start_member(struct wiv_splitter *s)
{
	int zrc;
	if (s->zs_ready) {
		s->member_offset += s->zs.total_in;
		zrc = inflateReset(&s->zs);
	} else {
		/* 16 + 15: a gzip wrapper only, with the largest window. */
		zrc = inflateInit2(&s->zs, 16 + MAX_WBITS);
		s->zs_ready = zrc == Z_OK;
	}
	if (zrc != Z_OK)
		return no_memory(s);
	s->in = IN_MEMBER;
	return 0;
}

/* Inflates from p until the input is used up or the member ends; *used
 * tells how much of p was consumed. */
static int inflate_some(struct wiv_splitter *s, const unsigned char *p,
			size_t n, size_t *used)
{
	z_stream *zs = &s->zs;
	/* avail_in is 32-bit: large chunks are handed over in slices. */
	size_t slice = n > (1u << 30) ? (1u << 30) : n;
	zs->next_in = (unsigned char *)p;
	zs->avail_in = (uInt)slice;
	for (;;) {
		zs->next_out = s->zout;
		zs->avail_out = ZOUT_SIZE;
		int zrc = inflate(zs, Z_NO_FLUSH);
		/* What came out before an error is judged first, so that the
		 * outcome does not depend on how the body was chunked. */
		size_t out = ZOUT_SIZE - zs->avail_out;
		if (out) {
			int rc = array_feed(s, (const char *)s->zout, out);
			if (rc)
				return rc;
		}
		if (zrc == Z_MEM_ERROR)
			return no_memory(s);
		if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
			return bad(s,
				   "corrupt gzip (%s) at compressed byte %llu",
				   zs->msg ? zs->msg : "bad data",
				   s->member_offset + zs->total_in);
		if (zrc == Z_STREAM_END) {
			s->in = IN_BETWEEN;
			break;
		}
		if (zs->avail_out != 0 && zs->avail_in == 0)
			break;
	}
	*used = slice - zs->avail_in;
	return 0;
}

static void trailer(struct wiv_splitter *s, const unsigned char *p, size_t n)
{
	s->in = IN_TRAILER;
	s->trailer_len += n;
	for (size_t i = 0; i < n && !s->trailer_nonzero; i++)
		s->trailer_nonzero = p[i] != 0;
}

static int gzip_feed(struct wiv_splitter *s, const unsigned char *p, size_t n)
{
	while (n > 0) {
		size_t used;
		int rc;
		switch (s->in) {
		case IN_MEMBER:
			rc = inflate_some(s, p, n, &used);
			if (rc)
				return rc;
			p += used;
			n -= used;
			break;
		case IN_BETWEEN:
			/* gunzip reads on only if another gzip magic follows;
			 * anything else is padding or garbage it warns about.
			 */
			if (!s->held_1f) {
				if (p[0] != 0x1f) {
					trailer(s, p, n);
					return 0;
				}
				s->held_1f = true;
				p++;
				n--;
				break;
			}
			s->held_1f = false;
			if (p[0] != 0x8b) {
				trailer(s, &gzip_magic1, 1);
				trailer(s, p, n);
				return 0;
			}
			rc = start_member(s);
			if (!rc)
				rc = inflate_some(s, &gzip_magic1, 1, &used);
			if (rc)
				return rc;
			break;
		case IN_TRAILER:
			trailer(s, p, n);
			return 0;
		case IN_SNIFF:
		case IN_PLAIN:
			break;
		}
	}
	return 0;
}

int wiv_splitter_feed(struct wiv_splitter *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	if (s->err)
		return s->err;
	if (len == 0)
		return 0;
	if (s->in == IN_SNIFF) {
		/* Gzip is known by its two magic bytes, which a chunk boundary
		 * may split; a held 0x1f stands for the first. */
		bool held = s->held_1f;
		if (!held && p[0] == 0x1f && len == 1) {
			s->held_1f = true;
			return 0;
		}
		s->held_1f = false;
		if (held ? p[0] == 0x8b : p[0] == 0x1f && p[1] == 0x8b) {
			size_t used;
			if (start_member(s) ||
			    (held && inflate_some(s, &gzip_magic1, 1, &used)))
				return s->err;
		} else {
			s->in = IN_PLAIN;
			if (held &&
			    array_feed(s, (const char *)&gzip_magic1, 1))
				return s->err;
		}
	}
	if (s->in == IN_PLAIN)
		array_feed(s, data, len);
	else
		gzip_feed(s, p, len);
	return s->err;
}

int wiv_splitter_finish(struct wiv_splitter *s)
{
	if (s->err)
		return s->err;
	switch (s->in) {
	case IN_SNIFF:
		if (!s->held_1f)
			return bad(s, "empty body");
		s->held_1f = false;
		s->in = IN_PLAIN;
		if (array_feed(s, (const char *)&gzip_magic1, 1))
			return s->err;
		break;
	case IN_MEMBER:
		return bad(s, "truncated gzip (no end of stream)");
	case IN_BETWEEN:
		if (s->held_1f)
			trailer(s, &gzip_magic1, 1);
		break;
	case IN_PLAIN:
	case IN_TRAILER:
		break;
	}
	if (s->as == A_START)
		return bad(s, "not a JSON array (no data)");
	if (s->as != A_CLOSED)
		return bad(s, "truncated JSON array after %zu events",
			   s->position);
	if (s->skipped > LOGGED_SKIPS)
		wiv_warn("%s: %zu elements in all were not objects; skipped",
			 s->key, s->skipped);
	if (s->trailer_len)
		wiv_warn("%s: %llu trailing %s byte%s after the gzip data "
			 "ignored",
			 s->key, s->trailer_len,
			 s->trailer_nonzero ? "garbage" : "zero",
			 s->trailer_len == 1 ? "" : "s");
	return 0;
}
