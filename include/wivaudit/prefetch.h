/* A bounded queue of background jobs run by a few threads: the tree's
 * read-ahead of the objects a directory walk will want next. A job that
 * does not fit is refused, never waited for, so that read-ahead cannot slow
 * down the reader whose walk asked for it. */
#ifndef WIVAUDIT_PREFETCH_H
#define WIVAUDIT_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*wiv_prefetch_fn)(void *arg, void *item);

struct wiv_prefetch;

/* Returns a queue of at most capacity jobs, run fn(arg, item) by up to
 * threads threads, or NULL if out of memory. The threads start with the
 * first job, so that a daemon may still fork after creating the queue. */
struct wiv_prefetch *wiv_prefetch_new(unsigned threads, size_t capacity,
				      wiv_prefetch_fn fn, void *arg);

/* Queues item; false if the queue is full (or no thread could start). */
bool wiv_prefetch_push(struct wiv_prefetch *p, void *item);

/* Drops the queued jobs, waits for the running ones, frees the queue.
 * NULL is a no-op. */
void wiv_prefetch_free(struct wiv_prefetch *p);

#endif
