/* test_quant — kernels/quant: every type's scalar dequantizer against the
 * independent reference vectors in tests/data/quants/, quantize
 * round trips, and vec_dot against dequantize-then-dot. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

static void test_reference_legacy(void)
{
	check_reference(MP_TYPE_Q4_0);
	check_reference(MP_TYPE_Q4_1);
	check_reference(MP_TYPE_Q5_0);
	check_reference(MP_TYPE_Q5_1);
}

static void test_reference_k(void)
{
	check_reference(MP_TYPE_Q2_K);
	check_reference(MP_TYPE_Q3_K);
	check_reference(MP_TYPE_Q4_K);
	check_reference(MP_TYPE_Q5_K);
	check_reference(MP_TYPE_Q6_K);
}

/* Weight types with a quantizer, and the relative RMS error their round trip
 * must stay under on Gaussian data (measured: Q4_0 .086, Q4_1 .078, Q5_0 .043,
 * Q5_1 .038, Q8_0 .0054, Q2_K .30, Q3_K .15, Q4_K .072, Q5_K .036, Q6_K .018). */
static const struct {
	enum mp_type t;
	double max_rel_rms;
} weight_types[] = {
	{ MP_TYPE_Q4_0, 0.12 }, { MP_TYPE_Q4_1, 0.11 }, { MP_TYPE_Q5_0, 0.06 },
	{ MP_TYPE_Q5_1, 0.055 }, { MP_TYPE_Q8_0, 0.008 }, { MP_TYPE_Q2_K, 0.40 },
	{ MP_TYPE_Q3_K, 0.21 }, { MP_TYPE_Q4_K, 0.10 }, { MP_TYPE_Q5_K, 0.05 },
	{ MP_TYPE_Q6_K, 0.025 },
};
#define N_WEIGHT_TYPES (sizeof weight_types / sizeof weight_types[0])

/* Bytes of n elements of t. */
static size_t nbytes(enum mp_type t, int64_t n)
{
	const struct mp_type_info *ti = mp_type_info(t);
	return (size_t)n / ti->block_elems * ti->block_bytes;
}

/* quantize → dequantize keeps the values within the type's error budget, and
 * special inputs (all zero, constant, one spike, tiny, huge, subnormal) give
 * finite blocks that decode close to them. */
static void test_round_trip(void)
{
	enum { N = 4096 };
	static float x[N], y[N];
	static uint8_t q[N * 2];
	struct mp_rng r;
	mp_rng_seed(&r, 11);
	for (size_t k = 0; k < N_WEIGHT_TYPES; k++) {
		enum mp_type t = weight_types[k].t;
		const char *name = mp_type_name(t);
		const struct mp_quant_ops *ops = mp_quant_ops(t);
		REQUIRE(ops && ops->quantize);
		for (int i = 0; i < N; i++)
			x[i] = (float)mp_rng_normal(&r) * 0.02f;
		ops->quantize(x, q, N);
		ops->dequant(q, y, N);
		double err = 0, sig = 0;
		for (int i = 0; i < N; i++) {
			err += (double)(y[i] - x[i]) * (y[i] - x[i]);
			sig += (double)x[i] * x[i];
		}
		double rel = sqrt(err / sig);
		if (!(rel <= weight_types[k].max_rel_rms))
			MP_TEST_FAIL("%s: relative RMS error %.4f, expected <= %.4f", name, rel,
				     weight_types[k].max_rel_rms);
		/* special blocks: zeros, a constant, a single spike, tiny and large */
		for (int c = 0; c < 6; c++) {
			for (int i = 0; i < N; i++)
				x[i] = c == 0 ? 0.0f : c == 1 ? 0.5f : c == 2 ? (i % 97 == 3 ? 3.0f : 0.0f)
				     : c == 3 ? (float)mp_rng_normal(&r) * 1e-6f
				     : c == 4 ? (float)mp_rng_normal(&r) * 1000.0f
				     : (float)mp_rng_normal(&r) * 1e-41f;   /* f32 subnormals */
			ops->quantize(x, q, N);
			ops->dequant(q, y, N);
			double e2 = 0, s2 = 0;
			int finite = 1;
			for (int i = 0; i < N; i++) {
				finite &= isfinite(y[i]) != 0;
				e2 += (double)(y[i] - x[i]) * (y[i] - x[i]);
				s2 += (double)x[i] * x[i];
			}
			if (!finite)
				MP_TEST_FAIL("%s: special case %d decodes to a non-finite value", name, c);
			/* tiny values may flush in f16 scales: allow an absolute floor */
			double lim = 2.5 * weight_types[k].max_rel_rms * sqrt(s2) + (c == 3 || c == 5 ? 1e-3 : 1e-30);
			if (!(sqrt(e2) <= lim))
				MP_TEST_FAIL("%s: special case %d error %.4g > %.4g", name, c, sqrt(e2), lim);
		}
	}
}

/* Dots the weights w (type t) with activations x the way matvec does:
 * x quantized to the vec_dot type; returns also the dequantized reference
 * and Σ|w·a| (the scale of float rounding). */
static double ref_dot(enum mp_type t, const void *w, const void *aq, int64_t n, double *mag)
{
	const struct mp_type_info *ti = mp_type_info(t);
	float *dw = mp_malloc_array((size_t)n, sizeof(float));
	float *da = mp_malloc_array((size_t)n, sizeof(float));
	mp_quant_ops(t)->dequant(w, dw, n);
	mp_quant_ops(ti->vec_dot_type)->dequant(aq, da, n);
	double s = 0, m = 0;
	for (int64_t i = 0; i < n; i++) {
		s += (double)dw[i] * da[i];
		m += fabs((double)dw[i] * da[i]);
	}
	mp_free(dw);
	mp_free(da);
	if (ti->vec_dot_type == MP_TYPE_Q8_1) {
		/* llama.cpp's min term uses s = f16(d_a·Σq_a): allow its rounding
		 * (half an f16 ulp, 2^-11 relative) times |m_w| per block; m_w sits
		 * at bytes 2..3 of Q4_1/Q5_1 blocks. */
		const struct mp_block_q8_1 *ab = aq;
		for (int64_t b = 0; b < n / MP_QK8; b++) {
			mp_f16 mw;
			memcpy(&mw, (const uint8_t *)w + b * ti->block_bytes + 2, 2);
			m += fabs((double)mp_f16_to_f32(mw) * mp_f16_to_f32(ab[b].s)) * 0x1p-11 / 1e-5;
		}
	}
	*mag = m;
	return s;
}

/* Scalar vec_dot of every weight type equals dequantize-then-dot of the same
 * quantized operands (to float rounding). */
static void test_scalar_dot(void)
{
	enum { N = 2048 };
	static float x[N], a[N];
	static uint8_t wq[N * 2], aq[N * 2];
	struct mp_rng r;
	mp_rng_seed(&r, 5);
	for (size_t k = 0; k < N_WEIGHT_TYPES; k++) {
		enum mp_type t = weight_types[k].t;
		enum mp_type at = mp_type_info(t)->vec_dot_type;
		for (int i = 0; i < N; i++) {
			x[i] = (float)mp_rng_normal(&r);
			a[i] = (float)mp_rng_normal(&r);
		}
		mp_quant_ops(t)->quantize(x, wq, N);
		mp_quant_ops(at)->quantize(a, aq, N);
		double mag, want = ref_dot(t, wq, aq, N, &mag);
		float got = mp_quant_ops(t)->vec_dot[MP_KPATH_SCALAR](N, wq, aq);
		if (!(fabs(got - want) <= 1e-5 * mag + 1e-6))
			MP_TEST_FAIL("%s: scalar dot %.7g, dequantized dot %.7g", mp_type_name(t), got, want);
	}
	(void)nbytes;
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
	RUN(test_reference_legacy);
	RUN(test_reference_k);
	RUN(test_round_trip);
	RUN(test_scalar_dot);
	RUN(test_activation_quantizers);
	RUN(test_f16_edges);
	RUN(test_float_dot);
	return mp_test_end();
}
