/*
 * dist_split.c — which layers each rank runs, and the memory plan of one
 * rank's share (dist.h).  Plain arithmetic: every rank computes the same
 * split from the same merged table of the split parts (each host may hold
 * only some parts) and the gathered capacities.
 *
 * Invariants:
 * 1. begin[0] = 0 < begin[1] < … < begin[n_rank] = n_layer: the ranges are
 *    contiguous, cover every layer once, and none is empty.
 * 2. A rank's plan counts only its own layers: resident bytes, KV rows and
 *    the pool's experts outside [l0, l1) are zero.
 * 3. A rank goes on only when its host holds every part with tensors of its
 *    layers (rank 0: and of the embeddings and head), and every part is on
 *    some rank's host (mp_dist_parts_check, mp_dist_parts_somewhere).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "alloc.h"
#include "dist.h"
#include "err.h"
#include "gguf.h"
#include "loader.h"

int mp_dist_split(uint32_t n_layer, const uint64_t *weight, uint64_t fixed, uint32_t n_rank,
		  const uint64_t *cap, uint32_t *begin)
{
	if (n_rank == 0 || n_layer < n_rank)
		return -MP_EARG;
	double total = (double)fixed, cap_sum = 0;
	for (uint32_t L = 0; L < n_layer; L++)
		total += (double)weight[L];
	for (uint32_t r = 0; r < n_rank; r++)
		cap_sum += (double)cap[r];
	/* load up to and including layer L, rank 0's fixed bytes first */
	double load = (double)fixed, cap_run = 0;
	uint32_t L = 0;
	begin[0] = 0;
	for (uint32_t r = 0; r + 1 < n_rank; r++) {
		cap_run += cap_sum > 0 ? (double)cap[r] : 1.0;
		double target = total * cap_run / (cap_sum > 0 ? cap_sum : (double)n_rank);
		/* rank r takes layer L at least; it stops where the running load
		 * comes closest to its target, leaving one layer per later rank */
		uint32_t last = n_layer - (n_rank - 1 - r);
		load += (double)weight[L++];
		while (L < last) {
			double with = load + (double)weight[L];
			if (with - target > target - load)
				break;
			load = with;
			L++;
		}
		begin[r + 1] = L;
	}
	begin[n_rank] = n_layer;
	return 0;
}

int mp_dist_plan(struct mp_plan *p, uint32_t rank, const char *host, uint32_t l0, uint32_t l1,
		 uint64_t cache_budget, uint64_t mem_limit, char *err, size_t err_len)
{
	uint64_t weight_fixed = 0, resident = 0, routed = 0, expert_max = 0;
	uint32_t n_moe = 0;
	for (uint32_t L = 0; L < p->n_layer; L++)
		weight_fixed += p->layers[L].resident_bytes;
	weight_fixed = p->resident_bytes > weight_fixed ? p->resident_bytes - weight_fixed : 0;
	for (uint32_t L = l0; L < l1; L++) {
		resident += p->layers[L].resident_bytes;
		routed += p->layers[L].routed_bytes;
		n_moe += p->layers[L].moe;
		if (p->layers[L].moe && p->layers[L].expert_bytes > expert_max)
			expert_max = p->layers[L].expert_bytes;
	}
	if (rank == 0)
		resident += weight_fixed;   /* embeddings, output norm and head */
	uint64_t kv = p->kv_bytes / p->n_layer * (l1 - l0);
	uint64_t min_pool = n_moe ? p->min_pool_bytes : 0;
	uint64_t fixed = resident + kv + p->scratch_bytes, pool;
	if (cache_budget)
		pool = cache_budget;
	else
		pool = mem_limit > fixed ? mem_limit - fixed : 0;
	if (pool > routed)
		pool = routed;
	if (n_moe && pool < min_pool) {
		snprintf(err, err_len, "rank %" PRIu32 " on %s (layers %" PRIu32 "-%" PRIu32 "): "
			 "the expert pool would get %.1f MB, the smallest workable is %.1f MB; the "
			 "smallest workable --mem-limit for this share is %.1f MB", rank, host, l0,
			 l1 - 1, (double)pool / 1e6, (double)min_pool / 1e6,
			 (double)(fixed + min_pool) / 1e6);
		return -MP_EBUDGET;
	}
	p->resident_bytes = resident;
	p->routed_bytes = routed;
	p->kv_bytes = kv;
	p->n_moe = n_moe;
	p->pool_bytes = pool;
	p->min_pool_bytes = min_pool;
	p->min_mem_bytes = fixed + min_pool;
	p->expert_bytes_max = expert_max;
	p->pool_fraction = routed ? (double)pool / (double)routed : 1.0;
	p->pool_experts = 0;
	for (uint32_t L = 0; L < p->n_layer; L++) {
		struct mp_plan_layer *ly = &p->layers[L];
		ly->fit = 0;
		if (L < l0 || L >= l1 || !ly->moe || !routed)
			continue;
		double share = (double)pool * ((double)ly->routed_bytes / (double)routed);
		uint64_t fit = (uint64_t)(share / (double)ly->expert_bytes + 1e-9);
		ly->fit = fit > p->n_expert ? p->n_expert : fit;
		p->pool_experts += ly->fit;
	}
	return 0;
}

/* The file's plan with every expert resident: only its per-layer bytes are used. */
static int layer_plan(struct mp_gguf *g, const struct mp_plan_opts *po, struct mp_plan *p, char *err,
		      size_t err_len)
{
	struct mp_plan_opts all = *po;
	all.cache_budget = UINT64_MAX / 4;
	all.mem_limit = 0;
	return mp_plan_compute(g, &all, p, err, err_len);
}

void mp_dist_part_weights(const struct mp_gguf *g, uint32_t n_layer, uint64_t *w)
{
	uint32_t n_parts = mp_gguf_part_count(g);
	for (uint32_t k = 0; k < n_parts; k++)
		w[(size_t)k * (n_layer + 2) + n_layer + 1] = mp_gguf_part_present(g, k);
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		unsigned L;
		size_t row = (size_t)t->part * (n_layer + 2);
		if (sscanf(t->name, "blk.%u.", &L) == 1 && L < n_layer)
			w[row + L] += t->nbytes;
		else
			w[row + n_layer] += mp_loader_resident_span(t->offset, t->nbytes);
	}
}

void mp_dist_parts_sum(const uint64_t *w, uint32_t n_parts, uint32_t n_layer, uint64_t *weight,
		       uint64_t *fixed)
{
	*fixed = 0;
	for (uint32_t L = 0; L < n_layer; L++)
		weight[L] = 0;
	for (uint32_t k = 0; k < n_parts; k++) {
		const uint64_t *row = w + (size_t)k * (n_layer + 2);
		for (uint32_t L = 0; L < n_layer; L++)
			weight[L] += row[L];
		*fixed += row[n_layer];
	}
}

int mp_dist_parts_somewhere(const struct mp_gguf *g, const uint64_t *w, uint32_t n_layer, char *err,
			    size_t err_len)
{
	uint32_t n_parts = mp_gguf_part_count(g);
	for (uint32_t k = 0; k < n_parts; k++)
		if (!w[(size_t)k * (n_layer + 2) + n_layer + 1]) {
			snprintf(err, err_len, "split part %" PRIu32 " of %" PRIu32 " (%s) is on no rank's "
				 "host: every part must be on the host of a rank that runs its layers",
				 k + 1, n_parts, mp_gguf_part_path(g, k));
			return -ENOENT;
		}
	return 0;
}

int mp_dist_parts_check(const struct mp_gguf *g, const uint64_t *w, uint32_t n_layer, uint32_t rank,
			const char *host, uint32_t l0, uint32_t l1, char *err, size_t err_len)
{
	uint32_t n_parts = mp_gguf_part_count(g);
	for (uint32_t k = 0; k < n_parts; k++) {
		const uint64_t *row = w + (size_t)k * (n_layer + 2);
		if (mp_gguf_part_present(g, k))
			continue;
		int needed = rank == 0 && row[n_layer];
		for (uint32_t L = l0; L < l1 && !needed; L++)
			needed = row[L] != 0;
		if (needed) {
			snprintf(err, err_len, "rank %" PRIu32 " on %s (layers %" PRIu32 "-%" PRIu32 "%s) "
				 "needs %s (split part %" PRIu32 " of %" PRIu32 "), which is not on this "
				 "host", rank, host, l0, l1 - 1, rank == 0 ? ", embeddings and head" : "",
				 mp_gguf_part_path(g, k), k + 1, n_parts);
			return -ENOENT;
		}
	}
	return 0;
}

int mp_dist_start(struct mp_dist *d, struct mp_gguf *g, const struct mp_hparams *hp,
		  const struct mp_plan_opts *po, uint32_t *l0, uint32_t *l1, char *err, size_t err_len)
{
	*l0 = 0;
	*l1 = hp->n_layer;
	if (mp_dist_size(d) < 2)
		return 0;
	uint32_t n_layer = hp->n_layer, n_parts = mp_gguf_part_count(g);
	size_t n = (size_t)n_parts * (n_layer + 2);
	uint64_t *w = mp_calloc(n, sizeof *w), *weight = mp_calloc(n_layer, sizeof *weight), fixed;
	int rc = -ENOMEM;
	if (!w || !weight) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	/* each host knows the parts it holds: the ranks agree on every part's bytes */
	mp_dist_part_weights(g, n_layer, w);
	if ((rc = mp_dist_merge_max(d, w, n, err, err_len)) < 0 ||
	    (rc = mp_dist_parts_somewhere(g, w, n_layer, err, err_len)) < 0)
		goto out;
	mp_dist_parts_sum(w, n_parts, n_layer, weight, &fixed);
	uint64_t cap = po->mem_limit ? po->mem_limit : po->cache_budget;
	if ((rc = mp_dist_layers(d, hp, weight, fixed, cap, l0, l1, err, err_len)) < 0)
		goto out;
	rc = mp_dist_parts_check(g, w, n_layer, mp_dist_rank(d), mp_dist_host(d), *l0, *l1, err,
				 err_len);
out:
	mp_free(w);
	mp_free(weight);
	return rc;
}

int mp_dist_plan_compute(const struct mp_dist *d, struct mp_gguf *g, const struct mp_plan_opts *po,
			 uint32_t l0, uint32_t l1, struct mp_plan *p, char *err, size_t err_len)
{
	if (mp_dist_size(d) < 2)
		return mp_plan_compute(g, po, p, err, err_len);
	int rc = layer_plan(g, po, p, err, err_len);
	if (rc == 0 && (rc = mp_dist_plan(p, mp_dist_rank(d), mp_dist_host(d), l0, l1, po->cache_budget,
					  po->mem_limit, err, err_len)) < 0)
		mp_plan_free(p);
	return rc;
}
