/*
 * plan.h — the memory plan: the one function that splits a memory budget
 * between what stays resident (every tensor but the routed experts), the KV
 * cache at a context length, a fixed scratch allowance and the expert pool
 * (DESIGN.md).  Used by `moepager-gguf plan` and by the runtime at start, so
 * both print the same numbers.
 *
 * Sizes come from the file's tensor types (never from a recipe): an expert of
 * layer L is the sum of its gate, up and down slices (mp_gguf_expert_range).
 */
#ifndef MP_PLAN_H
#define MP_PLAN_H

#include <stdint.h>

struct mp_gguf;

struct mp_plan_opts {
	uint64_t cache_budget;      /* bytes for the expert pool; 0 = derive from mem_limit */
	uint64_t mem_limit;         /* bytes for everything; 0 = none (needs cache_budget) */
	uint64_t ctx;               /* tokens of KV cache; 0 = 4096 */
	uint32_t threads;           /* compute threads (per-thread scratch); 0 = 1 */
	int kv_q8;                  /* 1: the KV cache is q8_0 (--kv-type q8_0), else f16 */
	uint32_t n_used;            /* experts per token (--experts); 0 = the file's */
	uint64_t batch_scratch;     /* bytes of the prefill batch (mp_model_batch_bytes); 0 = none */
};

struct mp_plan_layer {
	uint32_t moe;               /* 1 for a layer with routed experts */
	uint64_t resident_bytes;    /* bytes: this layer's non-routed tensors */
	uint64_t routed_bytes;      /* bytes: its three expert tensors */
	uint64_t expert_bytes;      /* bytes: one expert (gate + up + down slices) */
	uint64_t slot_bytes;        /* bytes: its slot in the pool (mp_pager_slot_bytes) */
	uint32_t down_type;         /* GGUF type of ffn_down_exps (MoE layers) */
	uint64_t fit;               /* experts of this layer the pool holds (pool shared by routed bytes) */
};

struct mp_plan {
	uint32_t n_layer, n_moe;    /* layers, of which MoE */
	uint32_t n_expert, n_used;  /* experts per layer, used per token */
	uint64_t resident_bytes;    /* bytes: anonymous memory of all non-routed tensors (incl.
	                               embeddings): their 4 KiB-aligned spans, 2 MiB steps */
	uint64_t routed_bytes;      /* bytes: all routed-expert tensors */
	uint64_t expert_bytes_max;  /* bytes: the largest single expert */
	uint64_t ctx;               /* tokens */
	uint64_t kv_bytes;          /* bytes: f16 MLA cache (kv_lora + rope) x 2 x layers x ctx */
	uint64_t scratch_bytes;     /* bytes: activations, logits, I/O staging (estimate) */
	uint64_t pool_bytes;        /* bytes: the expert pool */
	uint64_t pool_experts;      /* experts the pool holds in total */
	uint64_t min_pool_bytes;    /* bytes: smallest workable pool, the pager's own (top-k
	                               slots of each size class) */
	uint64_t full_pool_bytes;   /* bytes: a slot for every expert (the pool is capped
	                               here; such a pool preloads every expert) */
	uint64_t min_mem_bytes;     /* bytes: smallest workable --mem-limit */
	double pool_fraction;       /* pool_bytes / routed_bytes, capped at 1 */
	struct mp_plan_layer *layers; /* n_layer entries */
};

/* Computes the plan.  Returns 0, or -MP_EFORMAT (the file lacks what a
 * deepseek2 plan needs), -MP_EBUDGET (the budget is below the smallest
 * workable one: the message says that minimum) or -MP_EARG, with the
 * sentence in err. */
int mp_plan_compute(struct mp_gguf *g, const struct mp_plan_opts *o, struct mp_plan *out,
		    char *err, size_t errlen);

void mp_plan_free(struct mp_plan *p);

#endif
