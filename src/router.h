/*
 * router.h — MoE expert selection for the deepseek2 family (FORMATS.md §4.6):
 * sigmoid scores with a selection-only bias and group-limited top-k (V3/R1),
 * or softmax scores without bias (V2/V2-Lite), normalized or not, scaled.
 * Pure function of the router logits: the model and the router look-ahead
 * (prediction) call the same code.
 */
#ifndef MP_ROUTER_H
#define MP_ROUTER_H

#include <stdint.h>

enum mp_gating {
	MP_GATING_SOFTMAX = 1,
	MP_GATING_SIGMOID = 2,
};

struct mp_router_cfg {
	uint32_t n_expert;      /* routed experts (256) */
	uint32_t n_used;        /* experts chosen per token (8; --experts overrides) */
	uint32_t n_group;       /* expert groups (8); ≤ 1 = no group limit */
	uint32_t n_group_used;  /* groups kept (4) */
	enum mp_gating gating;  /* score function */
	int norm;               /* normalize the chosen weights to sum 1 */
	float scale;            /* routed scaling factor (2.5) */
};

#define MP_ROUTER_MAX_EXPERTS 512
#define MP_ROUTER_MAX_USED 64

struct mp_route {
	uint32_t n;                              /* experts chosen */
	uint32_t expert[MP_ROUTER_MAX_USED];     /* ids, best selection score first */
	float weight[MP_ROUTER_MAX_USED];        /* output weights, same order */
	float margin;  /* ≥ 0: the smaller of (last chosen − first rejected selection
			  score) and, with groups, (last kept − best dropped group score) */
};

/* Chooses the experts for one token from the router logits (n_expert values)
 * and the optional selection bias (NULL: none).  Ties go to the lower id. */
void mp_router_select(const struct mp_router_cfg *cfg, const float *logits, const float *bias,
		      struct mp_route *out);

#endif
