/*
 * rng.h — a seeded pseudo-random generator (xoshiro256**, seeded through
 * splitmix64).  A value type: whoever needs randomness owns one and passes it
 * in, so that the policy, the generator and the tests reproduce the same
 * decisions from the same seed.  Never rand(), never a hidden global.
 */
#ifndef MP_RNG_H
#define MP_RNG_H

#include <stdint.h>

struct mp_rng {
	uint64_t s[4];   /* generator state; never all zero */
};

void mp_rng_seed(struct mp_rng *r, uint64_t seed);

static inline uint64_t mp_rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Uniform 64-bit value. */
static inline uint64_t mp_rng_u64(struct mp_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = mp_rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = mp_rng_rotl(s[3], 45);
	return out;
}

/* Uniform in [0, 1) with 53 bits. */
static inline double mp_rng_uniform(struct mp_rng *r)
{
	return (double)(mp_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t mp_rng_below(struct mp_rng *r, uint64_t n);
/* Standard normal deviate (Box–Muller; deterministic per state). */
double mp_rng_normal(struct mp_rng *r);

#endif
