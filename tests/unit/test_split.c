#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "check.h"
#include "wivaudit/json_canon.h"
#include "wivaudit/json_layout.h"
#include "wivaudit/split.h"

#define KEY "org/user-audit-logs-1769558400000.json.gz"
#define WHOLE SIZE_MAX

/* ---- helpers ---- */

struct rec {
	size_t position;
	char *text;
	size_t text_len;
	enum wiv_id_kind id_kind;
	char *id;
	size_t id_len;
	bool has_created_at;
	double created_at;
	char *event_type;
	uint8_t digest[WIV_DIGEST_LEN];
};

struct run {
	int rc;
	size_t skipped;
	size_t n;
	struct rec ev[4096];
	size_t stop_after; /* 0: never stop */
	char log[16384];
};

static char *memdup(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static int collect(void *arg, const struct wiv_event *ev)
{
	struct run *r = arg;
	if (r->n == sizeof(r->ev) / sizeof(r->ev[0]))
		return 1;
	struct rec *e = &r->ev[r->n++];
	e->position = ev->position;
	e->text = memdup(ev->text, ev->text_len);
	e->text_len = ev->text_len;
	CHECK(ev->text[ev->text_len] == '\0');
	CHECK(ev->text_len > 0 && ev->text[ev->text_len - 1] == '\n');
	e->id_kind = ev->id_kind;
	e->id = ev->id ? memdup(ev->id, ev->id_len) : NULL;
	e->id_len = ev->id_len;
	CHECK((ev->id_kind == WIV_ID_NONE) == (ev->id == NULL));
	e->has_created_at = ev->has_created_at;
	e->created_at = ev->created_at;
	e->event_type = ev->event_type ? strdup(ev->event_type) : NULL;
	memcpy(e->digest, ev->digest, WIV_DIGEST_LEN);
	return r->stop_after && r->n >= r->stop_after;
}

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->ev[i].text);
		free(r->ev[i].id);
		free(r->ev[i].event_type);
	}
	free(r);
}

/* The splitter logs through wiv_log to stderr: tests read it back. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(2);
	dup2(fileno(capture_file), 2);
}

static void capture_end(char *buf, size_t size)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(capture_file);
	size_t n = fread(buf, 1, size - 1, capture_file);
	buf[n] = '\0';
	fclose(capture_file);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Ceilings split_opts sets on its splitter (0: none). */
static size_t limit_elements;
static uint64_t limit_bytes;

/* Splits body fed in chunks of the given size; returns a new run. */
static struct run *split_opts(const void *body, size_t len, size_t chunk,
			      enum wiv_layout layout, size_t max,
			      size_t stop_after)
{
	struct run *r = calloc(1, sizeof(*r));
	r->stop_after = stop_after;
	capture_begin();
	struct wiv_splitter *s = wiv_splitter_new(layout, max, KEY, collect, r);
	wiv_splitter_set_limits(s, limit_elements, limit_bytes);
	const char *p = body;
	size_t left = len;
	r->rc = 0;
	while (left > 0 && !r->rc) {
		size_t n = left < chunk ? left : chunk;
		r->rc = wiv_splitter_feed(s, p, n);
		p += n;
		left -= n;
	}
	if (!r->rc)
		r->rc = wiv_splitter_finish(s);
	r->skipped = wiv_splitter_skipped(s);
	wiv_splitter_free(s);
	capture_end(r->log, sizeof(r->log));
	return r;
}

static struct run *split(const void *body, size_t len, size_t chunk)
{
	return split_opts(body, len, chunk, WIV_LAYOUT_PRETTY, 1 << 20, 0);
}

static struct run *split_str(const char *body)
{
	return split(body, strlen(body), WHOLE);
}

static char *gz(const void *data, size_t len, size_t *out_len)
{
	z_stream zs = {0};
	deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
	size_t cap = deflateBound(&zs, len);
	char *out = malloc(cap);
	zs.next_in = (unsigned char *)data;
	zs.avail_in = len;
	zs.next_out = (unsigned char *)out;
	zs.avail_out = cap;
	CHECK_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static char *cat(const char *a, size_t an, const char *b, size_t bn)
{
	char *c = malloc(an + bn);
	memcpy(c, a, an);
	memcpy(c + an, b, bn);
	return c;
}

static char *texts(const struct run *r)
{
	size_t len = 0;
	for (size_t i = 0; i < r->n; i++)
		len += r->ev[i].text_len;
	char *t = malloc(len + 1), *p = t;
	for (size_t i = 0; i < r->n; i++) {
		memcpy(p, r->ev[i].text, r->ev[i].text_len);
		p += r->ev[i].text_len;
	}
	*p = '\0';
	return t;
}

static bool same_events(const struct run *a, const struct run *b)
{
	if (a->n != b->n || a->rc != b->rc || a->skipped != b->skipped)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct rec *x = &a->ev[i], *y = &b->ev[i];
		if (x->position != y->position || strcmp(x->text, y->text) ||
		    x->id_kind != y->id_kind || x->id_len != y->id_len ||
		    (x->id && memcmp(x->id, y->id, x->id_len)) ||
		    x->has_created_at != y->has_created_at ||
		    x->created_at != y->created_at ||
		    !x->event_type != !y->event_type ||
		    (x->event_type && strcmp(x->event_type, y->event_type)) ||
		    memcmp(x->digest, y->digest, WIV_DIGEST_LEN))
			return false;
	}
	return true;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "cannot open %s\n", path);
		check_failures++;
		*len = 0;
		return strdup("");
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* Output of `jq <args> path`, or NULL when jq cannot be run. */
static char *run_jq(const char *args, const char *path)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "jq %s '%s' 2>/dev/null", args, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	size_t cap = 1 << 16, len = 0, n;
	char *buf = malloc(cap);
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (cap - len < 2)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	if (pclose(p) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- fixtures: tests/data/split/<case>/{input.json, expected*.txt} ---- */

static void check_fixture(const char *dir, const char *name, bool jq_agrees)
{
	char path[4096];
	size_t in_len, pretty_len, compact_len;
	snprintf(path, sizeof(path), "%s/split/%s/input.json", dir, name);
	char *input = read_file(path, &in_len);
	char *jq_pretty = jq_agrees ? run_jq("'.[]'", path) : NULL;
	char *jq_compact = jq_agrees ? run_jq("-c '.[]'", path) : NULL;
	snprintf(path, sizeof(path), "%s/split/%s/expected.txt", dir, name);
	char *pretty = read_file(path, &pretty_len);
	snprintf(path, sizeof(path), "%s/split/%s/expected_compact.txt", dir,
		 name);
	char *compact = read_file(path, &compact_len);
	size_t gz_len;
	char *gzipped = gz(input, in_len, &gz_len);

	struct run *ref = split(gzipped, gz_len, WHOLE);
	CHECK_INT(ref->rc, 0);
	char *t = texts(ref);
	if (strcmp(t, pretty) != 0)
		fprintf(stderr, "fixture %s: pretty layout differs\n", name);
	CHECK_STR(t, pretty);
	if (jq_agrees && jq_pretty)
		CHECK_STR(t, jq_pretty);
	else if (jq_agrees)
		fprintf(stderr, "note: jq not runnable, comparison skipped\n");
	free(t);

	static const size_t chunks[] = {1, 2, 7, 4096, WHOLE};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct run *r = split(gzipped, gz_len, chunks[i]);
		if (!same_events(ref, r))
			fprintf(stderr, "fixture %s: gzip, chunk %zu differs\n",
				name, chunks[i]);
		CHECK(same_events(ref, r));
		run_free(r);
		r = split(input, in_len, chunks[i]);
		CHECK_INT(count(r->log, "not gzip-compressed"), 1);
		if (!same_events(ref, r))
			fprintf(stderr,
				"fixture %s: plain, chunk %zu differs\n", name,
				chunks[i]);
		CHECK(same_events(ref, r));
		run_free(r);
	}

	struct run *c =
	    split_opts(gzipped, gz_len, 3, WIV_LAYOUT_COMPACT, 1 << 20, 0);
	t = texts(c);
	CHECK_STR(t, compact);
	if (jq_agrees && jq_compact)
		CHECK_STR(t, jq_compact);
	/* The layout never changes what the event is. */
	CHECK_INT(c->n, ref->n);
	for (size_t i = 0; i < c->n && i < ref->n; i++)
		CHECK(memcmp(c->ev[i].digest, ref->ev[i].digest,
			     WIV_DIGEST_LEN) == 0);
	free(t);
	run_free(c);
	run_free(ref);
	free(gzipped);
	free(input);
	free(pretty);
	free(compact);
	free(jq_pretty);
	free(jq_compact);
}

static void test_fixtures(void)
{
	const char *dir = getenv("WIV_TEST_DATA");
	if (!dir) {
		fprintf(stderr, "WIV_TEST_DATA not set\n");
		check_failures++;
		return;
	}
	/* jq 1.6 rewrites escapes and number text; those cases have
	 * hand-checked expectations only. */
	check_fixture(dir, "basic", true);
	check_fixture(dir, "strings", true);
	check_fixture(dir, "nesting", true);
	check_fixture(dir, "numbers", false);
	check_fixture(dir, "escapes", false);
}

/* ---- wiv_json_layout ---- */

static void check_layout(const char *raw, enum wiv_layout layout,
			 const char *want)
{
	size_t len = 12345;
	char *got = wiv_json_layout(raw, strlen(raw), layout, &len);
	CHECK_STR(got, want);
	if (got)
		CHECK_INT(len, strlen(want));
	free(got);
}

static void check_layout_bad(const char *raw)
{
	size_t len;
	char *got = wiv_json_layout(raw, strlen(raw), WIV_LAYOUT_PRETTY, &len);
	if (got)
		fprintf(stderr, "layout accepted bad text: %s\n", raw);
	CHECK(got == NULL);
	free(got);
}

static void test_layout(void)
{
	const enum wiv_layout P = WIV_LAYOUT_PRETTY, C = WIV_LAYOUT_COMPACT;
	check_layout(" {\"a\" : [ ] ,\"b\":{\n}} ", P,
		     "{\n  \"a\": [],\n  \"b\": {}\n}\n");
	check_layout(" {\"a\" : [ ] ,\"b\":{\n}} ", C, "{\"a\":[],\"b\":{}}\n");
	check_layout("[1,[2,{\"x\":null}]]", P,
		     "[\n  1,\n  [\n    2,\n    {\n      \"x\": null\n    }\n"
		     "  ]\n]\n");
	check_layout("\t7\r\n", P, "7\n");
	check_layout("\"a \\\" ] } , :\"", P, "\"a \\\" ] } , :\"\n");
	check_layout("{\"k\":\"\\\\\"}", C, "{\"k\":\"\\\\\"}\n");
	check_layout("[1e400,0.1,-0,123456789012345678901234567890]", C,
		     "[1e400,0.1,-0,123456789012345678901234567890]\n");
	check_layout("{}", P, "{}\n");
	/* Compact from the pretty text the cache holds: escaped quotes and
	 * backslash runs inside strings keep their blanks and brackets. */
	check_layout("{\n  \"k \\\" ]\": \"a\\\\\\\"b \\\" , c\",\n  \"n\": [\n"
		     "    1,\n    {}\n  ]\n}\n",
		     C, "{\"k \\\" ]\":\"a\\\\\\\"b \\\" , c\",\"n\":[1,{}]}\n");
	check_layout("[ ]", C, "[]\n");

	check_layout_bad("");
	check_layout_bad("   ");
	check_layout_bad("[");
	check_layout_bad("]");
	check_layout_bad("{\"a\"}");
	check_layout_bad("{\"a\":}");
	check_layout_bad("{\"a\" 1}");
	check_layout_bad("{1:2}");
	check_layout_bad("[1,]");
	check_layout_bad("[1 2]");
	check_layout_bad("1 2");
	check_layout_bad("{,}");
	check_layout_bad("\"abc");
	check_layout_bad("\"abc\\\"");
	check_layout_bad("{\"a\":1,}");
	check_layout_bad("[1]]");
	check_layout_bad("{]");
	check_layout_bad("[}");
	check_layout_bad(":");

	/* As deep as jansson accepts, and no deeper. */
	char deep[2 * 2049 + 1];
	memset(deep, '[', 2048);
	deep[2048] = '1';
	memset(deep + 2049, ']', 2048);
	size_t len;
	char *got = wiv_json_layout(deep, 4097, C, &len);
	CHECK(got != NULL);
	free(got);
	memset(deep, '[', 2049);
	memset(deep + 2049, ']', 2049);
	deep[2049] = '1';
	CHECK(wiv_json_layout(deep, 2 * 2049 + 1, C, &len) == NULL);
}

/* One buffer reused from a long pretty layout to a short compact one and
 * back, as the JSON Lines view reuses its line buffer. */
static void test_layout_reuse(void)
{
	struct wiv_jbuf b = {0};
	char big[4096];
	size_t n = 0;
	big[n++] = '[';
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%d",
				      i ? "," : "", i % 10);
	big[n++] = ']';
	CHECK(wiv_json_layout_buf(&b, big, n, WIV_LAYOUT_PRETTY) == 0);
	CHECK_INT(b.len, 2 + 500 * 5 - 1 + 2);
	CHECK(wiv_json_layout_buf(&b, "[ 1 ]", 5, WIV_LAYOUT_COMPACT) == 0);
	CHECK_STR(b.data, "[1]\n");
	CHECK(wiv_json_layout_buf(&b, big, n, WIV_LAYOUT_COMPACT) == 0);
	CHECK_INT(b.len, n + 1);
	CHECK(b.data[b.len] == '\0');
	wiv_jbuf_free(&b);
}

/* ---- gzip input ---- */

static const char sample[] =
    "[{\"id\":\"e1\",\"created_at\":1769558400,\"event_type\":\"A\"},\n"
    " {\"id\":\"e2\",\"created_at\":1769558401.5,\"event_type\":\"B\","
    "\"event_data\":{\"x\":[1,2,3]}},\n"
    " {\"id\":\"e3\",\"event_type\":\"C\",\"event_data\":\"]}\"}]\n";

static void test_gzip(void)
{
	size_t len = strlen(sample), gl;
	char *g = gz(sample, len, &gl);
	struct run *ref = split(g, gl, WHOLE);
	CHECK_INT(ref->rc, 0);
	CHECK_INT(ref->n, 3);
	CHECK_INT(strlen(ref->log), 0);

	/* Concatenated members, split mid-event, with an empty member. */
	size_t al, bl, el;
	char *a = gz(sample, 70, &al);
	char *e = gz("", 0, &el);
	char *b = gz(sample + 70, len - 70, &bl);
	char *ae = cat(a, al, e, el);
	char *multi = cat(ae, al + el, b, bl);
	size_t ml = al + el + bl;
	static const size_t chunks[] = {1, 5, WHOLE};
	for (size_t i = 0; i < 3; i++) {
		struct run *r = split(multi, ml, chunks[i]);
		CHECK(same_events(ref, r));
		CHECK_INT(strlen(r->log), 0);
		run_free(r);
	}

	/* Padding and garbage after the last member: ignored, with a
	 * warning, as gunzip does. */
	char *padded = calloc(1, gl + 512);
	memcpy(padded, g, gl);
	struct run *r = split(padded, gl + 512, 100);
	CHECK(same_events(ref, r));
	CHECK_INT(count(r->log,
			"512 trailing zero bytes after the gzip data ignored"),
		  1);
	run_free(r);
	memcpy(padded + gl, "junk", 4);
	r = split(padded, gl + 512, 1);
	CHECK(same_events(ref, r));
	CHECK_INT(count(r->log, "512 trailing garbage bytes"), 1);
	run_free(r);
	padded[gl] = 0x1f;
	r = split(padded, gl + 1, WHOLE);
	CHECK_INT(r->rc, 0);
	CHECK_INT(count(r->log, "1 trailing garbage byte after"), 1);
	run_free(r);
	padded[gl + 1] = 0x1f;
	r = split(padded, gl + 2, 1);
	CHECK_INT(r->rc, 0);
	CHECK_INT(count(r->log, "2 trailing garbage bytes"), 1);
	run_free(r);
	free(padded);

	/* A corrupt deflate stream: byte 10 opens the first block, and
	 * block type 3 does not exist. */
	char *bad = memdup(g, gl);
	bad[10] = 0x07;
	for (size_t i = 0; i < 3; i++) {
		r = split(bad, gl, chunks[i]);
		CHECK_INT(r->rc, EBADMSG);
		CHECK_INT(count(r->log, KEY ": corrupt gzip (invalid block "
					    "type) at compressed byte 11"),
			  1);
		CHECK_INT(count(r->log, "error"), 1);
		run_free(r);
	}
	/* Flipped CRC, then flipped length, in the trailer. */
	memcpy(bad, g, gl);
	bad[gl - 8] ^= 1;
	r = split(bad, gl, 1);
	CHECK_INT(r->rc, EBADMSG);
	CHECK_INT(count(r->log, "corrupt gzip (incorrect data check)"), 1);
	run_free(r);
	memcpy(bad, g, gl);
	bad[gl - 4] ^= 1;
	r = split(bad, gl, WHOLE);
	CHECK_INT(r->rc, EBADMSG);
	CHECK_INT(count(r->log, "corrupt gzip (incorrect length check)"), 1);
	run_free(r);
	/* A second member that is corrupt is not trailing garbage. */
	b[bl - 8] ^= 1;
	char *two = cat(a, al, b, bl);
	r = split(two, al + bl, 3);
	CHECK_INT(r->rc, EBADMSG);
	CHECK_INT(count(r->log, "corrupt gzip (incorrect data check) at "
				"compressed byte"),
		  1);
	run_free(r);
	free(two);

	/* Truncation anywhere, including right after the magic. */
	static const size_t cuts[] = {2, 3, 12, 40, 4};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t n = i == 4 ? gl - cuts[i] : cuts[i];
		r = split(g, n, 1);
		CHECK_INT(r->rc, EBADMSG);
		CHECK_INT(count(r->log, KEY ": truncated gzip (no end of "
					    "stream)"),
			  1);
		CHECK_INT(count(r->log, "error"), 1);
		run_free(r);
	}

	/* Gzip of something that is not an array, or of nothing. */
	free(bad);
	bad = gz(" {\"id\":1}", 9, &bl);
	r = split(bad, bl, WHOLE);
	CHECK_INT(r->rc, EBADMSG);
	CHECK_INT(count(r->log, KEY ": not a JSON array (starts with '{')"), 1);
	run_free(r);
	free(bad);
	bad = gz(" \n", 2, &bl);
	r = split(bad, bl, WHOLE);
	CHECK_INT(r->rc, EBADMSG);
	CHECK_INT(count(r->log, "not a JSON array (no data)"), 1);
	run_free(r);

	free(bad);
	free(a);
	free(b);
	free(e);
	free(ae);
	free(multi);
	free(g);
	run_free(ref);
}

/* ---- plain input and bad arrays ---- */

static void check_bad_body(const char *body, const char *log, size_t events)
{
	static const size_t chunks[] = {1, WHOLE};
	for (size_t i = 0; i < 2; i++) {
		struct run *r = split(body, strlen(body), chunks[i]);
		if (r->rc != EBADMSG || count(r->log, log) != 1)
			fprintf(stderr, "body %s: log %s", body, r->log);
		CHECK_INT(r->rc, EBADMSG);
		CHECK_INT(count(r->log, log), 1);
		CHECK_INT(count(r->log, "error"), 1);
		CHECK_INT(r->n, events);
		run_free(r);
	}
}

static void test_plain(void)
{
	struct run *r = split_str(" \r\n\t[{\"id\":\"p\"}] \n");
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 1);
	CHECK_INT(count(r->log, KEY ": body is not gzip-compressed; read as "
				    "a plain JSON array"),
		  1);
	CHECK_INT(count(r->log, "\n"), 1);
	run_free(r);
	r = split_str("[]");
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 0);
	run_free(r);

	check_bad_body("{\"id\":\"x\"}",
		       KEY ": not a JSON array (starts with '{')", 0);
	check_bad_body("  x", "not a JSON array (starts with 'x')", 0);
	check_bad_body("\x1f", "not a JSON array (starts with byte 0x1f)", 0);
	check_bad_body("\x1f[]", "not a JSON array (starts with byte 0x1f)", 0);
	check_bad_body("", KEY ": empty body", 0);
	check_bad_body("\n ", "not a JSON array (no data)", 0);
	check_bad_body("[{\"id\":\"a\"},{\"id\":\"b\"}",
		       KEY ": truncated JSON array after 2 events", 2);
	check_bad_body("[{\"id\":\"a\"},{\"id\":\"b\"},",
		       "truncated JSON array after 2 events", 2);
	check_bad_body("[{\"id\":\"a\"},{\"id\":", "array after 1 events", 1);
	check_bad_body("[{\"id\":\"a\"},12", "array after 1 events", 1);
	check_bad_body("[", "truncated JSON array after 0 events", 0);
	check_bad_body("[] x", "trailing data after the JSON array ('x')", 0);
	check_bad_body("[][]", "trailing data after the JSON array ('[')", 0);
	check_bad_body("[{\"a\":tru}]", KEY ": invalid JSON in element 0", 0);
	check_bad_body("[{},{\"a\":1}}]", "unexpected '}' after element 1", 2);
	check_bad_body("[{},{\"a\":1]]", "invalid JSON in element 1", 1);
	check_bad_body("[{\"a\":\"\x01\"}]", "invalid JSON in element 0", 0);
	check_bad_body("[{}{}]", "unexpected '{' after element 0", 1);
	check_bad_body("[{} 5]", "unexpected '5' after element 0", 1);
	check_bad_body("[{},,{}]",
		       "unexpected ',' in the JSON array at element 1", 1);
	check_bad_body("[{},]", "unexpected ']' in the JSON array at element 1",
		       1);
	check_bad_body("[,]", "unexpected ',' in the JSON array at element 0",
		       0);
}

static void test_non_objects(void)
{
	struct run *r =
	    split_str("[1, {\"id\":\"a\"}, \"x]\", [{}], null, true,"
		      " {\"id\":\"b\"}, -2.5e3]");
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 2);
	CHECK_INT(r->ev[0].position, 1);
	CHECK_STR(r->ev[0].id, "a");
	CHECK_INT(r->ev[1].position, 6);
	CHECK_STR(r->ev[1].id, "b");
	CHECK_INT(r->skipped, 6);
	CHECK_INT(count(r->log, KEY ": element 0 is a number, not an object; "
				    "skipped"),
		  1);
	CHECK_INT(count(r->log, "element 2 is a string"), 1);
	CHECK_INT(count(r->log, "element 3 is an array"), 1);
	CHECK_INT(count(r->log, "element 4 is null"), 1);
	CHECK_INT(count(r->log, "element 5 is a boolean"), 1);
	CHECK_INT(count(r->log, "element 7 is a number"), 1);
	run_free(r);

	/* Past ten, one summary line instead of a line each. */
	r = split_str("[1,2,3,4,5,6,7,8,9,10,11,12,{\"id\":\"c\"}]");
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 1);
	CHECK_INT(r->skipped, 12);
	CHECK_INT(count(r->log, "not an object; skipped"), 10);
	CHECK_INT(count(r->log, "element 10 is"), 0);
	CHECK_INT(count(r->log, KEY ": 12 elements in all were not objects; "
				    "skipped"),
		  1);
	run_free(r);
}

static void test_size_limit(void)
{
	/* Exactly 40 bytes of raw text is allowed, 41 is not. */
	char ok[64], big[64];
	snprintf(ok, sizeof(ok), "[{\"id\":\"a\"},{\"id\":\"%031d\"}]", 0);
	snprintf(big, sizeof(big), "[{\"id\":\"a\"},{\"id\":\"%032d\"}]", 0);
	const char *scalar = "[123456789012345678901234567890123456789012]";
	static const size_t chunks[] = {1, 3, WHOLE};
	for (size_t i = 0; i < 3; i++) {
		struct run *r = split_opts(ok, strlen(ok), chunks[i],
					   WIV_LAYOUT_PRETTY, 40, 0);
		CHECK_INT(r->rc, 0);
		CHECK_INT(r->n, 2);
		run_free(r);
		r = split_opts(big, strlen(big), chunks[i], WIV_LAYOUT_PRETTY,
			       40, 0);
		CHECK_INT(r->rc, EBADMSG);
		CHECK_INT(r->n, 1);
		CHECK_INT(count(r->log, KEY ": event 1 larger than 40 bytes"),
			  1);
		run_free(r);
		r = split_opts(scalar, strlen(scalar), chunks[i],
			       WIV_LAYOUT_PRETTY, 40, 0);
		CHECK_INT(r->rc, EBADMSG);
		CHECK_INT(count(r->log, "event 0 larger than 40 bytes"), 1);
		run_free(r);
	}
}

static void test_object_limits(void)
{
	static const size_t chunks[] = {1, 3, WHOLE};
	const char *four = "[{\"id\":1},2,{\"id\":3},{\"id\":4}]";
	size_t gz_len;
	char *gz_four = gz(four, strlen(four), &gz_len);
	for (size_t i = 0; i < 3; i++) {
		/* Elements, objects or not: 4 pass a ceiling of 4, not of 3. */
		limit_elements = 4;
		struct run *r = split_opts(four, strlen(four), chunks[i],
					   WIV_LAYOUT_COMPACT, 1 << 20, 0);
		CHECK_INT(r->rc, 0);
		CHECK_INT(r->n, 3);
		run_free(r);
		limit_elements = 3;
		r = split_opts(gz_four, gz_len, chunks[i], WIV_LAYOUT_COMPACT,
			       1 << 20, 0);
		CHECK_INT(r->rc, EFBIG);
		CHECK_INT(r->n, 2);
		CHECK_INT(count(r->log, KEY ": more than 3 events (-o "
					"max_object_events=); object skipped"),
			  1);
		CHECK_INT(count(r->log, "\n"), 2); /* and the skipped 2 */
		run_free(r);
		limit_elements = 0;

		/* Decompressed bytes, whitespace included, whatever the
		 * chunking: the exact length passes, one byte less not. */
		limit_bytes = strlen(four);
		r = split_opts(gz_four, gz_len, chunks[i], WIV_LAYOUT_COMPACT,
			       1 << 20, 0);
		CHECK_INT(r->rc, 0);
		run_free(r);
		limit_bytes = strlen(four) - 1;
		r = split_opts(four, strlen(four), chunks[i],
			       WIV_LAYOUT_COMPACT, 1 << 20, 0);
		CHECK_INT(r->rc, EFBIG);
		char want[128];
		snprintf(want, sizeof(want),
			 KEY ": more than %zu bytes decompressed (-o "
			     "max_object_bytes=); object skipped",
			 strlen(four) - 1);
		CHECK_INT(count(r->log, want), 1);
		run_free(r);
		limit_bytes = 0;
	}
	free(gz_four);
}

/* ---- event fields ---- */

static void check_id(const char *event, enum wiv_id_kind kind, const char *id,
		     size_t id_len)
{
	char body[1024];
	snprintf(body, sizeof(body), "[%s]", event);
	struct run *r = split_str(body);
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 1);
	if (r->n == 1) {
		if (r->ev[0].id_kind != kind)
			fprintf(stderr, "id kind of %s\n", event);
		CHECK_INT(r->ev[0].id_kind, kind);
		CHECK_INT(r->ev[0].id_len, id_len);
		if (id)
			CHECK(r->ev[0].id &&
			      memcmp(r->ev[0].id, id, id_len) == 0);
	}
	run_free(r);
}

#define ID_STR(ev, s) check_id(ev, WIV_ID_STRING, s, sizeof(s) - 1)
#define ID_NUM(ev, s) check_id(ev, WIV_ID_NUMBER, s, sizeof(s) - 1)
#define ID_NONE(ev) check_id(ev, WIV_ID_NONE, NULL, 0)

static void test_ids(void)
{
	ID_STR("{\"id\":\"abc\"}", "abc");
	ID_STR("{\"id\":\"a\\u0000b\"}", "a\0b");
	ID_STR("{\"id\":\"a/b/../c\"}", "a/b/../c");
	ID_STR("{\"id\":\"\\u00e9\\/\"}", "\xc3\xa9/");
	ID_STR("{\"id\":\"..\"}", "..");
	ID_STR("{\"id\":\"\\u0001\\n\\u007f\"}", "\x01\n\x7f");
	ID_NUM("{\"id\":123}", "123");
	ID_NUM("{\"id\" :  1.50 }", "1.50");
	ID_NUM("{\"id\":-0}", "-0");
	ID_NUM("{\"id\":2E+3}", "2E+3");
	ID_NUM("{\"id\":123456789012345678901234567890}",
	       "123456789012345678901234567890");
	ID_NUM("{\"id\":1e400}", "1e400");
	ID_NONE("{\"id\":\"\"}");
	ID_NONE("{\"ID\":\"x\"}");
	ID_NONE("{}");
	ID_NONE("{\"id\":true}");
	ID_NONE("{\"id\":null}");
	ID_NONE("{\"id\":{\"id\":1}}");
	ID_NONE("{\"id\":[1]}");
	ID_NONE("{\"a\":{\"id\":5}}");
	ID_STR("{\"a\":{\"id\":5},\"id\":\"top\"}", "top");
	ID_NUM("{\"a\":{\"id\":\"x\"},\"id\":5}", "5");
	/* Duplicate keys: the last wins, as in jansson. */
	ID_NUM("{\"id\":\"x\",\"id\":7}", "7");
	ID_STR("{\"id\":7,\"id\":\"x\"}", "x");
	ID_NUM("{\"\\u0069d\":42}", "42");
	ID_NUM("{\"i\\u0064\":1,\"id\\u0041\":2}", "1");
	/* An oversized number elsewhere takes the fallback parse. */
	ID_STR("{\"id\":\"s\",\"n\":1e400}", "s");
	ID_NUM("{\"n\":1e400,\"id\":99}", "99");
	ID_STR("{\"id\":\"\\u0000num:1\",\"n\":1e400}", "\0num:1");
	ID_STR("{\"id\":\"\\u0000num:1\"}", "\0num:1");
}

static void test_fields(void)
{
	struct run *r = split_str(
	    "[{\"created_at\":1769558400,\"event_type\":\"OrgCreated\"},"
	    "{\"created_at\":1769558400.5,\"event_type\":5},"
	    "{\"created_at\":\"1769558400\"},"
	    "{\"created_at\":null,\"event_type\":null},"
	    "{\"created_at\":1e400,\"event_type\":\"a\\u0000b\"},"
	    "{\"created_at\":-1.5e3}]");
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 6);
	if (r->n == 6) {
		CHECK(r->ev[0].has_created_at);
		CHECK(r->ev[0].created_at == 1769558400.0);
		CHECK_STR(r->ev[0].event_type, "OrgCreated");
		CHECK(r->ev[1].has_created_at);
		CHECK(r->ev[1].created_at == 1769558400.5);
		CHECK(r->ev[1].event_type == NULL);
		CHECK(!r->ev[2].has_created_at);
		CHECK(!r->ev[3].has_created_at);
		CHECK(r->ev[3].event_type == NULL);
		/* Out of range for a double: treated as missing. */
		CHECK(!r->ev[4].has_created_at);
		CHECK_STR(r->ev[4].event_type, "a");
		CHECK(r->ev[5].has_created_at);
		CHECK(r->ev[5].created_at == -1500.0);
	}
	run_free(r);
}

static void digest_of(const char *event, uint8_t out[WIV_DIGEST_LEN])
{
	char body[1024];
	snprintf(body, sizeof(body), "[%s]", event);
	struct run *r = split_str(body);
	CHECK_INT(r->rc, 0);
	CHECK_INT(r->n, 1);
	memcpy(out, r->ev[0].digest, WIV_DIGEST_LEN);
	run_free(r);
}

static bool same_digest(const char *a, const char *b)
{
	uint8_t da[WIV_DIGEST_LEN], db[WIV_DIGEST_LEN];
	digest_of(a, da);
	digest_of(b, db);
	return memcmp(da, db, WIV_DIGEST_LEN) == 0;
}

static void test_digest(void)
{
	/* SHA-256 of the canonical form (json_canon.h). */
	uint8_t d[WIV_DIGEST_LEN], want[32];
	const char *event =
	    " { \"b\" : [ 1 , {\"d\":2.5,\"c\":null} ] , \"a\" : \"x\" } ";
	struct wiv_json_canon canon = {0};
	enum wiv_json_type type;
	CHECK_INT(wiv_json_canon(&canon, event, strlen(event), &type), 0);
	SHA256((const unsigned char *)canon.out.data, canon.out.len, want);
	wiv_json_canon_free(&canon);
	digest_of(event, d);
	CHECK(memcmp(d, want, WIV_DIGEST_LEN) == 0);

	CHECK(same_digest("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"));
	CHECK(same_digest("{\"a\":\"\\u00e9\\/\"}", "{\"a\":\"\xc3\xa9/\"}"));
	CHECK(!same_digest("{\"a\":1}", "{\"a\":2}"));
	CHECK(!same_digest("{\"a\":\"1\"}", "{\"a\":1}"));
	CHECK(!same_digest("{\"a\":[1,2]}", "{\"a\":[2,1]}"));
	CHECK(same_digest("{\"n\":123456789012345678901234567890,\"a\":1}",
			  "{\"a\":1, \"n\":123456789012345678901234567890}"));
	CHECK(!same_digest("{\"n\":123456789012345678901234567890}",
			   "{\"n\":123456789012345678901234567891}"));
	CHECK(same_digest("{\"n\":1e400}", "{\"n\" : 1e400}"));
	CHECK(!same_digest("{\"n\":1e400}", "{\"n\":1e401}"));
	CHECK(!same_digest("{\"n\":1e400}", "{\"n\":\"1e400\"}"));
}

static void test_stop(void)
{
	static const size_t chunks[] = {1, WHOLE};
	for (size_t i = 0; i < 2; i++) {
		struct run *r = calloc(1, sizeof(*r));
		r->stop_after = 2;
		capture_begin();
		struct wiv_splitter *s = wiv_splitter_new(
		    WIV_LAYOUT_PRETTY, 1 << 20, KEY, collect, r);
		const char *p = sample;
		size_t left = strlen(sample), n;
		int rc = 0;
		for (; left > 0 && !rc; p += n, left -= n) {
			n = left < chunks[i] ? left : chunks[i];
			rc = wiv_splitter_feed(s, p, n);
		}
		CHECK_INT(rc, ECANCELED);
		CHECK_INT(r->n, 2);
		CHECK_INT(wiv_splitter_feed(s, "]", 1), ECANCELED);
		CHECK_INT(wiv_splitter_finish(s), ECANCELED);
		wiv_splitter_free(s);
		capture_end(r->log, sizeof(r->log));
		run_free(r);
	}
	wiv_splitter_free(NULL);
}

/* Many varied events: any chunking gives the same events, gzip or not. */
static void test_chunking(void)
{
	size_t cap = 1 << 20, len = 0;
	char *body = malloc(cap);
	len += (size_t)sprintf(body + len, "[");
	for (int i = 0; i < 300; i++)
		len += (size_t)sprintf(
		    body + len,
		    "%s{\"id\":\"ev-%d\\\"]}\",\"created_at\":%d.%d,"
		    "\"event_type\":\"T%d\",\"event_data\":{\"s\":\"\\\\%.*s"
		    "\\\\\",\"a\":[%d,[],{},[{\"x\":\"[{\"}]],\"e\":%s1e%d}}",
		    i ? (i % 3 ? "," : " ,\n\t") : "", i, 1769558400 + i,
		    i % 10, i % 7, i % 40,
		    "[]{},:[[[{{{]]]}}}::,,,[]{}[]{}[]{}[]{}[]{}", i,
		    i % 2 ? "-" : "", i * 3);
	len += (size_t)sprintf(body + len, "]");
	size_t gl;
	char *g = gz(body, len, &gl);
	struct run *ref = split(body, len, WHOLE);
	CHECK_INT(ref->rc, 0);
	CHECK_INT(ref->n, 300);
	static const size_t chunks[] = {1, 2, 3, 13, 64, 1000, 65536};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		struct run *r = split(body, len, chunks[i]);
		CHECK(same_events(ref, r));
		run_free(r);
		r = split(g, gl, chunks[i]);
		CHECK(same_events(ref, r));
		run_free(r);
	}
	run_free(ref);
	free(g);
	free(body);
}

int main(void)
{
	test_layout();
	test_layout_reuse();
	test_fixtures();
	test_gzip();
	test_plain();
	test_non_objects();
	test_size_limit();
	test_object_limits();
	test_ids();
	test_fields();
	test_digest();
	test_stop();
	test_chunking();
	return CHECK_DONE();
}
