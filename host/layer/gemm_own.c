/* clattn's own projection GEMM (cl/proj_gemm.cl): the kernel family "proj", its constraints and
 * launch. A register block of RM rows x RN columns per work-item, VK-wide along the inner
 * dimension; see the kernel file for the mapping. Bias fused, F16 storage converted in the kernel
 * (vload_half), so it serves every device and dtype.
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"

#include <limits.h>
#include <stdio.h>

#define PROJ_FILE "proj_gemm.cl"

enum { P_RM, P_RN, P_VK, P_WG_M, P_WG_N, P_TILE_K, P_PROJ_COUNT };

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Candidates in the order the last-resort fallback walks them (small and safe first). */
static const int rm_candidates[] = {4, 1, 2, 3, 6, 8};
static const int rn_candidates[] = {4, 1, 2, 3, 6, 8};
static const int vk_candidates[] = {4, 1, 2, 8, 16};
static const int wg_candidates[] = {8, 1, 2, 4, 16};
static const int tile_k_candidates[] = {1, 16, 32, 64};

/* CPU defaults, measured on PoCL 3.1 (2-core AVX-512 EPYC) at 2048 x 768 x 768, f32, in GFLOP/s:
     VK 16, RM 6, RN 4, 4x4 items:  ~315   (the default; 24 zmm accumulators)
     VK 16, RM 8, RN 2:             ~310      VK 16, RM 4, RN 4: ~185-215   VK 8, RM 6, RN 4: ~190
     TILE_K 16 (local staging):      ~18   (barriers serialise PoCL's work-item loops)
   OpenBLAS's SGEMM on the same machine: 137-163. GPU and accelerator defaults are the usual
   local-memory tiling (64 x 64 per group of 16 x 16 items, 4 x 4 each), unmeasured until a GPU
   tuning run; on GPUs the layer picks CLBlast by default anyway. */
static const clattn_param_def proj_params[P_PROJ_COUNT] = {
    /*                                          CPU  GPU  accelerator */
    {"RM", rm_candidates, COUNT(rm_candidates), {6, 4, 2}, 0},
    {"RN", rn_candidates, COUNT(rn_candidates), {4, 4, 2}, 0},
    {"VK", vk_candidates, COUNT(vk_candidates), {16, 4, 4}, 0},
    {"WG_M", wg_candidates, COUNT(wg_candidates), {4, 16, 8}, 0},
    {"WG_N", wg_candidates, COUNT(wg_candidates), {4, 16, 8}, 0},
    {"TILE_K", tile_k_candidates, COUNT(tile_k_candidates), {1, 16, 16}, 0},
};

static size_t proj_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    (void)p;
    const size_t tk = (size_t)pr->v[P_TILE_K], vk = (size_t)pr->v[P_VK];
    if (tk == 1)
        return 0;
    const size_t block_m = (size_t)pr->v[P_WG_M] * (size_t)pr->v[P_RM];
    const size_t block_n = (size_t)pr->v[P_WG_N] * (size_t)pr->v[P_RN];
    return (block_m + block_n) * (tk + vk) * sizeof(float);   /* as[] and ws[], rows padded by VK */
}

static size_t proj_work_group_size(const clattn_params *pr)
{
    return (size_t)pr->v[P_WG_M] * (size_t)pr->v[P_WG_N];
}

static int proj_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                      char *why, size_t why_len)
{
    (void)p;
    if (!clattn_params_in_range(proj_params, P_PROJ_COUNT, pr, why, why_len))
        return 0;
    const int rm = pr->v[P_RM], rn = pr->v[P_RN], vk = pr->v[P_VK], tk = pr->v[P_TILE_K];
    if (!clattn_is_vector_width(vk)) {
        snprintf(why, why_len, "VK = %d: must be a vector width (1, 2, 4, 8, 16)", vk);
        return 0;
    }
    if (rm > 8 || rn > 8) {
        snprintf(why, why_len, "RM = %d, RN = %d: at most 8 each", rm, rn);
        return 0;
    }
    if (tk > 1 && (tk % vk || tk > 256)) {
        snprintf(why, why_len, "TILE_K = %d: must be 1, or a multiple of VK = %d up to 256", tk, vk);
        return 0;
    }
    const size_t wn = (size_t)pr->v[P_WG_N], wm = (size_t)pr->v[P_WG_M];
    if (wn * wm > dev->max_work_group || wn > dev->max_work_item[0] || wm > dev->max_work_item[1]) {
        snprintf(why, why_len, "work-group %zux%zu exceeds the device's limits", wn, wm);
        return 0;
    }
    const size_t local = proj_local_bytes(pr, p);
    if (local > dev->local_mem_bytes) {
        snprintf(why, why_len, "tiles need %zu bytes of local memory, the device has %llu", local,
                 (unsigned long long)dev->local_mem_bytes);
        return 0;
    }
    return 1;
}

const clattn_family clattn_proj_family = {
    .name = "proj",
    .file = PROJ_FILE,
    .n_params = P_PROJ_COUNT,
    .params = proj_params,
    .valid = proj_valid,
    .local_bytes = proj_local_bytes,
    .work_group_size = proj_work_group_size,
};

static clattn_status own_supports(const clattn_context *ctx, clattn_dtype dtype, char *why,
                                  size_t why_len)
{
    (void)ctx, (void)why, (void)why_len;
    (void)dtype;   /* F16 goes through vload_half/vstore_half: core OpenCL 1.2 */
    return CLATTN_SUCCESS;
}

static clattn_status own_temp_bytes(clattn_context *ctx, const clattn_gemm *g, const clattn_params *params,
                                    size_t *bytes)
{
    (void)ctx, (void)g, (void)params;
    *bytes = 0;
    return CLATTN_SUCCESS;
}

/* The kernel for g at params (built once per context and options). */
static clattn_status own_kernel(clattn_context *ctx, const clattn_gemm *g, const clattn_params *pr,
                                cl_kernel *kernel)
{
    char options[256];
    snprintf(options, sizeof options, " -DUSE_F16=%d -DHAS_BIAS=%d", g->dtype == CLATTN_F16,
             g->bias != NULL);
    if (clattn_params_defines(&clattn_proj_family, pr, options, sizeof options))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "proj kernel options too long");
    return clattn_kernel_get(ctx, PROJ_FILE, options, "proj_gemm", kernel);
}

static clattn_status own_build(clattn_context *ctx, const clattn_plan_step *step, const void *arg,
                               cl_kernel *out)
{
    return own_kernel(ctx, arg, &step->params, out);
}

static clattn_status own_enqueue(clattn_context *ctx, const clattn_gemm *g, const clattn_params *pr,
                                 cl_mem temp)
{
    (void)temp;
    if (g->rows == 0 || g->cols == 0)
        return CLATTN_SUCCESS;
    /* The kernel indexes rows, columns and the inner dimension with int, elements with long. */
    if (g->rows > INT_MAX || g->cols > INT_MAX || g->inner > INT_MAX)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "%s projection: %zu x %zu x %zu exceeds the kernel's "
                           "int sizes", g->name, g->rows, g->cols, g->inner);
    cl_kernel kernel;
    clattn_status st = own_kernel(ctx, g, pr, &kernel);
    const cl_long w_off = (cl_long)g->w_off, bias_off = (cl_long)g->bias_off;
    const cl_int rows = (cl_int)g->rows, cols = (cl_int)g->cols, inner = (cl_int)g->inner;
    /* Without a bias the kernel never reads its bias argument; any valid buffer stands in. */
    const cl_mem bias = g->bias ? g->bias : g->w;
    const struct { size_t size; const void *value; } args[] = {
        {sizeof(cl_mem), &g->a}, {sizeof(cl_mem), &g->w}, {sizeof w_off, &w_off},
        {sizeof(cl_mem), &bias}, {sizeof bias_off, &bias_off}, {sizeof(cl_mem), &g->c},
        {sizeof rows, &rows}, {sizeof cols, &cols}, {sizeof inner, &inner},
    };
    for (cl_uint i = 0; st == CLATTN_SUCCESS && i < sizeof args / sizeof args[0]; i++)
        st = clattn_set_arg(ctx, kernel, i, args[i].size, args[i].value);
    if (st != CLATTN_SUCCESS)
        return st;
    const size_t wn = (size_t)pr->v[P_WG_N], wm = (size_t)pr->v[P_WG_M];
    const size_t block_n = wn * (size_t)pr->v[P_RN], block_m = wm * (size_t)pr->v[P_RM];
    const size_t global[2] = {(g->cols + block_n - 1) / block_n * wn, (g->rows + block_m - 1) / block_m * wm};
    const size_t local[2] = {wn, wm};
    return clattn_launch(ctx, kernel, 2, global, local, "proj_gemm");
}

const clattn_gemm_backend clattn_gemm_own = {
    .name = "own",
    .family = &clattn_proj_family,
    .supports = own_supports,
    .temp_bytes = own_temp_bytes,
    .enqueue = own_enqueue,
    .build = own_build,
};
