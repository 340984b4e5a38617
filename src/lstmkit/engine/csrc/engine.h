// Entry points of the fused engine, one forward and one backward per family. Each runs a whole
// layer-direction over the packed layout; Python (lstmkit/engine/function.py) wraps each pair in
// a torch.autograd.Function. Parameter lists follow PARAMS in function.py.
#pragma once

#include "common.h"
#include "panels.h"

#include <memory>
#include <string>

namespace lstmkit {

using OptTensors = std::vector<std::optional<Tensor>>;

// `bf16`: the layer runs under CPU autocast to bfloat16; large per-step products and the weight
// gradients then use bf16 inputs (OneDnn and weight_grad in common.h). The state stays float32.
//
// LSTM params: weight_hh, bias_hh, weight_ci, weight_cf, weight_co, weight_hr (absent = None).
// forward -> [out, h_n, c_n, saved...]; backward -> [d_xw, d_h0, d_c0, d_params...].
std::vector<Tensor> lstm_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                 const OptTensors& params, const std::vector<int64_t>& batch_sizes, bool reverse,
                                 bool train, bool bf16);
std::vector<Tensor> lstm_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const OptTensors& saved, const OptTensors& params,
                                  const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16);

// GRU params: weight_hh, bias_hh. flags bit 0: reset_after.
std::vector<Tensor> gru_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train, bool bf16);
std::vector<Tensor> gru_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16);

// RNN params: weight_hh, bias_hh. flags bit 0: relu (else tanh).
std::vector<Tensor> rnn_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train, bool bf16);
std::vector<Tensor> rnn_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse, bool bf16);

// The input share outside the loop (input_share.cpp), in sequence-sized buffers (common.h: empty_seq).
// x (N, K) wᵀ (+ bias), as F.linear; w may be a transposed view.
Tensor seq_linear(const Tensor& x, const Tensor& w, const c10::optional<Tensor>& bias);
// Layer norm of each row of y (N, D) in place, as F.layer_norm(y, (D,), gain, bias).
void layer_norm_rows_(Tensor& y, const Tensor& gain, const c10::optional<Tensor>& bias);
// For training: y becomes x̂ = (y − μ)·ρ in place; returns [α ⊙ x̂ + β, ρ (N)].
std::vector<Tensor> layer_norm_rows_train_(Tensor& y, const Tensor& gain, const c10::optional<Tensor>& bias);
// Its backward from ∂L/∂out: [∂L/∂y, ∂L/∂α, ∂L/∂β (undefined without `with_bias`)].
std::vector<Tensor> layer_norm_rows_backward(const Tensor& grad, const Tensor& xhat, const Tensor& rstd,
                                             const Tensor& gain, bool with_bias);

// The streaming stepper (stream.cpp): one step of a unidirectional stack for `batch` sequences,
// weights packed once, state kept between calls. params per layer: weight_ih, bias_ih, weight_hh,
// bias_hh and, for the LSTM, weight_ci, weight_cf, weight_co, weight_hr (absent = None).
// flags as for the family's forward. state(): [h (layers, B, P)] and for the LSTM c (layers, B, H).
class Stream {
 public:
  Stream(const std::string& family, int64_t flags, int64_t hidden, const std::vector<OptTensors>& params,
         int64_t batch, int64_t threads);
  Tensor step(const Tensor& x);  // x (batch, input) -> the last layer's h_t (batch, P)
  std::vector<Tensor> state() const;
  void set_state(const std::vector<Tensor>& state);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace lstmkit
