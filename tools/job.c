/*
 * job.c — a request's shared state between the worker and the connection
 * (job.h): one mutex, one condition broadcast on every change.
 *
 * Invariants:
 * 1. off <= len; buf[0..len) only grows until the job is freed.
 * 2. status goes from 0 to its final value once; done implies status != 0.
 * 3. refs > 0 while anyone holds the job; the request is freed with the job.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "job.h"

struct mp_job {
	pthread_mutex_t mu;
	pthread_cond_t changed;      /* broadcast on put, status, done, cancel */
	struct mp_api_request req;   /* owned; read-only after create */
	int refs;                    /* invariant 3 */
	char *buf;                   /* [cap] the response's bytes so far */
	size_t len, cap, off;        /* invariant 1; off = bytes read by the connection */
	int status;                  /* invariant 2 */
	int done;                    /* 1: no more bytes */
	int cancelled;               /* 1: nobody will read the answer */
};

int mp_job_create(struct mp_api_request *req, struct mp_job **out)
{
	*out = NULL;
	struct mp_job *j = mp_calloc(1, sizeof *j);
	if (!j) {
		mp_api_request_free(req);
		return -ENOMEM;
	}
	j->req = *req;
	memset(req, 0, sizeof *req);
	j->refs = 1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->changed, NULL);
	*out = j;
	return 0;
}

void mp_job_ref(struct mp_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->refs++;
	pthread_mutex_unlock(&j->mu);
}

void mp_job_unref(struct mp_job *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	int last = --j->refs == 0;
	pthread_mutex_unlock(&j->mu);
	if (!last)
		return;
	mp_api_request_free(&j->req);
	mp_free(j->buf);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->changed);
	mp_free(j);
}

const struct mp_api_request *mp_job_request(const struct mp_job *j) { return &j->req; }

void mp_job_set_status(struct mp_job *j, int status)
{
	pthread_mutex_lock(&j->mu);
	if (!j->status)
		j->status = status;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&j->mu);
}

int mp_job_put(struct mp_job *j, const char *bytes, size_t n)
{
	int rc = 0;
	pthread_mutex_lock(&j->mu);
	if (j->len + n > j->cap) {
		size_t cap = j->cap ? j->cap : 4096;
		while (cap < j->len + n)
			cap *= 2;
		char *p = mp_realloc(j->buf, cap);
		if (!p)
			rc = -ENOMEM;
		else {
			j->buf = p;
			j->cap = cap;
		}
	}
	if (rc == 0) {
		memcpy(j->buf + j->len, bytes, n);
		j->len += n;
		pthread_cond_broadcast(&j->changed);
	}
	pthread_mutex_unlock(&j->mu);
	return rc;
}

void mp_job_done(struct mp_job *j)
{
	pthread_mutex_lock(&j->mu);
	if (!j->status)
		j->status = 500;
	j->done = 1;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&j->mu);
}

void mp_job_cancel(struct mp_job *j)
{
	pthread_mutex_lock(&j->mu);
	j->cancelled = 1;
	pthread_cond_broadcast(&j->changed);
	pthread_mutex_unlock(&j->mu);
}

int mp_job_cancelled(struct mp_job *j)
{
	pthread_mutex_lock(&j->mu);
	int c = j->cancelled;
	pthread_mutex_unlock(&j->mu);
	return c;
}

static int ready(const struct mp_job *j, enum mp_job_wait what)
{
	switch (what) {
	case MP_JOB_STATUS: return j->status != 0;
	case MP_JOB_DATA: return j->off < j->len || j->done;
	default: return j->done;
	}
}

int mp_job_wait(struct mp_job *j, enum mp_job_wait what, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->mu);
	int rc = 0;
	while (!ready(j, what) && rc == 0)
		rc = pthread_cond_timedwait(&j->changed, &j->mu, &until);
	int ok = ready(j, what);
	pthread_mutex_unlock(&j->mu);
	return ok;
}

int mp_job_status(struct mp_job *j)
{
	pthread_mutex_lock(&j->mu);
	int s = j->status;
	pthread_mutex_unlock(&j->mu);
	return s;
}

size_t mp_job_read(struct mp_job *j, char *buf, size_t max, int *end)
{
	pthread_mutex_lock(&j->mu);
	size_t n = j->len - j->off < max ? j->len - j->off : max;
	if (n) {
		memcpy(buf, j->buf + j->off, n);
		j->off += n;
	}
	*end = j->done && j->off == j->len;
	pthread_mutex_unlock(&j->mu);
	return n;
}
