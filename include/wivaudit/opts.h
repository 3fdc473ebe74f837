/* Command line: mount.wivaudit [SOURCE] MOUNTPOINT [-f] [-d] [-o opts]. */
#ifndef WIVAUDIT_OPTS_H
#define WIVAUDIT_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_opt.h>

#include "wivaudit/split.h"

struct wiv_options {
	char *source;      /* as given, or NULL: from the config file */
	char *mountpoint;
	char *endpoint;
	char *region;
	char *prefix;
	char *profile;
	char *cafile;
	char *cache_dir;
	bool cache_dir_default; /* cache_dir is wiv_cachedir_default() */
	uint64_t cache_size;
	unsigned list_ttl;
	int64_t window;
	enum wiv_layout layout;
	bool jsonl;        /* layout=jsonl: the JSON Lines view */
	unsigned parallel;
	unsigned readahead; /* days */
	unsigned retries;
	unsigned timeout;
	uint64_t max_object_events; /* ceilings on one object */
	uint64_t max_object_bytes;
	uid_t uid;
	gid_t gid;
	mode_t umask; /* taken from every file's and directory's mode */
	/* int, not bool: fuse_opt stores flags as int. */
	int path_style;
	int offline;
	int foreground;
	int debug;
	bool show_help;
	bool show_version;
};

/* Parses argv into opts (defaults filled in) and leaves in fuse_args the
 * options meant for libfuse. Returns 0, or EINVAL after printing one line
 * that names the bad argument. */
int wiv_opts_parse(int argc, char **argv, struct wiv_options *opts,
		   struct fuse_args *fuse_args);

/* Prints the usage text with every option and its default. */
void wiv_opts_usage(const char *progname);

/* Frees the strings in opts. */
void wiv_opts_free(struct wiv_options *opts);

#endif
