/*
 * quant_k.h — what the scalar and SIMD K-quant dot products share: the one
 * float combination of a super-block's exact integer sums (quant_k.c's
 * header explains the formulation).  Keeping it in one place is what makes
 * every path bit-identical.
 */
#ifndef MP_QUANT_K_H
#define MP_QUANT_K_H

#include <stdint.h>

/* (d_w·d_a)·isum − (dmin_w·d_a)·imin, in exactly this order. */
static inline float mp_k_combine(float dw, float dminw, float da, int32_t isum, int32_t imin)
{
	float d = dw * da, dm = dminw * da;
	return d * (float)isum - dm * (float)imin;
}

#endif
