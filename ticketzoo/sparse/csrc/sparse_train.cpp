// Sparse CPU training kernels for ticketzoo: forward and backward of a conv2d (or a linear layer,
// as a 1x1 conv on a 1x1 image) whose weight has a fixed mask. fp32, OpenMP, our own code after
// the ideas of SparseProp (Nikdan et al. 2023) and direct sparse convolution (Park et al. 2017).
//
// The weight is CSR over output channels; every kept weight (o, c, r, s) reads one source plane
// at one fixed offset for a whole run of output positions, so the inner loops are contiguous
// multiply-adds over positions, vectorised with GCC vector extensions of the native width
// (-march=native), a tile of 8 vectors held in registers across a row's nonzeros.
//
//   forward      y[o] = b[o] + sum_{kept (c,r,s)} w * x_pad[c] shifted by (r, s): the padded
//                 input split into stride*stride phase planes once, so a stride-2 conv is a sum
//                 of stride-1 reads (as in the inference kernel, sparse_kernels.cpp).
//   grad-input   the transposed sparse conv: for each stride phase (a, b) of the padded input,
//                 gx_phase[c] = sum_{kept (o, r = a + S r', s = b + S s')} w * gy_pad[o] shifted
//                 by (-r', -s'): the same gather kernel over a CSR per (phase, input channel)
//                 (built once in Python), each input channel's tile accumulated in registers.
//   grad-weight  only the kept positions, a sampled dense-dense product: gw[j] = sum over the
//                 batch's positions of gy[o(j)] * x_pad[c(j)] shifted by (r(j), s(j)), a dot
//                 product of two contiguous runs, a tile of gy kept in registers across all of
//                 an output channel's nonzeros; written into a dense gradient, zero elsewhere.
//
// Two layouts. Large output planes run per image on NCHW-ordered buffers (a 1x1 stride-1 conv
// reads x and gy in place; others read padded copies, row width Wq, the columns past the output
// computed and dropped). Small planes ("compact": fewer than two vectors per image, late layers
// and small images) run the batch's positions as one run on im2col rows, one per weight column
// some kept weight uses, so no position is spent on padding and a batch of 8 fills half a vector.

// Only the headers used (not <torch/extension.h>): the first build on a machine takes a third of the time.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "vectors.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using namespace ticketzoo_vectors;  // VW, vf, loadu, storeu, gather_tile

constexpr int TILE_V = 8;                  // vectors per tile: 8 accumulators hide the FMA latency
constexpr int64_t TILE = TILE_V * VW;      // positions per tile
constexpr int64_t RBLOCK = 16;             // rows (output channels, input channels) per work item
constexpr int64_t L1_BUDGET = 16 * 1024;   // bytes of source window per channel block
constexpr int64_t MIN_BLOCK_NNZ = 8;       // nonzeros per row and channel block, on average
constexpr int64_t ACC_NNZ = 2048;          // grad-weight accumulators per work item (128 KiB, L2)


// Half a vector, for runs of VW/2 .. VW-1 positions (a batch of 8 images of one position each).
constexpr int HW = VW / 2;
typedef float vh __attribute__((vector_size(HW * 4)));
typedef float vhu __attribute__((vector_size(HW * 4), aligned(4), may_alias));
inline vh loadh(const float* p) { return *reinterpret_cast<const vhu*>(p); }
inline void storeh(float* p, vh v) { *reinterpret_cast<vhu*>(p) = v; }
inline vf widen(vh h) {  // half a vector, upper lanes zero
  vf r = (vf){};
  std::memcpy(&r, &h, sizeof(h));
  return r;
}


// Positions i = (n * Hg + y) * Wg + x of a stacked grid; (y, x) is valid when y < ny, x < nx.
// Computing stops after the last image's last valid row.
struct Grid {
  int64_t N, Hg, Wg, ny, nx;
  int64_t L() const { return ny > 0 && nx > 0 ? ((N - 1) * Hg + ny) * Wg : 0; }
};

// Where a gather kernel's valid outputs go: base + n * img + row * plane + y * rs + x * cs.
// With gaps (a 1x1 stride-cs conv's grad-input: only every cs-th row and column has a value),
// the cs - 1 columns after each value and the cs - 1 rows below are written as zeros, up to
// width x height: every element once, instead of zeroing the whole gradient first.
struct Dst {
  float* base;
  int64_t img, plane, rs, cs;
  bool gaps = false;
  int64_t width = 0, height = 0;
};

// A piece of [0, L): computed over [base, base + width), stored from `from` on (a short last
// piece is recomputed over an overlapping, in-bounds window).
struct Piece {
  int64_t base, width, from;
};

std::vector<Piece> pieces(int64_t L) {
  std::vector<Piece> out;
  int64_t t = 0;
  for (; t + TILE <= L; t += TILE) out.push_back({t, TILE, t});
  int64_t rest = L - t;
  if (rest >= VW) {
    const int64_t w = rest / VW * VW;
    out.push_back({t, w, t});
    t += w;
    rest -= w;
  }
  if (rest > 0) {
    if (L >= VW) out.push_back({L - VW, VW, t});
    else out.push_back({0, rest, 0});  // scalar: the whole grid is shorter than a vector
  }
  return out;
}

// seg[r * (NCB + 1) + k]: where source-channel block k starts among row r's nonzeros (each row's
// nonzeros are sorted by source channel sch[j]). Blocks of CB source channels keep a tile's
// source window in L1 while a block of rows reads it.
std::vector<int64_t> channel_blocks(int64_t R, const int32_t* indptr, const int32_t* sch, int64_t CB,
                                    int64_t NCB) {
  std::vector<int64_t> seg(R * (NCB + 1));
  for (int64_t r = 0; r < R; ++r) {
    int64_t j = indptr[r];
    for (int64_t k = 0; k < NCB; ++k) {
      seg[r * (NCB + 1) + k] = j;
      while (j < indptr[r + 1] && sch[j] < (k + 1) * CB) ++j;
    }
    seg[r * (NCB + 1) + NCB] = indptr[r + 1];
  }
  return seg;
}

// Source channels per block: a block's windows fit the L1 budget, yet hold enough nonzeros per
// row that reloading partial sums between blocks stays cheap next to the multiply-adds.
int64_t block_channels(int64_t channels, int64_t rows, int64_t nnz, int64_t window_bytes) {
  const int64_t by_nnz = (MIN_BLOCK_NNZ * channels * rows + nnz - 1) / std::max<int64_t>(1, nnz);
  const int64_t cb = std::min<int64_t>(channels, std::max<int64_t>({1, L1_BUDGET / std::max<int64_t>(1, window_bytes), by_nnz}));
  return std::max<int64_t>(1, cb);  // 1 also when there is no channel (nothing kept)
}

// --- the gather kernel (forward, grad-input) ------------------------------------------------


template <int V>
inline void gather_dispatch(int64_t nv, const float* s, const int64_t* off, const float* w, int64_t b, int64_t e,
                            float init, bool first, float* tmp) {
  if constexpr (V > 1) {
    if (nv < V) return gather_dispatch<V - 1>(nv, s, off, w, b, e, init, first, tmp);
  }
  gather_tile<V>(s, off, w, b, e, init, first, tmp);
}

inline void gather_piece(const Piece& p, const float* src, const int64_t* off, const float* w, int64_t b,
                         int64_t e, float init, bool first, float* tmp) {
  const float* s = src + p.base;
  const int64_t nv = p.width / VW;
  if (nv > 0) {
    gather_dispatch<TILE_V>(nv, s, off, w, b, e, init, first, tmp);
  } else {  // shorter than one vector: half a vector where it fits, then one position at a time
    int64_t k0 = 0;
    if (HW >= 4 && p.width >= HW) {
      vh acc = first ? (vh){} + init : loadh(tmp);
      for (int64_t j = b; j < e; ++j) acc += w[j] * loadh(s + off[j]);
      storeh(tmp, acc);
      k0 = HW;
    }
    for (int64_t k = k0; k < p.width; ++k) {
      float acc = first ? init : tmp[k];
      for (int64_t j = b; j < e; ++j) acc += w[j] * s[off[j] + k];
      tmp[k] = acc;
    }
  }
}

// Store a computed piece (positions [p.from, p.base + p.width)) of row r: valid ones only.
inline void store_piece(const Piece& p, const float* tmp, const Grid& g, const Dst& d, int64_t r) {
  const int64_t end = p.base + p.width;
  // grid rows as wide as the output's and laid out like them: one run per image
  const bool flat = g.nx == g.Wg && d.cs == 1 && d.rs == g.Wg;
  int64_t i = p.from;
  while (i < end) {
    const int64_t row = i / g.Wg, x = i - row * g.Wg;
    const int64_t n = row / g.Hg, y = row - n * g.Hg;
    int64_t seg = std::min(end - i, g.Wg - x);
    if (flat && n < g.N && y < g.ny) seg = std::min(end - i, (n * g.Hg + g.ny) * g.Wg - i);
    if (n < g.N && y < g.ny && x < g.nx) {  // (positions rounded up past the grid are dropped)
      const int64_t cnt = flat ? seg : std::min(seg, g.nx - x);
      const float* t = tmp + (i - p.base);
      float* o = d.base + n * d.img + r * d.plane + y * d.rs + x * d.cs;
      if (d.cs == 1) {
        std::memcpy(o, t, cnt * sizeof(float));
      } else if (!d.gaps) {
        for (int64_t k = 0; k < cnt; ++k) o[k * d.cs] = t[k];
      } else {  // y * cs, x * cs is the element (d.base is the plane's start)
        const int64_t c0 = x * d.cs, c1 = std::min(d.width, (x + cnt) * d.cs);
        int64_t k = 0;
        if (d.cs == 2 && HW * 2 == VW) {  // stride 2: HW values and their zeros, one vector at a time
          typedef int32_t vi __attribute__((vector_size(VW * 4)));
          vi mask;
          for (int l = 0; l < VW; ++l) mask[l] = (l & 1) ? VW : l / 2;  // lane VW: the zero vector's first
          for (; k + HW <= cnt && 2 * (k + HW) <= c1 - c0; k += HW)
            storeu(o + 2 * k, __builtin_shuffle(widen(loadh(t + k)), (vf){}, mask));
        }
        for (; k < cnt; ++k) {
          o[k * d.cs] = t[k];
          for (int64_t z = k * d.cs + 1; z < std::min((k + 1) * d.cs, c1 - c0); ++z) o[z] = 0.f;
        }
        for (int64_t dy = 1; dy < d.cs && y * d.cs + dy < d.height; ++dy)
          std::fill(o + dy * d.width, o + dy * d.width + (c1 - c0), 0.f);
      }
    }
    i += seg;
  }
}

// One gather: out[r][i] = init[r] + sum_{j in row r} w[j] * src[off[j] + i] over the grid, valid
// positions stored to d. Rows' nonzeros are split by source-channel block as seg says.
struct Job {
  Grid grid;
  const int64_t* seg;
  int64_t NCB;
  Dst d;
  const float* init;
};

// Runs jobs over grids of the same length side by side: for each image, piece and block of rows,
// every job in turn (a strided grad-input's phases (a, 0), (a, 1) write interleaved columns of the
// same rows: together they fill each line of gx while it is in cache). With nimg > 1 the grids
// are one image's, run for each image n on src + n * src_img into d.base + n * d.img.
// `round_up`: compute up to a whole number of vectors past the grid's end (one pass over the
// nonzeros, no overlapping last piece) where reading past it stays in the source's slack.
void gather_jobs(const std::vector<Job>& jobs, int64_t nimg, int64_t src_img, int64_t R, const int64_t* off,
                 const float* w, const float* src, int threads, bool round_up = false) {
  if (jobs.empty()) return;
  const int64_t L = jobs[0].grid.L();
  const auto ps = pieces(round_up && L >= VW ? (L + VW - 1) / VW * VW : L);
  const int64_t P = ps.size(), NB = (R + RBLOCK - 1) / RBLOCK, J = jobs.size();
  // Dynamic chunks (a thread that loses its core to another process does not hold the others at
  // the barrier) of up to one piece's row blocks (they read the same source window).
  const int chunk = std::max<int64_t>(1, std::min(NB, nimg * P * NB / (4 * std::max(1, threads))));
#pragma omp parallel for collapse(3) schedule(dynamic, chunk) num_threads(threads)
  for (int64_t n = 0; n < nimg; ++n)
    for (int64_t t = 0; t < P; ++t)
      for (int64_t rb = 0; rb < NB; ++rb) {
        alignas(64) float acc[RBLOCK][TILE];
        const Piece& p = ps[t];
        const float* s = src + n * src_img;
        const int64_t r0 = rb * RBLOCK, r1 = std::min(R, r0 + RBLOCK);
        for (int64_t q = 0; q < J; ++q) {
          const Job& job = jobs[q];
          for (int64_t k = 0; k < job.NCB; ++k)
            for (int64_t r = r0; r < r1; ++r) {
              const int64_t* sg = job.seg + r * (job.NCB + 1) + k;
              if (k > 0 && sg[0] == sg[1]) continue;  // no nonzero of row r in this block
              gather_piece(p, s, off, w, sg[0], sg[1], job.init ? job.init[r] : 0.f, k == 0, acc[r - r0]);
            }
          Dst dn = job.d;
          dn.base += n * job.d.img;
          for (int64_t r = r0; r < r1; ++r) store_piece(p, acc[r - r0], job.grid, dn, r);
        }
      }
}

void gather(const Grid& g, int64_t nimg, int64_t src_img, int64_t R, const std::vector<int64_t>& seg, int64_t NCB,
            const int64_t* off, const float* w, const float* init, const float* src, const Dst& d, int threads,
            bool round_up = false) {
  gather_jobs({Job{g, seg.data(), NCB, d, init}}, nimg, src_img, R, off, w, src, threads, round_up);
}

// --- the sampled product (grad-weight) ------------------------------------------------------

template <int V>
inline vf dot_tile(const vf* d, const float* __restrict p) {
  vf s0 = d[0] * loadu(p), s1 = (vf){};
#pragma GCC unroll 16
  for (int v = 1; v < V; ++v) {
    if (v & 1) s1 += d[v] * loadu(p + v * VW);
    else s0 += d[v] * loadu(p + v * VW);
  }
  return s0 + s1;
}

// acc[j - j0] += (one tile of dy) . src[off[j] + base ...] for the nonzeros [b, e) of one row.
template <int V>
inline void sample_tile(const float* __restrict dy, const float* __restrict src, const int64_t* __restrict off,
                        int64_t b, int64_t e, vf* __restrict acc) {
  vf d[V];
  for (int v = 0; v < V; ++v) d[v] = loadu(dy + v * VW);
  for (int64_t j = b; j < e; ++j) acc[j] += dot_tile<V>(d, src + off[j]);
}

template <int V>
inline void sample_dispatch(int64_t nv, const float* dy, const float* src, const int64_t* off, int64_t b, int64_t e,
                            vf* acc) {
  if constexpr (V > 1) {
    if (nv < V) return sample_dispatch<V - 1>(nv, dy, src, off, b, e, acc);
  }
  sample_tile<V>(dy, src, off, b, e, acc);
}

// The same over a tile of any width (the last of an image): whole vectors, then one more ending
// at the width whose lanes the whole vectors counted are zero in dy (it overlaps them: nothing
// is read past the width, as src and dy may be the caller's tensors). Under one vector: half a
// vector where it fits, then single positions.
inline void sample_any(const float* dy, const float* src, const int64_t* off, int64_t b, int64_t e, int64_t width,
                       vf* acc) {
  const int64_t nv = width / VW, rem = width - nv * VW;
  if (nv > 0) {
    sample_dispatch<TILE_V>(nv, dy, src, off, b, e, acc);
    if (rem) {
      vf dt = loadu(dy + width - VW);
      for (int64_t l = 0; l < VW - rem; ++l) dt[l] = 0.f;
      for (int64_t j = b; j < e; ++j) acc[j] += dt * loadu(src + off[j] + width - VW);
    }
    return;
  }
  const bool half = HW >= 4 && width >= HW;
  const vh dh = half ? loadh(dy) : (vh){};
  for (int64_t j = b; j < e; ++j) {
    const float* p = src + off[j];
    vf s = half ? widen(dh * loadh(p)) : (vf){};
    float rest = 0.f;
    for (int64_t i = half ? HW : 0; i < width; ++i) rest += dy[i] * p[i];
    s[VW - 1] += rest;
    acc[j] += s;
  }
}

// gw[dest[j]] = sum_n sum_{i < L} dy[n * dy_img + r(j) * dystride + i] * src[n * src_img + off[j] + i]
// for every nonzero j (dest: where it goes in the dense weight gradient). Work items are (row block, range of tiles): a row block's vector
// accumulators fit L2 (ACC_NNZ), and a layer with few blocks also splits its tiles, each range
// summing into its own accumulators.
// With round_up, each image's positions are counted up to a whole number of vectors: where dy is
// zero past L in its (copied) planes and src has slack, so the last tile needs no overlap.
void sampled_product(int64_t L, int64_t nimg, int64_t src_img, int64_t dy_img, int64_t R, const int32_t* indptr,
                     const std::vector<int64_t>& seg, int64_t NCB, const int64_t* off, const float* src,
                     const float* dy, int64_t dystride, const int64_t* dest, float* gw, int threads,
                     bool round_up = false) {
  if (round_up) L = (L + VW - 1) / VW * VW;
  const int64_t nnz = indptr[R];
  if (nnz == 0) return;
  if (L == 0) return;  // gw is zero already
  std::vector<int64_t> rows{0};  // row blocks: [rows[b], rows[b + 1])
  for (int64_t r = 0; r < R; ++r)
    if (r > rows.back() && indptr[r + 1] - indptr[rows.back()] > ACC_NNZ) rows.push_back(r);
  rows.push_back(R);
  const int64_t NB = rows.size() - 1;
  const int64_t per_img = (L + TILE - 1) / TILE, tiles = nimg * per_img;
  const int64_t K = std::min<int64_t>(tiles, std::max<int64_t>(1, (2 * threads + NB - 1) / NB));
  const int64_t per = (tiles + K - 1) / K;  // tiles per range
  std::vector<float> partial(K > 1 ? K * nnz : 0);

#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(threads)
  for (int64_t b = 0; b < NB; ++b)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t ra = rows[b], rz = rows[b + 1], j0 = indptr[ra], jn = indptr[rz] - j0;
      std::vector<vf> acc(jn, (vf){});
      vf* a = acc.data() - j0;  // indexed by the nonzero's number
      for (int64_t t = k * per; t < std::min(tiles, (k + 1) * per); ++t) {
        const int64_t n = t / per_img, i = (t % per_img) * TILE, width = std::min(TILE, L - i);
        const float* s = src + n * src_img + i;
        const float* dn = dy + n * dy_img + i;
        for (int64_t c = 0; c < NCB; ++c)
          for (int64_t r = ra; r < rz; ++r) {
            const int64_t* sg = seg.data() + r * (NCB + 1) + c;
            if (sg[0] == sg[1]) continue;
            if (width == TILE) sample_tile<TILE_V>(dn + r * dystride, s, off, sg[0], sg[1], a);
            else sample_any(dn + r * dystride, s, off, sg[0], sg[1], width, a);
          }
      }
      for (int64_t j = 0; j < jn; ++j) {
        float sum = 0.f;
        for (int l = 0; l < VW; ++l) sum += acc[j][l];
        if (K > 1) partial[k * nnz + j0 + j] = sum;
        else gw[dest[j0 + j]] = sum;
      }
    }
  if (K > 1) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t j = 0; j < nnz; ++j) {
      float sum = 0.f;
      for (int64_t k = 0; k < K; ++k) sum += partial[k * nnz + j];
      gw[dest[j]] = sum;
    }
  }
}

// --- layouts --------------------------------------------------------------------------------

// How [N, channels, plane] floats lie in a buffer: "stacked" (channel-major, the batch's planes
// one under the other, so one grid covers the batch) or per image (image-major, NCHW: one grid
// per image; a contiguous NCHW tensor is used in place).
struct Layout {
  bool stacked;
  int64_t N, channels, plane;
  int64_t chan() const { return stacked ? N * plane : plane; }     // channel c starts at c * chan()
  int64_t img() const { return stacked ? plane : channels * plane; }  // image n starts at n * img()
  int64_t size() const { return N * channels * plane; }
  int64_t nimg() const { return stacked ? 1 : N; }                 // grids run, one per image or one
  int64_t src_img() const { return stacked ? 0 : img(); }          // ... and their starts
};

// A conv: input [N, C, H, W], weight [O, C, KH, KW], stride S, padding P, and how it is computed.
// Large output planes: per image on the padded, phase-split input (or on x itself: "direct").
// Small planes ("compact", fewer than 2 vectors per image): the batch's positions in one run,
// on im2col rows (one per kept (c, r, s)), so no position is wasted on padding.
struct Geometry {
  int64_t N, C, H, W, O, KH, KW, KK, S, P, Hout, Wout, Hq, Wq, SA, SB;
  bool compact, direct;
  Geometry(int64_t N_, int64_t C_, int64_t H_, int64_t W_, int64_t O_, int64_t KH_, int64_t KW_, int64_t S_,
           int64_t P_)
      : N(N_), C(C_), H(H_), W(W_), O(O_), KH(KH_), KW(KW_), KK(KH_ * KW_), S(S_), P(P_) {
    TORCH_CHECK(S >= 1 && P >= 0 && KH >= 1 && KW >= 1, "bad kernel size, stride or padding");
    TORCH_CHECK(H + 2 * P >= KH && W + 2 * P >= KW, "input smaller than the kernel");
    Hout = (H + 2 * P - KH) / S + 1;
    Wout = (W + 2 * P - KW) / S + 1;
    Hq = (H + 2 * P + S - 1) / S;  // rows of one phase plane of the padded input
    Wq = (W + 2 * P + S - 1) / S;
    SA = std::min(S, KH);  // phases some tap reads: (a, b) with a < SA, b < SB
    SB = std::min(S, KW);
    compact = Hout * Wout < 2 * VW;
    direct = !compact && S == 1 && P == 0 && KK == 1;
  }
  int64_t positions() const { return N * Hout * Wout; }
  Layout source() const { return {false, N, SA * SB * C, Hq * Wq}; }  // the phase-split input
  // Where kept weight column col = c*KH*KW + r*KW + s reads the phase-split source.
  int64_t offset(int64_t col) const {
    const int64_t c = col / KK, r = (col % KK) / KW, s = col % KW;
    return (((r % S) * SB + (s % S)) * C + c) * source().chan() + (r / S) * Wq + (s / S);
  }
  // The forward's grid (also grad-weight's): per image at row width Wq, or the batch's positions.
  Grid grid() const { return compact ? Grid{N, Hout, Wout, Hout, Wout} : Grid{1, Hq, Wq, Hout, Wout}; }
};

// The input zero-padded and split into phase planes: phase (a, b) of channel c holds
// padded[n][c][u*S + a][v*S + b] at row u, column v of plane (a*SB + b)*C + c; then zero slack
// for the reads past the last plane (kept positions' windows, grad-weight's last vectors).
at::Tensor phase_split(const at::Tensor& x, const Geometry& g, int threads) {
  const Layout l = g.source();
  const int64_t S = g.S, slack = 2 * g.Wq + 2 * TILE;
  auto buf = at::empty({l.size() + slack}, x.options());
  float* B = buf.data_ptr<float>();
  const float* X = x.data_ptr<float>();
  std::fill(B + l.size(), B + buf.numel(), 0.f);
#pragma omp parallel for collapse(3) schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t ph = 0; ph < g.SA * g.SB; ++ph)
      for (int64_t c = 0; c < g.C; ++c) {
        const int64_t a = ph / g.SB, bb = ph % g.SB;
        float* dst = B + n * l.img() + (ph * g.C + c) * l.chan();
        const float* xc = X + (n * g.C + c) * g.H * g.W;
        for (int64_t u = 0; u < g.Hq; ++u) {
          const int64_t row = u * S + a - g.P;
          float* d = dst + u * g.Wq;
          if (row < 0 || row >= g.H) {
            std::fill(d, d + g.Wq, 0.f);
            continue;
          }
          const float* xr = xc + row * g.W;
          if (S == 1) {
            std::fill(d, d + g.P, 0.f);
            std::memcpy(d + g.P, xr, g.W * sizeof(float));
            std::fill(d + g.P + g.W, d + g.Wq, 0.f);
          } else {  // columns v0 .. v1 - 1 read the row (v*S + bb - P in [0, W)), a strided copy
            const int64_t v0 = std::min(g.Wq, g.P - bb <= 0 ? int64_t(0) : (g.P - bb + S - 1) / S);
            const int64_t last = g.W - 1 + g.P - bb;
            const int64_t v1 = std::max(v0, std::min(g.Wq, last < 0 ? int64_t(0) : last / S + 1));
            const float* xs = xr + bb - g.P;
            std::fill(d, d + v0, 0.f);
            for (int64_t v = v0; v < v1; ++v) d[v] = xs[v * S];
            std::fill(d + v1, d + g.Wq, 0.f);
          }
        }
      }
  return buf;
}

// The compact mode's rows: rows[k] = the k-th weight column (c*KK + r*KW + s) some kept weight
// uses, row_of[col] = its row (-1: unused). Rows are in column order, so grouped by channel.
struct Columns {
  std::vector<int32_t> rows, row_of;
  Columns(const Geometry& g, const at::Tensor& cols) : row_of(g.C * g.KK, -1) {
    const int32_t* ci = cols.data_ptr<int32_t>();
    for (int64_t j = 0; j < cols.numel(); ++j) row_of[ci[j]] = 0;
    for (int64_t col = 0; col < g.C * g.KK; ++col)
      if (row_of[col] == 0) {
        row_of[col] = rows.size();
        rows.push_back(col);
      }
  }
};

// im2col of the used columns: row k holds xpad[n][c][y*S + r][x*S + s] at position (n, y, x).
at::Tensor im2col(const at::Tensor& x, const Geometry& g, const Columns& cs, int threads) {
  const int64_t R = cs.rows.size(), L = g.positions();
  auto buf = at::empty({R * L}, x.options());
  float* U = buf.data_ptr<float>();
  const float* X = x.data_ptr<float>();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t k = 0; k < R; ++k) {
    const int64_t col = cs.rows[k], c = col / g.KK, r = (col % g.KK) / g.KW, s = col % g.KW;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* xc = X + (n * g.C + c) * g.H * g.W;
      float* u = U + k * L + n * g.Hout * g.Wout;
      for (int64_t y = 0; y < g.Hout; ++y) {
        const int64_t iy = y * g.S + r - g.P;
        for (int64_t xo = 0; xo < g.Wout; ++xo) {
          const int64_t ix = xo * g.S + s - g.P;
          u[y * g.Wout + xo] = (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W) ? xc[iy * g.W + ix] : 0.f;
        }
      }
    }
  }
  return buf;
}

// gy [N, O, Hout, Wout] copied into layout l (planes Hb x Wb) with gy at (top + u, left + v),
// zeros elsewhere, then `slack` zeros.
at::Tensor pad_grad(const at::Tensor& gy, const Geometry& g, const Layout& l, int64_t Wb, int64_t top, int64_t left,
                    int64_t slack, int threads) {
  auto buf = at::empty({l.size() + slack}, gy.options());
  float* B = buf.data_ptr<float>();
  const float* Y = gy.data_ptr<float>();
  std::fill(B + l.size(), B + buf.numel(), 0.f);
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      float* dst = B + n * l.img() + o * l.chan();
      const float* src = Y + (n * g.O + o) * g.Hout * g.Wout;
      std::fill(dst, dst + top * Wb, 0.f);
      for (int64_t u = 0; u < g.Hout; ++u) {
        float* d = dst + (top + u) * Wb;
        std::fill(d, d + left, 0.f);
        std::memcpy(d + left, src + u * g.Wout, g.Wout * sizeof(float));
        std::fill(d + left + g.Wout, d + Wb, 0.f);
      }
      std::fill(dst + (top + g.Hout) * Wb, dst + l.plane, 0.f);
    }
  return buf;
}

void check_index(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.dtype() == at::kInt && t.is_contiguous() && t.device().is_cpu(), what,
              " must be a contiguous int32 CPU tensor");
}

at::Tensor as_input(const at::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == 4 && x.dtype() == at::kFloat && x.device().is_cpu(), what,
              " must be float32 [N, C, H, W] on the CPU");
  return x.contiguous();
}

// The kept weights as the kernels read them, from CSR over output channels: where each reads
// its source, its source channel (for channel blocks) and its index in the dense weight, from a
// table per weight column (no division per nonzero). A compact conv's source is its im2col rows.
struct Kept {
  std::vector<int64_t> off, dest;
  std::vector<int32_t> sch;
  Kept(const Geometry& g, const at::Tensor& indptr, const at::Tensor& cols, const Columns* cs) {
    const int64_t nnz = cols.numel(), CKK = g.C * g.KK;
    const int32_t* ip = indptr.data_ptr<int32_t>();
    const int32_t* ci = cols.data_ptr<int32_t>();
    std::vector<int64_t> col_off(CKK);
    std::vector<int32_t> col_ch(CKK);
    for (int64_t col = 0; col < CKK; ++col) {
      col_ch[col] = cs ? cs->row_of[col] : col / g.KK;
      col_off[col] = cs ? int64_t(col_ch[col]) * g.positions() : g.offset(col);
    }
    off.resize(nnz);
    dest.resize(nnz);
    sch.resize(nnz);
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t j = ip[o]; j < ip[o + 1]; ++j) {
        TORCH_CHECK(ci[j] >= 0 && ci[j] < CKK, "column index out of range");
        dest[j] = o * CKK + ci[j];
        off[j] = col_off[ci[j]];
        sch[j] = col_ch[ci[j]];
      }
  }
};

// Channel blocks for a CSR over output channels (forward, grad-weight).
std::vector<int64_t> forward_blocks(const Geometry& g, const at::Tensor& indptr, const Kept& k,
                                    const Columns* cs, int64_t& NCB) {
  const int64_t channels = cs ? int64_t(cs->rows.size()) : g.C;
  const int64_t window = cs ? std::min(TILE, g.positions()) * 4
                            : g.SA * g.SB *
                                  (std::min(TILE, g.grid().L()) + ((g.KH - 1) / g.S) * g.Wq + (g.KW - 1) / g.S + 1) * 4;
  const int64_t CB = block_channels(channels, g.O, k.off.size(), window);
  NCB = std::max<int64_t>(1, (channels + CB - 1) / CB);  // one block even with no channel: it initialises
  return channel_blocks(g.O, indptr.data_ptr<int32_t>(), k.sch.data(), CB, NCB);
}

void check_csr(const at::Tensor& indptr, const at::Tensor& cols, int64_t O) {
  check_index(indptr, "indptr");
  check_index(cols, "cols");
  TORCH_CHECK(indptr.numel() == O + 1 && indptr.data_ptr<int32_t>()[O] == cols.numel(),
              "indptr must have O + 1 entries ending at the nonzero count");
}

}  // namespace

// Forward: x [N, C, H, W], the dense weight [O, C, KH, KW] and its kept positions as CSR over
// output channels (indptr [O + 1], cols c*KH*KW + r*KW + s), bias [O] or empty ->
// (y [N, O, Hout, Wout], the source the backward reads: x itself, its padded phase planes or its
// im2col rows; the kept values in CSR order, read from the weight once for both passes).
std::vector<at::Tensor> conv_forward(at::Tensor x, at::Tensor weight, at::Tensor indptr, at::Tensor cols,
                                     at::Tensor bias, int64_t stride, int64_t pad, int64_t threads) {
  x = as_input(x, "x");
  TORCH_CHECK(weight.dim() == 4 && weight.dtype() == at::kFloat, "weight must be float32 [O, C, KH, KW]");
  weight = weight.contiguous();
  const int64_t O = weight.size(0);
  check_csr(indptr, cols, O);
  TORCH_CHECK(weight.size(1) == x.size(1), "input has ", x.size(1), " channels, the weight expects ", weight.size(1));
  TORCH_CHECK(bias.numel() == 0 || (bias.numel() == O && bias.dtype() == at::kFloat), "bias must be [O] float32");
  bias = bias.contiguous();
  const Geometry g(x.size(0), x.size(1), x.size(2), x.size(3), O, weight.size(2), weight.size(3), stride, pad);
  std::unique_ptr<Columns> cs(g.compact ? new Columns(g, cols) : nullptr);
  auto src = g.compact ? im2col(x, g, *cs, threads) : g.direct ? x : phase_split(x, g, threads);
  const Kept k(g, indptr, cols, cs.get());
  auto vals = at::empty({cols.numel()}, weight.options());
  float* v = vals.data_ptr<float>();
  const float* wv = weight.data_ptr<float>();
  for (int64_t j = 0; j < cols.numel(); ++j) v[j] = wv[k.dest[j]];  // in weight order: a stream
  int64_t NCB;
  const auto seg = forward_blocks(g, indptr, k, cs.get(), NCB);
  auto y = at::empty({g.N, O, g.Hout, g.Wout}, x.options());
  const Dst d{y.data_ptr<float>(), O * g.Hout * g.Wout, g.Hout * g.Wout, g.Wout, 1};
  const Layout l = g.source();
  gather(g.grid(), g.compact ? 1 : l.nimg(), g.compact ? 0 : l.src_img(), O, seg, NCB, k.off.data(), v,
         bias.numel() ? bias.data_ptr<float>() : nullptr, src.data_ptr<float>(), d, threads,
         !g.compact && !g.direct);  // the phase-split copy has slack
  return {y, src, vals};
}

namespace {

// grad-input of a compact conv: the im2col rows' gradient gU = W^T gy (a gather over a CSR per
// used column, built here), then added back into gx where each row came from (col2im).
at::Tensor compact_grad_input(const Geometry& g, const Columns& cs, const at::Tensor& indptr,
                              const at::Tensor& cols, const float* vals, const float* gyc, int threads) {
  const int64_t R = cs.rows.size(), L = g.positions(), nnz = cols.numel();
  const int32_t* ip = indptr.data_ptr<int32_t>();
  const int32_t* ci = cols.data_ptr<int32_t>();
  std::vector<int32_t> cp(R + 1, 0);  // CSR over used columns, output channels in order
  for (int64_t j = 0; j < nnz; ++j) ++cp[cs.row_of[ci[j]] + 1];
  for (int64_t r = 0; r < R; ++r) cp[r + 1] += cp[r];
  std::vector<int32_t> fill(cp.begin(), cp.end() - 1), sch(nnz);
  std::vector<int64_t> off(nnz);
  std::vector<float> tv(nnz);
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t j = ip[o]; j < ip[o + 1]; ++j) {
      const int64_t at = fill[cs.row_of[ci[j]]]++;
      sch[at] = o;
      off[at] = o * L;
      tv[at] = vals[j];
    }
  const int64_t CB = block_channels(g.O, R, nnz, std::min(TILE, L) * 4), NCB = (g.O + CB - 1) / CB;
  const auto seg = channel_blocks(R, cp.data(), sch.data(), CB, NCB);
  auto gu = at::empty({R * L}, at::kFloat);
  const Dst d{gu.data_ptr<float>(), g.Hout * g.Wout, L, g.Wout, 1};
  gather(g.grid(), 1, 0, R, seg, NCB, off.data(), tv.data(), nullptr, gyc, d, threads);

  auto gx = at::zeros({g.N, g.C, g.H, g.W}, at::kFloat);
  float* GX = gx.data_ptr<float>();
  const float* U = gu.data_ptr<float>();
  std::vector<int64_t> first(g.C + 1, R);  // rows of channel c: [first[c], first[c + 1])
  for (int64_t k = R - 1; k >= 0; --k) first[cs.rows[k] / g.KK] = k;
  for (int64_t c = g.C - 1; c >= 0; --c) first[c] = std::min(first[c], first[c + 1]);
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t c = 0; c < g.C; ++c) {
      float* xc = GX + (n * g.C + c) * g.H * g.W;
      for (int64_t k = first[c]; k < first[c + 1]; ++k) {
        const int64_t col = cs.rows[k], r = (col % g.KK) / g.KW, s = col % g.KW;
        const float* u = U + k * L + n * g.Hout * g.Wout;
        for (int64_t y = 0; y < g.Hout; ++y) {
          const int64_t iy = y * g.S + r - g.P;
          if (iy < 0 || iy >= g.H) continue;
          for (int64_t xo = 0; xo < g.Wout; ++xo) {
            const int64_t ix = xo * g.S + s - g.P;
            if (ix >= 0 && ix < g.W) xc[iy * g.W + ix] += u[y * g.Wout + xo];
          }
        }
      }
    }
  return gx;
}

}  // namespace

// Backward: gy [N, O, Hout, Wout], the forward's source and kept values, the weight's shape
// [O, C, KH, KW] -> (grad-input [N, C, H, W] or None, the weight's gradient [O, C, KH, KW],
// zero off the kept positions, or None). The transposed weight, for grad-input on large planes:
// t_indptr [S*S*C + 1] (rows: phase (r % S, s % S), then input channel c), t_cols
// o*KH*KW + r*KW + s sorted by o in a row, t_perm the CSR index of each of its nonzeros.
std::vector<at::Tensor> conv_backward(at::Tensor gy, at::Tensor src, at::Tensor vals, std::vector<int64_t> shape,
                                      at::Tensor indptr, at::Tensor cols, at::Tensor t_indptr, at::Tensor t_cols,
                                      at::Tensor t_perm, int64_t H, int64_t W, int64_t stride, int64_t pad,
                                      bool need_input, bool need_weight, int64_t threads) {
  gy = as_input(gy, "grad_output");
  TORCH_CHECK(shape.size() == 4, "shape must be the weight's [O, C, KH, KW]");
  const int64_t O = shape[0], C = shape[1];
  check_csr(indptr, cols, O);
  TORCH_CHECK(vals.dtype() == at::kFloat && vals.is_contiguous() && vals.numel() == cols.numel(),
              "vals must be the forward's kept values");
  const Geometry g(gy.size(0), C, H, W, O, shape[2], shape[3], stride, pad);
  TORCH_CHECK(gy.size(1) == O && gy.size(2) == g.Hout && gy.size(3) == g.Wout, "grad_output has shape ",
              gy.sizes(), ", expected [", g.N, ", ", O, ", ", g.Hout, ", ", g.Wout, "]");
  const int64_t S = g.S, P = g.P, KH = g.KH, KW = g.KW, KK = g.KK;
  const float* vv = vals.data_ptr<float>();
  std::unique_ptr<Columns> cs(g.compact ? new Columns(g, cols) : nullptr);
  const int64_t srcsize = g.compact ? int64_t(cs->rows.size()) * g.positions() : g.source().size();
  TORCH_CHECK(src.dtype() == at::kFloat && src.is_contiguous() && src.numel() >= srcsize,
              "src must be the forward's source");
  const auto opts = gy.options();
  at::Tensor gx, gw;

  if (g.compact) {  // gy as [O][N * Hout * Wout], read by both gradients
    const Layout ql{true, g.N, O, g.Hout * g.Wout};
    const auto gyc = pad_grad(gy, g, ql, g.Wout, 0, 0, 0, threads);
    if (need_input) gx = compact_grad_input(g, *cs, indptr, cols, vv, gyc.data_ptr<float>(), threads);
    if (need_weight) {
      gw = at::zeros(shape, opts);
      const Kept k(g, indptr, cols, cs.get());
      int64_t NCB;
      const auto seg = forward_blocks(g, indptr, k, cs.get(), NCB);
      sampled_product(g.positions(), 1, 0, 0, O, indptr.data_ptr<int32_t>(), seg, NCB, k.off.data(),
                      src.data_ptr<float>(), gyc.data_ptr<float>(), ql.chan(), k.dest.data(), gw.data_ptr<float>(),
                      threads);
    }
    return {gx, gw};
  }

  // grad-input: phase (a, b) of the padded input covers rows q in [lo(a), hi(a)] (padded row
  // q*S + a is an input row) and reads gy rows q - r' for r' < taps(a); gy is padded by `top`
  // rows and `left` columns so that every read is in its image's plane, zero outside gy.
  auto taps = [S](int64_t K, int64_t a) { return a < K ? (K - a + S - 1) / S : 0; };
  auto lo = [S, P](int64_t a) { return P - a <= 0 ? int64_t(0) : (P - a + S - 1) / S; };
  auto hi = [S, P](int64_t a, int64_t len) {
    const int64_t num = P + len - 1 - a;
    return num < 0 ? int64_t(-1) : num / S;
  };
  int64_t top = 0, left = 0, rows = g.Hout, width = g.Wout;
  for (int64_t a = 0; a < S; ++a) {
    if (taps(KH, a) > 0) top = std::max(top, taps(KH, a) - 1 - lo(a));
    if (taps(KW, a) > 0) left = std::max(left, taps(KW, a) - 1 - lo(a));
    rows = std::max(rows, hi(a, H) + 1);
    width = std::max(width, hi(a, W) + 1);
  }
  const int64_t Hb = top + rows, Wb = left + width;
  const Layout gl{false, g.N, O, Hb * Wb};      // gy for grad-input
  const Layout ql{false, g.N, O, g.Hq * g.Wq};  // gy on the forward's grid, for grad-weight
  const bool unpadded = top == 0 && left == 0 && Hb == g.Hout && Wb == g.Wout;

  at::Tensor gpad, gq;
  const float* dyq = nullptr;
  bool dyq_copied = false;  // zero past each plane's valid rows: grad-weight may round its length up
  if (need_input) {
    gpad = unpadded ? gy : pad_grad(gy, g, gl, Wb, top, left, (top + 2) * Wb + 2 * TILE, threads);
    if (Hb == g.Hq && Wb == g.Wq) {  // the same planes: grad-weight's gy is this one, shifted
      dyq = gpad.data_ptr<float>() + top * Wb + left;
      dyq_copied = !unpadded;
    }
  }
  if (need_weight && dyq == nullptr) {
    const bool same = g.Hq == g.Hout && g.Wq == g.Wout;
    gq = same ? gy : pad_grad(gy, g, ql, g.Wq, 0, 0, 2 * TILE, threads);
    dyq = gq.data_ptr<float>();
    dyq_copied = !same;
  }

  if (need_input) {
    check_index(t_indptr, "t_indptr");
    check_index(t_cols, "t_cols");
    check_index(t_perm, "t_perm");
    const int64_t nnz = t_cols.numel();
    TORCH_CHECK(t_indptr.numel() == S * S * C + 1 && t_indptr.data_ptr<int32_t>()[S * S * C] == nnz &&
                    t_perm.numel() == nnz && nnz == cols.numel(),
                "t_indptr must have stride*stride*C + 1 entries ending at the nonzero count");
    // Phases no tap reads (a 1x1 stride-2 conv's three of four) get no gradient: zeros, written
    // with the values for an unpadded 1x1 conv (gaps), else set first.
    const bool gaps = KK == 1 && S > 1 && P == 0;
    gx = (gaps || (g.SA == S && g.SB == S)) ? at::empty({g.N, C, H, W}, opts) : at::zeros({g.N, C, H, W}, opts);
    const int32_t* tp = t_indptr.data_ptr<int32_t>();
    const int32_t* tc = t_cols.data_ptr<int32_t>();
    const int32_t* pm = t_perm.data_ptr<int32_t>();
    std::vector<int64_t> tap_off(KK);  // per (r, s): the offset in its phase, less o * gl.chan()
    for (int64_t rs = 0; rs < KK; ++rs) {
      const int64_t r = rs / KW, s = rs % KW;
      tap_off[rs] = (lo(r % S) - r / S + top) * Wb + (lo(s % S) - s / S + left);
    }
    std::vector<int64_t> off(nnz);
    std::vector<int32_t> sch(nnz);
    std::vector<float> tv(nnz);
    for (int64_t j = 0; j < nnz; ++j) {
      TORCH_CHECK(tc[j] >= 0 && tc[j] < O * KK && pm[j] >= 0 && pm[j] < nnz, "transposed index out of range");
      const int64_t o = tc[j] / KK;
      sch[j] = o;
      off[j] = o * gl.chan() + tap_off[tc[j] - o * KK];
      tv[j] = vv[pm[j]];
    }
    for (int64_t a = 0; a < S; ++a) {  // the phases of a row phase together (see gather_jobs)
      std::vector<Job> jobs;
      std::vector<std::vector<int64_t>> segs(S);
      for (int64_t b = 0; b < S; ++b) {
        const int64_t ph = a * S + b, qlo = lo(a), tlo = lo(b);
        const Grid grid{1, Hb, Wb, hi(a, H) - qlo + 1, hi(b, W) - tlo + 1};
        if (grid.ny <= 0 || grid.nx <= 0 || taps(KH, a) == 0 || taps(KW, b) == 0) continue;
        const int64_t window = (std::min(TILE, grid.L()) + (taps(KH, a) - 1) * Wb + taps(KW, b)) * 4;
        const int64_t nnzp = tp[(ph + 1) * C] - tp[ph * C];
        const int64_t CB = block_channels(O, C, nnzp, window), NCB = (O + CB - 1) / CB;
        segs[b] = channel_blocks(C, tp + ph * C, sch.data(), CB, NCB);
        const Dst d{gx.data_ptr<float>() + (qlo * S + a - P) * W + (tlo * S + b - P), C * H * W, H * W, S * W, S,
                    gaps, W, H};
        jobs.push_back(Job{grid, segs[b].data(), NCB, d, nullptr});
      }
      gather_jobs(jobs, gl.nimg(), gl.src_img(), C, off.data(), tv.data(), gpad.data_ptr<float>(), threads,
                  !unpadded);
    }
  }

  if (need_weight) {
    const Layout l = g.source();
    gw = at::zeros(shape, opts);
    const Kept k(g, indptr, cols, nullptr);
    int64_t NCB;
    const auto seg = forward_blocks(g, indptr, k, nullptr, NCB);
    const int64_t L = g.grid().L();
    const bool round_up = dyq_copied && !g.direct && g.Hq * g.Wq >= (L + VW - 1) / VW * VW;
    sampled_product(L, l.nimg(), l.src_img(), ql.src_img(), O, indptr.data_ptr<int32_t>(), seg, NCB, k.off.data(),
                    src.data_ptr<float>(), dyq, ql.chan(), k.dest.data(), gw.data_ptr<float>(), threads, round_up);
  }
  return {gx, gw};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv_forward", &conv_forward, "sparse conv2d forward (CSR over output channels): (y, source, kept values)");
  m.def("conv_backward", &conv_backward, "sparse conv2d backward: (grad-input, dense weight gradient)");
}
