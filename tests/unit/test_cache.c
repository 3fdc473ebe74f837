#include "wivaudit/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "check.h"
#include "wivaudit/cachedir.h"

/* Offsets of the on-disk format (see src/cache/cache.c), for damage tests that
 * must get past the checksums to reach a specific check. */
#define HDR_LEN 84
#define H_N_EVENTS 16
#define H_INDEX_CRC 20
#define H_DATA_LEN 24
#define H_INDEX_LEN 32
#define H_CRC 80

static char base[] = "/tmp/wivaudit-cache-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void sub_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", base, name);
}

static void entry_path(char *out, size_t len, const char *dir,
		       const char *entry_id)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];

	SHA256((const unsigned char *)entry_id, strlen(entry_id), h);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(out, len, "%s/objects/%.2s/%s.wvc", dir, hex, hex);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Entries of a directory but . and .. */
static int count_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 &&
		     strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000};

	nanosleep(&ts, NULL);
}

static struct wiv_cache *open_cache(const char *dir, uint64_t max)
{
	char err[256] = "";
	struct wiv_cache *c = wiv_cache_open(dir, 0, max, err, sizeof(err));

	if (!c)
		fprintf(stderr, "open %s: %s\n", dir, err);
	CHECK(c != NULL);
	return c;
}

/* The events of the round trip, covering every kind of id and the optional
 * fields. */
static char big_text[100000];

static struct wiv_event sample[] = {
    {.position = 0,
     .text = "{\"id\": \"ab\\u0000cd\"}\n",
     .id_kind = WIV_ID_STRING,
     .id = "ab\0cd",
     .id_len = 5,
     .has_created_at = true,
     .created_at = 1700000000.25,
     .event_type = "UserLogin",
     .digest = {1, 2, 3}},
    {.position = 1,
     .text = "{\"id\": 12345}\n",
     .id_kind = WIV_ID_NUMBER,
     .id = "12345",
     .id_len = 5,
     .digest = {4}},
    {.position = 3,
     .text = "{\"created_at\": 5}\n",
     .id_kind = WIV_ID_NONE,
     .has_created_at = true,
     .created_at = 5,
     .event_type = "",
     .digest = {5}},
    {.position = 4,
     .text = big_text,
     .id_kind = WIV_ID_STRING,
     .id = "big",
     .id_len = 3,
     .event_type = "Big",
     .digest = {6}},
    {.position = 5, .text = "\n", .id_kind = WIV_ID_NONE},
};
#define N_SAMPLE (sizeof(sample) / sizeof(sample[0]))

static void init_sample(void)
{
	memset(big_text, 'x', sizeof(big_text) - 2);
	big_text[sizeof(big_text) - 2] = '\n';
	for (size_t i = 0; i < N_SAMPLE; i++)
		sample[i].text_len = strlen(sample[i].text);
}

static int write_entry(struct wiv_cache *c, const char *id,
		       const struct wiv_event *evs, size_t n,
		       enum wiv_object_status status,
		       struct wiv_object_index **out)
{
	struct wiv_cache_writer *w = wiv_cache_writer_new(c, id, "key");
	int err;

	if (!w)
		return errno;
	for (size_t i = 0; i < n; i++) {
		err = wiv_cache_writer_add(w, &evs[i]);
		if (err) {
			wiv_cache_writer_abort(w);
			return err;
		}
	}
	return wiv_cache_writer_commit(w, status, out);
}

static void check_index(const struct wiv_object_index *idx,
			const struct wiv_event *evs, size_t n)
{
	CHECK_INT(idx->status, WIV_OBJECT_OK);
	CHECK_INT(idx->n_events, n);
	if (idx->n_events != n)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct wiv_cached_event *ce = &idx->events[i];
		const struct wiv_event *ev = &evs[i];

		CHECK_INT(ce->length, ev->text_len);
		CHECK_INT(ce->position, ev->position);
		CHECK_INT(ce->id_kind, ev->id_kind);
		CHECK_INT(ce->has_created_at, ev->has_created_at);
		if (ev->has_created_at)
			CHECK(ce->created_at == ev->created_at);
		if (ev->id_kind == WIV_ID_NONE) {
			CHECK_INT(ce->id_len, 0);
		} else {
			CHECK_INT(ce->id_len, ev->id_len);
			CHECK(memcmp(ce->id, ev->id, ev->id_len) == 0);
			CHECK_INT(ce->id[ce->id_len], '\0');
		}
		if (ev->event_type)
			CHECK_STR(ce->event_type, ev->event_type);
		else
			CHECK(ce->event_type == NULL);
		CHECK(memcmp(ce->digest, ev->digest, WIV_DIGEST_LEN) == 0);
	}
}

static void check_texts(struct wiv_cache *c, const char *id,
			const struct wiv_object_index *idx,
			const struct wiv_event *evs)
{
	for (size_t i = 0; i < idx->n_events; i++) {
		char *buf = malloc(idx->events[i].length + 1);

		CHECK_INT(
		    wiv_cache_read_event(c, id, "key", &idx->events[i], buf),
		    0);
		CHECK(memcmp(buf, evs[i].text, evs[i].text_len) == 0);
		free(buf);
	}
}

static void test_round_trip(void)
{
	struct wiv_object_index *idx = NULL;
	char dir[512], path[600];
	struct wiv_cache *c;
	struct stat st;

	sub_path(dir, sizeof(dir), "rt");
	c = open_cache(dir, 1 << 30);
	if (!c)
		return;
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
	CHECK_INT(wiv_cache_lookup(c, "e1", "key", &idx), ENOENT);

	CHECK_INT(write_entry(c, "e1", sample, N_SAMPLE, WIV_OBJECT_OK, &idx),
		  0);
	check_index(idx, sample, N_SAMPLE);
	check_texts(c, "e1", idx, sample);
	wiv_object_index_free(idx);

	entry_path(path, sizeof(path), dir, "e1");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	*strrchr(path, '/') = '\0';
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);

	/* Survives a reopen, and is read again through a fresh descriptor. */
	wiv_cache_close(c);
	c = open_cache(dir, 1 << 30);
	idx = NULL;
	CHECK_INT(wiv_cache_lookup(c, "e1", "key", &idx), 0);
	if (idx) {
		check_index(idx, sample, N_SAMPLE);
		check_texts(c, "e1", idx, sample);
	}
	wiv_object_index_free(idx);

	/* Rewriting an entry replaces it. */
	CHECK_INT(write_entry(c, "e1", sample + 1, 2, WIV_OBJECT_OK, &idx), 0);
	wiv_object_index_free(idx);
	idx = NULL;
	CHECK_INT(wiv_cache_lookup(c, "e1", "key", &idx), 0);
	if (idx) {
		check_index(idx, sample + 1, 2);
		check_texts(c, "e1", idx, sample + 1);
	}
	wiv_object_index_free(idx);
	wiv_cache_close(c);
}

static void test_bad_and_abort(void)
{
	struct wiv_object_index *idx = NULL;
	struct wiv_cache_writer *w;
	char dir[512], path[600];
	struct wiv_cache *c;

	sub_path(dir, sizeof(dir), "bad");
	c = open_cache(dir, 1 << 30);
	if (!c)
		return;
	CHECK_INT(write_entry(c, "b", sample, N_SAMPLE, WIV_OBJECT_BAD, &idx),
		  0);
	CHECK(idx && idx->status == WIV_OBJECT_BAD && idx->n_events == 0);
	wiv_object_index_free(idx);
	idx = NULL;
	CHECK_INT(wiv_cache_lookup(c, "b", "key", &idx), 0);
	CHECK(idx && idx->status == WIV_OBJECT_BAD && idx->n_events == 0);
	wiv_object_index_free(idx);

	w = wiv_cache_writer_new(c, "a", "key");
	CHECK(w != NULL);
	CHECK_INT(wiv_cache_writer_add(w, &sample[0]), 0);
	CHECK_INT(wiv_cache_writer_add(w, &sample[3]), 0);
	wiv_cache_writer_abort(w);
	wiv_cache_writer_abort(NULL);
	CHECK_INT(wiv_cache_lookup(c, "a", "key", &idx), ENOENT);
	entry_path(path, sizeof(path), dir, "a");
	*strrchr(path, '/') = '\0';
	CHECK_INT(count_files(path), 0);
	wiv_cache_close(c);
	wiv_cache_close(NULL);
}

static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char b = 0;

	CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
	b ^= 0x10;
	CHECK(pwrite(fd, &b, 1, off) == 1);
	close(fd);
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Moves the first record's offset past the data, with valid checksums, so
 * that only the bounds check can catch it. */
static void point_past_data(const char *path)
{
	int fd = open(path, O_RDWR);
	unsigned char h[HDR_LEN], *index;
	uint64_t data_len, index_len;

	CHECK(fd >= 0 && pread(fd, h, HDR_LEN, 0) == HDR_LEN);
	data_len = le64(h + H_DATA_LEN);
	index_len = le64(h + H_INDEX_LEN);
	index = malloc(index_len);
	CHECK(pread(fd, index, index_len, HDR_LEN + data_len) ==
	      (ssize_t)index_len);
	put_le32(index, (uint32_t)data_len);
	put_le32(h + H_INDEX_CRC, (uint32_t)crc32(0, index, index_len));
	put_le32(h + H_CRC, (uint32_t)crc32(0, h, H_CRC));
	CHECK(pwrite(fd, index, index_len, HDR_LEN + data_len) ==
	      (ssize_t)index_len);
	CHECK(pwrite(fd, h, HDR_LEN, 0) == HDR_LEN);
	free(index);
	close(fd);
}

enum damage {
	TRUNC_ONE,
	TRUNC_HEADER,
	FLIP_HEADER,
	FLIP_INDEX,
	PAST_DATA,
	EXTRA_BYTE,
	FLIP_TEXT,
	N_DAMAGE,
};

static void test_damage(void)
{
	char dir[512], path[600];
	struct wiv_cache *c;

	sub_path(dir, sizeof(dir), "damage");
	c = open_cache(dir, 1 << 30);
	if (!c)
		return;
	entry_path(path, sizeof(path), dir, "d");
	for (int d = 0; d < N_DAMAGE; d++) {
		struct wiv_object_index *idx = NULL;
		struct stat st;
		int fd;

		CHECK_INT(
		    write_entry(c, "d", sample, N_SAMPLE, WIV_OBJECT_OK, &idx),
		    0);
		CHECK(stat(path, &st) == 0);
		switch (d) {
		case TRUNC_ONE:
			CHECK(truncate(path, st.st_size - 1) == 0);
			break;
		case TRUNC_HEADER:
			CHECK(truncate(path, 10) == 0);
			break;
		case FLIP_HEADER:
			flip(path, H_N_EVENTS);
			break;
		case FLIP_INDEX:
			flip(path, st.st_size - 3);
			break;
		case PAST_DATA:
			point_past_data(path);
			break;
		case EXTRA_BYTE:
			fd = open(path, O_WRONLY | O_APPEND);
			CHECK(fd >= 0 && write(fd, "", 1) == 1);
			close(fd);
			break;
		case FLIP_TEXT:
			flip(path, HDR_LEN + idx->events[1].offset + 2);
			break;
		}
		if (d == FLIP_TEXT) {
			char buf[64];
			struct wiv_object_index *again = NULL;

			CHECK_INT(wiv_cache_lookup(c, "d", "key", &again), 0);
			wiv_object_index_free(again);
			CHECK_INT(wiv_cache_read_event(c, "d", "key",
						       &idx->events[0], buf),
				  0);
			CHECK_INT(wiv_cache_read_event(c, "d", "key",
						       &idx->events[1], buf),
				  EBADMSG);
			CHECK(!exists(path));
			CHECK_INT(wiv_cache_read_event(c, "d", "key",
						       &idx->events[0], buf),
				  ENOENT);
		} else {
			struct wiv_object_index *bad = NULL;

			CHECK_INT(wiv_cache_lookup(c, "d", "key", &bad),
				  EBADMSG);
			CHECK(bad == NULL);
			CHECK(!exists(path));
			CHECK_INT(wiv_cache_lookup(c, "d", "key", &bad),
				  ENOENT);
		}
		wiv_object_index_free(idx);
	}
	wiv_cache_close(c);
}

static void make_entry_events(struct wiv_event *ev, char *text, size_t len,
			      int k)
{
	memset(text, 'a' + k % 26, len - 1);
	text[len - 1] = '\n';
	*ev = (struct wiv_event){.text = text,
				 .text_len = len,
				 .id_kind = WIV_ID_NUMBER,
				 .id = "7",
				 .id_len = 1};
}

static void test_eviction(void)
{
	struct wiv_object_index *idx = NULL, *kept[12] = {0};
	char dir[512], path[600], id[16], text[1000];
	struct wiv_event ev;
	struct wiv_cache *c;
	struct stat st;
	uint64_t size;

	sub_path(dir, sizeof(dir), "evict");
	c = open_cache(dir, 1 << 30);
	if (!c)
		return;
	make_entry_events(&ev, text, sizeof(text), 0);
	CHECK_INT(write_entry(c, "e0", &ev, 1, WIV_OBJECT_OK, &kept[0]), 0);
	entry_path(path, sizeof(path), dir, "e0");
	CHECK(stat(path, &st) == 0);
	size = (uint64_t)st.st_size;
	wiv_cache_close(c);

	/* Room for 10.5 entries: writing the 11th evicts ahead of its
	 * writes, the least recently used entry only (e0 and e1 were
	 * used), so that the temp file fits beside the entries. */
	c = open_cache(dir, size * 21 / 2);
	if (!c)
		return;
	for (int k = 1; k < 10; k++) {
		sleep_ms(20);
		snprintf(id, sizeof(id), "e%d", k);
		make_entry_events(&ev, text, sizeof(text), k);
		CHECK_INT(write_entry(c, id, &ev, 1, WIV_OBJECT_OK, &kept[k]),
			  0);
	}
	sleep_ms(20);
	CHECK_INT(wiv_cache_lookup(c, "e0", "key", &idx), 0);
	wiv_object_index_free(idx);
	CHECK_INT(wiv_cache_lookup(c, "e1", "key", &idx), 0);
	wiv_object_index_free(idx);
	sleep_ms(20);
	make_entry_events(&ev, text, sizeof(text), 10);
	CHECK_INT(write_entry(c, "e10", &ev, 1, WIV_OBJECT_OK, &kept[10]), 0);
	for (int k = 0; k <= 10; k++) {
		bool gone = k == 2;
		char buf[sizeof(text)];

		snprintf(id, sizeof(id), "e%d", k);
		entry_path(path, sizeof(path), dir, id);
		CHECK_INT(exists(path), !gone);
		CHECK_INT(wiv_cache_read_event(c, id, "key",
					       &kept[k]->events[0], buf),
			  gone ? ENOENT : 0);
	}

	/* Opening with a lower bound evicts at once; an entry larger than
	 * the bound is not kept, but served from memory. */
	wiv_cache_close(c);
	c = open_cache(dir, size / 2);
	if (!c)
		return;
	entry_path(path, sizeof(path), dir, "e10");
	*strrchr(path, '/') = '\0';
	CHECK_INT(count_files(path), 0);
	CHECK_INT(write_entry(c, "e11", &ev, 1, WIV_OBJECT_OK, &kept[11]), 0);
	for (int k = 0; k <= 11; k++) {
		snprintf(id, sizeof(id), "e%d", k);
		entry_path(path, sizeof(path), dir, id);
		CHECK_INT(exists(path), 0);
	}
	{
		char buf[sizeof(text)];
		struct wiv_cache_counters n;

		CHECK_INT(wiv_cache_read_event(c, "e11", "key",
					       &kept[11]->events[0], buf),
			  0);
		CHECK(memcmp(buf, text, kept[11]->events[0].length) == 0);
		CHECK_INT(wiv_cache_lookup(c, "e11", "key", &idx), 0);
		wiv_object_index_free(idx);
		wiv_cache_counters(c, &n);
		CHECK_INT(n.uncached, 1);
	}
	for (int k = 0; k < 12; k++)
		wiv_object_index_free(kept[k]);
	wiv_cache_close(c);
}

static void test_refusals(void)
{
	char dir[512], path[600], err[256];
	struct wiv_cache *c;
	struct stat st;
	struct timespec old[2] = {{.tv_sec = time(NULL) - 3600},
				  {.tv_sec = time(NULL) - 3600}};
	int fd;

	/* Ours but open to others: made 0700. */
	sub_path(dir, sizeof(dir), "open");
	CHECK(mkdir(dir, 0700) == 0 && chmod(dir, 0777) == 0);
	c = open_cache(dir, 1 << 20);
	CHECK(c != NULL);
	wiv_cache_close(c);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 0700);

	CHECK(chmod(dir, 0755) == 0);
	if (geteuid() == 0) {
		CHECK(chown(dir, 65534, 65534) == 0);
		err[0] = '\0';
		c = wiv_cache_open(dir, 0, 1 << 20, err, sizeof(err));
		CHECK(c == NULL);
		CHECK(strstr(err, "owned") != NULL);
		wiv_cache_close(c);
		CHECK(chown(dir, 0, 0) == 0);
	}

	sub_path(path, sizeof(path), "plainfile");
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	err[0] = '\0';
	c = wiv_cache_open(path, 0, 1 << 20, err, sizeof(err));
	CHECK(c == NULL && err[0] != '\0');
	wiv_cache_close(c);

	/* Temp files no writer holds a lock on are removed, however new. */
	c = open_cache(dir, 1 << 20);
	wiv_cache_close(c);
	snprintf(path, sizeof(path), "%s/objects/00", dir);
	CHECK(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/objects/00/.tmp.1.1", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && futimens(fd, old) == 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/objects/00/.tmp.1.2", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	c = open_cache(dir, 1 << 20);
	CHECK(!exists(path));
	snprintf(path, sizeof(path), "%s/objects/00/.tmp.1.1", dir);
	CHECK(!exists(path));
	wiv_cache_close(c);
}

/* Threads look up, write on miss and read random entries of a cache small
 * enough to evict all along; every successful read must be right and no
 * entry may ever look damaged. */
#define N_THREADS 8
#define N_ENTRIES 24
#define N_ROUNDS 400
#define EV_PER_ENTRY 6

struct worker {
	struct wiv_cache *c;
	unsigned seed;
	int failures;
	int reads;
};

static size_t conc_text(int k, int i, char *buf)
{
	size_t len = 200 + (size_t)(k * 37 + i * 11) % 300;

	memset(buf, 'A' + (k + i) % 26, len - 1);
	snprintf(buf, len, "{\"k\": %d, \"i\": %d}", k, i);
	buf[strlen(buf)] = ' ';
	buf[len - 1] = '\n';
	return len;
}

static void *work(void *arg)
{
	struct worker *wk = arg;
	char text[EV_PER_ENTRY][600], buf[600], id[32];

	for (int r = 0; r < N_ROUNDS; r++) {
		int k = rand_r(&wk->seed) % N_ENTRIES, err;
		struct wiv_object_index *idx = NULL;

		snprintf(id, sizeof(id), "conc-%d", k);
		err = wiv_cache_lookup(wk->c, id, "key", &idx);
		if (err == ENOENT) {
			struct wiv_event evs[EV_PER_ENTRY];
			for (int i = 0; i < EV_PER_ENTRY; i++) {
				evs[i] = (struct wiv_event){
				    .position = (size_t)i,
				    .id_kind = WIV_ID_NUMBER,
				    .id = id + 5,
				    .id_len = strlen(id + 5),
				};
				evs[i].text = text[i];
				evs[i].text_len = conc_text(k, i, text[i]);
			}
			err = write_entry(wk->c, id, evs, EV_PER_ENTRY,
					  WIV_OBJECT_OK, &idx);
		}
		if (err || idx->n_events != EV_PER_ENTRY) {
			wk->failures++;
			wiv_object_index_free(idx);
			continue;
		}
		for (int i = 0; i < EV_PER_ENTRY; i++) {
			size_t len = conc_text(k, i, text[i]);

			err = wiv_cache_read_event(wk->c, id, "key",
						   &idx->events[i], buf);
			if (err == ENOENT)
				break;
			wk->reads++;
			if (err || idx->events[i].length != len ||
			    memcmp(buf, text[i], len) != 0)
				wk->failures++;
		}
		wiv_object_index_free(idx);
	}
	return NULL;
}

static void test_concurrency(void)
{
	struct worker wk[N_THREADS];
	pthread_t th[N_THREADS];
	char dir[512];
	struct wiv_cache *c;
	int reads = 0;

	sub_path(dir, sizeof(dir), "conc");
	/* About four of the entries fit. */
	c = open_cache(dir, 4 * EV_PER_ENTRY * 400);
	if (!c)
		return;
	for (int t = 0; t < N_THREADS; t++) {
		wk[t] = (struct worker){.c = c, .seed = (unsigned)t + 1};
		CHECK(pthread_create(&th[t], NULL, work, &wk[t]) == 0);
	}
	for (int t = 0; t < N_THREADS; t++) {
		pthread_join(th[t], NULL);
		CHECK_INT(wk[t].failures, 0);
		reads += wk[t].reads;
	}
	CHECK(reads > N_THREADS * N_ROUNDS);
	wiv_cache_close(c);
}

/* Hit and miss counters, and what inspect reads back from an entry. */
static void test_counters_and_inspect(void)
{
	struct wiv_cache_counters n;
	struct wiv_cache_entry_info info;
	struct wiv_object_index *idx = NULL;
	const char *why = NULL;
	char dir[512], path[600];
	struct wiv_cache *c;
	int fd;

	sub_path(dir, sizeof(dir), "counters");
	c = open_cache(dir, 1 << 30);
	if (!c)
		return;
	CHECK_INT(wiv_cache_lookup(c, "k", "key", &idx), ENOENT);
	CHECK_INT(write_entry(c, "k", sample, N_SAMPLE, WIV_OBJECT_OK, &idx),
		  0);
	wiv_object_index_free(idx);
	CHECK_INT(wiv_cache_lookup(c, "k", "key", &idx), 0);
	wiv_object_index_free(idx);
	wiv_cache_note_download(c, 123);
	wiv_cache_counters(c, &n);
	CHECK_INT(n.hits, 1);
	CHECK_INT(n.misses, 1);
	CHECK_INT(n.downloads, 1);
	CHECK_INT(n.download_bytes, 123);

	entry_path(path, sizeof(path), dir, "k");
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_INT(wiv_cache_inspect(fd, strrchr(path, '/') + 1, true, &info,
				    &why),
		  0);
	CHECK_STR(info.key, "key");
	CHECK_INT(info.n_events, N_SAMPLE);
	free(info.key);
	/* Named after another id: refused, key still reported. */
	CHECK_INT(wiv_cache_inspect(fd, "00", false, &info, &why), EBADMSG);
	CHECK_STR(info.key, "key");
	free(info.key);
	close(fd);
	wiv_cache_close(c);
}

/* wiv_cachedir_open: parents, modes, symlinks others could have placed. */
static void test_cachedir_open(void)
{
	char dir[512], path[600], link[700], err[512];
	struct stat st;
	int fd;

	/* Parents only with WIV_CACHEDIR_PARENTS, each 0700. */
	sub_path(dir, sizeof(dir), "fresh/.cache/wivaudit");
	CHECK_INT(wiv_cachedir_open(dir, WIV_CACHEDIR_CREATE, &fd, err,
				    sizeof(err)),
		  ENOENT);
	CHECK_INT(wiv_cachedir_open(dir,
				    WIV_CACHEDIR_PARENTS |
					WIV_CACHEDIR_PRIVATE,
				    &fd, err, sizeof(err)),
		  0);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0700);
	close(fd);
	sub_path(path, sizeof(path), "fresh/.cache");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0700);

	/* A symlink of ours in a directory of ours is followed. */
	sub_path(link, sizeof(link), "fresh/link");
	CHECK(symlink(dir, link) == 0);
	CHECK_INT(wiv_cachedir_open(link, WIV_CACHEDIR_PRIVATE, &fd, err,
				    sizeof(err)),
		  0);
	close(fd);

	/* A plain file is no directory. */
	sub_path(path, sizeof(path), "fresh/file");
	close(open(path, O_CREAT | O_WRONLY, 0600));
	CHECK(wiv_cachedir_open(path, 0, &fd, err, sizeof(err)) != 0 &&
	      fd == -1);

	if (geteuid() != 0)
		return;
	/* As root: a symlink in another user's directory is not followed,
	 * even to create what it points to. */
	sub_path(path, sizeof(path), "home-u");
	CHECK(mkdir(path, 0755) == 0 && chown(path, 65533, 65533) == 0);
	snprintf(link, sizeof(link), "%s/cache", path);
	sub_path(dir, sizeof(dir), "rootonly");
	CHECK(mkdir(dir, 0700) == 0);
	snprintf(path, sizeof(path), "%s/new", dir);
	CHECK(symlink(path, link) == 0 && lchown(link, 65533, 65533) == 0);
	err[0] = '\0';
	CHECK_INT(wiv_cachedir_open(link,
				    WIV_CACHEDIR_CREATE | WIV_CACHEDIR_PRIVATE,
				    &fd, err, sizeof(err)),
		  ELOOP);
	CHECK(strstr(err, "symlink") != NULL);
	CHECK(!exists(path));
}

int main(void)
{
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	init_sample();
	test_round_trip();
	test_bad_and_abort();
	test_damage();
	test_eviction();
	test_refusals();
	test_cachedir_open();
	test_concurrency();
	test_counters_and_inspect();
	rm_rf(base);
	return CHECK_DONE();
}
