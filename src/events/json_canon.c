/* A recursive-descent reader that checks the text and appends the canonical
 * form as it goes. An object's members are written in text order and only
 * reordered, in place, when they were not already sorted by name. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/json_canon.h"

/* One member of an object being read: where its canonical bytes (name, then
 * value) lie in out. */
struct canon_member {
	size_t off, len;
	size_t name_len; /* decoded bytes after the name's tag and length */
	size_t order;    /* in the text, for "the last one counts" */
	const char *name; /* set only while sorting */
};

/* A member of the top-level object, for wiv_json_canon_member. */
struct canon_top {
	size_t name_off, name_len; /* in names */
	const char *raw;
	size_t raw_len;
};

#define NAME_HEADER (1 + sizeof(uint64_t)) /* tag + length */

struct reader {
	struct wiv_json_canon *c;
	const char *start, *end;
	int err; /* EINVAL or ENOMEM once failed */
};

static const char *fail(struct reader *r, const char *p, const char *what)
{
	if (!r->err) {
		snprintf(r->c->error, sizeof(r->c->error), "%s at byte %zu",
			 what, (size_t)(p - r->start));
		r->err = EINVAL;
	}
	return NULL;
}

static bool put(struct reader *r, const void *p, size_t n)
{
	if (wiv_jbuf_append(&r->c->out, p, n)) {
		r->err = ENOMEM;
		return false;
	}
	return true;
}

static bool put_tagged(struct reader *r, char tag, const void *p, size_t n)
{
	return put(r, &tag, 1) && put(r, p, n);
}

static const char *skip_ws(const char *p, const char *end)
{
	return wiv_json_skip_ws(p, end);
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char ch = p[i];
		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* Length of the valid UTF-8 sequence of two or more bytes at p, or 0. */
static size_t utf8_sequence(const unsigned char *p, const unsigned char *end)
{
	unsigned char b = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
	if (b >= 0xc2 && b <= 0xdf) {
		n = 2;
	} else if (b >= 0xe0 && b <= 0xef) {
		n = 3;
		if (b == 0xe0)
			lo = 0xa0; /* overlong */
		else if (b == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		n = 4;
		if (b == 0xf0)
			lo = 0x90; /* overlong */
		else if (b == 0xf4)
			hi = 0x8f; /* beyond U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Checks the string token at p (its opening quote) and appends its decoded
 * bytes to b. Returns the byte after the closing quote, or NULL. */
static const char *decode(struct reader *r, const char *p, struct wiv_jbuf *b,
			  bool *has_nul)
{
	const char *end = r->end;
	*has_nul = false;
	for (p++;;) {
		const char *q = p;
		while (q < end && (unsigned char)*q >= 0x20 &&
		       (unsigned char)*q < 0x80 && *q != '"' && *q != '\\')
			q++;
		if (wiv_jbuf_append(b, p, (size_t)(q - p))) {
			r->err = ENOMEM;
			return NULL;
		}
		p = q;
		if (p == end)
			return fail(r, p, "unterminated string");
		unsigned char ch = (unsigned char)*p;
		if (ch == '"')
			return p + 1;
		if (ch < 0x20)
			return fail(r, p, "control byte in a string");
		char utf8[4];
		size_t n;
		if (ch >= 0x80) {
			n = utf8_sequence((const unsigned char *)p,
					  (const unsigned char *)end);
			if (!n)
				return fail(r, p, "invalid UTF-8");
			memcpy(utf8, p, n);
			p += n;
		} else if (end - p < 2) {
			return fail(r, p, "unterminated string");
		} else if (p[1] != 'u') {
			static const char from[] = "\"\\/bfnrt";
			static const char to[] = "\"\\/\b\f\n\r\t";
			const char *e = memchr(from, p[1], sizeof(from) - 1);
			if (!e)
				return fail(r, p, "invalid escape");
			utf8[0] = to[e - from];
			n = 1;
			p += 2;
		} else {
			int cp = end - p >= 6 ? hex4(p + 2) : -1;
			if (cp < 0)
				return fail(r, p, "invalid \\u escape");
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(r, p, "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				int low = end - p >= 12 && p[6] == '\\' &&
						  p[7] == 'u'
					      ? hex4(p + 8)
					      : -1;
				if (low < 0xdc00 || low > 0xdfff)
					return fail(r, p, "lone high surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (low - 0xdc00);
				p += 6;
			}
			*has_nul |= cp == 0;
			n = utf8_encode((uint32_t)cp, utf8);
			p += 6;
		}
		if (wiv_jbuf_append(b, utf8, n)) {
			r->err = ENOMEM;
			return NULL;
		}
	}
}

/* A string or a member name: tag, decoded length, decoded bytes. */
static const char *string(struct reader *r, const char *p, bool is_name)
{
	struct wiv_jbuf *out = &r->c->out;
	size_t header = out->len;
	uint64_t len = 0;
	if (!put_tagged(r, 's', &len, sizeof(len)))
		return NULL;
	bool has_nul;
	p = decode(r, p, out, &has_nul);
	if (!p)
		return NULL;
	if (is_name && has_nul)
		return fail(r, p, "NUL in a member name");
	len = out->len - header - NAME_HEADER;
	memcpy(out->data + header + 1, &len, sizeof(len));
	return p;
}

static bool is_digit(const char *p, const char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static const char *number(struct reader *r, const char *p)
{
	const char *start = p, *end = r->end;
	bool integer = true;
	if (*p == '-')
		p++;
	if (!is_digit(p, end))
		return fail(r, p, "invalid number");
	if (*p == '0')
		p++;
	else
		while (is_digit(p, end))
			p++;
	if (p < end && *p == '.') {
		integer = false;
		if (!is_digit(++p, end))
			return fail(r, p, "invalid number");
		while (is_digit(p, end))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		integer = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return fail(r, p, "invalid number");
		while (is_digit(p, end))
			p++;
	}

	/* strtoll and strtod want a NUL-terminated copy. */
	size_t len = (size_t)(p - start);
	struct wiv_jbuf *tmp = &r->c->tmp;
	tmp->len = 0;
	if (wiv_jbuf_append(tmp, start, len) || wiv_jbuf_append(tmp, "", 1)) {
		r->err = ENOMEM;
		return NULL;
	}
	char *stop;
	errno = 0;
	if (integer) {
		long long v = strtoll(tmp->data, &stop, 10);
		if (errno != ERANGE)
			return put_tagged(r, 'i', &v, sizeof(v)) ? p : NULL;
	} else {
		double v = strtod(tmp->data, &stop);
		if (!(errno == ERANGE && (v > 1 || v < -1)))
			return put_tagged(r, 'r', &v, sizeof(v)) ? p : NULL;
	}
	uint64_t n = len;
	return put_tagged(r, 'n', &n, sizeof(n)) && put(r, start, len) ? p
									: NULL;
}

static const char *literal(struct reader *r, const char *p)
{
	static const struct {
		const char *text;
		char tag;
	} literals[] = {{"true", 't'}, {"false", 'f'}, {"null", 'z'}};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(literals[i].text);
		if ((size_t)(r->end - p) >= n &&
		    memcmp(p, literals[i].text, n) == 0)
			return put(r, &literals[i].tag, 1) ? p + n : NULL;
	}
	return fail(r, p, "invalid literal");
}

static const char *value(struct reader *r, const char *p, int depth,
			 bool top);

static const char *array(struct reader *r, const char *p, int depth)
{
	if (!put(r, "[", 1))
		return NULL;
	p = skip_ws(p + 1, r->end);
	if (p < r->end && *p == ']')
		return put(r, "]", 1) ? p + 1 : NULL;
	for (;;) {
		p = value(r, p, depth + 1, false);
		if (!p)
			return NULL;
		p = skip_ws(p, r->end);
		if (p < r->end && *p == ']')
			return put(r, "]", 1) ? p + 1 : NULL;
		if (p == r->end || *p != ',')
			return fail(r, p, "',' or ']' expected");
		p = skip_ws(p + 1, r->end);
	}
}

static int compare_members(const void *a, const void *b)
{
	const struct canon_member *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);
	if (c)
		return c;
	if (x->name_len != y->name_len)
		return x->name_len < y->name_len ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static size_t nmembers(const struct wiv_json_canon *c)
{
	return c->members.len / sizeof(struct canon_member);
}

/* Rewrites members [first, nmembers) of the object whose members start at
 * off in out, sorted by name, keeping the last of equal names. */
static bool sort_members(struct reader *r, size_t first, size_t off)
{
	struct wiv_json_canon *c = r->c;
	struct canon_member *m = (struct canon_member *)c->members.data + first;
	size_t n = nmembers(c) - first;
	bool sorted = true;
	for (size_t i = 0; i < n; i++) {
		m[i].name = c->out.data + m[i].off + NAME_HEADER;
		if (i && compare_members(&m[i - 1], &m[i]) >= 0)
			sorted = false;
	}
	/* Strictly increasing also means no name twice. */
	for (size_t i = 1; sorted && i < n; i++)
		sorted = m[i - 1].name_len != m[i].name_len ||
			 memcmp(m[i - 1].name, m[i].name, m[i].name_len) != 0;
	if (sorted)
		return true;
	qsort(m, n, sizeof(*m), compare_members);
	c->tmp.len = 0;
	if (wiv_jbuf_append(&c->tmp, c->out.data + off, c->out.len - off)) {
		r->err = ENOMEM;
		return false;
	}
	c->out.len = off;
	for (size_t i = 0; i < n; i++) {
		bool same_as_next =
		    i + 1 < n && m[i].name_len == m[i + 1].name_len &&
		    memcmp(m[i].name, m[i + 1].name, m[i].name_len) == 0;
		if (!same_as_next &&
		    !put(r, c->tmp.data + (m[i].off - off), m[i].len))
			return false;
	}
	return true;
}

/* Appends a record to an array kept in a byte buffer (malloc'd, so
 * aligned for any record). */
static bool add_record(struct reader *r, struct wiv_jbuf *array,
		       const void *record, size_t size)
{
	if (wiv_jbuf_append(array, record, size)) {
		r->err = ENOMEM;
		return false;
	}
	return true;
}

static const char *object(struct reader *r, const char *p, int depth,
			  bool top)
{
	struct wiv_json_canon *c = r->c;
	if (!put(r, "{", 1))
		return NULL;
	size_t off = c->out.len, first = nmembers(c);
	p = skip_ws(p + 1, r->end);
	if (p < r->end && *p == '}')
		return put(r, "}", 1) ? p + 1 : NULL;
	for (size_t order = 0;; order++) {
		if (p == r->end || *p != '"')
			return fail(r, p, "member name expected");
		struct canon_member m = {.off = c->out.len, .order = order};
		p = string(r, p, true);
		if (!p)
			return NULL;
		m.name_len = c->out.len - m.off - NAME_HEADER;
		size_t name_off = c->names.len;
		if (top && wiv_jbuf_append(&c->names,
					   c->out.data + m.off + NAME_HEADER,
					   m.name_len)) {
			r->err = ENOMEM;
			return NULL;
		}
		p = skip_ws(p, r->end);
		if (p == r->end || *p != ':')
			return fail(r, p, "':' expected");
		const char *v = skip_ws(p + 1, r->end);
		p = value(r, v, depth + 1, false);
		if (!p)
			return NULL;
		m.len = c->out.len - m.off;
		struct canon_top t = {name_off, m.name_len, v, (size_t)(p - v)};
		if (!add_record(r, &c->members, &m, sizeof(m)) ||
		    (top && !add_record(r, &c->top, &t, sizeof(t))))
			return NULL;
		p = skip_ws(p, r->end);
		if (p < r->end && *p == '}')
			break;
		if (p == r->end || *p != ',')
			return fail(r, p, "',' or '}' expected");
		p = skip_ws(p + 1, r->end);
	}
	bool ok = sort_members(r, first, off);
	c->members.len = first * sizeof(struct canon_member);
	return ok && put(r, "}", 1) ? p + 1 : NULL;
}

static const char *value(struct reader *r, const char *p, int depth,
			 bool top)
{
	if (p == r->end)
		return fail(r, p, "value expected");
	switch (*p) {
	case '{':
	case '[':
		if (depth >= WIV_JSON_MAX_DEPTH)
			return fail(r, p, "nesting too deep");
		return *p == '{' ? object(r, p, depth, top)
				 : array(r, p, depth);
	case '"':
		return string(r, p, false);
	case 't':
	case 'f':
	case 'n':
		return literal(r, p);
	default:
		return number(r, p);
	}
}

static enum wiv_json_type type_of(char first)
{
	switch (first) {
	case '{':
		return WIV_JSON_OBJECT;
	case '[':
		return WIV_JSON_ARRAY;
	case '"':
		return WIV_JSON_STRING;
	case 't':
	case 'f':
		return WIV_JSON_BOOLEAN;
	case 'n':
		return WIV_JSON_NULL;
	}
	return WIV_JSON_NUMBER;
}

int wiv_json_canon(struct wiv_json_canon *c, const char *text, size_t len,
		   enum wiv_json_type *type)
{
	struct reader r = {.c = c, .start = text, .end = text + len};
	c->out.len = c->names.len = 0;
	c->members.len = c->top.len = 0;
	c->error[0] = '\0';
	const char *p = skip_ws(text, r.end);
	if (p < r.end)
		*type = type_of(*p);
	p = value(&r, p, 0, true);
	if (p && skip_ws(p, r.end) != r.end)
		fail(&r, skip_ws(p, r.end), "trailing characters");
	return r.err;
}

bool wiv_json_canon_member(const struct wiv_json_canon *c, const char *name,
			   const char **raw, size_t *raw_len)
{
	size_t n = strlen(name);
	const struct canon_top *top = (const struct canon_top *)c->top.data;
	for (size_t i = c->top.len / sizeof(*top); i-- > 0;) {
		const struct canon_top *t = &top[i];
		if (t->name_len == n &&
		    memcmp(c->names.data + t->name_off, name, n) == 0) {
			*raw = t->raw;
			*raw_len = t->raw_len;
			return true;
		}
	}
	return false;
}

int wiv_json_decode_string(const char *raw, size_t len, struct wiv_jbuf *out)
{
	struct wiv_json_canon scratch = {0};
	struct reader r = {.c = &scratch, .start = raw, .end = raw + len};
	bool has_nul;
	out->len = 0;
	if (!decode(&r, raw, out, &has_nul) || wiv_jbuf_reserve(out, 1))
		return r.err ? r.err : ENOMEM;
	out->data[out->len] = '\0';
	return 0;
}

void wiv_json_canon_free(struct wiv_json_canon *c)
{
	wiv_jbuf_free(&c->out);
	wiv_jbuf_free(&c->names);
	wiv_jbuf_free(&c->tmp);
	wiv_jbuf_free(&c->members);
	wiv_jbuf_free(&c->top);
}
