/*
 * test_pager_util.h — helpers the pager-layer tests share: test files of
 * known bytes written under the build tree (O_DIRECT needs a real file
 * system; /tmp may be tmpfs), the byte every offset must hold, and the list
 * of I/O backends to loop over (every one built and usable, plus memory).
 */
#ifndef TEST_PAGER_UTIL_H
#define TEST_PAGER_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "mp_test.h"

/* The byte at offset off of test file number seed. */
static inline uint8_t tp_byte(uint32_t seed, uint64_t off)
{
	uint64_t x = off * 0x9E3779B97F4A7C15ull + seed * 0xD1B54A32D192ED69ull;
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	return (uint8_t)(x >> 56);
}

/* 0 if [p, p+len) holds file seed's bytes from off; else the first bad index + 1. */
static inline uint64_t tp_mismatch(const void *p, uint32_t seed, uint64_t off, uint64_t len)
{
	const uint8_t *b = p;
	for (uint64_t i = 0; i < len; i++)
		if (b[i] != tp_byte(seed, off + i))
			return i + 1;
	return 0;
}

/* Writes a test file of size bytes under $MP_BUILDDIR (or .); path out. */
static inline int tp_make_file(char *path, size_t path_len, const char *name,
                               uint32_t seed, uint64_t size)
{
	const char *dir = getenv("MP_BUILDDIR");
	snprintf(path, path_len, "%s/tests/%s-%d.bin", dir && *dir ? dir : ".", name, (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {   /* not run from make check: the current directory */
		snprintf(path, path_len, "./%s-%d.bin", name, (int)getpid());
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	}
	if (fd < 0)
		return -1;
	static uint8_t buf[65536];
	for (uint64_t o = 0; o < size;) {
		uint64_t n = size - o < sizeof buf ? size - o : sizeof buf;
		for (uint64_t i = 0; i < n; i++)
			buf[i] = tp_byte(seed, o + i);
		if (write(fd, buf, n) != (ssize_t)n) {
			close(fd);
			return -1;
		}
		o += n;
	}
	fsync(fd);
	close(fd);
	return 0;
}

/* Drops the file's pages from the page cache (so reads go to the disk). */
static inline void tp_drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* Every backend to test: the built ones that probe usable, then memory.
 * Returns the count; each backend that does not probe usable is reported as
 * a skipped case "WHAT on BACKEND" (mp_test_skip_part), never passed over in
 * silence. */
static inline int tp_backends(const struct mp_io_ops **out, int max, const char *what)
{
	int n = 0;
	for (const struct mp_io_ops *const *b = mp_io_backends(); *b && n < max - 1; b++) {
		char why[256] = "", name[256];
		if ((*b)->probe(why, sizeof why) == 0) {
			out[n++] = *b;
			continue;
		}
		snprintf(name, sizeof name, "%s on %s", what, (*b)->name);
		mp_test_skip_part(name, why[0] ? why : "the probe refuses it");
	}
	out[n++] = &mp_io_memory_ops;
	return n;
}

/* The first backend in out[0..n) that serves from a pool (not mmap's
 * mapping, not memory), or NULL. */
static inline const struct mp_io_ops *tp_pool_backend(const struct mp_io_ops *const *out, int n)
{
	for (int i = 0; i < n; i++)
		if (!(out[i]->caps & MP_IO_CAP_NOPOOL) && out[i] != &mp_io_memory_ops)
			return out[i];
	return NULL;
}

#endif
