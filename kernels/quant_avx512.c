/*
 * quant_avx512.c — the AVX-512 (F/BW/DQ/VL) dot products.  Q4_K, Q6_K, Q8_0,
 * Q5_0 and the float types have 512-bit kernels here; Q2_K, Q3_K, Q5_K, Q4_0,
 * Q4_1 and Q5_1 use the
 * shared 256-bit kernels of quant_x86.h recompiled for AVX-512VL (EVEX, 32
 * registers).  Everything carries MP_TARGET_AVX512_BASE, so it runs on every
 * CPU that dispatch admits to MP_KPATH_AVX512.
 *
 * The 512-bit K-quant kernels keep quant_x86.h's contract: exact int32
 * super-block sums, combined by mp_k_combine(), so they match the scalar
 * reference bit for bit.  A 64-byte register holds two 32-element pieces; the
 * per-sub-block scales are broadcast to the matching i16 lanes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"
#include "quant_k.h"
#include "simd.h"

#if MP_HAVE_X86
#define X86_TARGET MP_TARGET_AVX512_BASE __attribute__((unused))
#define X86(name) name##_avx512
#include "quant_x86.h"

#define T512 MP_TARGET_AVX512_BASE

/* Two 32-byte loads side by side. */
T512 static inline __m512i cat256(const void *lo, const void *hi)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)),
				  _mm256_loadu_si256((const __m256i *)hi), 1);
}

/* A permutexvar_epi16 index: i16 lanes 0..15 = lo, 16..31 = hi. */
T512 static inline __m512i pair_index(int lo, int hi)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)lo)),
				  _mm256_set1_epi16((short)hi), 1);
}

/* Q4_K: each 64-byte load of qs covers the 64-element chunks 2k and 2k+1;
 * low nibbles are sub-blocks 4k and 4k+2, high nibbles 4k+1 and 4k+3. */
T512 static float q4_K_dot512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q4_K *x = w;
	const struct mp_block_q8_K *y = a;
	const __m512i m4 = _mm512_set1_epi8(0xF);
	/* lanes 0..15 take scale idx_lo, 16..31 scale idx_hi */
	const __m512i i0 = pair_index(0, 2), i1 = pair_index(1, 3), i2 = pair_index(4, 6),
		      i3 = pair_index(5, 7);
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		prefetch_avx512(&x[b], (int)sizeof x[b]);
		__m256i sm16 = _mm256_cvtepu8_epi16(k4_scales_mins_avx512(x[b].scales));
		__m128i prod = mins_prod_avx512(_mm256_extracti128_si256(sm16, 1), y[b].bsums);
		__m512i sc = _mm512_castsi256_si512(sm16);
		__m512i acc = _mm512_setzero_si512();
		for (int k = 0; k < 2; k++) {
			__m512i q = _mm512_loadu_si512(x[b].qs + 64 * k);
			__m512i lo = _mm512_and_si512(q, m4);
			__m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
			const int8_t *ya = y[b].qs + 128 * k;
			__m512i plo = _mm512_maddubs_epi16(lo, cat256(ya, ya + 64));
			__m512i phi = _mm512_maddubs_epi16(hi, cat256(ya + 32, ya + 96));
			plo = _mm512_madd_epi16(plo, _mm512_permutexvar_epi16(k ? i2 : i0, sc));
			phi = _mm512_madd_epi16(phi, _mm512_permutexvar_epi16(k ? i3 : i1, sc));
			acc = _mm512_add_epi32(acc, _mm512_add_epi32(plo, phi));
		}
		__m256i acc8 = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
		int32_t isum, imin;
		hsum2_avx512(acc8, prod, &isum, &imin);
		s += mp_k_combine(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

/* Q6_K: per half, quarters 0+1 and 2+3 each form one 64-byte register (their
 * activations are contiguous); the four 16-element groups of a register get
 * their i8 scales through a lane permutation; the −32 goes through bsums. */
T512 static float q6_K_dot512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q6_K *x = w;
	const struct mp_block_q8_K *y = a;
	const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
	/* lane l of group quarter pair → scale index l/8 (+4, +8 added below) */
	const __m512i idx0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2,
					      1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		prefetch_avx512(&x[b], (int)sizeof x[b]);
		__m256i S16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
		__m256i corr = _mm256_madd_epi16(S16, _mm256_loadu_si256((const __m256i *)y[b].bsums));
		__m512i sc16 = _mm512_castsi256_si512(S16);
		__m512i acc = _mm512_setzero_si512();
		for (int h = 0; h < 2; h++) {
			__m512i AB = _mm512_loadu_si512(x[b].ql + 64 * h);
			__m256i H = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
			__m512i H01 = _mm512_inserti64x4(_mm512_castsi256_si512(H), _mm256_srli_epi16(H, 2), 1);
			__m512i H23 = _mm512_srli_epi16(H01, 4);
			__m512i q01 = _mm512_or_si512(_mm512_and_si512(AB, m4),
						      _mm512_slli_epi16(_mm512_and_si512(H01, m3), 4));
			__m512i q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(AB, 4), m4),
						      _mm512_slli_epi16(_mm512_and_si512(H23, m3), 4));
			__m512i a01 = _mm512_loadu_si512(y[b].qs + 128 * h);
			__m512i a23 = _mm512_loadu_si512(y[b].qs + 128 * h + 64);
			__m512i p01 = _mm512_maddubs_epi16(q01, a01);
			__m512i p23 = _mm512_maddubs_epi16(q23, a23);
			__m512i i01 = _mm512_add_epi16(idx0, _mm512_set1_epi16((short)(8 * h)));
			__m512i i23 = _mm512_add_epi16(i01, _mm512_set1_epi16(4));
			acc = _mm512_add_epi32(acc, _mm512_madd_epi16(p01, _mm512_permutexvar_epi16(i01, sc16)));
			acc = _mm512_add_epi32(acc, _mm512_madd_epi16(p23, _mm512_permutexvar_epi16(i23, sc16)));
		}
		__m256i acc8 = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
		int32_t isum, icorr;
		hsum2_avx512(acc8, _mm_add_epi32(_mm256_castsi256_si128(corr), _mm256_extracti128_si256(corr, 1)),
			     &isum, &icorr);
		s += mp_k_combine(_cvtsh_ss(x[b].d), 0.0f, y[b].d, isum - 32 * icorr, 0);
	}
	return s;
}

/* Q8_0: one block per 512-bit widening multiply, f32 lane accumulation. */
T512 static float q8_0_dot512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q8_0 *x = w, *y = a;
	__m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
	int64_t nb = n / MP_QK8;
	for (int64_t b = 0; b < nb; b++) {
		prefetch_avx512(&x[b], (int)sizeof x[b]);
		__m512i wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)x[b].qs));
		__m512i av = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)y[b].qs));
		__m512 p = _mm512_cvtepi32_ps(_mm512_madd_epi16(wv, av));
		__m512 d = _mm512_set1_ps(_cvtsh_ss(x[b].d) * _cvtsh_ss(y[b].d));
		if (b & 1)
			acc1 = _mm512_fmadd_ps(d, p, acc1);
		else
			acc0 = _mm512_fmadd_ps(d, p, acc0);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* The block sums (16 i32 lanes) of two Q5_0 blocks in one 512-bit register:
 * the fifth bits of both are one 64-bit byte mask (AVX-512BW) that blends 16
 * into the low nibbles; otherwise as quant_x86.h's isum_off of Q5_0 codes. */
T512 static inline __m512i q5_0_isum2(const struct mp_block_q5_0 *x, const struct mp_block_q8_0 *y)
{
	const __m512i m4 = _mm512_set1_epi8(0x0F), c16 = _mm512_set1_epi8(16);
	__m128i q0 = _mm_loadu_si128((const __m128i *)x[0].qs);
	__m128i q1 = _mm_loadu_si128((const __m128i *)x[1].qs);
	__m512i lo = _mm512_and_si512(
		_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(_mm_srli_epi16(q0, 4), q0)),
				   _mm256_set_m128i(_mm_srli_epi16(q1, 4), q1), 1),
		m4);
	uint32_t h0, h1;
	memcpy(&h0, x[0].qh, 4);
	memcpy(&h1, x[1].qh, 4);
	__m512i u = _mm512_mask_blend_epi8((__mmask64)h0 | (__mmask64)h1 << 32, lo, _mm512_or_si512(lo, c16));
	__m512i av = cat256(y[0].qs, y[1].qs);
	__m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(u, av), _mm512_maddubs_epi16(c16, av));
	return _mm512_madd_epi16(p16, _mm512_set1_epi16(1));
}

/* Q5_0: four blocks per iteration in two 512-bit registers; exact block sums
 * combined in the scalar order by quant_x86.h's blocks_add (bit for bit the
 * scalar reference); the last n mod 4 blocks by its 256-bit q5_0_dot, which
 * continues the sum exactly (0 + p is p). */
T512 static float q5_0_dot512(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q5_0 *x = w;
	const struct mp_block_q8_0 *y = a;
	float s = 0;
	int64_t nb = n / MP_QK8, b = 0;
	for (; b + 4 <= nb; b += 4) {
		prefetch_avx512(&x[b], 4 * (int)sizeof x[b]);
		__m512i p01 = q5_0_isum2(&x[b], &y[b]), p23 = q5_0_isum2(&x[b + 2], &y[b + 2]);
		__m128i is = hsum4_i32_avx512(_mm512_castsi512_si256(p01), _mm512_extracti64x4_epi64(p01, 1),
					      _mm512_castsi512_si256(p23), _mm512_extracti64x4_epi64(p23, 1));
		s = blocks_add_avx512(s, is, f16x4_avx512(&x[b].d, sizeof *x, 4),
				      f16x4_avx512(&y[b].d, sizeof *y, 4), _mm_setzero_ps(), _mm_setzero_ps(), 0, 4);
	}
	for (; b < nb; b++)
		s += q5_0_dot_avx512(MP_QK8, &x[b], &y[b]);
	return s;
}

/* Float dots: four 16-lane FMA chains, then the tail in scalar order. */
#define FLOAT_DOT512(NAME, T, LOAD16, TOF32)                                          \
	T512 static float NAME(int64_t n, const void *w, const void *a)                \
	{                                                                              \
		const T *x = w, *y = a;                                                \
		__m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(),           \
				  _mm512_setzero_ps(), _mm512_setzero_ps() };          \
		int64_t i = 0;                                                         \
		for (; i + 64 <= n; i += 64) {                                         \
			prefetch_avx512(x + i, 64 * (int)sizeof(T));                   \
			for (int k = 0; k < 4; k++)                                    \
				acc[k] = _mm512_fmadd_ps(LOAD16(x + i + 16 * k),       \
							 LOAD16(y + i + 16 * k), acc[k]); \
		}                                                                      \
		for (; i + 16 <= n; i += 16)                                           \
			acc[0] = _mm512_fmadd_ps(LOAD16(x + i), LOAD16(y + i), acc[0]); \
		float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), \
							     _mm512_add_ps(acc[2], acc[3]))); \
		for (; i < n; i++)                                                     \
			s += TOF32(x[i]) * TOF32(y[i]);                                \
		return s;                                                              \
	}

#define LOAD_F32(p) _mm512_loadu_ps(p)
#define LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LOAD_BF16(p) \
	_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))

FLOAT_DOT512(f32_dot512, float, LOAD_F32, X86_F32_ID)
FLOAT_DOT512(f16_dot512, mp_f16, LOAD_F16, mp_f16_to_f32)
FLOAT_DOT512(bf16_dot512, mp_bf16, LOAD_BF16, mp_bf16_to_f32)

void mp_quant_fill_avx512(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_F32].vec_dot[MP_KPATH_AVX512] = f32_dot512;
	tab[MP_TYPE_F16].vec_dot[MP_KPATH_AVX512] = f16_dot512;
	tab[MP_TYPE_BF16].vec_dot[MP_KPATH_AVX512] = bf16_dot512;
	tab[MP_TYPE_Q8_0].vec_dot[MP_KPATH_AVX512] = q8_0_dot512;
	tab[MP_TYPE_Q5_0].vec_dot[MP_KPATH_AVX512] = q5_0_dot512;
	tab[MP_TYPE_Q4_0].vec_dot[MP_KPATH_AVX512] = q4_0_dot_avx512;
	tab[MP_TYPE_Q4_1].vec_dot[MP_KPATH_AVX512] = q4_1_dot_avx512;
	tab[MP_TYPE_Q5_1].vec_dot[MP_KPATH_AVX512] = q5_1_dot_avx512;
	tab[MP_TYPE_Q2_K].vec_dot[MP_KPATH_AVX512] = q2_K_dot_avx512;
	tab[MP_TYPE_Q3_K].vec_dot[MP_KPATH_AVX512] = q3_K_dot_avx512;
	tab[MP_TYPE_Q4_K].vec_dot[MP_KPATH_AVX512] = q4_K_dot512;
	tab[MP_TYPE_Q5_K].vec_dot[MP_KPATH_AVX512] = q5_K_dot_avx512;
	tab[MP_TYPE_Q6_K].vec_dot[MP_KPATH_AVX512] = q6_K_dot512;
}
#else
void mp_quant_fill_avx512(struct mp_quant_ops *tab)
{
	(void)tab;
}
#endif
