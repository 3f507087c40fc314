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
 * mp_matmul is the prefill path: Y = X·Wᵀ for m vectors at once; the pool's
 * threads each take chunks of W's rows, dequantize one to f32 in an
 * L2-sized buffer and multiply it by all the vectors with single-threaded
 * OpenBLAS sgemm (OpenBLAS's own threads stay off).  Its results differ from matvec's by the activation quantization
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

/* One matrix of a multi-matrix product: y = W·x, x already in the vec_dot
 * type of W's type (mp_matvec_quantize_x; the f32 vector itself when that
 * type is F32). */
struct mp_matvec_item {
	struct mp_mat w;
	const void *xq;            /* the input, as above */
	float *y;                  /* [w.rows] */
};

/* Items per parallel region of mp_matvec_multi (more run in several). */
#define MP_MATVEC_MULTI_MAX 64

/* y_i = W_i·x_i for every item i < n in one parallel region: the rows of all
 * the matrices are cut into chunks handed out from one counter, so the
 * threads share the work of every matrix at once and wake once.  Each row is
 * one vec_dot call on the same inputs as mp_matvec_q, so every y_i is
 * bit-identical to mp_matvec_q(W_i, x_i) whatever the thread count.  Items
 * may differ in type and shape; no y may overlap another item's x or y.
 * Returns as mp_matvec (-MP_EARG for a NULL input or output); on error no
 * row is written. */
int mp_matvec_multi(struct mp_threads *pool, enum mp_kpath path,
		    const struct mp_matvec_item *items, int n);

/* One vector quantized at most once per activation type that its consumers
 * need (the layer input of the router, the shared expert and the routed
 * experts' gate and up): a small cache by vec_dot type.  A value type kept
 * by its user; buffers are allocated at the first use of a type. */
#define MP_MATVEC_XCACHE_TYPES 6   /* more than there are activation types */
struct mp_matvec_xcache {
	const float *x;            /* the vector (cols floats), NULL: none yet */
	int64_t cols;
	int n;                     /* types quantized for the current x */
	uint32_t vtype[MP_MATVEC_XCACHE_TYPES]; /* vec_dot type of entry i */
	void *buf[MP_MATVEC_XCACHE_TYPES];      /* its bytes (mp_matvec_x_bytes) */
	size_t cap[MP_MATVEC_XCACHE_TYPES];     /* bytes allocated in buf[i] */
};

/* Starts a cache over x (cols floats; x must stay unchanged until the next
 * reset).  Keeps the buffers allocated before. */
void mp_matvec_xcache_reset(struct mp_matvec_xcache *c, const float *x, int64_t cols);

/* *xq = x in the vec_dot type of wtype, quantized at the first request for
 * that type since the reset (x itself for f32 activations).  Returns 0,
 * -MP_ETYPE, -ENOMEM, or -MP_EARG when the cache holds no vector or is full
 * of other types. */
int mp_matvec_xcache_get(struct mp_matvec_xcache *c, uint32_t wtype, const void **xq);

/* Frees the buffers; the cache may be used again after a reset. */
void mp_matvec_xcache_free(struct mp_matvec_xcache *c);

/* Y[i][r] = Σ_k W[r][k]·X[i][k] for i < m: X is m × cols, Y is m × rows
 * (row-major, ld = rows).  Returns as mp_matvec. */
int mp_matmul(struct mp_threads *pool, const struct mp_mat *w, const float *x, int64_t m,
	      float *y);

/* The same product by the direct path: each X[i] quantized once to the
 * vec_dot type, each row of W dotted with all m of them while it is in cache.
 * Bit-identical to m calls of mp_matvec (the same kernel on the same inputs),
 * so a batch of one gives exactly the decode path's numbers. */
int mp_matmul_q(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		const float *x, int64_t m, float *y);

/* One matrix of a multi-matrix direct product: Y = X·Wᵀ for m vectors that
 * are already in the vec_dot type of W's type (each where xq[t] points: rows
 * of one quantized batch, picked by token), output t at y + t·ldy, or at
 * y + yrow[t]·ldy when yrow is not NULL (scattered to its token's slot). */
struct mp_matmul_q_item {
	struct mp_mat w;
	int64_t m;                 /* vectors */
	const void *const *xq;     /* [m]: the inputs, as mp_matvec_quantize_x writes them */
	float *y;
	int64_t ldy;               /* floats from one output row to the next (>= w.rows) */
	const uint32_t *yrow;      /* [m] or NULL */
};

/* Every item's product in one parallel region (at most MP_MATVEC_MULTI_MAX
 * items per region; more run in several): the rows of all the matrices are
 * cut into chunks of about the same rows × vectors, handed out from one
 * counter.  Each output is one vec_dot call on the same inputs as
 * mp_matmul_q, so the results are bit-identical to it whatever the thread
 * count.  No y may overlap an input or another item's y.  Returns as
 * mp_matvec (-MP_EARG for a NULL pointer or m < 0); on error no output is
 * written. */
int mp_matmul_q_multi(struct mp_threads *pool, enum mp_kpath path,
		      const struct mp_matmul_q_item *items, int n);

/* Below this many vectors the direct path beats dequantize + sgemm for
 * weights of type wtype (measured by bench/matmul; f32 weights need no
 * dequantization and cross over earlier; a SIMD dequantizer moves it down).
 * _path: for the kernel path given; without: for mp_dispatch_path(), the
 * path mp_matmul's dequantization runs. */
int64_t mp_matmul_crossover_path(uint32_t wtype, enum mp_kpath path);
int64_t mp_matmul_crossover(uint32_t wtype);

/* mp_matmul_q when m < mp_matmul_crossover(w->type), else mp_matmul. */
int mp_matmul_auto(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		   const float *x, int64_t m, float *y);

/* Y = X·Wᵀ and Y2 = X·W2ᵀ on the same X (an expert's gate and up): below
 * the crossover, with the same type and columns, one quantization of X and
 * one parallel region over the rows of both (results as two mp_matmul_q);
 * else two mp_matmul_auto. */
int mp_matmul_auto_pair(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
			const struct mp_mat *w2, const float *x, int64_t m, float *y, float *y2);

/* Y = X·W (not Wᵀ): X is m × rows, Y is m × cols (ld = cols); W is
 * dequantized once.  For a weight block used the other way round (the old
 * MLA layout's key absorption).  Returns as mp_matvec. */
int mp_matmul_xw(const struct mp_mat *w, const float *x, int64_t m, float *y);

/* C = alpha·A·op(B) + beta·C in f32, row-major: A is m × k (lda), op(B) is
 * Bᵀ (B n × k, ldb) when trans_b, else B (k × n, ldb); C is m × n (ldc).
 * Single-threaded OpenBLAS on the calling thread (callers run several at
 * once from the pool's workers). */
void mp_sgemm(int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
	      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);


#endif
