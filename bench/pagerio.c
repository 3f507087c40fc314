/*
 * pagerio — disk bandwidth of each I/O backend on expert-sized reads, next to
 * what fio reads from the same file with the same block size and depth.
 *
 * Not a test: it reads a 1-2 GB file and its figures depend on the disk.
 * The file is split into "experts" of --expert bytes; they are read whole, in
 * a seeded random order, each as --block sized requests kept --depth deep
 * through the same mp_io wrapper the pager uses.  The file's pages are
 * dropped from the page cache (posix_fadvise) before each backend, so every
 * figure is a cold read.  fio (if on PATH) runs a randread job with the same
 * block size and depth, O_DIRECT, io_uring (or libaio with --fio-engine).
 *
 * With --pager the same file is read through the pager instead: every
 * expert is registered as three unaligned ranges in 4 layers, the pool holds
 * a third of them, and each "token" acquires a random top-8 set per layer and
 * waits for it, so the figure includes the pager's own overhead and its hits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "io.h"
#include "pager.h"
#include "rng.h"
#include "size.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: pagerio [OPTION]... FILE\n"
	        "Read FILE's expert-sized slices in random order through each I/O backend\n"
	        "and print MB/s next to fio's on the same file.\n\n"
	        "Options:\n"
	        "  --size SIZE      create FILE with this size when it is smaller (default 1G)\n"
	        "  --io LIST        backends to run, comma-separated (default: every one built)\n"
	        "  --depth N        requests in flight (default 32)\n"
	        "  --block SIZE     bytes per request, multiple of 4K (default 4M)\n"
	        "  --expert SIZE    bytes per expert (default 24M)\n"
	        "  --fio-engine E   fio's ioengine: io_uring or libaio (default io_uring); none: skip fio\n"
	        "  --pager          read through the pager (4 layers, top-8, pool = 1/3 of the experts)\n"
	        "  --reg-max SIZE   io_uring registers the pool only up to SIZE (1 = never; default 2G)\n"
	        "  --thp            advise transparent huge pages for the pool (MADV_HUGEPAGE)\n"
	        "  --warm           with --pager: page cache warm and the pager's page-cache tier on\n"
	        "  -h, --help       this help\n");
}

static int make_file(const char *path, uint64_t size)
{
	struct stat st;
	if (stat(path, &st) == 0 && (uint64_t)st.st_size >= size)
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return -errno;
	static char buf[1 << 20];
	struct mp_rng rng;
	mp_rng_seed(&rng, 42);
	for (uint64_t o = 0; o < size; o += sizeof buf) {
		for (size_t i = 0; i < sizeof buf; i += 8) {
			uint64_t x = mp_rng_u64(&rng);
			memcpy(buf + i, &x, 8);
		}
		if (pwrite(fd, buf, sizeof buf, (off_t)o) != (ssize_t)sizeof buf) {
			close(fd);
			return -EIO;
		}
	}
	fsync(fd);
	close(fd);
	return 0;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* Reads the whole file through the page cache. */
static void warm_cache(const char *path)
{
	int fd = open(path, O_RDONLY);
	static char buf[1 << 20];
	while (fd >= 0 && read(fd, buf, sizeof buf) > 0) {}
	if (fd >= 0)
		close(fd);
}

/* Reads every expert once; returns MB/s (10^6 bytes), or < 0. */
static uint64_t reg_max;   /* --reg-max: io_uring registers the pool up to this (0: default) */
static int thp;            /* --thp: MADV_HUGEPAGE on the pool */

static double run_backend(const struct mp_io_ops *ops, const char *path, uint64_t size,
                          uint32_t depth, uint64_t block, uint64_t expert)
{
	uint64_t n_exp = size / expert;
	char *pool = NULL;
	uint64_t pool_len = (uint64_t)depth * block;
	if (!(ops->caps & MP_IO_CAP_NOPOOL)) {
		pool = mmap(NULL, pool_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (pool == MAP_FAILED)
			return -1;
		if (thp)
			madvise(pool, pool_len, MADV_HUGEPAGE);
		memset(pool, 0, pool_len);
	}
	struct mp_io_config cfg = { .depth = depth, .threads = depth < 16 ? depth : 16,
	                            .buf_base = pool, .buf_len = pool ? pool_len : 0,
	                            .reg_max = reg_max };
	struct mp_io *io = NULL;
	char msg[512];
	double mbs = -1;
	if (mp_io_open(ops, &cfg, &io, msg, sizeof msg) < 0 || mp_io_add_file(io, path, NULL) < 0) {
		fprintf(stderr, "pagerio: %s: %s\n", ops->name, io ? mp_io_message(io) : msg);
		goto out;
	}
	uint32_t *order = calloc(n_exp, sizeof *order);
	uint32_t *free_buf = calloc(depth, sizeof *free_buf);
	if (!order || !free_buf)
		goto out;
	struct mp_rng rng;
	mp_rng_seed(&rng, 7);
	for (uint32_t i = 0; i < n_exp; i++)
		order[i] = i;
	for (uint32_t i = n_exp; i > 1; i--) {
		uint32_t j = (uint32_t)mp_rng_below(&rng, i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (uint32_t i = 0; i < depth; i++)
		free_buf[i] = i;
	uint32_t n_free = depth;
	uint64_t per = (expert + block - 1) / block, total = n_exp * per, sent = 0, done = 0, bytes = 0;
	uint64_t t0 = mp_clock_now_ns();
	struct mp_io_cqe c[64];
	while (done < total) {
		while (sent < total && n_free) {
			uint64_t e = order[sent / per], k = sent % per;
			uint64_t off = e * expert + k * block;
			uint64_t len = expert - k * block < block ? expert - k * block : block;
			uint32_t b = free_buf[--n_free];
			struct mp_io_req r = { .file = 0, .offset = off, .len = len,
			                       .buf = pool ? pool + (uint64_t)b * block : NULL, .tag = b };
			if (mp_io_submit(io, &r, 1) != 1) {
				free_buf[n_free++] = b;
				break;
			}
			sent++;
		}
		int n = mp_io_reap(io, c, 64, 1);
		if (n <= 0) {
			fprintf(stderr, "pagerio: %s: reap: %s\n", ops->name, mp_strerror(n));
			goto out2;
		}
		for (int i = 0; i < n; i++) {
			if (c[i].result < 0) {
				fprintf(stderr, "pagerio: %s: read failed: %s\n", ops->name,
				        mp_strerror((int)c[i].result));
				goto out2;
			}
			bytes += (uint64_t)c[i].result;
			free_buf[n_free++] = (uint32_t)c[i].tag;
		}
		done += (uint64_t)n;
	}
	mbs = (double)bytes / 1e6 / ((double)(mp_clock_now_ns() - t0) / 1e9);
out2:
	free(order);
	free(free_buf);
out:
	mp_io_close(io);
	if (pool)
		munmap(pool, pool_len);
	return mbs;
}

/* Through the pager: returns MB/s of bytes read, hit rate in *hit_rate. */
static double run_pager(const struct mp_io_ops *ops, const char *path, uint64_t size,
                        uint32_t depth, uint64_t block, uint64_t expert, int warm,
                        double *hit_rate)
{
	const uint32_t layers = 4, top_k = 8;
	uint32_t per_layer = (uint32_t)(size / expert / layers);
	if (per_layer < top_k)
		return -1;
	uint64_t third = expert / 3, len = third - 2000;
	uint64_t slot = 3 * (((len + 4095) & ~(uint64_t)4095) + 4096);   /* pager.c's class size */
	uint64_t n_slots = (uint64_t)layers * per_layer / 3;
	struct mp_pager_config cfg = { .backend = ops, .io_depth = depth, .io_block = block,
	                               .n_layers = layers, .n_experts = per_layer, .top_k = top_k,
	                               .no_page_cache = !warm, .no_preload = 1,
	                               .budget = slot * (n_slots > top_k ? n_slots : top_k) };
	struct mp_pager *p = NULL;
	struct mp_pager_info in;
	char msg[512];
	double mbs = -1;
	if (mp_pager_create(&cfg, &p, msg, sizeof msg) < 0) {
		fprintf(stderr, "pagerio: %s\n", msg);
		return -1;
	}
	if (mp_pager_add_file(p, path) < 0)
		goto out;
	for (uint32_t l = 0; l < layers; l++)
		for (uint32_t e = 0; e < per_layer; e++) {
			uint64_t base = ((uint64_t)l * per_layer + e) * expert;
			struct mp_pager_range r[3];
			for (int i = 0; i < 3; i++)
				r[i] = (struct mp_pager_range){ .file = 0, .offset = base + i * third + 1000,
				                                .len = len };
			if (mp_pager_register(p, l, e, r, 3) < 0)
				goto out;
		}
	if (mp_pager_start(p) < 0)
		goto out;
	struct mp_rng rng;
	mp_rng_seed(&rng, 11);
	uint64_t t0 = mp_clock_now_ns();
	uint32_t tokens = 0;
	do {
		for (uint32_t l = 0; l < layers; l++) {
			uint32_t x[8];
			for (uint32_t k = 0; k < top_k; k++) {
				int dup;
				do {
					x[k] = (uint32_t)mp_rng_below(&rng, per_layer);
					dup = 0;
					for (uint32_t j = 0; j < k; j++)
						dup |= x[j] == x[k];
				} while (dup);
			}
			if (mp_pager_acquire(p, l, x, top_k) < 0)
				goto out;
			uint8_t taken[8] = { 0 };
			for (uint32_t k = 0; k < top_k; k++) {
				int i = mp_pager_wait_any(p, l, x, top_k, taken);
				if (i < 0 || mp_pager_poll(p, l, x[i], NULL, 0) < 0)
					goto out;
				taken[i] = 1;
			}
			mp_pager_release(p, l, x, top_k);
		}
		tokens++;
		mp_pager_info(p, &in);
	} while (in.bytes_read + in.pc_bytes < 2 * size && tokens < 1000);
	double s = (double)(mp_clock_now_ns() - t0) / 1e9;
	mbs = (double)(in.bytes_read + in.pc_bytes) / 1e6 / s;
	*hit_rate = (double)in.hits / (double)(in.hits + in.misses + in.pc_hits);
out:
	if (mbs < 0 && p)
		fprintf(stderr, "pagerio: pager/%s: %s\n", ops->name, mp_pager_message(p));
	mp_pager_destroy(p);
	return mbs;
}

/* fio's randread bandwidth in MB/s, or < 0 when fio is missing or fails. */
static double run_fio(const char *engine, const char *path, uint64_t size, uint32_t depth,
                      uint64_t block)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "fio --name=pagerio --filename='%s' --rw=randread --bs=%llu "
	         "--iodepth=%u --ioengine=%s --direct=1 --size=%llu --minimal 2>/dev/null",
	         path, (unsigned long long)block, depth, engine, (unsigned long long)size);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	char line[8192] = "";
	if (!fgets(line, sizeof line, f))
		line[0] = 0;
	if (pclose(f) != 0)
		return -1;
	/* terse v3: field 7 is the read bandwidth in KiB/s */
	char *p = line;
	for (int i = 1; i < 7 && p; i++) {
		p = strchr(p, ';');
		if (p)
			p++;
	}
	return p ? strtod(p, NULL) * 1024 / 1e6 : -1;
}

int main(int argc, char **argv)
{
	uint64_t size = 1ull << 30, block = 4u << 20, expert = 24u << 20;
	uint32_t depth = 32;
	const char *list = NULL, *engine = "io_uring", *path = NULL;
	int pager = 0, warm = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--size") && v) {
			bad = mp_size_parse(v, &size) < 0;
			i++;
		} else if (!strcmp(a, "--block") && v) {
			bad = mp_size_parse(v, &block) < 0 || !block || (block & 4095);
			i++;
		} else if (!strcmp(a, "--expert") && v) {
			bad = mp_size_parse(v, &expert) < 0 || !expert || (expert & 4095);
			i++;
		} else if (!strcmp(a, "--depth") && v) {
			depth = (uint32_t)strtoul(v, NULL, 10);
			bad = depth == 0 || depth > 4096;
			i++;
		} else if (!strcmp(a, "--reg-max") && v) {
			bad = mp_size_parse(v, &reg_max) < 0;
			i++;
		} else if (!strcmp(a, "--thp")) {
			thp = 1;
		} else if (!strcmp(a, "--warm")) {
			warm = 1;
		} else if (!strcmp(a, "--pager")) {
			pager = 1;
		} else if (!strcmp(a, "--io") && v) {
			list = argv[++i];
		} else if (!strcmp(a, "--fio-engine") && v) {
			engine = argv[++i];
		} else if (a[0] != '-' && !path) {
			path = a;
		} else {
			fprintf(stderr, "pagerio: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "pagerio: bad value for %s\n", a);
			return 2;
		}
	}
	if (!path || expert > size) {
		usage(stderr);
		return 2;
	}
	int rc = make_file(path, size);
	if (rc < 0) {
		fprintf(stderr, "pagerio: %s: %s\n", path, mp_strerror(rc));
		return 1;
	}
	size = size / expert * expert;
	char b1[32], b2[32], b3[32];
	printf("file %s, %s in %llu experts of %s, block %s, depth %u\n", path,
	       mp_size_format(size, b1, sizeof b1), (unsigned long long)(size / expert),
	       mp_size_format(expert, b2, sizeof b2), mp_size_format(block, b3, sizeof b3), depth);
	printf("%-8s %10s\n", "backend", "MB/s");
	for (const struct mp_io_ops *const *b = mp_io_backends(); *b; b++) {
		if (list && !strstr(list, (*b)->name))
			continue;
		char why[256] = "";
		if (pager && ((*b)->caps & MP_IO_CAP_NOPOOL)) {
			printf("%-8s %10s  (no pool: nothing to page)\n", (*b)->name, "-");
			continue;
		}
		if ((*b)->probe(why, sizeof why) < 0) {
			printf("%-8s %10s  (%s)\n", (*b)->name, "-", why);
			continue;
		}
		if (warm && pager)
			warm_cache(path);
		else
			drop_cache(path);
		double hit = 0;
		double m = pager ? run_pager(*b, path, size, depth, block, expert, warm, &hit)
		                 : run_backend(*b, path, size, depth, block, expert);
		if (pager)
			printf("%-8s %10.0f  (through the pager%s, hit rate %.2f)\n", (*b)->name, m,
			       warm ? ", warm page cache" : "", hit);
		else
			printf("%-8s %10.0f\n", (*b)->name, m);
		fflush(stdout);
	}
	if (strcmp(engine, "none") != 0) {
		drop_cache(path);
		double f = run_fio(engine, path, size, depth, block);
		if (f < 0)
			printf("%-8s %10s  (fio not found or failed; apt-get install fio)\n", "fio", "-");
		else
			printf("fio/%-4.4s %10.0f  (randread, %s, O_DIRECT)\n", engine, f, engine);
	}
	return 0;
}
