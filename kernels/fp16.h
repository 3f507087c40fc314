/*
 * fp16.h — IEEE half and bfloat16 conversions, scalar and exact.
 *
 * f16 → f32 and bf16 → f32 are exact.  f32 → f16 rounds to nearest even (as
 * F16C's _cvtss_sh with rounding 0 and ggml do), keeping subnormals, ±inf and
 * NaN; f32 → bf16 rounds to nearest even and keeps NaN quiet (ggml's rule).
 */
#ifndef MP_FP16_H
#define MP_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t mp_f16;    /* IEEE binary16 bits */
typedef uint16_t mp_bf16;   /* bfloat16 bits */

static inline float mp_f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint32_t mp_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float mp_f16_to_f32(mp_f16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	if (exp == 0x1f)                       /* inf / NaN */
		return mp_f32_from_bits(sign | 0x7f800000u | (man << 13));
	if (exp == 0) {
		if (man == 0)
			return mp_f32_from_bits(sign);
		/* subnormal: value = man × 2^-24, exact in f32 */
		float v = (float)man * 0x1p-24f;
		return sign ? -v : v;
	}
	return mp_f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static inline mp_f16 mp_f32_to_f16(float f)
{
	uint32_t x = mp_f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u)                 /* inf or NaN (keep NaN a NaN) */
		return (mp_f16)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
	if (ax >= 0x477ff000u)                 /* rounds to ≥ 65520: overflow to inf */
		return (mp_f16)(sign | 0x7c00);
	if (ax < 0x38800000u) {                /* below the smallest normal half */
		/* Scale into the subnormal range and let the FPU round to even. */
		float a = mp_f32_from_bits(ax) * 0x1p24f;
		uint32_t m = (uint32_t)a;
		float rem = a - (float)m;
		if (rem > 0.5f || (rem == 0.5f && (m & 1)))
			m++;
		return (mp_f16)(sign | m);      /* m == 0x400 becomes the smallest normal */
	}
	uint32_t e = (ax >> 23) - 112;
	uint32_t man = ax & 0x7fffffu;
	uint32_t h = (e << 10) | (man >> 13);
	uint32_t rest = man & 0x1fffu;
	if (rest > 0x1000u || (rest == 0x1000u && (h & 1)))
		h++;                            /* carries into the exponent correctly */
	return (mp_f16)(sign | h);
}

static inline float mp_bf16_to_f32(mp_bf16 b)
{
	return mp_f32_from_bits((uint32_t)b << 16);
}

static inline mp_bf16 mp_f32_to_bf16(float f)
{
	uint32_t u = mp_f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)   /* NaN: force quiet */
		return (mp_bf16)((u >> 16) | 64);
	return (mp_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
