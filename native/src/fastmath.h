/*
 * Elementwise math the compiler can vectorise. libm's expf is a function call per element and keeps loops scalar;
 * these are branch-free polynomials accurate to a few float ulps, which is as close to libm as float32 softmax and
 * SiLU need (the kernel tests compare them with tfjs at 1e-5 relative).
 */
#ifndef ADAPTER_NATIVE_FASTMATH_H
#define ADAPTER_NATIVE_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* e^x for x in float range: Cephes' expf (range reduction by ln 2, degree-5 polynomial, scale by 2^n). */
static inline float fast_expf(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* 1 / (1 + e^-x) */
static inline float fast_sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

#endif
