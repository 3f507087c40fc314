/*
 * sampler.h — picks the next token from the logits with llama.cpp's
 * semantics (FORMATS.md §6): repeat/frequency/presence penalties over the
 * last tokens, then top-k, top-p, min-p, temperature, and a draw from a
 * seeded PRNG (src/core/rng.h), in that order.  Temperature <= 0 is greedy.
 *
 * Deterministic: the same parameters, seed, accepted tokens and logits give
 * the same choices.  Not thread-safe: one sampler per generation stream.
 * Not here: DRY, XTC, typical-p, grammars, mirostat.
 */
#ifndef MP_SAMPLER_H
#define MP_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct mp_sampler_params {
	float temperature;       /* > 0 scales logits; <= 0 greedy (argmax) */
	int32_t top_k;           /* keep the k largest; <= 0 off */
	float top_p;             /* nucleus mass in (0, 1]; 1 off */
	float min_p;             /* keep p >= min_p * p_max; 0 off; in [0, 1] */
	float repeat_penalty;    /* 1 off; > 0 */
	float freq_penalty;      /* subtracted count times; 0 off */
	float presence_penalty;  /* subtracted once if seen; 0 off */
	int32_t penalty_last_n;  /* tokens of history the penalties look at; 0 off */
	uint64_t seed;           /* PRNG seed */
};

/* The DeepSeek-R1 recommendation (model card, FORMATS.md §6.2): temperature
 * 0.6, top-p 0.95, min-p 0.01, top-k off, no penalties (last_n 64), seed 0. */
void mp_sampler_params_r1(struct mp_sampler_params *p);
/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05. */
void mp_sampler_params_llama(struct mp_sampler_params *p);

struct mp_sampler;

/* A sampler for logits of n_vocab entries.  Bad parameters give -MP_EARG and
 * a sentence naming the parameter in err[errlen]; *out stays NULL. */
int mp_sampler_create(const struct mp_sampler_params *p, uint32_t n_vocab,
		      struct mp_sampler **out, char *err, size_t errlen);
void mp_sampler_destroy(struct mp_sampler *s);   /* NULL is fine */

/* Records a token in the penalty history (prompt tokens and generated ones;
 * mp_sampler_sample does not record what it returns). */
void mp_sampler_accept(struct mp_sampler *s, int32_t id);
/* Forgets the history and reseeds the PRNG with seed. */
void mp_sampler_reset(struct mp_sampler *s, uint64_t seed);

/* Never choose token id (its logit counts as -inf: --ignore-eos bans the end
 * of text, as llama.cpp's flag does); -1 or an id out of range lifts it. */
void mp_sampler_ban(struct mp_sampler *s, int32_t id);

/* The next token for logits[n_vocab] (not modified): the chain above, then a
 * draw.  Ties go to the lower id.  Returns the id (>= 0). */
int32_t mp_sampler_sample(struct mp_sampler *s, const float *logits);

/* The distribution the draw would use: after penalties and filters, the
 * surviving candidates and their probabilities (after temperature; greedy:
 * the argmax with 1), sorted by probability descending.  Returns how many
 * survive and writes the first min(n, cap).  Consumes no randomness. */
size_t mp_sampler_probs(struct mp_sampler *s, const float *logits, int32_t *ids, float *probs,
			size_t cap);

#endif
