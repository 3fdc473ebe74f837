/* The background job queue behind read-ahead: a ring of item pointers
 * guarded by one mutex, and worker threads that sleep on a condition
 * variable while it is empty. */
#include <pthread.h>
#include <stdlib.h>

#include "wivaudit/prefetch.h"

struct wiv_prefetch {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	void **ring;
	size_t capacity, head, n;
	wiv_prefetch_fn fn;
	void *arg;
	bool stopping;
	pthread_t *threads;
	unsigned nthreads, started;
};

struct wiv_prefetch *wiv_prefetch_new(unsigned threads, size_t capacity,
				      wiv_prefetch_fn fn, void *arg)
{
	struct wiv_prefetch *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->ring = calloc(capacity ? capacity : 1, sizeof(*p->ring));
	p->threads = calloc(threads ? threads : 1, sizeof(*p->threads));
	if (!p->ring || !p->threads) {
		free(p->ring);
		free(p->threads);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->capacity = capacity ? capacity : 1;
	p->nthreads = threads;
	p->fn = fn;
	p->arg = arg;
	return p;
}

static void *worker(void *arg)
{
	struct wiv_prefetch *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->n && !p->stopping)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		void *item = p->ring[p->head];
		p->head = (p->head + 1) % p->capacity;
		p->n--;
		pthread_mutex_unlock(&p->lock);
		p->fn(p->arg, item);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

bool wiv_prefetch_push(struct wiv_prefetch *p, void *item)
{
	pthread_mutex_lock(&p->lock);
	/* One more thread per job queued, up to the limit: a walk that never
	 * reads ahead far costs no idle threads. */
	if (p->started < p->nthreads && p->started < p->n + 1 &&
	    pthread_create(&p->threads[p->started], NULL, worker, p) == 0)
		p->started++;
	bool queued = p->started > 0 && p->n < p->capacity && !p->stopping;
	if (queued) {
		p->ring[(p->head + p->n) % p->capacity] = item;
		p->n++;
		pthread_cond_signal(&p->wake);
	}
	pthread_mutex_unlock(&p->lock);
	return queued;
}

void wiv_prefetch_free(struct wiv_prefetch *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	p->n = 0;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->started; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p->ring);
	free(p);
}
