/*
 * pager.c — the expert pager (API and life cycle in pager.h).
 *
 * DESIGN NOTES
 *
 * Definitions.  An *expert* is a registered (layer, expert) pair with its
 * byte ranges.  A *slot* is a piece of the pool that holds one expert: the
 * 4 KiB-aligned cover of each of its ranges, one after the other; the data of
 * range r starts `skip` bytes into its cover.  Slots come in *size classes*:
 * experts whose ranges have the same lengths share a class whose slot size
 * is the sum over ranges of (length rounded up to 4 KiB + 4 KiB), the most
 * any alignment of those ranges needs.  *Pins* count the acquires of an
 * expert not yet released.  A *read* is one request of at most io_block
 * bytes of one cover; a slot's load is all its reads.  A *demand* read
 * belongs to a pinned expert, a *prefetch* read to an unpinned one.
 *
 * Slot states and who moves them:
 *
 *                 issue_load()          finish_load()           acquire()
 *       FREE ---------------------> LOADING ------------> READY ---------> IN_USE
 *        ^  ^                          |                   |  ^  <--------  |
 *        |  +--------------------------+                   |  |  release()  |
 *        |   finish_load() on an error or after            |  +-------------+
 *        |   mp_pager_cancel (re-read if acquired since)   |
 *        +-------------------------------------------------+  (finish_load goes
 *                              evict()                          straight to IN_USE
 *                                                               when pinned)
 *
 * Invariants (checked by mp_pager_check; numbers are used in its messages):
 *   1. The pool is one mapping made by mp_pager_start and never grown; the
 *      bytes of all slots are at most the budget (NOPOOL backends: no pool).
 *   2. An expert is in at most one slot: expert.slot == s if and only if
 *      slot[s].expert is that expert; a FREE slot holds no expert.
 *   3. Only READY slots are evicted: LOADING and IN_USE never are.
 *   4. IN_USE if and only if the data is complete and pins > 0; READY
 *      implies pins == 0; a FREE slot is on its class's free list and has no
 *      reads outstanding.
 *   5. LOADING if and only if reads are outstanding (queued or in flight);
 *      a slot with a failed or short read never becomes READY.
 *   6. A demand read is never queued behind a prefetch: reads of pinned
 *      experts are on the demand queue, submitted first, and prefetches
 *      leave io_depth/4 (at least 1; none at depth 1) of the queue depth to
 *      demand reads.
 *   7. Neither an acquire nor a prefetch evicts an expert of the current
 *      acquire set (the last acquire's experts); a prefetch evicts only an
 *      expert whose keep_score is below the hint's score times the
 *      prefetches' measured precision (see Speculation).
 *   8. pending_bytes is the sum of the lengths of the reads queued or in
 *      flight; a hint starts a load only when nothing is pending or
 *      pending_bytes plus the expert's bytes fit the speculation cap.
 *
 * Locking.  mu guards everything.  Stats updates go between stats_begin and
 * stats_end (the segment's seqlock), never across a call to progress().  io_mu serialises the mp_io calls; a thread
 * holding mu only ever *tries* io_mu, so the waiting thread may hold io_mu,
 * drop mu while it blocks in mp_io_reap, and take mu back (progress()).
 * Threads that find io_mu taken sleep on cv, broadcast after each batch of
 * completions.
 *
 * Warming the pool.  The first touch of a pool page costs the kernel a zeroed
 * page (on a VM also the host's backing): ≈ 75% of an out-of-core run's CPU
 * samples here were clear_page under io_uring's lazy buffer registration and
 * MADV_POPULATE_WRITE of fresh slots, 12-29 s per run whatever its length
 * (bench/README.md, issue 15).  So mp_pager_start starts a warmer thread
 * that faults the slots in, in the order the free lists hand them out,
 * while the resident weights load and the prompt runs; issue_load still
 * faults in a slot the warmer has not reached.  The warmer touches only slot
 * pages and the slots' `populated` flags (atomics, both sides; a slot
 * faulted in twice costs nothing the second time), and is joined before the
 * pool is unmapped.  Once the pool's first bytes up to a piece boundary
 * (cfg.reg_piece, 1 GiB) are faulted in, it registers those pieces with the
 * backend (mp_io_prepare: io_uring pins them, 12% of a run's CPU when a
 * read did it on the decode path) holding io_mu alone, never with mu; then
 * it takes mu only to broadcast cv for the threads that found io_mu taken.
 * Not started when the start already touched the whole pool (mlock, or the
 * preload of a model that fits).
 *
 * Speculation.  A prefetch that cannot land before its layer runs only
 * competes with the demand reads behind it, and one that is wrong evicts an
 * expert for nothing; when the disk is the limit both lose to no prefetch
 * (bench/README.md, issue 15).  So a hint starts a load only while the
 * bytes already pending (demand and prefetch, queued or in flight) plus the
 * expert's fit the speculation cap: what the disk reads in one layer's
 * compute time, = measured bandwidth (bytes completed over the time reads
 * were in flight) x the moving average of the time between acquires less
 * the waits in it.  Hints come best first, the next layer's before deeper
 * ones, so the cap drops the least likely.  cfg.prefetch_cap fixes the cap
 * (tests); before both are measured there is no cap.  And a prefetch evicts
 * only an expert whose keep score is below the hint's score times the share
 * of prefetches that were used (used / (used + wasted), 1 until 16 are
 * known): a hint of a look-ahead right 2 times in 3 is worth 2/3 of its
 * score, and a likelier-needed resident stays.
 *
 * Page-cache tier.  Before a disk read the pager asks mincore (on a
 * read-only mapping of the file) whether every page of every range is in
 * the page cache; then it copies the ranges with a buffered pread (which
 * reports a truncated file as an error, not SIGBUS) instead, and drops those
 * pages afterwards when MemAvailable is below low_mem, so nothing is held
 * twice.  The copy runs in the calling thread, under mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "io.h"
#include "pager.h"
#include "size.h"
#include "stats.h"

#define ALIGN ((uint64_t)MP_IO_ALIGN)

_Static_assert(MP_IO_FB_BUFFERED == MP_STATS_FB_BUFFERED && MP_IO_FB_REG_REFUSED == MP_STATS_FB_REG_REFUSED &&
	       MP_IO_FB_REG_LAZY == MP_STATS_FB_REG_LAZY &&
	       MP_IO_FB_FILES_REFUSED == MP_STATS_FB_FILES_REFUSED, "io fallback bits are the stats bits");
#define NONE UINT32_MAX

enum slot_state { S_FREE, S_LOADING, S_READY, S_IN_USE };
static const char *const state_name[] = { "FREE", "LOADING", "READY", "IN_USE" };

struct file {
	char *path;                      /* as given */
	int fd;                          /* buffered, read-only: page-cache copies */
	uint64_t size;                   /* bytes at add_file */
	const uint8_t *map;              /* PROT_READ mapping for mincore, or NULL */
};

struct range {
	uint32_t file;                   /* file id */
	uint64_t offset;                 /* bytes in the file */
	uint64_t len;                    /* bytes */
	uint64_t cover_off;              /* bytes from the slot's start to this range's cover */
	uint64_t cover_len;              /* bytes of the aligned cover */
	uint64_t skip;                   /* bytes from the cover's start to the data */
};

struct expert {
	uint32_t first;                  /* index of its first range */
	uint32_t n_ranges;               /* 0: not registered */
	uint32_t cls;                    /* size class */
	uint32_t slot;                   /* slot holding it, or NONE */
	uint32_t pins;                   /* acquires not yet released */
	int32_t err;                     /* last load's error (kept until the next load) */
	uint8_t tier_pc;                 /* 1: last load was a page-cache copy */
};

struct slot {
	uint8_t state;                   /* enum slot_state */
	uint8_t prefetched;              /* 1: loaded by a hint, not acquired since */
	uint8_t populated;               /* 1: its pool pages were faulted in (first load or
	                                  * the warmer; atomic loads and stores) */
	uint32_t cls;                    /* size class */
	uint32_t expert;                 /* global expert id, or NONE */
	uint32_t pending;                /* reads queued or in flight */
	uint32_t next_free;              /* free list link, NONE at the end */
	int32_t err;                     /* first error of this load, 0 if none */
	uint32_t err_range;              /* the range that failed */
	uint64_t err_offset;             /* file offset of the read that failed */
	uint64_t last_use;               /* tick of the last acquire or load (LRU) */
	uint8_t *base;                   /* in the pool, slot_bytes of its class */
	const void **ptr;                /* NOPOOL: [n_ranges] pointers into the mapping */
};

struct cls {
	uint64_t slot_bytes;             /* bytes per slot, multiple of 4 KiB */
	uint32_t n_experts;              /* experts of this class */
	uint32_t need;                   /* slots one acquire set can need */
	uint32_t first_slot, n_slots;    /* its slots */
	uint32_t free_head, n_free;      /* free list */
};

struct read {
	uint32_t slot;                   /* slot being loaded */
	uint32_t range;                  /* range index within the expert */
	uint64_t offset;                 /* file offset (aligned cover part) */
	uint64_t len;                    /* bytes */
	uint64_t dst;                    /* bytes from the slot's base */
	uint64_t t_submit;               /* ns when submitted */
	uint32_t next;                   /* queue or free-list link */
	uint8_t queued;                  /* 1 on a queue, 2 in flight, 0 free */
};

struct queue {
	uint32_t head, tail;             /* read ids, NONE when empty */
	uint32_t n;                      /* reads on it */
};

struct mp_pager {
	/* ---- fixed at create/start ---- */
	struct mp_pager_config cfg;      /* as given, with defaults filled */
	uint32_t n_total;                /* n_layers * n_experts */
	struct file *files;              /* [cfg.max_files] */
	uint32_t n_files;                /* files added */
	struct expert *experts;          /* [n_total] */
	struct range *ranges;            /* [n_ranges] */
	uint32_t n_ranges, cap_ranges;   /* used, allocated */
	struct cls *classes;             /* [n_classes] */
	uint32_t n_classes;              /* size classes */
	struct slot *slots;              /* [n_slots] */
	uint32_t n_slots;                /* slots */
	uint8_t *pool;                   /* the one mapping, pool_bytes */
	uint64_t pool_bytes;             /* bytes */
	uint64_t min_budget, full_budget;/* bytes */
	int fits;                        /* 1: every expert has a slot */
	int nopool;                      /* 1: the backend serves mapping pointers */
	int started;                     /* 1 after mp_pager_start */
	struct mp_io *io;                /* the backend */
	struct read *reads;              /* [n_reads] */
	uint32_t n_reads;                /* records */
	struct mp_io_req *batch;         /* [depth] submit scratch */
	uint32_t *batch_ids;             /* [depth] read ids of batch */
	struct mp_io_cqe *cqes;          /* [depth] reap scratch (io_mu holder) */
	uint8_t *mvec;                   /* mincore scratch, mvec_len bytes */
	size_t mvec_len;                 /* bytes */
	uint32_t reserve;                /* depth kept for demand reads */
	uint64_t low_mem;                /* bytes */
	pthread_mutex_t mu;              /* guards all below and above */
	pthread_mutex_t io_mu;           /* serialises mp_io calls (see Locking) */
	pthread_cond_t cv;               /* completions were applied */
	pthread_t warmer;                /* faults the pool in (see Warming the pool) */
	int warmer_running;              /* 1: the warmer is to be joined */
	int warm_stop;                   /* atomic: 1 asks the warmer to stop */
	uint64_t warmed;                 /* atomic: pool bytes the warmer faulted in */
	uint32_t reg_warmed;             /* atomic: pool pieces the warmer registered */
	/* ---- changes every step ---- */
	struct queue demand, prefetch;   /* reads not yet submitted */
	uint32_t read_free;              /* free read records */
	uint32_t pf_inflight;            /* prefetch reads in flight */
	uint64_t pending_bytes;          /* bytes of reads queued or in flight (invariant 8) */
	uint64_t busy_t0;                /* ns: start of the disk's current busy interval, 0: idle */
	uint64_t bw_bytes, bw_ns;        /* bytes completed over busy ns (halved past 2 s) */
	uint64_t t_acquire;              /* ns of the last acquire, 0: none yet */
	uint64_t stall_acc;              /* ns waited since the last acquire */
	uint64_t layer_ns;               /* compute ns between acquires, moving average; 0: unknown */
	uint64_t tick;                   /* acquire counter (LRU clock) */
	uint32_t cur_layer;              /* the last acquire's layer */
	uint32_t *cur;                   /* [top_k] the last acquire's experts */
	uint32_t n_cur;                  /* entries in cur */
	struct mp_pager_info info;       /* counters */
	char msg[768];                   /* last error or note */
};

/* ------------------------------------------------------------------------ */
/* Small helpers */

static uint64_t align_down(uint64_t x)
{
	return x & ~(ALIGN - 1);
}

static uint64_t align_up(uint64_t x)
{
	return (x + ALIGN - 1) & ~(ALIGN - 1);
}

/* Room a range of len bytes takes in a slot: its 4 KiB-aligned cover
 * whatever its alignment in the file. */
static uint64_t range_room(uint64_t len)
{
	return align_up(len) + ALIGN;
}

static uint32_t eid(const struct mp_pager *p, uint32_t layer, uint32_t expert)
{
	return layer * p->cfg.n_experts + expert;
}

__attribute__((format(printf, 2, 3)))
static void say(struct mp_pager *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof p->msg, fmt, ap);
	va_end(ap);
}

static void stats_begin(struct mp_pager *p)
{
	if (p->cfg.stats)
		mp_stats_begin(p->cfg.stats);
}

static void stats_end(struct mp_pager *p)
{
	if (p->cfg.stats) {
		struct mp_stats_global *g = mp_stats_global(p->cfg.stats);
		uint64_t used = 0;
		for (uint32_t c = 0; c < p->n_classes; c++)
			used += (uint64_t)(p->classes[c].n_slots - p->classes[c].n_free) *
			        p->classes[c].slot_bytes;
		mp_stats_set(&g->pool_used, p->nopool ? 0 : used);
		mp_stats_end(p->cfg.stats);
	}
}

static struct mp_stats_layer *st_layer(struct mp_pager *p, uint32_t layer)
{
	return p->cfg.stats ? mp_stats_layer(p->cfg.stats, layer) : NULL;
}

static void st_add_layer(struct mp_pager *p, uint32_t id, size_t field, uint64_t v)
{
	if (p->cfg.stats)
		mp_stats_add((uint64_t *)(void *)((char *)st_layer(p, id / p->cfg.n_experts) + field), v);
}

static void st_add_expert(struct mp_pager *p, uint32_t id, size_t field, uint64_t v)
{
	if (p->cfg.stats) {
		struct mp_stats_expert *e = mp_stats_expert(p->cfg.stats, id / p->cfg.n_experts,
		                                            id % p->cfg.n_experts);
		mp_stats_add((uint64_t *)(void *)((char *)e + field), v);
	}
}

static void st_add_global(struct mp_pager *p, size_t field, uint64_t v)
{
	if (p->cfg.stats)
		mp_stats_add((uint64_t *)(void *)((char *)mp_stats_global(p->cfg.stats) + field), v);
}

#define LAYER_F(f) offsetof(struct mp_stats_layer, f)
#define EXPERT_F(f) offsetof(struct mp_stats_expert, f)
#define GLOBAL_F(f) offsetof(struct mp_stats_global, f)

static int check_locked(struct mp_pager *p, int level);

/* Called with mu held. */
static void debug_check(struct mp_pager *p)
{
#ifdef MP_DEBUG
	if (check_locked(p, 2) != 0) {
		fprintf(stderr, "moepager: pager %s\n", p->msg);
		mp_pager_dump(p, stderr);
		abort();
	}
#else
	(void)p;
#endif
}

/* ------------------------------------------------------------------------ */
/* Setup */

int mp_pager_create(const struct mp_pager_config *cfg, struct mp_pager **out,
                    char *msg, size_t msg_len)
{
	uint64_t total;
	if (!cfg->n_layers || !cfg->n_experts || !cfg->top_k || cfg->top_k > cfg->n_experts ||
	    __builtin_mul_overflow((uint64_t)cfg->n_layers, cfg->n_experts, &total) ||
	    total >= NONE) {
		snprintf(msg, msg_len, "pager: need 0 < top_k (%u) <= experts (%u) and layers (%u) > 0",
		         cfg->top_k, cfg->n_experts, cfg->n_layers);
		return -MP_EARG;
	}
	if (cfg->io_block & (ALIGN - 1)) {
		snprintf(msg, msg_len, "pager: io_block %" PRIu64 " is not a multiple of 4 KiB",
		         cfg->io_block);
		return -MP_EARG;
	}
	struct mp_pager *p = mp_calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	if (!p->cfg.io_depth)
		p->cfg.io_depth = 32;
	if (!p->cfg.io_threads)
		p->cfg.io_threads = 4;
	if (!p->cfg.io_block)
		p->cfg.io_block = 4u << 20;
	if (!p->cfg.max_files)
		p->cfg.max_files = 64;
	p->n_total = (uint32_t)total;
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->io_mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->demand.head = p->demand.tail = p->prefetch.head = p->prefetch.tail = NONE;
	p->files = mp_calloc(p->cfg.max_files, sizeof *p->files);
	p->experts = mp_calloc(p->n_total, sizeof *p->experts);
	p->cur = mp_calloc(p->cfg.top_k, sizeof *p->cur);
	if (!p->files || !p->experts || !p->cur) {
		mp_pager_destroy(p);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->n_total; i++)
		p->experts[i].slot = NONE;
	for (uint32_t i = 0; i < p->cfg.max_files; i++)
		p->files[i].fd = -1;
	*out = p;
	return 0;
}

int mp_pager_add_file(struct mp_pager *p, const char *path)
{
	pthread_mutex_lock(&p->mu);
	int rc;
	if (p->started || p->n_files >= p->cfg.max_files) {
		say(p, "%s: cannot add a file %s", path, p->started ? "after start" : "beyond max_files");
		rc = -MP_EARG;
		goto out;
	}
	struct file *f = &p->files[p->n_files];
	f->path = mp_strdup(path);
	if (!f->path) {
		rc = -ENOMEM;
		say(p, "%s: out of memory", path);
		goto out;
	}
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (f->fd < 0 || fstat(f->fd, &st) != 0) {
		rc = -errno;
		say(p, "%s: cannot open: %s", path, strerror(errno));
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		mp_free(f->path);
		f->path = NULL;
		goto out;
	}
	f->size = (uint64_t)st.st_size;
	if (f->size) {
		void *m = mmap(NULL, f->size, PROT_READ, MAP_SHARED, f->fd, 0);
		f->map = m == MAP_FAILED ? NULL : m;   /* no map: tier unknown, read from disk */
	}
	rc = (int)p->n_files++;
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int mp_pager_register(struct mp_pager *p, uint32_t layer, uint32_t expert,
                      const struct mp_pager_range *r, uint32_t n)
{
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	if (p->started || layer >= p->cfg.n_layers || expert >= p->cfg.n_experts || n == 0 ||
	    n > 64 || p->experts[eid(p, layer, expert)].n_ranges) {
		say(p, "register layer %u expert %u: %s", layer, expert,
		    p->started ? "after start" : layer >= p->cfg.n_layers || expert >= p->cfg.n_experts
		    ? "out of range" : n == 0 || n > 64 ? "needs 1 to 64 ranges" : "registered twice");
		rc = -MP_EARG;
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct mp_pager_range *x = &r[i];
		if (x->file >= p->n_files || x->len == 0 || x->offset > p->files[x->file].size ||
		    x->len > p->files[x->file].size - x->offset) {
			say(p, "layer %u expert %u range %u: offset %" PRIu64 " length %" PRIu64
			    " is outside %s (%" PRIu64 " bytes)", layer, expert, i, x->offset, x->len,
			    x->file < p->n_files ? p->files[x->file].path : "(no such file)",
			    x->file < p->n_files ? p->files[x->file].size : 0);
			rc = -MP_EFORMAT;
			goto out;
		}
	}
	if (p->n_ranges + n > p->cap_ranges) {
		uint32_t cap = p->cap_ranges ? p->cap_ranges * 2 : 256;
		while (cap < p->n_ranges + n)
			cap *= 2;
		struct range *nr = mp_realloc(p->ranges, (size_t)cap * sizeof *nr);
		if (!nr) {
			rc = -ENOMEM;
			goto out;
		}
		p->ranges = nr;
		p->cap_ranges = cap;
	}
	struct expert *e = &p->experts[eid(p, layer, expert)];
	e->first = p->n_ranges;
	e->n_ranges = n;
	uint64_t at = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct range *d = &p->ranges[p->n_ranges++];
		d->file = r[i].file;
		d->offset = r[i].offset;
		d->len = r[i].len;
		d->skip = r[i].offset - align_down(r[i].offset);
		d->cover_len = align_up(r[i].offset + r[i].len) - align_down(r[i].offset);
		d->cover_off = at;
		at += range_room(r[i].len);           /* the class's room for this range */
	}
out:
	pthread_mutex_unlock(&p->mu);
	return rc;
}

uint64_t mp_pager_slot_bytes(const uint64_t *len, uint32_t n)
{
	uint64_t b = 0;
	for (uint32_t i = 0; i < n; i++)
		b += range_room(len[i]);
	return b;
}

/* Slot size of an expert's class: room for any alignment of its ranges. */
static uint64_t class_bytes(const struct mp_pager *p, const struct expert *e)
{
	uint64_t b = 0;
	for (uint32_t i = 0; i < e->n_ranges; i++)
		b += range_room(p->ranges[e->first + i].len);
	return b;
}

/* Groups experts into classes and computes need, min and full budgets. */
static int make_classes(struct mp_pager *p)
{
	uint32_t cap = 8;
	p->classes = mp_calloc(cap, sizeof *p->classes);
	uint32_t *per_layer = mp_calloc(cap, sizeof *per_layer);
	if (!p->classes || !per_layer) {
		mp_free(per_layer);
		return -ENOMEM;
	}
	for (uint32_t l = 0; l < p->cfg.n_layers; l++) {
		memset(per_layer, 0, cap * sizeof *per_layer);
		for (uint32_t x = 0; x < p->cfg.n_experts; x++) {
			struct expert *e = &p->experts[eid(p, l, x)];
			if (!e->n_ranges)
				continue;
			uint64_t b = class_bytes(p, e);
			uint32_t c = 0;
			while (c < p->n_classes && p->classes[c].slot_bytes != b)
				c++;
			if (c == p->n_classes) {
				if (c == cap) {
					struct cls *nc = mp_realloc(p->classes, 2 * cap * sizeof *nc);
					uint32_t *np = nc ? mp_realloc(per_layer, 2 * cap * sizeof *np) : NULL;
					if (nc)
						p->classes = nc;
					if (!np) {
						mp_free(per_layer);
						return -ENOMEM;
					}
					per_layer = np;
					memset(p->classes + cap, 0, cap * sizeof *nc);
					memset(per_layer + cap, 0, cap * sizeof *np);
					cap *= 2;
				}
				p->classes[c].slot_bytes = b;
				p->n_classes++;
			}
			e->cls = c;
			p->classes[c].n_experts++;
			per_layer[c]++;
		}
		for (uint32_t c = 0; c < p->n_classes; c++) {
			uint32_t need = per_layer[c] < p->cfg.top_k ? per_layer[c] : p->cfg.top_k;
			if (need > p->classes[c].need)
				p->classes[c].need = need;
		}
	}
	mp_free(per_layer);
	p->min_budget = p->full_budget = 0;
	for (uint32_t c = 0; c < p->n_classes; c++) {
		p->min_budget += p->classes[c].need * p->classes[c].slot_bytes;
		p->full_budget += p->classes[c].n_experts * p->classes[c].slot_bytes;
	}
	return 0;
}

uint64_t mp_pager_min_budget(const struct mp_pager *p)
{
	uint64_t b = 0;
	struct mp_pager *q = (struct mp_pager *)p;
	pthread_mutex_lock(&q->mu);
	if (p->started) {
		b = p->min_budget;
	} else {
		/* classes are made at start; count here the same way */
		struct cls *saved = q->classes;
		uint32_t saved_n = q->n_classes;
		q->classes = NULL;
		q->n_classes = 0;
		if (make_classes(q) == 0)
			b = q->min_budget;
		mp_free(q->classes);
		q->classes = saved;
		q->n_classes = saved_n;
	}
	pthread_mutex_unlock(&q->mu);
	return b;
}

/* Slots per class: each class its need, the rest of the budget shared in
 * proportion to the class's share of the model's bytes. */
static void size_slots(struct mp_pager *p)
{
	p->fits = p->cfg.budget >= p->full_budget;
	uint64_t left = p->fits ? 0 : p->cfg.budget - p->min_budget;
	for (uint32_t c = 0; c < p->n_classes; c++) {
		struct cls *k = &p->classes[c];
		if (p->fits) {
			k->n_slots = k->n_experts;
			continue;
		}
		uint64_t class_total = k->n_experts * k->slot_bytes;
		uint64_t share = (uint64_t)((double)left * ((double)class_total / (double)p->full_budget));
		uint64_t extra = share / k->slot_bytes;
		if (extra > k->n_experts - k->need)
			extra = k->n_experts - k->need;
		k->n_slots = k->need + (uint32_t)extra;
	}
	/* Whole slots left over by the rounding go to the classes in order. */
	uint64_t used = 0;
	for (uint32_t c = 0; c < p->n_classes; c++)
		used += p->classes[c].n_slots * p->classes[c].slot_bytes;
	for (uint32_t c = 0; !p->fits && c < p->n_classes; c++) {
		struct cls *k = &p->classes[c];
		while (k->n_slots < k->n_experts && used + k->slot_bytes <= p->cfg.budget) {
			k->n_slots++;
			used += k->slot_bytes;
		}
	}
}

static uint64_t mem_total_or_available(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	char line[256];
	uint64_t v = 0;
	size_t n = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10) * 1024;
			break;
		}
	fclose(f);
	return v;
}

static void free_list_push(struct mp_pager *p, uint32_t s)
{
	struct cls *k = &p->classes[p->slots[s].cls];
	p->slots[s].next_free = k->free_head;
	k->free_head = s;
	k->n_free++;
}

static int issue_load(struct mp_pager *p, uint32_t id, uint32_t s, int demand);
static int progress(struct mp_pager *p, int block);

/* The warmer registers the pool's pieces wholly inside its first `upto`
 * bytes with the backend (io_uring: pins them), under io_mu, then wakes the
 * threads that found io_mu taken (see Locking: they sleep on cv under mu). */
static void warm_register(struct mp_pager *p, uint64_t upto)
{
	pthread_mutex_lock(&p->io_mu);
	int n = mp_io_prepare(p->io, 0, upto);
	pthread_mutex_unlock(&p->io_mu);
	if (n > 0)
		__atomic_fetch_add(&p->reg_warmed, (uint32_t)n, __ATOMIC_RELAXED);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* The warmer (see Warming the pool): every slot not yet faulted in, in slot
 * order (the order the free lists hand them out, and the pool's address
 * order), until asked to stop; each piece of the pool is registered once
 * all of it is faulted in. */
static void *warm_pool(void *arg)
{
	struct mp_pager *p = arg;
	uint64_t piece = p->cfg.reg_piece ? p->cfg.reg_piece : MP_IO_REG_PIECE;
	uint64_t end = 0;                    /* pool bytes faulted in, from its start */
	for (uint32_t s = 0; s < p->n_slots && !__atomic_load_n(&p->warm_stop, __ATOMIC_RELAXED); s++) {
		struct slot *sl = &p->slots[s];
		uint64_t n = p->classes[sl->cls].slot_bytes;
		if (!__atomic_load_n(&sl->populated, __ATOMIC_RELAXED)) {
#ifdef MADV_POPULATE_WRITE
			if (madvise(sl->base, n, MADV_POPULATE_WRITE) != 0)
				break;           /* an older kernel: issue_load's way only */
#else
			break;
#endif
			__atomic_store_n(&sl->populated, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&p->warmed, n, __ATOMIC_RELAXED);
		}
		uint64_t was = end;
		end = (uint64_t)(sl->base + n - p->pool);
		if (end / piece > was / piece || end == p->pool_bytes)
			warm_register(p, end);
	}
	return NULL;
}

int mp_pager_start(struct mp_pager *p)
{
	pthread_mutex_lock(&p->mu);
	int rc = 0;
	if (p->started || p->classes) {
		rc = -MP_EARG;
		say(p, "pager: started twice (after a failed start, destroy it)");
		goto out;
	}
	rc = make_classes(p);
	if (rc < 0)
		goto out;
	/* The backend first: a NOPOOL one needs no budget. */
	const struct mp_io_ops *ops = p->cfg.backend;
	char note[512] = "";
	if (!ops) {
		rc = mp_io_select(p->cfg.io ? p->cfg.io : "auto", &ops, note, sizeof note);
		if (rc < 0) {
			say(p, "%s", note);
			goto out;
		}
	}
	p->nopool = (ops->caps & MP_IO_CAP_NOPOOL) != 0;
	char b1[32], b2[32];
	if (!p->nopool && p->cfg.budget < p->min_budget) {
		say(p, "cache budget %s (%" PRIu64 " bytes) cannot hold one layer's %u experts; "
		    "the smallest budget that works is %" PRIu64 " bytes (%s)",
		    mp_size_format(p->cfg.budget, b1, sizeof b1), p->cfg.budget, p->cfg.top_k,
		    p->min_budget, mp_size_format(p->min_budget, b2, sizeof b2));
		rc = -MP_EBUDGET;
		goto out;
	}
	if (p->nopool) {
		p->fits = 1;
		for (uint32_t c = 0; c < p->n_classes; c++)
			p->classes[c].n_slots = p->classes[c].n_experts;
	} else {
		size_slots(p);
	}
	for (uint32_t c = 0; c < p->n_classes; c++) {
		p->classes[c].first_slot = p->n_slots;
		p->classes[c].free_head = NONE;
		p->n_slots += p->classes[c].n_slots;
		if (!p->nopool)
			p->pool_bytes += p->classes[c].n_slots * p->classes[c].slot_bytes;
	}
	p->slots = mp_calloc(p->n_slots ? p->n_slots : 1, sizeof *p->slots);
	if (!p->slots) {
		rc = -ENOMEM;
		goto out;
	}
	if (p->pool_bytes) {
		void *m = mmap(NULL, p->pool_bytes, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (m == MAP_FAILED) {
			rc = -errno;
			say(p, "pager: cannot map a pool of %s: %s",
			    mp_size_format(p->pool_bytes, b1, sizeof b1), strerror(errno));
			goto out;
		}
		p->pool = m;
#ifdef MADV_HUGEPAGE
		/* 2 MiB pages: O_DIRECT reads into them pin and map far fewer pages
		 * (bench/README.md: 1.6-1.9x the MB/s of 4 KiB pages here); each
		 * slot is faulted in before its first read (issue_load) */
		madvise(m, p->pool_bytes, MADV_HUGEPAGE);
#endif
		if (p->cfg.mlock) {   /* pins (and faults in) the whole pool now */
			p->info.pool_locked = mlock(m, p->pool_bytes) == 0;
			p->info.lock_errno = p->info.pool_locked ? 0 : errno;
		}
	}
	uint32_t max_chunks = 1;
	uint64_t at = 0, max_range = 0;
	for (uint32_t c = 0; c < p->n_classes; c++) {
		struct cls *k = &p->classes[c];
		for (uint32_t i = k->n_slots; i-- > 0;) {
			uint32_t s = k->first_slot + i;
			p->slots[s].cls = c;
			p->slots[s].expert = NONE;
			p->slots[s].base = p->pool ? p->pool + at + i * k->slot_bytes : NULL;
			free_list_push(p, s);
		}
		at += k->n_slots * k->slot_bytes;
	}
	for (uint32_t e = 0; e < p->n_total; e++) {
		const struct expert *x = &p->experts[e];
		uint32_t chunks = 0;
		for (uint32_t i = 0; i < x->n_ranges; i++) {
			const struct range *r = &p->ranges[x->first + i];
			chunks += p->nopool ? 1 : (uint32_t)((r->cover_len + p->cfg.io_block - 1) / p->cfg.io_block);
			if (r->cover_len > max_range)
				max_range = r->cover_len;
		}
		if (chunks > max_chunks)
			max_chunks = chunks;
	}
	if (p->nopool) {   /* per-slot pointer arrays */
		uint32_t n = 0;
		for (uint32_t e = 0; e < p->n_total; e++)
			if (p->experts[e].n_ranges > n)
				n = p->experts[e].n_ranges;
		for (uint32_t s = 0; s < p->n_slots; s++) {
			p->slots[s].ptr = mp_calloc(n, sizeof(void *));
			if (!p->slots[s].ptr) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	/* Reads: every slot loading at once, each split in io_block pieces. */
	uint64_t n_reads = (uint64_t)p->n_slots * max_chunks;
	if (n_reads >= NONE)
		n_reads = NONE - 1;
	p->n_reads = (uint32_t)n_reads;
	p->reads = mp_calloc(p->n_reads ? p->n_reads : 1, sizeof *p->reads);
	p->batch = mp_calloc(p->cfg.io_depth, sizeof *p->batch);
	p->batch_ids = mp_calloc(p->cfg.io_depth, sizeof *p->batch_ids);
	p->cqes = mp_calloc(p->cfg.io_depth, sizeof *p->cqes);
	p->mvec_len = (size_t)(max_range / 4096 + 2);
	p->mvec = mp_malloc(p->mvec_len);
	if (!p->reads || !p->batch || !p->batch_ids || !p->cqes || !p->mvec) {
		rc = -ENOMEM;
		goto out;
	}
	p->read_free = NONE;
	for (uint32_t i = p->n_reads; i-- > 0;) {
		p->reads[i].next = p->read_free;
		p->read_free = i;
	}
	/* Depth kept for demand reads; at depth 1 prefetches must share it. */
	p->reserve = p->cfg.io_depth < 2 ? 0 : p->cfg.io_depth / 4 ? p->cfg.io_depth / 4 : 1;
	p->low_mem = p->cfg.low_mem ? p->cfg.low_mem : mem_total_or_available("MemTotal") / 8;

	struct mp_io_config ic = { .depth = p->cfg.io_depth, .threads = p->cfg.io_threads,
	                           .max_files = p->cfg.max_files, .buf_base = p->pool,
	                           .buf_len = p->pool_bytes, .fault = p->cfg.fault,
	                           .reg_max = p->cfg.reg_max, .reg_piece = p->cfg.reg_piece };
	if (p->cfg.backend)
		rc = mp_io_open(ops, &ic, &p->io, note, sizeof note);
	else
		rc = mp_io_open_name(p->cfg.io ? p->cfg.io : "auto", &ic, &p->io, note, sizeof note);
	if (rc < 0) {
		say(p, "%s", note);
		goto out;
	}
	if (mp_io_ops_of(p->io)->caps & MP_IO_CAP_NOPOOL && !p->nopool) {
		say(p, "pager: auto chose the mmap backend after sizing a pool; use --io mmap");
		rc = -MP_EUNAVAIL;
		goto out;
	}
	for (uint32_t f = 0; f < p->n_files; f++) {
		rc = mp_io_add_file(p->io, p->files[f].path, NULL);
		if (rc < 0) {
			say(p, "%s", mp_io_message(p->io));
			goto out;
		}
	}
	rc = 0;
	if (note[0])
		say(p, "io: %s", note);   /* why auto skipped a backend, said once */
	p->info.backend = mp_io_ops_of(p->io)->name;
	p->info.fallbacks = mp_io_fallbacks(p->io) | (note[0] ? MP_STATS_FB_BACKEND : 0) |
			    (p->cfg.mlock && !p->info.pool_locked && p->pool ? MP_STATS_FB_MLOCK_REFUSED : 0);
	p->started = 1;
	if (p->cfg.stats) {
		mp_stats_set_backend(p->cfg.stats, p->info.backend);
		mp_stats_add_fallbacks(p->cfg.stats, p->info.fallbacks);
		stats_begin(p);
		mp_stats_set(&mp_stats_global(p->cfg.stats)->pool_total, p->pool_bytes);
		stats_end(p);
	}
	if (p->fits && !p->nopool && !p->cfg.no_preload) {
		stats_begin(p);
		for (uint32_t id = 0; id < p->n_total; id++) {
			if (!p->experts[id].n_ranges)
				continue;
			struct cls *k = &p->classes[p->experts[id].cls];
			uint32_t s = k->free_head;
			k->free_head = p->slots[s].next_free;
			k->n_free--;
			if (issue_load(p, id, s, 0) >= 0) {
				/* the preload is a prefetch of everything: counted
				 * as issued, so its uses do not exceed its issues */
				p->info.pf_issued++;
				st_add_layer(p, id, LAYER_F(pf_issued), 1);
			}
		}
		stats_end(p);
	} else if (p->pool && !p->info.pool_locked) {
		p->warmer_running = pthread_create(&p->warmer, NULL, warm_pool, p) == 0;
	}
out:
	if (rc == 0) {
		progress(p, 0);              /* get the preload going */
		debug_check(p);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Read queues and I/O progress */

static void q_push(struct mp_pager *p, struct queue *q, uint32_t r)
{
	p->reads[r].next = NONE;
	p->reads[r].queued = 1;
	if (q->tail == NONE)
		q->head = r;
	else
		p->reads[q->tail].next = r;
	q->tail = r;
	q->n++;
}

static uint32_t q_pop(struct mp_pager *p, struct queue *q)
{
	uint32_t r = q->head;
	q->head = p->reads[r].next;
	if (q->head == NONE)
		q->tail = NONE;
	q->n--;
	return r;
}

static void free_read(struct mp_pager *p, uint32_t r)
{
	p->reads[r].queued = 0;
	p->reads[r].next = p->read_free;
	p->read_free = r;
}

/* Takes slot s's reads off queue from: onto queue to, or freed (to NULL).
 * Returns how many. */
static uint32_t take_reads(struct mp_pager *p, struct queue *from, uint32_t s, struct queue *to)
{
	uint32_t prev = NONE, r = from->head, n = 0;
	while (r != NONE) {
		uint32_t next = p->reads[r].next;
		if (p->reads[r].slot == s) {
			if (prev == NONE)
				from->head = next;
			else
				p->reads[prev].next = next;
			if (from->tail == r)
				from->tail = prev;
			from->n--;
			n++;
			if (to) {
				q_push(p, to, r);
			} else {
				p->pending_bytes -= p->reads[r].len;
				free_read(p, r);
			}
		} else {
			prev = r;
		}
		r = next;
	}
	return n;
}

/* Moves the queued prefetch reads of slot s to the demand queue (invariant 6). */
static void promote(struct mp_pager *p, uint32_t s)
{
	take_reads(p, &p->prefetch, s, &p->demand);
}

static void free_slot(struct mp_pager *p, uint32_t s)
{
	struct slot *sl = &p->slots[s];
	if (sl->expert != NONE)
		p->experts[sl->expert].slot = NONE;
	sl->state = S_FREE;
	sl->expert = NONE;
	sl->prefetched = 0;
	sl->err = 0;
	free_list_push(p, s);
}

/* The last read of slot s landed: READY/IN_USE, or FREE after an error. */
static void finish_load(struct mp_pager *p, uint32_t s)
{
	struct slot *sl = &p->slots[s];
	uint32_t id = sl->expert;
	struct expert *e = &p->experts[id];
	if (sl->err == -MP_ECANCELLED) {         /* mp_pager_cancel */
		if (e->pins) {                    /* acquired since: read it again, as demand */
			issue_load(p, id, s, 1);
			return;
		}
		e->err = 0;
		free_slot(p, s);
		return;
	}
	if (sl->err) {
		const struct range *r = &p->ranges[e->first + sl->err_range];
		e->err = sl->err;
		say(p, "layer %u expert %u: read of %s at offset %" PRIu64 " failed: %s",
		    id / p->cfg.n_experts, id % p->cfg.n_experts, p->files[r->file].path,
		    sl->err_offset, sl->err == -ENODATA ? "the file ends early (truncated?)"
		    : mp_strerror(sl->err));
		st_add_global(p, GLOBAL_F(io_errors), 1);
		free_slot(p, s);
		return;
	}
	sl->state = e->pins ? S_IN_USE : S_READY;
}

static void complete_read(struct mp_pager *p, const struct mp_io_cqe *c)
{
	uint32_t r = (uint32_t)c->tag;
	struct read *rd = &p->reads[r];
	struct slot *sl = &p->slots[rd->slot];
	if (rd->queued == 3)                 /* a prefetch read: frees prefetch depth */
		p->pf_inflight--;
	uint64_t now = mp_clock_now_ns();
	if (p->cfg.stats)
		mp_stats_latency(p->cfg.stats, now - rd->t_submit);
	st_add_global(p, GLOBAL_F(io_reads), 1);
	if (c->result < 0) {
		if (!sl->err) {
			sl->err = (int32_t)c->result;
			sl->err_range = rd->range;
			sl->err_offset = rd->offset;
		}
	} else {
		p->info.bytes_read += (uint64_t)c->result;
		st_add_global(p, GLOBAL_F(io_bytes), (uint64_t)c->result);
		st_add_layer(p, sl->expert, LAYER_F(bytes_read), (uint64_t)c->result);
		if (p->nopool)
			sl->ptr[rd->range] = c->data;
	}
	p->pending_bytes -= rd->len;
	free_read(p, r);
	if (--sl->pending == 0)
		finish_load(p, rd->slot);
}

/* Submits queued reads, demand first; prefetches keep `reserve` free.
 * Called with mu and io_mu held. */
static void pump(struct mp_pager *p)
{
	uint32_t depth = p->cfg.io_depth;
	uint32_t inflight = mp_io_inflight(p->io);
	uint32_t space = depth > inflight ? depth - inflight : 0;
	uint32_t pf_room = depth - p->reserve > p->pf_inflight ? depth - p->reserve - p->pf_inflight : 0;
	uint32_t k = 0, nd = 0;
	for (uint32_t r = p->demand.head; r != NONE && k < space; r = p->reads[r].next)
		p->batch_ids[k++] = r;
	nd = k;
	for (uint32_t r = p->prefetch.head; r != NONE && k < space && k - nd < pf_room;
	     r = p->reads[r].next)
		p->batch_ids[k++] = r;
	if (!k)
		return;
	for (uint32_t i = 0; i < k; i++) {
		const struct read *rd = &p->reads[p->batch_ids[i]];
		const struct slot *sl = &p->slots[rd->slot];
		p->batch[i] = (struct mp_io_req){ .file = p->ranges[p->experts[sl->expert].first + rd->range].file,
		                                  .offset = rd->offset, .len = rd->len,
		                                  .buf = p->nopool ? NULL : sl->base + rd->dst,
		                                  .tag = p->batch_ids[i] };
	}
	int acc = mp_io_submit(p->io, p->batch, k);
	uint64_t now = mp_clock_now_ns();
	uint32_t ahead;
	mp_io_reg_counts(p->io, &ahead, &p->info.reg_on_read);
	if (acc < 0) {                       /* the first read is refused: fail it */
		uint32_t r = q_pop(p, nd ? &p->demand : &p->prefetch);
		p->reads[r].queued = 2;
		struct mp_io_cqe c = { .tag = r, .result = acc };
		p->reads[r].t_submit = now;
		complete_read(p, &c);
		return;
	}
	if (acc > 0 && !p->busy_t0)
		p->busy_t0 = now;                /* the disk's busy interval starts */
	for (int i = 0; i < acc; i++) {
		int from_demand = (uint32_t)i < nd;
		uint32_t r = q_pop(p, from_demand ? &p->demand : &p->prefetch);
		p->reads[r].queued = from_demand ? 2 : 3;
		p->reads[r].t_submit = now;
		if (!from_demand)
			p->pf_inflight++;
	}
}

/* Bandwidth (see Speculation): bytes completed over the time reads were in
 * flight, the older half forgotten every 2 s of it.  mu and io_mu held. */
static void measure_bw(struct mp_pager *p, uint64_t bytes)
{
	uint64_t now = mp_clock_now_ns();
	if (p->busy_t0) {
		p->bw_ns += now - p->busy_t0;
		p->bw_bytes += bytes;
		if (p->bw_ns > 2000000000ull) {
			p->bw_ns /= 2;
			p->bw_bytes /= 2;
		}
	}
	p->busy_t0 = mp_io_inflight(p->io) ? now : 0;
}

static void apply(struct mp_pager *p, int n)
{
	uint64_t bytes = 0;
	stats_begin(p);
	for (int i = 0; i < n; i++) {
		bytes += p->cqes[i].result > 0 ? (uint64_t)p->cqes[i].result : 0;
		complete_read(p, &p->cqes[i]);
	}
	stats_end(p);
	measure_bw(p, bytes);
}

/* Called with mu held; returns with it held (see Locking).  Submits what is
 * queued and applies what has completed; with block, waits for at least one
 * completion, or for the thread that drives the I/O to apply some.  Returns
 * the completions applied, -EDEADLK when blocking could never end (nothing
 * queued or in flight), or a reap error. */
static int progress(struct mp_pager *p, int block)
{
	if (!p->io)
		return block ? -EDEADLK : 0;
	if (pthread_mutex_trylock(&p->io_mu) != 0) {
		if (block)
			pthread_cond_wait(&p->cv, &p->mu);
		return 0;
	}
	pump(p);
	int n = mp_io_reap(p->io, p->cqes, p->cfg.io_depth, 0);
	if (n > 0) {
		apply(p, n);
		pump(p);
	}
	if (n == 0 && block) {
		if (mp_io_inflight(p->io) == 0) {
			n = -EDEADLK;
		} else {
			pthread_mutex_unlock(&p->mu);
			n = mp_io_reap(p->io, p->cqes, p->cfg.io_depth, 1);
			pthread_mutex_lock(&p->mu);
			if (n > 0) {
				apply(p, n);
				pump(p);
			}
		}
	}
	pthread_mutex_unlock(&p->io_mu);
	pthread_cond_broadcast(&p->cv);
	return n;
}

/* ------------------------------------------------------------------------ */
/* Loads: page cache or disk */

/* 1 if every page of every range of e is in the page cache. */
static int in_page_cache(struct mp_pager *p, const struct expert *e)
{
	for (uint32_t i = 0; i < e->n_ranges; i++) {
		const struct range *r = &p->ranges[e->first + i];
		const struct file *f = &p->files[r->file];
		if (!f->map)
			return 0;
		uint64_t a = align_down(r->offset), b = align_up(r->offset + r->len);
		if (b > align_up(f->size))
			b = align_up(f->size);
		size_t pages = (size_t)((b - a) / 4096);
		if (pages > p->mvec_len || mincore((void *)(f->map + a), b - a, p->mvec) != 0)
			return 0;
		for (size_t k = 0; k < pages; k++)
			if (!(p->mvec[k] & 1))
				return 0;
	}
	return 1;
}

/* Copies e's ranges from the page cache into slot s with buffered preads;
 * drops those pages afterwards when memory is low.  0 or -errno. */
static int copy_from_page_cache(struct mp_pager *p, uint32_t id, uint32_t s)
{
	struct expert *e = &p->experts[id];
	struct slot *sl = &p->slots[s];
	uint64_t copied = 0;
	for (uint32_t i = 0; i < e->n_ranges; i++) {
		const struct range *r = &p->ranges[e->first + i];
		uint8_t *dst = sl->base + r->cover_off + r->skip;
		for (uint64_t got = 0; got < r->len;) {
			ssize_t n = pread(p->files[r->file].fd, dst + got, r->len - got,
			                  (off_t)(r->offset + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				sl->err = n < 0 ? -errno : -ENODATA;
				sl->err_range = i;
				sl->err_offset = r->offset + got;
				return sl->err;
			}
			got += (uint64_t)n;
		}
		copied += r->len;
	}
	p->info.pc_bytes += copied;
	st_add_global(p, GLOBAL_F(pc_bytes), copied);
	st_add_layer(p, id, LAYER_F(bytes_read), copied);
	if (mem_total_or_available("MemAvailable") < p->low_mem) {
		for (uint32_t i = 0; i < e->n_ranges; i++) {
			const struct range *r = &p->ranges[e->first + i];
			posix_fadvise(p->files[r->file].fd, (off_t)r->offset, (off_t)r->len,
			              POSIX_FADV_DONTNEED);
		}
		p->info.pc_dropped += copied;
		st_add_global(p, GLOBAL_F(pc_dropped), copied);
	}
	return 0;
}

/* FREE slot s (off the free list) starts loading expert id.  Returns 1 when
 * it was copied from the page cache (now READY/IN_USE), 0 when its reads are
 * queued (demand or prefetch), or the copy's error (the slot is FREE again
 * and the expert carries the error). */
static int issue_load(struct mp_pager *p, uint32_t id, uint32_t s, int demand)
{
	struct expert *e = &p->experts[id];
	struct slot *sl = &p->slots[s];
	sl->state = S_LOADING;
	sl->expert = id;
	sl->prefetched = !demand;
	if (!__atomic_load_n(&sl->populated, __ATOMIC_RELAXED) && sl->base) {
		/* O_DIRECT into unfaulted huge pages crawls (≈200 MB/s here, the
		 * read faults them in); faulted in first, 1-4 GB/s (bench/README.md) */
#ifdef MADV_POPULATE_WRITE
		madvise(sl->base, p->classes[sl->cls].slot_bytes, MADV_POPULATE_WRITE);
#endif
		__atomic_store_n(&sl->populated, 1, __ATOMIC_RELAXED);
	}
	sl->last_use = p->tick;
	sl->err = 0;
	sl->pending = 0;
	e->slot = s;
	e->err = 0;
	e->tier_pc = 0;
	if (!p->nopool && !p->cfg.no_page_cache && in_page_cache(p, e)) {
		e->tier_pc = 1;
		if (copy_from_page_cache(p, id, s) < 0) {
			finish_load(p, s);
			return e->err;
		}
		finish_load(p, s);
		return 1;
	}
	for (uint32_t i = 0; i < e->n_ranges; i++) {
		const struct range *r = &p->ranges[e->first + i];
		uint64_t start = p->nopool ? r->offset : align_down(r->offset);
		uint64_t len = p->nopool ? r->len : r->cover_len;
		uint64_t block = p->nopool ? len : p->cfg.io_block;
		for (uint64_t o = 0; o < len; o += block) {
			uint32_t rid = p->read_free;
			p->read_free = p->reads[rid].next;
			struct read *rd = &p->reads[rid];
			rd->slot = s;
			rd->range = i;
			rd->offset = start + o;
			rd->len = len - o < block ? len - o : block;
			rd->dst = r->cover_off + o;
			q_push(p, demand ? &p->demand : &p->prefetch, rid);
			p->pending_bytes += rd->len;
			sl->pending++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Eviction */

static int is_current(const struct mp_pager *p, uint32_t id)
{
	if (id / p->cfg.n_experts != p->cur_layer)
		return 0;
	for (uint32_t i = 0; i < p->n_cur; i++)
		if (p->cur[i] == id % p->cfg.n_experts)
			return 1;
	return 0;
}

static double keep_score(struct mp_pager *p, uint32_t s)
{
	uint32_t id = p->slots[s].expert;
	if (p->cfg.keep_score)
		return p->cfg.keep_score(p->cfg.policy_ctx, id / p->cfg.n_experts, id % p->cfg.n_experts);
	return (double)p->slots[s].last_use / (double)(p->tick + 1);   /* LRU in [0, 1) */
}

/* A FREE slot of class c taken off the free list, or the evicted READY slot
 * with the lowest keep score (for a prefetch: only below beat), or NONE. */
static uint32_t find_slot(struct mp_pager *p, uint32_t c, int for_prefetch, double beat)
{
	struct cls *k = &p->classes[c];
	if (k->n_free) {
		uint32_t s = k->free_head;
		k->free_head = p->slots[s].next_free;
		k->n_free--;
		return s;
	}
	uint32_t best = NONE;
	double best_score = 0;
	for (uint32_t s = k->first_slot; s < k->first_slot + k->n_slots; s++) {
		const struct slot *sl = &p->slots[s];
		if (sl->state != S_READY || is_current(p, sl->expert))   /* invariants 3, 7 */
			continue;
		double sc = keep_score(p, s);
		if (best == NONE || sc < best_score) {
			best = s;
			best_score = sc;
		}
	}
	if (best == NONE || (for_prefetch && best_score >= beat))
		return NONE;
	struct slot *sl = &p->slots[best];
	p->info.evictions++;
	st_add_global(p, GLOBAL_F(evictions), 1);
	if (sl->prefetched) {
		p->info.pf_wasted++;
		st_add_layer(p, sl->expert, LAYER_F(pf_wasted), 1);
	}
	p->experts[sl->expert].slot = NONE;
	sl->state = S_FREE;
	sl->expert = NONE;
	sl->prefetched = 0;
	return best;
}

/* 1 if a slot of class c is LOADING for an unpinned expert (it will become
 * evictable when its reads land). */
static int loading_unpinned(const struct mp_pager *p, uint32_t c)
{
	const struct cls *k = &p->classes[c];
	for (uint32_t s = k->first_slot; s < k->first_slot + k->n_slots; s++)
		if (p->slots[s].state == S_LOADING && !p->experts[p->slots[s].expert].pins)
			return 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The per-token API */

static int check_set(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n, int pinned)
{
	if (!p->started) {
		say(p, "pager: not started");
		return -MP_EARG;
	}
	if (layer >= p->cfg.n_layers || n > p->cfg.top_k) {
		say(p, "pager: layer %u of %u, %u experts of at most %u", layer, p->cfg.n_layers, n,
		    p->cfg.top_k);
		return -MP_EARG;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (x[i] >= p->cfg.n_experts || !p->experts[eid(p, layer, x[i])].n_ranges) {
			say(p, "pager: layer %u expert %u is not registered", layer, x[i]);
			return -MP_EARG;
		}
		for (uint32_t j = 0; j < i; j++)
			if (x[j] == x[i]) {
				say(p, "pager: layer %u expert %u twice in one set", layer, x[i]);
				return -MP_EARG;
			}
		if (pinned && !p->experts[eid(p, layer, x[i])].pins) {
			say(p, "pager: layer %u expert %u is not acquired", layer, x[i]);
			return -MP_EARG;
		}
	}
	return 0;
}

static void unpin(struct mp_pager *p, uint32_t id)
{
	struct expert *e = &p->experts[id];
	if (!e->pins)
		return;
	if (--e->pins == 0 && e->slot != NONE && p->slots[e->slot].state == S_IN_USE)
		p->slots[e->slot].state = S_READY;
}

/* Pins expert id: a hit, or a slot found (evicting if need be) and its
 * load issued.  progress() may drop mu while a slot is awaited, so the
 * expert's residence is looked at again each time round.  0 or -MP_EBUDGET. */
static int acquire_one(struct mp_pager *p, uint32_t id)
{
	struct expert *e = &p->experts[id];
	e->pins++;
	stats_begin(p);
	st_add_expert(p, id, EXPERT_F(uses), 1);
	for (;;) {
		if (e->slot != NONE) {                    /* hit: READY, IN_USE or LOADING */
			struct slot *sl = &p->slots[e->slot];
			if (sl->state == S_READY)
				sl->state = S_IN_USE;
			else if (sl->state == S_LOADING)
				promote(p, e->slot);
			if (sl->prefetched) {
				sl->prefetched = 0;
				p->info.pf_used++;
				st_add_layer(p, id, LAYER_F(pf_used), 1);
			}
			sl->last_use = p->tick;
			int again = sl->err == -MP_ECANCELLED;    /* will be read again */
			*(again ? &p->info.misses : &p->info.hits) += 1;
			st_add_layer(p, id, again ? LAYER_F(misses) : LAYER_F(hits), 1);
			st_add_expert(p, id, again ? EXPERT_F(misses) : EXPERT_F(hits), 1);
			break;
		}
		uint32_t s = find_slot(p, e->cls, 0, 0);
		if (s != NONE) {
			int got = issue_load(p, id, s, 1);
			*(got == 1 ? &p->info.pc_hits : &p->info.misses) += 1;
			st_add_layer(p, id, got == 1 ? LAYER_F(pc_hits) : LAYER_F(misses), 1);
			st_add_expert(p, id, EXPERT_F(misses), 1);
			break;
		}
		stats_end(p);
		if (!loading_unpinned(p, e->cls) || progress(p, 1) < 0) {
			e->pins--;
			say(p, "pager: no slot can be freed for layer %u expert %u: all %u slots of "
			    "its size class are loading or in use (experts of several layers held at once?)",
			    id / p->cfg.n_experts, id % p->cfg.n_experts, p->classes[e->cls].n_slots);
			return -MP_EBUDGET;
		}
		stats_begin(p);
	}
	stats_end(p);
	return 0;
}

/* The pager's own CPU time: thread CPU clock (blocked time excluded) spent
 * in the public calls, summed into info.cpu_ns.  enter() takes the lock. */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t enter(struct mp_pager *p)
{
	uint64_t c = thread_cpu_ns();
	pthread_mutex_lock(&p->mu);
	return c;
}

static void leave(struct mp_pager *p, uint64_t cpu0)
{
	uint64_t d = thread_cpu_ns() - cpu0;
	p->info.cpu_ns += d;
	if (p->cfg.stats && p->started) {
		stats_begin(p);
		mp_stats_add(&mp_stats_global(p->cfg.stats)->pager_cpu_ns, d);
		stats_end(p);
	}
	pthread_mutex_unlock(&p->mu);
}

/* The compute time between acquires (see Speculation): the time since the
 * last one less the waits in it, a moving average over about 8 layers;
 * gaps over 5 s (the program paused between requests) are not layers. */
static void time_layer(struct mp_pager *p)
{
	uint64_t now = mp_clock_now_ns();
	if (p->t_acquire && now - p->t_acquire < 5000000000ull) {
		uint64_t d = now - p->t_acquire;
		d -= p->stall_acc < d ? p->stall_acc : d;
		p->layer_ns = p->layer_ns ? (7 * p->layer_ns + d) / 8 : d;
	}
	p->t_acquire = now;
	p->stall_acc = 0;
}

int mp_pager_acquire(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n)
{
	uint64_t cpu0 = enter(p);
	int rc = check_set(p, layer, x, n, 0);
	if (rc < 0)
		goto out;
	p->tick++;
	time_layer(p);
	p->cur_layer = layer;
	p->n_cur = n;
	memcpy(p->cur, x, n * sizeof *x);
	if (p->cfg.on_access)
		p->cfg.on_access(p->cfg.policy_ctx, layer, x, n);
	uint32_t i = 0;
	for (; i < n; i++) {
		rc = acquire_one(p, eid(p, layer, x[i]));
		if (rc < 0)
			break;
	}
	if (rc < 0)                               /* all or nothing */
		while (i-- > 0)
			unpin(p, eid(p, layer, x[i]));
	else
		progress(p, 0);                   /* demand reads go out now */
out:
	debug_check(p);
	leave(p, cpu0);
	return rc;
}

/* 1 and pointers when the pinned expert's data is in memory, 0 while it
 * loads, or its error. */
static int ready(struct mp_pager *p, uint32_t id, const void **ptrs, uint32_t max)
{
	const struct expert *e = &p->experts[id];
	if (e->err)
		return e->err;
	if (e->slot == NONE)
		return -EIO;                      /* unreachable: a pinned expert has a slot or an error */
	const struct slot *sl = &p->slots[e->slot];
	if (sl->state != S_IN_USE && sl->state != S_READY)
		return 0;
	for (uint32_t i = 0; ptrs && i < e->n_ranges && i < max; i++) {
		const struct range *r = &p->ranges[e->first + i];
		ptrs[i] = p->nopool ? sl->ptr[i] : sl->base + r->cover_off + r->skip;
	}
	return 1;
}

static void add_stall(struct mp_pager *p, uint32_t layer, uint64_t t0)
{
	if (t0 && p->cfg.stats) {
		stats_begin(p);
		mp_stats_add(&st_layer(p, layer)->stall_ns, mp_clock_now_ns() - t0);
		stats_end(p);
	}
}

int mp_pager_poll(struct mp_pager *p, uint32_t layer, uint32_t x, const void **ptrs, uint32_t max)
{
	pthread_mutex_lock(&p->mu);
	int rc = check_set(p, layer, &x, 1, 1);
	if (rc == 0) {
		rc = ready(p, eid(p, layer, x), ptrs, max);
		if (rc == 0) {
			progress(p, 0);
			rc = ready(p, eid(p, layer, x), ptrs, max);
		}
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* Blocks (mu held) until one of x[i] with !taken[i] is ready or failed;
 * returns that i, or a negative error. */
static int wait_locked(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n,
                       const uint8_t *taken)
{
	uint64_t t0 = 0;
	int rc;
	for (;;) {
		int open = 0, found = -1;
		for (uint32_t i = 0; i < n && found < 0; i++) {
			if (taken && taken[i])
				continue;
			open = 1;
			if (ready(p, eid(p, layer, x[i]), NULL, 0) != 0)
				found = (int)i;
		}
		if (found >= 0) {
			rc = found;
			break;
		}
		if (!open) {
			say(p, "pager: wait_any on layer %u: every expert is taken", layer);
			rc = -MP_EARG;
			break;
		}
		if (!t0)
			t0 = mp_clock_now_ns();
		rc = progress(p, 1);
		if (rc < 0)
			break;
	}
	if (t0)
		p->stall_acc += mp_clock_now_ns() - t0;
	add_stall(p, layer, t0);
	return rc;
}

int mp_pager_wait(struct mp_pager *p, uint32_t layer, uint32_t x, const void **ptrs, uint32_t max)
{
	uint64_t cpu0 = enter(p);
	int rc = check_set(p, layer, &x, 1, 1);
	if (rc == 0)
		rc = wait_locked(p, layer, &x, 1, NULL);
	if (rc >= 0)
		rc = ready(p, eid(p, layer, x), ptrs, max);
	leave(p, cpu0);
	return rc < 0 ? rc : 0;
}

int mp_pager_wait_any(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n,
                      const uint8_t *taken)
{
	uint64_t cpu0 = enter(p);
	int rc = check_set(p, layer, x, n, 1);
	if (rc == 0)
		rc = wait_locked(p, layer, x, n, taken);
	leave(p, cpu0);
	return rc;
}

void mp_pager_release(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n)
{
	uint64_t cpu0 = enter(p);
	for (uint32_t i = 0; i < n; i++)
		if (layer < p->cfg.n_layers && x[i] < p->cfg.n_experts)
			unpin(p, eid(p, layer, x[i]));
	debug_check(p);
	leave(p, cpu0);
}

/* The speculation cap for a hint of layer (see Speculation): bytes the disk
 * reads in the compute time until that layer runs (one layer's per layer
 * ahead of the last acquire; one when it is not ahead), UINT64_MAX while
 * unmeasured. */
static uint64_t spec_cap(const struct mp_pager *p, uint32_t layer)
{
	if (p->cfg.prefetch_cap)
		return p->cfg.prefetch_cap;
	if (!p->layer_ns || !p->bw_ns || !p->bw_bytes)
		return UINT64_MAX;
	uint32_t ahead = layer > p->cur_layer ? layer - p->cur_layer : 1;
	return (uint64_t)((double)p->bw_bytes / (double)p->bw_ns * (double)p->layer_ns * ahead);
}

/* The share of resolved prefetches that were used (see Speculation): a
 * hint's score times this is what a victim's keep score must be below; 1
 * until PF_RESOLVED_MIN prefetches were used or wasted. */
#define PF_RESOLVED_MIN 16
static double pf_precision(const struct mp_pager *p)
{
	uint64_t resolved = p->info.pf_used + p->info.pf_wasted;
	return resolved < PF_RESOLVED_MIN ? 1.0 : (double)p->info.pf_used / (double)resolved;
}

int mp_pager_hint(struct mp_pager *p, uint32_t layer, const uint32_t *x, const double *scores,
                  uint32_t n)
{
	uint64_t cpu0 = enter(p);
	int started = 0;
	if (!p->started || layer >= p->cfg.n_layers || p->nopool)
		goto out;
	uint32_t order[256];
	uint32_t m = n < 256 ? n : 256;
	for (uint32_t i = 0; i < m; i++) {   /* best score first (insertion sort) */
		uint32_t j = i;
		for (; j > 0 && scores[order[j - 1]] < scores[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	uint64_t cap = spec_cap(p, layer);
	double precision = pf_precision(p);
	stats_begin(p);
	for (uint32_t k = 0; k < m; k++) {
		uint32_t i = order[k];
		if (x[i] >= p->cfg.n_experts)
			continue;
		uint32_t id = eid(p, layer, x[i]);
		struct expert *e = &p->experts[id];
		if (!e->n_ranges || e->slot != NONE || e->pins)
			continue;
		if (p->pending_bytes && p->pending_bytes + p->classes[e->cls].slot_bytes > cap) {
			p->info.pf_capped++;         /* invariant 8 */
			continue;
		}
		uint32_t s = find_slot(p, e->cls, 1, scores[i] * precision);
		if (s == NONE)
			continue;
		if (issue_load(p, id, s, 0) >= 0) {
			started++;
			p->info.pf_issued++;
			st_add_layer(p, id, LAYER_F(pf_issued), 1);
		}
	}
	stats_end(p);
	progress(p, 0);
	debug_check(p);
out:
	leave(p, cpu0);
	return started;
}

int mp_pager_cancel(struct mp_pager *p, uint32_t layer, const uint32_t *x, uint32_t n)
{
	pthread_mutex_lock(&p->mu);
	int cancelled = 0;
	if (!p->started || layer >= p->cfg.n_layers)
		goto out;
	int have_io = pthread_mutex_trylock(&p->io_mu) == 0;
	stats_begin(p);
	for (uint32_t i = 0; i < n; i++) {
		if (x[i] >= p->cfg.n_experts)
			continue;
		const struct expert *e = &p->experts[eid(p, layer, x[i])];
		uint32_t s = e->slot;
		if (s == NONE || e->pins || p->slots[s].state != S_LOADING)
			continue;
		struct slot *sl = &p->slots[s];
		sl->pending -= take_reads(p, &p->prefetch, s, NULL);
		sl->pending -= take_reads(p, &p->demand, s, NULL);
		for (uint32_t r = 0; have_io && sl->pending && r < p->n_reads; r++)
			if (p->reads[r].queued >= 2 && p->reads[r].slot == s)
				mp_io_cancel(p->io, r);
		if (!sl->err)
			sl->err = -MP_ECANCELLED;
		if (sl->err == -MP_ECANCELLED) {
			cancelled++;
			if (sl->prefetched) {
				p->info.pf_wasted++;
				st_add_layer(p, sl->expert, LAYER_F(pf_wasted), 1);
				sl->prefetched = 0;
			}
		}
		if (!sl->pending)
			finish_load(p, s);
	}
	stats_end(p);
	if (have_io)
		pthread_mutex_unlock(&p->io_mu);
	debug_check(p);
out:
	pthread_mutex_unlock(&p->mu);
	return cancelled;
}

enum mp_pager_tier mp_pager_tier(struct mp_pager *p, uint32_t layer, uint32_t x)
{
	enum mp_pager_tier t = MP_TIER_DISK;
	pthread_mutex_lock(&p->mu);
	if (layer < p->cfg.n_layers && x < p->cfg.n_experts) {
		const struct expert *e = &p->experts[eid(p, layer, x)];
		if (e->slot != NONE && p->slots)
			t = p->slots[e->slot].state == S_LOADING ? MP_TIER_LOADING : MP_TIER_POOL;
		else if (e->n_ranges && p->mvec && in_page_cache(p, e))
			t = MP_TIER_PAGE_CACHE;
	}
	pthread_mutex_unlock(&p->mu);
	return t;
}

void mp_pager_info(struct mp_pager *p, struct mp_pager_info *out)
{
	pthread_mutex_lock(&p->mu);
	*out = p->info;
	out->warmed_bytes = __atomic_load_n(&p->warmed, __ATOMIC_RELAXED);
	out->reg_warmed = __atomic_load_n(&p->reg_warmed, __ATOMIC_RELAXED);
	out->pool_bytes = p->pool_bytes;
	out->min_budget = p->min_budget;
	out->full_budget = p->full_budget;
	out->n_slots = p->n_slots;
	out->n_classes = p->n_classes;
	out->fits = (uint32_t)p->fits;
	out->n_free = out->n_loading = out->n_ready = out->n_in_use = 0;
	for (uint32_t s = 0; s < p->n_slots; s++) {
		switch (p->slots[s].state) {
		case S_FREE: out->n_free++; break;
		case S_LOADING: out->n_loading++; break;
		case S_READY: out->n_ready++; break;
		default: out->n_in_use++; break;
		}
	}
	pthread_mutex_unlock(&p->mu);
}

const char *mp_pager_message(const struct mp_pager *p)
{
	return p->msg;
}

/* ------------------------------------------------------------------------ */
/* Invariants, dump, teardown */

#define BROKEN(n, ...) do { say(p, "invariant " #n ": " __VA_ARGS__); return -MP_ECORRUPT; } while (0)

/* Called with mu held. */
static int check_locked(struct mp_pager *p, int level)
{
	if (!p->started)
		return 0;
	uint64_t bytes = 0;
	uint32_t free_total = 0;
	for (uint32_t c = 0; c < p->n_classes; c++) {
		bytes += p->classes[c].n_slots * p->classes[c].slot_bytes;
		free_total += p->classes[c].n_free;
	}
	if (!p->nopool && (bytes != p->pool_bytes || p->pool_bytes > p->cfg.budget))
		BROKEN(1, "slots hold %" PRIu64 " bytes, pool %" PRIu64 ", budget %" PRIu64,
		       bytes, p->pool_bytes, p->cfg.budget);
	if (p->pf_inflight > p->cfg.io_depth - p->reserve)
		BROKEN(6, "%u prefetch reads in flight, at most %u", p->pf_inflight,
		       p->cfg.io_depth - p->reserve);
	if (level < 2)
		return 0;
	uint32_t n_free = 0;
	for (uint32_t c = 0; c < p->n_classes; c++) {
		uint32_t listed = 0;
		for (uint32_t s = p->classes[c].free_head; s != NONE; s = p->slots[s].next_free) {
			if (p->slots[s].state != S_FREE || p->slots[s].cls != c || ++listed > p->n_slots)
				BROKEN(4, "slot %u on class %u's free list is %s", s, c,
				       state_name[p->slots[s].state]);
		}
		if (listed != p->classes[c].n_free)
			BROKEN(4, "class %u lists %u free slots, counts %u", c, listed, p->classes[c].n_free);
	}
	uint32_t *pending = mp_calloc(p->n_slots ? p->n_slots : 1, sizeof *pending);
	if (!pending)
		return 0;   /* no memory for a check: not a violation */
	int rc = 0;
	uint64_t bytes_pending = 0;
	for (uint32_t r = 0; r < p->n_reads; r++)
		if (p->reads[r].queued) {
			pending[p->reads[r].slot]++;
			bytes_pending += p->reads[r].len;
		}
	if (bytes_pending != p->pending_bytes) {
		say(p, "invariant 8: %" PRIu64 " bytes of reads pending, %" PRIu64 " counted",
		    bytes_pending, p->pending_bytes);
		rc = -MP_ECORRUPT;
		goto done;
	}
	for (uint32_t r = p->prefetch.head; r != NONE; r = p->reads[r].next) {
		uint32_t id = p->slots[p->reads[r].slot].expert;
		if (id != NONE && p->experts[id].pins) {
			say(p, "invariant 6: a read of pinned layer %u expert %u waits on the prefetch queue",
			    id / p->cfg.n_experts, id % p->cfg.n_experts);
			rc = -MP_ECORRUPT;
			goto done;
		}
	}
	for (uint32_t s = 0; s < p->n_slots && rc == 0; s++) {
		const struct slot *sl = &p->slots[s];
		const struct expert *e = sl->expert != NONE ? &p->experts[sl->expert] : NULL;
		if (sl->state == S_FREE) {
			n_free++;
			if (e || sl->pending || pending[s])
				{ say(p, "invariant 4: FREE slot %u holds an expert or reads", s); rc = -MP_ECORRUPT; }
			continue;
		}
		if (!e || e->slot != s)
			{ say(p, "invariant 2: slot %u and its expert disagree", s); rc = -MP_ECORRUPT; }
		else if ((sl->state == S_LOADING) != (sl->pending > 0) || sl->pending != pending[s])
			{ say(p, "invariant 5: slot %u is %s with %u reads outstanding (%u counted)", s,
			      state_name[sl->state], pending[s], sl->pending); rc = -MP_ECORRUPT; }
		else if (sl->state == S_READY && e->pins)
			{ say(p, "invariant 4: READY slot %u has %u pins", s, e->pins); rc = -MP_ECORRUPT; }
		else if (sl->state == S_IN_USE && !e->pins)
			{ say(p, "invariant 4: IN_USE slot %u has no pins", s); rc = -MP_ECORRUPT; }
		else if (sl->state != S_LOADING && sl->err)
			{ say(p, "invariant 5: slot %u is %s after an error", s, state_name[sl->state]); rc = -MP_ECORRUPT; }
	}
	if (rc == 0 && n_free != free_total) {
		say(p, "invariant 4: %u FREE slots, %u on free lists", n_free, free_total);
		rc = -MP_ECORRUPT;
	}
	for (uint32_t id = 0; id < p->n_total && rc == 0; id++) {
		uint32_t s = p->experts[id].slot;
		if (s != NONE && (s >= p->n_slots || p->slots[s].expert != id)) {
			say(p, "invariant 2: layer %u expert %u points at slot %u holding another",
			    id / p->cfg.n_experts, id % p->cfg.n_experts, s);
			rc = -MP_ECORRUPT;
		}
	}
done:
	mp_free(pending);
	return rc;
}

int mp_pager_check(struct mp_pager *p, int level)
{
	pthread_mutex_lock(&p->mu);
	int rc = check_locked(p, level);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void mp_pager_dump(struct mp_pager *p, FILE *f)
{
	fprintf(f, "pager: %u slots in %u classes, pool %" PRIu64 " bytes, demand %u, prefetch %u "
	        "queued, %u prefetch in flight, tick %" PRIu64 "\n", p->n_slots, p->n_classes,
	        p->pool_bytes, p->demand.n, p->prefetch.n, p->pf_inflight, p->tick);
	for (uint32_t s = 0; s < p->n_slots; s++) {
		const struct slot *sl = &p->slots[s];
		if (sl->state == S_FREE)
			continue;
		fprintf(f, "  slot %u class %u %s layer %u expert %u pins %u pending %u last %" PRIu64 "%s\n",
		        s, sl->cls, state_name[sl->state], sl->expert / p->cfg.n_experts,
		        sl->expert % p->cfg.n_experts, p->experts[sl->expert].pins, sl->pending,
		        sl->last_use, sl->prefetched ? " prefetched" : "");
	}
}

void mp_pager_destroy(struct mp_pager *p)
{
	if (!p)
		return;
	if (p->warmer_running) {             /* before the pool goes */
		__atomic_store_n(&p->warm_stop, 1, __ATOMIC_RELAXED);
		pthread_join(p->warmer, NULL);
	}
	mp_io_close(p->io);                  /* cancels and drains what is in flight */
	if (p->pool)
		munmap(p->pool, p->pool_bytes);
	for (uint32_t i = 0; p->files && i < p->n_files; i++) {
		if (p->files[i].map)
			munmap((void *)p->files[i].map, p->files[i].size);
		if (p->files[i].fd >= 0)
			close(p->files[i].fd);
		mp_free(p->files[i].path);
	}
	for (uint32_t s = 0; p->slots && s < p->n_slots; s++)
		mp_free(p->slots[s].ptr);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->io_mu);
	pthread_cond_destroy(&p->cv);
	mp_free(p->files);
	mp_free(p->experts);
	mp_free(p->ranges);
	mp_free(p->classes);
	mp_free(p->slots);
	mp_free(p->reads);
	mp_free(p->batch);
	mp_free(p->batch_ids);
	mp_free(p->cqes);
	mp_free(p->mvec);
	mp_free(p->cur);
	mp_free(p);
}
