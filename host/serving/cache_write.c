/* clattn_reshape_and_cache: new tokens' K and V rows into their slots of a paged cache
 * (cl/quant.cl, cache_write), quantized when the cache is int8. The slots are not trusted: the
 * kernel skips any outside the cache. */
#include "host/core/buffer_check.h"
#include "host/serving/serving.h"

#include <stdio.h>

/* Writes one tensor (K, dim d, or V, dim dv) of num_tokens rows per KV head. Lock held. */
static clattn_status write_one(clattn_context *ctx, const clattn_varlen_problem *vp, int dim,
                               int num_tokens, cl_mem slots, cl_mem src, cl_mem cache, cl_mem scale,
                               const char *what)
{
    const clattn_problem *p = &vp->p;
    char options[160];
    snprintf(options, sizeof options, "-DDIM=%d -DUSE_F16=%d -DUSE_BF16=%d -DKV_INT8=%d", dim,
             p->dtype == CLATTN_F16, p->dtype == CLATTN_BF16, p->kv_int8);
    cl_kernel kernel;
    clattn_status st = clattn_kernel_get(ctx, "quant.cl", options, "cache_write", &kernel);
    if (st != CLATTN_SUCCESS)
        return st;
    const int heads = p->Hkv, n_slots = vp->t.num_blocks * vp->block_size;
    cl_uint a = 0;
    if ((st = clattn_set_arg(ctx, kernel, a++, sizeof src, &src)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof cache, &cache)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof scale, &scale)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof slots, &slots)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof num_tokens, &num_tokens)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof heads, &heads)) != CLATTN_SUCCESS ||
        (st = clattn_set_arg(ctx, kernel, a++, sizeof n_slots, &n_slots)) != CLATTN_SUCCESS)
        return st;
    /* one work-item per (token, head) row; no local memory, so the runtime picks the group */
    const size_t global = (size_t)num_tokens * (size_t)heads;
    return clattn_launch(ctx, kernel, 1, &global, NULL, what);
}

clattn_status clattn_reshape_and_cache(clattn_context *ctx, const clattn_varlen_desc *desc,
                                       int num_tokens, cl_mem slot_mapping, cl_mem k_new, cl_mem v_new,
                                       cl_mem k_cache, cl_mem v_cache)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_varlen_problem vp;
    char err[512];
    clattn_status st = CLATTN_SUCCESS;
    if (clattn_varlen_problem_init(desc, &vp, err, sizeof err) != CLATTN_SUCCESS)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    else if (!vp.paged)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                         "desc->block_size = 0: clattn_reshape_and_cache writes a paged cache "
                         "(block_size a power of two, num_blocks)");
    else if (num_tokens < 0)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "num_tokens = %d: must be >= 0", num_tokens);
    else if (desc->k_scale_host || desc->v_scale_host)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                         "desc->k_scale_host/v_scale_host given to clattn_reshape_and_cache: the "
                         "int8 cache's scales are device buffers (desc->k_scale, v_scale)");
    if (st == CLATTN_SUCCESS) {
        const clattn_problem *p = &vp.p;
        const size_t es = clattn_dtype_size(p->dtype), rows = (size_t)num_tokens * (size_t)p->Hkv;
        const int none = num_tokens == 0;
        const clattn_buffer_role in = CLATTN_BUFFER_INPUT, o = CLATTN_BUFFER_OUTPUT;
        clattn_buffer_arg bufs[] = {
            {.name = "slot_mapping", .mem = slot_mapping, .need = (size_t)num_tokens * sizeof(int),
             .role = in, .optional = none},
            {.name = "k_new", .mem = k_new, .need = rows * (size_t)p->d * es, .role = in,
             .optional = none},
            {.name = "v_new", .mem = v_new, .need = rows * (size_t)p->dv * es, .role = in,
             .optional = none},
            {.name = "k_cache", .mem = k_cache, .need = vp.k_bytes, .role = o, .optional = none},
            {.name = "v_cache", .mem = v_cache, .need = vp.v_bytes, .role = o, .optional = none},
            {.name = "desc->k_scale", .mem = desc->k_scale, .need = vp.scale_bytes, .role = o,
             .optional = none},
            {.name = "desc->v_scale", .mem = desc->v_scale, .need = vp.scale_bytes, .role = o,
             .optional = none},
        };
        st = clattn_buffers_check(ctx, bufs, (int)(sizeof bufs / sizeof bufs[0]));
        if (st == CLATTN_SUCCESS && !none)
            st = write_one(ctx, &vp, p->d, num_tokens, slot_mapping, k_new, k_cache, desc->k_scale,
                           "cache_write (keys)");
        if (st == CLATTN_SUCCESS && !none)
            st = write_one(ctx, &vp, p->dv, num_tokens, slot_mapping, v_new, v_cache, desc->v_scale,
                           "cache_write (values)");
    }
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
