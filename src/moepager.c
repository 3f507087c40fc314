/*
 * moepager.c — the moepager command: generate text or chat with a deepseek2
 * GGUF model.
 *
 * Flow: parse flags (src/opt.h) → open and map the model (src/loader.h) →
 * tokenizer from the file's vocabulary → forward pass (src/model.h) with the
 * routed experts served through one narrow source → sampler → streamed,
 * UTF-8-safe output.  The R1 <think> part is shown dimmed on a terminal, or
 * hidden with --hide-think.  Ctrl-C stops the current answer (chat returns to
 * its prompt); a second Ctrl-C exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "cpu.h"
#include "dispatch.h"
#include "err.h"
#include "evaluate.h"
#include "experts.h"
#include "file.h"
#include "io.h"
#include "loader.h"
#include "model.h"
#include "opt.h"
#include "plan.h"
#include "policy.h"
#include "profile.h"
#include "sampler.h"
#include "stats.h"
#include "size.h"
#include "threads.h"
#include "tokenizer.h"

static const char usage_line[] = "moepager -m MODEL.gguf [-p PROMPT | -f FILE | -i] [OPTION]...";
static const char description[] =
	"Run DeepSeek-R1-class MoE models larger than RAM by paging the routed\n"
	"experts from NVMe into a bounded memory pool.  Give the first part of a\n"
	"split model; the others are found by name.\n"
	"\n"
	"Environment: MOEPAGER_CPU=scalar|avx2|avx512 forces a kernel path;\n"
	"MOEPAGER_LOG=error|warn|info|debug sets the diagnostics level.";

static const char *const kv_types[] = { "f16", "q8_0", NULL };
static const char *const io_names[] = { "auto", "uring", "aio", "sync", "mmap", NULL };
static const char *const prefetch_names[] = { "none", "lookahead", "full", NULL };
static const char *const policy_names[] = { "moepager", "lru", NULL };

struct flags {
	const char *model, *prompt, *file;
	int interactive, raw, hide_think, no_groups, version;
	int64_t n_predict, threads, ctx, top_k, repeat_last_n, experts, seed;
	double temp, top_p, min_p, repeat_penalty;
	int kv_type;                 /* index into kv_types */
	int seed_given;
	uint64_t cache_budget, mem_limit;   /* bytes; 0: not given */
	int io;                      /* index into io_names */
	int64_t io_depth;
	const char *stats_file;
	int keep_stats;
	int prefetch;                /* index into prefetch_names */
	const char *prefetch_depth;  /* "auto" or N */
	const char *trace_out;
	int policy;                  /* index into policy_names */
	const char *profile;         /* --profile PATH (NULL: the default place) */
	int no_profile;
	int perplexity;              /* --perplexity (src/evaluate.h) */
	const char *logits_out, *force_tokens;
	int64_t logits_top;
	int mlock;                   /* --mlock: pin resident weights and pool */
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	if (interrupted)
		_exit(130);          /* second Ctrl-C: leave now */
	interrupted = 1;
}

/* Prints the build and machine report; returns the exit status. */
static int report(void)
{
	char feats[512], why[256];
	printf("moepager %s\n", PACKAGE_VERSION);
	printf("cpu:          %s\n", mp_cpu_brand());
	printf("cpu features: %s\n", mp_cpu_describe(mp_cpu_features(), feats, sizeof feats));
	if (mp_dispatch_init(why, sizeof why) < 0) {
		fprintf(stderr, "moepager: %s\n", why);
		return 1;
	}
	printf("kernel path:  %s\n", why);
	printf("allocator:    %s\n", mp_alloc_backend());
	printf("io backends:");
	for (const struct mp_io_ops *const *b = mp_io_backends(); *b; b++) {
		char note[256] = "";
		int usable = (*b)->probe(note, sizeof note) == 0;
		printf(" %s%s%s%s", (*b)->name, usable ? "" : " (unusable: ", usable ? "" : note,
		       usable ? "" : ")");
	}
	printf("\n");
	const struct mp_io_ops *chosen;
	char note[1024];
	if (mp_io_select("auto", &chosen, note, sizeof note) == 0)
		printf("io auto:      %s%s%s\n", chosen->name, note[0] ? " — " : "", note);
	return 0;
}

/* ---- a generation session --------------------------------------------------------- */

struct session {
	struct mp_tok *tok;
	struct mp_model *model;
	struct mp_sampler *sampler;
	uint32_t n_ctx;
	int32_t eos, think_open, think_close;
	int tty, hide_think, in_think;
	struct mp_tok_stream stream;
	char *out;                   /* stream output buffer */
	size_t out_cap;
	uint64_t prompt_tokens, prompt_ns, gen_tokens, gen_ns;
	struct mp_stats *stats;      /* NULL without the pager */
	struct mp_experts *experts;  /* NULL without the pager */
	char stopped[128];           /* why the last answer ended, for the summary */
};

/* Counts one decoded token in the stats segment. */
static void count_token(struct session *s, uint64_t ns)
{
	if (!s->stats)
		return;
	mp_stats_begin(s->stats);
	struct mp_stats_global *g = mp_stats_global(s->stats);
	mp_stats_add(&g->tokens, 1);
	mp_stats_add(&g->decode_ns, ns);
	mp_stats_end(s->stats);
}

static void emit(struct session *s, const char *text, size_t n)
{
	if (!n || (s->in_think && s->hide_think))
		return;
	fwrite(text, 1, n, stdout);
}

/* Shows token id, switching the dim style around the <think> part. */
static void show(struct session *s, int32_t id)
{
	if (id == s->think_open) {
		s->in_think = 1;
		if (s->tty && !s->hide_think)
			fputs("\033[2m", stdout);
	}
	size_t n = mp_tok_stream_push(s->tok, &s->stream, id, s->out, s->out_cap);
	emit(s, s->out, n);
	if (id == s->think_close) {
		s->in_think = 0;
		if (s->tty && !s->hide_think)
			fputs("\033[0m", stdout);
	}
	fflush(stdout);
}

/* Feeds ids through the model; the logits of the last one are in *logits. */
static int feed(struct session *s, const int32_t *ids, size_t n, const float **logits)
{
	if (mp_model_pos(s->model) + n >= s->n_ctx) {
		fprintf(stderr, "moepager: the prompt needs %zu more tokens but only %u of --ctx-size %u "
			"are left\n", n, s->n_ctx - mp_model_pos(s->model), s->n_ctx);
		return -MP_EBUDGET;
	}
	uint64_t t0 = mp_clock_now_ns();
	for (size_t i = 0; i < n; i++) {
		uint64_t ts = mp_clock_now_ns();
		int rc = mp_model_step(s->model, (uint32_t)ids[i], logits);
		if (rc < 0) {
			fprintf(stderr, "moepager: %s\n", mp_model_error(s->model));
			return rc;
		}
		count_token(s, mp_clock_now_ns() - ts);
		mp_sampler_accept(s->sampler, ids[i]);
	}
	s->prompt_ns += mp_clock_now_ns() - t0;
	s->prompt_tokens += n;
	return 0;
}

/* Samples up to n_predict tokens (−1, the default: until the end of text or
 * a full context) and records in s->stopped why it stopped. */
static int generate(struct session *s, const float *logits, int64_t n_predict)
{
	uint64_t t0 = mp_clock_now_ns();
	int rc = 0;
	snprintf(s->stopped, sizeof s->stopped, "-n %lld tokens generated", (long long)n_predict);
	for (int64_t i = 0; n_predict < 0 || i < n_predict; i++) {
		if (interrupted) {
			snprintf(s->stopped, sizeof s->stopped, "interrupted (Ctrl-C)");
			break;
		}
		int32_t id = mp_sampler_sample(s->sampler, logits);
		mp_sampler_accept(s->sampler, id);
		s->gen_tokens++;
		if (id == s->eos) {
			snprintf(s->stopped, sizeof s->stopped, "end of text");
			break;
		}
		show(s, id);
		if (mp_model_pos(s->model) + 1 >= s->n_ctx) {
			fprintf(stderr, "\nmoepager: the context is full: all %u positions of --ctx-size are "
				"used, so the answer stops here; a larger --ctx-size gives it room\n", s->n_ctx);
			snprintf(s->stopped, sizeof s->stopped, "the context is full (--ctx-size %u)", s->n_ctx);
			break;
		}
		uint64_t ts = mp_clock_now_ns();
		if ((rc = mp_model_step(s->model, (uint32_t)id, &logits)) < 0) {
			fprintf(stderr, "\nmoepager: %s\n", mp_model_error(s->model));
			snprintf(s->stopped, sizeof s->stopped, "an error (above)");
			break;
		}
		count_token(s, mp_clock_now_ns() - ts);
	}
	size_t n = mp_tok_stream_flush(&s->stream, s->out, s->out_cap);
	emit(s, s->out, n);
	if (s->in_think && s->tty && !s->hide_think)
		fputs("\033[0m", stdout);
	fputc('\n', stdout);
	fflush(stdout);
	s->gen_ns += mp_clock_now_ns() - t0;
	return rc;
}

/* Encodes text (special tokens parsed) into a fresh array. */
static int encode(struct session *s, const char *text, unsigned flags, int32_t **ids, size_t *n)
{
	size_t len = strlen(text);
	size_t cap = len + 8;
	*ids = mp_malloc_array(cap, sizeof **ids);
	if (!*ids)
		return -ENOMEM;
	int rc = mp_tok_encode(s->tok, text, len, flags, *ids, cap);
	if (rc >= 0 && (size_t)rc > cap) {
		int32_t *bigger = mp_realloc(*ids, sizeof **ids * (size_t)rc);
		if (!bigger)
			return -ENOMEM;
		*ids = bigger;
		rc = mp_tok_encode(s->tok, text, len, flags, *ids, (size_t)rc);
	}
	if (rc < 0) {
		fprintf(stderr, "moepager: cannot tokenize the prompt: %s\n", mp_strerror(rc));
		return rc;
	}
	*n = (size_t)rc;
	return 0;
}

/* One user turn of the R1 template, with the <think> opening the answer. */
static int user_turn(struct session *s, const char *msg, int first, const float **logits)
{
	struct mp_tok_msg m = { MP_TOK_USER, msg };
	char *text;
	int64_t len = mp_tok_chat_render(&m, 1, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK, &text);
	if (len < 0)
		return (int)len;
	/* later turns continue the cached conversation: drop the leading BOS */
	const char *body = text;
	size_t bos_len = 0;
	const char *bos = mp_tok_bos(s->tok) >= 0 ? mp_tok_piece(s->tok, mp_tok_bos(s->tok), &bos_len)
					       : NULL;
	if (!first && bos && bos_len && strncmp(text, bos, bos_len) == 0)
		body = text + bos_len;
	int32_t *ids;
	size_t n;
	int rc = encode(s, body, (first ? MP_TOK_ADD_BOS : 0) | MP_TOK_PARSE_SPECIAL, &ids, &n);
	mp_free(text);
	if (rc < 0)
		return rc;
	rc = feed(s, ids, n, logits);
	/* the template ends with "<think>\n": the answer starts in the think part */
	for (size_t i = n >= 2 ? n - 2 : 0; rc == 0 && i < n; i++)
		if (ids[i] == s->think_open)
			s->in_think = 1;
	if (s->in_think && s->tty && !s->hide_think)
		fputs("\033[2m", stdout);
	mp_free(ids);
	return rc;
}

static int chat(struct session *s, int64_t n_predict)
{
	char line[8192];
	int first = 1;
	for (;;) {
		interrupted = 0;
		fputs("> ", stdout);
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			break;
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		const float *logits;
		if (user_turn(s, line, first, &logits) < 0)
			return 1;
		first = 0;
		generate(s, logits, n_predict);
		s->in_think = 0;
		mp_experts_end_sequence(s->experts);   /* one trace sequence per turn */
		if (interrupted)
			fputs("[stopped]\n", stdout);
	}
	return 0;
}

static void print_speed(const struct session *s)
{
	double ps = (double)s->prompt_ns / 1e9, gs = (double)s->gen_ns / 1e9;
	fprintf(stderr, "moepager: prompt %llu tokens in %.2f s (%.2f tokens/s); decode %llu tokens "
		"in %.2f s (%.2f tokens/s)\n", (unsigned long long)s->prompt_tokens, ps,
		ps > 0 ? (double)s->prompt_tokens / ps : 0.0, (unsigned long long)s->gen_tokens, gs,
		gs > 0 ? (double)s->gen_tokens / gs : 0.0);
	if (s->stopped[0])
		fprintf(stderr, "moepager: generation stopped: %s\n", s->stopped);
}

/* The pager's one-screen summary at exit. */
static void print_pager(struct mp_experts *x, const struct session *s)
{
	struct rusage ru;
	char rss[32];
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		fprintf(stderr, "moepager: peak RSS %s\n",
			mp_size_format((uint64_t)ru.ru_maxrss * 1024, rss, sizeof rss));
	if (!x)
		return;
	struct mp_pager_info pi;
	mp_pager_info(mp_experts_pager(x), &pi);
	uint64_t uses = pi.hits + pi.pc_hits + pi.misses;
	char a[32], b[32];
	fprintf(stderr, "moepager: pager: %llu expert uses: %.1f%% pool hits, %.1f%% page-cache copies, "
		"%.1f%% disk reads; read %s from disk, copied %s from the page cache; %llu evictions\n",
		(unsigned long long)uses, uses ? 100.0 * (double)pi.hits / (double)uses : 0.0,
		uses ? 100.0 * (double)pi.pc_hits / (double)uses : 0.0,
		uses ? 100.0 * (double)pi.misses / (double)uses : 0.0,
		mp_size_format(pi.bytes_read, a, sizeof a), mp_size_format(pi.pc_bytes, b, sizeof b),
		(unsigned long long)pi.evictions);
	double run_s = (double)(s->prompt_ns + s->gen_ns) / 1e9;
	double wait_s = s->model ? (double)mp_model_wait_ns(s->model) / 1e9 : 0;
	fprintf(stderr, "moepager: stall: %.2f s waiting for experts (%.1f%% of %.2f s); prefetch depth %d\n",
		wait_s, run_s > 0 ? 100.0 * wait_s / run_s : 0.0, run_s,
		s->model ? mp_model_prefetch_depth(s->model) : 0);
	uint64_t steps = s->prompt_tokens + s->gen_tokens;
	fprintf(stderr, "moepager: pager CPU: %.3f s in its calls, %.2f ms per token\n",
		(double)pi.cpu_ns / 1e9, steps ? (double)pi.cpu_ns / 1e6 / (double)steps : 0.0);
	fprintf(stderr, "moepager: prefetch: %llu issued, %llu used, %llu wasted (precision %.2f)\n",
		(unsigned long long)pi.pf_issued, (unsigned long long)pi.pf_used,
		(unsigned long long)pi.pf_wasted,
		pi.pf_issued ? (double)pi.pf_used / (double)pi.pf_issued : 0.0);
}

/* A refused --mlock is reported, not fatal. */
static void lock_refused(const char *what, uint64_t bytes, int err)
{
	struct rlimit rl;
	char a[32], b[32] = "unlimited";
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		mp_size_format((uint64_t)rl.rlim_cur, b, sizeof b);
	fprintf(stderr, "moepager: --mlock: cannot lock %s (%s): %s; RLIMIT_MEMLOCK is %s (ulimit -l, "
		"or CAP_IPC_LOCK); continuing unlocked\n", what, mp_size_format(bytes, a, sizeof a),
		strerror(err), b);
}

/* Reads the resident weights into anonymous memory (src/loader.h) and says
 * how it went.  Returns 0 or -1 (message printed). */
static int load_resident(const struct flags *f, struct mp_modelfile *mf, struct mp_stats *stats)
{
	char err[1024], a[32], b[32];
	struct mp_load_opts lo = { .progress = isatty(STDERR_FILENO), .mlock = f->mlock };
	struct mp_load_report lr;
	if (mp_modelfile_load_resident(mf, &lo, &lr, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return -1;
	}
	fprintf(stderr, "moepager: resident weights: %s read in %.1f s (%.0f MB/s) into %s of anonymous "
		"memory%s, %s\n", mp_size_format(lr.bytes, a, sizeof a), lr.seconds,
		lr.seconds > 0 ? (double)lr.read_bytes / 1e6 / lr.seconds : 0.0,
		mp_size_format(lr.region_bytes, b, sizeof b), lr.hugepages ? " (huge pages)" : "",
		lr.buffered ? "buffered reads: O_DIRECT refused by the file system (pages dropped "
			      "from the page cache after reading)" : "O_DIRECT reads");
	if (f->mlock && !lr.locked && lr.region_bytes)
		lock_refused("the resident weights", lr.region_bytes, lr.lock_errno);
	mp_stats_add_fallbacks(stats, (lr.buffered ? MP_STATS_FB_RESIDENT_BUFFERED : 0) |
			       (f->mlock && !lr.locked && lr.region_bytes ? MP_STATS_FB_MLOCK_REFUSED : 0));
	return 0;
}

/* Sizes the pool with the plan, creates the stats segment and the pager-backed
 * expert source, and prints the plan.  Returns 0 or -1 (message printed). */
static int start_pager(const struct flags *f, struct mp_modelfile *mf, uint32_t top_k,
		       struct session *s, struct mp_plan *plan, int *plan_made,
		       struct mp_experts **experts, struct mp_expert_source *src)
{
	const struct mp_hparams *hp = mp_modelfile_hparams(mf);
	uint64_t fp = mp_loader_fingerprint(mp_modelfile_gguf(mf));
	char err[1024];
	/* the pager serves the routed experts from a bounded pool, sized by
	 * the one plan function (src/plan->h) that moepager-gguf plan prints */
	struct mp_plan_opts po = {
		.cache_budget = f->cache_budget, .mem_limit = f->mem_limit, .ctx = (uint64_t)f->ctx,
		.threads = (uint32_t)f->threads, .kv_q8 = f->kv_type == 1, .n_used = top_k,
	};
	char a[32], b[32], c[32], d[32], e[32];
	if (mp_plan_compute(mp_modelfile_gguf(mf), &po, plan, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return -1;
	}
	*plan_made = 1;
	uint64_t budget = plan->pool_bytes;
	fprintf(stderr, "moepager: memory plan: resident weights %s + KV cache %s (%lld tokens) + "
		"scratch %s + expert pool %s (%.0f%% of %s of routed experts)\n",
		mp_size_format(plan->resident_bytes, a, sizeof a), mp_size_format(plan->kv_bytes, b, sizeof b),
		(long long)f->ctx, mp_size_format(plan->scratch_bytes, c, sizeof c),
		mp_size_format(budget, d, sizeof d), 100.0 * plan->pool_fraction,
		mp_size_format(plan->routed_bytes, e, sizeof e));
	if (mp_stats_create(&(struct mp_stats_config){ f->stats_file, f->keep_stats, hp->n_layer,
						       hp->n_expert, fp,
						       io_names[f->io] }, &s->stats, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return -1;
	}
	struct mp_pager_config pc;
	memset(&pc, 0, sizeof pc);
	pc.budget = budget;
	pc.io = io_names[f->io];
	pc.io_depth = (uint32_t)f->io_depth;
	pc.stats = s->stats;
	pc.mlock = f->mlock;
	char profile_path[4096] = "";
	if (!f->no_profile) {
		if (f->profile)
			snprintf(profile_path, sizeof profile_path, "%s", f->profile);
		else
			mp_profile_default_path(fp, profile_path, sizeof profile_path);
	}
	struct mp_experts_opts xo = {
		.policy = f->policy == 1 ? MP_POLICY_LRU : MP_POLICY_MOEPAGER,
		.prefetch = f->prefetch != 0,
		.trace_out = f->trace_out,
		.profile = profile_path[0] ? profile_path : NULL,
		.fingerprint = fp,
	};
	if (mp_experts_create(mp_modelfile_gguf(mf), hp, mp_modelfile_weights(mf), top_k, &pc,
			      &xo, experts, src, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return -1;
	}
	s->experts = *experts;
	struct mp_pager_info pi;
	mp_pager_info(mp_experts_pager(*experts), &pi);
	mp_stats_set_backend(s->stats, pi.backend);
	fprintf(stderr, "moepager: expert pool: %u slots, %s, io %s\n", pi.n_slots,
		pi.fits ? "every expert fits: the model is read whole" : "experts are paged", pi.backend);
	if (f->mlock && !pi.pool_locked && pi.pool_bytes)
		lock_refused("the expert pool", pi.pool_bytes, pi.lock_errno);
	if (mp_pager_message(mp_experts_pager(*experts))[0])
		fprintf(stderr, "moepager: %s\n", mp_pager_message(mp_experts_pager(*experts)));
	char fb[512];
	fprintf(stderr, "moepager: io fallbacks: %s\n", mp_stats_fallback_names(pi.fallbacks, fb, sizeof fb));
	fprintf(stderr, "moepager: stats: %s (watch with moepager-stat); policy %s, prefetch %s, "
		"depth %s\n", mp_stats_path(s->stats), policy_names[f->policy], prefetch_names[f->prefetch],
		f->prefetch_depth);
	return 0;
}

static int run(const struct flags *f)
{
	char err[1024], why[256];
	int status = 1;
	struct mp_modelfile *mf = NULL;
	struct mp_resident_experts *res = NULL;
	struct mp_experts *experts = NULL;
	struct mp_plan plan;
	int plan_made = 0;
	struct mp_threads *threads = NULL;
	struct session s;
	memset(&s, 0, sizeof s);
	char *prompt_text = NULL;

	if (mp_dispatch_init(why, sizeof why) < 0) {
		fprintf(stderr, "moepager: %s\n", why);
		return 1;
	}
	if (mp_modelfile_open(f->model, &mf, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return 1;
	}
	const struct mp_hparams *hp = mp_modelfile_hparams(mf);
	if (mp_loader_tokenizer(mp_modelfile_gguf(mf), &s.tok, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		goto out;
	}
	struct mp_expert_source src;
	uint32_t top_k = f->experts ? (uint32_t)f->experts : hp->n_expert_used;
	if ((f->cache_budget || f->mem_limit) && hp->n_dense_lead < hp->n_layer) {
		if (start_pager(f, mf, top_k, &s, &plan, &plan_made, &experts, &src) < 0 ||
		    load_resident(f, mf, s.stats) < 0)
			goto out;
	} else if (mp_resident_experts_create(hp, mp_modelfile_weights(mf), &res, &src) < 0 &&
		   hp->n_dense_lead < hp->n_layer) {
		fprintf(stderr, "moepager: %s: the routed-expert tensors do not match the metadata\n", f->model);
		goto out;
	}
	int depth = -1;
	if (strcmp(f->prefetch_depth, "auto") != 0) {
		char *end;
		long d = strtol(f->prefetch_depth, &end, 10);
		if (*end || end == f->prefetch_depth || d < 1 || d > 16) {
			fprintf(stderr, "moepager: --prefetch-depth %s: expected auto or a number from 1 to 16\n",
				f->prefetch_depth);
			goto out;
		}
		depth = (int)d;
	}
	if (mp_threads_create((int)f->threads, &threads) < 0) {
		fprintf(stderr, "moepager: cannot start %lld threads\n", (long long)f->threads);
		goto out;
	}
	struct mp_model_opts mo = {
		.n_ctx = (uint32_t)f->ctx,
		.kv_type = f->kv_type == 1 ? MP_KV_Q8_0 : MP_KV_F16,
		.n_expert_used = (uint32_t)f->experts,
		.no_groups = f->no_groups,
		.absorb = 1,
		.threads = threads,
		.prefetch_depth = f->prefetch == 0 ? 0 : depth,
		.prefetch_history = f->prefetch == 2,
	};
	if (mp_model_create(hp, mp_modelfile_weights(mf), &src, &mo, &s.model, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s: %s\n", f->model, err);
		goto out;
	}
	struct mp_sampler_params sp;
	mp_sampler_params_r1(&sp);
	sp.temperature = (float)f->temp;
	sp.top_k = (int32_t)f->top_k;
	sp.top_p = (float)f->top_p;
	sp.min_p = (float)f->min_p;
	sp.repeat_penalty = (float)f->repeat_penalty;
	sp.penalty_last_n = (int32_t)f->repeat_last_n;
	sp.seed = f->seed_given ? (uint64_t)f->seed : mp_clock_now_ns() ^ ((uint64_t)getpid() << 32);
	if (mp_sampler_create(&sp, hp->n_vocab, &s.sampler, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		goto out;
	}
	s.n_ctx = (uint32_t)f->ctx;
	s.eos = mp_tok_eos(s.tok);
	s.think_open = mp_tok_find(s.tok, "<think>", 7);
	s.think_close = mp_tok_find(s.tok, "</think>", 8);
	s.tty = isatty(STDOUT_FILENO);
	s.hide_think = f->hide_think;
	s.out_cap = mp_tok_stream_cap(s.tok);
	s.out = mp_malloc(s.out_cap);
	if (!s.out)
		goto out;
	mp_tok_stream_init(&s.stream, 0);

	char msz[32];
	uint64_t bytes = 0;
	for (uint32_t p = 0; p < mp_gguf_part_count(mp_modelfile_gguf(mf)); p++)
		bytes += mp_gguf_part_size(mp_modelfile_gguf(mf), p);
	fprintf(stderr, "moepager: %s: %u layers, %u experts (top-%u), %s, kernels %s, %lld threads, %s\n",
		f->model, hp->n_layer, hp->n_expert, top_k, mp_size_format(bytes, msz, sizeof msz),
		mp_dispatch_name(mp_dispatch_path()), (long long)f->threads,
		experts ? "routed experts paged" : "all weights mapped (no --cache-budget/--mem-limit)");

	if (f->perplexity || f->logits_out || f->force_tokens) {
		/* quality measurement: src/evaluate.c runs the text and the recorder */
		if (f->file && !(prompt_text = mp_file_read(f->file, NULL, err, sizeof err))) {
			fprintf(stderr, "moepager: %s\n", err);
			goto out;
		}
		char settings[256], bsz[32];
		snprintf(settings, sizeof settings, "experts %u, kv %s, threads %lld, io %s, budget %s", top_k,
			 kv_types[f->kv_type], (long long)f->threads, experts ? io_names[f->io] : "none",
			 experts ? mp_size_format(f->cache_budget ? f->cache_budget : f->mem_limit, bsz,
						  sizeof bsz) : "all experts resident");
		struct mp_eval_cli ec = { f->perplexity, f->logits_out, (uint32_t)f->logits_top,
					  f->force_tokens, prompt_text ? prompt_text : f->prompt, f->raw,
					  f->n_predict, (uint32_t)f->ctx, f->model, settings };
		status = mp_eval_main(&ec, s.model, hp, s.tok, s.sampler);
		print_pager(experts, &s);
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);

	if (f->interactive) {
		status = chat(&s, f->n_predict);
		print_speed(&s);
		print_pager(experts, &s);
		goto out;
	}
	if (f->file) {
		prompt_text = mp_file_read(f->file, NULL, err, sizeof err);
		if (!prompt_text) {
			fprintf(stderr, "moepager: %s\n", err);
			goto out;
		}
	}
	const char *prompt = prompt_text ? prompt_text : f->prompt ? f->prompt : "";
	const float *logits;
	if (f->raw) {
		int32_t *ids;
		size_t n;
		if (encode(&s, prompt, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, &ids, &n) < 0)
			goto out;
		if (n == 0) {
			fprintf(stderr, "moepager: the prompt is empty and the vocabulary has no BOS\n");
			mp_free(ids);
			goto out;
		}
		int rc = feed(&s, ids, n, &logits);
		mp_free(ids);
		if (rc < 0)
			goto out;
	} else if (user_turn(&s, prompt, 1, &logits) < 0) {
		goto out;
	}
	status = generate(&s, logits, f->n_predict) < 0 ? 1 : 0;
	print_speed(&s);
	print_pager(experts, &s);
out:
	mp_free(prompt_text);
	mp_free(s.out);
	mp_sampler_destroy(s.sampler);
	mp_model_destroy(s.model);
	mp_tok_destroy(s.tok);
	mp_threads_destroy(threads);
	mp_resident_experts_destroy(res);
	mp_experts_destroy(experts);
	mp_stats_destroy(s.stats);
	if (plan_made)
		mp_plan_free(&plan);
	mp_modelfile_close(mf);
	return status;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct flags f = {
		.n_predict = -1, .threads = ncpu > 0 ? ncpu : 1, .ctx = 4096, .top_k = 0,
		.repeat_last_n = 64, .experts = 0, .seed = 0, .temp = 0.6, .top_p = 0.95,
		.min_p = 0.01, .repeat_penalty = 1.0, .kv_type = 0, .io_depth = 32, .prefetch = 1,
		.prefetch_depth = "auto",
		.logits_top = 20,
	};
	const struct mp_opt opts[] = {
		{ "model", 'm', MP_OPT_STRING, &f.model, "PATH", "model file (first part of a split model)", 0, 0, NULL, NULL },
		{ "prompt", 'p', MP_OPT_STRING, &f.prompt, "TEXT", "prompt, sent as one user turn of the chat template", 0, 0, NULL, NULL },
		{ "file", 'f', MP_OPT_STRING, &f.file, "PATH", "read the prompt from a file", 0, 0, NULL, NULL },
		{ "interactive", 'i', MP_OPT_FLAG, &f.interactive, NULL, "chat: read user turns from standard input", 0, 0, NULL, NULL },
		{ "raw", 0, MP_OPT_FLAG, &f.raw, NULL, "use the prompt as is, without the chat template", 0, 0, NULL, NULL },
		{ "n-predict", 'n', MP_OPT_INT, &f.n_predict, "N", "tokens to generate; -1 (default) = until the end of text or a full context", -1, 1e9, NULL, NULL },
		{ "ctx-size", 'c', MP_OPT_INT, &f.ctx, "N", "context length (KV cache positions)", 16, 1 << 24, NULL, NULL },
		{ "threads", 't', MP_OPT_INT, &f.threads, "N", "compute threads", 1, 1024, NULL, NULL },
		{ "temp", 0, MP_OPT_FLOAT, &f.temp, "T", "temperature; 0 = greedy", 0, 100, NULL, NULL },
		{ "top-k", 0, MP_OPT_INT, &f.top_k, "N", "keep the N most likely tokens; 0 = off", 0, 1e9, NULL, NULL },
		{ "top-p", 0, MP_OPT_FLOAT, &f.top_p, "P", "nucleus sampling mass; 1 = off", 0, 1, NULL, NULL },
		{ "min-p", 0, MP_OPT_FLOAT, &f.min_p, "P", "drop tokens below P times the best one's probability", 0, 1, NULL, NULL },
		{ "repeat-penalty", 0, MP_OPT_FLOAT, &f.repeat_penalty, "F", "penalty for repeated tokens; 1 = off", 0.01, 100, NULL, NULL },
		{ "repeat-last-n", 0, MP_OPT_INT, &f.repeat_last_n, "N", "tokens the repeat penalty looks back", 0, 1e9, NULL, NULL },
		{ "seed", 0, MP_OPT_INT, &f.seed, "N", "sampling seed (default: random)", 0, 9.2e18, NULL, &f.seed_given },
		{ "experts", 0, MP_OPT_INT, &f.experts, "K", "routed experts per token (fewer: faster, worse answers); 0 = the model's", 0, 64, NULL, NULL },
		{ "kv-type", 0, MP_OPT_CHOICE, &f.kv_type, "TYPE", "KV cache type: f16 or q8_0 (half the size)", 0, 0, kv_types, NULL },
		{ "no-expert-groups", 0, MP_OPT_FLAG, &f.no_groups, NULL, "ignore expert groups (llama.cpp parity on old files)", 0, 0, NULL, NULL },
		{ "hide-think", 0, MP_OPT_FLAG, &f.hide_think, NULL, "do not print the <think> part", 0, 0, NULL, NULL },
		{ "cache-budget", 0, MP_OPT_SIZE, &f.cache_budget, "SIZE", "expert pool size (e.g. 96G); routed experts are paged from disk", 0, 0, NULL, NULL },
		{ "mem-limit", 0, MP_OPT_SIZE, &f.mem_limit, "SIZE", "whole-process memory limit; the expert pool gets what is left", 0, 0, NULL, NULL },
		{ "mlock", 0, MP_OPT_FLAG, &f.mlock, NULL, "pin the resident weights and the expert pool in RAM (a refusal is reported, not fatal)", 0, 0, NULL, NULL },
		{ "io", 0, MP_OPT_CHOICE, &f.io, "BACKEND", "expert reads: auto, uring, aio, sync or mmap", 0, 0, io_names, NULL },
		{ "io-depth", 0, MP_OPT_INT, &f.io_depth, "N", "expert reads in flight", 1, 4096, NULL, NULL },
		{ "stats-file", 0, MP_OPT_STRING, &f.stats_file, "PATH", "stats segment (default /dev/shm/moepager-PID.stats)", 0, 0, NULL, NULL },
		{ "keep-stats", 0, MP_OPT_FLAG, &f.keep_stats, NULL, "keep the stats segment after exit", 0, 0, NULL, NULL },
		{ "prefetch", 0, MP_OPT_CHOICE, &f.prefetch, "MODE", "expert prefetch: none, lookahead (router look-ahead) or full (also the previous token's experts)", 0, 0, prefetch_names, NULL },
		{ "prefetch-depth", 0, MP_OPT_STRING, &f.prefetch_depth, "N", "layers the look-ahead covers: auto (adapts to waits) or 1-16", 0, 0, NULL, NULL },
		{ "policy", 0, MP_OPT_CHOICE, &f.policy, "NAME", "expert eviction: moepager (learned next-token probability) or lru", 0, 0, policy_names, NULL },
		{ "trace-out", 0, MP_OPT_STRING, &f.trace_out, "PATH", "record routing and pager outcomes (MOETRACE v2, for moepager-sim)", 0, 0, NULL, NULL },
		{ "profile", 0, MP_OPT_STRING, &f.profile, "PATH", "usage profile that warms the pool at start and is saved at exit (default: $XDG_CACHE_HOME/moepager/FINGERPRINT.profile)", 0, 0, NULL, NULL },
		{ "no-profile", 0, MP_OPT_FLAG, &f.no_profile, NULL, "neither read nor save a usage profile", 0, 0, NULL, NULL },
		{ "perplexity", 0, MP_OPT_FLAG, &f.perplexity, NULL, "perplexity of the -f text in chunks of --ctx-size, scoring each chunk's second half", 0, 0, NULL, NULL },
		{ "logits-out", 0, MP_OPT_STRING, &f.logits_out, "FILE", "write every evaluated position's logits and routing as JSON (docs/logits-format.md)", 0, 0, NULL, NULL },
		{ "logits-top", 0, MP_OPT_INT, &f.logits_top, "K", "logits kept per position in --logits-out", 1, 1024, NULL, NULL },
		{ "force-tokens", 0, MP_OPT_STRING, &f.force_tokens, "IDS", "feed these token ids (1,2,3 or @FILE) after the prompt instead of sampling", 0, 0, NULL, NULL },
		{ "version", 'V', MP_OPT_FLAG, &f.version, NULL, "print the version, CPU features, kernel path and I/O backends", 0, 0, NULL, NULL },
	};
	const size_t n_opts = sizeof opts / sizeof opts[0];
	char err[256];
	int rc = mp_opt_parse(opts, n_opts, argc, argv, NULL, 0, NULL, err, sizeof err);
	if (rc == 1) {
		mp_opt_help(stdout, usage_line, description, opts, n_opts);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return 2;
	}
	if (f.version)
		return report();
	if (!f.model) {
		fprintf(stderr, "moepager: -m MODEL.gguf is required (see --help)\n");
		return 2;
	}
	if (f.prompt && f.file) {
		fprintf(stderr, "moepager: -p and -f both give a prompt: choose one\n");
		return 2;
	}
	if (f.interactive && (f.perplexity || f.logits_out || f.force_tokens)) {
		fprintf(stderr, "moepager: --perplexity, --logits-out and --force-tokens do not work with -i\n");
		return 2;
	}
	if (f.interactive && (f.prompt || f.file || f.raw)) {
		fprintf(stderr, "moepager: -i reads the conversation from standard input; drop -p/-f/--raw\n");
		return 2;
	}
	return run(&f);
}
