#include <stdlib.h>

#include "check.h"
#include "wivaudit/naming.h"

static void check_name(enum wiv_id_kind kind, const char *id, size_t id_len,
		       const char *want)
{
	char out[WIV_NAME_MAX + 1];
	memset(out, 'Z', sizeof(out));
	size_t n = wiv_event_name(kind, id, id_len, 1769558400000LL, 7, out);
	CHECK_STR(out, want);
	CHECK_INT(n, strlen(want));
	CHECK(n <= WIV_NAME_MAX);
}

#define NAME(id, want) check_name(WIV_ID_STRING, id, sizeof(id) - 1, want)

/* The id made of n copies of c, then tail. */
static char *repeat(char c, size_t n, const char *tail)
{
	size_t t = strlen(tail);
	char *s = malloc(n + t + 1);
	memset(s, c, n);
	memcpy(s + n, tail, t + 1);
	return s;
}

static void check_long(const char *id, const char *want)
{
	check_name(WIV_ID_STRING, id, strlen(id), want);
}

static void test_long(void)
{
	char *id, *want;

	id = repeat('b', 200, "");
	check_long(id, id);
	free(id);

	/* Hashes are SHA-256 of the raw id, first 16 hex digits. */
	id = repeat('a', 250, "");
	want = repeat('a', 180, "-3f3e35e0a775d9b1");
	check_long(id, want);
	free(id);
	free(want);

	id = repeat('b', 201, "");
	want = repeat('b', 180, "-19f51486875f748c");
	check_long(id, want);
	free(id);
	free(want);

	/* Over 200 only once encoded. */
	id = repeat('x', 199, "/");
	want = repeat('x', 180, "-05977b7dd81f7d76");
	check_long(id, want);
	free(id);
	free(want);

	id = repeat('/', 67, "");
	want = malloc(256);
	want[0] = '\0';
	for (int i = 0; i < 60; i++)
		strcat(want, "%2F");
	strcat(want, "-3eb1349aab9dc074");
	check_long(id, want);
	free(id);
	free(want);

	id = repeat('c', 200, "");
	id[0] = '.';
	want = repeat('c', 177, "-ed9029bd0f208172");
	char *w = malloc(strlen(want) + 4);
	strcpy(w, "%2E");
	strcat(w, want);
	check_long(id, w);
	free(w);
	free(want);

	/* A leading '.' that still fits: 3 + 197 = 200. */
	id[198] = '\0';
	want = repeat('c', 197, "");
	w = malloc(strlen(want) + 4);
	strcpy(w, "%2E");
	strcat(w, want);
	check_long(id, w);
	free(w);
	free(want);
	free(id);

	/* A C1 control at the limit: both bytes or the hash, never one. */
	id = repeat('d', 194, "\xc2\x9b");
	want = repeat('d', 194, "%C2%9B");
	check_long(id, want);
	free(id);
	free(want);
	id = repeat('d', 195, "\xc2\x9b");
	want = repeat('d', 180, "-04daa9550a2ddc6b");
	check_long(id, want);
	free(id);
	free(want);
}

int main(void)
{
	NAME("7c1e2f0a-1b2c-4d5e-8f90-a1b2c3d4e5f6",
	     "7c1e2f0a-1b2c-4d5e-8f90-a1b2c3d4e5f6");
	NAME("a/b", "a%2Fb");
	NAME("/", "%2F");
	NAME("100%", "100%25");
	NAME("%2F", "%252F");
	NAME(".", "%2E");
	NAME("..", "%2E.");
	NAME("../etc/passwd", "%2E.%2Fetc%2Fpasswd");
	NAME(".hidden", "%2Ehidden");
	NAME("a.b.", "a.b.");
	NAME("a\0b", "a%00b");
	NAME("\x01\x1f\x20\x7f\x80", "%01%1F %7F\x80");
	NAME("tab\there\nnl\r", "tab%09here%0Anl%0D");
	NAME("caf\xc3\xa9 \xe6\x97\xa5", "caf\xc3\xa9 \xe6\x97\xa5");
	NAME("~2", "~2");
	/* C1 controls (UTF-8 C2 80..C2 9F) are encoded as both bytes. */
	NAME("a\xc2\x9b-b", "a%C2%9B-b");
	NAME("\xc2\x80\xc2\x9f", "%C2%80%C2%9F");
	NAME("\xc2\xc2\x9b", "\xc2%C2%9B");
	NAME("\xc2\x9b\xc2", "%C2%9B\xc2");
	NAME("nbsp\xc2\xa0\xc2\xbf", "nbsp\xc2\xa0\xc2\xbf");
	NAME("\x1b]0;pwned\x07", "%1B]0;pwned%07");
	check_name(WIV_ID_NUMBER, "123456789012345678901234567890", 30,
		   "123456789012345678901234567890");
	check_name(WIV_ID_NUMBER, "-1.50", 5, "-1.50");

	check_name(WIV_ID_NONE, NULL, 0, "_noid-1769558400000-7");
	check_name(WIV_ID_STRING, "", 0, "_noid-1769558400000-7");
	char out[WIV_NAME_MAX + 1];
	CHECK_INT(wiv_event_name(WIV_ID_NONE, NULL, 0, 0, 0, out), 9);
	CHECK_STR(out, "_noid-0-0");

	test_long();
	return CHECK_DONE();
}
