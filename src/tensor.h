/*
 * tensor.h — a weight tensor as the model sees it: a type, a shape in ggml's
 * ne order (ne[0] = the contiguous row length, FORMATS.md §2.1) and a pointer
 * to its bytes.  Where the bytes live (a mapping, anonymous memory, a pager
 * slot) is the business of whoever filled it in.
 */
#ifndef MP_TENSOR_H
#define MP_TENSOR_H

#include <stdint.h>

struct mp_tensor {
	uint32_t type;          /* enum mp_type (GGUF type id) */
	int64_t ne[4];          /* elements per dimension; unused dims are 1 */
	uint64_t row_bytes;     /* bytes of one ne[0]-long row */
	const void *data;       /* first byte; NULL when the tensor is absent */
};

/* Row r (counted over ne[1]·ne[2]·ne[3]) of t. */
static inline const void *mp_tensor_row(const struct mp_tensor *t, int64_t r)
{
	return (const uint8_t *)t->data + (uint64_t)r * t->row_bytes;
}

#endif
