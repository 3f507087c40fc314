/*
 * io.c — the backend table, probes and selection, and the mp_io_* wrapper
 * every caller goes through: it owns the requests in flight, checks them,
 * resubmits short transfers for the rest, retries EINTR/EAGAIN and turns an
 * early end of file into -ENODATA, so that each backend stays a thin
 * translation to its kernel interface (io_internal.h) and every backend keeps
 * the same contract (io.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "io.h"
#include "io_internal.h"

#define MAX_RETRIES 10000u   /* EINTR/EAGAIN retries of one request before giving up */

static const struct mp_io_ops *const backends[] = {
#ifdef HAVE_LIBURING
	&mp_io_uring_ops,
#endif
#ifdef HAVE_LIBAIO
	&mp_io_aio_ops,
#endif
	&mp_io_sync_ops,
	&mp_io_mmap_ops,
	NULL,
};

/* Names a user may ask for, built or not: to tell "unknown" from "not built". */
static const char *const known_names[] = { "uring", "aio", "sync", "mmap" };

const struct mp_io_ops *const *mp_io_backends(void)
{
	return backends;
}

const struct mp_io_ops *mp_io_find(const char *name)
{
	for (const struct mp_io_ops *const *b = backends; *b; b++)
		if (strcmp((*b)->name, name) == 0)
			return *b;
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static void append(char *note, size_t len, const char *fmt, ...)
{
	if (!note || !len)
		return;
	size_t used = strnlen(note, len);
	if (used + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note + used, len - used, fmt, ap);
	va_end(ap);
}

int mp_io_disabled(const char *name, char *why, size_t why_len)
{
	const char *list = getenv("MOEPAGER_IO_DISABLE");
	if (!list)
		return 0;
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0) {
			snprintf(why, why_len, "disabled by MOEPAGER_IO_DISABLE=%s", list);
			return 1;
		}
		p += len + (end ? 1 : 0);
	}
	return 0;
}

int mp_io_open_file(const char *path, int direct, int *fd, uint64_t *size,
                    char *msg, size_t msg_len)
{
	int f = -1;
	if (direct)
		f = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (f < 0 && (!direct || errno == EINVAL))   /* EINVAL: no O_DIRECT here */
		f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0) {
		int e = errno;
		snprintf(msg, msg_len, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(f, &st) != 0) {
		int e = errno;
		snprintf(msg, msg_len, "%s: cannot stat: %s", path, strerror(e));
		close(f);
		return -e;
	}
	*fd = f;
	*size = (uint64_t)st.st_size;
	return 0;
}

int mp_io_select(const char *name, const struct mp_io_ops **out, char *note, size_t note_len)
{
	char why[256];
	if (note && note_len)
		note[0] = 0;
	if (strcmp(name, "auto") == 0) {
		for (const struct mp_io_ops *const *b = backends; *b; b++) {
			why[0] = 0;
			if ((*b)->probe(why, sizeof why) == 0) {
				*out = *b;
				return 0;
			}
			append(note, note_len, "%s unusable (%s); ", (*b)->name, why);
		}
		return -MP_EUNAVAIL;   /* unreachable while mmap is always usable */
	}
	const struct mp_io_ops *b = mp_io_find(name);
	if (!b) {
		for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
			if (strcmp(name, known_names[i]) == 0) {
				append(note, note_len, "--io %s: this build has no %s backend "
				       "(configured without its library)", name, name);
				return -MP_EUNAVAIL;
			}
		append(note, note_len, "--io %s: expected auto, uring, aio, sync or mmap", name);
		return -MP_EARG;
	}
	why[0] = 0;
	int rc = b->probe(why, sizeof why);
	if (rc < 0) {
		append(note, note_len, "--io %s: %s", name, why);
		return -MP_EUNAVAIL;
	}
	*out = b;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The wrapper */

struct flight {
	struct mp_io_req req;            /* as the caller gave it */
	uint64_t done;                   /* bytes delivered so far */
	uint64_t expect;                 /* bytes that make it whole: len, or up to EOF */
	uint32_t retries;                /* EINTR/EAGAIN resubmissions */
	uint8_t busy;                    /* 1 while in flight */
	uint8_t cancelled;               /* mp_io_cancel was called */
};

struct mp_io {
	const struct mp_io_ops *ops;     /* the real backend (not the shim) */
	struct mp_io_backend *be;        /* what we call: the backend or the shim */
	uint32_t depth;                  /* entries in fl */
	uint32_t max_files;              /* entries in file_size */
	uint32_t n_files;                /* files added */
	uint32_t n_inflight;             /* busy entries */
	struct flight *fl;               /* [depth] */
	uint32_t *free_idx;              /* [depth] stack of free entries */
	uint32_t n_free;                 /* entries on it */
	uint64_t *file_size;             /* [max_files] bytes at add_file */
	struct mp_io_cqe *raw;           /* [depth] scratch for the backend's reap */
	unsigned fallbacks;              /* enum mp_io_fallback bits seen by the wrapper */
	struct mp_io_backend *inner;     /* the backend under the shim (its fallbacks) */
	char msg[512];                   /* last error sentence */
};

int mp_io_open(const struct mp_io_ops *ops, const struct mp_io_config *cfg_in,
               struct mp_io **out, char *msg, size_t msg_len)
{
	struct mp_io_config cfg = *cfg_in;
	if (!cfg.depth)
		cfg.depth = 32;
	if (!cfg.threads)
		cfg.threads = 4;
	if (!cfg.max_files)
		cfg.max_files = 64;
	if (cfg.depth > 65536 || cfg.max_files > 65536) {
		snprintf(msg, msg_len, "io: depth %u or max_files %u above 65536", cfg.depth, cfg.max_files);
		return -MP_EARG;
	}
	if (ops->version != MP_IO_VERSION) {
		snprintf(msg, msg_len, "io backend %s has interface version %u, expected %u",
		         ops->name, ops->version, MP_IO_VERSION);
		return -MP_EVERSION;
	}
	if (cfg.fault && cfg.fault->fail_open && strcmp(cfg.fault->fail_open, ops->name) == 0) {
		snprintf(msg, msg_len, "%s: open failed: %s (fault injection)", ops->name, strerror(ENOSYS));
		return -ENOSYS;
	}
	struct mp_io *io = mp_calloc(1, sizeof *io);
	int rc = -ENOMEM;
	if (!io)
		goto fail;
	io->ops = ops;
	io->depth = cfg.depth;
	io->max_files = cfg.max_files;
	io->fl = mp_calloc(cfg.depth, sizeof *io->fl);
	io->free_idx = mp_calloc(cfg.depth, sizeof *io->free_idx);
	io->raw = mp_calloc(cfg.depth, sizeof *io->raw);
	io->file_size = mp_calloc(cfg.max_files, sizeof *io->file_size);
	if (!io->fl || !io->free_idx || !io->raw || !io->file_size)
		goto fail;
	for (uint32_t i = 0; i < cfg.depth; i++)
		io->free_idx[i] = cfg.depth - 1 - i;
	io->n_free = cfg.depth;
	rc = ops->open(&cfg, &io->be, msg, msg_len);
	if (rc < 0)
		goto fail;
	io->inner = io->be;
	if (cfg.fault) {
		struct mp_io_backend *shim;
		rc = mp_io_fault_wrap(io->be, cfg.fault, cfg.depth, &shim);
		if (rc < 0) {
			io->be->ops->close(io->be);
			io->be = NULL;
			snprintf(msg, msg_len, "io: cannot set up the fault shim: %s", mp_strerror(rc));
			goto fail;
		}
		io->be = shim;
	}
	*out = io;
	return 0;
fail:
	if (rc == -ENOMEM && msg_len && !msg[0])
		snprintf(msg, msg_len, "io: out of memory");
	mp_io_close(io);
	return rc;
}

int mp_io_open_name(const char *name, const struct mp_io_config *cfg,
                    struct mp_io **out, char *note, size_t note_len)
{
	char why[256];
	if (note && note_len)
		note[0] = 0;
	if (strcmp(name, "auto") != 0) {
		const struct mp_io_ops *ops;
		int rc = mp_io_select(name, &ops, note, note_len);
		if (rc < 0)
			return rc;
		why[0] = 0;
		rc = mp_io_open(ops, cfg, out, why, sizeof why);
		if (rc < 0)
			append(note, note_len, "--io %s: %s", name, why);
		return rc;
	}
	int rc = -MP_EUNAVAIL;
	for (const struct mp_io_ops *const *b = backends; *b; b++) {
		why[0] = 0;
		rc = (*b)->probe(why, sizeof why);
		if (rc == 0)
			rc = mp_io_open(*b, cfg, out, why, sizeof why);
		if (rc == 0)
			return 0;
		append(note, note_len, "%s unusable (%s); ", (*b)->name, why);
	}
	return rc;
}

int mp_io_add_file(struct mp_io *io, const char *path, uint64_t *size)
{
	if (io->n_files >= io->max_files) {
		snprintf(io->msg, sizeof io->msg, "%s: more than %u files", path, io->max_files);
		return -MP_EARG;
	}
	uint64_t sz = 0;
	int rc = io->be->ops->add_file(io->be, io->n_files, path, &sz, io->msg, sizeof io->msg);
	if (rc < 0)
		return rc;
	io->file_size[io->n_files] = sz;
	if (size)
		*size = sz;
	if (io->ops->caps & MP_IO_CAP_ALIGNED) {
		/* the backend fell back to buffered reads if this is refused */
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		if (fd >= 0)
			close(fd);
		else if (errno == EINVAL)
			io->fallbacks |= MP_IO_FB_BUFFERED;
	}
	return (int)io->n_files++;
}

static int check_req(struct mp_io *io, const struct mp_io_req *r)
{
	if (r->file >= io->n_files || r->len == 0 || r->offset >= io->file_size[r->file] ||
	    r->len > UINT64_MAX - r->offset) {
		snprintf(io->msg, sizeof io->msg, "io: bad request: file %u offset %llu length %llu",
		         r->file, (unsigned long long)r->offset, (unsigned long long)r->len);
		return -EINVAL;
	}
	if (io->ops->caps & MP_IO_CAP_NOPOOL)
		return 0;
	if (!r->buf)
		return -EINVAL;
	if ((io->ops->caps & MP_IO_CAP_ALIGNED) &&
	    ((r->offset | r->len | (uintptr_t)r->buf) & (MP_IO_ALIGN - 1))) {
		snprintf(io->msg, sizeof io->msg, "io: %s needs 4 KiB aligned requests: offset %llu "
		         "length %llu", io->ops->name, (unsigned long long)r->offset,
		         (unsigned long long)r->len);
		return -EINVAL;
	}
	return 0;
}

int mp_io_submit(struct mp_io *io, const struct mp_io_req *reqs, unsigned n)
{
	struct mp_io_req batch[64];
	unsigned taken = 0;
	while (taken < n && io->n_free) {
		unsigned k = 0;
		uint32_t idx[64];
		while (k < 64 && taken + k < n && io->n_free) {
			const struct mp_io_req *r = &reqs[taken + k];
			int rc = check_req(io, r);
			if (rc < 0) {
				if (k == 0 && taken == 0)
					return rc;
				break;
			}
			uint32_t i = io->free_idx[--io->n_free];
			struct flight *f = &io->fl[i];
			memset(f, 0, sizeof *f);
			f->req = *r;
			uint64_t left = io->file_size[r->file] - r->offset;
			f->expect = r->len < left ? r->len : left;
			f->busy = 1;
			batch[k] = *r;
			batch[k].tag = i;
			idx[k++] = i;
		}
		if (!k)
			break;
		int rc = io->be->ops->submit(io->be, batch, k);
		unsigned ok = rc > 0 ? (unsigned)rc : 0;
		for (unsigned j = ok; j < k; j++) {   /* give back what was not started */
			io->fl[idx[j]].busy = 0;
			io->free_idx[io->n_free++] = idx[j];
		}
		io->n_inflight += ok;
		taken += ok;
		if (rc < 0 && taken == 0)
			return rc;
		if (ok < k)
			break;
	}
	return (int)taken;
}

/* One raw completion: 1 if it finished the request (written to *out), 0 if
 * the rest was resubmitted. */
static int finish_raw(struct mp_io *io, const struct mp_io_cqe *raw, struct mp_io_cqe *out)
{
	uint32_t i = (uint32_t)raw->tag;
	struct flight *f = &io->fl[i];
	int64_t res = raw->result;
	int64_t final = 0;
	if ((res == -EINTR || res == -EAGAIN) && !f->cancelled) {
		if (++f->retries > MAX_RETRIES)
			final = res;
	} else if (res < 0) {
		final = (res == -ECANCELED || f->cancelled) ? -MP_ECANCELLED : res;
	} else if (res == 0 && f->done < f->expect) {
		final = -ENODATA;          /* the file ends early: truncated under us */
	} else {
		f->done += (uint64_t)res;
		if (f->done >= f->expect)
			final = 1;
		else if (f->cancelled)
			final = -MP_ECANCELLED;
		else if ((io->ops->caps & MP_IO_CAP_ALIGNED) && (f->done & (MP_IO_ALIGN - 1)))
			final = -ENODATA;  /* an unaligned short read: only at a new EOF */
	}
	if (final == 0) {                  /* resubmit the rest */
		struct mp_io_req r = f->req;
		r.offset += f->done;
		r.len -= f->done;
		if (r.buf)
			r.buf = (char *)r.buf + f->done;
		r.tag = i;
		int rc = io->be->ops->submit(io->be, &r, 1);
		if (rc == 1)
			return 0;
		final = rc < 0 ? rc : -EAGAIN;
	}
	out->tag = f->req.tag;
	out->result = final == 1 ? (int64_t)(f->done < f->req.len ? f->done : f->req.len) : final;
	out->data = f->req.buf ? f->req.buf : raw->data;
	f->busy = 0;
	io->free_idx[io->n_free++] = i;
	io->n_inflight--;
	return 1;
}

int mp_io_reap(struct mp_io *io, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	unsigned got = 0;
	if (min > max)
		min = max;
	while (got < max) {
		unsigned need = got < min ? 1 : 0;
		if (need && io->n_inflight == 0)
			break;
		unsigned room = max - got;
		if (room > io->depth)
			room = io->depth;
		int n = io->be->ops->reap(io->be, io->raw, room, need);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return got ? (int)got : n;
		if (n == 0 && !need)
			break;
		for (int j = 0; j < n; j++)
			got += (unsigned)finish_raw(io, &io->raw[j], &out[got]);
	}
	return (int)got;
}

int mp_io_cancel(struct mp_io *io, uint64_t tag)
{
	for (uint32_t i = 0; i < io->depth; i++) {
		struct flight *f = &io->fl[i];
		if (f->busy && f->req.tag == tag) {
			f->cancelled = 1;
			if (io->be->ops->cancel)
				io->be->ops->cancel(io->be, i);
			return 0;
		}
	}
	return -MP_ENOTFOUND;
}

int mp_io_prepare(struct mp_io *io, uint64_t off, uint64_t len)
{
	/* the real backend's pool, under the shim too: a shim adds no buffers */
	if (!io->inner->ops->prepare || !len)
		return 0;
	return io->inner->ops->prepare(io->inner, off, len);
}

void mp_io_reg_counts(const struct mp_io *io, uint32_t *ahead, uint32_t *on_read)
{
	*ahead = io->inner->reg_ahead;
	*on_read = io->inner->reg_on_read;
}

unsigned mp_io_inflight(const struct mp_io *io)
{
	return io->n_inflight;
}

unsigned mp_io_depth(const struct mp_io *io)
{
	return io->depth;
}

const struct mp_io_ops *mp_io_ops_of(const struct mp_io *io)
{
	return io->ops;
}

const char *mp_io_message(const struct mp_io *io)
{
	return io->msg;
}

unsigned mp_io_fallbacks(const struct mp_io *io)
{
	return io->fallbacks | (io->inner ? io->inner->fallbacks : 0);
}

void mp_io_close(struct mp_io *io)
{
	if (!io)
		return;
	if (io->be) {
		struct mp_io_cqe c[16];
		for (uint32_t i = 0; i < io->depth; i++)
			if (io->fl[i].busy)
				mp_io_cancel(io, io->fl[i].req.tag);
		while (io->n_inflight)
			if (mp_io_reap(io, c, 16, 1) <= 0)
				break;
		io->be->ops->close(io->be);
	}
	mp_free(io->fl);
	mp_free(io->free_idx);
	mp_free(io->raw);
	mp_free(io->file_size);
	mp_free(io);
}
