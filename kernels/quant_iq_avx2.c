/*
 * quant_iq_avx2.c — AVX2 dot products of the i-quants with Q8_K (IQ4_NL with
 * Q8_0): all nine types.  Same integer sums as the scalar references in
 * quant_iq.c, one group of 32 weights at a time:
 *  - IQ2/IQ3: the grid bytes (unsigned magnitudes) go straight into
 *    maddubs against q8 with the weight signs applied (sign_epi8);
 *  - IQ1: the weight is formed as the integer 8·g + δ (δ = ±1 for ±1/8), so
 *    one signed byte product covers grid and delta; the block sum is then
 *    scaled by 1/8 — exactly the scalar's sumi + sumi1/8;
 *  - IQ4: the levels come from a 16-byte shuffle table.
 * Byte products are summed in pairs to i16 (at most 2·127·127, no
 * saturation) and by madd with the integer scales to i32.  Requires q8 in
 * [−127, 127], which Q8_K and Q8_0 quantization guarantee.
 *
 * Each Q8_K type supplies one function for a group (its i32 lanes of
 * Σ scale·w·q) and one for its block's f16 scale; q8k_dot() runs the block
 * loop and is always inlined, so the group function is a direct, inlined
 * call in every kernel.
 */
#include <string.h>

#include "blocks.h"
#include "blocks_iq.h"
#include "iq_grids.h"
#include "quant.h"
#include "quant_iq.h"
#include "simd.h"

#if MP_HAVE_X86

#define ALWAYS_INLINE __attribute__((always_inline))

/* Sum of the 8 floats of v. */
static inline MP_TARGET_AVX2 float hsum_ps(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Pairwise i16 sums of mag·q·(−1 where the byte of neg is 0xFF): mag
 * unsigned (grid bytes), neg bytes 0 or 0xFF. */
static inline MP_TARGET_AVX2 __m256i mul_mag(__m256i mag, __m256i neg, __m256i q)
{
	return _mm256_maddubs_epi16(mag, _mm256_sign_epi8(q, _mm256_or_si256(neg, _mm256_set1_epi8(1))));
}

/* Pairwise i16 sums of w·q for signed bytes w. */
static inline MP_TARGET_AVX2 __m256i mul_i8(__m256i w, __m256i q)
{
	return _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
}

/* i16 scale vector: elements 0..15 of a group get a, 16..31 get b. */
static inline MP_TARGET_AVX2 __m256i scale2(int a, int b)
{
	return _mm256_set_m128i(_mm_set1_epi16((short)b), _mm_set1_epi16((short)a));
}

/* Expands 4 sign bytes (one per 8 elements) to 32 byte masks (0xFF = negative). */
static inline MP_TARGET_AVX2 __m256i expand_signs(uint32_t s4)
{
	const __m256i pick = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
					       0x0101010101010101LL, 0);
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)s4), pick);
	return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* Sign masks of four 7-bit sign indices at 7-bit strides in bits. */
static inline MP_TARGET_AVX2 __m256i signs28(uint32_t bits)
{
	return _mm256_set_epi64x((long long)mp_ksigns64[(bits >> 21) & 127],
				 (long long)mp_ksigns64[(bits >> 14) & 127],
				 (long long)mp_ksigns64[(bits >> 7) & 127], (long long)mp_ksigns64[bits & 127]);
}

/* Four 8-lane grid entries as one vector. */
static inline MP_TARGET_AVX2 __m256i grid4(const uint64_t *grid, int i0, int i1, int i2, int i3)
{
	return _mm256_set_epi64x((long long)grid[i3], (long long)grid[i2], (long long)grid[i1],
				 (long long)grid[i0]);
}

/* Eight 4-lane grid entries as one vector. */
static inline MP_TARGET_AVX2 __m256i grid8(const uint32_t *grid, const int idx[8])
{
	return _mm256_set_epi32((int)grid[idx[7]], (int)grid[idx[6]], (int)grid[idx[5]], (int)grid[idx[4]],
				(int)grid[idx[3]], (int)grid[idx[2]], (int)grid[idx[1]], (int)grid[idx[0]]);
}

static inline float f16_at(const uint8_t *blk)
{
	mp_f16 h;
	memcpy(&h, blk, 2);
	return mp_f16_to_f32(h);
}

typedef __m256i (*group_fn)(const uint8_t *blk, int g, __m256i q);

/* Σ over blocks of d_w(blk)·d_a·Σ_groups group(blk, g, q8 of g), in f32. */
static inline ALWAYS_INLINE MP_TARGET_AVX2 float q8k_dot(int64_t n, const void *w, size_t block_bytes,
							 const void *a, float (*dw)(const uint8_t *),
							 group_fn group)
{
	const uint8_t *blk = w;
	const struct mp_block_q8_K *y = a;
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK_K; i++, blk += block_bytes) {
		__m256i sumi = _mm256_setzero_si256();
		/* unrolled: the groups' table lookups overlap (GCC kept the loop;
		 * bench/README.md has the gain per type) */
#pragma GCC unroll 8
		for (int g = 0; g < 8; g++) {
			__m256i q = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * g));
			sumi = _mm256_add_epi32(sumi, group(blk, g, q));
		}
		acc = _mm256_fmadd_ps(_mm256_set1_ps(dw(blk) * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum_ps(acc);
}

/* ---- IQ2 / IQ3 -------------------------------------------------------------- */

static inline MP_TARGET_AVX2 __m256i iq2_xxs_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq2_xxs *x = (const void *)blk;
	uint32_t aux[2];
	memcpy(aux, x->qs + 4 * g, 8);
	__m256i mag = grid4(mp_iq2xxs_grid, aux[0] & 255, (aux[0] >> 8) & 255, (aux[0] >> 16) & 255, aux[0] >> 24);
	__m256i ls = _mm256_set1_epi16((short)(2 * (aux[1] >> 28) + 1));
	return _mm256_madd_epi16(mul_mag(mag, signs28(aux[1]), q), ls);
}

static inline MP_TARGET_AVX2 __m256i iq2_xs_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq2_xs *x = (const void *)blk;
	const uint16_t *v = x->qs + 4 * g;
	__m256i mag = grid4(mp_iq2xs_grid, v[0] & 511, v[1] & 511, v[2] & 511, v[3] & 511);
	__m256i neg = _mm256_set_epi64x((long long)mp_ksigns64[v[3] >> 9], (long long)mp_ksigns64[v[2] >> 9],
					(long long)mp_ksigns64[v[1] >> 9], (long long)mp_ksigns64[v[0] >> 9]);
	__m256i ls = scale2(2 * (x->scales[g] & 0xF) + 1, 2 * (x->scales[g] >> 4) + 1);
	return _mm256_madd_epi16(mul_mag(mag, neg, q), ls);
}

static inline MP_TARGET_AVX2 __m256i iq2_s_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq2_s *x = (const void *)blk;
	const uint8_t *qs = x->qs + 4 * g;
	int qh = x->qh[g];
	__m256i mag = grid4(mp_iq2s_grid, qs[0] | ((qh << 8) & 0x300), qs[1] | ((qh << 6) & 0x300),
			    qs[2] | ((qh << 4) & 0x300), qs[3] | ((qh << 2) & 0x300));
	uint32_t s4;
	memcpy(&s4, x->qs + MP_QK_K / 8 + 4 * g, 4);
	__m256i ls = scale2(2 * (x->scales[g] & 0xF) + 1, 2 * (x->scales[g] >> 4) + 1);
	return _mm256_madd_epi16(mul_mag(mag, expand_signs(s4), q), ls);
}

static inline MP_TARGET_AVX2 __m256i iq3_xxs_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq3_xxs *x = (const void *)blk;
	const uint8_t *qs = x->qs + 8 * g;
	int idx[8] = { qs[0], qs[1], qs[2], qs[3], qs[4], qs[5], qs[6], qs[7] };
	uint32_t aux;
	memcpy(&aux, x->qs + MP_QK_K / 4 + 4 * g, 4);
	__m256i ls = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
	return _mm256_madd_epi16(mul_mag(grid8(mp_iq3xxs_grid, idx), signs28(aux), q), ls);
}

static inline MP_TARGET_AVX2 __m256i iq3_s_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq3_s *x = (const void *)blk;
	/* index k = qs[8g + k] | bit k of qh[g] << 8, all eight in i32 lanes */
	__m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x->qs + 8 * g)));
	__m256i hb = _mm256_srlv_epi32(_mm256_set1_epi32(x->qh[g]), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
	__m256i idx = _mm256_or_si256(lo, _mm256_slli_epi32(_mm256_and_si256(hb, _mm256_set1_epi32(1)), 8));
	__m256i mag = _mm256_i32gather_epi32((const int *)mp_iq3s_grid, idx, 4);
	uint32_t s4;
	memcpy(&s4, x->signs + 4 * g, 4);
	__m256i ls = _mm256_set1_epi16((short)(2 * ((x->scales[g / 2] >> (4 * (g % 2))) & 0xF) + 1));
	return _mm256_madd_epi16(mul_mag(mag, expand_signs(s4), q), ls);
}

/* ---- IQ1 -------------------------------------------------------------------- */

/* 8·g + delta for the int8 lanes g ∈ {−1, 0, 1} of the four IQ1 entries idx
 * (i32 lanes); delta holds ±1 bytes. */
static inline MP_TARGET_AVX2 __m256i iq1_weights(__m128i idx, __m256i delta)
{
	__m256i g = _mm256_i32gather_epi64((const long long *)mp_iq1s_grid, idx, 8);
	return _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), g), delta);
}

/* The four 11-bit IQ1 indices of one group: low bytes qs[0..3], high bits
 * (hi >> shifts[t]) & 7. */
static inline MP_TARGET_AVX2 __m128i iq1_index(const uint8_t *qs, uint32_t hi, __m128i shifts)
{
	uint32_t lo4;
	memcpy(&lo4, qs, 4);
	__m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)lo4));
	__m128i h = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)hi), shifts), _mm_set1_epi32(7));
	return _mm_or_si128(lo, _mm_slli_epi32(h, 8));
}

static inline MP_TARGET_AVX2 __m256i iq1_s_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq1_s *x = (const void *)blk;
	uint16_t h = x->qh[g];
	__m128i idx = iq1_index(x->qs + 4 * g, h, _mm_setr_epi32(0, 3, 6, 9));
	__m256i wv = iq1_weights(idx, _mm256_set1_epi8(h & 0x8000 ? -1 : 1));
	__m256i ls = _mm256_set1_epi16((short)(2 * ((h >> 12) & 7) + 1));
	return _mm256_madd_epi16(mul_i8(wv, q), ls);
}

static inline float iq1_m_d(const uint8_t *blk)
{
	const struct mp_block_iq1_m *x = (const void *)blk;
	uint16_t sc[4];
	memcpy(sc, x->scales, 8);
	return mp_f16_to_f32((mp_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) |
				      (sc[3] & 0xF000)));
}

static inline MP_TARGET_AVX2 __m256i iq1_m_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq1_m *x = (const void *)blk;
	/* δ sign of sub-group t (bit 3 or 7 of qh byte t/2) spread over its 8 bytes */
	const __m256i pick = _mm256_setr_epi64x(0, 0, 0x0101010101010101LL, 0x0101010101010101LL);
	const __m256i bit = _mm256_setr_epi64x(0x0808080808080808LL, (long long)0x8080808080808080ULL,
					       0x0808080808080808LL, (long long)0x8080808080808080ULL);
	uint16_t qh, sc;
	memcpy(&qh, x->qh + 2 * g, 2);
	memcpy(&sc, x->scales + 2 * (g / 2), 2);
	__m128i idx = iq1_index(x->qs + 4 * g, qh, _mm_setr_epi32(0, 4, 8, 12));
	__m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi16((short)qh), pick);
	__m256i delta = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), _mm256_set1_epi8(1));
	int sh = 6 * (g % 2);
	__m256i ls = scale2(2 * ((sc >> sh) & 7) + 1, 2 * ((sc >> (sh + 3)) & 7) + 1);
	return _mm256_madd_epi16(mul_i8(iq1_weights(idx, delta), q), ls);
}

/* ---- IQ4 -------------------------------------------------------------------- */

/* The 32 IQ4 weights of 16 packed bytes: low nibbles, then high nibbles. */
static inline MP_TARGET_AVX2 __m256i iq4_weights(const uint8_t *qs)
{
	const __m128i kv = _mm_loadu_si128((const __m128i *)mp_kvalues_iq4nl);
	const __m128i m4 = _mm_set1_epi8(0x0F);
	__m128i b = _mm_loadu_si128((const __m128i *)qs);
	__m128i lo = _mm_shuffle_epi8(kv, _mm_and_si128(b, m4));
	__m128i hi = _mm_shuffle_epi8(kv, _mm_and_si128(_mm_srli_epi16(b, 4), m4));
	return _mm256_set_m128i(hi, lo);
}

static inline MP_TARGET_AVX2 __m256i iq4_xs_group(const uint8_t *blk, int g, __m256i q)
{
	const struct mp_block_iq4_xs *x = (const void *)blk;
	int ls = (((x->scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((x->scales_h >> (2 * g)) & 3) << 4)) - 32;
	return _mm256_madd_epi16(mul_i8(iq4_weights(x->qs + 16 * g), q), _mm256_set1_epi16((short)ls));
}

static MP_TARGET_AVX2 float iq4_nl_dot_avx2(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq4_nl *x = w;
	const struct mp_block_q8_0 *y = a;
	const __m256i ones = _mm256_set1_epi16(1);
	__m256 acc = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / MP_QK4_NL; i++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)y[i].qs);
		__m256i sumi = _mm256_madd_epi16(mul_i8(iq4_weights(x[i].qs), q), ones);
		float d = mp_f16_to_f32(x[i].d) * mp_f16_to_f32(y[i].d);
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum_ps(acc);
}

/* ---- the kernels ------------------------------------------------------------ */

#define Q8K_KERNEL(name, block, dfn, factor)                                            \
	static MP_TARGET_AVX2 float name##_dot_avx2(int64_t n, const void *w, const void *a) \
	{                                                                               \
		return (factor) * q8k_dot(n, w, sizeof(struct block), a, dfn, name##_group); \
	}

Q8K_KERNEL(iq2_xxs, mp_block_iq2_xxs, f16_at, 0.125f)
Q8K_KERNEL(iq2_xs, mp_block_iq2_xs, f16_at, 0.125f)
Q8K_KERNEL(iq2_s, mp_block_iq2_s, f16_at, 0.125f)
Q8K_KERNEL(iq3_xxs, mp_block_iq3_xxs, f16_at, 0.25f)
Q8K_KERNEL(iq3_s, mp_block_iq3_s, f16_at, 1.0f)
Q8K_KERNEL(iq1_s, mp_block_iq1_s, f16_at, MP_IQ1_DELTA)
Q8K_KERNEL(iq1_m, mp_block_iq1_m, iq1_m_d, MP_IQ1_DELTA)
Q8K_KERNEL(iq4_xs, mp_block_iq4_xs, f16_at, 1.0f)

void mp_quant_fill_iq_avx2(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_IQ1_S].vec_dot[MP_KPATH_AVX2] = iq1_s_dot_avx2;
	tab[MP_TYPE_IQ1_M].vec_dot[MP_KPATH_AVX2] = iq1_m_dot_avx2;
	tab[MP_TYPE_IQ2_XXS].vec_dot[MP_KPATH_AVX2] = iq2_xxs_dot_avx2;
	tab[MP_TYPE_IQ2_XS].vec_dot[MP_KPATH_AVX2] = iq2_xs_dot_avx2;
	tab[MP_TYPE_IQ2_S].vec_dot[MP_KPATH_AVX2] = iq2_s_dot_avx2;
	tab[MP_TYPE_IQ3_XXS].vec_dot[MP_KPATH_AVX2] = iq3_xxs_dot_avx2;
	tab[MP_TYPE_IQ3_S].vec_dot[MP_KPATH_AVX2] = iq3_s_dot_avx2;
	tab[MP_TYPE_IQ4_NL].vec_dot[MP_KPATH_AVX2] = iq4_nl_dot_avx2;
	tab[MP_TYPE_IQ4_XS].vec_dot[MP_KPATH_AVX2] = iq4_xs_dot_avx2;
}

#else

void mp_quant_fill_iq_avx2(struct mp_quant_ops *tab)
{
	(void)tab;
}

#endif
