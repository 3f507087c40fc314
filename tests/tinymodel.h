/*
 * tinymodel.h — random deepseek2 models held in memory for tests: D 128,
 * 4 heads, q_lora 64 (or none), kv_lora 64, nope 32, rope 32, v 32, dense ff
 * 128, expert ff 64, 8 experts top-2 in 4 groups keep 2 (or softmax, no
 * groups), 1 shared, vocab 96, 3 layers (1 dense).  All matrix widths are
 * multiples of 32 so any 32-block type works.
 */
#ifndef MP_TINYMODEL_H
#define MP_TINYMODEL_H

#include <stdint.h>

#include "model.h"

struct test_model {
	struct mp_hparams hp;
	struct mp_weights *w;
	void *bufs[MP_MODEL_MAX_LAYERS * 32];
	int nbufs;
};

/* wtype: type of every matrix (norms, router and bias stay F32). */
void tiny_build(struct test_model *tm, uint32_t wtype, int mla_new, int q_lora, int softmax,
		uint64_t seed);
/* The same with n_head heads instead of 4. */
void tiny_build_heads(struct test_model *tm, uint32_t wtype, int mla_new, int q_lora, int softmax,
		      uint64_t seed, uint32_t n_head);
void tiny_drop(struct test_model *tm);

/* Writes tm as a GGUF deepseek2 file with R1's key names (no tokenizer).
 * Returns 0 or a negative error with the message in err. */
int tiny_write_gguf(const struct test_model *tm, const char *path, char *err, size_t err_len);

/* Index of the largest of v[0..n) (the first on ties). */
int tiny_argmax(const float *v, int n);

#endif
