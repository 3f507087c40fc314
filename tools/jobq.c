/*
 * jobq.c — bounded FIFO (jobq.h): a ring under one mutex and one condition.
 *
 * Invariants:
 * 1. 0 <= n <= cap; the items are ring[head], ring[head+1], ... (mod cap) in
 *    arrival order.
 * 2. Once closed, n never grows.
 */
#include <errno.h>
#include <pthread.h>

#include "alloc.h"
#include "jobq.h"

struct mp_jobq {
	pthread_mutex_t mu;
	pthread_cond_t nonempty;     /* signalled on push and close */
	void **ring;                 /* [cap] */
	size_t cap;                  /* items, >= 1 (fixed) */
	size_t head, n;              /* invariant 1 */
	int closed;                  /* invariant 2 */
};

int mp_jobq_create(size_t cap, struct mp_jobq **out)
{
	*out = NULL;
	struct mp_jobq *q = mp_calloc(1, sizeof *q);
	if (!q || cap == 0 || !(q->ring = mp_calloc(cap, sizeof *q->ring))) {
		mp_free(q);
		return cap == 0 ? -EINVAL : -ENOMEM;
	}
	q->cap = cap;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->nonempty, NULL);
	*out = q;
	return 0;
}

void mp_jobq_destroy(struct mp_jobq *q)
{
	if (!q)
		return;
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->nonempty);
	mp_free(q->ring);
	mp_free(q);
}

int mp_jobq_push(struct mp_jobq *q, void *item)
{
	int rc = 0;
	pthread_mutex_lock(&q->mu);
	if (q->closed)
		rc = -ECANCELED;
	else if (q->n == q->cap)
		rc = -EAGAIN;
	else {
		q->ring[(q->head + q->n) % q->cap] = item;
		q->n++;
		pthread_cond_signal(&q->nonempty);
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

static void *take(struct mp_jobq *q)
{
	void *item = q->ring[q->head];
	q->head = (q->head + 1) % q->cap;
	q->n--;
	return item;
}

void *mp_jobq_pop(struct mp_jobq *q)
{
	void *item = NULL;
	pthread_mutex_lock(&q->mu);
	while (q->n == 0 && !q->closed)
		pthread_cond_wait(&q->nonempty, &q->mu);
	if (q->n)
		item = take(q);
	pthread_mutex_unlock(&q->mu);
	return item;
}

void *mp_jobq_try_pop(struct mp_jobq *q)
{
	pthread_mutex_lock(&q->mu);
	void *item = q->n ? take(q) : NULL;
	pthread_mutex_unlock(&q->mu);
	return item;
}

void mp_jobq_close(struct mp_jobq *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->nonempty);
	pthread_mutex_unlock(&q->mu);
}

size_t mp_jobq_len(struct mp_jobq *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->n;
	pthread_mutex_unlock(&q->mu);
	return n;
}

size_t mp_jobq_cap(const struct mp_jobq *q) { return q->cap; }
