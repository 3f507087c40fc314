/*
 * io_internal.h — what a backend file implements, and helpers they share.
 * Not for the pager: it calls the mp_io_* wrappers of io.h.
 *
 * Each backend's instance struct starts with struct mp_io_backend (the
 * methods pointer first, like SQLite's sqlite3_file).  Raw method contract:
 *   open      makes an instance for cfg (depth, threads, max_files, pool);
 *   add_file  opens path read-only at the given index (< cfg->max_files),
 *             sets *size; O_DIRECT for ALIGNED backends when the file system
 *             allows it (mp_io_open_file);
 *   submit    starts n requests (tags are the wrapper's); returns how many
 *             were started or -errno.  The wrapper never has more than
 *             cfg->depth requests in flight;
 *   reap      returns up to max finished requests, waiting for min; a result
 *             is the raw one: bytes (possibly short), or -errno (EINTR and
 *             EAGAIN included: the wrapper retries them);
 *   cancel    best effort; the request still completes once;
 *   close     called with nothing in flight; frees everything;
 *   prepare   optional; under the same serialisation as the others.
 */
#ifndef MP_IO_INTERNAL_H
#define MP_IO_INTERNAL_H

#include <stdint.h>
#include "io.h"

struct mp_io_backend {
	const struct mp_io_ops *ops;     /* methods; first in every backend struct */
	unsigned fallbacks;              /* enum mp_io_fallback bits the backend set */
	uint32_t reg_ahead;              /* buffer pieces registered by prepare */
	uint32_t reg_on_read;            /* buffer pieces registered by a read's submit */
};

/* A ring of completions, for backends that finish reads before reap
 * (sync's workers, mmap, memory) and for the shim's injected ones.  Its
 * capacity is the depth, which bounds what can be outstanding. */
struct mp_io_ring {
	struct mp_io_cqe *e;             /* [cap] */
	uint32_t cap;                    /* entries */
	uint32_t head;                   /* index of the oldest */
	uint32_t n;                      /* entries held */
};

/* Appends a completion (the caller keeps n < cap). */
static inline void mp_io_ring_push(struct mp_io_ring *r, uint64_t tag, int64_t result,
                                   const void *data)
{
	struct mp_io_cqe *c = &r->e[(r->head + r->n++) % r->cap];
	c->tag = tag;
	c->result = result;
	c->data = data;
}

/* Moves up to max completions, oldest first, to out; returns the count. */
static inline unsigned mp_io_ring_pop(struct mp_io_ring *r, struct mp_io_cqe *out, unsigned max)
{
	unsigned k = 0;
	for (; k < max && r->n; k++) {
		out[k] = r->e[r->head];
		r->head = (r->head + 1) % r->cap;
		r->n--;
	}
	return k;
}

/* Opens path read-only; with direct, tries O_DIRECT first and falls back to
 * a buffered descriptor when the file system refuses it (tmpfs).  Returns 0
 * with *fd and *size, or -errno with a sentence naming the path in msg. */
int mp_io_open_file(const char *path, int direct, int *fd, uint64_t *size,
                    char *msg, size_t msg_len);

/* 1 if MOEPAGER_IO_DISABLE lists name (the seccomp simulation), with why. */
int mp_io_disabled(const char *name, char *why, size_t why_len);

/* The shim: wraps inner (already open) with the faults in f. */
int mp_io_fault_wrap(struct mp_io_backend *inner, const struct mp_io_fault *f,
                     uint32_t depth, struct mp_io_backend **out);

#ifdef HAVE_LIBURING
extern const struct mp_io_ops mp_io_uring_ops;
#endif
#ifdef HAVE_LIBAIO
extern const struct mp_io_ops mp_io_aio_ops;
#endif
extern const struct mp_io_ops mp_io_sync_ops;
extern const struct mp_io_ops mp_io_mmap_ops;

#endif
