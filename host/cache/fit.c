/* What fits this device: a built kernel held against the launch it is for (its own work-group
 * limit, its local memory against the device's, possibly capped by the context's options), and the
 * context's memory of each parameter point's verdict, so that a point that failed to build or to
 * fit is tried once per context and then passed over by the parameter choice (attention/params.c),
 * while a point that fitted is not queried again. */
#include "host/cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One point of one family, for the compile-time shape of a problem: what a kernel's build and its
   resources depend on (the head sizes size the fused kernel's tiles; storage type, mask, causality
   and the variants select its code). Other problem fields are run-time arguments. */
struct clattn_fit_entry {
    const clattn_family *family;
    clattn_params params;
    int d, dv, dtype, mask_type, causal;
    int variants;               /* clattn_problem_variants */
    int ok;
    char why[1024];             /* a rejection's reason */
    struct clattn_fit_entry *next;
};

static void fill_key(struct clattn_fit_entry *e, const clattn_family *family, const clattn_problem *p,
                     const clattn_params *params)
{
    memset(e, 0, sizeof *e);
    e->family = family;
    for (int i = 0; i < family->n_params && i < CLATTN_MAX_PARAMS; i++)
        e->params.v[i] = params->v[i];
    e->d = p->d;
    e->dv = p->dv;
    e->dtype = (int)p->dtype;
    e->mask_type = (int)p->mask_type;
    e->causal = p->causal_bound;
    e->variants = clattn_problem_variants(p);
}

static int same_key(const struct clattn_fit_entry *a, const struct clattn_fit_entry *b)
{
    return a->family == b->family && memcmp(&a->params, &b->params, sizeof a->params) == 0 &&
           a->d == b->d && a->dv == b->dv && a->dtype == b->dtype && a->mask_type == b->mask_type &&
           a->causal == b->causal && a->variants == b->variants;
}

static struct clattn_fit_entry *find(const clattn_context *ctx, const clattn_family *family,
                                     const clattn_problem *p, const clattn_params *params)
{
    struct clattn_fit_entry key;
    if (!ctx->caches)
        return NULL;
    fill_key(&key, family, p, params);
    for (struct clattn_fit_entry *e = ctx->caches->fits; e; e = e->next)
        if (same_key(e, &key))
            return e;
    return NULL;
}

clattn_fit clattn_fit_lookup(const clattn_context *ctx, const clattn_family *family,
                             const clattn_problem *p, const clattn_params *params, char *why,
                             size_t why_len)
{
    const struct clattn_fit_entry *e = find(ctx, family, p, params);
    if (!e)
        return CLATTN_FIT_UNKNOWN;
    if (!e->ok && why && why_len)
        snprintf(why, why_len, "failed on this device earlier: %s", e->why);
    return e->ok ? CLATTN_FIT_OK : CLATTN_FIT_REJECTED;
}

int clattn_fit_record(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                      const clattn_params *params, int ok, const char *why)
{
    struct clattn_fit_entry *e = find(ctx, family, p, params);
    if (!e) {
        if (!ctx->caches || !(e = malloc(sizeof *e)))
            return 0;
        fill_key(e, family, p, params);
        e->next = ctx->caches->fits;
        ctx->caches->fits = e;
    }
    e->ok = ok;
    snprintf(e->why, sizeof e->why, "%s", ok || !why ? "" : why);
    return 1;
}

void clattn_fit_release(clattn_caches *c)
{
    while (c && c->fits) {
        struct clattn_fit_entry *next = c->fits->next;
        free(c->fits);
        c->fits = next;
    }
}

clattn_status clattn_kernel_fits(clattn_context *ctx, cl_kernel kernel, size_t work_group,
                                 int *fits, char *why, size_t why_len)
{
    size_t limit = 0;
    cl_ulong local = 0, priv = 0;
    cl_int err = clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit,
                                          &limit, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE)");
    err = clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof local, &local,
                                   NULL);
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "clGetKernelWorkGroupInfo(CL_KERNEL_LOCAL_MEM_SIZE)");
    /* Private memory has no device-wide limit to hold it against; it is named in a rejection, as
       a spill to memory is often what shrank the work-group limit. Not every driver reports it. */
    if (clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_PRIVATE_MEM_SIZE, sizeof priv, &priv,
                                 NULL) != CL_SUCCESS)
        priv = 0;
    *fits = 1;
    if (work_group > limit) {
        snprintf(why, why_len,
                 "the compiled kernel allows %zu work-items per group, the launch needs %zu "
                 "(private memory %llu bytes per work-item)",
                 limit, work_group, (unsigned long long)priv);
        *fits = 0;
    } else if (local > ctx->info.local_mem_bytes) {
        snprintf(why, why_len,
                 "the compiled kernel takes %llu bytes of local memory, the device allows %llu",
                 (unsigned long long)local, (unsigned long long)ctx->info.local_mem_bytes);
        *fits = 0;
    }
    return CLATTN_SUCCESS;
}
