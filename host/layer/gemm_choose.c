/* Which backend computes a projection, and at which parameters. */
#include "host/attention/attention.h"
#include "host/cache/cache.h"
#include "host/layer/gemm.h"

#include <stdio.h>
#include <string.h>

void clattn_gemm_problem(clattn_dtype dtype, size_t rows, size_t cols, size_t inner, clattn_problem *p)
{
    /* The tuning key clamps nothing: sizes past its range give no key, so no entry (the defaults). */
    const int clamp = 1 << 30;
    memset(p, 0, sizeof *p);
    p->B = p->Hq = p->Hkv = p->group = 1;
    p->Lq = p->Lk = rows > (size_t)clamp ? clamp : (int)rows;
    p->d = inner > (size_t)clamp ? clamp : (int)inner;
    p->dv = cols > (size_t)clamp ? clamp : (int)cols;
    p->dtype = dtype;
    p->scale = 1.0f;
}

static const clattn_gemm_backend *backend_of(clattn_projection_impl impl)
{
    return impl == CLATTN_PROJ_CLBLAST ? clattn_gemm_clblast : &clattn_gemm_own;
}

/* The backend a device class runs when nothing was measured: CLBlast's database holds tuned
   parameters for most GPUs, and none for CPUs (PoCL) or FPGAs, where the own kernel is several
   times faster (2048 x 768 x 768 on PoCL: ~300 GFLOP/s against ~25 for CLBlast's defaults). */
static clattn_projection_impl class_default(const clattn_context *ctx, clattn_dtype dtype)
{
    char why[256];
    if (ctx->info.cls == CLATTN_CLASS_GPU && clattn_gemm_clblast &&
        clattn_gemm_clblast->supports(ctx, dtype, why, sizeof why) == CLATTN_SUCCESS)
        return CLATTN_PROJ_CLBLAST;
    return CLATTN_PROJ_OWN;
}

clattn_status clattn_gemm_choose(clattn_context *ctx, const clattn_gemm *g, clattn_projection_impl force,
                                 const clattn_gemm_backend **backend, clattn_params *params)
{
    char why[256] = "";
    clattn_problem p;
    clattn_gemm_problem(g->dtype, g->rows, g->cols, g->inner, &p);
    clattn_projection_impl impl = force;
    if (impl == CLATTN_PROJ_AUTO) {
        /* The faster of the measured ones; a backend with no exact entry counts only when
           neither has one (then the class default). */
        impl = class_default(ctx, g->dtype);
        const double own_ms = clattn_tuning_time_ms(ctx, clattn_gemm_own.family, &p);
        const double blas_ms = clattn_gemm_clblast &&
                                       clattn_gemm_clblast->supports(ctx, g->dtype, why, sizeof why) ==
                                           CLATTN_SUCCESS
                                   ? clattn_tuning_time_ms(ctx, clattn_gemm_clblast->family, &p)
                                   : -1.0;
        if (own_ms >= 0 && (blas_ms < 0 || own_ms <= blas_ms))
            impl = CLATTN_PROJ_OWN;
        else if (blas_ms >= 0)
            impl = CLATTN_PROJ_CLBLAST;
    }
    const clattn_gemm_backend *b = backend_of(impl);
    if (!b)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "projections = CLATTN_PROJ_CLBLAST, but this build "
                           "of clattn has no CLBlast (configure with -Dclblast=enabled)");
    clattn_status st = b->supports(ctx, g->dtype, why, sizeof why);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "%s projection: %s", g->name, why);
    /* The tuning entry if it fits this device, else the defaults or the valid point nearest them
       (with a warning for a rejected entry), exactly as for the attention's families; with the
       kernel built and held against its launch where the backend's kernels are clattn's. */
    clattn_plan_step step;
    cl_kernel kernel;
    st = b->build ? clattn_plan_params_built(ctx, b->family, &p, NULL, b->build, g, &step, &kernel)
                  : clattn_plan_params(ctx, b->family, &p, NULL, &step);
    if (st != CLATTN_SUCCESS)
        return st;
    *backend = b;
    *params = step.params;
    return CLATTN_SUCCESS;
}
