/*
 * io_mem.c — the memory test backend (like fio's null engine): add_file
 * reads the whole file into the heap, and a read is a memcpy completed at
 * submit.  Outside the auto table; tests use it to check the pager's logic
 * without a disk, and as the reference the real backends must agree with.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "io_internal.h"

struct mem_be {
	struct mp_io_backend base;       /* methods; first */
	char **data;                     /* [max_files] file contents */
	uint64_t *size;                  /* [max_files] bytes */
	uint32_t max_files;              /* entries in data, size */
	struct mp_io_ring cq;            /* completions, finished at submit */
};

static void mem_close(struct mp_io_backend *b)
{
	struct mem_be *m = (struct mem_be *)b;
	if (!m)
		return;
	for (uint32_t i = 0; m->data && i < m->max_files; i++)
		mp_free(m->data[i]);
	mp_free(m->data);
	mp_free(m->size);
	mp_free(m->cq.e);
	mp_free(m);
}

static int mem_open(const struct mp_io_config *cfg, struct mp_io_backend **out,
                    char *msg, size_t msg_len)
{
	(void)msg;
	(void)msg_len;
	struct mem_be *m = mp_calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->base.ops = &mp_io_memory_ops;
	m->max_files = cfg->max_files;
	m->cq.cap = cfg->depth;
	m->data = mp_calloc(m->max_files, sizeof *m->data);
	m->size = mp_calloc(m->max_files, sizeof *m->size);
	m->cq.e = mp_calloc(m->cq.cap, sizeof *m->cq.e);
	if (!m->data || !m->size || !m->cq.e) {
		mem_close(&m->base);
		return -ENOMEM;
	}
	*out = &m->base;
	return 0;
}

static int mem_add_file(struct mp_io_backend *b, uint32_t index, const char *path,
                        uint64_t *size, char *msg, size_t msg_len)
{
	struct mem_be *m = (struct mem_be *)b;
	int fd;
	int rc = mp_io_open_file(path, 0, &fd, size, msg, msg_len);
	if (rc < 0)
		return rc;
	m->data[index] = mp_malloc(*size);
	if (!m->data[index]) {
		close(fd);
		return -ENOMEM;
	}
	for (uint64_t got = 0; got < *size;) {
		ssize_t n = pread(fd, m->data[index] + got, *size - got, (off_t)got);
		if (n <= 0) {
			int e = n < 0 ? errno : ENODATA;
			if (e == EINTR)
				continue;
			snprintf(msg, msg_len, "%s: cannot read: %s", path, strerror(e));
			close(fd);
			return -e;
		}
		got += (uint64_t)n;
	}
	close(fd);
	m->size[index] = *size;
	return 0;
}

static int mem_submit(struct mp_io_backend *b, const struct mp_io_req *reqs, unsigned n)
{
	struct mem_be *m = (struct mem_be *)b;
	unsigned i = 0;
	for (; i < n && m->cq.n < m->cq.cap; i++) {
		const struct mp_io_req *r = &reqs[i];
		uint64_t len = r->len;
		if (r->offset + len > m->size[r->file])
			len = m->size[r->file] - r->offset;
		memcpy(r->buf, m->data[r->file] + r->offset, len);
		mp_io_ring_push(&m->cq, r->tag, (int64_t)len, r->buf);
	}
	return (int)i;
}

static int mem_reap(struct mp_io_backend *b, struct mp_io_cqe *out, unsigned max, unsigned min)
{
	struct mem_be *m = (struct mem_be *)b;
	(void)min;
	return (int)mp_io_ring_pop(&m->cq, out, max);
}

static int mem_probe(char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	return 0;
}

const struct mp_io_ops mp_io_memory_ops = {
	.name = "memory",
	.version = MP_IO_VERSION,
	.caps = 0,
	.probe = mem_probe,
	.open = mem_open,
	.add_file = mem_add_file,
	.submit = mem_submit,
	.reap = mem_reap,
	.cancel = NULL,
	.close = mem_close,
};
