/*
 * quant_q8.c — the 8-bit formats: Q8_0 (weights and activations), Q8_1 and
 * Q8_K (activations only), with llama.cpp's CPU quantization rules
 * (FORMATS.md §2.8) so that integer dot products see the same inputs.
 *
 *   Q8_0/Q8_1, per 32 values:  d = max|x| / 127,  q = roundf(x / d)
 *                               (half away from zero), d stored as f16.
 *   Q8_K, per 256 values:      mx = the x of largest |x| (first on ties),
 *                               iscale = -127 / mx, q = nearest-even(iscale·x)
 *                               clamped to ≤ 127, d = 1 / iscale (f32).
 */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"

void mp_quantize_q8_0(const float *x, struct mp_block_q8_0 *y, int64_t n)
{
	for (int64_t b = 0; b < n / MP_QK8; b++, x += MP_QK8) {
		float amax = 0;
		for (int j = 0; j < MP_QK8; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127.0f;
		float id = d ? 1.0f / d : 0.0f;
		y[b].d = mp_f32_to_f16(d);
		for (int j = 0; j < MP_QK8; j++)
			y[b].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

void mp_quantize_q8_1(const float *x, struct mp_block_q8_1 *y, int64_t n)
{
	for (int64_t b = 0; b < n / MP_QK8; b++, x += MP_QK8) {
		float amax = 0;
		for (int j = 0; j < MP_QK8; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127.0f;
		float id = d ? 1.0f / d : 0.0f;
		int sum = 0;
		for (int j = 0; j < MP_QK8; j++) {
			y[b].qs[j] = (int8_t)roundf(x[j] * id);
			sum += y[b].qs[j];
		}
		y[b].d = mp_f32_to_f16(d);
		y[b].s = mp_f32_to_f16(d * (float)sum);
	}
}

void mp_quantize_q8_K(const float *x, struct mp_block_q8_K *y, int64_t n)
{
	for (int64_t b = 0; b < n / MP_QK_K; b++, x += MP_QK_K) {
		float amax = 0, mx = 0;
		for (int j = 0; j < MP_QK_K; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				mx = x[j];
			}
		if (amax == 0) {
			memset(&y[b], 0, sizeof y[b]);
			continue;
		}
		float iscale = -127.0f / mx;
		for (int j = 0; j < MP_QK_K; j++) {
			int v = (int)nearbyintf(iscale * x[j]);   /* default mode: half to even */
			y[b].qs[j] = (int8_t)(v > 127 ? 127 : v);
		}
		for (int g = 0; g < MP_QK_K / 16; g++) {
			int s = 0;
			for (int j = 0; j < 16; j++)
				s += y[b].qs[16 * g + j];
			y[b].bsums[g] = (int16_t)s;
		}
		y[b].d = 1.0f / iscale;
	}
}

static void q8_0_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q8_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		float d = mp_f16_to_f32(x[b].d);
		for (int j = 0; j < MP_QK8; j++)
			dst[b * MP_QK8 + j] = (float)x[b].qs[j] * d;
	}
}

static void q8_0_quantize(const float *src, void *dst, int64_t n)
{
	mp_quantize_q8_0(src, dst, n);
}

/* Σ over blocks of d_w·d_a·Σ qw·qa, as llama.cpp's integer path computes it. */
static float q8_0_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q8_0 *x = w, *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		int sum = 0;
		for (int j = 0; j < MP_QK8; j++)
			sum += x[b].qs[j] * y[b].qs[j];
		s += (float)sum * mp_f16_to_f32(x[b].d) * mp_f16_to_f32(y[b].d);
	}
	return s;
}

static void q8_1_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q8_1 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		float d = mp_f16_to_f32(x[b].d);
		for (int j = 0; j < MP_QK8; j++)
			dst[b * MP_QK8 + j] = (float)x[b].qs[j] * d;
	}
}

static void q8_1_quantize(const float *src, void *dst, int64_t n)
{
	mp_quantize_q8_1(src, dst, n);
}

static void q8_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q8_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++)
		for (int j = 0; j < MP_QK_K; j++)
			dst[b * MP_QK_K + j] = (float)x[b].qs[j] * x[b].d;
}

static void q8_K_quantize(const float *src, void *dst, int64_t n)
{
	mp_quantize_q8_K(src, dst, n);
}

void mp_quant_fill_q8(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_Q8_0] = (struct mp_quant_ops){ q8_0_dequant, q8_0_quantize, { q8_0_dot }, { NULL } };
	/* Activation-only formats: no weight dot product. */
	tab[MP_TYPE_Q8_1] = (struct mp_quant_ops){ q8_1_dequant, q8_1_quantize, { NULL }, { NULL } };
	tab[MP_TYPE_Q8_K] = (struct mp_quant_ops){ q8_K_dequant, q8_K_quantize, { NULL }, { NULL } };
}
