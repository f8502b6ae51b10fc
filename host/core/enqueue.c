/* Small wrappers that turn OpenCL failures into statuses naming what failed. */
#include "host/core/core.h"

#include <stdio.h>

clattn_status clattn_set_arg(clattn_context *ctx, cl_kernel kernel, cl_uint index, size_t size,
                             const void *value)
{
    cl_int err = clSetKernelArg(kernel, index, size, value);
    if (err == CL_SUCCESS)
        return CLATTN_SUCCESS;
    char what[64];
    snprintf(what, sizeof what, "clSetKernelArg(%u)", index);
    return clattn_fail_cl(ctx, err, what);
}

clattn_status clattn_launch(clattn_context *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                            const size_t *local, const char *what)
{
    size_t g[3];
    for (cl_uint i = 0; i < dims; i++) {
        if (global[i] == 0)
            return CLATTN_SUCCESS;   /* nothing to do; OpenCL 1.2 rejects empty ranges */
        size_t l = local ? local[i] : 1;
        g[i] = (global[i] + l - 1) / l * l;
    }
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, kernel, dims, NULL, g, local, 0, NULL, NULL);
    /* On a caller's out-of-order queue the next kernel may read what this one writes. */
    if (err == CL_SUCCESS && ctx->queue_out_of_order)
        err = clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL);
    if (err == CL_SUCCESS)
        return CLATTN_SUCCESS;
    char msg[160];
    snprintf(msg, sizeof msg, "enqueueing %s", what);
    return clattn_fail_cl(ctx, err, msg);
}
