/*
 * reference.h — a naive float forward pass of deepseek2 for tests, written
 * separately from src/model.c and for clarity: every weight dequantized to
 * f32 up front, plain loops, no kernels, no absorption (keys and values are
 * decompressed per head and cached in full, the MHA form of FORMATS.md §4.4),
 * f32 everywhere, routing re-implemented from FORMATS.md §4.6.
 * It shares only the hyperparameter and weight structs with the real path.
 */
#ifndef MP_REFERENCE_H
#define MP_REFERENCE_H

#include <stdint.h>

#include "model.h"

struct ref_model;

/* n_used = 0: the file's expert count; no_groups: ignore expert groups. */
struct ref_model *ref_create(const struct mp_hparams *hp, const struct mp_weights *w,
			     uint32_t n_ctx, uint32_t n_used, int no_groups);
/* Runs tok at the next position; writes n_vocab logits.  Returns 0 or -1. */
int ref_step(struct ref_model *r, uint32_t tok, float *logits);
/* Takes back the last step (its cache entries are overwritten by the next). */
void ref_rewind(struct ref_model *r);
/* For the next step only: layer L uses these experts instead of its own
 * choice (weights from their scores, normalized and scaled as usual).  Lets a
 * comparison continue past a near-tie that the two implementations decided
 * differently. */
void ref_force(struct ref_model *r, uint32_t L, const uint32_t *experts, uint32_t n);

/* 1 when the last step of the reference chose the same set of experts at
 * layer L as rt (order ignored), else 0. */
int ref_same_route(const struct ref_model *r, uint32_t L, const struct mp_route *rt);

/* Experts chosen at layer L in the last step (sorted ascending), count in *n. */
const uint32_t *ref_experts(const struct ref_model *r, uint32_t L, uint32_t *n);
void ref_destroy(struct ref_model *r);

#endif
