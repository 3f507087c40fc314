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
 * The dequantizers compute these products with the same roundings as
 * llama.cpp and reproduce tests/data/quants/ to f32 rounding.
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
#include "quant_iq.h"

/* ---- the IQ2/IQ3 families: one decoded form ---------------------------------
 *
 * A group of 32 of IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS or IQ3_S decodes to four
 * sub-groups of 8, each eight magnitude bytes (one 8-lane grid entry, or two
 * 4-lane IQ3 entries joined) with a sign byte, and the odd integer scale
 * 2s+1 of each half.  A weight is then  d·mult·(2s+1)·byte·sign, mult being
 * 1/8 (IQ2), 1/4 (IQ3_XXS) or 1 (IQ3_S).  Since d·(2s+1)·mult equals
 * llama.cpp's d·(0.5+s)·0.25 (or ·0.5) bit for bit (the factors differ by
 * powers of two), dequant matches it exactly.
 */
struct iq_group {
	uint64_t mag[4];       /* magnitude bytes of sub-groups 0..3 */
	uint8_t signs[4];      /* bit j set ⇒ element j negative */
	int ls[2];             /* 2s+1 of sub-groups 0-1 and 2-3 */
};

/* Fast nearest-entry search.  Every grid's lanes take few levels (IQ2: 3 of
 * them, 8 lanes; IQ1: −1, 0, 1, 8 lanes; IQ3: 8 levels, 4 lanes), so every
 * entry is stored as two base-nlev codes of its two halves, and the squared
 * distance of an entry to a target is cost[0][code0] + cost[1][code1], with
 * both cost tables (at most 81 entries) made once per target.  Filled once by
 * mp_quant_fill_iq() (under the table's pthread_once), read-only afterwards. */
struct gridq {
	int entries;                    /* grid size */
	int half;                       /* lanes per half: 4 (8-lane grids) or 2 */
	int nlev;                       /* levels per lane: 3 or 8 */
	int ncode;                      /* nlev^half ≤ 81 */
	float level[8];                 /* the lane values */
	uint8_t code[2][MP_IQ1S_NGRID]; /* codes of the two halves per entry */
};

static struct gridq gq_iq2xxs, gq_iq2xs, gq_iq2s, gq_iq3xxs, gq_iq3s, gq_iq1s;

struct grid_type {
	size_t block_bytes;    /* bytes per super-block; d is its first field */
	void (*decode)(const uint8_t *blk, int g, struct iq_group *out);
	float mult;            /* weight = d·mult·ls·byte·sign */
	/* for the quantizer: */
	int lanes;             /* 8 or 4 bytes per entry */
	int parity;            /* eighth sign implied by even parity */
	float gmax;            /* largest grid byte */
	const struct gridq *gq; /* its fast search */
};

static void iq2_xxs_decode(const uint8_t *blk, int g, struct iq_group *o)
{
	const struct mp_block_iq2_xxs *x = (const void *)blk;
	uint32_t w[2];
	memcpy(w, x->qs + 4 * g, 8);
	for (int t = 0; t < 4; t++) {
		o->mag[t] = mp_iq2xxs_grid[(w[0] >> (8 * t)) & 255];
		o->signs[t] = mp_ksigns_iq2xs[(w[1] >> (7 * t)) & 127];
	}
	o->ls[0] = o->ls[1] = (int)(2 * (w[1] >> 28) + 1);
}

static void iq2_xs_decode(const uint8_t *blk, int g, struct iq_group *o)
{
	const struct mp_block_iq2_xs *x = (const void *)blk;
	for (int t = 0; t < 4; t++) {
		uint16_t v = x->qs[4 * g + t];
		o->mag[t] = mp_iq2xs_grid[v & 511];
		o->signs[t] = mp_ksigns_iq2xs[v >> 9];
	}
	o->ls[0] = 2 * (x->scales[g] & 0xF) + 1;
	o->ls[1] = 2 * (x->scales[g] >> 4) + 1;
}

static void iq2_s_decode(const uint8_t *blk, int g, struct iq_group *o)
{
	const struct mp_block_iq2_s *x = (const void *)blk;
	for (int t = 0; t < 4; t++) {
		o->mag[t] = mp_iq2s_grid[x->qs[4 * g + t] | (((x->qh[g] >> (2 * t)) & 3) << 8)];
		o->signs[t] = x->qs[MP_QK_K / 8 + 4 * g + t];
	}
	o->ls[0] = 2 * (x->scales[g] & 0xF) + 1;
	o->ls[1] = 2 * (x->scales[g] >> 4) + 1;
}

static void iq3_xxs_decode(const uint8_t *blk, int g, struct iq_group *o)
{
	const struct mp_block_iq3_xxs *x = (const void *)blk;
	const uint8_t *qs = x->qs + 8 * g;
	uint32_t w;
	memcpy(&w, x->qs + MP_QK_K / 4 + 4 * g, 4);
	for (int t = 0; t < 4; t++) {
		o->mag[t] = mp_iq3xxs_grid[qs[2 * t]] | (uint64_t)mp_iq3xxs_grid[qs[2 * t + 1]] << 32;
		o->signs[t] = mp_ksigns_iq2xs[(w >> (7 * t)) & 127];
	}
	o->ls[0] = o->ls[1] = (int)(2 * (w >> 28) + 1);
}

static void iq3_s_decode(const uint8_t *blk, int g, struct iq_group *o)
{
	const struct mp_block_iq3_s *x = (const void *)blk;
	const uint8_t *qs = x->qs + 8 * g;
	int qh = x->qh[g];
	for (int t = 0; t < 4; t++) {
		int ia = qs[2 * t] | (((qh >> (2 * t)) & 1) << 8);
		int ib = qs[2 * t + 1] | (((qh >> (2 * t + 1)) & 1) << 8);
		o->mag[t] = mp_iq3s_grid[ia] | (uint64_t)mp_iq3s_grid[ib] << 32;
		o->signs[t] = x->signs[4 * g + t];
	}
	o->ls[0] = o->ls[1] = 2 * ((x->scales[g / 2] >> (4 * (g % 2))) & 0xF) + 1;
}

static const struct grid_type gt_iq2xxs = { sizeof(struct mp_block_iq2_xxs), iq2_xxs_decode, 0.125f,
					    8, 1, 43, &gq_iq2xxs };
static const struct grid_type gt_iq2xs = { sizeof(struct mp_block_iq2_xs), iq2_xs_decode, 0.125f,
					   8, 1, 43, &gq_iq2xs };
static const struct grid_type gt_iq2s = { sizeof(struct mp_block_iq2_s), iq2_s_decode, 0.125f,
					  8, 0, 43, &gq_iq2s };
static const struct grid_type gt_iq3xxs = { sizeof(struct mp_block_iq3_xxs), iq3_xxs_decode, 0.25f,
					    4, 1, 62, &gq_iq3xxs };
static const struct grid_type gt_iq3s = { sizeof(struct mp_block_iq3_s), iq3_s_decode, 1.0f,
					  4, 0, 15, &gq_iq3s };

static inline float blk_d(const uint8_t *blk)
{
	mp_f16 h;
	memcpy(&h, blk, 2);
	return mp_f16_to_f32(h);
}

/* ---- dequantizers --------------------------------------------------------- */

static void grid_dequant(const struct grid_type *gt, const void *src, float *y, int64_t n)
{
	const uint8_t *blk = src;
	for (int64_t i = 0; i < n / MP_QK_K; i++, blk += gt->block_bytes) {
		float d = blk_d(blk);
		for (int g = 0; g < 8; g++) {
			struct iq_group q;
			gt->decode(blk, g, &q);
			for (int t = 0; t < 4; t++) {
				float db = d * (float)q.ls[t / 2] * gt->mult;
				for (int j = 0; j < 8; j++) {
					float v = db * (float)(uint8_t)(q.mag[t] >> (8 * j));
					*y++ = (q.signs[t] >> j) & 1 ? -v : v;
				}
			}
		}
	}
}

static void iq2_xxs_dequant(const void *src, float *y, int64_t n)
{
	grid_dequant(&gt_iq2xxs, src, y, n);
}

static void iq2_xs_dequant(const void *src, float *y, int64_t n)
{
	grid_dequant(&gt_iq2xs, src, y, n);
}

static void iq2_s_dequant(const void *src, float *y, int64_t n)
{
	grid_dequant(&gt_iq2s, src, y, n);
}

static void iq3_xxs_dequant(const void *src, float *y, int64_t n)
{
	grid_dequant(&gt_iq3xxs, src, y, n);
}

static void iq3_s_dequant(const void *src, float *y, int64_t n)
{
	grid_dequant(&gt_iq3s, src, y, n);
}


/* ---- IQ1, IQ4 ---------------------------------------------------------------- */

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

/* ---- quantizers ------------------------------------------------------------
 *
 * Simple and exhaustive rather than clever (weights normally arrive already
 * quantized; these exist for tests and tools):
 *  1. the super-block scale d is set so that the largest |x| of the block is
 *     reachable with the largest scale code and the largest grid value, then
 *     rounded to f16 (and used rounded from there on);
 *  2. for each scale group every scale code is tried; for each code every
 *     sub-group of 8 takes its nearest grid point by exhaustive search, and
 *     the code with the smallest squared error wins.
 * Signs come from x.  Where the format implies the eighth sign by even parity
 * (IQ2_XXS, IQ2_XS, IQ3_XXS) and x has an odd number of negatives, the
 * element of smallest |x| keeps the wrong sign, and the search fits that.
 * An input with exact representation comes back exactly (tests check it).
 */

/* One sub-group of 8: its sign byte and grid indices (one 8-lane entry, or
 * two 4-lane entries for elements 0..3 and 4..7). */
struct sub_code {
	uint8_t signs;         /* bit j set ⇒ element j negative */
	uint16_t idx[2];       /* grid indices */
};

/* Block scale from the largest |x|: the value that maps it onto top (the
 * largest reachable multiple of d), as f16, finite and non-negative. */
static mp_f16 block_scale(const float *x, int n, float top)
{
	float amax = 0;
	for (int j = 0; j < n; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	return mp_f32_to_f16(fminf(amax / top, 65504.0f));
}

/* Sign byte of x[0..8); m gets the magnitudes to fit.  With parity and an odd
 * number of negatives the smallest |x| keeps the wrong sign: m = −|x| there. */
static uint8_t sign8(const float *x, int parity, float *m)
{
	uint8_t s = 0;
	int small = 0;
	for (int j = 0; j < 8; j++) {
		m[j] = fabsf(x[j]);
		if (x[j] < 0)
			s |= (uint8_t)(1u << j);
		if (m[j] < m[small])
			small = j;
	}
	if (parity && (__builtin_popcount(s) & 1)) {
		s ^= (uint8_t)(1u << small);
		m[small] = -m[small];
	}
	return s;
}

/* Nearest entry of f to t[0..lanes) (in grid units); *err = squared distance. */
/* Codes of a grid whose entries have 2·half byte lanes, each one of the
 * nlev bytes of level (as bytes: −1 is 0xFF). */
static void gridq_init(struct gridq *g, const void *grid, int entries, int half, const int *level, int nlev)
{
	const uint8_t *bytes = grid;
	g->entries = entries;
	g->half = half;
	g->nlev = nlev;
	g->ncode = 1;
	for (int j = 0; j < half; j++)
		g->ncode *= nlev;
	for (int k = 0; k < nlev; k++)
		g->level[k] = (float)level[k];
	for (int e = 0; e < entries; e++)
		for (int h = 0; h < 2; h++) {
			int c = 0;
			for (int j = half - 1; j >= 0; j--) {
				uint8_t b = bytes[(size_t)e * (size_t)(2 * half) + (size_t)(half * h + j)];
				int k = 0;
				while (k < nlev - 1 && (uint8_t)level[k] != b)
					k++;
				c = nlev * c + k;
			}
			g->code[h][e] = (uint8_t)c;
		}
}

/* Nearest entry of g to t[0..2·half); *err = squared distance. */
static int gridq_nearest(const struct gridq *g, const float *t, float *err)
{
	float cost[2][81];
	for (int h = 0; h < 2; h++) {
		float e[4][8];
		for (int j = 0; j < g->half; j++)
			for (int k = 0; k < g->nlev; k++) {
				float dv = t[g->half * h + j] - g->level[k];
				e[j][k] = dv * dv;
			}
		/* code = (..(k[half-1]·nlev + k[half-2])·nlev ..)·nlev + k[0], built
		 * digit by digit from the top, as gridq_init() builds it */
		float *tab = cost[h];
		int n = 1;
		tab[0] = 0;
		for (int j = g->half - 1; j >= 0; j--) {
			for (int c = n - 1; c >= 0; c--)
				for (int k = g->nlev - 1; k >= 0; k--)
					tab[c * g->nlev + k] = tab[c] + e[j][k];
			n *= g->nlev;
		}
	}
	int best = 0;
	float be = INFINITY;
	for (int i = 0; i < g->entries; i++) {
		float s = cost[0][g->code[0][i]] + cost[1][g->code[1][i]];
		if (s < be) {
			be = s;
			best = i;
		}
	}
	*err = be;
	return best;
}

static int nearest_entry(const struct grid_type *f, const float *t, float *err)
{
	return gridq_nearest(f->gq, t, err);
}

/* Fits nsub sub-groups of 8 (x[0..8·nsub)) that share one scale code under
 * block scale d: returns the code s (0..15) and fills code[0..nsub). */
static int fit_group(const struct grid_type *f, const float *x, int nsub, float d,
		     struct sub_code *code)
{
	float m[4][8];
	uint8_t signs[4];
	for (int t = 0; t < nsub; t++)
		signs[t] = sign8(x + 8 * t, f->parity, m[t]);
	int best_s = 0;
	float best_err = INFINITY;
	for (int s = 0; s < 16; s++) {
		float db = d * f->mult * (float)(2 * s + 1);
		float err = 0;
		struct sub_code c[4];
		for (int t = 0; t < nsub && err < best_err; t++) {
			c[t].signs = signs[t];
			for (int k = 0; k < 8 / f->lanes; k++) {
				float tg[8], e;
				for (int j = 0; j < f->lanes; j++)
					tg[j] = m[t][f->lanes * k + j] / db;
				c[t].idx[k] = (uint16_t)nearest_entry(f, tg, &e);
				err += e * db * db;
			}
		}
		if (err < best_err) {
			best_err = err;
			best_s = s;
			memcpy(code, c, (size_t)nsub * sizeof c[0]);
		}
	}
	return best_s;
}

/* d for the IQ2/IQ3 families: the largest |x| at s = 15 and the largest byte. */
static mp_f16 fam_scale(const struct grid_type *f, const float *x)
{
	return block_scale(x, MP_QK_K, f->gmax * f->mult * 31.0f);
}

static void iq2_xxs_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq2_xxs *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = fam_scale(&gt_iq2xxs, x);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int g = 0; g < 8; g++) {
			struct sub_code c[4];
			int s = fit_group(&gt_iq2xxs, x + 32 * g, 4, d, c);
			uint32_t w[2] = { 0, (uint32_t)s << 28 };
			for (int t = 0; t < 4; t++) {
				w[0] |= (uint32_t)c[t].idx[0] << (8 * t);
				w[1] |= (uint32_t)(c[t].signs & 127) << (7 * t);
			}
			memcpy(y[i].qs + 4 * g, w, 8);
		}
	}
}

static void iq2_xs_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq2_xs *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = fam_scale(&gt_iq2xs, x);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int h = 0; h < 16; h++) {      /* scale per 16 elements */
			struct sub_code c[2];
			int s = fit_group(&gt_iq2xs, x + 16 * h, 2, d, c);
			y[i].scales[h / 2] |= (uint8_t)(s << (4 * (h % 2)));
			for (int t = 0; t < 2; t++)
				y[i].qs[2 * h + t] = (uint16_t)(c[t].idx[0] | (c[t].signs & 127) << 9);
		}
	}
}

static void iq2_s_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq2_s *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = fam_scale(&gt_iq2s, x);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int h = 0; h < 16; h++) {
			struct sub_code c[2];
			int s = fit_group(&gt_iq2s, x + 16 * h, 2, d, c);
			y[i].scales[h / 2] |= (uint8_t)(s << (4 * (h % 2)));
			for (int t = 0; t < 2; t++) {
				int k = 2 * h + t;      /* sub-group 0..31; group k/4, t' = k%4 */
				y[i].qs[k] = (uint8_t)c[t].idx[0];
				y[i].qh[k / 4] |= (uint8_t)((c[t].idx[0] >> 8) << (2 * (k % 4)));
				y[i].qs[MP_QK_K / 8 + k] = c[t].signs;
			}
		}
	}
}

static void iq3_xxs_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq3_xxs *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = fam_scale(&gt_iq3xxs, x);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int g = 0; g < 8; g++) {
			struct sub_code c[4];
			uint32_t w = (uint32_t)fit_group(&gt_iq3xxs, x + 32 * g, 4, d, c) << 28;
			for (int t = 0; t < 4; t++) {
				y[i].qs[8 * g + 2 * t] = (uint8_t)c[t].idx[0];
				y[i].qs[8 * g + 2 * t + 1] = (uint8_t)c[t].idx[1];
				w |= (uint32_t)(c[t].signs & 127) << (7 * t);
			}
			memcpy(y[i].qs + MP_QK_K / 4 + 4 * g, &w, 4);
		}
	}
}

static void iq3_s_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq3_s *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = fam_scale(&gt_iq3s, x);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int g = 0; g < 8; g++) {
			struct sub_code c[4];
			int s = fit_group(&gt_iq3s, x + 32 * g, 4, d, c);
			y[i].scales[g / 2] |= (uint8_t)(s << (4 * (g % 2)));
			for (int t = 0; t < 4; t++) {
				for (int k = 0; k < 2; k++) {
					y[i].qs[8 * g + 2 * t + k] = (uint8_t)c[t].idx[k];
					y[i].qh[g] |= (uint8_t)((c[t].idx[k] >> 8) << (2 * t + k));
				}
				y[i].signs[4 * g + t] = c[t].signs;
			}
		}
	}
}

/* IQ1: nearest grid entry to x[0..8) as dl·(g + delta); *err in x units². */
static int iq1_nearest(const float *x, float dl, float delta, float *err)
{
	float t[8];
	for (int j = 0; j < 8; j++)
		t[j] = x[j] / dl - delta;
	int best = gridq_nearest(&gq_iq1s, t, err);
	*err *= dl * dl;
	return best;
}

/* The largest IQ1 value is d·15·1.125. */
#define IQ1_TOP (15.0f * (1.0f + MP_IQ1_DELTA))

static void iq1_s_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq1_s *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = block_scale(x, MP_QK_K, IQ1_TOP);
		float d = mp_f16_to_f32(y[i].d);
		if (d == 0)
			continue;
		for (int g = 0; g < 8; g++) {
			const float *xg = x + 32 * g;
			float best = INFINITY;
			for (int s = 0; s < 8; s++) {
				for (int neg = 0; neg < 2; neg++) {
					float dl = d * (float)(2 * s + 1), err = 0;
					int idx[4];
					for (int t = 0; t < 4 && err < best; t++) {
						float e;
						idx[t] = iq1_nearest(xg + 8 * t, dl,
								     neg ? -MP_IQ1_DELTA : MP_IQ1_DELTA, &e);
						err += e;
					}
					if (err >= best)
						continue;
					best = err;
					uint16_t h = (uint16_t)(s << 12 | neg << 15);
					for (int t = 0; t < 4; t++) {
						y[i].qs[4 * g + t] = (uint8_t)idx[t];
						h |= (uint16_t)((idx[t] >> 8) << (3 * t));
					}
					y[i].qh[g] = h;
				}
			}
		}
	}
}

static void iq1_m_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq1_m *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		mp_f16 dh = block_scale(x, MP_QK_K, IQ1_TOP);
		float d = mp_f16_to_f32(dh);
		uint16_t sc[4] = { 0 };
		for (int h = 0; h < 16 && d != 0; h++) {   /* scale per 16 elements */
			float best = INFINITY;
			for (int s = 0; s < 8; s++) {
				float dl = d * (float)(2 * s + 1), err = 0;
				int idx[2], neg[2];
				for (int t = 0; t < 2; t++) {
					float ep, en;
					int ip = iq1_nearest(x + 16 * h + 8 * t, dl, MP_IQ1_DELTA, &ep);
					int in = iq1_nearest(x + 16 * h + 8 * t, dl, -MP_IQ1_DELTA, &en);
					neg[t] = en < ep;
					idx[t] = neg[t] ? in : ip;
					err += neg[t] ? en : ep;
				}
				if (err >= best)
					continue;
				best = err;
				/* half h: group h/2, sub-groups 2·(h%2) and 2·(h%2)+1 */
				int g = h / 2, sh = 6 * (g % 2) + 3 * (h % 2);
				sc[g / 2] = (uint16_t)((sc[g / 2] & ~(7u << sh)) | (unsigned)s << sh);
				uint8_t q = 0;
				for (int t = 0; t < 2; t++) {
					y[i].qs[2 * h + t] = (uint8_t)idx[t];
					q |= (uint8_t)(((idx[t] >> 8) | neg[t] << 3) << (4 * t));
				}
				y[i].qh[h] = q;
			}
		}
		for (int k = 0; k < 4; k++)      /* d's nibble k on top of word k */
			sc[k] |= (uint16_t)(((dh >> (4 * k)) & 0xF) << 12);
		memcpy(y[i].scales, sc, 8);
	}
}

/* Index of the level of kvalues_iq4nl nearest to v. */
static int nearest_k(float v)
{
	/* binary search on the midpoints (K ascending); a tie goes to the lower */
	int lo = 0, hi = 15;
	while (lo < hi) {
		int m = (lo + hi) / 2;
		if (v > 0.5f * (float)(mp_kvalues_iq4nl[m] + mp_kvalues_iq4nl[m + 1]))
			lo = m + 1;
		else
			hi = m;
	}
	return lo;
}

/* Squared error of x[0..n) as dl·K[nearest]; q gets the indices when set. */
static float fit_k(const float *x, int n, float dl, uint8_t *q)
{
	float err = 0;
	for (int j = 0; j < n; j++) {
		int k = dl != 0 ? nearest_k(x[j] / dl) : 8;
		float dv = x[j] - dl * mp_kvalues_iq4nl[k];
		err += dv * dv;
		if (q)
			q[j] = (uint8_t)k;
	}
	return err;
}

/* IQ4_NL, per block of 32: the scale that maps the largest |x| onto one of a
 * few levels near either end of K, refined by least squares, best kept. */
static void iq4_nl_quantize(const float *x, void *dst, int64_t n)
{
	static const float ends[] = { -127, -123, -119, -115, 113, 109, 105 };
	struct mp_block_iq4_nl *y = dst;
	for (int64_t i = 0; i < n / MP_QK4_NL; i++, x += MP_QK4_NL) {
		float mx = 0;
		for (int j = 0; j < MP_QK4_NL; j++)
			if (fabsf(x[j]) > fabsf(mx))
				mx = x[j];
		float best = INFINITY, bd = 0;
		for (size_t c = 0; c < sizeof ends / sizeof ends[0] && mx != 0; c++) {
			for (int refine = 0; refine < 2; refine++) {
				float d = refine ? bd : mx / ends[c];
				uint8_t q[MP_QK4_NL];
				if (refine) {           /* least squares d for the chosen levels */
					fit_k(x, MP_QK4_NL, d, q);
					float sxk = 0, skk = 0;
					for (int j = 0; j < MP_QK4_NL; j++) {
						sxk += x[j] * mp_kvalues_iq4nl[q[j]];
						skk += (float)(mp_kvalues_iq4nl[q[j]] * mp_kvalues_iq4nl[q[j]]);
					}
					d = sxk / skk;
				}
				d = mp_f16_to_f32(mp_f32_to_f16(fmaxf(fminf(d, 65504.0f), -65504.0f)));
				float err = fit_k(x, MP_QK4_NL, d, NULL);
				if (err < best) {
					best = err;
					bd = d;
				}
			}
		}
		uint8_t q[MP_QK4_NL];
		fit_k(x, MP_QK4_NL, bd, q);
		y[i].d = mp_f32_to_f16(bd);
		for (int j = 0; j < 16; j++)
			y[i].qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
	}
}

/* IQ4_XS: d maps the largest |x| onto (ls − 32)·K = −32·−127; each group
 * then tries all 64 scale codes. */
static void iq4_xs_quantize(const float *x, void *dst, int64_t n)
{
	struct mp_block_iq4_xs *y = dst;
	for (int64_t i = 0; i < n / MP_QK_K; i++, x += MP_QK_K) {
		memset(&y[i], 0, sizeof y[i]);
		y[i].d = block_scale(x, MP_QK_K, 32.0f * 127.0f);
		float d = mp_f16_to_f32(y[i].d);
		for (int g = 0; g < 8; g++) {
			const float *xg = x + 32 * g;
			int bls = 32;
			float best = INFINITY;
			for (int ls = 0; ls < 64 && d != 0; ls++) {
				float err = fit_k(xg, 32, d * (float)(ls - 32), NULL);
				if (err < best) {
					best = err;
					bls = ls;
				}
			}
			uint8_t q[32];
			fit_k(xg, 32, d * (float)(bls - 32), q);
			for (int j = 0; j < 16; j++)
				y[i].qs[16 * g + j] = (uint8_t)(q[j] | q[j + 16] << 4);
			y[i].scales_l[g / 2] |= (uint8_t)((bls & 0xF) << (4 * (g % 2)));
			y[i].scales_h |= (uint16_t)((bls >> 4) << (2 * g));
		}
	}
}

/* ---- scalar dot products ---------------------------------------------------
 *
 * w in the i-quant, a in Q8_K (IQ4_NL: Q8_0).  Per scale group the integer
 * Σ grid·sign·q8 is formed exactly, times the odd integer scale 2s+1 (or
 * ls − 32), summed over the super-block, and converted once:
 *   IQ2_*:   Σ_blocks d_w·d_a·Σ_g (2s+1)·Σ grid·sign·q8 / 8
 *   IQ3_XXS: the same / 4;  IQ3_S: the same without a divisor
 *   IQ1_*:   d_w·d_a·Σ_g (2s+1)·(Σ g·q8 + δ·Σ q8), δ = ±1/8, where Σ q8 of a
 *            group of 32 comes from the Q8_K bsums (IQ1_M: computed per 8)
 * (as llama.cpp's generic CPU code; the SIMD paths form the same integers).
 */

/* Σ_j byte_j(mag)·sign_j·q8[j] over a sub-group of 8. */
static inline int dot8(uint64_t mag, uint8_t signs, const int8_t *q8)
{
	int s = 0;
	for (int j = 0; j < 8; j++) {
		int v = (uint8_t)(mag >> (8 * j)) * q8[j];
		s += (signs >> j) & 1 ? -v : v;
	}
	return s;
}

/* Σ_j g_j·q8[j] for an IQ1 grid entry (lanes int8 −1/0/+1). */
static inline int dot_iq1(int idx, const int8_t *q8)
{
	int s = 0;
	for (int j = 0; j < 8; j++)
		s += iq1_lane(idx, j) * q8[j];
	return s;
}

static float grid_dot(const struct grid_type *gt, int64_t n, const void *w, const void *a)
{
	const uint8_t *blk = w;
	const struct mp_block_q8_K *y = a;
	float sumf = 0;
	for (int64_t i = 0; i < n / MP_QK_K; i++, blk += gt->block_bytes) {
		const int8_t *q8 = y[i].qs;
		int bsum = 0;
		for (int g = 0; g < 8; g++) {
			struct iq_group q;
			gt->decode(blk, g, &q);
			for (int t = 0; t < 4; t++, q8 += 8)
				bsum += q.ls[t / 2] * dot8(q.mag[t], q.signs[t], q8);
		}
		sumf += blk_d(blk) * y[i].d * (float)bsum;
	}
	return gt->mult * sumf;
}

static float iq2_xxs_dot(int64_t n, const void *w, const void *a)
{
	return grid_dot(&gt_iq2xxs, n, w, a);
}

static float iq2_xs_dot(int64_t n, const void *w, const void *a)
{
	return grid_dot(&gt_iq2xs, n, w, a);
}

static float iq2_s_dot(int64_t n, const void *w, const void *a)
{
	return grid_dot(&gt_iq2s, n, w, a);
}

static float iq3_xxs_dot(int64_t n, const void *w, const void *a)
{
	return grid_dot(&gt_iq3xxs, n, w, a);
}

static float iq3_s_dot(int64_t n, const void *w, const void *a)
{
	return grid_dot(&gt_iq3s, n, w, a);
}


static float iq1_s_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq1_s *x = w;
	const struct mp_block_q8_K *y = a;
	float sumf = 0;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		const int8_t *q8 = y[i].qs;
		int sumi = 0, sumi1 = 0;
		for (int g = 0; g < 8; g++) {
			uint16_t h = x[i].qh[g];
			int ls = 2 * ((h >> 12) & 7) + 1, lsum = 0;
			for (int t = 0; t < 4; t++, q8 += 8)
				lsum += dot_iq1(x[i].qs[4 * g + t] | (((h >> (3 * t)) & 7) << 8), q8);
			sumi += ls * lsum;
			sumi1 += ls * (h & 0x8000 ? -1 : 1) * (y[i].bsums[2 * g] + y[i].bsums[2 * g + 1]);
		}
		sumf += mp_f16_to_f32(x[i].d) * y[i].d * ((float)sumi + MP_IQ1_DELTA * (float)sumi1);
	}
	return sumf;
}

static float iq1_m_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq1_m *x = w;
	const struct mp_block_q8_K *y = a;
	float sumf = 0;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		uint16_t sc[4];
		float d = iq1_m_scale(&x[i], sc);
		const int8_t *q8 = y[i].qs;
		int sumi1 = 0, sumi2 = 0;
		for (int g = 0; g < 8; g++) {
			int sh = 6 * (g % 2);
			int ls[2] = { 2 * ((sc[g / 2] >> sh) & 7) + 1, 2 * ((sc[g / 2] >> (sh + 3)) & 7) + 1 };
			for (int t = 0; t < 4; t++, q8 += 8) {
				uint8_t h = x[i].qh[2 * g + t / 2] >> (4 * (t % 2));
				int s8 = 0;
				for (int j = 0; j < 8; j++)
					s8 += q8[j];
				sumi1 += ls[t / 2] * dot_iq1(x[i].qs[4 * g + t] | ((h & 7) << 8), q8);
				sumi2 += ls[t / 2] * (h & 8 ? -s8 : s8);
			}
		}
		sumf += d * y[i].d * ((float)sumi1 + MP_IQ1_DELTA * (float)sumi2);
	}
	return sumf;
}

static float iq4_nl_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq4_nl *x = w;
	const struct mp_block_q8_0 *y = a;
	float sumf = 0;
	for (int64_t i = 0; i < n / MP_QK4_NL; i++) {
		int sumi = 0;
		for (int j = 0; j < 16; j++)
			sumi += y[i].qs[j] * mp_kvalues_iq4nl[x[i].qs[j] & 0xF] +
				y[i].qs[j + 16] * mp_kvalues_iq4nl[x[i].qs[j] >> 4];
		sumf += mp_f16_to_f32(x[i].d) * mp_f16_to_f32(y[i].d) * (float)sumi;
	}
	return sumf;
}

static float iq4_xs_dot(int64_t n, const void *w, const void *a)
{
	const struct mp_block_iq4_xs *x = w;
	const struct mp_block_q8_K *y = a;
	float sumf = 0;
	for (int64_t i = 0; i < n / MP_QK_K; i++) {
		const int8_t *q8 = y[i].qs;
		int bsum = 0;
		for (int g = 0; g < 8; g++, q8 += 32) {
			const uint8_t *qs = x[i].qs + 16 * g;
			int sumi = 0;
			for (int j = 0; j < 16; j++)
				sumi += q8[j] * mp_kvalues_iq4nl[qs[j] & 0xF] +
					q8[j + 16] * mp_kvalues_iq4nl[qs[j] >> 4];
			bsum += sumi * (iq4_xs_ls(&x[i], g) - 32);
		}
		sumf += mp_f16_to_f32(x[i].d) * y[i].d * (float)bsum;
	}
	return sumf;
}

/* ---- the table ------------------------------------------------------------ */

void mp_quant_fill_iq(struct mp_quant_ops *tab)
{
	static const int l2[3] = { 8, 25, 43 }, l1[3] = { -1, 0, 1 };
	static const int l3xxs[8] = { 4, 12, 20, 28, 36, 44, 52, 62 };
	static const int l3s[8] = { 1, 3, 5, 7, 9, 11, 13, 15 };
	gridq_init(&gq_iq2xxs, mp_iq2xxs_grid, 256, 4, l2, 3);
	gridq_init(&gq_iq2xs, mp_iq2xs_grid, 512, 4, l2, 3);
	gridq_init(&gq_iq2s, mp_iq2s_grid, 1024, 4, l2, 3);
	gridq_init(&gq_iq3xxs, mp_iq3xxs_grid, 256, 2, l3xxs, 8);
	gridq_init(&gq_iq3s, mp_iq3s_grid, 512, 2, l3s, 8);
	gridq_init(&gq_iq1s, mp_iq1s_grid, MP_IQ1S_NGRID, 4, l1, 3);
	tab[MP_TYPE_IQ2_XXS] = (struct mp_quant_ops){ iq2_xxs_dequant, iq2_xxs_quantize, { iq2_xxs_dot }, { NULL } };
	tab[MP_TYPE_IQ2_XS] = (struct mp_quant_ops){ iq2_xs_dequant, iq2_xs_quantize, { iq2_xs_dot }, { NULL } };
	tab[MP_TYPE_IQ2_S] = (struct mp_quant_ops){ iq2_s_dequant, iq2_s_quantize, { iq2_s_dot }, { NULL } };
	tab[MP_TYPE_IQ3_XXS] = (struct mp_quant_ops){ iq3_xxs_dequant, iq3_xxs_quantize, { iq3_xxs_dot }, { NULL } };
	tab[MP_TYPE_IQ3_S] = (struct mp_quant_ops){ iq3_s_dequant, iq3_s_quantize, { iq3_s_dot }, { NULL } };
	tab[MP_TYPE_IQ1_S] = (struct mp_quant_ops){ iq1_s_dequant, iq1_s_quantize, { iq1_s_dot }, { NULL } };
	tab[MP_TYPE_IQ1_M] = (struct mp_quant_ops){ iq1_m_dequant, iq1_m_quantize, { iq1_m_dot }, { NULL } };
	tab[MP_TYPE_IQ4_NL] = (struct mp_quant_ops){ iq4_nl_dequant, iq4_nl_quantize, { iq4_nl_dot }, { NULL } };
	tab[MP_TYPE_IQ4_XS] = (struct mp_quant_ops){ iq4_xs_dequant, iq4_xs_quantize, { iq4_xs_dot }, { NULL } };
	mp_quant_fill_iq_avx2(tab);
	mp_quant_fill_iq_avx512(tab);
}
