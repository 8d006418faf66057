"""The tile of a bf16 GEMM on the tensor cores (``matmul_precision="bf16"``), added after
the prelude in programs that use it: the 64 x 64 tile of nc_gemm_block, its operands
rounded to bf16 (nearest even) as they pass through shared memory, products summed in
float32 by WMMA 16 x 16 x 16 fragments. 8 warps: warp w owns rows 16 (w / 2) and columns
32 (w % 2) of the tile, two accumulator fragments; the tile goes through shared memory
once more on the way out so that bounds and accumulation are handled per element as in
the float32 tile."""

PRELUDE_BF16 = r"""
#ifndef NC_EMULATOR
#include <mma.h>
#include <cuda_bf16.h>
#endif

template <typename T, typename LA, typename LB>
__device__ void nc_gemm_block_bf16(LA load_a, LB load_b, T* C, int64_t m, int64_t n, int64_t k0,
                                   int64_t k1, int64_t a_base, int64_t a_r, int64_t a_c,
                                   int64_t b_base, int64_t b_r, int64_t b_c, int64_t c_r,
                                   int64_t c_c, bool accumulate) {
  using namespace nvcuda;
  const int BM = 64, BN = 64, BK = 16;
  const int LDA = BK + 8, LDB = BN + 8, LDC = BN + 4;  // WMMA: ldm in 16-byte multiples
  __shared__ __align__(32) __nv_bfloat16 As[BM][LDA];
  __shared__ __align__(32) __nv_bfloat16 Bs[BK][LDB];
  __shared__ __align__(32) float Cs[BM][LDC];
  const int warp = threadIdx.x / 32, wr = warp / 2, wc = warp % 2;
  const int64_t row0 = (int64_t)blockIdx.y * BM, col0 = (int64_t)blockIdx.x * BN;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
  for (int64_t p0 = k0; p0 < k1; p0 += BK) {
    for (int r = 0; r < 4; ++r) {  // 64 x 16 of A and 16 x 64 of B: 4 elements per thread
      const int e = threadIdx.x + 256 * r;
      const int64_t ai = row0 + e / BK, ap = p0 + e % BK;
      const float a = (ai < m && ap < k1) ? (float)load_a(a_base + ai * a_r + ap * a_c) : 0.0f;
      As[e / BK][e % BK] = __float2bfloat16_rn(a);
      const int64_t bp = p0 + e / BN, bj = col0 + e % BN;
      const float b = (bp < k1 && bj < n) ? (float)load_b(b_base + bp * b_r + bj * b_c) : 0.0f;
      Bs[e / BN][e % BN] = __float2bfloat16_rn(b);
    }
    __syncthreads();
    wmma::load_matrix_sync(fa, &As[wr * 16][0], LDA);
    for (int f = 0; f < 2; ++f) {
      wmma::load_matrix_sync(fb, &Bs[0][wc * 32 + f * 16], LDB);
      wmma::mma_sync(acc[f], fa, fb, acc[f]);
    }
    __syncthreads();
  }
  for (int f = 0; f < 2; ++f)
    wmma::store_matrix_sync(&Cs[wr * 16][wc * 32 + f * 16], acc[f], LDC, wmma::mem_row_major);
  __syncthreads();
  for (int r = 0; r < 16; ++r) {  // 64 x 64 results: 16 per thread
    const int e = threadIdx.x + 256 * r, i = e / BN, j = e % BN;
    const int64_t gi = row0 + i, gj = col0 + j;
    if (gi < m && gj < n) {
      T* out = C + gi * c_r + gj * c_c;
      *out = accumulate ? *out + (T)Cs[i][j] : (T)Cs[i][j];
    }
  }
}
"""
