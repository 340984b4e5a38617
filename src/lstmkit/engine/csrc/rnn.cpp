// The Elman RNN (lstmkit/cells/rnn.py): h_t = φ(xw + U h_{t-1} + b), φ = tanh or relu; with layer
// norm (Ba et al. 2016) h_t = φ(xw + α ⊙ LN(U h_{t-1}) + b), the input share normalised in Python.
#include "engine.h"
#include "ln.h"

namespace lstmkit {
namespace {

template <typename T>
std::vector<Tensor> forward_impl(bool relu, const Steps& st, const Tensor& xw, const Tensor& h0, const Tensor& w,
                                 const Tensor& b, const Tensor& mask, const Tensor& zone, const Tensor& lnh, bool train,
                                 bool bf16) {
  using V = Vec<T>;
  const int64_t N = st.N, B = st.B, H = h0.size(1);
  const auto o = xw.options();
  Tensor out = empty_seq({N, H}, o), h = h0.contiguous().clone(), zr = at::empty({B, H}, o);
  Tensor hp = train ? empty_seq({N, H}, o) : Tensor();  // h_{t-1} (⊙ mask) per row, for ∂U
  Tensor hin = mask.defined() ? at::empty({B, H}, o) : h;  // what enters U: h_{t-1} ⊙ mask with recurrent dropout
  const T* ZH = ptr<T>(zone);  // zoneout of h (N, H): 1 = keep h_{t-1} (eval: the rate)
  Tensor yt = ZH && train ? empty_seq({N, H}, o) : out;  // φ(·) before zoneout, for backward
  // Layer norm, training: LN(U h) and its 1/σ per row, for backward.
  Tensor zhat = lnh.defined() && train ? empty_seq({N, H}, o) : Tensor();
  Tensor zrstd = lnh.defined() && train ? at::empty({N}, o) : Tensor();
  const T *X = ptr<T>(xw), *W = ptr<T>(w), *bias = ptr<T>(b), *AH = ptr<T>(lnh);
  T *Y = ptr<T>(out), *Hs = ptr<T>(h), *Z = ptr<T>(zr), *Hin = ptr<T>(hin);
  const T* Mask = ptr<T>(mask);
  // No unit split here: with at least one row block per thread the batch splits (batch_split).
  const Split split = batch_splittable<T>(B, 1) ? Split::batch : Split::none;
  const Panels<T> pk(W, H, H, true, B, split);
  const OneDnn dnn = on_panels(pk) ? OneDnn() : OneDnn(w, B, bf16, split);
  auto loop = [&](int64_t b0, int64_t b1) {  // the sequences [b0, b1): every per-step buffer is (B, H)
    Tensor zkeep;
    T *Hs_ = Hs + b0 * H, *Hin_ = Hin + b0 * H, *Z_ = Z + b0 * H;
    const T* Mask_ = Mask ? Mask + b0 * H : nullptr;
    for (int64_t s = 0; s < st.T; ++s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      if (Mask) mask_rows(Hin_, Hs_, Mask_, n, H);
      if (train) copy_rows(ptr<T>(hp, r0 * H), Hin_, n, H);  // same product with and without grad
      const T* Zs = step_gemm<T>(dnn, pk, zkeep, hin, b0, n, Z_);
      for_rows(n, H, [&](int64_t r) {
        const T *x = X + (r0 + r) * H, *z = Zs + r * H;
        T* y = Y + (r0 + r) * H;
        V vmu(T(0)), vrs(T(1));  // layer norm: the product's row mean and 1/σ
        T* zh = zhat.defined() ? ptr<T>(zhat, (r0 + r) * H) : nullptr;
        if (AH) {
          const auto [mu, m2] = moments(z, 1, 0, 0, H);
          const T rs = ln_rstd<T>(m2, H);
          vmu = V(mu), vrs = V(rs);
          if (zh) ptr<T>(zrstd)[r0 + r] = rs;
        }
        for_cols<T>(H, [&](int64_t j, int64_t k) {
          V a = V::loadu(z + j, k);
          if (AH) {  // α ⊙ LN(U h_{t-1})
            a = (a - vmu) * vrs;
            if (zh) a.store(zh + j, k);
            a = a * V::loadu(AH + j, k);
          }
          if (bias) a = a + V::loadu(bias + j, k);
          a = V::loadu(x + j, k) + a;
          (relu ? at::vec::clamp_min(a, V(T(0))) : tanh_<T>(a)).store(y + j, k);
        });
      });
      if (ZH) {
        if (train) copy_rows(ptr<T>(yt, r0 * H), Y + r0 * H, n, H);
        zone_rows(Y + r0 * H, Hs_, ZH + r0 * H, n, H);  // Hs still holds h_{t-1}
      }
      copy_rows(Hs_, Y + r0 * H, n, H);
    }
  };
  run_batch_split(batch_split<T>(st, pk, dnn.on(), B, 1), loop);
  return {out, h, yt, hp, zhat, zrstd};  // saved for backward: φ(·) of every row, h_{t-1}, LN's
}

template <typename T>
std::vector<Tensor> backward_impl(bool relu, const Steps& st, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& out, const Tensor& hp, const Tensor& w, const Tensor& b,
                                  const Tensor& mask, const Tensor& zone, const Tensor& lnh, const Tensor& zhat,
                                  const Tensor& zrstd, bool bf16) {
  using V = Vec<T>;
  const int64_t N = st.N, H = hp.size(1);
  const T* ZH = ptr<T>(zone);
  Tensor carry = ZH ? at::empty({st.B, H}, hp.options()) : Tensor();  // zoneout: a ⊙ ∂L/∂h_t, straight to h_{t-1}
  Tensor gy = grad_out.contiguous(), dh = grad_hn.contiguous().clone(), da = empty_seq({N, H}, hp.options());
  // Layer norm: ∂L/∂(U h_{t-1}) per row, through the normalisation (for ∂h_{t-1} and ∂U).
  Tensor draw = lnh.defined() ? empty_seq({N, H}, hp.options()) : da;
  const T *W = ptr<T>(w), *GY = ptr<T>(gy), *Y = ptr<T>(out), *AH = ptr<T>(lnh);
  T *DH = ptr<T>(dh), *DA = ptr<T>(da), *DR = ptr<T>(draw);
  const Split split = batch_splittable<T>(st.B, 1) ? Split::batch : Split::none;  // as forward_impl
  const Panels<T> pk(W, H, H, false, st.B, split);  // da U
  const OneDnn dnn = on_panels(pk) ? OneDnn() : OneDnn(w.t(), st.B, bf16, split);  // y = da (Uᵀ)ᵀ, large steps
  const T* Mask = ptr<T>(mask);
  T* Carry = ptr<T>(carry);
  const V one(T(1)), zero(T(0));
  auto loop = [&](int64_t b0, int64_t b1) {  // the sequences [b0, b1), as forward_impl
    T* DH_ = DH + b0 * H;
    T* carry_ = ZH ? Carry + b0 * H : nullptr;
    const T* Mask_ = Mask ? Mask + b0 * H : nullptr;
    for (int64_t s = st.T - 1; s >= 0; --s) {
      const int64_t t = st.at(s), n = std::min(st.bs[t], b1) - b0, r0 = st.off[t] + b0;
      if (n <= 0) continue;
      if (ZH) {  // DH = (1 - a) ⊙ ∂L/∂h_t, carry = a ⊙ ∂L/∂h_t
        add_rows(DH_, GY + r0 * H, n, H);
        unzone_rows(DH_, carry_, ZH + r0 * H, n, H);
      }
      for_rows(n, H, [&](int64_t r) {
        const int64_t row = r0 + r;
        for_cols<T>(H, [&](int64_t j, int64_t k) {
          const V d = ZH ? V::loadu(DH_ + r * H + j, k) : V::loadu(GY + row * H + j, k) + V::loadu(DH_ + r * H + j, k);
          const V y = V::loadu(Y + row * H + j, k);
          // relu: torch's threshold_backward passes the gradient where the output is > 0
          const V a = relu ? V::blendv(zero, d, y > zero) : d * (one - y * y);
          a.store(DA + row * H + j, k);
          if (AH) (a * V::loadu(AH + j, k)).store(DR + row * H + j, k);  // ∂L/∂LN(U h), back through LN below
        });
        if (AH) ln_row_backward(DR + row * H, ptr<T>(zhat, row * H), ptr<T>(zrstd)[row], H, DR + row * H, false);
      });
      if (dnn.on()) {  // ∂L/∂h_{t-1} = draw U (whole batch only: batch_split never runs oneDNN)
        copy_rows(DH_, dnn.mm(draw.narrow(0, r0, n)).data_ptr<T>(), n, H);
      } else {
        pk.mm(n, DR + r0 * H, H, DH_, H);
      }
      if (Mask) mask_rows(DH_, DH_, Mask_, n, H);  // h_{t-1} entered only through h_{t-1} ⊙ mask
      if (ZH) add_rows(DH_, carry_, n, H);
    }
  };
  run_batch_split(batch_split<T>(st, pk, dnn.on(), st.B, 1), loop);
  Tensor dw = weight_grad(draw, hp, bf16);
  Tensor db = b.defined() ? da.sum(0) : Tensor();
  Tensor dln = AH ? col_sum<T>(DA, ptr<T>(zhat), nullptr, N, H, hp.options()) : Tensor();  // Σ da ⊙ LN(U h)
  return {da, dh, dw, db, Tensor(), Tensor(), dln};  // no gradient for the masks
}

}  // namespace

std::vector<Tensor> rnn_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train, bool bf16) {
  const Steps st(batch_sizes, reverse);
  TORCH_CHECK(params.size() == 5, "RNN engine expects 5 slots (weight_hh, bias_hh, recurrent-dropout mask, zoneout, "
              "layer norm's gain)");
  const Tensor x = xw.contiguous(), w = opt(params[0]), b = opt(params[1]), mask = opt(params[2]), zone = opt(params[3]);
  const Tensor lnh = opt(params[4]);
  TORCH_CHECK(x.size(0) == st.N, "xw has ", x.size(0), " rows; batch_sizes sum to ", st.N);
  return AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_forward", [&] {
    return forward_impl<scalar_t>(flags & 1, st, x, h0, w, b, mask, zone, lnh, train, bf16);
  });
}

std::vector<Tensor> rnn_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16) {
  const Steps st(batch_sizes, reverse);
  const Tensor out = opt(saved[0]), hp = opt(saved[1]), zhat = opt(saved[2]), zrstd = opt(saved[3]);
  const Tensor w = opt(params[0]), b = opt(params[1]), mask = opt(params[2]), zone = opt(params[3]), lnh = opt(params[4]);
  return AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "rnn_backward", [&] {
    return backward_impl<scalar_t>(flags & 1, st, grad_out, grad_hn, out, hp, w, b, mask, zone, lnh, zhat, zrstd, bf16);
  });
}

}  // namespace lstmkit
