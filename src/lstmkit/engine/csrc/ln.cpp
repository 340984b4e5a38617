// Layer norm of the input share in place (engine/__init__.py: input_projection, inference only):
// y = α ⊙ (y − μ)·ρ + β per row, as F.layer_norm(y, (G·H,), α, β) but without a fresh (N, G·H)
// output. At 6400 × 2048 a fresh 52 MB tensor is paid in page faults here (docs/performance.md).
#include "engine.h"
#include "ln.h"

namespace lstmkit {

void layer_norm_rows_(Tensor& y, const Tensor& gain, const c10::optional<Tensor>& bias) {
  TORCH_CHECK(y.dim() == 2 && y.is_contiguous(), "layer_norm_rows_ expects a contiguous (N, D) tensor");
  TORCH_CHECK(gain.numel() == y.size(1), "layer_norm_rows_: the gain has ", gain.numel(), " entries, rows have ",
              y.size(1));
  const Tensor g = gain.contiguous(), b = bias ? bias->contiguous() : Tensor();
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "layer_norm_rows_", [&] {
    using T = scalar_t;
    using V = Vec<T>;
    const int64_t D = y.size(1);
    T* Y = y.data_ptr<T>();
    const T *G = g.data_ptr<T>(), *Bs = ptr<T>(b);
    at::parallel_for(0, y.size(0), 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* row = Y + r * D;
        const auto [mu, m2] = moments(row, 1, 0, 0, D);
        const V vmu(mu), vrs(ln_rstd<T>(m2, D));
        for_cols<T>(D, [&](int64_t j, int64_t k) {
          V v = (V::loadu(row + j, k) - vmu) * vrs * V::loadu(G + j, k);
          if (Bs) v = v + V::loadu(Bs + j, k);
          v.store(row + j, k);
        });
      }
    });
  });
}

}  // namespace lstmkit
