/* CLBlast's Xgemm as a projection backend: C = A·Wᵀ by CLBlast, then the bias by cl/mha_bias.cl.
 *
 * The family "clblast_xgemm" holds CLBlast's own Xgemm kernel parameters, under CLBlast's names and
 * in its order (src/database/kernels/xgemm/xgemm_32.hpp), so that a tuning entry reads as CLBlast's
 * database does; its candidates are the union of CLBlast's tuner's two sampled spaces (kernel 0,
 * GEMMK=0, "V=2", and kernel 1, GEMMK=1, "V=12", src/tuning/kernels/xgemm.hpp) and valid() applies
 * that tuner's constraints plus the device's limits. A set is applied with
 * CLBlastOverrideParameters before the call; CLBlast keys its compiled programs on the parameter
 * values (Routine::InitProgram's routine_info), so one set per shape, switched between calls,
 * runs each shape with its own.
 *
 * "No override": the device-class defaults are CLBlast's built-in default row (the values it runs
 * on a device its database does not list, such as PoCL: GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8
 * MDIMC=8 MWG=32 NDIMB=16 NDIMC=16 NWG=32 SA=1 SB=1 STRM=0 STRN=0 VWM=4 VWN=2), and a parameter
 * set equal to them applies no override at all: CLBlast then runs its database's choice, which on a
 * GPU it knows is tuned for that GPU, and for F16 its half-precision row. Any other set is applied
 * together with GemmRoutine's XGEMM_MIN_INDIRECT_SIZE = 0, so that the indirect Xgemm kernel the
 * parameters belong to runs at every size (CLBlast would otherwise take XgemmDirect, which ignores
 * them, below its threshold: 896³ multiply-adds by default, so 2048 x 768 x 768 is indirect anyway).
 *
 * Limits, from CLBlast's API: an override stays in force for the device and precision in the
 * whole process (CLBlast keeps it in a process-wide database cache; its C API can neither read nor
 * restore the database values), so after a tuned call a call at the defaults runs the last override
 * rather than the database's choice. Correctness never depends on it (every set valid() accepts
 * computes the same GEMM); only speed does. clattn_gemm_tune measures the defaults first, before any
 * override of its own.
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"

#include <stdio.h>
#include <string.h>

#ifndef CLATTN_HAVE_CLBLAST

const clattn_gemm_backend *const clattn_gemm_clblast = NULL;

#else

#include <clblast_c.h>

/* CLBlast's Xgemm parameters, in the order of its database. */
enum {
    X_GEMMK,   /* 0: the kernel with local-memory tiles (xgemm_part1-4), 1: the 2D register one */
    X_KREG,    /* GEMMK=1: register tile along k */
    X_KWG,     /* tile size in k per work-group */
    X_KWI,     /* unroll factor of the k loop */
    X_MDIMA,   /* re-shaped work-group for loading A */
    X_MDIMC,   /* work-group size in m */
    X_MWG,     /* tile size in m per work-group */
    X_NDIMB,   /* re-shaped work-group for loading B */
    X_NDIMC,   /* work-group size in n */
    X_NWG,     /* tile size in n per work-group */
    X_SA,      /* 1: A through local memory */
    X_SB,      /* 1: B through local memory */
    X_STRM,    /* 1: strided (not contiguous) m per work-item */
    X_STRN,
    X_VWM,     /* vector width in m */
    X_VWN,     /* vector width in n */
    X_COUNT
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* CLBlast's tuner's values (V=2 and V=12), the default first: the fallback walks them in order. */
static const int flag_candidates[] = {0, 1};
static const int kreg_candidates[] = {1, 2, 4, 8, 16};
static const int kwg_candidates[] = {32, 16, 1};
static const int kwi_candidates[] = {2, 1};
static const int dim_candidates[] = {8, 16, 32, 2, 4};
static const int wg_candidates[] = {32, 64, 128, 16, 8};
static const int vw_candidates[] = {4, 2, 1, 8};
static const int vwn_candidates[] = {2, 1, 4, 8};
static const int one_candidates[] = {1, 0};   /* SA, SB: CLBlast's default 1 first */

/* CLBlast's default row (xgemm_32.hpp, "default"), for every device class: see the top. */
#define ROW(v) {v, v, v}
static const clattn_param_def xgemm_params[X_COUNT] = {
    {"GEMMK", flag_candidates, COUNT(flag_candidates), ROW(0), 0},
    {"KREG", kreg_candidates, COUNT(kreg_candidates), ROW(1), 0},
    {"KWG", kwg_candidates, COUNT(kwg_candidates), ROW(32), 0},
    {"KWI", kwi_candidates, COUNT(kwi_candidates), ROW(2), 0},
    {"MDIMA", dim_candidates, COUNT(dim_candidates), ROW(8), 0},
    {"MDIMC", dim_candidates, COUNT(dim_candidates), ROW(8), 0},
    {"MWG", wg_candidates, COUNT(wg_candidates), ROW(32), 0},
    {"NDIMB", dim_candidates, COUNT(dim_candidates), ROW(16), 0},
    {"NDIMC", dim_candidates, COUNT(dim_candidates), ROW(16), 0},
    {"NWG", wg_candidates, COUNT(wg_candidates), ROW(32), 0},
    {"SA", one_candidates, COUNT(one_candidates), ROW(1), 0},
    {"SB", one_candidates, COUNT(one_candidates), ROW(1), 0},
    {"STRM", flag_candidates, COUNT(flag_candidates), ROW(0), 0},
    {"STRN", flag_candidates, COUNT(flag_candidates), ROW(0), 0},
    {"VWM", vw_candidates, COUNT(vw_candidates), ROW(4), 0},
    {"VWN", vwn_candidates, COUNT(vwn_candidates), ROW(2), 0},
};
#undef ROW

static int is_flag(int i)
{
    return i == X_GEMMK || i == X_SA || i == X_SB || i == X_STRM || i == X_STRN;
}

static size_t xgemm_local_bytes(const clattn_params *pr, const clattn_problem *p)
{
    /* XgemmComputeLocalMemSize: alm[KWG*MWG] when SA, blm[KWG*NWG] when SB */
    const size_t es = clattn_dtype_size(p->dtype), kwg = (size_t)pr->v[X_KWG];
    return es * ((size_t)pr->v[X_SA] * kwg * (size_t)pr->v[X_MWG] +
                 (size_t)pr->v[X_SB] * kwg * (size_t)pr->v[X_NWG]);
}

/* a is a multiple of b (b > 0). */
static int multiple(int a, int b)
{
    return b > 0 && a % b == 0;
}

static int refuse(char *why, size_t why_len, const char *what, const clattn_params *pr)
{
    snprintf(why, why_len, "%s (MWG=%d NWG=%d KWG=%d MDIMC=%d NDIMC=%d MDIMA=%d NDIMB=%d VWM=%d "
             "VWN=%d KWI=%d KREG=%d GEMMK=%d)", what, pr->v[X_MWG], pr->v[X_NWG], pr->v[X_KWG],
             pr->v[X_MDIMC], pr->v[X_NDIMC], pr->v[X_MDIMA], pr->v[X_NDIMB], pr->v[X_VWM],
             pr->v[X_VWN], pr->v[X_KWI], pr->v[X_KREG], pr->v[X_GEMMK]);
    return 0;
}

/* CLBlast's tuner's constraints (XgemmSetConstraints, XgemmComputeLocalMemSize) and the device's
   work-group and local-memory limits; they do not depend on the shape, as the indirect kernel pads
   every matrix to its tiles. */
static int xgemm_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                       char *why, size_t why_len)
{
    for (int i = 0; i < X_COUNT; i++) {
        const int v = pr->v[i], lo = is_flag(i) ? 0 : 1, hi = is_flag(i) ? 1 : CLATTN_PARAM_MAX;
        if (v < lo || v > hi) {
            snprintf(why, why_len, "%s=%d is outside %d..%d", xgemm_params[i].name, v, lo, hi);
            return 0;
        }
    }
    const int mwg = pr->v[X_MWG], nwg = pr->v[X_NWG], kwg = pr->v[X_KWG];
    const int mdimc = pr->v[X_MDIMC], ndimc = pr->v[X_NDIMC];
    const int mdima = pr->v[X_MDIMA], ndimb = pr->v[X_NDIMB];
    const int vwm = pr->v[X_VWM], vwn = pr->v[X_VWN];
    if (!clattn_is_vector_width(vwm) || !clattn_is_vector_width(vwn))
        return refuse(why, why_len, "VWM and VWN must be vector widths", pr);
    if (!multiple(kwg, pr->v[X_KWI]))
        return refuse(why, why_len, "KWG must be a multiple of KWI", pr);
    if (!multiple(mwg, mdimc * vwm) || !multiple(nwg, ndimc * vwn))
        return refuse(why, why_len, "MWG must be a multiple of MDIMC*VWM, NWG of NDIMC*VWN", pr);
    if (!multiple(mwg, mdima * vwm) || !multiple(nwg, ndimb * vwn))
        return refuse(why, why_len, "MWG must be a multiple of MDIMA*VWM, NWG of NDIMB*VWN", pr);
    if (pr->v[X_GEMMK] == 0) {
        /* the loads reshape the MDIMC x NDIMC work-group to MDIMA x KDIMA and KDIMB x NDIMB */
        const int threads = mdimc * ndimc;
        if (!multiple(threads, mdima) || !multiple(threads, ndimb) ||
            !multiple(kwg, threads / mdima) || !multiple(kwg, threads / ndimb))
            return refuse(why, why_len, "KWG must be a multiple of MDIMC*NDIMC/MDIMA and of "
                          "MDIMC*NDIMC/NDIMB", pr);
        if (pr->v[X_KREG] != 1)
            return refuse(why, why_len, "KREG must be 1 with GEMMK=0", pr);
    } else {
        /* kernel 1 (V=11/12): no local memory, k in registers */
        if (kwg != 1 || pr->v[X_KWI] != 1 || pr->v[X_SA] || pr->v[X_SB] || pr->v[X_STRM] ||
            pr->v[X_STRN])
            return refuse(why, why_len, "GEMMK=1 takes KWG=1 KWI=1 SA=0 SB=0 STRM=0 STRN=0", pr);
        if (mdima != mdimc || ndimb != ndimc)
            return refuse(why, why_len, "GEMMK=1 needs MDIMA=MDIMC and NDIMB=NDIMC", pr);
        if (!multiple(pr->v[X_KREG], vwn))
            return refuse(why, why_len, "KREG must be a multiple of VWN", pr);
    }
    const size_t wm = (size_t)mdimc, wn = (size_t)ndimc;
    if (wm * wn > dev->max_work_group || wm > dev->max_work_item[0] || wn > dev->max_work_item[1]) {
        snprintf(why, why_len, "work-group %zux%zu exceeds the device's limits", wm, wn);
        return 0;
    }
    const size_t local = xgemm_local_bytes(pr, p);
    if (local > dev->local_mem_bytes) {
        snprintf(why, why_len, "tiles need %zu bytes of local memory, the device has %llu", local,
                 (unsigned long long)dev->local_mem_bytes);
        return 0;
    }
    return 1;
}

static const clattn_family clblast_family = {
    .name = "clblast_xgemm",
    .file = NULL,   /* CLBlast builds its own programs: no clattn kernel file */
    .n_params = X_COUNT,
    .params = xgemm_params,
    .valid = xgemm_valid,
    .local_bytes = xgemm_local_bytes,
};

static clattn_status blas_fail(clattn_context *ctx, CLBlastStatusCode cs, const char *what,
                               const char *name)
{
    char msg[96];
    snprintf(msg, sizeof msg, "CLBlast %s (%s projection)", what, name);
    if (cs == CLBlastNoHalfPrecision)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "%s: the device has no half precision", msg);
    if (cs < 0 && cs > -1000)   /* CLBlast passes OpenCL's own codes through */
        return clattn_fail_cl(ctx, (cl_int)cs, msg);
    return clattn_fail(ctx, CLATTN_OPENCL_ERROR, "%s: CLBlast status %d", msg, (int)cs);
}

static clattn_status clblast_supports(const clattn_context *ctx, clattn_dtype dtype, char *why,
                                      size_t why_len)
{
    if (dtype == CLATTN_F16 && !ctx->info.has_fp16) {
        snprintf(why, why_len, "F16 storage: device '%s' lacks cl_khr_fp16, which CLBlast's HGEMM "
                 "needs; use clattn's own projections (CLATTN_PROJ_OWN) or CLATTN_F32", ctx->info.name);
        return CLATTN_UNSUPPORTED;
    }
    return CLATTN_SUCCESS;
}

/* Makes params CLBlast's Xgemm parameters for ctx's device and g's precision (see the top: the
   defaults apply nothing). Both the temporary size and the GEMM read them. */
static clattn_status apply_params(clattn_context *ctx, const clattn_gemm *g, const clattn_params *params)
{
    clattn_params defaults;
    clattn_params_defaults(&clblast_family, ctx->info.cls, &defaults);
    if (!params || memcmp(params->v, defaults.v, sizeof defaults.v[0] * X_COUNT) == 0)
        return CLATTN_SUCCESS;
    const CLBlastPrecision precision = g->dtype == CLATTN_F16 ? CLBlastPrecisionHalf
                                                              : CLBlastPrecisionSingle;
    const char *names[X_COUNT];
    size_t values[X_COUNT];
    for (int i = 0; i < X_COUNT; i++) {
        names[i] = xgemm_params[i].name;
        values[i] = (size_t)params->v[i];
    }
    CLBlastStatusCode cs = CLBlastOverrideParameters(ctx->device, "Xgemm", precision, X_COUNT, names,
                                                     values);
    if (cs != CLBlastSuccess)
        return blas_fail(ctx, cs, "parameter override", g->name);
    const char *routine_names[] = {"XGEMM_MIN_INDIRECT_SIZE"};
    const size_t routine_values[] = {0};   /* always the indirect kernel these parameters tune */
    cs = CLBlastOverrideParameters(ctx->device, "GemmRoutine", precision, 1, routine_names,
                                   routine_values);
    return cs == CLBlastSuccess ? CLATTN_SUCCESS : blas_fail(ctx, cs, "routine override", g->name);
}

/* Bytes of temporary buffer CLBlast wants (padded copies when its tiles do not divide the sizes). */
static clattn_status clblast_temp_bytes(clattn_context *ctx, const clattn_gemm *g,
                                        const clattn_params *params, size_t *bytes)
{
    CLBlastStatusCode cs;
    *bytes = 0;
    if (g->rows == 0 || g->cols == 0)
        return CLATTN_SUCCESS;
    clattn_status st = apply_params(ctx, g, params);
    if (st != CLATTN_SUCCESS)
        return st;
    if (g->dtype == CLATTN_F16)
        cs = CLBlastHGemmTempBufferSize(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        g->rows, g->cols, g->inner, 0, g->inner, g->w_off, g->inner, 0,
                                        g->cols, &ctx->queue, bytes);
    else
        cs = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        g->rows, g->cols, g->inner, 0, g->inner, g->w_off, g->inner, 0,
                                        g->cols, &ctx->queue, bytes);
    return cs == CLBlastSuccess ? CLATTN_SUCCESS : blas_fail(ctx, cs, "GEMM temporary size", g->name);
}

/* On a caller's out-of-order queue the bias pass must wait for the GEMM. */
static clattn_status barrier_if_out_of_order(clattn_context *ctx)
{
    if (!ctx->queue_out_of_order)
        return CLATTN_SUCCESS;
    cl_int err = clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : clattn_fail_cl(ctx, err, "barrier after a GEMM");
}

static clattn_status add_bias(clattn_context *ctx, const clattn_gemm *g)
{
    char options[32];
    cl_kernel kernel;
    snprintf(options, sizeof options, " -DUSE_F16=%d", g->dtype == CLATTN_F16);
    clattn_status st = clattn_kernel_get(ctx, "mha_bias.cl", options, "mha_add_bias", &kernel);
    const cl_long off = (cl_long)g->bias_off;
    const cl_int rows = (cl_int)g->rows, cols = (cl_int)g->cols;
    if (st == CLATTN_SUCCESS)
        st = clattn_set_arg(ctx, kernel, 0, sizeof(cl_mem), &g->c);
    if (st == CLATTN_SUCCESS)
        st = clattn_set_arg(ctx, kernel, 1, sizeof(cl_mem), &g->bias);
    if (st == CLATTN_SUCCESS)
        st = clattn_set_arg(ctx, kernel, 2, sizeof off, &off);
    if (st == CLATTN_SUCCESS)
        st = clattn_set_arg(ctx, kernel, 3, sizeof rows, &rows);
    if (st == CLATTN_SUCCESS)
        st = clattn_set_arg(ctx, kernel, 4, sizeof cols, &cols);
    const size_t global[2] = {g->cols, g->rows};
    if (st == CLATTN_SUCCESS)
        st = clattn_launch(ctx, kernel, 2, global, NULL, "mha_add_bias");
    return st;
}

static clattn_status clblast_enqueue(clattn_context *ctx, const clattn_gemm *g, const clattn_params *params,
                                     cl_mem temp)
{
    CLBlastStatusCode cs;
    if (g->rows == 0 || g->cols == 0)
        return CLATTN_SUCCESS;
    /* again: another GEMM (another shape's entry, another context) may have overridden since */
    clattn_status st = apply_params(ctx, g, params);
    if (st != CLATTN_SUCCESS)
        return st;
    if (g->dtype == CLATTN_F16)
        cs = CLBlastHgemmWithTempBuffer(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        g->rows, g->cols, g->inner, clattn_float_to_half(1.0f), g->a, 0,
                                        g->inner, g->w, g->w_off, g->inner, clattn_float_to_half(0.0f),
                                        g->c, 0, g->cols, &ctx->queue, NULL, temp);
    else
        cs = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        g->rows, g->cols, g->inner, 1.0f, g->a, 0, g->inner, g->w,
                                        g->w_off, g->inner, 0.0f, g->c, 0, g->cols, &ctx->queue, NULL,
                                        temp);
    if (cs != CLBlastSuccess)
        return blas_fail(ctx, cs, "GEMM", g->name);
    if (g->bias && (st = barrier_if_out_of_order(ctx)) == CLATTN_SUCCESS)
        st = add_bias(ctx, g);
    return st;
}

static const clattn_gemm_backend clblast_backend = {
    .name = "clblast",
    .family = &clblast_family,
    .supports = clblast_supports,
    .temp_bytes = clblast_temp_bytes,
    .enqueue = clblast_enqueue,
};

const clattn_gemm_backend *const clattn_gemm_clblast = &clblast_backend;

#endif /* CLATTN_HAVE_CLBLAST */
