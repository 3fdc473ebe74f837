/* The ListObjectsV2 and <Error> parsers, fed whole and one byte at a time. */
#include "check.h"
#include "wivaudit/listxml.h"

#include <errno.h>
#include <stdlib.h>

static const char page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>audit</Name><Prefix>3f75/</Prefix><KeyCount>4</KeyCount>"
    "<MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>3f75/org-audit-logs-1769590000000.json.gz</Key>"
    "<LastModified>2026-01-28T09:00:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
    "<Size>1234</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
    "<StorageClass>GLACIER</StorageClass></Contents>\n"
    "  <Contents><Key>3f75/a &amp; b &lt;c&gt; \xc3\xbc.json.gz</Key>"
    "<ETag>\"d41d8cd98f00b204e9800998ecf8427e-2\"</ETag>"
    "<Size>18446744073709551615</Size></Contents>"
    "<CommonPrefixes><Prefix>3f75/2026/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix>3f75/x/</Prefix></CommonPrefixes>"
    "<ContinuationToken>abc</ContinuationToken>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
    "NextContinuationToken>"
    "</ListBucketResult>";

struct seen {
	char out[2048];
	int stop_after;
	int calls;
};

static int on_object(void *arg, const struct wiv_object_info *o)
{
	struct seen *s = arg;
	size_t n = strlen(s->out);

	snprintf(s->out + n, sizeof(s->out) - n, "K[%s|%s|%llu|%s]", o->key,
		 o->etag, (unsigned long long)o->size, o->storage_class);
	return ++s->calls == s->stop_after;
}

static int on_prefix(void *arg, const char *prefix)
{
	struct seen *s = arg;
	size_t n = strlen(s->out);

	snprintf(s->out + n, sizeof(s->out) - n, "P[%s]", prefix);
	return ++s->calls == s->stop_after;
}

static const char want_page[] =
    "K[3f75/org-audit-logs-1769590000000.json.gz|"
    "9b2cf535f27731c974343645a3985328|1234|GLACIER]"
    "K[3f75/a & b <c> \xc3\xbc.json.gz|"
    "d41d8cd98f00b204e9800998ecf8427e-2|18446744073709551615|]"
    "P[3f75/2026/]P[3f75/x/]";

static void test_page(size_t chunk)
{
	struct seen s = {0};
	struct wiv_listxml *p = wiv_listxml_new(on_object, on_prefix, &s);
	size_t len = strlen(page);
	int rc = 0;

	for (size_t off = 0; off < len && !rc; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		rc = wiv_listxml_feed(p, page + off, n, false);
	}
	if (!rc)
		rc = wiv_listxml_feed(p, NULL, 0, true);
	CHECK_INT(rc, 0);
	CHECK_STR(s.out, want_page);
	CHECK(wiv_listxml_truncated(p));
	CHECK_STR(wiv_listxml_next_token(p),
		  "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
	CHECK_INT(wiv_listxml_key_count(p), 4);
	CHECK_INT(wiv_listxml_seen(p), 4);
	wiv_listxml_free(p);
}

static int feed_all(const char *xml, struct seen *s, struct wiv_listxml **out)
{
	struct wiv_listxml *p = wiv_listxml_new(on_object, on_prefix, s);
	int rc = wiv_listxml_feed(p, xml, strlen(xml), true);

	if (out)
		*out = p;
	else
		wiv_listxml_free(p);
	return rc;
}

static void test_last_page(void)
{
	struct seen s = {0};
	struct wiv_listxml *p;

	CHECK_INT(feed_all("<ListBucketResult><IsTruncated>false</IsTruncated>"
			   "<KeyCount>0</KeyCount></ListBucketResult>",
			   &s, &p),
		  0);
	CHECK(!wiv_listxml_truncated(p));
	CHECK(wiv_listxml_next_token(p) == NULL);
	CHECK_INT(wiv_listxml_key_count(p), 0);
	CHECK_STR(s.out, "");
	wiv_listxml_free(p);

	/* No callbacks wanted: only counting. */
	p = wiv_listxml_new(NULL, NULL, NULL);
	CHECK_INT(wiv_listxml_feed(p, page, strlen(page), true), 0);
	CHECK_INT(wiv_listxml_seen(p), 4);
	wiv_listxml_free(p);
}

static void test_stop(void)
{
	struct seen s = {.stop_after = 1};
	struct wiv_listxml *p;

	CHECK_INT(feed_all(page, &s, &p), ECANCELED);
	CHECK_INT(s.calls, 1);
	/* A stopped parser keeps saying so. */
	CHECK_INT(wiv_listxml_feed(p, "x", 1, true), ECANCELED);
	wiv_listxml_free(p);

	struct seen s2 = {.stop_after = 3};
	CHECK_INT(feed_all(page, &s2, NULL), ECANCELED);
	CHECK_INT(s2.calls, 3);
}

static void test_bad(void)
{
	struct seen s = {0};

	CHECK_INT(
	    feed_all("<ListBucketResult><Contents><Key>a</Key>", &s, NULL),
	    EBADMSG);
	CHECK_INT(
	    feed_all("<Error><Code>NoSuchBucket</Code></Error>", &s, NULL),
	    EBADMSG);
	CHECK_INT(feed_all("<ListBucketResult><Contents><Size>1</Size>"
			   "</Contents></ListBucketResult>",
			   &s, NULL),
		  EBADMSG);
	CHECK_INT(feed_all("<ListBucketResult><Contents><Key>a</Key><Size>-1"
			   "</Size></Contents></ListBucketResult>",
			   &s, NULL),
		  EBADMSG);
	CHECK_INT(feed_all("<ListBucketResult><Contents><Key>a</Key><Size>"
			   "99999999999999999999999</Size></Contents>"
			   "</ListBucketResult>",
			   &s, NULL),
		  EBADMSG);
	CHECK_INT(feed_all("not xml", &s, NULL), EBADMSG);
	CHECK_INT(feed_all("", &s, NULL), EBADMSG);
	CHECK_STR(s.out, "");

	/* Text far longer than any S3 field is refused, not buffered. */
	char *big = malloc(200 * 1024);
	strcpy(big, "<ListBucketResult><Contents><Key>");
	size_t n = strlen(big);
	memset(big + n, 'k', 100 * 1024);
	strcpy(big + n + 100 * 1024, "</Key></Contents></ListBucketResult>");
	CHECK_INT(feed_all(big, &s, NULL), EBADMSG);
	free(big);
}

static void test_error(void)
{
	struct wiv_s3_error e;
	static const char body[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Error><Code>PermanentRedirect</Code><Message>The bucket you "
	    "are attempting to access must be addressed using the specified "
	    "endpoint.</Message><Endpoint>audit.s3.eu-west-1.amazonaws.com"
	    "</Endpoint><Bucket>audit</Bucket><BucketName>audit</BucketName>"
	    "<Region>eu-west-1</Region><RequestId>X</RequestId></Error>";

	CHECK_INT(wiv_listxml_parse_error(body, strlen(body), &e), 0);
	CHECK_STR(e.code, "PermanentRedirect");
	CHECK(strncmp(e.message, "The bucket you are", 18) == 0);
	CHECK_STR(e.region, "eu-west-1");
	CHECK_STR(e.bucket, "audit");

	static const char sig[] =
	    "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
	    "signature we calculated does not match &amp; so on</Message>"
	    "<StringToSign>AWS4</StringToSign></Error>";
	CHECK_INT(wiv_listxml_parse_error(sig, strlen(sig), &e), 0);
	CHECK_STR(e.code, "SignatureDoesNotMatch");
	CHECK_STR(e.message,
		  "The request signature we calculated does not match & so on");
	CHECK_STR(e.region, "");

	static const char sts[] =
	    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/"
	    "\"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>"
	    "Not authorized to perform sts:AssumeRole</Message></Error>"
	    "<RequestId>r</RequestId></ErrorResponse>";
	CHECK_INT(wiv_listxml_parse_error(sts, strlen(sts), &e), 0);
	CHECK_STR(e.code, "AccessDenied");
	CHECK_STR(e.message, "Not authorized to perform sts:AssumeRole");

	CHECK_INT(wiv_listxml_parse_error("", 0, &e), EBADMSG);
	CHECK_STR(e.code, "");
	CHECK_INT(wiv_listxml_parse_error("<html>503</html>", 16, &e), EBADMSG);
	CHECK_INT(wiv_listxml_parse_error("<Error><Message>m</Message></Error>",
					  35, &e),
		  EBADMSG);
}

/* A page as S3 sends it for encoding-type=url: S3's form encoding of keys
 * holding control bytes, DEL, "+", spaces, "%", "~" and non-ASCII; a token
 * that is not encoded. */
static const char url_page[] =
    "<ListBucketResult><Name>audit</Name><Prefix>o%2B1/</Prefix>"
    "<KeyCount>8</KeyCount><MaxKeys>1000</MaxKeys>"
    "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<Contents><Key>a%01b%0Ac%1B%7F</Key><ETag>\"e\"</ETag><Size>1</Size>"
    "</Contents>"
    "<Contents><Key>o%2B1/p+l%2Bs%25%7E%C3%BC</Key><ETag>\"e\"</ETag>"
    "<Size>2</Size></Contents>"
    "<Contents><Key>bad%FF%FE</Key><ETag>\"e\"</ETag><Size>3</Size>"
    "</Contents>"
    "<Contents><Key>nul%00org/x</Key><ETag>\"e\"</ETag><Size>4</Size>"
    "</Contents>"
    "<Contents><Key>cut%4</Key><ETag>\"e\"</ETag><Size>5</Size></Contents>"
    "<Contents><Key>hex%zz</Key><ETag>\"e\"</ETag><Size>6</Size></Contents>"
    "<CommonPrefixes><Prefix>sp+ace%0A/</Prefix></CommonPrefixes>"
    "<CommonPrefixes><Prefix>%/</Prefix></CommonPrefixes>"
    "<NextContinuationToken>a+b%2F=</NextContinuationToken>"
    "</ListBucketResult>";

static void test_url_encoded(void)
{
	struct seen s = {0};
	struct wiv_listxml *p = wiv_listxml_new(on_object, on_prefix, &s);

	wiv_listxml_url_encoded(p);
	CHECK_INT(wiv_listxml_feed(p, url_page, strlen(url_page), true), 0);
	/* %FF%FE is no UTF-8, but it is what the listing says: decoded and
	 * left to the key rules. %00 and broken escapes are skipped. */
	CHECK_STR(s.out, "K[a\001b\nc\033\177|e|1|]"
			 "K[o+1/p l+s%~\xc3\xbc|e|2|]"
			 "K[bad\xff\xfe|e|3|]"
			 "P[sp ace\n/]");
	CHECK_INT(wiv_listxml_undecodable(p), 4);
	CHECK_INT(wiv_listxml_seen(p), 8);
	CHECK_STR(wiv_listxml_next_token(p), "a+b%2F=");
	wiv_listxml_free(p);

	/* Not asked for: keys are taken as they are. */
	struct seen raw = {0};
	CHECK_INT(feed_all(url_page, &raw, NULL), 0);
	CHECK(strstr(raw.out, "K[cut%4|e|5|]") != NULL);
}

int main(void)
{
	test_page(strlen(page));
	test_page(1);
	test_page(7);
	test_last_page();
	test_stop();
	test_bad();
	test_error();
	test_url_encoded();
	return CHECK_DONE();
}
