/* Device scratch owned by the context: one buffer per slot, grown on demand, never shrunk, so a
 * steady stream of calls allocates nothing. */
#include "host/core/core.h"

clattn_status clattn_scratch_get(clattn_context *ctx, clattn_scratch_slot slot, size_t bytes,
                                 cl_mem *out)
{
    clattn_scratch *s = &ctx->scratch;
    if (bytes == 0)
        bytes = 1;
    if (s->buf[slot] && s->bytes[slot] >= bytes) {
        *out = s->buf[slot];
        return CLATTN_SUCCESS;
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
    return CLATTN_SUCCESS;
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
