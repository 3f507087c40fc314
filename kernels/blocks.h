/*
 * blocks.h — packed block layouts of the quantized types (FORMATS.md §2.4–2.5,
 * §2.8), each pinned by a _Static_assert on its size.  Field names follow the
 * formulas in FORMATS.md.  The i-quant layouts live in blocks_iq.h.
 */
#ifndef MP_BLOCKS_H
#define MP_BLOCKS_H

#include <stdint.h>

#include "fp16.h"
#include "types.h"

#define MP_QK8 32   /* elements per Q8_0 / Q8_1 block */

/* Q8_0: y[j] = qs[j]·d.  Weight type and the activation type of Q4_0, Q5_0,
 * Q8_0 and IQ4_NL. */
struct mp_block_q8_0 {
	mp_f16 d;              /* scale */
	int8_t qs[MP_QK8];     /* quants */
};
_Static_assert(sizeof(struct mp_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* Q8_1 (activations of Q4_1, Q5_1): as Q8_0 plus s = f16(d·Σqs). */
struct mp_block_q8_1 {
	mp_f16 d;              /* scale */
	mp_f16 s;              /* d times the sum of qs */
	int8_t qs[MP_QK8];     /* quants */
};
_Static_assert(sizeof(struct mp_block_q8_1) == 36, "Q8_1 block is 36 bytes");

/* Q8_K (activations of every K- and i-quant): f32 scale, 256 quants and the
 * sums of each 16-element group (for the min terms). */
struct mp_block_q8_K {
	float d;               /* scale (f32, not f16) */
	int8_t qs[MP_QK_K];    /* quants */
	int16_t bsums[MP_QK_K / 16]; /* sum of qs over each group of 16 */
};
_Static_assert(sizeof(struct mp_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* Activation quantizers, llama.cpp's CPU rules (FORMATS.md §2.8): n must be a
 * multiple of the block size. */
void mp_quantize_q8_0(const float *x, struct mp_block_q8_0 *y, int64_t n);
void mp_quantize_q8_1(const float *x, struct mp_block_q8_1 *y, int64_t n);
void mp_quantize_q8_K(const float *x, struct mp_block_q8_K *y, int64_t n);

/* Family fill function of quant_q8.c. */
struct mp_quant_ops;
void mp_quant_fill_q8(struct mp_quant_ops *tab);

#endif
