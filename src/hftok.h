/*
 * hftok.h — reads a Hugging Face tokenizer.json (byte-level BPE) into the
 * in-memory vocabulary src/tokenizer.h builds from, the way llama.cpp's
 * convert_hf_to_gguf.py fills the tokenizer.ggml.* keys:
 *
 *   - ids from model.vocab, then added_tokens (which win on a clash);
 *   - token types: added tokens marked special, or looking special
 *     ("<|...|>", "<｜...｜>"), are CONTROL; other added tokens USER_DEFINED;
 *     the rest NORMAL; ids below n_vocab_min that nobody defines become
 *     "[PAD<id>]" of type UNUSED (the padded tail of R1's 129280 vocabulary);
 *   - merges in either format ("a b" strings or ["a", "b"] pairs) as "a b";
 *   - pre = "deepseek-v3" when pre_tokenizer is exactly that Split sequence,
 *     else "hf-unrecognized" (mp_tok_create then refuses it by name);
 *   - BOS/EOS = <｜begin▁of▁sentence｜>/<｜end▁of▁sentence｜> when present,
 *     add_bos = 1 with a BOS, add_eos = 0 (the R1 values).  The caller may
 *     change any field of the vocabulary before creating a tokenizer.
 *
 * Parsing uses jansson.  Not read: the normalizer (empty for DeepSeek), the
 * post-processor, the chat template (in tokenizer_config.json).
 */
#ifndef MP_HFTOK_H
#define MP_HFTOK_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

struct mp_hftok;

/* Loads the file at path.  n_vocab_min pads the vocabulary to at least that
 * many ids (0: no padding).  On failure returns -errno / -MP_EFORMAT /
 * -ENOMEM, leaves *out NULL and writes the sentence (file, field, expected,
 * found) into err[errlen]. */
int mp_hftok_load(const char *path, uint32_t n_vocab_min, struct mp_hftok **out,
		  char *err, size_t errlen);
/* The same from memory; name is used in messages. */
int mp_hftok_load_mem(const char *buf, size_t len, const char *name, uint32_t n_vocab_min,
		      struct mp_hftok **out, char *err, size_t errlen);
/* The vocabulary; it and its strings live until mp_hftok_destroy. */
struct mp_tok_vocab *mp_hftok_vocab(struct mp_hftok *h);
void mp_hftok_destroy(struct mp_hftok *h);   /* NULL is fine */

#endif
