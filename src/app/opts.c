/* Option table, defaults, usage, and the options mount(8) passes along. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wivaudit/cachedir.h"
#include "wivaudit/opts.h"

#define WIV_OPT(template, field, value)                                      \
	{ template, offsetof(struct wiv_options, field), value }

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_CACHE_SIZE,
	KEY_FORMAT,
	KEY_LAYOUT,
	KEY_UID,
	KEY_GID,
	KEY_UMASK,
	KEY_WINDOW,
	KEY_MAX_OBJECT_EVENTS,
	KEY_MAX_OBJECT_BYTES,
	KEY_FOR_FUSE,
	KEY_DISCARD,
	KEY_SLOPPY,
	KEY_NAMESPACE,
};

static const struct fuse_opt option_table[] = {
	WIV_OPT("endpoint=%s", endpoint, 0),
	WIV_OPT("region=%s", region, 0),
	WIV_OPT("prefix=%s", prefix, 0),
	WIV_OPT("profile=%s", profile, 0),
	WIV_OPT("cafile=%s", cafile, 0),
	WIV_OPT("cache_dir=%s", cache_dir, 0),
	WIV_OPT("list_ttl=%u", list_ttl, 0),
	WIV_OPT("parallel=%u", parallel, 0),
	WIV_OPT("readahead=%u", readahead, 0),
	WIV_OPT("retries=%u", retries, 0),
	WIV_OPT("timeout=%u", timeout, 0),
	WIV_OPT("path_style", path_style, 1),
	WIV_OPT("offline", offline, 1),
	WIV_OPT("-f", foreground, 1),
	WIV_OPT("-d", debug, 1),
	WIV_OPT("debug", debug, 1),
	FUSE_OPT_KEY("cache_size=", KEY_CACHE_SIZE),
	FUSE_OPT_KEY("format=", KEY_FORMAT),
	FUSE_OPT_KEY("layout=", KEY_LAYOUT),
	FUSE_OPT_KEY("uid=", KEY_UID),
	FUSE_OPT_KEY("gid=", KEY_GID),
	FUSE_OPT_KEY("umask=", KEY_UMASK),
	FUSE_OPT_KEY("window=", KEY_WINDOW),
	FUSE_OPT_KEY("max_object_events=", KEY_MAX_OBJECT_EVENTS),
	FUSE_OPT_KEY("max_object_bytes=", KEY_MAX_OBJECT_BYTES),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("allow_other", KEY_FOR_FUSE),
	FUSE_OPT_KEY("default_permissions", KEY_FOR_FUSE),
	/* Generic options mount(8) and fstab pass to every helper. */
	FUSE_OPT_KEY("ro", KEY_DISCARD),
	FUSE_OPT_KEY("defaults", KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", KEY_DISCARD),
	FUSE_OPT_KEY("auto", KEY_DISCARD),
	FUSE_OPT_KEY("noauto", KEY_DISCARD),
	FUSE_OPT_KEY("user", KEY_DISCARD),
	FUSE_OPT_KEY("nouser", KEY_DISCARD),
	FUSE_OPT_KEY("users", KEY_DISCARD),
	FUSE_OPT_KEY("nofail", KEY_DISCARD),
	FUSE_OPT_KEY("nosuid", KEY_DISCARD),
	FUSE_OPT_KEY("nodev", KEY_DISCARD),
	FUSE_OPT_KEY("noexec", KEY_DISCARD),
	FUSE_OPT_KEY("suid", KEY_DISCARD),
	FUSE_OPT_KEY("dev", KEY_DISCARD),
	FUSE_OPT_KEY("exec", KEY_DISCARD),
	FUSE_OPT_KEY("atime", KEY_DISCARD),
	FUSE_OPT_KEY("noatime", KEY_DISCARD),
	FUSE_OPT_KEY("relatime", KEY_DISCARD),
	FUSE_OPT_KEY("comment=", KEY_DISCARD),
	/* mount(8) passes rw whenever neither ro nor rw is given, so refusing
	 * it would refuse every plain `mount -t wivaudit`; the mount is
	 * read-only whatever it says. */
	FUSE_OPT_KEY("rw", KEY_DISCARD),
	/* Flags mount(8) gives its helpers, before -o: -s sloppy, -n no mtab,
	 * -v verbose, -t type.subtype, -N namespace. Its -f (fake) cannot be
	 * told from our -f, which wins. */
	FUSE_OPT_KEY("-s", KEY_SLOPPY),
	FUSE_OPT_KEY("-n", KEY_DISCARD),
	FUSE_OPT_KEY("-v", KEY_DISCARD),
	FUSE_OPT_KEY("-t ", KEY_DISCARD),
	FUSE_OPT_KEY("-N ", KEY_NAMESPACE),
	FUSE_OPT_END,
};

/* fuse_opt writes table fields at offsets into the data it is given, so the
 * options come first. */
struct parse_state {
	struct wiv_options opts;
	int positional;
	int failed;
	int sloppy;
};

/* BYTES[KMG], powers of 1024. */
static int parse_size(const char *text, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
		return EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int parse_u32(const char *text, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v > max)
		return EINVAL;
	*out = v;
	return 0;
}

/* Octal permission bits, as umask(1) takes them. */
static int parse_octal(const char *text, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(text, &end, 8);
	if (errno || end == text || *end || text[0] == '-' || v > 0777)
		return EINVAL;
	*out = v;
	return 0;
}

static int bad_option(struct parse_state *st, const char *arg, const char *why)
{
	fprintf(stderr, "mount.wivaudit: bad option '%s': %s\n", arg, why);
	st->failed = 1;
	return -1;
}

static int handle_option(void *data, const char *arg, int key,
			 struct fuse_args *outargs)
{
	struct parse_state *st = data;
	struct wiv_options *o = &st->opts;
	const char *value = strchr(arg, '=');
	value = value ? value + 1 : "";
	unsigned long n;

	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (st->positional == 0) {
			o->mountpoint = strdup(arg);
		} else if (st->positional == 1) {
			o->source = o->mountpoint;
			o->mountpoint = strdup(arg);
		} else {
			fprintf(stderr,
				"mount.wivaudit: unexpected argument '%s'\n",
				arg);
			st->failed = 1;
			return -1;
		}
		st->positional++;
		return 0;
	case FUSE_OPT_KEY_OPT:
		/* x-systemd.*, x-gvfs-* and friends are for other programs. */
		if (strncmp(arg, "x-", 2) == 0)
			return 0;
		if (st->sloppy && arg[0] != '-') {
			fprintf(stderr, "mount.wivaudit: ignoring unknown "
					"option '%s' (-s)\n", arg);
			return 0;
		}
		return bad_option(st, arg, "unknown option (see --help)");
	case KEY_HELP:
		o->show_help = true;
		return 0;
	case KEY_VERSION:
		o->show_version = true;
		return 0;
	case KEY_CACHE_SIZE:
		if (parse_size(value, &o->cache_size) || o->cache_size == 0)
			return bad_option(st, arg, "expected BYTES[KMG], > 0");
		return 0;
	case KEY_FORMAT:
		if (strcmp(value, "pretty") == 0)
			o->layout = WIV_LAYOUT_PRETTY;
		else if (strcmp(value, "compact") == 0)
			o->layout = WIV_LAYOUT_COMPACT;
		else
			return bad_option(st, arg, "expected pretty or compact");
		return 0;
	case KEY_LAYOUT:
		if (strcmp(value, "tree") == 0 || strcmp(value, "jsonl") == 0)
			o->jsonl = strcmp(value, "jsonl") == 0;
		else
			return bad_option(st, arg, "expected tree or jsonl");
		return 0;
	case KEY_UID:
		if (parse_u32(value, UINT32_MAX - 1, &n))
			return bad_option(st, arg, "expected a numeric uid");
		o->uid = (uid_t)n;
		return 0;
	case KEY_GID:
		if (parse_u32(value, UINT32_MAX - 1, &n))
			return bad_option(st, arg, "expected a numeric gid");
		o->gid = (gid_t)n;
		return 0;
	case KEY_UMASK:
		if (parse_octal(value, &n))
			return bad_option(st, arg, "expected octal bits, at "
					  "most 0777");
		o->umask = (mode_t)n;
		return 0;
	case KEY_WINDOW:
		if (parse_u32(value, 366UL * 86400, &n))
			return bad_option(st, arg,
					  "expected seconds, at most a year");
		o->window = (int64_t)n;
		return 0;
	case KEY_MAX_OBJECT_EVENTS:
		/* The cache index counts events in 32 bits. */
		if (parse_u32(value, UINT32_MAX, &n) || n == 0)
			return bad_option(st, arg, "expected a count, > 0");
		o->max_object_events = n;
		return 0;
	case KEY_MAX_OBJECT_BYTES:
		if (parse_size(value, &o->max_object_bytes) ||
		    o->max_object_bytes == 0)
			return bad_option(st, arg, "expected BYTES[KMG], > 0");
		return 0;
	case KEY_FOR_FUSE:
		return 1;
	case KEY_DISCARD:
		return 0;
	case KEY_SLOPPY:
		st->sloppy = 1;
		return 0;
	case KEY_NAMESPACE:
		return bad_option(st, arg, "mounting in another namespace "
				  "(mount -N) is not supported");
	}
	return 1;
}

int wiv_opts_parse(int argc, char **argv, struct wiv_options *opts,
		   struct fuse_args *fuse_args)
{
	struct parse_state st = {.opts = {
		.cache_size = 1ULL << 30,
		.list_ttl = 60,
		.window = 86400,
		.layout = WIV_LAYOUT_PRETTY,
		.parallel = 8,
		.readahead = 2,
		.retries = 5,
		.timeout = 30,
		.max_object_events = WIV_DEFAULT_MAX_OBJECT_EVENTS,
		.max_object_bytes = WIV_DEFAULT_MAX_OBJECT_BYTES,
		.uid = getuid(),
		.gid = getgid(),
	}};
	/* Options the table keeps (allow_other, ...) stay in fuse_args. */
	*fuse_args = (struct fuse_args)FUSE_ARGS_INIT(argc, argv);
	int rc = fuse_opt_parse(fuse_args, &st, option_table, handle_option);
	*opts = st.opts;
	if (rc != 0 || st.failed)
		return EINVAL;
	if (opts->debug)
		opts->foreground = 1;

	if (opts->show_help || opts->show_version)
		return 0;
	if (!opts->mountpoint) {
		fprintf(stderr, "mount.wivaudit: no mount point given "
				"(usage: mount.wivaudit [SOURCE] MOUNTPOINT "
				"[-o opts])\n");
		return EINVAL;
	}
	if (opts->parallel == 0 || opts->parallel > 256) {
		fprintf(stderr, "mount.wivaudit: bad option 'parallel=%u': "
				"expected 1 to 256\n", opts->parallel);
		return EINVAL;
	}
	if (opts->readahead > 366) {
		fprintf(stderr, "mount.wivaudit: bad option 'readahead=%u': "
				"expected 0 to 366 days\n", opts->readahead);
		return EINVAL;
	}
	if (opts->timeout == 0) {
		fprintf(stderr, "mount.wivaudit: bad option 'timeout=0': "
				"expected at least 1 second\n");
		return EINVAL;
	}
	if (!opts->cache_dir) {
		opts->cache_dir = wiv_cachedir_default();
		opts->cache_dir_default = true;
	}
	if (!opts->cache_dir) {
		fprintf(stderr, "mount.wivaudit: no HOME to put the cache in; "
				"give -o cache_dir=DIR\n");
		return EINVAL;
	}
	return 0;
}

void wiv_opts_usage(const char *progname)
{
	printf("usage: %s [SOURCE] MOUNTPOINT [-f] [-d] [-o opt[,opt...]]\n"
	       "\n"
	       "SOURCE is s3://bucket[/prefix], a bucket name, or a local\n"
	       "directory mirroring the bucket; without it the bucket comes\n"
	       "from the configuration file (WIVAUDIT_CONFIG,\n"
	       "~/.config/wivaudit/config.json, /etc/wivaudit/config.json).\n"
	       "\n"
	       "options:\n"
	       "  -f                     stay in the foreground, log to stderr\n"
	       "  -d, -o debug           debug log (implies -f)\n"
	       "  -s                     from mount(8): warn about unknown options\n"
	       "                         instead of failing (-n, -v, -t: ignored)\n"
	       "  -o endpoint=URL        S3-compatible endpoint (default: AWS)\n"
	       "  -o region=NAME         AWS region (default: AWS config, else us-east-1)\n"
	       "  -o path_style          force path-style addressing\n"
	       "  -o prefix=P            key prefix inside the bucket\n"
	       "  -o profile=NAME        AWS profile (default: AWS_PROFILE, else default)\n"
	       "  -o cafile=PATH         CA bundle for TLS (default: the system's)\n"
	       "  -o cache_dir=DIR       on-disk cache (default: /var/cache/wivaudit\n"
	       "                         as root, else ~/.cache/wivaudit)\n"
	       "  -o cache_size=N[KMGT]  cache bound (default: 1G)\n"
	       "  -o list_ttl=SECONDS    how long a listing is trusted (default: 60)\n"
	       "  -o window=SECONDS      date rule window W (default: 86400)\n"
	       "  -o format=pretty|compact  event file layout (default: pretty)\n"
	       "  -o layout=tree|jsonl      per-event tree (default) or one JSON\n"
	       "                            Lines file per org, day and type\n"
	       "  -o offline             never contact S3; serve the cache\n"
	       "  -o parallel=N          concurrent downloads (default: 8)\n"
	       "  -o readahead=DAYS      days a directory walk fetches ahead in\n"
	       "                         the background (default: 2; 0: off)\n"
	       "  -o retries=N           retries per request (default: 5)\n"
	       "  -o timeout=SECONDS     request stall timeout (default: 30)\n"
	       "  -o max_object_events=N an object of more events is skipped\n"
	       "                         (default: 200000)\n"
	       "  -o max_object_bytes=N[KMGT]  an object that decompresses to\n"
	       "                         more is skipped (default: 256M)\n"
	       "  -o uid=N,gid=N         owner of every file (default: yours)\n"
	       "  -o umask=M             mode bits to clear: files are 0444, dirs\n"
	       "                         0555 without them (default: 0)\n"
	       "  -o allow_other         let other users in (see fuse(8))\n"
	       "  -o default_permissions let the kernel check permissions\n"
	       "  -h, --help             this text\n"
	       "  -V, --version          version\n",
	       progname);
}

void wiv_opts_free(struct wiv_options *opts)
{
	free(opts->source);
	free(opts->mountpoint);
	free(opts->endpoint);
	free(opts->region);
	free(opts->prefix);
	free(opts->profile);
	free(opts->cafile);
	free(opts->cache_dir);
}
