/*
 * model_fixture.h — the set-up the model tests share (test_model,
 * test_prefill, test_dist): a tiny random model (tinymodel.h) with its routed
 * experts resident, the expert source that mp_model_create takes, and
 * mp_model_create over it with the test failed on error.
 *
 * Header-only (static inline) because failures are counted by mp_test.h's
 * per-program state, which a separate object file would not share.
 *
 * Not here: the models' checks, or sources that wrap the resident one (each
 * test keeps its own counting or chaining wrapper around fx->src).
 */
#ifndef MP_MODEL_FIXTURE_H
#define MP_MODEL_FIXTURE_H

#include <string.h>

#include "model.h"
#include "tinymodel.h"
#include "mp_test.h"

struct model_fixture {
	struct test_model tm;
	struct mp_resident_experts *res;   /* NULL until opened */
	struct mp_expert_source src;       /* the resident experts */
};

/* Builds the tiny model (arguments as tiny_build) and its resident experts.
 * Returns 0, or -1 after failing the test; fixture_close frees either way. */
static inline int fixture_open(struct model_fixture *fx, uint32_t wtype, int mla_new, int q_lora,
			       int softmax, uint64_t seed)
{
	memset(fx, 0, sizeof *fx);
	tiny_build(&fx->tm, wtype, mla_new, q_lora, softmax, seed);
	if (mp_resident_experts_create(&fx->tm.hp, fx->tm.w, &fx->res, &fx->src) < 0) {
		MP_TEST_FAIL("mp_resident_experts_create failed (type %u, seed %llu)", wtype,
			     (unsigned long long)seed);
		fx->res = NULL;
		return -1;
	}
	return 0;
}

/* A model over src (NULL: the fixture's resident experts) with options o.
 * Returns it, or NULL after failing the test with mp_model_create's
 * sentence prefixed by what (the caller's name for this model). */
static inline struct mp_model *fixture_model(struct model_fixture *fx,
					     const struct mp_expert_source *src,
					     const struct mp_model_opts *o, const char *what)
{
	struct mp_model *m;
	char err[256];
	if (mp_model_create(&fx->tm.hp, fx->tm.w, src ? src : &fx->src, o, &m, err, sizeof err) < 0) {
		MP_TEST_FAIL("mp_model_create (%s): %s", what, err);
		return NULL;
	}
	return m;
}

/* Frees what fixture_open made (the resident experts, then the model). */
static inline void fixture_close(struct model_fixture *fx)
{
	mp_resident_experts_destroy(fx->res);
	fx->res = NULL;
	tiny_drop(&fx->tm);
}

#endif
