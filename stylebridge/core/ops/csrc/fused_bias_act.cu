// Fused bias + leaky ReLU + gain (+ optional clamp), forward and backward.
//
//   forward:  y = clamp(leaky_relu(x + bias[c], slope) * scale, -clamp, clamp)
//   backward: grad_x = grad_y * m(y),  m(y) = scale        where the pre-activation was > 0,
//                                             scale*slope  elsewhere,
//                                             0            where the output was clamped.
//
// The backward only needs the forward's output: for slope >= 0 the sign of the
// pre-activation is the sign of y (times the sign of scale), and |y| == clamp
// marks clamped elements.  m(y) is piecewise constant, so the gradient of
// grad_x w.r.t. grad_y is the same masked scaling (used for double backward).
// All arithmetic is done in at::opmath_type (float for half/bfloat16).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/macros/Macros.h>

#include <algorithm>
#include <optional>

namespace stylebridge {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;
constexpr int64_t kCpuGrain = 32768;

template <typename opmath_t>
struct BiasActArgs {
  opmath_t slope;
  opmath_t scale;
  opmath_t clamp;      // forward: clamp bound in op-math precision
  opmath_t clamp_ref;  // backward: the bound as stored in the output dtype
  bool has_clamp;
  bool channels_last;  // x is a channels-last [N, C, H, W]: the channel is the fastest index
  int64_t channels;    // size of dim 1 (1 when there is no bias)
  int64_t inner;       // product of the sizes after dim 1
};

template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline scalar_t bias_act_forward_element(const scalar_t* x, const scalar_t* bias,
                                                         int64_t i,
                                                         const BiasActArgs<opmath_t>& a) {
  opmath_t v = static_cast<opmath_t>(x[i]);
  if (bias != nullptr) {
    v += static_cast<opmath_t>(bias[a.channels_last ? i % a.channels : (i / a.inner) % a.channels]);
  }
  v = v > opmath_t(0) ? v : v * a.slope;
  v *= a.scale;
  if (a.has_clamp) {
    v = v > a.clamp ? a.clamp : (v < -a.clamp ? -a.clamp : v);
  }
  return static_cast<scalar_t>(v);
}

template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline scalar_t bias_act_backward_element(const scalar_t* grad, const scalar_t* y,
                                                          int64_t i,
                                                          const BiasActArgs<opmath_t>& a) {
  const opmath_t yv = static_cast<opmath_t>(y[i]);
  const bool positive = a.scale >= opmath_t(0) ? yv > opmath_t(0) : yv < opmath_t(0);
  opmath_t m = positive ? a.scale : a.scale * a.slope;
  if (a.has_clamp) {
    const opmath_t mag = yv < opmath_t(0) ? -yv : yv;
    if (!(mag < a.clamp_ref)) {
      m = opmath_t(0);
    }
  }
  return static_cast<scalar_t>(static_cast<opmath_t>(grad[i]) * m);
}

template <typename scalar_t, typename opmath_t>
__global__ void bias_act_forward_kernel(const scalar_t* __restrict__ x,
                                        const scalar_t* __restrict__ bias,
                                        scalar_t* __restrict__ y, int64_t n,
                                        BiasActArgs<opmath_t> a) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = bias_act_forward_element(x, bias, i, a);
  }
}

template <typename scalar_t, typename opmath_t>
__global__ void bias_act_backward_kernel(const scalar_t* __restrict__ grad,
                                         const scalar_t* __restrict__ y,
                                         scalar_t* __restrict__ out, int64_t n,
                                         BiasActArgs<opmath_t> a) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = bias_act_backward_element(grad, y, i, a);
  }
}

int64_t num_blocks(int64_t n) {
  return std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
}

template <typename scalar_t, typename opmath_t>
BiasActArgs<opmath_t> make_args(const at::Tensor& ref, bool with_bias, double slope, double scale,
                                std::optional<double> clamp, bool channels_last) {
  BiasActArgs<opmath_t> a;
  a.slope = static_cast<opmath_t>(slope);
  a.scale = static_cast<opmath_t>(scale);
  a.has_clamp = clamp.has_value();
  a.clamp = static_cast<opmath_t>(clamp.value_or(0.0));
  // An output clamped to `clamp` holds the bound rounded to scalar_t.
  a.clamp_ref = static_cast<opmath_t>(static_cast<scalar_t>(a.clamp));
  a.channels_last = channels_last;
  a.channels = 1;
  a.inner = 1;
  if (with_bias) {
    a.channels = ref.size(1);
    for (int64_t d = 2; d < ref.dim(); ++d) {
      a.inner *= ref.size(d);
    }
  }
  return a;
}

}  // namespace

// x is contiguous, or (channels_last) a channels-last 4-D tensor; y has x's layout.
at::Tensor fused_bias_act_forward_impl(const at::Tensor& x, const at::Tensor& bias, double slope,
                                       double scale, std::optional<double> clamp,
                                       bool channels_last) {
  at::Tensor y = at::empty_like(
      x, channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  const int64_t n = x.numel();
  if (n == 0) {
    return y;
  }
  const bool with_bias = bias.defined();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "fused_bias_act", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const auto a =
            make_args<scalar_t, opmath_t>(x, with_bias, slope, scale, clamp, channels_last);
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const scalar_t* bp = with_bias ? bias.const_data_ptr<scalar_t>() : nullptr;
        scalar_t* yp = y.mutable_data_ptr<scalar_t>();
        if (x.is_cuda()) {
          const c10::cuda::OptionalCUDAGuard guard(x.device());
          bias_act_forward_kernel<scalar_t, opmath_t>
              <<<num_blocks(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(xp, bp, yp, n,
                                                                                 a);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          TORCH_CHECK(x.is_cpu(), "fused_bias_act: unsupported device ", x.device());
          at::parallel_for(0, n, kCpuGrain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              yp[i] = bias_act_forward_element(xp, bp, i, a);
            }
          });
        }
      });
  return y;
}

// grad and y share one layout (contiguous, or channels_last); the result has it too.  The
// computation is element by element in memory order, so the layout only decides the output's.
at::Tensor fused_bias_act_backward_impl(const at::Tensor& grad, const at::Tensor& y, double slope,
                                        double scale, std::optional<double> clamp,
                                        bool channels_last) {
  at::Tensor out = at::empty_like(
      y, channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  const int64_t n = y.numel();
  if (n == 0) {
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, y.scalar_type(), "fused_bias_act_grad",
      [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const auto a = make_args<scalar_t, opmath_t>(y, false, slope, scale, clamp, false);
        const scalar_t* gp = grad.const_data_ptr<scalar_t>();
        const scalar_t* yp = y.const_data_ptr<scalar_t>();
        scalar_t* op = out.mutable_data_ptr<scalar_t>();
        if (y.is_cuda()) {
          const c10::cuda::OptionalCUDAGuard guard(y.device());
          bias_act_backward_kernel<scalar_t, opmath_t>
              <<<num_blocks(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(gp, yp, op, n,
                                                                                 a);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          TORCH_CHECK(y.is_cpu(), "fused_bias_act_grad: unsupported device ", y.device());
          at::parallel_for(0, n, kCpuGrain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              op[i] = bias_act_backward_element(gp, yp, i, a);
            }
          });
        }
      });
  return out;
}

}  // namespace stylebridge
