/*
 * bench/kernels — how close matvec comes to memory bandwidth.
 *
 * In one run: (1) the machine's read bandwidth, STREAM-like (every thread sums
 * its share of a buffer larger than the last-level cache), with 1 thread and
 * with all threads; (2) for each hot weight type and each kernel path the CPU
 * runs, the weight bytes per second mp_matvec streams through a matrix of the
 * same size (R1's hidden width, 7168 columns), with 1 thread and all threads,
 * and the ratio to the read bandwidth of the same thread count, measured
 * again just before each type (the load of a shared machine drifts); plus, for
 * each kernel, the rate on a 4 MiB matrix that stays in the cache (what one
 * core computes when memory is not the limit).  Each figure
 * is the best of several repetitions (at least 3 and 0.3 s).  Before the
 * types, (0) the cost of one parallel region of the thread pool: an empty job
 * run after the caller worked alone for a gap, with the pool's default spin
 * and with spinning off (median of many runs).  Prints Markdown tables for
 * bench/README.md.
 *
 *   bench/kernels [--threads N] [--mb MB] [--cols N] [--types Q4_K,Q6_K,...] [--paths scalar,avx2,...]
 * --cols 128 with --types Q5_0 is the shape of R1's attn_k_b rows.
 */
#include <stdint.h>
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
#include "simd.h"
#include "threads.h"
#include "types.h"

enum {
	COLS = 7168,     /* R1's hidden width: the default --cols */
	CACHED_MB = 4,   /* matrix size of the in-cache (compute-bound) figure */
};

struct read_job {
	const uint8_t *buf;
	size_t len;
	uint64_t sums[1024];   /* per thread: keeps the loads alive */
};

#if MP_HAVE_X86
MP_TARGET_AVX2 static uint64_t sum_avx2(const uint8_t *p, size_t len)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t i = 0; i + 128 <= len; i += 128) {
		a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
		a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
		a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
		a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
	}
	__m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
	uint64_t out[4];
	_mm256_storeu_si256((__m256i *)out, s);
	return out[0] + out[1] + out[2] + out[3];
}
#endif

static uint64_t sum_plain(const uint8_t *p, size_t len)
{
	const uint64_t *q = (const uint64_t *)p;
	uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	for (size_t i = 0; i + 4 <= len / 8; i += 4) {
		s0 += q[i];
		s1 += q[i + 1];
		s2 += q[i + 2];
		s3 += q[i + 3];
	}
	return s0 + s1 + s2 + s3;
}

static int use_avx2;

static void read_worker(void *ctx, int ith, int nth)
{
	struct read_job *j = ctx;
	size_t chunk = (j->len / (size_t)nth) & ~(size_t)4095;
	const uint8_t *p = j->buf + chunk * (size_t)ith;
#if MP_HAVE_X86
	if (use_avx2) {
		j->sums[ith] += sum_avx2(p, chunk);
		return;
	}
#endif
	j->sums[ith] += sum_plain(p, chunk);
}

typedef void (*bench_fn)(void *ctx);

/* Best time of fn over ≥ 3 repetitions and ≥ min_s seconds (after one warm-up). */
static double best_time(bench_fn fn, void *ctx, double min_s)
{
	fn(ctx);
	double best = 1e30, total = 0;
	for (int rep = 0; rep < 3 || total < min_s; rep++) {
		uint64_t t0 = mp_clock_now_ns();
		fn(ctx);
		double dt = (double)(mp_clock_now_ns() - t0) * 1e-9;
		total += dt;
		if (dt < best)
			best = dt;
		if (rep > 200)
			break;
	}
	return best;
}

struct read_ctx {
	struct mp_threads *pool;
	struct read_job *job;
};

static void run_read(void *ctx)
{
	struct read_ctx *c = ctx;
	mp_threads_run(c->pool, read_worker, c->job);
}

struct mv_ctx {
	struct mp_threads *pool;
	enum mp_kpath path;
	struct mp_mat w;
	const float *x;
	float *y;
};

static void run_matvec(void *ctx)
{
	struct mv_ctx *c = ctx;
	if (mp_matvec(c->pool, c->path, &c->w, c->x, c->y) < 0) {
		fprintf(stderr, "bench/kernels: matvec failed\n");
		exit(1);
	}
}

static void empty_job(void *ctx, int ith, int nth)
{
	(void)ctx;
	(void)ith;
	(void)nth;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Median ns of one empty parallel region on pool, each run after the caller
 * busy-waited gap_us alone (serial work between two regions). */
static double region_ns(struct mp_threads *pool, unsigned gap_us)
{
	enum { MAXREP = 2000 };
	static uint64_t t[MAXREP];
	int reps = gap_us ? (int)(300000u / gap_us) : MAXREP;
	reps = reps < 25 ? 25 : reps > MAXREP ? MAXREP : reps;
	mp_threads_run(pool, empty_job, NULL);
	for (int r = 0; r < reps; r++) {
		uint64_t until = mp_clock_now_ns() + (uint64_t)gap_us * 1000u;
		while (mp_clock_now_ns() < until)
			;
		uint64_t t0 = mp_clock_now_ns();
		mp_threads_run(pool, empty_job, NULL);
		t[r] = mp_clock_now_ns() - t0;
	}
	qsort(t, (size_t)reps, sizeof t[0], cmp_u64);
	return (double)t[reps / 2];
}

/* Table (0): the cost of one parallel region against the gap before it. */
static void bench_pool(struct mp_threads *pool, int n)
{
	static const unsigned gaps[] = { 0, 20, 100, 500, 2000, 10000 };
	printf("Thread pool, %d threads: one empty parallel region (wake the workers, run,\n"
	       "join), median microseconds, after the caller worked alone for the gap.\n\n", n);
	printf("| gap before the region, µs | spin %u µs (default), µs | no spin (sleep at once), µs |\n",
	       MP_THREADS_SPIN_US);
	printf("| ---: | ---: | ---: |\n");
	for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
		mp_threads_set_spin_us(pool, MP_THREADS_SPIN_US);
		double spin = region_ns(pool, gaps[g]);
		mp_threads_set_spin_us(pool, 0);
		double none = region_ns(pool, gaps[g]);
		printf("| %u | %.1f | %.1f |\n", gaps[g], spin * 1e-3, none * 1e-3);
		fflush(stdout);
	}
	mp_threads_set_spin_us(pool, MP_THREADS_SPIN_US);
	printf("\n");
}

static int in_list(const char *list, const char *name)
{
	if (!list)
		return 1;
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
	return 0;
}

/* The 1-minute load average, or −1: other work on the machine skews the
 * figures, so the report names it. */
static double load_avg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench/kernels [--threads N] [--mb MB] [--cols N] [--types LIST] [--paths LIST]\n");
	exit(2);
}

struct bench {
	int nthreads;                /* threads of the "all threads" columns */
	long cols;                   /* columns of every matrix (--cols) */
	long mb;                     /* MiB of weights per matrix */
	const char *types, *paths;   /* comma lists, NULL = all */
	unsigned feats;              /* CPU features */
	struct mp_threads *pool1, *pooln;
	uint8_t *base;               /* mb MiB, page-aligned */
	size_t bytes;
	float *x, *src;              /* input vector; 16 rows of weights to quantize */
};

static void parse_args(struct bench *b, int argc, char **argv)
{
	b->nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	b->mb = 256;
	b->cols = COLS;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--threads"))
			b->nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mb"))
			b->mb = atol(argv[++i]);
		else if (!strcmp(argv[i], "--cols"))
			b->cols = atol(argv[++i]);
		else if (!strcmp(argv[i], "--types"))
			b->types = argv[++i];
		else if (!strcmp(argv[i], "--paths"))
			b->paths = argv[++i];
		else
			usage();
	}
	if (b->nthreads < 1 || b->nthreads > 1024 || b->mb < 16 || b->cols < 1 || b->cols > (1 << 20))
		usage();
}

static void print_header(const struct bench *b, int argc, char **argv)
{
	char feat_s[256], date_s[64];
	time_t now = time(NULL);
	strftime(date_s, sizeof date_s, "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("machine: %s, %d online CPUs; features: %s\n", mp_cpu_brand(),
	       (int)sysconf(_SC_NPROCESSORS_ONLN), mp_cpu_describe(b->feats, feat_s, sizeof feat_s));
	printf("date:    %s\ncommand:", date_s);
	for (int i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\nweights: %ld MiB per matrix, %ld columns; times are the best of >= 3 runs\n", b->mb,
	       b->cols);
	printf("load average at start: %.2f\n\n", load_avg());
}

static void print_table_head(const struct bench *b)
{
	printf("Each type's first row is the memory read bandwidth, measured just before its\n"
	       "kernels; the percentages are of that row.\n\n");
	printf("| type | path | in-cache GB/s, 1 thread | GB/s, 1 thread | of read bw | GB/s, %d thread%s | of read bw |\n",
	       b->nthreads, b->nthreads > 1 ? "s" : "");
	printf("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
}

/* Read bandwidth (GB/s) over the whole buffer with pool. */
static double read_bw(const struct bench *b, struct mp_threads *pool)
{
	static struct read_job rj;
	rj.buf = b->base;
	rj.len = b->bytes;
	struct read_ctx rc = { pool, &rj };
	return (double)b->bytes / best_time(run_read, &rc, 0.3) * 1e-9;
}

/* One type: fills the buffer with its blocks, then measures each path. */
static int bench_type(const struct bench *b, enum mp_type t)
{
	uint64_t rb;
	const struct mp_type_info *ti = mp_type_info(t);
	if (b->cols % (long)ti->block_elems) {
		printf("| %s | (skipped: --cols %ld is not a multiple of its %u-element block) | | | | | |\n",
		       mp_type_name(t), b->cols, (unsigned)ti->block_elems);
		return 0;
	}
	mp_type_row_bytes(t, (uint64_t)b->cols, &rb);
	int64_t rows = (int64_t)(b->bytes / rb);
	/* 16 real rows, repeated: the values do not change the speed */
	mp_quant_ops(t)->quantize(b->src, b->base, 16 * b->cols);
	for (int64_t row = 16; row < rows; row++)
		memcpy(b->base + row * rb, b->base + (row % 16) * rb, rb);
	float *y = mp_malloc_array((size_t)rows, sizeof(float));
	if (!y)
		return -1;
	double bw1 = read_bw(b, b->pool1), bwn = read_bw(b, b->pooln);
	printf("| %s | (memory read) | | %.1f | 100%% | %.1f | 100%% |\n", mp_type_name(t), bw1, bwn);
	for (int p = 0; p < MP_KPATH_COUNT; p++) {
		if (!mp_dispatch_supported((enum mp_kpath)p, b->feats) ||
		    !in_list(b->paths, mp_dispatch_name((enum mp_kpath)p)))
			continue;
		struct mv_ctx c = { b->pool1, (enum mp_kpath)p, { b->base, t, rows, b->cols }, b->x, y };
		/* compute-bound figure: a matrix that stays in the cache */
		int64_t small_rows = (int64_t)((size_t)CACHED_MB << 20) / (int64_t)rb;
		c.w.rows = small_rows < rows ? small_rows : rows;
		double gc = (double)c.w.rows * (double)rb / best_time(run_matvec, &c, 0.2) * 1e-9;
		c.w.rows = rows;
		double total = (double)rows * (double)rb;
		double g1 = total / best_time(run_matvec, &c, 0.3) * 1e-9;
		c.pool = b->pooln;
		double gn = total / best_time(run_matvec, &c, 0.3) * 1e-9;
		printf("| %s | %s | %.1f | %.1f | %.0f%% | %.1f | %.0f%% |\n", mp_type_name(t),
		       mp_dispatch_name((enum mp_kpath)p), gc, g1, 100 * g1 / bw1, gn, 100 * gn / bwn);
		fflush(stdout);
	}
	mp_free(y);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bench b;
	parse_args(&b, argc, argv);
	b.feats = mp_cpu_features();
	use_avx2 = mp_dispatch_supported(MP_KPATH_AVX2, b.feats);
	b.bytes = (size_t)b.mb << 20;
	uint8_t *buf = mp_malloc(b.bytes + 4096);
	b.x = mp_malloc_array((size_t)b.cols, sizeof(float));
	b.src = mp_malloc_array(16 * (size_t)b.cols, sizeof(float));
	if (!buf || !b.x || !b.src || mp_threads_create(1, &b.pool1) < 0 ||
	    mp_threads_create(b.nthreads, &b.pooln) < 0) {
		fprintf(stderr, "bench/kernels: out of memory or threads\n");
		return 1;
	}
	b.base = (uint8_t *)(((uintptr_t)buf + 4095) & ~(uintptr_t)4095);
	memset(b.base, 1, b.bytes);
	struct mp_rng r;
	mp_rng_seed(&r, 1);
	for (long i = 0; i < b.cols; i++)
		b.x[i] = (float)mp_rng_normal(&r);
	for (long i = 0; i < 16 * b.cols; i++)
		b.src[i] = (float)mp_rng_normal(&r) * 0.02f;

	print_header(&b, argc, argv);
	bench_pool(b.pooln, b.nthreads);
	print_table_head(&b);
	/* the Q4_K_M types, then those of the 1.6-2.7-bit R1 files (IQ1_S ...
	 * Q3_K), then the float types, then the other 32-element types (Q5_1:
	 * attn_k_b of Q5_K_M files) */
	static const enum mp_type hot[] = { MP_TYPE_Q4_K, MP_TYPE_Q6_K, MP_TYPE_Q8_0, MP_TYPE_Q5_0,
					    MP_TYPE_Q5_K, MP_TYPE_IQ1_S, MP_TYPE_IQ1_M,
					    MP_TYPE_IQ2_XXS, MP_TYPE_IQ2_XS, MP_TYPE_IQ3_XXS,
					    MP_TYPE_Q2_K, MP_TYPE_Q3_K, MP_TYPE_BF16, MP_TYPE_F16,
					    MP_TYPE_F32, MP_TYPE_Q5_1, MP_TYPE_Q4_0, MP_TYPE_Q4_1 };
	int rc = 0;
	for (size_t k = 0; k < sizeof hot / sizeof hot[0] && rc == 0; k++)
		if (in_list(b.types, mp_type_name(hot[k])))
			rc = bench_type(&b, hot[k]);
	printf("\nload average at end: %.2f\n", load_avg());
	mp_free(b.x);
	mp_free(b.src);
	mp_threads_destroy(b.pool1);
	mp_threads_destroy(b.pooln);
	mp_free(buf);
	return rc ? 1 : 0;
}
