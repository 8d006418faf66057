"""The C++ that lets generated CUDA C compile and run on the CPU (see emulator.py).

Each CUDA thread of a block is a fiber (ucontext) on the calling thread; blocks run one
after another. A fiber runs until it reaches ``__syncthreads`` or a warp shuffle, then the
next one runs; a barrier opens when every live thread of its block (or warp) has reached
it, and a thread that returns drops out of later barriers, as on sm_70+. If a full round
over the fibers makes no progress, the launch stops and reports a deadlock instead of
hanging. ``__shared__`` variables become function statics: one copy, reused by each block
in turn, exactly one block's worth of shared memory at a time.
"""

from ...ir.ops.unary import LIBM

EMULATOR_HEADER = r"""// nncompile's CUDA emulator: CUDA C on the CPU, one fiber per CUDA thread.
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

@LIBM_USING@

struct nc_dim3 { unsigned x, y, z; };
static nc_dim3 threadIdx, blockIdx, blockDim, gridDim;

struct alignas(16) float4 { float x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

#define NC_EMULATOR 1
#define __align__(n) __attribute__((aligned(n)))

// bfloat16 and the WMMA fragments of a bf16 GEMM (prelude_bf16.py). Every thread of a warp
// holds a whole 16 x 16 fragment and computes the whole product: the warp's threads agree,
// so their identical stores are harmless, and each fiber needs nothing from the others.
struct __nv_bfloat16 { unsigned short x; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return __nv_bfloat16{(unsigned short)(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t u = (uint32_t)h.x << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
enum layout_t { mem_row_major };
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment { T x[16 * 16]; };
template <typename U, int M, int N, int K, typename T, typename L>
inline void fill_fragment(fragment<U, M, N, K, T, L>& f, T v) {
  for (int e = 0; e < 256; ++e) f.x[e] = v;
}
template <typename U, int M, int N, int K, typename T, typename L>
inline void load_matrix_sync(fragment<U, M, N, K, T, L>& f, const T* p, unsigned ldm) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = p[r * ldm + c];
}
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, row_major>& a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, row_major>& b,
                     const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float s = c.x[i * 16 + j];
      for (int k = 0; k < 16; ++k)
        s += __bfloat162float(a.x[i * 16 + k]) * __bfloat162float(b.x[k * 16 + j]);
      out[i * 16 + j] = s;
    }
  for (int e = 0; e < 256; ++e) d.x[e] = out[e];
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f,
                              unsigned ldm, layout_t) {
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) p[r * ldm + c] = f.x[r * 16 + c];
}
}  // namespace wmma
}  // namespace nvcuda

inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; memcpy(&v, &f, 4); return v; }
inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }

namespace nc_emu {

const int MAX_THREADS = 1024;
const size_t STACK_BYTES = 256 * 1024;

struct Fiber {
  ucontext_t start;  // enters run_fiber on the fiber's own stack (used once per block)
  jmp_buf resume;    // where it yielded
  char* stack = nullptr;
  nc_dim3 index;
  bool started = false, done = false;
};

struct Barrier {  // opens when `live` threads have arrived
  unsigned live = 0, arrived = 0, phase = 0;
};

static Fiber fibers[MAX_THREADS];
static ucontext_t scheduler_context;
static jmp_buf scheduler;
static int current = 0, nthreads = 0;
static unsigned long long progress = 0;  // arrivals and exits: a round without any is a deadlock
static Barrier block_barrier, warp_barriers[MAX_THREADS / 32];
static uint64_t warp_slots[MAX_THREADS];
static void (*kernel)(void**);
static void** kernel_params;
static bool direct = false;  // running threads one after another, without fibers
static bool misused = false;  // a direct launch reached a barrier

// Switches use _setjmp/_longjmp, which (unlike swapcontext) make no system call to save
// the signal mask: the emulation switches fibers millions of times. swapcontext is used
// only to first enter a fiber's stack.
inline void yield() {  // back to the scheduler, which sets threadIdx when it resumes us
  if (!_setjmp(fibers[current].resume)) _longjmp(scheduler, 1);
}

inline void resume(int t) {
  Fiber& f = fibers[t];
  if (_setjmp(scheduler)) return;  // the fiber yielded or finished
  if (f.started) _longjmp(f.resume, 1);
  f.started = true;
  swapcontext(&scheduler_context, &f.start);
}

inline void wait(Barrier& b) {
  if (direct) {  // declared barrier-free: nothing to wait for, but say so
    misused = true;
    return;
  }
  const unsigned phase = b.phase;
  ++progress;
  if (++b.arrived == b.live) {
    b.arrived = 0;
    ++b.phase;
    return;
  }
  while (b.phase == phase) yield();
}

inline void leave(Barrier& b) {  // a finished thread no longer holds the barrier up
  --b.live;
  if (b.live > 0 && b.arrived == b.live) {
    b.arrived = 0;
    ++b.phase;
  }
}

inline void run_fiber() {
  kernel(kernel_params);
  Fiber& f = fibers[current];
  f.done = true;
  ++progress;
  leave(block_barrier);
  leave(warp_barriers[current / 32]);
  _longjmp(scheduler, 1);  // never resumed
}

inline int lane_count(int warp) { return nthreads - warp * 32 < 32 ? nthreads - warp * 32 : 32; }

// Runs one block to completion: 0, or 1 if its threads deadlocked at a barrier.
inline int run_block() {
  block_barrier = Barrier{(unsigned)nthreads, 0, 0};
  for (int w = 0; w * 32 < nthreads; ++w) warp_barriers[w] = Barrier{(unsigned)lane_count(w), 0, 0};
  for (int t = 0; t < nthreads; ++t) {
    Fiber& f = fibers[t];
    if (!f.stack) f.stack = (char*)malloc(STACK_BYTES);
    getcontext(&f.start);
    f.start.uc_stack.ss_sp = f.stack;
    f.start.uc_stack.ss_size = STACK_BYTES;
    f.start.uc_link = nullptr;
    makecontext(&f.start, run_fiber, 0);
    f.started = f.done = false;
    f.index = nc_dim3{t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
  }
  int live = nthreads;
  while (live > 0) {
    const unsigned long long before = progress;
    live = 0;
    for (int t = 0; t < nthreads; ++t) {
      if (fibers[t].done) continue;
      current = t;
      threadIdx = fibers[t].index;
      resume(t);
      live += !fibers[t].done;
    }
    if (live > 0 && progress == before) return 1;
  }
  return 0;
}

// Threads of a launch without barriers or shuffles (grid-stride and single-thread
// launches) cannot observe each other within a block: they run one after another on the
// calling stack, which is much faster than fibers.
inline int run_block_directly() {
  for (int t = 0; t < nthreads; ++t) {
    threadIdx = nc_dim3{t % blockDim.x, (t / blockDim.x) % blockDim.y,
                        t / (blockDim.x * blockDim.y)};
    kernel(kernel_params);
  }
  return misused ? 3 : 0;
}

// 0: done; 1: deadlock; 2: bad block size; 3: a barrier in a launch declared without.
inline int launch(const unsigned* grid, const unsigned* block, void (*fn)(void**), void** params,
                  bool barriers) {
  nthreads = (int)(block[0] * block[1] * block[2]);
  if (nthreads < 1 || nthreads > MAX_THREADS) return 2;
  gridDim = nc_dim3{grid[0], grid[1], grid[2]};
  blockDim = nc_dim3{block[0], block[1], block[2]};
  kernel = fn;
  kernel_params = params;
  direct = !barriers;
  misused = false;
  for (unsigned z = 0; z < grid[2]; ++z)
    for (unsigned y = 0; y < grid[1]; ++y)
      for (unsigned x = 0; x < grid[0]; ++x) {
        blockIdx = nc_dim3{x, y, z};
        const int code = direct ? run_block_directly() : run_block();
        if (code) return code;
      }
  return 0;
}

inline unsigned thread_rank() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

}  // namespace nc_emu

inline void __syncthreads() { nc_emu::wait(nc_emu::block_barrier); }

template <typename T> T __shfl_down_sync(unsigned, T v, int delta) {
  const unsigned rank = nc_emu::thread_rank(), warp = rank / 32, lane = rank % 32;
  memcpy(&nc_emu::warp_slots[rank], &v, sizeof(T));
  nc_emu::wait(nc_emu::warp_barriers[warp]);  // every lane has put its value
  T out = v;  // lanes past the end keep their own value, as on the GPU
  if (lane + delta < (unsigned)nc_emu::lane_count(warp)) {
    memcpy(&out, &nc_emu::warp_slots[rank + delta], sizeof(T));
  }
  nc_emu::wait(nc_emu::warp_barriers[warp]);  // every lane has read before the next put
  return out;
}

"""
# the unary ops' libm functions are declared in ir/ops/unary.py; fabs, floor, pow are used too
EMULATOR_HEADER = EMULATOR_HEADER.replace(
    "@LIBM_USING@",
    " ".join(f"using std::{f};" for f in sorted({*LIBM.values(), "fabs", "floor", "pow"})),
)
