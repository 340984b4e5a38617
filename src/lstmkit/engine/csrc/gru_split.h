// The GRU's pointwise passes shared by its loops, and its unit-split loops (forward_split /
// backward_split for torch's reset_after form, forward_before_split / backward_before_split for
// Cho's): threads that each own some hidden units run a layer-direction's whole time loop in one
// OpenMP region and meet at barriers. gru.cpp's forward_impl / backward_impl choose them for
// batches too small to give each thread two row blocks, and otherwise run their own loop, whole
// or split over the batch (batch_split in panels.h).
#pragma once

#include "common.h"
#include "panels.h"

namespace lstmkit {
namespace gru {

template <typename T>
inline Vec<T> load_b(const T* b, int64_t o, int64_t k) {
  return b ? Vec<T>::loadu(b + o, k) : Vec<T>(T(0));
}

// reset_after's pointwise pass for one row, columns [j0, j1): x the row's xw, zh its U h, hprev
// h_{t-1}; writes h_t to y and, with gs, the gates (r, z, n) and hns = U_n h + b_n for backward.
template <typename T>
inline void fwd_after_cols(int64_t H, int64_t j0, int64_t j1, const T* x, const T* zh, const T* bias, const T* hprev,
                           T* y, T* gs, T* hns) {
  using V = Vec<T>;
  for_cols<T>(j0, j1, [&](int64_t j, int64_t k) {
    const V rr = sigmoid<T>(V::loadu(x + j, k) + (V::loadu(zh + j, k) + load_b(bias, j, k)));
    const V zz = sigmoid<T>(V::loadu(x + H + j, k) + (V::loadu(zh + H + j, k) + load_b(bias, H + j, k)));
    const V hnv = V::loadu(zh + 2 * H + j, k) + load_b(bias, 2 * H + j, k);
    const V nn = tanh_<T>(V::loadu(x + 2 * H + j, k) + rr * hnv);
    const V hv = V::loadu(hprev + j, k);
    (nn + zz * (hv - nn)).store(y + j, k);  // (1-z)⊙n + z⊙h
    if (gs) {
      rr.store(gs + j, k);
      zz.store(gs + H + j, k);
      nn.store(gs + 2 * H + j, k);
      hnv.store(hns + j, k);
    }
  });
}

// reset_after's backward pointwise pass for one row, columns [j0, j1): from ∂L/∂h_t = gy + dh,
// the pre-activation gradients dx (= ∂L/∂xw) and dg (= ∂L/∂(U h + b)); dh becomes z⊙∂L/∂h_t.
template <typename T>
inline void bwd_after_cols(int64_t H, int64_t j0, int64_t j1, const T* gy, T* dh, const T* gs, const T* hprev,
                           const T* hns, T* dx, T* dg) {
  using V = Vec<T>;
  const V one(T(1));
  for_cols<T>(j0, j1, [&](int64_t j, int64_t k) {
    const V d = V::loadu(gy + j, k) + V::loadu(dh + j, k);
    const V rr = V::loadu(gs + j, k), zz = V::loadu(gs + H + j, k), nn = V::loadu(gs + 2 * H + j, k);
    const V dzz = d * (V::loadu(hprev + j, k) - nn) * zz * (one - zz);
    const V dan = d * (one - zz) * (one - nn * nn);  // ∂L/∂(n's pre-activation)
    const V dzr = dan * V::loadu(hns + j, k) * rr * (one - rr);
    dzr.store(dx + j, k);
    dzz.store(dx + H + j, k);
    dan.store(dx + 2 * H + j, k);
    dzr.store(dg + j, k);
    dzz.store(dg + H + j, k);
    (dan * rr).store(dg + 2 * H + j, k);
    (d * zz).store(dh + j, k);
  });
}

// Threads that split the hidden units (reset_after; as forward_split in lstm_split.h), for batches
// too small for batch_split: each owns its units' r, z, n columns of the product, its pointwise
// pass and its part of h.
template <typename T>
void forward_split(const Steps& st, int64_t nt, const Panels<T>& pk, const T* X, const T* h0, const T* bias, T* Y,
                   T* Hfinal, T* Z, T* HP, T* Gates, T* HN, int64_t B, int64_t H) {
  const int64_t G = 3 * H, U = H / Panels<float>::NR;
  StepBuffers<T> hbuf(B, H, h0);
#pragma omp parallel num_threads(nt)
  {
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      const T* hcur = hbuf.at(s);
      T* hnext = hbuf.at(s + 1);
      if (HP) copy_cols(hcur, HP + r0 * H, n, H, j0, j1);
      for (int64_t g = 0; g < 3; ++g) pk.run(g * U + up0, g * U + up1, n, hcur, H, Z, G, false);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        fwd_after_cols<T>(H, j0, j1, X + row * G, Z + r * G, bias, hcur + r * H, Y + row * H,
                          Gates ? Gates + row * G : nullptr, HN ? HN + row * H : nullptr);
      }
      copy_cols(Y + r0 * H, hnext, n, H, j0, j1);
      copy_cols(hcur + n * H, hnext + n * H, B - n, H, j0, j1);
#pragma omp barrier
    }
  }
  std::copy(hbuf.at(st.T), hbuf.at(st.T) + B * H, Hfinal);
}

template <typename T>
void backward_split(const Steps& st, int64_t nt, const Panels<T>& pb, const T* GY, const T* GS, const T* HP,
                    const T* HN, T* DH, T* DX, T* DG, int64_t H) {
  const int64_t G = 3 * H, U = H / Panels<float>::NR;
#pragma omp parallel num_threads(nt)
  {
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        bwd_after_cols<T>(H, j0, j1, GY + row * H, DH + r * H, GS + row * G, HP + row * H, HN + row * H,
                          DX + row * G, DG + row * G);
      }
#pragma omp barrier
      pb.run(up0, up1, n, DG + r0 * G, G, DH, H, true);  // + (dr, dz, dn⊙r) U, this thread's units
    }
  }
}

// Cho's form on the unit-split threads: two products per step, so two barriers. Each thread owns
// its units' r and z columns of U_rz h (pk), their r⊙h, then, once all of r⊙h is there, its units'
// columns of U_n (r⊙h) (pn), its n and its part of h. Z (B, 2H), Q (B, H) and ZN (B, H) are
// per-step buffers; Zk (B, H) keeps z for the second pass in inference (training keeps it in Gates).
template <typename T>
void forward_before_split(const Steps& st, int64_t nt, const Panels<T>& pk, const Panels<T>& pn, const T* X,
                          const T* h0, const T* bias, T* Y, T* Hfinal, T* Z, T* Q, T* ZN, T* Zk, T* HP, T* Gates,
                          T* Qs, int64_t B, int64_t H) {
  using V = Vec<T>;
  const int64_t G = 3 * H, U = H / Panels<float>::NR;
  StepBuffers<T> hbuf(B, H, h0);
#pragma omp parallel num_threads(nt)
  {
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      const T* hcur = hbuf.at(s);
      T* hnext = hbuf.at(s + 1);
      if (HP) copy_cols(hcur, HP + r0 * H, n, H, j0, j1);
      for (int64_t g = 0; g < 2; ++g) pk.run(g * U + up0, g * U + up1, n, hcur, H, Z, 2 * H, false);
      for (int64_t r = 0; r < n; ++r) {
        const T *x = X + (r0 + r) * G, *zh = Z + r * 2 * H, *hp = hcur + r * H;
        T* zk = Gates ? Gates + (r0 + r) * G + H : Zk + r * H;
        T* rk = Gates ? Gates + (r0 + r) * G : nullptr;
        T* q = Q + r * H;
        for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
          const V rr = sigmoid<T>(V::loadu(x + j, k) + (V::loadu(zh + j, k) + load_b(bias, j, k)));
          const V zz = sigmoid<T>(V::loadu(x + H + j, k) + (V::loadu(zh + H + j, k) + load_b(bias, H + j, k)));
          (rr * V::loadu(hp + j, k)).store(q + j, k);
          zz.store(zk + j, k);
          if (rk) rr.store(rk + j, k);
        });
      }
#pragma omp barrier
      pn.run(up0, up1, n, Q, H, ZN, H, false);  // this thread's units of U_n (r⊙h)
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        const T *x = X + row * G, *zn = ZN + r * H, *hp = hcur + r * H;
        const T* zk = Gates ? Gates + row * G + H : Zk + r * H;
        T* nk = Gates ? Gates + row * G + 2 * H : nullptr;
        T *y = Y + row * H, *hn = hnext + r * H;
        for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
          const V nn = tanh_<T>(V::loadu(x + 2 * H + j, k) + (V::loadu(zn + j, k) + load_b(bias, 2 * H + j, k)));
          const V zz = V::loadu(zk + j, k), hv = V::loadu(hp + j, k);
          const V hv1 = nn + zz * (hv - nn);  // (1-z)⊙n + z⊙h
          hv1.store(y + j, k);
          hv1.store(hn + j, k);
          if (nk) nn.store(nk + j, k);
        });
      }
      if (Qs) copy_cols(Q, Qs + r0 * H, n, H, j0, j1);
      copy_cols(hcur + n * H, hnext + n * H, B - n, H, j0, j1);
#pragma omp barrier
    }
  }
  std::copy(hbuf.at(st.T), hbuf.at(st.T) + B * H, Hfinal);
}

// Its backward: per step, the z and n pre-activation gradients of this thread's units; a barrier
// (∂L/∂(r⊙h) = dn U_n needs every unit's dn); its units of dn U_n, then their r gradient; a
// barrier (the ∂h product needs every unit's dr); its units of (dr, dz) U_rz, added to ∂h.
template <typename T>
void backward_before_split(const Steps& st, int64_t nt, const Panels<T>& pb, const Panels<T>& pbn, const T* GY,
                           const T* GS, const T* HP, T* DH, T* DQ, T* DX, int64_t H) {
  using V = Vec<T>;
  const int64_t G = 3 * H, U = H / Panels<float>::NR;
#pragma omp parallel num_threads(nt)
  {
    const V one(T(1));
    const auto [up0, up1, j0, j1] = thread_share(U, nt);
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        const T *gy = GY + row * H, *gs = GS + row * G, *hp = HP + row * H;
        T *dh = DH + r * H, *dx = DX + row * G;
        for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
          const V d = V::loadu(gy + j, k) + V::loadu(dh + j, k);
          const V zz = V::loadu(gs + H + j, k), nn = V::loadu(gs + 2 * H + j, k);
          (d * (V::loadu(hp + j, k) - nn) * zz * (one - zz)).store(dx + H + j, k);
          (d * (one - zz) * (one - nn * nn)).store(dx + 2 * H + j, k);  // ∂L/∂(n's pre-activation)
          (d * zz).store(dh + j, k);
        });
      }
#pragma omp barrier
      pbn.run(up0, up1, n, DX + r0 * G + 2 * H, G, DQ, H, false);  // ∂L/∂(r⊙h) = dn U_n, this thread's units
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r;
        const T *gs = GS + row * G, *hp = HP + row * H, *dq = DQ + r * H;
        T *dh = DH + r * H, *dx = DX + row * G;
        for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
          const V rr = V::loadu(gs + j, k), dqv = V::loadu(dq + j, k);
          (dqv * V::loadu(hp + j, k) * rr * (one - rr)).store(dx + j, k);
          (V::loadu(dh + j, k) + dqv * rr).store(dh + j, k);
        });
      }
#pragma omp barrier
      pb.run(up0, up1, n, DX + r0 * G, G, DH, H, true);  // + (dr, dz) U_rz, this thread's units
    }
  }
}

}  // namespace gru
}  // namespace lstmkit
