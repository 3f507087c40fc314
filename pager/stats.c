/*
 * stats.c — the stats segment's writer and reader (layout and contract in
 * stats.h).  The writer maps a file it creates in /dev/shm; the seqlock
 * protocol is the classic one, written without fences (ThreadSanitizer does
 * not model them):
 *   writer: seq += 1 (odd; an acquire RMW, so no field store moves above it);
 *           fields (relaxed); seq += 1 (even; release)
 *   reader: s1 = seq (acquire); copy (acquire loads, so the last one cannot
 *           move below the next); s2 = seq; keep the copy when s1 == s2, even.
 * Atomic accesses on both sides keep the race well defined for the compiler
 * and for ThreadSanitizer; the segment is all u64 words.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "stats.h"

struct mp_stats {
	char *path;                      /* file name (mp_strdup) */
	int keep;                        /* leave the file at destroy */
	char *seg;                       /* the mapping, total bytes */
	uint64_t total;                  /* bytes mapped */
	struct mp_stats_header *h;       /* = seg */
	pthread_mutex_t mu;              /* one writer at a time */
};

static uint64_t seg_size(uint32_t n_layers, uint32_t n_experts, uint64_t *layer_off,
                         uint64_t *expert_off)
{
	uint64_t g = sizeof(struct mp_stats_header);
	*layer_off = g + sizeof(struct mp_stats_global);
	*expert_off = *layer_off + (uint64_t)n_layers * sizeof(struct mp_stats_layer);
	return *expert_off + (uint64_t)n_layers * n_experts * sizeof(struct mp_stats_expert);
}

int mp_stats_create(const struct mp_stats_config *cfg, struct mp_stats **out,
                    char *msg, size_t msg_len)
{
	if (cfg->n_layers > 4096 || cfg->n_experts > 65536) {
		snprintf(msg, msg_len, "stats: %u layers x %u experts is beyond the segment's limits",
		         cfg->n_layers, cfg->n_experts);
		return -MP_EARG;
	}
	char def[64];
	const char *path = cfg->path;
	if (!path) {
		snprintf(def, sizeof def, "/dev/shm/moepager-%d.stats", (int)getpid());
		path = def;
	}
	struct mp_stats *s = mp_calloc(1, sizeof *s);
	if (!s || !(s->path = mp_strdup(path))) {
		mp_free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->keep = cfg->keep;
	uint64_t loff, eoff;
	s->total = seg_size(cfg->n_layers, cfg->n_experts, &loff, &eoff);
	int rc;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)s->total) != 0) {
		rc = -errno;
		snprintf(msg, msg_len, "%s: cannot create the stats segment: %s", path, strerror(errno));
		goto fail;
	}
	void *p = mmap(NULL, s->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		snprintf(msg, msg_len, "%s: cannot map the stats segment: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	fd = -1;
	s->seg = p;
	s->h = p;
	struct mp_stats_header *h = s->h;   /* fresh zeroed file: no reader trusts it yet */
	h->version = MP_STATS_VERSION;
	h->header_bytes = sizeof *h;
	h->total_bytes = s->total;
	h->pid = (uint64_t)getpid();
	h->start_wall_s = mp_clock_wall_s();
	h->fingerprint = cfg->fingerprint;
	h->n_layers = cfg->n_layers;
	h->n_experts = cfg->n_experts;
	h->global_off = sizeof *h;
	h->layer_off = loff;
	h->expert_off = eoff;
	h->layer_stride = sizeof(struct mp_stats_layer);
	h->expert_stride = sizeof(struct mp_stats_expert);
	if (cfg->backend)
		strncpy(h->backend, cfg->backend, sizeof h->backend - 1);
	/* The magic goes last: a reader that sees it sees a complete header. */
	uint64_t magic;
	memcpy(&magic, MP_STATS_MAGIC, 8);
	__atomic_store_n((uint64_t *)(void *)h->magic, magic, __ATOMIC_RELEASE);
	*out = s;
	return 0;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	s->keep = 1;
	mp_stats_destroy(s);
	return rc;
}

void mp_stats_destroy(struct mp_stats *s)
{
	if (!s)
		return;
	if (s->seg)
		munmap(s->seg, s->total);
	if (!s->keep && s->path)
		unlink(s->path);
	pthread_mutex_destroy(&s->mu);
	mp_free(s->path);
	mp_free(s);
}

const char *mp_stats_path(const struct mp_stats *s)
{
	return s->path;
}

void mp_stats_begin(struct mp_stats *s)
{
	pthread_mutex_lock(&s->mu);
	__atomic_fetch_add(&s->h->seq, 1, __ATOMIC_ACQ_REL);
}

void mp_stats_end(struct mp_stats *s)
{
	__atomic_fetch_add(&s->h->seq, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->mu);
}

struct mp_stats_global *mp_stats_global(struct mp_stats *s)
{
	return (struct mp_stats_global *)(s->seg + s->h->global_off);
}

struct mp_stats_layer *mp_stats_layer(struct mp_stats *s, uint32_t layer)
{
	return (struct mp_stats_layer *)(s->seg + s->h->layer_off) + layer;
}

struct mp_stats_expert *mp_stats_expert(struct mp_stats *s, uint32_t layer, uint32_t expert)
{
	return (struct mp_stats_expert *)(s->seg + s->h->expert_off) +
	       (uint64_t)layer * s->h->n_experts + expert;
}

void mp_stats_set_backend(struct mp_stats *s, const char *name)
{
	uint64_t w[2] = { 0, 0 };
	memcpy(w, name, strnlen(name, 15));
	mp_stats_begin(s);
	uint64_t *dst = (uint64_t *)(void *)s->h->backend;
	mp_stats_set(&dst[0], w[0]);
	mp_stats_set(&dst[1], w[1]);
	mp_stats_end(s);
}

void mp_stats_add_fallbacks(struct mp_stats *s, uint64_t bits)
{
	mp_stats_begin(s);
	mp_stats_set(&s->h->fallbacks, s->h->fallbacks | bits);
	mp_stats_end(s);
}

const char *const mp_stats_phase_names[MP_STATS_PHASES] = {
	"attn", "ffn", "shared", "router", "routed", "wait", "head", "other",
};

const char *mp_stats_fallback_names(uint64_t bits, char *buf, size_t len)
{
	static const char *const names[MP_STATS_FB_COUNT] = {
		"O_DIRECT refused (buffered expert reads)", "io_uring buffer registration refused",
		"pool registered with io_uring piece by piece (too large to pin at start)",
		"io_uring file registration refused", "an I/O backend unavailable (auto fell back)",
		"resident weights read buffered (O_DIRECT refused)", "--mlock refused",
	};
	size_t n = 0;
	if (len)
		buf[0] = 0;
	for (int i = 0; i < MP_STATS_FB_COUNT && len; i++)
		if (bits & (1ull << i)) {
			int k = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", names[i]);
			n = k < 0 || (size_t)k >= len - n ? len - 1 : n + (size_t)k;
		}
	if (len && !buf[0])
		snprintf(buf, len, "none");
	return buf;
}

void mp_stats_latency(struct mp_stats *s, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = us ? 63u - (unsigned)__builtin_clzll(us) : 0;
	if (b >= MP_STATS_HIST)
		b = MP_STATS_HIST - 1;
	mp_stats_add(&mp_stats_global(s)->io_hist[b], 1);
}

/* ------------------------------------------------------------------------ */

struct mp_stats_reader {
	const uint64_t *seg;             /* the mapping, read-only, total bytes */
	uint64_t total;                  /* bytes */
};

int mp_stats_open(const char *path, struct mp_stats_reader **out, char *msg, size_t msg_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(msg, msg_len, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	struct mp_stats_header h;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(msg, msg_len, "%s: cannot stat: %s", path, strerror(errno));
	} else if ((uint64_t)st.st_size < sizeof h || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
	           memcmp(h.magic, MP_STATS_MAGIC, 8) != 0) {
		rc = -MP_EFORMAT;
		snprintf(msg, msg_len, "%s: not a moepager stats segment (no magic %s)", path, MP_STATS_MAGIC);
	} else if (h.version < MP_STATS_VERSION_MIN || h.version > MP_STATS_VERSION) {
		rc = -MP_EVERSION;
		snprintf(msg, msg_len, "%s: stats segment version %u; this reader reads versions %u to %u",
		         path, h.version, MP_STATS_VERSION_MIN, MP_STATS_VERSION);
	} else if (h.total_bytes > (uint64_t)st.st_size || h.header_bytes != sizeof h ||
	           h.total_bytes != h.expert_off + (uint64_t)h.n_layers * h.n_experts * h.expert_stride ||
	           h.layer_stride < sizeof(struct mp_stats_layer) ||
	           h.expert_stride < sizeof(struct mp_stats_expert) ||
	           h.layer_off + (uint64_t)h.n_layers * h.layer_stride > h.expert_off ||
	           h.global_off + sizeof(struct mp_stats_global) > h.layer_off || (h.total_bytes & 7)) {
		rc = -MP_EFORMAT;
		snprintf(msg, msg_len, "%s: stats segment sizes disagree (total %llu bytes, file %llu)",
		         path, (unsigned long long)h.total_bytes, (unsigned long long)st.st_size);
	}
	struct mp_stats_reader *r = NULL;
	if (rc == 0) {
		r = mp_calloc(1, sizeof *r);
		void *p = r ? mmap(NULL, h.total_bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
		if (p == MAP_FAILED) {
			rc = r ? -errno : -ENOMEM;
			snprintf(msg, msg_len, "%s: cannot map: %s", path, mp_strerror(rc));
			mp_free(r);
		} else {
			r->seg = p;
			r->total = h.total_bytes;
			*out = r;
		}
	}
	close(fd);
	return rc;
}

int mp_stats_snapshot(struct mp_stats_reader *r, struct mp_stats_snap *out)
{
	uint64_t *buf = mp_malloc(r->total);
	if (!buf)
		return -ENOMEM;
	size_t words = r->total / 8;
	const uint64_t *seqp = &r->seg[offsetof(struct mp_stats_header, seq) / 8];
	for (int tries = 0; tries < 100000; tries++) {
		uint64_t s1 = __atomic_load_n(seqp, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		for (size_t i = 0; i < words; i++)
			buf[i] = __atomic_load_n(&r->seg[i], __ATOMIC_ACQUIRE);
		uint64_t s2 = __atomic_load_n(seqp, __ATOMIC_RELAXED);
		if (s1 == s2) {
			out->buf = buf;
			out->h = (const struct mp_stats_header *)buf;
			out->g = (const struct mp_stats_global *)((char *)buf + out->h->global_off);
			out->layers = (const struct mp_stats_layer *)((char *)buf + out->h->layer_off);
			out->experts = (const struct mp_stats_expert *)((char *)buf + out->h->expert_off);
			return 0;
		}
	}
	mp_free(buf);
	return -EAGAIN;
}

void mp_stats_snap_free(struct mp_stats_snap *snap)
{
	if (snap) {
		mp_free(snap->buf);
		memset(snap, 0, sizeof *snap);
	}
}

void mp_stats_close(struct mp_stats_reader *r)
{
	if (!r)
		return;
	munmap((void *)r->seg, r->total);
	mp_free(r);
}

const struct mp_stats_layer *mp_stats_snap_layer(const struct mp_stats_snap *s, uint32_t layer)
{
	return (const struct mp_stats_layer *)((const char *)s->buf + s->h->layer_off +
	                                       (uint64_t)layer * s->h->layer_stride);
}

const struct mp_stats_expert *mp_stats_snap_expert(const struct mp_stats_snap *s, uint32_t layer,
                                                   uint32_t expert)
{
	return (const struct mp_stats_expert *)((const char *)s->buf + s->h->expert_off +
	        ((uint64_t)layer * s->h->n_experts + expert) * s->h->expert_stride);
}
