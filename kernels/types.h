/*
 * types.h — the GGML tensor data types, with their GGUF type ids, block
 * geometry and the activation type llama.cpp's CPU backend pairs them with
 * (FORMATS.md §2.2).  The GGUF reader validates tensor types and sizes through
 * this table; the kernels hang their functions off the same ids.
 */
#ifndef MP_TYPES_H
#define MP_TYPES_H

#include <stdint.h>

/* GGUF type ids: these numbers are part of the file format. */
enum mp_type {
	MP_TYPE_F32 = 0,
	MP_TYPE_F16 = 1,
	MP_TYPE_Q4_0 = 2,
	MP_TYPE_Q4_1 = 3,
	MP_TYPE_Q5_0 = 6,
	MP_TYPE_Q5_1 = 7,
	MP_TYPE_Q8_0 = 8,
	MP_TYPE_Q8_1 = 9,
	MP_TYPE_Q2_K = 10,
	MP_TYPE_Q3_K = 11,
	MP_TYPE_Q4_K = 12,
	MP_TYPE_Q5_K = 13,
	MP_TYPE_Q6_K = 14,
	MP_TYPE_Q8_K = 15,
	MP_TYPE_IQ2_XXS = 16,
	MP_TYPE_IQ2_XS = 17,
	MP_TYPE_IQ3_XXS = 18,
	MP_TYPE_IQ1_S = 19,
	MP_TYPE_IQ4_NL = 20,
	MP_TYPE_IQ3_S = 21,
	MP_TYPE_IQ2_S = 22,
	MP_TYPE_IQ4_XS = 23,
	MP_TYPE_I8 = 24,
	MP_TYPE_I16 = 25,
	MP_TYPE_I32 = 26,
	MP_TYPE_I64 = 27,
	MP_TYPE_F64 = 28,
	MP_TYPE_IQ1_M = 29,
	MP_TYPE_BF16 = 30,
	MP_TYPE_TQ1_0 = 34,
	MP_TYPE_TQ2_0 = 35,
	MP_TYPE_MXFP4 = 39,
	MP_TYPE_COUNT = 40      /* ids >= this are unknown */
};

#define MP_QK_K 256         /* elements per K-/i-quant super-block */

/* How moepager treats a type found in a model file. */
enum mp_type_status {
	MP_TYPE_UNKNOWN = 0,    /* no such id (removed, or newer than we know) */
	MP_TYPE_REJECTED,       /* a real ggml type that these models do not use */
	MP_TYPE_ACTIVATION,     /* exists only as an activation format, never in files */
	MP_TYPE_SUPPORTED,      /* may appear in a model file */
};

struct mp_type_info {
	const char *name;          /* "Q4_K" */
	uint32_t block_elems;      /* elements per block (1 for plain floats) */
	uint32_t block_bytes;      /* bytes per block */
	enum mp_type vec_dot_type; /* activation format for the dot product */
	enum mp_type_status status;
};

/* Info for a type id, or NULL for an id outside the table (status UNKNOWN). */
const struct mp_type_info *mp_type_info(uint32_t type);

/* Type status (MP_TYPE_UNKNOWN for any id not in the table). */
enum mp_type_status mp_type_status(uint32_t type);

/* Name or "unknown(<id>)" in a static per-call-site-safe form: returns a
 * pointer into the table, or "unknown" for ids outside it. */
const char *mp_type_name(uint32_t type);

/* Type id for a name ("q4_k" or "Q4_K"); returns 0 and sets *out, or
 * -MP_ENOTFOUND. */
int mp_type_from_name(const char *name, enum mp_type *out);

/* Bytes of a row of n elements: 0 and *out set, or -MP_EFORMAT when n is not a
 * multiple of the block size or -MP_ETYPE for an unusable type. */
int mp_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out);

#endif
