/*
 * dispatch.h — which kernel path runs: the scalar reference, AVX2 or AVX-512.
 *
 * Chosen once from the CPU probe, unless MOEPAGER_CPU=scalar|avx2|avx512
 * forces a path (for tests and side-by-side comparisons).  Forcing a path the
 * processor cannot run is an error, never a silent downgrade.
 */
#ifndef MP_DISPATCH_H
#define MP_DISPATCH_H

#include <stddef.h>

enum mp_kpath {
	MP_KPATH_SCALAR = 0,
	MP_KPATH_AVX2 = 1,     /* AVX2 + FMA + F16C */
	MP_KPATH_AVX512 = 2,   /* AVX-512 F/BW/DQ/VL (VNNI/BF16 used when present) */
	MP_KPATH_COUNT
};

/* Best path the features allow. */
enum mp_kpath mp_dispatch_best(unsigned cpu_features);

/* Whether the features can run path. */
int mp_dispatch_supported(enum mp_kpath path, unsigned cpu_features);

/* Path from a name ("scalar", "avx2", "avx512"): 0 or -MP_EARG. */
int mp_dispatch_parse(const char *name, enum mp_kpath *out);

const char *mp_dispatch_name(enum mp_kpath path);

/* Resolves the path to use: force (NULL or "" for automatic, else a name from
 * MOEPAGER_CPU) against the CPU features.  Returns 0 with *out set, or
 * -MP_EARG (unknown name) / -MP_EUNAVAIL (CPU lacks it) with a sentence in why. */
int mp_dispatch_resolve(const char *force, unsigned cpu_features,
			enum mp_kpath *out, char *why, size_t why_len);

/* The process-wide path: resolved on first use from MOEPAGER_CPU and the CPU.
 * Returns 0, or the error of mp_dispatch_resolve (then why says it; the path
 * falls back to nothing: callers must stop). */
int mp_dispatch_init(char *why, size_t why_len);
enum mp_kpath mp_dispatch_path(void);   /* valid after mp_dispatch_init() == 0 */

#endif
