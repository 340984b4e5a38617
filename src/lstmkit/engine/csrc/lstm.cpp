// The LSTM family (lstmkit/cells/lstm.py is the source of truth for the math):
//
//   i = σ(z_i + p_i⊙C_{t-1})    f = σ(z_f + p_f⊙C_{t-1})  (or 1 - i, or 1)    C̃ = tanh(z_g) (or z_g)
//   C_t = f⊙C_{t-1} + i⊙C̃      o = σ(z_o + p_o⊙C_t)      m = o⊙tanh(C_t) (or o⊙C_t)
//   h_t = m, or W_hr m with a projection;   z = xw + W_hh h_{t-1} + b_hh, gates stacked i, f, g, o.
//
// One skeleton (the time loop, its GEMMs and buffers) is shared by every variant; the pointwise
// pass is templated on the variant's structure (which gates exist, coupling, activations) so each
// registered variant gets straight-line vector code. Peepholes and biases are optional pointers.
#include "engine.h"

namespace lstmkit {
namespace {

enum : int64_t { IG = 1, FG = 2, OG = 4, CPL = 8, IACT = 16, OACT = 32 };

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

// Forward pointwise pass for one row. c holds C_{t-1} on entry and C_t on exit. With `save`,
// C_{t-1}, C_t and the gate activations are kept for backward.
template <typename T, typename Fl>
inline void fwd_row(const Fl& fl, const Layout<Fl>& L, int64_t H, const T* xw, const T* zr, const T* b,
                    const T* pi, const T* pf, const T* po, T* c, T* cp_save, T* cs_save, T* gates, T* m) {
  using V = Vec<T>;
  for_cols<T>(H, [&](int64_t j, int64_t k) {
    auto pre = [&](int64_t gate) {
      const int64_t o = gate * H + j;
      V z = V::loadu(xw + o, k) + V::loadu(zr + o, k);
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
    if (fl.iact) g = g.tanh();
    const V cn = f * cprev + i * g;  // C_t = f ⊙ C_{t-1} + i ⊙ C̃_t
    if (fl.og) {
      V zo = pre(L.go);
      if (po) zo = zo + V::loadu(po + j, k) * cn;
      o = sigmoid<T>(zo);
    }
    const V a = fl.oact ? cn.tanh() : cn;
    (o * a).store(m + j, k);
    cn.store(c + j, k);
    if (cp_save) {
      cprev.store(cp_save + j, k);
      cn.store(cs_save + j, k);
      if (fl.ig) i.store(gates + L.gi * H + j, k);
      if (fl.fg && !fl.cpl) f.store(gates + L.gf * H + j, k);
      g.store(gates + L.gg * H + j, k);
      if (fl.og) o.store(gates + L.go * H + j, k);
    }
  });
}

// Backward pointwise pass for one row: from dm = ∂L/∂m (dm1 + dm2) and dc = ∂L/∂C_t arriving from
// step t+1, the pre-activation gradients dz (one block per gate with weights) and, in dc, ∂L/∂C_{t-1}.
template <typename T, typename Fl>
inline void bwd_row(const Fl& fl, const Layout<Fl>& L, int64_t H, const T* dm1, const T* dm2, T* dc,
                    const T* gates, const T* cs, const T* cp, const T* pi, const T* pf, const T* po, T* dz) {
  using V = Vec<T>;
  for_cols<T>(H, [&](int64_t j, int64_t k) {
    const V one(T(1));
    V dm = V::loadu(dm1 + j, k);
    if (dm2) dm = dm + V::loadu(dm2 + j, k);
    const V cn = V::loadu(cs + j, k), cprev = V::loadu(cp + j, k);
    const V i = fl.ig ? V::loadu(gates + L.gi * H + j, k) : one;
    const V f = fl.cpl ? one - i : (fl.fg ? V::loadu(gates + L.gf * H + j, k) : one);
    const V g = V::loadu(gates + L.gg * H + j, k);
    const V o = fl.og ? V::loadu(gates + L.go * H + j, k) : one;
    const V a = fl.oact ? cn.tanh() : cn;
    V dcn = V::loadu(dc + j, k) + (fl.oact ? dm * o * (one - a * a) : dm * o);
    if (fl.og) {
      const V dzo = dm * a * o * (one - o);
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
      const V dzi = di * i * (one - i);
      dzi.store(dz + L.gi * H + j, k);
      if (pi) dcp = dcp + dzi * V::loadu(pi + j, k);
    }
    if (fl.fg && !fl.cpl) {
      const V dzf = df * f * (one - f);
      dzf.store(dz + L.gf * H + j, k);
      if (pf) dcp = dcp + dzf * V::loadu(pf + j, k);
    }
    dcp.store(dc + j, k);
  });
}

struct Params {
  Tensor whh, bhh, pi, pf, po, whr;
  explicit Params(const OptTensors& p) {
    TORCH_CHECK(p.size() == 6, "LSTM engine expects 6 parameter slots");
    whh = opt(p[0]);
    bhh = opt(p[1]);
    pi = opt(p[2]);
    pf = opt(p[3]);
    po = opt(p[4]);
    whr = opt(p[5]);
  }
};

template <typename T, typename Fl>
std::vector<Tensor> forward_impl(const Fl& fl, const Steps& st, const Tensor& xw, const Tensor& h0,
                                 const Tensor& c0, const Params& p, bool train) {
  const Layout<Fl> L(fl);
  const int64_t N = st.N, B = st.B, GH = xw.size(1), H = c0.size(1), P = h0.size(1);
  const bool proj = p.whr.defined();
  const auto o = xw.options();
  Tensor out = at::empty({N, P}, o);
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone();  // running state, (B, P) and (B, H)
  Tensor zr = at::empty({B, GH}, o);                                  // this step's W_hh h_{t-1}
  Tensor hp, cp, cs, gates, m;  // for backward: h_{t-1}, C_{t-1}, C_t, gates and (LSTMP) m, per row
  if (train) {
    hp = at::empty({N, P}, o);
    cp = at::empty({N, H}, o);
    cs = at::empty({N, H}, o);
    gates = at::empty({N, GH}, o);
  }
  Tensor mbuf;  // LSTMP: this step's m
  if (proj) {
    mbuf = at::empty({B, H}, o);
    if (train) m = at::empty({N, H}, o);
  }
  const T *X = ptr<T>(xw), *W = ptr<T>(p.whh), *bias = ptr<T>(p.bhh), *Wr = ptr<T>(p.whr);
  const T *pi = ptr<T>(p.pi), *pf = ptr<T>(p.pf), *po = ptr<T>(p.po);
  T *Y = ptr<T>(out), *Hs = ptr<T>(h), *Cs = ptr<T>(c), *Z = ptr<T>(zr);
  for (int64_t s = 0; s < st.T; ++s) {
    const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
    // Training and inference make the very same BLAS calls on the same buffers (MKL's results can
    // depend on alignment), so with and without grad the outputs are bit-identical.
    if (train) copy_rows(ptr<T>(hp, r0 * P), Hs, n, P);
    gemm_nt<T>(n, GH, P, Hs, P, W, P, T(0), Z, GH);  // (n, G·H) = h_{t-1} W_hhᵀ
    T* M = proj ? ptr<T>(mbuf) : Y + r0 * P;
    for_rows(n, GH, [&](int64_t r) {
      fwd_row<T>(fl, L, H, X + (r0 + r) * GH, Z + r * GH, bias, pi, pf, po, Cs + r * H,
                 train ? ptr<T>(cp, (r0 + r) * H) : nullptr, train ? ptr<T>(cs, (r0 + r) * H) : nullptr,
                 train ? ptr<T>(gates, (r0 + r) * GH) : nullptr, M + r * H);
    });
    if (proj) {
      gemm_nt<T>(n, P, H, M, H, Wr, H, T(0), Y + r0 * P, P);  // h_t = m W_hrᵀ
      if (train) copy_rows(ptr<T>(m, r0 * H), M, n, H);
    }
    copy_rows(Hs, Y + r0 * P, n, P);
  }
  return {out, h, c, hp, cp, cs, gates, m};
}

template <typename T, typename Fl>
std::vector<Tensor> backward_impl(const Fl& fl, const Steps& st, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const std::vector<Tensor>& saved, const Params& p) {
  const Layout<Fl> L(fl);
  const Tensor &hp = saved[0], &cp = saved[1], &cs = saved[2], &gates = saved[3], &m = saved[4];
  const int64_t N = st.N, B = st.B, GH = gates.size(1), H = cs.size(1), P = hp.size(1);
  const bool proj = p.whr.defined();
  const auto o = gates.options();
  Tensor gy = grad_out.contiguous();
  Tensor dh = grad_hn.contiguous().clone(), dc = grad_cn.contiguous().clone();  // ∂L/∂h_t, ∂L/∂C_t per sequence
  Tensor dz = at::empty({N, GH}, o);                                          // = ∂L/∂xw
  Tensor dhall, dm;  // LSTMP: ∂L/∂h per row (for ∂W_hr) and this step's ∂L/∂m
  if (proj) {
    dhall = at::empty({N, P}, o);
    dm = at::empty({B, H}, o);
  }
  const T *W = ptr<T>(p.whh), *Wr = ptr<T>(p.whr), *pi = ptr<T>(p.pi), *pf = ptr<T>(p.pf), *po = ptr<T>(p.po);
  const T *GY = ptr<T>(gy), *G = ptr<T>(gates), *CS = ptr<T>(cs), *CP = ptr<T>(cp);
  T *DH = ptr<T>(dh), *DC = ptr<T>(dc), *DZ = ptr<T>(dz);
  for (int64_t s = st.T - 1; s >= 0; --s) {
    const int64_t t = st.at(s), n = st.bs[t], r0 = st.off[t];
    const T *dm1 = GY + r0 * P, *dm2 = DH;  // ∂L/∂h_t = the output's gradient + the next step's
    if (proj) {
      T* dha = ptr<T>(dhall, r0 * P);
      for (int64_t q = 0; q < n * P; ++q) dha[q] = dm1[q] + DH[q];
      gemm_nn<T>(n, H, P, dha, P, Wr, H, T(0), ptr<T>(dm), H);  // ∂L/∂m = ∂L/∂h W_hr
      dm1 = ptr<T>(dm);
      dm2 = nullptr;
    }
    for_rows(n, GH, [&](int64_t r) {
      const int64_t row = r0 + r;
      bwd_row<T>(fl, L, H, dm1 + r * (proj ? H : P), dm2 ? dm2 + r * P : nullptr, DC + r * H, G + row * GH,
                 CS + row * H, CP + row * H, pi, pf, po, DZ + row * GH);
    });
    gemm_nn<T>(n, P, GH, DZ + r0 * GH, GH, W, P, T(0), DH, P);  // ∂L/∂h_{t-1} = dz W_hh
  }
  // Weight gradients: one GEMM or reduction over all steps.
  Tensor dwhh = at::mm(dz.t(), hp);
  Tensor dbhh = p.bhh.defined() ? dz.sum(0) : Tensor();
  auto peep = [&](const Tensor& w, int64_t block, const Tensor& c) {
    return w.defined() ? (dz.narrow(1, block * H, H) * c).sum(0) : Tensor();
  };
  Tensor dpi = peep(p.pi, L.gi, cp), dpf = peep(p.pf, L.gf, cp), dpo = peep(p.po, L.go, cs);
  Tensor dwhr = proj ? at::mm(dhall.t(), m) : Tensor();
  return {dz, dh, dc, dwhh, dbhh, dpi, dpf, dpo, dwhr};
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

}  // namespace

std::vector<Tensor> lstm_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                 const OptTensors& params, const std::vector<int64_t>& batch_sizes, bool reverse,
                                 bool train) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  const Tensor x = xw.contiguous();
  TORCH_CHECK(x.size(0) == st.N, "xw has ", x.size(0), " rows; batch_sizes sum to ", st.N);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    return with_flags<scalar_t>(flags, [&](const auto& fl) { return forward_impl<scalar_t>(fl, st, x, h0, c0, p, train); });
  });
}

std::vector<Tensor> lstm_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const OptTensors& saved, const OptTensors& params,
                                  const std::vector<int64_t>& batch_sizes, bool reverse) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  std::vector<Tensor> s;
  for (const auto& t : saved) s.push_back(opt(t));
  return AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "lstm_backward", [&] {
    return with_flags<scalar_t>(flags, [&](const auto& fl) {
      return backward_impl<scalar_t>(fl, st, grad_out, grad_hn, grad_cn, s, p);
    });
  });
}

}  // namespace lstmkit
