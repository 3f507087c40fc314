/*
 * matvec.h — matrix-vector and batched matrix products over weights of any
 * type with kernels (FORMATS.md §2.1: row r of W holds the weights of output
 * r, blocks run along the input dimension).
 *
 * mp_matvec is the decode path: y = W·x, x quantized once to the weight
 * type's vec_dot type, rows shared among the pool's threads.  Each row's dot
 * product is computed by exactly one thread with the same kernel, so y is
 * bit-identical whatever the number of threads.
 *
 * mp_matmul is the prefill path: Y = X·Wᵀ for m vectors at once, with row
 * tiles of W dequantized to f32 (in parallel) and multiplied by OpenBLAS
 * sgemm.  Its results differ from matvec's by the activation quantization
 * matvec does (and float rounding): compare with a tolerance.
 */
#ifndef MP_MATVEC_H
#define MP_MATVEC_H

#include <stdint.h>

#include "dispatch.h"
#include "threads.h"

/* A weight matrix as the kernels see it. */
struct mp_mat {
	const void *data;   /* rows × row_bytes, row-major (ne0 fastest) */
	uint32_t type;      /* GGUF type id (types.h) */
	int64_t rows;       /* output features (ne1) */
	int64_t cols;       /* input features (ne0), a multiple of the block size */
};

/* y[r] = Σ_k W[r][k]·x[k] for r < rows, with the vec_dot kernels of path (or
 * the best lower one the type has); normally path = mp_dispatch_path().
 * pool may be NULL (caller only).  Returns 0, -MP_ETYPE (no kernels for the
 * type), -MP_EFORMAT (cols not a multiple of the block size, negative shape),
 * -MP_EUNAVAIL (this CPU cannot run path) or -ENOMEM. */
int mp_matvec(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
	      const float *x, float *y);

/* The same with x already in the vec_dot type of w's type (for several
 * matrices sharing one input, e.g. an expert's gate and up): xq as written by
 * mp_matvec_quantize_x.  Same results as mp_matvec. */
int mp_matvec_q(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		const void *xq, float *y);

/* Bytes that x of cols elements takes in the vec_dot type of wtype (the
 * buffer mp_matvec_quantize_x fills), or a negative error as mp_matvec. */
int64_t mp_matvec_x_bytes(uint32_t wtype, int64_t cols);

/* Quantizes x (cols floats) into xq for weights of wtype. */
int mp_matvec_quantize_x(uint32_t wtype, const float *x, int64_t cols, void *xq);

/* Y[i][r] = Σ_k W[r][k]·X[i][k] for i < m: X is m × cols, Y is m × rows
 * (row-major, ld = rows).  Returns as mp_matvec. */
int mp_matmul(struct mp_threads *pool, const struct mp_mat *w, const float *x, int64_t m,
	      float *y);

#endif
