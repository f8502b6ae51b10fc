/* The multi-head layer's projections: C[r, c] = Σ_k A[r, k]·W[c, k] (+ bias[c]), all row-major,
 * A [rows, inner], W [cols, inner] (PyTorch's Linear weight as it lies), C [rows, cols].
 *
 * Both operands are contiguous along k, so each work-item forms RM x RN dot products with VK-wide
 * vector loads of RM rows of A and RN rows of W, VK-wide partial sums reduced once at the end. On
 * a CPU (PoCL runs a work-group's items one after another on one core) the RM + RN rows a
 * work-item streams stay in the first-level cache, and neighbouring items along dimension 0 share
 * their rows of A, so A is read from memory about once per work-group; the RM·RN accumulators are
 * the register block (16 vectors at 4 x 4). TILE_K > 1 instead stages TILE_K-wide slices of the
 * work-group's rows of A and W in local memory (the usual GPU mapping: each item then reads its
 * rows from local memory, the group reads global memory once per slice); TILE_K 1 reads straight
 * from global memory.
 *
 * Layout: dimension 0 covers columns (WG_N items of RN columns per group), dimension 1 rows (WG_M
 * items of RM rows). Item (x, y) of group (gx, gy) owns rows gy·WG_M·RM + y + i·WG_M (i < RM) and
 * columns gx·WG_N·RN + x·RN + j (j < RN), so that with TILE_K the group's rows are one block.
 * Out-of-range rows and columns read row 0 (clamped: always inside the buffers) and are not
 * stored. inner need not be a multiple of VK: the tail is summed element by element.
 *
 * Parameters (-D, host/layer/gemm_own.c): RM, RN (1..8), VK (1, 2, 4, 8, 16), WG_M, WG_N, TILE_K
 * (1: no local memory; else a multiple of VK), HAS_BIAS, USE_F16 (common.h.cl).
 */
#ifndef RM
#define RM 4
#endif
#ifndef RN
#define RN 4
#endif
#ifndef VK
#define VK 16
#endif
#ifndef WG_M
#define WG_M 1
#endif
#ifndef WG_N
#define WG_N 8
#endif
#ifndef TILE_K
#define TILE_K 1
#endif
#ifndef HAS_BIAS
#define HAS_BIAS 1
#endif

#if TILE_K > 1 && TILE_K % VK != 0
#error "TILE_K must be 1 or a multiple of VK"
#endif

#if VK == 1
typedef float vk_t;
#define VK_SUM(x) (x)
#else
typedef CAT(float, VK) vk_t;
#endif
#if VK == 2
#define VK_SUM(x) ((x).s0 + (x).s1)
#elif VK == 4
#define VK_SUM(x) (((x).s0 + (x).s1) + ((x).s2 + (x).s3))
#elif VK == 8
#define VK_SUM(x) VK4_SUM((x).lo + (x).hi)
#elif VK == 16
#define VK_SUM(x) VK4_SUM(((x).lo + (x).hi).lo + ((x).lo + (x).hi).hi)
#endif
#define VK4_SUM(x) (((x).s0 + (x).s1) + ((x).s2 + (x).s3))

/* VK consecutive elements of global storage, as float. */
#if VK == 1
#define GLOAD(p, i) ((float)LOAD((p), (i)))
#elif USE_F16
#define GLOAD(p, i) CAT(vload_half, VK)(0, (p) + (i))
#else
#define GLOAD(p, i) CAT(vload, VK)(0, (p) + (i))
#endif

#define BLOCK_M (WG_M * RM)   /* rows per work-group */
#define BLOCK_N (WG_N * RN)   /* columns per work-group */

__kernel __attribute__((reqd_work_group_size(WG_N, WG_M, 1)))
void proj_gemm(const __global data_t *a, const __global data_t *w, const long w_off,
               const __global data_t *bias, const long bias_off, __global data_t *c,
               const int rows, const int cols, const int inner)
{
#if !HAS_BIAS
    (void)bias, (void)bias_off;
#endif
    const int x = get_local_id(0), y = get_local_id(1);
    const int row0 = get_group_id(1) * BLOCK_M, col0 = get_group_id(0) * BLOCK_N;
    const __global data_t *wb = w + w_off;

    /* Element offsets of this item's rows of A and W; out-of-range ones read row 0. */
    long a_at[RM], w_at[RN];
    for (int i = 0; i < RM; ++i) {
        const int r = row0 + y + i * WG_M;
        a_at[i] = (long)(r < rows ? r : 0) * inner;
    }
    for (int j = 0; j < RN; ++j) {
        const int cc = col0 + x * RN + j;
        w_at[j] = (long)(cc < cols ? cc : 0) * inner;
    }

    /* Fully unrolled loops keep acc in registers: without the pragmas PoCL's LLVM 15 split the
       block into RM·RN separate dot-product loops, one accumulator each, 4-5x slower. */
    vk_t acc[RM][RN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < RN; ++j)
            acc[i][j] = 0.0f;

#if TILE_K == 1
    const int k_vec = inner / VK * VK;
    for (int k = 0; k < k_vec; k += VK) {
        vk_t av[RM], wv[RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
            av[i] = GLOAD(a, a_at[i] + k);
#pragma unroll
        for (int j = 0; j < RN; ++j)
            wv[j] = GLOAD(wb, w_at[j] + k);
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j)
                acc[i][j] = fma(av[i], wv[j], acc[i][j]);
    }
#else
    /* Slices of TILE_K along k: the group's BLOCK_M rows of A and BLOCK_N rows of W, zero past
       inner, so that the products need no bounds checks. Rows are padded by one vector so that
       items reading the same k of neighbouring rows fall on different banks. */
#define LD (TILE_K + VK)
    __local float as[BLOCK_M * LD];
    __local float ws[BLOCK_N * LD];
    const int tid = y * WG_N + x;
    const int k_vec = (inner + TILE_K - 1) / TILE_K * TILE_K;
    for (int k0 = 0; k0 < k_vec; k0 += TILE_K) {
        for (int e = tid; e < BLOCK_M * TILE_K; e += WG_M * WG_N) {
            const int r = e / TILE_K, kk = e % TILE_K, gr = row0 + r;
            as[r * LD + kk] = gr < rows && k0 + kk < inner ? (float)LOAD(a, (long)gr * inner + k0 + kk) : 0.0f;
        }
        for (int e = tid; e < BLOCK_N * TILE_K; e += WG_M * WG_N) {
            const int r = e / TILE_K, kk = e % TILE_K, gc = col0 + r;
            ws[r * LD + kk] = gc < cols && k0 + kk < inner ? (float)LOAD(wb, (long)gc * inner + k0 + kk) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int kk = 0; kk < TILE_K; kk += VK) {
            vk_t av[RM], wv[RN];
#pragma unroll
            for (int i = 0; i < RM; ++i)
#if VK == 1
                av[i] = as[(y + i * WG_M) * LD + kk];
#else
                av[i] = CAT(vload, VK)(0, &as[(y + i * WG_M) * LD + kk]);
#endif
#pragma unroll
            for (int j = 0; j < RN; ++j)
#if VK == 1
                wv[j] = ws[(x * RN + j) * LD + kk];
#else
                wv[j] = CAT(vload, VK)(0, &ws[(x * RN + j) * LD + kk]);
#endif
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j)
                    acc[i][j] = fma(av[i], wv[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif

#pragma unroll
    for (int i = 0; i < RM; ++i) {
        const int r = row0 + y + i * WG_M;
        if (r >= rows)
            break;
#pragma unroll
        for (int j = 0; j < RN; ++j) {
            const int cc = col0 + x * RN + j;
            if (cc >= cols)
                break;
            float s = VK_SUM(acc[i][j]);
#if TILE_K == 1
            for (int k = k_vec; k < inner; ++k)
                s = fma((float)LOAD(a, a_at[i] + k), (float)LOAD(wb, w_at[j] + k), s);
#endif
#if HAS_BIAS
            s += (float)LOAD(bias, bias_off + cc);
#endif
            STORE(c, (long)r * cols + cc, s);
        }
    }
}
