/* file.c — whole-file reads (see file.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "file.h"

char *mp_file_read(const char *path, size_t *len, char *err, size_t err_len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = mp_malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n - 1, f);
		if (n < cap - 1)
			break;
		char *nb = mp_realloc(buf, cap * 2);
		if (!nb) {
			mp_free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	if (buf && ferror(f)) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno ? errno : EIO));
		mp_free(buf);
		buf = NULL;
	} else if (buf) {
		buf[n] = 0;
		if (len)
			*len = n;
	} else {
		snprintf(err, err_len, "%s: out of memory", path);
	}
	fclose(f);
	return buf;
}
