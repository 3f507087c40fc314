/*
 * io_fault.c — the fault shim (like SQLite's test6.c crash shim): wraps a
 * real, open backend and injects what disks and kernels do to reads, so that
 * every error path of the wrapper and the pager can be tested:
 *   - -EIO for chosen requests (counted from 1, resubmissions included);
 *   - -EAGAIN every Nth request (the wrapper must retry);
 *   - short transfers every Nth request: the inner backend reads only the
 *     first half, 4 KiB aligned (the wrapper must resubmit the rest);
 *   - completions handed out newest first (reordering) and after a delay.
 * A failing open (io_uring_setup under seccomp) is injected by mp_io_open.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

struct fault_be {
	struct mp_io_backend base;       /* methods; first */
	struct mp_io_backend *inner;     /* the real backend, owned */
	struct mp_io_fault f;            /* what to inject */
	uint64_t n_req;                  /* requests seen */
	uint32_t inner_inflight;         /* passed to inner, not reaped */
	struct mp_io_ring fake;          /* injected completions */
};

extern const struct mp_io_ops mp_io_fault_ops;

static void fault_close(struct mp_io_backend *b)
{
	struct fault_be *s = (struct fault_be *)b;
	if (!s)
		return;
	s->inner->ops->close(s->inner);
	mp_free(s->fake.e);
	mp_free(s);
}

int mp_io_fault_wrap(struct mp_io_backend *inner, const struct mp_io_fault *f,
                     uint32_t depth, struct mp_io_backend **out)
{
	struct fault_be *s = mp_calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->fake.e = mp_calloc(depth, sizeof *s->fake.e);
	if (!s->fake.e) {
		mp_free(s);
		return -ENOMEM;
	}
	s->base.ops = &mp_io_fault_ops;
	s->inner = inner;
	s->f = *f;
	if (!s->f.eio_count)
		s->f.eio_count = 1;
	s->fake.cap = depth;
	*out = &s->base;
	return 0;
}

static int fault_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                          uint64_t *size, char *msg, size_t msg_len)
{
	struct fault_be *s = (struct fault_be *)b;
	return s->inner->ops->add_file(s->inner, index, path, size, msg, msg_len);
}

static int fault_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct fault_be *s = (struct fault_be *)b;
	unsigned i = 0;
	for (; i < n; i++) {
		struct mp_io_req r = reqs[i];
		uint64_t k = ++s->n_req;
		if (s->f.eio_at && k >= s->f.eio_at && k - s->f.eio_at < s->f.eio_count) {
			mp_io_ring_push(&s->fake, r.tag, -EIO, NULL);
			continue;
		}
		if (s->f.eagain_every && k % s->f.eagain_every == 0) {
			mp_io_ring_push(&s->fake, r.tag, -EAGAIN, NULL);
			continue;
		}
		if (s->f.short_every && k % s->f.short_every == 0 && r.len > MP_IO_ALIGN &&
		    !(s->inner->ops->caps & MP_IO_CAP_NOPOOL)) {
			uint64_t half = (r.len / 2) & ~(uint64_t)(MP_IO_ALIGN - 1);
			r.len = half ? half : MP_IO_ALIGN;
		}
		int rc = s->inner->ops->submit(s->inner, &r, 1);
		if (rc <= 0) {
			s->n_req--;
			return i ? (int)i : rc;
		}
		s->inner_inflight++;
	}
	return (int)i;
}

static int fault_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct fault_be *s = (struct fault_be *)b;
	unsigned n = mp_io_ring_pop(&s->fake, out, max);
	if (n < max) {
		unsigned imin = n >= min ? 0 : min - n;
		if (imin > s->inner_inflight)
			imin = s->inner_inflight;
		int k = s->inner->ops->reap(s->inner, out + n, max - n, imin);
		if (k < 0 && n == 0)
			return k;
		if (k > 0) {
			n += (unsigned)k;
			s->inner_inflight -= (unsigned)k;
		}
	}
	if (s->f.reorder)
		for (unsigned i = 0; i < n / 2; i++) {
			struct mp_io_cqe t = out[i];
			out[i] = out[n - 1 - i];
			out[n - 1 - i] = t;
		}
	if (s->f.delay_us && n)
		usleep(s->f.delay_us * n);
	return (int)n;
}

static int fault_cancel(struct mp_io_backend *b, uint64_t tag)
{
	struct fault_be *s = (struct fault_be *)b;
	return s->inner->ops->cancel ? s->inner->ops->cancel(s->inner, tag) : 0;
}

static int fault_probe(char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	return 0;
}

const struct mp_io_ops mp_io_fault_ops = {
	.name = "fault",
	.version = MP_IO_VERSION,
	.caps = 0,
	.probe = fault_probe,
	.open = NULL,
	.add_file = fault_add_file,
	.submit = fault_submit,
	.reap = fault_reap,
	.cancel = fault_cancel,
	.close = fault_close,
};
