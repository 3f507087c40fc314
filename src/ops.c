/*
 * ops.c — RMSNorm, SwiGLU's gate, softmax and YaRN RoPE exactly as
 * FORMATS.md §4.2 and §4.5 give them (llama.cpp semantics).
 */
#include <math.h>

#include "ops.h"
#include "vecf32.h"

void mp_ops_rmsnorm(float *y, const float *x, const float *g, int64_t n, float eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
	for (int64_t i = 0; i < n; i++)
		y[i] = x[i] * scale * g[i];
}

void mp_ops_silu_mul(float *a, const float *b, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}

double mp_ops_softmax(float *x, int64_t n)
{
	/* x[i] > mx skips NaNs as fmaxf does, without its libm call per element
	 * (the max's sign of zero cannot change an exp) */
	float mx = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	double sum = 0;
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - mx);
		sum += x[i];
	}
	float inv = (float)(1.0 / sum);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
	return (double)mx + log(sum);
}

void mp_ops_axpy(float *y, const float *x, float w, int64_t n)
{
	mp_vf32()->axpy(y, x, w, n);
}

float mp_ops_dot(const float *x, const float *y, int64_t n)
{
	return mp_vf32()->dot(x, y, n);
}

/* Pair index at which the wavelength spans n_rot rotations of the original
 * context (ggml_rope_yarn_corr_dim). */
static float corr_dim(const struct mp_rope *r, float n_rot_turns)
{
	return (float)r->n_rot * logf(r->orig_ctx / (n_rot_turns * 2.0f * (float)M_PI)) /
	       (2.0f * logf(r->base));
}

void mp_rope_init(struct mp_rope *r)
{
	r->lo = fmaxf(0.0f, floorf(corr_dim(r, r->beta_fast)));
	r->hi = fminf((float)(r->n_rot - 1), ceilf(corr_dim(r, r->beta_slow)));
}

void mp_rope_apply(const struct mp_rope *r, float *x, int64_t pos)
{
	int32_t pairs = r->n_rot / 2;
	for (int32_t m = 0; m < pairs; m++) {
		float f = powf(r->base, -2.0f * (float)m / (float)r->n_rot);
		float theta = (float)pos * f;
		if (r->factor != 1.0f) {
			/* γ = 1 keeps the original frequency, γ = 0 divides it by s */
			float ramp = ((float)m - r->lo) / fmaxf(0.001f, r->hi - r->lo);
			float gamma = 1.0f - fminf(1.0f, fmaxf(0.0f, ramp));
			theta *= gamma + (1.0f - gamma) / r->factor;
		}
		float c = cosf(theta) * r->mscale, s = sinf(theta) * r->mscale;
		float a = x[2 * m], b = x[2 * m + 1];
		x[2 * m] = a * c - b * s;
		x[2 * m + 1] = a * s + b * c;
	}
}
