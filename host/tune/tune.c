/* The tuner: for one problem shape, finds the fastest correct parameters of each kernel family the
 * path uses, one family at a time (the others at their current best), within a time budget.
 *
 * Where the search space comes from: each family's own table (clattn_param_def candidates and its
 * valid() constraints); nothing here knows a family by name. The families to tune are those the
 * shape's plan runs (host/attention/attention.h), so a new kernel family is tuned as soon as its path plans it.
 *
 * A candidate is a plan with its family's parameters forced (clattn_plan_config), then
 *   1. run on a smaller problem of the same shape class and compared with clattn_attention_reference,
 *   2. run once at full size (the warm-up, which also builds it) and compared with the output of the
 *      defaults (so a family the small problem does not exercise is still checked),
 *   3. timed: median of the repeats, cut short once it is clearly slower than the best so far.
 * The winner of each family is timed once more side by side with the default (runs alternating),
 * and kept only if it wins by 3%, so that drift in the machine's speed cannot pass for a gain.
 * A candidate that fails any step is counted as failed and never chosen.
 *
 * The search within one family: tune_search.c.
 *
 * Candidates run on a private context on the caller's queue, so their programs and scratch are
 * freed afterwards and never reach the binary cache. */
#include "host/tune/tune.h"
#include "host/tune/tune_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUDGET_S 60.0
#define DEFAULT_REPEATS 5
#define DEFAULT_SEED 0x636c6174746e31ULL
#define MAX_REFERENCE_MACS 4e8     /* about a second of the double-precision reference */

typedef clattn_tuner tuner;
typedef clattn_tune_search search;

static int wanted(const tuner *t, const clattn_family *f)
{
    const char *list = t->opt.families;
    size_t n = strlen(f->name);
    if (!list || !*list)
        return 1;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, f->name, n))
            return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}



/* Multiply-adds of the reference on c, in double on the host. */
static double reference_cost(const clattn_attention_desc *c)
{
    return (double)c->batch * c->heads_q * c->seq_q * c->seq_kv * (c->head_dim + c->head_dim_v);
}

/* The small problem of the same shape class that candidates are checked against the reference on:
   the fewest query rows of the Lq class (all of them below 129) and the fewest keys of the Lk
   bucket (not a multiple of any tile); the batch and heads as given, so that the path splits (or
   not) as at full size, unless the reference would take too long, then fewer of them. */
static void check_desc(const clattn_problem *p, clattn_attention_desc *c)
{
    int bucket = clattn_tune_lk_bucket(p->Lk);
    clattn_problem_shape_desc(p, c);
    c->seq_q = p->Lq > 129 ? 129 : p->Lq;
    c->seq_kv = bucket > 2 && p->Lk > bucket / 2 + 1 ? bucket / 2 + 1 : p->Lk;
    while (reference_cost(c) > MAX_REFERENCE_MACS && c->batch > 1)
        c->batch = (c->batch + 1) / 2;
    while (reference_cost(c) > MAX_REFERENCE_MACS && c->heads_kv > 1) {
        c->heads_kv = (c->heads_kv + 1) / 2;
        c->heads_q = c->heads_kv * p->group;
    }
}

/* Fills t->rep->families from the plan of the timing problem at every family's defaults, running it
   once (which also builds its programs and gives the output every candidate must reproduce). */
static clattn_status discover(tuner *t)
{
    const clattn_plan_config defaults = {NULL, {{0}}, 1};
    clattn_context *pc = t->rig.pc;
    double ms;
    double t0 = clattn_tune_now();
    clattn_status st = clattn_workload_time(pc, &t->rig.timing, &defaults, t->rig.events, &ms);
    if (st == CLATTN_SUCCESS) {
        pthread_mutex_lock(&pc->lock);
        st = clattn_plan_resolve(pc, &t->rig.timing.p, 0, &defaults, &t->plan);
        if (st == CLATTN_SUCCESS)
            st = clattn_plan_resolve(pc, &t->rig.check.p, 0, &defaults, &t->check_plan);
        pthread_mutex_unlock(&pc->lock);
    }
    if (st != CLATTN_SUCCESS)
        return clattn_fail(t->ctx, st, "the path fails with its default parameters: %s",
                           pc->last_error);
    t->est_cost = clattn_tune_now() - t0;
    st = clattn_workload_read(pc, &t->rig.timing, t->rig.timing.expected);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(t->ctx, st, "%s", pc->last_error);
    t->rig.timing.has_expected = 1;
    for (int i = 0; i < t->plan.n_steps && t->rep->n_families < CLATTN_TUNE_MAX_FAMILIES; i++)
        if (wanted(t, t->plan.step[i].family)) {
            clattn_tune_family_report *fr = &t->rep->families[t->rep->n_families++];
            snprintf(fr->family, sizeof fr->family, "%s", t->plan.step[i].family->name);
            fr->default_ms = fr->best_ms = -1;
        }
    return CLATTN_SUCCESS;
}

/* The step of plan that runs the family named, or NULL. */
static const clattn_plan_step *plan_step(const clattn_plan *plan, const char *name)
{
    for (int i = 0; i < plan->n_steps; i++)
        if (!strcmp(plan->step[i].family->name, name))
            return &plan->step[i];
    return NULL;
}

/* The search proper, on t's rig (its problems made): every family of the plan in turn, then the
   winners together, filed into ctx's table and saved. */
static clattn_status tune_families(tuner *t)
{
    clattn_context *ctx = t->ctx;
    clattn_tune_report *rep = t->rep;
    search *s = NULL;
    clattn_status st;
    size_t most = t->rig.timing.out_elems > t->rig.check.out_elems ? t->rig.timing.out_elems
                                                                 : t->rig.check.out_elems;
    t->rig.got = malloc(most * sizeof(float) + 1);
    if (!t->rig.got) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        goto out;
    }
    if ((st = discover(t)) != CLATTN_SUCCESS)
        goto out;
    rep->default_ms = rep->best_ms = -1;
    if (rep->n_families == 0)
        snprintf(rep->note, sizeof rep->note, "no kernel family of the path matches '%.400s'",
                 t->opt.families ? t->opt.families : "");

    s = calloc((size_t)(rep->n_families ? rep->n_families : 1), sizeof *s);
    if (!s) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        goto out;
    }
    for (int i = 0; i < rep->n_families; i++) {
        search *si = &s[i];
        /* the problems the two plans run the family on: what candidates must fit, and what the
           winner is filed under (the timing one) */
        const clattn_plan_step *ts = plan_step(&t->plan, rep->families[i].family);
        const clattn_plan_step *cs = plan_step(&t->check_plan, rep->families[i].family);
        si->f = ts->family;
        si->p = &ts->p;
        si->check_p = cs ? &cs->p : NULL;
        si->fr = &rep->families[i];
        si->index = i;
        si->max = t->opt.max_candidates;
        /* an equal share of what is left; what a family leaves unused goes to the next */
        double left = t->deadline - clattn_tune_now();
        si->deadline = clattn_tune_now() + (left > 0 ? left : 0) / (rep->n_families - i);
        if ((st = clattn_tune_search_family(t, si, i ? s[i - 1].best_ms : -1)) != CLATTN_SUCCESS)
            goto out;
        if (si->best_ms >= 0) {
            clattn_params_string(si->f, &si->best_pr, si->fr->best_params,
                                 sizeof si->fr->best_params);
            si->fr->best_ms = si->best_ms;
            /* later families run with this one's winner */
            if ((st = clattn_tuning_put(t->rig.pc, si->f, si->p, &si->best_pr,
                                        si->best_ms, si->fr->default_ms)) != CLATTN_SUCCESS)
                goto out;
        }
        clattn_tune_search_free(si);
    }

    /* the whole call with every winner, through the lookups as users will get it, checked, then
       timed side by side with every family at its defaults */
    if (rep->n_families) {
        clattn_plan_config defaults = {NULL, {{0}}, 1}, tuned = {NULL, {{0}}, 0};
        char why[256];
        int ok = clattn_tune_check(&t->rig, &tuned, NULL, why, sizeof why);
        if (!ok) {
            snprintf(rep->note, sizeof rep->note, "the winners fail together, nothing kept: %s", why);
            goto out;
        }
        int changed = 0;
        for (int i = 0; i < rep->n_families; i++)
            changed |= s[i].best_ms >= 0 && memcmp(&s[i].best_pr, &s[i].default_pr,
                                                   sizeof s[i].best_pr) != 0;
        if (!changed) {
            rep->best_ms = rep->default_ms = rep->families[0].default_ms;   /* the same call */
        } else if ((st = clattn_tune_paired(&t->rig, &defaults, &tuned, &rep->default_ms,
                                            &rep->best_ms)) != CLATTN_SUCCESS) {
            st = clattn_fail(ctx, st, "%s", t->rig.pc->last_error);
            goto out;
        }
    }
    for (int i = 0; i < rep->n_families; i++)
        if (s[i].best_ms >= 0 &&
            (st = clattn_tuning_put(ctx, s[i].f, s[i].p, &s[i].best_pr, s[i].best_ms,
                                    s[i].fr->default_ms)) != CLATTN_SUCCESS)
            goto out;
    if (!t->opt.no_save && rep->n_families) {
        char why[CLATTN_ERROR_LEN - 128];
        if (clattn_tuning_save(ctx, &rep->saved, why, sizeof why) != CLATTN_SUCCESS)
            clattn_warn(ctx, "tuning results kept in this context only: %s",
                        why);
        if (!rep->saved && !rep->note[0])
            snprintf(rep->note, sizeof rep->note, "not saved: %.490s", why);
    }
    if (!rep->note[0] && clattn_tune_now() > t->deadline)
        snprintf(rep->note, sizeof rep->note, "the budget of %.0f s ended the search",
                 t->opt.budget_s);
out:
    for (int i = 0; s && i < rep->n_families; i++)
        clattn_tune_search_free(&s[i]);
    free(s);
    return st;
}

/* The options with their defaults, the budget's clock started. */
static void tuner_start(tuner *t, clattn_context *ctx, const clattn_tune_options *opt,
                        clattn_tune_report *rep)
{
    memset(t, 0, sizeof *t);
    memset(rep, 0, sizeof *rep);
    t->ctx = ctx;
    t->rep = rep;
    if (opt)
        t->opt = *opt;
    if (!(t->opt.budget_s > 0))
        t->opt.budget_s = DEFAULT_BUDGET_S;
    if (t->opt.repeats <= 0)
        t->opt.repeats = DEFAULT_REPEATS;
    t->rig.repeats = t->opt.repeats;
    if (t->opt.max_candidates <= 0)
        t->opt.max_candidates = 1 << 30;
    t->rng = t->opt.seed ? t->opt.seed : DEFAULT_SEED;
    t->start = clattn_tune_now();
    t->deadline = t->start + t->opt.budget_s;
}

/* The private context the candidates run on. */
static clattn_status tuner_open(tuner *t)
{
    clattn_context *ctx = t->ctx;
    if (!ctx->info.compiler_available)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "device '%s' cannot compile kernels, so "
                           "candidates cannot be built: tune on a device that can",
                           ctx->info.name);
    clattn_status st = clattn_private_context(ctx, &t->rig.pc);
    if (st != CLATTN_SUCCESS)
        return st;
    t->rig.events = t->rig.pc->queue_profiling;
    t->rep->timed_with_events = t->rig.events;
    return CLATTN_SUCCESS;
}

static void tuner_close(tuner *t)
{
    free(t->rig.got);
    clattn_workload_release(&t->rig.timing);
    clattn_workload_release(&t->rig.check);
    if (t->rig.pc)
        clattn_context_close_cached(t->rig.pc);
    t->rep->elapsed_s = clattn_tune_now() - t->start;
}

clattn_status clattn_tune_locked(clattn_context *ctx, const clattn_attention_desc *desc_in,
                                 const clattn_tune_options *opt, clattn_tune_report *rep)
{
    tuner t;
    clattn_attention_desc desc = *desc_in, cdesc;
    clattn_problem p;
    char err[512];
    clattn_status st;

    tuner_start(&t, ctx, opt, rep);
    /* the shape class is what is tuned: no mask, no probs; int8 K/V as their plain twin, whose
       tuned parameters an int8 call takes through the nearest-class lookup (the workloads make
       their own tensors and have no scales) */
    desc.kv_storage = CLATTN_KV_SAME;
    desc.k_scale = desc.v_scale = NULL;
    desc.k_scale_host = desc.v_scale_host = NULL;
    desc.mask_type = CLATTN_MASK_NONE;
    desc.mask_batch_stride = desc.mask_head_stride = desc.mask_row_stride = 0;
    desc.mask_rows_broadcast = 0;
    desc.path = clattn_path_resolve(desc.path, 0);
    rep->path = desc.path;
    if (clattn_problem_init(&desc, &p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (p.B == 0 || p.Lq == 0) {
        snprintf(rep->note, sizeof rep->note, "an empty problem runs no kernel: nothing to tune");
        return CLATTN_SUCCESS;
    }
    if ((st = tuner_open(&t)) != CLATTN_SUCCESS)
        return st;
    check_desc(&p, &cdesc);
    if ((st = clattn_workload_create(ctx, &desc, t.rng, 0, &t.rig.timing)) == CLATTN_SUCCESS &&
        (st = clattn_workload_create(ctx, &cdesc, t.rng ^ 1, 1, &t.rig.check)) == CLATTN_SUCCESS &&
        (st = clattn_workload_reference(ctx, &t.rig.check)) == CLATTN_SUCCESS)
        st = tune_families(&t);
    tuner_close(&t);
    return st;
}

/* The check problem of a ragged batch: the same tables and bounds (so the same shape class, plan
   and splits), each sequence cut to at most CHECK_Q queries and CHECK_K keys, so that the reference
   stays quick. */
#define CHECK_Q 16
#define CHECK_K 300
static clattn_status varlen_check_tables(const clattn_varlen_problem *vp, const clattn_varlen_desc *d,
                                         clattn_varlen_desc *c, int **owned)
{
    const int B = vp->p.B;
    int *m = malloc(((size_t)B + 1) * 2 * sizeof(int) + 1);
    if (!m)
        return CLATTN_OUT_OF_MEMORY;
    *owned = m;
    *c = *d;
    int *cq = m, *ck = m + B + 1;
    cq[0] = ck[0] = 0;
    for (int b = 0; b < B; b++) {
        int lq = d->cu_seqlens_q_host[b + 1] - d->cu_seqlens_q_host[b];
        int lk = vp->paged ? d->seqlens_k_host[b] : d->cu_seqlens_k_host[b + 1] - d->cu_seqlens_k_host[b];
        lk = lk < CHECK_K ? lk : CHECK_K;
        lq = lq < CHECK_Q ? lq : CHECK_Q;
        lq = lq < lk || lk == 0 ? lq : lk;   /* no more queries than keys: every row sees one */
        cq[b + 1] = cq[b] + lq;
        ck[b + 1] = ck[b] + lk;
        if (vp->paged)
            ck[b] = lk;                       /* seqlens_k, in place of the prefix sums */
    }
    c->cu_seqlens_q_host = cq;
    c->total_q = cq[B];
    if (vp->paged) {
        c->seqlens_k_host = ck;
    } else {
        c->cu_seqlens_k_host = ck;
        c->total_k = ck[B];
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_tune_varlen_locked(clattn_context *ctx, const clattn_varlen_desc *desc_in,
                                        const clattn_tune_options *opt, clattn_tune_report *rep)
{
    tuner t;
    clattn_varlen_desc desc = *desc_in, cdesc;
    clattn_varlen_problem vp;
    char err[512];
    clattn_status st;
    int *owned = NULL;

    tuner_start(&t, ctx, opt, rep);
    rep->path = CLATTN_PATH_FUSED;
    /* int8 K/V as the plain twin, as clattn_tune does */
    desc.kv_storage = CLATTN_KV_SAME;
    desc.k_scale = desc.v_scale = NULL;
    desc.k_scale_host = desc.v_scale_host = NULL;
    desc.check_indices = 0;
    if (clattn_varlen_problem_init(&desc, &vp, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (vp.p.B == 0 || vp.t.total_q == 0 || vp.p.Lq == 0) {
        snprintf(rep->note, sizeof rep->note, "an empty batch runs no kernel: nothing to tune");
        return CLATTN_SUCCESS;
    }
    if ((st = tuner_open(&t)) != CLATTN_SUCCESS)
        return st;
    if ((st = clattn_workload_create_varlen(ctx, &desc, t.rng, 0, &t.rig.timing)) == CLATTN_SUCCESS) {
        if (varlen_check_tables(&vp, &t.rig.timing.vdesc, &cdesc, &owned) != CLATTN_SUCCESS)
            st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
    }
    if (st == CLATTN_SUCCESS &&
        (st = clattn_workload_create_varlen(ctx, &cdesc, t.rng ^ 1, 1, &t.rig.check)) == CLATTN_SUCCESS &&
        (st = clattn_workload_reference(ctx, &t.rig.check)) == CLATTN_SUCCESS)
        st = tune_families(&t);
    free(owned);
    tuner_close(&t);
    return st;
}

clattn_status clattn_tune_varlen(clattn_context *ctx, const clattn_varlen_desc *desc,
                                 const clattn_tune_options *opt, clattn_tune_report *report)
{
    clattn_tune_report scratch;
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = desc ? clattn_tune_varlen_locked(ctx, desc, opt, report ? report : &scratch)
                            : clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc is NULL");
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

clattn_status clattn_tune(clattn_context *ctx, const clattn_attention_desc *desc,
                          const clattn_tune_options *opt, clattn_tune_report *report)
{
    clattn_tune_report scratch;
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = desc ? clattn_tune_locked(ctx, desc, opt, report ? report : &scratch)
                            : clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc is NULL");
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
