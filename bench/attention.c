/*
 * bench/attention — the f32 part of one layer's absorbed attention (scores
 * against every cached row, softmax left out, the weighted row sum), one
 * thread, for several context lengths, in one run:
 *
 *   sequential   the old mp_ops_dot/axpy: one running float sum per dot
 *   rows/<path>  vecf32's dot_rows + axpy_rows, one head at a time
 *   heads/<path> vecf32's dot_heads + axpy_heads, four heads per pass
 *
 * Times are per layer (all heads), the best of >= 3 runs and 0.2 s; the
 * ratio column is sequential ÷ that row, measured in the same run.  Prints a
 * Markdown table for bench/README.md.
 *
 *   bench/attention [--heads N] [--rank R] [--rope D] [--paths LIST]
 * Defaults are the `small` preset (16 heads, rank 256, rope 64); R1 is
 * --heads 128 --rank 512.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "cpu.h"
#include "dispatch.h"
#include "rng.h"
#include "vecf32.h"

struct attn {
	int heads, rank, w;       /* heads, latent rank, row width (rank + rope) */
	int64_t n_pos;            /* cached rows */
	float *kv;                /* [n_pos][w] */
	float *q;                 /* [heads][w] */
	float *att;               /* [heads][n_pos] */
	float *o;                 /* [heads][rank] */
	const struct mp_vf32_ops *ops;
};

static float seq_dot(const float *x, const float *y, int64_t n)
{
	float s = 0;
	for (int64_t i = 0; i < n; i++)
		s += x[i] * y[i];
	return s;
}

static void run_sequential(struct attn *a)
{
	for (int h = 0; h < a->heads; h++) {
		float *att = a->att + h * a->n_pos, *o = a->o + (size_t)h * a->rank;
		for (int64_t t = 0; t < a->n_pos; t++)
			att[t] = seq_dot(a->q + (size_t)h * a->w, a->kv + t * a->w, a->w) * 1e-3f;
		memset(o, 0, sizeof(float) * (size_t)a->rank);
		for (int64_t t = 0; t < a->n_pos; t++)
			for (int i = 0; i < a->rank; i++)
				o[i] += att[t] * a->kv[t * a->w + i];
	}
}

static void run_rows(struct attn *a)
{
	for (int h = 0; h < a->heads; h++) {
		float *att = a->att + h * a->n_pos, *o = a->o + (size_t)h * a->rank;
		a->ops->dot_rows(a->q + (size_t)h * a->w, a->kv, a->w, a->n_pos, a->w, att);
		memset(o, 0, sizeof(float) * (size_t)a->rank);
		a->ops->axpy_rows(o, a->kv, a->w, att, a->n_pos, a->rank);
	}
}

static void run_heads(struct attn *a)
{
	for (int h = 0; h + MP_VF32_HEADS <= a->heads; h += MP_VF32_HEADS) {
		const float *q[MP_VF32_HEADS];
		float *att[MP_VF32_HEADS], *o[MP_VF32_HEADS];
		for (int k = 0; k < MP_VF32_HEADS; k++) {
			q[k] = a->q + (size_t)(h + k) * a->w;
			att[k] = a->att + (h + k) * a->n_pos;
			o[k] = a->o + (size_t)(h + k) * a->rank;
			memset(o[k], 0, sizeof(float) * (size_t)a->rank);
		}
		a->ops->dot_heads(q, a->kv, a->w, a->n_pos, a->w, att);
		a->ops->axpy_heads(o, a->kv, a->w, (const float *const *)att, a->n_pos, a->rank);
	}
}

static double best_time(void (*fn)(struct attn *), struct attn *a)
{
	fn(a);
	double best = 1e30, total = 0;
	for (int rep = 0; rep < 3 || total < 0.2; rep++) {
		uint64_t t0 = mp_clock_now_ns();
		fn(a);
		double dt = (double)(mp_clock_now_ns() - t0) * 1e-9;
		total += dt;
		best = dt < best ? dt : best;
		if (rep > 500)
			break;
	}
	return best;
}

static int in_list(const char *list, const char *name)
{
	return !list || strstr(list, name) != NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench/attention [--heads N] [--rank R] [--rope D] [--paths scalar,avx2,avx512]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int heads = 16, rank = 256, rope = 64;
	const char *paths = NULL;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--heads"))
			heads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rank"))
			rank = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rope"))
			rope = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--paths"))
			paths = argv[++i];
		else
			usage();
	}
	if (heads < MP_VF32_HEADS || heads % MP_VF32_HEADS || rank < 16 || rank > 4096 || rope < 0 || rope > 1024)
		usage();
	static const int64_t lens[] = { 32, 256, 1024, 4096 };
	struct attn a = { .heads = heads, .rank = rank, .w = rank + rope, .n_pos = 4096 };
	a.kv = mp_malloc_array((size_t)a.n_pos * (size_t)a.w, sizeof(float));
	a.q = mp_malloc_array((size_t)heads * (size_t)a.w, sizeof(float));
	a.att = mp_malloc_array((size_t)heads * (size_t)a.n_pos, sizeof(float));
	a.o = mp_malloc_array((size_t)heads * (size_t)rank, sizeof(float));
	if (!a.kv || !a.q || !a.att || !a.o) {
		fprintf(stderr, "bench/attention: out of memory\n");
		return 1;
	}
	struct mp_rng r;
	mp_rng_seed(&r, 1);
	for (size_t i = 0; i < (size_t)a.n_pos * (size_t)a.w; i++)
		a.kv[i] = (float)mp_rng_normal(&r);
	for (size_t i = 0; i < (size_t)heads * (size_t)a.w; i++)
		a.q[i] = (float)mp_rng_normal(&r);
	unsigned feats = mp_cpu_features();
	printf("machine: %s; %d heads, rows of %d (rank %d + rope %d), 1 thread, µs per layer (best of >= 3 runs)\n\n",
	       mp_cpu_brand(), heads, a.w, rank, rope);
	printf("| positions | kernels | µs | vs sequential |\n| ---: | --- | ---: | ---: |\n");
	for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
		a.n_pos = lens[l];
		double seq = best_time(run_sequential, &a);
		printf("| %lld | sequential | %.1f | 1.00 |\n", (long long)a.n_pos, seq * 1e6);
		for (int p = 0; p < MP_KPATH_COUNT; p++) {
			if (!mp_dispatch_supported((enum mp_kpath)p, feats) || !in_list(paths, mp_dispatch_name(p)))
				continue;
			a.ops = mp_vf32_ops((enum mp_kpath)p);
			double rows = best_time(run_rows, &a), hd = best_time(run_heads, &a);
			printf("| %lld | rows/%s | %.1f | %.2f |\n", (long long)a.n_pos, mp_dispatch_name(p),
			       rows * 1e6, seq / rows);
			printf("| %lld | heads/%s | %.1f | %.2f |\n", (long long)a.n_pos, mp_dispatch_name(p),
			       hd * 1e6, seq / hd);
		}
	}
	mp_free(a.kv);
	mp_free(a.q);
	mp_free(a.att);
	mp_free(a.o);
	return 0;
}
