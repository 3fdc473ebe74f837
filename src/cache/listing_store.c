/* Persisted listings. A file is text, one object per line, so that it can be
 * inspected by hand:
 *
 *	wivaudit-listing 1 <listed_at> <count>
 *	<etag> <size> <class> <key>   (etag, storage class and key
 *	                               percent-encoded: no space, tab or
 *	                               newline; "-" for an empty etag/class)
 *	...
 *	crc32 <8 hex digits>   (of every byte before this line)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "wivaudit/atomic_file.h"
#include "wivaudit/cachedir.h"
#include "wivaudit/listing_store.h"
#include "wivaudit/log.h"

#define HEADER_WORD "wivaudit-listing"
/* 2 added sizes, 3 storage classes; an older file is simply listed
 * again. */
#define FORMAT_VERSION 3
/* 64 hex digits + ".lst" + NUL */
#define LISTING_NAME_LEN (2 * SHA256_DIGEST_LENGTH + 5)

/* The file name of a listing in listings/. */
static void listing_name(const char *listing_id, char out[LISTING_NAME_LEN])
{
	unsigned char hash[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)listing_id, strlen(listing_id), hash);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		sprintf(out + 2 * i, "%02x", hash[i]);
	strcpy(out + 2 * SHA256_DIGEST_LENGTH, ".lst");
}

/* Opens listings/ of the cache directory cache_fd. A symlink there is
 * named in the log, once: listings then are not kept, not followed. */
static int open_listings(int cache_fd, bool create, int *fd)
{
	static atomic_bool link_logged;
	int err = wiv_cachedir_sub(cache_fd, "listings", create, fd);

	if (err == ELOOP && !atomic_exchange(&link_logged, true))
		wiv_err("cache: 'listings' in the cache directory is a "
			"symlink: not followed, listings are not kept "
			"(remove it, or run 'wivaudit cache verify --repair')");
	return err;
}

static void put_encoded(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '%' || c == 0x7f)
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes in place; returns false on a malformed escape. */
static bool decode(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (*s != '%') {
			*out++ = *s;
			continue;
		}
		int hi = hex_value(s[1]), lo = hi < 0 ? -1 : hex_value(s[2]);
		if (lo < 0)
			return false;
		*out++ = (char)(hi * 16 + lo);
		s += 2;
	}
	*out = '\0';
	return true;
}

int wiv_listing_save(int cache_fd, const char *listing_id,
		     const struct wiv_listing *l)
{
	static atomic_int logged_err;
	char name[LISTING_NAME_LEN];
	int dir_fd, err = open_listings(cache_fd, true, &dir_fd);
	if (err) {
		if (err != ELOOP && atomic_exchange(&logged_err, err) != err)
			wiv_err("cache: cannot create listings/ in the cache "
				"directory: %s", strerror(err));
		return err;
	}
	listing_name(listing_id, name);

	char *body = NULL;
	size_t body_len = 0;
	FILE *mem = open_memstream(&body, &body_len);
	if (!mem) {
		close(dir_fd);
		return ENOMEM;
	}
	fprintf(mem, "%s %d %" PRId64 " %zu\n", HEADER_WORD, FORMAT_VERSION,
		l->listed_at, l->n);
	for (size_t i = 0; i < l->n; i++) {
		put_encoded(mem, l->entries[i].etag[0] ? l->entries[i].etag : "-");
		fprintf(mem, " %" PRIu64 " ", l->entries[i].size);
		const char *sc = l->entries[i].storage_class;
		put_encoded(mem, sc && sc[0] ? sc : "-");
		fputc(' ', mem);
		put_encoded(mem, l->entries[i].key);
		fputc('\n', mem);
	}
	if (fclose(mem) != 0) {
		free(body);
		close(dir_fd);
		return ENOMEM;
	}
	/* The checksum trailer makes a torn or foreign file detectable. */
	char trailer[32];
	int tlen = snprintf(trailer, sizeof(trailer), "crc32 %08lx\n",
			    crc32(0, (const Bytef *)body, (uInt)body_len));
	char *whole = realloc(body, body_len + (size_t)tlen);
	if (!whole) {
		free(body);
		close(dir_fd);
		return ENOMEM;
	}
	memcpy(whole + body_len, trailer, (size_t)tlen);

	err = wiv_atomic_write(dir_fd, name, whole, body_len + (size_t)tlen);
	free(whole);
	close(dir_fd);
	/* Once per cause: a full disk would otherwise log every listing. */
	if (err && atomic_exchange(&logged_err, err) != err)
		wiv_err("cache: cannot save a listing in listings/ of the "
			"cache directory: %s (listed again after a remount)",
			strerror(err));
	return err;
}

/* Reads the regular file name of dir_fd whole, NUL-terminated. Returns
 * it (caller frees) with its length in *len, or NULL with errno set. */
static char *read_file(int dir_fd, const char *name, size_t *len)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	char *buf = NULL;
	size_t cap = 0;
	int err = 0;

	if (fd < 0)
		return NULL;
	*len = 0;
	for (;;) {
		if (*len + 65536 + 1 > cap) {
			char *b;
			cap = cap ? cap * 2 : 65536 * 2;
			b = realloc(buf, cap);
			if (!b) {
				err = ENOMEM;
				break;
			}
			buf = b;
		}
		ssize_t n = read(fd, buf + *len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = errno;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	if (err) {
		free(buf);
		errno = err;
		return NULL;
	}
	buf[*len] = '\0';
	return buf;
}

/* Parses body (NUL-terminated, crc already checked) into a listing. */
static int parse(char *body, struct wiv_listing *l)
{
	char word[32];
	int version, used;
	int64_t listed_at;
	size_t n;
	if (sscanf(body, "%31s %d %" SCNd64 " %zu\n%n", word, &version,
		   &listed_at, &n, &used) != 4 ||
	    strcmp(word, HEADER_WORD) != 0)
		return EBADMSG;
	if (version != FORMAT_VERSION)
		return ENOENT;
	/* Every line has at least "- 0 - k\n": bounds n by the data. */
	if (n > strlen(body) / 8)
		return EBADMSG;
	l->listed_at = listed_at;
	l->entries = calloc(n ? n : 1, sizeof(*l->entries));
	if (!l->entries)
		return ENOMEM;
	char *p = body + used;
	for (size_t i = 0; i < n; i++) {
		char *nl = strchr(p, '\n');
		char *space = strchr(p, ' ');
		char *space2 = space ? strchr(space + 1, ' ') : NULL;
		char *space3 = space2 ? strchr(space2 + 1, ' ') : NULL;
		if (!nl || !space3 || space3 > nl)
			return EBADMSG;
		*nl = *space = *space2 = *space3 = '\0';
		char *end;
		uint64_t size = strtoull(space + 1, &end, 10);
		if (!decode(p) || *end || end == space + 1 ||
		    !decode(space2 + 1) || !decode(space3 + 1) || !space3[1])
			return EBADMSG;
		struct wiv_listing_entry *e = &l->entries[l->n];
		e->size = size;
		e->etag = strdup(strcmp(p, "-") == 0 ? "" : p);
		e->storage_class =
			strdup(strcmp(space2 + 1, "-") == 0 ? "" : space2 + 1);
		e->key = strdup(space3 + 1);
		if (!e->etag || !e->key || !e->storage_class) {
			free(e->etag);
			free(e->storage_class);
			free(e->key);
			return ENOMEM;
		}
		l->n++;
		p = nl + 1;
	}
	return *p == '\0' ? 0 : EBADMSG;
}

/* Checks the trailer's checksum of buf (len bytes, NUL-terminated) and
 * parses it into *out. Returns 0, ENOMEM or EBADMSG. */
static int decode_file(char *buf, size_t len, struct wiv_listing **out)
{
	struct wiv_listing *l = calloc(1, sizeof(*l));
	char *trailer = len >= 15 ? buf + len - 15 : NULL;
	unsigned long want;
	int err = EBADMSG;

	if (!l)
		return ENOMEM;
	if (trailer && trailer[-1] == '\n' &&
	    sscanf(trailer, "crc32 %8lx\n", &want) == 1 &&
	    crc32(0, (const Bytef *)buf, (uInt)(trailer - buf)) == want) {
		*trailer = '\0';
		err = parse(buf, l);
	}
	if (err) {
		wiv_listing_free(l);
		return err;
	}
	*out = l;
	return 0;
}

int wiv_listing_load(int cache_fd, const char *listing_id,
		     struct wiv_listing **out)
{
	char name[LISTING_NAME_LEN];
	size_t len;
	int dir_fd, err = open_listings(cache_fd, false, &dir_fd);
	if (err)
		return err == ELOOP ? ELOOP : ENOENT;
	listing_name(listing_id, name);
	char *buf = read_file(dir_fd, name, &len);
	if (!buf) {
		err = errno;
		if (err == ELOOP)
			wiv_err("cache: listings/%s is a symlink: not "
				"followed; the bucket will be listed again",
				name);
		close(dir_fd);
		return err == ENOENT ? ENOENT : EIO;
	}

	err = decode_file(buf, len, out);
	free(buf);
	if (err == EBADMSG) {
		wiv_warn("cache: damaged listing listings/%s removed; the "
			 "bucket will be listed again", name);
		unlinkat(dir_fd, name, 0);
	}
	close(dir_fd);
	return err;
}

int wiv_listing_check_file(int dir_fd, const char *name)
{
	struct wiv_listing *l = NULL;
	size_t len;
	char *buf = read_file(dir_fd, name, &len);
	if (!buf)
		return errno ? errno : EIO;
	int err = decode_file(buf, len, &l);
	free(buf);
	wiv_listing_free(l);
	return err;
}

void wiv_listing_free(struct wiv_listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->entries[i].key);
		free(l->entries[i].etag);
		free(l->entries[i].storage_class);
	}
	free(l->entries);
	free(l);
}
