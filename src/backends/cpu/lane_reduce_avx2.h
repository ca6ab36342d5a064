// Reductions of eight vectors' lanes at once, for AVX2 translation units (built with -mavx2).
#pragma once

#include <immintrin.h>

namespace mixserve::cpu {

/// Lane r of the result = the 8 lanes of v[r] combined by op (add or max of two __m256), always in
/// the same tree: lanes (i, i+4), then (i, i+2), then (0, 1), as a horizontal reduction of one
/// vector at a time would combine them.
template <class Op>
inline __m256 combine_lanes8(const __m256 (&v)[8], Op op) {
  __m256 w[4];  // (i, i+4): vectors 2q and 2q+1 in the low and high half
  for (int q = 0; q < 4; ++q) {
    w[q] =
        op(_mm256_permute2f128_ps(v[2 * q], v[2 * q + 1], 0x20), _mm256_permute2f128_ps(v[2 * q], v[2 * q + 1], 0x31));
  }
  __m256 u[2];  // (i, i+2): per half, two lanes each of vectors 4q+{0,2} (low) / 4q+{1,3} (high)
  for (int q = 0; q < 2; ++q) {
    u[q] = op(_mm256_shuffle_ps(w[2 * q], w[2 * q + 1], _MM_SHUFFLE(1, 0, 1, 0)),
              _mm256_shuffle_ps(w[2 * q], w[2 * q + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // (0, 1): vectors 0 2 4 6 | 1 3 5 7, then into order.
  const __m256 e = op(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm256_permutevar8x32_ps(e, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

}  // namespace mixserve::cpu
