// Native float vectors and the gather tile both sparse kernel sources build on
// (sparse_kernels.cpp: inference; sparse_train.cpp: training). GCC vector extensions of the
// native width (AVX-512, AVX2, SSE/NEON, chosen by -march=native).
#pragma once

#include <cstdint>

namespace ticketzoo_vectors {

// One native vector: a vector wider than the hardware's is split by GCC into spilled halves.
#if defined(__AVX512F__)
constexpr int VW = 16;  // zmm
#elif defined(__AVX__)
constexpr int VW = 8;  // ymm (AVX2 + FMA with -march=native)
#else
constexpr int VW = 4;  // xmm / NEON
#endif
typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));  // unaligned access

inline vf loadu(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void storeu(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

// One tile: V vectors of outputs at src (already offset by the tile base), accumulated over the
// nonzeros [b, e) of one row (weights w, source offsets off), starting from `init` (the first
// channel block: a bias, or 0) or from the partial sums already in acc_io.
template <int V, typename Offset>
inline void gather_tile(const float* __restrict src, const Offset* __restrict off, const float* __restrict w,
                        int64_t b, int64_t e, float init, bool first, float* acc_io) {
  vf acc[V];
  if (first)
    for (int v = 0; v < V; ++v) acc[v] = (vf){} + init;
  else
    for (int v = 0; v < V; ++v) acc[v] = loadu(acc_io + v * VW);
  for (int64_t j = b; j < e; ++j) {
    const vf wj = (vf){} + w[j];
    const float* p = src + off[j];
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) acc[v] += wj * loadu(p + v * VW);
  }
  for (int v = 0; v < V; ++v) storeu(acc_io + v * VW, acc[v]);
}

}  // namespace ticketzoo_vectors
