/*
 * size.h — SIZE arguments and human-readable byte counts.
 *
 * SIZE everywhere (DESIGN.md §6): a number with an optional suffix.  K, M, G, T
 * (also KiB, MiB, GiB, TiB, case-insensitive) are powers of 1024; KB, MB, GB, TB
 * are powers of 1000 and meant literally.  A bare number is bytes.  A decimal
 * fraction is allowed with a suffix ("1.5G").
 */
#ifndef MP_SIZE_H
#define MP_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Parses s into *out (bytes).  Returns 0, or -MP_EARG for an empty string, a
 * bad number or suffix, or a value above 2^63; *out is untouched then. */
int mp_size_parse(const char *s, uint64_t *out);

/* Writes "1.50 GiB"-style text (binary units, 3 significant digits) to buf.
 * Returns buf. */
char *mp_size_format(uint64_t bytes, char *buf, size_t len);

#endif
