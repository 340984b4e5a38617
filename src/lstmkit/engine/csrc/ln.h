// Layer normalisation of one row (Ba et al. 2016), as torch's F.layer_norm: biased variance,
// eps 1e-5. The LSTM's recurrent product and its cell state are normalised per row
// (lstmkit/cells/lstm.py, cells/common.py: project); lstm.cpp applies the gains.
#pragma once

#include <cmath>

#include "common.h"

namespace lstmkit {

constexpr double kLnEps = 1e-5;

// Σ x over n elements (vector lanes, then the lanes).
template <typename T, typename Fn>
inline T row_sum(int64_t n, const Fn& term) {
  using V = Vec<T>;
  V acc(T(0));
  for_cols<T>(n, [&](int64_t j, int64_t k) { acc = acc + (k == V::size() ? term(j, k) : V::set(V(T(0)), term(j, k), k)); });
  T lanes[V::size()];
  acc.store(lanes);
  T s = 0;
  for (int64_t i = 0; i < V::size(); ++i) s += lanes[i];
  return s;
}

// xhat = (x - mean) / sqrt(var + eps) over n elements, and, with `gain`, y = gain ⊙ xhat; returns
// 1 / sqrt(var + eps) and sets *mean. Two passes (mean, then the centred squares): no cancellation.
template <typename T>
inline T ln_row(const T* x, int64_t n, T* xhat, T* mean, const T* gain = nullptr, T* y = nullptr) {
  using V = Vec<T>;
  const T mu = row_sum<T>(n, [&](int64_t j, int64_t k) { return V::loadu(x + j, k); }) / T(n);
  const V vmu(mu);
  const T var = row_sum<T>(n, [&](int64_t j, int64_t k) {
    const V d = V::loadu(x + j, k) - vmu;
    return d * d;
  }) / T(n);
  const T rstd = T(1.0 / std::sqrt(double(var) + kLnEps));
  const V vr(rstd);
  for_cols<T>(n, [&](int64_t j, int64_t k) {
    const V h = (V::loadu(x + j, k) - vmu) * vr;
    h.store(xhat + j, k);
    if (y) (h * V::loadu(gain + j, k)).store(y + j, k);
  });
  *mean = mu;
  return rstd;
}

// Backward of xhat = LN(x) with g = ∂L/∂xhat: ∂L/∂x = rstd (g − mean(g) − xhat · mean(g ⊙ xhat)),
// added to dx when `acc`, else written.
template <typename T>
inline void ln_row_backward(const T* g, const T* xhat, T rstd, int64_t n, T* dx, bool acc) {
  using V = Vec<T>;
  const T m1 = row_sum<T>(n, [&](int64_t j, int64_t k) { return V::loadu(g + j, k); }) / T(n);
  const T m2 = row_sum<T>(n, [&](int64_t j, int64_t k) { return V::loadu(g + j, k) * V::loadu(xhat + j, k); }) / T(n);
  const V vm1(m1), vm2(m2), vr(rstd);
  for_cols<T>(n, [&](int64_t j, int64_t k) {
    V d = vr * (V::loadu(g + j, k) - vm1 - V::loadu(xhat + j, k) * vm2);
    if (acc) d = d + V::loadu(dx + j, k);
    d.store(dx + j, k);
  });
}

}  // namespace lstmkit
