/* dispatch.c — kernel path selection from cpuid and MOEPAGER_CPU. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dispatch.h"
#include "err.h"

static const char *const path_names[MP_KPATH_COUNT] = { "scalar", "avx2", "avx512" };

static const unsigned path_needs[MP_KPATH_COUNT] = {
	[MP_KPATH_SCALAR] = 0,
	[MP_KPATH_AVX2] = MP_CPU_AVX | MP_CPU_AVX2 | MP_CPU_FMA | MP_CPU_F16C,
	[MP_KPATH_AVX512] = MP_CPU_AVX | MP_CPU_AVX2 | MP_CPU_FMA | MP_CPU_F16C |
			    MP_CPU_AVX512F | MP_CPU_AVX512BW | MP_CPU_AVX512DQ | MP_CPU_AVX512VL,
};

int mp_dispatch_supported(enum mp_kpath path, unsigned cpu_features)
{
	return (unsigned)path < MP_KPATH_COUNT &&
	       (cpu_features & path_needs[path]) == path_needs[path];
}

enum mp_kpath mp_dispatch_best(unsigned cpu_features)
{
	for (int p = MP_KPATH_COUNT - 1; p > 0; p--)
		if (mp_dispatch_supported((enum mp_kpath)p, cpu_features))
			return (enum mp_kpath)p;
	return MP_KPATH_SCALAR;
}

int mp_dispatch_parse(const char *name, enum mp_kpath *out)
{
	for (int p = 0; p < MP_KPATH_COUNT; p++)
		if (strcmp(name, path_names[p]) == 0) {
			*out = (enum mp_kpath)p;
			return 0;
		}
	return -MP_EARG;
}

const char *mp_dispatch_name(enum mp_kpath path)
{
	return (unsigned)path < MP_KPATH_COUNT ? path_names[path] : "?";
}

int mp_dispatch_resolve(const char *force, unsigned cpu_features,
			enum mp_kpath *out, char *why, size_t why_len)
{
	if (!force || !*force) {
		*out = mp_dispatch_best(cpu_features);
		snprintf(why, why_len, "%s (best this CPU runs)", path_names[*out]);
		return 0;
	}
	enum mp_kpath p;
	if (mp_dispatch_parse(force, &p) < 0) {
		snprintf(why, why_len, "MOEPAGER_CPU=%s: expected scalar, avx2 or avx512", force);
		return -MP_EARG;
	}
	if (!mp_dispatch_supported(p, cpu_features)) {
		char have[256];
		snprintf(why, why_len, "MOEPAGER_CPU=%s: this CPU lacks it (it has: %s)", force,
			 mp_cpu_describe(cpu_features, have, sizeof have));
		return -MP_EUNAVAIL;
	}
	*out = p;
	snprintf(why, why_len, "%s (forced by MOEPAGER_CPU)", path_names[p]);
	return 0;
}

static _Atomic int chosen = -1;

int mp_dispatch_init(char *why, size_t why_len)
{
	enum mp_kpath p;
	int rc = mp_dispatch_resolve(getenv("MOEPAGER_CPU"), mp_cpu_features(), &p, why, why_len);
	if (rc == 0)
		atomic_store(&chosen, (int)p);
	return rc;
}

enum mp_kpath mp_dispatch_path(void)
{
	int p = atomic_load(&chosen);
	return p < 0 ? MP_KPATH_SCALAR : (enum mp_kpath)p;
}
