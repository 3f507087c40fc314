/*
 * session.c — model + expert source + KV cache contents, shared by moepager
 * and moepager-server (session.h).
 *
 * Invariants:
 * 1. ids[0 .. mp_model_pos(model)) are the tokens in the KV cache, in order:
 *    every step goes through feed_one() or generate(), which append, and the
 *    cache is only shortened through mp_model_truncate at the same length.
 * 2. A prompt that does not fit (pos + n >= n_ctx) changes nothing.
 * 3. Counters only grow; prompt_tokens counts tokens run through the model
 *    as prompts, reused_tokens those taken from the cache instead.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "dispatch.h"
#include "dist.h"
#include "err.h"
#include "experts.h"
#include "loader.h"
#include "plan.h"
#include "policy.h"
#include "profile.h"
#include "session.h"
#include "size.h"
#include "stats.h"
#include "threads.h"

struct mp_session {
	/* ---- fixed at open ---- */
	struct mp_session_opts o;
	struct mp_modelfile *mf;
	struct mp_hparams res_hp;     /* the resident expert source's view: layers [l0, l1) */
	struct mp_tok *tok;
	struct mp_resident_experts *res;  /* NULL with the pager */
	struct mp_experts *experts;       /* NULL without the pager */
	struct mp_stats *stats;           /* NULL without the pager */
	struct mp_plan plan;
	int plan_made;
	struct mp_expert_source src;
	struct mp_threads *threads;
	struct mp_model *model;
	uint32_t top_k;                   /* routed experts per token */
	uint32_t l0, l1;                  /* this rank's layers [l0, l1) (one process: all) */
	int32_t eos;                      /* end-of-sentence id, -1 if none */
	char *out;                        /* [out_cap] one decoder push */
	size_t out_cap;
	/* ---- changes every step ---- */
	int32_t *ids;                     /* [n_ctx] invariant 1 */
	struct mp_session_counts counts;  /* invariant 3 */
	int (*cancel)(void *ctx);         /* NULL: prompts are never given up */
	void *cancel_ctx;
	char err[1024];                   /* the last error */
};

static int fail(struct mp_session *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct mp_session *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- flags ----------------------------------------------------------------------- */

static const char *const kv_types[] = { "f16", "q8_0", NULL };
static const char *const io_names[] = { "auto", "uring", "aio", "sync", "mmap", NULL };
static const char *const prefetch_names[] = { "none", "lookahead", "full", NULL };
static const char *const policy_names[] = { "moepager", "lru", NULL };

void mp_session_flags_init(struct mp_session_flags *f)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	*f = (struct mp_session_flags){
		.n_predict = -1, .threads = ncpu > 0 ? ncpu : 1, .ctx = 4096, .top_k = 0,
		.repeat_last_n = 64, .experts = 0, .seed = 0, .temp = 0.6, .top_p = 0.95,
		.min_p = 0.01, .repeat_penalty = 1.0, .kv_type = 0, .io_depth = 32, .prefetch = 1,
		.prefetch_depth = "auto", .batch = 512,
	};
}

void mp_session_flag_table(struct mp_session_flags *f, struct mp_opt *out)
{
	const struct mp_opt t[MP_SESSION_N_FLAGS] = {
		{ "model", 'm', MP_OPT_STRING, &f->model, "PATH", "model file (first part of a split model)", 0, 0, NULL, NULL },
		{ "n-predict", 'n', MP_OPT_INT, &f->n_predict, "N", "tokens to generate; -1 (default) = until the end of text or a full context", -1, 1e9, NULL, NULL },
		{ "ignore-eos", 0, MP_OPT_FLAG, &f->ignore_eos, NULL, "never end the answer at the end-of-text token (fixed lengths for benchmarks)", 0, 0, NULL, NULL },
		{ "ctx-size", 'c', MP_OPT_INT, &f->ctx, "N", "context length (KV cache positions)", 16, 1 << 24, NULL, NULL },
		{ "threads", 't', MP_OPT_INT, &f->threads, "N", "compute threads", 1, 1024, NULL, NULL },
		{ "batch-size", 'b', MP_OPT_INT, &f->batch, "N", "prompt tokens per layer-major batch; 1 = one token at a time", 1, 1 << 24, NULL, NULL },
		{ "temp", 0, MP_OPT_FLOAT, &f->temp, "T", "temperature; 0 = greedy", 0, 100, NULL, NULL },
		{ "top-k", 0, MP_OPT_INT, &f->top_k, "N", "keep the N most likely tokens; 0 = off", 0, 1e9, NULL, NULL },
		{ "top-p", 0, MP_OPT_FLOAT, &f->top_p, "P", "nucleus sampling mass; 1 = off", 0, 1, NULL, NULL },
		{ "min-p", 0, MP_OPT_FLOAT, &f->min_p, "P", "drop tokens below P times the best one's probability", 0, 1, NULL, NULL },
		{ "repeat-penalty", 0, MP_OPT_FLOAT, &f->repeat_penalty, "F", "penalty for repeated tokens; 1 = off", 0.01, 100, NULL, NULL },
		{ "repeat-last-n", 0, MP_OPT_INT, &f->repeat_last_n, "N", "tokens the repeat penalty looks back", 0, 1e9, NULL, NULL },
		{ "seed", 0, MP_OPT_INT, &f->seed, "N", "sampling seed (default: random)", 0, 9.2e18, NULL, &f->seed_given },
		{ "experts", 0, MP_OPT_INT, &f->experts, "K", "routed experts per token (fewer: faster, worse answers); 0 = the model's", 0, 64, NULL, NULL },
		{ "kv-type", 0, MP_OPT_CHOICE, &f->kv_type, "TYPE", "KV cache type: f16 or q8_0 (half the size)", 0, 0, kv_types, NULL },
		{ "no-expert-groups", 0, MP_OPT_FLAG, &f->no_groups, NULL, "ignore expert groups (llama.cpp parity on old files)", 0, 0, NULL, NULL },
		{ "cache-budget", 0, MP_OPT_SIZE, &f->cache_budget, "SIZE", "expert pool size (e.g. 96G); routed experts are paged from disk", 0, 0, NULL, NULL },
		{ "mem-limit", 0, MP_OPT_SIZE, &f->mem_limit, "SIZE", "whole-process memory limit; the expert pool gets what is left", 0, 0, NULL, NULL },
		{ "mlock", 0, MP_OPT_FLAG, &f->mlock, NULL, "pin the resident weights and the expert pool in RAM (a refusal is reported, not fatal)", 0, 0, NULL, NULL },
		{ "io", 0, MP_OPT_CHOICE, &f->io, "BACKEND", "expert reads: auto, uring, aio, sync or mmap", 0, 0, io_names, NULL },
		{ "io-depth", 0, MP_OPT_INT, &f->io_depth, "N", "expert reads in flight", 1, 4096, NULL, NULL },
		{ "stats-file", 0, MP_OPT_STRING, &f->stats_file, "PATH", "stats segment (default /dev/shm/moepager-PID.stats)", 0, 0, NULL, NULL },
		{ "keep-stats", 0, MP_OPT_FLAG, &f->keep_stats, NULL, "keep the stats segment after exit", 0, 0, NULL, NULL },
		{ "prefetch", 0, MP_OPT_CHOICE, &f->prefetch, "MODE", "expert prefetch: none, lookahead (router look-ahead) or full (also the previous token's experts)", 0, 0, prefetch_names, NULL },
		{ "prefetch-depth", 0, MP_OPT_STRING, &f->prefetch_depth, "N", "layers the look-ahead covers: auto (adapts to waits) or 1-16", 0, 0, NULL, NULL },
		{ "policy", 0, MP_OPT_CHOICE, &f->policy, "NAME", "expert eviction: moepager (learned next-token probability) or lru", 0, 0, policy_names, NULL },
		{ "trace-out", 0, MP_OPT_STRING, &f->trace_out, "PATH", "record routing and pager outcomes (MOETRACE v2, for moepager-sim)", 0, 0, NULL, NULL },
		{ "profile", 0, MP_OPT_STRING, &f->profile, "PATH", "usage profile that warms the pool at start and is saved at exit (default: $XDG_CACHE_HOME/moepager/FINGERPRINT.profile)", 0, 0, NULL, NULL },
		{ "no-profile", 0, MP_OPT_FLAG, &f->no_profile, NULL, "neither read nor save a usage profile", 0, 0, NULL, NULL },
		{ "timings", 0, MP_OPT_FLAG, &f->timings, NULL, "at exit, where a decode token's time went: attention, dense FFN, shared expert, router, routed experts, waits, output head", 0, 0, NULL, NULL },
	};
	memcpy(out, t, sizeof t);
}

void mp_session_flags_apply(const struct mp_session_flags *f, const char *prog,
			    struct mp_session_opts *o, struct mp_sampler_params *sp)
{
	*o = (struct mp_session_opts){
		.prog = prog, .model = f->model, .n_ctx = (uint32_t)f->ctx, .n_batch = (uint32_t)f->batch,
		.threads = (uint32_t)f->threads, .experts = (uint32_t)f->experts,
		.kv_q8 = f->kv_type == 1, .no_groups = f->no_groups,
		.cache_budget = f->cache_budget, .mem_limit = f->mem_limit, .io = io_names[f->io],
		.io_depth = (uint32_t)f->io_depth, .stats_file = f->stats_file,
		.keep_stats = f->keep_stats, .prefetch = f->prefetch,
		.prefetch_depth = f->prefetch_depth, .policy_lru = f->policy == 1,
		.trace_out = f->trace_out, .profile = f->profile, .no_profile = f->no_profile,
		.timings = f->timings, .mlock = f->mlock,
	};
	mp_sampler_params_r1(sp);
	sp->temperature = (float)f->temp;
	sp->top_k = (int32_t)f->top_k;
	sp->top_p = (float)f->top_p;
	sp->min_p = (float)f->min_p;
	sp->repeat_penalty = (float)f->repeat_penalty;
	sp->penalty_last_n = (int32_t)f->repeat_last_n;
	sp->seed = f->seed_given ? (uint64_t)f->seed : mp_clock_now_ns() ^ ((uint64_t)getpid() << 32);
}

/* ---- opening ----------------------------------------------------------------------- */

enum { MP_SESSION_WHO_LEN = 320 };   /* "rank R on HOST (layers A-B): " */

static void print_plan(const struct mp_session *s)
{
	const struct mp_plan *p = &s->plan;
	char a[32], b[32], c[32], d[32], e[32], f[32], who[MP_SESSION_WHO_LEN] = "";
	/* several ranks: each prints its own share (its layers' weights and KV rows) */
	if (mp_dist_size(s->o.dist) > 1)
		snprintf(who, sizeof who, "rank %u on %s (layers %u-%u): ", mp_dist_rank(s->o.dist),
			 mp_dist_host(s->o.dist), s->l0, s->l1 - 1);
	fprintf(stderr, "%s: %smemory plan: resident weights %s + KV cache %s (%u tokens) + "
		"scratch %s + expert pool %s (%.0f%% of %s of routed experts) = %s\n", s->o.prog, who,
		mp_size_format(p->resident_bytes, a, sizeof a), mp_size_format(p->kv_bytes, b, sizeof b),
		s->o.n_ctx, mp_size_format(p->scratch_bytes, c, sizeof c),
		mp_size_format(p->pool_bytes, d, sizeof d), 100.0 * p->pool_fraction,
		mp_size_format(p->routed_bytes, e, sizeof e),
		mp_size_format(p->resident_bytes + p->kv_bytes + p->scratch_bytes + p->pool_bytes, f,
			       sizeof f));
}

/* A refused --mlock is reported, not fatal. */
static void lock_refused(const struct mp_session *s, const char *what, uint64_t bytes, int err)
{
	struct rlimit rl;
	char a[32], b[32] = "unlimited";
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		mp_size_format((uint64_t)rl.rlim_cur, b, sizeof b);
	fprintf(stderr, "%s: --mlock: cannot lock %s (%s): %s; RLIMIT_MEMLOCK is %s (ulimit -l, "
		"or CAP_IPC_LOCK); continuing unlocked\n", s->o.prog, what,
		mp_size_format(bytes, a, sizeof a), strerror(err), b);
}

/* Reads the resident weights into anonymous memory (src/loader.h) and says
 * how it went. */
static int load_resident(struct mp_session *s)
{
	char a[32], b[32];
	/* several ranks: this rank's layers; the embeddings and head are rank 0's */
	/* no progress line under mpirun: the ranks' standard error is Open MPI's */
	struct mp_load_opts lo = { .progress = isatty(STDERR_FILENO) && mp_dist_size(s->o.dist) < 2,
				   .mlock = s->o.mlock,
				   .layer_begin = s->l0, .layer_end = s->l1,
				   .no_io = mp_dist_rank(s->o.dist) > 0 };
	struct mp_load_report lr;
	int rc = mp_modelfile_load_resident(s->mf, &lo, &lr, s->err, sizeof s->err);
	if (rc < 0)
		return rc;
	fprintf(stderr, "%s: resident weights: %s read in %.1f s (%.0f MB/s) into %s of anonymous "
		"memory%s, %s\n", s->o.prog, mp_size_format(lr.bytes, a, sizeof a), lr.seconds,
		lr.seconds > 0 ? (double)lr.read_bytes / 1e6 / lr.seconds : 0.0,
		mp_size_format(lr.region_bytes, b, sizeof b), lr.hugepages ? " (huge pages)" : "",
		lr.buffered ? "buffered reads: O_DIRECT refused by the file system (pages dropped "
			      "from the page cache after reading)" : "O_DIRECT reads");
	if (s->o.mlock && !lr.locked && lr.region_bytes)
		lock_refused(s, "the resident weights", lr.region_bytes, lr.lock_errno);
	mp_stats_add_fallbacks(s->stats, (lr.buffered ? MP_STATS_FB_RESIDENT_BUFFERED : 0) |
			       (s->o.mlock && !lr.locked && lr.region_bytes ? MP_STATS_FB_MLOCK_REFUSED : 0));
	return 0;
}

/* Sizes the pool with the plan (src/plan.h, the one moepager-gguf plan
 * prints), creates the stats segment and the pager-backed expert source. */
static int start_pager(struct mp_session *s)
{
	const struct mp_session_opts *o = &s->o;
	const struct mp_hparams *hp = mp_modelfile_hparams(s->mf);
	struct mp_gguf *g = mp_modelfile_gguf(s->mf);
	uint64_t fp = mp_loader_fingerprint(g);
	struct mp_plan_opts po = {
		.cache_budget = o->cache_budget, .mem_limit = o->mem_limit, .ctx = o->n_ctx,
		.threads = o->threads, .kv_q8 = o->kv_q8, .n_used = s->top_k,
		.batch_scratch = mp_model_batch_bytes(hp, o->n_batch, o->n_ctx,
						      (int)o->threads, s->top_k),
	};
	int rc;
	/* several ranks: this rank's layers only (src/dist.h) */
	if ((rc = mp_dist_plan_compute(o->dist, g, &po, s->l0, s->l1, &s->plan, s->err,
				       sizeof s->err)) < 0)
		return rc;
	s->plan_made = 1;
	print_plan(s);
	char stats_path[4096];   /* several ranks on one host: one segment each */
	int ranks = mp_dist_size(o->dist) > 1;
	if (o->stats_file && ranks)
		snprintf(stats_path, sizeof stats_path, "%s.rank%u", o->stats_file, mp_dist_rank(o->dist));
	if ((rc = mp_stats_create(&(struct mp_stats_config){ o->stats_file && ranks ? stats_path :
							      o->stats_file, o->keep_stats, hp->n_layer,
							      hp->n_expert, fp, o->io },
				  &s->stats, s->err, sizeof s->err)) < 0)
		return rc;
	struct mp_pager_config pc;
	memset(&pc, 0, sizeof pc);
	pc.budget = s->plan.pool_bytes;
	pc.io = o->io;
	pc.io_depth = o->io_depth;
	pc.stats = s->stats;
	pc.mlock = o->mlock;
	char profile_path[4096] = "";
	if (!o->no_profile) {
		if (o->profile)
			snprintf(profile_path, sizeof profile_path, "%s", o->profile);
		else
			mp_profile_default_path(fp, profile_path, sizeof profile_path);
		size_t pl = strlen(profile_path);   /* a profile per layer range */
		if (ranks)
			snprintf(profile_path + pl, sizeof profile_path - pl, ".layers-%u-%u", s->l0,
				 s->l1 - 1);
	}
	struct mp_experts_opts xo = {
		.policy = o->policy_lru ? MP_POLICY_LRU : MP_POLICY_MOEPAGER,
		.prefetch = o->prefetch != 0,
		.trace_out = o->trace_out,
		.profile = profile_path[0] ? profile_path : NULL,
		.fingerprint = fp,
		.layer_begin = s->l0,
		.layer_end = s->l1,
	};
	if ((rc = mp_experts_create(g, hp, mp_modelfile_weights(s->mf), s->top_k, &pc, &xo,
				    &s->experts, &s->src, s->err, sizeof s->err)) < 0)
		return rc;
	struct mp_pager_info pi;
	mp_pager_info(mp_experts_pager(s->experts), &pi);
	mp_stats_set_backend(s->stats, pi.backend);
	fprintf(stderr, "%s: expert pool: %u slots, %s, io %s\n", o->prog, pi.n_slots,
		pi.fits ? "every expert fits: the model is read whole" : "experts are paged", pi.backend);
	if (o->mlock && !pi.pool_locked && pi.pool_bytes)
		lock_refused(s, "the expert pool", pi.pool_bytes, pi.lock_errno);
	if (mp_pager_message(mp_experts_pager(s->experts))[0])
		fprintf(stderr, "%s: %s\n", o->prog, mp_pager_message(mp_experts_pager(s->experts)));
	char fb[512];
	fprintf(stderr, "%s: io fallbacks: %s\n", o->prog,
		mp_stats_fallback_names(pi.fallbacks, fb, sizeof fb));
	fprintf(stderr, "%s: stats: %s (watch with moepager-stat); policy %s, prefetch %s, depth %s\n",
		o->prog, mp_stats_path(s->stats), policy_names[o->policy_lru],
		prefetch_names[o->prefetch], o->prefetch_depth);
	return 0;
}

/* The expert source (paged or resident), the threads and the model. */
static int start_model(struct mp_session *s)
{
	const struct mp_session_opts *o = &s->o;
	const struct mp_hparams *hp = mp_modelfile_hparams(s->mf);
	int rc;
	/* the resident source checks this rank's layers only (the others' tensors
	 * may be on other hosts): hp cut to [l0, l1) */
	s->res_hp = *hp;
	s->res_hp.n_layer = s->l1;
	s->res_hp.n_dense_lead = hp->n_dense_lead > s->l0 ? hp->n_dense_lead : s->l0;
	if (s->res_hp.n_dense_lead > s->l1)
		s->res_hp.n_dense_lead = s->l1;
	if ((o->cache_budget || o->mem_limit) && hp->n_dense_lead < hp->n_layer) {
		if ((rc = start_pager(s)) < 0 || (rc = load_resident(s)) < 0)
			return rc;
	} else if (mp_resident_experts_create(&s->res_hp, mp_modelfile_weights(s->mf), &s->res,
					      &s->src) < 0 &&
		   hp->n_dense_lead < hp->n_layer) {
		return fail(s, -MP_EFORMAT, "%s: the routed-expert tensors do not match the metadata",
			    o->model);
	}
	int depth = -1;
	if (strcmp(o->prefetch_depth, "auto") != 0) {
		char *end;
		long d = strtol(o->prefetch_depth, &end, 10);
		if (*end || end == o->prefetch_depth || d < 1 || d > 16)
			return fail(s, -MP_EARG, "--prefetch-depth %s: expected auto or a number from 1 "
				    "to 16", o->prefetch_depth);
		depth = (int)d;
	}
	if (mp_threads_create((int)o->threads, &s->threads) < 0)
		return fail(s, -ENOMEM, "cannot start %u threads", o->threads);
	struct mp_model_opts mo = {
		.n_ctx = o->n_ctx,
		.kv_type = o->kv_q8 ? MP_KV_Q8_0 : MP_KV_F16,
		.n_expert_used = o->experts,
		.no_groups = o->no_groups,
		.absorb = 1,
		.threads = s->threads,
		.prefetch_depth = o->prefetch == 0 ? 0 : depth,
		.prefetch_history = o->prefetch == 2,
		.n_batch = o->n_batch,
		.layer_begin = s->l0,
		.layer_end = s->l1,
		.pipe = mp_dist_pipe(o->dist),
	};
	char err[1024];
	if ((rc = mp_model_create(hp, mp_modelfile_weights(s->mf), &s->src, &mo, &s->model, err,
				  sizeof err)) < 0)
		return fail(s, rc, "%s: %s", o->model, err);
	return 0;
}

static void print_model(const struct mp_session *s)
{
	const struct mp_hparams *hp = mp_modelfile_hparams(s->mf);
	struct mp_gguf *g = mp_modelfile_gguf(s->mf);
	char msz[32];
	uint64_t bytes = 0;
	for (uint32_t p = 0; p < mp_gguf_part_count(g); p++)
		bytes += mp_gguf_part_size(g, p);
	fprintf(stderr, "%s: %s: %u layers, %u experts (top-%u), %s, kernels %s, %u threads, %s\n",
		s->o.prog, s->o.model, hp->n_layer, hp->n_expert, s->top_k,
		mp_size_format(bytes, msz, sizeof msz), mp_dispatch_name(mp_dispatch_path()), s->o.threads,
		s->experts ? "routed experts paged" : "all weights mapped (no --cache-budget/--mem-limit)");
}

int mp_session_open(const struct mp_session_opts *o, struct mp_session **out, char *err,
		    size_t err_len)
{
	*out = NULL;
	struct mp_session *s = mp_calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	s->o = *o;
	int rc;
	char why[256];
	if ((rc = mp_dispatch_init(why, sizeof why)) < 0) {
		fail(s, rc, "%s", why);
		goto fail;
	}
	/* several ranks: each host may hold only its own split parts; the headers
	 * first, the parts of this rank's layers mapped once the split is known */
	int ranks = mp_dist_size(o->dist) > 1;
	if ((rc = ranks ? mp_modelfile_open_partial(o->model, &s->mf, s->err, sizeof s->err)
			: mp_modelfile_open(o->model, &s->mf, s->err, sizeof s->err)) < 0)
		goto fail;
	const struct mp_hparams *hp = mp_modelfile_hparams(s->mf);
	if ((rc = mp_loader_tokenizer(mp_modelfile_gguf(s->mf), &s->tok, s->err, sizeof s->err)) < 0)
		goto fail;
	s->top_k = o->experts ? o->experts : hp->n_expert_used;
	/* this rank's layers (one process: all of them) */
	struct mp_plan_opts dpo = { .cache_budget = o->cache_budget, .mem_limit = o->mem_limit,
				    .ctx = o->n_ctx, .threads = o->threads, .kv_q8 = o->kv_q8,
				    .n_used = s->top_k };
	if ((rc = mp_dist_start(o->dist, mp_modelfile_gguf(s->mf), hp, &dpo, &s->l0, &s->l1, s->err,
				sizeof s->err)) < 0)
		goto fail;
	if (ranks && (rc = mp_modelfile_map(s->mf, s->l0, s->l1, mp_dist_rank(o->dist) == 0, s->err,
					    sizeof s->err)) < 0)
		goto fail;
	if ((rc = start_model(s)) < 0)
		goto fail;
	s->eos = mp_tok_eos(s->tok);
	s->out_cap = mp_tok_stream_cap(s->tok);
	s->out = mp_malloc(s->out_cap);
	s->ids = mp_malloc_array(o->n_ctx, sizeof *s->ids);
	if (!s->out || !s->ids) {
		rc = fail(s, -ENOMEM, "out of memory for the session's buffers");
		goto fail;
	}
	print_model(s);
	*out = s;
	return 0;
fail:
	snprintf(err, err_len, "%s", s->err);
	mp_session_close(s);
	return rc;
}

void mp_session_close(struct mp_session *s)
{
	if (!s)
		return;
	mp_free(s->ids);
	mp_free(s->out);
	mp_model_destroy(s->model);
	mp_tok_destroy(s->tok);
	mp_threads_destroy(s->threads);
	mp_resident_experts_destroy(s->res);
	mp_experts_destroy(s->experts);
	mp_stats_destroy(s->stats);
	if (s->plan_made)
		mp_plan_free(&s->plan);
	mp_modelfile_close(s->mf);
	mp_free(s);
}

struct mp_model *mp_session_model(struct mp_session *s) { return s->model; }
struct mp_tok *mp_session_tok(struct mp_session *s) { return s->tok; }
const struct mp_hparams *mp_session_hparams(const struct mp_session *s)
{
	return mp_modelfile_hparams(s->mf);
}
uint32_t mp_session_ctx(const struct mp_session *s) { return s->o.n_ctx; }
uint32_t mp_session_top_k(const struct mp_session *s) { return s->top_k; }
const int32_t *mp_session_ids(const struct mp_session *s) { return s->ids; }
const char *mp_session_stats_path(const struct mp_session *s)
{
	return s->stats ? mp_stats_path(s->stats) : NULL;
}
const char *mp_session_error(const struct mp_session *s) { return s->err; }

void mp_session_end_sequence(struct mp_session *s)
{
	if (s->experts)
		mp_experts_end_sequence(s->experts);
}

void mp_session_counts(const struct mp_session *s, struct mp_session_counts *out)
{
	*out = s->counts;
}

/* ---- running ----------------------------------------------------------------------- */

int mp_session_encode(struct mp_session *s, const char *text, unsigned flags, int32_t **ids,
		      size_t *n)
{
	size_t len = strlen(text);
	size_t cap = len + 8;
	*n = 0;
	*ids = mp_malloc_array(cap, sizeof **ids);
	if (!*ids)
		return fail(s, -ENOMEM, "out of memory for the prompt's tokens");
	int rc = mp_tok_encode(s->tok, text, len, flags, *ids, cap);
	if (rc >= 0 && (size_t)rc > cap) {
		int32_t *bigger = mp_realloc(*ids, sizeof **ids * (size_t)rc);
		if (!bigger) {
			mp_free(*ids);
			*ids = NULL;
			return fail(s, -ENOMEM, "out of memory for the prompt's tokens");
		}
		*ids = bigger;
		rc = mp_tok_encode(s->tok, text, len, flags, *ids, (size_t)rc);
	}
	if (rc < 0) {
		mp_free(*ids);
		*ids = NULL;
		return fail(s, rc, "cannot tokenize the prompt: %s", mp_strerror(rc));
	}
	*n = (size_t)rc;
	return 0;
}

_Static_assert(MP_PHASE_N == MP_STATS_PHASES, "the stats segment's phases are the model's");

/* Counts one decoded token in the stats segment, with the model's phase
 * timings so far (plain stores: a struct copy and ten words per token). */
static void count_token(struct mp_session *s, uint64_t ns)
{
	if (!s->stats)
		return;
	struct mp_model_timings t;
	mp_model_timings(s->model, &t);
	mp_stats_begin(s->stats);
	struct mp_stats_global *g = mp_stats_global(s->stats);
	mp_stats_add(&g->tokens, 1);
	mp_stats_add(&g->decode_ns, ns);
	mp_stats_set(&g->phase_tokens, t.tokens);
	mp_stats_set(&g->phase_total_ns, t.total_ns);
	for (int p = 0; p < MP_PHASE_N; p++)
		mp_stats_set(&g->phase_ns[p], t.ns[p]);
	mp_stats_end(s->stats);
}

/* One model step that keeps invariant 1. */
static int step(struct mp_session *s, int32_t id, const float **logits)
{
	uint32_t pos = mp_model_pos(s->model);
	uint64_t t0 = mp_clock_now_ns();
	int rc = mp_model_step(s->model, (uint32_t)id, logits);
	if (rc < 0)
		return fail(s, rc, "%s", mp_model_error(s->model));
	count_token(s, mp_clock_now_ns() - t0);
	s->ids[pos] = id;
	return 0;
}

int mp_session_feed(struct mp_session *s, const int32_t *ids, size_t n, struct mp_sampler *sp,
		    const float **logits)
{
	uint32_t pos = mp_model_pos(s->model);
	if (n >= s->o.n_ctx || pos + n >= s->o.n_ctx)
		return fail(s, -MP_EBUDGET, "the prompt needs %zu more tokens but only %u of --ctx-size "
			    "%u are left", n, s->o.n_ctx - pos, s->o.n_ctx);
	uint64_t t0 = mp_clock_now_ns();
	int rc = 0;
	size_t fed = 0, chunk = s->o.n_batch ? s->o.n_batch : 512;
	while (fed < n && rc == 0) {
		/* layer-major batches (mp_model_prefill); a client that left is
		 * noticed between them */
		size_t k = n - fed < chunk ? n - fed : chunk;
		if (s->cancel && s->cancel(s->cancel_ctx)) {
			rc = fail(s, -MP_ECANCELLED, "the prompt was given up after %zu of %zu tokens", fed, n);
			break;
		}
		uint64_t tb = mp_clock_now_ns();
		rc = mp_model_prefill(s->model, (const uint32_t *)(ids + fed), (uint32_t)k, NULL, NULL,
				      logits);
		if (rc < 0) {
			rc = fail(s, rc, "%s", mp_model_error(s->model));
			break;
		}
		uint64_t per = (mp_clock_now_ns() - tb) / k;
		for (size_t i = 0; i < k; i++) {
			count_token(s, per);
			s->ids[pos + fed + i] = ids[fed + i];
			if (sp)
				mp_sampler_accept(sp, ids[fed + i]);
		}
		fed += k;
	}
	s->counts.prompt_ns += mp_clock_now_ns() - t0;
	s->counts.prompt_tokens += fed;
	return rc;
}

void mp_session_set_cancel(struct mp_session *s, int (*cancel)(void *ctx), void *ctx)
{
	s->cancel = cancel;
	s->cancel_ctx = ctx;
	mp_model_set_cancel(s->model, cancel, ctx);   /* also between a batch's layers */
}

int mp_session_prompt(struct mp_session *s, const int32_t *ids, size_t n, struct mp_sampler *sp,
		      const float **logits, uint32_t *reused)
{
	*reused = 0;
	if (n == 0)
		return fail(s, -MP_EARG, "the prompt is empty");
	if (n >= s->o.n_ctx)
		return fail(s, -MP_EBUDGET, "the prompt has %zu tokens but --ctx-size is %u", n,
			    s->o.n_ctx);
	uint32_t pos = mp_model_pos(s->model), keep = 0;
	while (keep < pos && keep < n - 1 && s->ids[keep] == ids[keep])
		keep++;
	mp_model_truncate(s->model, keep);
	for (uint32_t i = 0; sp && i < keep; i++)
		mp_sampler_accept(sp, ids[i]);
	int rc = mp_session_feed(s, ids + keep, n - keep, sp, logits);
	if (rc == 0) {
		*reused = keep;
		s->counts.reused_tokens += keep;
	}
	return rc;
}

/* Hands id's text to the callback; returns its answer. */
static int emit(struct mp_session *s, struct mp_tok_stream *ts, struct mp_session_gen *g, int32_t id)
{
	size_t n = id >= 0 ? mp_tok_stream_push(s->tok, ts, id, s->out, s->out_cap)
			   : mp_tok_stream_flush(ts, s->out, s->out_cap);
	return g->fn ? g->fn(g->ctx, id, s->out, n) : 0;
}

int mp_session_generate(struct mp_session *s, struct mp_sampler *sp, const float *logits,
			struct mp_session_gen *g)
{
	struct mp_tok_stream ts;
	mp_tok_stream_init(&ts, 0);
	uint64_t t0 = mp_clock_now_ns();
	int rc = 0;
	g->n_tokens = 0;
	g->end = MP_SESSION_LENGTH;
	for (int64_t i = 0; g->n_predict < 0 || i < g->n_predict; i++) {
		int32_t id = mp_sampler_sample(sp, logits);
		mp_sampler_accept(sp, id);
		g->n_tokens++;
		if (id == s->eos) {
			g->end = MP_SESSION_EOS;
			break;
		}
		if (emit(s, &ts, g, id)) {
			g->end = MP_SESSION_STOPPED;
			break;
		}
		if (mp_model_pos(s->model) + 1 >= s->o.n_ctx) {
			g->end = MP_SESSION_CTX_FULL;
			break;
		}
		if ((rc = step(s, id, &logits)) < 0)
			break;
	}
	emit(s, &ts, g, -1);
	s->counts.gen_ns += mp_clock_now_ns() - t0;
	s->counts.gen_tokens += g->n_tokens;
	return rc;
}

/* ---- reports ----------------------------------------------------------------------- */

void mp_session_print_speed(const struct mp_session *s)
{
	const struct mp_session_counts *c = &s->counts;
	double ps = (double)c->prompt_ns / 1e9, gs = (double)c->gen_ns / 1e9;
	fprintf(stderr, "%s: prompt %llu tokens in %.2f s (%.2f tokens/s); decode %llu tokens "
		"in %.2f s (%.2f tokens/s)\n", s->o.prog, (unsigned long long)c->prompt_tokens, ps,
		ps > 0 ? (double)c->prompt_tokens / ps : 0.0, (unsigned long long)c->gen_tokens, gs,
		gs > 0 ? (double)c->gen_tokens / gs : 0.0);
	struct mp_model_timings t;
	mp_model_timings(s->model, &t);
	if (!s->o.timings || !t.tokens)
		return;
	fprintf(stderr, "%s: timings per decode token (%llu tokens, %.3f ms each):", s->o.prog,
		(unsigned long long)t.tokens, (double)t.total_ns / 1e6 / (double)t.tokens);
	for (int p = 0; p < MP_PHASE_N; p++)
		fprintf(stderr, "%s %s %.3f ms (%.1f%%)", p ? "," : "", mp_phase_names[p],
			(double)t.ns[p] / 1e6 / (double)t.tokens,
			t.total_ns ? 100.0 * (double)t.ns[p] / (double)t.total_ns : 0.0);
	fputc('\n', stderr);
}

int mp_session_serve(struct mp_session *s)
{
	if (mp_dist_rank(s->o.dist) == 0)
		return 1;
	uint64_t t0 = mp_clock_now_ns();
	int rc = mp_dist_serve(s->o.dist, s->model);
	s->counts.gen_ns = mp_clock_now_ns() - t0;   /* the stall share is of the session */
	fprintf(stderr, "%s: rank %u on %s (layers %u-%u):\n", s->o.prog, mp_dist_rank(s->o.dist),
		mp_dist_host(s->o.dist), s->l0, s->l1 - 1);
	mp_session_print_pager(s);
	return rc < 0 ? -1 : 0;
}

void mp_session_print_pager(const struct mp_session *s)
{
	const char *prog = s->o.prog;
	struct rusage ru;
	char rss[32];
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		fprintf(stderr, "%s: peak RSS %s\n", prog,
			mp_size_format((uint64_t)ru.ru_maxrss * 1024, rss, sizeof rss));
	if (!s->experts)
		return;
	struct mp_pager_info pi;
	mp_pager_info(mp_experts_pager(s->experts), &pi);
	uint64_t uses = pi.hits + pi.pc_hits + pi.misses;
	char a[32], b[32];
	fprintf(stderr, "%s: pager: %llu expert uses: %.1f%% pool hits, %.1f%% page-cache copies, "
		"%.1f%% disk reads; read %s from disk, copied %s from the page cache; %llu evictions\n",
		prog, (unsigned long long)uses, uses ? 100.0 * (double)pi.hits / (double)uses : 0.0,
		uses ? 100.0 * (double)pi.pc_hits / (double)uses : 0.0,
		uses ? 100.0 * (double)pi.misses / (double)uses : 0.0,
		mp_size_format(pi.bytes_read, a, sizeof a), mp_size_format(pi.pc_bytes, b, sizeof b),
		(unsigned long long)pi.evictions);
	double run_s = (double)(s->counts.prompt_ns + s->counts.gen_ns) / 1e9;
	double wait_s = (double)mp_model_wait_ns(s->model) / 1e9;
	fprintf(stderr, "%s: stall: %.2f s waiting for experts (%.1f%% of %.2f s); prefetch depth %d\n",
		prog, wait_s, run_s > 0 ? 100.0 * wait_s / run_s : 0.0, run_s,
		mp_model_prefetch_depth(s->model));
	uint64_t steps = s->counts.prompt_tokens + s->counts.gen_tokens;
	fprintf(stderr, "%s: pager CPU: %.3f s in its calls, %.2f ms per token\n", prog,
		(double)pi.cpu_ns / 1e9, steps ? (double)pi.cpu_ns / 1e6 / (double)steps : 0.0);
	fprintf(stderr, "%s: prefetch: %llu issued, %llu used, %llu wasted (precision %.2f), "
		"%llu left out by the disk's cap\n", prog,
		(unsigned long long)pi.pf_issued, (unsigned long long)pi.pf_used,
		(unsigned long long)pi.pf_wasted,
		pi.pf_issued ? (double)pi.pf_used / (double)pi.pf_issued : 0.0,
		(unsigned long long)pi.pf_capped);
}
