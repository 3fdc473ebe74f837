/* wivaudit: the command beside mount.wivaudit. It only dispatches; each
 * subcommand lives in its own src/cli_*.c. */
#include <stdio.h>
#include <string.h>

#include "wivaudit/cli.h"

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"cache", "stats|verify|clear: inspect or empty the on-disk cache",
     wiv_cli_cache},
    {"setup", "create the bucket, role and policies Wiv's delivery needs",
     wiv_cli_setup},
    {"doctor", "check credentials, bucket, permissions and deliveries",
     wiv_cli_doctor},
    {"export", "write the JSON Lines view (org=/date=/type=) to a directory",
     wiv_cli_export},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: wivaudit COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\n'wivaudit COMMAND --help' tells more; mounting is "
		   "mount.wivaudit's job.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("wivaudit %s\n", WIVAUDIT_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "wivaudit: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
