// The LSTM family's pointwise math, shared by the sequence engine (lstm.cpp) and the stepper
// (stream.cpp). lstmkit/cells/lstm.py is the source of truth:
//
//   i = σ(z_i + p_i⊙C_{t-1})    f = σ(z_f + p_f⊙C_{t-1})  (or 1 - i, or 1)    C̃ = tanh(z_g) (or z_g)
//   C_t = f⊙C_{t-1} + i⊙C̃      o = σ(z_o + p_o⊙C_t)      m = o⊙tanh(C_t) (or o⊙C_t)
//
// The pass is templated on the variant's structure (which gates exist, coupling, activations) so
// each registered variant gets straight-line vector code. Peepholes and biases are optional pointers.
// With layer norm, ln_cell_out / ln_cell_grad recompute m from LN(C_t) around these passes.
#pragma once

#include "common.h"
#include "ln.h"

namespace lstmkit {
namespace lstm {

// FGR is not part of the pointwise structure: the skeleton appends the previous sigmoid gates to
// the recurrent input (lstm.cpp), and the pointwise pass only takes their gradient (`da`).
enum : int64_t { IG = 1, FG = 2, OG = 4, CPL = 8, IACT = 16, OACT = 32, FGR = 64 };

// A variant's structure fixed at compile time ...
template <int64_t F>
struct Fixed {
  static constexpr bool ig = F & IG, fg = F & FG, og = F & OG, cpl = F & CPL, iact = F & IACT, oact = F & OACT;
};
// ... or read at run time, for option combinations no registered variant uses.
struct Dynamic {
  bool ig, fg, og, cpl, iact, oact;
  explicit Dynamic(int64_t f)
      : ig(f & IG), fg(f & FG), og(f & OG), cpl(f & CPL), iact(f & IACT), oact(f & OACT) {}
};

// Column blocks of the stacked gates: a gate without weights takes no block.
template <typename Fl>
struct Layout {
  int64_t gi, gf, gg, go;
  explicit Layout(const Fl& fl) {
    gi = 0;
    gf = fl.ig ? 1 : 0;
    gg = (fl.ig ? 1 : 0) + (fl.fg && !fl.cpl ? 1 : 0);
    go = gg + 1;
  }
};

// bwd_row's saved inputs of `row` (its gates, C_{t-1} and C_t, columns [j0, j1) of each block),
// fetched while the row before it is computed (see prefetch_cols).
template <typename T>
inline void prefetch_row_bwd(const T* G, const T* CS, const T* CP, int64_t GH, int64_t H, int64_t row, int64_t j0,
                             int64_t j1) {
  prefetch_cols(G + row * GH, GH / H, H, j0, j1);
  prefetch_cols(CS + row * H, 1, H, j0, j1);
  prefetch_cols(CP + row * H, 1, H, j0, j1);
}

// Forward pointwise pass for one row. c holds C_{t-1} on entry and C_t on exit. With cp_save and
// cs_save, C_{t-1} and C_t are kept for backward; with `gates`, the gate activations (for backward,
// and for FGR, whose next step reads this step's sigmoid gates).
// The gate blocks of xw, zr and b start every `ld` elements (ld = H, or the stepper's padded width);
// only columns [j0, j1) are computed (the stepper splits a step's columns across threads).
// With `lz` (layer norm), zr is the raw product and each gate's share is
// normalised on the way in, α_h ⊙ (zr − μ)·ρ, keeping (zr − μ)·ρ in lz->zhat when training (one pass
// over the row instead of a separate normalisation pass); m is then not written (layer norm writes
// it from LN(C_t) afterwards).
template <typename T>
struct LnRow {
  const T* ah;  // α_h (G·H)
  T mu, rs;     // the row's mean and 1/σ
  T* zhat;      // training: LN(zr) of this row; null otherwise
};
// (Lz = LnRow<T>*, a separate instantiation: the plain loops keep a pass without the check.)
template <typename T, typename Fl, typename Lz = std::nullptr_t>
inline void fwd_row(const Fl& fl, const Layout<Fl>& L, int64_t ld, int64_t j0, int64_t j1, const T* xw, const T* zr,
                    const T* b, const T* pi, const T* pf, const T* po, T* c, T* cp_save, T* cs_save, T* gates, T* m,
                    Lz lz = nullptr) {
  using V = Vec<T>;
  constexpr bool kLn = !std::is_same<Lz, std::nullptr_t>::value;
  const int64_t H = ld;
  const T* ah = nullptr;
  T* zhat = nullptr;
  V vmu(T(0)), vrs(T(1));
  if constexpr (kLn) ah = lz->ah, zhat = lz->zhat, vmu = V(lz->mu), vrs = V(lz->rs);
  // The lambdas here capture by value: vector stores may alias anything, so with captures by
  // reference GCC reloaded every pointer (and tested it for null) after each store (perf; the
  // layer-norm pass went 10-16% faster when its pointers were captured by value).
  for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
    auto pre = [=](int64_t gate) {
      const int64_t o = gate * ld + j;
      V zz = V::loadu(zr + o, k);
      if constexpr (kLn) {
        zz = (zz - vmu) * vrs;
        if (zhat) zz.store(zhat + o, k);
        zz = zz * V::loadu(ah + o, k);
      }
      const V z = V::loadu(xw + o, k) + zz;
      return b ? z + V::loadu(b + o, k) : z;
    };
    const V one(T(1));
    const V cprev = V::loadu(c + j, k);
    V i = one, f = one, o = one;
    if (fl.ig) {
      V zi = pre(L.gi);
      if (pi) zi = zi + V::loadu(pi + j, k) * cprev;
      i = sigmoid<T>(zi);
    }
    if (fl.cpl) {
      f = one - i;
    } else if (fl.fg) {
      V zf = pre(L.gf);
      if (pf) zf = zf + V::loadu(pf + j, k) * cprev;
      f = sigmoid<T>(zf);
    }
    V g = pre(L.gg);
    if (fl.iact) g = tanh_<T>(g);
    const V cn = f * cprev + i * g;  // C_t = f ⊙ C_{t-1} + i ⊙ C̃_t
    if (fl.og) {
      V zo = pre(L.go);
      if (po) zo = zo + V::loadu(po + j, k) * cn;
      o = sigmoid<T>(zo);
    }
    if constexpr (!kLn) (o * (fl.oact ? tanh_<T>(cn) : cn)).store(m + j, k);
    cn.store(c + j, k);
    if (cp_save) {
      cprev.store(cp_save + j, k);
      cn.store(cs_save + j, k);
    }
    if (gates) {
      if (fl.ig) i.store(gates + L.gi * H + j, k);
      if (fl.fg && !fl.cpl) f.store(gates + L.gf * H + j, k);
      g.store(gates + L.gg * H + j, k);
      if (fl.og) o.store(gates + L.go * H + j, k);
    }
  });
}

// Backward pointwise pass for one row: from dm = ∂L/∂m (dm1 + dm2) and dc = ∂L/∂C_t arriving from
// step t+1, the pre-activation gradients dz (one block per gate with weights) and, in dc, ∂L/∂C_{t-1}.
// Only columns [j0, j1) (default: all H) are computed (threads that split the units). FGR: `da` is
// ∂L/∂a_t for a_t = this step's sigmoid gates (blocks in gate order without g), which the next
// step read through W_gr; it adds to each gate's gradient before the sigmoid's derivative. Layer
// norm: `aout` is the output activation as computed (tanh(LN(C_t)), or LN(C_t)), and the caller has
// already added the gradient that reaches C_t through it to dc, so only o's gradient uses dm.
template <typename T, typename Fl>
inline void bwd_row(const Fl& fl, const Layout<Fl>& L, int64_t H, const T* dm1, const T* dm2, T* dc,
                    const T* gates, const T* cs, const T* cp, const T* pi, const T* pf, const T* po, T* dz,
                    int64_t j0 = 0, int64_t j1 = -1, const T* da = nullptr, const T* aout = nullptr) {
  using V = Vec<T>;
  for_cols<T>(j0, j1 < 0 ? H : j1, [=](int64_t j, int64_t k) {
    const V one(T(1));
    V dm = V::loadu(dm1 + j, k);
    if (dm2) dm = dm + V::loadu(dm2 + j, k);
    const V cn = V::loadu(cs + j, k), cprev = V::loadu(cp + j, k);
    const V i = fl.ig ? V::loadu(gates + L.gi * H + j, k) : one;
    const V f = fl.cpl ? one - i : (fl.fg ? V::loadu(gates + L.gf * H + j, k) : one);
    const V g = V::loadu(gates + L.gg * H + j, k);
    const V o = fl.og ? V::loadu(gates + L.go * H + j, k) : one;
    const V a = aout ? V::loadu(aout + j, k) : (fl.oact ? tanh_<T>(cn) : cn);
    V dcn = V::loadu(dc + j, k);
    if (!aout) dcn = dcn + (fl.oact ? dm * o * (one - a * a) : dm * o);
    auto gate_da = [=](int64_t block) { return V::loadu(da + (block < L.gg ? block : block - 1) * H + j, k); };
    if (fl.og) {
      const V dzo = (da ? dm * a + gate_da(L.go) : dm * a) * o * (one - o);
      dzo.store(dz + L.go * H + j, k);
      if (po) dcn = dcn + dzo * V::loadu(po + j, k);  // the peephole to o sees C_t
    }
    const V dg = dcn * i;
    (fl.iact ? dg * (one - g * g) : dg).store(dz + L.gg * H + j, k);
    const V df = dcn * cprev;
    V dcp = dcn * f;
    if (fl.ig) {
      V di = dcn * g;
      if (fl.cpl) di = di - df;  // f = 1 - i
      if (da) di = di + gate_da(L.gi);
      const V dzi = di * i * (one - i);
      dzi.store(dz + L.gi * H + j, k);
      if (pi) dcp = dcp + dzi * V::loadu(pi + j, k);
    }
    if (fl.fg && !fl.cpl) {
      const V dzf = (da ? df + gate_da(L.gf) : df) * f * (one - f);
      dzf.store(dz + L.gf * H + j, k);
      if (pf) dcp = dcp + dzf * V::loadu(pf + j, k);
    }
    dcp.store(dc + j, k);
  });
}

// Layer norm (Ba et al. 2016) on C_t, after fwd_row: m = o ⊙ act(α_c ⊙ ĉ + β_c) with
// ĉ = (C_t − mean)·rstd, on columns [j0, j1) of one row (fwd_row wrote m from the raw C_t).
template <typename T, typename Fl>
void ln_cell_out(const Fl& fl, const Layout<Fl>& L, int64_t H, int64_t j0, int64_t j1, const T* cn, const T* gates,
                 const T* ac, const T* bc, T mean, T rstd, T* m) {
  using V = Vec<T>;
  const V mu(mean), rs(rstd);
  for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
    V y = (V::loadu(cn + j, k) - mu) * rs * V::loadu(ac + j, k);
    if (bc) y = y + V::loadu(bc + j, k);
    const V a = fl.oact ? tanh_<T>(y) : y;
    (fl.og ? V::loadu(gates + L.go * H + j, k) * a : a).store(m + j, k);
  });
}

// Its backward on columns [j0, j1), before bwd_row: from dm = ∂L/∂m (dm1 + dm2), writes the output
// activation to aout (bwd_row's `aout`), dy = ∂L/∂(α_c ĉ + β_c), gq = dy ⊙ α_c and chat = ĉ, and
// returns Σ gq and Σ gq ⊙ ĉ over the columns; ln_apply(gq, chat, ...) then adds what reaches C_t.
// With `dac` (and `dbc`), also adds this row's dy ⊙ ĉ (and dy) to them: the gradients of α_c and β_c.
template <typename T, typename Fl>
std::pair<double, double> ln_cell_grad(const Fl& fl, const Layout<Fl>& L, int64_t H, int64_t j0, int64_t j1,
                                       const T* dm1, const T* dm2, const T* cn, const T* gates, T mean, T rstd,
                                       const T* ac, const T* bc, T* aout, T* dy, T* gq, T* chat, T* dac = nullptr,
                                       T* dbc = nullptr) {
  using V = Vec<T>;
  const V mu(mean), rs(rstd), one(T(1));
  for_cols<T>(j0, j1, [=](int64_t j, int64_t k) {
    V dm = V::loadu(dm1 + j, k);
    if (dm2) dm = dm + V::loadu(dm2 + j, k);
    const V ch = (V::loadu(cn + j, k) - mu) * rs, alpha = V::loadu(ac + j, k);
    V y = ch * alpha;
    if (bc) y = y + V::loadu(bc + j, k);
    const V a = fl.oact ? tanh_<T>(y) : y;
    const V o = fl.og ? V::loadu(gates + L.go * H + j, k) : one;
    const V d = fl.oact ? dm * o * (one - a * a) : dm * o;
    a.store(aout + j, k);
    d.store(dy + j, k);
    (d * alpha).store(gq + j, k);
    ch.store(chat + j, k);
    if (dac) at::vec::fmadd(d, ch, V::loadu(dac + j, k)).store(dac + j, k);
    if (dbc) (V::loadu(dbc + j, k) + d).store(dbc + j, k);
  });
  const T s1 = blocks_sum<T>(1, 0, j0, j1, [&](int64_t j, int64_t k) { return V::loadu(gq + j, k); });
  const T s2 = blocks_sum<T>(1, 0, j0, j1, [&](int64_t j, int64_t k) { return V::loadu(gq + j, k) * V::loadu(chat + j, k); });
  return {s1, s2};
}

// Run `fn(flags_object)` with the registered variants' structures as compile-time constants.
// float64 (gradchecks, references) always takes the run-time form, to keep the build small.
template <typename T, typename Fn>
auto with_flags(int64_t f, const Fn& fn) {
  if constexpr (!std::is_same<T, float>::value) {
    return fn(Dynamic(f));
  } else {
  switch (f) {
    case IG | FG | OG | IACT | OACT: return fn(Fixed<IG | FG | OG | IACT | OACT>{});        // lstm, peephole
    case FG | OG | IACT | OACT: return fn(Fixed<FG | OG | IACT | OACT>{});                  // nig
    case IG | OG | IACT | OACT: return fn(Fixed<IG | OG | IACT | OACT>{});                  // nfg
    case IG | FG | IACT | OACT: return fn(Fixed<IG | FG | IACT | OACT>{});                  // nog
    case IG | FG | OG | OACT: return fn(Fixed<IG | FG | OG | OACT>{});                     // niaf
    case IG | FG | OG | IACT: return fn(Fixed<IG | FG | OG | IACT>{});                     // noaf
    case IG | FG | OG | CPL | IACT | OACT: return fn(Fixed<IG | FG | OG | CPL | IACT | OACT>{});  // cifg
    default: return fn(Dynamic(f));
  }
  }
}

}  // namespace lstm
}  // namespace lstmkit
