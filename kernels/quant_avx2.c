/*
 * quant_avx2.c — the AVX2 (+FMA, F16C) dot products: the shared 256-bit
 * kernels of quant_x86.h compiled with MP_TARGET_AVX2.  Installed into the
 * table's MP_KPATH_AVX2 slots; dispatch only hands them out on CPUs that run
 * them.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"
#include "quant_k.h"
#include "simd.h"

#if MP_HAVE_X86
#define X86_TARGET MP_TARGET_AVX2
#define X86(name) name##_avx2
#include "quant_x86.h"

void mp_quant_fill_avx2(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_F32].vec_dot[MP_KPATH_AVX2] = f32_dot_avx2;
	tab[MP_TYPE_F16].vec_dot[MP_KPATH_AVX2] = f16_dot_avx2;
	tab[MP_TYPE_BF16].vec_dot[MP_KPATH_AVX2] = bf16_dot_avx2;
	tab[MP_TYPE_Q8_0].vec_dot[MP_KPATH_AVX2] = q8_0_dot_avx2;
	tab[MP_TYPE_Q5_0].vec_dot[MP_KPATH_AVX2] = q5_0_dot_avx2;
	tab[MP_TYPE_Q4_0].vec_dot[MP_KPATH_AVX2] = q4_0_dot_avx2;
	tab[MP_TYPE_Q4_1].vec_dot[MP_KPATH_AVX2] = q4_1_dot_avx2;
	tab[MP_TYPE_Q5_1].vec_dot[MP_KPATH_AVX2] = q5_1_dot_avx2;
	tab[MP_TYPE_Q2_K].vec_dot[MP_KPATH_AVX2] = q2_K_dot_avx2;
	tab[MP_TYPE_Q3_K].vec_dot[MP_KPATH_AVX2] = q3_K_dot_avx2;
	tab[MP_TYPE_Q4_K].vec_dot[MP_KPATH_AVX2] = q4_K_dot_avx2;
	tab[MP_TYPE_Q5_K].vec_dot[MP_KPATH_AVX2] = q5_K_dot_avx2;
	tab[MP_TYPE_Q6_K].vec_dot[MP_KPATH_AVX2] = q6_K_dot_avx2;
}
#else
void mp_quant_fill_avx2(struct mp_quant_ops *tab)
{
	(void)tab;
}
#endif
