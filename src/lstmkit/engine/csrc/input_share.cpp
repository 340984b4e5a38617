// The input share outside the time loop (engine/__init__.py: input_projection and Projection):
// its product and its layer norm, in sequence-sized buffers (common.h: empty_seq) instead of
// fresh (N, G·H) tensors, which at 6400 × 2048 cost ~30 ms of page faults each here.
#include "engine.h"
#include "ln.h"

namespace lstmkit {

Tensor seq_linear(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "seq_linear: x is ", x.sizes(),
              " and w is ", w.sizes(), "; expected (N, K) and (M, K)");
  Tensor y = empty_seq({x.size(0), w.size(0)}, x.options());
  if (bias && bias->defined())
    at::addmm_out(y, *bias, x, w.t());
  else
    at::mm_out(y, x, w.t());
  return y;
}

namespace {
void check_gain(const Tensor& y, const Tensor& gain, const char* who) {
  TORCH_CHECK(y.dim() == 2 && y.is_contiguous(), who, " expects a contiguous (N, D) tensor");
  TORCH_CHECK(gain.numel() == y.size(1), who, ": the gain has ", gain.numel(), " entries, rows have ", y.size(1));
}
}  // namespace

void layer_norm_rows_(Tensor& y, const Tensor& gain, const c10::optional<Tensor>& bias) {
  check_gain(y, gain, "layer_norm_rows_");
  const Tensor g = gain.contiguous(), b = bias ? bias->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "layer_norm_rows_", [&] {
    using T = scalar_t;
    const int64_t D = y.size(1);
    T* Y = y.data_ptr<T>();
    at::parallel_for(0, y.size(0), 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) ln_row<T>(Y + r * D, D, ptr<T>(g), ptr<T>(b), Y + r * D, nullptr);
    });
  });
}

std::vector<Tensor> layer_norm_rows_train_(Tensor& y, const Tensor& gain, const c10::optional<Tensor>& bias) {
  check_gain(y, gain, "layer_norm_rows_train_");
  const Tensor g = gain.contiguous(), b = bias ? bias->contiguous() : Tensor();
  Tensor out = empty_seq(y.sizes(), y.options()), rstd = at::empty({y.size(0)}, y.options());
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "layer_norm_rows_train_", [&] {
    using T = scalar_t;
    const int64_t D = y.size(1);
    T *Y = y.data_ptr<T>(), *O = out.data_ptr<T>(), *R = rstd.data_ptr<T>();
    at::parallel_for(0, y.size(0), 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) R[r] = ln_row<T>(Y + r * D, D, ptr<T>(g), ptr<T>(b), O + r * D, Y + r * D);
    });
  });
  return {out, rstd};
}

std::vector<Tensor> layer_norm_rows_backward(const Tensor& grad, const Tensor& xhat, const Tensor& rstd,
                                             const Tensor& gain, bool with_bias) {
  check_gain(xhat, gain, "layer_norm_rows_backward");
  TORCH_CHECK(grad.sizes() == xhat.sizes() && rstd.numel() == xhat.size(0),
              "layer_norm_rows_backward: the gradient, x̂ and ρ disagree in shape");
  const Tensor gy = grad.contiguous(), g = gain.contiguous();
  Tensor dy = empty_seq(xhat.sizes(), xhat.options()), dgain, dbias;
  AT_DISPATCH_FLOATING_TYPES(xhat.scalar_type(), "layer_norm_rows_backward", [&] {
    using T = scalar_t;
    using V = Vec<T>;
    constexpr int64_t kChunk = 256;  // rows summed in T before they go into the thread's double sums
    const int64_t N = xhat.size(0), D = xhat.size(1), nt = at::get_num_threads();
    const T *GY = gy.data_ptr<T>(), *X = xhat.data_ptr<T>(), *R = rstd.data_ptr<T>(), *G = g.data_ptr<T>();
    T* DY = dy.data_ptr<T>();
    // ∂α = Σ ∂L/∂out ⊙ x̂ and ∂β = Σ ∂L/∂out, summed in the same pass over the rows (two passes
    // fewer over (N, D) than col_sum twice: this is memory-bound).
    std::vector<double> sums(nt * 2 * D, 0.0);
    at::parallel_for(0, (N + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
      double* mine = sums.data() + at::get_thread_num() * 2 * D;
      std::vector<T> part(2 * D);
      T *pg = part.data(), *pb = part.data() + D;
      for (int64_t c = c0; c < c1; ++c) {
        std::fill(part.begin(), part.end(), T(0));
        for (int64_t r = c * kChunk; r < std::min(N, (c + 1) * kChunk); ++r) {
          const T *gr = GY + r * D, *xr = X + r * D;
          T* d = DY + r * D;
          for_cols<T>(D, [&](int64_t j, int64_t k) {  // ∂L/∂x̂ = α ⊙ ∂L/∂out, and the column sums
            const V gv = V::loadu(gr + j, k);
            (gv * V::loadu(G + j, k)).store(d + j, k);
            (V::loadu(pg + j, k) + gv * V::loadu(xr + j, k)).store(pg + j, k);
            (V::loadu(pb + j, k) + gv).store(pb + j, k);
          });
          ln_row_backward(d, xr, R[r], D, d, false);  // back through the normalisation
        }
        for (int64_t j = 0; j < 2 * D; ++j) mine[j] += part[j];
      }
    });
    dgain = at::empty({D}, xhat.options());
    if (with_bias) dbias = at::empty({D}, xhat.options());
    for (int64_t j = 0; j < D; ++j) {
      double a = 0, b = 0;
      for (int64_t t = 0; t < nt; ++t) a += sums[t * 2 * D + j], b += sums[t * 2 * D + D + j];
      dgain.data_ptr<T>()[j] = T(a);
      if (with_bias) dbias.data_ptr<T>()[j] = T(b);
    }
  });
  return {dy, dgain, dbias};
}

}  // namespace lstmkit
