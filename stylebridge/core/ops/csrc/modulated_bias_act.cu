// The epilogue of a StyleGAN2 styled convolution in one pass over the activation:
//
//   y = clamp(leaky_relu(x * demod[b, c] + strength * noise[b | 0, 0, h, w] + bias[c], slope)
//             * scale, -clamp, clamp)
//
// for x [B, C, H, W] (contiguous, or channels-last: the output keeps x's layout), demod
// [B, C], noise [B or 1, 1, H, W] with a one-element strength, bias [C]; each of demod,
// noise (with strength) and bias is optional.  All arithmetic is done in at::opmath_type
// (float for half/bfloat16), so the only rounding to the storage dtype is the final store
// (the three-op native sequence rounds after each op; the results agree within the dtype's
// tolerance).  The backward needs no kernel of its own: the activation's mask comes from y
// through fused_bias_act_grad (see fused_bias_act.cu and _cuda.py).

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
struct EpilogueArgs {
  opmath_t slope;
  opmath_t scale;
  opmath_t clamp;
  bool has_clamp;
  bool channels_last;    // x and y are [B, H, W, C] in memory
  bool noise_batched;    // noise has B samples (else one shared by all)
  int64_t channels;      // C
  int64_t spatial;       // H * W
};

// The element at memory offset i (of x and y alike).
template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline scalar_t epilogue_element(const scalar_t* x, const scalar_t* demod,
                                                 const scalar_t* noise, const scalar_t* strength,
                                                 const scalar_t* bias, int64_t i,
                                                 const EpilogueArgs<opmath_t>& a) {
  int64_t c, hw, b;
  if (a.channels_last) {
    c = i % a.channels;
    const int64_t pixel = i / a.channels;
    hw = pixel % a.spatial;
    b = pixel / a.spatial;
  } else {
    hw = i % a.spatial;
    const int64_t bc = i / a.spatial;
    c = bc % a.channels;
    b = bc / a.channels;
  }
  opmath_t v = static_cast<opmath_t>(x[i]);
  if (demod != nullptr) {
    v *= static_cast<opmath_t>(demod[b * a.channels + c]);
  }
  if (noise != nullptr) {
    const int64_t n = (a.noise_batched ? b * a.spatial : 0) + hw;
    v += static_cast<opmath_t>(noise[n]) * static_cast<opmath_t>(strength[0]);
  }
  if (bias != nullptr) {
    v += static_cast<opmath_t>(bias[c]);
  }
  v = v > opmath_t(0) ? v : v * a.slope;
  v *= a.scale;
  if (a.has_clamp) {
    v = v > a.clamp ? a.clamp : (v < -a.clamp ? -a.clamp : v);
  }
  return static_cast<scalar_t>(v);
}

template <typename scalar_t, typename opmath_t>
__global__ void epilogue_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ demod,
                                const scalar_t* __restrict__ noise,
                                const scalar_t* __restrict__ strength,
                                const scalar_t* __restrict__ bias, scalar_t* __restrict__ y,
                                int64_t n, EpilogueArgs<opmath_t> a) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = epilogue_element(x, demod, noise, strength, bias, i, a);
  }
}

int64_t epilogue_blocks(int64_t n) {
  return std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
}

template <typename scalar_t>
const scalar_t* optional_ptr(const at::Tensor& t) {
  return t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
}

}  // namespace

// x is contiguous or channels-last contiguous (ops.cpp sees to it); y has x's layout.
at::Tensor modulated_bias_act_impl(const at::Tensor& x, const at::Tensor& demod,
                                   const at::Tensor& noise, const at::Tensor& strength,
                                   const at::Tensor& bias, double slope, double scale,
                                   std::optional<double> clamp, bool channels_last) {
  at::Tensor y = at::empty_like(x, channels_last ? at::MemoryFormat::ChannelsLast
                                                 : at::MemoryFormat::Contiguous);
  const int64_t n = x.numel();
  if (n == 0) {
    return y;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "modulated_bias_act",
      [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        EpilogueArgs<opmath_t> a;
        a.slope = static_cast<opmath_t>(slope);
        a.scale = static_cast<opmath_t>(scale);
        a.has_clamp = clamp.has_value();
        a.clamp = static_cast<opmath_t>(clamp.value_or(0.0));
        a.channels_last = channels_last;
        a.noise_batched = noise.defined() && noise.size(0) > 1;
        a.channels = x.size(1);
        a.spatial = x.size(2) * x.size(3);
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const scalar_t* dp = optional_ptr<scalar_t>(demod);
        const scalar_t* np = optional_ptr<scalar_t>(noise);
        const scalar_t* sp = optional_ptr<scalar_t>(strength);
        const scalar_t* bp = optional_ptr<scalar_t>(bias);
        scalar_t* yp = y.mutable_data_ptr<scalar_t>();
        if (x.is_cuda()) {
          const c10::cuda::OptionalCUDAGuard guard(x.device());
          epilogue_kernel<scalar_t, opmath_t>
              <<<epilogue_blocks(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
                  xp, dp, np, sp, bp, yp, n, a);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          TORCH_CHECK(x.is_cpu(), "modulated_bias_act: unsupported device ", x.device());
          at::parallel_for(0, n, kCpuGrain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              yp[i] = epilogue_element(xp, dp, np, sp, bp, i, a);
            }
          });
        }
      });
  return y;
}

}  // namespace stylebridge
