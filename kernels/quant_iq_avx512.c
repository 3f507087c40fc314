/*
 * quant_iq_avx512.c — AVX-512 (F/BW/DQ/VL) dot products of the i-quants
 * with Q8_K: IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ4_XS, two groups of
 * 32 (64 weights) per step.  The same integer sums as the scalar references
 * in quant_iq.c (see quant_iq_avx2.c for the scheme); what AVX-512 adds is
 * the width and the mask registers: a weight's sign bits are a __mmask64
 * directly, and q8 is negated under it.  Uses no VNNI, so every CPU that
 * mp_dispatch_supported(MP_KPATH_AVX512) accepts runs it.  Requires q8 in
 * [−127, 127] (Q8_K guarantees it).
 */
#include <string.h>

#include "blocks.h"
#include "blocks_iq.h"
#include "iq_grids.h"
#include "quant.h"
#include "quant_iq.h"
#include "simd.h"

#if MP_HAVE_X86

/* i16 scale vector for 64 weights: elements 16k..16k+15 get s[k]. */
static inline MP_TARGET_AVX512 __m512i scale4(int s0, int s1, int s2, int s3)
{
	__m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
	__m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)s3), _mm_set1_epi16((short)s2));
	return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* i32 lanes of Σ mag·q·sign over pairs, times the i16 scales sc: mag unsigned
 * bytes, neg bit j set ⇒ element j negative. */
static inline MP_TARGET_AVX512 __m512i dot_mag(__m512i mag, __mmask64 neg, __m512i q, __m512i sc)
{
	__m512i qs = _mm512_mask_sub_epi8(q, neg, _mm512_setzero_si512(), q);
	return _mm512_madd_epi16(_mm512_maddubs_epi16(mag, qs), sc);
}

/* The same for signed weight bytes w (|w| ≤ 127). */
static inline MP_TARGET_AVX512 __m512i dot_i8(__m512i w, __m512i q, __m512i sc)
{
	return dot_mag(_mm512_abs_epi8(w), _mm512_movepi8_mask(w), q, sc);
}

/* Sign mask of four 7-bit sign indices packed at 7-bit strides in bits. */
static inline uint64_t signs28(uint32_t bits)
{
	return (uint64_t)mp_ksigns_iq2xs[bits & 127] | (uint64_t)mp_ksigns_iq2xs[(bits >> 7) & 127] << 8 |
	       (uint64_t)mp_ksigns_iq2xs[(bits >> 14) & 127] << 16 |
	       (uint64_t)mp_ksigns_iq2xs[(bits >> 21) & 127] << 24;
}

static MP_TARGET_AVX512 float iq2_xxs_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq2_xxs *x = w;
	const struct mp_block_q8_K *y = a;
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			uint32_t aux[4];
			memcpy(aux, x[i].qs + 4 * g, 16);
			const uint64_t *G = mp_iq2xxs_grid;
			__m512i mag = _mm512_set_epi64((long long)G[aux[2] >> 24], (long long)G[(aux[2] >> 16) & 255],
						       (long long)G[(aux[2] >> 8) & 255], (long long)G[aux[2] & 255],
						       (long long)G[aux[0] >> 24], (long long)G[(aux[0] >> 16) & 255],
						       (long long)G[(aux[0] >> 8) & 255], (long long)G[aux[0] & 255]);
			__mmask64 neg = signs28(aux[1]) | signs28(aux[3]) << 32;
			int l0 = (int)(2 * (aux[1] >> 28) + 1), l1 = (int)(2 * (aux[3] >> 28) + 1);
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_mag(mag, neg, q, scale4(l0, l0, l1, l1)));
		}
		float d = mp_f16_to_f32(x[i].d) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return 0.125f * _mm512_reduce_add_ps(acc);
}

static MP_TARGET_AVX512 float iq2_xs_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq2_xs *x = w;
	const struct mp_block_q8_K *y = a;
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			const uint16_t *v = x[i].qs + 4 * g;
			const uint64_t *G = mp_iq2xs_grid;
			__m512i mag = _mm512_set_epi64((long long)G[v[7] & 511], (long long)G[v[6] & 511],
						       (long long)G[v[5] & 511], (long long)G[v[4] & 511],
						       (long long)G[v[3] & 511], (long long)G[v[2] & 511],
						       (long long)G[v[1] & 511], (long long)G[v[0] & 511]);
			__mmask64 neg = 0;
			for (int k = 0; k < 8; k++)
				neg |= (uint64_t)mp_ksigns_iq2xs[v[k] >> 9] << (8 * k);
			uint8_t s0 = x[i].scales[g], s1 = x[i].scales[g + 1];
			__m512i sc = scale4(2 * (s0 & 0xF) + 1, 2 * (s0 >> 4) + 1, 2 * (s1 & 0xF) + 1, 2 * (s1 >> 4) + 1);
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_mag(mag, neg, q, sc));
		}
		float d = mp_f16_to_f32(x[i].d) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return 0.125f * _mm512_reduce_add_ps(acc);
}

static MP_TARGET_AVX512 float iq3_xxs_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq3_xxs *x = w;
	const struct mp_block_q8_K *y = a;
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			const uint8_t *qs = x[i].qs + 8 * g;
			const uint32_t *G = mp_iq3xxs_grid;
			uint32_t aux[2];
			memcpy(aux, x[i].qs + MP_QK_K / 4 + 4 * g, 8);
			__m512i mag = _mm512_set_epi32((int)G[qs[15]], (int)G[qs[14]], (int)G[qs[13]], (int)G[qs[12]],
						       (int)G[qs[11]], (int)G[qs[10]], (int)G[qs[9]], (int)G[qs[8]],
						       (int)G[qs[7]], (int)G[qs[6]], (int)G[qs[5]], (int)G[qs[4]],
						       (int)G[qs[3]], (int)G[qs[2]], (int)G[qs[1]], (int)G[qs[0]]);
			__mmask64 neg = signs28(aux[0]) | signs28(aux[1]) << 32;
			int l0 = (int)(2 * (aux[0] >> 28) + 1), l1 = (int)(2 * (aux[1] >> 28) + 1);
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_mag(mag, neg, q, scale4(l0, l0, l1, l1)));
		}
		float d = mp_f16_to_f32(x[i].d) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return 0.25f * _mm512_reduce_add_ps(acc);
}

/* 8·g + delta for the int8 lanes g ∈ {−1, 0, 1} of eight IQ1 entries: the
 * shift moves each byte's bits up by 3 (the bits that cross into the next
 * byte land in its low 3 bits, which the mask clears). */
static inline MP_TARGET_AVX512 __m512i iq1_weights(const int idx[8], __m512i delta)
{
	const uint64_t *G = mp_iq1s_grid;
	__m512i g = _mm512_set_epi64((long long)G[idx[7]], (long long)G[idx[6]], (long long)G[idx[5]],
				     (long long)G[idx[4]], (long long)G[idx[3]], (long long)G[idx[2]],
				     (long long)G[idx[1]], (long long)G[idx[0]]);
	__m512i g8 = _mm512_and_si512(_mm512_slli_epi16(g, 3), _mm512_set1_epi8((char)0xF8));
	return _mm512_add_epi8(g8, delta);
}

static MP_TARGET_AVX512 float iq1_s_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq1_s *x = w;
	const struct mp_block_q8_K *y = a;
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			uint16_t h0 = x[i].qh[g], h1 = x[i].qh[g + 1];
			int idx[8];
			for (int t = 0; t < 4; t++) {
				idx[t] = x[i].qs[4 * g + t] | (((h0 >> (3 * t)) & 7) << 8);
				idx[t + 4] = x[i].qs[4 * g + 4 + t] | (((h1 >> (3 * t)) & 7) << 8);
			}
			__m512i delta = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(h0 & 0x8000 ? -1 : 1)),
							   _mm256_set1_epi8(h1 & 0x8000 ? -1 : 1), 1);
			int l0 = 2 * ((h0 >> 12) & 7) + 1, l1 = 2 * ((h1 >> 12) & 7) + 1;
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_i8(iq1_weights(idx, delta), q, scale4(l0, l0, l1, l1)));
		}
		float d = mp_f16_to_f32(x[i].d) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return MP_IQ1_DELTA * _mm512_reduce_add_ps(acc);
}

static MP_TARGET_AVX512 float iq1_m_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq1_m *x = w;
	const struct mp_block_q8_K *y = a;
	const long long plus = 0x0101010101010101LL, minus = -1LL;
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		uint16_t sc[4];
		memcpy(sc, x[i].scales, 8);
		mp_f16 dh = (mp_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
				     (sc[3] & 0xF000));
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			const uint8_t *qh = x[i].qh + 2 * g, *qs = x[i].qs + 4 * g;
			int idx[8];
			long long dl[8];
			for (int t = 0; t < 8; t++) {
				uint8_t h = qh[t / 2] >> (4 * (t % 2));
				idx[t] = qs[t] | ((h & 7) << 8);
				dl[t] = h & 8 ? minus : plus;
			}
			__m512i delta = _mm512_set_epi64(dl[7], dl[6], dl[5], dl[4], dl[3], dl[2], dl[1], dl[0]);
			int s = sc[g / 2];    /* groups g, g+1 share word g/2: 3 bits each, 12 bits */
			__m512i ls = scale4(2 * (s & 7) + 1, 2 * ((s >> 3) & 7) + 1, 2 * ((s >> 6) & 7) + 1,
					    2 * ((s >> 9) & 7) + 1);
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_i8(iq1_weights(idx, delta), q, ls));
		}
		float d = mp_f16_to_f32(dh) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return MP_IQ1_DELTA * _mm512_reduce_add_ps(acc);
}

static MP_TARGET_AVX512 float iq4_xs_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq4_xs *x = w;
	const struct mp_block_q8_K *y = a;
	const __m512i kv = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)mp_kvalues_iq4nl));
	const __m256i m4 = _mm256_set1_epi8(0x0F);
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			/* bytes 0..15: group g, 16..31: group g+1; low nibbles first */
			__m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 16 * g));
			__m256i lo = _mm256_and_si256(b, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
			__m512i nib = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
							 _mm256_permute2x128_si256(lo, hi, 0x31), 1);
			__m512i wv = _mm512_shuffle_epi8(kv, nib);
			int l0 = (((x[i].scales_l[g / 2]) & 0xF) | (((x[i].scales_h >> (2 * g)) & 3) << 4)) - 32;
			int l1 = (((x[i].scales_l[g / 2]) >> 4) | (((x[i].scales_h >> (2 * g + 2)) & 3) << 4)) - 32;
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_i8(wv, q, scale4(l0, l0, l1, l1)));
		}
		float d = mp_f16_to_f32(x[i].d) * y[i].d;
		acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
	}
	return _mm512_reduce_add_ps(acc);
}

void mp_quant_fill_iq_avx512(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_IQ1_S].vec_dot[MP_KPATH_AVX512] = iq1_s_dot_avx512;
	tab[MP_TYPE_IQ1_M].vec_dot[MP_KPATH_AVX512] = iq1_m_dot_avx512;
	tab[MP_TYPE_IQ2_XXS].vec_dot[MP_KPATH_AVX512] = iq2_xxs_dot_avx512;
	tab[MP_TYPE_IQ2_XS].vec_dot[MP_KPATH_AVX512] = iq2_xs_dot_avx512;
	tab[MP_TYPE_IQ3_XXS].vec_dot[MP_KPATH_AVX512] = iq3_xxs_dot_avx512;
	tab[MP_TYPE_IQ4_XS].vec_dot[MP_KPATH_AVX512] = iq4_xs_dot_avx512;
}

#else

void mp_quant_fill_iq_avx512(struct mp_quant_ops *tab)
{
	(void)tab;
}

#endif
