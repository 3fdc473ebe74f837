/* The background job queue: a ring of item pointers, grown on demand up to
 * its limit, guarded by one mutex; worker threads sleep on a condition
 * variable while it is empty. */
#include <pthread.h>
#include <stdlib.h>

#include "wivaudit/jobs.h"

struct wiv_jobs {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	void **ring;
	size_t cap, head, n, max_queued;
	wiv_job_fn run, drop;
	void *arg;
	bool stopping;
	pthread_t *threads;
	unsigned nthreads, started;
};

struct wiv_jobs *wiv_jobs_new(unsigned threads, size_t max_queued,
			      wiv_job_fn run, wiv_job_fn drop, void *arg)
{
	struct wiv_jobs *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->threads = calloc(threads ? threads : 1, sizeof(*q->threads));
	if (!q->threads) {
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->wake, NULL);
	q->max_queued = max_queued;
	q->nthreads = threads;
	q->run = run;
	q->drop = drop;
	q->arg = arg;
	return q;
}

static void *worker(void *arg)
{
	struct wiv_jobs *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->n && !q->stopping)
			pthread_cond_wait(&q->wake, &q->lock);
		if (q->stopping)
			break;
		void *item = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->n--;
		pthread_mutex_unlock(&q->lock);
		q->run(q->arg, item);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Makes room for one more job. Lock held. */
static bool make_room(struct wiv_jobs *q)
{
	if (q->n < q->cap)
		return true;
	if (q->max_queued && q->n >= q->max_queued)
		return false;
	size_t cap = q->cap ? q->cap * 2 : 16;
	if (q->max_queued && cap > q->max_queued)
		cap = q->max_queued;
	void **ring = malloc(cap * sizeof(*ring));
	if (!ring)
		return false;
	for (size_t i = 0; i < q->n; i++)
		ring[i] = q->ring[(q->head + i) % q->cap];
	free(q->ring);
	q->ring = ring;
	q->cap = cap;
	q->head = 0;
	return true;
}

bool wiv_jobs_push(struct wiv_jobs *q, void *item)
{
	pthread_mutex_lock(&q->lock);
	/* One more thread per job queued, up to the limit: a queue that is
	 * seldom used costs no idle threads. */
	if (q->started < q->nthreads && q->started < q->n + 1 &&
	    pthread_create(&q->threads[q->started], NULL, worker, q) == 0)
		q->started++;
	bool queued = q->started > 0 && !q->stopping && make_room(q);
	if (queued) {
		q->ring[(q->head + q->n) % q->cap] = item;
		q->n++;
		pthread_cond_signal(&q->wake);
	}
	pthread_mutex_unlock(&q->lock);
	return queued;
}

void wiv_jobs_free(struct wiv_jobs *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->wake);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->started; i++)
		pthread_join(q->threads[i], NULL);
	for (size_t i = 0; q->drop && i < q->n; i++)
		q->drop(q->arg, q->ring[(q->head + i) % q->cap]);
	pthread_cond_destroy(&q->wake);
	pthread_mutex_destroy(&q->lock);
	free(q->threads);
	free(q->ring);
	free(q);
}
