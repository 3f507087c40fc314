/*
 * io.h — the I/O backend interface of the pager (like SQLite's VFS or fio's
 * engines): one versioned table of functions per backend, in an explicit
 * ordered table guarded by HAVE_*, never registered by constructors.
 *
 * Backends: io_uring (O_DIRECT, registered buffers and files), libaio
 * (O_DIRECT), sync (pread on a few threads) and mmap (no pool: the page cache
 * does everything; the llama.cpp-like baseline).  `auto` takes the first
 * usable one in that order and says once why it skipped the others.
 *
 * Two levels.  The ops table (struct mp_io_ops) is what a backend file
 * provides: raw open/add_file/submit/reap/cancel/close on its own instance.
 * The pager never calls it directly: it calls the thin mp_io_* wrappers
 * below, which own the table of requests in flight and keep the contract:
 *
 *   - a request completes exactly once, with its whole length or an error:
 *     a short transfer is resubmitted for the rest, -EINTR and -EAGAIN are
 *     retried, a read that meets the end of the file before the bytes the
 *     file had at add_file fails with -ENODATA (the file was truncated);
 *   - a cancelled request still completes once (result -MP_ECANCELLED or its
 *     data); its buffer stays the backend's until then;
 *   - requests to an MP_IO_CAP_ALIGNED backend are 4 KiB aligned in offset,
 *     length and buffer (the pager reads the aligned cover of each range);
 *   - an mp_io is not thread-safe: its user serialises the calls.
 *
 * Tests get two more backends outside the auto table: "memory" (serves a
 * copy of the file from the heap, like fio's null engine) and the fault
 * shim (wraps a real backend; EIO at a chosen request, short completions,
 * reordering, delay, a failing open), selected through mp_io_config.fault.
 */
#ifndef MP_IO_H
#define MP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MP_IO_VERSION 3

enum mp_io_cap {
	MP_IO_CAP_ASYNC = 1u << 0,       /* submit returns before the data lands */
	MP_IO_CAP_ALIGNED = 1u << 1,     /* offsets, lengths, buffers 4 KiB aligned (O_DIRECT) */
	MP_IO_CAP_REGBUF = 1u << 2,      /* buffers registered with the kernel once */
	MP_IO_CAP_NOPOOL = 1u << 3,      /* serves pointers into a mapping; no pool */
};

#define MP_IO_ALIGN 4096u            /* bytes: O_DIRECT alignment we always honour */

/* One read.  buf is NULL for an MP_IO_CAP_NOPOOL backend (it serves a
 * pointer into its mapping in the completion). */
struct mp_io_req {
	uint32_t file;                   /* index returned by mp_io_add_file */
	uint32_t pad_;                   /* zero */
	uint64_t offset;                 /* bytes from the start of the file */
	uint64_t len;                    /* bytes, > 0 */
	void *buf;                       /* destination, len bytes (NULL: NOPOOL) */
	uint64_t tag;                    /* caller's, returned in the completion */
};

struct mp_io_cqe {
	uint64_t tag;                    /* the request's tag */
	int64_t result;                  /* bytes delivered (the whole request, or
	                                    up to the file's end), or -errno/-MP_E* */
	const void *data;                /* where the bytes are: buf, or the mapping */
};

/* Fault injection (tests): the shim wraps the chosen backend when
 * mp_io_config.fault is non-NULL.  Request numbers count submissions to
 * the backend, from 1, resubmissions of remainders included. */
struct mp_io_fault {
	uint64_t eio_at;                 /* request number that fails with -EIO; 0: none */
	uint64_t eio_count;              /* how many requests from eio_at fail (0 means 1) */
	uint32_t short_every;            /* every Nth request transfers only a part; 0: none */
	uint32_t eagain_every;           /* every Nth request completes with -EAGAIN; 0: none */
	uint32_t reorder;                /* 1: completions handed out newest first */
	uint32_t delay_us;               /* µs slept before each completion is handed out */
	const char *fail_open;           /* backend name whose open fails with -ENOSYS
	                                    (as io_uring_setup under seccomp); NULL: none */
};

struct mp_io_config {
	uint32_t depth;                  /* requests in flight at most; 0: 32 */
	uint32_t threads;                /* sync backend's threads; 0: 4 */
	uint32_t max_files;              /* files that may be added; 0: 64 */
	uint32_t pad_;                   /* zero */
	void *buf_base;                  /* pool to register (REGBUF backends), or NULL */
	uint64_t buf_len;                /* bytes at buf_base */
	const struct mp_io_fault *fault; /* NULL: no shim */
	uint64_t reg_max;                /* register buf_base at open only when buf_len <= this,
	                                    else lazily; 0: MP_IO_REG_MAX; UINT64_MAX: always */
	uint64_t reg_piece;              /* bytes per lazily registered piece, a multiple of
	                                    4 KiB; 0: MP_IO_REG_PIECE (tests use small ones) */
};

/* Registering a pool with io_uring pins all of it at start (and counts it
 * against RLIMIT_MEMLOCK); above this size the pool is registered lazily, a
 * 1 GiB piece when a read first lands in it (bench/README.md: what
 * registration buys). */
#define MP_IO_REG_MAX (2ull << 30)
#define MP_IO_REG_PIECE (1ull << 30) /* bytes: the kernel's limit per registered buffer */

/* What a backend had to give up, reported at start and in the stats segment
 * (never silent).  Bits of mp_io_fallbacks(). */
enum mp_io_fallback {
	MP_IO_FB_BUFFERED = 1u << 0,     /* O_DIRECT refused by the file system: buffered reads,
	                                    whose pages the page cache holds outside the limit */
	MP_IO_FB_REG_REFUSED = 1u << 1,  /* io_uring buffer registration refused (memlock) */
	MP_IO_FB_REG_LAZY = 1u << 2,     /* pool above reg_max: registered piece by piece as
	                                    reads first land in it, not pinned at start */
	MP_IO_FB_FILES_REFUSED = 1u << 3,/* io_uring file registration refused */
};

struct mp_io;                        /* the wrapper the pager uses; opaque */
struct mp_io_backend;                /* a backend's own instance (io_internal.h) */

struct mp_io_ops {
	const char *name;                /* "uring", "aio", "sync", "mmap", "memory", "fault" */
	unsigned version;                /* MP_IO_VERSION */
	unsigned caps;                   /* enum mp_io_cap bits */
	/* 0 if this machine can run the backend now, else -errno/-MP_E* with a
	 * sentence in why (e.g. io_uring_setup refused by seccomp). */
	int (*probe)(char *why, size_t why_len);
	/* Raw methods, called only through the mp_io_* wrappers (io_internal.h
	 * states their contract). */
	int (*open)(const struct mp_io_config *cfg, struct mp_io_backend **out,
	            char *msg, size_t msg_len);
	int (*add_file)(struct mp_io_backend *b, uint32_t index, const char *path,
	                uint64_t *size, char *msg, size_t msg_len);
	int (*submit)(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n);
	int (*reap)(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min);
	int (*cancel)(struct mp_io_backend *b, uint64_t tag);
	void (*close)(struct mp_io_backend *b);
	/* Optional (NULL: nothing to prepare): makes the pool's buffer pieces
	 * that lie wholly inside [off, off+len) of it ready for reads ahead of
	 * them (io_uring: registers the lazily registered ones).  Returns the
	 * pieces it registered now, or -errno. */
	int (*prepare)(struct mp_io_backend *b, uint64_t off, uint64_t len);
};

/* Backends built into this binary, in auto-selection order; NULL-terminated. */
const struct mp_io_ops *const *mp_io_backends(void);

/* Backend by name ("uring", "aio", "sync", "mmap"), or NULL. */
const struct mp_io_ops *mp_io_find(const char *name);

/* The test backends: "memory" (heap copy of each file, synchronous). */
extern const struct mp_io_ops mp_io_memory_ops;

/* Chooses a backend for a --io value: "auto" takes the first that probes
 * usable, writing into note (if non-NULL) why it skipped the others; a named
 * one must be built and usable.  Returns 0 and *out, or -MP_EARG (unknown
 * name), -MP_EUNAVAIL (not built / not usable) with the reason in note.
 * MOEPAGER_IO_DISABLE=uring,aio (a comma list) makes those probes fail, as
 * a seccomp filter would. */
int mp_io_select(const char *name, const struct mp_io_ops **out, char *note, size_t note_len);

/* Opens backend ops (wrapped in the fault shim when cfg->fault).  Returns 0
 * and *out, or -errno/-MP_E* with a sentence in msg. */
int mp_io_open(const struct mp_io_ops *ops, const struct mp_io_config *cfg,
               struct mp_io **out, char *msg, size_t msg_len);

/* --io NAME, opened: for "auto", a backend that probes usable but fails to
 * open (io_uring_setup refused) is skipped like one that fails its probe,
 * and note says why once.  Returns 0 and *out or the last error. */
int mp_io_open_name(const char *name, const struct mp_io_config *cfg,
                    struct mp_io **out, char *note, size_t note_len);

/* Adds a file (read-only; O_DIRECT where the backend wants it and the file
 * system allows).  Returns its index (>= 0) and its size in *size, or
 * -errno with the path in mp_io_message(). */
int mp_io_add_file(struct mp_io *io, const char *path, uint64_t *size);

/* Submits up to n requests; returns how many were accepted (fewer when the
 * depth is reached: the caller keeps the rest), or -EINVAL (bad file index,
 * range beyond the file, misaligned for an ALIGNED backend) / -errno. */
int mp_io_submit(struct mp_io *io, const struct mp_io_req *reqs, unsigned n);

/* Hands out up to max completed requests, waiting for at least min (min is
 * clamped to the requests in flight).  Returns the count or -errno. */
int mp_io_reap(struct mp_io *io, struct mp_io_cqe *out, unsigned max, unsigned min);

/* Asks for the request with this tag to be abandoned; it still completes
 * once.  Returns 0, or -MP_ENOTFOUND when no such request is in flight. */
int mp_io_cancel(struct mp_io *io, uint64_t tag);

/* Prepares the pool's buffer pieces wholly inside [off, off+len) (bytes
 * from buf_base) for reads, so that no read pays for it: io_uring registers
 * (pins) a lazily registered piece here instead of on its first read.  Call
 * it with the pages already faulted in.  Returns the pieces registered now
 * (0 when the backend has nothing to prepare), or -errno. */
int mp_io_prepare(struct mp_io *io, uint64_t off, uint64_t len);

/* Buffer pieces registered so far by mp_io_prepare (*ahead) and by a read
 * that found its piece unregistered (*on_read). */
void mp_io_reg_counts(const struct mp_io *io, uint32_t *ahead, uint32_t *on_read);

unsigned mp_io_inflight(const struct mp_io *io);  /* requests submitted, not reaped */
unsigned mp_io_depth(const struct mp_io *io);     /* the most in flight */
const struct mp_io_ops *mp_io_ops_of(const struct mp_io *io); /* the real backend */
const char *mp_io_message(const struct mp_io *io); /* last error sentence, "" if none */
/* enum mp_io_fallback bits: what this backend and its files gave up so far. */
unsigned mp_io_fallbacks(const struct mp_io *io);

/* Waits for every request in flight (their results are dropped), closes
 * the files and the backend.  NULL is fine. */
void mp_io_close(struct mp_io *io);

#endif
