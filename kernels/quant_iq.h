/*
 * quant_iq.h — private to the quant_iq*.c files: the SIMD halves of the
 * i-quant kernels fill their vec_dot paths into the table that
 * mp_quant_fill_iq() (quant_iq.c) has set up.  On a non-x86 build these fill
 * nothing.
 */
#ifndef MP_QUANT_IQ_H
#define MP_QUANT_IQ_H

struct mp_quant_ops;

/* Sets vec_dot[MP_KPATH_AVX2] of the i-quants that have an AVX2 kernel. */
void mp_quant_fill_iq_avx2(struct mp_quant_ops *tab);

/* Sets vec_dot[MP_KPATH_AVX512] of the i-quants that have an AVX-512 kernel. */
void mp_quant_fill_iq_avx512(struct mp_quant_ops *tab);

#endif
