/* Which parameters a kernel family runs with, and where they came from: the tuning table's entry
 * (used only when it is a point of the family's space that its constraints accept), else the
 * device-class defaults fitted to the shape, else the valid point nearest them. A point whose
 * kernel failed to build or to fit its launch on this context's device (cache/fit.c, found out by
 * plan.c) counts as not valid: the choice passes it over as it passes over an invalid one. */
#include "host/attention/attention.h"

#include <stdio.h>
#include <string.h>

/* How far pt is from the defaults: |log2(value / default)| summed over the parameters, so halving
   a block is one step whichever block it is. */
static int steps_from(const clattn_family *family, const clattn_params *defaults,
                      const clattn_params *pt)
{
    int steps = 0;
    for (int i = 0; i < family->n_params; i++) {
        int a = pt->v[i] > 0 ? pt->v[i] : 1, b = defaults->v[i] > 0 ? defaults->v[i] : 1;
        for (int lo = a < b ? a : b, hi = a < b ? b : a; lo < hi; lo *= 2)
            steps++;
    }
    return steps;
}

/* The one test a point passes to be chosen: the family's constraints, and no failure of its kernel
   on this device so far. */
static int usable(const clattn_context *ctx, const clattn_family *family, const clattn_params *pt,
                  const clattn_problem *p, char *why, size_t why_len)
{
    return family->valid(pt, &ctx->info, p, why, why_len) &&
           clattn_fit_lookup(ctx, family, p, pt, why, why_len) != CLATTN_FIT_REJECTED;
}

/* Tries every point that changes exactly the parameters sel[0..k) of the defaults, each to another
   of its candidates; keeps the usable one with the fewest steps in *best / *out. */
static void try_changes(const clattn_context *ctx, const clattn_family *family,
                        const clattn_problem *p, const clattn_params *defaults, const int *sel,
                        int k, int *best, clattn_params *out)
{
    int idx[3] = {0, 0, 0};
    char why[256];
    for (;;) {
        clattn_params pt = *defaults;
        int changed = 1;
        for (int j = 0; j < k; j++) {
            pt.v[sel[j]] = family->params[sel[j]].candidates[idx[j]];
            changed &= pt.v[sel[j]] != defaults->v[sel[j]];
        }
        if (changed) {   /* exactly the k selected parameters differ from the defaults */
            int steps = steps_from(family, defaults, &pt);
            if ((*best < 0 || steps < *best) && usable(ctx, family, &pt, p, why, sizeof why)) {
                *best = steps;
                *out = pt;
            }
        }
        int j = 0;
        while (j < k && ++idx[j] == family->params[sel[j]].n_candidates)
            idx[j++] = 0;
        if (j == k)
            return;
    }
}

/* The valid point nearest the defaults, for problems the defaults cannot serve (say, a head_dim
   whose tiles overflow a GPU's local memory): the fewest parameters changed (at most three), then
   the smallest change. Shrinking the blocks keeps the device class's vector width and work
   mapping, where the first valid point of the space would fall to scalar code. One changed
   parameter costs a few dozen valid() calls, three a few thousand. */
static int nearest_valid(const clattn_context *ctx, const clattn_family *family,
                         const clattn_problem *p, const clattn_params *defaults,
                         clattn_params *out)
{
    const int n = family->n_params;
    for (int k = 1; k <= 3 && k <= n; k++) {
        int best = -1, sel[3];
        /* every k-subset of the parameters, in increasing order */
        for (int j = 0; j < k; j++)
            sel[j] = j;
        for (;;) {
            try_changes(ctx, family, p, defaults, sel, k, &best, out);
            int j = k - 1;
            while (j >= 0 && sel[j] == n - k + j)
                j--;
            if (j < 0)
                break;
            sel[j]++;
            for (int m = j + 1; m < k; m++)
                sel[m] = sel[m - 1] + 1;
        }
        if (best >= 0)
            return 1;
    }
    return 0;
}

/* The first valid point of the search space in odometer order: the last resort. When there is
   none, *min_local is the least local memory any point's tiles take (family->local_bytes; 0
   without it), which is what a capped device most often lacks. */
static int first_valid(const clattn_context *ctx, const clattn_family *family,
                       const clattn_problem *p, clattn_params *out, size_t *min_local)
{
    int idx[CLATTN_MAX_PARAMS] = {0};
    char why[256];
    *min_local = 0;
    for (long step = 0; step < 1000000; step++) {
        for (int i = 0; i < family->n_params; i++)
            out->v[i] = family->params[i].candidates[idx[i]];
        if (usable(ctx, family, out, p, why, sizeof why))
            return 1;
        size_t local = family->local_bytes ? family->local_bytes(out, p) : 0;
        if (step == 0 || local < *min_local)
            *min_local = local;
        int i = 0;
        while (i < family->n_params && ++idx[i] == family->params[i].n_candidates)
            idx[i++] = 0;
        if (i == family->n_params)
            return 0;
    }
    return 0;
}

clattn_status clattn_plan_params(clattn_context *ctx, const clattn_family *family,
                                 const clattn_problem *p, const clattn_plan_config *cfg,
                                 clattn_plan_step *step)
{
    char why[256] = "";
    clattn_params *out = &step->params;
    int exact = 0;
    step->family = family;
    step->p = *p;
    if (cfg && cfg->forced_family == family) {
        *out = cfg->forced;
        step->source = CLATTN_SOURCE_FORCED;
        if (clattn_params_in_space(family, out, why, sizeof why) &&
            usable(ctx, family, out, p, why, sizeof why))
            return CLATTN_SUCCESS;
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "forced %s parameters do not fit: %s",
                           family->name, why);
    }
    if (!(cfg && cfg->defaults_only) && clattn_tuning_lookup(ctx, family, p, out, &exact)) {
        /* A tuning file is text anyone may edit: an entry is used only where the tuner could have
           made it, a point of the family's space that its constraints accept. Anything else (a
           zero that valid() would divide by, a VW the kernel has no vector type for) falls back
           as if there were no entry, before any kernel is built with it. */
        if (clattn_params_in_space(family, out, why, sizeof why) &&
            family->valid(out, &ctx->info, p, why, sizeof why)) {
            if (clattn_fit_lookup(ctx, family, p, out, NULL, 0) != CLATTN_FIT_REJECTED) {
                step->source = exact ? CLATTN_SOURCE_TUNED_EXACT : CLATTN_SOURCE_TUNED_NEAREST;
                return CLATTN_SUCCESS;
            }
            /* its kernel failed here: plan.c said so once, when it found out */
        } else {
            clattn_warn(ctx, "the tuning entry for %s is not used (%s); using the defaults",
                        family->name, why);
        }
    }
    step->source = CLATTN_SOURCE_DEFAULT;
    clattn_params_defaults(family, ctx->info.cls, out);
    if (family->fit_defaults)
        family->fit_defaults(out, p);
    if (usable(ctx, family, out, p, why, sizeof why))
        return CLATTN_SUCCESS;
    step->source = CLATTN_SOURCE_FALLBACK;
    clattn_params defaults = *out;
    size_t min_local = 0;
    if (nearest_valid(ctx, family, p, &defaults, out) || first_valid(ctx, family, p, out, &min_local))
        return CLATTN_SUCCESS;
    if (min_local > ctx->info.local_mem_bytes)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                           "no %s kernel configuration fits device '%s' for d=%d dv=%d: its smallest "
                           "tiles need %zu bytes of local memory, the device has %llu", family->name,
                           ctx->info.name, p->d, p->dv, min_local,
                           (unsigned long long)ctx->info.local_mem_bytes);
    return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                       "no %s kernel configuration fits device '%s' for d=%d dv=%d (the defaults: %s)",
                       family->name, ctx->info.name, p->d, p->dv, why);
}

clattn_status clattn_params_lookup(clattn_context *ctx, const clattn_family *family,
                                   const clattn_problem *p, clattn_params *out)
{
    clattn_plan_step step;
    clattn_status st = clattn_plan_params(ctx, family, p, NULL, &step);
    if (st == CLATTN_SUCCESS)
        *out = step.params;
    return st;
}

/* The reason a build failed, from the message it left in last_error ("building F with 'OPTIONS'
   failed (CODE):\n<log>"): the log's first error line, which is what a warning has room for. */
static void build_failure(clattn_context *ctx, char *why, size_t len)
{
    char msg[CLATTN_ERROR_LEN];
    clattn_context_last_error_copy(ctx, msg, sizeof msg);
    const char *log = strchr(msg, '\n');
    const char *err = log ? strstr(log, "error") : NULL;
    if (!err) {
        snprintf(why, len, "its build failed: %.1000s", msg);
        return;
    }
    const char *start = err, *end = strchr(err, '\n');
    while (start > log + 1 && start[-1] != '\n')
        start--;
    snprintf(why, len, "its build failed: %.*s", (int)(end ? end - start : (long)strlen(start)), start);
}

/* The kernel of a point that failed here is not built again, and one that fitted is not queried
   again: the verdict is the context's (cache/fit.c). */
clattn_status clattn_params_try(clattn_context *ctx, const clattn_plan_step *step,
                                clattn_step_build_fn build, const void *arg, cl_kernel *kernel,
                                int *runs)
{
    const clattn_family *family = step->family;
    char why[CLATTN_ERROR_LEN], saved[CLATTN_ERROR_LEN], params[256];
    *runs = 0;
    clattn_fit verdict = clattn_fit_lookup(ctx, family, &step->p, &step->params, why, sizeof why);
    if (verdict == CLATTN_FIT_REJECTED)
        return CLATTN_SUCCESS;
    /* A build that fails writes its log to last_error; the call goes on with another point, and
       last_error is only ever written by a failing call, so it gets its old text back. */
    clattn_context_last_error_copy(ctx, saved, sizeof saved);
    clattn_status st = build(ctx, step, arg, kernel);
    int fits = 0;
    if (st == CLATTN_BUILD_FAILED) {
        build_failure(ctx, why, sizeof why);
        clattn_fail(ctx, CLATTN_SUCCESS, "%s", saved);
    } else if (st != CLATTN_SUCCESS) {
        return st;   /* not the point's doing: no source, no host memory, a lost device */
    } else if (verdict == CLATTN_FIT_OK) {
        *runs = 1;
        return CLATTN_SUCCESS;
    } else {
        size_t wg = family->work_group_size ? family->work_group_size(&step->params) : 0;
        st = clattn_kernel_fits(ctx, *kernel, wg, &fits, why, sizeof why);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    if (!clattn_fit_record(ctx, family, &step->p, &step->params, fits, why) && !fits)
        /* unremembered, the same point would be chosen again */
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "no host memory to remember that %s does not "
                           "run on '%s': %s", family->name, ctx->info.name, why);
    *runs = fits;
    if (!fits) {
        clattn_params_string(family, &step->params, params, sizeof params);
        clattn_warn(ctx, "%s at %s (%s) does not run on '%s' for d=%d dv=%d: %s; using the next "
                    "valid point", family->name, params, clattn_param_source_name(step->source),
                    ctx->info.name, step->p.d, step->p.dv, why);
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_plan_params_built(clattn_context *ctx, const clattn_family *family,
                                       const clattn_problem *p, const clattn_plan_config *cfg,
                                       clattn_step_build_fn build, const void *arg,
                                       clattn_plan_step *step, cl_kernel *kernel)
{
    for (int tries = 0; tries <= CLATTN_MAX_REJECTIONS; tries++) {
        int runs = 0;
        clattn_status st = clattn_plan_params(ctx, family, p, cfg, step);
        if (st == CLATTN_SUCCESS)
            st = clattn_params_try(ctx, step, build, arg, kernel, &runs);
        if (st != CLATTN_SUCCESS || runs)
            return st;
        if (step->source == CLATTN_SOURCE_FORCED)
            break;
    }
    return clattn_params_not_run(ctx, step);
}

clattn_status clattn_params_not_run(clattn_context *ctx, const clattn_plan_step *step)
{
    char why[CLATTN_ERROR_LEN] = "", params[256];
    clattn_fit_lookup(ctx, step->family, &step->p, &step->params, why, sizeof why);
    clattn_params_string(step->family, &step->params, params, sizeof params);
    if (step->source == CLATTN_SOURCE_FORCED)   /* the cause first: tuner reports cut long lines */
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "forced %s parameters %s: %s (device '%s')",
                           step->family->name, params, why, ctx->info.name);
    return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                       "no %s kernel configuration runs on '%s' for d=%d dv=%d: %d points in a row "
                       "failed to build or fit, the last %s (%s)", step->family->name, ctx->info.name,
                       step->p.d, step->p.dv, CLATTN_MAX_REJECTIONS + 1, params, why);
}
