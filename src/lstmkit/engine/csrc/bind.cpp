#include <torch/extension.h>

#include "engine.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit's fused CPU engine: whole-sequence forward and backward per layer-direction";
  m.def("lstm_forward", &lstmkit::lstm_forward);
  m.def("lstm_backward", &lstmkit::lstm_backward);
  m.def("gru_forward", &lstmkit::gru_forward);
  m.def("gru_backward", &lstmkit::gru_backward);
  m.def("rnn_forward", &lstmkit::rnn_forward);
  m.def("rnn_backward", &lstmkit::rnn_backward);
  m.def("seq_linear", &lstmkit::seq_linear);
  m.def("layer_norm_rows_", &lstmkit::layer_norm_rows_);
  m.def("layer_norm_rows_train_", &lstmkit::layer_norm_rows_train_);
  m.def("layer_norm_rows_backward", &lstmkit::layer_norm_rows_backward);
  pybind11::class_<lstmkit::Stream>(m, "Stream", pybind11::module_local())  // local: two builds can share a process (A/B runs)
      .def(pybind11::init<const std::string&, int64_t, int64_t, const std::vector<lstmkit::OptTensors>&, int64_t,
                          int64_t>())
      .def("step", &lstmkit::Stream::step)
      .def("state", &lstmkit::Stream::state)
      .def("set_state", &lstmkit::Stream::set_state);
  m.def("vector_width", []() { return (int64_t)lstmkit::Vec<float>::size(); });
}
