/* clattn_attention_host: the device path for host memory. Copies in, runs, copies out, and returns
 * when done. Staging buffers are made per call, so concurrent host calls on one context only share
 * the lock that covers the enqueue. */
#include "host/attention/attention.h"

#include <stdio.h>
#include <string.h>

typedef struct staged {
    const char *name;
    const void *src;     /* host data to upload, or NULL for an output */
    void *dst;           /* host memory to download into, or NULL */
    size_t bytes;
    cl_mem mem;
} staged;

static clattn_status stage(clattn_context *ctx, staged *s)
{
    if (s->bytes == 0 || (!s->src && !s->dst))
        return CLATTN_SUCCESS;
    cl_int err;
    /* Outputs read-write: the unfused path computes probs in place in the probs buffer. */
    cl_mem_flags flags = s->src ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE;
    s->mem = clCreateBuffer(ctx->cl_ctx, flags, s->bytes, (void *)s->src, &err);
    if (!s->mem)
        return clattn_fail_cl(ctx, err, s->name);
    return CLATTN_SUCCESS;
}

clattn_status clattn_attention_host(clattn_context *ctx, const clattn_attention_desc *desc, const void *q,
                                    const void *k, const void *v, const void *mask, void *out,
                                    float *probs, float *lse)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    clattn_problem p;
    char err[512];
    if (clattn_problem_init(desc, &p, err, sizeof err) != CLATTN_SUCCESS) {
        pthread_mutex_lock(&ctx->lock);
        clattn_status st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
        pthread_mutex_unlock(&ctx->lock);
        return st;
    }
    int empty = p.B == 0 || p.Lq == 0;
    /* Int8 K/V: the host scales, staged like the tensors (the device pair is clattn_attention's). */
    if (p.k_scale || p.v_scale)
        snprintf(err, sizeof err, "desc->k_scale/v_scale (device buffers) given to "
                 "clattn_attention_host: set desc->k_scale_host and v_scale_host");
    if (p.k_scale || p.v_scale ||
        (p.kv_int8 && !empty && clattn_kv_scales_check(&p, 1, err, sizeof err) != CLATTN_SUCCESS)) {
        pthread_mutex_lock(&ctx->lock);
        clattn_status st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
        pthread_mutex_unlock(&ctx->lock);
        return st;
    }
    staged bufs[] = {
        {"q", q, NULL, p.bytes.q, NULL},         {"k", k, NULL, p.bytes.k, NULL},
        {"v", v, NULL, p.bytes.v, NULL},         {"mask", mask, NULL, p.bytes.mask, NULL},
        {"out", NULL, out, p.bytes.out, NULL},   {"probs", NULL, probs, p.bytes.probs, NULL},
        {"lse", NULL, lse, p.bytes.lse, NULL},
        {"k_scale", p.k_scale_host, NULL, p.scale_bytes, NULL},
        {"v_scale", p.v_scale_host, NULL, p.scale_bytes, NULL},
    };
    enum { Q, K, V, MASK, OUT, PROBS, LSE, KS, VS, N };
    clattn_status st = CLATTN_SUCCESS;
    /* Required host pointers are checked here, where their names are known; clattn_attention then
       checks the rest (mask/type agreement, path and probs) on the staged buffers. */
    const void *required[] = {q, k, v, NULL, out};
    for (int i = Q; i <= OUT && !empty; i++)
        if (i != MASK && bufs[i].bytes && !required[i]) {
            pthread_mutex_lock(&ctx->lock);
            st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is NULL but the shape needs %zu bytes",
                             bufs[i].name, bufs[i].bytes);
            pthread_mutex_unlock(&ctx->lock);
            return st;
        }
    if (empty) {
        pthread_mutex_lock(&ctx->lock);
        st = mask && p.mask_type == CLATTN_MASK_NONE
                 ? clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                               "mask buffer given but desc->mask_type is CLATTN_MASK_NONE")
                 : CLATTN_SUCCESS;
        pthread_mutex_unlock(&ctx->lock);
        return st;
    }
    if (mask && p.mask_type == CLATTN_MASK_NONE)
        bufs[MASK].bytes = 1;   /* stage a token buffer so that the check below reports the mismatch */

    for (int i = 0; i < N && st == CLATTN_SUCCESS; i++)
        st = stage(ctx, &bufs[i]);
    clattn_attention_desc staged_desc = *desc;
    staged_desc.k_scale = bufs[KS].mem;
    staged_desc.v_scale = bufs[VS].mem;
    staged_desc.k_scale_host = staged_desc.v_scale_host = NULL;
    if (st == CLATTN_SUCCESS)
        st = clattn_attention(ctx, &staged_desc, bufs[Q].mem, bufs[K].mem, bufs[V].mem,
                              bufs[MASK].mem, bufs[OUT].mem, bufs[PROBS].mem, bufs[LSE].mem);
    /* Read back only after success, so a failed call leaves the caller's memory as it was. */
    for (int i = OUT; i <= LSE && st == CLATTN_SUCCESS; i++) {
        if (!bufs[i].mem)
            continue;
        cl_int e = clEnqueueReadBuffer(ctx->queue, bufs[i].mem, CL_FALSE, 0, bufs[i].bytes, bufs[i].dst,
                                       0, NULL, NULL);
        if (e != CL_SUCCESS) {
            pthread_mutex_lock(&ctx->lock);
            st = clattn_fail_cl(ctx, e, "reading results back");
            pthread_mutex_unlock(&ctx->lock);
        }
    }
    cl_int e = clFinish(ctx->queue);
    if (st == CLATTN_SUCCESS && e != CL_SUCCESS) {
        pthread_mutex_lock(&ctx->lock);
        st = clattn_fail_cl(ctx, e, "clFinish");
        pthread_mutex_unlock(&ctx->lock);
    }
    for (int i = 0; i < N; i++)
        if (bufs[i].mem)
            clReleaseMemObject(bufs[i].mem);
    return st;
}
