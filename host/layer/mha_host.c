/* clattn_mha_forward_host: the multi-head layer for host memory. Stages every tensor in a buffer of
 * its own (converted to half for F16 storage), runs clattn_mha_forward, which checks them all, and
 * copies the results back only after success. Staging buffers are made per call, as in
 * attention_host.c, so concurrent host calls on one context share only the lock of the enqueue. */
#include "host/attention/attention.h"
#include "host/layer/layer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Failures found outside clattn_mha_forward are recorded under the lock, as every message is. */
static clattn_status fail_locked(clattn_context *ctx, clattn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static clattn_status fail_locked(clattn_context *ctx, clattn_status st, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ctx->lock);
    st = clattn_fail(ctx, st, "%s", msg);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

static clattn_status fail_cl_locked(clattn_context *ctx, cl_int err, const char *what)
{
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = clattn_fail_cl(ctx, err, what);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

typedef struct staged {
    const char *name;
    const float *src;    /* host data to upload, or NULL for an output */
    size_t elems;        /* what the shape needs; 0: the tensor is absent from this layer */
    size_t elem_bytes;   /* on the device */
    cl_mem mem;
} staged;

/* A device copy of s->src in dtype. A tensor given where the shape has none (say in_proj_bias with
   in_bias 0) becomes a one-element token buffer, so that clattn_mha_forward sees it given and names
   the mismatch; nothing is read from the pointer then. */
static clattn_status stage(clattn_context *ctx, clattn_dtype dtype, staged *s)
{
    cl_int err = CL_SUCCESS;
    uint16_t *half = NULL;
    const void *data = s->src;
    if (s->elems == 0) {
        s->mem = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, s->elem_bytes, NULL, &err);
        return s->mem ? CLATTN_SUCCESS : fail_cl_locked(ctx, err, s->name);
    }
    if (dtype == CLATTN_F16) {
        half = malloc(s->elems * sizeof *half);
        if (!half)
            return fail_locked(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory converting %s to half",
                               s->name);
        for (size_t i = 0; i < s->elems; i++)
            half[i] = clattn_float_to_half(s->src[i]);
        data = half;
    }
    s->mem = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                            s->elems * s->elem_bytes, (void *)data, &err);
    free(half);
    return s->mem ? CLATTN_SUCCESS : fail_cl_locked(ctx, err, s->name);
}

static clattn_status make_output(clattn_context *ctx, size_t bytes, const char *name, cl_mem *out)
{
    cl_int err = CL_SUCCESS;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_WRITE_ONLY, bytes ? bytes : 1, NULL, &err);
    return *out ? CLATTN_SUCCESS : fail_cl_locked(ctx, err, name);
}

/* out [n] from the device, in dtype, as float. Blocking: the conversion needs the data. */
static clattn_status read_back(clattn_context *ctx, cl_mem mem, clattn_dtype dtype, size_t n,
                               float *dst, const char *name)
{
    cl_int err;
    if (dtype == CLATTN_F32) {
        err = clEnqueueReadBuffer(ctx->queue, mem, CL_TRUE, 0, n * sizeof(float), dst, 0, NULL, NULL);
        return err == CL_SUCCESS ? CLATTN_SUCCESS : fail_cl_locked(ctx, err, name);
    }
    uint16_t *half = malloc(n * sizeof *half);
    if (!half)
        return fail_locked(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory %s", name);
    err = clEnqueueReadBuffer(ctx->queue, mem, CL_TRUE, 0, n * sizeof *half, half, 0, NULL, NULL);
    if (err == CL_SUCCESS)
        for (size_t i = 0; i < n; i++)
            dst[i] = clattn_half_to_float(half[i]);
    free(half);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : fail_cl_locked(ctx, err, name);
}

clattn_status clattn_mha_forward_host(clattn_context *ctx, const clattn_mha_desc *desc,
                                      const clattn_mha_weights *w, const float *x_q, const float *x_k,
                                      const float *x_v, const void *mask, float *out,
                                      float *attn_weights)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    clattn_mha_shape s;
    char err[512];
    clattn_status st = clattn_mha_shape_init(desc, &s, err, sizeof err);
    if (st == CLATTN_SUCCESS && desc->dtype == CLATTN_BF16) {
        st = CLATTN_UNSUPPORTED;
        snprintf(err, sizeof err, "desc->dtype CLATTN_BF16: the multi-head layer takes F32 and F16");
    } else if (st == CLATTN_SUCCESS && desc->dtype != CLATTN_F32 && desc->dtype != CLATTN_F16) {
        st = CLATTN_INVALID_ARGUMENT;
        snprintf(err, sizeof err, "desc->dtype %d is not a clattn_dtype", (int)desc->dtype);
    }
    if (st == CLATTN_SUCCESS && !w) {
        st = CLATTN_INVALID_ARGUMENT;
        snprintf(err, sizeof err, "weights must not be NULL");
    }
    if (st != CLATTN_SUCCESS)
        return fail_locked(ctx, st, "%s", err);

    const size_t es = clattn_dtype_size(desc->dtype);
    const size_t mask_es = desc->mask_type != CLATTN_MASK_NONE ? clattn_mask_elem_size(desc->mask_type) : 1;
    staged in[] = {
        {"x_q", x_q, s.x_q, es, NULL},
        {"x_k", x_k, s.x_k, es, NULL},
        {"x_v", x_v, s.x_v, es, NULL},
        {"in_proj_weight", w->in_proj_weight, s.in_proj_weight, es, NULL},
        {"q_proj_weight", w->q_proj_weight, s.q_proj_weight, es, NULL},
        {"k_proj_weight", w->k_proj_weight, s.k_proj_weight, es, NULL},
        {"v_proj_weight", w->v_proj_weight, s.v_proj_weight, es, NULL},
        {"in_proj_bias", w->in_proj_bias, s.in_proj_bias, es, NULL},
        {"out_proj_weight", w->out_proj_weight, s.out_proj_weight, es, NULL},
        {"out_proj_bias", w->out_proj_bias, s.out_proj_bias, es, NULL},
    };
    enum { XQ, XK, XV, W_IN, W_Q, W_K, W_V, B_IN, W_OUT, B_OUT, N_IN };
    cl_mem mask_mem = NULL, out_mem = NULL, weights_mem = NULL;

    /* Every given input is staged (a NULL stays NULL, so the device call applies the self-attention
       and weight rules to exactly what the caller passed). Only non-empty outputs get buffers. */
    for (int i = 0; i < N_IN && st == CLATTN_SUCCESS; i++)
        if (in[i].src)
            st = stage(ctx, desc->dtype, &in[i]);
    if (st == CLATTN_SUCCESS && mask) {
        cl_int e = CL_SUCCESS;
        const size_t bytes = s.mask * mask_es;
        mask_mem = bytes ? clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                          (void *)mask, &e)
                         : clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_ONLY, 1, NULL, &e);
        if (!mask_mem)
            st = fail_cl_locked(ctx, e, "mask");
    }
    if (st == CLATTN_SUCCESS && out && s.out)
        st = make_output(ctx, s.out * es, "out", &out_mem);
    if (st == CLATTN_SUCCESS && attn_weights && s.weights)
        st = make_output(ctx, s.weights * sizeof(float), "attn_weights", &weights_mem);

    if (st == CLATTN_SUCCESS) {
        const clattn_mha_weight_buffers wb = {
            in[W_IN].mem, in[W_Q].mem, in[W_K].mem, in[W_V].mem,
            in[B_IN].mem, in[W_OUT].mem, in[B_OUT].mem,
        };
        st = clattn_mha_forward(ctx, desc, &wb, in[XQ].mem, in[XK].mem, in[XV].mem, mask_mem, out_mem,
                                weights_mem);
    }
    /* Read back only after success, so a failed call leaves the caller's memory as it was. */
    /* Blocking reads wait for themselves only: on a caller's out-of-order queue they could overtake
       the layer, so wait for it first. */
    if (st == CLATTN_SUCCESS) {
        cl_int e = clFinish(ctx->queue);
        if (e != CL_SUCCESS)
            st = fail_cl_locked(ctx, e, "clFinish");
    }
    if (st == CLATTN_SUCCESS && weights_mem)
        st = read_back(ctx, weights_mem, CLATTN_F32, s.weights, attn_weights, "reading attn_weights back");
    if (st == CLATTN_SUCCESS && out_mem)
        st = read_back(ctx, out_mem, desc->dtype, s.out, out, "reading out back");
    /* Return with the queue idle, as the call's contract says, also after a failure midway. */
    clFinish(ctx->queue);
    for (int i = 0; i < N_IN; i++)
        if (in[i].mem)
            clReleaseMemObject(in[i].mem);
    if (mask_mem)
        clReleaseMemObject(mask_mem);
    if (out_mem)
        clReleaseMemObject(out_mem);
    if (weights_mem)
        clReleaseMemObject(weights_mem);
    return st;
}
