/* CLATTN_AUTOTUNE=1: a shape class whose lookups found no exact tuning entry is tuned right after
 * its first call (clattn_attention's hook), within CLATTN_AUTOTUNE_BUDGET seconds (default 10), and
 * the winners are saved like clattn_tune's. Each class is tried once per context, whatever comes of
 * it; a failure is a warning in last_error, never the call's. */
#include "host/caches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clattn_autotune_after_call(clattn_context *ctx, const clattn_problem *p, int probs)
{
    clattn_caches *c = ctx->caches;
    if (!c || !c->autotune_pending)
        return;
    c->autotune_pending = 0;
    if (!c->autotune || c->in_tuner || !c->tuning_enabled)
        return;
    /* the class whose lookup missed, as the path looked it up (the path may reshape p: the
       unfused decode fold); the tuner files its winners under that same reshaping */
    const clattn_tune_key key = c->pending_key;
    clattn_path path = p->path != CLATTN_PATH_AUTO ? p->path
                                                   : probs ? CLATTN_PATH_UNFUSED : CLATTN_PATH_FUSED;
    for (clattn_autotune_class *a = c->autotuned; a; a = a->next)
        if (a->path == path && clattn_tuning_same_class(&a->key, &key))
            return;              /* tried once in this context already, whatever came of it */
    clattn_autotune_class *a = calloc(1, sizeof *a);
    if (!a)
        return;
    a->path = path;
    a->key = key;
    a->next = c->autotuned;
    c->autotuned = a;

    clattn_attention_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.batch = p->B;
    desc.heads_q = p->Hq;
    desc.heads_kv = p->Hkv;
    desc.seq_q = p->Lq;
    desc.seq_kv = p->Lk;
    desc.head_dim = p->d;
    desc.head_dim_v = p->dv;
    desc.scale = p->scale;
    desc.dtype = p->dtype;
    desc.layout = p->layout;
    desc.causal = p->causal;
    desc.path = path;
    clattn_tune_options opt;
    clattn_tune_report rep;
    memset(&opt, 0, sizeof opt);
    opt.budget_s = c->autotune_budget_s;
    clattn_status st = clattn_tune_locked(ctx, &desc, &opt, &rep);
    if (st != CLATTN_SUCCESS) {
        char why[CLATTN_ERROR_LEN - 64];
        snprintf(why, sizeof why, "%.4000s", ctx->last_error);
        clattn_fail(ctx, st, "warning: CLATTN_AUTOTUNE could not tune this shape: %s", why);
    }
}
