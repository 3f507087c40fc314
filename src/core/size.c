/* size.c — parsing and printing of byte counts. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "size.h"

struct unit {
	const char *name;  /* suffix, compared case-insensitively */
	double mult;       /* bytes per unit */
};

static const struct unit units[] = {
	{ "", 1.0 }, { "B", 1.0 },
	{ "K", 0x1p10 }, { "KiB", 0x1p10 }, { "KB", 1e3 },
	{ "M", 0x1p20 }, { "MiB", 0x1p20 }, { "MB", 1e6 },
	{ "G", 0x1p30 }, { "GiB", 0x1p30 }, { "GB", 1e9 },
	{ "T", 0x1p40 }, { "TiB", 0x1p40 }, { "TB", 1e12 },
};

int mp_size_parse(const char *s, uint64_t *out)
{
	if (!s)
		return -MP_EARG;
	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -MP_EARG;   /* no sign, no "inf", no "nan", no hex */
	const char *p = s;
	while (isdigit((unsigned char)*p))
		p++;
	int fractional = (*p == '.');
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s)
		return -MP_EARG;
	/* hex floats and exponents are not sizes */
	for (const char *q = s; q < end; q++)
		if (!isdigit((unsigned char)*q) && *q != '.')
			return -MP_EARG;
	char suffix[8];
	size_t n = strlen(end);
	while (n && isspace((unsigned char)end[n - 1]))
		n--;
	if (n >= sizeof suffix)
		return -MP_EARG;
	memcpy(suffix, end, n);
	suffix[n] = 0;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcasecmp(suffix, units[i].name) != 0)
			continue;
		if (fractional && units[i].mult == 1.0)
			return -MP_EARG;   /* "1.5" bytes means nothing */
		double bytes = v * units[i].mult;
		if (bytes >= 0x1p63)
			return -MP_EARG;
		*out = (uint64_t)(bytes + 0.5);
		return 0;
	}
	return -MP_EARG;
}

char *mp_size_format(uint64_t bytes, char *buf, size_t len)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, v >= 100 ? "%.0f %s" : v >= 10 ? "%.1f %s" : "%.2f %s", v, names[u]);
	return buf;
}
