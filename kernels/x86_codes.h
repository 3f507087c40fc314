/*
 * x86_codes.h — unpacking the codes of the 32-element blocks (Q4_0, Q4_1,
 * Q5_0, Q5_1) into 32 bytes of a 256-bit register, shared by the dot
 * products (quant_x86.h) and the dequantizers (dequant_x86.h).  Not a public
 * header: the includer defines X86_TARGET and X86(name) as those do.
 */
#ifndef MP_X86_CODES_H
#define MP_X86_CODES_H

/* The 32 nibbles of a block's 16 bytes as bytes 0..31: low nibbles are
 * elements 0..15, high nibbles 16..31. */
X86_TARGET static inline __m256i X86(nibbles32)(const uint8_t *qs)
{
	__m128i q = _mm_loadu_si128((const __m128i *)qs);
	return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

/* The 5-bit codes of a Q5_0 / Q5_1 block (0..31): nibble | fifth bit << 4,
 * element j's fifth bit being bit j of the little-endian qh.  Each 128-bit
 * lane holds qh four times, the shuffle gives byte i qh's byte i/8, and the
 * AND picks bit i%8. */
X86_TARGET static inline __m256i X86(q5_codes)(const uint8_t *qs, const uint8_t *qh)
{
	const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
					      2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
	uint32_t h;
	memcpy(&h, qh, 4);
	__m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
	__m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
	return _mm256_or_si256(X86(nibbles32)(qs), _mm256_and_si256(set, _mm256_set1_epi8(16)));
}

#endif
