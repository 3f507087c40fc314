/* test_quant — kernels/quant: every type's scalar dequantizer against the
 * independent reference vectors in ../shared/testdata/quants/, quantize
 * round trips, and vec_dot against dequantize-then-dot. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "blocks.h"
#include "fp16.h"
#include "quant.h"
#include "rng.h"
#include "types.h"
#include "mp_test.h"
#include "quant_ref.h"

static void test_reference_float(void)
{
	check_reference(MP_TYPE_F16);
	check_reference(MP_TYPE_BF16);
}

static void test_reference_q8_0(void)
{
	check_reference(MP_TYPE_Q8_0);
}

/* The activation quantizers follow llama.cpp's rules (FORMATS.md §2.8). */
static void test_activation_quantizers(void)
{
	float x[MP_QK_K];
	for (int i = 0; i < MP_QK_K; i++)
		x[i] = (float)(i - 100) * 0.25f;   /* max |x| = 155·0.25 at i = 255 */
	struct mp_block_q8_K k;
	mp_quantize_q8_K(x, &k, MP_QK_K);
	/* iscale = -127/mx with mx = +38.75: the largest maps to -127 */
	CHECK_EQ_INT(k.qs[255], -127);
	CHECK_NEAR(k.d, 38.75f / -127.0f, 1e-9);
	int sum0 = 0;
	for (int j = 0; j < 16; j++)
		sum0 += k.qs[j];
	CHECK_EQ_INT(k.bsums[0], sum0);
	/* half to even: x = 0.5/|iscale| steps land on even codes */
	float h[MP_QK_K] = { 0 };
	h[0] = 127.0f;     /* iscale = -1 */
	h[1] = 2.5f;       /* -2.5 → -2 (even) */
	h[2] = 3.5f;       /* -3.5 → -4 */
	mp_quantize_q8_K(h, &k, MP_QK_K);
	CHECK_EQ_INT(k.qs[1], -2);
	CHECK_EQ_INT(k.qs[2], -4);
	float z[MP_QK_K] = { 0 };
	mp_quantize_q8_K(z, &k, MP_QK_K);
	CHECK_EQ_INT(k.d == 0.0f, 1);
	/* Q8_0: half away from zero, d = amax/127 */
	float v[MP_QK8] = { 0 };
	v[0] = 127.0f;
	v[1] = 2.5f;
	v[2] = -2.5f;
	struct mp_block_q8_0 q;
	mp_quantize_q8_0(v, &q, MP_QK8);
	CHECK_EQ_INT(q.qs[0], 127);
	CHECK_EQ_INT(q.qs[1], 3);
	CHECK_EQ_INT(q.qs[2], -3);
	struct mp_block_q8_1 q1;
	mp_quantize_q8_1(v, &q1, MP_QK8);
	CHECK_NEAR(mp_f16_to_f32(q1.s), 127.0, 0.1);
}

static void test_f16_edges(void)
{
	/* round to nearest even, subnormals, overflow, signed zero, NaN */
	CHECK_EQ_INT(mp_f32_to_f16(1.0f), 0x3c00);
	CHECK_EQ_INT(mp_f32_to_f16(-0.0f), 0x8000);
	CHECK_EQ_INT(mp_f32_to_f16(65504.0f), 0x7bff);
	CHECK_EQ_INT(mp_f32_to_f16(65520.0f), 0x7c00);
	CHECK_EQ_INT(mp_f32_to_f16(0x1p-24f), 0x0001);
	CHECK_EQ_INT(mp_f32_to_f16(0x1p-25f), 0x0000);          /* tie → even (0) */
	CHECK_EQ_INT(mp_f32_to_f16(0x1.8p-24f), 0x0002);        /* tie → even (2) */
	CHECK_EQ_INT(mp_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie → even */
	CHECK_EQ_INT(mp_f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01);
	CHECK_EQ_INT(mp_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* rounds up to smallest normal */
	CHECK((mp_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (mp_f32_to_f16(NAN) & 0x3ff));
	CHECK_EQ_INT(mp_f16_to_f32(0x0001) == 0x1p-24f, 1);
	for (uint32_t h = 0; h < 0x10000; h++) {                /* every finite half round-trips */
		if ((h & 0x7c00) == 0x7c00)
			continue;
		if (mp_f32_to_f16(mp_f16_to_f32((mp_f16)h)) != h) {
			MP_TEST_FAIL("f16 0x%04x does not round-trip", h);
			break;
		}
	}
	CHECK_EQ_INT(mp_f32_to_bf16(1.0f), 0x3f80);
	CHECK_EQ_INT(mp_f32_to_bf16(mp_f32_from_bits(0x3f808000u)), 0x3f80);  /* tie → even */
	CHECK_EQ_INT(mp_f32_to_bf16(mp_f32_from_bits(0x3f818000u)), 0x3f82);
	CHECK((mp_f32_to_bf16(NAN) & 0x7f80) == 0x7f80 && (mp_f32_to_bf16(NAN) & 0x7f));
}

/* vec_dot of each float type equals the dot of the dequantized values. */
static void test_float_dot(void)
{
	static const enum mp_type types[] = { MP_TYPE_F32, MP_TYPE_F16, MP_TYPE_BF16 };
	struct mp_rng r;
	mp_rng_seed(&r, 7);
	enum { N = 1024 };
	float x[N], y[N], dx[N], dy[N];
	for (int i = 0; i < N; i++) {
		x[i] = (float)mp_rng_normal(&r);
		y[i] = (float)mp_rng_normal(&r);
	}
	for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
		const struct mp_quant_ops *ops = mp_quant_ops(types[k]);
		REQUIRE(ops && ops->quantize && ops->vec_dot[MP_KPATH_SCALAR]);
		uint8_t qx[N * 4], qy[N * 4];
		ops->quantize(x, qx, N);
		ops->quantize(y, qy, N);
		ops->dequant(qx, dx, N);
		ops->dequant(qy, dy, N);
		double want = 0;
		for (int i = 0; i < N; i++)
			want += (double)dx[i] * dy[i];
		for (int p = 0; p < MP_KPATH_COUNT; p++) {
			mp_vec_dot_fn dot = mp_quant_vec_dot(types[k], (enum mp_kpath)p);
			REQUIRE(dot);
			CHECK_NEAR(dot(N, qx, qy), want, 1e-3 * sqrt((double)N));
		}
	}
	CHECK(mp_quant_ops(MP_TYPE_COUNT) == NULL);
	CHECK(mp_quant_ops(4) == NULL);
}

int main(void)
{
	RUN(test_reference_float);
	RUN(test_reference_q8_0);
	RUN(test_activation_quantizers);
	RUN(test_f16_edges);
	RUN(test_float_dot);
	return mp_test_end();
}
