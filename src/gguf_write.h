/*
 * gguf_write.h — a streaming GGUF v3 writer (used by moepager-mkmodel and the
 * tests).  Layout as llama.cpp writes it (FORMATS.md §1.1): metadata, tensor
 * infos, zero padding to the alignment, then the tensors in info order, each
 * padded with zeros to the alignment.  Tensor data is streamed: the caller
 * writes each tensor's bytes in pieces, in the order the tensors were added,
 * so nothing larger than a piece is ever held in memory.
 *
 * Split sets as gguf-split writes them (FORMATS.md §1.5): parts named
 * <prefix>-0000N-of-0000M.gguf, every part with split.no (u16), split.count
 * (u16) and split.tensors.count (i32), the model metadata in part 1 only, a
 * new part started when the next tensor would take the current part's data
 * over the size limit (a tensor is never divided).
 *
 * Use: create, set keys, add every tensor, begin, write all data, finish.
 * Errors are sticky: the first failure is kept (mp_gguf_writer_error()) and
 * returned again by every later call, so callers may check only finish().
 */
#ifndef MP_GGUF_WRITE_H
#define MP_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

struct mp_gguf_writer;

struct mp_gguf_write_opts {
	uint32_t alignment;        /* bytes; 0 = 32 (written as general.alignment only if not 32) */
	uint64_t split_max_bytes;  /* 0 = no size limit */
	uint32_t split_max_tensors;/* 0 = no count limit */
	int split;                 /* nonzero: write split-set names and keys even for one part */
};

/* path: the file to write, or, when splitting, a name whose ".gguf" suffix is
 * dropped to form the prefix.  opts may be NULL. */
int mp_gguf_writer_create(const char *path, const struct mp_gguf_write_opts *opts,
			  struct mp_gguf_writer **out);
void mp_gguf_writer_destroy(struct mp_gguf_writer *w);   /* NULL fine; leaves files */

/* Metadata (before begin), in the order given. */
int mp_gguf_writer_set_u32(struct mp_gguf_writer *w, const char *key, uint32_t v);
int mp_gguf_writer_set_i32(struct mp_gguf_writer *w, const char *key, int32_t v);
int mp_gguf_writer_set_u64(struct mp_gguf_writer *w, const char *key, uint64_t v);
int mp_gguf_writer_set_f32(struct mp_gguf_writer *w, const char *key, float v);
int mp_gguf_writer_set_bool(struct mp_gguf_writer *w, const char *key, int v);
int mp_gguf_writer_set_str(struct mp_gguf_writer *w, const char *key, const char *v);
/* A numeric array of n elements of vtype (enum mp_gguf_vtype), packed. */
int mp_gguf_writer_set_array(struct mp_gguf_writer *w, const char *key, uint32_t vtype,
			     const void *data, uint64_t n);
int mp_gguf_writer_set_str_array(struct mp_gguf_writer *w, const char *key,
				 const char *const *strs, uint64_t n);
/* Any value: type byte and encoded value bytes as they go into the file (for
 * arrays of arrays and other shapes the typed setters do not cover). */
int mp_gguf_writer_set_raw(struct mp_gguf_writer *w, const char *key, uint32_t vtype,
			   const void *bytes, size_t len);

/* Tensors (before begin), in the order their data will be written. */
int mp_gguf_writer_add_tensor(struct mp_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const uint64_t *ne);

/* Assigns tensors to parts and writes the first header. */
int mp_gguf_writer_begin(struct mp_gguf_writer *w);
/* Appends len bytes to the data of the current tensor (and moves to the next
 * one when it is complete). */
int mp_gguf_writer_write(struct mp_gguf_writer *w, const void *data, size_t len);
/* The same as write() of len zero bytes, but leaves a hole in the file
 * (sparse files: no disk blocks; reads return zeros). */
int mp_gguf_writer_skip(struct mp_gguf_writer *w, uint64_t len);
/* Index and bytes left of the tensor that write() fills next (-1 when all done). */
int64_t mp_gguf_writer_current(const struct mp_gguf_writer *w, uint64_t *left);
/* Checks that every tensor was written completely and closes the files. */
int mp_gguf_writer_finish(struct mp_gguf_writer *w);

const char *mp_gguf_writer_error(const struct mp_gguf_writer *w);
uint32_t mp_gguf_writer_part_count(const struct mp_gguf_writer *w);  /* after begin */
const char *mp_gguf_writer_part_path(const struct mp_gguf_writer *w, uint32_t part);
uint64_t mp_gguf_writer_bytes(const struct mp_gguf_writer *w);       /* written so far */

#endif
