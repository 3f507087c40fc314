/*
 * iq_grids.h — the i-quant lookup tables (FORMATS.md §2.7), defined in the
 * generated iq_grids.c.  Each grid entry packs its lanes little-endian: byte j
 * of an entry is the magnitude of element j of its group (the IQ1 grid's
 * bytes are int8 −1/0/+1).  Read entries as bytes through a uint8_t/int8_t
 * pointer or shift them out; the tables are constant.
 */
#ifndef MP_IQ_GRIDS_H
#define MP_IQ_GRIDS_H

#include <stdint.h>

#define MP_IQ1S_NGRID 2048
#define MP_IQ1_DELTA 0.125f     /* IQ1S_DELTA = IQ1M_DELTA */

extern const uint64_t mp_iq2xxs_grid[256];    /* bytes in {8, 25, 43} */
extern const uint64_t mp_iq2xs_grid[512];     /* bytes in {8, 25, 43} */
extern const uint64_t mp_iq2s_grid[1024];     /* bytes in {8, 25, 43} */
extern const uint32_t mp_iq3xxs_grid[256];    /* bytes in {4, 12, ..., 52, 62} */
extern const uint32_t mp_iq3s_grid[512];      /* bytes in {1, 3, ..., 15} */
extern const uint64_t mp_iq1s_grid[MP_IQ1S_NGRID]; /* int8 bytes in {-1, 0, +1} */

/* SIGNS7(i) = i | (popcount(i) & 1) << 7: bit j set ⇒ element j negative. */
extern const uint8_t mp_ksigns_iq2xs[128];
/* The same signs as byte masks: byte j = 0xFF where bit j of SIGNS7(i) is set. */
extern const uint64_t mp_ksigns64[128];

/* The 16 non-linear levels of IQ4_NL and IQ4_XS, ascending. */
extern const int8_t mp_kvalues_iq4nl[16];

#endif
