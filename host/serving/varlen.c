/* clattn_attention_varlen: a ragged batch, its keys packed or paged, on the fused path. Every
 * argument is checked before anything is enqueued; the tables themselves are checked only when
 * the caller asks (check_indices), since that takes a blocking read: the kernel never trusts them
 * (cl/flash_attention.cl, VARLEN). */
#include "host/core/buffer_check.h"
#include "host/serving/serving.h"

#include <stdio.h>
#include <stdlib.h>

/* The desc and buffers; vp filled. */
static clattn_status check_call(clattn_context *ctx, const clattn_varlen_desc *desc, cl_mem q,
                                cl_mem k, cl_mem v, cl_mem out, cl_mem lse,
                                clattn_varlen_problem *vp)
{
    char err[512];
    if (clattn_varlen_problem_init(desc, vp, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (desc->cu_seqlens_q_host || desc->cu_seqlens_k_host || desc->seqlens_k_host ||
        desc->block_table_host || desc->k_scale_host || desc->v_scale_host)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "desc->*_host tables given to clattn_attention_varlen, which reads device "
                           "buffers: set desc->cu_seqlens_q (and the rest) instead");
    if (vp->paged && desc->cu_seqlens_k)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->cu_seqlens_k given with a paged cache "
                           "(block_size %d): the keys are counted by seqlens_k", desc->block_size);
    if (!vp->paged && (desc->seqlens_k || desc->block_table))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->seqlens_k/block_table given with "
                           "packed keys (block_size 0): set block_size for a paged cache");
    const int empty = vp->p.B == 0 || vp->t.total_q == 0;
    const clattn_buffer_role in = CLATTN_BUFFER_INPUT, o = CLATTN_BUFFER_OUTPUT;
    clattn_buffer_arg bufs[] = {
        {.name = "q", .mem = q, .need = vp->q_bytes, .role = in, .optional = empty},
        {.name = vp->paged ? "k (k_cache)" : "k", .mem = k, .need = vp->k_bytes, .role = in,
         .optional = empty},
        {.name = vp->paged ? "v (v_cache)" : "v", .mem = v, .need = vp->v_bytes, .role = in,
         .optional = empty},
        {.name = "desc->cu_seqlens_q", .mem = desc->cu_seqlens_q, .need = vp->cu_q_bytes, .role = in,
         .optional = empty},
        {.name = "desc->cu_seqlens_k", .mem = desc->cu_seqlens_k, .need = vp->cu_k_bytes, .role = in,
         .optional = empty},
        {.name = "desc->seqlens_k", .mem = desc->seqlens_k, .need = vp->seqlens_bytes, .role = in,
         .optional = empty},
        {.name = "desc->block_table", .mem = desc->block_table, .need = vp->table_bytes, .role = in,
         .optional = empty || vp->table_bytes == 0},
        {.name = "desc->k_scale", .mem = desc->k_scale, .need = vp->scale_bytes, .role = in,
         .optional = empty},
        {.name = "desc->v_scale", .mem = desc->v_scale, .need = vp->scale_bytes, .role = in,
         .optional = empty},
        {.name = "out", .mem = out, .need = vp->out_bytes, .role = o, .optional = empty},
        {.name = "lse", .mem = lse, .need = vp->lse_bytes, .role = o, .optional = 1},
    };
    return clattn_buffers_check(ctx, bufs, (int)(sizeof bufs / sizeof bufs[0]));
}

/* check_indices: the tables read back and validated. */
static clattn_status check_tables(clattn_context *ctx, const clattn_varlen_desc *desc,
                                  const clattn_varlen_problem *vp)
{
    const size_t sizes[] = {vp->cu_q_bytes, vp->cu_k_bytes, vp->seqlens_bytes, vp->table_bytes};
    const cl_mem mems[] = {desc->cu_seqlens_q, desc->cu_seqlens_k, desc->seqlens_k, desc->block_table};
    int *host[4] = {NULL, NULL, NULL, NULL};
    clattn_status st = CLATTN_SUCCESS;
    for (int i = 0; i < 4 && st == CLATTN_SUCCESS; i++) {
        if (!sizes[i])
            continue;
        host[i] = malloc(sizes[i]);
        if (!host[i]) {
            st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "check_indices: %zu bytes", sizes[i]);
            break;
        }
        cl_int err = clEnqueueReadBuffer(ctx->queue, mems[i], CL_TRUE, 0, sizes[i], host[i], 0, NULL,
                                         NULL);
        if (err != CL_SUCCESS)
            st = clattn_fail_cl(ctx, err, "check_indices: reading the index tables");
    }
    char msg[512];
    if (st == CLATTN_SUCCESS &&
        clattn_varlen_tables_check(vp, host[0], host[1], host[2], host[3], msg, sizeof msg) !=
            CLATTN_SUCCESS)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", msg);
    for (int i = 0; i < 4; i++)
        free(host[i]);
    return st;
}

/* Plans and enqueues a checked call. Lock held. */
static clattn_status run(clattn_context *ctx, const clattn_varlen_desc *desc,
                         const clattn_varlen_problem *vp, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                         cl_mem lse)
{
    if (vp->p.B == 0 || vp->t.total_q == 0 || vp->p.Lq == 0)
        return CLATTN_SUCCESS;
    clattn_plan plan;
    clattn_status st = clattn_plan_resolve(ctx, &vp->p, 0, NULL, &plan);
    if (st != CLATTN_SUCCESS)
        return st;
    if (ctx->settings.log_plans) {
        char text[2048];
        clattn_plan_describe_text(&plan, text, sizeof text);
        clattn_log(ctx, CLATTN_LOG_PLAN, text);
    }
    clattn_flash_tables t = vp->t;
    t.cu_q = desc->cu_seqlens_q;
    t.cu_k = desc->cu_seqlens_k;
    t.seqlens_k = desc->seqlens_k;
    t.block_table = desc->block_table;
    clattn_problem *p = &plan.p;
    p->k_scale = desc->k_scale;
    p->v_scale = desc->v_scale;
    return clattn_flash_run_varlen(ctx, &plan, &t, q, k, v, out, lse);
}

clattn_status clattn_attention_varlen(clattn_context *ctx, const clattn_varlen_desc *desc, cl_mem q,
                                      cl_mem k, cl_mem v, cl_mem out, cl_mem lse)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_varlen_problem vp;
    clattn_status st = check_call(ctx, desc, q, k, v, out, lse, &vp);
    if (st == CLATTN_SUCCESS && desc->check_indices && vp.p.B > 0 && vp.t.total_q > 0)
        st = check_tables(ctx, desc, &vp);
    if (st == CLATTN_SUCCESS)
        st = run(ctx, desc, &vp, q, k, v, out, lse);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
