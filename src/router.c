/*
 * router.c — expert selection (FORMATS.md §4.6).
 *
 *   s_e = sigmoid(logit_e)  or  softmax(logits)_e
 *   b_e = s_e + bias_e                         (selection only)
 *   groups: score = sum of the two largest b_e in the group; keep the best
 *           n_group_used groups, experts elsewhere are excluded (−∞)
 *   choose the n_used largest b_e; w_i = s_{e_i} (/ Σ s if norm, denominator
 *   clamped to ≥ 6.1035e-5 as llama.cpp) × scale
 *   margin = how far the decision is from flipping: the smaller of (last chosen
 *   b − first rejected allowed b) and (last kept group score − best dropped
 *   group score)
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "router.h"

/* Index of the largest v among allowed entries (lowest index on ties), or -1. */
static int argmax_allowed(const float *v, const unsigned char *allowed, uint32_t n)
{
	int best = -1;
	for (uint32_t i = 0; i < n; i++)
		if (allowed[i] && (best < 0 || v[i] > v[best]))
			best = (int)i;
	return best;
}

void mp_router_select(const struct mp_router_cfg *cfg, const float *logits, const float *bias,
		      struct mp_route *out)
{
	uint32_t n = cfg->n_expert;
	float group_margin = INFINITY;
	float s[MP_ROUTER_MAX_EXPERTS], b[MP_ROUTER_MAX_EXPERTS];
	unsigned char allowed[MP_ROUTER_MAX_EXPERTS];

	if (cfg->gating == MP_GATING_SOFTMAX) {
		memcpy(s, logits, sizeof(float) * n);
		mp_ops_softmax(s, n);
	} else {
		for (uint32_t e = 0; e < n; e++)
			s[e] = 1.0f / (1.0f + expf(-logits[e]));
	}
	for (uint32_t e = 0; e < n; e++) {
		b[e] = s[e] + (bias ? bias[e] : 0.0f);
		allowed[e] = 1;
	}

	if (cfg->n_group > 1 && cfg->n_group_used < cfg->n_group) {
		uint32_t per = n / cfg->n_group;
		float gscore[MP_ROUTER_MAX_EXPERTS];
		unsigned char gallowed[MP_ROUTER_MAX_EXPERTS];
		for (uint32_t g = 0; g < cfg->n_group; g++) {
			float top1 = -INFINITY, top2 = -INFINITY;
			for (uint32_t e = g * per; e < (g + 1) * per; e++) {
				if (b[e] > top1) {
					top2 = top1;
					top1 = b[e];
				} else if (b[e] > top2) {
					top2 = b[e];
				}
			}
			gscore[g] = top1 + top2;
			gallowed[g] = 1;
		}
		unsigned char keep[MP_ROUTER_MAX_EXPERTS] = { 0 };
		float last_kept = 0;
		for (uint32_t k = 0; k < cfg->n_group_used; k++) {
			int g = argmax_allowed(gscore, gallowed, cfg->n_group);
			keep[g] = 1;
			gallowed[g] = 0;
			last_kept = gscore[g];
		}
		int first_dropped = argmax_allowed(gscore, gallowed, cfg->n_group);
		group_margin = last_kept - gscore[first_dropped];
		for (uint32_t e = 0; e < n; e++)
			allowed[e] = keep[e / per];
	}

	uint32_t k = cfg->n_used < MP_ROUTER_MAX_USED ? cfg->n_used : MP_ROUTER_MAX_USED;
	double wsum = 0;
	out->n = 0;
	for (uint32_t i = 0; i < k; i++) {
		int e = argmax_allowed(b, allowed, n);
		if (e < 0)
			break;
		allowed[e] = 0;
		out->expert[out->n] = (uint32_t)e;
		out->weight[out->n] = s[e];
		wsum += s[e];
		out->n++;
	}
	int next = argmax_allowed(b, allowed, n);
	out->margin = out->n && next >= 0 ? b[out->expert[out->n - 1]] - b[next] : INFINITY;
	if (group_margin < out->margin)
		out->margin = group_margin;
	float denom = cfg->norm ? fmaxf((float)wsum, 6.1035e-5f) : 1.0f;
	for (uint32_t i = 0; i < out->n; i++)
		out->weight[i] = out->weight[i] / denom * cfg->scale;
}
