/* This file implements the deterministic random numbers the kernel tests
 * draw their shapes and data from, so that a failure reproduces from its
 * seed. */
#ifndef QK_TESTS_RNG_H
#define QK_TESTS_RNG_H

#include <stdint.h>

static uint64_t rng_state;

static inline void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ull + 1; }

/* xorshift64: fast, and good enough for test data. */
static inline uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static inline int rng_int(int n) { return (int)(rng_u32() % (uint32_t)n); }

/* Uniform in [-1, 1). */
static inline float rng_float(void) { return (float)rng_u32() / 4294967296.0f * 2.0f - 1.0f; }

#endif
