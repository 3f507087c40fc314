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

/* ---- 32-element weight blocks (FORMATS.md §2.4) --------------------------
 * Low nibbles of qs hold elements 0..15, high nibbles 16..31; qh bit j is the
 * fifth bit of element j. */

/* Q4_0: y = (q − 8)·d. */
struct mp_block_q4_0 {
	mp_f16 d;              /* scale */
	uint8_t qs[MP_QK8 / 2]; /* 4-bit codes, two per byte */
};
_Static_assert(sizeof(struct mp_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* Q4_1: y = q·d + m. */
struct mp_block_q4_1 {
	mp_f16 d;              /* scale */
	mp_f16 m;              /* offset (the block minimum) */
	uint8_t qs[MP_QK8 / 2]; /* 4-bit codes */
};
_Static_assert(sizeof(struct mp_block_q4_1) == 20, "Q4_1 block is 20 bytes");

/* Q5_0: y = (q − 16)·d, q = nibble | (bit of qh) << 4. */
struct mp_block_q5_0 {
	mp_f16 d;              /* scale */
	uint8_t qh[4];         /* fifth bits, little-endian u32 */
	uint8_t qs[MP_QK8 / 2]; /* low 4 bits */
};
_Static_assert(sizeof(struct mp_block_q5_0) == 22, "Q5_0 block is 22 bytes");

/* Q5_1: y = q·d + m. */
struct mp_block_q5_1 {
	mp_f16 d;              /* scale */
	mp_f16 m;              /* offset */
	uint8_t qh[4];         /* fifth bits, little-endian u32 */
	uint8_t qs[MP_QK8 / 2]; /* low 4 bits */
};
_Static_assert(sizeof(struct mp_block_q5_1) == 24, "Q5_1 block is 24 bytes");

/* ---- K-quants, 256-element super-blocks (FORMATS.md §2.5) --------------- */

#define MP_K_SCALE_SIZE 12  /* packed 6-bit scales and mins of Q4_K / Q5_K */

/* Q2_K: y = d·(sc & 15)·q − dmin·(sc >> 4), 16 sub-blocks of 16, q in 0..3. */
struct mp_block_q2_K {
	uint8_t scales[MP_QK_K / 16]; /* low nibble scale, high nibble min */
	uint8_t qs[MP_QK_K / 4];      /* 2-bit codes, four per byte */
	mp_f16 d;                     /* super-block scale of the scales */
	mp_f16 dmin;                  /* super-block scale of the mins */
};
_Static_assert(sizeof(struct mp_block_q2_K) == 84, "Q2_K block is 84 bytes");

/* Q3_K: y = d·(S − 32)·q, q = q2 − 4·(1 − hbit) in −4..3, 6-bit scales S. */
struct mp_block_q3_K {
	uint8_t hmask[MP_QK_K / 8];   /* high bits */
	uint8_t qs[MP_QK_K / 4];      /* low 2 bits */
	uint8_t scales[12];           /* sixteen 6-bit scales, packed */
	mp_f16 d;                     /* super-block scale */
};
_Static_assert(sizeof(struct mp_block_q3_K) == 110, "Q3_K block is 110 bytes");

/* Q4_K: y = d·sc·q − dmin·mn, 8 sub-blocks of 32, q in 0..15. */
struct mp_block_q4_K {
	mp_f16 d;                     /* scale of the scales */
	mp_f16 dmin;                  /* scale of the mins */
	uint8_t scales[MP_K_SCALE_SIZE]; /* 6-bit (sc, mn) pairs, packed */
	uint8_t qs[MP_QK_K / 2];      /* 4-bit codes */
};
_Static_assert(sizeof(struct mp_block_q4_K) == 144, "Q4_K block is 144 bytes");

/* Q5_K: as Q4_K with a fifth bit per code from qh (q in 0..31). */
struct mp_block_q5_K {
	mp_f16 d;                     /* scale of the scales */
	mp_f16 dmin;                  /* scale of the mins */
	uint8_t scales[MP_K_SCALE_SIZE]; /* 6-bit (sc, mn) pairs, packed */
	uint8_t qh[MP_QK_K / 8];      /* fifth bits */
	uint8_t qs[MP_QK_K / 2];      /* low 4 bits */
};
_Static_assert(sizeof(struct mp_block_q5_K) == 176, "Q5_K block is 176 bytes");

/* Q6_K: y = d·scales[e/16]·(q − 32), q in 0..63. */
struct mp_block_q6_K {
	uint8_t ql[MP_QK_K / 2];      /* low 4 bits */
	uint8_t qh[MP_QK_K / 4];      /* high 2 bits */
	int8_t scales[MP_QK_K / 16];  /* signed 8-bit scales */
	mp_f16 d;                     /* super-block scale */
};
_Static_assert(sizeof(struct mp_block_q6_K) == 210, "Q6_K block is 210 bytes");

/* The (scale, min) pair of sub-block j (0..7) of a Q4_K/Q5_K block. */
static inline void mp_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *mn)
{
	if (j < 4) {
		*sc = q[j] & 63;
		*mn = q[j + 4] & 63;
	} else {
		*sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*mn = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* The sixteen signed scales S − 32 of a Q3_K block. */
static inline void mp_q3k_scales(const uint8_t *b, int8_t *out)
{
	for (int k = 0; k < 4; k++) {
		out[k] = (int8_t)(((b[k] & 0xF) | (((b[8 + k] >> 0) & 3) << 4)) - 32);
		out[k + 4] = (int8_t)(((b[k + 4] & 0xF) | (((b[8 + k] >> 2) & 3) << 4)) - 32);
		out[k + 8] = (int8_t)(((b[k] >> 4) | (((b[8 + k] >> 4) & 3) << 4)) - 32);
		out[k + 12] = (int8_t)(((b[k + 4] >> 4) | (((b[8 + k] >> 6) & 3) << 4)) - 32);
	}
}

/* ---- activation and 8-bit blocks (FORMATS.md §2.4, §2.8) ----------------- */

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
void mp_quant_fill_legacy(struct mp_quant_ops *tab);   /* quant_legacy.c */
void mp_quant_fill_k(struct mp_quant_ops *tab);        /* quant_k.c */

#endif
