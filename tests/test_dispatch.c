/* test_dispatch — kernels/types and kernels/dispatch: the type table against
 * the shared reference index, row sizes, and kernel path selection. */
#include <stdint.h>

#include "cpu.h"
#include "dispatch.h"
#include "err.h"
#include "types.h"
#include "mp_test.h"

/* Every type in tests/data/quants/index.json has the id, block size
 * and block bytes our table gives.  The file is plain, pretty-printed JSON: a
 * line-oriented scan is enough for it. */
static void test_types_match_shared_index(void)
{
	FILE *f = fopen(mp_test_data("quants/index.json"), "r");
	REQUIRE(f);
	char line[256], name[32] = "";
	long id = -1, elems = -1, bytes = -1;
	int seen = 0;
	while (fgets(line, sizeof line, f)) {
		char nm[32];
		long v;
		if (sscanf(line, " \"%31[A-Z0-9_]\": {", nm) == 1) {
			snprintf(name, sizeof name, "%s", nm);
			id = elems = bytes = -1;
		} else if (sscanf(line, " \"type_id\": %ld", &v) == 1) {
			id = v;
		} else if (sscanf(line, " \"block_elems\": %ld", &v) == 1) {
			elems = v;
		} else if (sscanf(line, " \"block_bytes\": %ld", &v) == 1) {
			bytes = v;
		}
		if (name[0] && id >= 0 && elems >= 0 && bytes >= 0) {
			const struct mp_type_info *ti = mp_type_info((uint32_t)id);
			if (!ti)
				MP_TEST_FAIL("%s: id %ld missing from the table", name, id);
			else {
				CHECK_STR(ti->name, name);
				CHECK_EQ_INT(ti->block_elems, elems);
				CHECK_EQ_INT(ti->block_bytes, bytes);
				CHECK_EQ_INT(ti->status, MP_TYPE_SUPPORTED);
			}
			enum mp_type t;
			CHECK_EQ_INT(mp_type_from_name(name, &t), 0);
			CHECK_EQ_INT(t, id);
			seen++;
			name[0] = 0;
		}
	}
	fclose(f);
	CHECK_EQ_INT(seen, 21);
}

static void test_type_status(void)
{
	CHECK_EQ_INT(mp_type_status(MP_TYPE_Q8_K), MP_TYPE_ACTIVATION);
	CHECK_EQ_INT(mp_type_status(MP_TYPE_TQ1_0), MP_TYPE_REJECTED);
	CHECK_EQ_INT(mp_type_status(4), MP_TYPE_UNKNOWN);     /* removed Q4_2 */
	CHECK_EQ_INT(mp_type_status(31), MP_TYPE_UNKNOWN);
	CHECK_EQ_INT(mp_type_status(40), MP_TYPE_UNKNOWN);
	CHECK_EQ_INT(mp_type_status(UINT32_MAX), MP_TYPE_UNKNOWN);
	CHECK_STR(mp_type_name(12), "Q4_K");
	CHECK_STR(mp_type_name(1000), "unknown");
	enum mp_type t;
	CHECK_EQ_INT(mp_type_from_name("q4_k", &t), 0);
	CHECK_EQ_INT(t, MP_TYPE_Q4_K);
	CHECK_EQ_INT(mp_type_from_name("Q4_K_M", &t), -MP_ENOTFOUND);
}

static void test_row_bytes(void)
{
	uint64_t b;
	/* R1: one routed expert's gate at Q4_K is 2048 rows of 7168 */
	CHECK_EQ_INT(mp_type_row_bytes(MP_TYPE_Q4_K, 7168, &b), 0);
	CHECK_EQ_U64(b, 28 * 144);
	CHECK_EQ_INT(mp_type_row_bytes(MP_TYPE_Q6_K, 2048, &b), 0);
	CHECK_EQ_U64(b, 8 * 210);
	CHECK_EQ_INT(mp_type_row_bytes(MP_TYPE_F32, 3, &b), 0);
	CHECK_EQ_U64(b, 12);
	CHECK_EQ_INT(mp_type_row_bytes(MP_TYPE_Q4_K, 100, &b), -MP_EFORMAT);
	CHECK_EQ_INT(mp_type_row_bytes(33, 256, &b), -MP_ETYPE);
	CHECK_EQ_INT(mp_type_row_bytes(MP_TYPE_F64, UINT64_MAX / 4, &b), -MP_EFORMAT);
}

static void test_dispatch_select(void)
{
	unsigned avx2 = MP_CPU_AVX | MP_CPU_AVX2 | MP_CPU_FMA | MP_CPU_F16C;
	unsigned avx512 = avx2 | MP_CPU_AVX512F | MP_CPU_AVX512BW | MP_CPU_AVX512DQ | MP_CPU_AVX512VL;
	CHECK_EQ_INT(mp_dispatch_best(0), MP_KPATH_SCALAR);
	CHECK_EQ_INT(mp_dispatch_best(MP_CPU_AVX2), MP_KPATH_SCALAR);   /* no FMA/F16C */
	CHECK_EQ_INT(mp_dispatch_best(avx2), MP_KPATH_AVX2);
	CHECK_EQ_INT(mp_dispatch_best(avx2 | MP_CPU_AVX512F), MP_KPATH_AVX2);
	CHECK_EQ_INT(mp_dispatch_best(avx512), MP_KPATH_AVX512);

	enum mp_kpath p;
	char why[256];
	CHECK_EQ_INT(mp_dispatch_resolve(NULL, avx512, &p, why, sizeof why), 0);
	CHECK_EQ_INT(p, MP_KPATH_AVX512);
	CHECK_EQ_INT(mp_dispatch_resolve("scalar", avx512, &p, why, sizeof why), 0);
	CHECK_EQ_INT(p, MP_KPATH_SCALAR);
	CHECK_CONTAINS(why, "forced");
	CHECK_EQ_INT(mp_dispatch_resolve("avx2", avx512, &p, why, sizeof why), 0);
	CHECK_EQ_INT(p, MP_KPATH_AVX2);
	CHECK_EQ_INT(mp_dispatch_resolve("avx512", avx2, &p, why, sizeof why), -MP_EUNAVAIL);
	CHECK_CONTAINS(why, "lacks");
	CHECK_EQ_INT(mp_dispatch_resolve("neon", avx2, &p, why, sizeof why), -MP_EARG);
	CHECK_CONTAINS(why, "MOEPAGER_CPU=neon");
}

static void test_dispatch_env(void)
{
	char why[256];
	setenv("MOEPAGER_CPU", "scalar", 1);
	CHECK_EQ_INT(mp_dispatch_init(why, sizeof why), 0);
	CHECK_EQ_INT(mp_dispatch_path(), MP_KPATH_SCALAR);
	unsetenv("MOEPAGER_CPU");
	CHECK_EQ_INT(mp_dispatch_init(why, sizeof why), 0);
	CHECK_EQ_INT(mp_dispatch_path(), mp_dispatch_best(mp_cpu_features()));
}

int main(void)
{
	RUN(test_types_match_shared_index);
	RUN(test_type_status);
	RUN(test_row_bytes);
	RUN(test_dispatch_select);
	RUN(test_dispatch_env);
	return mp_test_end();
}
