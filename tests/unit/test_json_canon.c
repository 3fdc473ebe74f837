/* The canonical form against jansson, the reference for what is valid JSON
 * and which values are equal: every text below must be accepted or refused
 * as jansson does, and two accepted texts must get the same canonical bytes
 * exactly when json_equal says their values are equal. Numbers no double or
 * int64 holds, which jansson refuses, are checked on their own. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wivaudit/json_canon.h"

#define S(lit) lit, sizeof(lit) - 1

struct text {
	const char *s;
	size_t len;
};

/* Valid texts, in groups of values that are equal within a group. */
static const struct text values[] = {
	{S("{\"a\":1,\"b\":2}")},
	{S(" { \"b\" : 2 , \"a\" : 1 } ")},
	{S("{\"b\":2,\"a\":0,\"a\":1}")},
	{S("{\"a\":1}")},
	{S("{\"a\":1.0}")},
	{S("{\"a\":1.00}")},
	{S("{\"a\":10e-1}")},
	{S("{\"a\":1e0}")},
	{S("{\"a\":-0}")},
	{S("{\"a\":0}")},
	{S("{\"a\":\"\\u00e9\\/\"}")},
	{S("{\"a\":\"\xc3\xa9/\"}")},
	{S("{\"a\":\"\\ud83d\\ude00\"}")},
	{S("{\"a\":\"\xf0\x9f\x98\x80\"}")},
	{S("{\"a\":\"x\\u0000y\"}")},
	{S("{\"a\":\"x\"}")},
	{S("{\"a\":[1,2]}")},
	{S("{\"a\":[2,1]}")},
	{S("{\"a\":[]}")},
	{S("{\"a\":{}}")},
	{S("{\"a\":null}")},
	{S("{\"a\":true}")},
	{S("{\"a\":false}")},
	{S("{\"a\":\"1\"}")},
	{S("{\"o\":{\"x\":[{\"q\":1,\"p\":2}],\"y\":\"\\n\"}}")},
	{S("{\"o\":{\"y\":\"\\u000a\",\"x\":[{\"p\":2,\"q\":1}]}}")},
	{S("{\"o\":{\"y\":\"\\n\",\"x\":[{\"p\":2,\"q\":1,\"r\":3}]}}")},
	{S("{\"\":1}")},
	{S("{\"a\\u0062\":1}")},
	{S("{\"ab\":1}")},
	{S("{\"a\":1,\"ab\":2}")},
	{S("{\"ab\":2,\"a\":1}")},
	{S("[1,\"a\",null]")},
	{S("\"a\"")},
	{S("-12.5e+3")},
	{S("9223372036854775807")},
	{S("1e-400")},
	{S("0")},
};

/* Texts both must refuse. */
static const struct text invalid[] = {
	{S("")},
	{S("{")},
	{S("{\"a\":1,}")},
	{S("{\"a\" 1}")},
	{S("{a:1}")},
	{S("[1,]")},
	{S("[1 2]")},
	{S("01")},
	{S("-")},
	{S("1.")},
	{S(".5")},
	{S("1e")},
	{S("+1")},
	{S("tru")},
	{S("nul")},
	{S("{} x")},
	{S("\"a")},
	{S("\"a\x01\"")},
	{S("\"\\x\"")},
	{S("\"\\u12\"")},
	{S("\"\\ud800\"")},
	{S("\"\\udc00\"")},
	{S("\"\\ud800\\u0041\"")},
	{S("\"\xc3\"")},
	{S("\"\xc0\xaf\"")},
	{S("\"\xe0\x80\xaf\"")},
	{S("\"\xed\xa0\x80\"")},
	{S("\"\xf4\x90\x80\x80\"")},
	{S("\"\xff\"")},
	{S("{\"a\\u0000\":1}")},
	{S("\"a\0b\"")},
};

static int canon(struct wiv_json_canon *c, const struct text *t, char **out,
		 size_t *len)
{
	enum wiv_json_type type;
	int rc = wiv_json_canon(c, t->s, t->len, &type);
	if (!rc) {
		*out = malloc(c->out.len ? c->out.len : 1);
		memcpy(*out, c->out.data, c->out.len);
		*len = c->out.len;
	}
	return rc;
}

static json_t *load(const struct text *t)
{
	return json_loadb(t->s, t->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

static void test_against_jansson(void)
{
	struct wiv_json_canon c = {0};
	size_t n = sizeof(values) / sizeof(values[0]);
	char *forms[sizeof(values) / sizeof(values[0])];
	size_t lens[sizeof(values) / sizeof(values[0])];
	json_t *trees[sizeof(values) / sizeof(values[0])];
	for (size_t i = 0; i < n; i++) {
		trees[i] = load(&values[i]);
		CHECK(trees[i] != NULL);
		int rc = canon(&c, &values[i], &forms[i], &lens[i]);
		if (rc)
			fprintf(stderr, "refused %s: %s\n", values[i].s,
				c.error);
		CHECK_INT(rc, 0);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			bool same = lens[i] == lens[j] &&
				    memcmp(forms[i], forms[j], lens[i]) == 0;
			bool equal = json_equal(trees[i], trees[j]);
			if (same != equal)
				fprintf(stderr, "%s vs %s: canonical %s, "
						"jansson %s\n",
					values[i].s, values[j].s,
					same ? "same" : "different",
					equal ? "equal" : "different");
			CHECK(same == equal);
		}
	for (size_t i = 0; i < n; i++) {
		free(forms[i]);
		json_decref(trees[i]);
	}

	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		enum wiv_json_type type;
		json_t *tree = load(&invalid[i]);
		CHECK(tree == NULL);
		json_decref(tree);
		int rc = wiv_json_canon(&c, invalid[i].s, invalid[i].len,
					&type);
		if (rc != EINVAL)
			fprintf(stderr, "accepted %.*s\n", (int)invalid[i].len,
				invalid[i].s);
		CHECK_INT(rc, EINVAL);
		CHECK(c.error[0] != '\0');
	}
	wiv_json_canon_free(&c);
}

static bool same_form(const char *a, const char *b)
{
	struct wiv_json_canon c = {0};
	struct text ta = {a, strlen(a)}, tb = {b, strlen(b)};
	char *fa = NULL, *fb = NULL;
	size_t la = 0, lb = 0;
	CHECK_INT(canon(&c, &ta, &fa, &la), 0);
	CHECK_INT(canon(&c, &tb, &fb, &lb), 0);
	bool same = fa && fb && la == lb && memcmp(fa, fb, la) == 0;
	free(fa);
	free(fb);
	wiv_json_canon_free(&c);
	return same;
}

/* Numbers jansson refuses keep their text. */
static void test_big_numbers(void)
{
	CHECK(same_form("{\"n\":123456789012345678901234567890,\"a\":1}",
			"{\"a\":1, \"n\":123456789012345678901234567890}"));
	CHECK(!same_form("{\"n\":123456789012345678901234567890}",
			 "{\"n\":123456789012345678901234567891}"));
	CHECK(same_form("{\"n\":1e400}", "{\"n\" : 1e400}"));
	CHECK(!same_form("{\"n\":1e400}", "{\"n\":1e401}"));
	CHECK(!same_form("{\"n\":1e400}", "{\"n\":\"1e400\"}"));
}

static void test_depth(void)
{
	struct wiv_json_canon c = {0};
	enum wiv_json_type type;
	for (int depth = WIV_JSON_MAX_DEPTH; depth <= WIV_JSON_MAX_DEPTH + 1;
	     depth++) {
		char *deep = malloc(2 * (size_t)depth);
		memset(deep, '[', (size_t)depth);
		memset(deep + depth, ']', (size_t)depth);
		json_t *tree = json_loadb(deep, 2 * (size_t)depth, 0, NULL);
		int rc = wiv_json_canon(&c, deep, 2 * (size_t)depth, &type);
		CHECK((rc == 0) == (tree != NULL));
		CHECK_INT(rc, depth > WIV_JSON_MAX_DEPTH ? EINVAL : 0);
		json_decref(tree);
		free(deep);
	}
	wiv_json_canon_free(&c);
}

static void test_members_and_strings(void)
{
	struct wiv_json_canon c = {0};
	enum wiv_json_type type;
	static const char obj[] =
	    "{\"id\":\"a\\/b\",\"x\":{\"id\":2},\"id\":\"c\\u00e9\","
	    "\"n\":-1.5e3}";
	CHECK_INT(wiv_json_canon(&c, obj, strlen(obj), &type), 0);
	CHECK_INT(type, WIV_JSON_OBJECT);
	const char *raw;
	size_t len;
	CHECK(wiv_json_canon_member(&c, "id", &raw, &len));
	struct wiv_jbuf s = {0};
	CHECK_INT(wiv_json_decode_string(raw, len, &s), 0);
	CHECK_STR(s.data, "c\xc3\xa9");
	CHECK(wiv_json_canon_member(&c, "n", &raw, &len));
	CHECK(len == 6 && memcmp(raw, "-1.5e3", 6) == 0);
	CHECK(!wiv_json_canon_member(&c, "missing", &raw, &len));
	wiv_jbuf_free(&s);

	static const struct {
		const char *text;
		enum wiv_json_type type;
	} types[] = {{"[]", WIV_JSON_ARRAY},    {" \"s\"", WIV_JSON_STRING},
		     {"-1", WIV_JSON_NUMBER},   {"true", WIV_JSON_BOOLEAN},
		     {"false", WIV_JSON_BOOLEAN}, {"null", WIV_JSON_NULL}};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		CHECK_INT(wiv_json_canon(&c, types[i].text,
					 strlen(types[i].text), &type),
			  0);
		CHECK_INT(type, types[i].type);
		CHECK(!wiv_json_canon_member(&c, "id", &raw, &len));
	}
	wiv_json_canon_free(&c);
}

int main(void)
{
	test_against_jansson();
	test_big_numbers();
	test_depth();
	test_members_and_strings();
	return CHECK_DONE();
}
