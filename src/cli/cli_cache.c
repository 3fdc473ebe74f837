/* wivaudit cache stats|verify|clear [--cache-dir DIR]: the on-disk cache
 * seen from outside the daemons. Exit status: 0 fine, 1 damage found
 * (verify), 2 trouble (bad usage, unreadable directory). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wivaudit/cache.h"
#include "wivaudit/cachedir.h"
#include "wivaudit/cli.h"
#include "wivaudit/escape.h"
#include "wivaudit/mount_stats.h"

#define PROG "wivaudit cache"
/* How long clear waits for a daemon's eviction scan to finish. */
#define CLEAR_WAIT_S 10

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wivaudit cache stats  [--cache-dir DIR]\n"
		"       wivaudit cache verify [--repair] [--cache-dir DIR]\n"
		"       wivaudit cache clear  [--cache-dir DIR]\n"
		"\n"
		"  stats   sizes, entry counts, and each running mount's hit "
		"ratio\n"
		"  verify  check every entry and listing; exit 1 if any is "
		"damaged\n"
		"          (--repair: remove the damaged ones, fetched again "
		"on use)\n"
		"  clear   remove every entry and listing (safe while "
		"mounted)\n"
		"\n"
		"DIR defaults to mount.wivaudit's: /var/cache/wivaudit as "
		"root, else\n"
		"$XDG_CACHE_HOME/wivaudit or ~/.cache/wivaudit.\n");
}

/* "1.5 MiB" */
static const char *human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB",
					    "TiB"};
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " bytes", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static void print_mount(const struct wiv_mount_stats *m, time_t now)
{
	uint64_t lookups = m->hits + m->misses;
	int64_t up = now - m->started_at;
	char ratio[16], size[32];

	if (lookups)
		snprintf(ratio, sizeof(ratio), "%.1f%%",
			 100.0 * (double)m->hits / (double)lookups);
	else
		snprintf(ratio, sizeof(ratio), "-");
	printf("mount %s (pid %ld, %s, up %" PRId64 " s, as of %" PRId64
	       " s ago):\n",
	       wiv_esc(m->mountpoint).s, (long)m->pid, wiv_esc(m->source).s,
	       up < 0 ? 0 : up,
	       now - m->updated_at < 0 ? 0 : now - m->updated_at);
	printf("  hits %" PRIu64 ", misses %" PRIu64 ", hit ratio %s\n",
	       m->hits, m->misses, ratio);
	printf("  downloads %" PRIu64 " (%s)\n", m->downloads,
	       human(m->download_bytes, size, sizeof(size)));
	printf("  objects skipped over a ceiling %" PRIu64 "\n",
	       m->over_limit);
	printf("  evicted %" PRIu64 ", uncached %" PRIu64
	       " (served from memory: larger than cache_size, or the disk "
	       "was full)\n",
	       m->evicted, m->uncached);
	if (m->missing)
		printf("  objects not shown %" PRIu64 " (their directories "
		       "name them in user.wivaudit.missing)\n",
		       m->missing);
}

static int cmd_stats(const char *dir, int dir_fd)
{
	struct wiv_mount_stats *mounts;
	struct wiv_cache_usage u;
	uint64_t bound = UINT64_MAX;
	char a[32], b[32];
	size_t n;
	int err;

	err = wiv_cache_usage(dir_fd, &u);
	if (err) {
		fprintf(stderr, PROG ": %s: %s\n", wiv_esc(dir).s,
			strerror(err));
		return 2;
	}
	err = wiv_mount_stats_list(dir_fd, &mounts, &n);
	if (err == ELOOP) {
		printf("mounts/ is a symlink: not followed, running mounts "
		       "unknown (see 'wivaudit cache verify')\n");
		mounts = NULL;
		n = 0;
	} else if (err) {
		fprintf(stderr, PROG ": %s/mounts: %s\n", wiv_esc(dir).s,
			strerror(err));
		return 2;
	}
	printf("cache directory: %s\n", wiv_esc(dir).s);
	printf("entries: %" PRIu64 " (%s)\n", u.entries,
	       human(u.entry_bytes, a, sizeof(a)));
	printf("bad-object verdicts: %" PRIu64 "\n", u.bad_objects);
	if (u.other_format)
		printf("entries of another version: %" PRIu64
		       " (fetched again on use)\n",
		       u.other_format);
	if (u.unreadable)
		printf("damaged entries: %" PRIu64
		       " (see 'wivaudit cache verify')\n",
		       u.unreadable);
	printf("listings: %" PRIu64 " (%s)\n", u.listings,
	       human(u.listing_bytes, b, sizeof(b)));
	if (u.temp_files)
		printf("temporary files: %" PRIu64 " (%s; writes under way, or "
		       "left by a killed process: removed by the next mount "
		       "or 'verify --repair')\n",
		       u.temp_files, human(u.temp_bytes, a, sizeof(a)));
	if (u.symlinks)
		printf("symlinks: %" PRIu64 " (never followed; see 'wivaudit "
		       "cache verify')\n",
		       u.symlinks);
	for (size_t i = 0; i < n; i++)
		if (mounts[i].cache_bound < bound)
			bound = mounts[i].cache_bound;
	if (n)
		printf("bound: %s (cache_size of the running mount%s)\n",
		       human(bound, a, sizeof(a)), n > 1 ? "s, smallest" : "");
	else
		printf("bound: unknown (set by each mount's cache_size, "
		       "default 1 GiB)\n");
	if (!n)
		printf("mounts: none running\n");
	for (size_t i = 0; i < n; i++)
		print_mount(&mounts[i], time(NULL));
	wiv_mount_stats_free(mounts, n);
	return 0;
}

static void report_damage(void *arg, const char *path, const char *key,
			  const char *why)
{
	bool *repair = arg;

	printf("%s: %s%s%s%s%s\n", wiv_esc(path).s,
	       why ? wiv_esc(why).s : "damaged", key ? " (key " : "",
	       key ? wiv_esc(key).s : "", key ? ")" : "",
	       *repair ? ", removed" : "");
}

static int cmd_verify(const char *dir, int dir_fd, bool repair)
{
	struct wiv_cache_verify_result r;
	int err = wiv_cache_verify(dir_fd, repair, report_damage, &repair, &r);

	if (err) {
		fprintf(stderr, PROG ": %s: %s\n", wiv_esc(dir).s,
			strerror(err));
		return 2;
	}
	printf("checked %" PRIu64 " entries (%" PRIu64 " events) and %" PRIu64
	       " listings: %" PRIu64 " damaged\n",
	       r.entries, r.events, r.listings, r.damaged);
	if (r.other_format)
		printf("%" PRIu64 " entries of another version%s\n",
		       r.other_format,
		       repair ? " removed" : " (fetched again on use)");
	if (r.temp_files)
		printf("%" PRIu64 " temporary files, %" PRIu64
		       " of them abandoned and removed\n",
		       r.temp_files, r.temp_removed);
	if (r.damaged && !repair)
		printf("damaged files are fetched again when used; "
		       "--repair removes them now\n");
	return r.damaged ? 1 : 0;
}

static int cmd_clear(const char *dir, int dir_fd)
{
	struct wiv_cache_clear_result r;
	char a[32], b[32];
	int err = wiv_cache_clear(dir_fd, CLEAR_WAIT_S, &r);

	if (err == ETIMEDOUT) {
		fprintf(stderr,
			PROG ": %s: the cache stayed locked for %d s; "
			     "try again\n",
			wiv_esc(dir).s, CLEAR_WAIT_S);
		return 2;
	}
	if (err == ELOOP) {
		fprintf(stderr,
			PROG ": %s/lock is a symlink, not followed: "
			     "'wivaudit cache verify --repair' removes it\n",
			dir);
		return 2;
	}
	if (err) {
		fprintf(stderr, PROG ": %s: %s\n", wiv_esc(dir).s,
			strerror(err));
		return 2;
	}
	if (r.symlinks)
		printf("removed %" PRIu64 " symlinks (not followed)\n",
		       r.symlinks);
	printf("removed %" PRIu64 " entries (%s) and %" PRIu64
	       " listings (%s)\n",
	       r.entries, human(r.entry_bytes, a, sizeof(a)), r.listings,
	       human(r.listing_bytes, b, sizeof(b)));
	return 0;
}

int wiv_cli_cache(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"cache-dir", required_argument, NULL, 'c'},
	    {"repair", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char *dir = NULL;
	bool repair = false;
	const char *action;
	char err[512];
	int opt, rc, dir_fd;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			free(dir);
			dir = strdup(optarg);
			break;
		case 'r':
			repair = true;
			break;
		case 'h':
			usage(stdout);
			free(dir);
			return 0;
		default:
			fprintf(stderr,
				PROG ": bad or incomplete option '%s' (see "
				     "--help)\n",
				argv[optind - 1]);
			free(dir);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		free(dir);
		return 2;
	}
	action = argv[optind];
	if (repair && strcmp(action, "verify") != 0) {
		fprintf(stderr, PROG ": --repair goes with verify\n");
		free(dir);
		return 2;
	}
	if (!dir)
		dir = wiv_cachedir_default();
	if (!dir) {
		fprintf(stderr, PROG ": no HOME to find the cache in; give "
				     "--cache-dir DIR\n");
		return 2;
	}
	/* Opened as a mount opens it, symlinks included, but never
	 * created or changed. */
	rc = wiv_cachedir_open(dir, 0, &dir_fd, err, sizeof(err));
	if (rc) {
		if (rc == ENOENT || rc == ENOTDIR)
			fprintf(stderr, PROG ": no cache at %s\n", wiv_esc(dir).s);
		else
			fprintf(stderr, PROG ": %s\n", wiv_esc(err).s);
		free(dir);
		return 2;
	}
	if (strcmp(action, "stats") == 0) {
		rc = cmd_stats(dir, dir_fd);
	} else if (strcmp(action, "verify") == 0) {
		rc = cmd_verify(dir, dir_fd, repair);
	} else if (strcmp(action, "clear") == 0) {
		rc = cmd_clear(dir, dir_fd);
	} else {
		fprintf(stderr, PROG ": unknown action '%s'\n", action);
		usage(stderr);
		rc = 2;
	}
	close(dir_fd);
	free(dir);
	return rc;
}
