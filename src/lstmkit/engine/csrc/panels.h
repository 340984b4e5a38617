// The per-step products below the oneDNN threshold, without a library call per step.
//
//   Z (n, N) = A (n, K) · Wᵀ  with W (N, K)   "nt": the forward step h_{t-1} W_hhᵀ
//   Z (n, N) = A (n, K) · W   with W (K, N)   "nn": the backward step ∂z W_hh
//
// optionally added to Z (acc). MKL's sgemm costs ~12 µs a call at 32×64→256, more than the
// arithmetic, so small models spent most of each step in its fixed cost (docs/performance.md).
// In float32, W is packed once per call into panels of NR = 2 vector widths of columns, k-major
// and zero-padded, and each step runs a register-blocked kernel: MR rows × NR columns of
// accumulators, per k one broadcast of A per row and two vector loads of W. Panels are split
// across threads when a step has enough work to pay for waking them. float64 (gradchecks,
// references) calls BLAS.
#pragma once

#include "common.h"

namespace lstmkit {

inline bool panels_allowed() {  // LSTMKIT_PANELS=0: every per-step product on BLAS (for comparisons)
  const char* off = std::getenv("LSTMKIT_PANELS");
  return !(off && std::string(off) == "0");
}

template <typename T>
inline void blas_mm(bool nt, int64_t n, int64_t N, int64_t K, const T* A, int64_t lda, const T* W, T* C, int64_t ldc,
                    bool acc) {
  if (nt) {
    gemm_nt<T>(n, N, K, A, lda, W, K, acc ? T(1) : T(0), C, ldc);
  } else {
    gemm_nn<T>(n, N, K, A, lda, W, N, acc ? T(1) : T(0), C, ldc);
  }
}

template <typename T>
struct Panels {  // float64 and any other type: BLAS on the unpacked weight
  const T* w = nullptr;
  int64_t N = 0, K = 0;
  bool nt = true;
  Panels() = default;
  Panels(const T* W, int64_t N_, int64_t K_, bool nt_, int64_t, Split = Split::none) : w(W), N(N_), K(K_), nt(nt_) {}
  void mm(int64_t n, const T* A, int64_t lda, T* C, int64_t ldc, bool acc = false) const {
    blas_mm<T>(nt, n, N, K, A, lda, w, C, ldc, acc);
  }
};

// With the batch split (batch_split below), each thread streams the whole packed weight every step,
// so there the panel kernel takes any step whose weight, less its skipped zero runs, is at most this
// many bytes, and oneDNN (one thread loop, fork/join per step) only larger ones. A/B against oneDNN,
// ratios to nn.LSTM in one process, 2 threads, AVX2 (2026-12-07; fgr before its zero runs were skipped:
// 2.34 against 2.48 at (100,32,256,256) inference):
//   gru (100,64,512,512), 3 MiB: 0.78 / 0.87 against 0.80 / 0.99 (inference / training)
//   gru reset_before, 2 + 1 MiB: 0.74 / 0.83 against 0.82 / 0.92
//   lstm proj (H 512, P 256), 2 MiB: 0.90 / 0.89 against 0.90 / 1.01
//   lstm (100,64,384,384), 2.25 MiB: 1.02 / 0.88 against 1.11 / 1.00
//   fgr (100,{16,32,64},256,256), 3.25 of 4 MiB: 2.17 / 2.06 / 2.11 against 3.01 / 2.62 / 2.55 (inference)
//   lstm (100,64,512,512), 4 MiB: 1.04 / 1.17, the same as oneDNN; (100,32,512,512): 1.04 against 0.90
//   fgr (100,64,512,512), 16 MiB: 6.99 against 2.84 (memory-bound)
constexpr double kBatchSplitMaxBytes = 3.5 * (1 << 20);

// Steps below this many FLOPs run on one thread: an OpenMP fork/join costs a few µs.
constexpr double kPanelsParallelMinFlops = 1e6;
// The unit-split threads (lstm.cpp, gru.cpp) meet once per step at a barrier, with the pointwise
// pass split too, so they pay from smaller steps.
constexpr double kSplitMinFlops = 2.5e5;

// The kernel's rows, spelled out: GCC keeps named vector variables in registers, but an array of
// Vectorized accumulators was written to the stack on every k (measured: slower than MKL).
#define LSTMKIT_ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define LSTMKIT_ROWS4(X) X(0) X(1) X(2) X(3)

template <>
struct Panels<float> {
  using V = Vec<float>;
  static constexpr int64_t VW = V::size(), NR = 2 * VW;
  // 2·MR accumulators + 2 loads of W + 1 broadcast must fit the vector registers (32 with AVX-512, 16 with AVX2).
  static constexpr int64_t MR = VW >= 16 ? 8 : 4;
  Tensor buf;    // (panels, K, NR); undefined: BLAS on w
  Tensor zeros;  // (K,): the A row of a missing row in the last row block
  // Each panel's k-ranges [k0, k1) that hold a non-zero weight: runs of at least kMinZeroRun k's
  // where a whole panel row is zero are skipped. FGR's [W_hh | R] has one such block (C̃'s rows
  // never see a_{t-1}): 3/16 of its product.
  std::vector<std::pair<int64_t, int64_t>> segs;
  std::vector<int64_t> seg0;  // panel p's ranges: segs[seg0[p] : seg0[p + 1]]
  static constexpr int64_t kMinZeroRun = 32;
  const float* w = nullptr;
  int64_t N = 0, K = 0, np = 0;
  bool nt = true;

  Panels() = default;
  // For products of up to `batch` rows. Steps of onednn_min_flops(split) or more stay on BLAS (or
  // oneDNN, which the caller tries where this declines): there the library's cache blocking beats
  // this kernel, unless the caller's loop splits over threads (`split`, see kOneDnnSplitMinFlops),
  // or splits the batch and the weight streams from cache fast enough (kBatchSplitMaxBytes).
  Panels(const float* W, int64_t N_, int64_t K_, bool nt_, int64_t batch, Split split = Split::none)
      : w(W), N(N_), K(K_), np((N_ + NR - 1) / NR), nt(nt_) {
    if (!panels_allowed()) return;
    const bool small = 2.0 * batch * N * K < onednn_min_flops(split);
    // LSTMKIT_ONEDNN_MIN_FLOPS (A/B runs) leaves only the FLOP rule.
    if (!small && !(split == Split::batch && !onednn_min_flops_env() && nonzero_at_most(W, kBatchSplitMaxBytes / 4)))
      return;
    pack(W);
    if (!small && streamed_bytes() > kBatchSplitMaxBytes) {  // back to BLAS (or the caller's oneDNN)
      buf = zeros = Tensor();
      segs.clear();
      seg0.clear();
    }
  }

  // Whether W has at most `most` non-zero entries (a cheap bound before packing it).
  bool nonzero_at_most(const float* W, double most) const {
    if (N * K <= most) return true;
    if (N * K > 2 * most) return false;  // not worth the scan: only FGR's weight has a zero block
    int64_t nz = 0;
    for (int64_t i = 0; i < N * K; ++i) nz += W[i] != 0.f;
    return nz <= most;
  }

  double streamed_bytes() const {  // what one product reads of the packed weight
    double rows = 0;
    for (const auto& [k0, k1] : segs) rows += k1 - k0;
    return rows * NR * sizeof(float);
  }

  void pack(const float* W) {
    buf = at::zeros({np * K * NR}, at::kFloat);
    zeros = at::zeros({K}, at::kFloat);
    float* d = buf.data_ptr<float>();
    seg0.push_back(0);
    for (int64_t p = 0; p < np; ++p) {
      int64_t k0 = 0, zrun = 0;  // the open range starts at k0; its last zrun rows are zero
      for (int64_t k = 0; k < K; ++k) {
        float* row = d + (p * K + k) * NR;
        bool zero = true;
        for (int64_t c = 0; c < NR && p * NR + c < N; ++c) {
          const int64_t j = p * NR + c;
          row[c] = nt ? W[j * K + k] : W[k * N + j];
          zero = zero && row[c] == 0.f;
        }
        if (zero) {
          ++zrun;
        } else {
          if (zrun >= kMinZeroRun) {  // close the range before the run, open one here
            if (k - zrun > k0) segs.emplace_back(k0, k - zrun);
            k0 = k;
          }
          zrun = 0;
        }
      }
      const int64_t k1 = zrun >= kMinZeroRun ? K - zrun : K;
      if (k1 > k0 || static_cast<int64_t>(segs.size()) == seg0.back()) segs.emplace_back(k0, std::max(k0, k1));
      seg0.push_back(segs.size());
    }
  }

  static inline void put(float* c, V v0, V v1, int64_t n0, int64_t n1, bool acc) {
    if (acc) {
      v0 = v0 + V::loadu(c, n0);
      if (n1 > 0) v1 = v1 + V::loadu(c + VW, n1);
    }
    v0.store(c, n0);
    if (n1 > 0) v1.store(c + VW, n1);
  }

  // C[r, :cols] (+)= A_r · panel for the MR rows A_r (rows r >= valid read zeros and are not stored).
  static void kernel(int64_t K, const float* const* A, const float* P, float* C, int64_t ldc, int64_t cols,
                     bool acc, int64_t valid) {
#define LSTMKIT_DECL(r) V c##r##0(0.f), c##r##1(0.f); const float* a##r = A[r];
#define LSTMKIT_FMA(r)                          \
  {                                             \
    const V x(a##r[k]);                         \
    c##r##0 = at::vec::fmadd(x, b0, c##r##0);  \
    c##r##1 = at::vec::fmadd(x, b1, c##r##1);  \
  }
#define LSTMKIT_PUT(r) \
  if (r < valid) put(C + r * ldc, c##r##0, c##r##1, n0, n1, acc);
#if defined(CPU_CAPABILITY_AVX512)
#define LSTMKIT_ROWS LSTMKIT_ROWS8
#else
#define LSTMKIT_ROWS LSTMKIT_ROWS4
#endif
    static_assert(MR == (VW >= 16 ? 8 : 4), "LSTMKIT_ROWS must spell out MR rows");
    LSTMKIT_ROWS(LSTMKIT_DECL)
    for (int64_t k = 0; k < K; ++k) {
      const V b0 = V::loadu(P + k * NR), b1 = V::loadu(P + k * NR + VW);
      LSTMKIT_ROWS(LSTMKIT_FMA)
    }
    const int64_t n0 = std::min(cols, VW), n1 = cols - n0;
    LSTMKIT_ROWS(LSTMKIT_PUT)
#undef LSTMKIT_DECL
#undef LSTMKIT_FMA
#undef LSTMKIT_PUT
#undef LSTMKIT_ROWS
  }

  void run(int64_t p0, int64_t p1, int64_t n, const float* A, int64_t lda, float* C, int64_t ldc, bool acc) const {
    const float *d = buf.data_ptr<float>(), *z = zeros.data_ptr<float>();
    const float *rows[MR], *at[MR];
    for (int64_t r0 = 0; r0 < n; r0 += MR) {
      const int64_t valid = std::min(MR, n - r0);
      for (int64_t r = 0; r < MR; ++r) rows[r] = r < valid ? A + (r0 + r) * lda : z;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j = p * NR, cols = std::min(NR, N - j);
        if (seg0[p + 1] - seg0[p] == 1 && segs[seg0[p]].first == 0) {  // the usual case: one range from k = 0
          kernel(segs[seg0[p]].second, rows, d + p * K * NR, C + r0 * ldc + j, ldc, cols, acc, valid);
          continue;
        }
        for (int64_t s = seg0[p]; s < seg0[p + 1]; ++s) {  // the later ranges add to the first's result
          const auto [k0, k1] = segs[s];
          for (int64_t r = 0; r < MR; ++r) at[r] = rows[r] + k0;
          kernel(k1 - k0, at, d + (p * K + k0) * NR, C + r0 * ldc + j, ldc, cols, acc || s > seg0[p], valid);
        }
      }
    }
  }

  void mm(int64_t n, const float* A, int64_t lda, float* C, int64_t ldc, bool acc = false) const {
    if (n <= 0) return;
    if (!buf.defined()) return blas_mm<float>(nt, n, N, K, A, lda, w, C, ldc, acc);
    if (2.0 * n * N * K < kPanelsParallelMinFlops || np < 2 || at::get_num_threads() < 2) return run(0, np, n, A, lda, C, ldc, acc);
    at::parallel_for(0, np, 1, [&](int64_t b, int64_t e) { run(b, e, n, A, lda, C, ldc, acc); });
  }
};

// How many threads split a step's hidden units (forward_split / backward_split in lstm.cpp and
// gru.cpp): float32 steps on the panel kernel of at least kSplitMinFlops, with H in whole panels,
// at least one per thread; 1 means the one-thread loop.
template <typename T>
bool unit_splittable(int64_t H) {  // the shape and threads allow it (the step may still be too small)
  if constexpr (!std::is_same<T, float>::value) {
    return false;
  } else {
    const int64_t NR = Panels<float>::NR;
    return at::get_num_threads() >= 2 && H % NR == 0 && H / NR >= 2 && !at::in_parallel_region();
  }
}

// `one_barrier` false: a loop that meets twice per step (the GRU's reset_before form). A/B against
// its one-thread loop on 2 threads, AVX2 (2026-12-07): H = 64 (2 panels per thread) lost, 0.98–1.52
// in inference over seven runs; H = 96 and 128 (3 and 4 panels per thread) won, 0.65–0.86. So it
// takes at least 3 panels per thread.
template <typename T>
int64_t unit_split_threads(const Panels<T>& pk, int64_t H, int64_t B, bool one_barrier = true) {
  if constexpr (!std::is_same<T, float>::value) {
    return 1;
  } else {
    const int64_t NR = Panels<float>::NR, nt = at::get_num_threads();
    if (!pk.buf.defined() || !unit_splittable<T>(H)) return 1;
    if (2.0 * B * pk.N * pk.K < kSplitMinFlops) return 1;
    if (!one_barrier) return H / NR >= 3 * nt ? nt : 1;
    return std::min<int64_t>(nt, H / NR);
  }
}

// The calling OpenMP thread's share of `panels` column panels split over nt threads (the unit-split
// loops in lstm_split.h and gru_split.h): panels [p0, p1), columns [c0, c1).
struct ThreadShare {
  int64_t p0, p1, c0, c1;
};
inline ThreadShare thread_share(int64_t panels, int64_t nt) {
  const int64_t tid = omp_get_thread_num(), NR = Panels<float>::NR;
  const int64_t p0 = tid * panels / nt, p1 = (tid + 1) * panels / nt;
  return {p0, p1, p0 * NR, p1 * NR};
}

// A unit-split loop's state between steps, double-buffered (rows × width): step s reads at(s) and
// writes at(s + 1), so one barrier per step keeps a thread's writes from another thread's reads.
template <typename T>
struct StepBuffers {
  std::vector<T> v;
  int64_t size;
  StepBuffers(int64_t rows, int64_t width, const T* first = nullptr) : v(2 * rows * width), size(rows * width) {
    if (first) std::copy(first, first + size, v.data());
  }
  T* at(int64_t s) { return v.data() + (s & 1) * size; }
};

// dst[r, c0:c1] = src[r, c0:c1] for n rows of width ld.
template <typename T>
inline void copy_cols(const T* src, T* dst, int64_t n, int64_t ld, int64_t c0, int64_t c1) {
  for (int64_t r = 0; r < n; ++r) std::copy(src + r * ld + c0, src + r * ld + c1, dst + r * ld + c0);
}

// Threads that split the batch instead of the units: the sequences are independent, so each thread
// runs the whole time loop on its own rows and the threads never meet (no barrier per step), at
// the price of each reading all of W every step. The one-thread loops (lstm.cpp) run this way when
// their float32 products are on the panel kernel and a full step has at least kSplitMinFlops.
// Each thread gets at least `min_blocks` MR-row blocks. Returns the rows' boundaries {0, b1, ..., B},
// or {0, B} for one thread. The boundaries balance the rows' lengths (packed sequences: long ones
// first) and fall on whole MR-row blocks.
template <typename T>
bool batch_splittable(int64_t B, int64_t min_blocks) {  // the batch and threads allow it
  if constexpr (!std::is_same<T, float>::value) {
    return false;
  } else {
    return !at::in_parallel_region() && B / (Panels<float>::MR * min_blocks) >= 2 && at::get_num_threads() >= 2;
  }
}

template <typename T>
std::vector<int64_t> batch_split(const Steps& st, const Panels<T>& pk, bool dnn_on, int64_t B, int64_t min_blocks) {
  if constexpr (!std::is_same<T, float>::value) {
    return {0, B};
  } else {
    const int64_t MR = Panels<float>::MR;
    const int64_t nt = std::min<int64_t>(at::get_num_threads(), B / (MR * min_blocks));
    if (!batch_splittable<T>(B, min_blocks) || dnn_on || !pk.buf.defined() || 2.0 * B * pk.N * pk.K < kSplitMinFlops)
      return {0, B};
    std::vector<int64_t> len(B, 0);  // each row's number of steps
    for (int64_t t = 0; t < st.T; ++t)
      for (int64_t b = 0; b < st.bs[t]; ++b) ++len[b];
    std::vector<int64_t> bounds{0};
    int64_t done = 0, b = 0;
    for (int64_t k = 1; k < nt; ++k) {
      while (b < B && (done + len[b]) * nt <= k * st.N) done += len[b++];
      const int64_t cut = std::min(B - MR, std::max(bounds.back() + MR, (b + MR / 2) / MR * MR));
      if (cut <= bounds.back()) break;
      bounds.push_back(cut);
    }
    bounds.push_back(B);
    return bounds;
  }
}

template <typename T>
bool on_panels(const Panels<T>& p) {  // packed for the panel kernel (only float32 ever is)
  if constexpr (std::is_same<T, float>::value) {
    return p.buf.defined();
  } else {
    return false;
  }
}

// Runs loop(b0, b1) on each range of batch_split's boundaries, one thread per range.
template <typename Fn>
void run_batch_split(const std::vector<int64_t>& bounds, const Fn& loop) {
  if (bounds.size() > 2) {
#pragma omp parallel num_threads(bounds.size() - 1)
    loop(bounds[omp_get_thread_num()], bounds[omp_get_thread_num() + 1]);
  } else {
    loop(bounds.front(), bounds.back());
  }
}

// A step's recurrent product Z (n, N) = h[b0 : b0 + n] Wᵀ (b0: the first row of a batch_split range):
// on oneDNN (returning its output, held in `keep`; batch_split never splits a oneDNN step, so there
// b0 is 0) or into the preallocated Z (ldz = N). Returns where the product is.
template <typename T>
inline const T* step_gemm(const OneDnn& dnn, const Panels<T>& pk, Tensor& keep, const Tensor& h, int64_t b0, int64_t n,
                          T* Z) {
  if (dnn.on()) {
    keep = dnn.mm(h.narrow(0, b0, n));
    return keep.data_ptr<T>();
  }
  pk.mm(n, h.data_ptr<T>() + b0 * pk.K, pk.K, Z, pk.N);
  return Z;
}

}  // namespace lstmkit
