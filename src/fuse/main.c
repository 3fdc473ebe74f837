/* mount.wivaudit: parse → validate → open the source → probe it → mount →
 * daemonize → serve. Everything that can fail on bad input fails before the
 * mount, on the terminal. */
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

#include "wivaudit/cache.h"
#include "wivaudit/escape.h"
#include "wivaudit/fuse_ops.h"
#include "wivaudit/log.h"
#include "wivaudit/opts.h"
#include "wivaudit/source.h"
#include "wivaudit/source_open.h"
#include "wivaudit/tree.h"

#define PROG "mount.wivaudit"

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message may quote the source or a server's answer: escaped whole,
 * like a log line. */
static void fail(const char *fmt, ...)
{
	char line[WIV_ESC_LINE_SIZE];
	va_list ap;
	va_start(ap, fmt);
	wiv_escape_vformat(line, fmt, ap);
	va_end(ap);
	fprintf(stderr, PROG ": %s\n", line);
}

static void route_fuse_log(enum fuse_log_level level, const char *fmt,
			   va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	wiv_log(level <= FUSE_LOG_ERR ? WIV_LOG_ERR
		: level <= FUSE_LOG_WARNING ? WIV_LOG_WARN
		: level <= FUSE_LOG_INFO ? WIV_LOG_INFO
					 : WIV_LOG_DEBUG,
		"fuse: %s", line);
}

/* Opens the source the user named; sets *prefix, and *bucket for a bucket
 * (NULL for a directory). */
static struct wiv_source *open_source(struct wiv_options *o, char **prefix,
				      char **bucket)
{
	char err[512] = "";
	struct wiv_source *src =
		wiv_source_open(o, prefix, bucket, err, sizeof(err));
	if (!src)
		fail("%s", err);
	return src;
}

/* fsname shows in mount(8) and df; commas would split the option. */
static void add_mount_options(struct fuse_args *args, const char *source,
			      bool allow_other)
{
	char opt[1024];
	const char *name = source && !strchr(source, ',') ? source : "wivaudit";
	snprintf(opt, sizeof(opt), "-oro,subtype=wivaudit,fsname=%s", name);
	fuse_opt_add_arg(args, opt);
	/* Other users get in only through the kernel's permission checks. */
	if (allow_other)
		fuse_opt_add_arg(args, "-odefault_permissions");
}

static bool has_arg(const struct fuse_args *args, const char *needle)
{
	for (int i = 0; i < args->argc; i++)
		if (strstr(args->argv[i], needle))
			return true;
	return false;
}

/* Logs what the cache did for this mount, at unmount. */
static void log_cache_counters(struct wiv_cache *cache)
{
	struct wiv_cache_counters n;
	wiv_cache_counters(cache, &n);
	wiv_info("cache: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
		 " objects downloaded (%" PRIu64 " bytes), %" PRIu64
		 " objects not shown (%" PRIu64 " skipped over a ceiling), %" PRIu64
		 " entries evicted, %" PRIu64 " served from memory",
		 n.hits, n.misses, n.downloads, n.download_bytes, n.missing,
		 n.over_limit, n.evicted, n.uncached);
}

/* The session loop ends with 0 on an unmount, the (positive) number of the
 * signal when libfuse's handlers stopped it, or -errno. SIGTERM, SIGINT and
 * SIGHUP are how a service manager or a user asks for an unmount: success. */
static int loop_status(int res)
{
	return res == 0 || res == SIGTERM || res == SIGINT || res == SIGHUP ? 0
									    : 1;
}

static int serve(struct wiv_options *o, struct fuse_args *args,
		 const struct wiv_fs *fsdata, struct wiv_cache *cache)
{
	/* Resolved before mounting: afterwards it would ask ourselves. */
	char *mountpoint = realpath(o->mountpoint, NULL);
	add_mount_options(args, o->source, has_arg(args, "allow_other"));
	struct wiv_fuse *fuse = wiv_fuse_new(fsdata, args);
	if (!fuse) {
		fail("cannot start FUSE (see the message above)");
		free(mountpoint);
		return 1;
	}
	struct fuse_session *se = wiv_fuse_session(fuse);
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		fail("cannot mount on %s (see the message above)",
		     o->mountpoint);
		wiv_fuse_free(fuse);
		free(mountpoint);
		return 1;
	}
	if (fuse_daemonize(o->foreground) != 0) {
		fuse_session_unmount(se);
		wiv_fuse_free(fuse);
		free(mountpoint);
		return 1;
	}
	if (!o->foreground)
		wiv_log_use_syslog();
	/* After daemonizing: the stats file is named by the serving pid. */
	wiv_cache_publish(cache, mountpoint ? mountpoint : o->mountpoint,
			  o->source ? o->source : "(config)");
	free(mountpoint);
	int rc = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		wiv_info("mounted %s on %s", o->source ? o->source : "(config)",
			 o->mountpoint);
		rc = loop_status(wiv_fuse_loop(fuse));
		fuse_remove_signal_handlers(se);
	}
	fuse_session_unmount(se);
	wiv_fuse_free(fuse);
	log_cache_counters(cache);
	wiv_cache_unpublish(cache);
	return rc;
}

int main(int argc, char **argv)
{
	struct wiv_options opts;
	struct fuse_args args;
	if (wiv_opts_parse(argc, argv, &opts, &args) != 0) {
		fuse_opt_free_args(&args);
		wiv_opts_free(&opts);
		return 1;
	}
	if (opts.show_help || opts.show_version) {
		if (opts.show_help)
			wiv_opts_usage(PROG);
		else
			printf("wivaudit %s\n", WIVAUDIT_VERSION);
		fuse_opt_free_args(&args);
		wiv_opts_free(&opts);
		return 0;
	}
	wiv_log_set_debug(opts.debug);
	fuse_set_log_func(route_fuse_log);
	/* glibc gives every thread that allocates its own arena; with one
	 * FUSE thread per concurrent request and a download pool the peak
	 * then grows with the walk. Two arenas keep it flat. */
	mallopt(M_ARENA_MAX, 2);

	int rc = 1;
	struct stat st;
	struct wiv_source *src = NULL;
	struct wiv_cache *cache = NULL;
	struct wiv_tree *tree = NULL;
	char *prefix = NULL, *bucket = NULL;
	char err[512] = "";

	if (stat(opts.mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fail("mount point %s: %s", opts.mountpoint,
		     errno ? strerror(errno) : "not a directory");
		goto out;
	}
	src = open_source(&opts, &prefix, &bucket);
	if (!src)
		goto out;
	cache = wiv_source_open_cache(&opts, err, sizeof(err));
	if (!cache) {
		fail("%s", err);
		goto out;
	}
	struct wiv_tree_config tcfg =
	    wiv_source_tree_config(&opts, src, cache, prefix, bucket);
	tree = wiv_tree_new(&tcfg);
	if (!tree) {
		fail("out of memory");
		goto out;
	}
	int probe = wiv_tree_probe(tree);
	if (probe != 0) {
		fail("cannot list %s: %s", opts.source ? opts.source : "the bucket",
		     probe == EACCES ? "access denied (check the credentials "
				       "and the bucket policy)"
				     : strerror(probe));
		goto out;
	}
	struct wiv_fs fsdata = {
		.tree = tree,
		.uid = opts.uid,
		.gid = opts.gid,
		.file_mode = 0444 & ~opts.umask,
		.dir_mode = 0555 & ~opts.umask,
		.list_ttl_s = opts.list_ttl,
		.jsonl = opts.jsonl,
	};
	rc = serve(&opts, &args, &fsdata, cache);
out:
	wiv_tree_free(tree);
	wiv_cache_close(cache);
	wiv_source_free(src);
	free(prefix);
	free(bucket);
	fuse_opt_free_args(&args);
	wiv_opts_free(&opts);
	return rc;
}
