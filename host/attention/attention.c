/* clattn_attention: argument checks, path choice, enqueue. Everything the caller passes is checked
 * before anything is enqueued, so a refused call changes nothing the caller owns. */
#include "host/core/buffer_check.h"
#include "host/attention/attention.h"

/* The desc resolved into p, and refused where it asks for probs of a path that has none: what a
   call and a description of its plan both check before the buffers. */
static clattn_status check_desc(clattn_context *ctx, const clattn_attention_desc *desc, int with_probs,
                                clattn_problem *p)
{
    char err[512];
    if (clattn_problem_init(desc, p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (with_probs && p->path == CLATTN_PATH_FUSED)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "probs requested with CLATTN_PATH_FUSED, which never stores scores; use "
                           "CLATTN_PATH_UNFUSED or CLATTN_PATH_AUTO");
    return CLATTN_SUCCESS;
}

clattn_status clattn_attention_check(clattn_context *ctx, const clattn_attention_desc *desc, cl_mem q,
                                     cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                     cl_mem lse, clattn_problem *p)
{
    clattn_status st = check_desc(ctx, desc, probs != NULL, p);
    if (st != CLATTN_SUCCESS)
        return st;
    if (p->mask_type == CLATTN_MASK_NONE && mask)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "mask buffer given but desc->mask_type is CLATTN_MASK_NONE");
    if (p->k_scale_host || p->v_scale_host)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "desc->k_scale_host/v_scale_host given to clattn_attention, which reads "
                           "device buffers: set desc->k_scale and v_scale (the host arrays are "
                           "for clattn_attention_host and clattn_attention_reference)");
    /* With no query row nothing is read or written, so no buffer is required; any given is checked.
       Outputs may share memory with nothing: scores would overwrite what P·V still reads. */
    int empty = p->B == 0 || p->Lq == 0;
    const clattn_buffer_role in = CLATTN_BUFFER_INPUT, o = CLATTN_BUFFER_OUTPUT;
    clattn_buffer_arg bufs[] = {
        {.name = "q", .mem = q, .need = p->bytes.q, .role = in, .optional = empty},
        {.name = "k", .mem = k, .need = p->bytes.k, .role = in, .optional = empty},
        {.name = "v", .mem = v, .need = p->bytes.v, .role = in, .optional = empty},
        {.name = "desc->k_scale", .mem = p->k_scale, .need = p->scale_bytes, .role = in,
         .optional = empty},
        {.name = "desc->v_scale", .mem = p->v_scale, .need = p->scale_bytes, .role = in,
         .optional = empty},
        {.name = "mask", .mem = mask, .need = p->bytes.mask, .role = in, .optional = empty},
        {.name = "out", .mem = out, .need = p->bytes.out, .role = o, .optional = empty},
        {.name = "probs", .mem = probs, .need = p->bytes.probs, .role = o, .optional = 1},
        {.name = "lse", .mem = lse, .need = p->bytes.lse, .role = o, .optional = 1},
    };
    return clattn_buffers_check(ctx, bufs, (int)(sizeof bufs / sizeof bufs[0]));
}

/* Tells the log what the call runs, when asked to (options.log_plans, CLATTN_LOG=plan). */
static void log_plan(clattn_context *ctx, const clattn_plan *plan)
{
    if (!ctx->settings.log_plans)
        return;
    char text[2048];
    clattn_plan_describe_text(plan, text, sizeof text);
    clattn_log(ctx, CLATTN_LOG_PLAN, text);
}

/* Resolves p's plan into *plan, logs it and executes it. Lock held. */
static clattn_status run(clattn_context *ctx, const clattn_problem *p, cl_mem q, cl_mem k, cl_mem v,
                         cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse, clattn_plan *plan)
{
    clattn_status st = clattn_plan_resolve(ctx, p, probs != NULL, NULL, plan);
    if (st != CLATTN_SUCCESS)
        return st;
    log_plan(ctx, plan);
    return clattn_plan_enqueue(ctx, plan, q, k, v, mask, out, probs, lse);
}

clattn_status clattn_attention_enqueue_locked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                              cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                              cl_mem lse)
{
    clattn_plan plan;
    return run(ctx, p, q, k, v, mask, out, probs, lse, &plan);
}

clattn_status clattn_attention(clattn_context *ctx, const clattn_attention_desc *desc, cl_mem q, cl_mem k,
                               cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_problem p;
    clattn_plan plan;
    clattn_status st = clattn_attention_check(ctx, desc, q, k, v, mask, out, probs, lse, &p);
    if (st == CLATTN_SUCCESS)
        st = run(ctx, &p, q, k, v, mask, out, probs, lse, &plan);
    /* automatic tuning, when the context was made with it, sees what ran and where from */
    if (st == CLATTN_SUCCESS && ctx->after_call)
        ctx->after_call(ctx, &plan);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

clattn_status clattn_plan_describe(clattn_context *ctx, const clattn_attention_desc *desc,
                                   int with_probs, char *buf, size_t len)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    if (!buf || !len)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "buf is NULL or len is 0");
    clattn_problem p;
    clattn_plan plan;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = check_desc(ctx, desc, with_probs, &p);
    if (st == CLATTN_SUCCESS)
        st = clattn_plan_resolve(ctx, &p, with_probs != 0, NULL, &plan);
    if (st == CLATTN_SUCCESS)
        clattn_plan_describe_text(&plan, buf, len);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
