// The GRU (lstmkit/cells/gru.py is the source of truth), gates stacked r, z, n:
//
//   r = σ(x_r + U_r h + b_r)    z = σ(x_z + U_z h + b_z)    h_t = (1 - z)⊙n + z⊙h_{t-1}
//   n = tanh(x_n + r⊙(U_n h + b_n))     reset_after (torch.nn.GRU): one GEMM per step
//   n = tanh(x_n + U_n (r⊙h) + b_n)     Cho et al.'s original: a second GEMM on r⊙h per step
//
// Layer norm (Ba et al. 2016; cells/gru.py): each recurrent product is replaced by α ⊙ LN(·)
// before its bias is added (ln_product): U h over its 3H columns (reset_after); U_rz h over 2H
// and U_n (r⊙h) over H, normalised apart (reset_before). ρ is kept per row and product.
#include "engine.h"
#include "gru_split.h"
#include "ln.h"

namespace lstmkit {
namespace {

struct Params {
  Tensor whh, bhh;
  Tensor hmask;  // recurrent dropout: (B, H), one mask per sequence on h_{t-1} where it enters U
  Tensor zh;     // zoneout of h (N, H): 1 = keep h_{t-1} (eval: the rate)
  Tensor lnh;    // layer norm's gain of U h (3H)
  explicit Params(const OptTensors& p) {
    TORCH_CHECK(p.size() == 5, "GRU engine expects 5 slots (weight_hh, bias_hh, recurrent-dropout mask, zoneout, "
                "layer norm's gain)");
    whh = opt(p[0]);
    bhh = opt(p[1]);
    hmask = opt(p[2]);
    zh = opt(p[3]);
    lnh = opt(p[4]);
  }
};

// Layer norm of n rows of a step's product, w columns each: z (ld ldz) -> out (ld ldz; may be z) =
// α ⊙ (z − μ)·ρ; when training, the rows' (z − μ)·ρ into zhat (ld G) and ρ into rstd (every rs-th).
template <typename T>
void ln_product(int64_t n, int64_t w, const T* z, int64_t ldz, const T* alpha, T* out, T* zhat, int64_t G, T* rstd,
                int64_t rs) {
  for_rows(n, w, [&](int64_t r) {
    const T rho = ln_row<T>(z + r * ldz, w, alpha, nullptr, out + r * ldz, zhat ? zhat + r * G : nullptr);
    if (rstd) rstd[r * rs] = rho;
  });
}

using namespace gru;

template <typename T>
std::vector<Tensor> forward_impl(bool reset_after, const Steps& st, const Tensor& xw, const Tensor& h0,
                                 const Params& p, bool train, bool bf16) {
  using V = Vec<T>;
  const int64_t N = st.N, B = st.B, H = h0.size(1), G = 3 * H;
  const auto o = xw.options();
  Tensor out = empty_seq({N, H}, o), h = h0.contiguous().clone();
  Tensor zr = at::empty({B, reset_after ? G : 2 * H}, o);  // this step's recurrent GEMM
  Tensor zn, q;                                            // reset_before: U_n (r⊙h) and r⊙h
  Tensor hp, gates, hn;  // for backward: h_{t-1}, (r, z, n), and (reset_after) U_n h + b_n, per row
  const bool ln = p.lnh.defined();
  const int64_t nrs = reset_after ? 1 : 2;  // layer norm's ρ per row: one per normalised product
  Tensor zhat = ln && train ? empty_seq({N, G}, o) : Tensor(), zrstd = ln && train ? at::empty({N, nrs}, o) : Tensor();
  if (train) {
    hp = empty_seq({N, H}, o);
    gates = empty_seq({N, G}, o);
    if (reset_after) hn = empty_seq({N, H}, o);
  }
  Tensor qbuf;  // reset_before: this step's r⊙h
  if (!reset_after) {
    zn = at::empty({B, H}, o);
    qbuf = at::empty({B, H}, o);
    if (train) q = empty_seq({N, H}, o);
  }
  const T *X = ptr<T>(xw), *W = ptr<T>(p.whh), *bias = ptr<T>(p.bhh);
  T *Y = ptr<T>(out), *Hs = ptr<T>(h), *Z = ptr<T>(zr);
  const int64_t ldz = zr.size(1);
  // Recurrent dropout (Gal & Ghahramani): h_{t-1} ⊙ mask enters U; the interpolation with z uses h_{t-1}.
  const T *Mask = ptr<T>(p.hmask), *ZH = ptr<T>(p.zh);
  // With at least two row blocks per thread the batch splits over the threads (batch_split, below:
  // no barriers); with fewer rows the units do (forward_split, forward_before_split).
  const bool batch_first = batch_splittable<T>(B, 2);
  const Split split = batch_first ? Split::batch : !Mask && !ZH && unit_splittable<T>(H) ? Split::units : Split::none;
  const Panels<T> pk(W, ldz, H, true, B, split);  // reset_before: U_rz
  const OneDnn dnn = on_panels(pk) ? OneDnn() : OneDnn(reset_after ? p.whh : p.whh.narrow(0, 0, 2 * H), B, bf16, split);
  const Panels<T> pn = reset_after ? Panels<T>() : Panels<T>(W + 2 * H * H, H, H, true, B, split);  // U_n (r⊙h)
  Tensor hinb = Mask ? at::empty({B, H}, o) : h;                   // what enters U this step
  Tensor hw = Mask && train ? empty_seq({N, H}, o) : Tensor();     // ... per row, for ∂U
  T* Hin = ptr<T>(hinb);
  if constexpr (std::is_same<T, float>::value) {
    const int64_t nt = !batch_first && !Mask && !ZH && !ln && (reset_after || pn.buf.defined())
                           ? unit_split_threads<T>(pk, H, B, reset_after) : 1;
    if (nt > 1 && reset_after) {
      forward_split<T>(st, nt, pk, X, ptr<T>(h0.contiguous()), bias, Y, Hs, Z, ptr<T>(hp), ptr<T>(gates),
                       ptr<T>(hn), B, H);
      return {out, h, hp, gates, hn, hw, zhat, zrstd};
    }
    if (nt > 1) {
      Tensor zk = train ? Tensor() : at::empty({B, H}, o);
      forward_before_split<T>(st, nt, pk, pn, X, ptr<T>(h0.contiguous()), bias, Y, Hs, Z, ptr<T>(qbuf), ptr<T>(zn),
                              ptr<T>(zk), ptr<T>(hp), ptr<T>(gates), ptr<T>(q), B, H);
      return {out, h, hp, gates, q, hw, zhat, zrstd};
    }
  }
  T *Qb = ptr<T>(qbuf), *ZNb = ptr<T>(zn);
  auto loop = [&](int64_t b0, int64_t b1) {  // the sequences [b0, b1): every per-step buffer is (B, ·)
    Tensor zkeep;
    T *Hs_ = Hs + b0 * H, *Hin_ = Hin + b0 * H, *Z_ = Z + b0 * ldz;
    const T* Mask_ = Mask ? Mask + b0 * H : nullptr;
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      // Training and inference make the same BLAS calls on the same buffers: bit-identical outputs.
      if (train) copy_rows(ptr<T>(hp, r0 * H), Hs_, n, H);
      if (Mask) {
        mask_rows(Hin_, Hs_, Mask_, n, H);
        if (train) copy_rows(ptr<T>(hw, r0 * H), Hin_, n, H);
      }
      const T* hin = Hs_;  // h_{t-1}, for the interpolation; Hin is what enters U
      const T* Zs = step_gemm<T>(dnn, pk, zkeep, hinb, b0, n, Z_);  // what enters U, times Uᵀ (U_rz for reset_before)
      if (ln) {  // α ⊙ LN(U h) (U_rz h for reset_before), into Z_ (which may already hold the product)
        ln_product<T>(n, ldz, Zs, ldz, ptr<T>(p.lnh), Z_, train ? ptr<T>(zhat, r0 * G) : nullptr, G,
                      train ? ptr<T>(zrstd, r0 * nrs) : nullptr, nrs);
        Zs = Z_;
      }
      if (reset_after) {
        for_rows(n, G, [&](int64_t r) {
          fwd_after_cols<T>(H, 0, H, X + (r0 + r) * G, Zs + r * G, bias, hin + r * H, Y + (r0 + r) * H,
                            train ? ptr<T>(gates, (r0 + r) * G) : nullptr, train ? ptr<T>(hn, (r0 + r) * H) : nullptr);
        });
      } else {
        T* Q = Qb + b0 * H;
        for_rows(n, 2 * H, [&](int64_t r) {  // r, z and r⊙h
          const T *x = X + (r0 + r) * G, *zh = Zs + r * ldz, *hprev = Hin_ + r * H;  // r ⊙ (h_{t-1} ⊙ mask)
          T* gs = train ? ptr<T>(gates, (r0 + r) * G) : nullptr;
          for_cols<T>(H, [&](int64_t j, int64_t k) {
            const V rr = sigmoid<T>(V::loadu(x + j, k) + (V::loadu(zh + j, k) + load_b(bias, j, k)));
            const V zz = sigmoid<T>(V::loadu(x + H + j, k) + (V::loadu(zh + H + j, k) + load_b(bias, H + j, k)));
            (rr * V::loadu(hprev + j, k)).store(Q + r * H + j, k);
            if (gs) {
              rr.store(gs + j, k);
              zz.store(gs + H + j, k);
            }
          });
        });
        T* ZN = ZNb + b0 * H;
        pn.mm(n, Q, H, ZN, H);  // U_n (r⊙h)
        if (ln)
          ln_product<T>(n, H, ZN, H, ptr<T>(p.lnh) + 2 * H, ZN, train ? ptr<T>(zhat, r0 * G + 2 * H) : nullptr, G,
                        train ? ptr<T>(zrstd, r0 * nrs + 1) : nullptr, nrs);
        if (train) copy_rows(ptr<T>(q, r0 * H), Q, n, H);
        for_rows(n, H, [&](int64_t r) {
          const T *x = X + (r0 + r) * G, *hprev = hin + r * H;
          T* gs = train ? ptr<T>(gates, (r0 + r) * G) : nullptr;
          // In inference z was not stored; recompute it from the step's GEMM.
          const T* zh = Zs + r * ldz;
          for_cols<T>(H, [&](int64_t j, int64_t k) {
            const V nn = tanh_<T>(V::loadu(x + 2 * H + j, k) + (V::loadu(ZN + r * H + j, k) + load_b(bias, 2 * H + j, k)));
            const V zz = gs ? V::loadu(gs + H + j, k)
                            : sigmoid<T>(V::loadu(x + H + j, k) + (V::loadu(zh + H + j, k) + load_b(bias, H + j, k)));
            const V hv = V::loadu(hprev + j, k);
            (nn + zz * (hv - nn)).store(Y + (r0 + r) * H + j, k);
            if (gs) nn.store(gs + 2 * H + j, k);
          });
        });
      }
      if (ZH) zone_rows(Y + r0 * H, Hs_, ZH + r0 * H, n, H);  // Hs still holds h_{t-1}
      copy_rows(Hs_, Y + r0 * H, n, H);
    }
  };
  // reset_before: pn must be on panels too (it is whenever pk is: same threshold, fewer FLOPs).
  run_batch_split(reset_after || on_panels(pn) ? batch_split<T>(st, pk, dnn.on(), B, batch_first ? 2 : 1)
                                                  : std::vector<int64_t>{0, B}, loop);
  return {out, h, hp, gates, reset_after ? hn : q, hw, zhat, zrstd};
}

template <typename T>
std::vector<Tensor> backward_impl(bool reset_after, const Steps& st, const Tensor& grad_out, const Tensor& grad_hn,
                                  const std::vector<Tensor>& saved, const Params& p, bool bf16) {
  using V = Vec<T>;
  const Tensor &hp = saved[0], &gates = saved[1], &aux = saved[2];  // aux: hn (reset_after) or q = r⊙h
  const Tensor& hin = saved[3].defined() ? saved[3] : hp;  // what entered U: h_{t-1} (⊙ the dropout mask)
  const Tensor &zhat = saved[4], &zrstd = saved[5];  // layer norm: LN(U h) and its 1/σ per row and product
  const bool ln = p.lnh.defined();
  const int64_t N = st.N, B = st.B, H = hp.size(1), G = 3 * H;
  const auto o = gates.options();
  Tensor gy = grad_out.contiguous();
  Tensor dh = grad_hn.contiguous().clone();
  Tensor dx = empty_seq({N, G}, o);                          // ∂L/∂xw
  Tensor dg = reset_after ? empty_seq({N, G}, o) : dx;       // ∂L/∂(U h + b): differs from dx in n's block
  Tensor draw = ln ? empty_seq({N, G}, o) : dg;              // layer norm: ∂L/∂(U h), through the normalisation
  Tensor dq = reset_after ? Tensor() : at::empty({B, H}, o);  // reset_before: ∂L/∂(r⊙h)
  const T *W = ptr<T>(p.whh), *GY = ptr<T>(gy), *GS = ptr<T>(gates), *HP = ptr<T>(hp), *AUX = ptr<T>(aux);
  T *DH = ptr<T>(dh), *DX = ptr<T>(dx), *DG = ptr<T>(dg), *DR = ptr<T>(draw);
  const T *Mask = ptr<T>(p.hmask), *HIN = ptr<T>(hin), *ZH = ptr<T>(p.zh);
  Tensor carry = ZH ? at::empty({B, H}, o) : Tensor();  // zoneout: a ⊙ ∂L/∂h_t, straight to h_{t-1}
  const Tensor zeros = ZH ? at::zeros({N, H}, o) : Tensor();  // with zoneout the pass reads ∂L/∂h_t from DH alone
  const T* GYp = ZH ? ptr<T>(zeros) : GY;
  Tensor dhin = Mask ? at::empty({B, H}, o) : Tensor();  // with dropout: ∂L/∂(h_{t-1} ⊙ mask), masked into DH
  const bool batch_first = batch_splittable<T>(B, 2);  // as forward_impl: the batch or the units split
  const Split split = batch_first ? Split::batch : !Mask && !ZH && unit_splittable<T>(H) ? Split::units : Split::none;
  const Panels<T> pb(W, H, reset_after ? G : 2 * H, false, B, split);  // (dr, dz, dn⊙r) U, or (dr, dz) U_rz
  const Panels<T> pbn = reset_after ? Panels<T>() : Panels<T>(W + 2 * H * H, H, H, false, B, split);  // dn U_n
  const V one(T(1));
  int64_t nt = 1;
  if constexpr (std::is_same<T, float>::value) {
    nt = !batch_first && !Mask && !ZH && !ln && (reset_after || pbn.buf.defined())
             ? unit_split_threads<T>(pb, H, B, reset_after) : 1;
    if (nt > 1 && reset_after) backward_split<T>(st, nt, pb, GY, GS, HP, AUX, DH, DX, DG, H);
    if (nt > 1 && !reset_after) backward_before_split<T>(st, nt, pb, pbn, GY, GS, HP, DH, ptr<T>(dq), DX, H);
  }
  T *Carry = ptr<T>(carry), *Dhin = ptr<T>(dhin), *Dq = ptr<T>(dq);
  auto loop = [&](int64_t b0, int64_t b1) {  // the sequences [b0, b1), as forward_impl
    T *DH_ = DH + b0 * H, *carry_ = ZH ? Carry + b0 * H : nullptr, *dhin_ = Mask ? Dhin + b0 * H : nullptr;
    const T* Mask_ = Mask ? Mask + b0 * H : nullptr;
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      if (ZH) {  // DH = (1 - a) ⊙ ∂L/∂h_t, carry = a ⊙ ∂L/∂h_t
        add_rows(DH_, GY + r0 * H, n, H);
        unzone_rows(DH_, carry_, ZH + r0 * H, n, H);
      }
      // Pass 1: ∂L/∂h_t, then the z and n pre-activation gradients; DH becomes z⊙∂L/∂h_t.
      if (reset_after) {
        for_rows(n, G, [&](int64_t r) {
          const int64_t row = r0 + r;
          bwd_after_cols<T>(H, 0, H, GYp + row * H, DH_ + r * H, GS + row * G, HP + row * H, AUX + row * H,
                            DX + row * G, DG + row * G);
          if (ln)  // back through α ⊙ LN(U h)
            ln_gain_row_backward(DG + row * G, ptr<T>(p.lnh), ptr<T>(zhat, row * G), ptr<T>(zrstd)[row], G, DR + row * G);
        });
      } else {
        for_rows(n, G, [&](int64_t r) {  // reset_before: z and n here, r after U_n's product below
          const int64_t row = r0 + r;
          const T* hprev = HP + row * H;
          for_cols<T>(H, [&](int64_t j, int64_t k) {
            const T* gs = GS + row * G;
            const V d = V::loadu(GYp + row * H + j, k) + V::loadu(DH_ + r * H + j, k);
            const V zz = V::loadu(gs + H + j, k), nn = V::loadu(gs + 2 * H + j, k);
            const V dzz = d * (V::loadu(hprev + j, k) - nn) * zz * (one - zz);
            const V dan = d * (one - zz) * (one - nn * nn);  // ∂L/∂(n's pre-activation)
            dzz.store(DX + row * G + H + j, k);
            dan.store(DX + row * G + 2 * H + j, k);
            (d * zz).store(DH_ + r * H + j, k);
          });
        });
      }
      if (reset_after && Mask) {
        pb.mm(n, DR + r0 * G, G, dhin_, H);  // (dr, dz, dn⊙r) U, into h_{t-1} through the mask
        mask_rows(dhin_, dhin_, Mask_, n, H);
        add_rows(DH_, dhin_, n, H);
      } else if (reset_after) {
        pb.mm(n, DR + r0 * G, G, DH_, H, true);  // + (dr, dz, dn⊙r) U (through LN's backward if any)
      } else {
        T* DQ = Dq + b0 * H;
        if (ln)  // back through α_n ⊙ LN(U_n (r⊙h))
          for_rows(n, H, [&](int64_t r) {
            const int64_t row = r0 + r;
            ln_gain_row_backward(DX + row * G + 2 * H, ptr<T>(p.lnh) + 2 * H, ptr<T>(zhat, row * G + 2 * H),
                                ptr<T>(zrstd)[2 * row + 1], H, DR + row * G + 2 * H);
          });
        pbn.mm(n, DR + r0 * G + 2 * H, G, DQ, H);  // ∂L/∂(r⊙h) = dn U_n (dn through LN's backward if any)
        T* DHIN = Mask ? dhin_ : DH_;  // gradient of what entered U: into DH directly, or masked
        for_rows(n, H, [&](int64_t r) {
          const int64_t row = r0 + r;
          const T *gs = GS + row * G, *hprev = HIN + row * H;  // q = r ⊙ (h_{t-1} ⊙ mask)
          for_cols<T>(H, [&](int64_t j, int64_t k) {
            const V rr = V::loadu(gs + j, k), dqv = V::loadu(DQ + r * H + j, k);
            (dqv * V::loadu(hprev + j, k) * rr * (one - rr)).store(DX + row * G + j, k);
            (Mask ? dqv * rr : V::loadu(DH_ + r * H + j, k) + dqv * rr).store(DHIN + r * H + j, k);
          });
        });
        if (ln)  // back through α_rz ⊙ LN(U_rz h)
          for_rows(n, 2 * H, [&](int64_t r) {
            const int64_t row = r0 + r;
            ln_gain_row_backward(DX + row * G, ptr<T>(p.lnh), ptr<T>(zhat, row * G), ptr<T>(zrstd)[2 * row], 2 * H,
                                DR + row * G);
          });
        pb.mm(n, DR + r0 * G, G, DHIN, H, true);  // + (dr, dz) U_rz (through LN's backward if any)
        if (Mask) {
          mask_rows(DHIN, DHIN, Mask_, n, H);
          add_rows(DH_, DHIN, n, H);
        }
      }
      if (ZH) add_rows(DH_, carry_, n, H);
    }
  };
  if (nt == 1) {  // batch_split needs every product on panels (reset_before: pbn too)
    const bool panels = on_panels(pb) && (reset_after || on_panels(pbn));
    run_batch_split(panels ? batch_split<T>(st, pb, false, B, batch_first ? 2 : 1) : std::vector<int64_t>{0, B}, loop);
  }
  Tensor dw, db;
  if (reset_after) {
    dw = weight_grad(draw, hin, bf16);
  } else {
    dw = at::cat({weight_grad(draw.narrow(1, 0, 2 * H), hin, bf16), weight_grad(draw.narrow(1, 2 * H, H), aux, bf16)});
  }
  if (p.bhh.defined()) db = dg.sum(0);
  Tensor dln = ln ? col_sum<T>(DG, ptr<T>(zhat), nullptr, N, G, o) : Tensor();  // Σ dg ⊙ LN(U h)
  return {dx, dh, dw, db, Tensor(), Tensor(), dln};  // no gradient for the masks
}

}  // namespace

std::vector<Tensor> gru_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train, bool bf16) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  const Tensor x = xw.contiguous();
  TORCH_CHECK(x.size(0) == st.N, "xw has ", x.size(0), " rows; batch_sizes sum to ", st.N);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward",
                                    [&] { return forward_impl<scalar_t>(flags & 1, st, x, h0, p, train, bf16); });
}

std::vector<Tensor> gru_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16) {
  const Steps st(batch_sizes, reverse);
  const Params p(params);
  std::vector<Tensor> s;
  for (const auto& t : saved) s.push_back(opt(t));
  return AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "gru_backward",
                                    [&] { return backward_impl<scalar_t>(flags & 1, st, grad_out, grad_hn, s, p, bf16); });
}

}  // namespace lstmkit
