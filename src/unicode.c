/*
 * unicode.c — category and White_Space lookups over the generated tables, and
 * a strict UTF-8 decoder/encoder (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).
 */
#include "unicode.h"

enum mp_unicode_class mp_unicode_class(uint32_t cp)
{
	if (cp < 256)
		return (enum mp_unicode_class)(mp_unicode_latin1[cp] & 7);
	if (cp > 0x10FFFF)
		return MP_UC_C;
	/* Last run whose start is <= cp; entry 0 starts at U+0000. */
	uint32_t lo = 0, hi = mp_unicode_nranges;
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if ((mp_unicode_ranges[mid] >> 3) <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return (enum mp_unicode_class)(mp_unicode_ranges[lo] & 7);
}

int mp_unicode_is_space(uint32_t cp)
{
	if (cp < 256)
		return mp_unicode_latin1[cp] >> 3;
	for (uint32_t i = 0; i < mp_unicode_nspace; i++) {
		if (cp < mp_unicode_space[i][0])
			return 0;
		if (cp <= mp_unicode_space[i][1])
			return 1;
	}
	return 0;
}

/* Sequence length announced by lead byte b, or 0 when b cannot start one. */
static int lead_len(unsigned char b)
{
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF)
		return 2;
	if (b >= 0xE0 && b <= 0xEF)
		return 3;
	if (b >= 0xF0 && b <= 0xF4)
		return 4;
	return 0;
}

/* Whether the second byte c1 is allowed after lead b (the RFC 3629 table:
 * excludes overlongs, surrogates and code points above U+10FFFF). */
static int second_ok(unsigned char b, unsigned char c1)
{
	switch (b) {
	case 0xE0: return c1 >= 0xA0 && c1 <= 0xBF;
	case 0xED: return c1 >= 0x80 && c1 <= 0x9F;
	case 0xF0: return c1 >= 0x90 && c1 <= 0xBF;
	case 0xF4: return c1 >= 0x80 && c1 <= 0x8F;
	default:   return c1 >= 0x80 && c1 <= 0xBF;
	}
}

int mp_unicode_decode(const char *s, size_t len, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	int n = lead_len(u[0]);
	if (n == 1) {
		*cp = u[0];
		return 1;
	}
	if (n == 0 || len < (size_t)n || !second_ok(u[0], u[1]))
		goto bad;
	for (int i = 2; i < n; i++)
		if ((u[i] & 0xC0) != 0x80)
			goto bad;
	uint32_t c = u[0] & (0x7F >> n);
	for (int i = 1; i < n; i++)
		c = (c << 6) | (u[i] & 0x3F);
	*cp = c;
	return n;
bad:
	*cp = MP_UNICODE_INVALID;
	return 1;
}

int mp_unicode_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t mp_unicode_complete_prefix(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	/* A trailing incomplete sequence is a lead byte within the last 3
	 * bytes, followed only by bytes that keep it valid so far. */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		size_t i = len - back;
		if ((u[i] & 0xC0) == 0x80)
			continue;
		int n = lead_len(u[i]);
		if (n <= (int)back)
			return len;
		if (back >= 2 && !second_ok(u[i], u[i + 1]))
			return len;
		for (size_t k = i + 2; k < len; k++)
			if ((u[k] & 0xC0) != 0x80)
				return len;
		return i;
	}
	return len;
}
