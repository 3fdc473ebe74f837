/* libFuzzer harness for the AWS shared credentials and config files
 * (wiv_awsconfig_profile_load, the region lookup built on it) and for AWS
 * timestamps (wiv_creds_parse_time). The input is
 *
 *   profile name '\n' credentials file [ '\0' config file ]
 *
 * and the files live in memfds. Only parsers are called: the credential
 * chain itself would run a fuzzed credential_process or reach the network.
 * Properties beyond "no crash": every value handed out is non-empty,
 * trimmed and on one line, the region lookup agrees with the profile, and a
 * parsed timestamp survives formatting and parsing again. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wivaudit/awsconfig.h"
#include "wivaudit/creds.h"

static int creds_fd = -1, config_fd = -1;

static int memfd(const char *name, const char *env)
{
	char path[64];
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	setenv(env, path, 1);
	return fd;
}

static void fill(int fd, const void *data, size_t len)
{
	if (ftruncate(fd, 0) != 0 ||
	    (len && pwrite(fd, data, len, 0) != (ssize_t)len))
		abort();
}

static void check_value(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || isspace((unsigned char)s[0]) ||
	    isspace((unsigned char)s[n - 1]) || strchr(s, '\n'))
		abort();
}

static void check_time(const char *s)
{
	time_t t, again;
	struct tm tm;
	char buf[64];

	if (wiv_creds_parse_time(s, &t) != 0)
		return;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return; /* beyond what struct tm holds: nothing to compare */
	if (wiv_creds_parse_time(buf, &again) != 0 || again != t)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	creds_fd = memfd("credentials", "AWS_SHARED_CREDENTIALS_FILE");
	config_fd = memfd("config", "AWS_CONFIG_FILE");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *nl = memchr(p, '\n', size);
	char *profile = strndup(p, nl ? (size_t)(nl - p) : size);
	const char *creds = nl ? nl + 1 : end;
	const char *nul = memchr(creds, '\0', (size_t)(end - creds));
	const char *config = nul ? nul + 1 : end;

	if (!profile)
		return 0;
	fill(creds_fd, creds, (size_t)((nul ? nul : end) - creds));
	fill(config_fd, config, (size_t)(end - config));

	struct wiv_awsconfig_profile prof;
	char err[256];
	if (wiv_awsconfig_profile_load(profile, &prof, err, sizeof(err)) != 0)
		abort(); /* both files exist and are readable */
	if (strcmp(prof.name, wiv_awsconfig_profile_name(profile)) != 0)
		abort();
	for (int k = 0; k < WIV_AWSCONFIG_NKEYS; k++) {
		const char *v = wiv_awsconfig_get(&prof, k);
		if (v) {
			check_value(v);
			check_time(v);
		}
		if (!v && prof.in_credentials[k])
			abort();
	}

	char region[16];
	const char *want = wiv_awsconfig_get(&prof, WIV_AWSCONFIG_REGION);
	int rc = wiv_creds_region(profile, region, sizeof(region));
	if (!want ? rc != ENOENT
		  : strlen(want) < sizeof(region)
			? rc != 0 || strcmp(region, want) != 0
			: rc != ENAMETOOLONG)
		abort();
	wiv_awsconfig_profile_clear(&prof);

	check_time(profile);
	free(profile);
	return 0;
}
