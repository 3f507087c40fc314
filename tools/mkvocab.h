/*
 * mkvocab.h — the tokenizer that moepager-mkmodel embeds in a model: one
 * struct carrying what goes into the tokenizer.ggml.* keys (FORMATS.md §5.1),
 * whoever produced it.  The built-in source is a small byte-level BPE
 * vocabulary (256 byte tokens in GPT-2's byte-to-unicode encoding, merges
 * learned from a built-in English text, R1's special tokens); another loader
 * (a Hugging Face tokenizer.json) fills the same struct and mkmodel writes it
 * the same way.
 */
#ifndef MP_MKVOCAB_H
#define MP_MKVOCAB_H

#include <stdint.h>

struct mp_gguf_writer;

/* Token types of tokenizer.ggml.token_type. */
enum { MKV_NORMAL = 1, MKV_UNKNOWN = 2, MKV_CONTROL = 3, MKV_USER = 4, MKV_UNUSED = 5, MKV_BYTE = 6 };

struct mp_mkvocab {
	uint64_t n_tokens;         /* = the model's vocab_size */
	char **tokens;             /* n_tokens UTF-8 strings, byte-level encoded */
	int32_t *types;            /* n_tokens, MKV_* */
	uint64_t n_merges;
	char **merges;             /* n_merges "A B" strings, rank order */
	uint32_t bos, eos, pad;    /* token ids */
	const char *model;         /* tokenizer.ggml.model: "gpt2" */
	const char *pre;           /* tokenizer.ggml.pre: "deepseek-v3" */
	const char *chat_template; /* NULL: no tokenizer.chat_template key */
};

/* Builds the built-in vocabulary of exactly n_tokens entries (>= 300): R1's
 * special tokens (at R1's ids when n_tokens is R1's 129280, else at the ends),
 * the 256 bytes, as many learned merges as fit and the text allows, the rest
 * [PAD<id>] placeholders of type UNUSED.  Returns 0 or -ENOMEM / -MP_EARG. */
int mp_mkvocab_builtin(uint64_t n_tokens, struct mp_mkvocab *out);

void mp_mkvocab_free(struct mp_mkvocab *v);

/* The vocabulary of a Hugging Face tokenizer.json (src/hftok.h: token types
 * as llama.cpp's converter assigns them), padded with [PAD<id>] entries to at
 * least n_tokens_min.  Returns 0, or an error with the sentence in err. */
int mp_mkvocab_from_json(const char *path, uint64_t n_tokens_min, struct mp_mkvocab *out,
			 char *err, size_t err_len);

/* Writes the tokenizer.* keys (and the R1 chat template when set). */
int mp_mkvocab_write(struct mp_gguf_writer *w, const struct mp_mkvocab *v);

/* R1's chat template (Jinja), as in the HF repo (FORMATS.md §5.8). */
extern const char mp_mkvocab_r1_template[];

#endif
