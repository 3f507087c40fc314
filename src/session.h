/*
 * session.h — a loaded model that can answer: the model file, tokenizer,
 * expert source (resident or paged, with the memory plan and the stats
 * segment), thread pool and forward pass, plus the tokens its KV cache holds.
 * moepager (the command) and moepager-server both run through it.
 *
 * It feeds prompts (reusing the cached prefix a new prompt shares with the
 * last one), runs the sampling loop and hands each token's text to a
 * callback.  It does not parse flags, render chat templates or print answers;
 * samplers belong to the caller (one per request or one per chat).  One
 * thread uses a session at a time.
 */
#ifndef MP_SESSION_H
#define MP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "opt.h"
#include "sampler.h"
#include "tokenizer.h"

struct mp_dist;

/* The strings are read during mp_session_open only, except prog (kept). */
struct mp_session_opts {
	struct mp_dist *dist;        /* several ranks under mpirun (src/dist.h), or NULL */
	const char *prog;            /* prefix of the messages on stderr ("moepager") */
	const char *model;           /* first part of the model file */
	uint32_t n_ctx;              /* KV cache positions */
	uint32_t n_batch;            /* prompt tokens per layer-major prefill batch; 0 = 512 */
	uint32_t threads;            /* compute threads, >= 1 */
	uint32_t experts;            /* routed experts per token; 0 = the file's */
	int kv_q8;                   /* 1: q8_0 KV cache; 0: f16 */
	int no_groups;               /* 1: ignore expert groups */
	uint64_t cache_budget;       /* bytes of expert pool; 0 = not given */
	uint64_t mem_limit;          /* bytes for the whole process; 0 = not given */
	const char *io;              /* expert read backend: auto, uring, aio, sync, mmap */
	uint32_t io_depth;           /* reads in flight */
	const char *stats_file;      /* NULL: /dev/shm/moepager-PID.stats */
	int keep_stats;              /* 1: leave the segment at close */
	int prefetch;                /* 0 none, 1 lookahead, 2 full */
	const char *prefetch_depth;  /* "auto" or "1".."16" */
	int policy_lru;              /* 1: LRU eviction; 0: moepager's */
	const char *trace_out;       /* MOETRACE output, or NULL */
	const char *profile;         /* usage profile path; NULL = the default place */
	int no_profile;              /* 1: no usage profile */
	int timings;                 /* 1: where decode time went, at exit (--timings) */
	int mlock;                   /* 1: pin the resident weights and the pool (--mlock) */
};

/* The model and sampling flags every tool that runs a model takes (-m, -c,
 * -t, --cache-budget, --io, --temp, ...), as opt.h targets.  A tool puts
 * mp_session_flag_table's entries into its own option table, then turns the
 * values into mp_session_opts and sampler parameters. */
struct mp_session_flags {
	const char *model;
	int64_t n_predict, threads, ctx, top_k, repeat_last_n, experts, seed, io_depth;
	int64_t batch;               /* -b: prompt tokens per prefill batch */
	double temp, top_p, min_p, repeat_penalty;
	int kv_type;                 /* index: f16, q8_0 */
	int seed_given, no_groups, keep_stats, no_profile;
	int ignore_eos;              /* callers ban EOS in their samplers (mp_sampler_ban) */
	int timings;                 /* --timings */
	int mlock;                   /* --mlock */
	uint64_t cache_budget, mem_limit;   /* bytes; 0: not given */
	int io;                      /* index: auto, uring, aio, sync, mmap */
	const char *stats_file, *prefetch_depth, *trace_out, *profile;
	int prefetch;                /* index: none, lookahead, full */
	int policy;                  /* index: moepager, lru */
};

#define MP_SESSION_N_FLAGS 30

/* Sets the defaults (moepager's: n_predict 256, ctx 4096, temp 0.6, ...). */
void mp_session_flags_init(struct mp_session_flags *f);
/* Writes the MP_SESSION_N_FLAGS option entries pointing into f to out. */
void mp_session_flag_table(struct mp_session_flags *f, struct mp_opt *out);
/* The session options and sampler parameters the flags ask for (a random
 * seed unless --seed was given). */
void mp_session_flags_apply(const struct mp_session_flags *f, const char *prog,
			    struct mp_session_opts *o, struct mp_sampler_params *sp);

struct mp_session;

/* Opens the model and everything needed to run it, printing the memory plan
 * and the model line on stderr.  Returns 0, or a negative error with the
 * sentence (naming the file or flag) in err. */
int mp_session_open(const struct mp_session_opts *o, struct mp_session **out, char *err,
		    size_t err_len);
/* Saves the usage profile (pager) and frees everything; NULL is fine. */
void mp_session_close(struct mp_session *s);

struct mp_model *mp_session_model(struct mp_session *s);
struct mp_tok *mp_session_tok(struct mp_session *s);
const struct mp_hparams *mp_session_hparams(const struct mp_session *s);
uint32_t mp_session_ctx(const struct mp_session *s);
uint32_t mp_session_top_k(const struct mp_session *s);
/* The tokens in the KV cache: positions 0 .. mp_model_pos() - 1. */
const int32_t *mp_session_ids(const struct mp_session *s);
/* The stats segment's path, or NULL without the pager. */
const char *mp_session_stats_path(const struct mp_session *s);
/* The last error's sentence. */
const char *mp_session_error(const struct mp_session *s);

/* Encodes text (flags: MP_TOK_ADD_BOS, MP_TOK_PARSE_SPECIAL) into a fresh
 * mp_malloc'd array.  Returns 0 or a negative error (mp_session_error). */
int mp_session_encode(struct mp_session *s, const char *text, unsigned flags, int32_t **ids,
		      size_t *n);

/* Appends prompt tokens to the cache — the one place prompts go through the
 * model — and records them in sp (may be NULL).  The logits after the last
 * one are in *logits.  Returns 0, -MP_EBUDGET when they do not fit in the
 * context (nothing is fed), -MP_ECANCELLED (mp_session_set_cancel), or the
 * model's error. */
int mp_session_feed(struct mp_session *s, const int32_t *ids, size_t n, struct mp_sampler *sp,
		    const float **logits);

/* Optional: asked between prompt tokens whether to give up (a client left);
 * nonzero makes feed return -MP_ECANCELLED with the tokens so far cached.
 * NULL (the default): never. */
void mp_session_set_cancel(struct mp_session *s, int (*cancel)(void *ctx), void *ctx);

/* Prompt with prefix reuse: keeps the cached tokens ids starts with (at
 * least the last token is processed again, for its logits), forgets the rest
 * and feeds the remainder.  *reused = tokens taken from the cache.  n >= 1.
 * On -MP_EBUDGET the cache is unchanged. */
int mp_session_prompt(struct mp_session *s, const int32_t *ids, size_t n, struct mp_sampler *sp,
		      const float **logits, uint32_t *reused);

/* How a generation ended. */
enum mp_session_end {
	MP_SESSION_EOS,              /* end-of-sentence token */
	MP_SESSION_LENGTH,           /* n_predict tokens */
	MP_SESSION_CTX_FULL,         /* the context is full */
	MP_SESSION_STOPPED,          /* the callback asked to stop */
};

/* Called with each generated token's id and its text (complete UTF-8, may be
 * empty); id -1 carries the decoder's last held bytes at the end.  Returns
 * nonzero to stop after this token. */
typedef int (*mp_session_token_fn)(void *ctx, int32_t id, const char *text, size_t n);

struct mp_session_gen {
	int64_t n_predict;           /* tokens to generate, < 0: until EOS or context full */
	mp_session_token_fn fn;
	void *ctx;
	uint64_t n_tokens;           /* out: tokens generated (EOS included) */
	enum mp_session_end end;     /* out */
};

/* Samples from logits and steps the model until g->end is decided.  Returns
 * 0, or the model's negative error (the tokens so far stay cached). */
int mp_session_generate(struct mp_session *s, struct mp_sampler *sp, const float *logits,
			struct mp_session_gen *g);

/* Totals since open. */
struct mp_session_counts {
	uint64_t prompt_tokens;      /* tokens fed as prompts (not reused ones) */
	uint64_t prompt_ns;          /* ns spent feeding them */
	uint64_t reused_tokens;      /* prompt tokens taken from the cache */
	uint64_t gen_tokens;         /* tokens generated */
	uint64_t gen_ns;             /* ns spent generating */
};
void mp_session_counts(const struct mp_session *s, struct mp_session_counts *out);

/* Ends one trace sequence (a chat turn or a request) for the pager's trace. */
void mp_session_end_sequence(struct mp_session *s);

/* The speed line and the pager's summary, on stderr (exit report). */
/* Prompt and decode speed; with --timings also where a decode token's time
 * went, phase by phase. */
void mp_session_print_speed(const struct mp_session *s);
/* Ranks after the first (mpirun): runs this rank's layers for rank 0 until it
 * ends the session, then prints the rank's pager summary.  Returns 0, or -1
 * after printing the error.  Returns 1 at once on rank 0 (or one process):
 * that one talks to the user. */
int mp_session_serve(struct mp_session *s);
void mp_session_print_pager(const struct mp_session *s);

#endif
