/*
 * refcheck — compares moepager's forward pass with the naive float reference
 * (tests/reference.c) on a model file: for every position of a teacher-forced
 * run, the largest logit difference relative to the logits' scale, the greedy
 * tokens and the routing.  A routing flip is excused only at a near-tie
 * (margin < 0.02); the reference then redoes that step with moepager's
 * routing, so the comparison goes on from the same decisions.
 *
 * usage: refcheck MODEL.gguf THREADS TOLERANCE STEPS [exact-greedy]
 * Exit 0 when within tolerance (and, with exact-greedy, every greedy token
 * equal), 1 otherwise.  Run by tests/reference.test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "loader.h"
#include "model.h"
#include "reference.h"
#include "threads.h"

static int argmax(const float *v, uint32_t n)
{
	uint32_t b = 0;
	for (uint32_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return (int)b;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: refcheck MODEL.gguf THREADS TOLERANCE STEPS [exact-greedy]\n");
		return 2;
	}
	int threads = atoi(argv[2]), steps = atoi(argv[4]);
	double tol = atof(argv[3]);
	int exact = argc > 5 && strcmp(argv[5], "exact-greedy") == 0;
	char err[512];
	struct mp_modelfile *mf;
	if (mp_modelfile_open(argv[1], &mf, err, sizeof err) < 0) {
		fprintf(stderr, "refcheck: %s\n", err);
		return 1;
	}
	const struct mp_hparams *hp = mp_modelfile_hparams(mf);
	const struct mp_weights *w = mp_modelfile_weights(mf);
	struct mp_resident_experts *res;
	struct mp_expert_source src;
	struct mp_threads *pool = NULL;
	struct mp_model *m;
	if (mp_resident_experts_create(hp, w, &res, &src) < 0 || mp_threads_create(threads, &pool) < 0) {
		fprintf(stderr, "refcheck: cannot set up\n");
		return 1;
	}
	struct mp_model_opts o = { .n_ctx = (uint32_t)steps + 1, .kv_type = MP_KV_F32, .absorb = 1,
				   .threads = pool };
	if (mp_model_create(hp, w, &src, &o, &m, err, sizeof err) < 0) {
		fprintf(stderr, "refcheck: %s\n", err);
		return 1;
	}
	struct ref_model *ref = ref_create(hp, w, o.n_ctx, 0, 0);
	float *want = mp_malloc_array(hp->n_vocab, sizeof(float));
	if (!ref || !want) {
		fprintf(stderr, "refcheck: cannot set up the reference\n");
		return 1;
	}
	double worst = 0;
	int compared = 0, greedy_diff = 0, bad = 0, flips = 0, nonfinite = 0;
	uint32_t tok = 1;
	for (int s = 0; s < steps; s++) {
		const float *got;
		if (mp_model_step(m, tok, &got) < 0 || ref_step(ref, tok, want) < 0) {
			fprintf(stderr, "refcheck: step %d: %s\n", s, mp_model_error(m));
			return 1;
		}
		int flipped = 0;
		for (uint32_t L = hp->n_dense_lead; L < hp->n_layer; L++) {
			const struct mp_route *rt = mp_model_route(m, L);
			if (!ref_same_route(ref, L, rt)) {
				flipped++;
				printf("step %d layer %u: routing flipped at margin %.4f%s\n", s, L, rt->margin,
				       rt->margin < 0.02f ? " (near-tie: excused)" : "");
				if (!(rt->margin < 0.02f))
					bad = 1;
			}
		}
		if (flipped) {
			/* redo the reference's step with moepager's routing everywhere */
			ref_rewind(ref);
			for (uint32_t L = hp->n_dense_lead; L < hp->n_layer; L++) {
				const struct mp_route *rt = mp_model_route(m, L);
				ref_force(ref, L, rt->expert, rt->n);
			}
			if (ref_step(ref, tok, want) < 0)
				return 1;
			flips += flipped;
		}
		/* fmax drops a NaN: non-finite logits are counted, not maxed */
		double scale = 0, sw = 0;
		for (uint32_t v = 0; v < hp->n_vocab; v++) {
			nonfinite += !isfinite(got[v]) || !isfinite(want[v]);
			scale = fmax(scale, fabs(want[v]));
		}
		for (uint32_t v = 0; scale > 0 && v < hp->n_vocab; v++)
			sw = fmax(sw, fabs(got[v] - want[v]) / scale);
		if (!(scale > 0))
			nonfinite++;
		worst = fmax(worst, sw);
		greedy_diff += argmax(got, hp->n_vocab) != argmax(want, hp->n_vocab);
		compared++;
		tok = (uint32_t)argmax(want, hp->n_vocab);
	}
	printf("%s, %d threads: %d positions compared, max relative logit error %.3g (tolerance %.3g), "
	       "%d greedy differences, %d excused routing flips, %d non-finite logits or zero scales\n",
	       argv[1], threads, compared, worst, tol, greedy_diff, flips, nonfinite);
	if (!(worst <= tol) || nonfinite || compared < 3 || (exact && greedy_diff))
		bad = 1;
	mp_free(want);
	ref_destroy(ref);
	mp_model_destroy(m);
	mp_threads_destroy(pool);
	mp_resident_experts_destroy(res);
	mp_modelfile_close(mf);
	return bad;
}
