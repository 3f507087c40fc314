/*
 * simd.h — how kernels compile SIMD paths without -march=native: per-function
 * target attributes.  A function (and every static inline helper it calls)
 * that uses AVX2 intrinsics carries MP_TARGET_AVX2; AVX-512 code carries
 * MP_TARGET_AVX512.  The dispatch table (quant.h) only hands such a function
 * out when mp_dispatch says the CPU runs that path.
 */
#ifndef MP_SIMD_H
#define MP_SIMD_H

#if defined(__x86_64__)
#define MP_HAVE_X86 1
#include <immintrin.h>
#define MP_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define MP_TARGET_AVX512 \
	__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16")))
#else
#define MP_HAVE_X86 0
#endif

#endif
