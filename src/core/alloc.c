/*
 * alloc.c — counting allocation wrapper over jemalloc (or the system malloc
 * in sanitizer builds).  Live bytes are counted from malloc_usable_size, which
 * both allocators provide, so no header is prepended and pointers stay
 * compatible with the underlying free() (third-party code may free them).
 */
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "alloc.h"

static _Atomic uint64_t live_bytes, peak_bytes, live_count, total_count;
static _Atomic uint64_t fail_countdown;   /* tests: the Nth allocation from now fails */

/* 1 when this allocation is the one a test asked to fail. */
static int injected_failure(void)
{
	uint64_t n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
	while (n) {
		if (atomic_compare_exchange_weak_explicit(&fail_countdown, &n, n - 1,
				memory_order_relaxed, memory_order_relaxed))
			return n == 1;
	}
	return 0;
}

void mp_alloc_fail_after(uint64_t n)
{
	atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

static void count_in(void *p)
{
	uint64_t n = malloc_usable_size(p);
	uint64_t now = atomic_fetch_add_explicit(&live_bytes, n, memory_order_relaxed) + n;
	uint64_t peak = atomic_load_explicit(&peak_bytes, memory_order_relaxed);
	while (now > peak &&
	       !atomic_compare_exchange_weak_explicit(&peak_bytes, &peak, now,
			memory_order_relaxed, memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&total_count, 1, memory_order_relaxed);
}

static void count_out(void *p)
{
	atomic_fetch_sub_explicit(&live_bytes, malloc_usable_size(p), memory_order_relaxed);
	atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
}

void *mp_malloc(size_t size)
{
	if (injected_failure())
		return NULL;
	void *p = malloc(size ? size : 1);
	if (p)
		count_in(p);
	return p;
}

void *mp_calloc(size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes) || injected_failure())
		return NULL;
	void *p = calloc(bytes ? bytes : 1, 1);
	if (p)
		count_in(p);
	return p;
}

void *mp_malloc_array(size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return mp_malloc(bytes);
}

void *mp_realloc(void *p, size_t size)
{
	if (!p)
		return mp_malloc(size);
	if (injected_failure())
		return NULL;
	size_t old = malloc_usable_size(p);
	void *q = realloc(p, size ? size : 1);
	if (!q)
		return NULL;
	atomic_fetch_sub_explicit(&live_bytes, old, memory_order_relaxed);
	atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&total_count, 1, memory_order_relaxed);
	count_in(q);
	return q;
}

char *mp_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = mp_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void mp_free(void *p)
{
	if (!p)
		return;
	count_out(p);
	free(p);
}

void mp_alloc_stats(struct mp_alloc_stats *out)
{
	memset(out, 0, sizeof *out);
	out->live_bytes = atomic_load(&live_bytes);
	out->peak_bytes = atomic_load(&peak_bytes);
	out->live_count = atomic_load(&live_count);
	out->total_count = atomic_load(&total_count);
#ifdef HAVE_JEMALLOC
	/* jemalloc caches its statistics; bumping the epoch refreshes them. */
	uint64_t epoch = 1;
	size_t sz = sizeof epoch;
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	size_t v;
	sz = sizeof v;
	if (mallctl("stats.allocated", &v, &sz, NULL, 0) == 0)
		out->je_allocated = v;
	if (mallctl("stats.resident", &v, &sz, NULL, 0) == 0)
		out->je_resident = v;
	if (mallctl("stats.mapped", &v, &sz, NULL, 0) == 0)
		out->je_mapped = v;
#endif
}

const char *mp_alloc_backend(void)
{
#ifdef HAVE_JEMALLOC
	static char name[48];
	if (!name[0]) {
		const char *ver = "?";
		size_t sz = sizeof ver;
		mallctl("version", &ver, &sz, NULL, 0);
		/* "5.3.0-0-g54eaed1d8b56..." → keep the release part */
		size_t n = strcspn(ver, "-");
		snprintf(name, sizeof name, "jemalloc %.*s", (int)(n < 20 ? n : 20), ver);
	}
	return name;
#else
	return "system (sanitizer build)";
#endif
}
