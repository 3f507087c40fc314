/* test_loader — src/loader and src/experts end to end on a tiny model written
 * as a GGUF file: the hyperparameters read back, the mapped model computes the
 * same logits as the in-memory one, and the pager-backed experts give
 * bit-identical logits for every I/O backend, budget and thread count; a
 * budget below the minimum is refused naming the smallest that works; a file
 * of another architecture is named; the resident weights read into anonymous
 * memory (O_DIRECT, or buffered and reported) compute the same logits. */
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "experts.h"
#include "gguf_write.h"
#include "io.h"
#include "loader.h"
#include "model.h"
#include "policy.h"
#include "threads.h"
#include "types.h"
#include "tinymodel.h"
#include "mp_test.h"

#define STEPS 10
#define VOCAB 96

static char path[256];
static struct test_model tm;
static float want[STEPS][VOCAB];

/* Runs STEPS greedy steps from token 1 and stores the logits in out. */
static int run_steps(const struct mp_hparams *hp, const struct mp_weights *w,
		     const struct mp_expert_source *src, struct mp_threads *th, float out[STEPS][VOCAB])
{
	struct mp_model_opts o = { .n_ctx = 32, .kv_type = MP_KV_F16, .absorb = 1, .threads = th,
				   .prefetch_depth = -1, .prefetch_history = 1 };
	struct mp_model *m;
	char err[256];
	if (mp_model_create(hp, w, src, &o, &m, err, sizeof err) < 0) {
		MP_TEST_FAIL("model: %s", err);
		return -1;
	}
	uint32_t tok = 1;
	for (int s = 0; s < STEPS; s++) {
		const float *lg;
		if (mp_model_step(m, tok, &lg) < 0) {
			MP_TEST_FAIL("step %d: %s", s, mp_model_error(m));
			mp_model_destroy(m);
			return -1;
		}
		memcpy(out[s], lg, sizeof(float) * VOCAB);
		uint32_t best = 0;
		for (uint32_t v = 1; v < VOCAB; v++)
			if (lg[v] > lg[best])
				best = v;
		tok = best;
	}
	mp_model_destroy(m);
	return 0;
}

static void test_hparams_round_trip(void)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(path, &mf, err, sizeof err) == 0);
	const struct mp_hparams *a = mp_modelfile_hparams(mf), *b = &tm.hp;
	CHECK_EQ_INT(a->n_layer, b->n_layer);
	CHECK_EQ_INT(a->n_dense_lead, b->n_dense_lead);
	CHECK_EQ_INT(a->n_embd, b->n_embd);
	CHECK_EQ_INT(a->n_head, b->n_head);
	CHECK_EQ_INT(a->q_lora_rank, b->q_lora_rank);
	CHECK_EQ_INT(a->kv_lora_rank, b->kv_lora_rank);
	CHECK_EQ_INT(a->d_nope, b->d_nope);
	CHECK_EQ_INT(a->d_rope, b->d_rope);
	CHECK_EQ_INT(a->d_v, b->d_v);
	CHECK_EQ_INT(a->n_expert, b->n_expert);
	CHECK_EQ_INT(a->n_expert_used, b->n_expert_used);
	CHECK_EQ_INT(a->n_group, b->n_group);
	CHECK_EQ_INT(a->n_group_used, b->n_group_used);
	CHECK_EQ_INT(a->gating, b->gating);
	CHECK_EQ_INT(a->mla_new, b->mla_new);
	CHECK_EQ_INT(a->n_vocab, b->n_vocab);
	CHECK_NEAR(a->expert_scale, b->expert_scale, 0);
	CHECK_NEAR(a->mscale_all_dim, b->mscale_all_dim, 1e-6);
	CHECK_NEAR(mp_hparams_kq_scale(a), mp_hparams_kq_scale(b), 1e-7);
	mp_modelfile_close(mf);
}

static void test_mapped_equals_memory(void)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(path, &mf, err, sizeof err) == 0);
	struct mp_resident_experts *res;
	struct mp_expert_source src;
	REQUIRE(mp_resident_experts_create(mp_modelfile_hparams(mf), mp_modelfile_weights(mf), &res,
					   &src) == 0);
	static float got[STEPS][VOCAB];
	REQUIRE(run_steps(mp_modelfile_hparams(mf), mp_modelfile_weights(mf), &src, NULL, got) == 0);
	CHECK(memcmp(got, want, sizeof got) == 0);
	mp_resident_experts_destroy(res);
	mp_modelfile_close(mf);
}

static uint64_t tensor_bytes(const struct mp_tensor *t)
{
	return t->row_bytes * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

/* Loads the resident weights of file into anonymous memory: every tensor but
 * the routed experts moves (same bytes), the experts stay in the mapping, the
 * logits do not change; returns the report. */
static void check_resident(const char *file, int buffered, struct mp_load_report *lr)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(file, &mf, err, sizeof err) == 0);
	size_t per = sizeof(struct mp_layer_weights) / sizeof(struct mp_tensor);
	const struct mp_weights *w = mp_modelfile_weights(mf);
	uint32_t nl = mp_modelfile_hparams(mf)->n_layer;
	size_t n = 3 + per * nl;
	const void **before = mp_calloc(n, sizeof *before);
	REQUIRE(before);
	const struct mp_tensor *all = &w->token_embd;   /* the three globals, then each layer */
	for (size_t i = 0; i < n; i++) {
		const struct mp_tensor *t = i < 3 ? all + i : (const struct mp_tensor *)&w->layer[(i - 3) / per] +
							 (i - 3) % per;
		before[i] = t->data;
	}
	struct mp_load_opts lo = { .progress = 0, .mlock = 1, .buffered = buffered };
	int rc = mp_modelfile_load_resident(mf, &lo, lr, err, sizeof err);
	if (rc)
		MP_TEST_FAIL("load_resident: %s", err);
	REQUIRE(rc == 0);
	uint64_t moved = 0;
	for (size_t i = 0; i < n; i++) {
		const struct mp_tensor *t = i < 3 ? all + i : (const struct mp_tensor *)&w->layer[(i - 3) / per] +
							 (i - 3) % per;
		const struct mp_layer_weights *lw = i < 3 ? NULL : &w->layer[(i - 3) / per];
		int routed = lw && (t == &lw->gate_exps || t == &lw->up_exps || t == &lw->down_exps);
		if (!t->data) {
			CHECK(before[i] == NULL);
			continue;
		}
		if (routed) {
			CHECK(t->data == before[i]);
			continue;
		}
		CHECK(t->data != before[i]);
		CHECK(memcmp(t->data, before[i], (size_t)tensor_bytes(t)) == 0);
		moved += tensor_bytes(t);
	}
	CHECK_EQ_U64(moved, lr->bytes);
	CHECK(lr->region_bytes >= lr->bytes && lr->read_bytes >= lr->bytes);
	struct mp_load_report again;
	CHECK(mp_modelfile_load_resident(mf, &lo, &again, err, sizeof err) == -MP_EARG);   /* twice */
	struct mp_resident_experts *res;
	struct mp_expert_source src;
	REQUIRE(mp_resident_experts_create(mp_modelfile_hparams(mf), w, &res, &src) == 0);
	static float got[STEPS][VOCAB];
	REQUIRE(run_steps(mp_modelfile_hparams(mf), w, &src, NULL, got) == 0);
	CHECK(memcmp(got, want, sizeof got) == 0);
	mp_resident_experts_destroy(res);
	mp_free(before);
	mp_modelfile_close(mf);
}

static void test_resident_anonymous(void)
{
	struct mp_load_report lr;
	check_resident(path, 0, &lr);
	/* buffered reads (what a file system refusing O_DIRECT gets) are reported */
	check_resident(path, 1, &lr);
	CHECK_EQ_INT(lr.buffered, 1);
}

/* A rank's share (several ranks, src/dist.h): only layers [1, 2) are read,
 * not the embeddings or the head; everything else stays in the mapping. */
static void test_resident_layer_range(void)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(path, &mf, err, sizeof err) == 0);
	const struct mp_weights *w = mp_modelfile_weights(mf);
	const void *embd = w->token_embd.data, *head = w->output.data;
	const void *l0 = w->layer[0].attn_norm.data, *l1 = w->layer[1].attn_norm.data;
	struct mp_load_opts lo = { .layer_begin = 1, .layer_end = 2, .no_io = 1 };
	struct mp_load_report lr;
	REQUIRE(mp_modelfile_load_resident(mf, &lo, &lr, err, sizeof err) == 0);
	CHECK(w->token_embd.data == embd && w->output.data == head);
	CHECK(w->layer[0].attn_norm.data == l0);
	CHECK(w->layer[1].attn_norm.data != l1);
	CHECK(memcmp(w->layer[1].attn_norm.data, l1, (size_t)tensor_bytes(&w->layer[1].attn_norm)) == 0);
	uint64_t want_bytes = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(mp_modelfile_gguf(mf)); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(mp_modelfile_gguf(mf), i);
		if (!strncmp(t->name, "blk.1.", 6) && !mp_loader_is_routed(t->name))
			want_bytes += t->nbytes;
	}
	CHECK(want_bytes > 0);
	CHECK_EQ_U64(lr.bytes, want_bytes);
	mp_modelfile_close(mf);
}

/* Every backend × budget (smallest, a third, everything) × 1 and 2 threads. */
static void test_pager_backends_budgets(void)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(path, &mf, err, sizeof err) == 0);
	const struct mp_hparams *hp = mp_modelfile_hparams(mf);
	struct mp_threads *two;
	REQUIRE(mp_threads_create(2, &two) == 0);
	int ran = 0, usable = 0;
	for (const struct mp_io_ops *const *b = mp_io_backends(); *b; b++) {
		char why[256] = "", name[128];
		if ((*b)->probe(why, sizeof why) < 0) {
			snprintf(name, sizeof name, "test_pager_backends_budgets on %s", (*b)->name);
			mp_test_skip_part(name, why);
			continue;
		}
		usable++;
		uint64_t min_budget = 0;
		for (int bi = 0; bi < 3; bi++) {
			struct mp_pager_config pc;
			memset(&pc, 0, sizeof pc);
			pc.io = (*b)->name;
			pc.budget = bi == 0 ? (min_budget ? min_budget : 1) : bi == 1 ? 3 * min_budget : 1ull << 30;
			struct mp_experts *x;
			struct mp_expert_source src;
			struct mp_experts_opts xo = { .policy = MP_POLICY_MOEPAGER, .prefetch = 1 };
			int rc = mp_experts_create(mp_modelfile_gguf(mf), hp, mp_modelfile_weights(mf),
						   hp->n_expert_used, &pc, &xo, &x, &src, err, sizeof err);
			if (bi == 0 && !min_budget && !((*b)->caps & MP_IO_CAP_NOPOOL)) {
				/* one byte is below any pool: refused, naming the
				 * smallest budget that works; learn it, then use it
				 * (mmap has no pool: any budget runs) */
				if (rc != -MP_EBUDGET) {
					MP_TEST_FAIL("%s: a budget of 1 byte: %d, expected -MP_EBUDGET",
						     (*b)->name, rc);
					if (rc == 0)
						mp_experts_destroy(x);
					break;
				}
				CHECK_CONTAINS(err, "smallest");
				struct mp_pager_config q = pc;
				q.budget = 1ull << 30;
				REQUIRE(mp_experts_create(mp_modelfile_gguf(mf), hp, mp_modelfile_weights(mf),
							  hp->n_expert_used, &q, &xo, &x, &src, err, sizeof err) == 0);
				min_budget = mp_pager_min_budget(mp_experts_pager(x));
				mp_experts_destroy(x);
				bi = -1;
				continue;
			}
			if (rc < 0) {
				MP_TEST_FAIL("%s budget %llu: %s", (*b)->name, (unsigned long long)pc.budget, err);
				continue;
			}
			for (int nt = 1; nt <= 2; nt++) {
				static float got[STEPS][VOCAB];
				if (run_steps(hp, mp_modelfile_weights(mf), &src, nt == 2 ? two : NULL, got) < 0)
					continue;
				if (memcmp(got, want, sizeof got) != 0)
					MP_TEST_FAIL("%s, budget %llu, %d threads: logits differ from the resident "
						     "model", (*b)->name, (unsigned long long)pc.budget, nt);
				ran++;
			}
			mp_experts_destroy(x);
		}
	}
	/* every usable backend ran 3 budgets x 1 and 2 threads */
	CHECK(usable >= 1);
	CHECK_EQ_INT(ran, 6 * usable);
	mp_threads_destroy(two);
	mp_modelfile_close(mf);
}

/* A hint that the layer's acquire contradicts: the loads of the hinted
 * experts it leaves out are cancelled (counted as wasted prefetches at once),
 * the chosen ones are served whole, and a refined hint cancels what it
 * drops too. */
static void test_stale_prefetch_cancelled(void)
{
	struct mp_modelfile *mf;
	char err[512];
	REQUIRE(mp_modelfile_open(path, &mf, err, sizeof err) == 0);
	const struct mp_hparams *hp = mp_modelfile_hparams(mf);
	struct mp_io_fault f = { .delay_us = 2000 };   /* reads stay in flight meanwhile */
	struct mp_pager_config pc;
	memset(&pc, 0, sizeof pc);
	pc.io = "sync";
	pc.budget = 1ull << 30;
	pc.fault = &f;
	pc.io_depth = 4;                              /* small reads, few in flight: */
	pc.io_block = 4096;                           /* the hinted loads take a while */
	struct mp_experts *x;
	struct mp_expert_source src;
	struct mp_experts_opts xo = { .policy = MP_POLICY_MOEPAGER, .prefetch = 1 };
	REQUIRE(mp_experts_create(mp_modelfile_gguf(mf), hp, mp_modelfile_weights(mf), hp->n_expert_used,
				  &pc, &xo, &x, &src, err, sizeof err) == 0);
	/* a pool of a third of the experts: nothing is preloaded at start */
	pc.budget = 3 * mp_pager_min_budget(mp_experts_pager(x));
	mp_experts_destroy(x);
	REQUIRE(mp_experts_create(mp_modelfile_gguf(mf), hp, mp_modelfile_weights(mf), hp->n_expert_used,
				  &pc, &xo, &x, &src, err, sizeof err) == 0);
	int fd = open(path, O_RDONLY);             /* out of the page cache: disk reads */
	if (fd >= 0) {
		fsync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	uint32_t L = hp->n_dense_lead;
	uint32_t h[4] = { 0, 1, 2, 3 }, h2[2] = { 0, 1 }, chosen[2] = { 0, 5 };
	float sc[4] = { 1.0f, 0.9f, 0.8f, 0.7f };
	struct mp_pager_info in;
	src.hint(src.ctx, L, h, sc, 4);
	mp_pager_info(mp_experts_pager(x), &in);
	CHECK_EQ_U64(in.pf_issued, 4);
	CHECK_EQ_U64(in.n_loading, 4);
	src.hint(src.ctx, L, h2, sc, 2);             /* refined: 2 and 3 are dropped */
	mp_pager_info(mp_experts_pager(x), &in);
	CHECK_EQ_U64(in.pf_wasted, 2);
	CHECK_EQ_INT(src.acquire(src.ctx, L, chosen, 2), 0);   /* 1 is not chosen */
	mp_pager_info(mp_experts_pager(x), &in);
	CHECK_EQ_U64(in.pf_wasted, 3);
	for (int i = 0; i < 2; i++) {
		uint32_t idx;
		struct mp_expert_view v;
		CHECK_EQ_INT(src.next_ready(src.ctx, L, &idx, &v), 0);
		CHECK(v.gate.data && v.up.data && v.down.data);
	}
	src.release(src.ctx, L, chosen, 2);
	CHECK_EQ_INT(mp_pager_check(mp_experts_pager(x), 2), 0);
	mp_experts_destroy(x);
	mp_modelfile_close(mf);
}

static void test_wrong_architecture(void)
{
	char other[300];
	snprintf(other, sizeof other, "%s.llama", path);
	struct mp_gguf_write_opts o = { 0, 0, 0, 0 };
	struct mp_gguf_writer *w;
	REQUIRE(mp_gguf_writer_create(other, &o, &w) == 0);
	mp_gguf_writer_set_str(w, "general.architecture", "llama");
	uint64_t ne[1] = { 32 };
	mp_gguf_writer_add_tensor(w, "token_embd.weight", 0, 1, ne);
	REQUIRE(mp_gguf_writer_begin(w) == 0);
	float z[32] = { 0 };
	mp_gguf_writer_write(w, z, sizeof z);
	REQUIRE(mp_gguf_writer_finish(w) == 0);
	mp_gguf_writer_destroy(w);
	struct mp_modelfile *mf;
	char err[512];
	CHECK_EQ_INT(mp_modelfile_open(other, &mf, err, sizeof err), -MP_EUNAVAIL);
	CHECK_CONTAINS(err, "general.architecture is 'llama'");
	unlink(other);
}

int main(void)
{
	snprintf(path, sizeof path, "test_loader.%d.gguf", (int)getpid());
	tiny_build(&tm, MP_TYPE_Q8_0, 1, 1, 0, 99);
	char err[512];
	if (tiny_write_gguf(&tm, path, err, sizeof err) < 0) {
		fprintf(stderr, "FAIL: writing %s: %s\n", path, err);
		return 1;
	}
	struct mp_resident_experts *res;
	struct mp_expert_source src;
	if (mp_resident_experts_create(&tm.hp, tm.w, &res, &src) < 0 ||
	    run_steps(&tm.hp, tm.w, &src, NULL, want) < 0)
		return 1;
	mp_resident_experts_destroy(res);
	RUN(test_hparams_round_trip);
	RUN(test_mapped_equals_memory);
	RUN(test_resident_anonymous);
	RUN(test_resident_layer_range);
	RUN(test_pager_backends_budgets);
	RUN(test_stale_prefetch_cancelled);
	RUN(test_wrong_architecture);
	unlink(path);
	tiny_drop(&tm);
	return mp_test_end();
}
