/* test_matvec — kernels/matvec: y = W·x for every weight type equals the
 * dequantized reference (to float rounding, with x quantized the same way),
 * is bit-identical for 1..4 threads and for each row against its own vec_dot
 * call, works on every dispatch path the CPU has and on the process-wide
 * path (MOEPAGER_CPU, see kernels_paths.test); the batched sgemm path agrees
 * with the f32 reference and with matvec; several matrices in one region
 * (mp_matvec_multi) give each matrix's mp_matvec_q bits; the input cache
 * quantizes once per activation type; bad shapes and types are refused. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "dispatch.h"
#include "err.h"
#include "fp16.h"
#include "matvec.h"
#include "quant.h"
#include "rng.h"
#include "threads.h"
#include "types.h"
#include "mp_test.h"

static const enum mp_type types[] = {
	MP_TYPE_F32, MP_TYPE_F16, MP_TYPE_BF16, MP_TYPE_Q4_0, MP_TYPE_Q4_1, MP_TYPE_Q5_0,
	MP_TYPE_Q5_1, MP_TYPE_Q8_0, MP_TYPE_Q2_K, MP_TYPE_Q3_K, MP_TYPE_Q4_K, MP_TYPE_Q5_K,
	MP_TYPE_Q6_K,
};
#define N_TYPES (sizeof types / sizeof types[0])

enum { ROWS = 37, COLS = 512, M = 5 };

struct fixture {
	enum mp_type t;
	struct mp_mat w;
	void *wq;                  /* quantized weights */
	float wd[ROWS * COLS];     /* dequantized weights */
	float x[M * COLS];         /* M input vectors */
	float xd[COLS];            /* x[0] through its vec_dot type and back */
};

static struct mp_rng rng;

static void setup(struct fixture *f, enum mp_type t)
{
	f->t = t;
	uint64_t rb;
	REQUIRE(mp_type_row_bytes(t, COLS, &rb) == 0);
	f->wq = mp_malloc(rb * ROWS);
	REQUIRE(f->wq);
	static float src[ROWS * COLS];
	for (int i = 0; i < ROWS * COLS; i++)
		src[i] = (float)mp_rng_normal(&rng) * 0.05f;
	for (int i = 0; i < M * COLS; i++)
		f->x[i] = (float)mp_rng_normal(&rng);
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	ops->quantize(src, f->wq, ROWS * COLS);
	ops->dequant(f->wq, f->wd, ROWS * COLS);
	f->w = (struct mp_mat){ .data = f->wq, .type = t, .rows = ROWS, .cols = COLS };
	enum mp_type at = mp_type_info(t)->vec_dot_type;
	static uint8_t aq[COLS * 4];
	mp_quant_ops(at)->quantize(f->x, aq, COLS);
	mp_quant_ops(at)->dequant(aq, f->xd, COLS);
}

/* Reference row r: Σ wd·v in double, and Σ|wd·v| for the tolerance. */
static double ref_row(const struct fixture *f, const float *v, int r, double *mag)
{
	double s = 0, m = 0;
	for (int k = 0; k < COLS; k++) {
		double p = (double)f->wd[r * COLS + k] * v[k];
		s += p;
		m += fabs(p);
	}
	*mag = m;
	return s;
}

/* Q4_1/Q5_1 use the f16-rounded activation sum s of Q8_1 (see test_quant). */
static double extra_rel(enum mp_type t)
{
	return mp_type_info(t)->vec_dot_type == MP_TYPE_Q8_1 ? 2e-3 : 1e-5;
}

static void check_against_ref(const struct fixture *f, const float *y, const char *what)
{
	for (int r = 0; r < ROWS; r++) {
		double mag, want = ref_row(f, f->xd, r, &mag);
		if (!(fabs(y[r] - want) <= extra_rel(f->t) * mag + 1e-6)) {
			MP_TEST_FAIL("%s %s row %d: %.7g, reference %.7g", mp_type_name(f->t), what, r,
				     y[r], want);
			return;
		}
	}
}

static void test_matvec_all_types(void)
{
	struct mp_threads *pools[4] = { NULL };
	for (int n = 2; n <= 4; n++)
		REQUIRE(mp_threads_create(n, &pools[n - 1]) == 0);
	/* a path this CPU lacks is a skipped part, not a silent pass */
	for (int p = 0; p < MP_KPATH_COUNT; p++)
		if (!mp_dispatch_supported((enum mp_kpath)p, mp_cpu_features())) {
			char name[96];
			snprintf(name, sizeof name, "test_matvec_all_types on %s", mp_dispatch_name((enum mp_kpath)p));
			mp_test_skip_part(name, "this CPU lacks the path");
		}
	static struct fixture f;
	for (size_t k = 0; k < N_TYPES; k++) {
		setup(&f, types[k]);
		for (int p = 0; p < MP_KPATH_COUNT; p++) {
			if (!mp_dispatch_supported((enum mp_kpath)p, mp_cpu_features()))
				continue;
			float y1[ROWS], yn[ROWS];
			REQUIRE(mp_matvec(NULL, (enum mp_kpath)p, &f.w, f.x, y1) == 0);
			check_against_ref(&f, y1, mp_dispatch_name((enum mp_kpath)p));
			/* one vec_dot per row, whatever the thread count */
			mp_vec_dot_fn dot = mp_quant_vec_dot(f.t, (enum mp_kpath)p);
			static uint8_t aq[COLS * 4];
			enum mp_type at = mp_type_info(f.t)->vec_dot_type;
			mp_quant_ops(at)->quantize(f.x, aq, COLS);
			uint64_t rb;
			mp_type_row_bytes(f.t, COLS, &rb);
			for (int r = 0; r < ROWS; r++) {
				float want = dot(COLS, (const uint8_t *)f.wq + r * rb, at == MP_TYPE_F32 ? (const void *)f.x : aq);
				if (memcmp(&want, &y1[r], 4) != 0) {
					MP_TEST_FAIL("%s: row %d differs from its vec_dot", mp_type_name(f.t), r);
					break;
				}
			}
			for (int n = 2; n <= 4; n++) {
				REQUIRE(mp_matvec(pools[n - 1], (enum mp_kpath)p, &f.w, f.x, yn) == 0);
				if (memcmp(y1, yn, sizeof y1) != 0)
					MP_TEST_FAIL("%s %s: %d threads differ from 1", mp_type_name(f.t),
						     mp_dispatch_name((enum mp_kpath)p), n);
			}
			/* pre-quantized input: the same bits */
			int64_t xb = mp_matvec_x_bytes(f.t, COLS);
			REQUIRE(xb > 0 && xb <= (int64_t)sizeof aq);
			static uint8_t xq[COLS * 4];
			REQUIRE(mp_matvec_quantize_x(f.t, f.x, COLS, xq) == 0);
			REQUIRE(mp_matvec_q(pools[2], (enum mp_kpath)p, &f.w, xq, yn) == 0);
			if (memcmp(y1, yn, sizeof y1) != 0)
				MP_TEST_FAIL("%s: mp_matvec_q differs from mp_matvec", mp_type_name(f.t));
		}
		mp_free(f.wq);
	}
	for (int n = 2; n <= 4; n++)
		mp_threads_destroy(pools[n - 1]);
}

/* The process-wide path (MOEPAGER_CPU) runs and gives the reference. */
static void test_dispatch_path(void)
{
	static char why[256];   /* static: SKIP_CASE keeps the pointer */
	int rc = mp_dispatch_init(why, sizeof why);
	if (rc == -MP_EUNAVAIL)
		SKIP_CASE(why);
	REQUIRE(rc == 0);
	printf("note: kernel path %s\n", why);
	static struct fixture f;
	for (size_t k = 0; k < N_TYPES; k++) {
		setup(&f, types[k]);
		float y[ROWS];
		REQUIRE(mp_matvec(NULL, mp_dispatch_path(), &f.w, f.x, y) == 0);
		check_against_ref(&f, y, "dispatch path");
		mp_free(f.wq);
	}
}

/* Batched: sgemm over dequantized tiles vs the f32 reference (tight) and vs
 * matvec (within matvec's activation quantization). */
static void test_matmul(void)
{
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(3, &pool) == 0);
	static struct fixture f;
	for (size_t k = 0; k < N_TYPES; k++) {
		setup(&f, types[k]);
		static float y[M * ROWS];
		REQUIRE(mp_matmul(pool, &f.w, f.x, M, y) == 0);
		int bad = 0;
		for (int i = 0; i < M && !bad; i++) {
			float ymv[ROWS];
			REQUIRE(mp_matvec(pool, MP_KPATH_SCALAR, &f.w, f.x + i * COLS, ymv) == 0);
			for (int r = 0; r < ROWS && !bad; r++) {
				double mag, want = ref_row(&f, f.x + i * COLS, r, &mag);
				double got = y[i * ROWS + r];
				if (!(fabs(got - want) <= 1e-5 * mag + 1e-6)) {
					MP_TEST_FAIL("%s matmul vector %d row %d: %.7g, f32 reference %.7g",
						     mp_type_name(f.t), i, r, got, want);
					bad = 1;
				}
				/* Q8 activations: |error| ≤ Σ|w|·amax/254 ≲ 2% of Σ|w·x| */
				if (!(fabs(got - ymv[r]) <= 0.03 * mag + 1e-5)) {
					MP_TEST_FAIL("%s vector %d row %d: matmul %.7g, matvec %.7g",
						     mp_type_name(f.t), i, r, got, ymv[r]);
					bad = 1;
				}
			}
		}
		mp_free(f.wq);
	}
	mp_threads_destroy(pool);
}

/* mp_matmul dequantizes with the process's path: every path it can take
 * gives the same Y bit for bit (the SIMD dequantizers equal the reference). */
static void test_matmul_paths_identical(void)
{
	static char why[256];
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(2, &pool) == 0);
	static struct fixture f;
	static const char *const names[] = { "scalar", "avx2", "avx512" };
	for (size_t k = 0; k < N_TYPES; k++) {
		setup(&f, types[k]);
		static float y0[M * ROWS], y1[M * ROWS];
		setenv("MOEPAGER_CPU", "scalar", 1);
		REQUIRE(mp_dispatch_init(why, sizeof why) == 0);
		REQUIRE(mp_matmul(pool, &f.w, f.x, M, y0) == 0);
		for (int p = 1; p < MP_KPATH_COUNT; p++) {
			setenv("MOEPAGER_CPU", names[p], 1);
			if (mp_dispatch_init(why, sizeof why) != 0) {
				mp_test_skip_part(names[p], why);
				continue;
			}
			REQUIRE(mp_matmul(pool, &f.w, f.x, M, y1) == 0);
			if (memcmp(y0, y1, sizeof y0) != 0)
				MP_TEST_FAIL("%s: mp_matmul with %s dequantization differs from scalar",
					     mp_type_name(f.t), names[p]);
		}
		mp_free(f.wq);
	}
	unsetenv("MOEPAGER_CPU");
	REQUIRE(mp_dispatch_init(why, sizeof why) == 0);
	mp_threads_destroy(pool);
}

/* The crossover: 2 for f32; with a SIMD dequantizer no higher than with the
 * scalar reference (lower for the K-quants, whose scalar one was slowest); the same on every path for a type without
 * one (IQ2_XXS); mp_matmul_crossover follows the process's path. */
static void test_crossover(void)
{
	for (int p = 0; p < MP_KPATH_COUNT; p++)
		CHECK(mp_matmul_crossover_path(MP_TYPE_F32, (enum mp_kpath)p) == 2);
	CHECK(mp_matmul_crossover_path(MP_TYPE_IQ2_XXS, MP_KPATH_AVX2) ==
	      mp_matmul_crossover_path(MP_TYPE_IQ2_XXS, MP_KPATH_SCALAR));
	for (size_t k = 1; k < N_TYPES; k++) {
		enum mp_type t = types[k];
		int64_t sc = mp_matmul_crossover_path(t, MP_KPATH_SCALAR);
		CHECK(sc >= 1);
		CHECK_EQ_INT(mp_matmul_crossover(t), mp_matmul_crossover_path(t, mp_dispatch_path()));
#if defined(__x86_64__)
		int64_t simd = mp_matmul_crossover_path(t, MP_KPATH_AVX2);
		int k_quant = mp_type_info(t)->block_elems == 256;
		if (!(simd >= 1 && (k_quant ? simd < sc : simd <= sc)))
			MP_TEST_FAIL("%s: crossover %lld with AVX2 dequantization, %lld with scalar",
				     mp_type_name(t), (long long)simd, (long long)sc);
#endif
	}
}

/* The direct batched path is bit-identical to matvec per vector for every
 * type (any thread count); auto picks it below the crossover and sgemm above;
 * X·W (not Wᵀ) against the dequantized reference. */
static void test_matmul_direct_auto_xw(void)
{
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(3, &pool) == 0);
	static struct fixture f;
	for (size_t k = 0; k < N_TYPES; k++) {
		setup(&f, types[k]);
		static float y[M * ROWS], ya[M * ROWS], ys[M * ROWS];
		REQUIRE(mp_matmul_q(pool, MP_KPATH_SCALAR, &f.w, f.x, M, y) == 0);
		for (int i = 0; i < M; i++) {
			float ymv[ROWS];
			REQUIRE(mp_matvec(NULL, MP_KPATH_SCALAR, &f.w, f.x + i * COLS, ymv) == 0);
			if (memcmp(ymv, y + i * ROWS, sizeof ymv) != 0) {
				MP_TEST_FAIL("%s: mp_matmul_q vector %d differs from mp_matvec",
					     mp_type_name(f.t), i);
				break;
			}
		}
		/* gate and up in one pass: each as mp_matmul_q alone */
		static float p1[M * ROWS], p2[M * ROWS];
		REQUIRE(mp_matmul_auto_pair(pool, MP_KPATH_SCALAR, &f.w, &f.w, f.x, 1, p1, p2) == 0);
		CHECK(memcmp(p1, y, sizeof(float) * ROWS) == 0 && memcmp(p2, y, sizeof(float) * ROWS) == 0);
		int64_t c = mp_matmul_crossover(f.t);
		CHECK(c >= 1);
		int64_t below = c - 1 < M ? c - 1 : M;   /* the direct path below the crossover */
		REQUIRE(mp_matmul_auto(pool, MP_KPATH_SCALAR, &f.w, f.x, below, ya) == 0);
		CHECK(memcmp(ya, y, sizeof(float) * ROWS * (size_t)below) == 0);
		if (c <= M) {
			REQUIRE(mp_matmul_auto(pool, MP_KPATH_SCALAR, &f.w, f.x, c, ya) == 0);
			REQUIRE(mp_matmul(pool, &f.w, f.x, c, ys) == 0);
			CHECK(memcmp(ya, ys, sizeof(float) * ROWS * (size_t)c) == 0);
		}
		/* X·W: X is M × ROWS, Y is M × COLS */
		static float xr[M * ROWS], yx[M * COLS];
		for (int i = 0; i < M * ROWS; i++)
			xr[i] = f.x[i];
		REQUIRE(mp_matmul_xw(&f.w, xr, M, yx) == 0);
		for (int i = 0; i < M; i++)
			for (int j = 0; j < COLS; j += 17) {
				double want = 0, mag = 0;
				for (int r = 0; r < ROWS; r++) {
					want += (double)xr[i * ROWS + r] * f.wd[r * COLS + j];
					mag += fabs((double)xr[i * ROWS + r] * f.wd[r * COLS + j]);
				}
				if (!(fabs(yx[i * COLS + j] - want) <= 1e-5 * mag + 1e-6)) {
					MP_TEST_FAIL("%s: X·W [%d][%d] %.7g, reference %.7g", mp_type_name(f.t), i,
						     j, yx[i * COLS + j], want);
					i = M;
					break;
				}
			}
		mp_free(f.wq);
	}
	mp_threads_destroy(pool);
}

/* A matrix so wide that a 1 MiB chunk holds few rows: several chunks. */
static void test_matmul_tiles(void)
{
	enum { WC = 65536, WR = 37, WM = 2 };
	mp_f16 *w = mp_malloc_array((size_t)WR * WC, sizeof(mp_f16));
	float *x = mp_malloc_array((size_t)WM * WC, sizeof(float));
	float *y = mp_malloc_array((size_t)WM * WR, sizeof(float));
	REQUIRE(w && x && y);
	for (size_t i = 0; i < (size_t)WR * WC; i++)
		w[i] = mp_f32_to_f16((float)mp_rng_normal(&rng) * 0.05f);
	for (size_t i = 0; i < (size_t)WM * WC; i++)
		x[i] = (float)mp_rng_normal(&rng);
	struct mp_mat m = { .data = w, .type = MP_TYPE_F16, .rows = WR, .cols = WC };
	struct mp_threads *pool;
	REQUIRE(mp_threads_create(2, &pool) == 0);
	REQUIRE(mp_matmul(pool, &m, x, WM, y) == 0);
	for (int i = 0; i < WM; i++)
		for (int r = 0; r < WR; r++) {
			double s = 0, mag = 0;
			for (int k = 0; k < WC; k++) {
				double p = (double)mp_f16_to_f32(w[(size_t)r * WC + k]) * x[(size_t)i * WC + k];
				s += p;
				mag += fabs(p);
			}
			if (!(fabs(y[i * WR + r] - s) <= 1e-5 * mag)) {
				MP_TEST_FAIL("tiled matmul vector %d row %d: %.7g, reference %.7g", i, r,
					     y[i * WR + r], s);
				i = WM;
				break;
			}
		}
	mp_threads_destroy(pool);
	mp_free(w);
	mp_free(x);
	mp_free(y);
}

/* Several matrices of different types and odd shapes in one region: each
 * output bit for bit mp_matvec_q's, for 1..4 threads, for more threads than
 * rows, and for more items than one region takes; nothing past an output
 * written. */
enum { N_ITEMS = 9 };
static const struct { enum mp_type t; int rows, cols; } items_spec[N_ITEMS] = {
	{ MP_TYPE_Q4_K, 37, 512 }, { MP_TYPE_Q4_K, 17, 512 }, { MP_TYPE_Q6_K, 1, 256 },
	{ MP_TYPE_Q5_0, 33, 512 }, { MP_TYPE_F32, 3, 64 },   { MP_TYPE_Q8_0, 0, 64 },
	{ MP_TYPE_F16, 19, 96 },   { MP_TYPE_Q4_1, 2, 128 }, { MP_TYPE_BF16, 16, 32 },
};

static void multi_check(struct mp_threads *pool, const struct mp_matvec_item *it, int n,
			float *const *want, const char *what)
{
	static float ys[3 * MP_MATVEC_MULTI_MAX][40];
	struct mp_matvec_item cp[3 * MP_MATVEC_MULTI_MAX];
	REQUIRE(n <= 3 * MP_MATVEC_MULTI_MAX);
	for (int i = 0; i < n; i++) {
		cp[i] = it[i];
		cp[i].y = ys[i];
		for (int r = 0; r < 40; r++)
			ys[i][r] = -777.0f;
	}
	REQUIRE(mp_matvec_multi(pool, mp_dispatch_path(), cp, n) == 0);
	for (int i = 0; i < n; i++) {
		int rows = (int)it[i].w.rows;
		if (memcmp(ys[i], want[i], sizeof(float) * (size_t)rows) != 0)
			MP_TEST_FAIL("%s, %d threads: item %d (%s, %d rows) differs from mp_matvec_q", what,
				     mp_threads_count(pool), i, mp_type_name(it[i].w.type), rows);
		if (ys[i][rows] != -777.0f)
			MP_TEST_FAIL("%s: item %d written past its %d rows", what, i, rows);
	}
}

static void test_matvec_multi(void)
{
	static uint8_t wq[N_ITEMS][37 * 512 * 4], xq[N_ITEMS][512 * 4];
	static float x[512], want[N_ITEMS][40];
	struct mp_matvec_item it[3 * MP_MATVEC_MULTI_MAX];
	float *wantp[3 * MP_MATVEC_MULTI_MAX];
	for (int k = 0; k < 512; k++)
		x[k] = (float)mp_rng_normal(&rng);
	for (int i = 0; i < N_ITEMS; i++) {
		enum mp_type t = items_spec[i].t;
		int rows = items_spec[i].rows, cols = items_spec[i].cols;
		static float src[37 * 512];
		for (int k = 0; k < rows * cols; k++)
			src[k] = (float)mp_rng_normal(&rng) * 0.05f;
		mp_quant_ops(t)->quantize(src, wq[i], (int64_t)rows * cols);
		REQUIRE(mp_matvec_quantize_x(t, x, cols, xq[i]) == 0);
		const void *in = mp_type_info(t)->vec_dot_type == MP_TYPE_F32 ? (const void *)x : xq[i];
		it[i] = (struct mp_matvec_item){ { wq[i], t, rows, cols }, in, want[i] };
		REQUIRE(mp_matvec_q(NULL, mp_dispatch_path(), &it[i].w, in, want[i]) == 0);
		wantp[i] = want[i];
	}
	struct mp_threads *pool[9] = { NULL };
	for (int n = 2; n <= 8; n++)
		REQUIRE(mp_threads_create(n, &pool[n]) == 0);
	for (int n = 1; n <= 4; n++)
		multi_check(pool[n], it, N_ITEMS, wantp, "nine items");
	/* more threads than rows: one and three rows only */
	struct mp_matvec_item few[2] = { it[2], it[4] };
	float *fewp[2] = { want[2], want[4] };
	multi_check(pool[8], few, 2, fewp, "four rows on eight threads");
	/* more items than one region takes (several regions, the same bits) */
	int n = 0;
	for (; n + N_ITEMS <= 2 * MP_MATVEC_MULTI_MAX + 5; n += N_ITEMS)
		for (int i = 0; i < N_ITEMS; i++) {
			it[n + i] = it[i];
			wantp[n + i] = want[i];
		}
	multi_check(pool[2], it, n, wantp, "several regions");
	multi_check(pool[2], it, 0, wantp, "no items");
	/* refused before anything is written */
	struct mp_matvec_item bad[2] = { it[0], it[1] };
	float y0[40];
	bad[0].y = y0;
	y0[0] = -777.0f;
	bad[1].xq = NULL;
	CHECK_EQ_INT(mp_matvec_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EARG);
	bad[1] = it[1];
	bad[1].w.cols = 100;
	CHECK_EQ_INT(mp_matvec_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EFORMAT);
	CHECK(y0[0] == -777.0f);
	CHECK_EQ_INT(mp_matvec_multi(pool[2], MP_KPATH_COUNT, it, 1), -MP_EUNAVAIL);
	for (int k = 2; k <= 8; k++)
		mp_threads_destroy(pool[k]);
}

/* Several direct products in one region (mp_matmul_q_multi), each on
 * vectors picked by pointer from one batch quantized as a single vector and
 * written to scattered rows: bit for bit mp_matmul_q on the gathered vectors,
 * for 1..4 and 8 threads; nothing else written; bad items refused first. */
enum { QM_N = 7, QM_X = 12, QM_LD = 45 };
static const struct { enum mp_type t; int rows, cols, m; } qm_spec[QM_N] = {
	{ MP_TYPE_Q4_K, 37, 512, 5 }, { MP_TYPE_Q6_K, 1, 512, 12 }, { MP_TYPE_Q5_0, 33, 512, 3 },
	{ MP_TYPE_F32, 3, 512, 7 },   { MP_TYPE_Q8_0, 20, 512, 0 }, { MP_TYPE_F16, 19, 512, 1 },
	{ MP_TYPE_Q4_K, 40, 512, 11 },
};

static void qmulti_run(struct mp_threads *pool, const struct mp_matmul_q_item *it, float (*want)[QM_X][QM_LD],
		       float (*got)[QM_X][QM_LD])
{
	for (int i = 0; i < QM_N; i++)
		for (int t = 0; t < QM_X; t++)
			for (int r = 0; r < QM_LD; r++)
				got[i][t][r] = -777.0f;
	REQUIRE(mp_matmul_q_multi(pool, mp_dispatch_path(), it, QM_N) == 0);
	if (memcmp(got, want, sizeof(float) * QM_N * QM_X * QM_LD) != 0)
		MP_TEST_FAIL("%d threads: mp_matmul_q_multi differs from mp_matmul_q (or wrote "
			     "outside its rows)", mp_threads_count(pool));
}

static void test_matmul_q_multi(void)
{
	static float x[QM_X * 512], gx[QM_X * 512], gy[QM_X * 40];
	static float want[QM_N][QM_X][QM_LD], got[QM_N][QM_X][QM_LD];
	static uint8_t wq[QM_N][40 * 512 * 4], xall[QM_N][QM_X * 512 * 4], row[512 * 4];
	static const void *xp[QM_N][QM_X];
	static uint32_t yrow[QM_N][QM_X];
	struct mp_matmul_q_item it[QM_N];
	for (int k = 0; k < QM_X * 512; k++)
		x[k] = (float)mp_rng_normal(&rng);
	for (int i = 0; i < QM_N; i++) {
		enum mp_type t = qm_spec[i].t;
		int rows = qm_spec[i].rows, cols = qm_spec[i].cols, m = qm_spec[i].m;
		static float src[40 * 512];
		for (int k = 0; k < rows * cols; k++)
			src[k] = (float)mp_rng_normal(&rng) * 0.05f;
		mp_quant_ops(t)->quantize(src, wq[i], (int64_t)rows * cols);
		int64_t xb = mp_matvec_x_bytes(t, cols);
		REQUIRE(xb > 0 && mp_matvec_x_bytes(t, (int64_t)cols * QM_X) == xb * QM_X);
		REQUIRE(mp_matvec_quantize_x(t, x, (int64_t)cols * QM_X, xall[i]) == 0);
		int f32 = mp_type_info(t)->vec_dot_type == MP_TYPE_F32;
		for (int v = 0; v < m; v++) {   /* vector v: batch row (v·5 + i) mod QM_X, to row yrow */
			int src_row = (v * 5 + i) % QM_X;
			memcpy(gx + (size_t)v * cols, x + (size_t)src_row * cols, sizeof(float) * (size_t)cols);
			xp[i][v] = f32 ? (const void *)(x + (size_t)src_row * cols) : xall[i] + (size_t)src_row * (size_t)xb;
			yrow[i][v] = (uint32_t)((v * 7 + 3) % QM_X);
			mp_matvec_quantize_x(t, x + (size_t)src_row * cols, cols, row);
			if (!f32 && memcmp(row, xp[i][v], (size_t)xb) != 0)
				MP_TEST_FAIL("%s: the batch quantized as one vector differs from row %d "
					     "quantized alone", mp_type_name(t), src_row);
		}
		struct mp_mat w = { wq[i], t, rows, cols };
		REQUIRE(mp_matmul_q(NULL, mp_dispatch_path(), &w, gx, m, gy) == 0);
		for (int tk = 0; tk < QM_X; tk++)
			for (int r = 0; r < QM_LD; r++)
				want[i][tk][r] = -777.0f;
		for (int v = 0; v < m; v++)
			memcpy(want[i][yrow[i][v]], gy + (size_t)v * rows, sizeof(float) * (size_t)rows);
		/* (v·7 + 3) mod 12 repeats no row: 7 is prime to 12 */
		it[i] = (struct mp_matmul_q_item){ w, m, xp[i], got[i][0], QM_LD, yrow[i] };
	}
	it[5].yrow = NULL;   /* one item in plain order */
	memcpy(want[5][0], want[5][yrow[5][0]], sizeof(float) * 19);
	if (yrow[5][0] != 0)
		for (int r = 0; r < QM_LD; r++)
			want[5][yrow[5][0]][r] = -777.0f;
	struct mp_threads *pool[9] = { NULL };
	for (int n = 2; n <= 8; n++)
		REQUIRE(mp_threads_create(n, &pool[n]) == 0);
	for (int n = 1; n <= 4; n++)
		qmulti_run(pool[n], it, want, got);
	qmulti_run(pool[8], it, want, got);
	/* refused before anything is written */
	struct mp_matmul_q_item bad[2] = { it[0], it[1] };
	const void *nulls[QM_X] = { NULL };
	got[0][yrow[0][0]][0] = -777.0f;
	bad[1].xq = nulls;
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EARG);
	bad[1] = it[1];
	bad[1].ldy = 0;
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EFORMAT);
	bad[1] = it[1];
	bad[1].w.cols = 100;
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EFORMAT);
	bad[1] = it[1];
	bad[1].m = -1;
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), bad, 2), -MP_EARG);
	CHECK(got[0][yrow[0][0]][0] == -777.0f);
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], MP_KPATH_COUNT, it, 1), -MP_EUNAVAIL);
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), NULL, 1), -MP_EARG);
	CHECK_EQ_INT(mp_matmul_q_multi(pool[2], mp_dispatch_path(), it, 0), 0);
	for (int k = 2; k <= 8; k++)
		mp_threads_destroy(pool[k]);
}

/* The layer-input cache: one quantization per activation type, the same
 * bytes as mp_matvec_quantize_x, x itself for f32, redone after a reset. */
static void test_xcache(void)
{
	static float x[512], x2[512];
	static uint8_t ref[512 * 4];
	for (int k = 0; k < 512; k++) {
		x[k] = (float)mp_rng_normal(&rng);
		x2[k] = -x[k] * 0.5f;
	}
	struct mp_matvec_xcache c = { 0 };
	const void *p1, *p2, *p3;
	CHECK_EQ_INT(mp_matvec_xcache_get(&c, MP_TYPE_Q4_K, &p1), -MP_EARG);   /* no vector yet */
	mp_matvec_xcache_reset(&c, x, 512);
	REQUIRE(mp_matvec_xcache_get(&c, MP_TYPE_Q4_K, &p1) == 0);
	REQUIRE(mp_matvec_xcache_get(&c, MP_TYPE_Q6_K, &p2) == 0);
	CHECK(p1 == p2);   /* both Q8_K: quantized once */
	CHECK_EQ_INT(c.n, 1);
	mp_matvec_quantize_x(MP_TYPE_Q4_K, x, 512, ref);
	CHECK(memcmp(p1, ref, (size_t)mp_matvec_x_bytes(MP_TYPE_Q4_K, 512)) == 0);
	REQUIRE(mp_matvec_xcache_get(&c, MP_TYPE_F32, &p3) == 0);
	CHECK(p3 == x);
	static const enum mp_type others[] = { MP_TYPE_Q5_0, MP_TYPE_Q4_1, MP_TYPE_F16, MP_TYPE_BF16 };
	for (size_t i = 0; i < 4; i++) {
		REQUIRE(mp_matvec_xcache_get(&c, others[i], &p3) == 0);
		mp_matvec_quantize_x(others[i], x, 512, ref);
		if (memcmp(p3, ref, (size_t)mp_matvec_x_bytes(others[i], 512)) != 0)
			MP_TEST_FAIL("%s: cached input differs from mp_matvec_quantize_x", mp_type_name(others[i]));
	}
	CHECK_EQ_INT(c.n, 5);
	mp_matvec_xcache_reset(&c, x2, 512);
	REQUIRE(mp_matvec_xcache_get(&c, MP_TYPE_Q6_K, &p2) == 0);
	mp_matvec_quantize_x(MP_TYPE_Q6_K, x2, 512, ref);
	CHECK(memcmp(p2, ref, (size_t)mp_matvec_x_bytes(MP_TYPE_Q6_K, 512)) == 0);
	CHECK_EQ_INT(mp_matvec_xcache_get(&c, MP_TYPE_TQ1_0, &p2), -MP_ETYPE);
	mp_matvec_xcache_free(&c);
	mp_matvec_xcache_free(&c);   /* twice is fine */
}

static void test_errors(void)
{
	float x[COLS] = { 0 }, y[ROWS];
	struct mp_mat w = { .data = x, .type = MP_TYPE_Q4_K, .rows = 1, .cols = 100 };
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_SCALAR, &w, x, y), -MP_EFORMAT);
	CHECK_EQ_INT(mp_matmul(NULL, &w, x, 1, y), -MP_EFORMAT);
	w.type = MP_TYPE_Q8_K;   /* activation-only: no weight dot */
	w.cols = 256;
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_SCALAR, &w, x, y), -MP_ETYPE);
	CHECK(mp_matvec_x_bytes(MP_TYPE_Q8_K, 256) < 0);
	w.type = MP_TYPE_TQ1_0;
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_SCALAR, &w, x, y), -MP_ETYPE);
	CHECK_EQ_INT(mp_matvec_quantize_x(MP_TYPE_TQ1_0, x, 256, y), -MP_ETYPE);
	CHECK_EQ_INT(mp_matvec_x_bytes(MP_TYPE_Q4_K, 7168), 7168 / 256 * 292);
	CHECK_EQ_INT(mp_matvec_x_bytes(MP_TYPE_Q8_0, 64), 68);
	CHECK_EQ_INT(mp_matvec_x_bytes(MP_TYPE_F32, 64), 256);
	w.type = MP_TYPE_F32;
	w.rows = -1;
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_SCALAR, &w, x, y), -MP_EFORMAT);
	/* a path the CPU lacks is refused, not run into SIGILL */
	w.rows = 1;
	for (int p = 0; p < MP_KPATH_COUNT; p++)
		if (!mp_dispatch_supported((enum mp_kpath)p, mp_cpu_features()))
			CHECK_EQ_INT(mp_matvec(NULL, (enum mp_kpath)p, &w, x, y), -MP_EUNAVAIL);
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_COUNT, &w, x, y), -MP_EUNAVAIL);
	/* empty shapes are fine */
	w.rows = 0;
	CHECK_EQ_INT(mp_matvec(NULL, MP_KPATH_SCALAR, &w, x, y), 0);
	CHECK_EQ_INT(mp_matmul(NULL, &w, x, 3, y), 0);
}

int main(void)
{
	mp_rng_seed(&rng, 99);
	RUN(test_matvec_all_types);
	RUN(test_dispatch_path);
	RUN(test_matmul);
	RUN(test_matmul_tiles);
	RUN(test_matmul_direct_auto_xw);
	RUN(test_matvec_multi);
	RUN(test_matmul_q_multi);
	RUN(test_xcache);
	RUN(test_matmul_paths_identical);
	RUN(test_crossover);
	RUN(test_errors);
	return mp_test_end();
}
