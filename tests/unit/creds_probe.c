/* Test driver for the credential chain and the S3 client, run by
 * test_creds.py against fake endpoints on 127.0.0.1.
 *
 *   creds_probe creds [-p PROFILE] [-n ROUNDS] [-i MS] [-t THREADS]
 *     Resolves credentials, then takes them ROUNDS times, MS apart, from
 *     THREADS threads at once. Prints per take:
 *       round=R thread=T ms=M source=... key=ID secret=SHA256 token=SHA256
 *     (hashes, never the secrets themselves; token=- when there is none).
 *   creds_probe list -e ENDPOINT -b BUCKET [-r REGION] [-c CAFILE]
 *     Lists the bucket and prints one key per line.
 *
 * Debug logging is on when WIV_DEBUG is set. Exit status: 0, 1 on a
 * failure (message on stderr), 2 on bad usage. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wivaudit/creds.h"
#include "wivaudit/log.h"
#include "wivaudit/sigv4.h"
#include "wivaudit/source.h"

struct take {
	struct wiv_creds_provider *p;
	int round, thread;
	pthread_barrier_t *start;
	char line[512];
	int rc;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void *take_one(void *arg)
{
	struct take *t = arg;
	struct wiv_creds c;
	char secret[65], token[65] = "-";

	pthread_barrier_wait(t->start);
	long long t0 = now_ms();
	t->rc = wiv_creds_provider_get(t->p, &c);
	long long ms = now_ms() - t0;
	if (t->rc) {
		snprintf(t->line, sizeof(t->line),
			 "round=%d thread=%d ms=%lld error=%s", t->round,
			 t->thread, ms, strerror(t->rc));
		return NULL;
	}
	wiv_sigv4_sha256_hex(c.secret_access_key, strlen(c.secret_access_key),
			     secret);
	if (c.session_token)
		wiv_sigv4_sha256_hex(c.session_token, strlen(c.session_token),
				     token);
	snprintf(t->line, sizeof(t->line),
		 "round=%d thread=%d ms=%lld source=%s key=%s secret=%s "
		 "token=%s expires=%lld",
		 t->round, t->thread, ms, c.source, c.access_key_id, secret,
		 token, (long long)c.expiration);
	wiv_creds_clear(&c);
	return NULL;
}

static int run_creds(const char *profile, int rounds, int interval_ms,
		     int threads)
{
	struct wiv_creds_provider *p;
	char err[1024];
	int rc = wiv_creds_provider_new(profile, &p, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "creds_probe: %s (%s)\n", err, strerror(rc));
		return 1;
	}
	struct take *t = calloc((size_t)threads, sizeof(*t));
	pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
	pthread_barrier_t start;
	int failed = 0;

	if (!t || !tid) {
		wiv_creds_provider_free(p);
		return 1;
	}
	for (int r = 0; r < rounds; r++) {
		if (r)
			usleep((useconds_t)interval_ms * 1000);
		pthread_barrier_init(&start, NULL, (unsigned)threads);
		for (int i = 0; i < threads; i++) {
			t[i] = (struct take){p, r, i, &start, "", 0};
			pthread_create(&tid[i], NULL, take_one, &t[i]);
		}
		for (int i = 0; i < threads; i++) {
			pthread_join(tid[i], NULL);
			printf("%s\n", t[i].line);
			failed |= t[i].rc != 0;
		}
		pthread_barrier_destroy(&start);
		fflush(stdout);
	}
	free(t);
	free(tid);
	wiv_creds_provider_free(p);
	return failed;
}

static int print_key(void *arg, const struct wiv_object_info *o)
{
	(void)arg;
	printf("%s\n", o->key);
	return 0;
}

static int run_list(const char *endpoint, const char *bucket,
		    const char *region, const char *cafile)
{
	struct wiv_s3_config cfg = {
	    .bucket = bucket,
	    .endpoint = endpoint,
	    .region = region,
	    .cafile = cafile,
	    .retries = 1,
	    .timeout_s = 5,
	};
	char err[1024];
	struct wiv_source *s = wiv_source_s3_new(&cfg, err, sizeof(err));

	if (!s) {
		fprintf(stderr, "creds_probe: %s\n", err);
		return 1;
	}
	int rc = wiv_source_list(s, "", NULL, NULL, print_key, NULL, NULL);
	wiv_source_free(s);
	if (rc)
		fprintf(stderr, "creds_probe: list failed: %s\n", strerror(rc));
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *profile = NULL, *endpoint = NULL, *bucket = NULL;
	const char *region = NULL, *cafile = NULL;
	int rounds = 1, interval_ms = 0, threads = 1, opt;

	if (argc < 2)
		goto usage;
	wiv_log_set_debug(getenv("WIV_DEBUG") != NULL);
	optind = 2;
	while ((opt = getopt(argc, argv, "p:n:i:t:e:b:r:c:")) != -1) {
		switch (opt) {
		case 'p':
			profile = optarg;
			break;
		case 'n':
			rounds = atoi(optarg);
			break;
		case 'i':
			interval_ms = atoi(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'e':
			endpoint = optarg;
			break;
		case 'b':
			bucket = optarg;
			break;
		case 'r':
			region = optarg;
			break;
		case 'c':
			cafile = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (strcmp(argv[1], "creds") == 0 && rounds > 0 && threads > 0)
		return run_creds(profile, rounds, interval_ms, threads);
	if (strcmp(argv[1], "list") == 0 && endpoint && bucket)
		return run_list(endpoint, bucket, region, cafile);
usage:
	fprintf(stderr, "usage: creds_probe creds [-p PROFILE] [-n ROUNDS] "
			"[-i MS] [-t THREADS]\n"
			"       creds_probe list -e ENDPOINT -b BUCKET "
			"[-r REGION] [-c CAFILE]\n");
	return 2;
}
