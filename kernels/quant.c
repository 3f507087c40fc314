/*
 * quant.c — the kernel table, and the plain float types (F32, F16, BF16).
 *
 * The table is built once from the families' fill functions; lookups are
 * lock-free afterwards.  Float vec_dot pairs F32 with F32, F16 with F16 and
 * BF16 with BF16 (FORMATS.md §2.2); the scalar references accumulate in f32
 * in element order.
 */
#include <pthread.h>
#include <stddef.h>

#include "blocks.h"
#include "fp16.h"
#include "quant.h"

/* ---- F32 ---------------------------------------------------------------- */

static void f32_dequant(const void *src, float *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

static void f32_quantize(const float *src, void *dst, int64_t n)
{
	memcpy(dst, src, (size_t)n * sizeof(float));
}

static float f32_dot(int64_t n, const void *w, const void *a)
{
	const float *x = w, *y = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += x[i] * y[i];
	return s;
}

/* ---- F16 ---------------------------------------------------------------- */

static void f16_dequant(const void *src, float *dst, int64_t n)
{
	const mp_f16 *h = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = mp_f16_to_f32(h[i]);
}

static void f16_quantize(const float *src, void *dst, int64_t n)
{
	mp_f16 *h = dst;
	for (int64_t i = 0; i < n; i++)
		h[i] = mp_f32_to_f16(src[i]);
}

static float f16_dot(int64_t n, const void *w, const void *a)
{
	const mp_f16 *x = w, *y = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += mp_f16_to_f32(x[i]) * mp_f16_to_f32(y[i]);
	return s;
}

/* ---- BF16 --------------------------------------------------------------- */

static void bf16_dequant(const void *src, float *dst, int64_t n)
{
	const mp_bf16 *h = src;
	for (int64_t i = 0; i < n; i++)
		dst[i] = mp_bf16_to_f32(h[i]);
}

static void bf16_quantize(const float *src, void *dst, int64_t n)
{
	mp_bf16 *h = dst;
	for (int64_t i = 0; i < n; i++)
		h[i] = mp_f32_to_bf16(src[i]);
}

static float bf16_dot(int64_t n, const void *w, const void *a)
{
	const mp_bf16 *x = w, *y = a;
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += mp_bf16_to_f32(x[i]) * mp_bf16_to_f32(y[i]);
	return s;
}

void mp_quant_fill_float(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_F32] = (struct mp_quant_ops){ f32_dequant, f32_quantize, { f32_dot }, { NULL } };
	tab[MP_TYPE_F16] = (struct mp_quant_ops){ f16_dequant, f16_quantize, { f16_dot }, { NULL } };
	tab[MP_TYPE_BF16] = (struct mp_quant_ops){ bf16_dequant, bf16_quantize, { bf16_dot }, { NULL } };
}

/* ---- the table ---------------------------------------------------------- */

static struct mp_quant_ops table[MP_TYPE_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
	mp_quant_fill_float(table);
	mp_quant_fill_q8(table);
	mp_quant_fill_legacy(table);
	mp_quant_fill_k(table);
	mp_quant_fill_iq(table);
	mp_quant_fill_avx2(table);
	mp_quant_fill_avx512(table);
	mp_dequant_fill_avx2(table);
	mp_dequant_fill_avx512(table);
}

const struct mp_quant_ops *mp_quant_ops(uint32_t t)
{
	if (t >= MP_TYPE_COUNT)
		return NULL;
	pthread_once(&table_once, build_table);
	return table[t].dequant ? &table[t] : NULL;
}

mp_vec_dot_fn mp_quant_vec_dot(uint32_t t, enum mp_kpath path)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	if (!ops)
		return NULL;
	for (int p = (int)path; p >= 0; p--)
		if (p < MP_KPATH_COUNT && ops->vec_dot[p])
			return ops->vec_dot[p];
	return NULL;
}

mp_dequant_fn mp_quant_dequant(uint32_t t, enum mp_kpath path)
{
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	if (!ops)
		return NULL;
	for (int p = (int)path; p > 0; p--)
		if (p < MP_KPATH_COUNT && ops->dequant_simd[p])
			return ops->dequant_simd[p];
	return ops->dequant;
}
