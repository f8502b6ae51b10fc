/* Plans: the AUTO rule, resolving a checked problem into the launches it takes, executing them, and
 * saying in words what a call runs (clattn_plan_describe, CLATTN_LOG=plan). */
#include "host/attention/attention.h"

#include <stdio.h>
#include <string.h>

const char *clattn_param_source_name(clattn_param_source source)
{
    switch (source) {
    case CLATTN_SOURCE_TUNED_EXACT: return "tuned, exact shape class";
    case CLATTN_SOURCE_TUNED_NEAREST: return "tuned, nearest shape class";
    case CLATTN_SOURCE_DEFAULT: return "device-class default";
    case CLATTN_SOURCE_FALLBACK: return "fallback: nearest valid to the defaults";
    case CLATTN_SOURCE_FORCED: return "forced";
    }
    return "unknown";
}

clattn_path clattn_path_resolve(clattn_path requested, int want_probs)
{
    if (requested != CLATTN_PATH_AUTO)
        return requested;
    return want_probs ? CLATTN_PATH_UNFUSED : CLATTN_PATH_FUSED;
}

/* The parameters alone, as the paths choose them. */
static clattn_status resolve_once(clattn_context *ctx, const clattn_problem *p, int want_probs,
                                  const clattn_plan_config *cfg, clattn_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->path = clattn_path_resolve(p->path, want_probs);
    plan->p = *p;
    plan->splits = 1;
    if (p->B == 0 || p->Lq == 0)
        return CLATTN_SUCCESS;   /* nothing is read or written */
    if (plan->path == CLATTN_PATH_FUSED)
        return clattn_flash_plan(ctx, p, cfg, plan);
    return clattn_unfused_plan(ctx, p, cfg, plan);
}

/* clattn_step_build_fn for a step of the plan arg. */
static clattn_status build_plan_step(clattn_context *ctx, const clattn_plan_step *step,
                                     const void *arg, cl_kernel *out)
{
    const clattn_plan *plan = arg;
    return clattn_plan_step_kernel(ctx, plan, (int)(step - plan->step), out);
}

/* A plan is resolved only from points whose kernels build and fit their launches here: each step's
   kernel is built and checked now (once per point and context: the verdict is remembered), and a
   step whose point does not run sends the whole plan back to be chosen again, as its parameters
   can change the others' (the fused step's block sets the split count, hence the merge). */
static clattn_status resolve_built(clattn_context *ctx, const clattn_problem *p, int want_probs,
                                   const clattn_plan_config *cfg, clattn_plan *plan)
{
    for (int tries = 0;; tries++) {
        clattn_status st = resolve_once(ctx, p, want_probs, cfg, plan);
        int failed = -1;
        for (int i = 0; st == CLATTN_SUCCESS && i < plan->n_steps && failed < 0; i++) {
            cl_kernel kernel;
            int runs = 0;
            st = clattn_params_try(ctx, &plan->step[i], build_plan_step, plan, &kernel, &runs);
            if (st == CLATTN_SUCCESS && !runs)
                failed = i;
        }
        if (st != CLATTN_SUCCESS || failed < 0)
            return st;
        if (plan->step[failed].source == CLATTN_SOURCE_FORCED || tries == CLATTN_MAX_REJECTIONS)
            return clattn_params_not_run(ctx, &plan->step[failed]);
    }
}

/* AUTO asks for the fused path's speed, not for the fused path: where no fused configuration runs
   on this device (its tiles do not fit: a large head_dim on a small device) the unfused path,
   whose kernels need far less local memory, serves the call instead, with a warning. A path the
   caller named is never changed. */
clattn_status clattn_plan_resolve(clattn_context *ctx, const clattn_problem *p, int want_probs,
                                  const clattn_plan_config *cfg, clattn_plan *plan)
{
    char saved[CLATTN_ERROR_LEN], why[CLATTN_ERROR_LEN];
    clattn_context_last_error_copy(ctx, saved, sizeof saved);
    clattn_status st = resolve_built(ctx, p, want_probs, cfg, plan);
    if (st != CLATTN_UNSUPPORTED || p->path != CLATTN_PATH_AUTO || plan->path != CLATTN_PATH_FUSED ||
        (cfg && cfg->forced_family))
        return st;
    clattn_context_last_error_copy(ctx, why, sizeof why);
    clattn_problem unfused = *p;
    unfused.path = CLATTN_PATH_UNFUSED;
    clattn_status st2 = resolve_built(ctx, &unfused, want_probs, cfg, plan);
    if (st2 != CLATTN_SUCCESS) {
        clattn_fail(ctx, st, "%s", why);   /* the fused path's reason is the one that matters */
        return st;
    }
    clattn_fail(ctx, CLATTN_SUCCESS, "%s", saved);   /* last_error belongs to failed calls only */
    clattn_warn(ctx, "path AUTO: the fused path cannot run here (%s); running the unfused path", why);
    return CLATTN_SUCCESS;
}

clattn_status clattn_plan_enqueue(clattn_context *ctx, const clattn_plan *plan, cl_mem q, cl_mem k,
                                  cl_mem v, cl_mem mask, cl_mem out, cl_mem probs, cl_mem lse)
{
    if (plan->n_steps == 0)
        return CLATTN_SUCCESS;
    if (plan->path == CLATTN_PATH_FUSED)
        return clattn_flash_run(ctx, plan, q, k, v, mask, out, lse);
    return clattn_unfused_run(ctx, plan, q, k, v, mask, out, probs, lse, 0);
}

clattn_status clattn_plan_step_kernel(clattn_context *ctx, const clattn_plan *plan, int i,
                                     cl_kernel *out)
{
    if (i < 0 || i >= plan->n_steps)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "step %d of a plan of %d", i, plan->n_steps);
    const clattn_plan_step *s = &plan->step[i];
    if (s->family == &clattn_family_flash || s->family == &clattn_family_flash_split ||
        s->family == &clattn_family_flash_decode)
        return clattn_flash_kernel(ctx, plan, out);
    if (s->family == &clattn_family_merge)
        return clattn_merge_kernel(ctx, &plan->p, &s->params, 0, 1, out);   /* split partials */
    return clattn_unfused_kernel(ctx, s, out);
}

int clattn_plan_untuned(const clattn_plan *plan)
{
    int n = 0;
    for (int i = 0; i < plan->n_steps; i++)
        n += plan->step[i].source != CLATTN_SOURCE_TUNED_EXACT &&
             plan->step[i].source != CLATTN_SOURCE_FORCED;
    return n;
}

static void appendf(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (n > 0)
        *used += (size_t)n < len - *used ? (size_t)n : len - *used - 1;
}

static const char *dtype_name(clattn_dtype t)
{
    return t == CLATTN_F16 ? "f16" : t == CLATTN_BF16 ? "bf16" : "f32";
}

void clattn_plan_describe_text(const clattn_plan *plan, char *buf, size_t len)
{
    const clattn_problem *p = &plan->p;
    size_t used = 0;
    if (!len)
        return;
    buf[0] = '\0';
    /* a ragged batch: B sequences of at most Lq queries and Lk keys each */
    appendf(buf, len, &used, "%s path for %sB=%d Hq=%d Hkv=%d Lq%s=%d Lk%s=%d d=%d dv=%d %s%s%s",
            plan->path == CLATTN_PATH_FUSED ? "fused" : "unfused",
            p->varlen ? (p->paged ? "paged ragged " : "ragged ") : "", p->B, p->Hq, p->Hkv,
            p->varlen ? "<" : "", p->Lq, p->varlen ? "<" : "", p->Lk,
            p->d, p->dv, dtype_name(p->dtype), p->causal != CLATTN_CAUSAL_NONE ? " causal" : "",
            p->mask_type != CLATTN_MASK_NONE ? " masked" : "");
    if (p->window_lo || (p->causal_bound && p->causal == CLATTN_CAUSAL_NONE))
        appendf(buf, len, &used, " window");
    if (p->softcap > 0.0f)
        appendf(buf, len, &used, " softcap=%g", (double)p->softcap);
    appendf(buf, len, &used, "%s%s%s", p->alibi ? " alibi" : "", p->sinks ? " sinks" : "",
            p->kv_int8 ? " kv=int8" : "");
    if (plan->n_steps == 0)
        appendf(buf, len, &used, ": empty, no kernel runs");
    if (plan->path == CLATTN_PATH_FUSED && plan->splits > 1)
        appendf(buf, len, &used, ", keys split %d ways (%d keys each)", plan->splits,
                plan->split_keys);
    for (int i = 0; i < plan->n_steps; i++) {
        const clattn_plan_step *s = &plan->step[i];
        char params[256];
        clattn_params_string(s->family, &s->params, params, sizeof params);
        appendf(buf, len, &used, "\n  %-11s", s->family->name);
        if (s->p.Hq != p->Hq || s->p.Lq != p->Lq)
            appendf(buf, len, &used, " on Hq=%d Lq=%d (reshaped)", s->p.Hq, s->p.Lq);
        appendf(buf, len, &used, " %s  [%s]", params, clattn_param_source_name(s->source));
    }
}
