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

// Row r of y normalised (x̂ = (y − μ)·ρ); `xhat` gets x̂ (may be y itself), `out` α ⊙ x̂ + β (may
// be y too); returns ρ.
template <typename T>
T norm_row(const T* y, T* xhat, T* out, const T* G, const T* Bs, int64_t D) {
  using V = Vec<T>;
  const auto [mu, m2] = moments(y, 1, 0, 0, D);
  const T rs = ln_rstd<T>(m2, D);
  const V vmu(mu), vrs(rs);
  for_cols<T>(D, [&](int64_t j, int64_t k) {
    const V xh = (V::loadu(y + j, k) - vmu) * vrs;
    if (xhat) xh.store(xhat + j, k);
    V v = xh * V::loadu(G + j, k);
    if (Bs) v = v + V::loadu(Bs + j, k);
    v.store(out + j, k);
  });
  return rs;
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
      for (int64_t r = r0; r < r1; ++r) norm_row<T>(Y + r * D, nullptr, Y + r * D, ptr<T>(g), ptr<T>(b), D);
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
      for (int64_t r = r0; r < r1; ++r) R[r] = norm_row<T>(Y + r * D, Y + r * D, O + r * D, ptr<T>(g), ptr<T>(b), D);
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
    const int64_t N = xhat.size(0), D = xhat.size(1);
    const T *GY = gy.data_ptr<T>(), *X = xhat.data_ptr<T>(), *R = rstd.data_ptr<T>(), *G = g.data_ptr<T>();
    T* DY = dy.data_ptr<T>();
    at::parallel_for(0, N, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {  // ∂L/∂x̂ = α ⊙ ∂L/∂out, then back through the normalisation
        T* d = DY + r * D;
        for_cols<T>(D, [&](int64_t j, int64_t k) { (V::loadu(GY + r * D + j, k) * V::loadu(G + j, k)).store(d + j, k); });
        ln_row_backward(d, X + r * D, R[r], D, d, false);
      }
    });
    dgain = col_sum<T>(GY, X, nullptr, N, D, xhat.options());  // Σ ∂L/∂out ⊙ x̂
    if (with_bias) dbias = col_sum<T>(GY, nullptr, nullptr, N, D, xhat.options());
  });
  return {dy, dgain, dbias};
}

}  // namespace lstmkit
