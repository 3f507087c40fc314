/*
 * stats.h — the stats segment: what the runtime tells moepager-stat.
 *
 * A versioned, fixed-layout file in shared memory (/dev/shm/moepager-<pid>.stats
 * unless a path is given), written by one process and read by any number of
 * tools.  Layout: a header, then the global record, then one record per layer,
 * then one per (layer, expert).  Every field is a u64 (or a fixed char array
 * in the header), so a reader copies the segment word by word.  Torn reads are
 * prevented by a seqlock: the writer makes seq odd, updates, makes it even
 * again; a reader retries a snapshot whose seq was odd or changed.
 *
 * Compatibility: fields are only appended (each record has reserved words and
 * its stride in the header), so a newer reader reads an older segment; a
 * segment whose version this reader does not know is refused with the
 * version found.  This is not the usage profile (saved per model) or a trace.
 */
#ifndef MP_STATS_H
#define MP_STATS_H

#include <stddef.h>
#include <stdint.h>

#define MP_STATS_MAGIC "MOEPSTAT"        /* 8 bytes, no NUL */
#define MP_STATS_VERSION 3u              /* 2 added header.fallbacks, 3 the decode phases;
                                          * readers read 1 to 3 */
#define MP_STATS_VERSION_MIN 1u          /* the oldest version this reader reads */
#define MP_STATS_HIST 32                 /* latency buckets: [2^i, 2^(i+1)) µs; 0 also < 1 µs */

struct mp_stats_header {
	char magic[8];                   /* MP_STATS_MAGIC */
	uint32_t version;                /* MP_STATS_VERSION */
	uint32_t header_bytes;           /* sizeof this struct */
	uint64_t total_bytes;            /* bytes of the whole segment */
	uint64_t seq;                    /* seqlock: odd while the writer updates */
	uint64_t pid;                    /* writer's process id */
	uint64_t start_wall_s;           /* writer's start, seconds since the epoch */
	uint64_t fingerprint;            /* model fingerprint (xxHash, given by the writer) */
	uint32_t n_layers;               /* entries in the layer array */
	uint32_t n_experts;              /* experts per layer */
	uint64_t global_off;             /* bytes from the segment start to the global record */
	uint64_t layer_off;              /* bytes to layer 0's record */
	uint64_t expert_off;             /* bytes to (layer 0, expert 0)'s record */
	uint32_t layer_stride;           /* bytes per layer record */
	uint32_t expert_stride;          /* bytes per expert record */
	char backend[16];                /* I/O backend name, NUL-padded */
	uint64_t fallbacks;              /* v2: MP_STATS_FB_* bits (v1 segments: unknown) */
	uint64_t reserved[17];           /* zero; for appended fields */
};

/* Fallbacks taken at start (header.fallbacks), never silent.  The first four
 * are pager/io.h's enum mp_io_fallback bits. */
#define MP_STATS_FB_BUFFERED 1u          /* O_DIRECT refused: buffered expert reads */
#define MP_STATS_FB_REG_REFUSED 2u       /* io_uring buffer registration refused */
#define MP_STATS_FB_REG_LAZY 4u          /* pool too large to pin at start: registered lazily */
#define MP_STATS_FB_FILES_REFUSED 8u     /* io_uring file registration refused */
#define MP_STATS_FB_BACKEND 16u          /* --io auto skipped an unusable backend */
#define MP_STATS_FB_RESIDENT_BUFFERED 32u/* resident weights read buffered (O_DIRECT refused) */
#define MP_STATS_FB_MLOCK_REFUSED 64u    /* --mlock refused */
#define MP_STATS_FB_COUNT 7

/* Writes the names of the bits set, comma-separated, into buf ("none" for
 * 0); returns buf. */
const char *mp_stats_fallback_names(uint64_t bits, char *buf, size_t len);

/* Everything below changes every step. */
struct mp_stats_global {
	uint64_t tokens;                 /* tokens decoded */
	uint64_t decode_ns;              /* ns spent decoding them (tokens/s = tokens / this) */
	uint64_t pool_used;              /* bytes of the pool held by slots not FREE */
	uint64_t pool_total;             /* bytes of the pool */
	uint64_t io_reads;               /* reads completed */
	uint64_t io_errors;              /* reads failed */
	uint64_t io_bytes;               /* bytes read by the backend (pool reads) */
	uint64_t pc_bytes;               /* bytes copied from the page cache */
	uint64_t pc_dropped;             /* bytes dropped from the page cache after a copy */
	uint64_t evictions;              /* slots evicted (READY -> FREE) */
	uint64_t io_hist[MP_STATS_HIST]; /* read latency, submit to reap: log2 µs buckets */
	uint64_t pager_cpu_ns;           /* v2: thread CPU ns spent in the pager's calls */
	/* v3: where the decode steps' time went (src/model.h enum mp_phase, in
	 * that order), summed since the start; set after every step.  The
	 * phases sum to phase_total_ns (OTHER is the rest of the step).  Zero
	 * in v1 and v2 segments: readers show them as unknown there. */
	uint64_t phase_tokens;           /* v3: decode steps timed (prompt batches are not) */
	uint64_t phase_total_ns;         /* v3: their whole time */
	uint64_t phase_ns[8];            /* v3: by phase, MP_STATS_PHASES of them */
	uint64_t reserved[11];           /* zero */
};

/* The decode phases of the global record (v3), in src/model.h's order; the
 * short names are the JSON keys and the screen's labels. */
#define MP_STATS_PHASES 8
extern const char *const mp_stats_phase_names[MP_STATS_PHASES];

struct mp_stats_layer {
	uint64_t hits;                   /* acquires served from the pool */
	uint64_t pc_hits;                /* misses served from the page cache */
	uint64_t misses;                 /* acquires that read from the disk */
	uint64_t pf_issued;              /* prefetches started */
	uint64_t pf_used;                /* prefetched experts acquired before eviction */
	uint64_t pf_wasted;              /* prefetched experts evicted unused */
	uint64_t bytes_read;             /* bytes read or copied for this layer */
	uint64_t stall_ns;               /* ns callers waited for this layer's experts */
	uint64_t reserved[8];            /* zero */
};

struct mp_stats_expert {
	uint64_t uses;                   /* acquires */
	uint64_t hits;                   /* of which served from the pool */
	uint64_t misses;                 /* of which read (disk or page cache) */
	uint64_t reserved;               /* zero */
};

_Static_assert(sizeof(struct mp_stats_header) == 256, "stats header layout");
_Static_assert(offsetof(struct mp_stats_header, seq) == 24, "stats seq offset");
_Static_assert(offsetof(struct mp_stats_header, backend) == 96, "stats backend offset");
_Static_assert(offsetof(struct mp_stats_header, fallbacks) == 112, "stats fallbacks offset");
_Static_assert(sizeof(struct mp_stats_global) == 512, "stats global layout");
_Static_assert(offsetof(struct mp_stats_global, io_hist) == 80, "stats hist offset");
_Static_assert(offsetof(struct mp_stats_global, phase_tokens) == 344, "stats phases offset");
_Static_assert(sizeof(struct mp_stats_layer) == 128, "stats layer layout");
_Static_assert(sizeof(struct mp_stats_expert) == 32, "stats expert layout");

/* ---- Writer ---- */

struct mp_stats;                     /* the writer's handle; opaque */

struct mp_stats_config {
	const char *path;                /* NULL: /dev/shm/moepager-<pid>.stats */
	int keep;                        /* 1: leave the file at destroy */
	uint32_t n_layers;               /* layers */
	uint32_t n_experts;              /* experts per layer */
	uint64_t fingerprint;            /* model fingerprint */
	const char *backend;             /* I/O backend name (truncated to 15) */
};

/* Creates the segment (replacing a file of that name).  Returns 0 and *out,
 * or -errno/-MP_EARG with a sentence naming the path in msg. */
int mp_stats_create(const struct mp_stats_config *cfg, struct mp_stats **out,
                    char *msg, size_t msg_len);
/* Unmaps; removes the file unless keep.  NULL is fine. */
void mp_stats_destroy(struct mp_stats *s);
const char *mp_stats_path(const struct mp_stats *s);

/* Updates go between begin and end (one writer at a time: begin takes the
 * writer's lock), through mp_stats_add/mp_stats_set on the records. */
void mp_stats_begin(struct mp_stats *s);
void mp_stats_end(struct mp_stats *s);
struct mp_stats_global *mp_stats_global(struct mp_stats *s);
struct mp_stats_layer *mp_stats_layer(struct mp_stats *s, uint32_t layer);
struct mp_stats_expert *mp_stats_expert(struct mp_stats *s, uint32_t layer, uint32_t expert);
void mp_stats_set_backend(struct mp_stats *s, const char *name);   /* takes the lock */
void mp_stats_add_fallbacks(struct mp_stats *s, uint64_t bits);    /* ORs; takes the lock */
/* Counts one read latency in the histogram (between begin and end). */
void mp_stats_latency(struct mp_stats *s, uint64_t ns);

/* Field updates: relaxed atomics, so that readers racing the writer are
 * well defined (the seqlock decides whether their copy is kept). */
static inline void mp_stats_add(uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline void mp_stats_set(uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELAXED);
}

/* ---- Reader ---- */

struct mp_stats_reader;              /* an open segment; opaque */

/* A consistent copy of a segment. */
struct mp_stats_snap {
	void *buf;                       /* the copy (mp_malloc'd), total_bytes */
	const struct mp_stats_header *h; /* = buf */
	const struct mp_stats_global *g; /* in buf */
	const struct mp_stats_layer *layers;   /* [n_layers], stride h->layer_stride */
	const struct mp_stats_expert *experts; /* [n_layers * n_experts], stride h->expert_stride */
};

/* Opens path read-only and checks magic, version and size.  Returns 0, or
 * -errno, -MP_EFORMAT (not a stats segment), -MP_EVERSION (a version this
 * reader does not know: msg names the version found). */
int mp_stats_open(const char *path, struct mp_stats_reader **out, char *msg, size_t msg_len);
/* Takes a consistent snapshot (retrying while the writer is mid-update).
 * Returns 0, or -EAGAIN when the writer never paused, -ENOMEM. */
int mp_stats_snapshot(struct mp_stats_reader *r, struct mp_stats_snap *out);
void mp_stats_snap_free(struct mp_stats_snap *snap);
void mp_stats_close(struct mp_stats_reader *r);

/* Per-record access in a snapshot (the strides may be larger than ours). */
const struct mp_stats_layer *mp_stats_snap_layer(const struct mp_stats_snap *s, uint32_t layer);
const struct mp_stats_expert *mp_stats_snap_expert(const struct mp_stats_snap *s, uint32_t layer,
                                                   uint32_t expert);

#endif
