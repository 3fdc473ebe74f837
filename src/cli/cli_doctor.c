/* wivaudit doctor [SOURCE] [-o opts]: the troubleshooting table as checks,
 * one line each, in the order a mount meets them: source, credentials,
 * bucket, region, list, org prefixes, latest deliveries, get, parse. Stops
 * at the first failing check. Exit status: 0 all passed (warnings allowed),
 * 1 a check failed, 2 bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wivaudit/cli.h"
#include "wivaudit/escape.h"
#include "wivaudit/daterule.h"
#include "wivaudit/keys.h"
#include "wivaudit/missing.h"
#include "wivaudit/opts.h"
#include "wivaudit/source.h"
#include "wivaudit/source_spec.h"
#include "wivaudit/split.h"

#define PROG "wivaudit doctor"
/* Days named on the "archived objects" line before "and N more". */
#define DAYS_NAMED 5
/* Orgs named on the "org prefixes" line before "and N more". */
#define ORGS_NAMED 5
/* The splitter's bound for one event, as the mount's. */
#define MAX_EVENT_BYTES (16u << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wivaudit doctor [SOURCE] [-o opt[,opt...]]\n"
		"\n"
		"Checks, one line each, what a mount of SOURCE needs: the "
		"source, the\n"
		"credentials (never the secret), the bucket, its region, list "
		"and get\n"
		"permissions, the org prefixes, the latest delivery per org "
		"and type,\n"
		"and that the newest object parses. SOURCE and -o take what "
		"mount.wivaudit\n"
		"takes (endpoint=, region=, profile=, cafile=, prefix=, ...); "
		"without\n"
		"SOURCE the bucket comes from the configuration file.\n"
		"Exit status 1 at the first failing check.\n");
}

static void check(const char *status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "ok    what: answer"; status is ok, warn or FAIL. The answer quotes keys,
 * org names and event fields from the bucket, so it is escaped whole, like a
 * log line (escape.h). */
static void check(const char *status, const char *what, const char *fmt, ...)
{
	char answer[WIV_ESC_LINE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	wiv_escape_vformat(answer, fmt, ap);
	va_end(ap);
	printf("%-5s %s: %s\n", status, what, answer);
	fflush(stdout);
}

struct latest {
	int64_t ms;
	char *key;
	char *etag;
};

struct org {
	char *name;
	struct latest by_type[WIV_TYPE_COUNT];
	uint64_t objects;
};

struct scan {
	size_t prefix_len;
	struct org *orgs;
	size_t norgs, cap;
	uint64_t root_keys; /* keys beside the org prefixes: not deliveries */
	uint64_t ignored;   /* keys inside an org that are not deliveries */
	char *example;	    /* one ignored key, for the answer */
	struct org *cur;    /* the org being listed */
	int err;	    /* ENOMEM while collecting */
	/* Deliveries in GLACIER or DEEP_ARCHIVE: listed, not readable. */
	uint64_t archived;
	int64_t *archived_days; /* their key days, unsorted, unique */
	size_t narchived_days;
	char *archived_example;
};

static void note_ignored(struct scan *sc, const char *key)
{
	sc->ignored++;
	if (!sc->example && !(sc->example = strdup(key)))
		sc->err = ENOMEM;
}

static int on_root_key(void *arg, const struct wiv_object_info *obj)
{
	struct scan *sc = arg;
	sc->root_keys++;
	note_ignored(sc, obj->key);
	return sc->err;
}

static int on_org_prefix(void *arg, const char *common_prefix)
{
	struct scan *sc = arg;
	const char *name = common_prefix + sc->prefix_len;
	size_t len = strlen(name);

	if (len && name[len - 1] == '/')
		len--;
	if (!wiv_org_name_valid(name, len)) {
		note_ignored(sc, common_prefix);
		return sc->err;
	}
	if (sc->norgs == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 16;
		struct org *v = realloc(sc->orgs, cap * sizeof(*v));
		if (!v)
			return sc->err = ENOMEM;
		sc->orgs = v;
		sc->cap = cap;
	}
	struct org *o = &sc->orgs[sc->norgs];
	memset(o, 0, sizeof(*o));
	if (!(o->name = strndup(name, len)))
		return sc->err = ENOMEM;
	sc->norgs++;
	return 0;
}

/* Counts an archived delivery and its day. */
static void note_archived(struct scan *sc, const char *key, int64_t key_ms)
{
	int64_t day = wiv_day_of_ms(key_ms);
	sc->archived++;
	if (!sc->archived_example && !(sc->archived_example = strdup(key))) {
		sc->err = ENOMEM;
		return;
	}
	for (size_t i = 0; i < sc->narchived_days; i++)
		if (sc->archived_days[i] == day)
			return;
	int64_t *days = realloc(sc->archived_days,
				(sc->narchived_days + 1) * sizeof(*days));
	if (!days) {
		sc->err = ENOMEM;
		return;
	}
	sc->archived_days = days;
	days[sc->narchived_days++] = day;
}

static int on_org_key(void *arg, const struct wiv_object_info *obj)
{
	struct scan *sc = arg;
	struct wiv_key k;

	if (wiv_key_parse(obj->key, sc->prefix_len, &k) != 0) {
		note_ignored(sc, obj->key);
		return sc->err;
	}
	if (wiv_storage_class_archived(obj->storage_class)) {
		/* The get check below wants an object a GET can read. */
		note_archived(sc, obj->key, k.key_ms);
		return sc->err;
	}
	struct latest *l = &sc->cur->by_type[k.type];
	sc->cur->objects++;
	if (l->key && k.key_ms <= l->ms)
		return 0;
	free(l->key);
	free(l->etag);
	l->ms = k.key_ms;
	l->key = strdup(obj->key);
	l->etag = strdup(obj->etag ? obj->etag : "");
	if (!l->key || !l->etag)
		sc->err = ENOMEM;
	return sc->err;
}

static void scan_free(struct scan *sc)
{
	for (size_t i = 0; i < sc->norgs; i++) {
		for (int t = 0; t < WIV_TYPE_COUNT; t++) {
			free(sc->orgs[i].by_type[t].key);
			free(sc->orgs[i].by_type[t].etag);
		}
		free(sc->orgs[i].name);
	}
	free(sc->orgs);
	free(sc->example);
	free(sc->archived_days);
	free(sc->archived_example);
}

static int compare_days(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* A warning, not a failure: the mount shows everything else, and names
 * these objects on their directories until they are restored. */
static void report_archived(struct scan *sc, const char *bucket)
{
	char days[256] = "";
	size_t used = 0;

	if (!sc->archived)
		return;
	qsort(sc->archived_days, sc->narchived_days, sizeof(int64_t),
	      compare_days);
	for (size_t i = 0; i < sc->narchived_days && i < DAYS_NAMED; i++) {
		int y, m, d;
		wiv_day_to_ymd(sc->archived_days[i], &y, &m, &d);
		used += (size_t)snprintf(days + used, sizeof(days) - used,
					 "%s%04d-%02d-%02d", i ? ", " : "", y,
					 m, d);
	}
	if (sc->narchived_days > DAYS_NAMED && used < sizeof(days))
		snprintf(days + used, sizeof(days) - used, " and %zu more",
			 sc->narchived_days - DAYS_NAMED);
	char *restore = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&restore, &len);
	if (mem) {
		wiv_missing_put_restore(mem, bucket ? bucket : "BUCKET",
					sc->archived_example);
		fclose(mem);
	}
	check("warn", "archived objects",
	      "%" PRIu64 " deliver%s in GLACIER or DEEP_ARCHIVE, on %zu "
	      "day%s (%s): the mount shows their days but not their events "
	      "until each is restored, e.g. %s",
	      sc->archived, sc->archived == 1 ? "y is" : "ies are",
	      sc->narchived_days, sc->narchived_days == 1 ? "" : "s", days,
	      restore ? restore : "aws s3api restore-object");
	free(restore);
}

/* "2026-01-28 09:05 UTC (3 h ago)" */
static void describe_time(int64_t ms, time_t now, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char when[32];
	int64_t ago = (int64_t)now - (int64_t)t;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	if (ago < 0)
		snprintf(buf, len,
			 "%s (in the future: check this "
			 "machine's clock)",
			 when);
	else if (ago < 120)
		snprintf(buf, len, "%s (%" PRId64 " s ago)", when, ago);
	else if (ago < 7200)
		snprintf(buf, len, "%s (%" PRId64 " min ago)", when, ago / 60);
	else if (ago < 3 * 86400)
		snprintf(buf, len, "%s (%" PRId64 " h ago)", when, ago / 3600);
	else
		snprintf(buf, len, "%s (%" PRId64 " days ago)", when,
			 ago / 86400);
}

struct parse {
	struct wiv_splitter *sp;
	uint64_t events;
	char first_type[128];
};

static int on_event(void *arg, const struct wiv_event *ev)
{
	struct parse *p = arg;
	if (p->events++ == 0 && ev->event_type)
		snprintf(p->first_type, sizeof(p->first_type), "%s",
			 ev->event_type);
	return 0;
}

static int on_body(void *arg, const void *data, size_t len)
{
	struct parse *p = arg;
	/* A bad body is known at the end; stop reading it early. */
	return wiv_splitter_feed(p->sp, data, len) == EBADMSG;
}

/* Builds mount.wivaudit's argv from ours so that the same -o string (an
 * fstab line's, say) means the same here: SOURCE stays, "/" stands in for
 * the mount point. Returns 0, or 2 after a usage message. */
static int parse_args(int argc, char **argv, struct wiv_options *opts,
		      struct fuse_args *fargs)
{
	char **v = calloc((size_t)argc + 2, sizeof(*v));
	int n = 0, positional = 0;

	if (!v) {
		fprintf(stderr, PROG ": out of memory\n");
		return 2;
	}
	v[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			free(v);
			return 1;
		}
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			v[n++] = argv[i++];
		else if (argv[i][0] != '-' && ++positional > 1) {
			fprintf(stderr, PROG ": one SOURCE at most (a mount "
					     "point is not needed)\n");
			free(v);
			return 2;
		}
		v[n++] = argv[i];
	}
	v[n++] = "/";
	int rc = wiv_opts_parse(n, v, opts, fargs);
	free(v);
	return rc ? 2 : 0;
}

/* The checks after the source is open. Returns the exit status. */
static int run_checks(const struct wiv_options *o,
		      const struct wiv_source_spec *spec,
		      struct wiv_source *src, const char *configured_region)
{
	struct scan sc = {.prefix_len = strlen(spec->prefix)};
	struct wiv_s3_status st;
	char where[512];
	int rc;

	if (spec->bucket)
		snprintf(where, sizeof(where), "s3://%s/%s", spec->bucket,
			 spec->prefix);
	else
		snprintf(where, sizeof(where), "%s/%s", spec->dir,
			 spec->prefix);

	rc = wiv_source_list(src, spec->prefix, "/", NULL, on_root_key,
			     on_org_prefix, &sc);
	if (rc == 0)
		rc = sc.err;
	if (spec->bucket) {
		const char *at = o->endpoint ? o->endpoint : "AWS";
		if (rc == ENOENT) {
			check("FAIL", "bucket",
			      "'%s' does not exist at %s "
			      "(check the name and -o endpoint=)",
			      spec->bucket, at);
			goto fail;
		}
		if (rc && rc != EACCES) {
			check("FAIL", "bucket",
			      "cannot reach '%s' at %s: %s "
			      "(see the message above)",
			      spec->bucket, at, strerror(rc));
			goto fail;
		}
		check("ok", "bucket", "'%s' answers at %s", spec->bucket, at);
		if (wiv_source_s3_status(src, &st) == 0) {
			if (st.region_followed)
				check("warn", "region",
				      "the bucket is in %s, "
				      "not %s: followed, but -o region=%s "
				      "(or \"region\" in the configuration) "
				      "saves a round trip per request",
				      st.region, configured_region, st.region);
			else
				check("ok", "region", "%s", st.region);
		}
		if (rc == EACCES) {
			check("FAIL", "list permission",
			      "access denied "
			      "listing %s: wrong credentials, or the policy "
			      "lacks s3:ListBucket on arn:aws:s3:::%s "
			      "(contrib/reader-policy.json)",
			      where, spec->bucket);
			goto fail;
		}
		check("ok", "list permission", "s3:ListBucket on %s", where);
	} else if (rc) {
		check("FAIL", "list", "cannot list %s: %s", where,
		      strerror(rc));
		goto fail;
	}

	if (sc.norgs == 0) {
		check("FAIL", "org prefixes",
		      "no org prefixes found in %s "
		      "(Wiv has not delivered yet, or the prefix is wrong%s%s)",
		      where, sc.example ? "; there is " : "",
		      sc.example ? sc.example : "");
		goto fail;
	}
	char names[512] = "";
	size_t used = 0;
	for (size_t i = 0; i < sc.norgs && i < ORGS_NAMED; i++)
		used +=
		    (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
				     i ? ", " : "", sc.orgs[i].name);
	if (sc.norgs > ORGS_NAMED && used < sizeof(names))
		snprintf(names + used, sizeof(names) - used, " and %zu more",
			 sc.norgs - ORGS_NAMED);
	check("ok", "org prefixes", "%zu (%s)", sc.norgs, names);

	struct latest *newest = NULL;
	time_t now = time(NULL);
	for (size_t i = 0; i < sc.norgs; i++) {
		char prefix[1024], when[96];
		struct org *org = &sc.orgs[i];

		snprintf(prefix, sizeof(prefix), "%s%s/", spec->prefix,
			 org->name);
		sc.cur = org;
		rc = wiv_source_list(src, prefix, NULL, NULL, on_org_key, NULL,
				     &sc);
		if (rc == 0)
			rc = sc.err;
		if (rc) {
			check("FAIL", "latest delivery", "cannot list %s: %s",
			      prefix, strerror(rc));
			goto fail;
		}
		for (int t = 0; t < WIV_TYPE_COUNT; t++) {
			struct latest *l = &org->by_type[t];
			if (!l->key) {
				check("ok", "latest delivery", "%s %s: none",
				      org->name, wiv_type_name(t));
				continue;
			}
			describe_time(l->ms, now, when, sizeof(when));
			check("ok", "latest delivery", "%s %s: %s", org->name,
			      wiv_type_name(t), when);
			if (!newest || l->ms > newest->ms)
				newest = l;
		}
	}
	if (sc.ignored)
		check("warn", "other keys",
		      "%" PRIu64 " key%s that %s not "
		      "Wiv deliveries, ignored by the mount (e.g. %s)",
		      sc.ignored, sc.ignored == 1 ? "" : "s",
		      sc.ignored == 1 ? "is" : "are", sc.example);
	report_archived(&sc, spec->bucket);
	if (!newest && sc.archived) {
		scan_free(&sc);
		return 0; /* nothing a GET could read: the warning says why */
	}
	if (!newest) {
		check(
		    "FAIL", "deliveries",
		    "the org prefixes hold no Wiv "
		    "delivery ({org}/{org|user|api}-audit-logs-{ms}.json.gz)");
		goto fail;
	}

	struct parse p = {0};
	p.sp = wiv_splitter_new(o->layout, MAX_EVENT_BYTES, newest->key,
				on_event, &p);
	if (!p.sp) {
		check("FAIL", "get", "out of memory");
		goto fail;
	}
	wiv_splitter_set_limits(p.sp, (size_t)o->max_object_events,
				o->max_object_bytes);
	rc = wiv_source_get(src, newest->key, newest->etag, on_body, &p);
	if (rc == ENOMEDIUM) {
		check("warn", "get",
		      "%s is archived although listed otherwise: restore it "
		      "(aws s3api restore-object ... --restore-request Days=7)",
		      newest->key);
		wiv_splitter_free(p.sp);
		scan_free(&sc);
		return 0;
	}
	if (rc == EACCES || rc == EPERM) {
		check("FAIL", "get permission",
		      "access denied reading %s: "
		      "the policy lacks s3:GetObject on arn:aws:s3:::%s/%s*%s",
		      newest->key, spec->bucket ? spec->bucket : "",
		      spec->prefix,
		      " (or kms:Decrypt on the bucket's key, "
		      "for SSE-KMS)");
		wiv_splitter_free(p.sp);
		goto fail;
	}
	if (rc && rc != ECANCELED) {
		check("FAIL", "get",
		      "cannot read %s: %s (see the message "
		      "above)",
		      newest->key, strerror(rc));
		wiv_splitter_free(p.sp);
		goto fail;
	}
	if (spec->bucket)
		check("ok", "get permission", "s3:GetObject on %s",
		      newest->key);
	rc = rc ? EBADMSG : wiv_splitter_finish(p.sp);
	size_t skipped = wiv_splitter_skipped(p.sp);
	wiv_splitter_free(p.sp);
	if (rc) {
		check("FAIL", "parse",
		      "%s is not a readable audit object "
		      "(corrupt gzip, or not a JSON array of events; see the "
		      "message above): the mount skips it",
		      newest->key);
		goto fail;
	}
	check("ok", "parse", "%s: %" PRIu64 " event%s%s%s%s", newest->key,
	      p.events, p.events == 1 ? "" : "s",
	      p.first_type[0] ? ", the first a " : "", p.first_type,
	      skipped ? " (and elements that are not objects, skipped)" : "");
	scan_free(&sc);
	return 0;
fail:
	scan_free(&sc);
	return 1;
}

/* Opens the S3 source and reports the credentials it found. Returns the
 * source, or NULL after a failed check. */
static struct wiv_source *open_s3(const struct wiv_options *o,
				  const struct wiv_source_spec *spec,
				  char *region, size_t region_len)
{
	struct wiv_s3_config s3 = {
	    .bucket = spec->bucket,
	    .endpoint = o->endpoint,
	    .region = o->region ? o->region : spec->region,
	    .profile = o->profile,
	    .cafile = o->cafile,
	    .path_style = o->path_style,
	    .parallel = 1,
	    .retries = o->retries,
	    .timeout_s = o->timeout,
	};
	struct wiv_s3_status st;
	char err[512] = "";
	struct wiv_source *src = wiv_source_s3_new(&s3, err, sizeof(err));
	int rc;

	if (!src) {
		check("FAIL", "credentials", "%s", err);
		return NULL;
	}
	rc = wiv_source_s3_status(src, &st);
	if (rc) {
		check("FAIL", "credentials", "%s", strerror(rc));
		wiv_source_free(src);
		return NULL;
	}
	check("ok", "credentials", "%s, access key %s", st.creds_source,
	      st.key_id_hint);
	snprintf(region, region_len, "%s", st.region);
	return src;
}

int wiv_cli_doctor(int argc, char **argv)
{
	struct wiv_options opts = {0};
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
	struct wiv_source_spec spec;
	struct wiv_source *src = NULL;
	char err[512] = "", region[64] = "";
	int rc = parse_args(argc, argv, &opts, &fargs);

	fuse_opt_free_args(&fargs);
	if (rc) {
		wiv_opts_free(&opts);
		/* 1 from parse_args: --help was shown. */
		return rc == 1 ? 0 : 2;
	}
	if (wiv_source_spec_resolve(opts.source, opts.prefix, &spec, err,
				    sizeof(err))) {
		check("FAIL", "source", "%s", err);
		wiv_opts_free(&opts);
		return 1;
	}
	if (spec.dir) {
		check("ok", "source",
		      "directory %s (a local mirror: no "
		      "credentials needed)",
		      spec.dir);
		src = wiv_source_dir_new(spec.dir, err, sizeof(err));
		if (!src)
			check("FAIL", "source", "%s", err);
	} else {
		check("ok", "source", "s3://%s/%s%s%s%s", spec.bucket,
		      spec.prefix, spec.config_path ? " (from " : "",
		      spec.config_path ? spec.config_path : "",
		      spec.config_path ? ")" : "");
		src = open_s3(&opts, &spec, region, sizeof(region));
	}
	rc = src ? run_checks(&opts, &spec, src, region) : 1;
	wiv_source_free(src);
	wiv_source_spec_free(&spec);
	wiv_opts_free(&opts);
	return rc;
}
