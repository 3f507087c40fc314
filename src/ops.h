/*
 * ops.h — the element-wise and small vector operations of the deepseek2
 * forward pass (FORMATS.md §4.2, §4.5), in f32.  The mat-vecs are in
 * kernels/; this file holds what sits between them.
 */
#ifndef MP_OPS_H
#define MP_OPS_H

#include <stdint.h>

/* y = x / sqrt(mean(x²) + eps) · g   (sum of squares in double, as ggml).
 * y may alias x. */
void mp_ops_rmsnorm(float *y, const float *x, const float *g, int64_t n, float eps);

/* a[i] = silu(a[i]) · b[i] */
void mp_ops_silu_mul(float *a, const float *b, int64_t n);

/* In-place softmax over n values; returns log Σ exp (the log-sum-exp). */
double mp_ops_softmax(float *x, int64_t n);

/* y[i] += w · x[i] (kernels/vecf32.h, the process-wide path) */
void mp_ops_axpy(float *y, const float *x, float w, int64_t n);

/* Σ x[i]·y[i] in f32, in vecf32.h's fixed order (16 partial sums, a fixed
 * tree): the same bits on every kernel path. */
float mp_ops_dot(const float *x, const float *y, int64_t n);

/* RoPE with YaRN, llama.cpp's NORM type: adjacent pairs (x[2m], x[2m+1]). */
struct mp_rope {
	int32_t n_rot;          /* rotated dims (64 for R1), even */
	float base;             /* frequency base (10000) */
	float factor;           /* YaRN scale s (40); 1 = no scaling */
	float orig_ctx;         /* YaRN original context (4096) */
	float beta_fast;        /* YaRN beta fast (32) */
	float beta_slow;        /* YaRN beta slow (1) */
	float mscale;           /* rope magnitude M (1 for R1 and V2) */
	float lo, hi;           /* derived: YaRN ramp bounds (pair indices) */
};

/* Fills lo/hi from the other fields (call once after setting them). */
void mp_rope_init(struct mp_rope *r);

/* Rotates x (n_rot values) in place for position pos. */
void mp_rope_apply(const struct mp_rope *r, float *x, int64_t pos);

#endif
