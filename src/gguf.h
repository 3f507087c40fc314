/*
 * gguf.h — the GGUF reader (FORMATS.md §1): header, metadata of every value
 * type (arrays of arrays too), tensor infos, alignment, data offsets, and split
 * sets (<prefix>-0000N-of-0000M.gguf).  Opening parses the header and tensor
 * infos of every part through bounded reads and never touches tensor data; the
 * pager and the tools read the data themselves through the byte ranges given
 * here.
 *
 * Not here: what a deepseek2 model needs (required keys, shapes): that is the
 * model loader's job, built on the typed getters below.
 *
 * Errors: mp_gguf_open() writes the sentence (file, field, what was wrong) into
 * the caller's buffer; later failures (a missing key, a key of the wrong type,
 * an unknown tensor) are kept in the handle, read with mp_gguf_error().
 */
#ifndef MP_GGUF_H
#define MP_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types: these numbers are part of the file format. */
enum mp_gguf_vtype {
	MP_GGUF_U8 = 0,
	MP_GGUF_I8 = 1,
	MP_GGUF_U16 = 2,
	MP_GGUF_I16 = 3,
	MP_GGUF_U32 = 4,
	MP_GGUF_I32 = 5,
	MP_GGUF_F32 = 6,
	MP_GGUF_BOOL = 7,
	MP_GGUF_STRING = 8,
	MP_GGUF_ARRAY = 9,
	MP_GGUF_U64 = 10,
	MP_GGUF_I64 = 11,
	MP_GGUF_F64 = 12,
	MP_GGUF_VTYPE_COUNT = 13
};

#define MP_GGUF_MAGIC 0x46554747u     /* "GGUF" as a little-endian u32 */
#define MP_GGUF_DEFAULT_ALIGN 32u
#define MP_GGUF_MAX_DIMS 4
#define MP_GGUF_MAX_NAME 63           /* tensor name bytes (GGML_MAX_NAME - 1) */
#define MP_GGUF_MAX_PARTS 9999        /* split.count limit we accept */
#define MP_GGUF_ERR_LEN 512           /* enough for any message we write */

struct mp_gguf;

/* One tensor as the file describes it.  Fixed at open. */
struct mp_gguf_tensor {
	const char *name;       /* NUL-terminated, < 64 bytes */
	uint32_t part;          /* split part index, 0-based */
	uint32_t type;          /* GGUF type id (enum mp_type) */
	uint32_t n_dims;        /* 0..4 as written; ne[] beyond it are 1 */
	uint64_t ne[MP_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] contiguous */
	uint64_t row_bytes;     /* bytes of one ne[0] row */
	uint64_t offset;        /* bytes: absolute position in the part's file */
	uint64_t nbytes;        /* bytes of data */
};

/* A byte range of one part file (what the pager registers per expert). */
struct mp_gguf_range {
	uint32_t part;          /* split part index */
	uint64_t offset;        /* bytes: absolute position in that file */
	uint64_t len;           /* bytes */
};

/* Which matrix of a routed expert. */
enum mp_gguf_expert_mat { MP_GGUF_EXP_GATE = 0, MP_GGUF_EXP_UP = 1, MP_GGUF_EXP_DOWN = 2 };

/* A metadata array as stored: numbers packed in native (little-endian) form;
 * strings through mp_gguf_array_str(); nested arrays through
 * mp_gguf_array_sub().  Valid as long as the handle. */
struct mp_gguf_array {
	uint32_t type;          /* element type (enum mp_gguf_vtype) */
	uint64_t n;             /* element count */
	const void *data;       /* numeric: n packed elements; else internal */
};

/* Opens the file at path.  When its name is part 1 of a split set
 * (…-00001-of-0000M.gguf) the other parts are found by name and checked:
 * split.count, split.no, split.tensors.count, every tensor in exactly one part.
 * Returns 0 and *out, or -errno / -MP_EFORMAT / -MP_EVERSION / -MP_ETYPE /
 * -MP_ENOTFOUND with the reason in err (file, field, what was wrong). */
int mp_gguf_open(const char *path, struct mp_gguf **out, char *err, size_t errlen);

/* As mp_gguf_open, but split parts other than the first that are not there
 * (ENOENT, EACCES) are recorded as absent instead of failing: several ranks on
 * several hosts, each holding the first part and its own (src/dist.h).  An
 * absent part has size 0 and no tensors; the tensor count check is skipped. */
int mp_gguf_open_partial(const char *path, struct mp_gguf **out, char *err, size_t errlen);

/* The same parser over a memory image (fuzzing, tests); name is used in
 * messages.  No split handling: a multi-part header is read as one file. */
int mp_gguf_open_mem(const void *buf, size_t len, const char *name,
		     struct mp_gguf **out, char *err, size_t errlen);

void mp_gguf_destroy(struct mp_gguf *g);        /* NULL is fine */

/* The last getter/lookup failure: "file: key 'x' is missing" etc. */
const char *mp_gguf_error(const struct mp_gguf *g);

/* Files. */
uint32_t mp_gguf_version(const struct mp_gguf *g);
uint32_t mp_gguf_alignment(const struct mp_gguf *g);            /* of part 0 */
uint32_t mp_gguf_part_count(const struct mp_gguf *g);
const char *mp_gguf_part_path(const struct mp_gguf *g, uint32_t part);
uint64_t mp_gguf_part_size(const struct mp_gguf *g, uint32_t part);  /* bytes */
int mp_gguf_part_present(const struct mp_gguf *g, uint32_t part);   /* 0: absent (partial open) */
uint32_t mp_gguf_parts_absent(const struct mp_gguf *g);              /* how many */
uint64_t mp_gguf_data_start(const struct mp_gguf *g, uint32_t part); /* bytes */

/* Metadata of part 0 (where llama.cpp keeps all model keys). */
uint64_t mp_gguf_kv_count(const struct mp_gguf *g);
const char *mp_gguf_kv_key(const struct mp_gguf *g, uint64_t i);
uint32_t mp_gguf_kv_type(const struct mp_gguf *g, uint64_t i);  /* vtype */
/* A short human form of value i ("u32 61", "array[129280] of string"). */
void mp_gguf_kv_format(const struct mp_gguf *g, uint64_t i, char *buf, size_t len);
int mp_gguf_has(const struct mp_gguf *g, const char *key);      /* 1 or 0 */

/* Typed getters.  Any integer type is accepted and range-checked for the
 * integer getters (files differ: FORMATS.md §1.2), either float type for
 * get_f32.  Return 0 and *out, or -MP_ENOTFOUND / -MP_ETYPE with the message
 * in mp_gguf_error(); *out is untouched on failure. */
int mp_gguf_get_u32(struct mp_gguf *g, const char *key, uint32_t *out);
int mp_gguf_get_u64(struct mp_gguf *g, const char *key, uint64_t *out);
int mp_gguf_get_i64(struct mp_gguf *g, const char *key, int64_t *out);
int mp_gguf_get_f32(struct mp_gguf *g, const char *key, float *out);
int mp_gguf_get_bool(struct mp_gguf *g, const char *key, int *out);
int mp_gguf_get_str(struct mp_gguf *g, const char *key, const char **out);
/* elem_type: the element type wanted, or -1 for any. */
int mp_gguf_get_array(struct mp_gguf *g, const char *key, int elem_type,
		      struct mp_gguf_array *out);
/* String element i (NUL-terminated; *len = bytes without the NUL when len). */
const char *mp_gguf_array_str(const struct mp_gguf_array *a, uint64_t i, uint64_t *len);
/* Nested array element i of an array of arrays. */
int mp_gguf_array_sub(const struct mp_gguf_array *a, uint64_t i, struct mp_gguf_array *out);

/* Tensors over all parts, in file order (part 0 first). */
uint64_t mp_gguf_tensor_count(const struct mp_gguf *g);
const struct mp_gguf_tensor *mp_gguf_tensor_at(const struct mp_gguf *g, uint64_t i);
/* By name; NULL (and the message) when absent. */
const struct mp_gguf_tensor *mp_gguf_find_tensor(struct mp_gguf *g, const char *name);

/* The byte range of one routed expert's matrix: blk.<layer>.ffn_<which>_exps
 * .weight, slice <expert> along ne[2] (FORMATS.md §2.9, §3.5).  Returns 0,
 * -MP_ENOTFOUND (no such tensor or expert) or -MP_EFORMAT (not 3-D). */
int mp_gguf_expert_range(struct mp_gguf *g, uint32_t layer, uint32_t expert,
			 enum mp_gguf_expert_mat which, struct mp_gguf_range *out);

/* "gate", "up", "down". */
const char *mp_gguf_expert_mat_name(enum mp_gguf_expert_mat which);

/* Name of a value type ("u32", "string", …; "invalid" out of range). */
const char *mp_gguf_vtype_name(uint32_t vtype);

#endif
