/*
 * pager.h — the expert pager: a bounded pool of slots in RAM holding routed
 * experts, filled from the model files by asynchronous reads.
 *
 * The pager knows byte ranges, never model types: the model registers each
 * routed expert as (layer, expert) -> a list of (file, offset, length) ranges
 * (gate, up and down slices, possibly in different split files, not aligned),
 * then asks for experts by (layer, expert) and gets one pointer per range.
 *
 * Life cycle:
 *     mp_pager_create(&cfg)                          budget, backend, shapes, policy hooks
 *     mp_pager_add_file(path) -> file id             every file ranges point into
 *     mp_pager_register(layer, expert, ranges, n)    every routed expert
 *     mp_pager_start()                               sizes the pool, checks the budget,
 *                                                    opens the backend; a model that fits
 *                                                    is read whole in the background, else
 *                                                    a thread faults the pool in ahead
 *     per MoE layer of a token:
 *         mp_pager_acquire(layer, experts, n)        hits pinned at once, misses demand-read
 *         mp_pager_wait_any / mp_pager_wait          pointers per range as experts land
 *         mp_pager_release(layer, experts, n)
 *         mp_pager_hint(layer', experts, scores, n)  prefetch for layers ahead
 *     mp_pager_destroy()
 *
 * Thread safety: every function may be called from any thread; one mutex
 * guards the pager, and the thread that waits drives the I/O.  Pointers from
 * wait/poll stay valid until the matching release.
 *
 * Eviction is behind two hooks (the policy module plugs in there): the pager
 * evicts the READY slot with the lowest keep_score among those it may evict
 * (never LOADING or IN_USE, never an expert of the current acquire set); the
 * default is LRU.
 */
#ifndef MP_PAGER_H
#define MP_PAGER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io.h"

struct mp_stats;
struct mp_pager;                     /* opaque */

struct mp_pager_range {
	uint32_t file;                   /* id from mp_pager_add_file */
	uint32_t pad_;                   /* zero */
	uint64_t offset;                 /* bytes from the file's start */
	uint64_t len;                    /* bytes, > 0 */
};

struct mp_pager_config {
	uint64_t budget;                 /* bytes for the pool (ignored by NOPOOL backends) */
	const char *io;                  /* --io: "auto" (NULL means auto), "uring", ... */
	const struct mp_io_ops *backend; /* overrides io when non-NULL (tests: memory) */
	const struct mp_io_fault *fault; /* fault shim around the backend (tests), or NULL */
	uint32_t io_depth;               /* reads in flight at most; 0: 32 */
	uint32_t io_threads;             /* sync backend's threads; 0: 4 */
	uint64_t io_block;               /* bytes per read, multiple of 4 KiB; 0: 4 MiB */
	uint32_t n_layers;               /* layers (dense ones register nothing) */
	uint32_t n_experts;              /* routed experts per layer */
	uint32_t top_k;                  /* experts per acquire at most, > 0 */
	uint32_t max_files;              /* files at most; 0: 64 */
	int no_page_cache;               /* 1: never copy from the page cache */
	uint64_t low_mem;                /* MemAvailable (bytes) below which pages copied from the
	                                    page cache are dropped; 0: 1/8 of MemTotal */
	int no_preload;                  /* 1: a model that fits is not read at start */
	int mlock;                       /* 1: mlock() the pool (refusal: info.lock_errno) */
	/* Eviction hooks (NULL: LRU).  keep_score: higher keeps; compared with
	 * hint scores when a prefetch looks for a victim.  on_access: called by
	 * acquire with the layer's set, before any eviction. */
	double (*keep_score)(void *ctx, uint32_t layer, uint32_t expert);
	void (*on_access)(void *ctx, uint32_t layer, const uint32_t *experts, uint32_t n);
	void *policy_ctx;                /* passed to the hooks */
	struct mp_stats *stats;          /* stats segment to update, or NULL */
	uint64_t reg_max;                /* io_uring: register the pool at start up to this many
	                                    bytes, else piece by piece; 0: MP_IO_REG_MAX (tests) */
	uint64_t reg_piece;              /* bytes per lazily registered piece; 0: MP_IO_REG_PIECE */
	uint64_t prefetch_cap;           /* bytes pending (queued or in flight) past which a hint
	                                    starts nothing; 0: the disk's measured bandwidth x a
	                                    layer's compute time (pager.c, Speculation) */
};

enum mp_pager_tier {
	MP_TIER_POOL = 0,                /* READY or IN_USE in a slot */
	MP_TIER_LOADING = 1,             /* a read is on its way */
	MP_TIER_PAGE_CACHE = 2,          /* every page of every range in the page cache */
	MP_TIER_DISK = 3,                /* not resident anywhere */
};

struct mp_pager_info {
	const char *backend;             /* I/O backend in use */
	uint64_t pool_bytes;             /* bytes of the pool (0: NOPOOL backend) */
	uint64_t min_budget;             /* smallest budget that works */
	uint64_t full_budget;            /* budget that holds every expert */
	uint32_t n_slots;                /* slots in the pool */
	uint32_t n_classes;              /* slot size classes */
	uint32_t fits;                   /* 1: every expert has a slot */
	uint32_t n_free, n_loading, n_ready, n_in_use;  /* slots by state */
	uint64_t hits, pc_hits, misses;  /* acquires served from pool, page cache, disk */
	uint64_t pf_issued, pf_used, pf_wasted;         /* prefetches */
	uint64_t pf_capped;              /* hinted experts not started: the speculation cap */
	uint64_t evictions;              /* READY -> FREE */
	uint64_t bytes_read;             /* bytes read from disk by the backend */
	uint64_t pc_bytes, pc_dropped;   /* bytes copied from / dropped from the page cache */
	uint32_t pool_locked;            /* 1: the pool is mlock()ed (config mlock) */
	uint32_t fallbacks;              /* MP_STATS_FB_* bits (stats.h): what the I/O gave up */
	uint64_t cpu_ns;                 /* thread CPU time spent in the pager's calls */
	uint64_t warmed_bytes;           /* pool bytes the background warmer faulted in */
	uint32_t reg_warmed;             /* pool pieces the warmer registered with the backend */
	uint32_t reg_on_read;            /* pool pieces a read registered (before the warmer) */
	int lock_errno;                  /* why mlock of the pool failed; 0: not asked or locked */
};

/* Creates a pager (no pool yet).  Returns 0 and *out, or -MP_EARG with a
 * sentence in msg. */
int mp_pager_create(const struct mp_pager_config *cfg, struct mp_pager **out,
                    char *msg, size_t msg_len);

/* Adds a model file.  Returns its id (>= 0), or -errno (message names the path). */
int mp_pager_add_file(struct mp_pager *p, const char *path);

/* Registers expert (layer, expert) as n ranges (read in this order into one
 * slot).  Each range must lie inside its file.  Before start only. */
int mp_pager_register(struct mp_pager *p, uint32_t layer, uint32_t expert,
                      const struct mp_pager_range *ranges, uint32_t n);

/* The pool's arithmetic, for the memory plan (src/plan.c), so that plan and
 * pager agree: experts are grouped in size classes by their slot bytes (this
 * function: the 4 KiB-aligned cover of each of the n ranges, room for any
 * alignment); the smallest budget holds top_k slots of every class a layer
 * uses (at most that layer's experts of it), the full budget a slot for
 * every expert. */
uint64_t mp_pager_slot_bytes(const uint64_t *len, uint32_t n);

/* Smallest budget that holds one acquire set (top_k experts of any layer);
 * valid after registration. */
uint64_t mp_pager_min_budget(const struct mp_pager *p);

/* Sizes the pool from the budget (refusing one below mp_pager_min_budget
 * with -MP_EBUDGET and a message naming the smallest that works), maps it,
 * opens the backend (auto falls back; mp_pager_message says why once). */
int mp_pager_start(struct mp_pager *p);

/* Pins the n experts of layer for use: residents at once, the rest demand
 * read ahead of every prefetch.  Returns 0, or -MP_EBUDGET when no slot can
 * be freed (more experts held at once than the pool has), -MP_EARG. */
int mp_pager_acquire(struct mp_pager *p, uint32_t layer, const uint32_t *experts, uint32_t n);

/* For an acquired expert: 1 and one pointer per range in ptrs[0..max) when
 * its data is in memory, 0 while loading, or the read's error (-errno; the
 * message names layer, expert, file and offset).  poll never blocks. */
int mp_pager_poll(struct mp_pager *p, uint32_t layer, uint32_t expert, const void **ptrs,
                  uint32_t max);
/* As poll, blocking until the expert is ready (0) or failed (< 0). */
int mp_pager_wait(struct mp_pager *p, uint32_t layer, uint32_t expert, const void **ptrs,
                  uint32_t max);
/* Blocks until one of experts[i] with !taken[i] is ready or failed; returns
 * that i (its status through mp_pager_poll), or -MP_EARG when all are taken. */
int mp_pager_wait_any(struct mp_pager *p, uint32_t layer, const uint32_t *experts, uint32_t n,
                      const uint8_t *taken);

/* Unpins; the experts stay cached (READY) until evicted. */
void mp_pager_release(struct mp_pager *p, uint32_t layer, const uint32_t *experts, uint32_t n);

/* Prefetch hint: starts reads for hinted experts not resident, best score
 * first, into free slots or in place of a READY expert whose keep_score is
 * lower than the hint's, never evicting the current layer's set, and only
 * while the bytes already pending leave room under the speculation cap
 * (cfg.prefetch_cap; info.pf_capped counts those left out).  Returns the
 * number of prefetches started. */
int mp_pager_hint(struct mp_pager *p, uint32_t layer, const uint32_t *experts,
                  const double *scores, uint32_t n);

/* Abandons the loads of these experts that are LOADING and not acquired
 * (stale prefetches): queued reads are dropped, reads in flight cancelled;
 * the slots go back to FREE as their reads complete (an expert acquired
 * meanwhile is read again).  Returns the number of loads cancelled. */
int mp_pager_cancel(struct mp_pager *p, uint32_t layer, const uint32_t *experts, uint32_t n);

/* Where the expert is now (mincore on a mapping of its files). */
enum mp_pager_tier mp_pager_tier(struct mp_pager *p, uint32_t layer, uint32_t expert);

void mp_pager_info(struct mp_pager *p, struct mp_pager_info *out);
/* Last error or note (e.g. why auto skipped a backend); "" if none. */
const char *mp_pager_message(const struct mp_pager *p);

/* Checks the invariants at the top of pager.c (level 1: counters, level 2:
 * every slot and expert).  Returns 0, or -MP_ECORRUPT with "invariant N: ..."
 * in the message.  --enable-debug builds run level 2 after every call and
 * abort on a violation. */
int mp_pager_check(struct mp_pager *p, int level);
/* Prints slots and queues (for the debugger). */
void mp_pager_dump(struct mp_pager *p, FILE *f);

/* Cancels reads in flight, waits for them, frees everything.  NULL is fine. */
void mp_pager_destroy(struct mp_pager *p);

#endif
