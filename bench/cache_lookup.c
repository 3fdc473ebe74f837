/* The cache's hit path in isolation: wiv_cache_lookup (open, header, index,
 * recency) and wiv_cache_read_event on entries shaped like a corpus's.
 *
 *	cache_lookup DIR N_ENTRIES EVENTS_PER_ENTRY EVENT_BYTES ROUNDS
 *
 * Prints microseconds per lookup and per event read. DIR is created and
 * left behind (remove it). Built by bench/cache_overhead.sh. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wivaudit/cache.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	char err[256], id[64], key[128];
	struct wiv_cache *c;
	double t0, lookup_us, read_us;
	unsigned long n, per, bytes, rounds, reads = 0;
	char *text, *buf;

	if (argc != 6) {
		fprintf(stderr,
			"usage: %s DIR N_ENTRIES EVENTS_PER_ENTRY "
			"EVENT_BYTES ROUNDS\n",
			argv[0]);
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	per = strtoul(argv[3], NULL, 10);
	bytes = strtoul(argv[4], NULL, 10);
	rounds = strtoul(argv[5], NULL, 10);
	c = wiv_cache_open(argv[1], 1ULL << 40, err, sizeof(err));
	if (!c || !n || !per || !bytes || !rounds) {
		fprintf(stderr, "cache_lookup: %s\n",
			c ? "bad arguments" : err);
		return 1;
	}
	text = malloc(bytes);
	buf = malloc(bytes);
	memset(text, 'x', bytes);
	text[bytes - 1] = '\n';
	for (unsigned long i = 0; i < n; i++) {
		struct wiv_cache_writer *w;
		struct wiv_object_index *idx;

		snprintf(id, sizeof(id), "bench|%lu", i);
		snprintf(key, sizeof(key), "org/user-audit-logs-%lu.json.gz",
			 i);
		w = wiv_cache_writer_new(c, id, key);
		for (unsigned long k = 0; w && k < per; k++) {
			char evid[32];
			struct wiv_event ev = {
			    .position = k,
			    .text = text,
			    .text_len = bytes,
			    .id_kind = WIV_ID_STRING,
			    .id = evid,
			    .id_len = (size_t)snprintf(evid, sizeof(evid),
						       "%lu-%lu", i, k),
			    .event_type = "UserLoggedIn",
			};
			if (wiv_cache_writer_add(w, &ev) != 0)
				return 1;
		}
		if (!w || wiv_cache_writer_commit(w, WIV_OBJECT_OK, &idx) != 0)
			return 1;
		wiv_object_index_free(idx);
	}

	t0 = now_us();
	for (unsigned long r = 0; r < rounds; r++)
		for (unsigned long i = 0; i < n; i++) {
			struct wiv_object_index *idx;

			snprintf(id, sizeof(id), "bench|%lu", i);
			if (wiv_cache_lookup(c, id, "bench", &idx) != 0)
				return 1;
			wiv_object_index_free(idx);
		}
	lookup_us = (now_us() - t0) / (double)(n * rounds);

	t0 = now_us();
	for (unsigned long r = 0; r < rounds; r++)
		for (unsigned long i = 0; i < n; i++) {
			struct wiv_object_index *idx;

			snprintf(id, sizeof(id), "bench|%lu", i);
			if (wiv_cache_lookup(c, id, "bench", &idx) != 0)
				return 1;
			for (size_t k = 0; k < idx->n_events; k++, reads++)
				if (wiv_cache_read_event(c, id, "bench",
							 &idx->events[k],
							 buf) != 0)
					return 1;
			wiv_object_index_free(idx);
		}
	read_us = ((now_us() - t0) - lookup_us * (double)(n * rounds)) /
		  (double)reads;
	printf("lookup_us %.2f\nread_event_us %.2f\n", lookup_us, read_us);
	free(text);
	free(buf);
	wiv_cache_close(c);
	return 0;
}
