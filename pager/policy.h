/*
 * policy.h — which resident expert to evict: the pager's eviction policies.
 *
 * The pager talks to a policy through two calls (the "hook"):
 *   mp_policy_on_access(p, layer, experts, n)  once per (token, layer) acquire,
 *       with the token's whole expert set in the router's output order, before
 *       the acquire makes room for its missing experts;
 *   mp_policy_keep_score(p, layer, expert)     how much keeping this expert is
 *       worth; the pager evicts the lowest among the experts it may evict
 *       (never those of the current set), ties to the lower layer, then the
 *       lower expert id.
 * plus mp_policy_on_sequence() at the start of a new, unrelated sequence when
 * the caller wants "cold" semantics (forget per-sequence history, keep what
 * was learned).  Scores of one layer change only in on_access() of that layer
 * (a global pool may cache each layer's minimum).  A policy is not
 * thread-safe: the pager serialises the calls.
 *
 * Policies:
 *   lru      — score = time of last use.
 *   lfu      — score = uses since the sequence started (no decay).
 *   moepager — score = estimated probability that the expert is used within
 *              the next `horizon` tokens of its layer, from an online logistic
 *              model over the expert's decayed use frequencies (three time
 *              scales), transitions from the current set, transitions from the
 *              layer below's set at this token, and a per-expert bias.  It
 *              learns from history only, one SGD step per token and layer when
 *              the outcome of a prediction made `horizon` tokens ago is known.
 *              Deterministic (no randomness at all).  docs/policy.md.
 *   belady   — the clairvoyant optimum (evict the one used farthest in the
 *              future): a simulator helper built from a trace, not usable at
 *              run time.
 */
#ifndef MP_POLICY_H
#define MP_POLICY_H

#include <stdint.h>

struct mp_trace;

enum mp_policy_kind {
	MP_POLICY_LRU,
	MP_POLICY_LFU,
	MP_POLICY_MOEPAGER,
	MP_POLICY_BELADY,
	MP_POLICY_COUNT
};

#define MP_POLICY_MAX_HORIZON 32u

/* Knobs of the moepager policy (mp_policy_params_default() gives the tuned
 * values; docs/policy.md says how they were chosen). */
struct mp_policy_params {
	uint32_t horizon;       /* tokens: score = P(use within the next horizon), 1..32 */
	float learn_rate;       /* SGD step of the logistic model, > 0 */
	float feature_rate;     /* step multiplier for the frequency features' weights */
	float decay[3];         /* per-token decay of the three use frequencies, 0..1 */
	int cross_layer;        /* 1: also learn from the layer below's set */
};

void mp_policy_params_default(struct mp_policy_params *out);

/* "lru", "lfu", "moepager", "belady". */
const char *mp_policy_name(enum mp_policy_kind kind);
/* Returns 0 and *out, or -MP_EARG for an unknown name. */
int mp_policy_parse(const char *name, enum mp_policy_kind *out);

struct mp_policy;   /* opaque */

/* A run-time policy (lru, lfu, moepager) for layers × experts with top_k
 * experts per acquire; params NULL means the defaults (used by moepager
 * only).  Returns 0 and *out, -MP_EARG (belady, or bad sizes or params),
 * or -ENOMEM. */
int mp_policy_create(enum mp_policy_kind kind, uint32_t layers, uint32_t experts, uint32_t top_k,
                     const struct mp_policy_params *params, struct mp_policy **out);

/* Belady's policy for replaying sequences [first_seq, first_seq + n_seq) of
 * trace, in order and whole: on_access() must be given exactly the trace's
 * sets, token by token, layer by layer.  cold: the future ends with each
 * sequence.  Returns 0 and *out, -MP_EARG (bad range) or -ENOMEM. */
int mp_policy_create_belady(const struct mp_trace *trace, uint64_t first_seq, uint64_t n_seq,
                            int cold, struct mp_policy **out);

/* Belady only: sees only the next `tokens` tokens of each layer (0: the
 * whole future, the default).  An expert whose next use lies within them
 * keeps Belady's score; every other one scores below all of those, ordered
 * by its last use (LRU).  Measures what a predictor of the next few tokens
 * could be worth (docs/policy.md).  Call before the first on_access. */
void mp_policy_belady_lookahead(struct mp_policy *p, uint32_t tokens);

/* Accepts NULL. */
void mp_policy_destroy(struct mp_policy *p);

enum mp_policy_kind mp_policy_kind(const struct mp_policy *p);

/* The hook (see the top of this file).  pre: layer < layers, expert <
 * experts, n <= top_k, experts[] distinct. */
void mp_policy_on_access(struct mp_policy *p, uint32_t layer, const uint32_t *experts, uint32_t n);
double mp_policy_keep_score(const struct mp_policy *p, uint32_t layer, uint32_t expert);
/* keep_score of n experts of one layer at once into out[] (one call per
 * eviction round rather than one per candidate). */
void mp_policy_keep_scores(const struct mp_policy *p, uint32_t layer, const uint32_t *experts,
                           uint32_t n, double *out);

/* A hint from prediction (router look-ahead): the probability, 0..1, that
 * expert is used at layer's next token.  Until layer's next on_access() the
 * moepager policy keeps the expert at least that much:
 * keep_score = max(model, hint).  lru, lfu and belady ignore hints.  Not
 * measured by the simulator (traces carry no hidden states). */
void mp_policy_hint(struct mp_policy *p, uint32_t layer, uint32_t expert, double prob);

/* A new, unrelated sequence begins and the caller wants cold-start
 * semantics: recency, frequencies and LFU counts are forgotten; what the
 * moepager policy learned (its model weights) is kept. */
void mp_policy_on_sequence(struct mp_policy *p);

/* The moepager model (what it learned, not its history) as a file, so that a
 * new process starts where the last one stopped (the usage profile keeps
 * it).  Little-endian: "MPPOLICY", u32 version 1, u32 layers, experts, top_k,
 * horizon, cross_layer, f32 decay[3], zero padding to 64 bytes; then per
 * layer f32 a[3], b[experts], W[experts][experts], and V likewise when
 * cross_layer.  Load requires the same shape, horizon, cross_layer and
 * decays.  Return 0, -errno, -MP_EARG (not a moepager policy) or
 * -MP_EFORMAT, with the sentence in mp_policy_error(p). */
int mp_policy_save(struct mp_policy *p, const char *path);
int mp_policy_load(struct mp_policy *p, const char *path);
/* The last save/load error's sentence, "" when none.  Never NULL. */
const char *mp_policy_error(const struct mp_policy *p);

/* Belady only: 1 when on_access() was given sets that differ from the trace
 * (its scores are meaningless then), else 0. */
int mp_policy_desynced(const struct mp_policy *p);

#endif
