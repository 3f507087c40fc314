/*
 * dequant_avx2.c — the AVX2 (+F16C) dequantizers: dequant_x86.h compiled
 * with MP_TARGET_AVX2, installed into the table's MP_KPATH_AVX2
 * dequant_simd slots; dispatch only hands them out on CPUs that run them.
 */
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"
#include "simd.h"

#if MP_HAVE_X86
#define X86_TARGET MP_TARGET_AVX2
#define X86(name) name##_avx2
#include "dequant_x86.h"

void mp_dequant_fill_avx2(struct mp_quant_ops *tab)
{
	dequant_fill_avx2(tab, MP_KPATH_AVX2);
}
#else
void mp_dequant_fill_avx2(struct mp_quant_ops *tab)
{
	(void)tab;
}
#endif
