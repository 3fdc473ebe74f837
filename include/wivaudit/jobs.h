/* A queue of background jobs run by a few threads, in the order queued:
 * the tree's read-ahead of objects a walk will want next, and the kernel
 * invalidations that must not run inside a request. A push never waits: a
 * job that does not fit is refused, so that queueing cannot slow down (or,
 * under a lock, deadlock) the thread that queues. */
#ifndef WIVAUDIT_JOBS_H
#define WIVAUDIT_JOBS_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*wiv_job_fn)(void *arg, void *item);

struct wiv_jobs;

/* Returns a queue whose jobs run(arg, item) on up to threads threads, or
 * NULL if out of memory. At most max_queued jobs wait (0: no limit). Jobs
 * still queued when the queue is freed are passed to drop (if not NULL).
 * The threads start with the first jobs, so that a daemon may still fork
 * after creating the queue. */
struct wiv_jobs *wiv_jobs_new(unsigned threads, size_t max_queued,
			      wiv_job_fn run, wiv_job_fn drop, void *arg);

/* Queues item; false if the queue is full, out of memory, or no thread
 * could start (the caller keeps the item). */
bool wiv_jobs_push(struct wiv_jobs *q, void *item);

/* Drops the queued jobs, waits for the running ones, frees the queue.
 * NULL is a no-op. */
void wiv_jobs_free(struct wiv_jobs *q);

#endif
