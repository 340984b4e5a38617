// Layer normalisation of one row (Ba et al. 2016), as torch's F.layer_norm: biased variance,
// eps 1e-5. The LSTM's recurrent product and its cell state are normalised per row
// (lstmkit/cells/lstm.py, cells/common.py: project); lstm.cpp applies the gains.
#pragma once

#include <cmath>
#include <utility>

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

// Σ term(j) over the columns {b·stride + j : b < nblk, j0 <= j < j1} of a row (vector lanes).
template <typename T, typename Fn>
inline T blocks_sum(int64_t nblk, int64_t stride, int64_t j0, int64_t j1, const Fn& term) {
  T s = 0;
  for (int64_t b = 0; b < nblk; ++b)
    s += row_sum<T>(j1 - j0, [&](int64_t j, int64_t k) { return term(b * stride + j0 + j, k); });
  return s;
}

// (mean, M2 = Σ (x − mean)²) over the columns {b·stride + j : b < nblk, j0 <= j < j1} of x, in two
// passes (mean, then the centred squares): no cancellation whatever the mean.
template <typename T>
inline std::pair<T, T> moments(const T* x, int64_t nblk, int64_t stride, int64_t j0, int64_t j1) {
  using V = Vec<T>;
  const int64_t n = nblk * (j1 - j0);
  if (n == 0) return {T(0), T(0)};
  const T mu = blocks_sum<T>(nblk, stride, j0, j1, [&](int64_t j, int64_t k) { return V::loadu(x + j, k); }) / T(n);
  const V vmu(mu);
  const T m2 = blocks_sum<T>(nblk, stride, j0, j1, [&](int64_t j, int64_t k) {
    const V d = V::loadu(x + j, k) - vmu;
    return d * d;
  });
  return {mu, m2};
}

// 1 / sqrt(var + eps) from M2 over n elements.
template <typename T>
inline T ln_rstd(double m2, int64_t n) {
  return T(1.0 / std::sqrt(m2 / n + kLnEps));
}

// The second half of LN's backward on columns [j0, j1), given m1 = mean(g) and m2 = mean(g ⊙ xhat)
// over the whole row: dx = rstd (g − m1 − xhat · m2), added to dx when `acc`, else written (dx may
// be g itself).
template <typename T>
inline void ln_apply(const T* g, const T* xhat, T rstd, T m1, T m2, int64_t j0, int64_t j1, T* dx, bool acc) {
  using V = Vec<T>;
  const V vm1(m1), vm2(m2), vr(rstd);
  for_cols<T>(j0, j1, [&](int64_t j, int64_t k) {
    V d = vr * (V::loadu(g + j, k) - vm1 - V::loadu(xhat + j, k) * vm2);
    if (acc) d = d + V::loadu(dx + j, k);
    d.store(dx + j, k);
  });
}

// One row of n columns normalised: x̂ = (x − μ)·ρ into xhat (if given), α ⊙ x̂ (+ β, if given)
// into y (which may be x); returns ρ.
template <typename T>
inline T ln_row(const T* x, int64_t n, const T* alpha, const T* beta, T* y, T* xhat) {
  using V = Vec<T>;
  const auto [mu, m2] = moments(x, 1, 0, 0, n);
  const T rho = ln_rstd<T>(m2, n);
  const V vmu(mu), vrs(rho);
  for_cols<T>(n, [&](int64_t j, int64_t k) {
    const V xh = (V::loadu(x + j, k) - vmu) * vrs;
    if (xhat) xh.store(xhat + j, k);
    V v = xh * V::loadu(alpha + j, k);
    if (beta) v = v + V::loadu(beta + j, k);
    v.store(y + j, k);
  });
  return rho;
}

// Backward of xhat = LN(x) with g = ∂L/∂xhat: ∂L/∂x = rstd (g − mean(g) − xhat · mean(g ⊙ xhat)),
// added to dx when `acc`, else written.
template <typename T>
inline void ln_row_backward(const T* g, const T* xhat, T rstd, int64_t n, T* dx, bool acc) {
  using V = Vec<T>;
  const T m1 = row_sum<T>(n, [&](int64_t j, int64_t k) { return V::loadu(g + j, k); }) / T(n);
  const T m2 = row_sum<T>(n, [&](int64_t j, int64_t k) { return V::loadu(g + j, k) * V::loadu(xhat + j, k); }) / T(n);
  ln_apply(g, xhat, rstd, m1, m2, 0, n, dx, acc);
}

// Back through y = α ⊙ LN(x) (+ β) on one row of n columns: dx = ∂L/∂x from dy = ∂L/∂y.
template <typename T>
inline void ln_gain_row_backward(const T* dy, const T* alpha, const T* xhat, T rstd, int64_t n, T* dx) {
  using V = Vec<T>;
  for_cols<T>(n, [&](int64_t j, int64_t k) { (V::loadu(dy + j, k) * V::loadu(alpha + j, k)).store(dx + j, k); });
  ln_row_backward(dx, xhat, rstd, n, dx, false);
}

// Threads that split a row's columns meet to normalise it: each puts what its columns contribute
// into its own slot, and after a barrier every thread combines all slots. For the statistics the
// slots hold (count, mean, M2) of the thread's columns, computed in two passes and combined as
// Chan et al. do (no cancellation whatever the mean); for backward's sums, (Σa, Σb).
struct RowPartials {
  std::vector<double> v;  // [thread][row][3]
  int64_t nt, B;
  RowPartials(int64_t threads, int64_t rows) : v(threads * rows * 3), nt(threads), B(rows) {}
  double* at(int64_t tid, int64_t r) { return v.data() + (tid * B + r) * 3; }

  // This thread's (count, mean, M2) of the columns {b·stride + j : b < nblk, j0 <= j < j1} of x.
  template <typename T>
  void put_moments(int64_t tid, int64_t r, const T* x, int64_t nblk, int64_t stride, int64_t j0, int64_t j1) {
    const auto [mu, m2] = moments(x, nblk, stride, j0, j1);
    double* p = at(tid, r);
    p[0] = nblk * (j1 - j0), p[1] = mu, p[2] = m2;
  }
  // Every thread's moments of row r combined: (mean, 1 / sqrt(var + eps)).
  std::pair<double, double> stats(int64_t r) const {
    double n = 0, mu = 0;
    for (int64_t t = 0; t < nt; ++t) n += v[(t * B + r) * 3], mu += v[(t * B + r) * 3] * v[(t * B + r) * 3 + 1];
    mu /= n;
    double m2 = 0;
    for (int64_t t = 0; t < nt; ++t) {
      const double* p = v.data() + (t * B + r) * 3;
      m2 += p[2] + p[0] * (p[1] - mu) * (p[1] - mu);
    }
    return {mu, ln_rstd<double>(m2, int64_t(n))};
  }
  void put_sums(int64_t tid, int64_t r, double a, double b) {
    double* p = at(tid, r);
    p[0] = a, p[1] = b;
  }
  std::pair<double, double> sums(int64_t r) const {
    double a = 0, b = 0;
    for (int64_t t = 0; t < nt; ++t) a += v[(t * B + r) * 3], b += v[(t * B + r) * 3 + 1];
    return {a, b};
  }
};

// The gains' and shift's gradients outside the unit-split loop: out[j] = Σ_n a[n, j] · b[n, j]
// (b null: Σ_n a[n, j]), with b's rows centred and scaled by stats[n] = (mean, 1/σ) when given:
// Σ_n ∂L/∂y · LN(C) for α_c. One pass over the rows in parallel, each thread adding into its own
// double row (float within 256-row chunks), and no (N, W) temporary: the torch expressions it
// replaces, (dz * zhat).sum(0) and the like, allocated one, which page-faults at 52 MB here.
template <typename T>
Tensor col_sum(const T* a, const T* b, const T* stats, int64_t N, int64_t W, const at::TensorOptions& o) {
  constexpr int64_t kChunk = 256;
  const int64_t nt = at::get_num_threads();
  std::vector<double> acc(nt * W, 0.0);
  at::parallel_for(0, (N + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    double* mine = acc.data() + at::get_thread_num() * W;
    std::vector<T> part(W);
    for (int64_t c = c0; c < c1; ++c) {
      std::fill(part.begin(), part.end(), T(0));
      for (int64_t n = c * kChunk; n < std::min(N, (c + 1) * kChunk); ++n) {
        const T *ar = a + n * W, *br = b ? b + n * W : nullptr;
        if (stats) {
          const T mu = stats[2 * n], rs = stats[2 * n + 1];
          for (int64_t j = 0; j < W; ++j) part[j] += ar[j] * ((br[j] - mu) * rs);
        } else if (br) {
          for (int64_t j = 0; j < W; ++j) part[j] += ar[j] * br[j];
        } else {
          for (int64_t j = 0; j < W; ++j) part[j] += ar[j];
        }
      }
      for (int64_t j = 0; j < W; ++j) mine[j] += part[j];
    }
  });
  Tensor out = at::empty({W}, o);
  T* d = out.data_ptr<T>();
  for (int64_t j = 0; j < W; ++j) {
    double s = 0;
    for (int64_t t = 0; t < nt; ++t) s += acc[t * W + j];
    d[j] = T(s);
  }
  return out;
}

}  // namespace lstmkit
