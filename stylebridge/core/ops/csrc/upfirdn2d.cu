// upfirdn2d: zero-insert upsampling, padding/cropping, FIR filtering (true
// convolution) and downsampling of every [H, W] plane of an [N, C, H, W] tensor.
//
// Per axis, with input length L, up factor U, down factor D, pad p0 and kernel
// length K, output sample o is
//
//   out[o] = sum_{t=0}^{K-1} u[o*D + t - p0] * k[K-1-t],   u[j] = x[j/U] if j % U == 0 else 0
//
// for 0 <= j < L*U (outside that range u is zero padding; a negative p0 crops).
// The 2-D kernel applies the same mapping on both axes.  Each output element
// is computed by one thread, which visits only the taps that land on real
// (non-inserted, in-range) input samples.  Accumulation is in op-math
// precision (float for half/bfloat16, double for double).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/macros/Macros.h>

#include <algorithm>

namespace stylebridge {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t{1} << 20;
constexpr int64_t kCpuGrain = 1024;

struct UpFirDnArgs {
  int in_h, in_w;
  int out_h, out_w;
  int kernel_h, kernel_w;
  int up_x, up_y;
  int down_x, down_y;
  int pad_x0, pad_y0;
};

// Taps t in [first, last) with step `up` are those where base + t is a real
// input sample: 0 <= base + t < in_len * up and (base + t) % up == 0.
C10_HOST_DEVICE inline void tap_range(int base, int up, int in_len, int kernel_len, int& first,
                                      int& last) {
  const int lo = base < 0 ? -base : 0;
  const int rem = (base + lo) % up;  // base + lo >= 0
  first = lo + (rem == 0 ? 0 : up - rem);
  const int hi = in_len * up - base;
  last = hi < kernel_len ? hi : kernel_len;
}

template <typename scalar_t, typename opmath_t>
C10_HOST_DEVICE inline scalar_t upfirdn2d_element(const scalar_t* __restrict__ x,
                                                  const opmath_t* __restrict__ kernel,
                                                  int64_t index, const UpFirDnArgs& a) {
  const int ox = static_cast<int>(index % a.out_w);
  const int64_t rest = index / a.out_w;
  const int oy = static_cast<int>(rest % a.out_h);
  const int64_t plane = rest / a.out_h;
  const scalar_t* xp = x + plane * a.in_h * a.in_w;

  const int base_x = ox * a.down_x - a.pad_x0;
  const int base_y = oy * a.down_y - a.pad_y0;
  int tx0, tx1, ty0, ty1;
  tap_range(base_x, a.up_x, a.in_w, a.kernel_w, tx0, tx1);
  tap_range(base_y, a.up_y, a.in_h, a.kernel_h, ty0, ty1);

  opmath_t acc = opmath_t(0);
  for (int ty = ty0; ty < ty1; ty += a.up_y) {
    const scalar_t* row = xp + static_cast<int64_t>((base_y + ty) / a.up_y) * a.in_w;
    // kernel index (K-1-t) on both axes: the filter is applied flipped.
    const opmath_t* krow = kernel + (a.kernel_h - 1 - ty) * a.kernel_w + (a.kernel_w - 1);
    for (int tx = tx0; tx < tx1; tx += a.up_x) {
      acc += static_cast<opmath_t>(row[(base_x + tx) / a.up_x]) * krow[-tx];
    }
  }
  return static_cast<scalar_t>(acc);
}

template <typename scalar_t, typename opmath_t>
__global__ void upfirdn2d_kernel(const scalar_t* __restrict__ x,
                                 const opmath_t* __restrict__ kernel, scalar_t* __restrict__ y,
                                 int64_t n, UpFirDnArgs a) {
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = upfirdn2d_element(x, kernel, i, a);
  }
}

}  // namespace

at::Tensor upfirdn2d_impl(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                          int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                          int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  UpFirDnArgs a;
  a.in_h = static_cast<int>(x.size(2));
  a.in_w = static_cast<int>(x.size(3));
  a.kernel_h = static_cast<int>(kernel.size(0));
  a.kernel_w = static_cast<int>(kernel.size(1));
  a.up_x = static_cast<int>(up_x);
  a.up_y = static_cast<int>(up_y);
  a.down_x = static_cast<int>(down_x);
  a.down_y = static_cast<int>(down_y);
  a.pad_x0 = static_cast<int>(pad_x0);
  a.pad_y0 = static_cast<int>(pad_y0);
  a.out_h = static_cast<int>((x.size(2) * up_y + pad_y0 + pad_y1 - kernel.size(0)) / down_y + 1);
  a.out_w = static_cast<int>((x.size(3) * up_x + pad_x0 + pad_x1 - kernel.size(1)) / down_x + 1);

  at::Tensor y = at::empty({x.size(0), x.size(1), a.out_h, a.out_w},
                           x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t n = y.numel();
  if (n == 0) {
    return y;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const at::Tensor k =
            kernel.to(x.device(), c10::CppTypeToScalarType<opmath_t>::value).contiguous();
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const opmath_t* kp = k.const_data_ptr<opmath_t>();
        scalar_t* yp = y.mutable_data_ptr<scalar_t>();
        if (x.is_cuda()) {
          const c10::cuda::OptionalCUDAGuard guard(x.device());
          const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
          upfirdn2d_kernel<scalar_t, opmath_t>
              <<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(xp, kp, yp, n, a);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          TORCH_CHECK(x.is_cpu(), "upfirdn2d: unsupported device ", x.device());
          at::parallel_for(0, n, kCpuGrain, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              yp[i] = upfirdn2d_element(xp, kp, i, a);
            }
          });
        }
      });
  return y;
}

}  // namespace stylebridge
