// upfirdn2d with shared-memory tiles: the operation of upfirdn2d.cu (see the formula there),
// organised so that every input sample is read from global memory about once.  Each block
// owns a tile of tile_out_h x tile_out_w outputs of one [H, W] plane.  It
//   1. (load) copies the input samples the tile's taps reach (tile plus halo, zero outside the
//      input) and the flipped kernel into shared memory, in op-math precision (float for
//      half/bfloat16, double for double);
//   2. waits at a barrier;
//   3. (compute) lets every thread produce several outputs from shared memory: without
//      up-sampling (the blur, down 2) a vertical strip of outputs with the kernel in registers,
//      each input row read once for the strip; for up 2 a 2x2 block of outputs (all four
//      phases) from one register window; for up 2 with down 2 one output at a time.  Every
//      output sums only the samples under its real taps (those on non-inserted samples).
// Per axis, outputs o0 .. o0+T-1 read inputs ceil((o0*D - p0) / U) .. floor(((o0+T-1)*D - p0
// + K - 1) / U): at most floor(((T-1)*D + K - 1) / U) + 1 samples.  Up and down (in {1, 2},
// equal on both axes) are template parameters, the kernel is at most 4x4 or 8x8 (the unrolled
// tap loops); anything else goes to the generic kernel of upfirdn2d.cu.
//
// Both phases are C10_HOST_DEVICE functions of (plane, tile, thread index, shared buffer): the
// CUDA kernel runs load, __syncthreads(), compute; for CPU tensors the host emulates the grid
// (every block: the load phase for every thread index, then the compute phase for every thread
// index) with a NaN-filled buffer and bounds checks on every shared-memory access, so the
// tests exercise exactly the GPU's tiling, halo and edge indexing.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/macros/Macros.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <vector>

// Host-only check of a shared-memory index (the CPU emulation); nothing on the device.
#ifdef __CUDA_ARCH__
#define STYLEBRIDGE_TILE_CHECK(cond)
#else
#define STYLEBRIDGE_TILE_CHECK(cond) \
  TORCH_CHECK(cond, "upfirdn2d_tiled: shared-memory index out of range: " #cond)
#endif

namespace stylebridge {

// upfirdn2d.cu: the generic kernel, for the arguments the tiled one does not cover.
at::Tensor upfirdn2d_impl(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                          int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                          int64_t pad_x1, int64_t pad_y0, int64_t pad_y1);

namespace {

constexpr int kMaxTaps = 8;                    // kernels up to 8x8
constexpr int kMaxThreads = 256;               // __launch_bounds__: up to 255 registers
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kSharedBytes = 48 * 1024;    // without the opt-in to more

struct TileConfig {
  int out_w, out_h;  // outputs per tile
  int threads;       // threads per block
};

struct TiledArgs {
  int in_h, in_w;
  int out_h, out_w;
  int kernel_h, kernel_w;
  int pad_x0, pad_y0;
  int tile_out_w, tile_out_h;
  int tile_in_w, tile_in_h;  // the input tile with its halo
  int tiles_x;               // tiles per row of the output plane
  int threads;
};

// The default tiles (first guesses for an H200-class GPU, not tuned by measurement): 256
// threads, 4 to 16 outputs per thread; at most 70x70 op-math values of shared memory.
TileConfig default_tile(int up, int down) {
  if (up == 1 && down == 1) return {64, 32, 256};  // the blur: 8 outputs per thread
  if (up == 2 && down == 1) return {64, 64, 256};  // 16 per thread from a 34x34 tile
  return {32, 32, 256};                            // down 2: 4 per thread
}

C10_HOST_DEVICE inline int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// A thread's items thread, thread + threads, ... of a row-major grid `width` wide, as (row,
// col), stepping without division (col fastest: neighbouring threads take neighbours).
struct Walk {
  int row, col, step_row, step_col, width;
  C10_HOST_DEVICE Walk(int thread, int threads, int w)
      : row(thread / w), col(thread % w), step_row(threads / w), step_col(threads % w),
        width(w) {}
  C10_HOST_DEVICE void next() {
    row += step_row;
    col += step_col;
    if (col >= width) {
      col -= width;
      ++row;
    }
  }
};

// Where a tile starts: its first output, the u-index of tap 0 of that output
// (o0 * D - p0) and the first input sample the tile can reach (ceil(base / U)).
struct TileOrigin {
  int out_x0, out_y0;
  int base_x, base_y;
  int in_x0, in_y0;
};

template <int UP, int DOWN>
C10_HOST_DEVICE inline TileOrigin tile_origin(int tile, const TiledArgs& a) {
  TileOrigin o;
  const int ty = tile / a.tiles_x;
  o.out_x0 = (tile - ty * a.tiles_x) * a.tile_out_w;
  o.out_y0 = ty * a.tile_out_h;
  o.base_x = o.out_x0 * DOWN - a.pad_x0;
  o.base_y = o.out_y0 * DOWN - a.pad_y0;
  o.in_x0 = floor_div(o.base_x + UP - 1, UP);
  o.in_y0 = floor_div(o.base_y + UP - 1, UP);
  return o;
}

// Phase 1 for one thread: its share of the flipped kernel and of the input tile.
// Shared layout: taps[kernel_h * kernel_w] (flipped: taps[t] = k[K-1-t] on both axes),
// then the input tile [tile_in_h][tile_in_w].
template <typename scalar_t, typename opmath_t, int UP, int DOWN>
C10_HOST_DEVICE inline void tile_load(int64_t plane, int tile, int thread,
                                      const scalar_t* __restrict__ x,
                                      const opmath_t* __restrict__ kernel,
                                      opmath_t* __restrict__ shared, const TiledArgs& a) {
  const int taps = a.kernel_h * a.kernel_w;
  for (int i = thread; i < taps; i += a.threads) {
    STYLEBRIDGE_TILE_CHECK(i >= 0 && i < taps);
    shared[i] = kernel[taps - 1 - i];  // reversing the flat array flips both axes
  }
  const TileOrigin o = tile_origin<UP, DOWN>(tile, a);
  const scalar_t* xp = x + plane * a.in_h * a.in_w;
  opmath_t* in = shared + taps;
  // element (row, col) of the input tile
  for (Walk w(thread, a.threads, a.tile_in_w); w.row < a.tile_in_h; w.next()) {
    const int row = w.row, col = w.col;
    const int ix = o.in_x0 + col;
    const int iy = o.in_y0 + row;
    opmath_t v = opmath_t(0);
    if (ix >= 0 && ix < a.in_w && iy >= 0 && iy < a.in_h) {
      v = static_cast<opmath_t>(xp[static_cast<int64_t>(iy) * a.in_w + ix]);
    }
    STYLEBRIDGE_TILE_CHECK(col >= 0 && col < a.tile_in_w);
    in[row * a.tile_in_w + col] = v;
  }
}

// Phase 3 for one thread (with up-sampling): outputs thread, thread + threads, ... of the tile
// (row-major, so neighbouring threads write neighbouring outputs), each from shared memory;
// the taps on real samples change from output to output (the phase o * D - p0 mod U).
template <typename scalar_t, typename opmath_t, int UP, int DOWN, int KMAX>
C10_HOST_DEVICE inline void tile_compute(int64_t plane, int tile, int thread,
                                         const opmath_t* __restrict__ shared,
                                         scalar_t* __restrict__ y, const TiledArgs& a) {
  constexpr int kSteps = (KMAX + UP - 1) / UP;  // taps per axis on real samples, at most
  const int taps = a.kernel_h * a.kernel_w;
  [[maybe_unused]] const int in_size = a.tile_in_h * a.tile_in_w;  // host checks only
  const opmath_t* in = shared + taps;
  const TileOrigin o = tile_origin<UP, DOWN>(tile, a);
  scalar_t* yp = y + plane * a.out_h * a.out_w;
  const int rows = a.out_h - o.out_y0 < a.tile_out_h ? a.out_h - o.out_y0 : a.tile_out_h;
  const int cols = a.out_w - o.out_x0 < a.tile_out_w ? a.out_w - o.out_x0 : a.tile_out_w;
  for (Walk w(thread, a.threads, a.tile_out_w); w.row < rows; w.next()) {
    const int ly = w.row, lx = w.col;
    if (lx < cols) {
      // per axis: the first real sample under the taps, its tap t0 in [0, U) and its
      // place in the tile; the taps on real samples are t0, t0 + U, ...
      const int bx = o.base_x + lx * DOWN;
      const int by = o.base_y + ly * DOWN;
      const int ix = floor_div(bx + UP - 1, UP);
      const int iy = floor_div(by + UP - 1, UP);
      const int t0x = ix * UP - bx;
      const int t0y = iy * UP - by;
      const int rx = ix - o.in_x0;
      const int ry = iy - o.in_y0;
      opmath_t acc = opmath_t(0);
#pragma unroll
      for (int sy = 0; sy < kSteps; ++sy) {
        const int ty = t0y + sy * UP;
        if (ty < a.kernel_h) {
          const int in_row = (ry + sy) * a.tile_in_w + rx;
          const int tap_row = ty * a.kernel_w;
#pragma unroll
          for (int sx = 0; sx < kSteps; ++sx) {
            const int tx = t0x + sx * UP;
            if (tx < a.kernel_w) {
              STYLEBRIDGE_TILE_CHECK(rx + sx < a.tile_in_w && in_row + sx >= 0 &&
                                     in_row + sx < in_size && tap_row + tx < taps);
              acc += in[in_row + sx] * shared[tap_row + tx];
            }
          }
        }
      }
      yp[static_cast<int64_t>(o.out_y0 + ly) * a.out_w + o.out_x0 + lx] =
          static_cast<scalar_t>(acc);
    }
  }
}

// The flipped kernel from shared memory into registers, zero beyond kernel_h x kernel_w.
template <typename opmath_t, int KMAX>
C10_HOST_DEVICE inline void taps_to_registers(const opmath_t* __restrict__ shared,
                                              opmath_t (&k)[KMAX][KMAX], const TiledArgs& a) {
#pragma unroll
  for (int ty = 0; ty < KMAX; ++ty) {
#pragma unroll
    for (int tx = 0; tx < KMAX; ++tx) {
      const bool real = ty < a.kernel_h && tx < a.kernel_w;
      STYLEBRIDGE_TILE_CHECK(!real || ty * a.kernel_w + tx < a.kernel_h * a.kernel_w);
      k[ty][tx] = real ? shared[ty * a.kernel_w + tx] : opmath_t(0);
    }
  }
}

// Phase 3 without up-sampling (U = 1: every tap lands on a real sample, the same taps for
// every output): each thread takes a vertical strip of kStripRows outputs (one column of the
// tile), keeps the kernel in registers (zero beyond kernel_h x kernel_w) and reads each input
// row of the strip's window once for all the outputs that use it:
// (kStripRows - 1) * D + K rows of K values instead of kStripRows * K * K reads.
template <int DOWN>
constexpr int strip_rows() {
  return DOWN == 1 ? 8 : 4;
}

template <typename scalar_t, typename opmath_t, int DOWN, int KMAX>
C10_HOST_DEVICE inline void tile_compute_strips(int64_t plane, int tile, int thread,
                                                const opmath_t* __restrict__ shared,
                                                scalar_t* __restrict__ y, const TiledArgs& a) {
  constexpr int kRows = strip_rows<DOWN>();
  constexpr int kWindow = (kRows - 1) * DOWN + KMAX;  // input rows a full strip can use
  const int taps = a.kernel_h * a.kernel_w;
  [[maybe_unused]] const int in_size = a.tile_in_h * a.tile_in_w;  // host checks only
  const opmath_t* in = shared + taps;
  opmath_t k[KMAX][KMAX];
  taps_to_registers<opmath_t, KMAX>(shared, k, a);
  const TileOrigin o = tile_origin<1, DOWN>(tile, a);
  scalar_t* yp = y + plane * a.out_h * a.out_w;
  const int rows = a.out_h - o.out_y0 < a.tile_out_h ? a.out_h - o.out_y0 : a.tile_out_h;
  const int cols = a.out_w - o.out_x0 < a.tile_out_w ? a.out_w - o.out_x0 : a.tile_out_w;
  // work item (strip, lx)
  for (Walk w(thread, a.threads, a.tile_out_w); w.row * kRows < rows; w.next()) {
    const int ly0 = w.row * kRows, lx = w.col;
    const int count = rows - ly0 < kRows ? rows - ly0 : kRows;  // outputs in this strip
    if (lx < cols) {
      // U = 1: the tile starts at input sample base (in_x0 == base_x), so output (ly, lx)
      // reads tile rows ly * D + ty and columns lx * D + tx.
      const int rx = lx * DOWN;
      const int last_row = (count - 1) * DOWN + a.kernel_h;  // window rows this strip needs
      opmath_t acc[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        acc[r] = opmath_t(0);
      }
#pragma unroll
      for (int j = 0; j < kWindow; ++j) {
        if (j < last_row) {
          const int in_row = (ly0 * DOWN + j) * a.tile_in_w + rx;
          opmath_t v[KMAX];
#pragma unroll
          for (int tx = 0; tx < KMAX; ++tx) {
            STYLEBRIDGE_TILE_CHECK(tx >= a.kernel_w ||
                                   (rx + tx < a.tile_in_w && in_row + tx < in_size));
            v[tx] = tx < a.kernel_w ? in[in_row + tx] : opmath_t(0);
          }
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            const int ty = j - r * DOWN;  // a constant once the loops are unrolled
            // (ty < kernel_h: no 0 * x for samples outside this output's window, so an inf
            // there cannot turn into NaN)
            if (ty >= 0 && ty < KMAX && ty < a.kernel_h && r < count) {
#pragma unroll
              for (int tx = 0; tx < KMAX; ++tx) {
                acc[r] += v[tx] * k[ty][tx];
              }
            }
          }
        }
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        if (r < count) {
          yp[static_cast<int64_t>(o.out_y0 + ly0 + r) * a.out_w + o.out_x0 + lx] =
              static_cast<scalar_t>(acc[r]);
        }
      }
    }
  }
}

// Phase 3 for up 2, down 1: each thread takes a 2x2 block of outputs (both phases on both
// axes), whose taps fall on a (KMAX/2 + 1)^2 window of input samples: the window is read
// once into registers and the kernel is kept in registers.  Output lx = 2 * bx + e (tile
// coordinates) has u-index base_x + lx; with P the parity of base_x, its first real sample
// is off(e) past the block's first one, at tap t0(e): P = 0: off = (0, 1), t0 = (0, 1);
// P = 1: off = (0, 0), t0 = (1, 0).  P is the same for the whole tile, so the block code is
// compiled for each (PX, PY) and every index below is a constant once unrolled.
template <int P>
C10_HOST_DEVICE constexpr int up2_offset(int e) {
  return P == 0 ? e : 0;
}

template <int P>
C10_HOST_DEVICE constexpr int up2_first_tap(int e) {
  return (P + e) & 1;
}

// Samples of the window (from the block's first one) that the block's valid outputs use on
// one axis: max over e < count of off(e) + (number of taps t0(e), t0(e) + 2, ... below K).
template <int P>
C10_HOST_DEVICE inline int up2_needed(int count, int kernel_len) {
  int needed = up2_offset<P>(0) + (kernel_len - up2_first_tap<P>(0) + 1) / 2;
  if (count > 1) {
    const int second = up2_offset<P>(1) + (kernel_len - up2_first_tap<P>(1) + 1) / 2;
    needed = second > needed ? second : needed;
  }
  return needed;
}

template <typename opmath_t, int KMAX, int PX, int PY>
C10_HOST_DEVICE inline void up2_block(const opmath_t* __restrict__ in,
                                      const opmath_t (&k)[KMAX][KMAX], int rx, int ry,
                                      int count_x, int count_y, opmath_t (&acc)[2][2],
                                      const TiledArgs& a) {
  constexpr int kSteps = KMAX / 2;     // taps per axis on real samples, at most
  constexpr int kWindow = kSteps + 1;  // window samples per axis
  [[maybe_unused]] const int in_size = a.tile_in_h * a.tile_in_w;  // host checks only
  const int rows = up2_needed<PY>(count_y, a.kernel_h);
  const int cols = up2_needed<PX>(count_x, a.kernel_w);
#pragma unroll
  for (int j = 0; j < kWindow; ++j) {
    if (j < rows) {
      const int in_row = (ry + j) * a.tile_in_w + rx;
      opmath_t v[kWindow];
#pragma unroll
      for (int c = 0; c < kWindow; ++c) {
        STYLEBRIDGE_TILE_CHECK(c >= cols || (rx + c < a.tile_in_w && in_row + c < in_size));
        v[c] = c < cols ? in[in_row + c] : opmath_t(0);
      }
#pragma unroll
      for (int ey = 0; ey < 2; ++ey) {
        const int sy = j - up2_offset<PY>(ey);
        const int ty = up2_first_tap<PY>(ey) + 2 * sy;
        if (sy >= 0 && sy < kSteps && ty < a.kernel_h) {
#pragma unroll
          for (int ex = 0; ex < 2; ++ex) {
#pragma unroll
            for (int sx = 0; sx < kSteps; ++sx) {
              const int tx = up2_first_tap<PX>(ex) + 2 * sx;
              if (tx < a.kernel_w) {
                acc[ey][ex] += v[up2_offset<PX>(ex) + sx] * k[ty][tx];
              }
            }
          }
        }
      }
    }
  }
}

template <typename scalar_t, typename opmath_t, int KMAX>
C10_HOST_DEVICE inline void tile_compute_up2(int64_t plane, int tile, int thread,
                                             const opmath_t* __restrict__ shared,
                                             scalar_t* __restrict__ y, const TiledArgs& a) {
  const int taps = a.kernel_h * a.kernel_w;
  const opmath_t* in = shared + taps;
  opmath_t k[KMAX][KMAX];
  taps_to_registers<opmath_t, KMAX>(shared, k, a);
  const TileOrigin o = tile_origin<2, 1>(tile, a);
  const int px = o.base_x & 1;
  const int py = o.base_y & 1;
  scalar_t* yp = y + plane * a.out_h * a.out_w;
  const int rows = a.out_h - o.out_y0 < a.tile_out_h ? a.out_h - o.out_y0 : a.tile_out_h;
  const int cols = a.out_w - o.out_x0 < a.tile_out_w ? a.out_w - o.out_x0 : a.tile_out_w;
  const int blocks_w = (a.tile_out_w + 1) / 2;
  for (Walk w(thread, a.threads, blocks_w); 2 * w.row < rows; w.next()) {
    const int by = w.row, bx = w.col;
    if (2 * bx < cols) {
      const int lx = 2 * bx;
      const int ly = 2 * by;
      const int count_x = cols - lx < 2 ? cols - lx : 2;
      const int count_y = rows - ly < 2 ? rows - ly : 2;
      // the block's first real sample: ceil((base + 2b) / 2) = ceil(base / 2) + b = in0 + b
      const int rx = bx;
      const int ry = by;
      opmath_t acc[2][2] = {{opmath_t(0), opmath_t(0)}, {opmath_t(0), opmath_t(0)}};
      if (py == 0 && px == 0) {
        up2_block<opmath_t, KMAX, 0, 0>(in, k, rx, ry, count_x, count_y, acc, a);
      } else if (py == 0) {
        up2_block<opmath_t, KMAX, 1, 0>(in, k, rx, ry, count_x, count_y, acc, a);
      } else if (px == 0) {
        up2_block<opmath_t, KMAX, 0, 1>(in, k, rx, ry, count_x, count_y, acc, a);
      } else {
        up2_block<opmath_t, KMAX, 1, 1>(in, k, rx, ry, count_x, count_y, acc, a);
      }
#pragma unroll
      for (int ey = 0; ey < 2; ++ey) {
#pragma unroll
        for (int ex = 0; ex < 2; ++ex) {
          if (ey < count_y && ex < count_x) {
            yp[static_cast<int64_t>(o.out_y0 + ly + ey) * a.out_w + o.out_x0 + lx + ex] =
                static_cast<scalar_t>(acc[ey][ex]);
          }
        }
      }
    }
  }
}

// The compute phase for the factors: strips without up-sampling, 2x2 blocks for up 2, one
// output at a time for up 2 with down 2.
template <typename scalar_t, typename opmath_t, int UP, int DOWN, int KMAX>
C10_HOST_DEVICE inline void tile_compute_phase(int64_t plane, int tile, int thread,
                                               const opmath_t* __restrict__ shared,
                                               scalar_t* __restrict__ y, const TiledArgs& a) {
  if constexpr (UP == 1) {
    tile_compute_strips<scalar_t, opmath_t, DOWN, KMAX>(plane, tile, thread, shared, y, a);
  } else if constexpr (DOWN == 1) {
    tile_compute_up2<scalar_t, opmath_t, KMAX>(plane, tile, thread, shared, y, a);
  } else {
    tile_compute<scalar_t, opmath_t, UP, DOWN, KMAX>(plane, tile, thread, shared, y, a);
  }
}

// blockIdx.x: the tile; blockIdx.y: the plane (looping when there are more than the grid's
// y dimension holds, with a barrier before the tile is overwritten).
template <typename scalar_t, typename opmath_t, int UP, int DOWN, int KMAX>
__global__ void __launch_bounds__(kMaxThreads)
    upfirdn2d_tiled_kernel(const scalar_t* __restrict__ x, const opmath_t* __restrict__ kernel,
                           scalar_t* __restrict__ y, int64_t planes, TiledArgs a) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  opmath_t* shared = reinterpret_cast<opmath_t*>(shared_bytes);
  const int tile = static_cast<int>(blockIdx.x);
  const int thread = static_cast<int>(threadIdx.x);
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    if (plane != static_cast<int64_t>(blockIdx.y)) {
      __syncthreads();  // every thread is done with the previous plane's tile
    }
    tile_load<scalar_t, opmath_t, UP, DOWN>(plane, tile, thread, x, kernel, shared, a);
    __syncthreads();
    tile_compute_phase<scalar_t, opmath_t, UP, DOWN, KMAX>(plane, tile, thread, shared, y, a);
  }
}

template <typename scalar_t, typename opmath_t, int UP, int DOWN, int KMAX>
void run_tiled(const scalar_t* x, const opmath_t* kernel, scalar_t* y, int64_t planes,
               const TiledArgs& a, bool cuda) {
  const int tiles = a.tiles_x * ((a.out_h + a.tile_out_h - 1) / a.tile_out_h);
  const int64_t shared_elems = static_cast<int64_t>(a.kernel_h) * a.kernel_w +
                               static_cast<int64_t>(a.tile_in_h) * a.tile_in_w;
  if (cuda) {
    const dim3 grid(static_cast<unsigned>(tiles),
                    static_cast<unsigned>(std::min<int64_t>(planes, kMaxGridY)));
    upfirdn2d_tiled_kernel<scalar_t, opmath_t, UP, DOWN, KMAX>
        <<<grid, a.threads, shared_elems * sizeof(opmath_t),
           c10::cuda::getCurrentCUDAStream()>>>(x, kernel, y, planes, a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  // The grid, emulated: blocks in parallel, each with its own "shared memory", filled with
  // NaN so that reading anything the load phase did not write shows in the output.
  at::parallel_for(0, planes * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<opmath_t> shared(static_cast<size_t>(shared_elems));
    for (int64_t block = begin; block < end; ++block) {
      const int64_t plane = block / tiles;
      const int tile = static_cast<int>(block - plane * tiles);
      std::fill(shared.begin(), shared.end(), std::numeric_limits<opmath_t>::quiet_NaN());
      for (int t = 0; t < a.threads; ++t) {
        tile_load<scalar_t, opmath_t, UP, DOWN>(plane, tile, t, x, kernel, shared.data(), a);
      }
      for (int t = 0; t < a.threads; ++t) {
        tile_compute_phase<scalar_t, opmath_t, UP, DOWN, KMAX>(plane, tile, t, shared.data(), y,
                                                               a);
      }
    }
  });
}

template <typename scalar_t, typename opmath_t, int UP, int DOWN>
void run_tiled_taps(const scalar_t* x, const opmath_t* kernel, scalar_t* y, int64_t planes,
                    const TiledArgs& a, bool cuda) {
  if (a.kernel_h <= 4 && a.kernel_w <= 4) {  // StyleGAN2's 4x4 blur: a shorter unrolled loop
    run_tiled<scalar_t, opmath_t, UP, DOWN, 4>(x, kernel, y, planes, a, cuda);
  } else {
    run_tiled<scalar_t, opmath_t, UP, DOWN, kMaxTaps>(x, kernel, y, planes, a, cuda);
  }
}

}  // namespace

bool upfirdn2d_tiled_supported(int64_t kernel_h, int64_t kernel_w, int64_t up_x, int64_t up_y,
                               int64_t down_x, int64_t down_y) {
  return up_x == up_y && down_x == down_y && (up_x == 1 || up_x == 2) &&
         (down_x == 1 || down_x == 2) && kernel_h <= kMaxTaps && kernel_w <= kMaxTaps;
}

// tile_w/tile_h/threads <= 0: the default tile for the factors.  Arguments the tiled kernel
// does not cover go to the generic kernel with `fallback`, else are an error (for tests that
// must run the tiled code).
at::Tensor upfirdn2d_tiled_impl(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x,
                                int64_t up_y, int64_t down_x, int64_t down_y, int64_t pad_x0,
                                int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, int64_t tile_w,
                                int64_t tile_h, int64_t threads, bool fallback) {
  if (!upfirdn2d_tiled_supported(kernel.size(0), kernel.size(1), up_x, up_y, down_x, down_y)) {
    TORCH_CHECK(fallback, "upfirdn2d_tiled: up ", up_x, "x", up_y, ", down ", down_x, "x",
                down_y, ", kernel ", kernel.size(0), "x", kernel.size(1),
                " not covered (up and down in {1, 2}, equal on both axes; kernel <= 8x8)");
    // Not covered by the tiled kernel: the generic one-thread-per-output kernel.
    return upfirdn2d_impl(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0,
                          pad_y1);
  }
  const int up = static_cast<int>(up_x);
  const int down = static_cast<int>(down_x);
  TileConfig cfg = default_tile(up, down);
  if (tile_w > 0) cfg.out_w = static_cast<int>(tile_w);
  if (tile_h > 0) cfg.out_h = static_cast<int>(tile_h);
  if (threads > 0) cfg.threads = static_cast<int>(threads);
  TORCH_CHECK(cfg.out_w <= 4096 && cfg.out_h <= 4096 && cfg.threads <= kMaxThreads,
              "upfirdn2d_tiled: tile ", cfg.out_w, "x", cfg.out_h, " with ", cfg.threads,
              " threads is too large");

  TiledArgs a;
  a.in_h = static_cast<int>(x.size(2));
  a.in_w = static_cast<int>(x.size(3));
  a.kernel_h = static_cast<int>(kernel.size(0));
  a.kernel_w = static_cast<int>(kernel.size(1));
  a.pad_x0 = static_cast<int>(pad_x0);
  a.pad_y0 = static_cast<int>(pad_y0);
  a.out_h = static_cast<int>((x.size(2) * up + pad_y0 + pad_y1 - kernel.size(0)) / down + 1);
  a.out_w = static_cast<int>((x.size(3) * up + pad_x0 + pad_x1 - kernel.size(1)) / down + 1);
  a.tile_out_w = cfg.out_w;
  a.tile_out_h = cfg.out_h;
  a.tile_in_w = ((cfg.out_w - 1) * down + a.kernel_w - 1) / up + 1;
  a.tile_in_h = ((cfg.out_h - 1) * down + a.kernel_h - 1) / up + 1;
  a.tiles_x = (a.out_w + cfg.out_w - 1) / cfg.out_w;
  a.threads = cfg.threads;

  at::Tensor y = at::empty({x.size(0), x.size(1), a.out_h, a.out_w},
                           x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t planes = x.size(0) * x.size(1);
  if (y.numel() == 0) {
    return y;
  }
  const int64_t tiles = static_cast<int64_t>(a.tiles_x) * ((a.out_h + cfg.out_h - 1) / cfg.out_h);
  TORCH_CHECK(tiles <= std::numeric_limits<int>::max(), "upfirdn2d_tiled: too many tiles");
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d_tiled", [&] {
        using opmath_t = at::opmath_type<scalar_t>;
        const at::Tensor k =
            kernel.to(x.device(), c10::CppTypeToScalarType<opmath_t>::value).contiguous();
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const opmath_t* kp = k.const_data_ptr<opmath_t>();
        scalar_t* yp = y.mutable_data_ptr<scalar_t>();
        const bool cuda = x.is_cuda();
        if (cuda) {
          const int64_t bytes = (static_cast<int64_t>(a.kernel_h) * a.kernel_w +
                                 static_cast<int64_t>(a.tile_in_h) * a.tile_in_w) *
                                static_cast<int64_t>(sizeof(opmath_t));
          TORCH_CHECK(bytes <= kSharedBytes, "upfirdn2d_tiled: the tile needs ", bytes,
                      " bytes of shared memory (at most ", kSharedBytes, ")");
        } else {
          TORCH_CHECK(x.is_cpu(), "upfirdn2d_tiled: unsupported device ", x.device());
        }
        const c10::cuda::OptionalCUDAGuard guard(cuda ? std::optional<at::Device>(x.device())
                                                      : std::nullopt);
        if (up == 1 && down == 1) {
          run_tiled_taps<scalar_t, opmath_t, 1, 1>(xp, kp, yp, planes, a, cuda);
        } else if (up == 2 && down == 1) {
          run_tiled_taps<scalar_t, opmath_t, 2, 1>(xp, kp, yp, planes, a, cuda);
        } else if (up == 1 && down == 2) {
          run_tiled_taps<scalar_t, opmath_t, 1, 2>(xp, kp, yp, planes, a, cuda);
        } else {
          run_tiled_taps<scalar_t, opmath_t, 2, 2>(xp, kp, yp, planes, a, cuda);
        }
      });
  return y;
}

}  // namespace stylebridge
