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
#include "fgr.h"
#include "ln.h"
#include "lstm_cell.h"
#include "lstm_split.h"

namespace lstmkit {
namespace {

using namespace lstm;

struct Params {
  Tensor whh, bhh, pi, pf, po, whr;
  Tensor hmask;   // recurrent dropout, (B, P) scaled 0/(1-p) per sequence
  Tensor zh, zc;  // zoneout of h (N, P) and C (N, H): per row, 1 = keep the previous value (eval: the rate)
  Tensor lnh, lnc, lnbc;  // layer norm: gains of W_hh h (G·H) and of C (H), shift of C (H)
  explicit Params(const OptTensors& p) {
    TORCH_CHECK(p.size() == 12, "LSTM engine expects 12 slots (6 parameters, the recurrent-dropout mask, zoneout "
                "of h and C, 3 layer-norm parameters)");
    whh = opt(p[0]);
    bhh = opt(p[1]);
    pi = opt(p[2]);
    pf = opt(p[3]);
    po = opt(p[4]);
    whr = opt(p[5]);
    hmask = opt(p[6]);
    zh = opt(p[7]);
    zc = opt(p[8]);
    lnh = opt(p[9]);
    lnc = opt(p[10]);
    lnbc = opt(p[11]);
  }
};

// Recurrent dropout on h only: dst[r, :P] = src[r, :P] ⊙ mask[r], dst[r, P:PW] = src[r, P:PW] (FGR's
// a_{t-1} enters unmasked, as in cells/lstm.py); rows of PW.
template <typename T>
void mask_h(T* dst, const T* src, const T* mask, int64_t n, int64_t P, int64_t PW) {
  if (PW == P) return mask_rows(dst, src, mask, n, P);
  for (int64_t r = 0; r < n; ++r) {
    mask_rows(dst + r * PW, src + r * PW, mask + r * P, 1, P);
    if (dst != src) std::copy(src + r * PW + P, src + (r + 1) * PW, dst + r * PW + P);
  }
}

template <typename T, typename Fl>
std::vector<Tensor> forward_impl(const Fl& fl, bool fgr, const Steps& st, const Tensor& xw, const Tensor& h0,
                                 const Tensor& c0, const Params& p, bool train, bool bf16) {
  const Layout<Fl> L(fl);
  const int64_t N = st.N, B = st.B, GH = xw.size(1), H = c0.size(1), PW = h0.size(1), P = fgr ? PW - (GH - H) : PW;
  const bool proj = p.whr.defined();
  const bool ln = p.lnh.defined();
  const bool fgr_ln = fgr && ln;  // W_hh h (normalised) and R a as two products (fgr.h: FgrLnProducts)
  const auto o = xw.options();
  Tensor out = empty_seq({N, P}, o);
  Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone();  // running state, (B, PW) and (B, H)
  Tensor zr = at::empty({B, GH}, o);                                  // this step's W_hh h_{t-1}
  const bool drop = p.hmask.defined();
  Tensor hin = drop ? at::empty({B, PW}, o) : h;  // what enters W_hh: h_{t-1} ⊙ mask (FGR: [h ⊙ mask, a])
  Tensor hp, cp, cs, gates, m;  // for backward: h_{t-1}, C_{t-1}, C_t, gates and (LSTMP) m, per row
  Tensor gbuf = (fgr || ln) && !train ? at::empty({B, GH}, o) : Tensor();  // FGR, LN inference: this step's gates
  Tensor zhat, zrstd, cstats;  // layer norm, training: LN(W_hh h) and its 1/σ per row, C's (mean, 1/σ) per row
  if (ln && train) {
    zhat = empty_seq({N, GH}, o);
    zrstd = at::empty({N}, o);
    cstats = empty_seq({N, 2}, o);
  }
  if (train) {
    hp = empty_seq({N, PW}, o);
    cp = empty_seq({N, H}, o);
    cs = empty_seq({N, H}, o);
    gates = empty_seq({N, GH}, o);
  }
  Tensor mbuf;  // LSTMP: this step's m
  if (proj) {
    mbuf = at::empty({B, H}, o);
    if (train) m = empty_seq({N, H}, o);
  }
  const T *X = ptr<T>(xw), *W = ptr<T>(p.whh), *bias = ptr<T>(p.bhh), *Wr = ptr<T>(p.whr);
  const T *pi = ptr<T>(p.pi), *pf = ptr<T>(p.pf), *po = ptr<T>(p.po), *Mask = ptr<T>(p.hmask);
  const T *ZH = ptr<T>(p.zh), *ZC = ptr<T>(p.zc);
  T *Y = ptr<T>(out), *Hs = ptr<T>(h), *Cs = ptr<T>(c), *Z = ptr<T>(zr), *Hin = ptr<T>(hin);
  Tensor cprev = ZC ? at::empty({B, H}, o) : Tensor();  // zoneout of C: C_{t-1} while C_t is computed
  // With at least two row blocks per thread the batch splits over the threads (batch_split, below:
  // no barriers); with fewer rows the units do (forward_split, forward_split_proj).
  const bool batch_first = batch_splittable<T>(B, 2);
  const Split split = batch_first ? Split::batch
                      : !proj && !ZH && !ZC && unit_splittable<T>(H) ? Split::units : Split::none;
  const FgrLnProducts<T> fl2 = fgr_ln ? FgrLnProducts<T>(p.whh, H, L.gg, false, B, split) : FgrLnProducts<T>();
  const Panels<T> pk = fgr_ln ? fl2.ph : Panels<T>(W, GH, PW, true, B, split);  // h W_hhᵀ, unless oneDNN's size
  const FgrDnn fdnn = fgr && !fgr_ln && !on_panels(pk) ? FgrDnn(p.whh, H, L.gg, false, B, bf16, split) : FgrDnn();
  const OneDnn dnn = on_panels(pk) || fdnn.on() || fgr_ln ? OneDnn() : OneDnn(p.whh, B, bf16, split);
  Tensor za = fgr_ln ? at::empty({B, GH - H}, o) : Tensor(), xz = fgr_ln ? at::empty({B, GH}, o) : Tensor();
  const Panels<T> pr = proj ? Panels<T>(Wr, P, H, true, B) : Panels<T>();      // m W_hrᵀ
  if constexpr (std::is_same<T, float>::value) {
    if (const int64_t nt = !batch_first && proj && !ZH && !ZC && !Mask && !fgr && !ln ? split_threads_proj<T>(pk, pr, H, P, B) : 1;
        nt > 1) {
      forward_split_proj<T>(fl, L, st, nt, pk, pr, X, ptr<T>(h0.contiguous()), bias, pi, pf, po, Y, Hs, Cs, Z,
                            ptr<T>(hp), ptr<T>(cp), ptr<T>(cs), ptr<T>(gates), ptr<T>(m), ptr<T>(mbuf), B, H, P);
      return {out, h, c, hp, cp, cs, gates, m, Tensor(), Tensor(), Tensor()};
    }
    if (const int64_t nt = batch_first || ZH || ZC || (fgr && Mask) || fgr_ln ? 1 : split_threads<T>(pk, H, B, proj);
        nt > 1) {
      const LnSplit<T> lns{ptr<T>(p.lnh), ptr<T>(p.lnc), ptr<T>(p.lnbc), ptr<T>(zhat), ptr<T>(zrstd), ptr<T>(cstats),
                           nullptr};
      forward_split<T>(fl, L, st, nt, pk, X, ptr<T>(h0.contiguous()), bias, pi, pf, po, Mask, Y, Hs, Cs, Z,
                       ptr<T>(hp), ptr<T>(cp), ptr<T>(cs), ptr<T>(gates), B, H, fgr, ln ? &lns : nullptr);
      return {out, h, c, hp, cp, cs, gates, m, zhat, zrstd, cstats};
    }
  }
  const T *AH = ptr<T>(p.lnh), *AC = ptr<T>(p.lnc), *BC = ptr<T>(p.lnbc);
  T *Gb = ptr<T>(gbuf), *Mb = ptr<T>(mbuf), *Cprev = ptr<T>(cprev);
  // The time loop over the sequences [b0, b1) of the batch: every per-step buffer (state, product,
  // gates, m, C_{t-1}) is (B, ·), so a range works on its own rows and ranges never meet
  // (batch_split runs them side by side).
  auto loop = [&](int64_t b0, int64_t b1) {
    Tensor zkeep;
    T *Hs_ = Hs + b0 * PW, *Cs_ = Cs + b0 * H, *Z_ = Z + b0 * GH, *Hin_ = Hin + b0 * PW;
    const T* Mask_ = Mask ? Mask + b0 * P : nullptr;
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      // Training and inference make the very same BLAS calls on the same buffers (MKL's results can
      // depend on alignment), so with and without grad the outputs are bit-identical.
      if (drop) mask_h<T>(Hin_, Hs_, Mask_, n, P, PW);
      if (train) copy_rows(ptr<T>(hp, r0 * PW), Hin_, n, PW);  // ∂W_hh needs what entered the product
      const T* Zs = Z_;  // (n, G·H) = h_{t-1} W_hhᵀ
      const T* Xs = X + r0 * GH;  // the input share, (n, G·H)
      if (fgr_ln) {  // + R a_{t-1}, outside the normalisation: into the input share
        fl2.forward(n, Hin_, PW, Z_, ptr<T>(za) + b0 * (GH - H));
        fl2.add_recurrence(n, Xs, ptr<T>(za) + b0 * (GH - H), ptr<T>(xz) + b0 * GH);
        Xs = ptr<T>(xz) + b0 * GH;
      } else {
        Zs = fdnn.on() ? fdnn.step(hin.narrow(0, b0, n), Z_) : step_gemm<T>(dnn, pk, zkeep, hin, b0, n, Z_);
      }
      T* M = proj ? Mb + b0 * H : Y + r0 * P;
      if (ZC) copy_rows(Cprev + b0 * H, Cs_, n, H);
      T* Gs = train ? ptr<T>(gates, r0 * GH) : (Gb ? Gb + b0 * GH : nullptr);  // this step's gates, (n, GH)
      for_rows(n, GH, [&](int64_t r) {
        T* cp_row = train ? ptr<T>(cp, (r0 + r) * H) : nullptr;
        T* cs_row = train ? ptr<T>(cs, (r0 + r) * H) : nullptr;
        if (!ln) {
          fwd_row<T>(fl, L, H, 0, H, Xs + r * GH, Zs + r * GH, bias, pi, pf, po, Cs_ + r * H, cp_row, cs_row,
                     Gs ? Gs + r * GH : nullptr, M + r * H);
        } else {  // α_h ⊙ LN(h_{t-1} W_hhᵀ) inside fwd_row (which adds b_hh), then m from LN(C_t)
          const auto [zmu, zm2] = moments(Zs + r * GH, 1, 0, 0, GH);
          const T zrs = ln_rstd<T>(zm2, GH);
          if (train) ptr<T>(zrstd)[r0 + r] = zrs;
          const LnRow<T> lz{AH, T(zmu), zrs, train ? ptr<T>(zhat, (r0 + r) * GH) : nullptr};
          fwd_row<T>(fl, L, H, 0, H, Xs + r * GH, Zs + r * GH, bias, pi, pf, po, Cs_ + r * H, cp_row, cs_row,
                     Gs + r * GH, nullptr, &lz);
          const auto [mu, m2] = moments(Cs_ + r * H, 1, 0, 0, H);
          const T rstd = ln_rstd<T>(m2, H);
          ln_cell_out<T>(fl, L, H, 0, H, Cs_ + r * H, Gs + r * GH, AC, BC, mu, rstd, M + r * H);
          if (train) ptr<T>(cstats, (r0 + r) * 2)[0] = mu, ptr<T>(cstats, (r0 + r) * 2)[1] = rstd;
        }
      });
      if (proj) {
        pr.mm(n, M, H, Y + r0 * P, P);  // h_t = m W_hrᵀ
        if (train) copy_rows(ptr<T>(m, r0 * H), M, n, H);
      }
      if (ZH) {  // Hs still holds h_{t-1} (FGR: [h_{t-1}, a_{t-1}], rows of PW)
        for (int64_t r = 0; r < n; ++r) zone_rows(Y + (r0 + r) * P, Hs_ + r * PW, ZH + (r0 + r) * P, 1, P);
      }
      if (ZC) zone_rows(Cs_, Cprev + b0 * H, ZC + r0 * H, n, H);
      if (fgr) {
        for (int64_t r = 0; r < n; ++r) fgr_input(Hs_ + r * PW, Y + (r0 + r) * P, Gs + r * GH, P, GH, H, L.gg);
      } else {
        copy_rows(Hs_, Y + r0 * P, n, P);
      }
    }
  };
  run_batch_split(batch_split<T>(st, pk, dnn.on(), B, batch_first ? 2 : 1), loop);
  return {out, h, c, hp, cp, cs, gates, m, zhat, zrstd, cstats};
}

template <typename T, typename Fl>
std::vector<Tensor> backward_impl(const Fl& fl, bool fgr, const Steps& st, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const std::vector<Tensor>& saved, const Params& p,
                                  bool bf16) {
  const Layout<Fl> L(fl);
  const Tensor &hp = saved[0], &cp = saved[1], &cs = saved[2], &gates = saved[3], &m = saved[4];
  const Tensor &zhat = saved[5], &zrstd = saved[6], &cstats = saved[7];  // layer norm (lstm_forward)
  const int64_t N = st.N, B = st.B, GH = gates.size(1), H = cs.size(1), PW = hp.size(1);
  const int64_t P = fgr ? PW - (GH - H) : PW;  // PW: the recurrent input's width, [h, a] with FGR
  const bool proj = p.whr.defined();
  const auto o = gates.options();
  Tensor gy = grad_out.contiguous();
  Tensor dh = grad_hn.contiguous().clone(), dc = grad_cn.contiguous().clone();  // ∂L/∂h_t (FGR: [h, a]), ∂L/∂C_t
  Tensor dz = empty_seq({N, GH}, o);                                          // = ∂L/∂xw
  Tensor dhall, dm;  // LSTMP: ∂L/∂h per row (for ∂W_hr) and this step's ∂L/∂m
  if (proj) {
    dhall = empty_seq({N, P}, o);
    dm = at::empty({B, H}, o);
  }
  const T *W = ptr<T>(p.whh), *Wr = ptr<T>(p.whr), *pi = ptr<T>(p.pi), *pf = ptr<T>(p.pf), *po = ptr<T>(p.po);
  const T *Mask = ptr<T>(p.hmask), *ZH = ptr<T>(p.zh), *ZC = ptr<T>(p.zc);
  const T *GY = ptr<T>(gy), *G = ptr<T>(gates), *CS = ptr<T>(cs), *CP = ptr<T>(cp);
  // Zoneout: ∂L/∂h_t and ∂L/∂C_t split into what reaches the step's new values and what is carried
  // straight to h_{t-1} and C_{t-1}.
  Tensor dht = ZH ? at::empty({B, P}, o) : Tensor(), carry_h = ZH ? at::empty({B, P}, o) : Tensor();
  Tensor carry_c = ZC ? at::empty({B, H}, o) : Tensor();
  T *DH = ptr<T>(dh), *DC = ptr<T>(dc), *DZ = ptr<T>(dz);
  const bool ln = p.lnh.defined();
  const bool batch_first = batch_splittable<T>(B, 2);  // as forward_impl: the batch or the units split
  const Split split = batch_first ? Split::batch
                      : !proj && !ZH && !ZC && unit_splittable<T>(H) ? Split::units : Split::none;
  const bool fgr_ln = fgr && ln;  // as forward_impl: W_hh and R apart (fgr.h: FgrLnProducts)
  const FgrLnProducts<T> fl2 = fgr_ln ? FgrLnProducts<T>(p.whh, H, L.gg, true, B, split) : FgrLnProducts<T>();
  const Panels<T> pk = fgr_ln ? fl2.ph : Panels<T>(W, PW, GH, false, B, split);  // dz W_hh
  const FgrDnn fdnn = fgr && !fgr_ln && !on_panels(pk) ? FgrDnn(p.whh, H, L.gg, true, B, bf16, split) : FgrDnn();
  const OneDnn dnn = on_panels(pk) || fdnn.on() || fgr_ln ? OneDnn() : OneDnn(p.whh.t(), B, bf16, split);  // y = dz (W_hhᵀ)ᵀ, large steps
  const Panels<T> pr = proj ? Panels<T>(Wr, H, P, false, B) : Panels<T>();      // ∂L/∂h W_hr
  // Layer norm: ∂L/∂(α_c LN(C) + β_c) per row (the one-thread loop's gain sums) and ∂L/∂(W_hh h) per row (∂W_hh), and scratch.
  Tensor dyc, draw, lnb;
  Tensor dlnh, dlnc, dlnbc;  // layer norm's gains and shift: summed in backward_split, or after the loop
  if (ln) {
    dyc = empty_seq({N, H}, o);
    draw = empty_seq({N, GH}, o);
    lnb = at::empty({B, 3 * H}, o);
  }
  int64_t nt = 1;
  if constexpr (std::is_same<T, float>::value) {
    if (batch_first) {
      nt = 1;
    } else if (proj && !ZH && !ZC && !Mask && !fgr && !ln) {
      nt = split_threads_proj<T>(pk, pr, H, P, B);
      if (nt > 1) backward_split_proj<T>(fl, L, st, nt, pk, pr, GY, G, CS, CP, pi, pf, po, DH, DC, DZ,
                                         ptr<T>(dhall), ptr<T>(dm), H, P);
    } else {
      nt = ZH || ZC || (fgr && Mask) || fgr_ln ? 1 : split_threads<T>(pk, H, B, proj);
      if (nt > 1 && ln) {
        const auto od = at::TensorOptions().dtype(at::kDouble);
        dlnh = at::zeros({GH}, od), dlnc = at::zeros({H}, od), dlnbc = p.lnbc.defined() ? at::zeros({H}, od) : Tensor();
      }
      const LnSplit<T> lns{ptr<T>(p.lnh), ptr<T>(p.lnc), ptr<T>(p.lnbc), ptr<T>(zhat), ptr<T>(zrstd), ptr<T>(cstats),
                           ptr<T>(draw), ptr<double>(dlnh), ptr<double>(dlnc), ptr<double>(dlnbc)};
      if (nt > 1)
        backward_split<T>(fl, L, st, nt, pk, GY, G, CS, CP, pi, pf, po, Mask, DH, DC, DZ, H, fgr, ln ? &lns : nullptr);
    }
  }
  const T *AH = ptr<T>(p.lnh), *AC = ptr<T>(p.lnc), *BC = ptr<T>(p.lnbc);
  T *Dht = ptr<T>(dht), *CarryH = ptr<T>(carry_h), *CarryC = ptr<T>(carry_c), *Dm = ptr<T>(dm), *Lnb = ptr<T>(lnb);
  // The reverse time loop over the sequences [b0, b1) (as forward_impl's loop: every per-step buffer
  // is (B, ·), so ranges run side by side without meeting).
  auto loop = [&](int64_t b0, int64_t b1) {
    T *DH_ = DH + b0 * PW, *DC_ = DC + b0 * H;
    const T* Mask_ = Mask ? Mask + b0 * P : nullptr;
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      const T *dm1 = GY + r0 * P, *dm2 = DH_;  // ∂L/∂h_t = the output's gradient + the next step's
      if (ZH) {
        T* d = Dht + b0 * P;
        for (int64_t r = 0; r < n; ++r)
          for (int64_t q = 0; q < P; ++q) d[r * P + q] = dm1[r * P + q] + DH_[r * PW + q];
        unzone_rows(d, CarryH + b0 * P, ZH + r0 * P, n, P);
        dm1 = d;
        dm2 = nullptr;
      }
      if (ZC) unzone_rows(DC_, CarryC + b0 * H, ZC + r0 * H, n, H);
      if (proj) {
        T* dha = ptr<T>(dhall, r0 * P);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t q = 0; q < P; ++q) dha[r * P + q] = dm2 ? dm1[r * P + q] + dm2[r * PW + q] : dm1[r * P + q];
        pr.mm(n, dha, P, Dm + b0 * H, H);  // ∂L/∂m = ∂L/∂h W_hr
        dm1 = Dm + b0 * H;
        dm2 = nullptr;
      }
      for_rows(n, GH, [&](int64_t r) {
        const int64_t row = r0 + r;
        const T* d1 = dm1 + r * (proj ? H : P);
        const T* d2 = dm2 ? dm2 + r * PW : nullptr;
        T* aout = nullptr;
        T* sc = ln ? Lnb + (b0 + r) * 3 * H : nullptr;  // layer norm's scratch for this row
        if (ln) {  // the output's path through LN(C_t) first: it needs whole-row sums
          aout = sc;
          const T* cst = ptr<T>(cstats, row * 2);
          const auto [s1, s2] = ln_cell_grad<T>(fl, L, H, 0, H, d1, d2, CS + row * H, G + row * GH, cst[0], cst[1],
                                                AC, BC, aout, ptr<T>(dyc, row * H), sc + H, sc + 2 * H);
          ln_apply(sc + H, sc + 2 * H, cst[1], T(s1 / H), T(s2 / H), 0, H, DC_ + r * H, true);
        }
        bwd_row<T>(fl, L, H, d1, d2, DC_ + r * H, G + row * GH, CS + row * H, CP + row * H, pi, pf, po,
                   DZ + row * GH, 0, H, fgr ? DH_ + r * PW + P : nullptr, aout);
        if (ln)  // dz reached α_h ⊙ LN(W_hh h): back through the normalisation
          ln_gain_row_backward(DZ + row * GH, AH, ptr<T>(zhat, row * GH), ptr<T>(zrstd)[row], GH, ptr<T>(draw, row * GH));
      });
      const Tensor& dprod = ln ? draw : dz;  // ∂L/∂(h_{t-1} W_hhᵀ)
      if (fgr_ln) {  // ∂L/∂[h, a]_{t-1} = [dprod W_hh | dz_sig R_sig]
        fl2.backward(n, ptr<T>(dprod, r0 * GH), DZ + r0 * GH, PW, DH_);
      } else if (fdnn.on()) {  // (oneDNN: whole batch only, batch_split never runs it)
        fdnn.step(dprod.narrow(0, r0, n), DH_);
      } else if (dnn.on()) {  // ∂L/∂h_{t-1} = dprod W_hh
        copy_rows(DH_, dnn.mm(dprod.narrow(0, r0, n)).data_ptr<T>(), n, PW);
      } else {
        pk.mm(n, ptr<T>(dprod, r0 * GH), GH, DH_, PW);
      }
      if (Mask) mask_h<T>(DH_, DH_, Mask_, n, P, PW);  // h_{t-1} entered the step only through h_{t-1} ⊙ mask
      if (ZH) {
        for (int64_t r = 0; r < n; ++r) add_rows(DH_ + r * PW, CarryH + (b0 + r) * P, 1, P);
      }
      if (ZC) add_rows(DC_, CarryC + b0 * H, n, H);
    }
  };
  if (nt == 1) run_batch_split(batch_split<T>(st, pk, dnn.on(), B, batch_first ? 2 : 1), loop);
  // Weight gradients: one GEMM or reduction over all steps.
  Tensor dwhh = fgr ? fgr_weight_grad(ln ? draw : dz, dz, hp, H, L.gg, bf16) : weight_grad(ln ? draw : dz, hp, bf16);
  Tensor dbhh = p.bhh.defined() ? dz.sum(0) : Tensor();
  auto peep = [&](const Tensor& w, int64_t block, const Tensor& c) {
    return w.defined() ? (dz.narrow(1, block * H, H) * c).sum(0) : Tensor();
  };
  Tensor dpi = peep(p.pi, L.gi, cp), dpf = peep(p.pf, L.gf, cp), dpo = peep(p.po, L.go, cs);
  Tensor dwhr = proj ? weight_grad(dhall, m, bf16) : Tensor();
  if (ln && dlnh.defined()) {
    dlnh = dlnh.to(dz.scalar_type()), dlnc = dlnc.to(dz.scalar_type());
    if (dlnbc.defined()) dlnbc = dlnbc.to(dz.scalar_type());
  } else if (ln) {
    dlnh = col_sum<T>(DZ, ptr<T>(zhat), nullptr, N, GH, o);  // Σ dz ⊙ LN(W_hh h)
    dlnc = col_sum<T>(ptr<T>(dyc), CS, ptr<T>(cstats), N, H, o);  // Σ ∂L/∂y ⊙ LN(C)
    dlnbc = p.lnbc.defined() ? col_sum<T>(ptr<T>(dyc), nullptr, nullptr, N, H, o) : Tensor();
  }
  return {dz, dh, dc, dwhh, dbhh, dpi, dpf, dpo, dwhr, Tensor(), Tensor(), Tensor(), dlnh, dlnc, dlnbc};  // none for masks
}

}  // namespace

std::vector<Tensor> lstm_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                 const OptTensors& params, const std::vector<int64_t>& batch_sizes, bool reverse,
                                 bool train, bool bf16) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  const Tensor x = xw.contiguous();
  TORCH_CHECK(x.size(0) == st.N, "xw has ", x.size(0), " rows; batch_sizes sum to ", st.N);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    return with_flags<scalar_t>(flags & ~FGR, [&](const auto& fl) {
      return forward_impl<scalar_t>(fl, flags & FGR, st, x, h0, c0, p, train, bf16);
    });
  });
}

std::vector<Tensor> lstm_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const OptTensors& saved, const OptTensors& params,
                                  const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  std::vector<Tensor> s;
  for (const auto& t : saved) s.push_back(opt(t));
  return AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "lstm_backward", [&] {
    return with_flags<scalar_t>(flags & ~FGR, [&](const auto& fl) {
      return backward_impl<scalar_t>(fl, flags & FGR, st, grad_out, grad_hn, grad_cn, s, p, bf16);
    });
  });
}

}  // namespace lstmkit
