/* Parsing Wiv's object keys into org, log type and key timestamp. */
#include <errno.h>
#include <string.h>

#include "wivaudit/keys.h"

/* Last millisecond of 9999-12-31: a four-digit year keeps the tree sane. */
#define MAX_KEY_MS 253402300799999LL

static const char *const type_names[WIV_TYPE_COUNT] = {
	[WIV_TYPE_ORG] = "org",
	[WIV_TYPE_USER] = "user",
	[WIV_TYPE_API] = "api",
};

static const char key_infix[] = "-audit-logs-";
static const char key_suffix[] = ".json.gz";

const char *wiv_type_name(enum wiv_log_type type)
{
	return type_names[type];
}

int wiv_type_from_name(const char *name)
{
	for (int t = 0; t < WIV_TYPE_COUNT; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return -1;
}

int wiv_org_name_valid(const char *name, size_t len)
{
	if (len == 0 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
		/* A C1 control (UTF-8 C2 80..C2 9F), such as U+009B (CSI). */
		if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)name[i + 1] <= 0x9f &&
		    (unsigned char)name[i + 1] >= 0x80)
			return 0;
	}
	return 1;
}

static int parse_ms(const char *digits, size_t len, int64_t *out)
{
	/* 13 digits cover today's timestamps; 15 reach year 9999. */
	if (len == 0 || len > 15)
		return EINVAL;
	int64_t ms = 0;
	for (size_t i = 0; i < len; i++) {
		if (digits[i] < '0' || digits[i] > '9')
			return EINVAL;
		ms = ms * 10 + (digits[i] - '0');
	}
	if (ms > MAX_KEY_MS)
		return EINVAL;
	*out = ms;
	return 0;
}

int wiv_key_parse(const char *key, size_t prefix_len, struct wiv_key *out)
{
	const char *org = key + prefix_len;
	const char *slash = strchr(org, '/');
	if (!slash || !wiv_org_name_valid(org, (size_t)(slash - org)))
		return EINVAL;

	const char *file = slash + 1;
	const char *infix = strstr(file, key_infix);
	if (!infix)
		return EINVAL;
	char type_word[8];
	size_t type_len = (size_t)(infix - file);
	if (type_len == 0 || type_len >= sizeof(type_word))
		return EINVAL;
	memcpy(type_word, file, type_len);
	type_word[type_len] = '\0';
	int type = wiv_type_from_name(type_word);
	if (type < 0)
		return EINVAL;

	const char *digits = infix + strlen(key_infix);
	size_t rest = strlen(digits);
	size_t suffix_len = strlen(key_suffix);
	if (rest <= suffix_len ||
	    strcmp(digits + rest - suffix_len, key_suffix) != 0)
		return EINVAL;
	int64_t ms;
	if (parse_ms(digits, rest - suffix_len, &ms) != 0)
		return EINVAL;

	out->org = org;
	out->org_len = (size_t)(slash - org);
	out->type = (enum wiv_log_type)type;
	out->key_ms = ms;
	return 0;
}
