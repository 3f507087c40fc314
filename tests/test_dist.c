/*
 * test_dist.c — the layer split and a rank's memory plan (src/dist.h),
 * without MPI: contiguous non-empty ranges that follow the ranks' memory,
 * rank 0 carrying the embeddings and head, and a clear error for a rank whose
 * limit is too small for its share.
 */
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "err.h"
#include "mp_test.h"

static void check_ranges(const uint32_t *begin, uint32_t n_rank, uint32_t n_layer)
{
	CHECK_EQ_INT(begin[0], 0);
	CHECK_EQ_INT(begin[n_rank], n_layer);
	for (uint32_t r = 0; r < n_rank; r++)
		CHECK(begin[r] < begin[r + 1]);
}

static void test_equal_split(void)
{
	uint64_t w[8] = { 10, 10, 10, 10, 10, 10, 10, 10 }, cap[4] = { 0, 0, 0, 0 };
	uint32_t begin[5];
	REQUIRE(mp_dist_split(8, w, 0, 2, cap, begin) == 0);
	check_ranges(begin, 2, 8);
	CHECK_EQ_INT(begin[1], 4);
	REQUIRE(mp_dist_split(8, w, 0, 4, cap, begin) == 0);
	check_ranges(begin, 4, 8);
	CHECK_EQ_INT(begin[1], 2);
	CHECK_EQ_INT(begin[2], 4);
	CHECK_EQ_INT(begin[3], 6);
	/* three ranks on eight layers: 3 + 3 + 2 or thereabouts, none empty */
	REQUIRE(mp_dist_split(8, w, 0, 3, cap, begin) == 0);
	check_ranges(begin, 3, 8);
	CHECK(begin[1] >= 2 && begin[1] <= 3);
}

static void test_memory_follows(void)
{
	uint64_t w[12], cap[2] = { 300, 100 };
	for (int i = 0; i < 12; i++)
		w[i] = 10;
	uint32_t begin[3];
	/* three times the memory: three times the layers */
	REQUIRE(mp_dist_split(12, w, 0, 2, cap, begin) == 0);
	check_ranges(begin, 2, 12);
	CHECK_EQ_INT(begin[1], 9);
	/* rank 0's embeddings and head count against it */
	cap[0] = cap[1] = 100;
	REQUIRE(mp_dist_split(12, w, 40, 2, cap, begin) == 0);
	check_ranges(begin, 2, 12);
	CHECK_EQ_INT(begin[1], 4);   /* 40 + 4·10 = 80 against 8·10 */
	/* a heavy first layer still leaves every later rank one */
	uint64_t heavy[3] = { 1000, 1, 1 }, c3[3] = { 1, 1, 1 };
	uint32_t b3[4];
	REQUIRE(mp_dist_split(3, heavy, 0, 3, c3, b3) == 0);
	check_ranges(b3, 3, 3);
}

static void test_too_many_ranks(void)
{
	uint64_t w[2] = { 1, 1 }, cap[3] = { 0, 0, 0 };
	uint32_t begin[4];
	CHECK_EQ_INT(mp_dist_split(2, w, 0, 3, cap, begin), -MP_EARG);
}

/* A two-layer plan by hand: a dense layer and a MoE layer of 8 experts. */
static struct mp_plan plan_of(struct mp_plan_layer *ly)
{
	memset(ly, 0, 2 * sizeof *ly);
	ly[0] = (struct mp_plan_layer){ .resident_bytes = 1000 };
	ly[1] = (struct mp_plan_layer){ .moe = 1, .resident_bytes = 500, .routed_bytes = 8000,
					.expert_bytes = 1000 };
	return (struct mp_plan){ .n_layer = 2, .n_moe = 1, .n_expert = 8, .n_used = 2,
				 .resident_bytes = 1500 + 300, .routed_bytes = 8000,
				 .expert_bytes_max = 1000, .kv_bytes = 200, .scratch_bytes = 100,
				 .min_pool_bytes = 2000, .layers = ly };
}

static void test_rank_plan(void)
{
	struct mp_plan_layer ly[2];
	char err[512];
	uint64_t w[2], fixed;
	struct mp_plan p = plan_of(ly);
	mp_dist_weights(&p, w, &fixed);
	CHECK_EQ_U64(w[0], 1000);
	CHECK_EQ_U64(w[1], 8500);
	CHECK_EQ_U64(fixed, 300);
	/* rank 0, the dense layer: embeddings + layer 0, half the KV, no pool */
	REQUIRE(mp_dist_plan(&p, 0, "h0", 0, 1, 0, 5000, err, sizeof err) == 0);
	CHECK_EQ_U64(p.resident_bytes, 1300);
	CHECK_EQ_U64(p.kv_bytes, 100);
	CHECK_EQ_U64(p.routed_bytes, 0);
	CHECK_EQ_U64(p.pool_bytes, 0);
	CHECK_EQ_U64(p.pool_experts, 0);
	/* rank 1, the MoE layer: 500 + 100 + 100 fixed; 4000 of memory leaves 3300 */
	p = plan_of(ly);
	REQUIRE(mp_dist_plan(&p, 1, "h1", 1, 2, 0, 4000, err, sizeof err) == 0);
	CHECK_EQ_U64(p.resident_bytes, 500);
	CHECK_EQ_U64(p.pool_bytes, 3300);
	CHECK_EQ_U64(ly[1].fit, 3);
	CHECK_EQ_U64(ly[0].fit, 0);
	/* too little for the share: rank, host, layers and the minimum are named */
	p = plan_of(ly);
	CHECK_EQ_INT(mp_dist_plan(&p, 1, "h1", 1, 2, 0, 2000, err, sizeof err), -MP_EBUDGET);
	CHECK_CONTAINS(err, "rank 1 on h1 (layers 1-1)");
	CHECK_CONTAINS(err, "smallest workable --mem-limit for this share");
}

int main(void)
{
	RUN(test_equal_split);
	RUN(test_memory_follows);
	RUN(test_too_many_ranks);
	RUN(test_rank_plan);
	return mp_test_end();
}
