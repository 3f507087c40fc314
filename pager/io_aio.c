/*
 * io_aio.c — the Linux native AIO backend (libaio): O_DIRECT reads, one
 * iocb per request slot, a batch per io_submit, completions from
 * io_getevents.  For kernels or containers where io_uring is refused.
 * Cancellation is left to the wrapper: io_cancel does not stop file reads.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libaio.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

struct aio_be {
	struct mp_io_backend base;       /* methods; first */
	io_context_t ctx;                /* the kernel's aio context */
	int *fds;                        /* [max_files], -1: none */
	uint32_t max_files;              /* entries in fds */
	uint32_t depth;                  /* entries in cbs and events */
	struct iocb *cbs;                /* [depth], by tag (the wrapper's slot) */
	struct io_event *events;         /* [depth] scratch for io_getevents */
	uint32_t inflight;               /* submitted, not reaped */
};

static int aio_probe(char *why, size_t why_len)
{
	if (mp_io_disabled("aio", why, why_len))
		return -MP_EUNAVAIL;
	io_context_t ctx = 0;
	int rc = io_setup(4, &ctx);
	if (rc < 0) {
		snprintf(why, why_len, "io_setup failed: %s", strerror(-rc));
		return rc;
	}
	io_destroy(ctx);
	return 0;
}

static void aio_close(struct mp_io_backend *b)
{
	struct aio_be *a = (struct aio_be *)b;
	if (!a)
		return;
	if (a->ctx)
		io_destroy(a->ctx);
	for (uint32_t i = 0; a->fds && i < a->max_files; i++)
		if (a->fds[i] >= 0)
			close(a->fds[i]);
	mp_free(a->fds);
	mp_free(a->cbs);
	mp_free(a->events);
	mp_free(a);
}

static int aio_open(const struct mp_io_config *cfg, struct mp_io_backend **out,
                    char *msg, size_t msg_len)
{
	struct aio_be *a = mp_calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->base.ops = &mp_io_aio_ops;
	a->max_files = cfg->max_files;
	a->depth = cfg->depth;
	a->fds = mp_malloc_array(a->max_files, sizeof *a->fds);
	a->cbs = mp_calloc(a->depth, sizeof *a->cbs);
	a->events = mp_calloc(a->depth, sizeof *a->events);
	if (!a->fds || !a->cbs || !a->events) {
		aio_close(&a->base);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < a->max_files; i++)
		a->fds[i] = -1;
	int rc = io_setup((int)a->depth, &a->ctx);
	if (rc < 0) {
		a->ctx = 0;
		snprintf(msg, msg_len, "io_setup(%u) failed: %s", a->depth, strerror(-rc));
		aio_close(&a->base);
		return rc;
	}
	*out = &a->base;
	return 0;
}

static int aio_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                        uint64_t *size, char *msg, size_t msg_len)
{
	struct aio_be *a = (struct aio_be *)b;
	return mp_io_open_file(path, 1, &a->fds[index], size, msg, msg_len);
}

static int aio_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct aio_be *a = (struct aio_be *)b;
	struct iocb *ptrs[64];
	unsigned done = 0;
	while (done < n) {
		unsigned k = n - done < 64 ? n - done : 64;
		for (unsigned i = 0; i < k; i++) {
			const struct mp_io_req *r = &reqs[done + i];
			struct iocb *cb = &a->cbs[r->tag];
			io_prep_pread(cb, a->fds[r->file], r->buf, r->len, (long long)r->offset);
			cb->data = (void *)(uintptr_t)r->tag;
			ptrs[i] = cb;
		}
		int rc;
		do
			rc = io_submit(a->ctx, (long)k, ptrs);
		while (rc == -EINTR);
		if (rc < 0) {
			if (done)
				break;
			return rc == -EAGAIN ? 0 : rc;
		}
		done += (unsigned)rc;
		a->inflight += (unsigned)rc;
		if ((unsigned)rc < k)
			break;
	}
	return (int)done;
}

static int aio_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct aio_be *a = (struct aio_be *)b;
	if (min > a->inflight)
		min = a->inflight;
	if (max > a->depth)
		max = a->depth;
	struct timespec zero = { 0, 0 };
	int n = io_getevents(a->ctx, (long)min, (long)max, a->events, min ? NULL : &zero);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		out[i].tag = (uint64_t)(uintptr_t)a->events[i].data;
		out[i].result = (int64_t)(long)a->events[i].res;
		out[i].data = NULL;
	}
	a->inflight -= (unsigned)n;
	return n;
}

const struct mp_io_ops mp_io_aio_ops = {
	.name = "aio",
	.version = MP_IO_VERSION,
	.caps = MP_IO_CAP_ASYNC | MP_IO_CAP_ALIGNED,
	.probe = aio_probe,
	.open = aio_open,
	.add_file = aio_add_file,
	.submit = aio_submit,
	.reap = aio_reap,
	.cancel = NULL,
	.close = aio_close,
};
