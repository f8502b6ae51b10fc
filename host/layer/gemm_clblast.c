/* CLBlast's Xgemm as a projection backend: C = A·Wᵀ by CLBlast, then the bias by cl/mha_bias.cl.
 * (Interim: CLBlast's own parameters; tuning them is gemm_clblast's next step.) */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"

#include <stdio.h>

#ifndef CLATTN_HAVE_CLBLAST

const clattn_gemm_backend *const clattn_gemm_clblast = NULL;

#else

#include <clblast_c.h>

static int clblast_valid(const clattn_params *pr, const clattn_device_info *dev, const clattn_problem *p,
                         char *why, size_t why_len)
{
    (void)pr, (void)dev, (void)p, (void)why, (void)why_len;
    return 1;
}

static const clattn_family clblast_family = {
    .name = "clblast_xgemm",
    .file = NULL,
    .n_params = 0,
    .params = NULL,
    .valid = clblast_valid,
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

/* Bytes of temporary buffer CLBlast wants (padded copies when its tiles do not divide the sizes). */
static clattn_status clblast_temp_bytes(clattn_context *ctx, const clattn_gemm *g,
                                        const clattn_params *params, size_t *bytes)
{
    (void)params;
    CLBlastStatusCode cs;
    *bytes = 0;
    if (g->rows == 0)
        return CLATTN_SUCCESS;
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
    (void)params;
    CLBlastStatusCode cs;
    if (g->rows == 0)
        return CLATTN_SUCCESS;
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
    clattn_status st = CLATTN_SUCCESS;
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
