/*
 * test_vecf32.c — attention's f32 kernels (kernels/vecf32.h): the scalar
 * reference sums in the documented order, every SIMD path returns its bits
 * (dot, dot_rows, axpy, axpy_rows; lengths with and without a tail; large,
 * tiny, infinite and NaN values), and the dot is close to a double sum.
 */
#include "cpu.h"
#include "dispatch.h"
#include "fp16.h"
#include "mp_test.h"
#include "kpath_case.h"
#include "rng.h"
#include "vecf32.h"

#define MAXN 700   /* longest vector; MAXROWS + MAXN fits hw/hg */
#define MAXROWS 11

static struct mp_rng rng;
static float xa[MAXN], rows[MAXROWS * (MAXN + 5)];
static float want[MAXN + 16], got[MAXN + 16];
static float qs[MP_VF32_HEADS][MAXN], hw[MP_VF32_HEADS][MAXN + 16], hg[MP_VF32_HEADS][MAXN + 16];

/* A random float: mostly normal-sized, sometimes huge, tiny (subnormal),
 * zero, ±inf or NaN when wild. */
static float rnd(int wild)
{
	uint64_t k = mp_rng_below(&rng, 100);
	float v = (float)(mp_rng_normal(&rng));
	if (!wild || k >= 10)
		return v;
	switch (k) {
	case 0: return v * 1e30f;
	case 1: return v * 1e-41f;
	case 2: return 0.0f;
	case 3: return -0.0f;
	case 4: return mp_rng_below(&rng, 8) == 0 ? INFINITY : v;
	case 5: return mp_rng_below(&rng, 8) == 0 ? NAN : v;
	default: return v * 1e6f;
	}
}

static void fill(float *a, int64_t n, int wild)
{
	for (int64_t i = 0; i < n; i++)
		a[i] = rnd(wild);
}

static int same(float a, float b)
{
	return mp_f32_bits(a) == mp_f32_bits(b) || (isnan(a) && isnan(b));
}

/* The documented order, written out lane by lane. */
static float model_dot(const float *x, const float *y, int64_t n)
{
	float s[16];
	for (int l = 0; l < 16; l++) {
		s[l] = 0.0f;
		for (int64_t i = l; i < n; i += 16) {
			float p = x[i] * y[i];
			s[l] = s[l] + p;
		}
	}
	float t8[8], t4[4], t2[2];
	for (int l = 0; l < 8; l++)
		t8[l] = s[l] + s[l + 8];
	for (int l = 0; l < 4; l++)
		t4[l] = t8[l] + t8[l + 4];
	for (int l = 0; l < 2; l++)
		t2[l] = t4[l] + t4[l + 2];
	return t2[0] + t2[1];
}

static void test_scalar_order(void)
{
	const struct mp_vf32_ops *ops = mp_vf32_ops(MP_KPATH_SCALAR);
	for (int trial = 0; trial < 300; trial++) {
		int64_t n = (int64_t)mp_rng_below(&rng, MAXN + 1);
		fill(xa, n, trial % 3 == 0);
		fill(rows, n, 0);
		float g = ops->dot(xa, rows, n), w = model_dot(xa, rows, n);
		if (!same(g, w)) {
			MP_TEST_FAIL("n=%lld: scalar dot %.9g, documented order %.9g", (long long)n, g, w);
			return;
		}
	}
	CHECK(mp_f32_bits(ops->dot(xa, rows, 0)) == 0);   /* +0 for n = 0 */
}

/* Within the error bound of the order ((n/16 + 6) rounding units of the
 * magnitude sum; 4e-6 covers n = 700) of a double reference. */
static void test_accuracy(void)
{
	const struct mp_vf32_ops *ops = mp_vf32_ops(MP_KPATH_SCALAR);
	for (int trial = 0; trial < 100; trial++) {
		int64_t n = 1 + (int64_t)mp_rng_below(&rng, MAXN);
		fill(xa, n, 0);
		fill(rows, n, 0);
		double ref = 0, mag = 0;
		for (int64_t i = 0; i < n; i++) {
			ref += (double)xa[i] * rows[i];
			mag += fabs((double)xa[i] * rows[i]);
		}
		CHECK_NEAR(ops->dot(xa, rows, n), ref, mag * 4e-6 + 1e-30);
	}
}

/* dot_heads and axpy_heads of path p against the scalar ones, on rows
 * (nr of n, stride apart) already filled. */
static int compare_heads(const struct mp_vf32_ops *ref, const struct mp_vf32_ops *simd, const char *name,
			 int64_t n, int64_t nr, int64_t stride, int wild)
{
	const float *q[MP_VF32_HEADS];
	float *ow[MP_VF32_HEADS], *og[MP_VF32_HEADS];
	for (int k = 0; k < MP_VF32_HEADS; k++) {
		fill(qs[k], n, wild);
		q[k] = qs[k], ow[k] = hw[k], og[k] = hg[k];
	}
	ref->dot_heads(q, rows, stride, nr, n, ow);
	simd->dot_heads(q, rows, stride, nr, n, og);
	for (int k = 0; k < MP_VF32_HEADS; k++)
		for (int64_t t = 0; t < nr; t++)
			if (!same(hw[k][t], hg[k][t])) {
				MP_TEST_FAIL("%s dot_heads n=%lld rows=%lld: query %d row %lld is %.9g, scalar %.9g",
					     name, (long long)n, (long long)nr, k, (long long)t, hg[k][t], hw[k][t]);
				return -1;
			}
	/* weights: the scores just computed (any floats do) */
	for (int k = 0; k < MP_VF32_HEADS; k++) {
		fill(hw[k] + MAXROWS, n, 0);
		memcpy(hg[k] + MAXROWS, hw[k] + MAXROWS, sizeof(float) * (size_t)n);
		ow[k] = hw[k] + MAXROWS, og[k] = hg[k] + MAXROWS;
		q[k] = hw[k];
	}
	ref->axpy_heads(ow, rows, stride, q, nr, n);
	for (int k = 0; k < MP_VF32_HEADS; k++)
		q[k] = hg[k];
	simd->axpy_heads(og, rows, stride, q, nr, n);
	for (int k = 0; k < MP_VF32_HEADS; k++)
		for (int64_t i = 0; i < n; i++)
			if (!same(ow[k][i], og[k][i])) {
				MP_TEST_FAIL("%s axpy_heads n=%lld rows=%lld: query %d element %lld is %.9g, scalar %.9g",
					     name, (long long)n, (long long)nr, k, (long long)i, og[k][i], ow[k][i]);
				return -1;
			}
	return 0;
}

/* One random problem: every kernel of path p against the scalar one. */
static int compare_once(const struct mp_vf32_ops *ref, const struct mp_vf32_ops *simd, const char *name, int wild)
{
	int64_t n = (int64_t)mp_rng_below(&rng, 3) == 0 ? 16 * (int64_t)mp_rng_below(&rng, MAXN / 16 + 1)
							   : (int64_t)mp_rng_below(&rng, MAXN + 1);
	int64_t nr = (int64_t)mp_rng_below(&rng, MAXROWS + 1), stride = n + (int64_t)mp_rng_below(&rng, 5);
	fill(xa, n, wild);
	fill(rows, nr * stride, wild);
	if (!same(ref->dot(xa, rows, n), simd->dot(xa, rows, n))) {
		MP_TEST_FAIL("%s dot n=%lld differs from scalar", name, (long long)n);
		return -1;
	}
	ref->dot_rows(xa, rows, stride, nr, n, want);
	simd->dot_rows(xa, rows, stride, nr, n, got);
	for (int64_t t = 0; t < nr; t++)
		if (!same(want[t], got[t])) {
			MP_TEST_FAIL("%s dot_rows n=%lld rows=%lld: row %lld is %.9g, scalar %.9g", name,
				     (long long)n, (long long)nr, (long long)t, got[t], want[t]);
			return -1;
		}
	float w[MAXROWS];
	fill(w, MAXROWS, 0);
	fill(want, n, 0);
	memcpy(got, want, sizeof(float) * (size_t)n);
	ref->axpy(want, rows, w[0], n);
	simd->axpy(got, rows, w[0], n);
	ref->axpy_rows(want, rows, stride, w, nr, n);
	simd->axpy_rows(got, rows, stride, w, nr, n);
	for (int64_t i = 0; i < n; i++)
		if (!same(want[i], got[i])) {
			MP_TEST_FAIL("%s axpy/axpy_rows n=%lld rows=%lld: element %lld is %.9g, scalar %.9g",
				     name, (long long)n, (long long)nr, (long long)i, got[i], want[i]);
			return -1;
		}
	return compare_heads(ref, simd, name, n, nr, stride, wild);
}

static void same_bits(enum mp_kpath p)
{
	const struct mp_vf32_ops *ref = mp_vf32_ops(MP_KPATH_SCALAR), *simd = mp_vf32_ops(p);
	CHECK(simd != ref);
	for (int trial = 0; trial < 2000; trial++)
		if (compare_once(ref, simd, mp_dispatch_name(p), trial % 4 == 0) < 0)
			return;
}

/* The process-wide table follows MOEPAGER_CPU (tests/kernels_paths.test). */
static void test_process_path(void)
{
	char why[256];
	REQUIRE(mp_dispatch_init(why, sizeof why) == 0);
	printf("kernel path %s\n", why);
	CHECK(mp_vf32() == mp_vf32_ops(mp_dispatch_path()));
}

PATH_CASE(same_bits, AVX2, "this CPU lacks AVX2, FMA and F16C")
PATH_CASE(same_bits, AVX512, "this CPU lacks AVX-512 (F, BW, DQ, VL)")

int main(void)
{
	mp_rng_seed(&rng, 20261203);
	RUN(test_scalar_order);
	RUN(test_accuracy);
	RUN(test_same_bits_AVX2);
	RUN(test_same_bits_AVX512);
	RUN(test_process_path);
	return mp_test_end();
}
