/*
 * quant_ref.h — shared by the kernel test programs: reading the reference
 * vectors of tests/data/quants/ and checking a type's scalar
 * dequantizer against them.  Include after mp_test.h.
 */
#ifndef MP_QUANT_REF_H
#define MP_QUANT_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "alloc.h"
#include "fp16.h"
#include "quant.h"
#include "types.h"

/* Reads a whole shared test file; *len gets its size. */
static inline void *slurp(const char *rel, size_t *len)
{
	FILE *f = fopen(mp_test_data(rel), "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = mp_malloc((size_t)n);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		mp_free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Dequantizes TYPE.blocks and compares with TYPE.f32 (relative 1e-6; exact
 * for the float types). */
static inline void check_reference(enum mp_type t)
{
	const struct mp_type_info *ti = mp_type_info(t);
	const struct mp_quant_ops *ops = mp_quant_ops(t);
	if (!ops) {
		MP_TEST_FAIL("%s: no kernels", ti->name);
		return;
	}
	char rel[128];
	size_t nb = 0, nf = 0;
	snprintf(rel, sizeof rel, "quants/%s.blocks", ti->name);
	uint8_t *blocks = slurp(rel, &nb);
	snprintf(rel, sizeof rel, "quants/%s.f32", ti->name);
	float *want = slurp(rel, &nf);
	if (!blocks || !want || nb % ti->block_bytes || nf / 4 != nb / ti->block_bytes * ti->block_elems) {
		MP_TEST_FAIL("%s: reference files unreadable or inconsistent", ti->name);
		goto out;
	}
	int64_t n = (int64_t)(nf / 4);
	float *got = mp_malloc_array((size_t)n, sizeof(float));
	REQUIRE(got);
	ops->dequant(blocks, got, n);
	int bad = 0;
	int exact = ti->block_elems == 1;
	for (int64_t i = 0; i < n && bad < 5; i++) {
		float w = want[i], g = got[i];
		int ok = exact ? (mp_f32_bits(w) == mp_f32_bits(g) || (isnan(w) && isnan(g)))
			       : fabsf(g - w) <= 1e-6f * fmaxf(fabsf(w), 1e-30f) + 1e-37f;
		if (!ok) {
			MP_TEST_FAIL("%s: element %lld (block %lld): expected %.9g, got %.9g", ti->name,
				     (long long)i, (long long)(i / ti->block_elems), w, g);
			bad++;
		}
	}
	mp_free(got);
out:
	mp_free(blocks);
	mp_free(want);
}

#endif
