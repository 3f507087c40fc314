/*
 * loader.h — turns an opened GGUF file into what the forward pass needs:
 * interpreted deepseek2 hyperparameters (FORMATS.md §3.1-3.2, decided by the
 * metadata and by tensor presence, never by the file name) and tensor views
 * whose data pointers lie in a mapping of the files.
 *
 * Today every part is mapped read-only and the weights point into the
 * mappings (models that fit in memory).  The pager path registers routed
 * experts as byte ranges instead (mp_loader_expert_ranges) and reads only the
 * resident tensors.
 */
#ifndef MP_LOADER_H
#define MP_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"

/* Reads and checks the hyperparameters.  Returns 0, or -MP_EFORMAT /
 * -MP_ENOTFOUND / -MP_EUNAVAIL with a sentence naming the key in err. */
int mp_loader_hparams(struct mp_gguf *g, struct mp_hparams *hp, char *err, size_t err_len);

/* Fills w with views of every tensor the forward pass uses; data pointers are
 * base[part] + offset (base: one mapping per part, or NULL to leave data NULL
 * and only record shapes).  Tensors the architecture does not have stay
 * absent (data NULL, type 0); the model's shape checks name what is missing. */
int mp_loader_weights(struct mp_gguf *g, const struct mp_hparams *hp, const uint8_t *const *base,
		      struct mp_weights *w, char *err, size_t err_len);

/* Builds the tokenizer from the tokenizer.ggml.* keys (FORMATS.md §5.1).
 * Returns 0 and *out, or an error naming the key in err. */
struct mp_tok;
int mp_loader_tokenizer(struct mp_gguf *g, struct mp_tok **out, char *err, size_t err_len);

/* XXH3-64 fingerprint of the model's header and tensor table (metadata keys
 * and types, tensor names, types, shapes and offsets): keys the usage profile
 * and the stats segment.  Never touches tensor data. */
uint64_t mp_loader_fingerprint(const struct mp_gguf *g);

/* Bytes of the routed-expert tensors (*_exps) and of everything else. */
void mp_loader_bytes(const struct mp_gguf *g, uint64_t *routed, uint64_t *resident);

/* A model file opened and mapped whole. */
struct mp_modelfile;

int mp_modelfile_open(const char *path, struct mp_modelfile **out, char *err, size_t err_len);
void mp_modelfile_close(struct mp_modelfile *mf);
struct mp_gguf *mp_modelfile_gguf(struct mp_modelfile *mf);
const struct mp_hparams *mp_modelfile_hparams(const struct mp_modelfile *mf);
const struct mp_weights *mp_modelfile_weights(const struct mp_modelfile *mf);

#endif
