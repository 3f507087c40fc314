/*
 * bench/matmul — where the batched product's two paths cross (issue 12 item
 * 3): for each weight type, the time of Y = X·Wᵀ for m tokens by the direct
 * quantized dot loop (mp_matmul_q) and by dequantize + sgemm (mp_matmul), on
 * an expert-sized matrix (2048 × 7168, R1's expert gate/up), m = 1 .. 512; the
 * crossover is the first m from which sgemm wins at every larger m measured
 * (0: it never wins from some m on), so one noisy small m does not count.  Also the GFLOP/s mp_matmul
 * reaches at m = 512 (prefill's batch) next to plain f32 sgemm on the same
 * shape, single-threaded and with the pool (one sgemm per row chunk per
 * thread).  Before that, the dequantization rate of each type and each
 * kernel path the CPU runs (mp_quant_dequant, one thread): rows of the same
 * matrix dequantized into a 1 MiB f32 buffer, as each worker of mp_matmul
 * does, in GB/s of quantized weights read and in G elements/s written.
 * The product table uses the process's path (MOEPAGER_CPU forces one).
 * Prints Markdown for bench/README.md; kernels/matvec.c's
 * mp_matmul_crossover takes its figures from here.
 *
 *   bench/matmul [--threads N] [--types Q4_K,Q8_0,...] [--dequant-only]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "cpu.h"
#include "dispatch.h"
#include "matvec.h"
#include "quant.h"
#include "rng.h"
#include "threads.h"
#include "types.h"

enum { ROWS = 2048, COLS = 7168, MAXM = 512 };

struct run {
	struct mp_threads *pool;
	struct mp_mat w;
	const float *x;
	float *y;
	int64_t m;
	int direct;
};

/* Best of at least 3 runs and 0.2 s, in seconds. */
static double best(struct run *r)
{
	double best_s = 1e9, total = 0;
	for (int i = 0; i < 3 || total < 0.2; i++) {
		uint64_t t0 = mp_clock_now_ns();
		if (r->direct)
			mp_matmul_q(r->pool, mp_dispatch_path(), &r->w, r->x, r->m, r->y);
		else
			mp_matmul(r->pool, &r->w, r->x, r->m, r->y);
		double s = (double)(mp_clock_now_ns() - t0) * 1e-9;
		best_s = s < best_s ? s : best_s;
		total += s;
	}
	return best_s;
}

/* Dequantizes the rows of w into a 1 MiB buffer (wrapping) with fn; best
 * seconds of at least 3 passes and 0.2 s. */
static double dequant_best(mp_dequant_fn fn, const struct mp_mat *w, float *buf)
{
	uint64_t rb;
	mp_type_row_bytes(w->type, (uint64_t)w->cols, &rb);
	int64_t per_buf = ((int64_t)1 << 20) / (w->cols * (int64_t)sizeof(float));
	double best_s = 1e9, total = 0;
	for (int i = 0; i < 3 || total < 0.2; i++) {
		uint64_t t0 = mp_clock_now_ns();
		for (int64_t r = 0; r < w->rows; r++)
			fn((const uint8_t *)w->data + (uint64_t)r * rb, buf + (r % per_buf) * w->cols, w->cols);
		double s = (double)(mp_clock_now_ns() - t0) * 1e-9;
		best_s = s < best_s ? s : best_s;
		total += s;
	}
	return best_s;
}

/* One row of the dequantization table: each path the CPU runs. */
static void dequant_row(enum mp_type t, const struct mp_mat *w, float *buf)
{
	uint64_t rb;
	mp_type_row_bytes(t, (uint64_t)w->cols, &rb);
	double bytes = (double)rb * (double)w->rows, elems = (double)w->rows * (double)w->cols;
	double base = 0;
	printf("| %s |", mp_type_name(t));
	for (int p = 0; p < MP_KPATH_COUNT; p++) {
		if (!mp_dispatch_supported((enum mp_kpath)p, mp_cpu_features())) {
			printf(" (CPU lacks it) | |");
			continue;
		}
		double sec = dequant_best(mp_quant_dequant(t, (enum mp_kpath)p), w, buf);
		base = p == 0 ? sec : base;
		printf(" %.2f GB/s, %.2f Gelem/s | %.1f× |", bytes / sec * 1e-9, elems / sec * 1e-9,
		       base / sec);
	}
	printf("\n");
	fflush(stdout);
}

static int in_list(const char *list, const char *name)
{
	if (!list)
		return 1;
	size_t n = strlen(name);
	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, name, n) && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int nth = (int)sysconf(_SC_NPROCESSORS_ONLN);
	const char *types = NULL;
	int dequant_only = 0;
	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--dequant-only")) {
			dequant_only = 1;
			i--;
		} else if (i + 1 >= argc)
			goto usage;
		else if (!strcmp(argv[i], "--threads"))
			nth = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--types"))
			types = argv[i + 1];
		else {
usage:
			fprintf(stderr, "usage: bench/matmul [--threads N] [--types LIST] [--dequant-only]\n");
			return 2;
		}
	}
	char why[256];
	if (mp_dispatch_init(why, sizeof why) < 0) {
		fprintf(stderr, "bench/matmul: %s\n", why);
		return 1;
	}
	struct mp_threads *pool, *one;
	float *src = mp_malloc_array((size_t)ROWS * COLS, sizeof(float));
	float *x = mp_malloc_array((size_t)MAXM * COLS, sizeof(float));
	float *y = mp_malloc_array((size_t)MAXM * ROWS, sizeof(float));
	void *wq = mp_malloc((size_t)ROWS * COLS * sizeof(float));
	if (!src || !x || !y || !wq || nth < 1 || mp_threads_create(nth, &pool) < 0 ||
	    mp_threads_create(1, &one) < 0) {
		fprintf(stderr, "bench/matmul: out of memory or threads\n");
		return 1;
	}
	struct mp_rng rng;
	mp_rng_seed(&rng, 1);
	for (size_t i = 0; i < (size_t)ROWS * COLS; i++)
		src[i] = (float)mp_rng_normal(&rng) * 0.02f;
	for (size_t i = 0; i < (size_t)MAXM * COLS; i++)
		x[i] = (float)mp_rng_normal(&rng);
	char date_s[64];
	time_t now = time(NULL);
	strftime(date_s, sizeof date_s, "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("machine: %s, %d online CPUs; %d threads; kernels %s; %s\n", mp_cpu_brand(),
	       (int)sysconf(_SC_NPROCESSORS_ONLN), nth, mp_dispatch_name(mp_dispatch_path()), date_s);
	printf("matrix %d × %d; times in ms (best of ≥ 3); crossover = first m from which sgemm wins at every larger m\n\n",
	       ROWS, COLS);
	static const enum mp_type list[] = { MP_TYPE_F32, MP_TYPE_F16, MP_TYPE_BF16, MP_TYPE_Q8_0,
					     MP_TYPE_Q4_0, MP_TYPE_Q4_1, MP_TYPE_Q5_0, MP_TYPE_Q5_1,
					     MP_TYPE_Q2_K, MP_TYPE_Q3_K, MP_TYPE_Q4_K, MP_TYPE_Q5_K,
					     MP_TYPE_Q6_K };
	enum { NT = sizeof list / sizeof list[0] };
	printf("dequantization, 1 thread, rows into a 1 MiB buffer; the ratios are to scalar\n\n");
	printf("| type | scalar | | avx2 | | avx512 | |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (size_t ti = 1; ti < NT; ti++) {
		if (!in_list(types, mp_type_name(list[ti])))
			continue;
		mp_quant_ops(list[ti])->quantize(src, wq, (int64_t)ROWS * COLS);
		struct mp_mat dw = { wq, list[ti], ROWS, COLS };
		dequant_row(list[ti], &dw, y);
	}
	if (dequant_only)
		goto out;
	printf("\nproduct, kernels %s\n\n", mp_dispatch_name(mp_dispatch_path()));
	static const int ms[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
	enum { NM = sizeof ms / sizeof ms[0] };
	printf("| type | path |");
	for (int k = 0; k < NM; k++)
		printf(" m=%d |", ms[k]);
	printf(" crossover | in code | GFLOP/s at m=%d |\n| --- | --- |", MAXM);
	for (int k = 0; k < NM + 3; k++)
		printf(" ---: |");
	printf("\n");
	for (size_t ti = 0; ti < NT; ti++) {
		enum mp_type t = list[ti];
		if (!in_list(types, mp_type_name(t)))
			continue;
		mp_quant_ops(t)->quantize(src, wq, (int64_t)ROWS * COLS);
		struct run r = { pool, { wq, t, ROWS, COLS }, x, y, 1, 1 };
		double td[NM], ts[NM];
		int cross = 0;
		for (int k = 0; k < NM; k++) {
			r.m = ms[k];
			r.direct = 1;
			td[k] = best(&r);
			r.direct = 0;
			ts[k] = best(&r);
			if (ts[k] >= td[k])
				cross = 0;   /* sgemm must win at every larger m too */
			else if (!cross)
				cross = ms[k];
		}
		r.m = MAXM;
		double flops = 2.0 * MAXM * ROWS * COLS, gf = flops / best(&r) * 1e-9;
		for (int p = 0; p < 2; p++) {
			printf("| %s | %s |", mp_type_name(t), p ? "dequant + sgemm" : "direct");
			for (int k = 0; k < NM; k++)
				printf(" %.2f |", (p ? ts[k] : td[k]) * 1e3);
			if (p)
				printf(" %d | %lld | %.1f |\n", cross, (long long)mp_matmul_crossover(t), gf);
			else
				printf(" | | |\n");
		}
		fflush(stdout);
	}
	/* plain sgemm on the same shape: what OpenBLAS does on this CPU */
	for (int k = 0; k < (int)((size_t)ROWS * COLS); k++)
		((float *)wq)[k] = src[k];
	struct run f = { one, { wq, MP_TYPE_F32, ROWS, COLS }, x, y, MAXM, 0 };
	double flops = 2.0 * MAXM * ROWS * COLS;
	double g1 = flops / best(&f) * 1e-9;
	f.pool = pool;
	double gn = flops / best(&f) * 1e-9;
	printf("\nf32 sgemm %d × %d × %d: %.1f GFLOP/s on 1 thread, %.1f on %d\n", MAXM, ROWS, COLS, g1,
	       gn, nth);
out:
	mp_threads_destroy(pool);
	mp_threads_destroy(one);
	mp_free(src);
	mp_free(x);
	mp_free(y);
	mp_free(wq);
	return 0;
}
