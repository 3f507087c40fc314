/*
 * loader.h — turns an opened GGUF file into what the forward pass needs:
 * interpreted deepseek2 hyperparameters (FORMATS.md §3.1-3.2, decided by the
 * metadata and by tensor presence, never by the file name) and tensor views
 * whose data pointers lie in a mapping of the files.
 *
 * mp_modelfile_open maps every part read-only (mp_modelfile_open_partial and
 * mp_modelfile_map: only the parts of a layer range, several ranks) and points the weights into
 * the mappings (models that fit in memory).  With the pager, the routed
 * experts are registered as byte ranges (src/experts.c) and
 * mp_modelfile_load_resident reads every other tensor once into anonymous
 * memory, so the mapping is used for nothing but the experts.
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
/* 1 when the tensor named so is a routed-expert tensor (blk.N.ffn_*_exps.weight). */
int mp_loader_is_routed(const char *name);
/* Resident tensors are read in whole aligned spans (O_DIRECT): the bytes of
 * anonymous memory a tensor at offset of nbytes takes (the plan counts it). */
#define MP_LOADER_ALIGN 4096u
uint64_t mp_loader_resident_span(uint64_t offset, uint64_t nbytes);

/* A model file opened and mapped whole. */
struct mp_modelfile;

int mp_modelfile_open(const char *path, struct mp_modelfile **out, char *err, size_t err_len);
/* Several ranks (src/dist.h): opens the headers only — split parts that are
 * not on this host are absent (mp_gguf_open_partial) — and maps nothing;
 * mp_modelfile_map then maps only the parts holding tensors of layers
 * [l0, l1) (and of the embeddings and head when io), and points the weights
 * at them.  Tensors in parts not mapped stay absent (data NULL). */
int mp_modelfile_open_partial(const char *path, struct mp_modelfile **out, char *err, size_t err_len);
int mp_modelfile_map(struct mp_modelfile *mf, uint32_t l0, uint32_t l1, int io, char *err,
		     size_t err_len);
int mp_modelfile_part_mapped(const struct mp_modelfile *mf, uint32_t part);   /* 1: mapped */
void mp_modelfile_close(struct mp_modelfile *mf);
struct mp_gguf *mp_modelfile_gguf(struct mp_modelfile *mf);
const struct mp_hparams *mp_modelfile_hparams(const struct mp_modelfile *mf);
const struct mp_weights *mp_modelfile_weights(const struct mp_modelfile *mf);

/* Reads every tensor that is not a routed expert (attention, dense and
 * shared FFN, routers, embeddings, head) once into anonymous memory and points
 * the weights at it: large aligned O_DIRECT reads (buffered, with the pages
 * dropped from the page cache, where the file system refuses O_DIRECT),
 * MADV_HUGEPAGE on the region, optionally mlock()ed.  From then on the model
 * never touches the file mapping for them, so memory pressure cannot turn them
 * into page faults mid-token.  Routed experts keep their mapping. */
struct mp_load_opts {
	int progress;              /* 1: a progress line on stderr (a terminal) */
	int mlock;                 /* 1: pin the region (refusal reported, not fatal) */
	int buffered;              /* 1: never O_DIRECT (tests; reported like a refusal) */
	/* Several ranks (src/dist.h): only layers [layer_begin, layer_end) are
	 * loaded, and the embeddings, output norm and head only when !no_io;
	 * the rest stays mapped and untouched.  layer_end 0: every layer. */
	uint32_t layer_begin, layer_end;
	int no_io;
};
struct mp_load_report {
	uint64_t bytes;            /* tensor bytes loaded */
	uint64_t read_bytes;       /* bytes read from the files (aligned spans) */
	uint64_t region_bytes;     /* anonymous memory mapped for them */
	double seconds;            /* wall time of the reads */
	int buffered;              /* 1: O_DIRECT was refused for some part (buffered reads) */
	int hugepages;             /* 1: MADV_HUGEPAGE accepted */
	int locked;                /* 1: mlock succeeded */
	int lock_errno;            /* why mlock failed (0: not asked or locked) */
};
int mp_modelfile_load_resident(struct mp_modelfile *mf, const struct mp_load_opts *o,
			       struct mp_load_report *r, char *err, size_t err_len);

#endif
