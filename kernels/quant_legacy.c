/*
 * quant_legacy.c — the 32-element weight blocks Q4_0, Q4_1, Q5_0, Q5_1
 * (FORMATS.md §2.4): scalar dequantizers, llama.cpp's reference quantizers
 * (quantize_row_*_ref: one scale per block from its extreme values, round to
 * nearest) and the integer dot products against Q8_0 / Q8_1 activations.
 *
 *   Q4_0:  y = (q − 8)·d            vec_dot with Q8_0: Σ_b d_w·d_a·Σ (q−8)·a
 *   Q4_1:  y = q·d + m              vec_dot with Q8_1: Σ_b d_w·d_a·Σ q·a + m·s_a
 *   Q5_0:  y = (q − 16)·d           as Q4_0
 *   Q5_1:  y = q·d + m              as Q4_1
 * (s_a = d_a·Σ a is stored in the Q8_1 block.)  The SIMD dots
 * (quant_x86.h) compute the same exact int32 block sums and combine them in
 * this order, so every path gives these results bit for bit.
 */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"

/* The 5-bit code of element j (0..31) of a Q5 block. */
static inline int q5_code(const uint8_t *qs, uint32_t h, int j)
{
	int lo = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
	return lo | (int)(((h >> j) & 1) << 4);
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Truncates a float code to 0..hi, as the reference does after its +0.5;
 * NaN (0·inf when a subnormal scale has no finite inverse) gives 0. */
static inline uint8_t code_clamp(float v, int hi)
{
	if (!(v > 0))
		return 0;
	return (uint8_t)(v >= (float)hi ? hi : (int)v);
}

/* Signed extreme: the value of largest magnitude (first one on ties). */
static float signed_max(const float *x, int n)
{
	float amax = 0, mx = 0;
	for (int j = 0; j < n; j++)
		if (fabsf(x[j]) > amax) {
			amax = fabsf(x[j]);
			mx = x[j];
		}
	return mx;
}

/* ---- Q4_0 --------------------------------------------------------------- */

static void q4_0_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = mp_f16_to_f32(x[b].d);
		for (int j = 0; j < 16; j++) {
			dst[j] = (float)((x[b].qs[j] & 0xF) - 8) * d;
			dst[j + 16] = (float)((x[b].qs[j] >> 4) - 8) * d;
		}
	}
}

/* d = mx / −8 (mx the signed extreme), q = clamp(x/d + 8.5) to 0..15. */
static void q4_0_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q4_0 *y = dst;
	for (int64_t b = 0; b < n / MP_QK8; b++, src += MP_QK8) {
		float d = signed_max(src, MP_QK8) / -8.0f;
		float id = d ? 1.0f / d : 0.0f;
		y[b].d = mp_f32_to_f16(d);
		for (int j = 0; j < 16; j++) {
			uint8_t lo = code_clamp(src[j] * id + 8.5f, 15);
			uint8_t hi = code_clamp(src[j + 16] * id + 8.5f, 15);
			y[b].qs[j] = (uint8_t)(lo | hi << 4);
		}
	}
}

static float q4_0_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q4_0 *x = w;
	const struct mp_block_q8_0 *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		int sumi = 0;
		for (int j = 0; j < 16; j++)
			sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j] +
				((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
		s += (float)sumi * (mp_f16_to_f32(x[b].d) * mp_f16_to_f32(y[b].d));
	}
	return s;
}

/* ---- Q4_1 --------------------------------------------------------------- */

static void q4_1_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_1 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = mp_f16_to_f32(x[b].d), m = mp_f16_to_f32(x[b].m);
		for (int j = 0; j < 16; j++) {
			dst[j] = (float)(x[b].qs[j] & 0xF) * d + m;
			dst[j + 16] = (float)(x[b].qs[j] >> 4) * d + m;
		}
	}
}

/* Block min and max: d = (max − min)/levels, m = min, q = clamp((x−m)/d + ½). */
static void min_max(const float *x, int n, float *mn, float *mx)
{
	*mn = INFINITY;
	*mx = -INFINITY;
	for (int j = 0; j < n; j++) {
		*mn = fminf(*mn, x[j]);
		*mx = fmaxf(*mx, x[j]);
	}
}

static void q4_1_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q4_1 *y = dst;
	for (int64_t b = 0; b < n / MP_QK8; b++, src += MP_QK8) {
		float mn, mx;
		min_max(src, MP_QK8, &mn, &mx);
		float d = (mx - mn) / 15.0f;
		float id = d ? 1.0f / d : 0.0f;
		y[b].d = mp_f32_to_f16(d);
		y[b].m = mp_f32_to_f16(mn);
		for (int j = 0; j < 16; j++) {
			uint8_t lo = code_clamp((src[j] - mn) * id + 0.5f, 15);
			uint8_t hi = code_clamp((src[j + 16] - mn) * id + 0.5f, 15);
			y[b].qs[j] = (uint8_t)(lo | hi << 4);
		}
	}
}

static float q4_1_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q4_1 *x = w;
	const struct mp_block_q8_1 *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		int sumi = 0;
		for (int j = 0; j < 16; j++)
			sumi += (x[b].qs[j] & 0xF) * y[b].qs[j] + (x[b].qs[j] >> 4) * y[b].qs[j + 16];
		s += (mp_f16_to_f32(x[b].d) * mp_f16_to_f32(y[b].d)) * (float)sumi +
		     mp_f16_to_f32(x[b].m) * mp_f16_to_f32(y[b].s);
	}
	return s;
}

/* ---- Q5_0 --------------------------------------------------------------- */

static void q5_0_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = mp_f16_to_f32(x[b].d);
		uint32_t h = le32(x[b].qh);
		for (int j = 0; j < MP_QK8; j++)
			dst[j] = (float)(q5_code(x[b].qs, h, j) - 16) * d;
	}
}

/* Packs 32 five-bit codes into a Q5 block's qs and qh. */
static void q5_pack(const uint8_t *c, uint8_t *qs, uint8_t *qh)
{
	uint32_t h = 0;
	for (int j = 0; j < 16; j++) {
		qs[j] = (uint8_t)((c[j] & 0xF) | (c[j + 16] & 0xF) << 4);
		h |= (uint32_t)(c[j] >> 4) << j | (uint32_t)(c[j + 16] >> 4) << (j + 16);
	}
	put_le32(qh, h);
}

/* d = mx / −16, q = clamp(x/d + 16.5) to 0..31. */
static void q5_0_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q5_0 *y = dst;
	for (int64_t b = 0; b < n / MP_QK8; b++, src += MP_QK8) {
		float d = signed_max(src, MP_QK8) / -16.0f;
		float id = d ? 1.0f / d : 0.0f;
		uint8_t c[MP_QK8];
		for (int j = 0; j < MP_QK8; j++)
			c[j] = code_clamp(src[j] * id + 16.5f, 31);
		y[b].d = mp_f32_to_f16(d);
		q5_pack(c, y[b].qs, y[b].qh);
	}
}

static float q5_0_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q5_0 *x = w;
	const struct mp_block_q8_0 *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		uint32_t h = le32(x[b].qh);
		int sumi = 0;
		for (int j = 0; j < MP_QK8; j++)
			sumi += (q5_code(x[b].qs, h, j) - 16) * y[b].qs[j];
		s += (float)sumi * (mp_f16_to_f32(x[b].d) * mp_f16_to_f32(y[b].d));
	}
	return s;
}

/* ---- Q5_1 --------------------------------------------------------------- */

static void q5_1_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_1 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = mp_f16_to_f32(x[b].d), m = mp_f16_to_f32(x[b].m);
		uint32_t h = le32(x[b].qh);
		for (int j = 0; j < MP_QK8; j++)
			dst[j] = (float)q5_code(x[b].qs, h, j) * d + m;
	}
}

static void q5_1_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q5_1 *y = dst;
	for (int64_t b = 0; b < n / MP_QK8; b++, src += MP_QK8) {
		float mn, mx;
		min_max(src, MP_QK8, &mn, &mx);
		float d = (mx - mn) / 31.0f;
		float id = d ? 1.0f / d : 0.0f;
		uint8_t c[MP_QK8];
		for (int j = 0; j < MP_QK8; j++)
			c[j] = code_clamp((src[j] - mn) * id + 0.5f, 31);
		y[b].d = mp_f32_to_f16(d);
		y[b].m = mp_f32_to_f16(mn);
		q5_pack(c, y[b].qs, y[b].qh);
	}
}

static float q5_1_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q5_1 *x = w;
	const struct mp_block_q8_1 *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK8; b++) {
		uint32_t h = le32(x[b].qh);
		int sumi = 0;
		for (int j = 0; j < MP_QK8; j++)
			sumi += q5_code(x[b].qs, h, j) * y[b].qs[j];
		s += (mp_f16_to_f32(x[b].d) * mp_f16_to_f32(y[b].d)) * (float)sumi +
		     mp_f16_to_f32(x[b].m) * mp_f16_to_f32(y[b].s);
	}
	return s;
}

void mp_quant_fill_legacy(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_Q4_0] = (struct mp_quant_ops){ q4_0_dequant, q4_0_quantize, { q4_0_dot }, { NULL } };
	tab[MP_TYPE_Q4_1] = (struct mp_quant_ops){ q4_1_dequant, q4_1_quantize, { q4_1_dot }, { NULL } };
	tab[MP_TYPE_Q5_0] = (struct mp_quant_ops){ q5_0_dequant, q5_0_quantize, { q5_0_dot }, { NULL } };
	tab[MP_TYPE_Q5_1] = (struct mp_quant_ops){ q5_1_dequant, q5_1_quantize, { q5_1_dot }, { NULL } };
}
