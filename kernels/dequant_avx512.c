/*
 * dequant_avx512.c — the AVX-512 (F/BW/DQ/VL) dequantizers: F16 and BF16
 * convert 16 lanes at a time here; the quantized types use dequant_x86.h's
 * 256-bit code recompiled for AVX-512VL (EVEX, 32 registers: the work per
 * element is unpacking and int→float conversion, not vector width).  Same
 * invariant as dequant_x86.h: the scalar reference's floats, bit for bit.
 */
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"
#include "simd.h"

#if MP_HAVE_X86
#define X86_TARGET MP_TARGET_AVX512_BASE
#define X86(name) name##_avx512
#include "dequant_x86.h"

#define T512 MP_TARGET_AVX512_BASE

T512 static void f16_dequant512(const void *src, float *dst, int64_t n)
{
	const mp_f16 *h = src;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + i))));
	f16_dequant_avx512(h + i, dst + i, n - i);
}

T512 static void bf16_dequant512(const void *src, float *dst, int64_t n)
{
	const mp_bf16 *h = src;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + i)));
		_mm512_storeu_si512(dst + i, _mm512_slli_epi32(w, 16));
	}
	bf16_dequant_avx512(h + i, dst + i, n - i);
}

void mp_dequant_fill_avx512(struct mp_quant_ops *tab)
{
	dequant_fill_avx512(tab, MP_KPATH_AVX512);
	tab[MP_TYPE_F16].dequant_simd[MP_KPATH_AVX512] = f16_dequant512;
	tab[MP_TYPE_BF16].dequant_simd[MP_KPATH_AVX512] = bf16_dequant512;
}
#else
void mp_dequant_fill_avx512(struct mp_quant_ops *tab)
{
	(void)tab;
}
#endif
