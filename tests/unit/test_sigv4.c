/* SigV4 against AWS's published examples (the aws-sig-v4-test-suite and the
 * S3 API reference), then against signatures botocore computes for awkward
 * S3 keys and list queries (tests/unit/sigv4_vectors.py). */
#include "check.h"
#include "wivaudit/sigv4.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/wait.h>

#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3DOC_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define SUITE_CRED                                                             \
	"AWS4-HMAC-SHA256 "                                                    \
	"Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "

static const struct wiv_sigv4_scope suite_scope = {"20150830T123600Z",
						   "us-east-1", "service"};
static const struct wiv_sigv4_scope s3doc_scope = {"20130524T000000Z",
						   "us-east-1", "s3"};

static char *auth(const char *method, const char *raw_path,
		  const struct wiv_sigv4_param *params, size_t nparams,
		  const struct wiv_sigv4_header *headers, size_t nheaders,
		  const char *payload_hash, const struct wiv_sigv4_scope *scope,
		  const char *access_key, const char *secret)
{
	char *path = wiv_sigv4_uri_encode(raw_path, true), *query = NULL;
	char *out = NULL;

	CHECK_INT(wiv_sigv4_canonical_query(params, nparams, &query), 0);
	struct wiv_sigv4_request req = {method,	 path,	   query,
					headers, nheaders, payload_hash};
	CHECK_INT(
	    wiv_sigv4_authorization(&req, scope, access_key, secret, &out), 0);
	free(path);
	free(query);
	return out;
}

static const struct wiv_sigv4_header suite_headers[] = {
    {"Host", "example.amazonaws.com"},
    {"X-Amz-Date", "20150830T123600Z"},
};

static void check_suite(const char *name, const char *method,
			const char *raw_path,
			const struct wiv_sigv4_param *params, size_t nparams,
			const struct wiv_sigv4_header *extra, size_t nextra,
			const char *payload_hash, const char *want)
{
	struct wiv_sigv4_header h[8];
	size_t n = 0;

	for (size_t i = 0; i < 2; i++)
		h[n++] = suite_headers[i];
	for (size_t i = 0; i < nextra; i++)
		h[n++] = extra[i];
	char *got = auth(method, raw_path, params, nparams, h, n,
			 payload_hash ? payload_hash : WIV_SIGV4_EMPTY_SHA256,
			 &suite_scope, "AKIDEXAMPLE", SUITE_SECRET);
	if (!got || strcmp(got, want) != 0) {
		fprintf(stderr, "suite case %s:\n got %s\nwant %s\n", name,
			got ? got : "(null)", want);
		check_failures++;
	}
	free(got);
}

static void test_aws_suite(void)
{
	check_suite(
	    "get-vanilla", "GET", "/", NULL, 0, NULL, 0, NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date, Signature="
	    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");

	const struct wiv_sigv4_param order[] = {{"Param2", "value2"},
						{"Param1", "value1"}};
	check_suite(
	    "get-vanilla-query-order-key-case", "GET", "/", order, 2, NULL, 0,
	    NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date, Signature="
	    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");

	const struct wiv_sigv4_param encoded[] = {{"Param-3", "Value3"},
						  {"Param", "Value2"},
						  {"\xe1\x88\xb4", "Value1"}};
	check_suite(
	    "get-vanilla-query-order-encoded", "GET", "/", encoded, 3, NULL, 0,
	    NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date, Signature="
	    "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac");

	const char *unres = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz";
	const struct wiv_sigv4_param unreserved[] = {{unres, unres}};
	check_suite(
	    "get-vanilla-query-unreserved", "GET", "/", unreserved, 1, NULL, 0,
	    NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date, Signature="
	    "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");

	check_suite(
	    "get-utf8", "GET", "/\xe1\x88\xb4", NULL, 0, NULL, 0, NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date, Signature="
	    "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");

	const struct wiv_sigv4_header dup[] = {{"My-Header1", "value2"},
					       {"My-Header1", "value2"},
					       {"My-Header1", "value1"}};
	check_suite(
	    "get-header-key-duplicate", "GET", "/", NULL, 0, dup, 3, NULL,
	    SUITE_CRED
	    "SignedHeaders=host;my-header1;x-amz-date, Signature="
	    "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");

	const struct wiv_sigv4_header trim[] = {
	    {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}};
	check_suite(
	    "get-header-value-trim", "GET", "/", NULL, 0, trim, 2, NULL,
	    SUITE_CRED
	    "SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature="
	    "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");

	const struct wiv_sigv4_header token[] = {
	    {"X-Amz-Security-Token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315"
				     "fa00fa31553b73ebf194267"}};
	check_suite(
	    "get-vanilla-with-session-token", "GET", "/", NULL, 0, token, 1,
	    NULL,
	    SUITE_CRED
	    "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
	    "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");

	char body_hash[65];
	wiv_sigv4_sha256_hex("Param1=value1", 13, body_hash);
	CHECK_STR(
	    body_hash,
	    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
	const struct wiv_sigv4_header form[] = {
	    {"Content-Type", "application/x-www-form-urlencoded"},
	    {"Content-Length", "13"},
	    {"x-amz-content-sha256", body_hash}};
	check_suite(
	    "post-x-www-form-urlencoded", "POST", "/", NULL, 0, form, 3,
	    body_hash,
	    SUITE_CRED
	    "SignedHeaders=content-length;content-type;host;"
	    "x-amz-content-sha256;x-amz-date, Signature="
	    "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b");
}

/* The intermediate steps of get-vanilla-query-order-encoded, as published. */
static void test_suite_steps(void)
{
	const struct wiv_sigv4_param p[] = {{"Param-3", "Value3"},
					    {"Param", "Value2"},
					    {"\xe1\x88\xb4", "Value1"}};
	char *query = NULL, *creq = NULL, *signed_headers = NULL, *sts = NULL;

	CHECK_INT(wiv_sigv4_canonical_query(p, 3, &query), 0);
	CHECK_STR(query, "%E1%88%B4=Value1&Param=Value2&Param-3=Value3");
	struct wiv_sigv4_request req = {
	    "GET", "/", query, suite_headers, 2, WIV_SIGV4_EMPTY_SHA256};
	CHECK_INT(wiv_sigv4_canonical_request(&req, &creq, &signed_headers), 0);
	CHECK_STR(creq,
		  "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
		  "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
		  "host;x-amz-date\n" WIV_SIGV4_EMPTY_SHA256);
	CHECK_STR(signed_headers, "host;x-amz-date");
	CHECK_INT(wiv_sigv4_string_to_sign(&suite_scope, creq, &sts), 0);
	CHECK_STR(
	    sts,
	    "AWS4-HMAC-SHA256\n20150830T123600Z\n"
	    "20150830/us-east-1/service/aws4_request\n"
	    "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71");
	free(query);
	free(creq);
	free(signed_headers);
	free(sts);
}

/* The S3 API reference's examples (Authenticating Requests: Using the
 * Authorization Header), bucket examplebucket, 2013-05-24. */
static void test_s3_docs(void)
{
	const struct wiv_sigv4_header get[] = {
	    {"Host", "examplebucket.s3.amazonaws.com"},
	    {"Range", "bytes=0-9"},
	    {"x-amz-content-sha256", WIV_SIGV4_EMPTY_SHA256},
	    {"x-amz-date", "20130524T000000Z"}};
	char *got =
	    auth("GET", "/test.txt", NULL, 0, get, 4, WIV_SIGV4_EMPTY_SHA256,
		 &s3doc_scope, "AKIAIOSFODNN7EXAMPLE", S3DOC_SECRET);
	CHECK_STR(
	    got,
	    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
	    "us-east-1/s3/aws4_request, SignedHeaders=host;range;"
	    "x-amz-content-sha256;x-amz-date, Signature="
	    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	free(got);

	const struct wiv_sigv4_header bucket[] = {
	    {"Host", "examplebucket.s3.amazonaws.com"},
	    {"x-amz-content-sha256", WIV_SIGV4_EMPTY_SHA256},
	    {"x-amz-date", "20130524T000000Z"}};
	const struct wiv_sigv4_param list[] = {{"max-keys", "2"},
					       {"prefix", "J"}};
	got = auth("GET", "/", list, 2, bucket, 3, WIV_SIGV4_EMPTY_SHA256,
		   &s3doc_scope, "AKIAIOSFODNN7EXAMPLE", S3DOC_SECRET);
	CHECK(got && strstr(got, "Signature="
				 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db"
				 "6670ed5711ef69dc6f7"));
	free(got);

	const struct wiv_sigv4_param lifecycle[] = {{"lifecycle", NULL}};
	got = auth("GET", "/", lifecycle, 1, bucket, 3, WIV_SIGV4_EMPTY_SHA256,
		   &s3doc_scope, "AKIAIOSFODNN7EXAMPLE", S3DOC_SECRET);
	CHECK(got && strstr(got, "Signature="
				 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f9"
				 "1ac7a200a0136783543"));
	free(got);
}

static void test_encoding(void)
{
	char *s;

	s = wiv_sigv4_uri_encode("org/a b+c~d_e.f-g/\xc3\xbc", true);
	CHECK_STR(s, "org/a%20b%2Bc~d_e.f-g/%C3%BC");
	free(s);
	s = wiv_sigv4_uri_encode("a/b=c&d+e f~%", false);
	CHECK_STR(s, "a%2Fb%3Dc%26d%2Be%20f~%25");
	free(s);
	s = wiv_sigv4_uri_encode("!'()*:@,;$", true);
	CHECK_STR(s, "%21%27%28%29%2A%3A%40%2C%3B%24");
	free(s);
	s = wiv_sigv4_uri_encode("", true);
	CHECK_STR(s, "");
	free(s);

	const struct wiv_sigv4_param p[] = {{"prefix", "x"},
					    {"list-type", "2"},
					    {"continuation-token", "a/b+c="},
					    {"delimiter", "/"}};
	CHECK_INT(wiv_sigv4_canonical_query(p, 4, &s), 0);
	CHECK_STR(s, "continuation-token=a%2Fb%2Bc%3D&delimiter=%2F&"
		     "list-type=2&prefix=x");
	free(s);
	CHECK_INT(wiv_sigv4_canonical_query(NULL, 0, &s), 0);
	CHECK_STR(s, "");
	free(s);

	char date[17];
	wiv_sigv4_amz_date(1440938160, date);
	CHECK_STR(date, "20150830T123600Z");
}

static void test_bad_input(void)
{
	char *out = NULL, sig[65];
	const struct wiv_sigv4_header nl[] = {{"host", "a\r\nx-evil: 1"}};
	struct wiv_sigv4_request req = {"GET", "/", "",
					nl,    1,   WIV_SIGV4_EMPTY_SHA256};

	CHECK_INT(wiv_sigv4_canonical_request(&req, &out, NULL), EINVAL);
	CHECK(out == NULL);
	req.nheaders = 0;
	CHECK_INT(wiv_sigv4_canonical_request(&req, &out, NULL), EINVAL);
	const struct wiv_sigv4_scope bad = {"2015-08-30", "us-east-1", "s3"};
	CHECK_INT(wiv_sigv4_signature("k", &bad, "x", sig), EINVAL);
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void check_botocore_case(json_t *c)
{
	json_t *jp = json_object_get(c, "params"),
	       *jh = json_object_get(c, "headers");
	size_t np = json_array_size(jp), nh = json_array_size(jh);
	struct wiv_sigv4_param *p = calloc(np + 1, sizeof(*p));
	struct wiv_sigv4_header *h = calloc(nh + 1, sizeof(*h));

	for (size_t i = 0; i < np; i++) {
		p[i].name =
		    json_string_value(json_array_get(json_array_get(jp, i), 0));
		p[i].value =
		    json_string_value(json_array_get(json_array_get(jp, i), 1));
	}
	for (size_t i = 0; i < nh; i++) {
		h[i].name =
		    json_string_value(json_array_get(json_array_get(jh, i), 0));
		h[i].value =
		    json_string_value(json_array_get(json_array_get(jh, i), 1));
	}
	struct wiv_sigv4_scope scope = {jstr(c, "amz_date"), jstr(c, "region"),
					"s3"};
	char *got = auth(jstr(c, "method"), jstr(c, "path"), p, np, h, nh,
			 jstr(c, "payload_hash"), &scope, jstr(c, "access_key"),
			 jstr(c, "secret"));
	if (!got || strcmp(got, jstr(c, "authorization")) != 0) {
		fprintf(stderr, "botocore case \"%s\":\n got %s\nwant %s\n",
			jstr(c, "name"), got ? got : "(null)",
			jstr(c, "authorization"));
		check_failures++;
	}
	free(got);
	free(p);
	free(h);
}

/* Returns 1 when botocore signed and we compared, 0 when it is missing. */
static int test_botocore(void)
{
	const char *data = getenv("WIV_TEST_DATA");
	char cmd[4096];
	json_error_t jerr;

	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 '%s/../unit/sigv4_vectors.py'",
		 data ? data : "tests/data");
	FILE *f = popen(cmd, "r");
	CHECK(f != NULL);
	if (!f)
		return 1;
	json_t *cases = json_loadf(f, 0, &jerr);
	int status = pclose(f);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		fprintf(stderr,
			"botocore not installed: its vectors skipped\n");
		json_decref(cases);
		return 0;
	}
	CHECK_INT(status, 0);
	CHECK(json_array_size(cases) >= 5);
	for (size_t i = 0; i < json_array_size(cases); i++)
		check_botocore_case(json_array_get(cases, i));
	json_decref(cases);
	return 1;
}

int main(void)
{
	test_encoding();
	test_aws_suite();
	test_suite_steps();
	test_s3_docs();
	test_bad_input();
	int compared = test_botocore();
	int rc = CHECK_DONE();
	return rc ? rc : compared ? 0 : 77;
}
