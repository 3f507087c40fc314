/*
 * evaluate.h — measuring quality: perplexity over a text, teacher-forced
 * logit dumps (docs/logits-format.md) and their position-by-position
 * comparison.
 *
 * Perplexity follows llama.cpp's llama-perplexity: the token sequence is cut
 * into chunks of n_ctx tokens, each chunk starts from an empty cache (its
 * first token replaced by BOS when the vocabulary has one), and only the
 * second half of each chunk is scored, so every scored token sees at least
 * n_ctx/2 tokens of context.  PPL = exp(mean NLL); its standard error is
 * PPL · sqrt(var(NLL) / (count − 1)), as llama.cpp prints it.
 *
 * The logits recorder writes one JSON file per run: per evaluated position the
 * input token, the argmax, the top-two margin, the log-sum-exp, the top-K
 * logits and, per MoE layer, the chosen experts, their weights and the
 * routing margin.  Two such files, from two runs on the same inputs (or from
 * moepager and another implementation), are compared by mp_eval_compare.
 *
 * Not here: the model, the sampler, the tokenizer (callers pass them in);
 * jansson allocates with its own malloc (the JSON trees are transient).
 */
#ifndef MP_EVALUATE_H
#define MP_EVALUATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "router.h"

#define MP_EVAL_FORMAT "moepager-logits"
#define MP_EVAL_VERSION 1
#define MP_EVAL_MAX_TOP 1024

/* ---- perplexity ------------------------------------------------------------------ */

/* Running negative log-likelihood sums. */
struct mp_eval_ppl {
	double nll;       /* sum of −log p(target) (nats) */
	double nll2;      /* sum of its squares */
	uint64_t count;   /* tokens scored */
};

/* log(sum(exp(logits[0..n)))) in double, stable. */
double mp_eval_lse(const float *logits, uint32_t n);
/* Scores target under logits[n_vocab]: adds −log softmax(logits)[target].
 * Returns that NLL. pre: 0 <= target < n_vocab. */
double mp_eval_ppl_add(struct mp_eval_ppl *p, const float *logits, uint32_t n_vocab,
		       int32_t target);
/* exp(mean NLL), and its standard error in *err (0 while count < 2). */
double mp_eval_ppl_value(const struct mp_eval_ppl *p, double *err);

/* ---- the logits recorder -------------------------------------------------------- */

struct mp_eval_rec;

struct mp_eval_rec_config {
	const char *path;       /* output file */
	uint32_t top_k;         /* logits kept per position, 1..MP_EVAL_MAX_TOP */
	uint32_t n_vocab;       /* logits per position */
	uint32_t n_layer;       /* entries of the routes array given to add */
	const char *source;     /* who wrote it ("moepager 0.1", "reference") */
	const char *model;      /* model file or description; NULL: omitted */
	const char *settings;   /* free text (kv type, experts, threads); NULL: omitted */
};

/* Opens cfg->path and writes the header.  Returns 0, -MP_EARG or -errno with
 * the sentence in err. */
int mp_eval_rec_create(const struct mp_eval_rec_config *cfg, struct mp_eval_rec **out,
		       char *err, size_t err_len);
/* What a position is scored against, when the next token is known. */
struct mp_eval_target {
	int32_t id;     /* the token that follows; −1: unknown (nothing written) */
	int scored;     /* 1: counted in the perplexity */
};

/* Records one evaluated position: the input token at KV position pos and the
 * logits it produced; routes[L] is layer L's routing (NULL or n == 0: dense
 * layer, not written).  A route whose margin is NaN is written with a null
 * margin, one whose first weight is NaN without weights (implementations that
 * do not expose them).  t (NULL: none) adds the target, its log-probability
 * and whether it was scored.  Returns 0 or -errno (write error). */
int mp_eval_rec_add(struct mp_eval_rec *r, uint32_t pos, int32_t token, const float *logits,
		    const struct mp_route *const *routes, const struct mp_eval_target *t);
/* The same with the routes of the model's last step. */
int mp_eval_rec_step(struct mp_eval_rec *r, const struct mp_model *m, int32_t token,
		     const float *logits, const struct mp_eval_target *t);
/* Finishes the JSON and closes the file; 0 or -errno with the sentence in
 * err.  Destroys r either way (NULL is fine, returns 0). */
int mp_eval_rec_close(struct mp_eval_rec *r, char *err, size_t err_len);

/* ---- perplexity over a token sequence --------------------------------------------- */

struct mp_eval_ppl_opts {
	uint32_t n_ctx;           /* chunk length (≥ 4; the model's cache must hold it) */
	int32_t bos;              /* first token of each chunk; −1: keep the text's */
	struct mp_eval_rec *rec;  /* NULL, or record every evaluated position */
	FILE *out;                /* running values "[1]x,[2]y," and the final line; NULL: quiet */
};

struct mp_eval_ppl_result {
	double ppl, err;          /* final perplexity and its standard error */
	uint64_t chunks, scored;  /* chunks run, tokens scored */
	uint64_t evaluated;       /* model steps */
	uint64_t ns;              /* time in the model steps */
};

/* Runs floor(n / n_ctx) chunks of ids through m (reset before each chunk).
 * Returns 0, -MP_EARG (fewer than n_ctx tokens; the sentence in err), or the
 * model's error (mp_model_error's sentence copied into err). */
int mp_eval_perplexity(struct mp_model *m, uint32_t n_vocab, const int32_t *ids, size_t n,
		       const struct mp_eval_ppl_opts *o, struct mp_eval_ppl_result *res,
		       char *err, size_t err_len);

/* Parses "1,2,3" (or the contents of @FILE: ids separated by commas or white
 * space) into a fresh mp_malloc'd array; every id must be < n_vocab.  Returns
 * the count (≥ 1) or -MP_EARG / -errno with the sentence in err. */
int mp_eval_parse_ids(const char *spec, uint32_t n_vocab, int32_t **ids, char *err,
		      size_t err_len);

/* ---- comparing two logit files ------------------------------------------------- */

struct mp_eval_cmp_opts {
	double margin;   /* a flip is excused where the reference's routing margin < margin */
	double tol;      /* largest allowed logit difference before the first flip */
};

/* File a is the reference.  Positions align by index; the inputs must agree
 * (same pos and token) or the comparison stops there.  A sequence starts at
 * each pos 0 (a perplexity chunk, a run) with an empty cache.  A routing flip
 * (some MoE layer chose a different set) changes everything after it in its
 * sequence, so the first flip of each sequence must be excused by a small
 * reference margin, and logit differences are held to tol only at positions
 * before their sequence's first flip; later ones are reported. */
struct mp_eval_cmp {
	uint64_t n_a, n_b;            /* positions in each file */
	uint64_t aligned;             /* positions compared */
	int64_t diverge;              /* first index whose inputs differ; −1: none */
	uint64_t seqs;                /* sequences among the aligned positions */
	uint64_t flips;               /* aligned positions with a routing flip */
	uint64_t seq_flips;           /* sequences with a flip (their first flips) */
	uint64_t unexcused;           /* first flips at a margin ≥ opts.margin (or unknown) */
	int64_t first_flip;           /* the first unexcused first flip, else the first flip; −1 */
	uint32_t first_flip_layer;    /* its lowest flipped layer */
	double first_flip_margin;     /* the reference's margin there; NaN: unknown */
	int first_flip_excused;       /* 1: margin < opts.margin */
	uint64_t clean;               /* positions before their sequence's first flip */
	double max_diff;              /* largest logit difference there */
	int64_t max_diff_at;          /* its index; −1: none */
	double max_diff_after;        /* the same at later positions without a flip */
	double mean_diff_all, max_diff_all; /* over all aligned positions, flips included */
	uint64_t argmax_diff;         /* clean positions whose argmax differs */
	uint64_t argmax_same;         /* aligned positions (all) whose argmax agrees */
	uint64_t paired;              /* aligned positions scored in both (perplexity runs) */
	double dlogp, dlogp_err;      /* mean log p_other − log p_ref of the target there,
					 and its standard error (paired: the same tokens) */
	int pass;                     /* 1: no unexcused flip, max_diff ≤ tol, aligned > 0 */
};

/* Loads and compares two files.  Returns 0 (result in *r, pass or not) or
 * -MP_EFORMAT / -errno with the sentence (file, field) in err. */
int mp_eval_compare(const char *path_a, const char *path_b, const struct mp_eval_cmp_opts *o,
		    struct mp_eval_cmp *r, char *err, size_t err_len);
/* The report: aligned positions, flips, largest differences, the verdict. */
void mp_eval_compare_print(FILE *out, const struct mp_eval_cmp *r, const struct mp_eval_cmp_opts *o);

/* ---- the moepager command's evaluation modes --------------------------------------- */

struct mp_tok;
struct mp_sampler;

struct mp_eval_cli {
	int perplexity;           /* --perplexity */
	const char *logits_out;   /* --logits-out FILE.json, or NULL */
	uint32_t logits_top;      /* --logits-top K */
	const char *force_tokens; /* --force-tokens IDS|@FILE, or NULL */
	const char *text;         /* the -p text or the -f file's contents */
	int raw;                  /* --raw: no chat template */
	int64_t n_predict;        /* tokens to sample when nothing is forced (−1: to EOS) */
	uint32_t n_ctx;           /* --ctx-size: the cache, and the perplexity chunk */
	const char *model_path;   /* for the JSON header */
	const char *settings;     /* for the JSON header */
};

/* Runs --perplexity, or a prompt followed by --force-tokens or by sampled
 * tokens, recording every position to --logits-out.  Prints results to
 * stdout and diagnostics to stderr.  Returns the exit status. */
int mp_eval_main(const struct mp_eval_cli *c, struct mp_model *m, const struct mp_hparams *hp,
		 struct mp_tok *tok, struct mp_sampler *s);

#endif
