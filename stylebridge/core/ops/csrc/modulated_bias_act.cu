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
// tolerance).  The work is split into memory rows (a (b, c) plane, or a pixel's channels
// for channels-last) so that the per-element code needs no index division; the host loop
// for CPU tensors runs the same two functions (row_terms, epilogue_element).  The backward
// needs no kernel of its own: the activation's mask comes from y through fused_bias_act_grad
// (see fused_bias_act.cu and _cuda.py).

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
constexpr int64_t kMaxGridY = 65535;
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
  int64_t rows;          // memory rows: B * C (contiguous) or B * H * W (channels-last)
  int64_t inner;         // their length: H * W (contiguous) or C (channels-last)
};

// What is constant along one memory row, computed once per row so that the element loop
// needs no index division: for a contiguous x a row is one (b, c) plane (its demod factor,
// bias and the start of its noise map); for a channels-last x one pixel (its strength *
// noise and the start of its sample's demod factors).
template <typename opmath_t>
struct RowTerms {
  opmath_t demod;
  opmath_t bias;
  opmath_t noise;
  opmath_t strength;
  int64_t offset;  // contiguous: noise offset of the row; channels-last: demod offset (b * C)
};

template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline RowTerms<opmath_t> row_terms(int64_t row, const scalar_t* demod,
                                                    const scalar_t* noise,
                                                    const scalar_t* strength,
                                                    const scalar_t* bias,
                                                    const EpilogueArgs<opmath_t>& a) {
  RowTerms<opmath_t> t;
  t.demod = opmath_t(1);
  t.bias = opmath_t(0);
  t.noise = opmath_t(0);
  t.strength = noise != nullptr ? static_cast<opmath_t>(strength[0]) : opmath_t(0);
  if (!a.channels_last) {
    const int64_t b = row / a.channels;
    if (demod != nullptr) {
      t.demod = static_cast<opmath_t>(demod[row]);  // demod [B, C]: index b * C + c == row
    }
    if (bias != nullptr) {
      t.bias = static_cast<opmath_t>(bias[row - b * a.channels]);
    }
    t.offset = a.noise_batched ? b * a.spatial : 0;
  } else {
    const int64_t b = row / a.spatial;
    if (noise != nullptr) {
      const int64_t hw = row - b * a.spatial;
      t.noise = static_cast<opmath_t>(noise[(a.noise_batched ? b * a.spatial : 0) + hw]) *
                t.strength;
    }
    t.offset = b * a.channels;
  }
  return t;
}

// Element j of a row (x value xv); the same order of operations as the native sequence:
// demodulation, then + noise * strength, then + bias, leaky ReLU, gain, clamp.
template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline scalar_t epilogue_element(scalar_t xv, int64_t j,
                                                 const RowTerms<opmath_t>& t,
                                                 const scalar_t* demod, const scalar_t* noise,
                                                 const scalar_t* bias,
                                                 const EpilogueArgs<opmath_t>& a) {
  opmath_t v = static_cast<opmath_t>(xv);
  if (!a.channels_last) {
    if (demod != nullptr) {
      v *= t.demod;
    }
    if (noise != nullptr) {
      v += static_cast<opmath_t>(noise[t.offset + j]) * t.strength;
    }
    if (bias != nullptr) {
      v += t.bias;
    }
  } else {
    if (demod != nullptr) {
      v *= static_cast<opmath_t>(demod[t.offset + j]);
    }
    if (noise != nullptr) {
      v += t.noise;
    }
    if (bias != nullptr) {
      v += static_cast<opmath_t>(bias[j]);
    }
  }
  v = v > opmath_t(0) ? v : v * a.slope;
  v *= a.scale;
  if (a.has_clamp) {
    v = v > a.clamp ? a.clamp : (v < -a.clamp ? -a.clamp : v);
  }
  return static_cast<scalar_t>(v);
}

// blockIdx.y walks the rows, blockIdx.x / threadIdx.x the elements of a row (coalesced).
template <typename scalar_t, typename opmath_t>
__global__ void epilogue_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ demod,
                                const scalar_t* __restrict__ noise,
                                const scalar_t* __restrict__ strength,
                                const scalar_t* __restrict__ bias, scalar_t* __restrict__ y,
                                EpilogueArgs<opmath_t> a) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t row = blockIdx.y; row < a.rows; row += gridDim.y) {
    const RowTerms<opmath_t> t = row_terms(row, demod, noise, strength, bias, a);
    const scalar_t* xr = x + row * a.inner;
    scalar_t* yr = y + row * a.inner;
    for (int64_t j = first; j < a.inner; j += step) {
      yr[j] = epilogue_element(xr[j], j, t, demod, noise, bias, a);
    }
  }
}

// Threads per block: the row length rounded up to a warp, at most kThreads; blocks along a
// row: about 4 elements per thread; rows: up to the grid's y limit (the kernel loops).
dim3 epilogue_block(int64_t inner) {
  return dim3(static_cast<unsigned>(std::min<int64_t>((inner + 31) / 32 * 32, kThreads)));
}

dim3 epilogue_grid(int64_t rows, int64_t inner, unsigned threads) {
  const int64_t per_block = static_cast<int64_t>(threads) * 4;
  const int64_t gx = std::min<int64_t>((inner + per_block - 1) / per_block, kMaxBlocks);
  const int64_t gy = std::min<int64_t>(rows, kMaxGridY);
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
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
        a.rows = channels_last ? x.size(0) * a.spatial : x.size(0) * a.channels;
        a.inner = channels_last ? a.channels : a.spatial;
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const scalar_t* dp = optional_ptr<scalar_t>(demod);
        const scalar_t* np = optional_ptr<scalar_t>(noise);
        const scalar_t* sp = optional_ptr<scalar_t>(strength);
        const scalar_t* bp = optional_ptr<scalar_t>(bias);
        scalar_t* yp = y.mutable_data_ptr<scalar_t>();
        if (x.is_cuda()) {
          const c10::cuda::OptionalCUDAGuard guard(x.device());
          const dim3 block = epilogue_block(a.inner);
          epilogue_kernel<scalar_t, opmath_t>
              <<<epilogue_grid(a.rows, a.inner, block.x), block, 0,
                 c10::cuda::getCurrentCUDAStream()>>>(xp, dp, np, sp, bp, yp, a);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          TORCH_CHECK(x.is_cpu(), "modulated_bias_act: unsupported device ", x.device());
          const int64_t grain = std::max<int64_t>(1, kCpuGrain / std::max<int64_t>(a.inner, 1));
          at::parallel_for(0, a.rows, grain, [&](int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
              const RowTerms<opmath_t> t = row_terms(row, dp, np, sp, bp, a);
              const scalar_t* xr = xp + row * a.inner;
              scalar_t* yr = yp + row * a.inner;
              for (int64_t j = 0; j < a.inner; ++j) {
                yr[j] = epilogue_element(xr[j], j, t, dp, np, bp, a);
              }
            }
          });
        }
      });
  return y;
}

}  // namespace stylebridge
