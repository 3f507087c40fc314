/*
 * io_mmap.c — the baseline that behaves like llama.cpp: no pool, each file
 * mapped read-only, a "read" faults the range's pages in (one page at a
 * time, as the compute would) and serves a pointer into the mapping.  It is
 * kept for comparison and for models that fit in RAM.
 *
 * A file truncated under a mapping turns the next touch of a page past the
 * new end into SIGBUS.  Each read first compares the range with the file's
 * size now (fstat) and then touches the pages under a SIGBUS guard (a
 * thread-local sigjmp_buf), so both report -ENODATA instead of killing the
 * process.  Pointers already handed out stay unguarded: whoever reads the
 * weights after a truncation can still fault (DESIGN.md §4 accepts this for
 * the baseline).  MOEPAGER_IO_MMAP_NOSTAT=1 skips the fstat comparison, so
 * that tests reach the SIGBUS guard itself.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

struct mfile {
	int fd;                          /* buffered, read-only; -1: none */
	const char *map;                 /* whole file, PROT_READ, or NULL (empty file) */
	uint64_t size;                   /* bytes mapped */
};

struct mmap_be {
	struct mp_io_backend base;       /* methods; first */
	struct mfile *files;             /* [max_files] */
	uint32_t max_files;              /* entries in files */
	struct mp_io_ring cq;            /* completions, finished at submit */
	int nostat;                      /* 1: skip the size check (tests the guard) */
};

/* The SIGBUS guard.  The handler is installed once per process and chains to
 * the previous one for faults outside a guarded touch. */
static __thread sigjmp_buf *guard_jmp;
static struct sigaction prev_bus;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	if (guard_jmp)
		siglongjmp(*guard_jmp, 1);
	if (prev_bus.sa_flags & SA_SIGINFO) {
		prev_bus.sa_sigaction(sig, si, uc);
	} else if (prev_bus.sa_handler != SIG_IGN && prev_bus.sa_handler != SIG_DFL) {
		prev_bus.sa_handler(sig);
	} else {
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

static void install_bus(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &prev_bus);
}

/* Touches one byte per page of [p, p+len); 0, or -ENODATA on SIGBUS.  The
 * signal fences keep the compiler from moving the guard's stores across the
 * touches (it sees no dependency between them). */
static int touch_guarded(const char *p, uint64_t len)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 1)) {
		guard_jmp = NULL;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		return -ENODATA;
	}
	guard_jmp = &jb;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	const volatile char *v = p;
	long page = sysconf(_SC_PAGESIZE);
	char sink = 0;
	for (uint64_t o = 0; o < len; o += (uint64_t)page)
		sink ^= v[o];
	if (len)
		sink ^= v[len - 1];
	(void)sink;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	guard_jmp = NULL;
	return 0;
}

static void mmap_close(struct mp_io_backend *b)
{
	struct mmap_be *m = (struct mmap_be *)b;
	if (!m)
		return;
	for (uint32_t i = 0; m->files && i < m->max_files; i++) {
		if (m->files[i].map)
			munmap((void *)m->files[i].map, m->files[i].size);
		if (m->files[i].fd >= 0)
			close(m->files[i].fd);
	}
	mp_free(m->files);
	mp_free(m->cq.e);
	mp_free(m);
}

static int mmap_open(const struct mp_io_config *cfg, struct mp_io_backend **out,
                     char *msg, size_t msg_len)
{
	(void)msg;
	(void)msg_len;
	struct mmap_be *m = mp_calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->base.ops = &mp_io_mmap_ops;
	m->max_files = cfg->max_files;
	m->cq.cap = cfg->depth;
	m->files = mp_calloc(m->max_files, sizeof *m->files);
	m->cq.e = mp_calloc(m->cq.cap, sizeof *m->cq.e);
	if (!m->files || !m->cq.e) {
		mmap_close(&m->base);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < m->max_files; i++)
		m->files[i].fd = -1;
	const char *ns = getenv("MOEPAGER_IO_MMAP_NOSTAT");
	m->nostat = ns && strcmp(ns, "1") == 0;
	pthread_once(&bus_once, install_bus);
	*out = &m->base;
	return 0;
}

static int mmap_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                         uint64_t *size, char *msg, size_t msg_len)
{
	struct mmap_be *m = (struct mmap_be *)b;
	struct mfile *f = &m->files[index];
	int rc = mp_io_open_file(path, 0, &f->fd, size, msg, msg_len);
	if (rc < 0)
		return rc;
	f->size = *size;
	if (f->size) {
		void *p = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			snprintf(msg, msg_len, "%s: cannot map: %s", path, strerror(e));
			return -e;
		}
		f->map = p;
	}
	return 0;
}

static int mmap_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct mmap_be *m = (struct mmap_be *)b;
	unsigned i = 0;
	for (; i < n && m->cq.n < m->cq.cap; i++) {
		const struct mp_io_req *r = &reqs[i];
		const struct mfile *f = &m->files[r->file];
		uint64_t len = r->len;
		if (r->offset + len > f->size)       /* the wrapper allows up to EOF */
			len = f->size - r->offset;
		struct stat st;
		int64_t res = (int64_t)len;
		if (m->nostat)
			res = touch_guarded(f->map + r->offset, len) < 0 ? -ENODATA : res;
		else if (fstat(f->fd, &st) != 0)
			res = -errno;
		else if ((uint64_t)st.st_size < r->offset + len)
			res = -ENODATA;                /* truncated since it was mapped */
		else
			res = touch_guarded(f->map + r->offset, len) < 0 ? -ENODATA : res;
		mp_io_ring_push(&m->cq, r->tag, res, res < 0 ? NULL : f->map + r->offset);
	}
	return (int)i;
}

static int mmap_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct mmap_be *m = (struct mmap_be *)b;
	(void)min;                             /* everything completed at submit */
	return (int)mp_io_ring_pop(&m->cq, out, max);
}

static int mmap_probe(char *why, size_t why_len)
{
	return mp_io_disabled("mmap", why, why_len) ? -MP_EUNAVAIL : 0;
}

const struct mp_io_ops mp_io_mmap_ops = {
	.name = "mmap",
	.version = MP_IO_VERSION,
	.caps = MP_IO_CAP_NOPOOL,
	.probe = mmap_probe,
	.open = mmap_open,
	.add_file = mmap_add_file,
	.submit = mmap_submit,
	.reap = mmap_reap,
	.cancel = NULL,
	.close = mmap_close,
};
