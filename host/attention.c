/* clattn_attention: argument checks, path choice, enqueue. Everything the caller passes is checked
 * before anything is enqueued, so a refused call changes nothing the caller owns. */
#include "host/plan.h"

#include <string.h>

typedef struct named_buffer {
    const char *name;
    cl_mem mem;
    size_t need;        /* bytes the shape needs; 0: the tensor is empty and the buffer may be NULL */
    int optional;       /* NULL allowed even when need > 0 */
} named_buffer;

/* Checks one buffer: present when needed, from this context, large enough. */
static clattn_status check_buffer(clattn_context *ctx, const named_buffer *b)
{
    if (!b->mem) {
        if (b->need == 0 || b->optional)
            return CLATTN_SUCCESS;
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is NULL but the shape needs %zu bytes",
                           b->name, b->need);
    }
    size_t size = 0;
    cl_context owner = NULL;
    cl_int err = clGetMemObjectInfo(b->mem, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(b->mem, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is not a valid cl_mem (%s)", b->name,
                           clattn_cl_error_name(err));
    if (owner != ctx->cl_ctx)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s belongs to another cl_context than the clattn context's", b->name);
    if (size < b->need)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s holds %zu bytes but the shape needs %zu", b->name, size, b->need);
    return CLATTN_SUCCESS;
}

/* Outputs must not share memory with anything else of the call: kernels read inputs while others
   write outputs, and scores would overwrite what P·V still reads. */
static clattn_status check_aliasing(clattn_context *ctx, const named_buffer *bufs, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (bufs[i].mem && bufs[i].mem == bufs[j].mem &&
                (strcmp(bufs[i].name, "out") == 0 || strcmp(bufs[j].name, "out") == 0 ||
                 strcmp(bufs[i].name, "probs") == 0 || strcmp(bufs[j].name, "probs") == 0 ||
                 strcmp(bufs[i].name, "lse") == 0 || strcmp(bufs[j].name, "lse") == 0))
                return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                                   "%s and %s are the same buffer; outputs may not alias", bufs[i].name,
                                   bufs[j].name);
    return CLATTN_SUCCESS;
}

clattn_status clattn_attention_check(clattn_context *ctx, const clattn_attention_desc *desc, cl_mem q,
                                     cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                     cl_mem lse, clattn_problem *p)
{
    char err[512];
    if (clattn_problem_init(desc, p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (p->mask_type == CLATTN_MASK_NONE && mask)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "mask buffer given but desc->mask_type is CLATTN_MASK_NONE");
    if (probs && p->path == CLATTN_PATH_FUSED)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "probs requested with CLATTN_PATH_FUSED, which never stores scores; use "
                           "CLATTN_PATH_UNFUSED or CLATTN_PATH_AUTO");
    /* With no query row nothing is read or written, so no buffer is required; any given is checked. */
    int empty = p->B == 0 || p->Lq == 0;
    named_buffer bufs[] = {
        {"q", q, p->bytes.q, empty},       {"k", k, p->bytes.k, empty},
        {"v", v, p->bytes.v, empty},       {"mask", mask, p->bytes.mask, empty},
        {"out", out, p->bytes.out, empty}, {"probs", probs, p->bytes.probs, 1},
        {"lse", lse, p->bytes.lse, 1},
    };
    int n = (int)(sizeof bufs / sizeof bufs[0]);
    for (int i = 0; i < n; i++) {
        clattn_status st = check_buffer(ctx, &bufs[i]);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    return check_aliasing(ctx, bufs, n);
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

clattn_status clattn_attention_enqueue_locked(clattn_context *ctx, const clattn_problem *p, cl_mem q,
                                              cl_mem k, cl_mem v, cl_mem mask, cl_mem out, cl_mem probs,
                                              cl_mem lse)
{
    clattn_plan plan;
    clattn_status st = clattn_plan_resolve(ctx, p, probs != NULL, NULL, &plan);
    if (st != CLATTN_SUCCESS)
        return st;
    log_plan(ctx, &plan);
    return clattn_plan_enqueue(ctx, &plan, q, k, v, mask, out, probs, lse);
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
        st = clattn_plan_resolve(ctx, &p, probs != NULL, NULL, &plan);
    if (st == CLATTN_SUCCESS) {
        log_plan(ctx, &plan);
        st = clattn_plan_enqueue(ctx, &plan, q, k, v, mask, out, probs, lse);
    }
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
    char err[512];
    clattn_problem p;
    clattn_plan plan;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = CLATTN_SUCCESS;
    if (clattn_problem_init(desc, &p, err, sizeof err) != CLATTN_SUCCESS)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    else if (with_probs && p.path == CLATTN_PATH_FUSED)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                         "probs requested with CLATTN_PATH_FUSED, which never stores scores");
    if (st == CLATTN_SUCCESS)
        st = clattn_plan_resolve(ctx, &p, with_probs != 0, NULL, &plan);
    if (st == CLATTN_SUCCESS)
        clattn_plan_describe_text(&plan, buf, len);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
