/* What the kernels of either path need of a call's variants (clattn.h) beyond their defines: the
 * per-head arrays (ALiBi slopes, sink logits) on the device, and the scale the scores are multiplied
 * by before soft-capping.
 *
 * The arrays are the caller's host memory, [Hq] floats, so each call copies them into buffers of its
 * own (CL_MEM_COPY_HOST_PTR copies at creation); they are released right after the enqueue, which
 * OpenCL allows: a buffer lives until the commands that use it are done. */
#include "host/attention/attention.h"

static clattn_status upload(clattn_context *ctx, const float *host, int n, const char *what,
                            cl_mem *out)
{
    cl_int err = CL_SUCCESS;
    *out = NULL;
    if (!host)
        return CLATTN_SUCCESS;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                          (size_t)n * sizeof(float), (void *)host, &err);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : clattn_fail_cl(ctx, err, what);
}

clattn_status clattn_variant_args_make(clattn_context *ctx, const clattn_problem *p,
                                       clattn_variant_args *va)
{
    va->alibi = va->sinks = NULL;
    clattn_status st = upload(ctx, p->alibi, p->Hq, "clCreateBuffer(ALiBi slopes)", &va->alibi);
    if (st == CLATTN_SUCCESS)
        st = upload(ctx, p->sinks, p->Hq, "clCreateBuffer(sink logits)", &va->sinks);
    if (st != CLATTN_SUCCESS)
        clattn_variant_args_release(va);
    return st;
}

void clattn_variant_args_release(clattn_variant_args *va)
{
    if (va->alibi)
        clReleaseMemObject(va->alibi);
    if (va->sinks)
        clReleaseMemObject(va->sinks);
    va->alibi = va->sinks = NULL;
}

float clattn_variant_score_scale(const clattn_problem *p)
{
    return p->softcap > 0.0f ? (float)((double)p->scale / p->softcap) : p->scale;
}
