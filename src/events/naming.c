/* Event file names. The id is untrusted: encoding '/', '%', control bytes
 * (C0, DEL and C1) and a leading '.' means no name can leave its directory,
 * hide as a dotfile or break a terminal, and distinct ids keep distinct names
 * ('%' is encoded too, so the encoding is reversible). */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include <openssl/sha.h>

#include "wivaudit/naming.h"

/* A name over WIV_NAME_MAX keeps this many bytes, then '-' and a hash. */
#define KEEP 180
#define HASH_HEX 16

size_t wiv_event_name(enum wiv_id_kind kind, const char *id, size_t id_len,
		      int64_t key_ms, size_t position, char *out)
{
	static const char upper[] = "0123456789ABCDEF";
	static const char lower[] = "0123456789abcdef";

	if (kind == WIV_ID_NONE || !id || id_len == 0)
		return (size_t)snprintf(out, WIV_NAME_MAX + 1,
					"_noid-%" PRId64 "-%zu", key_ms,
					position);

	size_t n = 0;
	bool prev_c1 = false;
	for (size_t i = 0; i < id_len; i++) {
		unsigned char c = (unsigned char)id[i];
		/* A C1 control (U+0080-U+009F, UTF-8 C2 80..C2 9F) is
		 * encoded byte by byte: U+009B is a one-byte CSI on some
		 * terminals. */
		bool c1 = c == 0xc2 && i + 1 < id_len &&
			  (unsigned char)id[i + 1] >= 0x80 &&
			  (unsigned char)id[i + 1] <= 0x9f;
		bool encode = c == '/' || c == '%' || c < 0x20 || c == 0x7f ||
			      (i == 0 && c == '.') || c1 || prev_c1;
		prev_c1 = c1;
		if (n + (encode ? 3 : 1) > WIV_NAME_MAX)
			goto too_long;
		if (encode) {
			out[n++] = '%';
			out[n++] = upper[c >> 4];
			out[n++] = upper[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;

too_long:
	/* out already holds more than KEEP bytes of the encoded id. */
	n = KEEP;
	out[n++] = '-';
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)id, id_len, md);
	for (size_t i = 0; i < HASH_HEX / 2; i++) {
		out[n++] = lower[md[i] >> 4];
		out[n++] = lower[md[i] & 15];
	}
	out[n] = '\0';
	return n;
}
