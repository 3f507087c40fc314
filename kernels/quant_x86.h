/*
 * quant_x86.h — the 256-bit x86 dot products of the K-quants Q2_K, Q3_K,
 * Q5_K, Q4_K and Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the float types, written once and compiled
 * twice: by quant_avx2.c (AVX2) and by quant_avx512.c (the same code with
 * EVEX encoding, for the types it has no 512-bit kernel of its own).  Not a
 * public header: the includer defines
 *   X86_TARGET   the target attribute (MP_TARGET_AVX2 / _AVX512_BASE)
 *   X86(name)    the function name with the path's suffix.
 *
 * Math (quant_k.c has the integer formulation): per super-block, the codes
 * q (unsigned bytes) times the Q8_K bytes a go through maddubs (u8×i8 pairs
 * to i16, never saturating here: |q|≤63, pairs ≤ 2·63·128 < 2^15), then madd
 * with the sub-block scale broadcast to its lanes (i16 pairs to i32); the
 * int32 lanes are summed once per super-block (scales are widened to i16 and
 * broadcast to their lanes by byte shuffles), so isum and imin are exact and
 * mp_k_combine() gives the scalar reference's float bit for bit.  Signed
 * codes are unsigned codes minus an offset, subtracted once per super-block
 * through the activation sums: 4·Σ S·bsums (Q3_K), 32·Σ sc·bsums (Q6_K).
 */

#include "x86_codes.h"

X86_TARGET static inline float X86(hsum_ps)(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

X86_TARGET static inline __m256i X86(loadu)(const void *p)
{
	return _mm256_loadu_si256((const __m256i *)p);
}

/* Software prefetch of the weights X86_PF_AHEAD bytes ahead of the block being
 * read (one prefetch per 64 bytes of it; blocks are contiguous, so the stream
 * is covered).  Why: on the development machine, kernels that spend many
 * instructions per cache line (Q3_K, BF16) streamed at a third of their
 * in-cache rate although the read bandwidth was far higher — what a hardware
 * prefetcher that does not run far enough ahead looks like.  It costs nothing
 * measurable in cache; its gain could not be measured there (a loaded,
 * shared machine, bench/README.md).  Prefetches past the end of the matrix
 * are harmless (they do not fault). */
#define X86_PF_AHEAD 2048
X86_TARGET static inline void X86(prefetch)(const void *block, int bytes)
{
	const char *p = (const char *)block + X86_PF_AHEAD;
	for (int off = 0; off < bytes; off += 64)
		_mm_prefetch(p + off, _MM_HINT_T0);
}

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K block,
 * unpacked from its 12 bytes (same values as mp_k4_scale_min): with the
 * words u0..u2 of the packed bytes,
 *   scales 0..3 = u0 & 0x3f..,   scales 4..7 = (u2 & 0x0f..) | ((u0 >> 6) & 0x03..) << 4,
 *   mins 0..3   = u1 & 0x3f..,   mins 4..7   = ((u2 >> 4) & 0x0f..) | ((u1 >> 6) & 0x03..) << 4.
 * Loads 16 bytes: the 4 after the scales are the block's next field. */
X86_TARGET static inline __m128i X86(k4_scales_mins)(const uint8_t *q)
{
	__m128i u = _mm_loadu_si128((const __m128i *)q);
	__m128i A = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));   /* u0 u2 u1 u2 */
	__m128i B = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));   /* u0 u0 u1 u1 */
	__m128i lo6 = _mm_and_si128(A, _mm_set1_epi32(0x3f3f3f3f));
	__m128i hi = _mm_and_si128(_mm_srlv_epi32(A, _mm_set_epi32(4, 0, 0, 0)), _mm_set1_epi32(0x0f0f0f0f));
	hi = _mm_or_si128(hi, _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(B, 6), _mm_set1_epi32(0x03030303)), 4));
	return _mm_blend_epi32(lo6, hi, 0xA);
}

/* sc holds eight i16 scales in each 128-bit half (the same eight in both);
 * returns lanes 0..7 = scale 2k, lanes 8..15 = scale 2k+1: the scales of the
 * two 16-element groups that one 32-byte maddubs covers. */
X86_TARGET static inline __m256i X86(scale_pair)(__m256i sc, int k)
{
	int lo = 2 * k, hi = 2 * k + 1;
	__m256i shuf = _mm256_set_m128i(_mm_set1_epi16((short)((2 * hi) | (2 * hi + 1) << 8)),
					_mm_set1_epi16((short)((2 * lo) | (2 * lo + 1) << 8)));
	return _mm256_shuffle_epi8(sc, shuf);
}

/* Sums the 8 lanes of isum and the 4 of imin at once. */
X86_TARGET static inline void X86(hsum2)(__m256i isum, __m128i imin, int32_t *is, int32_t *im)
{
	__m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(isum), _mm256_extracti128_si256(isum, 1));
	__m128i t = _mm_hadd_epi32(s4, imin);
	t = _mm_hadd_epi32(t, t);
	*is = _mm_cvtsi128_si32(t);
	*im = _mm_extract_epi32(t, 1);
}

/* A byte shuffle broadcasting i16 lane i (of each 128-bit half) to all eight
 * lanes of that half. */
X86_TARGET static inline __m256i X86(bcast16)(int i)
{
	return _mm256_set1_epi16((short)((2 * i) | (2 * i + 1) << 8));
}

/* Σ_j mn[j]·(bsums[2j] + bsums[2j+1]) as four i32 partial sums: mins16 holds
 * the 8 mins as i16. */
X86_TARGET static inline __m128i X86(mins_prod)(__m128i mins16, const int16_t *bsums)
{
	__m256i bs = X86(loadu)(bsums);
	__m128i pair = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
	return _mm_madd_epi16(pair, mins16);
}

X86_TARGET static float X86(q2_K_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q2_K *x = w;
	const struct mp_block_q8_K *y = a;
	const __m256i m3 = _mm256_set1_epi8(3);
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		__m128i sc8 = _mm_loadu_si128((const __m128i *)x[b].scales);
		__m256i scl = _mm256_cvtepu8_epi16(_mm_and_si128(sc8, _mm_set1_epi8(0xF)));
		__m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0xF)));
		__m256i prod = _mm256_madd_epi16(mins, X86(loadu)(y[b].bsums));
		__m256i acc = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++) {
			__m256i Q = X86(loadu)(x[b].qs + 32 * h);
			__m256i sc = h ? _mm256_permute2x128_si256(scl, scl, 0x11)
				       : _mm256_permute2x128_si256(scl, scl, 0x00);
			for (int j = 0; j < 4; j++) {
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(Q, 2 * j), m3);
				__m256i p = _mm256_maddubs_epi16(q, X86(loadu)(y[b].qs + 128 * h + 32 * j));
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, X86(scale_pair)(sc, j)));
			}
		}
		int32_t isum, imin;
		X86(hsum2)(acc, _mm_add_epi32(_mm256_castsi256_si128(prod), _mm256_extracti128_si256(prod, 1)),
			   &isum, &imin);
		s += mp_k_combine(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

X86_TARGET static float X86(q3_K_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q3_K *x = w;
	const struct mp_block_q8_K *y = a;
	const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
	const __m256i zero = _mm256_setzero_si256();   /* acc start */
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		/* the sixteen 6-bit scales, unpacked by words as llama.cpp does */
		uint32_t u[3];
		memcpy(u, x[b].scales, 12);
		const uint32_t km1 = 0x03030303, km2 = 0x0f0f0f0f;
		__m128i S8 = _mm_set_epi32((int)(((u[1] >> 4) & km2) | (((u[2] >> 6) & km1) << 4)),
					   (int)(((u[0] >> 4) & km2) | (((u[2] >> 4) & km1) << 4)),
					   (int)((u[1] & km2) | (((u[2] >> 2) & km1) << 4)),
					   (int)((u[0] & km2) | ((u[2] & km1) << 4)));
		__m256i S16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(S8), _mm256_set1_epi16(32));
		__m256i corr = _mm256_madd_epi16(S16, X86(loadu)(y[b].bsums));   /* Σ S·bsum */
		__m256i H = X86(loadu)(x[b].hmask), acc = zero;
		for (int h = 0; h < 2; h++) {
			__m256i Q = X86(loadu)(x[b].qs + 32 * h);
			__m256i sc = h ? _mm256_permute2x128_si256(S16, S16, 0x11)
				       : _mm256_permute2x128_si256(S16, S16, 0x00);
			for (int j = 0; j < 4; j++) {
				__m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + j)));
				__m256i q = _mm256_and_si256(_mm256_srli_epi16(Q, 2 * j), m3);
				/* code + 4 = q2 + 4·hbit, in 0..7 */
				q = _mm256_or_si256(q, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(H, bit), bit), four));
				__m256i p = _mm256_maddubs_epi16(q, X86(loadu)(y[b].qs + 128 * h + 32 * j));
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, X86(scale_pair)(sc, j)));
			}
		}
		int32_t isum, icorr;
		X86(hsum2)(acc, _mm_add_epi32(_mm256_castsi256_si128(corr), _mm256_extracti128_si256(corr, 1)),
			   &isum, &icorr);
		s += mp_k_combine(_cvtsh_ss(x[b].d), 0.0f, y[b].d, isum - 4 * icorr, 0);
	}
	return s;
}

/* Q4_K and Q5_K: qh is NULL for Q4_K. */
X86_TARGET static inline int32_t X86(k45_block)(const uint8_t *scales, const uint8_t *qs,
						const uint8_t *qh, const struct mp_block_q8_K *y,
						int32_t *imin)
{
	const __m256i m4 = _mm256_set1_epi8(0xF), sixteen = _mm256_set1_epi8(16);
	__m256i sm16 = _mm256_cvtepu8_epi16(X86(k4_scales_mins)(scales));
	__m128i prod = X86(mins_prod)(_mm256_extracti128_si256(sm16, 1), y->bsums);
	__m256i sc = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm16));
	__m256i acc = _mm256_setzero_si256();
	__m256i hb = qh ? X86(loadu)(qh) : _mm256_setzero_si256();
	for (int j2 = 0; j2 < 4; j2++) {
		__m256i q = X86(loadu)(qs + 32 * j2);
		__m256i lo = _mm256_and_si256(q, m4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
		if (qh) {
			__m256i blo = _mm256_set1_epi8((char)(1 << (2 * j2)));
			__m256i bhi = _mm256_set1_epi8((char)(1 << (2 * j2 + 1)));
			lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, blo), blo), sixteen));
			hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bhi), bhi), sixteen));
		}
		__m256i plo = _mm256_maddubs_epi16(lo, X86(loadu)(y->qs + 64 * j2));
		__m256i phi = _mm256_maddubs_epi16(hi, X86(loadu)(y->qs + 64 * j2 + 32));
		plo = _mm256_madd_epi16(plo, _mm256_shuffle_epi8(sc, X86(bcast16)(2 * j2)));
		phi = _mm256_madd_epi16(phi, _mm256_shuffle_epi8(sc, X86(bcast16)(2 * j2 + 1)));
		acc = _mm256_add_epi32(acc, _mm256_add_epi32(plo, phi));
	}
	int32_t isum;
	X86(hsum2)(acc, prod, &isum, imin);
	return isum;
}

X86_TARGET static float X86(q4_K_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q4_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		int32_t imin, isum = X86(k45_block)(x[b].scales, x[b].qs, NULL, &y[b], &imin);
		s += mp_k_combine(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

X86_TARGET static float X86(q5_K_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q5_K *x = w;
	const struct mp_block_q8_K *y = a;
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		int32_t imin, isum = X86(k45_block)(x[b].scales, x[b].qs, x[b].qh, &y[b], &imin);
		s += mp_k_combine(_cvtsh_ss(x[b].d), _cvtsh_ss(x[b].dmin), y[b].d, isum, imin);
	}
	return s;
}

X86_TARGET static float X86(q6_K_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q6_K *x = w;
	const struct mp_block_q8_K *y = a;
	const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
	float s = 0;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		__m256i S16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
		__m256i corr = _mm256_madd_epi16(S16, X86(loadu)(y[b].bsums));   /* Σ sc·bsum */
		__m256i acc = _mm256_setzero_si256();
		for (int h = 0; h < 2; h++) {
			__m256i sc = h ? _mm256_permute2x128_si256(S16, S16, 0x11)
				       : _mm256_permute2x128_si256(S16, S16, 0x00);
			__m256i A = X86(loadu)(x[b].ql + 64 * h), B = X86(loadu)(x[b].ql + 64 * h + 32);
			__m256i H = X86(loadu)(x[b].qh + 32 * h);
			__m256i q[4];
			q[0] = _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_slli_epi16(_mm256_and_si256(H, m3), 4));
			q[1] = _mm256_or_si256(_mm256_and_si256(B, m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2), m3), 4));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 4), m3), 4));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
					       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 6), m3), 4));
			for (int k = 0; k < 4; k++) {
				__m256i p = _mm256_maddubs_epi16(q[k], X86(loadu)(y[b].qs + 128 * h + 32 * k));
				acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, X86(scale_pair)(sc, k)));
			}
		}
		int32_t isum, icorr;
		X86(hsum2)(acc, _mm_add_epi32(_mm256_castsi256_si128(corr), _mm256_extracti128_si256(corr, 1)),
			   &isum, &icorr);
		s += mp_k_combine(_cvtsh_ss(x[b].d), 0.0f, y[b].d, isum - 32 * icorr, 0);
	}
	return s;
}

/* Q8_0 · Q8_0: exact int32 block sums (bytes widened to i16, so even −128
 * codes cannot saturate), accumulated as f32 lanes: d_w·d_a·Σ. */
X86_TARGET static float X86(q8_0_dot)(int64_t n, const void *w, const void *a)
{
	const struct mp_block_q8_0 *x = w, *y = a;
	__m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	int64_t nb = n / MP_QK8, b = 0;
	for (; b < nb; b++) {
		X86(prefetch)(&x[b], (int)sizeof x[b]);
		__m256i wv = X86(loadu)(x[b].qs), av = X86(loadu)(y[b].qs);
		__m256i p0 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv)),
					       _mm256_cvtepi8_epi16(_mm256_castsi256_si128(av)));
		__m256i p1 = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(wv, 1)),
					       _mm256_cvtepi8_epi16(_mm256_extracti128_si256(av, 1)));
		__m256 d = _mm256_set1_ps(_cvtsh_ss(x[b].d) * _cvtsh_ss(y[b].d));
		__m256 p = _mm256_cvtepi32_ps(_mm256_add_epi32(p0, p1));
		if (b & 1)
			acc1 = _mm256_fmadd_ps(d, p, acc1);
		else
			acc0 = _mm256_fmadd_ps(d, p, acc0);
	}
	return X86(hsum_ps)(_mm256_add_ps(acc0, acc1));
}

/* Σ (u − off)·a over one 32-element block in 8 i32 lanes: the unsigned
 * codes u (0..31) go through maddubs against the activation bytes, minus
 * off·Σa by a second maddubs (pairs stay within ±2·31·128: exact, and a −128
 * activation cannot overflow a sign trick). */
X86_TARGET static inline __m256i X86(isum_off)(__m256i u, const int8_t *act, int off)
{
	__m256i av = X86(loadu)(act);
	__m256i p16 = _mm256_maddubs_epi16(u, av);
	if (off)
		p16 = _mm256_sub_epi16(p16, _mm256_maddubs_epi16(_mm256_set1_epi8((char)off), av));
	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/* The sums of the 8 i32 lanes of a, b, c and d, as lanes 0..3 (exact). */
X86_TARGET static inline __m128i X86(hsum4_i32)(__m256i a, __m256i b, __m256i c, __m256i d)
{
	__m256i ab = _mm256_hadd_epi32(a, b);   /* a01 a23 b01 b23 | a45 a67 b45 b67 */
	__m256i cd = _mm256_hadd_epi32(c, d);
	__m256i h = _mm256_hadd_epi32(ab, cd);  /* a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7 d4-7 */
	return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* The f16 fields at p, p + stride, ... of n ≤ 4 consecutive blocks as
 * floats (lanes k >= n are 0: blocks past the end are never read).  n is a
 * constant where it is inlined: the loads become four register inserts. */
X86_TARGET static inline __m128 X86(f16x4)(const void *p, size_t stride, int n)
{
	uint16_t h[4] = { 0, 0, 0, 0 };
	for (int k = 0; k < 4; k++)
		if (k < n)
			memcpy(&h[k], (const char *)p + (size_t)k * stride, 2);
	return _mm_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], 0, 0, 0, 0));
}

/* s + Σ_k ((d_w[k]·d_a[k])·isum[k] + m[k]·s_a[k]) over the k < n ≤ 4 blocks
 * (the m·s_a term only for Q4_1/Q5_1: has_m): each block's term formed as
 * the scalar reference forms it (int to float, f16 scales multiplied first:
 * the same IEEE operations lane by lane), then added to s one at a time in
 * block order (no FMA contraction under -std=c11), so the dot equals the
 * scalar one bit for bit. */
X86_TARGET static inline float X86(blocks_add)(float s, __m128i isum, __m128 dw, __m128 da, __m128 m,
					       __m128 sa, int has_m, int n)
{
	__m128 v = _mm_mul_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(dw, da));
	if (has_m)
		v = _mm_add_ps(v, _mm_mul_ps(m, sa));
	float p[4];
	_mm_storeu_ps(p, v);
	for (int k = 0; k < n; k++)
		s += p[k];
	return s;
}

/* The dots of the 32-element types: NAME_step adds k ≤ 4 blocks to s (one
 * horizontal sum for all), NAME runs it four blocks at a time, then block by
 * block (k constant in both: the step is inlined without branches).  CODES(j)
 * gives block j's unsigned codes, OFF their offset (8, 16 or 0), HAS_M
 * whether the activation type is Q8_1 (the m·s term). */
#define X86_LEGACY_DOT(NAME, WT, AT, CODES, OFF, HAS_M)                                       \
	X86_TARGET static inline float X86(NAME##_step)(float s, const WT *x, const AT *y, int k) \
	{                                                                                      \
		const __m128 z = _mm_setzero_ps();                                             \
		__m256i is[4];                                                                 \
		for (int j = 0; j < 4; j++)                                                    \
			is[j] = j < k ? X86(isum_off)(CODES(j), y[j].qs, OFF) : _mm256_setzero_si256(); \
		__m128i isum = X86(hsum4_i32)(is[0], is[1], is[2], is[3]);                     \
		return X86(blocks_add)(s, isum, X86(f16x4)(&x->d, sizeof *x, k),               \
				       X86(f16x4)(&y->d, sizeof *y, k),                        \
				       HAS_M ? X86(f16x4)((const uint16_t *)&x->d + 1, sizeof *x, k) : z, \
				       HAS_M ? X86(f16x4)((const uint16_t *)&y->d + 1, sizeof *y, k) : z, \
				       HAS_M, k);                                              \
	}                                                                                      \
	X86_TARGET static float X86(NAME)(int64_t n, const void *w, const void *a)           \
	{                                                                                      \
		const WT *x = w;                                                               \
		const AT *y = a;                                                               \
		float s = 0;                                                                   \
		int64_t nb = n / MP_QK8, b = 0;                                                \
		for (; b + 4 <= nb; b += 4) {                                                  \
			X86(prefetch)(&x[b], 4 * (int)sizeof x[b]);                            \
			s = X86(NAME##_step)(s, &x[b], &y[b], 4);                              \
		}                                                                              \
		for (; b < nb; b++)                                                            \
			s = X86(NAME##_step)(s, &x[b], &y[b], 1);                              \
		return s;                                                                      \
	}

/* Q4_1/Q5_1 keep m right after d, Q8_1 keeps s right after d. */
_Static_assert(offsetof(struct mp_block_q4_1, m) == 2 && offsetof(struct mp_block_q5_1, m) == 2 &&
	       offsetof(struct mp_block_q8_1, s) == 2, "m and s follow d");

#define X86_NIB(j) X86(nibbles32)(x[(j)].qs)
#define X86_Q5(j) X86(q5_codes)(x[(j)].qs, x[(j)].qh)
/* Q4_0 and Q5_0 · Q8_0 (Q5_0: attn_k_b and attn_q_b in Q4_K_M files),
 * Q4_1 and Q5_1 · Q8_1 (Q5_1: attn_k_b in Q5_K_M files). */
X86_LEGACY_DOT(q4_0_dot, struct mp_block_q4_0, struct mp_block_q8_0, X86_NIB, 8, 0)
X86_LEGACY_DOT(q5_0_dot, struct mp_block_q5_0, struct mp_block_q8_0, X86_Q5, 16, 0)
X86_LEGACY_DOT(q4_1_dot, struct mp_block_q4_1, struct mp_block_q8_1, X86_NIB, 0, 1)
X86_LEGACY_DOT(q5_1_dot, struct mp_block_q5_1, struct mp_block_q8_1, X86_Q5, 0, 1)
#undef X86_NIB
#undef X86_Q5

/* Float dots: four 8-lane FMA chains, then the tail in scalar order. */
#define X86_FLOAT_DOT(NAME, T, LOAD8, TOF32)                                          \
	X86_TARGET static float X86(NAME)(int64_t n, const void *w, const void *a)     \
	{                                                                              \
		const T *x = w, *y = a;                                                \
		__m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(),           \
				  _mm256_setzero_ps(), _mm256_setzero_ps() };          \
		int64_t i = 0;                                                         \
		for (; i + 32 <= n; i += 32) {                                         \
			X86(prefetch)(x + i, 32 * (int)sizeof(T));                     \
			for (int k = 0; k < 4; k++)                                    \
				acc[k] = _mm256_fmadd_ps(LOAD8(x + i + 8 * k),         \
							 LOAD8(y + i + 8 * k), acc[k]); \
		}                                                                      \
		for (; i + 8 <= n; i += 8)                                             \
			acc[0] = _mm256_fmadd_ps(LOAD8(x + i), LOAD8(y + i), acc[0]);  \
		float s = X86(hsum_ps)(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),     \
						     _mm256_add_ps(acc[2], acc[3])));   \
		for (; i < n; i++)                                                     \
			s += TOF32(x[i]) * TOF32(y[i]);                                \
		return s;                                                              \
	}

#define X86_LOAD_F32(p) _mm256_loadu_ps(p)
#define X86_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define X86_LOAD_BF16(p) \
	_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define X86_F32_ID(v) (v)

X86_FLOAT_DOT(f32_dot, float, X86_LOAD_F32, X86_F32_ID)
X86_FLOAT_DOT(f16_dot, mp_f16, X86_LOAD_F16, mp_f16_to_f32)
X86_FLOAT_DOT(bf16_dot, mp_bf16, X86_LOAD_BF16, mp_bf16_to_f32)
