// FGR (Greff's full gate recurrence): the gates also see a_{t-1}, the previous step's sigmoid gates
// (S·H = G·H − H columns: the gate blocks without C̃'s). The skeleton carries h as [h_t, a_t], of
// width PW = P + S·H, and Python passes W_hh as [W_hh | R placed in the sigmoid gates' rows]
// (engine/function.py), so one product per step covers both and backward's dz W_hh also yields
// ∂L/∂a_{t-1}. Without FGR, PW = P.
//
// C̃'s rows of that weight are zero against a_{t-1}: 3/16 of the product (G = 4, P = H). The panel
// kernel skips the block by itself (Panels::pack). oneDNN would not, so on oneDNN the step runs as
// two products, the sigmoid gates' rows against [h, a] and C̃'s rows against h (FgrDnn), and the
// weight gradient leaves the block out too (fgr_weight_grad).
#pragma once

#include "common.h"
#include "panels.h"

namespace lstmkit {

// One row of the next step's recurrent input, [h_t, a_t], from h_t and this step's gates.
template <typename T>
void fgr_input(T* hin, const T* h, const T* gates, int64_t P, int64_t GH, int64_t H, int64_t gg) {
  std::copy(h, h + P, hin);
  std::copy(gates, gates + gg * H, hin + P);
  std::copy(gates + (gg + 1) * H, gates + GH, hin + P + gg * H);
}

// The sigmoid gates' blocks [0, gg·H) and [(gg+1)·H, G·H) of W along `dim`, side by side: the
// order of a_t. Contiguous.
inline Tensor sigmoid_blocks(const Tensor& W, int64_t gg, int64_t H, int64_t dim = 0) {
  const int64_t after = (gg + 1) * H;
  return at::cat({W.narrow(dim, 0, gg * H), W.narrow(dim, after, W.size(dim) - after)}, dim).contiguous();
}

// FGR's per-step products on oneDNN, without C̃'s zero block. W is [W_hh | R], (G·H, PW).
//   forward:  z_sig = [h, a] W_sigᵀ (n, S·H) and z_g = h W_gᵀ (n, H), scattered into z (n, G·H);
//   backward: ∂L/∂h = dz W_hh (n, P) and ∂L/∂a = dz_sig R_sig (n, S·H), into ∂L/∂[h, a] (n, PW).
// On only where oneDNN would take the whole product (its size threshold applies to that).
struct FgrDnn {
  OneDnn a, b;  // forward: W_sig, W_g; backward: W_hh's transpose, R_sig's transpose
  int64_t H = 0, SH = 0, P = 0, gg = 0;
  bool backward = false;
  FgrDnn() = default;
  FgrDnn(const Tensor& W, int64_t H_, int64_t gg_, bool backward_, int64_t batch, bool bf16, Split split)
      : H(H_), SH(W.size(0) - H_), P(W.size(1) - SH), gg(gg_), backward(backward_) {
    if (W.scalar_type() != at::kFloat) return;
    const double flops = 2.0 * batch * W.size(0) * W.size(1);
    const Tensor sig = sigmoid_blocks(W, gg, H);  // (S·H, PW)
    if (!backward) {
      a = OneDnn(sig, batch, bf16, split, flops);
      b = OneDnn(W.narrow(0, gg * H, H).narrow(1, 0, P).contiguous(), batch, bf16, split, flops);
    } else {
      a = OneDnn(W.narrow(1, 0, P).t().contiguous(), batch, bf16, split, flops);
      b = OneDnn(sig.narrow(1, P, sig.size(0)).t().contiguous(), batch, bf16, split, flops);
    }
  }
  bool on() const { return a.on() && b.on(); }

  // rows: the step's n rows (contiguous, of width PW forward or G·H backward); out: n rows of G·H
  // (forward) or PW (backward). Returns out.
  template <typename T>
  T* step(const Tensor& rows, T* out) const {
    const int64_t n = rows.size(0);
    if (!backward) {  // z = [z_sig before C̃ | z_g | z_sig after C̃]
      const Tensor zs = a.mm(rows), zg = b.mm(rows.narrow(1, 0, P).contiguous());
      const T *S = zs.data_ptr<T>(), *G = zg.data_ptr<T>();
      const int64_t gh = SH + H;
      for (int64_t r = 0; r < n; ++r) {
        T* o = out + r * gh;
        std::copy(S + r * SH, S + r * SH + gg * H, o);
        std::copy(G + r * H, G + (r + 1) * H, o + gg * H);
        std::copy(S + r * SH + gg * H, S + (r + 1) * SH, o + (gg + 1) * H);
      }
    } else {  // ∂L/∂[h, a] = [dz W_hh | dz_sig R_sig]
      const Tensor dh = a.mm(rows), da = b.mm(sigmoid_blocks(rows, gg, H, 1));
      const T *D = dh.data_ptr<T>(), *A = da.data_ptr<T>();
      const int64_t pw = P + SH;
      for (int64_t r = 0; r < n; ++r) {
        std::copy(D + r * P, D + (r + 1) * P, out + r * pw);
        std::copy(A + r * SH, A + (r + 1) * SH, out + r * pw + P);
      }
    }
    return out;
  }
};

// ∂[W_hh | R] = [dz_hᵀ h | dzᵀ a] over all rows, without C̃'s zero block (its gradient is zero: the
// block is not a parameter). dz_h: the gradient of W_hh h (dz itself, or with layer norm the
// gradient before the normalisation); dz (N, G·H), hin (N, PW).
inline Tensor fgr_weight_grad(const Tensor& dz_h, const Tensor& dz, const Tensor& hin, int64_t H, int64_t gg,
                              bool bf16) {
  const int64_t GH = dz.size(1), PW = hin.size(1), P = PW - (GH - H);
  Tensor dw = at::zeros({GH, PW}, dz.options());
  dw.narrow(1, 0, P).copy_(weight_grad(dz_h, hin.narrow(1, 0, P), bf16));
  const Tensor a = hin.narrow(1, P, PW - P);
  for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, gg * H}, {(gg + 1) * H, GH}})
    if (r1 > r0) dw.narrow(0, r0, r1 - r0).narrow(1, P, PW - P).copy_(weight_grad(dz.narrow(1, r0, r1 - r0), a, bf16));
  return dw;
}

// FGR with layer norm: LN covers W_hh h but not R a_{t-1} (cells/lstm.py), so the two products stay
// apart, each on the panel kernel (or BLAS): forward z = h W_hhᵀ (normalised by the caller) and
// z_a = a R_sigᵀ, which add_recurrence adds to the input share's sigmoid blocks; backward
// ∂L/∂h = dz_h W_hh and ∂L/∂a = dz_sig R_sig. Rows of [h, a] and of ∂L/∂[h, a] are PW wide.
template <typename T>
struct FgrLnProducts {
  Tensor wh, wa;       // W_hh (G·H, P) and R_sig (S·H, S·H), contiguous
  Panels<T> ph, pa;    // forward: h W_hhᵀ, a R_sigᵀ; backward: dz_h W_hh, and dz's rows before C̃ times R_sig's
  Panels<T> pa2;       // backward: dz's rows after C̃ times R_sig's
  int64_t H = 0, SH = 0, P = 0, gg = 0;
  FgrLnProducts() = default;
  FgrLnProducts(const Tensor& W, int64_t H_, int64_t gg_, bool backward, int64_t batch, Split split)
      : H(H_), SH(W.size(0) - H_), P(W.size(1) - SH), gg(gg_) {
    wh = W.narrow(1, 0, P).contiguous();
    wa = sigmoid_blocks(W, gg, H).narrow(1, P, SH).contiguous();
    const int64_t GH = W.size(0);
    if (!backward) {
      ph = Panels<T>(wh.data_ptr<T>(), GH, P, true, batch, split);
      pa = Panels<T>(wa.data_ptr<T>(), SH, SH, true, batch, split);
    } else {  // Z = A W with W (K, N): W_hh is (G·H, P), R_sig's row blocks (gg·H, S·H) and (S·H − gg·H, S·H)
      ph = Panels<T>(wh.data_ptr<T>(), P, GH, false, batch, split);
      pa = Panels<T>(wa.data_ptr<T>(), SH, gg * H, false, batch, split);
      pa2 = Panels<T>(wa.data_ptr<T>() + gg * H * SH, SH, SH - gg * H, false, batch, split);
    }
  }
  // z (n, G·H) = h W_hhᵀ and za (n, S·H) = a R_sigᵀ from n rows of [h, a].
  void forward(int64_t n, const T* hin, int64_t PW, T* z, T* za) const {
    ph.mm(n, hin, PW, z, ph.N);
    pa.mm(n, hin + P, PW, za, SH);
  }
  // xz = xw with za added to the sigmoid gates' blocks, n rows of G·H.
  void add_recurrence(int64_t n, const T* xw, const T* za, T* xz) const {
    const int64_t GH = SH + H;
    for (int64_t r = 0; r < n; ++r) {
      const T *x = xw + r * GH, *a = za + r * SH;
      T* o = xz + r * GH;
      for (int64_t j = 0; j < gg * H; ++j) o[j] = x[j] + a[j];
      std::copy(x + gg * H, x + (gg + 1) * H, o + gg * H);
      for (int64_t j = (gg + 1) * H; j < GH; ++j) o[j] = x[j] + a[j - H];
    }
  }
  // dhin (n, PW) = [dz_h W_hh | dz_sig R_sig] from n rows of dz_h and dz (G·H each).
  void backward(int64_t n, const T* dz_h, const T* dz, int64_t PW, T* dhin) const {
    const int64_t GH = SH + H;
    ph.mm(n, dz_h, GH, dhin, PW);
    if (gg > 0) pa.mm(n, dz, GH, dhin + P, PW);
    if (gg * H < SH) pa2.mm(n, dz + (gg + 1) * H, GH, dhin + P, PW, gg > 0);
  }
};

}  // namespace lstmkit
