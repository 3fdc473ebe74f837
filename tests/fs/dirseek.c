/* dirseek DIR NAMES_OUT STEP: lists DIR with readdir, noting telldir() before
 * every entry; writes the names NUL-separated to NAMES_OUT; then seekdir()s
 * back to every STEP-th noted position and checks that reading resumes with
 * the same entries, seeks to the middle and reads to the end, and fstatat()s
 * every name (d_ino must equal st_ino). Prints one line of counts. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ent {
	char *name;
	long pos; /* telldir() before the entry was read */
	ino_t ino;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: dirseek DIR NAMES_OUT STEP\n");
		return 2;
	}
	long step = atol(argv[3]);
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	size_t n = 0, cap = 1024;
	struct ent *e = malloc(cap * sizeof(*e));
	double t0 = now();
	for (;;) {
		long pos = telldir(d);
		struct dirent *de = readdir(d);
		if (!de)
			break;
		if (n == cap)
			e = realloc(e, (cap *= 2) * sizeof(*e));
		e[n].name = strdup(de->d_name);
		e[n].pos = pos;
		e[n].ino = de->d_ino;
		n++;
	}
	double list_s = now() - t0;

	FILE *out = fopen(argv[2], "wb");
	for (size_t i = 0; i < n; i++)
		fwrite(e[i].name, strlen(e[i].name) + 1, 1, out);
	fclose(out);

	char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
	for (size_t i = 0; i < n; i++)
		sorted[i] = e[i].name;
	qsort(sorted, n, sizeof(*sorted), cmp);
	size_t dups = 0;
	for (size_t i = 1; i < n; i++)
		dups += strcmp(sorted[i - 1], sorted[i]) == 0;

	/* seekdir to saved positions, backwards so every seek goes back. */
	size_t seeks = 0, seek_bad = 0;
	t0 = now();
	for (long i = (long)n - 1; i >= 0; i--) {
		if (step <= 0 || (i % step != 0 && i != (long)n - 1))
			continue;
		seeks++;
		seekdir(d, e[i].pos);
		for (size_t k = (size_t)i; k < n && k < (size_t)i + 40; k++) {
			struct dirent *de = readdir(d);
			if (!de || strcmp(de->d_name, e[k].name) != 0) {
				if (seek_bad++ < 5)
					fprintf(stderr, "seekdir to entry %zu: "
						"got %s, want %s\n", k,
						de ? de->d_name : "(end)",
						e[k].name);
				break;
			}
		}
	}
	/* From the middle to the end, then the end reads nothing more. */
	size_t tail_bad = 0;
	seekdir(d, e[n / 2].pos);
	for (size_t k = n / 2; k < n; k++) {
		struct dirent *de = readdir(d);
		if (!de || strcmp(de->d_name, e[k].name) != 0) {
			tail_bad++;
			break;
		}
	}
	if (readdir(d) != NULL)
		tail_bad++;
	/* rewinddir gives the same first entries. */
	rewinddir(d);
	size_t rewind_bad = 0;
	for (size_t k = 0; k < n && k < 100; k++) {
		struct dirent *de = readdir(d);
		if (!de || strcmp(de->d_name, e[k].name) != 0) {
			rewind_bad++;
			break;
		}
	}
	double seek_s = now() - t0;

	size_t stat_fail = 0, ino_bad = 0;
	t0 = now();
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (strcmp(e[i].name, ".") == 0 || strcmp(e[i].name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e[i].name, &st, AT_SYMLINK_NOFOLLOW)) {
			if (stat_fail++ < 5)
				perror(e[i].name);
			continue;
		}
		if (st.st_ino != e[i].ino && ino_bad++ < 5)
			fprintf(stderr, "%s: d_ino %lu, st_ino %lu\n", e[i].name,
				(unsigned long)e[i].ino,
				(unsigned long)st.st_ino);
	}
	double stat_s = now() - t0;
	closedir(d);
	printf("entries=%zu dups=%zu seeks=%zu seek_bad=%zu tail_bad=%zu "
	       "rewind_bad=%zu stat_fail=%zu ino_bad=%zu list_s=%.3f "
	       "seek_s=%.3f stat_s=%.3f\n", n, dups, seeks, seek_bad,
	       tail_bad, rewind_bad, stat_fail, ino_bad, list_s, seek_s,
	       stat_s);
	return 0;
}
