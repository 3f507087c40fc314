/*
 * cpu.h — what the processor (and the OS, for the wide register state) lets
 * us run.  Probed once with cpuid/xgetbv; kernels/ picks its paths from it.
 */
#ifndef MP_CPU_H
#define MP_CPU_H

#include <stddef.h>

enum mp_cpu_feature {
	MP_CPU_SSE42      = 1u << 0,
	MP_CPU_AVX        = 1u << 1,
	MP_CPU_AVX2       = 1u << 2,
	MP_CPU_FMA        = 1u << 3,
	MP_CPU_F16C       = 1u << 4,
	MP_CPU_AVXVNNI    = 1u << 5,
	MP_CPU_AVX512F    = 1u << 6,
	MP_CPU_AVX512BW   = 1u << 7,
	MP_CPU_AVX512DQ   = 1u << 8,
	MP_CPU_AVX512VL   = 1u << 9,
	MP_CPU_AVX512VNNI = 1u << 10,
	MP_CPU_AVX512BF16 = 1u << 11,
	MP_CPU_AVX512VBMI = 1u << 12,
};

/* Bit set of enum mp_cpu_feature; probed on first call, then cached. */
unsigned mp_cpu_features(void);

/* Space-separated names of the features in mask ("avx2 fma f16c ..."), or
 * "none".  Returns buf. */
char *mp_cpu_describe(unsigned mask, char *buf, size_t len);

/* The processor's brand string ("Intel(R) Xeon(R) ..."), or "unknown". */
const char *mp_cpu_brand(void);

#endif
