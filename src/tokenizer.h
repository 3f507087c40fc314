/*
 * tokenizer.h — byte-level BPE as llama.cpp runs it for `tokenizer.ggml.model
 * = gpt2` vocabularies, with the deepseek-v3 pre-tokenizer (FORMATS.md §5).
 *
 * The tokenizer is built from an in-memory vocabulary (struct mp_tok_vocab):
 * token strings indexed by id, their GGUF token types, the merges in rank
 * order, BOS/EOS and the pre-tokenizer name.  The GGUF reader fills it from
 * the tokenizer.ggml.* keys (strings may point into the mapping: they are
 * length-delimited and copied by mp_tok_create); src/hftok.h fills it from a
 * Hugging Face tokenizer.json.
 *
 * Encoding: control (type 3, only with MP_TOK_PARSE_SPECIAL) and user-defined
 * (type 4, always, as llama.cpp does) tokens are cut out of the text first,
 * leftmost-longest; the text between them is pre-tokenized, byte-level
 * encoded and merged by rank.  Decoding maps tokens back to bytes; the stream
 * decoder only ever emits complete, valid UTF-8.
 *
 * Not here: SentencePiece/WordPiece vocabularies, other pre-tokenizers
 * (an unknown tokenizer.ggml.pre is an error naming it), normalizers.
 * A created tokenizer is immutable: encode/decode may run on several threads.
 */
#ifndef MP_TOKENIZER_H
#define MP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* GGUF tokenizer.ggml.token_type values. */
enum mp_tok_type {
	MP_TOK_UNDEFINED = 0,
	MP_TOK_NORMAL = 1,
	MP_TOK_UNKNOWN = 2,
	MP_TOK_CONTROL = 3,
	MP_TOK_USER_DEFINED = 4,
	MP_TOK_UNUSED = 5,
	MP_TOK_BYTE = 6,
};

/* A length-delimited string (GGUF strings are not NUL-terminated). */
struct mp_tok_str {
	const char *s;   /* bytes; need not be NUL-terminated */
	uint32_t len;    /* bytes */
};

/* The vocabulary a tokenizer is made from; borrowed by mp_tok_create. */
struct mp_tok_vocab {
	uint32_t n_tokens;               /* vocabulary size; id = index */
	const struct mp_tok_str *tokens; /* [n_tokens]: byte-level encoded text
	                                    (special tokens: literal text) */
	const int32_t *types;            /* [n_tokens] enum mp_tok_type; NULL = all normal */
	uint32_t n_merges;
	const struct mp_tok_str *merges; /* [n_merges] "A B"; rank = index */
	const char *model;               /* tokenizer.ggml.model; NULL means "gpt2" */
	const char *pre;                 /* tokenizer.ggml.pre; NULL means "deepseek-v3" */
	int32_t bos_id;                  /* -1: none */
	int32_t eos_id;                  /* -1: none */
	int32_t add_bos;                 /* 0/1: tokenizer.ggml.add_bos_token */
	int32_t add_eos;                 /* 0/1: tokenizer.ggml.add_eos_token */
};

struct mp_tok;

/* Builds a tokenizer (copies what it needs from v).  On failure returns
 * -MP_EFORMAT / -MP_EARG / -ENOMEM, leaves *out NULL and writes the sentence
 * (key, value, what was expected) into err[errlen]. */
int mp_tok_create(const struct mp_tok_vocab *v, struct mp_tok **out, char *err, size_t errlen);
void mp_tok_destroy(struct mp_tok *t);   /* NULL is fine */

uint32_t mp_tok_n_vocab(const struct mp_tok *t);
int32_t mp_tok_bos(const struct mp_tok *t);   /* -1: none */
int32_t mp_tok_eos(const struct mp_tok *t);   /* -1: none */
/* Type of id (enum mp_tok_type); MP_TOK_UNDEFINED when id is out of range. */
int mp_tok_type(const struct mp_tok *t, int32_t id);
/* Id of the token whose stored string is exactly text[0..len), or -1.  For
 * special tokens that is their literal text ("<｜User｜>", "<think>"). */
int32_t mp_tok_find(const struct mp_tok *t, const char *text, size_t len);
/* Number of merges that became rules (merges whose halves or result are
 * missing from the vocabulary are dropped, as HF refuses them). */
uint32_t mp_tok_n_merges(const struct mp_tok *t);

/* Encode flags. */
#define MP_TOK_ADD_BOS       1u  /* prepend BOS if the vocabulary says add_bos (and
                                    append EOS if add_eos); never a second BOS when
                                    the text already starts with it */
#define MP_TOK_PARSE_SPECIAL 2u  /* match control tokens in the text (rendered chat
                                    prompts); without it only user-defined ones */

/* Tokenizes text[0..len) (any bytes; need not be valid UTF-8).  Returns the
 * number of tokens n (>= 0) and writes the first min(n, cap) ids; call again
 * with cap >= n when n > cap.  Errors: -ENOMEM, -MP_ENOTFOUND (a byte has no
 * token in this vocabulary), -MP_EARG (more than INT32_MAX tokens). */
int mp_tok_encode(const struct mp_tok *t, const char *text, size_t len, unsigned flags,
		  int32_t *ids, size_t cap);

/* The pre-tokenizer alone (no special tokens, no BPE), for tests and
 * debugging: returns the number of pieces text[0..len) splits into and
 * writes the first min(n, cap) piece end offsets (bytes) into ends. */
int mp_tok_pretokenize(const struct mp_tok *t, const char *text, size_t len,
		       uint32_t *ends, size_t cap);

/* Decode flags. */
#define MP_TOK_DECODE_SPECIAL 1u  /* also print control/unknown/unused tokens' text */

/* The bytes token id stands for (byte-level decoded; literal text for special
 * tokens), regardless of flags; NULL with *len = 0 for an id out of range.
 * May end or start inside a UTF-8 sequence. */
const char *mp_tok_piece(const struct mp_tok *t, int32_t id, size_t *len);

/* Decodes n ids into out[cap] as valid UTF-8 (malformed bytes become U+FFFD),
 * NUL-terminated when cap > 0.  Returns the full length (like snprintf). */
size_t mp_tok_decode(const struct mp_tok *t, const int32_t *ids, size_t n, unsigned flags,
		     char *out, size_t cap);

/* Streaming decoder: feed generated tokens one at a time; each push emits
 * only complete UTF-8 and holds back a trailing incomplete sequence until the
 * next token completes it (or flush replaces it by U+FFFD). */
struct mp_tok_stream {
	char pend[4];      /* bytes of an incomplete trailing UTF-8 sequence */
	uint32_t npend;    /* 0..3 */
	unsigned flags;    /* MP_TOK_DECODE_* */
};

void mp_tok_stream_init(struct mp_tok_stream *s, unsigned flags);
/* Size out must have for one push: 3 * (longest piece + 4). */
size_t mp_tok_stream_cap(const struct mp_tok *t);
/* Appends the printable bytes of id to out (cap >= mp_tok_stream_cap(t));
 * returns how many (no NUL).  Out-of-range ids print nothing. */
size_t mp_tok_stream_push(const struct mp_tok *t, struct mp_tok_stream *s, int32_t id,
			  char *out, size_t cap);
/* Emits U+FFFD for a held incomplete sequence (out needs 3 bytes); returns 0 or 3. */
size_t mp_tok_stream_flush(struct mp_tok_stream *s, char *out, size_t cap);

/* snprintf into err[errlen] (nothing when err is NULL or errlen 0): the
 * message writer of this module and src/hftok.c. */
void mp_tok_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The DeepSeek-R1 chat template (FORMATS.md §5.8) for plain chat. */
enum mp_tok_role { MP_TOK_SYSTEM, MP_TOK_USER, MP_TOK_ASSISTANT };

struct mp_tok_msg {
	enum mp_tok_role role;
	const char *content;   /* NUL-terminated UTF-8 */
};

/* Chat rendering flags. */
#define MP_TOK_CHAT_GEN_PROMPT 1u  /* end with "<｜Assistant｜>" */
#define MP_TOK_CHAT_THINK      2u  /* ... followed by "<think>\n" (current R1 template) */

/* Renders msgs as the R1 template does: BOS, system prompts joined by "\n\n",
 * "<｜User｜>"+content, "<｜Assistant｜>"+content-after-last-</think>+EOS.  On
 * success *out is a mp_malloc'd NUL-terminated string (mp_free it) and the
 * return is its length; -ENOMEM or -MP_EARG (bad role, NULL content). */
int64_t mp_tok_chat_render(const struct mp_tok_msg *msgs, size_t n, unsigned flags, char **out);

#endif
