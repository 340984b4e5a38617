// Shared pieces of the fused engine: packed-step bookkeeping, the per-step GEMMs and the
// vectorised helpers every family's pointwise pass uses.
#pragma once

// ATen only (not torch/extension.h): the kernels need no pybind, and the build is much faster.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <omp.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

// The Fortran BLAS exported by libtorch_cpu (MKL in the pip wheels). Called directly, a step's
// GEMM costs no dispatcher call and no allocation: it writes into buffers made once per call.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}

namespace lstmkit {

using at::Tensor;
template <typename T>
using Vec = at::vec::Vectorized<T>;

inline void blas(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void blas(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                 int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

// Row-major C (M×N, ldc) = beta·C + A (M×K, lda) · Bᵀ with B (N×K, ldb): the forward step h·W_hhᵀ.
// (BLAS is column-major, so this is Cᵀ = B·Aᵀ.)
template <typename T>
inline void gemm_nt(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                    T* C, int64_t ldc) {
  blas('T', 'N', N, M, K, T(1), B, ldb, A, lda, beta, C, ldc);
}

// Row-major C (M×N, ldc) = beta·C + A (M×K, lda) · B with B (K×N, ldb): the backward step dz·W_hh.
template <typename T>
inline void gemm_nn(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                    T* C, int64_t ldc) {
  blas('N', 'N', N, M, K, T(1), B, ldb, A, lda, beta, C, ldc);
}

// oneDNN's matrix product on a weight packed once, through ATen's mkldnn ops (the dispatcher: no
// oneDNN symbols are exported for direct use). On this AMD CPU it runs AVX-512 code at about 2.5x
// MKL's AVX2 sgemm, but each call costs ~20 µs (it allocates its output), so it is used only for
// float32 products of at least kOneDnnMinFlops per step (measured crossover: benchmarks/speed.py's
// GEMM section; LSTMKIT_ONEDNN_MIN_FLOPS overrides, LSTMKIT_ONEDNN=0 turns it off).
constexpr double kOneDnnMinFlops = 8e6;
// Steps the unit-split threads can take (unit_splittable in panels.h) stay on the panel kernel up to
// this size: A/B on 2 threads (2026-11-22, ratios to nn.LSTM in one run), split panels against
// oneDNN: lstm (100,16,256,256), 8.4 MFLOP per step, train 1.01 vs 1.18, infer 1.21 vs 1.51;
// (100,32,256,256), 16.8 MFLOP, infer lstm 1.21 vs 1.28 and gru 0.86 vs 0.95; even at 33.5 MFLOP.
constexpr double kOneDnnSplitMinFlops = 2e7;
// How the caller's time loop may spread a step over threads: not at all, over the hidden units
// (unit_splittable in panels.h), or over the batch (batch_splittable).
enum class Split { none, units, batch };
inline const char* onednn_min_flops_env() { return std::getenv("LSTMKIT_ONEDNN_MIN_FLOPS"); }
inline double onednn_min_flops(Split split = Split::none) {  // LSTMKIT_ONEDNN_MIN_FLOPS overrides both
  const char* min = onednn_min_flops_env();
  return min && *min ? std::atof(min) : (split != Split::none ? kOneDnnSplitMinFlops : kOneDnnMinFlops);
}
inline bool onednn_allowed() {
  const char* off = std::getenv("LSTMKIT_ONEDNN");
  return !(off && std::string(off) == "0");
}
// Whether oneDNN has bf16 kernels on this CPU (avx512_bf16, or avx_ne_convert; an AVX2-only CPU has
// none, and its bf16 weight reorder throws). Without them autocast's bf16 recurrent products and
// weight gradients stay float32, which is also faster there than ATen's bf16 fallback.
inline bool onednn_bf16_supported() {
  static const bool ok = [] {
    auto h = c10::Dispatcher::singleton().findSchema({"mkldnn::_is_mkldnn_bf16_supported", ""});
    if (!h) return false;
    torch::jit::Stack st;
    h->callBoxed(&st);
    return st[0].toBool();
  }();
  return ok;
}
//
// With `bf16` (the layer runs under CPU autocast to bfloat16) the weight is packed in bf16 and each
// call rounds its input to bf16: oneDNN's bf16 kernel (avx512_bf16) accumulates in float32 at about
// 1.6x the float32 rate, and the result comes back as float32. Only the product's inputs are
// rounded; the state and the pointwise math stay float32, so the rounding does not compound.
struct OneDnn {
  Tensor wp;          // packed W; undefined = use BLAS
  bool bf16 = false;  // wp and each call's input in bfloat16
  OneDnn() = default;
  // For y (n, N) = x (n, K) Wᵀ with W (N, K) and up to `batch` rows per call.
  // `split`: the caller's loop could run on split threads (a higher threshold). Callers that also
  // hold a Panels of W construct this only where the panel kernel declined W.
  OneDnn(const Tensor& W, int64_t batch, bool bf16_products = false, Split split = Split::none)
      : OneDnn(W, batch, bf16_products, split, W.defined() ? 2.0 * batch * W.size(0) * W.size(1) : 0.0) {}
  // `flops`: the step's FLOPs that the size threshold judges (FGR: its whole product, which it
  // splits into two of these; fgr.h).
  OneDnn(const Tensor& W, int64_t batch, bool bf16_products, Split split, double flops) {
    if (!W.defined() || W.scalar_type() != at::kFloat || !linear() || !reorder() || !onednn_allowed()) return;
    if (flops < onednn_min_flops(split)) return;
    bf16 = bf16_products && onednn_bf16_supported();
    torch::jit::Stack st{bf16 ? W.to(at::kBFloat16).contiguous() : W.contiguous(), c10::IValue(batch)};
    reorder()->callBoxed(&st);
    wp = st[0].toTensor();
  }
  bool on() const { return wp.defined(); }
  Tensor mm(const Tensor& x) const {  // x (n, K) contiguous float32 -> (n, N) float32
    torch::jit::Stack st{bf16 ? x.to(at::kBFloat16) : x, wp, c10::IValue(), c10::IValue(std::string("none")),
                         c10::IValue(c10::List<std::optional<at::Scalar>>()), c10::IValue(std::string(""))};
    linear()->callBoxed(&st);
    const Tensor y = st[0].toTensor();
    return bf16 ? y.to(at::kFloat) : y;
  }
  static const c10::OperatorHandle* find(const char* name) {
    auto h = c10::Dispatcher::singleton().findSchema({name, ""});
    return h ? new c10::OperatorHandle(*h) : nullptr;  // kept for the process's lifetime
  }
  static const c10::OperatorHandle* linear() {
    static const c10::OperatorHandle* op = find("mkldnn::_linear_pointwise");
    return op;
  }
  static const c10::OperatorHandle* reorder() {
    static const c10::OperatorHandle* op = find("mkldnn::_reorder_linear_weight");
    return op;
  }
};

// A weight gradient over all steps, dW = Aᵀ B (A (N, G), B (N, K)). With `bf16` (autocast) it is a
// bf16 product on oneDNN (about 1.7x MKL's float32 sgemm here, measured at 6400x2048x512), its
// result rounded to bf16 as autocast's own products are; float32 otherwise (and with LSTMKIT_ONEDNN=0).
inline Tensor weight_grad(const Tensor& A, const Tensor& B, bool bf16) {
  if (bf16 && A.scalar_type() == at::kFloat && onednn_allowed() && onednn_bf16_supported()) return at::mm(A.t().to(at::kBFloat16), B.to(at::kBFloat16)).to(at::kFloat);
  return at::mm(A.t(), B);
}

template <typename T>
inline Vec<T> sigmoid(const Vec<T>& x) {
  const Vec<T> one(T(1));
  return one / (one + x.neg().exp());
}

// tanh for the pointwise passes. float64 keeps ATen's (Sleef, 1 ulp). In float32 Sleef's tanh cost
// ~6x its exp (perf: 18% of an LSTM inference step at 16x128, against 4% for three exps), so:
// |x| >= 1/4: sign(x) (1 - 2 / (e^{2|x|} + 1)), one exp and one division, no cancellation there
// (the result is >= 0.24); |x| < 1/4: the odd Taylor series to x^11, whose first omitted term is
// below 1e-10. Within a few ulp of the exact value (tests/test_engine.py::test_engine_tanh_accuracy).
template <typename T>
inline Vec<T> tanh_(const Vec<T>& x) {
  if constexpr (!std::is_same<T, float>::value) {
    return x.tanh();
  } else {
    using V = Vec<float>;
    const V one(1.f), two(2.f), ax = x.abs();
    const V big = one - two / ((ax + ax).exp() + one);
    const V x2 = x * x;
    V p(-1382.f / 155925.f);
    p = at::vec::fmadd(p, x2, V(62.f / 2835.f));
    p = at::vec::fmadd(p, x2, V(-17.f / 315.f));
    p = at::vec::fmadd(p, x2, V(2.f / 15.f));
    p = at::vec::fmadd(p, x2, V(-1.f / 3.f));
    const V small = at::vec::fmadd(p * x2, x, x);
    const V large = V::blendv(big, big.neg(), x < V(0.f));
    return V::blendv(large, small, ax < V(0.25f));
  }
}

// Vectorised sweep over columns [j0, j1): f(j, count) with count = the vector width, then a tail.
template <typename T, typename Fn>
inline void for_cols(int64_t j0, int64_t j1, const Fn& f) {
  constexpr int64_t V = Vec<T>::size();
  int64_t j = j0;
  for (; j + V <= j1; j += V) f(j, V);
  if (j < j1) f(j, j1 - j);
}
template <typename T, typename Fn>
inline void for_cols(int64_t H, const Fn& f) {
  for_cols<T>(0, H, f);
}

// Ask for columns [j0, j1) of each of a row's `blocks` blocks (`ld` apart) ahead of their use.
// The step's input share xw (N, G·H) was written by one large GEMM before the loop and has left
// the caches; its rows are short strided pieces the hardware prefetcher does not pick up, so the
// pointwise pass stalled on them (perf: the loads of xw were its hottest instructions). Fetching
// the next row while this one is computed hides that.
template <typename T>
inline void prefetch_cols(const T* row, int64_t blocks, int64_t ld, int64_t j0, int64_t j1) {
  constexpr int64_t line = 64 / sizeof(T);
  for (int64_t g = 0; g < blocks; ++g)
    for (int64_t j = j0; j < j1; j += line) __builtin_prefetch(row + g * ld + j, 0, 3);
}

// The pointwise pass over a step's n active rows, split across threads only when a step has
// enough elements to pay for waking them (an OpenMP fork/join costs a few µs).
constexpr int64_t kGrainElems = 1 << 14;
template <typename Fn>
inline void for_rows(int64_t n, int64_t row_elems, const Fn& f) {
  const int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(row_elems, 1));
  if (n <= grain) {
    for (int64_t r = 0; r < n; ++r) f(r);
    return;
  }
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) f(r);
  });
}

// dst[r, :] = src[r, :] ⊙ mask[r, :] for n rows of `width` (recurrent dropout: one mask per sequence).
template <typename T>
inline void mask_rows(T* dst, const T* src, const T* mask, int64_t n, int64_t width) {
  using V = Vec<T>;
  for (int64_t r = 0; r < n; ++r) {
    for_cols<T>(width, [&](int64_t j, int64_t k) {
      (V::loadu(src + r * width + j, k) * V::loadu(mask + r * width + j, k)).store(dst + r * width + j, k);
    });
  }
}

// Zoneout (Krueger et al. 2016) on n rows: x = a ⊙ prev + (1 - a) ⊙ x, with a per element the row's
// keep mask (0/1, training) or the zoneout rate (eval).
template <typename T>
inline void zone_rows(T* x, const T* prev, const T* a, int64_t n, int64_t width) {
  using V = Vec<T>;
  for_cols<T>(n * width, [&](int64_t j, int64_t k) {
    const V av = V::loadu(a + j, k);  // this form is exact for a = 0 and a = 1, as torch.where is
    (av * V::loadu(prev + j, k) + (V(T(1)) - av) * V::loadu(x + j, k)).store(x + j, k);
  });
}
// Its backward: the gradient g of the zoned value splits into carry = a ⊙ g (to the previous
// state) and g = (1 - a) ⊙ g (to the step's new value).
template <typename T>
inline void unzone_rows(T* g, T* carry, const T* a, int64_t n, int64_t width) {
  using V = Vec<T>;
  for_cols<T>(n * width, [&](int64_t j, int64_t k) {
    const V v = V::loadu(g + j, k), av = V::loadu(a + j, k);
    (av * v).store(carry + j, k);
    ((V(T(1)) - av) * v).store(g + j, k);
  });
}

template <typename T>
inline void add_rows(T* dst, const T* src, int64_t n, int64_t width) {  // dst += src over n rows
  using V = Vec<T>;
  for_cols<T>(n * width, [&](int64_t j, int64_t k) { (V::loadu(dst + j, k) + V::loadu(src + j, k)).store(dst + j, k); });
}

template <typename T>
inline void copy_rows(T* dst, const T* src, int64_t n, int64_t width) {
  std::memcpy(dst, src, sizeof(T) * n * width);
}

// The packed layout: step t holds batch_sizes[t] rows (a prefix of the batch, longest first)
// starting at row off[t] of the time-major (N, ·) tensors.
struct Steps {
  std::vector<int64_t> bs, off;
  int64_t T, B, N;
  bool reverse;
  Steps(const std::vector<int64_t>& batch_sizes, bool rev) : bs(batch_sizes), reverse(rev) {
    TORCH_CHECK(!bs.empty(), "batch_sizes must not be empty");
    T = bs.size();
    B = bs[0];
    off.resize(T + 1);
    off[0] = 0;
    for (int64_t t = 0; t < T; ++t) {
      TORCH_CHECK(bs[t] >= 1 && bs[t] <= B && (t == 0 || bs[t] <= bs[t - 1]),
                  "batch_sizes must be positive and non-increasing");
      off[t + 1] = off[t] + bs[t];
    }
    N = off[T];
  }
  // The s-th step processed by the forward pass (backward walks s from T-1 down to 0).
  int64_t at(int64_t s) const { return reverse ? T - 1 - s : s; }
};

template <typename T>
inline T* ptr(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}
template <typename T>
inline T* ptr(const Tensor& t, int64_t offset) {
  return t.defined() ? t.data_ptr<T>() + offset : nullptr;
}

// A sequence-sized buffer, (N, width) over all steps. A fresh allocation this large is a fresh
// mmap, so each call pays one page fault per 4 KiB page it touches: tens of ms at (6400, 2048).
// Where the kernel hands out transparent huge pages on request (THP "madvise", as on this
// machine), asking for them makes that one fault per 2 MiB. Small buffers are left alone: they
// are reused from malloc's heap, and the whole 2 MiB pages inside them would be few anyway.
constexpr size_t kHugePageBytes = size_t(2) << 20;
inline Tensor empty_seq(at::IntArrayRef size, const at::TensorOptions& o) {
  Tensor t = at::empty(size, o);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t n = t.nbytes();
  if (n >= 2 * kHugePageBytes) {  // advise the whole huge pages inside [data, data + n)
    const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t a = (p + kHugePageBytes - 1) & ~(kHugePageBytes - 1), e = (p + n) & ~(kHugePageBytes - 1);
    if (e > a) madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);  // advice only: failure changes nothing
  }
#endif
  return t;
}

inline Tensor opt(const std::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->contiguous() : Tensor();
}

}  // namespace lstmkit
