/*
 * io_sync.c — the portable backend: pread on a few threads.  Requests wait
 * in a queue; each worker takes one, reads it with one pread (O_DIRECT when
 * the file system allows) and posts the raw result; the mp_io wrapper
 * resubmits a short read for the rest and retries EINTR.  Not a pool-free
 * backend and not zero-copy: it exists for kernels without io_uring or aio.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

struct sync_be {
	struct mp_io_backend base;       /* methods; first */
	int *fds;                        /* [max_files], -1: none */
	uint32_t max_files;              /* entries in fds */
	uint32_t cap;                    /* entries in q and cancelled (the depth) */
	pthread_t *th;                   /* [n_th] workers */
	uint32_t n_th;                   /* workers started */
	pthread_mutex_t mu;              /* guards everything below */
	pthread_cond_t work_cv;          /* a request was queued, or stop */
	pthread_cond_t done_cv;          /* a completion was posted */
	struct mp_io_req *q;             /* [cap] ring of queued requests */
	uint32_t q_head, q_n;            /* ring start, entries */
	struct mp_io_ring cq;            /* completions posted by the workers */
	uint8_t *cancelled;              /* [cap] by tag: skip the read */
	uint32_t inflight;               /* submitted, not reaped */
	int stop;                        /* workers exit */
};

static void *worker(void *arg)
{
	struct sync_be *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && s->q_n == 0)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (s->stop)
			break;
		struct mp_io_req r = s->q[s->q_head];
		s->q_head = (s->q_head + 1) % s->cap;
		s->q_n--;
		int skip = s->cancelled[r.tag];
		int fd = s->fds[r.file];
		pthread_mutex_unlock(&s->mu);
		int64_t res;
		if (skip) {
			res = -ECANCELED;
		} else {
			ssize_t n = pread(fd, r.buf, r.len, (off_t)r.offset);
			res = n < 0 ? -errno : n;
		}
		pthread_mutex_lock(&s->mu);
		mp_io_ring_push(&s->cq, r.tag, res, r.buf);
		pthread_cond_broadcast(&s->done_cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void sync_close(struct mp_io_backend *b)
{
	struct sync_be *s = (struct sync_be *)b;
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	for (uint32_t i = 0; i < s->n_th; i++)
		pthread_join(s->th[i], NULL);
	for (uint32_t i = 0; s->fds && i < s->max_files; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	mp_free(s->fds);
	mp_free(s->th);
	mp_free(s->q);
	mp_free(s->cq.e);
	mp_free(s->cancelled);
	mp_free(s);
}

static int sync_open(const struct mp_io_config *cfg, struct mp_io_backend **out,
                     char *msg, size_t msg_len)
{
	struct sync_be *s = mp_calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->base.ops = &mp_io_sync_ops;
	s->cap = cfg->depth;
	s->max_files = cfg->max_files;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	s->fds = mp_malloc_array(s->max_files, sizeof *s->fds);
	s->th = mp_calloc(cfg->threads, sizeof *s->th);
	s->q = mp_calloc(s->cap, sizeof *s->q);
	s->cq.cap = s->cap;
	s->cq.e = mp_calloc(s->cap, sizeof *s->cq.e);
	s->cancelled = mp_calloc(s->cap, 1);
	if (!s->fds || !s->th || !s->q || !s->cq.e || !s->cancelled) {
		sync_close(&s->base);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < s->max_files; i++)
		s->fds[i] = -1;
	for (; s->n_th < cfg->threads; s->n_th++) {
		int rc = pthread_create(&s->th[s->n_th], NULL, worker, s);
		if (rc) {
			snprintf(msg, msg_len, "sync: cannot start thread: %s", strerror(rc));
			sync_close(&s->base);
			return -rc;
		}
	}
	*out = &s->base;
	return 0;
}

static int sync_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                         uint64_t *size, char *msg, size_t msg_len)
{
	struct sync_be *s = (struct sync_be *)b;
	return mp_io_open_file(path, 1, &s->fds[index], size, msg, msg_len);
}

static int sync_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct sync_be *s = (struct sync_be *)b;
	pthread_mutex_lock(&s->mu);
	unsigned i = 0;
	for (; i < n && s->q_n < s->cap; i++) {
		s->q[(s->q_head + s->q_n++) % s->cap] = reqs[i];
		s->cancelled[reqs[i].tag] = 0;
	}
	s->inflight += i;
	pthread_cond_broadcast(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return (int)i;
}

static int sync_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct sync_be *s = (struct sync_be *)b;
	pthread_mutex_lock(&s->mu);
	if (min > s->inflight)
		min = s->inflight;
	while (s->cq.n < min)
		pthread_cond_wait(&s->done_cv, &s->mu);
	unsigned n = mp_io_ring_pop(&s->cq, out, max);
	s->inflight -= n;
	pthread_mutex_unlock(&s->mu);
	return (int)n;
}

static int sync_cancel(struct mp_io_backend *b, uint64_t tag)
{
	struct sync_be *s = (struct sync_be *)b;
	pthread_mutex_lock(&s->mu);
	if (tag < s->cap)
		s->cancelled[tag] = 1;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static int always_usable(char *why, size_t why_len)
{
	return mp_io_disabled("sync", why, why_len) ? -MP_EUNAVAIL : 0;
}

const struct mp_io_ops mp_io_sync_ops = {
	.name = "sync",
	.version = MP_IO_VERSION,
	.caps = MP_IO_CAP_ASYNC | MP_IO_CAP_ALIGNED,
	.probe = always_usable,
	.open = sync_open,
	.add_file = sync_add_file,
	.submit = sync_submit,
	.reap = sync_reap,
	.cancel = sync_cancel,
	.close = sync_close,
};
