/*
 * profile.h — the usage profile: how often each routed expert was used,
 * keyed by the model's fingerprint (loader.h), saved at exit and used at the
 * next start to warm the expert pool in the background.
 *
 * File (little-endian): "MPPROFIL", u32 version 1, u32 layers, u32 experts,
 * u32 zero, u64 fingerprint, u64 tokens; then u32 uses[layers][experts].
 * Default place: $XDG_CACHE_HOME/moepager/<fingerprint>.profile (or
 * ~/.cache/...), next to which the eviction policy keeps its learned model
 * (<same>.policy).
 */
#ifndef MP_PROFILE_H
#define MP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

struct mp_profile;

/* An empty profile for a model of that shape and fingerprint. */
int mp_profile_create(uint32_t layers, uint32_t experts, uint64_t fingerprint,
		      struct mp_profile **out);
void mp_profile_destroy(struct mp_profile *p);

/* Adds the uses of one acquire set. */
void mp_profile_count(struct mp_profile *p, uint32_t layer, const uint32_t *experts, uint32_t n);
void mp_profile_count_token(struct mp_profile *p);

/* Merges a saved profile into p.  Returns 1 when loaded, 0 when there is no
 * file, -MP_EFORMAT / -MP_EARG (another model: the fingerprint differs) with
 * the sentence in err. */
int mp_profile_load(struct mp_profile *p, const char *path, char *err, size_t err_len);
/* Writes p (via a temporary file and rename). */
int mp_profile_save(const struct mp_profile *p, const char *path, char *err, size_t err_len);

uint64_t mp_profile_tokens(const struct mp_profile *p);
uint32_t mp_profile_uses(const struct mp_profile *p, uint32_t layer, uint32_t expert);

/* The n most used experts of layer (most used first; experts never used are
 * left out).  Returns how many were written. */
uint32_t mp_profile_top(const struct mp_profile *p, uint32_t layer, uint32_t *experts, uint32_t n);

/* The default path for a fingerprint into buf ("" when no home is known);
 * creates the directory. */
void mp_profile_default_path(uint64_t fingerprint, char *buf, size_t len);

#endif
