/*
 * quant_k.c — the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (FORMATS.md §2.5):
 * scalar dequantizers written from the formulas, llama.cpp's reference
 * quantizers (quantize_row_*_ref: per-sub-block scale/min search, then 4/6/8
 * bit scales) and the scalar integer dot products against Q8_K.
 *
 * The dot products follow llama.cpp's integer formulation, per super-block:
 *   isum = Σ_sub sc_sub · Σ_{e in sub} q_e · a_e          (exact, int32)
 *   imin = Σ_sub mn_sub · bsum_sub                        (Q2_K, Q4_K, Q5_K)
 *   s   += (d_w·d_a)·isum − (dmin_w·d_a)·imin             (f32, in this order)
 * Every SIMD path (quant_avx2.c, quant_avx512.c) computes the same isum and
 * imin exactly and combines them with the same helper, so for K-quants all
 * paths give bit-identical results.  Signed codes enter as unsigned codes
 * plus an offset times the activation sums (Q3_K: q2 + 4·hbit − 4, Q6_K:
 * q − 32, the offsets through bsums), as
 * the SIMD kernels need.  The magnitudes fit int32 for any bytes:
 * |isum| ≤ 256·128·63·128 (Q6_K) < 2^31.
 */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"
#include "quant_k.h"

/* ---- dequantizers ------------------------------------------------------- */

static void q2_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q2_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = mp_f16_to_f32(x[b].d), dmin = mp_f16_to_f32(x[b].dmin);
		for (int e = 0; e < MP_QK_K; e++) {
			int s = e / 16, h = e / 128, j = (e % 128) / 32, w = e % 32;
			int q = (x[b].qs[32 * h + w] >> (2 * j)) & 3;
			dst[e] = d * (float)(x[b].scales[s] & 0xF) * (float)q -
				 dmin * (float)(x[b].scales[s] >> 4);
		}
	}
}

static void q3_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q3_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = mp_f16_to_f32(x[b].d);
		int8_t S[16];
		mp_q3k_scales(x[b].scales, S);
		for (int e = 0; e < MP_QK_K; e++) {
			int h = e / 128, j = (e % 128) / 32, w = e % 32;
			int q2 = (x[b].qs[32 * h + w] >> (2 * j)) & 3;
			int hb = (x[b].hmask[w] >> (4 * h + j)) & 1;
			dst[e] = d * (float)S[e / 16] * (float)(q2 - (hb ? 0 : 4));
		}
	}
}

static void q4_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = mp_f16_to_f32(x[b].d), dmin = mp_f16_to_f32(x[b].dmin);
		for (int e = 0; e < MP_QK_K; e++) {
			uint8_t sc, mn;
			mp_k4_scale_min(e / 32, x[b].scales, &sc, &mn);
			uint8_t byte = x[b].qs[32 * (e / 64) + e % 32];
			int q = (e % 64 < 32) ? (byte & 0xF) : (byte >> 4);
			dst[e] = d * (float)sc * (float)q - dmin * (float)mn;
		}
	}
}

static void q5_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = mp_f16_to_f32(x[b].d), dmin = mp_f16_to_f32(x[b].dmin);
		for (int e = 0; e < MP_QK_K; e++) {
			uint8_t sc, mn;
			mp_k4_scale_min(e / 32, x[b].scales, &sc, &mn);
			uint8_t byte = x[b].qs[32 * (e / 64) + e % 32];
			int q = (e % 64 < 32) ? (byte & 0xF) : (byte >> 4);
			q += 16 * ((x[b].qh[e % 32] >> (e / 32)) & 1);
			dst[e] = d * (float)sc * (float)q - dmin * (float)mn;
		}
	}
}

static void q6_K_dequant(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q6_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = mp_f16_to_f32(x[b].d);
		for (int e = 0; e < MP_QK_K; e++) {
			int h = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
			uint8_t A = x[b].ql[64 * h + l], B = x[b].ql[64 * h + 32 + l];
			uint8_t H = x[b].qh[32 * h + l];
			int lo = (quarter == 0) ? (A & 0xF) : (quarter == 1) ? (B & 0xF)
			       : (quarter == 2) ? (A >> 4) : (B >> 4);
			int q = lo | (((H >> (2 * quarter)) & 3) << 4);
			dst[e] = d * (float)x[b].scales[e / 16] * (float)(q - 32);
		}
	}
}

/* ---- quantizers (llama.cpp's *_ref rules) -------------------------------- */

/* Round half to even, as llama.cpp's nearest_int (inputs are small). */
static inline int nearest_int(float v)
{
	return (int)lrintf(v);
}

static inline int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

#define GROUP_MAX_EPS 1e-15f

/* The value of largest magnitude (first on ties); its magnitude in *amax. */
static float signed_extreme(const float *x, int n, float *amax)
{
	float mx = 0;
	*amax = 0;
	for (int i = 0; i < n; i++)
		if (fabsf(x[i]) > *amax) {
			*amax = fabsf(x[i]);
			mx = x[i];
		}
	return mx;
}

/* Start of both symmetric searches: the signed extreme *max (largest |x|),
 * codes l = clamp(nearest(−nmax/max·x)) in −nmax..nmax−1 into L, and the
 * x²-weighted sums Σw·x·l, Σw·l².  Returns 0 when the group is all zero
 * (L zeroed). */
static int sym_start(int n, int nmax, const float *x, int8_t *L, float *max, float *sumlx,
		     float *suml2)
{
	float amax;
	*max = signed_extreme(x, n, &amax);
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0;
	}
	float iscale = -(float)nmax / *max;
	*sumlx = *suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)l;
		float w = x[i] * x[i];
		*sumlx += w * x[i] * (float)l;
		*suml2 += w * (float)(l * l);
	}
	return 1;
}

/* Symmetric codes in −nmax..nmax−1 (stored +nmax), scale chosen by a small
 * weighted least-squares search around nmax/max (make_qx_quants, rmse 1). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	float max, sumlx, suml2;
	if (!sym_start(n, nmax, x, L, &max, &sumlx, &suml2))
		return 0;
	float scale = suml2 ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		float iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++) {
			int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
			float w = x[i] * x[i];
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)(l * l);
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++)
				L[i] = (int8_t)clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return scale;
}

/* Asymmetric codes 0..nmax with y = scale·L − min (min ≥ 0 returned in
 * *the_min), weighted least squares over nstep+1 trial scales
 * (make_qkx2_quants). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
			      uint8_t *L, float *the_min, float rmin, float rdelta, int nstep,
			      int use_mad)
{
	uint8_t Laux[32];
	float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
	for (int i = 1; i < n; i++) {
		min = fminf(min, x[i]);
		max = fmaxf(max, x[i]);
		sum_w += weights[i];
		sum_x += weights[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0;
	}
	float iscale = (float)nmax / (max - min);
	float scale = 1 / iscale;
	float best_mad = 0;
	for (int i = 0; i < n; i++) {
		L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
		float diff = scale * L[i] + min - x[i];
		best_mad += weights[i] * (use_mad ? fabsf(diff) : diff * diff);
	}
	for (int is = 0; is <= nstep; is++) {
		iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
		float sum_l = 0, sum_l2 = 0, sum_xl = 0;
		for (int i = 0; i < n; i++) {
			int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
			Laux[i] = (uint8_t)l;
			sum_l += weights[i] * (float)l;
			sum_l2 += weights[i] * (float)(l * l);
			sum_xl += weights[i] * (float)l * x[i];
		}
		float D = sum_w * sum_l2 - sum_l * sum_l;
		if (D <= 0)
			continue;
		float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
		float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
		if (this_min > 0) {
			this_min = 0;
			this_scale = sum_xl / sum_l2;
		}
		float mad = 0;
		for (int i = 0; i < n; i++) {
			float diff = this_scale * Laux[i] + this_min - x[i];
			mad += weights[i] * (use_mad ? fabsf(diff) : diff * diff);
		}
		if (mad < best_mad) {
			memcpy(L, Laux, (size_t)n);
			best_mad = mad;
			scale = this_scale;
			min = this_min;
		}
	}
	*the_min = -min;
	return scale;
}

/* Symmetric 3-bit-style codes −nmax..nmax−1 (stored +nmax) refined by
 * coordinate descent on the x²-weighted error (make_q3_quants). */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
	float max, sumlx, suml2;
	if (!sym_start(n, nmax, x, L, &max, &sumlx, &suml2))
		return 0;
	for (int itry = 0; itry < 5; itry++) {
		int changed = 0;
		for (int i = 0; i < n; i++) {
			float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			if (slx <= 0)
				continue;
			float sl2 = suml2 - w * (float)(L[i] * L[i]);
			int nl = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
			if (nl == L[i])
				continue;
			slx += w * x[i] * (float)nl;
			sl2 += w * (float)(nl * nl);
			if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
				L[i] = (int8_t)nl;
				sumlx = slx;
				suml2 = sl2;
				changed++;
			}
		}
		if (!changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0 ? sumlx / suml2 : 0.0f;
}

/* Four 2-bit code planes: byte l of each 32-byte group of 128 elements holds
 * elements l, l+32, l+64, l+96 at bits 0, 2, 4, 6. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
	for (int j = 0; j < MP_QK_K; j += 128)
		for (int l = 0; l < 32; l++)
			qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 |
						  L[j + l + 96] << 6);
}

static void q2_K_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q2_K *y = dst;
	for (int64_t b = 0; b < n / MP_QK_K; b++, src += MP_QK_K) {
		const float *x = src;
		uint8_t L[MP_QK_K];
		float weights[16], scales[16], mins[16], max_scale = 0, max_min = 0;
		for (int j = 0; j < 16; j++) {
			for (int l = 0; l < 16; l++)
				weights[l] = fabsf(x[16 * j + l]);
			scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j],
						     -0.5f, 0.1f, 15, 1);
			max_scale = fmaxf(max_scale, scales[j]);
			max_min = fmaxf(max_min, mins[j]);
		}
		memset(y[b].scales, 0, sizeof y[b].scales);
		y[b].d = mp_f32_to_f16(max_scale > 0 ? max_scale / 15.0f : 0.0f);
		y[b].dmin = mp_f32_to_f16(max_min > 0 ? max_min / 15.0f : 0.0f);
		for (int j = 0; j < 16; j++) {
			int ls = max_scale > 0 ? clampi(nearest_int(15.0f / max_scale * scales[j]), 0, 15) : 0;
			int lm = max_min > 0 ? clampi(nearest_int(15.0f / max_min * mins[j]), 0, 15) : 0;
			y[b].scales[j] = (uint8_t)(ls | lm << 4);
		}
		for (int j = 0; j < 16; j++) {
			float d = mp_f16_to_f32(y[b].d) * (float)(y[b].scales[j] & 0xF);
			if (!d)
				continue;
			float dm = mp_f16_to_f32(y[b].dmin) * (float)(y[b].scales[j] >> 4);
			for (int i = 0; i < 16; i++)
				L[16 * j + i] = (uint8_t)clampi(nearest_int((x[16 * j + i] + dm) / d), 0, 3);
		}
		pack_2bit(L, y[b].qs);
	}
}

static void q3_K_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q3_K *y = dst;
	for (int64_t b = 0; b < n / MP_QK_K; b++, src += MP_QK_K) {
		const float *x = src;
		int8_t L[MP_QK_K];
		float scales[16], amax;
		for (int j = 0; j < 16; j++)
			scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
		float max_scale = signed_extreme(scales, 16, &amax);
		memset(y[b].scales, 0, sizeof y[b].scales);
		if (max_scale) {
			float iscale = -32.0f / max_scale;
			for (int j = 0; j < 16; j++) {
				int l = clampi(nearest_int(iscale * scales[j]), -32, 31) + 32;
				if (j < 8)
					y[b].scales[j] = (uint8_t)(l & 0xF);
				else
					y[b].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
				y[b].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
			}
			y[b].d = mp_f32_to_f16(1 / iscale);
		} else {
			y[b].d = 0;
		}
		int8_t S[16];
		mp_q3k_scales(y[b].scales, S);
		for (int j = 0; j < 16; j++) {
			float d = mp_f16_to_f32(y[b].d) * (float)S[j];
			if (!d)
				continue;
			for (int i = 0; i < 16; i++)
				L[16 * j + i] = (int8_t)(clampi(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
		}
		/* high bit of element e: hmask[e % 32] bit e / 32 */
		memset(y[b].hmask, 0, sizeof y[b].hmask);
		uint8_t U[MP_QK_K];
		for (int e = 0; e < MP_QK_K; e++) {
			int l = L[e];
			if (l > 3) {
				y[b].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
				l -= 4;
			}
			U[e] = (uint8_t)l;
		}
		pack_2bit(U, y[b].qs);
	}
}

/* Packs Q4_K/Q5_K sub-block scales and mins (6 bits each) into 12 bytes. */
static void pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *q)
{
	memset(q, 0, MP_K_SCALE_SIZE);
	for (int j = 0; j < 8; j++) {
		if (j < 4) {
			q[j] = ls[j];
			q[j + 4] = lm[j];
		} else {
			q[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
			q[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
			q[j] |= (uint8_t)((lm[j] >> 4) << 6);
		}
	}
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): codes 0..nmax per element in L,
 * d/dmin/scales written to the block fields given. */
static void k4_codes(const float *x, int nmax, float rmin, int nstep, mp_f16 *dd, mp_f16 *ddmin,
		     uint8_t *packed, uint8_t *L)
{
	float weights[32], scales[8], mins[8], max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			weights[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], rmin,
					     0.1f, nstep, 0);
		max_scale = fmaxf(max_scale, scales[j]);
		max_min = fmaxf(max_min, mins[j]);
	}
	float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
	float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
	uint8_t ls[8], lm[8];
	for (int j = 0; j < 8; j++) {
		ls[j] = (uint8_t)clampi(nearest_int(inv_scale * scales[j]), 0, 63);
		lm[j] = (uint8_t)clampi(nearest_int(inv_min * mins[j]), 0, 63);
	}
	pack_k4_scales(ls, lm, packed);
	*dd = mp_f32_to_f16(max_scale / 63.0f);
	*ddmin = mp_f32_to_f16(max_min / 63.0f);
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		mp_k4_scale_min(j, packed, &sc, &m);
		float d = mp_f16_to_f32(*dd) * (float)sc;
		if (!d)
			continue;
		float dm = mp_f16_to_f32(*ddmin) * (float)m;
		for (int i = 0; i < 32; i++)
			L[32 * j + i] = (uint8_t)clampi(nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
	}
}

static void q4_K_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q4_K *y = dst;
	for (int64_t b = 0; b < n / MP_QK_K; b++, src += MP_QK_K) {
		uint8_t L[MP_QK_K];
		k4_codes(src, 15, -1.0f, 20, &y[b].d, &y[b].dmin, y[b].scales, L);
		for (int j = 0; j < MP_QK_K; j += 64)
			for (int l = 0; l < 32; l++)
				y[b].qs[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
	}
}

static void q5_K_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q5_K *y = dst;
	for (int64_t b = 0; b < n / MP_QK_K; b++, src += MP_QK_K) {
		uint8_t L[MP_QK_K];
		k4_codes(src, 31, -0.5f, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
		memset(y[b].qh, 0, sizeof y[b].qh);
		for (int e = 0; e < MP_QK_K; e++)
			if (L[e] > 15)
				y[b].qh[e % 32] |= (uint8_t)(1u << (e / 32));
		for (int j = 0; j < MP_QK_K; j += 64)
			for (int l = 0; l < 32; l++)
				y[b].qs[j / 2 + l] = (uint8_t)((L[j + l] & 0xF) | (L[j + l + 32] & 0xF) << 4);
	}
}

static void q6_K_quantize(const float *src, void *dst, int64_t n)
{
	struct mp_block_q6_K *y = dst;
	for (int64_t b = 0; b < n / MP_QK_K; b++, src += MP_QK_K) {
		const float *x = src;
		int8_t L[MP_QK_K];
		float scales[16], max_abs;
		for (int j = 0; j < 16; j++)
			scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
		float max_scale = signed_extreme(scales, 16, &max_abs);
		memset(&y[b], 0, sizeof y[b]);
		if (max_abs < GROUP_MAX_EPS)
			continue;
		float iscale = -128.0f / max_scale;
		y[b].d = mp_f32_to_f16(1 / iscale);
		for (int j = 0; j < 16; j++)
			y[b].scales[j] = (int8_t)clampi(nearest_int(iscale * scales[j]), -128, 127);
		for (int j = 0; j < 16; j++) {
			float d = mp_f16_to_f32(y[b].d) * (float)y[b].scales[j];
			if (!d)
				continue;
			for (int i = 0; i < 16; i++)
				L[16 * j + i] = (int8_t)(clampi(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
		}
		for (int j = 0; j < MP_QK_K; j += 128) {
			uint8_t *ql = y[b].ql + j / 2, *qh = y[b].qh + j / 4;
			for (int l = 0; l < 32; l++) {
				const int8_t *q = L + j + l;
				ql[l] = (uint8_t)((q[0] & 0xF) | (q[64] & 0xF) << 4);
				ql[l + 32] = (uint8_t)((q[32] & 0xF) | (q[96] & 0xF) << 4);
				qh[l] = (uint8_t)((q[0] >> 4) | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 |
						  (q[96] >> 4) << 6);
			}
		}
	}
}

/* ---- scalar dot products against Q8_K ------------------------------------ */

static float q2_K_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q2_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		int32_t isum = 0, imin = 0;
		for (int g = 0; g < 16; g++) {
			int h = g / 8, j = (g % 8) / 2, w0 = (g % 2) * 16;
			int32_t sub = 0;
			for (int k = 0; k < 16; k++) {
				int q = (x[b].qs[32 * h + w0 + k] >> (2 * j)) & 3;
				sub += q * y[b].qs[16 * g + k];
			}
			isum += (x[b].scales[g] & 0xF) * sub;
			imin += (x[b].scales[g] >> 4) * y[b].bsums[g];
		}
		s += mp_k_combine(mp_f16_to_f32(x[b].d), mp_f16_to_f32(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

static float q3_K_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q3_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		int8_t S[16];
		mp_q3k_scales(x[b].scales, S);
		int32_t isum = 0, corr = 0;
		for (int g = 0; g < 16; g++) {
			int32_t sub = 0;
			for (int k = 0; k < 16; k++) {
				int e = 16 * g + k, h = e / 128, j = (e % 128) / 32, l = e % 32;
				int q2 = (x[b].qs[32 * h + l] >> (2 * j)) & 3;
				int hb = (x[b].hmask[l] >> (4 * h + j)) & 1;
				sub += (q2 + 4 * hb) * y[b].qs[e];   /* code + 4 */
			}
			isum += S[g] * sub;
			corr += S[g] * y[b].bsums[g];
		}
		s += mp_k_combine(mp_f16_to_f32(x[b].d), 0.0f, y[b].d, isum - 4 * corr, 0);
	}
	return s;
}

/* One Q4_K/Q5_K super-block: isum returned, imin in *imin; qh is NULL for
 * Q4_K. */
static int32_t k45_block(const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
			 const struct mp_block_q8_K *y, int32_t *imin)
{
	int32_t isum = 0;
	*imin = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, mn;
		mp_k4_scale_min(j, scales, &sc, &mn);
		const uint8_t *q = qs + 32 * (j / 2);
		int shift = 4 * (j % 2);
		int32_t sub = 0;
		for (int l = 0; l < 32; l++) {
			int v = ((q[l] >> shift) & 0xF) | (qh ? ((qh[l] >> j) & 1) << 4 : 0);
			sub += v * y->qs[32 * j + l];
		}
		isum += sc * sub;
		*imin += mn * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
	}
	return isum;
}

static float q4_K_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q4_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		int32_t imin, isum = k45_block(x[b].scales, x[b].qs, NULL, &y[b], &imin);
		s += mp_k_combine(mp_f16_to_f32(x[b].d), mp_f16_to_f32(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

static float q5_K_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q5_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		int32_t imin, isum = k45_block(x[b].scales, x[b].qs, x[b].qh, &y[b], &imin);
		s += mp_k_combine(mp_f16_to_f32(x[b].d), mp_f16_to_f32(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

/* Q6_K's −32 offset goes through the activation sums (as Q3_K's −4):
 * Σ_g sc_g·Σ (q−32)·a = Σ_g sc_g·Σ q·a − 32·Σ_g sc_g·bsum_g. */
static float q6_K_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q6_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		int32_t isum = 0, corr = 0;
		for (int g = 0; g < 16; g++) {
			int32_t sub = 0;
			for (int k = 0; k < 16; k++) {
				int e = 16 * g + k, h = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
				uint8_t A = x[b].ql[64 * h + l], B = x[b].ql[64 * h + 32 + l];
				uint8_t H = x[b].qh[32 * h + l];
				int lo = (quarter == 0) ? (A & 0xF) : (quarter == 1) ? (B & 0xF)
				       : (quarter == 2) ? (A >> 4) : (B >> 4);
				sub += (lo | (((H >> (2 * quarter)) & 3) << 4)) * y[b].qs[e];
			}
			isum += x[b].scales[g] * sub;
			corr += x[b].scales[g] * y[b].bsums[g];
		}
		s += mp_k_combine(mp_f16_to_f32(x[b].d), 0.0f, y[b].d, isum - 32 * corr, 0);
	}
	return s;
}

void mp_quant_fill_k(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_Q2_K] = (struct mp_quant_ops){ q2_K_dequant, q2_K_quantize, { q2_K_dot }, { NULL } };
	tab[MP_TYPE_Q3_K] = (struct mp_quant_ops){ q3_K_dequant, q3_K_quantize, { q3_K_dot }, { NULL } };
	tab[MP_TYPE_Q4_K] = (struct mp_quant_ops){ q4_K_dequant, q4_K_quantize, { q4_K_dot }, { NULL } };
	tab[MP_TYPE_Q5_K] = (struct mp_quant_ops){ q5_K_dequant, q5_K_quantize, { q5_K_dot }, { NULL } };
	tab[MP_TYPE_Q6_K] = (struct mp_quant_ops){ q6_K_dequant, q6_K_quantize, { q6_K_dot }, { NULL } };
}
