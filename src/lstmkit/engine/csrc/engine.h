// Entry points of the fused engine, one forward and one backward per family. Each runs a whole
// layer-direction over the packed layout; Python (lstmkit/engine/function.py) wraps each pair in
// a torch.autograd.Function. Parameter lists follow PARAMS in function.py.
#pragma once

#include "common.h"

namespace lstmkit {

using OptTensors = std::vector<std::optional<Tensor>>;

// LSTM params: weight_hh, bias_hh, weight_ci, weight_cf, weight_co, weight_hr (absent = None).
// forward -> [out, h_n, c_n, saved...]; backward -> [d_xw, d_h0, d_c0, d_params...].
std::vector<Tensor> lstm_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const Tensor& c0,
                                 const OptTensors& params, const std::vector<int64_t>& batch_sizes, bool reverse,
                                 bool train);
std::vector<Tensor> lstm_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                  const Tensor& grad_cn, const OptTensors& saved, const OptTensors& params,
                                  const std::vector<int64_t>& batch_sizes, bool reverse);

// GRU params: weight_hh, bias_hh. flags bit 0: reset_after.
std::vector<Tensor> gru_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train);
std::vector<Tensor> gru_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse);

// RNN params: weight_hh, bias_hh. flags bit 0: relu (else tanh).
std::vector<Tensor> rnn_forward(int64_t flags, const Tensor& xw, const Tensor& h0, const OptTensors& params,
                                const std::vector<int64_t>& batch_sizes, bool reverse, bool train);
std::vector<Tensor> rnn_backward(int64_t flags, const Tensor& grad_out, const Tensor& grad_hn,
                                 const OptTensors& saved, const OptTensors& params,
                                 const std::vector<int64_t>& batch_sizes, bool reverse);

}  // namespace lstmkit
