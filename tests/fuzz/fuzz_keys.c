/* libFuzzer harness for wiv_key_parse. The first input byte picks the
 * length of the prefix the caller would have checked; the rest, up to a NUL,
 * is the key. Beyond "no crash": an accepted key is exactly
 * prefix + org + "/" + type + "-audit-logs-" + digits + ".json.gz" with a
 * valid org name and a timestamp in years 1970-9999, and rebuilding it from
 * the parsed fields gives the key back. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t prefix_len = data[0];
	char *key = strndup((const char *)data + 1, size - 1);
	if (!key)
		return 0;
	size_t len = strlen(key);
	if (prefix_len > len)
		prefix_len = len;

	struct wiv_key k;
	memset(&k, 0xa5, sizeof(k));
	if (wiv_key_parse(key, prefix_len, &k) == 0) {
		const char *org = key + prefix_len;
		if (k.org != org || k.org_len == 0 ||
		    k.org_len > len - prefix_len ||
		    !wiv_org_name_valid(k.org, k.org_len) ||
		    (unsigned)k.type >= WIV_TYPE_COUNT || k.key_ms < 0 ||
		    k.key_ms > 253402300799999LL)
			abort();
		const char *type = wiv_type_name(k.type);
		if (wiv_type_from_name(type) != (int)k.type)
			abort();
		/* The digits as the key spells them (leading zeros kept). */
		const char *digits = org + k.org_len + 1 + strlen(type) +
				     strlen("-audit-logs-");
		size_t ndigits = len - (size_t)(digits - key) - strlen(".json.gz");
		char *again;
		if (asprintf(&again, "%.*s%.*s/%s-audit-logs-%.*s.json.gz",
			     (int)prefix_len, key, (int)k.org_len, k.org, type,
			     (int)ndigits, digits) < 0)
			abort();
		if (strcmp(again, key) != 0)
			abort();
		int64_t ms = 0;
		for (size_t i = 0; i < ndigits; i++) {
			if (digits[i] < '0' || digits[i] > '9')
				abort();
			ms = ms * 10 + (digits[i] - '0');
		}
		if (ms != k.key_ms)
			abort();
		free(again);
	}
	free(key);
	return 0;
}
