/*
 * vecf32.h — the f32 vector kernels of attention: dot products (scores) and
 * weighted row sums (axpy), on the scalar reference, AVX2 or AVX-512 path.
 *
 * Every path returns the same bits (tests/test_vecf32.c checks it), because
 * every path sums in the same fixed order:
 *
 *   dot(x, y, n): 16 partial sums s[0..15], all starting at +0; element i
 *   adds the rounded product x[i]·y[i] to s[i mod 16], in increasing i (a
 *   multiply, then an add: no fused multiply-add on any path — the scalar
 *   path would need fmaf, slow without hardware FMA, and mixing fused and
 *   unfused rounding would break the bit identity).  Then a fixed tree:
 *   s[l] += s[l+8] for l < 8, s[l] += s[l+4] for l < 4, s[l] += s[l+2] for
 *   l < 2, s[0] += s[1]; the result is s[0].
 *
 *   axpy(y, x, w, n): y[i] = y[i] + w·x[i] (rounded product, rounded sum),
 *   element-wise, so it has no order to fix.
 *
 * The scalar path keeps the 16 sums in an array; AVX2 in two 8-lane
 * registers (lanes 0-7, 8-15); AVX-512 in one 16-lane register.  The files are
 * compiled with -std=c11, where GCC does not contract a·b + c into an FMA.
 */
#ifndef MP_VECF32_H
#define MP_VECF32_H

#include <stdint.h>

#include "dispatch.h"

struct mp_vf32_ops {
	/* Σ x[i]·y[i] in the order above */
	float (*dot)(const float *x, const float *y, int64_t n);
	/* out[t] = dot(q, rows + t·stride, n) for t < n_rows */
	void (*dot_rows)(const float *q, const float *rows, int64_t stride, int64_t n_rows, int64_t n,
			 float *out);
	/* y[i] += w·x[i] */
	void (*axpy)(float *y, const float *x, float w, int64_t n);
	/* y += w[t]·(rows + t·stride) for t = 0 .. n_rows-1 in that order: the
	 * bits of n_rows axpy calls */
	void (*axpy_rows)(float *y, const float *rows, int64_t stride, const float *w, int64_t n_rows,
			  int64_t n);
	/* The same for MP_VF32_HEADS queries at once (each cached row read once
	 * for all of them): out[k][t] = dot(q[k], rows + t·stride, n). */
	void (*dot_heads)(const float *const *q, const float *rows, int64_t stride, int64_t n_rows,
			  int64_t n, float *const *out);
	/* y[k] += w[k][t]·(rows + t·stride) for t in order, k < MP_VF32_HEADS:
	 * the bits of axpy_rows on each k. */
	void (*axpy_heads)(float *const *y, const float *rows, int64_t stride, const float *const *w,
			   int64_t n_rows, int64_t n);
};

/* How many queries dot_heads and axpy_heads take. */
#define MP_VF32_HEADS 4   /* the SIMD kernels are written out for 4 */

/* The kernels of path (the best one at or below it that exists). */
const struct mp_vf32_ops *mp_vf32_ops(enum mp_kpath path);

/* The process-wide path's kernels (mp_dispatch_path()). */
static inline const struct mp_vf32_ops *mp_vf32(void)
{
	return mp_vf32_ops(mp_dispatch_path());
}

#endif
