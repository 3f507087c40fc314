/*
 * dequant_x86.h — the 256-bit x86 dequantizers (to f32) of F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q2_K..Q6_K, written once and
 * compiled twice: by dequant_avx2.c (AVX2 + F16C) and dequant_avx512.c (the
 * same code with EVEX encoding).  Not a public header: the includer defines
 *   X86_TARGET   the target attribute (MP_TARGET_AVX2 / _AVX512_BASE)
 *   X86(name)    the function name with the path's suffix.
 *
 * Invariant: every function here writes the same floats as the scalar
 * reference of its type (quant.c, quant_q8.c, quant_legacy.c, quant_k.c),
 * bit for bit, for any block bytes.  How: codes are unpacked as integers,
 * converted to float exactly, and the float operations are the reference's,
 * in its order, lane by lane — a sub-block's factor d·sc (and dmin·mn) is
 * formed as a scalar first, as the reference's left-to-right expression
 * does, then multiplied (and added or subtracted) without FMA (no
 * contraction under -std=c11).  The one exception: F16C quiets a signalling
 * NaN that the scalar conversion passes through (a NaN stays a NaN).
 */

#include "x86_codes.h"

/* How the 32 codes of a chunk become floats: c·d, c·d + m, or c·d − m. */
enum { X86_DQ_MUL = 0, X86_DQ_ADD = 1, X86_DQ_SUB = 2 };

/* dst[0..31] = code·d (op m): the 32 byte codes of q (signed bytes when sgn),
 * elements 0..15 with d0, m0 and 16..31 with d1, m1 (two 16-element
 * sub-blocks; pass the same twice for one 32-element scale). */
X86_TARGET static inline void X86(dq_store32)(float *dst, __m256i q, int sgn, int op, float d0,
					      float m0, float d1, float m1)
{
	__m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
	__m128i part[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
	for (int k = 0; k < 4; k++) {
		__m256i i32 = sgn ? _mm256_cvtepi8_epi32(part[k]) : _mm256_cvtepu8_epi32(part[k]);
		__m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(i32), _mm256_set1_ps(k < 2 ? d0 : d1));
		__m256 m = _mm256_set1_ps(k < 2 ? m0 : m1);
		if (op == X86_DQ_ADD)
			v = _mm256_add_ps(v, m);
		else if (op == X86_DQ_SUB)
			v = _mm256_sub_ps(v, m);
		_mm256_storeu_ps(dst + 8 * k, v);
	}
}

X86_TARGET static void X86(q8_0_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q8_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = _cvtsh_ss(x[b].d);
		X86(dq_store32)(dst, _mm256_loadu_si256((const __m256i *)x[b].qs), 1, X86_DQ_MUL, d, 0, d, 0);
	}
}

X86_TARGET static void X86(q4_0_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = _cvtsh_ss(x[b].d);
		__m256i q = _mm256_sub_epi8(X86(nibbles32)(x[b].qs), _mm256_set1_epi8(8));
		X86(dq_store32)(dst, q, 1, X86_DQ_MUL, d, 0, d, 0);
	}
}

X86_TARGET static void X86(q4_1_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_1 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = _cvtsh_ss(x[b].d), m = _cvtsh_ss(x[b].m);
		X86(dq_store32)(dst, X86(nibbles32)(x[b].qs), 0, X86_DQ_ADD, d, m, d, m);
	}
}

X86_TARGET static void X86(q5_0_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_0 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = _cvtsh_ss(x[b].d);
		__m256i q = _mm256_sub_epi8(X86(q5_codes)(x[b].qs, x[b].qh), _mm256_set1_epi8(16));
		X86(dq_store32)(dst, q, 1, X86_DQ_MUL, d, 0, d, 0);
	}
}

X86_TARGET static void X86(q5_1_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_1 *x = src;
	for (int64_t b = 0; b < n / MP_QK8; b++, dst += MP_QK8) {
		float d = _cvtsh_ss(x[b].d), m = _cvtsh_ss(x[b].m);
		X86(dq_store32)(dst, X86(q5_codes)(x[b].qs, x[b].qh), 0, X86_DQ_ADD, d, m, d, m);
	}
}

/* Q2_K: chunk (h, j) of 32 elements is (qs[32h..] >> 2j) & 3, sub-blocks
 * 8h+2j and 8h+2j+1: (d·sc)·q − dmin·mn. */
X86_TARGET static void X86(q2_K_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q2_K *x = src;
	const __m256i m3 = _mm256_set1_epi8(3);
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = _cvtsh_ss(x[b].d), dmin = _cvtsh_ss(x[b].dmin);
		const uint8_t *sc = x[b].scales;
		for (int h = 0; h < 2; h++) {
			__m256i Q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
			for (int j = 0; j < 4; j++) {
				int s = 8 * h + 2 * j;
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(Q, 2 * j), m3);
				X86(dq_store32)(dst + 128 * h + 32 * j, q, 0, X86_DQ_SUB,
						d * (float)(sc[s] & 0xF), dmin * (float)(sc[s] >> 4),
						d * (float)(sc[s + 1] & 0xF), dmin * (float)(sc[s + 1] >> 4));
			}
		}
	}
}

/* Q3_K: code = q2 + 4·hbit − 4 (−4..3), (d·S)·code with S the signed scale of
 * the element's 16-element sub-block. */
X86_TARGET static void X86(q3_K_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q3_K *x = src;
	const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = _cvtsh_ss(x[b].d);
		int8_t S[16];
		mp_q3k_scales(x[b].scales, S);
		__m256i H = _mm256_loadu_si256((const __m256i *)x[b].hmask);
		for (int h = 0; h < 2; h++) {
			__m256i Q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * h));
			for (int j = 0; j < 4; j++) {
				__m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(Q, 2 * j), m3);
				__m256i hb = _mm256_cmpeq_epi8(_mm256_and_si256(H, bit), bit);
				q = _mm256_sub_epi8(_mm256_or_si256(q, _mm256_and_si256(hb, four)), four);
				int s = 8 * h + 2 * j;
				X86(dq_store32)(dst + 128 * h + 32 * j, q, 1, X86_DQ_MUL, d * (float)S[s], 0,
						d * (float)S[s + 1], 0);
			}
		}
	}
}

/* Q4_K and Q5_K (qh NULL for Q4_K): the 64 elements 64·j2.. are the low
 * nibbles (sub-block 2·j2) then the high nibbles (2·j2+1) of qs[32·j2..];
 * the fifth bit of sub-block s is bit s of qh[e % 32]. */
X86_TARGET static inline void X86(k45_dequant_block)(float d, float dmin, const uint8_t *scales,
						     const uint8_t *qs, const uint8_t *qh, float *dst)
{
	const __m256i m4 = _mm256_set1_epi8(0xF), sixteen = _mm256_set1_epi8(16);
	__m256i hb = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
	for (int j2 = 0; j2 < 4; j2++) {
		__m256i Q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j2));
		__m256i q[2] = { _mm256_and_si256(Q, m4), _mm256_and_si256(_mm256_srli_epi16(Q, 4), m4) };
		for (int k = 0; k < 2; k++) {
			int s = 2 * j2 + k;
			if (qh) {
				__m256i bit = _mm256_set1_epi8((char)(1 << s));
				__m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit);
				q[k] = _mm256_or_si256(q[k], _mm256_and_si256(set, sixteen));
			}
			uint8_t sc, mn;
			mp_k4_scale_min(s, scales, &sc, &mn);
			float d1 = d * (float)sc, m1 = dmin * (float)mn;
			X86(dq_store32)(dst + 32 * s, q[k], 0, X86_DQ_SUB, d1, m1, d1, m1);
		}
	}
}

X86_TARGET static void X86(q4_K_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q4_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K)
		X86(k45_dequant_block)(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), x[b].scales, x[b].qs, NULL,
				       dst);
}

X86_TARGET static void X86(q5_K_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q5_K *x = src;
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K)
		X86(k45_dequant_block)(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), x[b].scales, x[b].qs,
				       x[b].qh, dst);
}

/* Q6_K: chunk k (0..3) of half h is the low (k < 2) or high nibbles of
 * ql[64h + 32(k%2)..] with bits 2k..2k+1 of qh[32h..] on top; (d·sc)·(q − 32)
 * with sc the sub-block's signed scale. */
X86_TARGET static void X86(q6_K_dequant)(const void *src, float *dst, int64_t n)
{
	const struct mp_block_q6_K *x = src;
	const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3), c32 = _mm256_set1_epi8(32);
	for (int64_t b = 0; b < n / MP_QK_K; b++, dst += MP_QK_K) {
		float d = _cvtsh_ss(x[b].d);
		const int8_t *sc = x[b].scales;
		for (int h = 0; h < 2; h++) {
			__m256i A = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h));
			__m256i B = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * h + 32));
			__m256i H = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
			for (int k = 0; k < 4; k++) {
				__m256i L = k & 1 ? B : A;
				__m256i lo = _mm256_and_si256(k < 2 ? L : _mm256_srli_epi16(L, 4), m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(H, 2 * k), m3);
				__m256i q = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), c32);
				int s = 8 * h + 2 * k;
				X86(dq_store32)(dst + 128 * h + 32 * k, q, 1, X86_DQ_MUL, d * (float)sc[s], 0,
						d * (float)sc[s + 1], 0);
			}
		}
	}
}

/* F16 and BF16: 8 lanes at a time (F16C's exact conversion; bf16 is the top
 * half of an f32), the tail by the scalar conversion. */
X86_TARGET static void X86(f16_dequant)(const void *src, float *dst, int64_t n)
{
	const mp_f16 *h = src;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
	for (; i < n; i++)
		dst[i] = mp_f16_to_f32(h[i]);
}

X86_TARGET static void X86(bf16_dequant)(const void *src, float *dst, int64_t n)
{
	const mp_bf16 *h = src;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
		_mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(w, 16));
	}
	for (; i < n; i++)
		dst[i] = mp_bf16_to_f32(h[i]);
}

/* Installs this path's dequantizers into slot p of the table. */
X86_TARGET static void X86(dequant_fill)(struct mp_quant_ops *tab, enum mp_kpath p)
{
	tab[MP_TYPE_F16].dequant_simd[p] = X86(f16_dequant);
	tab[MP_TYPE_BF16].dequant_simd[p] = X86(bf16_dequant);
	tab[MP_TYPE_Q8_0].dequant_simd[p] = X86(q8_0_dequant);
	tab[MP_TYPE_Q4_0].dequant_simd[p] = X86(q4_0_dequant);
	tab[MP_TYPE_Q4_1].dequant_simd[p] = X86(q4_1_dequant);
	tab[MP_TYPE_Q5_0].dequant_simd[p] = X86(q5_0_dequant);
	tab[MP_TYPE_Q5_1].dequant_simd[p] = X86(q5_1_dequant);
	tab[MP_TYPE_Q2_K].dequant_simd[p] = X86(q2_K_dequant);
	tab[MP_TYPE_Q3_K].dequant_simd[p] = X86(q3_K_dequant);
	tab[MP_TYPE_Q4_K].dequant_simd[p] = X86(q4_K_dequant);
	tab[MP_TYPE_Q5_K].dequant_simd[p] = X86(q5_K_dequant);
	tab[MP_TYPE_Q6_K].dequant_simd[p] = X86(q6_K_dequant);
}
