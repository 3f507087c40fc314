/*
 * cpu.c — cpuid probe.  A feature counts only when the OS also saves the
 * register state it needs (XCR0 via xgetbv): AVX needs XMM|YMM, AVX-512 also
 * needs opmask and ZMM state.  Non-x86 builds report no features.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static unsigned probe(void)
{
	unsigned a, b, c, d, f = 0;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (c & bit_SSE4_2)
		f |= MP_CPU_SSE42;
	int osxsave = (c & bit_OSXSAVE) != 0;
	int has_avx = (c & bit_AVX) != 0, has_fma = (c & bit_FMA) != 0, has_f16c = (c & bit_F16C) != 0;
	uint64_t xcr0 = osxsave ? xgetbv0() : 0;
	int ymm_ok = (xcr0 & 0x6) == 0x6;
	int zmm_ok = (xcr0 & 0xe6) == 0xe6;
	if (!ymm_ok)
		return f;
	if (has_avx)
		f |= MP_CPU_AVX;
	if (has_fma)
		f |= MP_CPU_FMA;
	if (has_f16c)
		f |= MP_CPU_F16C;
	if (__get_cpuid_max(0, 0) < 7)
		return f;
	__cpuid_count(7, 0, a, b, c, d);
	unsigned b7 = b, c7 = c;
	if (b7 & bit_AVX2)
		f |= MP_CPU_AVX2;
	if (zmm_ok) {
		if (b7 & bit_AVX512F)
			f |= MP_CPU_AVX512F;
		if (b7 & bit_AVX512BW)
			f |= MP_CPU_AVX512BW;
		if (b7 & bit_AVX512DQ)
			f |= MP_CPU_AVX512DQ;
		if (b7 & bit_AVX512VL)
			f |= MP_CPU_AVX512VL;
		if (c7 & bit_AVX512VNNI)
			f |= MP_CPU_AVX512VNNI;
		if (c7 & bit_AVX512VBMI)
			f |= MP_CPU_AVX512VBMI;
	}
	__cpuid_count(7, 1, a, b, c, d);
	if (a & (1u << 4))
		f |= MP_CPU_AVXVNNI;
	if (zmm_ok && (a & (1u << 5)))
		f |= MP_CPU_AVX512BF16;
	return f;
}

static void brand(char *out, size_t len)
{
	unsigned r[12];
	if (__get_cpuid_max(0x80000000, 0) < 0x80000004) {
		snprintf(out, len, "unknown");
		return;
	}
	for (unsigned i = 0; i < 3; i++)
		__get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
	char s[49];
	memcpy(s, r, 48);
	s[48] = 0;
	const char *p = s;
	while (*p == ' ')
		p++;
	snprintf(out, len, "%s", p);
}
#else
static unsigned probe(void) { return 0; }
static void brand(char *out, size_t len) { snprintf(out, len, "unknown"); }
#endif

static _Atomic unsigned cached;   /* features | 1u << 31 once probed */

unsigned mp_cpu_features(void)
{
	unsigned v = atomic_load_explicit(&cached, memory_order_relaxed);
	if (!(v & (1u << 31))) {
		v = probe() | (1u << 31);
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v & ~(1u << 31);
}

static const struct { unsigned bit; const char *name; } names[] = {
	{ MP_CPU_SSE42, "sse4.2" }, { MP_CPU_AVX, "avx" }, { MP_CPU_AVX2, "avx2" },
	{ MP_CPU_FMA, "fma" }, { MP_CPU_F16C, "f16c" }, { MP_CPU_AVXVNNI, "avx-vnni" },
	{ MP_CPU_AVX512F, "avx512f" }, { MP_CPU_AVX512BW, "avx512bw" },
	{ MP_CPU_AVX512DQ, "avx512dq" }, { MP_CPU_AVX512VL, "avx512vl" },
	{ MP_CPU_AVX512VNNI, "avx512vnni" }, { MP_CPU_AVX512BF16, "avx512bf16" },
	{ MP_CPU_AVX512VBMI, "avx512vbmi" },
};

char *mp_cpu_describe(unsigned mask, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!(mask & names[i].bit))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", names[i].name);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (!used)
		snprintf(buf, len, "none");
	return buf;
}

const char *mp_cpu_brand(void)
{
	static char name[64];
	static _Atomic int done;
	if (!atomic_load(&done)) {
		brand(name, sizeof name);
		atomic_store(&done, 1);
	}
	return name;
}
