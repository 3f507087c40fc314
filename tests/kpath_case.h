/*
 * kpath_case.h — one test case per SIMD kernel path for the kernel tests
 * (test_quant_simd, test_dequant_simd, test_vecf32): a path this CPU lacks
 * is a skipped case, never a pass.  Include after mp_test.h, dispatch.h and
 * cpu.h.
 */
#ifndef MP_KPATH_CASE_H
#define MP_KPATH_CASE_H

static inline int have_path(enum mp_kpath p)
{
	return mp_dispatch_supported(p, mp_cpu_features());
}

/* test_FN_PATH(): FN(MP_KPATH_PATH), or skipped saying WHY. */
#define PATH_CASE(fn, path, why)                                                \
	static void test_##fn##_##path(void)                                    \
	{                                                                       \
		if (!have_path(MP_KPATH_##path))                                \
			SKIP_CASE(why);                                         \
		fn(MP_KPATH_##path);                                            \
	}

#endif
