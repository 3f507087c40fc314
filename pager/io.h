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
 * The contract every backend keeps: a request completes with its whole length
 * or with an error (short transfers are resubmitted for the rest inside the
 * backend); EINTR and EAGAIN are retried, never reported.
 */
#ifndef MP_IO_H
#define MP_IO_H

#include <stddef.h>
#include <stdint.h>

#define MP_IO_VERSION 1

enum mp_io_cap {
	MP_IO_CAP_ASYNC = 1u << 0,       /* submit returns before the data lands */
	MP_IO_CAP_ALIGNED = 1u << 1,     /* offsets, lengths, buffers 4 KiB aligned (O_DIRECT) */
	MP_IO_CAP_REGBUF = 1u << 2,      /* buffers registered with the kernel once */
	MP_IO_CAP_NOPOOL = 1u << 3,      /* serves pointers into a mapping; no pool */
};

struct mp_io;                        /* a backend instance; opaque */

struct mp_io_ops {
	const char *name;                /* "uring", "aio", "sync", "mmap" */
	unsigned version;                /* MP_IO_VERSION */
	unsigned caps;                   /* enum mp_io_cap bits */
	/* 0 if this machine can run the backend now, else -errno/-MP_E* with a
	 * sentence in why (e.g. io_uring_setup refused by seccomp). */
	int (*probe)(char *why, size_t why_len);
};

/* Backends built into this binary, in auto-selection order; NULL-terminated. */
const struct mp_io_ops *const *mp_io_backends(void);

/* Backend by name ("uring", "aio", "sync", "mmap"), or NULL. */
const struct mp_io_ops *mp_io_find(const char *name);

/* Chooses a backend for a --io value: "auto" takes the first that probes
 * usable, writing into note (if non-NULL) why it skipped the others; a named
 * one must be built and usable.  Returns 0 and *out, or -MP_EARG (unknown
 * name), -MP_EUNAVAIL (not built / not usable) with the reason in note. */
int mp_io_select(const char *name, const struct mp_io_ops **out, char *note, size_t note_len);

#endif
