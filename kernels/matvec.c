/*
 * matvec.c — y = W·x over the kernel table, and the sgemm-based batched
 * product (matvec.h has the contracts).
 *
 * Matvec work split: rows are handed out in chunks from an atomic counter, so
 * a thread that the OS preempts does not hold up the others; which thread
 * computes a row never changes its value (one vec_dot call per row, on the
 * same inputs).  Batched: W is cut into fixed chunks of rows small enough
 * for L2; each worker dequantizes a chunk and multiplies it by all the
 * vectors with single-threaded sgemm.
 */
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "err.h"
#include "matvec.h"
#include "quant.h"
#include "types.h"

/* OpenBLAS runs single-threaded, called from our pool's workers (each on its
 * own chunk of rows): the -t threads dequantize and multiply, so no OpenBLAS
 * thread ever spins idle beside the pool (its threads yield in a loop while
 * they wait, measured at a quarter of the prefill time on 2 cores) and
 * ThreadSanitizer never meets OpenBLAS's uninstrumented hand-off flags. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_serial(void)
{
	openblas_set_num_threads(1);
}

enum {
	ROW_CHUNK = 16,                 /* rows per matvec work item */
	TILE_BYTES = 1 << 20,           /* f32 bytes of one worker's chunk (L2-sized) */
	MP_MATMUL_MAX_THREADS = 1024,   /* -t's upper bound */
};

/* Checks the shape; *row_bytes gets the bytes of one row. */
static int check_mat(const struct mp_mat *w, uint64_t *row_bytes)
{
	if (w->rows < 0 || w->cols < 0)
		return -MP_EFORMAT;
	const struct mp_quant_ops *ops = mp_quant_ops(w->type);
	if (!ops || !ops->vec_dot[MP_KPATH_SCALAR])
		return -MP_ETYPE;
	return mp_type_row_bytes(w->type, (uint64_t)w->cols, row_bytes);
}

/* Rows r < rows are W's; with a second matrix (rows2 > 0, same type and
 * columns: an expert's gate and up), rows rows .. rows+rows2-1 are W2's, so
 * both go through one parallel region on one quantized input. */
struct matmul_q_job {
	mp_vec_dot_fn dot;
	const uint8_t *w, *w2;     /* first rows */
	uint64_t row_bytes;
	int64_t rows, rows2, cols, m;
	const uint8_t *xq;         /* m activations in the vec_dot type */
	uint64_t x_bytes;          /* bytes of one of them */
	float *y, *y2;             /* m × rows, m × rows2 */
	_Atomic int64_t next;      /* next unclaimed chunk start */
};

static void matmul_q_worker(void *ctx, int ith, int nth)
{
	(void)ith;
	(void)nth;
	struct matmul_q_job *j = ctx;
	int64_t total = j->rows + j->rows2;
	for (;;) {
		int64_t r0 = atomic_fetch_add_explicit(&j->next, ROW_CHUNK, memory_order_relaxed);
		if (r0 >= total)
			return;
		int64_t r1 = r0 + ROW_CHUNK < total ? r0 + ROW_CHUNK : total;
		for (int64_t r = r0; r < r1; r++) {
			int second = r >= j->rows;
			int64_t rr = second ? r - j->rows : r, ld = second ? j->rows2 : j->rows;
			const uint8_t *wr = (second ? j->w2 : j->w) + (uint64_t)rr * j->row_bytes;
			float *y = second ? j->y2 : j->y;
			for (int64_t i = 0; i < j->m; i++)
				y[i * ld + rr] = j->dot(j->cols, wr, j->xq + (uint64_t)i * j->x_bytes);
		}
	}
}

int64_t mp_matvec_x_bytes(uint32_t wtype, int64_t cols)
{
	const struct mp_type_info *ti = mp_type_info(wtype);
	const struct mp_quant_ops *ops = mp_quant_ops(wtype);
	if (!ti || !ops || !ops->vec_dot[MP_KPATH_SCALAR] || cols < 0)
		return -MP_ETYPE;
	const struct mp_quant_ops *aops = mp_quant_ops(ti->vec_dot_type);
	uint64_t abytes;
	if (!aops || !aops->quantize)
		return -MP_ETYPE;
	int rc = mp_type_row_bytes(ti->vec_dot_type, (uint64_t)cols, &abytes);
	return rc < 0 ? rc : (int64_t)abytes;
}

int mp_matvec_quantize_x(uint32_t wtype, const float *x, int64_t cols, void *xq)
{
	int64_t bytes = mp_matvec_x_bytes(wtype, cols);
	if (bytes < 0)
		return (int)bytes;
	mp_quant_ops(mp_type_info(wtype)->vec_dot_type)->quantize(x, xq, cols);
	return 0;
}

int mp_matvec_q(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		const void *xq, float *y)
{
	uint64_t row_bytes;
	int rc = check_mat(w, &row_bytes);
	if (rc < 0)
		return rc;
	if (!mp_dispatch_supported(path, mp_cpu_features()))
		return -MP_EUNAVAIL;   /* would fault with an illegal instruction */
	struct matmul_q_job j = {   /* one vector: the batched job with m = 1 */
		.dot = mp_quant_vec_dot(w->type, path), .w = w->data, .row_bytes = row_bytes,
		.rows = w->rows, .cols = w->cols, .m = 1, .xq = xq, .y = y,
	};
	atomic_init(&j.next, 0);
	mp_threads_run(pool, matmul_q_worker, &j);
	return 0;
}

int mp_matvec(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
	      const float *x, float *y)
{
	uint64_t row_bytes;
	int rc = check_mat(w, &row_bytes);
	if (rc < 0)
		return rc;
	if (!mp_dispatch_supported(path, mp_cpu_features()))
		return -MP_EUNAVAIL;
	if (mp_type_info(w->type)->vec_dot_type == MP_TYPE_F32)
		return mp_matvec_q(pool, path, w, x, y);
	int64_t bytes = mp_matvec_x_bytes(w->type, w->cols);
	if (bytes < 0)
		return (int)bytes;
	void *xq = mp_malloc((size_t)bytes);
	if (!xq)
		return -ENOMEM;
	mp_matvec_quantize_x(w->type, x, w->cols, xq);
	rc = mp_matvec_q(pool, path, w, xq, y);
	mp_free(xq);
	return rc;
}

/* ---- several direct products in one region ------------------------------------ */

/* Chunks numbered across the items: item i owns chunks end[i-1] .. end[i]-1
 * of rows[i] rows each: QM_DOTS / m rows, at most ROW_CHUNK and at least
 * one, so a chunk of many vectors is still about QM_DOTS dots (a counter
 * claim per row costs more than it balances) and one vector takes matvec's
 * chunks.  A thread's claims only grow, so its item index only moves
 * forward. */
enum { QM_DOTS = 512 };
struct qmulti_job {
	const struct mp_matmul_q_item *it;
	int n;
	mp_vec_dot_fn dot[MP_MATVEC_MULTI_MAX];
	uint64_t row_bytes[MP_MATVEC_MULTI_MAX];
	int64_t rows[MP_MATVEC_MULTI_MAX];  /* rows per chunk of item i */
	int64_t end[MP_MATVEC_MULTI_MAX];   /* chunks of items 0..i */
	_Atomic int64_t next;               /* next unclaimed chunk */
};

static void qmulti_worker(void *ctx, int ith, int nth)
{
	(void)ith;
	(void)nth;
	struct qmulti_job *j = ctx;
	int i = 0;
	for (;;) {
		int64_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		if (c >= j->end[j->n - 1])
			return;
		while (c >= j->end[i])
			i++;
		const struct mp_matmul_q_item *it = &j->it[i];
		int64_t r0 = (c - (i ? j->end[i - 1] : 0)) * j->rows[i];
		int64_t r1 = r0 + j->rows[i] < it->w.rows ? r0 + j->rows[i] : it->w.rows;
		for (int64_t r = r0; r < r1; r++) {
			const uint8_t *wr = (const uint8_t *)it->w.data + (uint64_t)r * j->row_bytes[i];
			for (int64_t t = 0; t < it->m; t++) {
				int64_t o = (it->yrow ? (int64_t)it->yrow[t] : t) * it->ldy;
				it->y[o + r] = j->dot[i](it->w.cols, wr, it->xq[t]);
			}
		}
	}
}

static int qitem_check(const struct mp_matmul_q_item *it)
{
	uint64_t row_bytes;
	int rc = check_mat(&it->w, &row_bytes);
	if (rc < 0)
		return rc;
	if (it->m < 0 || it->ldy < it->w.rows)
		return it->m < 0 ? -MP_EARG : -MP_EFORMAT;
	if (it->m > 0 && (!it->xq || !it->y))
		return -MP_EARG;
	for (int64_t t = 0; t < it->m; t++)
		if (!it->xq[t])
			return -MP_EARG;
	return 0;
}

/* At most MP_MATVEC_MULTI_MAX checked items in one region. */
static void qmulti_region(struct mp_threads *pool, enum mp_kpath path,
			  const struct mp_matmul_q_item *items, int n)
{
	struct qmulti_job j = { .it = items, .n = n };
	int64_t chunks = 0;
	for (int i = 0; i < n; i++) {
		const struct mp_matmul_q_item *it = &items[i];
		check_mat(&it->w, &j.row_bytes[i]);   /* checked by the caller */
		j.dot[i] = mp_quant_vec_dot(it->w.type, path);
		int64_t rows = it->m ? QM_DOTS / it->m : ROW_CHUNK;
		rows = rows > ROW_CHUNK ? ROW_CHUNK : rows;
		j.rows[i] = rows < 1 ? 1 : rows;
		chunks += it->m ? (it->w.rows + j.rows[i] - 1) / j.rows[i] : 0;
		j.end[i] = chunks;
	}
	atomic_init(&j.next, 0);
	if (chunks > 0)
		mp_threads_run(pool, qmulti_worker, &j);
}

int mp_matmul_q_multi(struct mp_threads *pool, enum mp_kpath path,
		      const struct mp_matmul_q_item *items, int n)
{
	if (n < 0 || (n > 0 && !items))
		return -MP_EARG;
	if (!mp_dispatch_supported(path, mp_cpu_features()))
		return -MP_EUNAVAIL;
	for (int i = 0; i < n; i++) {   /* every item checked before any is run */
		int rc = qitem_check(&items[i]);
		if (rc < 0)
			return rc;
	}
	for (int i0 = 0; i0 < n; i0 += MP_MATVEC_MULTI_MAX)
		qmulti_region(pool, path, items + i0,
			      n - i0 < MP_MATVEC_MULTI_MAX ? n - i0 : MP_MATVEC_MULTI_MAX);
	return 0;
}

/* A matvec item as a direct product of one vector. */
static struct mp_matmul_q_item one_vector(const struct mp_matvec_item *it)
{
	return (struct mp_matmul_q_item){ it->w, 1, &it->xq, it->y, it->w.rows, NULL };
}

int mp_matvec_multi(struct mp_threads *pool, enum mp_kpath path,
		    const struct mp_matvec_item *items, int n)
{
	if (n < 0 || (n > 0 && !items))
		return -MP_EARG;
	if (!mp_dispatch_supported(path, mp_cpu_features()))
		return -MP_EUNAVAIL;
	for (int i = 0; i < n; i++) {   /* every item checked before any is run */
		struct mp_matmul_q_item q = one_vector(&items[i]);
		int rc = qitem_check(&q);
		if (rc < 0)
			return rc;
	}
	struct mp_matmul_q_item q[MP_MATVEC_MULTI_MAX];
	for (int i0 = 0; i0 < n; i0 += MP_MATVEC_MULTI_MAX) {
		int k = n - i0 < MP_MATVEC_MULTI_MAX ? n - i0 : MP_MATVEC_MULTI_MAX;
		for (int i = 0; i < k; i++)
			q[i] = one_vector(&items[i0 + i]);
		qmulti_region(pool, path, q, k);
	}
	return 0;
}

/* ---- one vector in the activation types its consumers need ------------------ */

void mp_matvec_xcache_reset(struct mp_matvec_xcache *c, const float *x, int64_t cols)
{
	c->x = x;
	c->cols = cols;
	c->n = 0;
}

int mp_matvec_xcache_get(struct mp_matvec_xcache *c, uint32_t wtype, const void **xq)
{
	int64_t bytes = mp_matvec_x_bytes(wtype, c->cols);
	if (bytes < 0)
		return (int)bytes;
	if (!c->x)
		return -MP_EARG;
	uint32_t vt = mp_type_info(wtype)->vec_dot_type;
	if (vt == MP_TYPE_F32) {
		*xq = c->x;
		return 0;
	}
	for (int i = 0; i < c->n; i++)
		if (c->vtype[i] == vt) {
			*xq = c->buf[i];
			return 0;
		}
	if (c->n == MP_MATVEC_XCACHE_TYPES)
		return -MP_EARG;
	int i = c->n;
	if (c->cap[i] < (size_t)bytes) {
		void *p = mp_realloc(c->buf[i], (size_t)bytes);
		if (!p)
			return -ENOMEM;
		c->buf[i] = p;
		c->cap[i] = (size_t)bytes;
	}
	mp_matvec_quantize_x(wtype, c->x, c->cols, c->buf[i]);
	c->vtype[i] = vt;
	c->n++;
	*xq = c->buf[i];
	return 0;
}

void mp_matvec_xcache_free(struct mp_matvec_xcache *c)
{
	for (int i = 0; i < MP_MATVEC_XCACHE_TYPES; i++) {
		mp_free(c->buf[i]);
		c->buf[i] = NULL;
		c->cap[i] = 0;
	}
	c->n = 0;
	c->x = NULL;
}

/* One product Y = X·Wᵀ cut into fixed chunks of W's rows: a worker claims a
 * chunk, dequantizes it into its own cache-sized buffer and multiplies it by
 * all the vectors with a single-threaded sgemm.  The chunks do not depend on
 * the thread count, so neither does Y. */
struct matmul_job {
	mp_dequant_fn dequant;     /* NULL: f32 rows are multiplied in place */
	const uint8_t *w;          /* first row */
	uint64_t row_bytes;
	int64_t rows, cols, m, chunk;
	const float *x;            /* m × cols */
	float *y;                  /* m × rows */
	float **buf;               /* [threads]: chunk × cols floats each */
	_Atomic int64_t next;      /* next unclaimed chunk start */
};

static void matmul_worker(void *ctx, int ith, int nth)
{
	(void)nth;
	struct matmul_job *j = ctx;
	for (;;) {
		int64_t r0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
		if (r0 >= j->rows)
			return;
		int64_t n = j->rows - r0 < j->chunk ? j->rows - r0 : j->chunk;
		const float *b = (const float *)(j->w + (uint64_t)r0 * j->row_bytes);
		if (j->dequant) {
			for (int64_t r = 0; r < n; r++)
				j->dequant(j->w + (uint64_t)(r0 + r) * j->row_bytes, j->buf[ith] + r * j->cols,
					   j->cols);
			b = j->buf[ith];
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)j->m, (int)n, (int)j->cols,
			    1.0f, j->x, (int)j->cols, b, (int)j->cols, 0.0f, j->y + r0, (int)j->rows);
	}
}

int mp_matmul(struct mp_threads *pool, const struct mp_mat *w, const float *x, int64_t m,
	      float *y)
{
	uint64_t row_bytes;
	int rc = check_mat(w, &row_bytes);
	if (rc < 0)
		return rc;
	if (m < 0 || m > INT_MAX || w->rows > INT_MAX || w->cols > INT_MAX)
		return -MP_EFORMAT;   /* cblas takes int dimensions */
	if (m == 0 || w->rows == 0)
		return 0;
	pthread_once(&blas_once, blas_serial);
	if (w->cols == 0) {
		for (int64_t i = 0; i < m; i++)
			memset(y + i * w->rows, 0, (size_t)w->rows * sizeof(float));
		return 0;
	}
	int64_t chunk = TILE_BYTES / (w->cols * (int64_t)sizeof(float));
	chunk = chunk < 16 ? 16 : chunk;
	chunk = chunk > w->rows ? w->rows : chunk;
	int nth = mp_threads_count(pool);
	float *bufs[MP_MATMUL_MAX_THREADS];
	if (nth > MP_MATMUL_MAX_THREADS)
		return -MP_EARG;
	struct matmul_job j = {
		.dequant = w->type == MP_TYPE_F32 ? NULL : mp_quant_dequant(w->type, mp_dispatch_path()),
		.w = w->data, .row_bytes = row_bytes, .rows = w->rows, .cols = w->cols, .m = m,
		.chunk = chunk, .x = x, .y = y, .buf = bufs,
	};
	int i = 0;
	for (; j.dequant && i < nth; i++)
		if (!(bufs[i] = mp_malloc_array((size_t)chunk * (size_t)w->cols, sizeof(float))))
			break;
	if (j.dequant && i < nth)
		rc = -ENOMEM;
	else {
		atomic_init(&j.next, 0);
		mp_threads_run(pool, matmul_worker, &j);
	}
	while (j.dequant && i-- > 0)
		mp_free(bufs[i]);
	return rc;
}

/* ---- the direct batched path ------------------------------------------------- */

/* The direct path for w and, when w2 is not NULL, w2 on the same input. */
static int matmul_q2(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		     const struct mp_mat *w2, const float *x, int64_t m, float *y, float *y2)
{
	uint64_t row_bytes;
	int rc = check_mat(w, &row_bytes);
	if (rc < 0)
		return rc;
	if (m < 0)
		return -MP_EFORMAT;
	if (!mp_dispatch_supported(path, mp_cpu_features()))
		return -MP_EUNAVAIL;
	if (m == 0)
		return 0;
	int64_t xb = mp_matvec_x_bytes(w->type, w->cols);
	if (xb < 0)
		return (int)xb;
	int f32 = mp_type_info(w->type)->vec_dot_type == MP_TYPE_F32;
	uint8_t *xq = NULL;
	if (!f32) {
		size_t bytes;
		if (__builtin_mul_overflow((size_t)xb, (size_t)m, &bytes) || !(xq = mp_malloc(bytes)))
			return -ENOMEM;
		for (int64_t i = 0; i < m; i++)
			mp_matvec_quantize_x(w->type, x + i * w->cols, w->cols, xq + (uint64_t)i * (uint64_t)xb);
	}
	struct matmul_q_job j = {
		.dot = mp_quant_vec_dot(w->type, path), .w = w->data, .row_bytes = row_bytes,
		.rows = w->rows, .cols = w->cols, .m = m,
		.xq = f32 ? (const uint8_t *)x : xq, .x_bytes = (uint64_t)xb, .y = y,
	};
	if (w2) {
		j.w2 = w2->data;
		j.rows2 = w2->rows;
		j.y2 = y2;
	}
	atomic_init(&j.next, 0);
	if (j.rows + j.rows2 > 0)
		mp_threads_run(pool, matmul_q_worker, &j);
	mp_free(xq);
	return 0;
}

int mp_matmul_q(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		const float *x, int64_t m, float *y)
{
	return matmul_q2(pool, path, w, NULL, x, m, y, NULL);
}

int mp_matmul_auto_pair(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
			const struct mp_mat *w2, const float *x, int64_t m, float *y, float *y2)
{
	if (m < mp_matmul_crossover(w->type) && w2->type == w->type && w2->cols == w->cols) {
		int rc = check_mat(w2, &(uint64_t){ 0 });
		return rc < 0 ? rc : matmul_q2(pool, path, w, w2, x, m, y, y2);
	}
	int rc = mp_matmul_auto(pool, path, w, x, m, y);
	return rc < 0 ? rc : mp_matmul_auto(pool, path, w2, x, m, y2);
}

int64_t mp_matmul_crossover_path(uint32_t wtype, enum mp_kpath path)
{
	/* bench/matmul on the 2-core development machine (bench/README.md,
	 * 2026-12-03, an expert-sized 2048 × 7168 matrix, 2 threads, loaded):
	 * f32 weights need no conversion and sgemm wins from 1-2 vectors.
	 * With a SIMD dequantizer (4-10 G elements/s per thread) the direct int8
	 * loop stays ahead up to 16-32 vectors for the 32-element types and F16,
	 * 32-64 for Q8_0 and the K-quants (three runs; the first m from which
	 * sgemm wins at every larger m: F16 32, Q8_0 64, Q4_0 16, Q5_0 32, Q5_1
	 * 16, Q4_K 64, Q5_K 32, Q6_K 64).  With the scalar reference (no SIMD
	 * path, or the i-quants) the dequantization of the whole matrix is the
	 * price: 64 for the 32-element types and 128-256 for 256-element blocks. */
	const struct mp_type_info *ti = mp_type_info(wtype);
	if (wtype == MP_TYPE_F32 || !ti)
		return 2;
	const struct mp_quant_ops *ops = mp_quant_ops(wtype);
	int simd = ops && mp_quant_dequant(wtype, path) != ops->dequant;
	if (!simd)
		return ti->block_elems >= 256 ? 192 : 64;
	switch (wtype) {
	case MP_TYPE_F16: case MP_TYPE_BF16:
	case MP_TYPE_Q4_0: case MP_TYPE_Q4_1: case MP_TYPE_Q5_0: case MP_TYPE_Q5_1:
	case MP_TYPE_Q5_K:
		return 32;
	default:   /* Q8_0, Q2_K, Q3_K, Q4_K, Q6_K */
		return 64;
	}
}

int64_t mp_matmul_crossover(uint32_t wtype)
{
	return mp_matmul_crossover_path(wtype, mp_dispatch_path());
}

int mp_matmul_auto(struct mp_threads *pool, enum mp_kpath path, const struct mp_mat *w,
		   const float *x, int64_t m, float *y)
{
	if (m < mp_matmul_crossover(w->type))
		return mp_matmul_q(pool, path, w, x, m, y);
	return mp_matmul(pool, w, x, m, y);
}

int mp_matmul_xw(const struct mp_mat *w, const float *x, int64_t m, float *y)
{
	uint64_t row_bytes;
	int rc = check_mat(w, &row_bytes);
	if (rc < 0)
		return rc;
	if (m < 0 || m > INT_MAX || w->rows > INT_MAX || w->cols > INT_MAX)
		return -MP_EFORMAT;
	if (m == 0 || w->cols == 0)
		return 0;
	float *buf = mp_malloc_array((size_t)w->rows * (size_t)w->cols + 1, sizeof(float));
	if (!buf)
		return -ENOMEM;
	mp_dequant_fn dq = mp_quant_dequant(w->type, mp_dispatch_path());
	for (int64_t r = 0; r < w->rows; r++)
		dq((const uint8_t *)w->data + (uint64_t)r * row_bytes, buf + r * w->cols, w->cols);
	mp_sgemm(0, m, w->cols, w->rows, 1.0f, x, w->rows, buf, w->cols, 0.0f, y, w->cols);
	mp_free(buf);
	return 0;
}

void mp_sgemm(int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
	      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	pthread_once(&blas_once, blas_serial);
	if (m <= 0 || n <= 0)
		return;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
		    (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

