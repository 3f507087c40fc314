/*
 * quant_iq_avx512.c — AVX-512 (F/BW/DQ/VL) dot products of the i-quants
 * with Q8_K, two groups of 32 (64 weights) per step, for the types where it
 * beats AVX2: IQ1_M and IQ4_XS.  The same integer sums as the scalar
 * references in quant_iq.c (see quant_iq_avx2.c for the scheme); AVX-512
 * adds the width, grid gathers with in-register index arithmetic, and mask
 * registers for the signs (q8 is negated under the weight's sign mask).
 *
 * Why IQ1_S, IQ2_XXS, IQ2_XS and IQ3_XXS have no AVX-512 kernel: their cost
 * is the per-sub-group grid and sign-table lookups, which do not get cheaper
 * with width; the 512-bit versions (lane inserts, gathers, biased unsigned
 * weights) measured 5-40% slower than AVX2 on the AMD EPYC we have
 * (docs/design-notes.md), so the table leaves them NULL and
 * mp_quant_vec_dot() hands out the AVX2 kernel on AVX-512 machines.  Worth
 * re-measuring on a CPU with full-width 512-bit units.
 *
 * Uses no VNNI, so every CPU that mp_dispatch_supported(MP_KPATH_AVX512)
 * accepts runs it.  Requires q8 in [−127, 127] (Q8_K guarantees it).
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

/* 8·g + delta for the int8 lanes g ∈ {−1, 0, 1} of the eight IQ1 entries
 * idx (i32 lanes): the 16-bit shift moves each byte's bits up by 3, and the
 * bits that cross into the next byte land in its low 3 bits, which the mask
 * clears. */
static inline MP_TARGET_AVX512 __m512i iq1_weights(__m256i idx, __m512i delta)
{
	__m512i g = _mm512_i32gather_epi64(idx, (const void *)mp_iq1s_grid, 8);
	__m512i g8 = _mm512_and_si512(_mm512_slli_epi16(g, 3), _mm512_set1_epi8((char)0xF8));
	return _mm512_add_epi8(g8, delta);
}

/* δ bytes for 8 sub-groups: +1, or −1 where bit t of neg is set. */
static inline MP_TARGET_AVX512 __m512i iq1_delta(__mmask8 neg)
{
	return _mm512_mask_blend_epi64(neg, _mm512_set1_epi8(1), _mm512_set1_epi8(-1));
}

static MP_TARGET_AVX512 float iq1_m_dot_avx512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq1_m *x = w;
	const struct mp_block_q8_K *y = a;
	const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	__m512 acc = _mm512_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		uint16_t sc[4];
		memcpy(sc, x[i].scales, 8);
		mp_f16 dh = (mp_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
				     (sc[3] & 0xF000));
		__m512i sumi = _mm512_setzero_si512();
		for (int g = 0; g < 8; g += 2) {
			/* qh of two groups: one nibble per sub-group, 3 index bits + δ sign */
			uint32_t qh;
			memcpy(&qh, x[i].qh + 2 * g, 4);
			__m256i nib = _mm256_srlv_epi32(_mm256_set1_epi32((int)qh), shifts);
			__m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 4 * g)));
			__m256i idx = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(nib, _mm256_set1_epi32(7)), 8));
			__mmask8 neg = _mm256_test_epi32_mask(nib, _mm256_set1_epi32(8));
			int s = sc[g / 2];    /* groups g, g+1 share word g/2: 3 bits each, 12 bits */
			__m512i ls = scale4(2 * (s & 7) + 1, 2 * ((s >> 3) & 7) + 1, 2 * ((s >> 6) & 7) + 1,
					    2 * ((s >> 9) & 7) + 1);
			__m512i q = _mm512_loadu_si512(y[i].qs + 32 * g);
			sumi = _mm512_add_epi32(sumi, dot_i8(iq1_weights(idx, iq1_delta(neg)), q, ls));
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
	tab[MP_TYPE_IQ1_M].vec_dot[MP_KPATH_AVX512] = iq1_m_dot_avx512;
	tab[MP_TYPE_IQ4_XS].vec_dot[MP_KPATH_AVX512] = iq4_xs_dot_avx512;
}

#else

void mp_quant_fill_iq_avx512(struct mp_quant_ops *tab)
{
	(void)tab;
}

#endif
