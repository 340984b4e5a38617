// The streaming stepper: one time step of a whole (unidirectional) stack for a few sequences,
// for real-time use. Weights are packed once, at construction, into panels for a vectorised
// matrix-vector product; every buffer is allocated once; one step of all layers is one call
// with no dispatcher, no allocation (but the returned output) and no autograd.
//
// Threads split each layer's columns: a thread computes, for its column panels, every gate's
// pre-activations and the pointwise pass (which needs only those columns), so the threads meet
// only where a product needs a whole vector (the next layer's input, LSTMP's projection, the
// GRU's U_n (r⊙h)). h is double-buffered per layer so nobody reads a vector that is being written.
#include "engine.h"
#include "lstm_cell.h"

#include <omp.h>

namespace lstmkit {
namespace {

// A weight matrix (G·H, K), gates stacked, packed for y = W v + b: per gate, panels of PW rows
// stored k-major (K × PW, contiguous), the last panel zero-padded. Output y[g·Q·PW + row].
struct Packed {
  int64_t G = 0, H = 0, K = 0, Q = 0, PW = 0;
  Tensor w, b;  // (G, Q, K, PW) and (G, Q·PW)
  Packed() = default;
  Packed(const Tensor& W, const Tensor& bias, int64_t gates, int64_t pw) : G(gates), K(W.size(1)), PW(pw) {
    H = W.size(0) / G;
    Q = (H + PW - 1) / PW;
    Tensor wp = at::zeros({G, Q * PW, K}, W.options());
    wp.narrow(1, 0, H).copy_(W.reshape({G, H, K}));
    w = wp.view({G, Q, PW, K}).permute({0, 1, 3, 2}).contiguous();
    b = at::zeros({G, Q * PW}, W.options());
    if (bias.defined()) b.narrow(1, 0, H).copy_(bias.reshape({G, H}));
  }
  int64_t ld() const { return Q * PW; }  // the padded width of one gate's block of y

  // y for gates [g0, g1) and panels [q0, q1) of each, from v (K).
  template <typename T>
  void gemv(int64_t g0, int64_t g1, int64_t q0, int64_t q1, const T* v, T* y) const {
    using V = Vec<T>;
    constexpr int64_t W = V::size();  // PW = 2W: two accumulators per k, two k's in flight
    const T *wd = w.data_ptr<T>(), *bd = b.data_ptr<T>();
    for (int64_t g = g0; g < g1; ++g) {
      for (int64_t q = q0; q < q1; ++q) {
        const T* p = wd + (g * Q + q) * K * PW;
        V a0(T(0)), a1(T(0)), c0(T(0)), c1(T(0));
        int64_t k = 0;
        for (; k + 2 <= K; k += 2, p += 2 * PW) {
          const V x0(v[k]), x1(v[k + 1]);
          a0 = at::vec::fmadd(V::loadu(p), x0, a0);
          a1 = at::vec::fmadd(V::loadu(p + W), x0, a1);
          c0 = at::vec::fmadd(V::loadu(p + PW), x1, c0);
          c1 = at::vec::fmadd(V::loadu(p + PW + W), x1, c1);
        }
        if (k < K) {
          const V x0(v[k]);
          a0 = at::vec::fmadd(V::loadu(p), x0, a0);
          a1 = at::vec::fmadd(V::loadu(p + W), x0, a1);
        }
        const int64_t o = g * ld() + q * PW;
        (a0 + c0 + V::loadu(bd + o)).store(y + o);
        (a1 + c1 + V::loadu(bd + o + W)).store(y + o + W);
      }
    }
  }
};

// One layer: its packed matrices, its state and its scratch, each (rows, padded width).
struct Layer {
  Packed ih, hh, hr;        // hr: LSTMP's W_hr, else empty
  Tensor pi, pf, po;        // LSTM peepholes (may be undefined)
  Tensor h[2], c, xw, zh, m, q;  // h double-buffered; c: LSTM cell; m: LSTMP's m; q: GRU's r⊙h / z
  int64_t in = 0, H = 0, P = 0;  // input width, hidden width, output width
};

// Thread `tid` of `nt` takes items [lo(n), hi(n)) of n.
struct Share {
  int tid, nt;
  int64_t lo(int64_t n) const { return n * tid / nt; }
  int64_t hi(int64_t n) const { return n * (tid + 1) / nt; }
};

inline void barrier(int nt) {
  if (nt > 1) {
#pragma omp barrier
  }
}

}  // namespace

struct Stream::Impl {
  std::string family;
  int64_t flags = 0, B = 0, parity = 0;
  int threads = 1;
  std::vector<Layer> layers;
  at::ScalarType dtype;

  template <typename T>
  void lstm_layer(Layer& L, int64_t r, const T* x, int tid, int nt) {
    const int64_t p = parity;
    const T* hprev = L.h[p].data_ptr<T>() + r * L.h[p].size(1);
    T* hnew = L.h[1 - p].data_ptr<T>() + r * L.h[1 - p].size(1);
    T *xw = L.xw.data_ptr<T>(), *zh = L.zh.data_ptr<T>(), *c = L.c.data_ptr<T>() + r * L.H;
    const bool proj = L.hr.G > 0;
    T* m = proj ? L.m.data_ptr<T>() : hnew;
    const int64_t q0 = Share{tid, nt}.lo(L.hh.Q), q1 = Share{tid, nt}.hi(L.hh.Q);
    L.ih.gemv<T>(0, L.ih.G, q0, q1, x, xw);
    L.hh.gemv<T>(0, L.hh.G, q0, q1, hprev, zh);
    lstm::with_flags<T>(flags, [&](const auto& fl) {
      const lstm::Layout<std::decay_t<decltype(fl)>> lay(fl);
      lstm::fwd_row<T>(fl, lay, L.hh.ld(), q0 * L.hh.PW, std::min(q1 * L.hh.PW, L.H), xw, zh, (const T*)nullptr,
                       ptr<T>(L.pi), ptr<T>(L.pf), ptr<T>(L.po), c, nullptr, nullptr, nullptr, m);
      return 0;
    });
    if (proj) {  // h_t = W_hr m needs all of m
      barrier(nt);
      L.hr.gemv<T>(0, 1, Share{tid, nt}.lo(L.hr.Q), Share{tid, nt}.hi(L.hr.Q), m, hnew);
    }
  }

  // gru.cpp's pointwise math (lstmkit/cells/gru.py), gates r, z, n:
  //   r = σ(x_r + U_r h + b_r)   z = σ(x_z + U_z h + b_z)   h_t = (1 - z)⊙n + z⊙h_{t-1}
  //   n = tanh(x_n + r⊙(U_n h + b_n))  (reset_after)  or  tanh(x_n + U_n (r⊙h) + b_n)  (Cho's original)
  template <typename T>
  void gru_layer(Layer& L, int64_t r, const T* x, int tid, int nt) {
    using V = Vec<T>;
    const int64_t p = parity, ld = L.hh.ld(), H = L.H;
    const T* hprev = L.h[p].data_ptr<T>() + r * L.h[p].size(1);
    T* hnew = L.h[1 - p].data_ptr<T>() + r * L.h[1 - p].size(1);
    T *xw = L.xw.data_ptr<T>(), *zh = L.zh.data_ptr<T>(), *q = L.q.data_ptr<T>();
    const int64_t q0 = Share{tid, nt}.lo(L.hh.Q), q1 = Share{tid, nt}.hi(L.hh.Q);
    const int64_t j0 = q0 * L.hh.PW, j1 = std::min(q1 * L.hh.PW, H);
    const bool reset_after = flags & 1;
    L.ih.gemv<T>(0, 3, q0, q1, x, xw);
    L.hh.gemv<T>(0, reset_after ? 3 : 2, q0, q1, hprev, zh);
    for_cols<T>(j0, j1, [&](int64_t j, int64_t k) {
      const V rr = sigmoid<T>(V::loadu(xw + j, k) + V::loadu(zh + j, k));
      const V zz = sigmoid<T>(V::loadu(xw + ld + j, k) + V::loadu(zh + ld + j, k));
      const V hv = V::loadu(hprev + j, k);
      if (reset_after) {
        const V nn = tanh_<T>(V::loadu(xw + 2 * ld + j, k) + rr * V::loadu(zh + 2 * ld + j, k));
        (nn + zz * (hv - nn)).store(hnew + j, k);  // (1-z)⊙n + z⊙h
      } else {
        (rr * hv).store(q + j, k);
        zz.store(zh + ld + j, k);  // keep z for after the second product
      }
    });
    if (reset_after) return;
    barrier(nt);  // U_n (r⊙h) needs all of r⊙h
    L.hh.gemv<T>(2, 3, q0, q1, q, zh);
    for_cols<T>(j0, j1, [&](int64_t j, int64_t k) {
      const V nn = tanh_<T>(V::loadu(xw + 2 * ld + j, k) + V::loadu(zh + 2 * ld + j, k));
      const V zz = V::loadu(zh + ld + j, k), hv = V::loadu(hprev + j, k);
      (nn + zz * (hv - nn)).store(hnew + j, k);
    });
  }

  // rnn.cpp's: h_t = φ(W x + b_ih + U h_{t-1} + b_hh), φ = tanh or relu.
  template <typename T>
  void rnn_layer(Layer& L, int64_t r, const T* x, int tid, int nt) {
    using V = Vec<T>;
    const int64_t p = parity;
    const T* hprev = L.h[p].data_ptr<T>() + r * L.h[p].size(1);
    T* hnew = L.h[1 - p].data_ptr<T>() + r * L.h[1 - p].size(1);
    T *xw = L.xw.data_ptr<T>(), *zh = L.zh.data_ptr<T>();
    const int64_t q0 = Share{tid, nt}.lo(L.hh.Q), q1 = Share{tid, nt}.hi(L.hh.Q);
    L.ih.gemv<T>(0, 1, q0, q1, x, xw);
    L.hh.gemv<T>(0, 1, q0, q1, hprev, zh);
    const bool relu = flags & 1;
    for_cols<T>(q0 * L.hh.PW, std::min(q1 * L.hh.PW, L.H), [&](int64_t j, int64_t k) {
      const V a = V::loadu(xw + j, k) + V::loadu(zh + j, k);
      (relu ? at::vec::clamp_min(a, V(T(0))) : tanh_<T>(a)).store(hnew + j, k);
    });
  }

  template <typename T>
  void step(const T* X, int64_t ldx) {
    if (threads == 1) {
      run<T>(X, ldx, 0, 1);
    } else {
      const int want = threads;
#pragma omp parallel num_threads(want)
      {
        // OpenMP may give fewer threads than asked: share the work among those that came.
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        run<T>(X, ldx, tid, nt);
      }
    }
    parity ^= 1;
  }

  // One step of every layer for every row; thread `tid` of `nt` does its share of each layer.
  template <typename T>
  void run(const T* X, int64_t ldx, int tid, int nt) {
    for (int64_t r = 0; r < B; ++r) {
      const T* x = X + r * ldx;
      for (auto& L : layers) {
        if (family == "lstm") lstm_layer<T>(L, r, x, tid, nt);
        else if (family == "gru") gru_layer<T>(L, r, x, tid, nt);
        else rnn_layer<T>(L, r, x, tid, nt);
        barrier(nt);  // the next layer (or row, or step) reads all of h_t
        x = L.h[1 - parity].data_ptr<T>() + r * L.h[1 - parity].size(1);
      }
    }
  }
};

Stream::Stream(const std::string& family, int64_t flags, int64_t hidden, const std::vector<OptTensors>& params,
               int64_t batch, int64_t threads)
    : impl_(std::make_shared<Impl>()) {
  auto& S = *impl_;
  S.family = family;
  S.flags = flags;
  S.B = batch;
  S.threads = std::max<int64_t>(1, threads);
  TORCH_CHECK(family == "lstm" || family == "gru" || family == "rnn", "unknown family ", family);
  // Per layer: weight_ih, bias_ih, weight_hh, bias_hh, then (LSTM) weight_ci, weight_cf, weight_co, weight_hr.
  for (const auto& p : params) {
    Layer L;
    const Tensor wih = opt(p.at(0)), bih = opt(p.at(1)), whh = opt(p.at(2)), bhh = opt(p.at(3));
    S.dtype = wih.scalar_type();
    const int64_t pw = 2 * (S.dtype == at::kFloat ? Vec<float>::size() : Vec<double>::size());
    L.in = wih.size(1);
    Tensor whr;
    if (family == "lstm") {
      L.pi = opt(p.at(4));
      L.pf = opt(p.at(5));
      L.po = opt(p.at(6));
      whr = opt(p.at(7));
    }
    L.P = whh.size(1);
    L.H = hidden;
    const int64_t gates = wih.size(0) / hidden;
    L.ih = Packed(wih, bih, gates, pw);
    L.hh = Packed(whh, bhh, gates, pw);
    if (whr.defined()) L.hr = Packed(whr, Tensor(), 1, pw);
    const auto o = wih.options();
    const int64_t hw = whr.defined() ? L.hr.ld() : L.hh.ld();  // h buffers: padded for the writer
    L.h[0] = at::zeros({batch, hw}, o);
    L.h[1] = at::zeros({batch, hw}, o);
    L.c = at::zeros({batch, L.H}, o);
    L.xw = at::zeros({gates * L.hh.ld()}, o);
    L.zh = at::zeros({gates * L.hh.ld()}, o);
    L.m = at::zeros({L.hh.ld()}, o);
    L.q = at::zeros({L.hh.ld()}, o);
    S.layers.push_back(std::move(L));
  }
}

Tensor Stream::step(const Tensor& input) {
  auto& S = *impl_;
  const int64_t I = S.layers[0].in;
  const bool single = input.dim() == 1;  // (input,) for one stream
  TORCH_CHECK(input.scalar_type() == S.dtype, "Stepper.step: x is ", input.scalar_type(),
              "; the module's parameters are ", S.dtype);
  const bool ok = single ? (S.B == 1 && input.size(0) == I)
                        : (input.dim() == 2 && input.size(0) == S.B && input.size(1) == I);
  TORCH_CHECK(ok,
              "Stepper.step: x of shape ", input.sizes(), "; expected (", S.B, ", ", I, ")",
              S.B == 1 ? " or (input_size,)" : "");
  const Tensor x = input.contiguous();
  const Layer& last = S.layers.back();
  Tensor y = single ? at::empty({last.P}, x.options()) : at::empty({S.B, last.P}, x.options());
  AT_DISPATCH_FLOATING_TYPES(S.dtype, "stream_step", [&] {
    const scalar_t* X = x.data_ptr<scalar_t>();
    S.step<scalar_t>(X, I);
    const Tensor& h = last.h[S.parity];
    scalar_t* Y = y.data_ptr<scalar_t>();
    for (int64_t r = 0; r < S.B; ++r) copy_rows(Y + r * last.P, h.data_ptr<scalar_t>() + r * h.size(1), 1, last.P);
  });
  return y;
}

std::vector<Tensor> Stream::state() const {
  // (layers, B, width) each: h, and for the LSTM c.
  const auto& S = *impl_;
  std::vector<Tensor> hs, cs;
  for (const auto& L : S.layers) {
    hs.push_back(L.h[S.parity].narrow(1, 0, L.P));
    if (S.family == "lstm") cs.push_back(L.c);
  }
  std::vector<Tensor> out{at::stack(hs)};
  if (S.family == "lstm") out.push_back(at::stack(cs));
  return out;
}

void Stream::set_state(const std::vector<Tensor>& state) {
  auto& S = *impl_;
  for (size_t l = 0; l < S.layers.size(); ++l) {
    Layer& L = S.layers[l];
    L.h[S.parity].narrow(1, 0, L.P).copy_(state.at(0)[l]);
    if (S.family == "lstm") L.c.copy_(state.at(1)[l]);
  }
}

}  // namespace lstmkit
