/* test_dequant_simd — every SIMD dequantizer (AVX2, AVX-512) against the
 * scalar reference, bit for bit (a NaN only has to stay a NaN: F16C quiets
 * signalling ones): random block bytes with any f16 scale bits (subnormal,
 * the largest finite, ±inf, NaN), odd block counts, fixed extreme blocks,
 * Gaussian data through each quantizer, the reference vectors of
 * tests/data/quants, and every one of the 65536 F16 and BF16 values at odd
 * lengths.  Also the fallback of mp_quant_dequant().  A path the CPU lacks
 * is a skipped case. */
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
#include "quant_ref.h"

static const enum mp_type dq_types[] = {
	MP_TYPE_F16, MP_TYPE_BF16, MP_TYPE_Q8_0, MP_TYPE_Q4_0, MP_TYPE_Q4_1, MP_TYPE_Q5_0,
	MP_TYPE_Q5_1, MP_TYPE_Q2_K, MP_TYPE_Q3_K, MP_TYPE_Q4_K, MP_TYPE_Q5_K, MP_TYPE_Q6_K,
};
#define N_DQ (sizeof dq_types / sizeof dq_types[0])

enum { MAXN = 1 << 16 };   /* elements: every f16 value fits */

static struct mp_rng rng;
static uint8_t wbuf[MAXN * 2 + 64];
static float want[MAXN + 16], got[MAXN + 16];

/* Byte offsets of the f16 fields (scales, mins) of one block of t; −1 ends. */
static const int *f16_fields(enum mp_type t)
{
	static const int d0[] = { 0, -1 }, d01[] = { 0, 2, -1 }, q2k[] = { 80, 82, -1 },
			 q3k[] = { 108, -1 }, q6k[] = { 208, -1 }, none[] = { -1 };
	switch (t) {
	case MP_TYPE_Q8_0: case MP_TYPE_Q4_0: case MP_TYPE_Q5_0: return d0;
	case MP_TYPE_Q4_1: case MP_TYPE_Q5_1: case MP_TYPE_Q4_K: case MP_TYPE_Q5_K: return d01;
	case MP_TYPE_Q2_K: return q2k;
	case MP_TYPE_Q3_K: return q3k;
	case MP_TYPE_Q6_K: return q6k;
	default: return none;
	}
}

/* Dequantizes n elements of src with path p and with the reference and
 * compares them; what names the case. */
static void compare(enum mp_type t, enum mp_kpath p, const void *src, int64_t n, const char *what)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	mp_dequant_fn simd = ops->dequant_simd[p];
	if (!simd) {
		MP_TEST_FAIL("%s: no %s dequantizer", mp_type_name(t), mp_dispatch_name(p));
		return;
	}
	/* a guard after the end: the SIMD path must write exactly n floats */
	for (int k = 0; k < 16; k++)
		got[n + k] = want[n + k] = -1234.5f;
	ops->dequant(src, want, n);
	simd(src, got, n);
	for (int64_t i = 0; i < n + 16; i++) {
		float w = want[i], g = got[i];
		if (mp_f32_bits(w) == mp_f32_bits(g) || (isnan(w) && isnan(g)))
			continue;
		MP_TEST_FAIL("%s %s, %s, n=%lld: element %lld is %.9g (0x%08x), scalar %.9g (0x%08x)",
			     mp_type_name(t), mp_dispatch_name(p), what, (long long)n, (long long)i, g,
			     mp_f32_bits(g), w, mp_f32_bits(w));
		return;
	}
}

static size_t bytes_of(enum mp_type t, int64_t n)
{
	const struct mp_type_info *ti = mp_type_info(t);
	return (size_t)(n / ti->block_elems) * ti->block_bytes;
}

/* Random bytes, scales included (any f16 bits: inf and NaN too), in 1..9
 * blocks (odd counts among them) and, for the float types, odd lengths. */
static void random_blocks(enum mp_kpath p)
{
	for (size_t k = 0; k < N_DQ; k++) {
		enum mp_type t = dq_types[k];
		int64_t be = mp_type_info(t)->block_elems;
		for (int trial = 0; trial < 40; trial++) {
			int64_t n = be == 1 ? 1 + (int64_t)mp_rng_below(&rng, 700)
				  : (1 + trial % 9) * be;
			for (size_t i = 0; i < bytes_of(t, n); i++)
				wbuf[i] = (uint8_t)mp_rng_u64(&rng);
			compare(t, p, wbuf, n, "random bytes");
		}
	}
}

/* Every block byte b, every f16 field h: zero, −0, the smallest and largest
 * subnormal, 1, the largest finite (both signs), ±inf, NaN. */
static void extreme_blocks(enum mp_kpath p)
{
	static const mp_f16 scales[] = { 0x0000, 0x8000, 0x0001, 0x03ff, 0x3c00,
					 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00 };
	static const uint8_t bytes[] = { 0x00, 0xff, 0x80, 0x7f, 0x55, 0xaa };
	for (size_t k = 0; k < N_DQ; k++) {
		enum mp_type t = dq_types[k];
		const struct mp_type_info *ti = mp_type_info(t);
		if (ti->block_elems == 1)
			continue;
		int64_t n = 3 * ti->block_elems;
		for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++)
			for (size_t b = 0; b < sizeof bytes; b++) {
				memset(wbuf, bytes[b], bytes_of(t, n));
				const int *f = f16_fields(t);
				for (int64_t blk = 0; blk < 3; blk++)
					for (int i = 0; f[i] >= 0; i++)
						memcpy(wbuf + blk * ti->block_bytes + f[i], &scales[s], 2);
				char what[64];
				snprintf(what, sizeof what, "scale 0x%04x, bytes 0x%02x", scales[s], bytes[b]);
				compare(t, p, wbuf, n, what);
			}
	}
}

/* Gaussian weights through each type's quantizer, as models hold them. */
static void quantized_data(enum mp_kpath p)
{
	enum { N = 16 * MP_QK_K };
	static float x[N];
	for (int i = 0; i < N; i++)
		x[i] = (float)mp_rng_normal(&rng) * 0.05f;
	for (size_t k = 0; k < N_DQ; k++) {
		mp_quant_ops(dq_types[k])->quantize(x, wbuf, N);
		compare(dq_types[k], p, wbuf, N, "quantized");
	}
}

/* The reference blocks of tests/data/quants (llama.cpp's own quantizer). */
static void reference_vectors(enum mp_kpath p)
{
	for (size_t k = 0; k < N_DQ; k++) {
		enum mp_type t = dq_types[k];
		const struct mp_type_info *ti = mp_type_info(t);
		char rel[128];
		size_t nb = 0;
		snprintf(rel, sizeof rel, "quants/%s.blocks", ti->name);
		uint8_t *blocks = slurp(rel, &nb);
		if (!blocks || nb == 0 || nb % ti->block_bytes || nb > sizeof wbuf) {
			MP_TEST_FAIL("%s: %s unreadable, empty or too large", ti->name, rel);
			mp_free(blocks);
			continue;
		}
		compare(t, p, blocks, (int64_t)(nb / ti->block_bytes * ti->block_elems), rel);
		mp_free(blocks);
	}
}

/* All 65536 bit patterns of F16 and BF16, then odd lengths for the tails. */
static void every_half(enum mp_kpath p)
{
	for (uint32_t i = 0; i < 65536; i++) {
		uint16_t h = (uint16_t)i;
		memcpy(wbuf + 2 * i, &h, 2);
	}
	compare(MP_TYPE_F16, p, wbuf, 65536, "every value");
	compare(MP_TYPE_BF16, p, wbuf, 65536, "every value");
	for (int64_t len = 1; len <= 41; len += 4) {
		compare(MP_TYPE_F16, p, wbuf + 2 * 0x3b00, len, "odd length");
		compare(MP_TYPE_BF16, p, wbuf + 2 * 0x3f00, len, "odd length");
	}
}

/* mp_quant_dequant: the reference for the scalar path and for types without
 * a SIMD one, the path's own where it has one. */
static void fallback(void)
{
	for (size_t k = 0; k < N_DQ; k++)
		CHECK(mp_quant_dequant(dq_types[k], MP_KPATH_SCALAR) == mp_quant_ops(dq_types[k])->dequant);
	CHECK(mp_quant_dequant(MP_TYPE_IQ2_XXS, MP_KPATH_AVX512) ==
	      mp_quant_ops(MP_TYPE_IQ2_XXS)->dequant);
	CHECK(mp_quant_dequant(MP_TYPE_F32, MP_KPATH_AVX2) == mp_quant_ops(MP_TYPE_F32)->dequant);
	CHECK(mp_quant_dequant(MP_TYPE_I8, MP_KPATH_AVX2) == NULL);
	CHECK(mp_quant_dequant(MP_TYPE_COUNT + 5, MP_KPATH_AVX2) == NULL);
#if defined(__x86_64__)
	for (size_t k = 0; k < N_DQ; k++)
		for (int p = MP_KPATH_AVX2; p < MP_KPATH_COUNT; p++)
			CHECK(mp_quant_dequant(dq_types[k], (enum mp_kpath)p) ==
			      mp_quant_ops(dq_types[k])->dequant_simd[p]);
#endif
}

static void test_fallback(void)
{
	fallback();
}

/* One case per SIMD path and check (tests/kpath_case.h). */
#define NO_AVX2 "this CPU lacks AVX2, FMA and F16C"
#define NO_AVX512 "this CPU lacks AVX-512 (F, BW, DQ, VL)"
PATH_CASE(random_blocks, AVX2, NO_AVX2)
PATH_CASE(random_blocks, AVX512, NO_AVX512)
PATH_CASE(extreme_blocks, AVX2, NO_AVX2)
PATH_CASE(extreme_blocks, AVX512, NO_AVX512)
PATH_CASE(quantized_data, AVX2, NO_AVX2)
PATH_CASE(quantized_data, AVX512, NO_AVX512)
PATH_CASE(reference_vectors, AVX2, NO_AVX2)
PATH_CASE(reference_vectors, AVX512, NO_AVX512)
PATH_CASE(every_half, AVX2, NO_AVX2)
PATH_CASE(every_half, AVX512, NO_AVX512)

int main(void)
{
	mp_rng_seed(&rng, 20261203);
	RUN(test_fallback);
	RUN(test_random_blocks_AVX2);
	RUN(test_random_blocks_AVX512);
	RUN(test_extreme_blocks_AVX2);
	RUN(test_extreme_blocks_AVX512);
	RUN(test_quantized_data_AVX2);
	RUN(test_quantized_data_AVX512);
	RUN(test_reference_vectors_AVX2);
	RUN(test_reference_vectors_AVX512);
	RUN(test_every_half_AVX2);
	RUN(test_every_half_AVX512);
	return mp_test_end();
}
