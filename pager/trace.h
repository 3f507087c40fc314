/*
 * trace.h — routing traces: which experts each token used at each MoE layer,
 * and (version 2) with what weight and what the pager did for each use.
 *
 * Two versions of one little-endian format, both starting with the 8 bytes
 * "MOETRACE" and a u32 version (docs/trace-format.md is the byte-level
 * reference):
 *   v1 — the reference format of tests/data/traces/ (ROUTING.md):
 *        expert ids only, one byte each, whole sequences.
 *   v2 — what `moepager --trace-out` writes: a 64-byte header, then chunks of
 *        tokens (a long sequence spans several chunks, so a writer never holds
 *        more than one chunk), each use optionally with its routing weight
 *        (fp16), the pager's outcome and the stall it caused.
 * The reader takes both and holds the whole trace in memory (the reference
 * trace is 11 MB); the writer streams v2.
 *
 * Not here: replaying a trace against a cache (sim.h) or the policies
 * (policy.h).
 */
#ifndef MP_TRACE_H
#define MP_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define MP_TRACE_MAGIC "MOETRACE"
#define MP_TRACE_V1 1u
#define MP_TRACE_V2 2u
#define MP_TRACE_V2_HEADER_BYTES 64u
#define MP_TRACE_CHUNK_TOKENS 256u   /* tokens per chunk the writer emits */

/* Limits the reader enforces (a hostile header must not make us allocate). */
#define MP_TRACE_MAX_LAYERS 1024u
#define MP_TRACE_MAX_EXPERTS 65536u  /* v1: 256 (ids are one byte) */
#define MP_TRACE_MAX_TOPK 64u

/* v2 header flags: which per-use fields follow each expert id. */
enum mp_trace_flag {
	MP_TRACE_F_WEIGHTS = 1u << 0,    /* fp16 routing weight per use */
	MP_TRACE_F_OUTCOMES = 1u << 1,   /* u8 outcome + u32 stall ns per use */
	MP_TRACE_F_KNOWN = 3u,
};

/* What the pager did for one use (v2 with MP_TRACE_F_OUTCOMES). */
enum mp_trace_outcome {
	MP_TRACE_HIT = 0,         /* resident in the pool when acquired */
	MP_TRACE_PREFETCHED = 1,  /* brought in by a prefetch that finished in time */
	MP_TRACE_LATE = 2,        /* prefetched, but the acquire waited for it */
	MP_TRACE_PAGECACHE = 3,   /* demand read served by the kernel's page cache */
	MP_TRACE_MISS = 4,        /* demand read from the disk */
	MP_TRACE_OUTCOME_COUNT
};

/* What a trace describes (v1 leaves flags, layer_base and expert_bytes 0). */
struct mp_trace_info {
	uint32_t version;        /* 1 or 2 */
	uint32_t layers;         /* MoE layers per token, 1..MP_TRACE_MAX_LAYERS */
	uint32_t experts;        /* routed experts per layer (ids 0..experts-1) */
	uint32_t top_k;          /* experts used per token and layer, 1..experts */
	uint32_t flags;          /* enum mp_trace_flag bits (v2) */
	uint32_t layer_base;     /* model layer index of trace layer 0 (v2) */
	uint64_t expert_bytes;   /* bytes of one routed expert, 0 = unknown (v2) */
	uint64_t sequences;      /* sequences in the trace */
	uint64_t tokens;         /* tokens over all sequences */
};

/* ---- reading ------------------------------------------------------------ */

struct mp_trace;   /* a trace held in memory; opaque */

/* An empty trace object, or NULL when out of memory. */
struct mp_trace *mp_trace_create(void);
/* Accepts NULL. */
void mp_trace_destroy(struct mp_trace *t);

/* Reads a v1 or v2 trace file into t (which must be empty).  Returns 0, or
 * -errno (cannot open/read), -MP_EFORMAT (malformed), -MP_EVERSION, -ENOMEM;
 * the sentence (file, field, expected, found) is in mp_trace_error(t). */
int mp_trace_read(struct mp_trace *t, const char *path);
/* Same from a buffer; name is used in messages. */
int mp_trace_read_mem(struct mp_trace *t, const char *name, const void *buf, size_t len);

/* The last error's sentence, "" when none.  Never NULL. */
const char *mp_trace_error(const struct mp_trace *t);

/* pre: a successful read. */
const struct mp_trace_info *mp_trace_info(const struct mp_trace *t);
/* Index of the first token of sequence seq; seq == sequences gives tokens.
 * pre: seq <= sequences. */
uint64_t mp_trace_seq_start(const struct mp_trace *t, uint64_t seq);
/* The top_k expert ids of (token, layer), in the router's output order. */
const uint16_t *mp_trace_ids(const struct mp_trace *t, uint64_t token, uint32_t layer);
/* The top_k weights / outcomes / stalls of (token, layer), or NULL when the
 * trace does not carry them. */
const float *mp_trace_weights(const struct mp_trace *t, uint64_t token, uint32_t layer);
const uint8_t *mp_trace_outcomes(const struct mp_trace *t, uint64_t token, uint32_t layer);
const uint32_t *mp_trace_stalls(const struct mp_trace *t, uint64_t token, uint32_t layer);

/* Name of an outcome ("hit", "prefetched", ...); "?" when out of range. */
const char *mp_trace_outcome_name(unsigned outcome);

/* ---- writing (v2) ------------------------------------------------------- */

struct mp_trace_writer;   /* an open v2 trace being written; opaque */

/* A writer object, or NULL when out of memory. */
struct mp_trace_writer *mp_trace_writer_create(void);

/* Creates path and writes the header for info (version must be 2; layers,
 * experts, top_k within the limits; flags ⊆ MP_TRACE_F_KNOWN; sequences and
 * tokens are ignored: they are counted).  Returns 0, -errno or -MP_EARG with
 * the sentence in mp_trace_writer_error(w). */
int mp_trace_writer_open(struct mp_trace_writer *w, const char *path,
                         const struct mp_trace_info *info);

/* Appends one (token, layer): layers are given 0..layers-1 for each token in
 * turn.  ids: top_k distinct ids < experts; weights, outcomes, stall_ns: top_k
 * values each, required iff the header's flags say so (else ignored, may be
 * NULL).  Returns 0, -MP_EARG (wrong layer order, bad id, missing field) or
 * -errno from the file. */
int mp_trace_writer_add(struct mp_trace_writer *w, uint32_t layer, const uint16_t *ids,
                        const float *weights, const uint8_t *outcomes, const uint32_t *stall_ns);

/* Ends the current sequence (a no-op when it has no token).  pre: the last
 * token has all its layers.  Returns 0, -MP_EARG or -errno. */
int mp_trace_writer_end_sequence(struct mp_trace_writer *w);

/* Ends the sequence in progress, writes the sequence count into the header
 * and closes the file.  Returns 0 or the first error met while writing. */
int mp_trace_writer_close(struct mp_trace_writer *w);

const char *mp_trace_writer_error(const struct mp_trace_writer *w);

/* Closes (if open, ignoring errors) and frees.  Accepts NULL. */
void mp_trace_writer_destroy(struct mp_trace_writer *w);

#endif
