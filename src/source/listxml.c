#include "wivaudit/listxml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

/* S3 keys are at most 1024 bytes and tokens a few hundred; anything much
 * longer is not S3 talking. */
#define MAX_TEXT (64 * 1024)

enum doc { DOC_LIST, DOC_ERROR };

struct wiv_listxml {
	XML_Parser xp;
	enum doc doc;
	int err;
	int depth;
	bool in_contents, in_prefixes;

	char *text; /* character data of the current leaf element */
	size_t text_len, text_cap;

	/* The <Contents> being read. */
	char *key, *etag; /* key NULL: undecodable, skipped */
	char *storage_class;
	unsigned long long size;
	char *prefix; /* the <CommonPrefixes> being read */
	bool have_key;

	bool truncated;
	bool url_encoded;     /* keys and prefixes come url-encoded */
	long undecodable;     /* entries skipped: not valid url-encoding */
	char *next_token;
	long key_count, seen;

	wiv_list_object_fn on_object;
	wiv_list_prefix_fn on_prefix;
	void *arg;
	struct wiv_s3_error *error;
	int field_depth; /* where <Code> and the others sit */
	bool in_error;
};

static void fail(struct wiv_listxml *p, int err)
{
	if (!p->err)
		p->err = err;
	XML_StopParser(p->xp, XML_FALSE);
}

static void XMLCALL on_start(void *data, const XML_Char *name,
			     const XML_Char **attrs)
{
	struct wiv_listxml *p = data;

	(void)attrs;
	p->depth++;
	p->text_len = 0;
	if (p->depth == 1) {
		const char *want =
		    p->doc == DOC_LIST ? "ListBucketResult" : "Error";
		/* STS and the other query APIs wrap theirs:
		 * <ErrorResponse><Error><Code>. */
		if (p->doc == DOC_ERROR && strcmp(name, "ErrorResponse") == 0)
			p->field_depth = 3;
		else if (strcmp(name, want) != 0)
			fail(p, EBADMSG);
	} else if (p->depth == 2 && p->doc == DOC_ERROR) {
		p->in_error = strcmp(name, "Error") == 0;
	} else if (p->depth == 2 && p->doc == DOC_LIST) {
		p->in_contents = strcmp(name, "Contents") == 0;
		p->in_prefixes = strcmp(name, "CommonPrefixes") == 0;
		if (p->in_contents) {
			p->have_key = false;
			p->size = 0;
			free(p->etag);
			p->etag = NULL;
			free(p->storage_class);
			p->storage_class = NULL;
		}
	}
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	struct wiv_listxml *p = data;
	size_t n = (size_t)len;

	if (p->text_len + n + 1 > p->text_cap) {
		size_t cap = p->text_cap ? p->text_cap * 2 : 256;
		while (cap < p->text_len + n + 1)
			cap *= 2;
		if (cap > MAX_TEXT) {
			fail(p, EBADMSG);
			return;
		}
		char *t = realloc(p->text, cap);
		if (!t) {
			fail(p, ENOMEM);
			return;
		}
		p->text = t;
		p->text_cap = cap;
	}
	memcpy(p->text + p->text_len, s, n);
	p->text_len += n;
	p->text[p->text_len] = '\0';
}

static const char *text(struct wiv_listxml *p)
{
	return p->text_len ? p->text : "";
}

static bool parse_ull(const char *s, unsigned long long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && *end == '\0';
}

static void set_str(struct wiv_listxml *p, char **dst, const char *s)
{
	char *d = strdup(s);

	if (!d) {
		fail(p, ENOMEM);
		return;
	}
	free(*dst);
	*dst = d;
}

/* ETags come quoted ("&quot;abc&quot;" once expat has decoded it). */
static void set_etag(struct wiv_listxml *p, const char *s)
{
	size_t n = strlen(s);

	set_str(p, &p->etag, s);
	if (p->etag && n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		memmove(p->etag, p->etag + 1, n - 2);
		p->etag[n - 2] = '\0';
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* S3's url encoding is form encoding: "+" is a space, %XX a byte. A broken
 * escape, or %00 (a C string would end there and a key could pass for
 * another), makes the entry unusable. Returns 0, EILSEQ or ENOMEM. */
static int url_decode(const char *in, char **out)
{
	char *d = malloc(strlen(in) + 1), *o = d;

	if (!d)
		return ENOMEM;
	for (; *in; in++) {
		if (*in == '+') {
			*o++ = ' ';
		} else if (*in != '%') {
			*o++ = *in;
		} else {
			int hi = hex_digit(in[1]), lo = hi < 0 ? -1 : hex_digit(in[2]);
			if (lo < 0 || (hi | lo) == 0) {
				free(d);
				return EILSEQ;
			}
			*o++ = (char)(hi << 4 | lo);
			in += 2;
		}
	}
	*o = '\0';
	*out = d;
	return 0;
}

/* The text of a <Key> or <CommonPrefixes><Prefix> as the bucket holds it,
 * into *dst. Returns false (the entry is skipped) when it cannot be
 * decoded. */
static bool take_name(struct wiv_listxml *p, char **dst, const char *t)
{
	char *d;

	if (!p->url_encoded) {
		set_str(p, dst, t);
		return !p->err;
	}
	int rc = url_decode(t, &d);
	if (rc == EILSEQ) {
		p->undecodable++;
		return false;
	}
	if (rc) {
		fail(p, rc);
		return false;
	}
	free(*dst);
	*dst = d;
	return true;
}

static void end_contents(struct wiv_listxml *p)
{
	p->in_contents = false;
	if (!p->have_key) {
		fail(p, EBADMSG);
		return;
	}
	p->seen++;
	if (!p->on_object || !p->key)
		return;
	struct wiv_object_info info = {
		p->key, p->etag ? p->etag : "", p->size,
		p->storage_class ? p->storage_class : ""};
	if (p->on_object(p->arg, &info))
		fail(p, ECANCELED);
}

static void end_list_element(struct wiv_listxml *p, const char *name)
{
	const char *t = text(p);

	if (p->depth == 3 && p->in_contents) {
		if (strcmp(name, "Key") == 0) {
			if (!take_name(p, &p->key, t)) {
				free(p->key);
				p->key = NULL;
			}
			p->have_key = true;
		} else if (strcmp(name, "ETag") == 0) {
			set_etag(p, t);
		} else if (strcmp(name, "Size") == 0) {
			if (!parse_ull(t, &p->size))
				fail(p, EBADMSG);
		} else if (strcmp(name, "StorageClass") == 0) {
			set_str(p, &p->storage_class, t);
		}
	} else if (p->depth == 3 && p->in_prefixes &&
		   strcmp(name, "Prefix") == 0) {
		p->seen++;
		if (take_name(p, &p->prefix, t) && p->on_prefix &&
		    p->on_prefix(p->arg, p->prefix))
			fail(p, ECANCELED);
	} else if (p->depth == 2) {
		if (p->in_contents) {
			end_contents(p);
		} else if (strcmp(name, "IsTruncated") == 0) {
			p->truncated = strcmp(t, "true") == 0;
		} else if (strcmp(name, "NextContinuationToken") == 0) {
			set_str(p, &p->next_token, t);
		} else if (strcmp(name, "KeyCount") == 0) {
			unsigned long long n;
			if (!parse_ull(t, &n) || n > 1000000)
				fail(p, EBADMSG);
			else
				p->key_count = (long)n;
		}
		p->in_prefixes = false;
	}
}

static void copy_field(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s);
}

static void end_error_element(struct wiv_listxml *p, const char *name)
{
	struct wiv_s3_error *e = p->error;
	const char *t = text(p);

	if (p->depth != p->field_depth || (p->depth == 3 && !p->in_error))
		return;
	if (strcmp(name, "Code") == 0)
		copy_field(e->code, sizeof(e->code), t);
	else if (strcmp(name, "Message") == 0)
		copy_field(e->message, sizeof(e->message), t);
	else if (strcmp(name, "Region") == 0)
		copy_field(e->region, sizeof(e->region), t);
	else if (strcmp(name, "BucketName") == 0)
		copy_field(e->bucket, sizeof(e->bucket), t);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	struct wiv_listxml *p = data;

	if (p->doc == DOC_LIST)
		end_list_element(p, name);
	else
		end_error_element(p, name);
	p->text_len = 0;
	p->depth--;
}

static struct wiv_listxml *parser_new(enum doc doc)
{
	struct wiv_listxml *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->xp = XML_ParserCreate("UTF-8");
	if (!p->xp) {
		free(p);
		return NULL;
	}
	p->doc = doc;
	p->key_count = -1;
	XML_SetUserData(p->xp, p);
	XML_SetElementHandler(p->xp, on_start, on_end);
	XML_SetCharacterDataHandler(p->xp, on_text);
	return p;
}

struct wiv_listxml *wiv_listxml_new(wiv_list_object_fn on_object,
				    wiv_list_prefix_fn on_prefix, void *arg)
{
	struct wiv_listxml *p = parser_new(DOC_LIST);

	if (p) {
		p->on_object = on_object;
		p->on_prefix = on_prefix;
		p->arg = arg;
	}
	return p;
}

int wiv_listxml_feed(struct wiv_listxml *p, const void *data, size_t len,
		     bool final)
{
	if (p->err)
		return p->err;
	/* expat takes an int length; S3 bodies arrive in curl-sized chunks,
	 * but stay correct for any caller. */
	while (len > 0 || final) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		bool last = final && n == len;
		if (XML_Parse(p->xp, data, (int)n, last) != XML_STATUS_OK) {
			if (!p->err)
				p->err = XML_GetErrorCode(p->xp) ==
						 XML_ERROR_NO_MEMORY
					     ? ENOMEM
					     : EBADMSG;
			return p->err;
		}
		/* Before stepping on: data may be NULL on a final empty feed. */
		if (last)
			break;
		data = (const char *)data + n;
		len -= n;
	}
	return 0;
}

void wiv_listxml_url_encoded(struct wiv_listxml *p)
{
	p->url_encoded = true;
}

long wiv_listxml_undecodable(const struct wiv_listxml *p)
{
	return p->undecodable;
}

bool wiv_listxml_truncated(const struct wiv_listxml *p)
{
	return p->truncated;
}

const char *wiv_listxml_next_token(const struct wiv_listxml *p)
{
	return p->next_token && *p->next_token ? p->next_token : NULL;
}

long wiv_listxml_key_count(const struct wiv_listxml *p)
{
	return p->key_count;
}

long wiv_listxml_seen(const struct wiv_listxml *p)
{
	return p->seen;
}

void wiv_listxml_free(struct wiv_listxml *p)
{
	if (!p)
		return;
	XML_ParserFree(p->xp);
	free(p->text);
	free(p->key);
	free(p->storage_class);
	free(p->etag);
	free(p->prefix);
	free(p->next_token);
	free(p);
}

int wiv_listxml_parse_error(const void *body, size_t len,
			    struct wiv_s3_error *err)
{
	struct wiv_listxml *p;
	int rc;

	memset(err, 0, sizeof(*err));
	if (len == 0)
		return EBADMSG;
	p = parser_new(DOC_ERROR);
	if (!p)
		return ENOMEM;
	p->error = err;
	p->field_depth = 2;
	rc = wiv_listxml_feed(p, body, len, true);
	wiv_listxml_free(p);
	if (!rc && !err->code[0])
		rc = EBADMSG;
	return rc;
}
