/* clattn_mha_forward: the multi-head attention layer on the device.
 *
 * X[B*L, in]·Wᵀ is [B*L, H*dh], which read as [B, L, H, dh] is exactly the BSHD layout the attention
 * kernels take, so each projection is one GEMM written straight into context scratch (no transpose
 * pass): Q -> WORK0, K -> WORK1, V -> WORK2, biases fused or added after (gemm.h: clattn's own
 * kernel or CLBlast, chosen per device and shape). The attention runs on the internal enqueue path
 * (this call holds the lock), writing the heads' output to WORK3 in the same BSHD layout, which is
 * the concatenation the output projection multiplies. A backend's temporaries (CLBlast's padded
 * copies) go to a slot that is idle at that moment: WORK3 during the input projections (the heads'
 * output is not written yet), WORK0 during the output projection (Q has been consumed), so a steady
 * stream of calls allocates nothing.
 * Everything the caller passes is checked, and every projection's backend chosen, before the first
 * kernel is enqueued.
 */
#include "host/core/buffer_check.h"
#include "host/attention/attention.h"
#include "host/layer/gemm.h"
#include "host/layer/layer.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* One projection and who computes it. */
typedef struct projection {
    clattn_gemm g;
    const clattn_gemm_backend *backend;
    clattn_params params;
} projection;

/* A call after its checks: what to enqueue, in order. */
typedef struct mha_plan {
    clattn_dtype dtype;
    projection proj[4];           /* q, k, v, out */
    clattn_problem attn;          /* the per-head attention, checked on the scratch buffers */
    cl_mem q, k, v, o, mask, attn_weights;
    cl_mem temp_in, temp_out;     /* backends' temporaries: WORK3 for q, k, v; WORK0 for out */
} mha_plan;

/* n elements of es bytes, saturated so that an absurd size fails the CL_MEM_SIZE check. */
static size_t bytes_of(size_t n, size_t es)
{
    return es && n > SIZE_MAX / es ? SIZE_MAX : n * es;
}

/* ---- argument checks -------------------------------------------------------------------------- */

/* Which weights the call gives, PyTorch's two forms: packed in_proj_weight, or q/k/v_proj_weight. */
static clattn_status check_weight_set(clattn_context *ctx, const clattn_mha_desc *desc,
                                      const clattn_mha_shape *s, const clattn_mha_weight_buffers *w)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    const int separate = w->q_proj_weight || w->k_proj_weight || w->v_proj_weight;
    if (w->in_proj_weight && separate)
        return clattn_fail(ctx, bad, "give in_proj_weight or q/k/v_proj_weight, not both");
    if (w->in_proj_weight && (s->kdim != s->E || s->vdim != s->E))
        return clattn_fail(ctx, bad, "in_proj_weight needs kdim == vdim == embed_dim (%d, %d, %d); "
                           "use q/k/v_proj_weight", s->kdim, s->vdim, s->E);
    if (!w->in_proj_weight && (!w->q_proj_weight || !w->k_proj_weight || !w->v_proj_weight))
        return clattn_fail(ctx, bad, "in_proj_weight, or all of q/k/v_proj_weight, must be given "
                           "(q %s, k %s, v %s)", w->q_proj_weight ? "given" : "NULL",
                           w->k_proj_weight ? "given" : "NULL", w->v_proj_weight ? "given" : "NULL");
    if (!w->out_proj_weight)
        return clattn_fail(ctx, bad, "out_proj_weight must be given");
    if (!desc->in_bias != !w->in_proj_bias)
        return clattn_fail(ctx, bad, "desc->in_bias is %d but in_proj_bias is %s", desc->in_bias,
                           w->in_proj_bias ? "given" : "NULL");
    if (!desc->out_bias != !w->out_proj_bias)
        return clattn_fail(ctx, bad, "desc->out_bias is %d but out_proj_bias is %s", desc->out_bias,
                           w->out_proj_bias ? "given" : "NULL");
    return CLATTN_SUCCESS;
}

/* Scratch for Q, K, V and the heads' output, grown to also hold the backends' temporaries. */
static clattn_status get_scratch(clattn_context *ctx, const clattn_mha_shape *s, mha_plan *plan)
{
    size_t es = clattn_dtype_size(plan->dtype);
    size_t temp_in = 0, temp_out = 0;
    for (int i = 0; i < 4; i++) {
        const projection *pr = &plan->proj[i];
        size_t t = 0;
        clattn_status st = pr->backend->temp_bytes(ctx, &pr->g, &pr->params, &t);
        if (st != CLATTN_SUCCESS)
            return st;
        if (i < 3 && t > temp_in)
            temp_in = t;
        if (i == 3)
            temp_out = t;
    }
    const size_t q_bytes = bytes_of(s->x_q, es);   /* [B,Lq,E], as the heads' output */
    const size_t kv_bytes = bytes_of((size_t)s->B * (size_t)s->Lk * (size_t)s->kv_width, es);
    clattn_status st;
    if ((st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK0, q_bytes > temp_out ? q_bytes : temp_out,
                                 &plan->q)) != CLATTN_SUCCESS ||
        (st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK1, kv_bytes, &plan->k)) != CLATTN_SUCCESS ||
        (st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK2, kv_bytes, &plan->v)) != CLATTN_SUCCESS ||
        (st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK3, q_bytes > temp_in ? q_bytes : temp_in,
                                 &plan->o)) != CLATTN_SUCCESS)
        return st;
    plan->temp_in = plan->o;
    plan->temp_out = plan->q;
    return CLATTN_SUCCESS;
}

/* Every check of clattn_mha_forward; fills plan. Lock held. */
static clattn_status mha_check(clattn_context *ctx, const clattn_mha_desc *desc,
                               const clattn_mha_weight_buffers *w, cl_mem x_q, cl_mem x_k, cl_mem x_v,
                               cl_mem mask, cl_mem out, cl_mem attn_weights, mha_plan *plan)
{
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    clattn_mha_shape s;
    char err[512];
    clattn_status st;
    memset(plan, 0, sizeof *plan);

    if ((st = clattn_mha_shape_init(desc, &s, err, sizeof err)) != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "%s", err);
    if (desc->dtype == CLATTN_BF16)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "desc->dtype CLATTN_BF16: the multi-head layer "
                           "takes F32 and F16 (bf16 storage is clattn_attention's)");
    if (desc->dtype != CLATTN_F32 && desc->dtype != CLATTN_F16)
        return clattn_fail(ctx, bad, "desc->dtype %d is not a clattn_dtype", (int)desc->dtype);
    if ((int)desc->path < CLATTN_PATH_AUTO || desc->path > CLATTN_PATH_FUSED)
        return clattn_fail(ctx, bad, "desc->path %d is not a clattn_path", (int)desc->path);
    if ((int)desc->projections < CLATTN_PROJ_AUTO || desc->projections > CLATTN_PROJ_CLBLAST)
        return clattn_fail(ctx, bad, "desc->projections %d is not a clattn_projection_impl",
                           (int)desc->projections);
    if (attn_weights && desc->path == CLATTN_PATH_FUSED)
        return clattn_fail(ctx, bad, "attn_weights requested with CLATTN_PATH_FUSED, which never "
                           "stores them; use CLATTN_PATH_UNFUSED or CLATTN_PATH_AUTO");
    if (!w)
        return clattn_fail(ctx, bad, "weights must not be NULL");
    if ((st = check_weight_set(ctx, desc, &s, w)) != CLATTN_SUCCESS)
        return st;
    if (!x_k && (s.kdim != s.E || s.Lk != s.Lq))
        return clattn_fail(ctx, bad, "x_k NULL (self-attention) needs kdim == embed_dim and seq_kv == "
                           "seq_q (kdim %d, embed_dim %d, seq_kv %d, seq_q %d)", s.kdim, s.E, s.Lk,
                           s.Lq);
    if (!x_v && s.vdim != s.kdim)
        return clattn_fail(ctx, bad, "x_v NULL (value = key) needs vdim == kdim (%d, %d)", s.vdim,
                           s.kdim);
    if (mask && desc->mask_type == CLATTN_MASK_NONE)
        return clattn_fail(ctx, bad, "mask buffer given but desc->mask_type is CLATTN_MASK_NONE");

    /* Sizes: inputs and weights in the storage type, the mask in its own, weights float32. */
    const size_t es = clattn_dtype_size(desc->dtype);
    const size_t kvw = (size_t)s.kv_width, E = (size_t)s.E;
    /* Outputs are written while inputs may still be read (the attention reads Q while the out GEMM's
       neighbours run, and attn_weights is written mid-call), so they may share memory with nothing.
       An absent optional tensor (need 0) may still be given: then it only has to be valid. */
    const int packed = w->in_proj_weight != NULL;
    clattn_buffer_arg bufs[] = {
        {.name = "x_q", .mem = x_q, .need = bytes_of(s.x_q, es)},
        {.name = "x_k", .mem = x_k, .need = x_k ? bytes_of(s.x_k, es) : 0},
        {.name = "x_v", .mem = x_v, .need = x_v ? bytes_of(s.x_v, es) : 0},
        {.name = "in_proj_weight", .mem = w->in_proj_weight,
         .need = packed ? bytes_of(s.in_proj_weight, es) : 0},
        {.name = "q_proj_weight", .mem = w->q_proj_weight,
         .need = packed ? 0 : bytes_of(s.q_proj_weight, es)},
        {.name = "k_proj_weight", .mem = w->k_proj_weight,
         .need = packed ? 0 : bytes_of(s.k_proj_weight, es)},
        {.name = "v_proj_weight", .mem = w->v_proj_weight,
         .need = packed ? 0 : bytes_of(s.v_proj_weight, es)},
        {.name = "in_proj_bias", .mem = w->in_proj_bias, .need = bytes_of(s.in_proj_bias, es)},
        {.name = "out_proj_weight", .mem = w->out_proj_weight, .need = bytes_of(s.out_proj_weight, es)},
        {.name = "out_proj_bias", .mem = w->out_proj_bias, .need = bytes_of(s.out_proj_bias, es)},
        {.name = "mask", .mem = mask, .need = bytes_of(s.mask, clattn_mask_elem_size(desc->mask_type))},
        {.name = "out", .mem = out, .need = bytes_of(s.out, es), .role = CLATTN_BUFFER_OUTPUT},
        {.name = "attn_weights", .mem = attn_weights,
         .need = attn_weights ? bytes_of(s.weights, sizeof(float)) : 0, .role = CLATTN_BUFFER_OUTPUT},
    };
    if ((st = clattn_buffers_check(ctx, bufs, (int)(sizeof bufs / sizeof bufs[0]))) != CLATTN_SUCCESS)
        return st;

    plan->dtype = desc->dtype;
    plan->mask = mask;
    plan->attn_weights = attn_weights;
    if (s.B == 0 || s.Lq == 0)
        return CLATTN_SUCCESS;   /* nothing to compute: no scratch, nothing enqueued */

    /* The projections, each reading its part of the packed weight and bias when packed. */
    cl_mem xk = x_k ? x_k : x_q, xv = x_v ? x_v : xk;
    const size_t rows_q = (size_t)s.B * (size_t)s.Lq, rows_kv = (size_t)s.B * (size_t)s.Lk;
    const clattn_dtype dt = desc->dtype;
    plan->proj[0].g = (clattn_gemm){"q", dt, x_q, packed ? w->in_proj_weight : w->q_proj_weight,
                                    w->in_proj_bias, NULL, 0, 0, rows_q, E, E};
    plan->proj[1].g = (clattn_gemm){"k", dt, xk, packed ? w->in_proj_weight : w->k_proj_weight,
                                    w->in_proj_bias, NULL, packed ? E * E : 0, E, rows_kv, kvw,
                                    (size_t)s.kdim};
    plan->proj[2].g = (clattn_gemm){"v", dt, xv, packed ? w->in_proj_weight : w->v_proj_weight,
                                    w->in_proj_bias, NULL, packed ? (E + kvw) * E : 0, E + kvw,
                                    rows_kv, kvw, (size_t)s.vdim};
    plan->proj[3].g = (clattn_gemm){"out", dt, NULL, w->out_proj_weight, w->out_proj_bias, out, 0, 0,
                                    rows_q, E, E};
    for (int i = 0; i < 4; i++)
        if ((st = clattn_gemm_choose(ctx, &plan->proj[i].g, desc->projections, &plan->proj[i].backend,
                                     &plan->proj[i].params)) != CLATTN_SUCCESS)
            return st;
    if ((st = get_scratch(ctx, &s, plan)) != CLATTN_SUCCESS)
        return st;
    plan->proj[0].g.c = plan->q;
    plan->proj[1].g.c = plan->k;
    plan->proj[2].g.c = plan->v;
    plan->proj[3].g.a = plan->o;

    /* The attention on the scratch buffers: its own checks (mask strides against the mask buffer)
       run here too, before anything is enqueued. */
    clattn_attention_desc a;
    clattn_mha_attention_desc(desc, &a);
    a.dtype = desc->dtype;
    a.path = desc->path;
    return clattn_attention_check(ctx, &a, plan->q, plan->k, plan->v, mask, plan->o, attn_weights,
                                  NULL, &plan->attn);
}

/* ---- enqueue ---------------------------------------------------------------------------------- */

/* On a caller's out-of-order queue the next step may read what this one writes. */
static clattn_status step_barrier(clattn_context *ctx, const char *what)
{
    if (!ctx->queue_out_of_order)
        return CLATTN_SUCCESS;
    cl_int err = clEnqueueBarrierWithWaitList(ctx->queue, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLATTN_SUCCESS : clattn_fail_cl(ctx, err, what);
}

static clattn_status project(clattn_context *ctx, const projection *pr, cl_mem temp)
{
    if (pr->g.rows == 0)
        return CLATTN_SUCCESS;   /* no key tokens: the attention sees Lk == 0 */
    clattn_status st = pr->backend->enqueue(ctx, &pr->g, &pr->params, temp);
    return st == CLATTN_SUCCESS ? step_barrier(ctx, "barrier after a projection") : st;
}

static clattn_status mha_enqueue_locked(clattn_context *ctx, const mha_plan *plan)
{
    /* On an out-of-order queue, start after the caller's earlier commands (their uploads) and the
       previous call's last reads of the scratch reused here. */
    clattn_status st = step_barrier(ctx, "barrier before the layer");
    for (int i = 0; i < 3 && st == CLATTN_SUCCESS; i++)
        st = project(ctx, &plan->proj[i], plan->temp_in);
    if (st == CLATTN_SUCCESS)
        st = clattn_attention_enqueue_locked(ctx, &plan->attn, plan->q, plan->k, plan->v, plan->mask,
                                             plan->o, plan->attn_weights, NULL);
    if (st == CLATTN_SUCCESS)
        st = step_barrier(ctx, "barrier after the attention");
    if (st == CLATTN_SUCCESS)
        st = project(ctx, &plan->proj[3], plan->temp_out);
    return st;
}

clattn_status clattn_mha_forward(clattn_context *ctx, const clattn_mha_desc *desc,
                                 const clattn_mha_weight_buffers *w, cl_mem x_q, cl_mem x_k,
                                 cl_mem x_v, cl_mem mask, cl_mem out, cl_mem attn_weights)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    mha_plan plan;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = mha_check(ctx, desc, w, x_q, x_k, x_v, mask, out, attn_weights, &plan);
    if (st == CLATTN_SUCCESS && plan.proj[0].g.rows > 0)
        st = mha_enqueue_locked(ctx, &plan);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
