/*
 * plan.c — the memory plan (see plan.h).  Budget arithmetic is 64-bit and
 * saturating where a sum of file sizes is involved.
 *
 * The scratch allowance is an estimate until the forward pass measures its
 * own: 64 MiB plus the f32 logits and four hidden-size activation rows per
 * head; the runtime replaces it with what it really allocates.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "loader.h"
#include "pager.h"
#include "plan.h"

#define RESIDENT_ROUND (2ull << 20)   /* the resident region is mapped in 2 MiB steps */

static const char *arch_key(char *buf, size_t len, const char *suffix)
{
	snprintf(buf, len, "deepseek2.%s", suffix);
	return buf;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t s;
	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

void mp_plan_free(struct mp_plan *p)
{
	if (p) {
		mp_free(p->layers);
		p->layers = NULL;
	}
}

/* The layer number of a "blk.N." tensor name, or -1. */
static long layer_of(const char *name)
{
	unsigned long l;
	int n = 0;
	if (sscanf(name, "blk.%lu.%n", &l, &n) != 1 || n == 0 || l > 100000)
		return -1;
	return (long)l;
}

/* The pager's smallest budget (pager.h): top_k slots of every size class
 * (at most a layer's experts), a class being the experts of one slot size. */
static uint64_t min_pool(const struct mp_plan *p, uint64_t used)
{
	uint64_t sum = 0;
	for (uint32_t l = 0; l < p->n_layer; l++) {
		const struct mp_plan_layer *L = &p->layers[l];
		int seen = 0;
		for (uint32_t k = 0; k < l && !seen; k++)
			seen = p->layers[k].moe && p->layers[k].slot_bytes == L->slot_bytes;
		if (L->moe && !seen)
			sum = sat_add(sum, (used < p->n_expert ? used : p->n_expert) * L->slot_bytes);
	}
	return sum;
}

int mp_plan_compute(struct mp_gguf *g, const struct mp_plan_opts *o, struct mp_plan *p,
		    char *err, size_t errlen)
{
	char k[96];
	uint32_t n_layer, n_expert = 0, n_used = 0, kv_lora, rope, vocab = 0, D;
	memset(p, 0, sizeof *p);
	if (mp_gguf_get_u32(g, arch_key(k, sizeof k, "block_count"), &n_layer) ||
	    mp_gguf_get_u32(g, arch_key(k, sizeof k, "attention.kv_lora_rank"), &kv_lora) ||
	    mp_gguf_get_u32(g, arch_key(k, sizeof k, "rope.dimension_count"), &rope) ||
	    mp_gguf_get_u32(g, arch_key(k, sizeof k, "embedding_length"), &D)) {
		snprintf(err, errlen, "%s", mp_gguf_error(g));
		return -MP_EFORMAT;
	}
	if (n_layer == 0 || n_layer > 512) {
		snprintf(err, errlen, "%s: deepseek2.block_count = %u is not 1..512",
			 mp_gguf_part_path(g, 0), n_layer);
		return -MP_EFORMAT;
	}
	mp_gguf_get_u32(g, arch_key(k, sizeof k, "expert_count"), &n_expert);
	mp_gguf_get_u32(g, arch_key(k, sizeof k, "expert_used_count"), &n_used);
	mp_gguf_get_u32(g, arch_key(k, sizeof k, "vocab_size"), &vocab);
	p->layers = mp_calloc(n_layer, sizeof *p->layers);
	if (!p->layers) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->n_layer = n_layer;
	p->n_expert = n_expert;
	p->n_used = n_used;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		long l = layer_of(t->name);
		int routed = mp_loader_is_routed(t->name);
		if (l >= (long)n_layer) {
			snprintf(err, errlen, "%s: tensor '%s' names layer %ld, the model has %u",
				 mp_gguf_part_path(g, t->part), t->name, l, n_layer);
			mp_plan_free(p);
			return -MP_EFORMAT;
		}
		if (routed) {
			p->routed_bytes = sat_add(p->routed_bytes, t->nbytes);
			if (l >= 0)
				p->layers[l].routed_bytes += t->nbytes;
		} else {
			/* what mp_modelfile_load_resident maps: the aligned span */
			p->resident_bytes = sat_add(p->resident_bytes,
						    mp_loader_resident_span(t->offset, t->nbytes));
			if (l >= 0)
				p->layers[l].resident_bytes += t->nbytes;
		}
	}
	p->resident_bytes = sat_add(p->resident_bytes, RESIDENT_ROUND - 1) / RESIDENT_ROUND * RESIDENT_ROUND;
	for (uint32_t l = 0; l < n_layer; l++) {
		struct mp_plan_layer *L = &p->layers[l];
		uint64_t sum = 0, lens[3];
		int found = 0;
		for (int m = 0; m < 3; m++) {
			struct mp_gguf_range r;
			if (mp_gguf_expert_range(g, l, 0, (enum mp_gguf_expert_mat)m, &r) == 0) {
				sum += r.len;
				lens[found++] = r.len;
			}
		}
		if (!found)
			continue;
		if (found != 3 && mp_gguf_parts_absent(g))
			continue;   /* another host's layer, partly in a part not here (src/dist.h) */
		if (found != 3) {
			snprintf(err, errlen, "%s: layer %u has only %d of the three expert tensors",
				 mp_gguf_part_path(g, 0), l, found);
			mp_plan_free(p);
			return -MP_EFORMAT;
		}
		char name[64];
		snprintf(name, sizeof name, "blk.%u.ffn_down_exps.weight", l);
		L->down_type = mp_gguf_find_tensor(g, name)->type;
		L->moe = 1;
		L->expert_bytes = sum;
		L->slot_bytes = mp_pager_slot_bytes(lens, 3);
		p->full_pool_bytes = sat_add(p->full_pool_bytes, (uint64_t)n_expert * L->slot_bytes);
		p->n_moe++;
		if (sum > p->expert_bytes_max)
			p->expert_bytes_max = sum;
	}
	p->ctx = o->ctx ? o->ctx : 4096;
	/* KV: the latent and the rope key per token per layer, f16 or q8_0 (34
	 * bytes per 32 values) */
	uint64_t kv_width = (uint64_t)kv_lora + rope;
	uint64_t per_tok = (o->kv_q8 ? kv_width / 32 * 34 : kv_width * 2) * n_layer;
	if (__builtin_mul_overflow(per_tok, p->ctx, &p->kv_bytes)) {
		snprintf(err, errlen, "--ctx %" PRIu64 " is too large", p->ctx);
		mp_plan_free(p);
		return -MP_EARG;
	}
	/* Scratch: a fixed allowance for the libraries, the tokenizer and I/O
	 * bookkeeping, the model's f32 copy of one layer's cache, per-thread
	 * attention rows and stacks, logits and activations.  Checked by
	 * tests/memlimit.test (peak RSS under --mem-limit). */
	uint64_t threads = o->threads ? o->threads : 1;
	p->scratch_bytes = (32ull << 20) + p->ctx * kv_width * 4 + threads * p->ctx * 4 +
			   threads * (2ull << 20) + (uint64_t)vocab * 16 + (uint64_t)D * 4 * 16;
	p->scratch_bytes = sat_add(p->scratch_bytes, o->batch_scratch);   /* -b's batch */
	uint64_t used = o->n_used ? o->n_used : n_used ? n_used : 1;
	p->min_pool_bytes = min_pool(p, used);
	p->min_mem_bytes = sat_add(sat_add(sat_add(p->resident_bytes, p->kv_bytes), p->scratch_bytes),
				   p->min_pool_bytes);
	if (o->cache_budget) {
		p->pool_bytes = o->cache_budget;
	} else if (o->mem_limit) {
		uint64_t fixed = sat_add(sat_add(p->resident_bytes, p->kv_bytes), p->scratch_bytes);
		p->pool_bytes = o->mem_limit > fixed ? o->mem_limit - fixed : 0;
	} else {
		snprintf(err, errlen, "give --cache-budget SIZE or --mem-limit SIZE");
		mp_plan_free(p);
		return -MP_EARG;
	}
	if (p->pool_bytes > p->full_pool_bytes)
		p->pool_bytes = p->full_pool_bytes; /* a slot for every expert: all preloaded */
	if (p->n_moe && p->pool_bytes < p->min_pool_bytes) {
		snprintf(err, errlen, "%s: the expert pool would get %.1f MB, the smallest workable pool is "
			 "%.1f MB (%" PRIu64 " slots of each expert size, up to %.1f MB); the smallest "
			 "workable --mem-limit "
			 "at --ctx %" PRIu64 " is %.1f MB",
			 mp_gguf_part_path(g, 0), (double)p->pool_bytes / 1e6,
			 (double)p->min_pool_bytes / 1e6, used, (double)p->expert_bytes_max / 1e6, p->ctx,
			 (double)p->min_mem_bytes / 1e6);
		mp_plan_free(p);
		return -MP_EBUDGET;
	}
	p->pool_fraction = p->pool_bytes >= p->full_pool_bytes || !p->routed_bytes ? 1.0 :
			   (double)p->pool_bytes / (double)p->routed_bytes;
	/* The pool is shared in proportion to each layer's routed bytes (so a
	 * pool as large as all experts holds every expert). */
	for (uint32_t l = 0; l < n_layer && p->n_moe; l++) {
		struct mp_plan_layer *L = &p->layers[l];
		if (!L->moe)
			continue;
		double share = (double)p->pool_bytes * ((double)L->routed_bytes / (double)p->routed_bytes);
		uint64_t fit = (uint64_t)(share / (double)L->expert_bytes + 1e-9);
		L->fit = fit > n_expert ? n_expert : fit;
		p->pool_experts += L->fit;
	}
	return 0;
}
