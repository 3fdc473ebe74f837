/* wivaudit export [SOURCE] DIR [--org ID] [--from DATE] [--to DATE]
 * [-o opts] [--json]: writes the JSON Lines view (jsonl_view.h) to DIR,
 * each file byte for byte what a layout=jsonl mount shows, through the
 * same tree and cache. A file is replaced atomically (temp + rename) and
 * only when its content changed, so a re-run rewrites only the days that
 * gained events. DIR "-" writes every line to stdout instead. Exit status:
 * 0 every file exported, 1 some failed (each named), 2 bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "wivaudit/cache.h"
#include "wivaudit/cli.h"
#include "wivaudit/escape.h"
#include "wivaudit/jsonl_view.h"
#include "wivaudit/log.h"
#include "wivaudit/opts.h"
#include "wivaudit/source_open.h"
#include "wivaudit/tree.h"

#define PROG "wivaudit export"
/* Bytes read from the view and written at a time. */
#define CHUNK (1u << 20)
#define BAR_WIDTH 30

struct export_args {
	const char *dir;  /* "-": stdout */
	const char *org;  /* NULL: every org */
	const char *from; /* "YYYY-MM-DD" or NULL */
	const char *to;
	bool json;
};

struct names {
	char **v;
	size_t n, cap;
};

struct exporter {
	struct wiv_tree *tree;
	const struct export_args *a;
	FILE *json;       /* progress lines, or NULL */
	bool bar;         /* a progress bar on stderr */
	size_t done, total, written, unchanged, failed;
	unsigned long long bytes;
	char *chunk, *old;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wivaudit export [SOURCE] DIR [--org ID] [--from "
		"YYYY-MM-DD]\n"
		"                       [--to YYYY-MM-DD] [-o opt[,opt...]] "
		"[--json]\n"
		"\n"
		"Writes DIR/org=ORG/date=YYYY-MM-DD/type=TYPE/events.jsonl, "
		"one compact\n"
		"event per line, exactly what a -o layout=jsonl mount shows. "
		"Files are\n"
		"replaced atomically and only when their content changed. DIR "
		"'-' writes\n"
		"all lines to stdout. --from and --to are inclusive UTC days. "
		"SOURCE and -o\n"
		"take what mount.wivaudit takes (cache_dir= shares its "
		"cache). A progress\n"
		"bar on a terminal; --json prints one JSON object per file "
		"and a summary.\n");
}

/* ---- arguments ---- */

static bool valid_date(const char *s)
{
	static const char shape[] = "dddd-dd-dd";
	if (strlen(s) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != '-')
			return false;
	return true;
}

/* Splits argv into ours and mount.wivaudit's (SOURCE, -o), which are
 * parsed by wiv_opts_parse with "/" for the mount point. Returns 0, 1
 * after --help, or 2 after a usage message. */
static int parse_args(int argc, char **argv, struct export_args *a,
		      struct wiv_options *opts, struct fuse_args *fargs)
{
	char **v = calloc((size_t)argc + 2, sizeof(*v));
	const char *pos[2];
	int n = 0, npos = 0, rc = 0;
	if (!v)
		return 2;
	v[n++] = argv[0];
	for (int i = 1; i < argc && !rc; i++) {
		const char *s = argv[i];
		bool has_value = i + 1 < argc;
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			usage(stdout);
			rc = 1;
		} else if (strcmp(s, "--json") == 0) {
			a->json = true;
		} else if (strcmp(s, "--org") == 0 && has_value) {
			a->org = argv[++i];
		} else if (strcmp(s, "--from") == 0 && has_value) {
			a->from = argv[++i];
		} else if (strcmp(s, "--to") == 0 && has_value) {
			a->to = argv[++i];
		} else if (strcmp(s, "-o") == 0 && has_value) {
			v[n++] = argv[i++];
			v[n++] = argv[i];
		} else if ((s[0] != '-' || strcmp(s, "-") == 0) && npos < 2) {
			pos[npos++] = s;
		} else {
			fprintf(stderr, PROG ": unexpected argument '%s'\n", s);
			rc = 2;
		}
	}
	if (!rc && npos == 0) {
		fprintf(stderr, PROG ": DIR is missing\n");
		rc = 2;
	}
	if (!rc && ((a->from && !valid_date(a->from)) ||
		    (a->to && !valid_date(a->to)))) {
		fprintf(stderr, PROG ": dates are YYYY-MM-DD\n");
		rc = 2;
	}
	if (!rc) {
		a->dir = pos[npos - 1];
		if (npos == 2)
			v[n++] = (char *)pos[0];
		v[n++] = "/";
		rc = wiv_opts_parse(n, v, opts, fargs) ? 2 : 0;
	}
	if (rc == 2)
		usage(stderr);
	free(v);
	return rc;
}

/* ---- the files to export ---- */

static int add_name(void *arg, const char *name,
		    const struct wiv_node_attr *attr, off_t next)
{
	struct names *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return 1;
		l->v = v;
		l->cap = cap;
	}
	return (l->v[l->n] = strdup(name)) ? (l->n++, 0) : 1;
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct names){0};
}

/* The children of the view's directory at path. Returns 0 or errno. */
static int list_dir(struct wiv_tree *t, const char *path, struct names *out)
{
	*out = (struct names){0};
	int err = wiv_jsonl_readdir(t, path, 0, add_name, out);
	if (err)
		names_free(out);
	return err;
}

static bool wanted_date(const struct export_args *a, const char *name)
{
	const char *date = name + strlen("date=");
	return (!a->from || strcmp(date, a->from) >= 0) &&
	       (!a->to || strcmp(date, a->to) <= 0);
}

/* Appends to files the path of every events.jsonl the filters select. */
static int collect(struct wiv_tree *t, const struct export_args *a,
		   struct names *files)
{
	struct names orgs, dates, types;
	char path[1024];
	int err = list_dir(t, "/", &orgs);
	for (size_t i = 0; !err && i < orgs.n; i++) {
		if (a->org && strcmp(orgs.v[i] + strlen("org="), a->org) != 0)
			continue;
		snprintf(path, sizeof(path), "/%s", orgs.v[i]);
		err = list_dir(t, path, &dates);
		for (size_t j = 0; !err && j < dates.n; j++) {
			if (!wanted_date(a, dates.v[j]))
				continue;
			snprintf(path, sizeof(path), "/%s/%s", orgs.v[i],
				 dates.v[j]);
			err = list_dir(t, path, &types);
			for (size_t k = 0; !err && k < types.n; k++) {
				snprintf(path, sizeof(path),
					 "/%s/%s/%s/" WIV_JSONL_FILE,
					 orgs.v[i], dates.v[j], types.v[k]);
				err = add_name(files, path, NULL, 0) ? ENOMEM
								      : 0;
			}
			names_free(&types);
		}
		names_free(&dates);
	}
	names_free(&orgs);
	return err;
}

/* ---- writing ---- */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Whether the file at path (open on fd) holds exactly the view's vpath. */
static int same_content(struct exporter *x, const char *vpath, int fd,
			bool *same)
{
	size_t n;
	off_t off = 0;
	*same = false;
	for (;;) {
		int err = wiv_jsonl_read(x->tree, vpath, x->chunk, CHUNK, off,
					 &n);
		if (err)
			return err;
		ssize_t got = pread(fd, x->old, n ? n : 1, off);
		if (got < 0)
			return errno;
		if ((size_t)got != n || memcmp(x->chunk, x->old, n) != 0)
			return 0;
		if (n == 0) {
			*same = true;
			return 0;
		}
		off += (off_t)n;
	}
}

/* Copies the view's vpath to fd from the start; *total gets its size. */
static int copy_to(struct exporter *x, const char *vpath, int fd,
		   unsigned long long *total)
{
	size_t n;
	*total = 0;
	for (;;) {
		int err = wiv_jsonl_read(x->tree, vpath, x->chunk, CHUNK,
					 (off_t)*total, &n);
		if (!err && n)
			err = write_all(fd, x->chunk, n);
		if (err || n == 0)
			return err;
		*total += n;
	}
}

static int make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		int rc = mkdir(path, 0755);
		int err = rc && errno != EEXIST ? errno : 0;
		*p = '/';
		if (err)
			return err;
	}
	return 0;
}

/* Replaces out with the view's vpath unless it holds that already. */
static int export_file(struct exporter *x, const char *vpath, const char *out,
		       bool *changed, unsigned long long *bytes)
{
	char tmp[4200];
	bool same = false;
	int err = 0;
	int fd = open(out, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		err = same_content(x, vpath, fd, &same);
		close(fd);
	}
	*changed = !same;
	if (err || same)
		return err;
	snprintf(tmp, sizeof(tmp), "%s", out);
	if ((err = make_parents(tmp)) != 0)
		return err;
	snprintf(tmp, sizeof(tmp), "%.*s.events.jsonl.XXXXXX",
		 (int)(strrchr(out, '/') + 1 - out), out);
	fd = mkstemp(tmp);
	if (fd < 0)
		return errno;
	err = copy_to(x, vpath, fd, bytes);
	if (!err && fchmod(fd, 0644) != 0)
		err = errno;
	if (close(fd) != 0 && !err)
		err = errno;
	if (!err && rename(tmp, out) != 0)
		err = errno;
	if (err)
		unlink(tmp);
	return err;
}

static void progress(struct exporter *x, const char *vpath, const char *status,
		     unsigned long long bytes)
{
	if (x->json) {
		/* An org id may hold '"' or '\\': JSON-quoted, and escaped
		 * first as every printed name is (valid UTF-8 then). */
		json_t *line = json_pack("{s:s, s:s, s:I, s:I, s:I}", "file",
					 wiv_esc(vpath + 1).s, "status", status,
					 "bytes", (json_int_t)bytes, "done",
					 (json_int_t)x->done, "total",
					 (json_int_t)x->total);
		if (line && json_dumpf(line, x->json, JSON_COMPACT) == 0)
			fputc('\n', x->json);
		json_decref(line);
		fflush(x->json);
	} else if (x->bar) {
		size_t fill = x->total ? x->done * BAR_WIDTH / x->total : 0;
		char bar[BAR_WIDTH + 1];
		memset(bar, '#', fill);
		memset(bar + fill, ' ', BAR_WIDTH - fill);
		bar[BAR_WIDTH] = '\0';
		fprintf(stderr, "\r[%s] %zu/%zu files, %.1f MB", bar, x->done,
			x->total, (double)x->bytes / 1e6);
	}
}

/* Exports one file (to stdout for DIR "-"), counting the outcome. */
static void export_one(struct exporter *x, const char *vpath)
{
	unsigned long long bytes = 0;
	bool changed = true;
	int err;
	if (strcmp(x->a->dir, "-") == 0) {
		fflush(stdout);
		err = copy_to(x, vpath, STDOUT_FILENO, &bytes);
	} else {
		char out[4096];
		snprintf(out, sizeof(out), "%s%s", x->a->dir, vpath);
		err = export_file(x, vpath, out, &changed, &bytes);
	}
	x->done++;
	if (err) {
		x->failed++;
		wiv_err("export: %s: %s", vpath + 1, strerror(err));
	} else if (changed) {
		x->written++;
		x->bytes += bytes;
	} else {
		x->unchanged++;
	}
	progress(x, vpath, err ? "failed" : changed ? "written" : "unchanged",
		 bytes);
}

static int run_export(struct wiv_tree *t, const struct export_args *a)
{
	struct exporter x = {.tree = t, .a = a};
	struct names files = {0};
	bool to_stdout = strcmp(a->dir, "-") == 0;
	if (a->json)
		x.json = to_stdout ? stderr : stdout;
	x.bar = !a->json && isatty(STDERR_FILENO);
	x.chunk = malloc(CHUNK);
	x.old = malloc(CHUNK);
	int err = x.chunk && x.old ? 0 : ENOMEM;
	if (!err && !to_stdout && mkdir(a->dir, 0755) != 0 && errno != EEXIST)
		err = errno;
	if (!err)
		err = collect(t, a, &files);
	if (err)
		fprintf(stderr, PROG ": %s: %s\n", wiv_esc(a->dir).s,
			strerror(err));
	x.total = files.n;
	for (size_t i = 0; !err && i < files.n; i++)
		export_one(&x, files.v[i]);
	if (x.bar)
		fputc('\n', stderr);
	if (x.json)
		fprintf(x.json,
			"{\"done\":%zu,\"total\":%zu,\"written\":%zu,"
			"\"unchanged\":%zu,\"failed\":%zu,\"bytes\":%llu}\n",
			x.done, x.total, x.written, x.unchanged, x.failed,
			x.bytes);
	else if (!err)
		fprintf(stderr,
			PROG ": %zu files: %zu written (%llu bytes), %zu "
			     "unchanged, %zu failed\n",
			x.total, x.written, x.bytes, x.unchanged, x.failed);
	names_free(&files);
	free(x.chunk);
	free(x.old);
	return err || x.failed ? 1 : 0;
}

int wiv_cli_export(int argc, char **argv)
{
	struct export_args a = {0};
	struct wiv_options opts = {0};
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
	int rc = parse_args(argc, argv, &a, &opts, &fargs);
	fuse_opt_free_args(&fargs);
	if (rc) {
		wiv_opts_free(&opts);
		return rc == 1 ? 0 : 2;
	}
	wiv_log_set_debug(opts.debug);
	char err[512] = "";
	char *prefix = NULL;
	struct wiv_cache *cache = NULL;
	struct wiv_tree *tree = NULL;
	struct wiv_source *src = wiv_source_open(&opts, &prefix, NULL, err,
						 sizeof(err));
	if (src)
		cache = wiv_source_open_cache(&opts, err, sizeof(err));
	struct wiv_tree_config tcfg =
	    wiv_source_tree_config(&opts, src, cache, prefix, NULL);
	if (cache && !(tree = wiv_tree_new(&tcfg)))
		snprintf(err, sizeof(err), "out of memory");
	int probe = tree ? wiv_tree_probe(tree) : 0;
	if (probe)
		snprintf(err, sizeof(err), "cannot list the source: %s",
			 strerror(probe));
	rc = 1;
	if (!tree || probe)
		fprintf(stderr, PROG ": %s\n", wiv_esc(err).s);
	else
		rc = run_export(tree, &a);
	wiv_tree_free(tree);
	wiv_cache_close(cache);
	wiv_source_free(src);
	free(prefix);
	wiv_opts_free(&opts);
	return rc;
}
