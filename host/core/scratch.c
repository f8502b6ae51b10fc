/* Device scratch owned by the context: one buffer per slot, grown on demand, never shrunk, so a
 * steady stream of calls allocates nothing. */
#include "host/core/core.h"

#include <math.h>

/* The test seam's fill: every float of the buffer NaN, so that a read of scratch the call did not
   write reaches its result. */
static clattn_status poison(clattn_context *ctx, cl_mem buf, size_t bytes)
{
    const float pattern = NAN;
    size_t n = bytes / sizeof pattern * sizeof pattern;
    if (n == 0)
        return CLATTN_SUCCESS;
    /* On a caller's out-of-order queue: after the kernels before (which may still read the old
       contents) and before those after. */
    cl_int err = ctx->queue_out_of_order ? clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL)
                                         : CL_SUCCESS;
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(ctx->queue, buf, &pattern, sizeof pattern, 0, n, 0, NULL, NULL);
    if (err == CL_SUCCESS && ctx->queue_out_of_order)
        err = clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : clattn_fail_cl(ctx, err, "poisoning device scratch");
}

void clattn_scratch_poison(clattn_context *ctx, int on)
{
    pthread_mutex_lock(&ctx->lock);
    ctx->scratch.poison = on;
    pthread_mutex_unlock(&ctx->lock);
}

clattn_status clattn_scratch_get(clattn_context *ctx, clattn_scratch_slot slot, size_t bytes,
                                 cl_mem *out)
{
    clattn_scratch *s = &ctx->scratch;
    if (bytes == 0)
        bytes = 1;
    if (s->buf[slot] && s->bytes[slot] >= bytes) {
        *out = s->buf[slot];
        return s->poison ? poison(ctx, *out, s->bytes[slot]) : CLATTN_SUCCESS;
    }
    if (bytes > ctx->info.max_alloc_bytes)
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY,
                           "scratch of %zu bytes exceeds the device's maximum allocation of %llu bytes",
                           bytes, (unsigned long long)ctx->info.max_alloc_bytes);
    /* Release first: the old buffer's contents are never needed, and holding both could fail. Kernels
       already enqueued keep their own reference to the old buffer. */
    if (s->buf[slot]) {
        clReleaseMemObject(s->buf[slot]);
        s->buf[slot] = NULL;
        s->bytes[slot] = 0;
    }
    cl_int err;
    cl_mem buf = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!buf)
        return clattn_fail_cl(ctx, err, "allocating device scratch");
    s->buf[slot] = buf;
    s->bytes[slot] = bytes;
    size_t live = 0;
    for (int i = 0; i < CLATTN_SCRATCH_COUNT; i++)
        live += s->bytes[i];
    if (live > s->high_water)
        s->high_water = live;
    *out = buf;
    return s->poison ? poison(ctx, buf, bytes) : CLATTN_SUCCESS;
}

void clattn_scratch_release_all(clattn_context *ctx)
{
    for (int i = 0; i < CLATTN_SCRATCH_COUNT; i++) {
        if (ctx->scratch.buf[i])
            clReleaseMemObject(ctx->scratch.buf[i]);
        ctx->scratch.buf[i] = NULL;
        ctx->scratch.bytes[i] = 0;
    }
}
