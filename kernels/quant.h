/*
 * quant.h — the per-type kernel table: dequantize, quantize and vec_dot for
 * every GGML type moepager reads (FORMATS.md §2), indexed by GGUF type id.
 *
 * Contracts for every type t with block size B (mp_type_info(t)):
 * - dequant(src, dst, n): n is a multiple of B; src holds n/B blocks of t;
 *   writes n floats.  The scalar reference, written for clarity.
 * - dequant_simd[path]: the same floats bit for bit (dequant_x86.h says how),
 *   faster; [MP_KPATH_SCALAR] stays NULL and a NULL SIMD entry means "no
 *   faster path": mp_quant_dequant() then falls back as mp_quant_vec_dot()
 *   does, down to the reference.
 * - quantize(src, dst, n): the inverse direction; any finite input gives valid,
 *   decodable blocks (round to nearest per block is enough for weights).
 * - vec_dot[path](n, w, a): Σ w[i]·a[i] over n elements, w in type t and a in
 *   mp_type_info(t)->vec_dot_type.  [MP_KPATH_SCALAR] is always set; a NULL
 *   SIMD entry means "no faster path": mp_quant_vec_dot() then falls back to
 *   the best lower one.  Activation-only types (Q8_1, Q8_K) have dequant and
 *   quantize but no vec_dot.
 * Kernels know blocks and vectors, nothing of files or models.
 */
#ifndef MP_QUANT_H
#define MP_QUANT_H

#include <stdint.h>

#include "dispatch.h"
#include "types.h"

typedef void (*mp_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*mp_quantize_fn)(const float *src, void *dst, int64_t n);
typedef float (*mp_vec_dot_fn)(int64_t n, const void *w, const void *a);

struct mp_quant_ops {
	mp_dequant_fn dequant;                  /* scalar reference; NULL: no kernels */
	mp_quantize_fn quantize;                /* NULL: cannot be written */
	mp_vec_dot_fn vec_dot[MP_KPATH_COUNT];  /* [SCALAR] set for every weight type */
	mp_dequant_fn dequant_simd[MP_KPATH_COUNT]; /* NULL: use a lower path's */
};

/* Kernels of type t, or NULL when moepager has none for it. */
const struct mp_quant_ops *mp_quant_ops(uint32_t t);

/* The vec_dot of t for path, falling back to the best lower path that has one;
 * NULL when t has no kernels. */
mp_vec_dot_fn mp_quant_vec_dot(uint32_t t, enum mp_kpath path);

/* The dequantizer of t for path: its SIMD one, else the best lower path's,
 * else the scalar reference; NULL when t has no kernels. */
mp_dequant_fn mp_quant_dequant(uint32_t t, enum mp_kpath path);

/* Families fill their entries of the table (called once, in order, by
 * quant.c: never by constructors). */
void mp_quant_fill_float(struct mp_quant_ops *tab);
/* SIMD families (quant_avx2.c, quant_avx512.c) fill only their path's
 * vec_dot slots; they run after the scalar families. */
void mp_quant_fill_avx2(struct mp_quant_ops *tab);
void mp_quant_fill_avx512(struct mp_quant_ops *tab);
void mp_quant_fill_iq(struct mp_quant_ops *tab);
/* SIMD dequantizers (dequant_avx2.c, dequant_avx512.c): fill only their
 * path's dequant_simd slots. */
void mp_dequant_fill_avx2(struct mp_quant_ops *tab);
void mp_dequant_fill_avx512(struct mp_quant_ops *tab);

#endif
