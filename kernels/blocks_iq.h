/*
 * blocks_iq.h — block layouts of the i-quants (FORMATS.md §2.4, §2.6), each
 * pinned by a _Static_assert on its size.  Field names follow llama.cpp's
 * ggml-common.h.  Multi-byte fields are little-endian in files; like the rest
 * of kernels/ this assumes a little-endian host.  Every field is 1 or 2 bytes wide and every size even,
 * so the natural layout has no padding (the asserts prove it).
 */
#ifndef MP_BLOCKS_IQ_H
#define MP_BLOCKS_IQ_H

#include <stdint.h>

#include "fp16.h"
#include "types.h"

#define MP_QK4_NL 32            /* elements per IQ4_NL block */

/* IQ2_XXS: 8 groups of 32; group G = qs[4G..4G+3] read as two u32: w0 holds
 * four 8-bit grid indices, w1 four 7-bit sign indices and a 4-bit scale. */
struct mp_block_iq2_xxs {
	mp_f16 d;                     /* super-block scale */
	uint16_t qs[MP_QK_K / 8];     /* grid indices, signs, scales */
};
_Static_assert(sizeof(struct mp_block_iq2_xxs) == 66, "IQ2_XXS block is 66 bytes");

/* IQ2_XS: qs[k] = 9-bit grid index | 7-bit sign index << 9; two 4-bit scales
 * per group of 32 (one per 16 elements). */
struct mp_block_iq2_xs {
	mp_f16 d;                     /* super-block scale */
	uint16_t qs[MP_QK_K / 8];     /* grid index | signs << 9 */
	uint8_t scales[MP_QK_K / 32]; /* low nibble: elements 0..15, high: 16..31 */
};
_Static_assert(sizeof(struct mp_block_iq2_xs) == 74, "IQ2_XS block is 74 bytes");

/* IQ2_S: 10-bit grid indices (low 8 in qs[0..31], high 2 in qh), explicit
 * sign bytes in qs[32..63]. */
struct mp_block_iq2_s {
	mp_f16 d;                     /* super-block scale */
	uint8_t qs[MP_QK_K / 4];      /* 32 index low bytes, then 32 sign bytes */
	uint8_t qh[MP_QK_K / 32];     /* 2 high index bits per sub-group of 8 */
	uint8_t scales[MP_QK_K / 32]; /* two 4-bit scales per group of 32 */
};
_Static_assert(sizeof(struct mp_block_iq2_s) == 82, "IQ2_S block is 82 bytes");

/* IQ3_XXS: 64 8-bit grid indices (4 elements each), then 8 u32: four 7-bit
 * sign indices and a 4-bit scale per group of 32. */
struct mp_block_iq3_xxs {
	mp_f16 d;                     /* super-block scale */
	uint8_t qs[3 * MP_QK_K / 8];  /* indices, then scales-and-signs words */
};
_Static_assert(sizeof(struct mp_block_iq3_xxs) == 98, "IQ3_XXS block is 98 bytes");

/* IQ3_S: 9-bit grid indices (4 elements each), explicit sign bytes, 4-bit
 * odd scales 1 + 2s per group of 32. */
struct mp_block_iq3_s {
	mp_f16 d;                     /* super-block scale */
	uint8_t qs[MP_QK_K / 4];      /* index low bytes */
	uint8_t qh[MP_QK_K / 32];     /* index high bits, one per index */
	uint8_t signs[MP_QK_K / 8];   /* one sign byte per sub-group of 8 */
	uint8_t scales[MP_QK_K / 64]; /* two 4-bit scales per byte */
};
_Static_assert(sizeof(struct mp_block_iq3_s) == 110, "IQ3_S block is 110 bytes");

/* IQ1_S: 11-bit indices into the ±1/0 grid; per group of 32 a 3-bit scale and
 * the sign of the ±0.125 shift (qh bits 12..14 and 15). */
struct mp_block_iq1_s {
	mp_f16 d;                     /* super-block scale */
	uint8_t qs[MP_QK_K / 8];      /* index low bytes */
	uint16_t qh[MP_QK_K / 32];    /* 3 high bits ×4, scale << 12, delta sign << 15 */
};
_Static_assert(sizeof(struct mp_block_iq1_s) == 50, "IQ1_S block is 50 bytes");

/* IQ1_M: no d field — the f16 super-block scale is spread over the top
 * nibbles of the four u16 words of scales[]; 3-bit scales per 16 elements
 * and a delta sign per sub-group of 8. */
struct mp_block_iq1_m {
	uint8_t qs[MP_QK_K / 8];      /* index low bytes */
	uint8_t qh[MP_QK_K / 16];     /* per sub-group: 3 high bits + delta sign */
	uint8_t scales[MP_QK_K / 32]; /* 4 LE u16: 3-bit scales, d's nibbles on top */
};
_Static_assert(sizeof(struct mp_block_iq1_m) == 56, "IQ1_M block is 56 bytes");

/* IQ4_NL: 32 elements, 4-bit indices into kvalues_iq4nl. */
struct mp_block_iq4_nl {
	mp_f16 d;                     /* block scale */
	uint8_t qs[MP_QK4_NL / 2];    /* low nibbles: elements 0..15, high: 16..31 */
};
_Static_assert(sizeof(struct mp_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");

/* IQ4_XS: IQ4_NL's levels with a 6-bit scale (ls − 32) per group of 32. */
struct mp_block_iq4_xs {
	mp_f16 d;                     /* super-block scale */
	uint16_t scales_h;            /* high 2 bits of each group's scale */
	uint8_t scales_l[MP_QK_K / 64]; /* low 4 bits, two groups per byte */
	uint8_t qs[MP_QK_K / 2];      /* as IQ4_NL, 16 bytes per group */
};
_Static_assert(sizeof(struct mp_block_iq4_xs) == 136, "IQ4_XS block is 136 bytes");

#endif
