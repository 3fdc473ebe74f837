/* Subcommands of the wivaudit command. Each gets the arguments after its
 * name (argv[0] is the subcommand name) and returns the exit status. */
#ifndef WIVAUDIT_CLI_H
#define WIVAUDIT_CLI_H

/* wivaudit cache stats|verify|clear [--cache-dir DIR] (src/cli/cli_cache.c). */
int wiv_cli_cache(int argc, char **argv);

/* wivaudit setup --bucket NAME --wiv-principal ARN [...] (src/cli/cli_setup.c):
 * external id, policy files, the configuration for Wiv, the aws commands. */
int wiv_cli_setup(int argc, char **argv);

/* wivaudit doctor [SOURCE] [-o opts] (src/cli/cli_doctor.c): checks what a mount
 * needs, one line each; exit 1 at the first failure. */
int wiv_cli_doctor(int argc, char **argv);

/* wivaudit export [SOURCE] DIR [--org ID] [--from D] [--to D] [-o opts]
 * [--json] (src/cli/cli_export.c): the JSON Lines view written to DIR. */
int wiv_cli_export(int argc, char **argv);

#endif
