/* Escaping untrusted text for printing (the rule is in escape.h). */
#include <stdio.h>
#include <string.h>

#include "wivaudit/escape.h"

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when the byte at p
 * does not start one. Follows RFC 3629's table, which rules out overlong
 * forms, surrogates and code points over U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* The escape for the sequence at p of length n (0: one invalid byte), in
 * buf; returns its length. */
static size_t escape_one(const unsigned char *p, size_t n, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c = p[0];

	if (n == 2 && c == 0xc2 && p[1] <= 0x9f) {
		memcpy(buf, "\\u00", 4);
		buf[4] = hex[p[1] >> 4];
		buf[5] = hex[p[1] & 15];
		return 6;
	}
	if (n > 1) {
		memcpy(buf, p, n);
		return n;
	}
	buf[0] = '\\';
	switch (c) {
	case '\\':
		buf[1] = '\\';
		return 2;
	case '\n':
		buf[1] = 'n';
		return 2;
	case '\r':
		buf[1] = 'r';
		return 2;
	case '\t':
		buf[1] = 't';
		return 2;
	}
	if (n == 1 && c >= 0x20 && c != 0x7f) {
		buf[0] = (char)c;
		return 1;
	}
	buf[1] = 'x';
	buf[2] = hex[c >> 4];
	buf[3] = hex[c & 15];
	return 4;
}

size_t wiv_escape(const char *in, size_t len, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)in;
	const size_t cut_len = sizeof(WIV_ESC_CUT) - 1;
	size_t used = 0;
	size_t before_cut = 0; /* the last end of a piece that leaves room */
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_len(p + i, len - i);
		char buf[6];
		size_t m = escape_one(p + i, n, buf);
		if (used + m > cap - 1) {
			memcpy(out + before_cut, WIV_ESC_CUT, cut_len + 1);
			return before_cut + cut_len;
		}
		memcpy(out + used, buf, m);
		used += m;
		if (used + cut_len <= cap - 1)
			before_cut = used;
		i += n ? n : 1;
	}
	out[used] = '\0';
	return used;
}

struct wiv_esc wiv_esc(const char *s)
{
	struct wiv_esc e;
	if (!s)
		s = "(null)";
	wiv_escape(s, strlen(s), e.s, sizeof(e.s));
	return e;
}

void wiv_escape_vformat(char *out, const char *fmt, va_list ap)
{
	char raw[WIV_ESC_LINE_RAW];
	int n = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (n < 0)
		n = 0;
	size_t len =
	    wiv_escape(raw, strnlen(raw, sizeof(raw)), out, WIV_ESC_LINE_SIZE);
	if ((size_t)n >= sizeof(raw))
		memcpy(out + len, WIV_ESC_CUT, sizeof(WIV_ESC_CUT));
}

void wiv_escape_shell_word(FILE *f, const char *s)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_./:=,@+-";
	if (*s && strspn(s, plain) == strlen(s)) {
		fputs(s, f);
		return;
	}
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}
