/* Download, split and cache one object. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wivaudit/fetch.h"
#include "wivaudit/log.h"

/* Downloads of a body that came back shorter (or longer) than listed. */
#define INCOMPLETE_RETRIES 3

struct pipeline {
	struct wiv_splitter *splitter;
	struct wiv_cache_writer *writer;
	int split_error; /* what stopped the splitter, if anything */
	int write_error;
	uint64_t body_bytes;
};

static int add_event(void *arg, const struct wiv_event *ev)
{
	struct pipeline *p = arg;
	p->write_error = wiv_cache_writer_add(p->writer, ev);
	return p->write_error;
}

static int feed_body(void *arg, const void *data, size_t len)
{
	struct pipeline *p = arg;
	p->body_bytes += len;
	p->split_error = wiv_splitter_feed(p->splitter, data, len);
	return p->split_error;
}

/* An object over a ceiling: its events are dropped and nothing is cached,
 * as a mount with higher ceilings would read it. */
static int over_limit(const struct wiv_fetch_request *req,
		      struct wiv_object_index **out)
{
	*out = wiv_object_index_new_empty(WIV_OBJECT_OVER_LIMIT);
	if (!*out)
		return ENOMEM;
	wiv_cache_note_over_limit(req->cache);
	return 0;
}

/* Downloads, splits and caches the object once. Sets *incomplete when the
 * body was shorter or longer than listed: a connection cut short can still
 * look like a whole reply (no Content-Length, or one matching what was
 * sent), and only the listed size tells. */
static int download(const struct wiv_fetch_request *req,
		    struct wiv_object_index **out, bool *incomplete)
{
	struct pipeline p = {0};
	int rc;
	p.writer = wiv_cache_writer_new(req->cache, req->entry_id, req->key);
	if (!p.writer) {
		rc = errno ? errno : EIO;
		wiv_err("cache: cannot write an entry for %s: %s", req->key,
			strerror(rc));
		return rc;
	}
	p.splitter = wiv_splitter_new(req->layout, WIV_MAX_EVENT_BYTES,
				      req->key, add_event, &p);
	if (!p.splitter) {
		wiv_cache_writer_abort(p.writer);
		return ENOMEM;
	}
	wiv_splitter_set_limits(p.splitter, req->max_events, req->max_bytes);

	rc = wiv_source_get(req->source, req->key, req->etag, feed_body, &p);
	enum wiv_object_status status = WIV_OBJECT_OK;
	*incomplete = rc == 0 && p.body_bytes != req->size;
	if (*incomplete) {
		wiv_warn("GET %s: got %llu bytes, the listing says %llu",
			 req->key, (unsigned long long)p.body_bytes,
			 (unsigned long long)req->size);
		rc = EIO;
	} else if (rc == 0) {
		int finished = wiv_splitter_finish(p.splitter);
		if (finished != 0)
			status = finished == EFBIG ? WIV_OBJECT_OVER_LIMIT
						   : WIV_OBJECT_BAD;
	} else if (rc == ECANCELED && p.split_error == EBADMSG) {
		/* The body itself is bad: remember that, do not retry. */
		status = WIV_OBJECT_BAD;
		rc = 0;
	} else if (rc == ECANCELED && p.split_error == EFBIG) {
		/* The download stopped at the ceiling. */
		status = WIV_OBJECT_OVER_LIMIT;
		rc = 0;
	} else if (rc == ECANCELED && p.write_error) {
		rc = p.write_error;
		wiv_err("cache: writing %s: %s", req->key, strerror(rc));
	}
	wiv_splitter_free(p.splitter);

	if (rc != 0 || status == WIV_OBJECT_OVER_LIMIT) {
		wiv_cache_writer_abort(p.writer);
		if (rc == 0)
			rc = over_limit(req, out);
		return rc;
	}
	rc = wiv_cache_writer_commit(p.writer, status, out);
	if (rc != 0)
		wiv_err("cache: storing %s: %s", req->key, strerror(rc));
	else
		wiv_cache_note_download(req->cache, p.body_bytes);
	return rc;
}

int wiv_fetch_object(const struct wiv_fetch_request *req,
		     struct wiv_object_index **out)
{
	int rc = wiv_cache_lookup(req->cache, req->entry_id, req->key, out);
	if (rc == 0)
		return 0;
	if (req->cache_only)
		return ENOENT;

	/* The source retries what it can see failing; an incomplete body
	 * that looked whole is retried here, the whole pipeline anew. */
	for (unsigned attempt = 1;; attempt++) {
		bool incomplete = false;
		rc = download(req, out, &incomplete);
		if (!incomplete)
			return rc;
		if (attempt > INCOMPLETE_RETRIES) {
			wiv_err("GET %s: the body stayed incomplete after %u "
				"tries; will try again later", req->key,
				attempt);
			return EIO;
		}
		/* Backoff with full jitter, as for other transient faults. */
		usleep((useconds_t)(rand() % (100000u << attempt)));
	}
}
