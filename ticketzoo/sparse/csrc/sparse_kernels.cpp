// Sparse CPU inference kernels for ticketzoo: a direct sparse convolution and a sparse linear.
//
// Direct sparse convolution (Park et al. 2017, "Faster CNNs with direct sparse convolutions and
// guided pruning"): the weight is CSR over output channels, each stored column c*KH*KW + r*KW + s.
// The input is zero-padded and split into stride*stride phase planes once per call, so every
// nonzero weight reads the input at one fixed offset: out[o][i] += w * in[off(c, r, s) + i], with
// i = y*Wq + x running over output rows laid out at the padded row width Wq (the columns past
// the output width are computed and dropped). No im2col: the inner loop is a contiguous
// multiply-add over the spatial dimension, kept in vector registers for a tile of 64 outputs
// across all of a row's nonzeros. GCC vector extensions of the native width (AVX-512, AVX2, SSE/NEON, chosen by
// -march=native) keep the tile in registers. Threads (OpenMP) split images, tiles and blocks of
// output channels.

#include <torch/extension.h>

#include "vectors.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace ticketzoo_vectors;  // VW, vf, loadu, storeu, gather_tile

constexpr int TILE_V = 128 / VW;  // vectors per full tile: 128 outputs in registers
constexpr int64_t OBLOCK = 16;   // output channels per work item
constexpr int64_t L1_BUDGET = 16 * 1024;  // bytes of input window per channel block (L1d is 32-48 KiB)
constexpr int64_t MIN_BLOCK_NNZ = 8;      // nonzeros per row and channel block, on average

// A piece of the L = Hout*Wq positions of one output plane: computed over [base, base + width),
// stored from `from` on (a short last piece is recomputed over an overlapping, in-bounds window).
struct Piece {
  int64_t base, width, from;
};

std::vector<Piece> pieces(int64_t L) {
  std::vector<Piece> out;
  int64_t t = 0;
  for (; t + TILE_V * VW <= L; t += TILE_V * VW) out.push_back({t, TILE_V * VW, t});
  int64_t rest = L - t;
  if (rest >= VW) {
    int64_t w = rest / VW * VW;
    out.push_back({t, w, t});
    t += w;
    rest -= w;
  }
  if (rest > 0) {
    if (L >= VW) out.push_back({L - VW, VW, t});
    else out.push_back({0, rest, 0});  // scalar: the whole plane is shorter than a vector
  }
  return out;
}

// Store tmp (positions [p.from, p.base + p.width)) into the output plane, dropping the columns
// past the output width, with the residual added and ReLU applied on the way.
inline void store_piece(const Piece& p, const float* tmp, int64_t Wq, int64_t Wout, float* out,
                        const float* res, bool relu) {
  const int64_t end = p.base + p.width;
  int64_t i = p.from;
  while (i < end) {
    const int64_t y = i / Wq, x = i - y * Wq;
    const int64_t seg = std::min(end - i, Wq - x);
    if (x < Wout) {
      const int64_t n = std::min(seg, Wout - x);
      const float* t = tmp + (i - p.base);
      float* o = out + y * Wout + x;
      if (res) {
        const float* r = res + y * Wout + x;
        for (int64_t k = 0; k < n; ++k) o[k] = t[k] + r[k];
      } else {
        for (int64_t k = 0; k < n; ++k) o[k] = t[k];
      }
      if (relu)
        for (int64_t k = 0; k < n; ++k) o[k] = o[k] > 0.f ? o[k] : 0.f;
    }
    i += seg;
  }
}

// gather_tile<nv> for a run-time nv in [1, V].
template <int V>
inline void dispatch(int64_t nv, const float* s, const int32_t* off, const float* w, int64_t b, int64_t e,
                     float bias, bool first, float* tmp) {
  if constexpr (V > 1) {
    if (nv < V) return dispatch<V - 1>(nv, s, off, w, b, e, bias, first, tmp);
  }
  gather_tile<V>(s, off, w, b, e, bias, first, tmp);
}

inline void compute_piece(const Piece& p, const float* src, const int32_t* off, const float* w, int64_t b,
                          int64_t e, float bias, bool first, float* tmp) {
  const float* s = src + p.base;
  const int64_t nv = p.width / VW;
  if (nv > 0) {
    dispatch<TILE_V>(nv, s, off, w, b, e, bias, first, tmp);
  } else {  // shorter than one vector
      for (int64_t k = 0; k < p.width; ++k) {
        float acc = first ? bias : tmp[k];
        for (int64_t j = b; j < e; ++j) acc += w[j] * s[off[j] + k];
        tmp[k] = acc;
      }
  }
}

void check_csr(const torch::Tensor& indptr, const torch::Tensor& cols, const torch::Tensor& vals) {
  TORCH_CHECK(indptr.dtype() == torch::kInt32 && cols.dtype() == torch::kInt32, "indptr/cols must be int32");
  TORCH_CHECK(vals.dtype() == torch::kFloat32, "values must be float32");
  TORCH_CHECK(indptr.is_contiguous() && cols.is_contiguous() && vals.is_contiguous(), "CSR must be contiguous");
  TORCH_CHECK(cols.numel() == vals.numel(), "cols and values differ in length");
}

}  // namespace

// x [N, C, H, W] float32 -> [N, O, Hout, Wout]; weight CSR over O with columns c*KH*KW + r*KW + s.
torch::Tensor sparse_conv2d(torch::Tensor x, torch::Tensor indptr, torch::Tensor cols, torch::Tensor vals,
                            torch::Tensor bias, int64_t C, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
                            c10::optional<torch::Tensor> residual, bool relu, int64_t threads) {
  TORCH_CHECK(x.dim() == 4 && x.dtype() == torch::kFloat32 && x.device().is_cpu(), "x must be float32 NCHW on CPU");
  TORCH_CHECK(x.size(1) == C, "input has ", x.size(1), " channels, the weight expects ", C);
  TORCH_CHECK(stride >= 1 && pad >= 0, "bad stride or padding");
  check_csr(indptr, cols, vals);
  x = x.contiguous();
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3), O = indptr.numel() - 1;
  const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad;
  TORCH_CHECK(Hp >= KH && Wp >= KW, "input smaller than the kernel");
  const int64_t Hout = (Hp - KH) / stride + 1, Wout = (Wp - KW) / stride + 1;
  const int64_t S = stride;
  const bool direct = (S == 1 && pad == 0);
  const int64_t Hq = direct ? H : (Hp + S - 1) / S, Wq = direct ? W : (Wp + S - 1) / S;
  const int64_t plane = Hq * Wq;

  // The padded, phase-split input: phase (a, b) holds padded[c][u*S + a][v*S + b] at [a*S+b][c][u][v].
  torch::Tensor buf;
  const float* src;
  int64_t img;  // floats per image in src
  if (direct) {
    src = x.data_ptr<float>();
    img = C * H * W;
  } else {
    img = S * S * C * plane;
    const int64_t slack = Wq + VW;  // the last nonzero's window runs a few columns past the last plane
    buf = torch::empty({N * img + slack}, x.options());
    float* B = buf.data_ptr<float>();
    const float* X = x.data_ptr<float>();
    std::fill(B + N * img, B + N * img + slack, 0.f);
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t a = 0; a < S; ++a)
          for (int64_t bb = 0; bb < S; ++bb) {
            float* dst = B + n * img + ((a * S + bb) * C + c) * plane;
            const float* xc = X + (n * C + c) * H * W;
            for (int64_t u = 0; u < Hq; ++u) {
              const int64_t row = u * S + a - pad;
              float* d = dst + u * Wq;
              if (row < 0 || row >= H) {
                std::fill(d, d + Wq, 0.f);
                continue;
              }
              const float* xr = xc + row * W;
              if (S == 1) {
                std::fill(d, d + pad, 0.f);
                std::memcpy(d + pad, xr, W * sizeof(float));
                std::fill(d + pad + W, d + Wq, 0.f);
              } else {
                for (int64_t v = 0; v < Wq; ++v) {
                  const int64_t col = v * S + bb - pad;
                  d[v] = (col >= 0 && col < W) ? xr[col] : 0.f;
                }
              }
            }
          }
    src = B;
  }

  // Column index -> offset into one image of src.
  const int64_t nnz = cols.numel();
  const int32_t* ci = cols.data_ptr<int32_t>();
  std::vector<int32_t> off(nnz);
  const int64_t KK = KH * KW;
  for (int64_t j = 0; j < nnz; ++j) {
    const int64_t c = ci[j] / KK, r = (ci[j] % KK) / KW, s = ci[j] % KW;
    TORCH_CHECK(c < C, "column index out of range");
    off[j] = (int32_t)((((r % S) * S + (s % S)) * C + c) * plane + (r / S) * Wq + (s / S));
  }

  auto out = torch::empty({N, O, Hout, Wout}, x.options());
  const float* res = nullptr;
  torch::Tensor rt;
  if (residual.has_value()) {
    rt = residual->contiguous();
    TORCH_CHECK(rt.sizes() == out.sizes() && rt.dtype() == torch::kFloat32, "residual shape differs from output");
    res = rt.data_ptr<float>();
  }
  const int32_t* ip = indptr.data_ptr<int32_t>();
  const float* w = vals.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* op = out.data_ptr<float>();
  const auto ps = pieces(Hout * Wq);
  const int64_t P = ps.size(), NB = (O + OBLOCK - 1) / OBLOCK, oplane = Hout * Wout;

  // Input channels in blocks whose tile-sized window of src stays in L1 while a block of output
  // channels reads it: without blocking every output channel streams all C channels' windows
  // from L2. seg[o * (NCB + 1) + k] is where channel block k starts in row o (columns are sorted).
  // A block also holds enough nonzeros per row (MIN_BLOCK_NNZ on average) that reloading the
  // partial sums between blocks stays cheap next to the multiply-adds.
  const int64_t width = std::min<int64_t>(TILE_V * VW, Hout * Wq);
  const int64_t window = S * S * (width + ((KH - 1) / S) * Wq + (KW - 1) / S + 1) * 4;  // bytes per channel
  const int64_t by_nnz = (MIN_BLOCK_NNZ * C * O + nnz - 1) / std::max<int64_t>(1, nnz);
  const int64_t CB = std::min<int64_t>(C, std::max<int64_t>({1, L1_BUDGET / window, by_nnz}));
  const int64_t NCB = (C + CB - 1) / CB;
  std::vector<int32_t> seg(O * (NCB + 1));
  for (int64_t o = 0; o < O; ++o) {
    int64_t j = ip[o];
    for (int64_t k = 0; k < NCB; ++k) {
      seg[o * (NCB + 1) + k] = (int32_t)j;
      while (j < ip[o + 1] && ci[j] / KK < (k + 1) * CB) ++j;
    }
    seg[o * (NCB + 1) + NCB] = ip[o + 1];
  }

#pragma omp parallel for collapse(3) schedule(static) num_threads(threads)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < P; ++t)
      for (int64_t ob = 0; ob < NB; ++ob) {
        alignas(64) float acc[OBLOCK][TILE_V * VW];
        const Piece& p = ps[t];
        const float* s = src + n * img;
        const int64_t o0 = ob * OBLOCK, o1 = std::min(O, (ob + 1) * OBLOCK);
        for (int64_t k = 0; k < NCB; ++k)
          for (int64_t o = o0; o < o1; ++o) {
            const int32_t* sg = seg.data() + o * (NCB + 1) + k;
            if (k > 0 && sg[0] == sg[1]) continue;  // no nonzero of row o in this block
            compute_piece(p, s, off.data(), w, sg[0], sg[1], bp ? bp[o] : 0.f, k == 0, acc[o - o0]);
          }
        for (int64_t o = o0; o < o1; ++o) {
          const int64_t at = (n * O + o) * oplane;
          store_piece(p, acc[o - o0], Wq, Wout, op + at, res ? res + at : nullptr, relu);
        }
      }
  return out;
}

// x [B, IN] -> [B, O] = x W^T + bias with W CSR [O, IN]: a gathered dot product per output.
torch::Tensor sparse_linear(torch::Tensor x, torch::Tensor indptr, torch::Tensor cols, torch::Tensor vals,
                            torch::Tensor bias, bool relu, int64_t threads) {
  TORCH_CHECK(x.dim() == 2 && x.dtype() == torch::kFloat32 && x.device().is_cpu(), "x must be float32 [B, IN] on CPU");
  check_csr(indptr, cols, vals);
  x = x.contiguous();
  const int64_t B = x.size(0), IN = x.size(1), O = indptr.numel() - 1;
  auto out = torch::empty({B, O}, x.options());
  const int32_t* ip = indptr.data_ptr<int32_t>();
  const int32_t* ci = cols.data_ptr<int32_t>();
  const float* w = vals.data_ptr<float>();
  const float* bp = bias.numel() ? bias.data_ptr<float>() : nullptr;
  const float* X = x.data_ptr<float>();
  float* Y = out.data_ptr<float>();
  if (cols.numel()) {
    const int32_t top = *std::max_element(ci, ci + cols.numel());
    TORCH_CHECK(top < IN, "column index out of range");
  }
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o) {
      const float* xb = X + b * IN;
      float acc = 0.f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = ip[o]; j < ip[o + 1]; ++j) acc += w[j] * xb[ci[j]];
      acc += bp ? bp[o] : 0.f;
      Y[b * O + o] = (relu && acc < 0.f) ? 0.f : acc;
    }
  return out;
}

// x [N, C, H, W] -> max over k x k windows (stride s, implicit -inf padding p): a column max
// over the window's rows (contiguous, vectorised), then a strided row max. torch's NCHW
// max_pool2d also computes indices and was the slowest op left after ResNet-50's stem.
torch::Tensor max_pool2d(torch::Tensor x, int64_t k, int64_t s, int64_t p, int64_t threads) {
  TORCH_CHECK(x.dim() == 4 && x.dtype() == torch::kFloat32 && x.device().is_cpu(), "x must be float32 NCHW on CPU");
  TORCH_CHECK(k >= 1 && s >= 1 && p >= 0 && 2 * p <= k, "bad kernel, stride or padding");
  x = x.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  TORCH_CHECK(H + 2 * p >= k && W + 2 * p >= k, "input smaller than the window");
  const int64_t Hout = (H + 2 * p - k) / s + 1, Wout = (W + 2 * p - k) / s + 1;
  auto out = torch::empty({N, C, Hout, Wout}, x.options());
  const float* X = x.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> col(W);
#pragma omp for collapse(2) schedule(static)
    for (int64_t plane = 0; plane < N * C; ++plane)
      for (int64_t yo = 0; yo < Hout; ++yo) {
        const float* xp = X + plane * H * W;
        const int64_t r0 = std::max<int64_t>(0, yo * s - p), r1 = std::min<int64_t>(H, yo * s - p + k);
        std::memcpy(col.data(), xp + r0 * W, W * sizeof(float));
        for (int64_t r = r0 + 1; r < r1; ++r) {
          const float* xr = xp + r * W;
          for (int64_t i = 0; i < W; ++i) col[i] = std::max(col[i], xr[i]);
        }
        float* yr = Y + (plane * Hout + yo) * Wout;
        for (int64_t xo = 0; xo < Wout; ++xo) {
          const int64_t c0 = std::max<int64_t>(0, xo * s - p), c1 = std::min<int64_t>(W, xo * s - p + k);
          float m = col[c0];
          for (int64_t c = c0 + 1; c < c1; ++c) m = std::max(m, col[c]);
          yr[xo] = m;
        }
      }
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("max_pool2d", &max_pool2d, "k x k max pooling with stride and -inf padding (NCHW)");
  m.def("sparse_conv2d", &sparse_conv2d, "direct sparse convolution (CSR over output channels)");
  m.def("sparse_linear", &sparse_linear, "sparse linear layer (CSR over outputs)");
}
