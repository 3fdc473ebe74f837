/* Subcommands of the wivaudit command. Each gets the arguments after its
 * name (argv[0] is the subcommand name) and returns the exit status. */
#ifndef WIVAUDIT_CLI_H
#define WIVAUDIT_CLI_H

/* wivaudit cache stats|verify|clear [--cache-dir DIR] (src/cli_cache.c). */
int wiv_cli_cache(int argc, char **argv);

#endif
