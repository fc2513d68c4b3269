// Python bindings and argument checks for stylebridge's custom ops.
//
// The kernels live in fused_bias_act.cu, modulated_bias_act.cu, upfirdn2d.cu and
// upfirdn2d_tiled.cu.  Every entry point
// accepts CUDA tensors (the real use) and CPU tensors (the same per-element
// code run in a host loop, so the index arithmetic can be tested on machines
// without a GPU).  Inputs are made contiguous here, except that fused_bias_act and
// modulated_bias_act keep a channels-last 4-D input's layout; outputs have the input's.

#include <torch/extension.h>

#include <optional>

namespace stylebridge {

// fused_bias_act.cu
at::Tensor fused_bias_act_forward_impl(const at::Tensor& x, const at::Tensor& bias, double slope,
                                       double scale, std::optional<double> clamp,
                                       bool channels_last);
at::Tensor fused_bias_act_backward_impl(const at::Tensor& grad, const at::Tensor& y, double slope,
                                        double scale, std::optional<double> clamp,
                                        bool channels_last);
// modulated_bias_act.cu
at::Tensor modulated_bias_act_impl(const at::Tensor& x, const at::Tensor& demod,
                                   const at::Tensor& noise, const at::Tensor& strength,
                                   const at::Tensor& bias, double slope, double scale,
                                   std::optional<double> clamp, bool channels_last);
// upfirdn2d.cu
at::Tensor upfirdn2d_impl(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                          int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                          int64_t pad_x1, int64_t pad_y0, int64_t pad_y1);
// upfirdn2d_tiled.cu
bool upfirdn2d_tiled_supported(int64_t kernel_h, int64_t kernel_w, int64_t up_x, int64_t up_y,
                               int64_t down_x, int64_t down_y);
at::Tensor upfirdn2d_tiled_impl(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                                int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                                int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, int64_t tile_w,
                                int64_t tile_h, int64_t threads, bool fallback);

}  // namespace stylebridge

namespace {

bool is_supported_float(const at::Tensor& t) {
  const auto s = t.scalar_type();
  return s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16;
}

void check_clamp(std::optional<double> clamp) {
  TORCH_CHECK(!clamp.has_value() || *clamp >= 0.0, "fused_bias_act: clamp must be >= 0");
}

// A 4-D tensor laid out channels-last and not also contiguous (the layout the kernels keep;
// any other layout is made contiguous).
bool is_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// y = leaky_relu(x + bias[c], slope) * scale, clamped to [-clamp, clamp] when given.
// bias (optional) has one entry per channel (dim 1 of x).
at::Tensor fused_bias_act(const at::Tensor& x, const std::optional<at::Tensor>& bias, double slope,
                          double scale, std::optional<double> clamp) {
  TORCH_CHECK(is_supported_float(x), "fused_bias_act: unsupported dtype ", x.scalar_type());
  check_clamp(clamp);
  at::Tensor b;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(x.dim() >= 2, "fused_bias_act: x needs a channel dimension (dim 1) for bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1),
                "fused_bias_act: bias must have shape [", x.size(1), "], got ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type(),
                "fused_bias_act: bias dtype ", bias->scalar_type(), " != x dtype ",
                x.scalar_type());
    TORCH_CHECK(bias->device() == x.device(), "fused_bias_act: bias is on ", bias->device(),
                ", x on ", x.device());
    b = bias->contiguous();
  }
  const bool channels_last = is_channels_last(x);
  return stylebridge::fused_bias_act_forward_impl(channels_last ? x : x.contiguous(), b, slope,
                                                  scale, clamp, channels_last);
}

// grad_x = grad_y * d y / d x, from the forward's output y (see fused_bias_act.cu).
at::Tensor fused_bias_act_grad(const at::Tensor& grad, const at::Tensor& y, double slope,
                               double scale, std::optional<double> clamp) {
  TORCH_CHECK(is_supported_float(y), "fused_bias_act_grad: unsupported dtype ", y.scalar_type());
  check_clamp(clamp);
  TORCH_CHECK(grad.sizes() == y.sizes(), "fused_bias_act_grad: grad shape ", grad.sizes(),
              " != output shape ", y.sizes());
  TORCH_CHECK(grad.scalar_type() == y.scalar_type(), "fused_bias_act_grad: grad dtype ",
              grad.scalar_type(), " != output dtype ", y.scalar_type());
  TORCH_CHECK(grad.device() == y.device(), "fused_bias_act_grad: grad is on ", grad.device(),
              ", output on ", y.device());
  // the kernel pairs grad and y element by element in memory: one layout for both, y's
  const bool channels_last = is_channels_last(y);
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  return stylebridge::fused_bias_act_backward_impl(grad.contiguous(format), y.contiguous(format),
                                                   slope, scale, clamp, channels_last);
}

// An optional input of modulated_bias_act: checked against x and made contiguous
// (undefined when absent).
at::Tensor epilogue_input(const std::optional<at::Tensor>& t, const at::Tensor& x,
                          const char* name, at::IntArrayRef shape) {
  if (!t.has_value() || !t->defined()) {
    return at::Tensor();
  }
  TORCH_CHECK(t->sizes() == shape, "modulated_bias_act: ", name, " must have shape ", shape,
              ", got ", t->sizes());
  TORCH_CHECK(t->scalar_type() == x.scalar_type(), "modulated_bias_act: ", name, " dtype ",
              t->scalar_type(), " != x dtype ", x.scalar_type());
  TORCH_CHECK(t->device() == x.device(), "modulated_bias_act: ", name, " is on ", t->device(),
              ", x on ", x.device());
  return t->contiguous();
}

// y = clamp(leaky_relu(x * demod[b, c] + strength * noise[b | 0, 0, h, w] + bias[c], slope)
//           * scale, -clamp, clamp), each of demod, noise (with strength) and bias optional.
// x [B, C, H, W], contiguous or channels-last (kept; any other layout is made contiguous).
at::Tensor modulated_bias_act(const at::Tensor& x, const std::optional<at::Tensor>& demod,
                              const std::optional<at::Tensor>& noise,
                              const std::optional<at::Tensor>& strength,
                              const std::optional<at::Tensor>& bias, double slope, double scale,
                              std::optional<double> clamp) {
  TORCH_CHECK(is_supported_float(x), "modulated_bias_act: unsupported dtype ", x.scalar_type());
  TORCH_CHECK(x.dim() == 4, "modulated_bias_act: x must be [B, C, H, W], got ", x.sizes());
  TORCH_CHECK(!clamp.has_value() || *clamp >= 0.0, "modulated_bias_act: clamp must be >= 0");
  const int64_t batch = x.size(0), channels = x.size(1);
  const at::Tensor d = epilogue_input(demod, x, "demod", {batch, channels});
  const bool has_noise = noise.has_value() && noise->defined();
  at::Tensor n, s;
  if (has_noise) {
    TORCH_CHECK(noise->dim() == 4 && (noise->size(0) == 1 || noise->size(0) == batch),
                "modulated_bias_act: noise must be [", batch, " or 1, 1, ", x.size(2), ", ",
                x.size(3), "], got ", noise->sizes());
    n = epilogue_input(noise, x, "noise", {noise->size(0), 1, x.size(2), x.size(3)});
    TORCH_CHECK(strength.has_value() && strength->defined(),
                "modulated_bias_act: noise needs a strength");
    s = epilogue_input(strength, x, "strength", {1});
  }
  const at::Tensor b = epilogue_input(bias, x, "bias", {channels});
  const bool channels_last = is_channels_last(x);
  const at::Tensor xc = channels_last ? x : x.contiguous();
  return stylebridge::modulated_bias_act_impl(xc, d, n, s, b, slope, scale, clamp,
                                              channels_last);
}

// The argument checks shared by the upfirdn2d entry points.
void check_upfirdn2d(const char* name, const at::Tensor& x, const at::Tensor& kernel,
                     int64_t up_x, int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                     int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  TORCH_CHECK(is_supported_float(x), name, ": unsupported dtype ", x.scalar_type());
  TORCH_CHECK(x.dim() == 4, name, ": x must be [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(kernel.dim() == 2, name, ": kernel must be 2-D, got ", kernel.sizes());
  TORCH_CHECK(kernel.size(0) >= 1 && kernel.size(1) >= 1, name, ": empty kernel");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1,
              name, ": up and down factors must be >= 1");
  const int64_t padded_h = x.size(2) * up_y + pad_y0 + pad_y1;
  const int64_t padded_w = x.size(3) * up_x + pad_x0 + pad_x1;
  TORCH_CHECK(padded_h >= kernel.size(0) && padded_w >= kernel.size(1),
              name, ": padded input ", padded_h, "x", padded_w, " is smaller than the kernel ",
              kernel.size(0), "x", kernel.size(1));
  TORCH_CHECK(padded_h < (int64_t{1} << 30) && padded_w < (int64_t{1} << 30),
              name, ": spatial size too large");
}

// Zero-insert upsampling by (up_x, up_y), padding (negative = crop), true convolution
// with the 2-D kernel, and keeping every (down_x, down_y)-th sample.
at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y,
                     int64_t down_x, int64_t down_y, int64_t pad_x0, int64_t pad_x1,
                     int64_t pad_y0, int64_t pad_y1) {
  check_upfirdn2d("upfirdn2d", x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0,
                  pad_y1);
  return stylebridge::upfirdn2d_impl(x.contiguous(), kernel, up_x, up_y, down_x, down_y, pad_x0,
                                     pad_x1, pad_y0, pad_y1);
}

// The same operation by the shared-memory tiled kernel (default tiles); arguments it does
// not cover (see upfirdn2d_tiled_supported) run the generic kernel instead.
at::Tensor upfirdn2d_tiled(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                           int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                           int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  check_upfirdn2d("upfirdn2d_tiled", x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1,
                  pad_y0, pad_y1);
  return stylebridge::upfirdn2d_tiled_impl(x.contiguous(), kernel, up_x, up_y, down_x, down_y,
                                           pad_x0, pad_x1, pad_y0, pad_y1, 0, 0, 0, true);
}

// The tiled kernel with a chosen tile (outputs tile_w x tile_h, `threads` per block) and no
// fallback: for tests of the tiling (small tiles: several per plane, partial edge tiles).
at::Tensor upfirdn2d_tiled_with_tile(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                                     int64_t up_y, int64_t down_x, int64_t down_y,
                                     int64_t pad_x0, int64_t pad_x1, int64_t pad_y0,
                                     int64_t pad_y1, int64_t tile_w, int64_t tile_h,
                                     int64_t threads) {
  check_upfirdn2d("upfirdn2d_tiled", x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1,
                  pad_y0, pad_y1);
  TORCH_CHECK(tile_w >= 1 && tile_h >= 1 && threads >= 1,
              "upfirdn2d_tiled: tile sizes and threads must be >= 1");
  return stylebridge::upfirdn2d_tiled_impl(x.contiguous(), kernel, up_x, up_y, down_x, down_y,
                                           pad_x0, pad_x1, pad_y0, pad_y1, tile_w, tile_h,
                                           threads, false);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() =
      "stylebridge custom ops (fused bias + leaky ReLU, styled-conv epilogue, upfirdn2d, tiled)";
  m.def("fused_bias_act", &fused_bias_act, "leaky_relu(x + bias) * scale, optional clamp",
        py::arg("x"), py::arg("bias"), py::arg("slope"), py::arg("scale"), py::arg("clamp"));
  m.def("fused_bias_act_grad", &fused_bias_act_grad,
        "gradient of fused_bias_act w.r.t. x, from the saved output", py::arg("grad"),
        py::arg("y"), py::arg("slope"), py::arg("scale"), py::arg("clamp"));
  m.def("modulated_bias_act", &modulated_bias_act,
        "leaky_relu(x * demod + strength * noise + bias) * scale, optional clamp",
        py::arg("x"), py::arg("demod"), py::arg("noise"), py::arg("strength"), py::arg("bias"),
        py::arg("slope"), py::arg("scale"), py::arg("clamp"));
  m.def("upfirdn2d", &upfirdn2d, "upsample, FIR filter, downsample", py::arg("x"),
        py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"),
        py::arg("down_y"), py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"),
        py::arg("pad_y1"));
  m.def("upfirdn2d_tiled", &upfirdn2d_tiled,
        "upsample, FIR filter, downsample by shared-memory tiles (else the generic kernel)",
        py::arg("x"), py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"),
        py::arg("down_y"), py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"),
        py::arg("pad_y1"));
  m.def("upfirdn2d_tiled_with_tile", &upfirdn2d_tiled_with_tile,
        "the tiled kernel with a given tile and no fallback (tests)", py::arg("x"),
        py::arg("kernel"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"),
        py::arg("down_y"), py::arg("pad_x0"), py::arg("pad_x1"), py::arg("pad_y0"),
        py::arg("pad_y1"), py::arg("tile_w"), py::arg("tile_h"), py::arg("threads"));
  m.def("upfirdn2d_tiled_supported", &stylebridge::upfirdn2d_tiled_supported,
        "whether the tiled kernel covers these factors and kernel size", py::arg("kernel_h"),
        py::arg("kernel_w"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"),
        py::arg("down_y"));
}
