/*
 * alloc.h — the one heap allocation choke point (like Redis' zmalloc).
 *
 * Every heap allocation of the project goes through these functions.  Normal
 * builds are served by jemalloc, whose statistics feed the stats segment;
 * sanitizer builds use the system allocator (jemalloc and the sanitizers
 * clash).  Both count live bytes here, so tests can check for leaks and the
 * memory plan can be compared with what was really allocated.
 *
 * Not for the expert pool: the pool is one aligned mapping made once at start
 * by the pager, outside this path.
 */
#ifndef MP_ALLOC_H
#define MP_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Return NULL on failure (never abort); a zero size gives a valid unique pointer. */
void *mp_malloc(size_t size);
void *mp_calloc(size_t n, size_t size);     /* NULL also when n*size overflows */
void *mp_realloc(void *p, size_t size);     /* on failure p is untouched */
char *mp_strdup(const char *s);
void *mp_malloc_array(size_t n, size_t size); /* overflow-checked n*size */
void mp_free(void *p);                      /* NULL is fine */

struct mp_alloc_stats {
	uint64_t live_bytes;   /* bytes: usable size of live allocations made here */
	uint64_t peak_bytes;   /* bytes: high-water mark of live_bytes */
	uint64_t live_count;   /* allocations not yet freed */
	uint64_t total_count;  /* allocations ever made */
	/* From jemalloc when it serves (0 otherwise): the whole process' heap. */
	uint64_t je_allocated; /* bytes: stats.allocated */
	uint64_t je_resident;  /* bytes: stats.resident */
	uint64_t je_mapped;    /* bytes: stats.mapped */
};

void mp_alloc_stats(struct mp_alloc_stats *out);

/* Tests of out-of-memory paths: the nth allocation made through this file
 * from now on (1: the next) returns NULL; 0 cancels. */
void mp_alloc_fail_after(uint64_t n);
/* "jemalloc 5.3.0" or "system (sanitizer build)". */
const char *mp_alloc_backend(void);

#endif
