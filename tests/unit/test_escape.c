#include <stdarg.h>
#include <stdlib.h>

#include "check.h"
#include "wivaudit/escape.h"

static void check_esc(const char *in, size_t len, const char *want)
{
	char out[256];
	memset(out, 'Z', sizeof(out));
	size_t n = wiv_escape(in, len, out, sizeof(out));
	CHECK_STR(out, want);
	CHECK_INT(n, strlen(want));
}

#define ESC(in, want) check_esc(in, sizeof(in) - 1, want)

static void test_classes(void)
{
	/* Printable ASCII and valid UTF-8 are untouched. */
	ESC("ORG/org-audit-logs-1769558400000.json.gz",
	    "ORG/org-audit-logs-1769558400000.json.gz");
	ESC("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
	    "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	ESC("\xc2\xa0\xed\x9f\xbf\xee\x80\x80",
	    "\xc2\xa0\xed\x9f\xbf\xee\x80\x80");
	ESC("", "");

	/* C0 controls and DEL. */
	ESC("ORG/bad\nFAKE: error: x.json.gz",
	    "ORG/bad\\nFAKE: error: x.json.gz");
	ESC("a\tb\rc", "a\\tb\\rc");
	ESC("\x1b[31mred\x1b]0;title\x07", "\\x1b[31mred\\x1b]0;title\\x07");
	ESC("\x01\x1f\x7f", "\\x01\\x1f\\x7f");
	ESC("a\0b", "a\\x00b");

	/* C1 controls, valid UTF-8 but still controls. */
	ESC("\xc2\x9b[31m", "\\u009b[31m");
	ESC("\xc2\x80\xc2\x9f", "\\u0080\\u009f");

	/* A backslash is escaped, so no escape above can be forged. */
	ESC("\\n", "\\\\n");
	ESC("\\x1b", "\\\\x1b");
	ESC("\\", "\\\\");
}

static void test_invalid_utf8(void)
{
	/* Stray continuation bytes and bytes that never start a sequence. */
	ESC("\x80", "\\x80");
	ESC("a\xbf-b", "a\\xbf-b");
	ESC("\xfe\xff", "\\xfe\\xff");
	ESC("\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80");
	/* Overlong forms: C0/C1 leads, E0 80..9F, F0 80..8F. */
	ESC("\xc0\xaf", "\\xc0\\xaf");
	ESC("\xc1\xbf", "\\xc1\\xbf");
	ESC("\xe0\x80\xaf", "\\xe0\\x80\\xaf");
	ESC("\xe0\x9f\xbf", "\\xe0\\x9f\\xbf");
	ESC("\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf");
	/* Surrogates (ED A0..BF) and code points over U+10FFFF. */
	ESC("\xed\xa0\x80", "\\xed\\xa0\\x80");
	ESC("\xed\xbf\xbf", "\\xed\\xbf\\xbf");
	ESC("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");
	/* Truncated sequences, at the end and before other text. */
	ESC("\xc3", "\\xc3");
	ESC("\xe6\x97", "\\xe6\\x97");
	ESC("\xf0\x9f\x98", "\\xf0\\x9f\\x98");
	ESC("\xe6\x97-a", "\\xe6\\x97-a");
	ESC("\xc2"
	    "\xc2\x9b",
	    "\\xc2\\u009b");
	ESC("\xe6\x97\xc3\xa9", "\\xe6\\x97\xc3\xa9");
	/* A lone C1 second byte is not a C1 control: just an invalid byte. */
	ESC("\x9b", "\\x9b");
}

static void test_cut(void)
{
	char out[16];
	size_t n;

	/* Fits exactly: no mark. */
	n = wiv_escape("0123456789abcde", 15, out, sizeof(out));
	CHECK_STR(out, "0123456789abcde");
	CHECK_INT(n, 15);
	/* One byte too many: cut at a whole escape, marked. */
	n = wiv_escape("0123456789abcdef", 16, out, sizeof(out));
	CHECK_STR(out, "0123456789" WIV_ESC_CUT);
	CHECK_INT(n, 15);
	/* An escape is never split by the cut. */
	n = wiv_escape("012345678\n\n\n\n", 13, out, sizeof(out));
	CHECK_STR(out, "012345678" WIV_ESC_CUT);
	n = wiv_escape("\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5"
		       "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5",
		       18, out, sizeof(out));
	CHECK_STR(out, "\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5" WIV_ESC_CUT);
	CHECK_INT(n, 9 + strlen(WIV_ESC_CUT));
	/* The smallest buffer holds the mark alone. */
	n = wiv_escape("abc\x1b", 4, out, sizeof(WIV_ESC_CUT));
	CHECK_STR(out, WIV_ESC_CUT);
	/* 4 bytes per input byte always suffice. */
	n = wiv_escape("\x80\x81\x82", 3, out, 13);
	CHECK_STR(out, "\\x80\\x81\\x82");
}

static void test_esc(void)
{
	CHECK_STR(wiv_esc("k\x1b[0m\n").s, "k\\x1b[0m\\n");
	CHECK_STR(wiv_esc(NULL).s, "(null)");

	/* The longest key, every byte escaped, fits whole. */
	char *key = malloc(1025);
	memset(key, '\x1b', 1024);
	key[1024] = '\0';
	struct wiv_esc e = wiv_esc(key);
	CHECK_INT(strlen(e.s), 4096);
	CHECK(strstr(e.s, WIV_ESC_CUT) == NULL);
	free(key);
}

static void format(char *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wiv_escape_vformat(out, fmt, ap);
	va_end(ap);
}

static void test_vformat(void)
{
	static char out[WIV_ESC_LINE_SIZE];

	format(out, "%s: bad object (%d)", "ORG/bad\nFAKE: error: x", 3);
	CHECK_STR(out, "ORG/bad\\nFAKE: error: x: bad object (3)");

	/* A line longer than WIV_ESC_LINE_RAW is cut and marked. */
	char *big = malloc(WIV_ESC_LINE_RAW + 10);
	memset(big, '\x07', WIV_ESC_LINE_RAW + 9);
	big[WIV_ESC_LINE_RAW + 9] = '\0';
	format(out, "%s", big);
	CHECK_INT(strlen(out),
		  4 * (WIV_ESC_LINE_RAW - 1) + strlen(WIV_ESC_CUT));
	CHECK(strcmp(out + strlen(out) - strlen(WIV_ESC_CUT), WIV_ESC_CUT) ==
	      0);
	CHECK(strchr(out, '\x07') == NULL);
	free(big);
}

/* What wiv_escape_shell_word writes for s. */
static void check_shell_word(const char *s, const char *want)
{
	char buf[256] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	CHECK(f != NULL);
	wiv_escape_shell_word(f, s);
	fclose(f);
	CHECK_STR(buf, want);
}

static void test_shell_word(void)
{
	check_shell_word("my-bucket", "my-bucket");
	check_shell_word("org/user-audit-logs-1.json.gz",
			 "org/user-audit-logs-1.json.gz");
	check_shell_word("", "''");
	check_shell_word("a b", "'a b'");
	check_shell_word("it's", "'it'\\''s'");
	check_shell_word("$(rm -rf ~)", "'$(rm -rf ~)'");
}

int main(void)
{
	test_classes();
	test_invalid_utf8();
	test_cut();
	test_esc();
	test_vformat();
	test_shell_word();
	return CHECK_DONE();
}
