/*
 * dist.h — several ranks under mpirun (issue 17): the layers are split into
 * contiguous ranges, one per rank, and only hidden states travel.
 *
 *   rank 0       tokenizer, prompt, sampling, output; embeddings, layers
 *                [0, b1), the output head
 *   rank r > 0   layers [b_r, b_r+1) with its own pager, pool, stats segment
 *                and usage profile
 *
 * A token (or a prefill batch) goes 0 → 1 → … → N-1 → 0 as n rows of n_embd
 * floats; the last rank sends back the state leaving the last layer and rank 0
 * applies the head (a hidden state is 28 KB for R1, its logits 517 KB).
 *
 * Two halves: the split and each rank's memory plan (dist_split.c, plain
 * arithmetic, unit-tested without MPI) and the messages (dist_mpi.c with Open
 * MPI; dist_none.c in a build without it, which refuses to run under mpirun).
 */
#ifndef MP_DIST_H
#define MP_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "plan.h"

/* ---- the split (dist_split.c) ------------------------------------------------------ */

/* Splits n_layer layers of bytes weight[L] (resident + routed) among n_rank
 * ranks of capacity cap[r] (their memory; all 0 = equal), rank 0 carrying
 * fixed bytes besides (embeddings, head): contiguous ranges, each non-empty,
 * whose loads are as close as the layer granularity allows to the ranks'
 * shares of the total.  begin[r] is rank r's first layer; begin[n_rank] =
 * n_layer.  Returns 0, or -MP_EARG when there are fewer layers than ranks. */
int mp_dist_split(uint32_t n_layer, const uint64_t *weight, uint64_t fixed, uint32_t n_rank,
		  const uint64_t *cap, uint32_t *begin);

/* Turns the whole model's plan into rank's plan for layers [l0, l1): resident
 * bytes of those layers (plus the embeddings and head on rank 0), their share
 * of the KV cache, the same scratch, and a pool of cache_budget or what
 * mem_limit leaves, capped at the range's routed bytes; layers outside the
 * range fit no expert.  Returns 0, or -MP_EBUDGET with a sentence naming the
 * rank, host and the smallest workable --mem-limit in err. */
int mp_dist_plan(struct mp_plan *p, uint32_t rank, const char *host, uint32_t l0, uint32_t l1,
		 uint64_t cache_budget, uint64_t mem_limit, char *err, size_t err_len);


/* Which split parts hold what (a host may hold only some parts: g opened with
 * mp_gguf_open_partial).  w is [n_parts][n_layer + 2] (zeroed by the caller):
 * per part, the bytes of each layer's tensors, then the embeddings' and
 * head's bytes, then 1 when the part is on this host.  Merged over the ranks
 * with the maximum, it describes every part some rank holds. */
void mp_dist_part_weights(const struct mp_gguf *g, uint32_t n_layer, uint64_t *w);
/* The layers' bytes and rank 0's fixed bytes from a merged w. */
void mp_dist_parts_sum(const uint64_t *w, uint32_t n_parts, uint32_t n_layer, uint64_t *weight,
		       uint64_t *fixed);
/* Every part is on some rank's host (a merged w).  Returns 0, or -ENOENT
 * with a sentence naming the part in err. */
int mp_dist_parts_somewhere(const struct mp_gguf *g, const uint64_t *w, uint32_t n_layer, char *err,
			    size_t err_len);
/* This rank's host holds every part with tensors of its layers [l0, l1)
 * (rank 0: and of the embeddings and head).  Returns 0, or -ENOENT with a
 * sentence naming the rank, host and file in err. */
int mp_dist_parts_check(const struct mp_gguf *g, const uint64_t *w, uint32_t n_layer, uint32_t rank,
			const char *host, uint32_t l0, uint32_t l1, char *err, size_t err_len);

/* ---- the ranks (dist_mpi.c / dist_none.c) ------------------------------------------ */

struct mp_dist;

/* Joins the job when the process was started by mpirun (MPI_Init; errors
 * return rather than abort); otherwise *out = NULL and this is one process.
 * Returns 0 or -MP_EUNAVAIL (started by mpirun, built without MPI) with the
 * sentence in err. */
int mp_dist_init(int *argc, char ***argv, struct mp_dist **out, char *err, size_t err_len);

/* Rank, number of ranks, this host's name ("" before init); NULL d = one process. */
uint32_t mp_dist_rank(const struct mp_dist *d);
uint32_t mp_dist_size(const struct mp_dist *d);
const char *mp_dist_host(const struct mp_dist *d);

/* Every rank's v[n] replaced by the element-wise maximum over the ranks.
 * Returns 0 or -EIO (err). */
int mp_dist_merge_max(struct mp_dist *d, uint64_t *v, size_t n, char *err, size_t err_len);

/* Agrees on the split of hp's layers and measures the link (rank 0 prints the
 * mean time per hop of a hidden state): every rank gives its capacity (its memory: --mem-limit,
 * or --cache-budget, or 0) and gets its range [*l0, *l1); rank 0 prints the
 * table of ranks, hosts, layers and memory.  Returns 0 or an error (err). */
int mp_dist_layers(struct mp_dist *d, const struct mp_hparams *hp, const uint64_t *weight,
		   uint64_t fixed, uint64_t cap, uint32_t *l0, uint32_t *l1, char *err, size_t err_len);

/* A rank's start: every layer's bytes from the parts the ranks hold
 * (mp_dist_part_weights, merged; po's --mem-limit, else --cache-budget, is
 * this rank's capacity), the agreed split into [*l0, *l1), a measure of the
 * link (a hidden state around the ranks, printed by rank 0), and the check
 * that this host holds the parts of its layers (mp_dist_parts_check).  One process: all layers.  Returns 0 or an
 * error (err). */
struct mp_gguf;
int mp_dist_start(struct mp_dist *d, struct mp_gguf *g, const struct mp_hparams *hp,
		  const struct mp_plan_opts *po, uint32_t *l0, uint32_t *l1, char *err, size_t err_len);

/* mp_plan_compute for this rank's layers [l0, l1) (mp_dist_plan); one process:
 * mp_plan_compute itself. */
int mp_dist_plan_compute(const struct mp_dist *d, struct mp_gguf *g, const struct mp_plan_opts *po,
			 uint32_t l0, uint32_t l1, struct mp_plan *p, char *err, size_t err_len);

/* This rank's pipe (model.h), NULL on the last rank: on rank 0 forward sends
 * the rows to rank 1 and waits for the last rank's; on every rank but the last,
 * early sends the state entering its last layer ahead (look-ahead). */
const struct mp_model_pipe *mp_dist_pipe(struct mp_dist *d);

/* Ranks > 0: serves stages on m until rank 0 says the session is over.
 * Returns 0, or -1 after printing the error (the caller ends with
 * mp_dist_finish(d, 1), which stops every rank). */
int mp_dist_serve(struct mp_dist *d, struct mp_model *m);

/* Rank 0: the pipeline's counters — tokens forwarded, ns inside forward, ns
 * of those the other ranks spent computing (the rest is messaging). */
void mp_dist_counts(const struct mp_dist *d, uint64_t *tokens, uint64_t *fwd_ns, uint64_t *stage_ns);

/* Ends the job and frees d (NULL: nothing).  status 0: rank 0 tells the other
 * ranks to stop, then MPI_Finalize.  Non-zero: prints which rank on which host
 * failed and aborts every rank (MPI_Abort); does not return. */
void mp_dist_finish(struct mp_dist *d, int status);

#endif
