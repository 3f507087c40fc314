/* test_quant_simd — every SIMD vec_dot (AVX2, AVX-512) against the scalar
 * reference, forcing each path directly through the table: random block
 * bytes, quantized data, odd lengths and edge cases (zero and negative-zero
 * scales, all-max and all-min codes, ±127/−128 activations, f16 and bf16
 * subnormals).  K-quant, Q4_0, Q4_1, Q5_0 and Q5_1 paths must match the
 * scalar result bit for bit (exact integer sums, combined in the scalar
 * order); Q8_0 and the float
 * types to float rounding.  One case per path and check; a path the CPU
 * lacks is a skipped case. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "blocks.h"
#include "cpu.h"
#include "dispatch.h"
#include "fp16.h"
#include "quant.h"
#include "rng.h"
#include "types.h"
#include "mp_test.h"
#include "kpath_case.h"

static const enum mp_type simd_types[] = {
	MP_TYPE_F32, MP_TYPE_F16, MP_TYPE_BF16, MP_TYPE_Q8_0, MP_TYPE_Q4_0, MP_TYPE_Q4_1,
	MP_TYPE_Q5_0, MP_TYPE_Q5_1, MP_TYPE_Q2_K, MP_TYPE_Q3_K, MP_TYPE_Q4_K, MP_TYPE_Q5_K,
	MP_TYPE_Q6_K,
};
#define N_SIMD (sizeof simd_types / sizeof simd_types[0])

enum { MAXN = 8 * MP_QK_K };

static struct mp_rng rng;

/* A random finite f16 (any exponent but all-ones: covers subnormals). */
static mp_f16 rand_f16(void)
{
	for (;;) {
		mp_f16 h = (mp_f16)mp_rng_u64(&rng);
		if ((h & 0x7c00) != 0x7c00)
			return h;
	}
}

/* Byte offsets of the f16 fields of one block of t (−1 ends the list). */
static const int *f16_fields(enum mp_type t)
{
	static const int q8_0[] = { 0, -1 }, q2k[] = { 80, 82, -1 }, q3k[] = { 108, -1 },
			 q45k[] = { 0, 2, -1 }, q6k[] = { 208, -1 }, none[] = { -1 };
	switch (t) {
	case MP_TYPE_Q8_0: case MP_TYPE_Q4_0: case MP_TYPE_Q5_0: return q8_0;   /* d first */
	case MP_TYPE_Q2_K: return q2k;
	case MP_TYPE_Q3_K: return q3k;
	case MP_TYPE_Q4_K: case MP_TYPE_Q5_K: return q45k;
	case MP_TYPE_Q4_1: case MP_TYPE_Q5_1: case MP_TYPE_Q8_1: return q45k;   /* d, then m or s */
	case MP_TYPE_Q6_K: return q6k;
	default: return none;
	}
}

/* Fills n elements of weight type t with random bytes, then finite scales
 * (float types: random finite values, subnormals included). */
static void random_weights(enum mp_type t, uint8_t *buf, int64_t n)
{
	const struct mp_type_info *ti = mp_type_info(t);
	size_t bytes = (size_t)n / ti->block_elems * ti->block_bytes;
	for (size_t i = 0; i < bytes; i++)
		buf[i] = (uint8_t)mp_rng_u64(&rng);
	if (t == MP_TYPE_F32) {
		float *f = (float *)buf;
		for (int64_t i = 0; i < n; i++)
			f[i] = (float)mp_rng_normal(&rng);
		return;
	}
	if (t == MP_TYPE_F16) {
		for (int64_t i = 0; i < n; i++) {
			mp_f16 h = rand_f16();
			memcpy(buf + 2 * i, &h, 2);
		}
		return;
	}
	if (t == MP_TYPE_BF16) {   /* exponents kept moderate: no overflow */
		for (int64_t i = 0; i < n; i++) {
			mp_bf16 h = (mp_bf16)((buf[2 * i] & 0x80) << 8 | (uint16_t)mp_rng_below(&rng, 0x4100));
			memcpy(buf + 2 * i, &h, 2);
		}
		return;
	}
	const int *f = f16_fields(t);
	for (int64_t b = 0; b < n / ti->block_elems; b++)
		for (int k = 0; f[k] >= 0; k++) {
			mp_f16 h = rand_f16();
			memcpy(buf + b * ti->block_bytes + f[k], &h, 2);
		}
}

/* Random activations of the vec_dot type of t: random codes (−128..127) with
 * consistent sums, random finite scales. */
static void random_acts(enum mp_type at, uint8_t *buf, int64_t n)
{
	if (at == MP_TYPE_Q8_K) {
		struct mp_block_q8_K *y = (struct mp_block_q8_K *)buf;
		for (int64_t b = 0; b < n / MP_QK_K; b++) {
			y[b].d = (float)(mp_rng_uniform(&rng) - 0.5) * 0.01f;
			for (int e = 0; e < MP_QK_K; e++)
				y[b].qs[e] = (int8_t)mp_rng_u64(&rng);
			for (int g = 0; g < 16; g++) {
				int s = 0;
				for (int k = 0; k < 16; k++)
					s += y[b].qs[16 * g + k];
				y[b].bsums[g] = (int16_t)s;
			}
		}
		return;
	}
	random_weights(at, buf, n);   /* F32/F16/BF16/Q8_0 */
}

/* |scalar − simd| within float rounding: Σ|w·a| from the dequantized values. */
static double rounding_bound(enum mp_type t, const void *w, const void *a, int64_t n)
{
	enum mp_type at = mp_type_info(t)->vec_dot_type;
	static float dw[MAXN], da[MAXN];
	mp_quant_ops(t)->dequant(w, dw, n);
	mp_quant_ops(at)->dequant(a, da, n);
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m += fabs((double)dw[i] * da[i]);
	return 4e-6 * m + 1e-30;
}

static int exact_type(enum mp_type t)
{
	return mp_type_info(t)->block_elems == MP_QK_K || t == MP_TYPE_Q4_0 || t == MP_TYPE_Q4_1 ||
	       t == MP_TYPE_Q5_0 || t == MP_TYPE_Q5_1;
}

/* Compares path p with scalar on (w, a); what names the case in messages. */
static void compare(enum mp_type t, enum mp_kpath p, const void *w, const void *a, int64_t n,
		    const char *what)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	mp_vec_dot_fn simd = ops->vec_dot[p];
	if (!simd) {
		MP_TEST_FAIL("%s: no %s vec_dot", mp_type_name(t), mp_dispatch_name(p));
		return;
	}
	float want = ops->vec_dot[MP_KPATH_SCALAR](n, w, a);
	float got = simd(n, w, a);
	if (exact_type(t)) {
		if (mp_f32_bits(got) != mp_f32_bits(want) && !(isnan(got) && isnan(want)))
			MP_TEST_FAIL("%s %s, %s, n=%lld: %.9g, scalar %.9g (must be identical)",
				     mp_type_name(t), mp_dispatch_name(p), what, (long long)n, got, want);
		return;
	}
	double tol = rounding_bound(t, w, a, n);
	if (!(fabs((double)got - want) <= tol))
		MP_TEST_FAIL("%s %s, %s, n=%lld: %.9g, scalar %.9g (tolerance %.3g)", mp_type_name(t),
			     mp_dispatch_name(p), what, (long long)n, got, want, tol);
}

static uint8_t wbuf[MAXN * 4], abuf[MAXN * 4];

static void random_blocks(enum mp_kpath p)
{
	for (size_t k = 0; k < N_SIMD; k++) {
		enum mp_type t = simd_types[k];
		int64_t be = mp_type_info(t)->block_elems;
		int64_t lens[] = { 1, 2, 3, 5, 8 };
		for (int trial = 0; trial < 20; trial++) {
			int64_t n = be == 1 ? 1 + (int64_t)mp_rng_below(&rng, 300)
				  : lens[trial % 5] * (be == 32 ? 7 : 1) * be;
			random_weights(t, wbuf, n);
			random_acts(mp_type_info(t)->vec_dot_type, abuf, n);
			compare(t, p, wbuf, abuf, n, "random bytes");
		}
	}
}

/* Weights and activations quantized from Gaussian data, as matvec sees them. */
static void quantized_data(enum mp_kpath p)
{
	static float x[MAXN], v[MAXN];
	for (int i = 0; i < MAXN; i++) {
		x[i] = (float)mp_rng_normal(&rng) * 0.05f;
		v[i] = (float)mp_rng_normal(&rng);
	}
	for (size_t k = 0; k < N_SIMD; k++) {
		enum mp_type t = simd_types[k];
		mp_quant_ops(t)->quantize(x, wbuf, MAXN);
		mp_quant_ops(mp_type_info(t)->vec_dot_type)->quantize(v, abuf, MAXN);
		compare(t, p, wbuf, abuf, MAXN, "quantized");
	}
}

/* Fills every byte of the weights with b, scales set to h. */
static void fill_weights(enum mp_type t, uint8_t b, mp_f16 h, int64_t n)
{
	const struct mp_type_info *ti = mp_type_info(t);
	memset(wbuf, b, (size_t)n / ti->block_elems * ti->block_bytes);
	const int *f = f16_fields(t);
	for (int64_t blk = 0; blk < n / ti->block_elems; blk++)
		for (int k = 0; f[k] >= 0; k++)
			memcpy(wbuf + blk * ti->block_bytes + f[k], &h, 2);
}

/* Activations with every code c and scale d. */
static void fill_acts(enum mp_type t, int8_t c, int64_t n)
{
	enum mp_type at = mp_type_info(t)->vec_dot_type;
	if (at == MP_TYPE_Q8_K) {
		struct mp_block_q8_K *y = (struct mp_block_q8_K *)abuf;
		for (int64_t b = 0; b < n / MP_QK_K; b++) {
			y[b].d = 0.5f;
			memset(y[b].qs, (uint8_t)c, MP_QK_K);
			for (int g = 0; g < 16; g++)
				y[b].bsums[g] = (int16_t)(16 * c);
		}
	} else if (at == MP_TYPE_Q8_0) {
		struct mp_block_q8_0 *y = (struct mp_block_q8_0 *)abuf;
		for (int64_t b = 0; b < n / MP_QK8; b++) {
			y[b].d = 0x3800;   /* 0.5 */
			memset(y[b].qs, (uint8_t)c, MP_QK8);
		}
	} else if (at == MP_TYPE_Q8_1) {
		struct mp_block_q8_1 *y = (struct mp_block_q8_1 *)abuf;
		for (int64_t b = 0; b < n / MP_QK8; b++) {
			y[b].d = 0x3800;   /* 0.5 */
			y[b].s = mp_f32_to_f16(0.5f * 32 * c);
			memset(y[b].qs, (uint8_t)c, MP_QK8);
		}
	}
}

static void edge_cases(enum mp_kpath p)
{
	/* scales: zero, negative zero, smallest and largest f16 subnormal, 1.0,
	 * the largest finite; codes: all 0x00, all 0xFF, 0x80, 0x7F, 0x55 */
	static const mp_f16 scales[] = { 0x0000, 0x8000, 0x0001, 0x03ff, 0x3c00, 0x7bff, 0xfbff };
	static const uint8_t bytes[] = { 0x00, 0xff, 0x80, 0x7f, 0x55 };
	static const int8_t acts[] = { 127, -128, -127, 0, 1 };
	const int64_t n = 3 * MP_QK_K;
	for (size_t k = 0; k < N_SIMD; k++) {
		enum mp_type t = simd_types[k];
		if (mp_type_info(t)->block_elems == 1)
			continue;
		for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++)
			for (size_t b = 0; b < sizeof bytes; b++)
				for (size_t c = 0; c < sizeof acts; c++) {
					fill_weights(t, bytes[b], scales[s], n);
					fill_acts(t, acts[c], n);
					char what[64];
					snprintf(what, sizeof what, "scale 0x%04x, bytes 0x%02x, acts %d",
						 scales[s], bytes[b], acts[c]);
					compare(t, p, wbuf, abuf, n, what);
				}
	}
	/* float types: signed zeros, subnormals, a mix; odd lengths */
	static const uint16_t h16[] = { 0x0000, 0x8000, 0x0001, 0x83ff, 0x3c00, 0xbc00 };
	static const uint16_t hb16[] = { 0x0000, 0x8000, 0x0001, 0x807f, 0x3f80, 0xbf80 };
	for (int64_t len = 1; len <= 70; len += 23) {
		for (int i = 0; i < len; i++) {
			memcpy(wbuf + 2 * i, &h16[i % 6], 2);
			memcpy(abuf + 2 * i, &h16[(i / 6) % 6], 2);
		}
		compare(MP_TYPE_F16, p, wbuf, abuf, len, "f16 specials");
		for (int i = 0; i < len; i++) {
			memcpy(wbuf + 2 * i, &hb16[i % 6], 2);
			memcpy(abuf + 2 * i, &hb16[(i / 6) % 6], 2);
		}
		compare(MP_TYPE_BF16, p, wbuf, abuf, len, "bf16 specials");
		float *fw = (float *)wbuf, *fa = (float *)abuf;
		for (int i = 0; i < len; i++) {
			fw[i] = i % 3 ? -0.0f : 0x1p-140f;
			fa[i] = (float)(i - 30);
		}
		compare(MP_TYPE_F32, p, wbuf, abuf, len, "f32 specials");
	}
}

/* mp_quant_vec_dot falls back to the best lower path, and every hot type
 * has its own slot on both SIMD paths. */
static void test_table(void)
{
	for (size_t k = 0; k < N_SIMD; k++) {
		const struct mp_quant_ops *ops = mp_quant_ops(simd_types[k]);
		REQUIRE(ops);
		CHECK(ops->vec_dot[MP_KPATH_SCALAR] != NULL);
#if defined(__x86_64__)
		CHECK(ops->vec_dot[MP_KPATH_AVX2] != NULL);
		CHECK(ops->vec_dot[MP_KPATH_AVX512] != NULL);
#endif
	}
	/* the scalar path is the scalar kernel */
	CHECK(mp_quant_vec_dot(MP_TYPE_Q4_0, MP_KPATH_SCALAR) ==
	      mp_quant_ops(MP_TYPE_Q4_0)->vec_dot[MP_KPATH_SCALAR]);
#if defined(__x86_64__)
	/* IQ2_XXS has no AVX-512 kernel: that path falls back to AVX2's */
	CHECK(mp_quant_vec_dot(MP_TYPE_IQ2_XXS, MP_KPATH_AVX512) ==
	      mp_quant_ops(MP_TYPE_IQ2_XXS)->vec_dot[MP_KPATH_AVX2]);
#endif
	CHECK(mp_quant_vec_dot(MP_TYPE_Q8_K, MP_KPATH_SCALAR) == NULL);
}

/* One case per SIMD path and check (tests/kpath_case.h). */
#define NO_AVX2 "this CPU lacks AVX2 and FMA"
#define NO_AVX512 "this CPU lacks AVX-512 (F, BW, VL)"
PATH_CASE(random_blocks, AVX2, NO_AVX2)
PATH_CASE(random_blocks, AVX512, NO_AVX512)
PATH_CASE(quantized_data, AVX2, NO_AVX2)
PATH_CASE(quantized_data, AVX512, NO_AVX512)
PATH_CASE(edge_cases, AVX2, NO_AVX2)
PATH_CASE(edge_cases, AVX512, NO_AVX512)

int main(void)
{
	mp_rng_seed(&rng, 20261128);
	RUN(test_table);
	RUN(test_random_blocks_AVX2);
	RUN(test_random_blocks_AVX512);
	RUN(test_quantized_data_AVX2);
	RUN(test_quantized_data_AVX512);
	RUN(test_edge_cases_AVX2);
	RUN(test_edge_cases_AVX512);
	return mp_test_end();
}
