/* Kernel parameters: defaults per device class, the -D option strings, and the lookup that the tuning
 * cache plugs into. The options string is also the program-cache key. */
#include "host/internal.h"

#include <stdio.h>
#include <string.h>

void clattn_params_defaults(const clattn_family *family, clattn_device_class cls, clattn_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < family->n_params; i++)
        out->v[i] = family->params[i].default_value[cls];
}

int clattn_param_index(const clattn_family *family, const char *name)
{
    for (int i = 0; i < family->n_params; i++)
        if (strcmp(family->params[i].name, name) == 0)
            return i;
    return -1;
}

static int appendf(char *buf, size_t len, const char *fmt, int value)
{
    size_t used = strlen(buf);
    int n = snprintf(buf + used, len - used, fmt, value);
    return n < 0 || (size_t)n >= len - used;
}

int clattn_params_defines(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len)
{
    for (int i = 0; i < family->n_params; i++) {
        char fmt[64];
        snprintf(fmt, sizeof fmt, " -D%s=%%d", family->params[i].name);
        if (appendf(buf, len, fmt, params->v[i]))
            return 1;
    }
    return 0;
}

int clattn_problem_defines(const clattn_problem *p, char *buf, size_t len)
{
    return appendf(buf, len, " -DUSE_F16=%d", p->dtype == CLATTN_F16) ||
           appendf(buf, len, " -DMASK_TYPE=%d", (int)p->mask_type) ||
           appendf(buf, len, " -DCAUSAL=%d", p->causal != CLATTN_CAUSAL_NONE);
}

/* The first valid point of the search space in odometer order, for problems the defaults cannot
   serve (say, a head_dim whose tiles overflow local memory with the default block sizes). */
static int first_valid(const clattn_family *family, const clattn_device_info *dev,
                       const clattn_problem *p, clattn_params *out)
{
    int idx[CLATTN_MAX_PARAMS] = {0};
    char why[256];
    for (long step = 0; step < 1000000; step++) {
        for (int i = 0; i < family->n_params; i++)
            out->v[i] = family->params[i].candidates[idx[i]];
        if (family->valid(out, dev, p, why, sizeof why))
            return 1;
        int i = 0;
        while (i < family->n_params && ++idx[i] == family->params[i].n_candidates)
            idx[i++] = 0;
        if (i == family->n_params)
            return 0;
    }
    return 0;
}

clattn_status clattn_params_lookup(clattn_context *ctx, const clattn_family *family,
                                   const clattn_problem *p, clattn_params *out)
{
    char why[256] = "";
    if (clattn_tuning_lookup(ctx, family, p, out) && family->valid(out, &ctx->info, p, why, sizeof why))
        return CLATTN_SUCCESS;
    clattn_params_defaults(family, ctx->info.cls, out);
    if (family->valid(out, &ctx->info, p, why, sizeof why))
        return CLATTN_SUCCESS;
    if (first_valid(family, &ctx->info, p, out))
        return CLATTN_SUCCESS;
    return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                       "no %s kernel configuration fits device '%s' for d=%d dv=%d (%s)", family->name,
                       ctx->info.name, p->d, p->dv, why);
}
