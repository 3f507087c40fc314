/*
 * gguftool.c — moepager-gguf: look inside a GGUF model (info, tensors), plan
 * memory for it (plan) and check its bytes (manifest, verify).  Output is for
 * people by default and JSON with --json.
 *
 * The manifest is a text sidecar (default <part 1>.manifest):
 *     moepager-manifest 1
 *     model <part-1 file name> parts <N> tensors <N>
 *     t <xxh3-64 hex> <part> <offset> <bytes> <tensor name>
 *     e <xxh3-64 hex> <part> <offset> <bytes> <layer> <expert> <gate|up|down>
 * one `t` line per non-expert tensor and one `e` line per expert slice, in
 * file order.  Version 1; later versions only add line kinds.
 */
#define XXH_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "gguf.h"
#include "loader.h"
#include "model.h"
#include "plan.h"
#include "size.h"
#include "types.h"

#define READ_CHUNK (8u << 20)

struct args {
	const char *cmd, *model, *manifest;
	int json;
	uint64_t cache_budget, mem_limit, ctx;
	uint64_t threads, batch;     /* plan: as moepager's -t and -b (0: its defaults) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: moepager-gguf COMMAND MODEL [OPTION]...\n"
		"Inspect a GGUF model: metadata, tensors, the memory plan, and an XXH3 manifest of\n"
		"every tensor and routed expert to verify the file against.  MODEL is a .gguf file\n"
		"or part 1 of a split set.\n"
		"\n"
		"Commands:\n"
		"  info                     architecture, key metadata, bytes per type, resident\n"
		"                           against routed-expert bytes, per-expert size per layer\n"
		"  tensors                  name, type, shape, file part, offset, size\n"
		"  plan                     what stays resident, KV cache, pool, experts per layer\n"
		"  manifest                 write the XXH3-64 sidecar (default MODEL.manifest)\n"
		"  verify                   check MODEL against its manifest, name the first\n"
		"                           corrupt tensor or expert\n"
		"\n"
		"Options:\n"
		"      --cache-budget SIZE  plan: the expert pool\n"
		"      --mem-limit SIZE     plan: the whole process; the pool gets the rest\n"
		"      --ctx N              plan: KV cache tokens (default: 4096)\n"
		"  -t, --threads N          plan: compute threads (default: the online CPUs)\n"
		"  -b, --batch-size N       plan: prompt tokens per prefill batch (default: 512)\n"
		"  -m, --manifest FILE      manifest file (default: MODEL.manifest)\n"
		"      --json               output for scripts\n"
		"  -h, --help               print this help and exit\n"
		"  -V, --version            print the version and exit\n");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static double mb(uint64_t b) { return (double)b / 1e6; }

/* ---- info -------------------------------------------------------------------- */

static int cmd_info(struct mp_gguf *g, const struct args *a)
{
	uint64_t per_type[MP_TYPE_COUNT] = {0}, n_type[MP_TYPE_COUNT] = {0}, total = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		per_type[t->type] += t->nbytes;
		n_type[t->type]++;
		total += t->nbytes;
	}
	struct mp_plan_opts po = {.cache_budget = UINT64_MAX};
	struct mp_plan p;
	char err[MP_GGUF_ERR_LEN];
	int have_plan = mp_plan_compute(g, &po, &p, err, sizeof err) == 0;
	const char *arch = "?";
	mp_gguf_get_str(g, "general.architecture", &arch);
	if (a->json) {
		printf("{\"file\":");
		json_str(mp_gguf_part_path(g, 0));
		printf(",\"parts\":%u,\"version\":%u,\"alignment\":%u,\"architecture\":", mp_gguf_part_count(g),
		       mp_gguf_version(g), mp_gguf_alignment(g));
		json_str(arch);
		printf(",\"tensors\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"metadata\":{", mp_gguf_tensor_count(g), total);
		for (uint64_t i = 0; i < mp_gguf_kv_count(g); i++) {
			char v[256];
			mp_gguf_kv_format(g, i, v, sizeof v);
			printf("%s", i ? "," : "");
			json_str(mp_gguf_kv_key(g, i));
			putchar(':');
			json_str(v);
		}
		printf("},\"bytes_per_type\":{");
		int first = 1;
		for (uint32_t t = 0; t < MP_TYPE_COUNT; t++)
			if (n_type[t]) {
				printf("%s\"%s\":%" PRIu64, first ? "" : ",", mp_type_name(t), per_type[t]);
				first = 0;
			}
		printf("}");
		if (have_plan) {
			printf(",\"resident_bytes\":%" PRIu64 ",\"routed_bytes\":%" PRIu64 ",\"experts\":%u,"
			       "\"experts_used\":%u,\"layers\":[", p.resident_bytes, p.routed_bytes, p.n_expert,
			       p.n_used);
			for (uint32_t l = 0; l < p.n_layer; l++)
				printf("%s{\"layer\":%u,\"moe\":%u,\"resident_bytes\":%" PRIu64 ",\"routed_bytes\":%" PRIu64
				       ",\"expert_bytes\":%" PRIu64 "}", l ? "," : "", l, p.layers[l].moe,
				       p.layers[l].resident_bytes, p.layers[l].routed_bytes, p.layers[l].expert_bytes);
			printf("]");
		}
		printf("}\n");
		mp_plan_free(&p);
		return 0;
	}
	printf("file:          %s (%u part%s, GGUF v%u, alignment %u)\n", mp_gguf_part_path(g, 0),
	       mp_gguf_part_count(g), mp_gguf_part_count(g) > 1 ? "s" : "", mp_gguf_version(g),
	       mp_gguf_alignment(g));
	printf("architecture:  %s\n", arch);
	printf("tensors:       %" PRIu64 ", %.1f MB of data\n", mp_gguf_tensor_count(g), mb(total));
	printf("metadata:\n");
	for (uint64_t i = 0; i < mp_gguf_kv_count(g); i++) {
		char v[256];
		mp_gguf_kv_format(g, i, v, sizeof v);
		printf("  %-48s %s\n", mp_gguf_kv_key(g, i), v);
	}
	printf("bytes per type:\n");
	for (uint32_t t = 0; t < MP_TYPE_COUNT; t++)
		if (n_type[t])
			printf("  %-8s %5" PRIu64 " tensors %12.1f MB\n", mp_type_name(t), n_type[t], mb(per_type[t]));
	if (!have_plan) {
		printf("(no expert layout: %s)\n", err);
		return 0;
	}
	printf("resident:      %.1f MB (every tensor but the routed experts)\n", mb(p.resident_bytes));
	printf("routed:        %.1f MB (%.1f%%), %u experts per layer, %u used per token\n",
	       mb(p.routed_bytes), total ? 100.0 * (double)p.routed_bytes / (double)total : 0.0,
	       p.n_expert, p.n_used);
	printf("per-expert size (gate + up + down):\n");
	for (uint32_t l = 0; l < p.n_layer; l++)
		if (p.layers[l].moe)
			printf(p.layers[l].expert_bytes >= 10000000 ? "  layer %3u: %8.1f MB  (%.2f MiB, ffn_down %s)\n"
								    : "  layer %3u: %8.3f MB  (%.2f MiB, ffn_down %s)\n",
			       l, mb(p.layers[l].expert_bytes),
			       (double)p.layers[l].expert_bytes / 1048576.0, mp_type_name(p.layers[l].down_type));
	mp_plan_free(&p);
	return 0;
}

/* ---- tensors ----------------------------------------------------------------- */

static int cmd_tensors(struct mp_gguf *g, const struct args *a)
{
	if (a->json)
		printf("[");
	else
		printf("%-36s %-8s %-26s %4s %14s %14s\n", "name", "type", "shape", "part", "offset", "bytes");
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		char shape[96];
		int n = snprintf(shape, sizeof shape, "[");
		for (uint32_t d = 0; d < (t->n_dims ? t->n_dims : 1); d++)
			n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%" PRIu64, d ? ", " : "", t->ne[d]);
		snprintf(shape + n, sizeof shape - (size_t)n, "]");
		if (a->json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(t->name);
			printf(",\"type\":\"%s\",\"shape\":%s,\"part\":%u,\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
			       mp_type_name(t->type), shape, t->part + 1, t->offset, t->nbytes);
		} else {
			printf("%-36s %-8s %-26s %4u %14" PRIu64 " %14" PRIu64 "\n", t->name, mp_type_name(t->type),
			       shape, t->part + 1, t->offset, t->nbytes);
		}
	}
	if (a->json)
		printf("]\n");
	return 0;
}

/* ---- plan -------------------------------------------------------------------- */

static int cmd_plan(struct mp_gguf *g, const struct args *a)
{
	/* the plan moepager makes with the same flags: its threads and its
	 * prefill batch's scratch (moepager's defaults when not given) */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t threads = a->threads ? (uint32_t)a->threads : ncpu > 0 ? (uint32_t)ncpu : 1;
	uint32_t batch = a->batch ? (uint32_t)a->batch : 512, ctx = a->ctx ? (uint32_t)a->ctx : 4096;
	struct mp_hparams hp;
	char err[MP_GGUF_ERR_LEN];
	if (mp_loader_hparams(g, &hp, err, sizeof err) < 0) {
		fprintf(stderr, "moepager-gguf: %s\n", err);
		return 1;
	}
	struct mp_plan_opts po = {
		.cache_budget = a->cache_budget, .mem_limit = a->mem_limit, .ctx = a->ctx,
		.threads = threads,
		.batch_scratch = mp_model_batch_bytes(&hp, batch, ctx, (int)threads, 0),
	};
	struct mp_plan p;
	int rc = mp_plan_compute(g, &po, &p, err, sizeof err);
	if (rc) {
		fprintf(stderr, "moepager-gguf: %s\n", err);
		return 1;
	}
	if (a->json) {
		printf("{\"resident_bytes\":%" PRIu64 ",\"routed_bytes\":%" PRIu64 ",\"ctx\":%" PRIu64
		       ",\"kv_bytes\":%" PRIu64 ",\"scratch_bytes\":%" PRIu64 ",\"pool_bytes\":%" PRIu64
		       ",\"pool_fraction\":%.4f,\"pool_experts\":%" PRIu64 ",\"min_pool_bytes\":%" PRIu64
		       ",\"min_mem_bytes\":%" PRIu64 ",\"full_pool_bytes\":%" PRIu64 ",\"layers\":[",
		       p.resident_bytes, p.routed_bytes, p.ctx, p.kv_bytes, p.scratch_bytes, p.pool_bytes,
		       p.pool_fraction, p.pool_experts, p.min_pool_bytes, p.min_mem_bytes, p.full_pool_bytes);
		int first = 1;
		for (uint32_t l = 0; l < p.n_layer; l++)
			if (p.layers[l].moe) {
				printf("%s{\"layer\":%u,\"expert_bytes\":%" PRIu64 ",\"fit\":%" PRIu64 ",\"experts\":%u}",
				       first ? "" : ",", l, p.layers[l].expert_bytes, p.layers[l].fit, p.n_expert);
				first = 0;
			}
		printf("]}\n");
	} else {
		printf("resident:         %10.1f MB  (attention, dense and shared FFN, router, embeddings)\n",
		       mb(p.resident_bytes));
		printf("KV cache:         %10.1f MB  (f16, %" PRIu64 " tokens)\n", mb(p.kv_bytes), p.ctx);
		printf("scratch:          %10.1f MB  (estimate)\n", mb(p.scratch_bytes));
		printf("expert pool:      %10.1f MB  = %.1f%% of %.1f MB of routed experts, %" PRIu64 " experts\n",
		       mb(p.pool_bytes), 100.0 * p.pool_fraction, mb(p.routed_bytes), p.pool_experts);
		printf("total:            %10.1f MB\n",
		       mb(p.resident_bytes + p.kv_bytes + p.scratch_bytes + p.pool_bytes));
		for (uint32_t l = 0; l < p.n_layer; l++)
			if (p.layers[l].moe)
				printf("  layer %3u: %4" PRIu64 " of %u experts fit (%.1f MB each)\n", l, p.layers[l].fit,
				       p.n_expert, mb(p.layers[l].expert_bytes));
		printf("smallest workable: pool %.1f MB, --mem-limit %.1f MB at this --ctx\n",
		       mb(p.min_pool_bytes), mb(p.min_mem_bytes));
		printf("every expert resident: pool %.1f MB, --mem-limit %.1f MB at this --ctx\n",
		       mb(p.full_pool_bytes),
		       mb(p.resident_bytes + p.kv_bytes + p.scratch_bytes + p.full_pool_bytes));
	}
	mp_plan_free(&p);
	return 0;
}

/* ---- hashing ----------------------------------------------------------------- */

struct reader {
	struct mp_gguf *g;
	int *fds;                 /* per part, -1 until opened */
	uint8_t *buf;             /* READ_CHUNK */
	uint64_t total, done;     /* bytes to hash, hashed */
	uint64_t t0, last;        /* ns */
	int tty;
};

static int reader_init(struct reader *r, struct mp_gguf *g, uint64_t total)
{
	memset(r, 0, sizeof *r);
	r->g = g;
	r->fds = mp_malloc_array(mp_gguf_part_count(g), sizeof(int));
	r->buf = mp_malloc(READ_CHUNK);
	if (!r->fds || !r->buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < mp_gguf_part_count(g); i++)
		r->fds[i] = -1;
	r->total = total;
	r->tty = isatty(2);
	r->t0 = r->last = mp_clock_now_ns();
	return 0;
}

static void reader_done(struct reader *r)
{
	for (uint32_t i = 0; r->fds && i < mp_gguf_part_count(r->g); i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	mp_free(r->fds);
	mp_free(r->buf);
}

static void bar(struct reader *r, int force)
{
	uint64_t now = mp_clock_now_ns();
	if (!r->tty || (!force && now - r->last < 200000000ull))
		return;
	r->last = now;
	double f = r->total ? (double)r->done / (double)r->total : 1.0, s = (double)(now - r->t0) / 1e9;
	char b[31];
	int n = (int)(f * 30);
	for (int i = 0; i < 30; i++)
		b[i] = i < n ? '#' : '.';
	b[30] = 0;
	fprintf(stderr, "\r[%s] %3.0f%%  %.2f / %.2f GB  %.0f MB/s", b, 100 * f, (double)r->done / 1e9,
		(double)r->total / 1e9, s > 0 ? (double)r->done / 1e6 / s : 0.0);
}

static int hash_range(struct reader *r, uint32_t part, uint64_t off, uint64_t len, uint64_t *out)
{
	if (r->fds[part] < 0) {
		r->fds[part] = open(mp_gguf_part_path(r->g, part), O_RDONLY | O_CLOEXEC);
		if (r->fds[part] < 0)
			return -errno;
		posix_fadvise(r->fds[part], 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	XXH3_state_t st;
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	static const uint8_t zeros[1 << 16];
	off_t data = -1;                 /* next data at or after off (SEEK_DATA), -1: unknown */
	while (len) {
		size_t k = len < READ_CHUNK ? (size_t)len : READ_CHUNK;
		/* A hole of a sparse file reads as zeros: hash zeros without reading
		 * (the same digest; moepager-mkmodel --sparse makes 400 GB of them). */
		if (data < (off_t)off) {
			data = lseek(r->fds[part], (off_t)off, SEEK_DATA);
			if (data < 0)
				data = errno == ENXIO ? (off_t)(off + len) : (off_t)off;   /* ENXIO: all hole */
		}
		if (data > (off_t)off) {
			uint64_t z = (uint64_t)data - off;
			if (z > len)
				z = len;
			if (z > sizeof zeros)
				z = sizeof zeros;
			XXH3_64bits_update(&st, zeros, (size_t)z);
			off += z;
			len -= z;
			r->done += z;
			bar(r, 0);
			continue;
		}
		ssize_t n = pread(r->fds[part], r->buf, k, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -MP_EFORMAT;
		XXH3_64bits_update(&st, r->buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
		r->done += (uint64_t)n;
		bar(r, 0);
	}
	*out = XXH3_64bits_digest(&st);
	return 0;
}

/* ---- manifest and verify -------------------------------------------------------- */

/* The expert layer and matrix of a routed tensor name, or -1. */
static long expert_tensor(const char *name, int *which)
{
	static const char *m[3] = {"gate", "up", "down"};
	for (int i = 0; i < 3; i++) {
		char suf[32];
		unsigned long l;
		int n = 0;
		snprintf(suf, sizeof suf, ".ffn_%s_exps.weight", m[i]);
		if (sscanf(name, "blk.%lu%n", &l, &n) == 1 && strcmp(name + n, suf) == 0) {
			*which = i;
			return (long)l;
		}
	}
	return -1;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int cmd_manifest(struct mp_gguf *g, const struct args *a)
{
	struct reader r;
	uint64_t total = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++)
		total += mp_gguf_tensor_at(g, i)->nbytes;
	FILE *f = fopen(a->manifest, "w");
	if (!f) {
		fprintf(stderr, "moepager-gguf: %s: cannot create: %s\n", a->manifest, strerror(errno));
		return 1;
	}
	int rc = reader_init(&r, g, total);
	fprintf(f, "moepager-manifest 1\nmodel %s parts %u tensors %" PRIu64 "\n",
		base_name(mp_gguf_part_path(g, 0)), mp_gguf_part_count(g), mp_gguf_tensor_count(g));
	uint64_t lines = 0;
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g) && !rc; i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		int which;
		long layer = expert_tensor(t->name, &which);
		uint64_t h;
		if (layer < 0 || t->n_dims != 3) {
			if (!(rc = hash_range(&r, t->part, t->offset, t->nbytes, &h)))
				fprintf(f, "t %016" PRIx64 " %u %" PRIu64 " %" PRIu64 " %s\n", h, t->part, t->offset,
					t->nbytes, t->name);
			lines++;
			continue;
		}
		for (uint64_t e = 0; e < t->ne[2] && !rc; e++) {
			struct mp_gguf_range rg;
			if ((rc = mp_gguf_expert_range(g, (uint32_t)layer, (uint32_t)e, which, &rg)))
				break;
			if (!(rc = hash_range(&r, rg.part, rg.offset, rg.len, &h)))
				fprintf(f, "e %016" PRIx64 " %u %" PRIu64 " %" PRIu64 " %ld %" PRIu64 " %s\n", h, rg.part,
					rg.offset, rg.len, layer, e, mp_gguf_expert_mat_name(which));
			lines++;
		}
	}
	bar(&r, 1);
	if (r.tty)
		fputc('\n', stderr);
	double s = (double)(mp_clock_now_ns() - r.t0) / 1e9;
	reader_done(&r);
	if (fclose(f) || rc) {
		fprintf(stderr, "moepager-gguf: %s: %s\n", a->manifest, rc ? mp_strerror(rc) : strerror(errno));
		return 1;
	}
	printf("wrote %s: %" PRIu64 " entries, %.1f MB hashed in %.1f s (%.0f MB/s)\n", a->manifest, lines,
	       mb(total), s, s > 0 ? mb(total) / s : 0.0);
	return 0;
}

static int cmd_verify(struct mp_gguf *g, const struct args *a)
{
	FILE *f = fopen(a->manifest, "r");
	if (!f) {
		fprintf(stderr, "moepager-gguf: %s: cannot open: %s (make one with `moepager-gguf manifest`)\n",
			a->manifest, strerror(errno));
		return 1;
	}
	char line[512], what[160] = "";
	int rc = 0, bad = 0;
	uint64_t total = 0, entries = 0;
	if (!fgets(line, sizeof line, f) || strcmp(line, "moepager-manifest 1\n") != 0) {
		fprintf(stderr, "moepager-gguf: %s: not a version-1 moepager manifest\n", a->manifest);
		fclose(f);
		return 1;
	}
	long body = -1;
	if (fgets(line, sizeof line, f))
		body = ftell(f);
	/* Pass 1: bytes to hash, for the progress bar. */
	while (fgets(line, sizeof line, f)) {
		uint64_t len;
		if (sscanf(line, "%*c %*s %*u %*u %" SCNu64, &len) == 1)
			total += len;
	}
	fseek(f, body, SEEK_SET);
	struct reader r;
	rc = reader_init(&r, g, total);
	while (!rc && !bad && fgets(line, sizeof line, f)) {
		char kind, name[128], mat[8];
		uint64_t h, off, len, e, got;
		unsigned part;
		long layer;
		entries++;
		if (sscanf(line, "t %" SCNx64 " %u %" SCNu64 " %" SCNu64 " %127s", &h, &part, &off, &len, name) == 5) {
			kind = 't';
			const struct mp_gguf_tensor *t = mp_gguf_find_tensor(g, name);
			snprintf(what, sizeof what, "tensor %s", name);
			if (!t || t->part != part || t->offset != off || t->nbytes != len) {
				bad = 2;
				break;
			}
		} else if (sscanf(line, "e %" SCNx64 " %u %" SCNu64 " %" SCNu64 " %ld %" SCNu64 " %7s", &h, &part,
				  &off, &len, &layer, &e, mat) == 7) {
			kind = 'e';
			snprintf(what, sizeof what, "expert %" PRIu64 " of blk.%ld.ffn_%s_exps.weight (layer %ld, %s)",
				 e, layer, mat, layer, mat);
			struct mp_gguf_range rg;
			int m = strcmp(mat, "gate") == 0 ? 0 : strcmp(mat, "up") == 0 ? 1 : 2;
			if (layer < 0 || e > UINT32_MAX ||
			    mp_gguf_expert_range(g, (uint32_t)layer, (uint32_t)e, m, &rg) ||
			    rg.part != part || rg.offset != off || rg.len != len) {
				bad = 2;
				break;
			}
		} else {
			fprintf(stderr, "moepager-gguf: %s: unreadable line %" PRIu64 "\n", a->manifest, entries + 2);
			rc = -MP_EFORMAT;
			break;
		}
		(void)kind;
		if ((rc = hash_range(&r, part, off, len, &got)))
			break;
		if (got != h)
			bad = 1;
	}
	bar(&r, 1);
	if (r.tty)
		fputc('\n', stderr);
	double s = (double)(mp_clock_now_ns() - r.t0) / 1e9;
	fclose(f);
	reader_done(&r);
	if (rc && !bad) {
		fprintf(stderr, "moepager-gguf: verify failed: %s\n", mp_strerror(rc));
		return 1;
	}
	if (a->json) {
		printf("{\"ok\":%s,\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.3f", bad ? "false" : "true",
		       entries, r.done, s);
		if (bad) {
			printf(",\"corrupt\":");
			json_str(what);
		}
		printf("}\n");
	} else if (bad) {
		printf("CORRUPT: %s %s\n", what, bad == 2 ? "is not where the manifest says (another model?)"
							  : "does not match its manifest hash");
	} else {
		printf("ok: %" PRIu64 " entries, %.1f MB verified in %.1f s (%.0f MB/s)\n", entries, mb(r.done), s,
		       s > 0 ? mb(r.done) / s : 0.0);
	}
	return bad ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct args a = {0};
	static const struct option longopts[] = {
		{"json", no_argument, 0, 'j'}, {"cache-budget", required_argument, 0, 'c'},
		{"mem-limit", required_argument, 0, 'l'}, {"ctx", required_argument, 0, 'x'},
		{"manifest", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
		{"version", no_argument, 0, 'V'}, {"threads", required_argument, 0, 't'},
		{"batch-size", required_argument, 0, 'b'}, {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "jm:hVt:b:", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': a.json = 1; break;
		case 'c':
		case 'l':
			if (mp_size_parse(optarg, c == 'c' ? &a.cache_budget : &a.mem_limit) ||
			    !(c == 'c' ? a.cache_budget : a.mem_limit)) {
				fprintf(stderr, "moepager-gguf: bad SIZE '%s'\n", optarg);
				return 2;
			}
			break;
		case 'x':
			if (sscanf(optarg, "%" SCNu64, &a.ctx) != 1 || !a.ctx) {
				fprintf(stderr, "moepager-gguf: bad --ctx '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
		case 'b':
			if (sscanf(optarg, "%" SCNu64, c == 't' ? &a.threads : &a.batch) != 1 ||
			    !(c == 't' ? a.threads : a.batch) || (c == 't' ? a.threads : a.batch) > (1u << 24)) {
				fprintf(stderr, "moepager-gguf: bad --%s '%s': expected a number from 1 to %u\n",
					c == 't' ? "threads" : "batch-size", optarg, 1u << 24);
				return 2;
			}
			break;
		case 'm': a.manifest = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("moepager-gguf %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	a.cmd = argv[optind];
	a.model = argv[optind + 1];
	static const char *cmds[] = {"info", "tensors", "plan", "manifest", "verify"};
	int which = -1;
	for (int i = 0; i < 5; i++)
		if (strcmp(a.cmd, cmds[i]) == 0)
			which = i;
	if (which < 0) {
		fprintf(stderr, "moepager-gguf: unknown command '%s'\n", a.cmd);
		usage(stderr);
		return 2;
	}
	if (which == 2 && !a.cache_budget && !a.mem_limit) {
		fprintf(stderr, "moepager-gguf: plan needs --cache-budget SIZE or --mem-limit SIZE\n");
		return 2;
	}
	char err[MP_GGUF_ERR_LEN], mpath[4096];
	struct mp_gguf *g;
	if (mp_gguf_open(a.model, &g, err, sizeof err)) {
		fprintf(stderr, "moepager-gguf: %s\n", err);
		return 1;
	}
	if (!a.manifest) {
		snprintf(mpath, sizeof mpath, "%s.manifest", a.model);
		a.manifest = mpath;
	}
	int rc;
	switch (which) {
	case 0: rc = cmd_info(g, &a); break;
	case 1: rc = cmd_tensors(g, &a); break;
	case 2: rc = cmd_plan(g, &a); break;
	case 3: rc = cmd_manifest(g, &a); break;
	default: rc = cmd_verify(g, &a); break;
	}
	mp_gguf_destroy(g);
	return rc;
}
