/*
 * simd.h — how kernels compile SIMD paths without -march=native: per-function
 * target attributes.  A function (and every static inline helper it calls)
 * that uses AVX2 intrinsics carries MP_TARGET_AVX2; AVX-512 code carries
 * MP_TARGET_AVX512_BASE.  The dispatch table (quant.h) only hands such a function
 * out when mp_dispatch says the CPU runs that path.
 */
#ifndef MP_SIMD_H
#define MP_SIMD_H

#if defined(__x86_64__)
#define MP_HAVE_X86 1
#include <immintrin.h>
#define MP_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
/* What MP_KPATH_AVX512 guarantees (F/BW/DQ/VL): code that must run on every
 * AVX-512 CPU the dispatcher admits.  Deliberately without VNNI and BF16:
 * with them enabled GCC may fuse madd+add into vpdpwssd on its own, and the
 * function would fault on an AVX-512 CPU without VNNI (Skylake-X).  A kernel
 * that wants VNNI or BF16 needs its own target and a dispatch check of
 * MP_CPU_AVX512VNNI / MP_CPU_AVX512BF16. */
#define MP_TARGET_AVX512_BASE \
	__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define MP_HAVE_X86 0
#endif

#endif
