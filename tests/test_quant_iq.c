/* test_quant_iq — the i-quants of kernels/quant_iq*.c: the generated grid
 * tables entry by entry against tests/data/quants/grids/, every
 * scalar dequantizer against the reference vectors, quantizer round trips,
 * and every vec_dot path against the scalar one. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "blocks.h"
#include "blocks_iq.h"
#include "cpu.h"
#include "dispatch.h"
#include "fp16.h"
#include "iq_grids.h"
#include "quant.h"
#include "rng.h"
#include "types.h"
#include "mp_test.h"
#include "quant_ref.h"

static const enum mp_type iq_types[] = {
	MP_TYPE_IQ1_S, MP_TYPE_IQ1_M, MP_TYPE_IQ2_XXS, MP_TYPE_IQ2_XS, MP_TYPE_IQ2_S,
	MP_TYPE_IQ3_XXS, MP_TYPE_IQ3_S, MP_TYPE_IQ4_NL, MP_TYPE_IQ4_XS,
};
#define N_IQ_TYPES (int)(sizeof iq_types / sizeof iq_types[0])

/* ---- grids ----------------------------------------------------------------- */

/* Compares table (entries × lanes bytes, as the C table lies in memory) with
 * grids/NAME.txt line by line; lanes are read as signed and masked to a byte. */
static void check_grid(const char *name, const void *table, int entries, int lanes)
{
	char rel[128];
	snprintf(rel, sizeof rel, "quants/grids/%s.txt", name);
	FILE *f = fopen(mp_test_data(rel), "r");
	if (!f) {
		MP_TEST_FAIL("%s: cannot open %s", name, rel);
		return;
	}
	const uint8_t *bytes = table;
	int count = 0, bad = 0, c;
	long v;
	/* skip the comment line */
	while ((c = fgetc(f)) != EOF && c != '\n')
		;
	while (fscanf(f, "%ld", &v) == 1) {
		if (count >= entries * lanes) {
			count++;
			continue;
		}
		if (bytes[count] != (uint8_t)(v & 0xFF) && bad++ < 3)
			MP_TEST_FAIL("%s: entry %d lane %d: file says %ld, table has %u", name,
				     count / lanes, count % lanes, v, bytes[count]);
		count++;
	}
	fclose(f);
	if (count != entries * lanes)
		MP_TEST_FAIL("%s: file has %d values, table %d", name, count, entries * lanes);
}

static void test_grids_match_shared(void)
{
	check_grid("iq2xxs_grid", mp_iq2xxs_grid, 256, 8);
	check_grid("iq2xs_grid", mp_iq2xs_grid, 512, 8);
	check_grid("iq2s_grid", mp_iq2s_grid, 1024, 8);
	check_grid("iq3xxs_grid", mp_iq3xxs_grid, 256, 4);
	check_grid("iq3s_grid", mp_iq3s_grid, 512, 4);
	check_grid("iq1s_grid", mp_iq1s_grid, 2048, 8);
	check_grid("ksigns_iq2xs", mp_ksigns_iq2xs, 128, 1);
	check_grid("kvalues_iq4nl", mp_kvalues_iq4nl, 16, 1);
	/* the derived tables follow their definitions */
	for (int i = 0; i < 128; i++) {
		int p = __builtin_popcount((unsigned)i) & 1;
		CHECK_EQ_INT(mp_ksigns_iq2xs[i], i | (p << 7));
		for (int j = 0; j < 8; j++) {
			int m = (int)((mp_ksigns64[i] >> (8 * j)) & 0xFF);
			CHECK_EQ_INT(m, (mp_ksigns_iq2xs[i] >> j) & 1 ? 0xFF : 0);
		}
	}
}

/* ---- reference vectors ----------------------------------------------------- */

static void test_reference_dequant(void)
{
	for (int k = 0; k < N_IQ_TYPES; k++)
		check_reference(iq_types[k]);
}

/* ---- quantizers ------------------------------------------------------------ */

/* Relative RMS error of b against a. */
static double rel_rms(const float *a, const float *b, int64_t n)
{
	double e = 0, s = 0;
	for (int64_t i = 0; i < n; i++) {
		e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
		s += (double)a[i] * a[i];
	}
	return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* quantize → dequantize of n values; returns the relative RMS error. */
static double round_trip(enum mp_type t, const float *x, float *y, int64_t n)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	size_t bytes = (size_t)(n / mp_type_info(t)->block_elems) * mp_type_info(t)->block_bytes;
	uint8_t *q = mp_malloc(bytes);
	if (!q)
		return INFINITY;
	ops->quantize(x, q, n);
	ops->dequant(q, y, n);
	mp_free(q);
	return rel_rms(x, y, n);
}

/* Gaussian weights: every type beats zeroing by its margin; the bounds sit a
 * little above what the simple quantizers reach (printed to the log). */
static void test_quantize_gaussian(void)
{
	static const struct { enum mp_type t; double bound; } cases[] = {
		{ MP_TYPE_IQ1_S, 0.50 }, { MP_TYPE_IQ1_M, 0.47 }, { MP_TYPE_IQ2_XXS, 0.38 },
		{ MP_TYPE_IQ2_XS, 0.33 }, { MP_TYPE_IQ2_S, 0.27 }, { MP_TYPE_IQ3_XXS, 0.21 },
		{ MP_TYPE_IQ3_S, 0.15 }, { MP_TYPE_IQ4_NL, 0.09 }, { MP_TYPE_IQ4_XS, 0.09 },
	};
	enum { N = 4 * MP_QK_K };
	static float x[N], y[N];
	struct mp_rng r;
	mp_rng_seed(&r, 11);
	for (int i = 0; i < N; i++)
		x[i] = (float)mp_rng_normal(&r) * 0.02f;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		REQUIRE(mp_quant_ops(cases[k].t) && mp_quant_ops(cases[k].t)->quantize);
		double e = round_trip(cases[k].t, x, y, N);
		fprintf(stderr, "  %-8s gaussian relative RMS error %.4f (bound %.2f)\n",
			mp_type_info(cases[k].t)->name, e, cases[k].bound);
		if (!(e <= cases[k].bound))
			MP_TEST_FAIL("%s: relative RMS error %.4f above %.2f",
				     mp_type_info(cases[k].t)->name, e, cases[k].bound);
	}
}

/* Zero blocks stay zero; huge and tiny inputs give finite, decodable blocks. */
static void test_quantize_edges(void)
{
	enum { N = MP_QK_K };
	static float x[N], y[N];
	for (int k = 0; k < N_IQ_TYPES; k++) {
		const char *name = mp_type_info(iq_types[k])->name;
		memset(x, 0, sizeof x);
		CHECK_NEAR(round_trip(iq_types[k], x, y, N), 0, 0);
		for (int i = 0; i < N; i++)
			x[i] = (i % 3 ? 1e30f : -1e30f) * (float)(i % 7);
		round_trip(iq_types[k], x, y, N);
		for (int i = 0; i < N; i++)
			if (!isfinite(y[i])) {
				MP_TEST_FAIL("%s: huge input decodes to %g at %d", name, y[i], i);
				break;
			}
		for (int i = 0; i < N; i++)
			x[i] = 1e-30f * (float)(i % 5 - 2);
		round_trip(iq_types[k], x, y, N);
		for (int i = 0; i < N; i++)
			if (!isfinite(y[i]) || fabsf(y[i]) > 1e-6f) {
				MP_TEST_FAIL("%s: tiny input decodes to %g at %d", name, y[i], i);
				break;
			}
	}
}

/* Random bytes for nblocks blocks of t, patched so that the values are a
 * representable vector the quantizer's scale rule recovers: finite positive
 * d, and group 0 holding the largest value (largest scale code, largest
 * grid level, positive sign/delta). */
static void make_representable(enum mp_type t, uint8_t *buf, int nblocks, struct mp_rng *r)
{
	const struct mp_type_info *ti = mp_type_info(t);
	for (size_t i = 0; i < (size_t)nblocks * ti->block_bytes; i++)
		buf[i] = (uint8_t)mp_rng_u64(r);
	for (int b = 0; b < nblocks; b++) {
		uint8_t *p = buf + (size_t)b * ti->block_bytes;
		mp_f16 d = mp_f32_to_f16((float)(0.001 + 0.01 * mp_rng_uniform(r)));
		switch (t) {
		case MP_TYPE_IQ2_XXS: {
			struct mp_block_iq2_xxs *x = (void *)p;
			x->d = d;
			x->qs[0] = (uint16_t)((x->qs[0] & 0xFF00) | 1);   /* entry 1: lane 0 = 43 */
			x->qs[3] |= 0xF000;                               /* scale 15 */
			x->qs[2] &= (uint16_t)~1u;                        /* lane 0 positive */
			break;
		}
		case MP_TYPE_IQ2_XS: {
			struct mp_block_iq2_xs *x = (void *)p;
			x->d = d;
			x->qs[0] = (uint16_t)(1 | (x->qs[0] & 0xFC00));   /* entry 1, lane 0 + */
			x->scales[0] |= 0x0F;
			break;
		}
		case MP_TYPE_IQ2_S: {
			struct mp_block_iq2_s *x = (void *)p;
			x->d = d;
			x->qs[0] = 1;
			x->qh[0] &= 0xFC;
			x->qs[32] &= 0xFE;
			x->scales[0] |= 0x0F;
			break;
		}
		case MP_TYPE_IQ3_XXS: {
			struct mp_block_iq3_xxs *x = (void *)p;
			x->d = d;
			x->qs[0] = 5;                                     /* entry 5: lane 0 = 62 */
			x->qs[64] &= 0xFE;
			x->qs[67] |= 0xF0;
			break;
		}
		case MP_TYPE_IQ3_S: {
			struct mp_block_iq3_s *x = (void *)p;
			x->d = d;
			x->qs[0] = 4;                                     /* entry 4: lane 0 = 15 */
			x->qh[0] &= 0xFE;
			x->signs[0] &= 0xFE;
			x->scales[0] |= 0x0F;
			break;
		}
		case MP_TYPE_IQ1_S: {
			struct mp_block_iq1_s *x = (void *)p;
			x->d = d;
			x->qs[0] = 1;                                     /* entry 1: lane 0 = +1 */
			x->qh[0] = (uint16_t)((x->qh[0] & 0x0FF8) | 0x7000);
			break;
		}
		case MP_TYPE_IQ1_M: {
			struct mp_block_iq1_m *x = (void *)p;
			uint16_t sc[4];
			memcpy(sc, x->scales, 8);
			for (int k = 0; k < 4; k++)
				sc[k] = (uint16_t)((sc[k] & 0x0FFF) | ((d >> (4 * k)) & 0xF) << 12);
			sc[0] |= 7;
			memcpy(x->scales, sc, 8);
			x->qs[0] = 1;
			x->qh[0] &= 0xF0;
			break;
		}
		case MP_TYPE_IQ4_NL: {
			struct mp_block_iq4_nl *x = (void *)p;
			x->d = d;
			x->qs[0] &= 0xF0;                                 /* K = −127 */
			break;
		}
		case MP_TYPE_IQ4_XS: {
			struct mp_block_iq4_xs *x = (void *)p;
			x->d = d;
			x->scales_l[0] &= 0xF0;                           /* ls = 0: −32 */
			x->scales_h &= (uint16_t)~3u;
			x->qs[0] &= 0xF0;
			break;
		}
		default:
			break;
		}
	}
}

/* dequant(quantize(x)) == x for representable x (to f32 rounding). */
static void test_quantize_representable(void)
{
	struct mp_rng r;
	mp_rng_seed(&r, 5);
	enum { NB = 2 };
	static uint8_t buf[NB * 8 * 136];
	static float x[NB * MP_QK_K], y[NB * MP_QK_K];
	for (int k = 0; k < N_IQ_TYPES; k++) {
		const struct mp_type_info *ti = mp_type_info(iq_types[k]);
		int nblocks = NB * MP_QK_K / (int)ti->block_elems;
		int64_t n = NB * MP_QK_K;
		make_representable(iq_types[k], buf, nblocks, &r);
		mp_quant_ops(iq_types[k])->dequant(buf, x, n);
		double e = round_trip(iq_types[k], x, y, n);
		if (!(e <= 1e-6))
			MP_TEST_FAIL("%s: representable input comes back with relative RMS error %.3g",
				     ti->name, e);
	}
}

/* ---- dot products ----------------------------------------------------------- */

/* Activations for n weights of type t, in its vec_dot type: random q in
 * [qlo, qhi] (Q8 never holds −128), consistent bsums, a finite scale. */
static void make_activations(enum mp_type t, void *buf, int64_t n, int qlo, int qhi, struct mp_rng *r)
{
	if (t == MP_TYPE_IQ4_NL) {
		struct mp_block_q8_0 *a = buf;
		for (int64_t b = 0; b < n / MP_QK8; b++) {
			a[b].d = mp_f32_to_f16((float)(0.01 + 0.02 * mp_rng_uniform(r)));
			for (int j = 0; j < MP_QK8; j++)
				a[b].qs[j] = (int8_t)(qlo + (int)mp_rng_below(r, (uint64_t)(qhi - qlo + 1)));
		}
		return;
	}
	struct mp_block_q8_K *a = buf;
	for (int64_t b = 0; b < n / MP_QK_K; b++) {
		a[b].d = (float)(0.01 + 0.02 * mp_rng_uniform(r));
		for (int j = 0; j < MP_QK_K; j++)
			a[b].qs[j] = (int8_t)(qlo + (int)mp_rng_below(r, (uint64_t)(qhi - qlo + 1)));
		for (int k = 0; k < MP_QK_K / 16; k++) {
			int s = 0;
			for (int j = 0; j < 16; j++)
				s += a[b].qs[16 * k + j];
			a[b].bsums[k] = (int16_t)s;
		}
	}
}

/* Σ |w_i·a_i| and Σ w_i·a_i of the dequantized operands, in double. */
static void dequant_dot(enum mp_type t, const void *w, const void *a, int64_t n,
			double *dot, double *mag)
{
	enum mp_type at = t == MP_TYPE_IQ4_NL ? MP_TYPE_Q8_0 : MP_TYPE_Q8_K;
	float *dw = mp_malloc_array((size_t)n, sizeof(float));
	float *da = mp_malloc_array((size_t)n, sizeof(float));
	*dot = *mag = 0;
	if (dw && da) {
		mp_quant_ops(t)->dequant(w, dw, n);
		mp_quant_ops(at)->dequant(a, da, n);
		for (int64_t i = 0; i < n; i++) {
			*dot += (double)dw[i] * da[i];
			*mag += fabs((double)dw[i] * da[i]);
		}
	}
	mp_free(dw);
	mp_free(da);
}

/* The weight bytes for a dot case: random, all 0x00 or all 0xFF (zero and
 * largest codes and scales), the d fields made finite. */
enum fill { FILL_RANDOM, FILL_ZERO, FILL_MAX };

static void make_weights(enum mp_type t, uint8_t *buf, int nblocks, enum fill fill, struct mp_rng *r)
{
	const struct mp_type_info *ti = mp_type_info(t);
	make_representable(t, buf, nblocks, r);   /* random codes, sane d */
	if (fill == FILL_RANDOM)
		return;
	for (int b = 0; b < nblocks; b++) {
		uint8_t *p = buf + (size_t)b * ti->block_bytes;
		mp_f16 d;
		if (t == MP_TYPE_IQ1_M) {
			uint16_t sc[4];
			memcpy(sc, ((struct mp_block_iq1_m *)(void *)p)->scales, 8);
			d = (mp_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
			memset(p, fill == FILL_ZERO ? 0 : 0xFF, ti->block_bytes);
			memcpy(sc, ((struct mp_block_iq1_m *)(void *)p)->scales, 8);
			for (int k = 0; k < 4; k++)
				sc[k] = (uint16_t)((sc[k] & 0x0FFF) | ((d >> (4 * k)) & 0xF) << 12);
			memcpy(((struct mp_block_iq1_m *)(void *)p)->scales, sc, 8);
		} else {
			memcpy(&d, p, 2);              /* every other type starts with d */
			memset(p, fill == FILL_ZERO ? 0 : 0xFF, ti->block_bytes);
			memcpy(p, &d, 2);
		}
	}
}

/* Scalar vec_dot equals the dot of the dequantized operands; every SIMD path
 * the CPU runs equals the scalar one, on random codes and on the extremes of
 * codes and activations. */
static void test_vec_dot_paths(void)
{
	enum { NBLK = 8 };
	static uint8_t wbuf[NBLK * 8 * 136];
	static uint8_t abuf[NBLK * sizeof(struct mp_block_q8_K)];
	static const struct { enum fill fill; int qlo, qhi; } cases[] = {
		{ FILL_RANDOM, -127, 127 }, { FILL_ZERO, -127, 127 }, { FILL_MAX, -127, 127 },
		{ FILL_RANDOM, 127, 127 }, { FILL_RANDOM, -127, -127 }, { FILL_MAX, -127, -127 },
		{ FILL_RANDOM, 0, 0 },
	};
	unsigned cpu = mp_cpu_features();
	struct mp_rng r;
	mp_rng_seed(&r, 99);
	for (int k = 0; k < N_IQ_TYPES; k++) {
		enum mp_type t = iq_types[k];
		const struct mp_type_info *ti = mp_type_info(t);
		const struct mp_quant_ops *ops = mp_quant_ops(t);
		REQUIRE(ops && ops->vec_dot[MP_KPATH_SCALAR]);
		int64_t n = NBLK * MP_QK_K;
		int nblocks = (int)(n / ti->block_elems);
		for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
			make_weights(t, wbuf, nblocks, cases[c].fill, &r);
			make_activations(t, abuf, n, cases[c].qlo, cases[c].qhi, &r);
			double want, mag;
			dequant_dot(t, wbuf, abuf, n, &want, &mag);
			double tol = 1e-5 * mag + 1e-30;
			float ref = ops->vec_dot[MP_KPATH_SCALAR](n, wbuf, abuf);
			if (!(fabs(ref - want) <= tol))
				MP_TEST_FAIL("%s case %zu: scalar dot %.9g, dequantized dot %.9g",
					     ti->name, c, ref, want);
			for (int p = 1; p < MP_KPATH_COUNT; p++) {
				if (!ops->vec_dot[p] || !mp_dispatch_supported((enum mp_kpath)p, cpu))
					continue;
				float got = ops->vec_dot[p](n, wbuf, abuf);
				if (!(fabs(got - ref) <= tol))
					MP_TEST_FAIL("%s case %zu: %s dot %.9g, scalar %.9g", ti->name, c,
						     mp_dispatch_name((enum mp_kpath)p), got, ref);
			}
		}
	}
}

/* The paths that exist, in the log; the required ones are there on x86. */
static void test_simd_paths_present(void)
{
	static const enum mp_type want512[] = { MP_TYPE_IQ1_M, MP_TYPE_IQ4_XS };
	for (int k = 0; k < N_IQ_TYPES; k++) {
		const struct mp_quant_ops *ops = mp_quant_ops(iq_types[k]);
		fprintf(stderr, "  %-8s scalar%s%s\n", mp_type_info(iq_types[k])->name,
			ops->vec_dot[MP_KPATH_AVX2] ? " avx2" : "", ops->vec_dot[MP_KPATH_AVX512] ? " avx512" : "");
#if defined(__x86_64__)
		CHECK(ops->vec_dot[MP_KPATH_AVX2] != NULL);
#endif
	}
#if defined(__x86_64__)
	for (size_t k = 0; k < sizeof want512 / sizeof want512[0]; k++)
		CHECK(mp_quant_ops(want512[k])->vec_dot[MP_KPATH_AVX512] != NULL);
#endif
}

int main(void)
{
	RUN(test_grids_match_shared);
	RUN(test_reference_dequant);
	RUN(test_quantize_gaussian);
	RUN(test_quantize_edges);
	RUN(test_quantize_representable);
	RUN(test_vec_dot_paths);
	RUN(test_simd_paths_present);
	return mp_test_end();
}
