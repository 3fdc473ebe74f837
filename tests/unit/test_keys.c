#include <errno.h>

#include "check.h"
#include "wivaudit/keys.h"

static void check_good(const char *key, size_t prefix_len, const char *org,
		       enum wiv_log_type type, int64_t ms)
{
	struct wiv_key k;
	CHECK_INT(wiv_key_parse(key, prefix_len, &k), 0);
	CHECK_INT(k.org_len, strlen(org));
	CHECK(strncmp(k.org, org, k.org_len) == 0);
	CHECK_INT(k.type, type);
	CHECK_INT(k.key_ms, ms);
}

static void check_bad(const char *key, size_t prefix_len)
{
	struct wiv_key k;
	int rc = wiv_key_parse(key, prefix_len, &k);
	if (rc != EINVAL)
		fprintf(stderr, "accepted bad key: %s\n", key);
	CHECK_INT(rc, EINVAL);
}

int main(void)
{
	check_good("3f7539ad-1c2d/org-audit-logs-1769558400000.json.gz", 0,
		   "3f7539ad-1c2d", WIV_TYPE_ORG, 1769558400000LL);
	check_good("acme/user-audit-logs-1.json.gz", 0, "acme", WIV_TYPE_USER, 1);
	check_good("wiv/logs/acme/api-audit-logs-0.json.gz", 9, "acme",
		   WIV_TYPE_API, 0);
	check_good("a/org-audit-logs-253402300799999.json.gz", 0, "a",
		   WIV_TYPE_ORG, 253402300799999LL);
	/* U+00A0 (C2 A0) is not a control: the org keeps its name. */
	check_good("caf\xc3\xa9\xc2\xa0/org-audit-logs-1.json.gz", 0,
		   "caf\xc3\xa9\xc2\xa0", WIV_TYPE_ORG, 1);

	check_bad("acme/org-audit-logs-1769558400000.json", 0);
	check_bad("acme/org-audit-logs-1769558400000.json.gz.tmp", 0);
	check_bad("acme/bogus-audit-logs-1769558400000.json.gz", 0);
	check_bad("acme/org-audit-logs-.json.gz", 0);
	check_bad("acme/org-audit-logs--5.json.gz", 0);
	check_bad("acme/org-audit-logs-12x4.json.gz", 0);
	check_bad("acme/org-audit-logs-253402300800000.json.gz", 0);
	check_bad("acme/org-audit-logs-99999999999999999999.json.gz", 0);
	check_bad("org-audit-logs-1769558400000.json.gz", 0);
	check_bad("/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("acme/deep/org-audit-logs-1769558400000.json.gz", 0);
	check_bad(".hidden/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("../org-audit-logs-1769558400000.json.gz", 0);
	check_bad("ac\x01me/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("ac\x7fme/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("ac\xc2\x9bme/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("acme\xc2\x80/org-audit-logs-1769558400000.json.gz", 0);
	check_bad("acme/", 0);

	CHECK_STR(wiv_type_name(WIV_TYPE_USER), "user");
	CHECK_INT(wiv_type_from_name("api"), WIV_TYPE_API);
	CHECK_INT(wiv_type_from_name("apis"), -1);
	return CHECK_DONE();
}
