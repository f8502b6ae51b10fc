/* clattn_attention_varlen_host: host tensors and tables. The tables are validated here, before
 * anything is copied, so a bad entry is named and nothing the caller owns is written. */
#include "host/serving/serving.h"

#include <stdio.h>
#include <string.h>

typedef struct staged {
    const char *name;
    const void *src;     /* host data to upload, or NULL for an output */
    size_t bytes;
    cl_mem mem;
} staged;

static clattn_status fail_locked(clattn_context *ctx, clattn_status st, const char *msg)
{
    pthread_mutex_lock(&ctx->lock);
    st = clattn_fail(ctx, st, "%s", msg);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

clattn_status clattn_attention_varlen_host(clattn_context *ctx, const clattn_varlen_desc *desc,
                                           const void *q, const void *k, const void *v, void *out,
                                           float *lse)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    clattn_varlen_problem vp;
    char err[512];
    if (clattn_varlen_problem_init(desc, &vp, err, sizeof err) != CLATTN_SUCCESS)
        return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, err);
    if (clattn_varlen_host_tables_given(&vp, desc, err, sizeof err) != CLATTN_SUCCESS)
        return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, err);
    const int empty = vp.p.B == 0 || vp.t.total_q == 0;
    staged bufs[] = {
        {"q", q, vp.q_bytes, NULL},
        {"k", k, vp.k_bytes, NULL},
        {"v", v, vp.v_bytes, NULL},
        {"desc->cu_seqlens_q_host", desc->cu_seqlens_q_host, vp.cu_q_bytes, NULL},
        {"desc->cu_seqlens_k_host", desc->cu_seqlens_k_host, vp.cu_k_bytes, NULL},
        {"desc->seqlens_k_host", desc->seqlens_k_host, vp.seqlens_bytes, NULL},
        {"desc->block_table_host", desc->block_table_host, vp.table_bytes, NULL},
        {"desc->k_scale_host", desc->k_scale_host, vp.scale_bytes, NULL},
        {"desc->v_scale_host", desc->v_scale_host, vp.scale_bytes, NULL},
        {"out", NULL, vp.out_bytes, NULL},
        {"lse", NULL, vp.lse_bytes, NULL},
    };
    enum { Q, K, V, CUQ, CUK, SEQK, TABLE, KS, VS, OUT, LSE, N };
    if (empty)
        return CLATTN_SUCCESS;
    for (int i = Q; i <= VS; i++)
        if (bufs[i].bytes && !bufs[i].src) {
            snprintf(err, sizeof err, "%s is NULL but the call needs %zu bytes", bufs[i].name,
                     bufs[i].bytes);
            return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, err);
        }
    if (!out)
        return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, "out is NULL");
    if (clattn_varlen_tables_check(&vp, desc->cu_seqlens_q_host, desc->cu_seqlens_k_host,
                                   desc->seqlens_k_host, desc->block_table_host, err,
                                   sizeof err) != CLATTN_SUCCESS)
        return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, err);
    if (vp.p.kv_int8 &&
        clattn_varlen_scales_check(&vp, desc->cu_seqlens_k_host, desc->seqlens_k_host,
                                   desc->block_table_host, desc->k_scale_host, desc->v_scale_host,
                                   err, sizeof err) != CLATTN_SUCCESS)
        return fail_locked(ctx, CLATTN_INVALID_ARGUMENT, err);

    clattn_status st = CLATTN_SUCCESS;
    for (int i = 0; i < N && st == CLATTN_SUCCESS; i++) {
        if (!bufs[i].bytes || (i == LSE && !lse))
            continue;
        cl_int e;
        cl_mem_flags flags = bufs[i].src ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE;
        bufs[i].mem = clCreateBuffer(ctx->cl_ctx, flags, bufs[i].bytes, (void *)bufs[i].src, &e);
        if (!bufs[i].mem) {
            pthread_mutex_lock(&ctx->lock);
            st = clattn_fail_cl(ctx, e, bufs[i].name);
            pthread_mutex_unlock(&ctx->lock);
        }
    }
    if (st == CLATTN_SUCCESS) {
        clattn_varlen_desc d = *desc;
        d.cu_seqlens_q_host = d.cu_seqlens_k_host = d.seqlens_k_host = d.block_table_host = NULL;
        d.k_scale_host = d.v_scale_host = NULL;
        d.cu_seqlens_q = bufs[CUQ].mem;
        d.cu_seqlens_k = bufs[CUK].mem;
        d.seqlens_k = bufs[SEQK].mem;
        d.block_table = bufs[TABLE].mem;
        d.k_scale = bufs[KS].mem;
        d.v_scale = bufs[VS].mem;
        d.check_indices = 0;   /* checked above */
        st = clattn_attention_varlen(ctx, &d, bufs[Q].mem, bufs[K].mem, bufs[V].mem, bufs[OUT].mem,
                                     bufs[LSE].mem);
    }
    /* Outputs come back only when everything succeeded: a failed call writes nothing. */
    void *dst[N] = {0};
    dst[OUT] = out;
    dst[LSE] = lse;
    for (int i = OUT; i <= LSE && st == CLATTN_SUCCESS; i++) {
        if (!bufs[i].mem || !dst[i])
            continue;
        cl_int e = clEnqueueReadBuffer(ctx->queue, bufs[i].mem, CL_TRUE, 0, bufs[i].bytes, dst[i], 0,
                                       NULL, NULL);
        if (e != CL_SUCCESS) {
            pthread_mutex_lock(&ctx->lock);
            st = clattn_fail_cl(ctx, e, "reading the result");
            pthread_mutex_unlock(&ctx->lock);
        }
    }
    for (int i = 0; i < N; i++)
        if (bufs[i].mem)
            clReleaseMemObject(bufs[i].mem);
    return st;
}
