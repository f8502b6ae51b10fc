/* Automatic tuning: a context made with options.autotune (CLATTN_AUTOTUNE=1) has this as its
 * after_call hook. A call whose plan took some parameters from no exact tuning entry has its shape
 * class tuned right after it, within the settings' budget (default 10 s), and the winners are saved
 * like clattn_tune's. Each class is tried once per context, whatever comes of it; a failure is a
 * warning, never the call's. */
#include "host/tune/tune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clattn_autotune_after_call(clattn_context *ctx, const clattn_plan *plan)
{
    clattn_caches *c = ctx->caches;
    /* a private context (the tuner's own) never tunes: that would recurse */
    if (ctx->settings.private_context || !c || !c->tuning_enabled || !clattn_plan_untuned(plan))
        return;
    /* The tuner's workloads have no int8 K/V (their scales are the caller's buffers): such a class
       takes its plain twin's tuned parameters (the nearest-class lookup) instead. */
    if (plan->p.kv_int8)
        return;
    /* the class as the path looks it up (a step may run a reshaped problem: the unfused decode
       fold); the tuner files its winners under that same reshaping */
    const clattn_plan_step *miss = NULL;
    for (int i = 0; i < plan->n_steps && !miss; i++)
        if (plan->step[i].source != CLATTN_SOURCE_TUNED_EXACT &&
            plan->step[i].source != CLATTN_SOURCE_FORCED)
            miss = &plan->step[i];
    clattn_tune_key key;
    if (!miss || clattn_tuning_key(NULL, &miss->p, &key))
        return;
    for (clattn_autotune_class *a = c->autotuned; a; a = a->next)
        if (a->path == plan->path && clattn_tuning_same_class(&a->key, &key))
            return;              /* tried once in this context already, whatever came of it */
    clattn_autotune_class *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->path = plan->path;
    a->key = key;
    a->next = c->autotuned;
    c->autotuned = a;

    clattn_attention_desc desc;
    clattn_problem_shape_desc(&plan->p, &desc);
    desc.path = plan->path;
    clattn_tune_options opt;
    clattn_tune_report rep;
    memset(&opt, 0, sizeof opt);
    opt.budget_s = c->autotune_budget_s;
    /* the call succeeded, so its last_error stays what it was: the tuner's failure is a warning */
    char before[CLATTN_ERROR_LEN], why[CLATTN_ERROR_LEN - 64];
    clattn_context_last_error_copy(ctx, before, sizeof before);
    clattn_status st = clattn_tune_locked(ctx, &desc, &opt, &rep);
    if (st != CLATTN_SUCCESS) {
        clattn_context_last_error_copy(ctx, why, sizeof why);
        clattn_fail(ctx, st, "%s", before);
        clattn_warn(ctx, "automatic tuning could not tune this shape: %s", why);
    }
}
