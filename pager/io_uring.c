/*
 * io_uring.c — the io_uring backend: O_DIRECT reads into the pool, which is
 * registered with the ring once (read_fixed: no page pinning per read), files
 * registered in a sparse table (no fd lookup per read), a whole batch
 * submitted with one io_uring_enter, and completions taken from the shared
 * completion ring in batches (io_uring_peek_batch_cqe + cq_advance): no
 * system call per completion, one only when the caller must wait.
 *
 * Registration is an optimisation: when the kernel refuses it (memlock
 * limit, old kernel) the backend reads with plain fds and buffers, and says
 * so (MP_IO_FB_REG_REFUSED / MP_IO_FB_FILES_REFUSED).  A pool above
 * cfg->reg_max (MP_IO_REG_MAX) is not registered at start, which would pin
 * every page of it before the first token (100 GB for R1 on a 128 GB
 * desktop): the buffer table is made sparse and each 1 GiB piece of the pool
 * is registered when a read first lands in it, so pinning follows the pool's
 * filling (MP_IO_FB_REG_LAZY).  A piece the kernel refuses is read
 * unregistered (MP_IO_FB_REG_REFUSED); bench/README.md measures both.
 * The pager's pool warmer registers each piece once it has faulted it in
 * (mp_io_prepare, under the pager's io_mu), so a read registers a piece
 * only when it gets there before the warmer (counted in reg_on_read).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

#define CANCEL_TAG UINT64_MAX           /* user_data of our cancel requests */
#define READ_MAX_LEN (1ull << 30)       /* bytes: one sqe reads at most this (len is 32-bit) */

struct uring_be {
	struct mp_io_backend base;       /* methods; first */
	struct io_uring ring;            /* sq and cq, 2x depth completions */
	int *fds;                        /* [max_files], -1: none */
	uint32_t max_files;              /* entries in fds */
	int files_registered;            /* 1: sparse file table in the ring */
	int bufs_registered;             /* 1: pool registered as n_iov buffers */
	char *buf_base;                  /* the pool, or NULL */
	uint64_t buf_len;                /* bytes */
	uint64_t piece;                  /* bytes per registered buffer (cfg->reg_piece) */
	uint32_t n_iov;                  /* registered buffers, piece bytes each but the last */
	uint8_t *lazy;                   /* [n_iov] lazy mode: 0 not yet, 1 registered, 2 refused;
	                                    NULL: all registered at open (or none) */
	uint32_t inflight;               /* reads submitted, not reaped */
	uint32_t cancels;                /* cancel sqes whose cqe is outstanding */
};

/* Piece k of the pool: piece bytes from k * piece, the last one shorter. */
static struct iovec piece_iov(const struct uring_be *u, uint32_t k)
{
	uint64_t off = (uint64_t)k * u->piece;
	return (struct iovec){ u->buf_base + off, u->buf_len - off < u->piece ? u->buf_len - off : u->piece };
}

static int uring_probe(char *why, size_t why_len)
{
	if (mp_io_disabled("uring", why, why_len))
		return -MP_EUNAVAIL;
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		snprintf(why, why_len, "io_uring_setup failed: %s", strerror(-rc));
		return rc;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

static void uring_close(struct mp_io_backend *b)
{
	struct uring_be *u = (struct uring_be *)b;
	if (!u)
		return;
	if (u->ring.ring_fd > 0)
		io_uring_queue_exit(&u->ring);
	for (uint32_t i = 0; u->fds && i < u->max_files; i++)
		if (u->fds[i] >= 0)
			close(u->fds[i]);
	mp_free(u->fds);
	mp_free(u->lazy);
	mp_free(u);
}

static int uring_open(const struct mp_io_config *cfg, struct mp_io_backend **out,
                      char *msg, size_t msg_len)
{
	struct uring_be *u = mp_calloc(1, sizeof *u);
	if (!u)
		return -ENOMEM;
	u->base.ops = &mp_io_uring_ops;
	u->ring.ring_fd = -1;
	u->max_files = cfg->max_files;
	u->fds = mp_malloc_array(u->max_files, sizeof *u->fds);
	if (!u->fds) {
		uring_close(&u->base);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < u->max_files; i++)
		u->fds[i] = -1;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * cfg->depth + 16;     /* reads plus cancel completions */
	int rc = io_uring_queue_init_params(cfg->depth, &u->ring, &p);
	if (rc < 0) {
		u->ring.ring_fd = -1;
		snprintf(msg, msg_len, "io_uring_setup failed: %s", strerror(-rc));
		uring_close(&u->base);
		return rc;
	}
	u->files_registered = io_uring_register_files_sparse(&u->ring, u->max_files) == 0;
	if (!u->files_registered)
		u->base.fallbacks |= MP_IO_FB_FILES_REFUSED;
	uint64_t reg_max = cfg->reg_max ? cfg->reg_max : MP_IO_REG_MAX;
	u->piece = cfg->reg_piece ? cfg->reg_piece : MP_IO_REG_PIECE;
	if (u->piece > MP_IO_REG_PIECE || u->piece % MP_IO_ALIGN) {
		snprintf(msg, msg_len, "io_uring: reg_piece %llu bytes: expected a multiple of 4 KiB "
		         "up to 1 GiB", (unsigned long long)u->piece);
		uring_close(&u->base);
		return -MP_EARG;
	}
	if (cfg->buf_base && cfg->buf_len > reg_max) {
		u->buf_base = cfg->buf_base;
		u->buf_len = cfg->buf_len;
		u->n_iov = (uint32_t)((cfg->buf_len + u->piece - 1) / u->piece);
		u->lazy = mp_calloc(u->n_iov, 1);
		u->bufs_registered = u->lazy && io_uring_register_buffers_sparse(&u->ring, u->n_iov) == 0;
		u->base.fallbacks |= u->bufs_registered ? MP_IO_FB_REG_LAZY : MP_IO_FB_REG_REFUSED;
	} else if (cfg->buf_base && cfg->buf_len) {
		u->buf_base = cfg->buf_base;
		u->buf_len = cfg->buf_len;
		u->n_iov = (uint32_t)((cfg->buf_len + u->piece - 1) / u->piece);
		struct iovec *iov = mp_calloc(u->n_iov, sizeof *iov);
		if (iov) {
			for (uint32_t i = 0; i < u->n_iov; i++) {
				iov[i] = piece_iov(u, i);
			}
			u->bufs_registered = io_uring_register_buffers(&u->ring, iov, u->n_iov) == 0;
			mp_free(iov);
		}
		if (!u->bufs_registered)
			u->base.fallbacks |= MP_IO_FB_REG_REFUSED;
	}
	*out = &u->base;
	return 0;
}

static int uring_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                          uint64_t *size, char *msg, size_t msg_len)
{
	struct uring_be *u = (struct uring_be *)b;
	int rc = mp_io_open_file(path, 1, &u->fds[index], size, msg, msg_len);
	if (rc < 0)
		return rc;
	if (u->files_registered &&
	    io_uring_register_files_update(&u->ring, index, &u->fds[index], 1) != 1) {
		u->files_registered = 0;   /* then every read uses the plain fd */
		u->base.fallbacks |= MP_IO_FB_FILES_REFUSED;
	}
	return 0;
}

static struct io_uring_sqe *get_sqe(struct uring_be *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {                        /* sq full: hand what we have to the kernel */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return sqe;
}

/* In lazy mode, registers piece k (pins its pages) unless done or refused
 * before; 1 if it did so now. */
static int register_piece(struct uring_be *u, uint32_t k)
{
	if (u->lazy[k])
		return 0;
	struct iovec iov = piece_iov(u, k);
	u->lazy[k] = io_uring_register_buffers_update_tag(&u->ring, k, &iov, NULL, 1) == 1 ? 1 : 2;
	if (u->lazy[k] == 2)
		u->base.fallbacks |= MP_IO_FB_REG_REFUSED;
	return u->lazy[k] == 1;
}

/* 1 if buffer k may be used with read_fixed; in lazy mode registers it
 * on first use (counted: the warmer's prepare should have come first). */
static int buf_ready(struct uring_be *u, uint32_t k)
{
	if (!u->lazy)
		return 1;
	u->base.reg_on_read += (uint32_t)register_piece(u, k);
	return u->lazy[k] == 1;
}

/* Registers the lazy pieces wholly inside [off, off+len) of the pool (the
 * last piece counts as whole when the range reaches the pool's end). */
static int uring_prepare(struct mp_io_backend *b, uint64_t off, uint64_t len)
{
	struct uring_be *u = (struct uring_be *)b;
	if (!u->lazy || !u->bufs_registered)
		return 0;
	uint64_t end = off + len < u->buf_len ? off + len : u->buf_len;
	int n = 0;
	for (uint32_t k = (uint32_t)((off + u->piece - 1) / u->piece); k < u->n_iov; k++) {
		struct iovec iov = piece_iov(u, k);
		if ((uint64_t)k * u->piece + iov.iov_len > end)
			break;
		n += register_piece(u, k);
	}
	u->base.reg_ahead += (uint32_t)n;
	return n;
}

static int uring_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct uring_be *u = (struct uring_be *)b;
	unsigned i = 0;
	for (; i < n; i++) {
		const struct mp_io_req *r = &reqs[i];
		struct io_uring_sqe *sqe = get_sqe(u);
		if (!sqe)
			break;
		uint64_t len = r->len < READ_MAX_LEN ? r->len : READ_MAX_LEN;  /* short: resubmitted */
		char *buf = r->buf;
		int fd = u->files_registered ? (int)r->file : u->fds[r->file];
		uint64_t at = (uint64_t)((uintptr_t)buf - (uintptr_t)u->buf_base);
		uint32_t k = (uint32_t)(at / u->piece);
		if (u->bufs_registered && (uintptr_t)buf >= (uintptr_t)u->buf_base && at < u->buf_len &&
		    buf_ready(u, k)) {
			uint64_t room = (uint64_t)(k + 1) * u->piece - at;   /* stay in one buffer */
			if (len > room)
				len = room;
			io_uring_prep_read_fixed(sqe, fd, buf, (unsigned)len, r->offset, (int)k);
		} else {
			io_uring_prep_read(sqe, fd, buf, (unsigned)len, r->offset);
		}
		if (u->files_registered)
			sqe->flags |= IOSQE_FIXED_FILE;
		io_uring_sqe_set_data64(sqe, r->tag);
	}
	int rc;
	do
		rc = io_uring_submit(&u->ring);
	while (rc == -EINTR);
	if (rc < 0 && i > 0) {
		/* The sqes stay in the ring and go with the next enter; count them. */
		rc = 0;
	}
	u->inflight += i;
	return rc < 0 ? rc : (int)i;
}

static int uring_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct uring_be *u = (struct uring_be *)b;
	struct io_uring_cqe *cqes[64];
	if (min > u->inflight)
		min = u->inflight;
	unsigned got = 0;
	for (;;) {
		unsigned want = max - got < 64 ? max - got : 64;
		unsigned n = want ? io_uring_peek_batch_cqe(&u->ring, cqes, want) : 0;
		for (unsigned i = 0; i < n; i++) {
			uint64_t tag = io_uring_cqe_get_data64(cqes[i]);
			if (tag == CANCEL_TAG) {
				u->cancels--;
				continue;
			}
			out[got].tag = tag;
			out[got].result = cqes[i]->res;
			out[got].data = NULL;
			got++;
		}
		io_uring_cq_advance(&u->ring, n);
		if (got >= min || got >= max)
			break;
		if (n == 0) {
			struct io_uring_cqe *cqe;
			int rc = io_uring_wait_cqe(&u->ring, &cqe);
			if (rc < 0 && rc != -EINTR && rc != -ETIME) {
				u->inflight -= got;
				return got ? (int)got : rc;
			}
		}
	}
	u->inflight -= got;
	return (int)got;
}

static int uring_cancel(struct mp_io_backend *b, uint64_t tag)
{
	struct uring_be *u = (struct uring_be *)b;
	struct io_uring_sqe *sqe = get_sqe(u);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_cancel64(sqe, tag, 0);
	io_uring_sqe_set_data64(sqe, CANCEL_TAG);
	u->cancels++;
	io_uring_submit(&u->ring);
	return 0;
}

const struct mp_io_ops mp_io_uring_ops = {
	.name = "uring",
	.version = MP_IO_VERSION,
	.caps = MP_IO_CAP_ASYNC | MP_IO_CAP_ALIGNED | MP_IO_CAP_REGBUF,
	.probe = uring_probe,
	.open = uring_open,
	.add_file = uring_add_file,
	.submit = uring_submit,
	.reap = uring_reap,
	.cancel = uring_cancel,
	.close = uring_close,
	.prepare = uring_prepare,
};
