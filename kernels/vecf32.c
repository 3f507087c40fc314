/*
 * vecf32.c — attention's f32 dot products and row sums on three paths with
 * one summation order (vecf32.h states it).
 *
 * Invariants:
 * 1. Every dot, on every path, adds the rounded product of element i to
 *    partial sum i mod 16 in increasing i, then combines the 16 sums by the
 *    tree of tree16(); the SIMD paths' horizontal sums are that tree.
 * 2. No fused multiply-add anywhere (the intrinsics below are mul then add,
 *    and -std=c11 forbids GCC to contract them).
 * 3. The multi-row and multi-head kernels give each (row, query) pair the
 *    operations of the one-row kernel (dot_rows, dot_heads) or of successive
 *    axpy calls in row order (axpy_rows, axpy_heads), so their bits equal
 *    those loops'.
 */
#include <stddef.h>
#include <stdint.h>

#include "simd.h"
#include "vecf32.h"

/* ---- scalar reference ---------------------------------------------------------- */

static float tree16(float *s)
{
	for (int k = 8; k >= 1; k /= 2)
		for (int l = 0; l < k; l++)
			s[l] += s[l + k];
	return s[0];
}

/* Adds elements i .. n-1 to the partial sums s, then combines them. */
static float dot_tail(float *s, const float *x, const float *y, int64_t i, int64_t n)
{
	for (; i < n; i++)
		s[i & 15] += x[i] * y[i];
	return tree16(s);
}

static float dot_scalar(const float *x, const float *y, int64_t n)
{
	float s[16] = { 0 };
	return dot_tail(s, x, y, 0, n);
}

static void dot_rows_scalar(const float *q, const float *rows, int64_t stride, int64_t n_rows, int64_t n,
			    float *out)
{
	for (int64_t t = 0; t < n_rows; t++)
		out[t] = dot_scalar(q, rows + t * stride, n);
}

static void axpy_scalar(float *y, const float *x, float w, int64_t n)
{
	for (int64_t i = 0; i < n; i++)
		y[i] += w * x[i];
}

static void axpy_rows_scalar(float *y, const float *rows, int64_t stride, const float *w, int64_t n_rows,
			     int64_t n)
{
	for (int64_t t = 0; t < n_rows; t++)
		axpy_scalar(y, rows + t * stride, w[t], n);
}

static void dot_heads_scalar(const float *const *q, const float *rows, int64_t stride, int64_t n_rows,
			     int64_t n, float *const *out)
{
	for (int k = 0; k < MP_VF32_HEADS; k++)
		dot_rows_scalar(q[k], rows, stride, n_rows, n, out[k]);
}

static void axpy_heads_scalar(float *const *y, const float *rows, int64_t stride, const float *const *w,
			      int64_t n_rows, int64_t n)
{
	for (int k = 0; k < MP_VF32_HEADS; k++)
		axpy_rows_scalar(y[k], rows, stride, w[k], n_rows, n);
}

static const struct mp_vf32_ops scalar_ops = { dot_scalar, dot_rows_scalar, axpy_scalar, axpy_rows_scalar,
					       dot_heads_scalar, axpy_heads_scalar };

#if MP_HAVE_X86

/* ---- AVX2: partial sums 0-7 and 8-15 in two registers ---------------------------- */

/* The tree's last three levels on lanes l = 0..7 (l + l+4, l + l+2, l + l+1). */
MP_TARGET_AVX2 static inline float hsum8(__m256 v)
{
	__m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	a = _mm_add_ps(a, _mm_movehl_ps(a, a));
	a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
	return _mm_cvtss_f32(a);
}

/* Finishes a dot whose full 16-element groups are in lo (sums 0-7) and hi
 * (8-15), elements i .. n-1 still to add. */
MP_TARGET_AVX2 static inline float finish8(__m256 lo, __m256 hi, const float *x, const float *y, int64_t i,
					     int64_t n)
{
	if (i < n) {
		float s[16];
		_mm256_storeu_ps(s, lo);
		_mm256_storeu_ps(s + 8, hi);
		return dot_tail(s, x, y, i, n);
	}
	return hsum8(_mm256_add_ps(lo, hi));
}

#define MUL8(a, b, i) _mm256_mul_ps(_mm256_loadu_ps((a) + (i)), _mm256_loadu_ps((b) + (i)))

MP_TARGET_AVX2 static float dot_avx2(const float *x, const float *y, int64_t n)
{
	__m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		lo = _mm256_add_ps(lo, MUL8(x, y, i));
		hi = _mm256_add_ps(hi, MUL8(x, y, i + 8));
	}
	return finish8(lo, hi, x, y, i, n);
}

/* Four rows per pass over q, each with its own sums. */
MP_TARGET_AVX2 static void dot_rows_avx2(const float *q, const float *rows, int64_t stride, int64_t n_rows,
					 int64_t n, float *out)
{
	int64_t t = 0;
	for (; n % 16 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		__m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
		for (int64_t i = 0; i < n; i += 16) {
			a0 = _mm256_add_ps(a0, MUL8(q, r0, i));
			b0 = _mm256_add_ps(b0, MUL8(q, r0, i + 8));
			a1 = _mm256_add_ps(a1, MUL8(q, r1, i));
			b1 = _mm256_add_ps(b1, MUL8(q, r1, i + 8));
			a2 = _mm256_add_ps(a2, MUL8(q, r2, i));
			b2 = _mm256_add_ps(b2, MUL8(q, r2, i + 8));
			a3 = _mm256_add_ps(a3, MUL8(q, r3, i));
			b3 = _mm256_add_ps(b3, MUL8(q, r3, i + 8));
		}
		out[t] = hsum8(_mm256_add_ps(a0, b0));
		out[t + 1] = hsum8(_mm256_add_ps(a1, b1));
		out[t + 2] = hsum8(_mm256_add_ps(a2, b2));
		out[t + 3] = hsum8(_mm256_add_ps(a3, b3));
	}
	for (; t < n_rows; t++)
		out[t] = dot_avx2(q, rows + t * stride, n);
}

MP_TARGET_AVX2 static void axpy_avx2(float *y, const float *x, float w, int64_t n)
{
	__m256 wv = _mm256_set1_ps(w);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i),
						      _mm256_mul_ps(wv, _mm256_loadu_ps(x + i))));
	for (; i < n; i++)
		y[i] += w * x[i];
}

#define AXPY8(v, w, r, i) _mm256_add_ps((v), _mm256_mul_ps(_mm256_set1_ps(w), _mm256_loadu_ps((r) + (i))))

/* Four rows per pass over y: each element takes the four in row order. */
MP_TARGET_AVX2 static void axpy_rows_avx2(float *y, const float *rows, int64_t stride, const float *w,
					  int64_t n_rows, int64_t n)
{
	int64_t t = 0;
	for (; n % 8 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		for (int64_t i = 0; i < n; i += 8) {
			__m256 v = _mm256_loadu_ps(y + i);
			v = AXPY8(v, w[t], r0, i);
			v = AXPY8(v, w[t + 1], r1, i);
			v = AXPY8(v, w[t + 2], r2, i);
			v = AXPY8(v, w[t + 3], r3, i);
			_mm256_storeu_ps(y + i, v);
		}
	}
	for (; t < n_rows; t++)
		axpy_avx2(y, rows + t * stride, w[t], n);
}

/* Each row read once for the four queries: eight independent sums, written
 * out so that they stay in registers. */
#define HEAD8(k)                                                                \
	do {                                                                    \
		a##k = _mm256_add_ps(a##k, _mm256_mul_ps(_mm256_loadu_ps(q##k + i), lo)); \
		b##k = _mm256_add_ps(b##k, _mm256_mul_ps(_mm256_loadu_ps(q##k + i + 8), hi)); \
	} while (0)

MP_TARGET_AVX2 static void dot_heads_avx2(const float *const *q, const float *rows, int64_t stride,
					  int64_t n_rows, int64_t n, float *const *out)
{
	if (n % 16) {
		for (int k = 0; k < MP_VF32_HEADS; k++)
			dot_rows_avx2(q[k], rows, stride, n_rows, n, out[k]);
		return;
	}
	const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
	for (int64_t t = 0; t < n_rows; t++) {
		const float *r = rows + t * stride;
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
		for (int64_t i = 0; i < n; i += 16) {
			__m256 lo = _mm256_loadu_ps(r + i), hi = _mm256_loadu_ps(r + i + 8);
			HEAD8(0);
			HEAD8(1);
			HEAD8(2);
			HEAD8(3);
		}
		out[0][t] = hsum8(_mm256_add_ps(a0, b0));
		out[1][t] = hsum8(_mm256_add_ps(a1, b1));
		out[2][t] = hsum8(_mm256_add_ps(a2, b2));
		out[3][t] = hsum8(_mm256_add_ps(a3, b3));
	}
}

/* Four rows per pass over each y[k], each element taking them in order. */
MP_TARGET_AVX2 static void axpy_heads_avx2(float *const *y, const float *rows, int64_t stride,
					   const float *const *w, int64_t n_rows, int64_t n)
{
	int64_t t = 0;
	for (; n % 8 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		for (int64_t i = 0; i < n; i += 8)
			for (int k = 0; k < MP_VF32_HEADS; k++) {
				__m256 v = _mm256_loadu_ps(y[k] + i);
				v = AXPY8(v, w[k][t], r0, i);
				v = AXPY8(v, w[k][t + 1], r1, i);
				v = AXPY8(v, w[k][t + 2], r2, i);
				v = AXPY8(v, w[k][t + 3], r3, i);
				_mm256_storeu_ps(y[k] + i, v);
			}
	}
	for (; t < n_rows; t++)
		for (int k = 0; k < MP_VF32_HEADS; k++)
			axpy_avx2(y[k], rows + t * stride, w[k][t], n);
}

static const struct mp_vf32_ops avx2_ops = { dot_avx2, dot_rows_avx2, axpy_avx2, axpy_rows_avx2,
					     dot_heads_avx2, axpy_heads_avx2 };

/* ---- AVX-512: the 16 partial sums in one register -------------------------------- */

/* The whole tree: l + l+8 (the halves), then hsum8. */
MP_TARGET_AVX512_BASE static inline float hsum16(__m512 v)
{
	return hsum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

#define MUL16(a, b, i) _mm512_mul_ps(_mm512_loadu_ps((a) + (i)), _mm512_loadu_ps((b) + (i)))

MP_TARGET_AVX512_BASE static float dot_avx512(const float *x, const float *y, int64_t n)
{
	__m512 acc = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		acc = _mm512_add_ps(acc, MUL16(x, y, i));
	if (i < n) {
		float s[16];
		_mm512_storeu_ps(s, acc);
		return dot_tail(s, x, y, i, n);
	}
	return hsum16(acc);
}

MP_TARGET_AVX512_BASE static void dot_rows_avx512(const float *q, const float *rows, int64_t stride,
						  int64_t n_rows, int64_t n, float *out)
{
	int64_t t = 0;
	for (; n % 16 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
		for (int64_t i = 0; i < n; i += 16) {
			a0 = _mm512_add_ps(a0, MUL16(q, r0, i));
			a1 = _mm512_add_ps(a1, MUL16(q, r1, i));
			a2 = _mm512_add_ps(a2, MUL16(q, r2, i));
			a3 = _mm512_add_ps(a3, MUL16(q, r3, i));
		}
		out[t] = hsum16(a0);
		out[t + 1] = hsum16(a1);
		out[t + 2] = hsum16(a2);
		out[t + 3] = hsum16(a3);
	}
	for (; t < n_rows; t++)
		out[t] = dot_avx512(q, rows + t * stride, n);
}

MP_TARGET_AVX512_BASE static void axpy_avx512(float *y, const float *x, float w, int64_t n)
{
	__m512 wv = _mm512_set1_ps(w);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i),
						      _mm512_mul_ps(wv, _mm512_loadu_ps(x + i))));
	for (; i < n; i++)
		y[i] += w * x[i];
}

#define AXPY16(v, w, r, i) _mm512_add_ps((v), _mm512_mul_ps(_mm512_set1_ps(w), _mm512_loadu_ps((r) + (i))))

MP_TARGET_AVX512_BASE static void axpy_rows_avx512(float *y, const float *rows, int64_t stride,
						   const float *w, int64_t n_rows, int64_t n)
{
	int64_t t = 0;
	for (; n % 16 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		for (int64_t i = 0; i < n; i += 16) {
			__m512 v = _mm512_loadu_ps(y + i);
			v = AXPY16(v, w[t], r0, i);
			v = AXPY16(v, w[t + 1], r1, i);
			v = AXPY16(v, w[t + 2], r2, i);
			v = AXPY16(v, w[t + 3], r3, i);
			_mm512_storeu_ps(y + i, v);
		}
	}
	for (; t < n_rows; t++)
		axpy_avx512(y, rows + t * stride, w[t], n);
}

/* Two rows at a time, each read once for the four queries: eight
 * independent sums, written out so that they stay in registers. */
#define HEAD16(k)                                                               \
	do {                                                                    \
		__m512 qv = _mm512_loadu_ps(q##k + i);                          \
		a##k = _mm512_add_ps(a##k, _mm512_mul_ps(qv, x0));              \
		b##k = _mm512_add_ps(b##k, _mm512_mul_ps(qv, x1));              \
	} while (0)

MP_TARGET_AVX512_BASE static void dot_heads_avx512(const float *const *q, const float *rows, int64_t stride,
						   int64_t n_rows, int64_t n, float *const *out)
{
	const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
	int64_t t = 0;
	for (; n % 16 == 0 && t + 2 <= n_rows; t += 2) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride;
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
		for (int64_t i = 0; i < n; i += 16) {
			__m512 x0 = _mm512_loadu_ps(r0 + i), x1 = _mm512_loadu_ps(r1 + i);
			HEAD16(0);
			HEAD16(1);
			HEAD16(2);
			HEAD16(3);
		}
		out[0][t] = hsum16(a0), out[0][t + 1] = hsum16(b0);
		out[1][t] = hsum16(a1), out[1][t + 1] = hsum16(b1);
		out[2][t] = hsum16(a2), out[2][t + 1] = hsum16(b2);
		out[3][t] = hsum16(a3), out[3][t + 1] = hsum16(b3);
	}
	for (; t < n_rows; t++)
		for (int k = 0; k < MP_VF32_HEADS; k++)
			out[k][t] = dot_avx512(q[k], rows + t * stride, n);
}

/* y_k chunk += the four rows' chunks times head k's four weights, in row order. */
#define YHEAD16(k)                                                              \
	do {                                                                    \
		__m512 v = _mm512_loadu_ps(y##k + i);                           \
		v = _mm512_add_ps(v, _mm512_mul_ps(w##k[0], x0));               \
		v = _mm512_add_ps(v, _mm512_mul_ps(w##k[1], x1));               \
		v = _mm512_add_ps(v, _mm512_mul_ps(w##k[2], x2));               \
		v = _mm512_add_ps(v, _mm512_mul_ps(w##k[3], x3));               \
		_mm512_storeu_ps(y##k + i, v);                                  \
	} while (0)

/* Four rows per pass over the four y, the sixteen weights in registers. */
MP_TARGET_AVX512_BASE static void axpy_heads_avx512(float *const *y, const float *rows, int64_t stride,
						    const float *const *w, int64_t n_rows, int64_t n)
{
	float *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];
	int64_t t = 0;
	for (; n % 16 == 0 && t + 4 <= n_rows; t += 4) {
		const float *r0 = rows + t * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
		__m512 w0[4], w1[4], w2[4], w3[4];
		for (int j = 0; j < 4; j++) {
			w0[j] = _mm512_set1_ps(w[0][t + j]);
			w1[j] = _mm512_set1_ps(w[1][t + j]);
			w2[j] = _mm512_set1_ps(w[2][t + j]);
			w3[j] = _mm512_set1_ps(w[3][t + j]);
		}
		for (int64_t i = 0; i < n; i += 16) {
			__m512 x0 = _mm512_loadu_ps(r0 + i), x1 = _mm512_loadu_ps(r1 + i);
			__m512 x2 = _mm512_loadu_ps(r2 + i), x3 = _mm512_loadu_ps(r3 + i);
			YHEAD16(0);
			YHEAD16(1);
			YHEAD16(2);
			YHEAD16(3);
		}
	}
	for (; t < n_rows; t++)
		for (int k = 0; k < MP_VF32_HEADS; k++)
			axpy_avx512(y[k], rows + t * stride, w[k][t], n);
}

static const struct mp_vf32_ops avx512_ops = { dot_avx512, dot_rows_avx512, axpy_avx512, axpy_rows_avx512,
					       dot_heads_avx512, axpy_heads_avx512 };

#endif /* MP_HAVE_X86 */

const struct mp_vf32_ops *mp_vf32_ops(enum mp_kpath path)
{
#if MP_HAVE_X86
	if (path == MP_KPATH_AVX512)
		return &avx512_ops;
	if (path == MP_KPATH_AVX2)
		return &avx2_ops;
#else
	(void)path;
#endif
	return &scalar_ops;
}
