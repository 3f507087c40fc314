/*
 * quant_iq.c — the i-quants IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ4_NL and IQ4_XS (FORMATS.md §2.4, §2.6): scalar dequantizers,
 * simple quantizers from f32, and the scalar integer dot products.
 *
 * Every type builds a weight as  scale × grid value × sign:
 *   IQ2_*:   db = d·(2s+1)/8,  grid bytes {8, 25, 43}        (8 per entry)
 *   IQ3_XXS: db = d·(2s+1)/4,  grid bytes {4, 12, ..., 62}   (4 per entry)
 *   IQ3_S:   db = d·(2s+1),    grid bytes {1, 3, ..., 15}    (4 per entry)
 *   IQ1_*:   y  = d·(2s+1)·(g + δ),  g ∈ {−1, 0, 1}, δ = ±1/8
 *   IQ4_*:   y  = d·K[q] (IQ4_XS: d·(ls − 32)·K[q]),  K = kvalues_iq4nl
 * The dequantizers follow these formulas literally, in llama.cpp's order of
 * float operations, and reproduce ../shared/testdata/quants/ to f32 rounding.
 *
 * The dot products pair each type with Q8_K (IQ4_NL with Q8_0) and work as
 * llama.cpp's generic CPU code does: integer sums of grid·sign·q8 per scale
 * group, times the integer scale, then one float multiply per block; the
 * constant factors (1/8, 1/4) are applied once at the end.  SIMD variants
 * live in quant_iq_avx2.c and quant_iq_avx512.c and compute the same sums.
 */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "blocks_iq.h"
#include "iq_grids.h"
#include "quant.h"

static inline uint8_t grid_byte64(const uint64_t *grid, int idx, int j)
{
	return (uint8_t)(grid[idx] >> (8 * j));
}

static inline uint8_t grid_byte32(const uint32_t *grid, int idx, int j)
{
	return (uint8_t)(grid[idx] >> (8 * j));
}

static inline float sgn(uint8_t signs, int j)
{
	return (signs >> j) & 1 ? -1.0f : 1.0f;
}

/* ---- dequantizers --------------------------------------------------------- */

static void iq2_xxs_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq2_xxs *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			uint32_t w[2];
			memcpy(w, x[i].qs + 4 * g, 8);
			float db = d * (0.5f + (float)(w[1] >> 28)) * 0.25f;
			for (int t = 0; t < 4; t++) {
				int idx = (w[0] >> (8 * t)) & 255;
				uint8_t s = mp_ksigns_iq2xs[(w[1] >> (7 * t)) & 127];
				for (int j = 0; j < 8; j++)
					*y++ = db * grid_byte64(mp_iq2xxs_grid, idx, j) * sgn(s, j);
			}
		}
	}
}

static void iq2_xs_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq2_xs *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			float db[2] = { d * (0.5f + (float)(x[i].scales[g] & 0xF)) * 0.25f,
					d * (0.5f + (float)(x[i].scales[g] >> 4)) * 0.25f };
			for (int t = 0; t < 4; t++) {
				uint16_t v = x[i].qs[4 * g + t];
				uint8_t s = mp_ksigns_iq2xs[v >> 9];
				for (int j = 0; j < 8; j++)
					*y++ = db[t / 2] * grid_byte64(mp_iq2xs_grid, v & 511, j) * sgn(s, j);
			}
		}
	}
}

static void iq2_s_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq2_s *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			float db[2] = { d * (0.5f + (float)(x[i].scales[g] & 0xF)) * 0.25f,
					d * (0.5f + (float)(x[i].scales[g] >> 4)) * 0.25f };
			for (int t = 0; t < 4; t++) {
				int idx = x[i].qs[4 * g + t] | (((x[i].qh[g] >> (2 * t)) & 3) << 8);
				uint8_t s = x[i].qs[MP_QK_K / 8 + 4 * g + t];
				for (int j = 0; j < 8; j++)
					*y++ = db[t / 2] * grid_byte64(mp_iq2s_grid, idx, j) * sgn(s, j);
			}
		}
	}
}

static void iq3_xxs_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq3_xxs *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			uint32_t w;
			memcpy(&w, x[i].qs + MP_QK_K / 4 + 4 * g, 4);
			float db = d * (0.5f + (float)(w >> 28)) * 0.5f;
			for (int t = 0; t < 4; t++) {
				uint8_t s = mp_ksigns_iq2xs[(w >> (7 * t)) & 127];
				int a = x[i].qs[8 * g + 2 * t], b = x[i].qs[8 * g + 2 * t + 1];
				for (int j = 0; j < 4; j++)
					y[j] = db * grid_byte32(mp_iq3xxs_grid, a, j) * sgn(s, j);
				for (int j = 0; j < 4; j++)
					y[j + 4] = db * grid_byte32(mp_iq3xxs_grid, b, j) * sgn(s, j + 4);
				y += 8;
			}
		}
	}
}

static void iq3_s_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq3_s *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			float db = d * (float)(1 + 2 * ((x[i].scales[g / 2] >> (4 * (g % 2))) & 0xF));
			uint8_t qh = x[i].qh[g];
			for (int t = 0; t < 4; t++) {
				int a = x[i].qs[8 * g + 2 * t] | (((qh >> (2 * t)) & 1) << 8);
				int b = x[i].qs[8 * g + 2 * t + 1] | (((qh >> (2 * t + 1)) & 1) << 8);
				uint8_t s = x[i].signs[4 * g + t];
				for (int j = 0; j < 4; j++)
					y[j] = db * grid_byte32(mp_iq3s_grid, a, j) * sgn(s, j);
				for (int j = 0; j < 4; j++)
					y[j + 4] = db * grid_byte32(mp_iq3s_grid, b, j) * sgn(s, j + 4);
				y += 8;
			}
		}
	}
}

static inline int8_t iq1_lane(int idx, int j)
{
	return (int8_t)(uint8_t)(mp_iq1s_grid[idx] >> (8 * j));
}

static void iq1_s_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq1_s *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++) {
			uint16_t h = x[i].qh[g];
			float dl = d * (float)(2 * ((h >> 12) & 7) + 1);
			float delta = h & 0x8000 ? -MP_IQ1_DELTA : MP_IQ1_DELTA;
			for (int t = 0; t < 4; t++) {
				int idx = x[i].qs[4 * g + t] | (((h >> (3 * t)) & 7) << 8);
				for (int j = 0; j < 8; j++)
					*y++ = dl * ((float)iq1_lane(idx, j) + delta);
			}
		}
	}
}

/* The IQ1_M super-block scale: the top nibbles of the four scale words. */
static inline float iq1_m_scale(const struct mp_block_iq1_m *b, uint16_t sc[4])
{
	memcpy(sc, b->scales, 8);
	uint16_t bits = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) |
				   ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000));
	return mp_f16_to_f32(bits);
}

static void iq1_m_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq1_m *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		uint16_t sc[4];
		float d = iq1_m_scale(&x[i], sc);
		for (int g = 0; g < 8; g++) {
			int sh = 6 * (g % 2);
			float dl[2] = { d * (float)(2 * ((sc[g / 2] >> sh) & 7) + 1),
					d * (float)(2 * ((sc[g / 2] >> (sh + 3)) & 7) + 1) };
			for (int t = 0; t < 4; t++) {
				uint8_t h = x[i].qh[2 * g + t / 2] >> (4 * (t % 2));
				int idx = x[i].qs[4 * g + t] | ((h & 7) << 8);
				float delta = h & 8 ? -MP_IQ1_DELTA : MP_IQ1_DELTA;
				for (int j = 0; j < 8; j++)
					*y++ = dl[t / 2] * ((float)iq1_lane(idx, j) + delta);
			}
		}
	}
}

static void iq4_nl_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq4_nl *x = src;
	for (int64_t i = 0; i < n / MP_QK4_NL; i++, y += MP_QK4_NL) {
		float d = mp_f16_to_f32(x[i].d);
		for (int j = 0; j < MP_QK4_NL / 2; j++) {
			y[j] = d * mp_kvalues_iq4nl[x[i].qs[j] & 0xF];
			y[j + 16] = d * mp_kvalues_iq4nl[x[i].qs[j] >> 4];
		}
	}
}

static inline int iq4_xs_ls(const struct mp_block_iq4_xs *b, int g)
{
	return ((b->scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b->scales_h >> (2 * g)) & 3) << 4);
}

static void iq4_xs_dequant(const void *src, float *y, int64_t n)
{
	const struct mp_block_iq4_xs *x = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		float d = mp_f16_to_f32(x[i].d);
		for (int g = 0; g < 8; g++, y += 32) {
			float dl = d * (float)(iq4_xs_ls(&x[i], g) - 32);
			const uint8_t *qs = x[i].qs + 16 * g;
			for (int j = 0; j < 16; j++) {
				y[j] = dl * mp_kvalues_iq4nl[qs[j] & 0xF];
				y[j + 16] = dl * mp_kvalues_iq4nl[qs[j] >> 4];
			}
		}
	}
}

/* ---- the table ------------------------------------------------------------ */

void mp_quant_fill_iq(struct mp_quant_ops *tab)
{
	tab[MP_TYPE_IQ2_XXS] = (struct mp_quant_ops){ iq2_xxs_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ2_XS] = (struct mp_quant_ops){ iq2_xs_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ2_S] = (struct mp_quant_ops){ iq2_s_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ3_XXS] = (struct mp_quant_ops){ iq3_xxs_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ3_S] = (struct mp_quant_ops){ iq3_s_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ1_S] = (struct mp_quant_ops){ iq1_s_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ1_M] = (struct mp_quant_ops){ iq1_m_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ4_NL] = (struct mp_quant_ops){ iq4_nl_dequant, NULL, { NULL } };
	tab[MP_TYPE_IQ4_XS] = (struct mp_quant_ops){ iq4_xs_dequant, NULL, { NULL } };
}
