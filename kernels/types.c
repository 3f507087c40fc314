/* types.c — the GGML type table (FORMATS.md §2.2). */
#include <stddef.h>
#include <strings.h>

#include "err.h"
#include "types.h"

#define T(id, nm, be, bb, vd, st) [id] = { nm, be, bb, vd, st }
static const struct mp_type_info table[MP_TYPE_COUNT] = {
	T(MP_TYPE_F32, "F32", 1, 4, MP_TYPE_F32, MP_TYPE_SUPPORTED),
	T(MP_TYPE_F16, "F16", 1, 2, MP_TYPE_F16, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q4_0, "Q4_0", 32, 18, MP_TYPE_Q8_0, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q4_1, "Q4_1", 32, 20, MP_TYPE_Q8_1, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q5_0, "Q5_0", 32, 22, MP_TYPE_Q8_0, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q5_1, "Q5_1", 32, 24, MP_TYPE_Q8_1, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q8_0, "Q8_0", 32, 34, MP_TYPE_Q8_0, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q8_1, "Q8_1", 32, 36, MP_TYPE_Q8_1, MP_TYPE_ACTIVATION),
	T(MP_TYPE_Q2_K, "Q2_K", 256, 84, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q3_K, "Q3_K", 256, 110, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q4_K, "Q4_K", 256, 144, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q5_K, "Q5_K", 256, 176, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q6_K, "Q6_K", 256, 210, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_Q8_K, "Q8_K", 256, 292, MP_TYPE_Q8_K, MP_TYPE_ACTIVATION),
	T(MP_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ2_XS, "IQ2_XS", 256, 74, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ1_S, "IQ1_S", 256, 50, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ4_NL, "IQ4_NL", 32, 18, MP_TYPE_Q8_0, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ3_S, "IQ3_S", 256, 110, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ2_S, "IQ2_S", 256, 82, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_IQ4_XS, "IQ4_XS", 256, 136, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_I8, "I8", 1, 1, MP_TYPE_I8, MP_TYPE_REJECTED),
	T(MP_TYPE_I16, "I16", 1, 2, MP_TYPE_I16, MP_TYPE_REJECTED),
	T(MP_TYPE_I32, "I32", 1, 4, MP_TYPE_I32, MP_TYPE_REJECTED),
	T(MP_TYPE_I64, "I64", 1, 8, MP_TYPE_I64, MP_TYPE_REJECTED),
	T(MP_TYPE_F64, "F64", 1, 8, MP_TYPE_F64, MP_TYPE_REJECTED),
	T(MP_TYPE_IQ1_M, "IQ1_M", 256, 56, MP_TYPE_Q8_K, MP_TYPE_SUPPORTED),
	T(MP_TYPE_BF16, "BF16", 1, 2, MP_TYPE_BF16, MP_TYPE_SUPPORTED),
	T(MP_TYPE_TQ1_0, "TQ1_0", 256, 54, MP_TYPE_Q8_K, MP_TYPE_REJECTED),
	T(MP_TYPE_TQ2_0, "TQ2_0", 256, 66, MP_TYPE_Q8_K, MP_TYPE_REJECTED),
	T(MP_TYPE_MXFP4, "MXFP4", 32, 17, MP_TYPE_Q8_0, MP_TYPE_REJECTED),
};
#undef T

const struct mp_type_info *mp_type_info(uint32_t type)
{
	if (type >= MP_TYPE_COUNT || !table[type].name)
		return NULL;
	return &table[type];
}

enum mp_type_status mp_type_status(uint32_t type)
{
	const struct mp_type_info *ti = mp_type_info(type);
	return ti ? ti->status : MP_TYPE_UNKNOWN;
}

const char *mp_type_name(uint32_t type)
{
	const struct mp_type_info *ti = mp_type_info(type);
	return ti ? ti->name : "unknown";
}

int mp_type_from_name(const char *name, enum mp_type *out)
{
	for (uint32_t t = 0; t < MP_TYPE_COUNT; t++)
		if (table[t].name && strcasecmp(table[t].name, name) == 0) {
			*out = (enum mp_type)t;
			return 0;
		}
	return -MP_ENOTFOUND;
}

int mp_type_row_bytes(uint32_t type, uint64_t n, uint64_t *out)
{
	const struct mp_type_info *ti = mp_type_info(type);
	if (!ti || ti->status == MP_TYPE_UNKNOWN)
		return -MP_ETYPE;
	if (n % ti->block_elems)
		return -MP_EFORMAT;
	uint64_t bytes;
	if (__builtin_mul_overflow(n / ti->block_elems, (uint64_t)ti->block_bytes, &bytes))
		return -MP_EFORMAT;
	*out = bytes;
	return 0;
}
