/* Stats files of running mounts. A file is text, one "name value" a line:
 *
 *	wivaudit-mount-stats 1
 *	pid 1234
 *	mountpoint /mnt/audit      (percent-encoded: no control byte, no %)
 *	source s3://bucket
 *	started_at 1700000000
 *	...
 */
#include "wivaudit/atomic_file.h"
#include "wivaudit/cachedir.h"
#include "wivaudit/mount_stats.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "wivaudit-mount-stats 1"
#define SUFFIX ".stats"

static void put_encoded(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < ' ' || c == '%' || c == 0x7f)
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

static char *decoded(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	unsigned v;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == '%' && sscanf(s + 1, "%2X", &v) == 1 && v) {
			*o++ = (char)v;
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

int wiv_mount_stats_write(int cache_fd, const struct wiv_mount_stats *s)
{
	char name[64];
	char *body = NULL;
	size_t len = 0;
	FILE *mem;
	int dir_fd, err = wiv_cachedir_sub(cache_fd, "mounts", true, &dir_fd);

	if (err)
		return err;
	snprintf(name, sizeof(name), "%ld" SUFFIX, (long)s->pid);
	mem = open_memstream(&body, &len);
	if (!mem) {
		close(dir_fd);
		return ENOMEM;
	}
	fprintf(mem, HEADER "\npid %ld\nmountpoint ", (long)s->pid);
	put_encoded(mem, s->mountpoint ? s->mountpoint : "");
	fputs("\nsource ", mem);
	put_encoded(mem, s->source ? s->source : "");
	fprintf(mem,
		"\nstarted_at %" PRId64 "\nupdated_at %" PRId64
		"\ncache_bound %" PRIu64 "\nhits %" PRIu64 "\nmisses %" PRIu64
		"\ndownloads %" PRIu64 "\ndownload_bytes %" PRIu64
		"\nover_limit %" PRIu64 "\nevicted %" PRIu64
		"\nuncached %" PRIu64 "\nmissing %" PRIu64 "\n",
		s->started_at, s->updated_at, s->cache_bound, s->hits,
		s->misses, s->downloads, s->download_bytes, s->over_limit,
		s->evicted, s->uncached, s->missing);
	if (fclose(mem) != 0) {
		free(body);
		close(dir_fd);
		return ENOMEM;
	}
	err = wiv_atomic_write(dir_fd, name, body, len);
	free(body);
	close(dir_fd);
	return err;
}

void wiv_mount_stats_remove(int cache_fd, pid_t pid)
{
	char name[64];
	int dir_fd;

	if (wiv_cachedir_sub(cache_fd, "mounts", false, &dir_fd) != 0)
		return;
	snprintf(name, sizeof(name), "%ld" SUFFIX, (long)pid);
	unlinkat(dir_fd, name, 0);
	close(dir_fd);
}

/* Parses one file; returns 0 or EBADMSG. */
static int parse(FILE *f, struct wiv_mount_stats *s)
{
	char line[8192];
	bool header = false;

	while (fgets(line, sizeof(line), f)) {
		char *value = strchr(line, ' ');
		line[strcspn(line, "\n")] = '\0';
		if (!header) {
			if (strcmp(line, HEADER) != 0)
				return EBADMSG;
			header = true;
			continue;
		}
		if (!value)
			continue;
		*value++ = '\0';
		if (strcmp(line, "mountpoint") == 0) {
			free(s->mountpoint);
			s->mountpoint = decoded(value);
		} else if (strcmp(line, "source") == 0) {
			free(s->source);
			s->source = decoded(value);
		} else if (strcmp(line, "started_at") == 0) {
			s->started_at = strtoll(value, NULL, 10);
		} else if (strcmp(line, "updated_at") == 0) {
			s->updated_at = strtoll(value, NULL, 10);
		} else if (strcmp(line, "cache_bound") == 0) {
			s->cache_bound = strtoull(value, NULL, 10);
		} else if (strcmp(line, "hits") == 0) {
			s->hits = strtoull(value, NULL, 10);
		} else if (strcmp(line, "misses") == 0) {
			s->misses = strtoull(value, NULL, 10);
		} else if (strcmp(line, "downloads") == 0) {
			s->downloads = strtoull(value, NULL, 10);
		} else if (strcmp(line, "download_bytes") == 0) {
			s->download_bytes = strtoull(value, NULL, 10);
		} else if (strcmp(line, "over_limit") == 0) {
			s->over_limit = strtoull(value, NULL, 10);
		} else if (strcmp(line, "evicted") == 0) {
			s->evicted = strtoull(value, NULL, 10);
		} else if (strcmp(line, "uncached") == 0) {
			s->uncached = strtoull(value, NULL, 10);
		} else if (strcmp(line, "missing") == 0) {
			s->missing = strtoull(value, NULL, 10);
		}
	}
	return header && s->mountpoint && s->source ? 0 : EBADMSG;
}

/* The pid a stats file is named after, or 0. */
static pid_t pid_of_name(const char *name)
{
	char *end;
	long pid;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	pid = strtol(name, &end, 10);
	return strcmp(end, SUFFIX) == 0 && pid > 0 ? (pid_t)pid : 0;
}

static bool alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

static int by_pid(const void *a, const void *b)
{
	pid_t x = ((const struct wiv_mount_stats *)a)->pid;
	pid_t y = ((const struct wiv_mount_stats *)b)->pid;
	return (x > y) - (x < y);
}

int wiv_mount_stats_list(int cache_fd, struct wiv_mount_stats **out,
			 size_t *n)
{
	struct wiv_mount_stats *all = NULL;
	struct dirent *de;
	size_t count = 0;
	int dir_fd, err;
	DIR *d;

	*out = NULL;
	*n = 0;
	err = wiv_cachedir_sub(cache_fd, "mounts", false, &dir_fd);
	if (err)
		return err == ENOENT ? 0 : err;
	d = fdopendir(dir_fd);
	if (!d) {
		err = errno;
		close(dir_fd);
		return err;
	}
	while ((de = readdir(d))) {
		pid_t pid = pid_of_name(de->d_name);
		struct wiv_mount_stats s = {.pid = pid}, *grown;
		FILE *f;
		int fd;

		if (!pid)
			continue;
		if (!alive(pid)) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		fd = openat(dirfd(d), de->d_name,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (!f) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (parse(f, &s) != 0) {
			fclose(f);
			free(s.mountpoint);
			free(s.source);
			continue;
		}
		fclose(f);
		s.pid = pid;
		grown = realloc(all, (count + 1) * sizeof(*all));
		if (!grown) {
			free(s.mountpoint);
			free(s.source);
			wiv_mount_stats_free(all, count);
			closedir(d);
			return ENOMEM;
		}
		all = grown;
		all[count++] = s;
	}
	closedir(d);
	if (count)
		qsort(all, count, sizeof(*all), by_pid);
	*out = all;
	*n = count;
	return 0;
}

void wiv_mount_stats_free(struct wiv_mount_stats *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++) {
		free(s[i].mountpoint);
		free(s[i].source);
	}
	free(s);
}
