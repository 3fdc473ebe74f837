/* credential_process: an external command that prints credentials. */
#include "wivaudit/credsrc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

extern char **environ;

#define MAX_OUTPUT (64 * 1024)
#define TIMEOUT_MS (60 * 1000)

/* Splits cmd into words the way Python's shlex.split does (POSIX rules:
 * blanks separate, '...' is literal, "..." honours \" and \\, a backslash
 * elsewhere quotes the next byte), which is what the AWS CLI runs: no shell
 * ever sees the command. Returns a NULL-terminated vector (free it with
 * words_free), or NULL with *rc set to EINVAL (no word, an unbalanced quote
 * or a trailing backslash) or ENOMEM. */
static char **split(const char *cmd, int *rc)
{
	size_t n = strlen(cmd);
	char *buf = malloc(n + 1), *o = buf;
	char **argv = calloc(n / 2 + 2, sizeof(*argv));
	size_t argc = 0;
	bool in_word = false;
	char quote = 0;

	*rc = ENOMEM;
	if (!buf || !argv)
		goto fail;
	*rc = EINVAL;
	for (const char *c = cmd; *c; c++) {
		if (quote == '\'') {
			if (*c == '\'')
				quote = 0;
			else
				*o++ = *c;
		} else if (quote == '"') {
			if (*c == '"')
				quote = 0;
			else if (*c == '\\' && (c[1] == '"' || c[1] == '\\'))
				*o++ = *++c;
			else
				*o++ = *c;
		} else if (*c == ' ' || *c == '\t' || *c == '\n' ||
			   *c == '\r') {
			if (in_word) {
				*o++ = '\0';
				in_word = false;
			}
		} else {
			if (!in_word) {
				argv[argc++] = o;
				in_word = true;
			}
			if (*c == '\'' || *c == '"') {
				quote = *c;
			} else if (*c == '\\') {
				if (!c[1])
					goto fail;
				*o++ = *++c;
			} else {
				*o++ = *c;
			}
		}
	}
	if (quote || argc == 0)
		goto fail;
	*o = '\0';
	argv[argc] = NULL;
	return argv;
fail:
	free(buf);
	free(argv);
	return NULL;
}

/* The words share one buffer, which starts at the first word. */
static void words_free(char **argv)
{
	free(argv[0]);
	free(argv);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Reads the child's stdout until EOF, MAX_OUTPUT or the deadline. Returns
 * 0, EMSGSIZE, ETIMEDOUT or a read errno. */
static int read_all(int fd, char *buf, size_t *len)
{
	long long deadline = now_ms() + TIMEOUT_MS;

	*len = 0;
	for (;;) {
		long long left = deadline - now_ms();
		struct pollfd pfd = {fd, POLLIN, 0};
		if (left <= 0)
			return ETIMEDOUT;
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno;
		if (r == 0)
			return ETIMEDOUT;
		ssize_t n = read(fd, buf + *len, MAX_OUTPUT - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
		if (*len == MAX_OUTPUT)
			return EMSGSIZE;
	}
}

int wiv_credsrc_process(const char *command, const char *profile,
			struct wiv_creds *out, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	char **argv, *buf = NULL;
	int fds[2] = {-1, -1}, rc, status;
	size_t len = 0;
	pid_t pid;

	/* The command line itself may carry secrets: only the profile is
	 * named in messages. */
	memset(out, 0, sizeof(*out));
	argv = split(command, &rc);
	if (!argv) {
		snprintf(err, errlen,
			 "credential_process of profile '%s' is %s", profile,
			 rc == EINVAL ? "empty or has an unbalanced quote"
				      : "too long");
		return rc;
	}
	if (!(buf = malloc(MAX_OUTPUT + 1)) || pipe2(fds, O_CLOEXEC) != 0) {
		rc = buf ? errno : ENOMEM;
		snprintf(err, errlen, "cannot run credential_process: %s",
			 strerror(rc));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rc) {
		snprintf(err, errlen,
			 "cannot run credential_process of profile '%s' "
			 "(%s): %s",
			 profile, argv[0], strerror(rc));
		rc = EIO;
		goto out;
	}
	rc = read_all(fds[0], buf, &len);
	if (rc)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc) {
		snprintf(err, errlen,
			 "credential_process of profile '%s' (%s): %s", profile,
			 argv[0],
			 rc == ETIMEDOUT  ? "no answer within a minute"
			 : rc == EMSGSIZE ? "answer too long"
					  : strerror(rc));
		rc = EIO;
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen,
			 "credential_process of profile '%s' (%s) %s %d",
			 profile, argv[0],
			 WIFEXITED(status) ? "exited with status"
					   : "was killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status)
					   : WTERMSIG(status));
		rc = EIO;
		goto out;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *version = json_object_get(doc, "Version");
	char why[128] = "is not a JSON object";
	if (!json_is_object(doc)) {
		rc = EINVAL;
	} else if (!json_is_integer(version) ||
		   json_integer_value(version) != 1) {
		snprintf(why, sizeof(why), "has no \"Version\": 1");
		rc = EINVAL;
	} else {
		rc = wiv_credsrc_from_json(doc, "SessionToken", out, why,
					   sizeof(why));
	}
	json_decref(doc);
	if (rc) {
		snprintf(err, errlen,
			 "the answer of credential_process of profile '%s' %s",
			 profile, why);
		goto out;
	}
	snprintf(out->source, sizeof(out->source),
		 "credential_process of profile %s", profile);
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (buf) {
		OPENSSL_cleanse(buf, MAX_OUTPUT + 1);
		free(buf);
	}
	words_free(argv);
	return rc;
}
