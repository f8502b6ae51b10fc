/* The tuner: for one problem shape, finds the fastest correct parameters of each kernel family the
 * path uses, one family at a time (the others at their current best), within a time budget.
 *
 * Where the search space comes from: each family's own table (clattn_param_def candidates and its
 * valid() constraints); nothing here knows a family by name. The families to tune are those the
 * path consults while running the shape (recorded by clattn_tuning_lookup), so a new kernel family
 * is tuned as soon as its path looks its parameters up.
 *
 * A candidate is forced through ctx->caches->override, then
 *   1. run on a smaller problem of the same shape class and compared with clattn_attention_reference,
 *   2. run once at full size (the warm-up, which also builds it) and compared with the output of the
 *      defaults (so a family the small problem does not exercise is still checked),
 *   3. timed: median of the repeats, cut short once it is clearly slower than the best so far.
 * The winner of each family is timed once more side by side with the default (runs alternating),
 * and kept only if it wins by 3%, so that drift in the machine's speed cannot pass for a gain.
 * A candidate that fails any step is counted as failed and never chosen.
 *
 * Search: the defaults, then one step from them (which also shows what a fresh candidate costs).
 * A space that fits what the budget and the candidate cap still allow is then tried whole, in
 * random order. Otherwise, when there is room for many candidates, a quarter of them sample the
 * space at random; then local search moves the best point one step (to the next larger or smaller
 * candidate value) in one parameter at a time while that helps, and samples afresh when stuck.
 *
 * Candidates run on a private context on the caller's queue, so their programs and scratch are
 * freed afterwards and never reach the binary cache. */
#include "host/caches.h"
#include "host/tune_measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUDGET_S 60.0
#define DEFAULT_REPEATS 5
#define DEFAULT_SEED 0x636c6174746e31ULL
#define MAX_ENUMERATED 400000L     /* larger spaces are sampled rather than listed */
#define MIN_ROOM_TO_SAMPLE 48      /* candidates the budget must allow before random sampling */
#define KEEP_DEFAULT_MARGIN 0.97   /* a winner must beat the default by 3%: less is timing noise */
#define MAX_REFERENCE_MACS 4e8     /* about a second of the double-precision reference */

typedef struct point {
    unsigned char i[CLATTN_MAX_PARAMS];   /* candidate index per parameter */
} point;

typedef struct tuner {
    clattn_context *ctx;                  /* the caller's */
    clattn_tune_rig rig;                  /* the private context and the problems */
    clattn_tune_options opt;
    clattn_tune_report *rep;
    uint64_t rng;
    double start, deadline;
    double est_cost;                      /* seconds one candidate takes, running estimate */
} tuner;

/* The family being tuned and what is known of it. */
typedef struct search {
    const clattn_family *f;
    clattn_tune_family_report *fr;
    int index;
    point *valid;                         /* the listed space, or NULL when sampled */
    long n_valid;
    point *tried;
    int n_tried, cap_tried;
    int max;                              /* candidates allowed, the default included */
    double deadline;
    point best;                           /* where the local search stands */
    clattn_params best_pr, default_pr;
    double best_ms;                       /* < 0: nothing succeeded yet */
    unsigned char rank[CLATTN_MAX_PARAMS][256];    /* position of each candidate in value order */
    unsigned char by_rank[CLATTN_MAX_PARAMS][256]; /* candidate index at each position */
} search;

static void to_params(const clattn_family *f, const point *x, clattn_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < f->n_params; i++)
        out->v[i] = f->params[i].candidates[x->i[i]];
}

/* The point of params, when each value is one of the candidates. */
static int from_params(const clattn_family *f, const clattn_params *pr, point *x)
{
    memset(x, 0, sizeof *x);
    for (int i = 0; i < f->n_params; i++) {
        int found = 0;
        for (int c = 0; c < f->params[i].n_candidates && !found; c++)
            if (f->params[i].candidates[c] == pr->v[i]) {
                x->i[i] = (unsigned char)c;
                found = 1;
            }
        if (!found)
            return -1;
    }
    return 0;
}

enum { INVALID, CANDIDATE, STAND_IN };

/* INVALID unless valid on both problems; STAND_IN when another point stands for the work it
   launches (say, a split occupancy that changes no split count: timing it would time the same
   launch twice); else CANDIDATE. */
static int classify(const tuner *t, const search *s, const point *x)
{
    const clattn_family *f = s->f;
    clattn_params pr, canon;
    char why[256];
    to_params(f, x, &pr);
    if (!f->valid(&pr, &t->rig.pc->info, &t->rig.timing.p, why, sizeof why) ||
        !f->valid(&pr, &t->rig.pc->info, &t->rig.check.p, why, sizeof why))
        return INVALID;
    if (!f->canonical)
        return CANDIDATE;
    canon = pr;
    f->canonical(&canon, &s->default_pr, &t->rig.pc->info, &t->rig.timing.p);
    return memcmp(&canon, &pr, sizeof pr) == 0 ? CANDIDATE : STAND_IN;
}

static int fits(const tuner *t, const search *s, const point *x)
{
    return classify(t, s, x) == CANDIDATE;
}

static int same_point(const search *s, const point *a, const point *b)
{
    for (int i = 0; i < s->f->n_params; i++)
        if (a->i[i] != b->i[i])
            return 0;
    return 1;
}

static int was_tried(const search *s, const point *x)
{
    for (int i = 0; i < s->n_tried; i++)
        if (same_point(s, &s->tried[i], x))
            return 1;
    return 0;
}

static long space_size(const clattn_family *f)
{
    long n = 1;
    for (int i = 0; i < f->n_params; i++) {
        if (n > MAX_ENUMERATED * 1000L)
            return n;
        n *= f->params[i].n_candidates;
    }
    return n;
}

/* Lists the valid points (odometer order) when the space is small enough to list. */
static clattn_status list_space(tuner *t, search *s)
{
    const clattn_family *f = s->f;
    s->fr->space = space_size(f);
    s->fr->valid = -1;
    for (int i = 0; i < f->n_params; i++)
        if (f->params[i].n_candidates < 1 || f->params[i].n_candidates > 255)
            return clattn_fail(t->ctx, CLATTN_UNSUPPORTED, "%s: parameter %s has %d candidates; "
                               "the tuner takes 1 to 255", f->name, f->params[i].name,
                               f->params[i].n_candidates);
    if (s->fr->space > MAX_ENUMERATED)
        return CLATTN_SUCCESS;
    s->valid = malloc((size_t)s->fr->space * sizeof *s->valid);
    if (!s->valid)
        return clattn_fail(t->ctx, CLATTN_OUT_OF_MEMORY, "out of host memory listing %s's space",
                           f->name);
    point x;
    memset(&x, 0, sizeof x);
    for (long step = 0; step < s->fr->space; step++) {
        if (fits(t, s, &x))
            s->valid[s->n_valid++] = x;
        int i = 0;
        while (i < f->n_params && ++x.i[i] == f->params[i].n_candidates)
            x.i[i++] = 0;
    }
    s->fr->valid = s->n_valid;
    return CLATTN_SUCCESS;
}

/* Value order per parameter, for the local search's "one step larger / smaller". */
static void rank_candidates(search *s)
{
    for (int i = 0; i < s->f->n_params; i++) {
        const clattn_param_def *d = &s->f->params[i];
        for (int a = 0; a < d->n_candidates; a++) {
            int r = 0;
            for (int b = 0; b < d->n_candidates; b++)
                r += d->candidates[b] < d->candidates[a] ||
                     (d->candidates[b] == d->candidates[a] && b < a);
            s->rank[i][a] = (unsigned char)r;
            s->by_rank[i][r] = (unsigned char)a;
        }
    }
}

/* A random untried valid point; 0 when none was found. */
static int random_point(tuner *t, search *s, point *out)
{
    for (int attempt = 0; attempt < 4096; attempt++) {
        point x;
        if (s->valid) {
            if (s->n_valid == 0)
                return 0;
            x = s->valid[clattn_tune_rng(&t->rng) % (uint64_t)s->n_valid];
        } else {
            memset(&x, 0, sizeof x);
            for (int i = 0; i < s->f->n_params; i++)
                x.i[i] = (unsigned char)(clattn_tune_rng(&t->rng) %
                                         (uint64_t)s->f->params[i].n_candidates);
            if (!fits(t, s, &x))
                continue;
        }
        if (!was_tried(s, &x)) {
            *out = x;
            return 1;
        }
    }
    /* the listed space may be nearly exhausted: take the first untried point */
    for (long i = 0; s->valid && i < s->n_valid; i++)
        if (!was_tried(s, &s->valid[i])) {
            *out = s->valid[i];
            return 1;
        }
    return 0;
}

/* An untried valid neighbour of the best point (one parameter one step in value order, or further
   across values that launch the same work as the best's), chosen at random among them; 0 when
   there is none. */
static int neighbour(tuner *t, search *s, point *out)
{
    point cands[2 * CLATTN_MAX_PARAMS];
    int n = 0;
    for (int i = 0; i < s->f->n_params; i++)
        for (int dir = -1; dir <= 1; dir += 2) {
            point x = s->best;
            for (int r = s->rank[i][s->best.i[i]] + dir; r >= 0 && r < s->f->params[i].n_candidates;
                 r += dir) {
                x.i[i] = s->by_rank[i][r];
                int kind = classify(t, s, &x);
                if (kind == CANDIDATE && !was_tried(s, &x))
                    cands[n++] = x;
                if (kind != STAND_IN)
                    break;
            }
        }
    if (n == 0)
        return 0;
    *out = cands[clattn_tune_rng(&t->rng) % (uint64_t)n];
    return 1;
}

static clattn_status remember(tuner *t, search *s, const point *x)
{
    if (s->n_tried == s->cap_tried) {
        int cap = s->cap_tried ? 2 * s->cap_tried : 64;
        point *grown = realloc(s->tried, (size_t)cap * sizeof *grown);
        if (!grown)
            return clattn_fail(t->ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        s->tried = grown;
        s->cap_tried = cap;
    }
    s->tried[s->n_tried++] = *x;
    return CLATTN_SUCCESS;
}

static void progress(tuner *t, const search *s, const char *params, double ms)
{
    if (!t->opt.progress)
        return;
    clattn_tune_progress_info info;
    memset(&info, 0, sizeof info);
    info.family = s->f->name;
    info.family_index = s->index;
    info.n_families = t->rep->n_families;
    info.tried = s->fr->tried;
    info.failed = s->fr->failed;
    info.params = params;
    info.candidate_ms = ms;
    info.default_ms = s->fr->default_ms;
    info.best_ms = s->best_ms;
    info.elapsed_s = clattn_tune_now() - t->start;
    info.budget_s = t->opt.budget_s;
    t->opt.progress(t->opt.progress_user, &info);
}

/* Tries pr (at point x, when it is one); keeps it as the best when it is faster. */
static clattn_status try_params(tuner *t, search *s, const clattn_params *pr, const point *x)
{
    clattn_tune_config cfg = {s->f, *pr, 1};
    char params[160], why[256];
    double ms = -1, t0 = clattn_tune_now();
    clattn_status st = x ? remember(t, s, x) : CLATTN_SUCCESS;
    if (st != CLATTN_SUCCESS)
        return st;
    clattn_params_string(s->f, pr, params, sizeof params);
    s->fr->tried++;
    if (clattn_tune_measure(&t->rig, &cfg, s->best_ms, &ms, why, sizeof why)) {
        if (s->best_ms < 0 || ms < s->best_ms) {
            s->best_ms = ms;
            s->best_pr = *pr;
            if (x)
                s->best = *x;
        }
    } else {
        ms = -1;
        if (!s->fr->failed++)
            snprintf(s->fr->first_failure, sizeof s->fr->first_failure, "%.100s: %.150s", params, why);
    }
    /* the running cost estimate leans on recent candidates: compile times vary with the options */
    t->est_cost = 0.5 * t->est_cost + 0.5 * (clattn_tune_now() - t0);
    progress(t, s, params, ms);
    return CLATTN_SUCCESS;
}

static clattn_status try_point(tuner *t, search *s, const point *x)
{
    clattn_params pr;
    to_params(s->f, x, &pr);
    return try_params(t, s, &pr, x);
}

static int may_continue(const tuner *t, const search *s)
{
    return s->fr->tried < s->max && clattn_tune_now() + t->est_cost <= s->deadline;
}

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

/* Searches family s->f; leaves the winner in s->best_pr (the default when nothing beat it).
   known_ms >= 0: the time of the default configuration, measured already (the previous family's
   winner is this family's default configuration). */
static clattn_status search_family(tuner *t, search *s, double known_ms)
{
    point x, start;
    /* the default first: the baseline every candidate is held against (and, listing the space,
       the point that stands for the launches identical to it) */
    clattn_status st = clattn_params_lookup(t->rig.pc, s->f, &t->rig.timing.p, &s->default_pr);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(t->ctx, st, "%s", t->rig.pc->last_error);
    if ((st = list_space(t, s)) != CLATTN_SUCCESS)
        return st;
    rank_candidates(s);
    s->best_ms = -1;
    clattn_params_string(s->f, &s->default_pr, s->fr->default_params, sizeof s->fr->default_params);
    /* (a default outside the candidate lists is measured all the same, and the search starts
       from the first point) */
    int listed = from_params(s->f, &s->default_pr, &start) == 0;
    if (known_ms >= 0) {
        if (listed && (st = remember(t, s, &start)) != CLATTN_SUCCESS)
            return st;
        s->fr->tried++;
        s->best_ms = known_ms;
        s->best_pr = s->default_pr;
        s->best = start;
        progress(t, s, s->fr->default_params, known_ms);
    } else if ((st = try_params(t, s, &s->default_pr, listed ? &start : NULL)) != CLATTN_SUCCESS) {
        return st;
    }
    s->fr->default_ms = s->best_ms;
    int default_ok = s->best_ms >= 0;

    /* One step from the defaults first: the likeliest gain, and it shows what a candidate that must
       be compiled costs, which sizes what follows. */
    if (may_continue(t, s) && neighbour(t, s, &x) && (st = try_point(t, s, &x)) != CLATTN_SUCCESS)
        return st;
    double room = (s->deadline - clattn_tune_now()) / (t->est_cost > 1e-3 ? t->est_cost : 1e-3);
    if (room > s->max - s->fr->tried)
        room = s->max - s->fr->tried;
    long untried = s->valid ? s->n_valid - s->n_tried : -1;
    if (untried >= 0 && untried <= room) {
        /* small enough to try whole, in random order */
        while (may_continue(t, s) && random_point(t, s, &x))
            if ((st = try_point(t, s, &x)) != CLATTN_SUCCESS)
                return st;
    } else {
        /* Sampling pays off when there is room for many candidates; with few, the points next to
           the defaults (chosen by hand for the device class) are the better bet. */
        int sample = room >= MIN_ROOM_TO_SAMPLE ? (int)(room / 4) : 0;
        for (int i = 0; i < sample && may_continue(t, s); i++) {
            if (!random_point(t, s, &x))
                break;
            if ((st = try_point(t, s, &x)) != CLATTN_SUCCESS)
                return st;
        }
        while (may_continue(t, s)) {
            if (s->best_ms < 0 || !neighbour(t, s, &x)) {
                /* a local optimum (or nothing works yet): sample afresh */
                if (!random_point(t, s, &x))
                    break;
            }
            if ((st = try_point(t, s, &x)) != CLATTN_SUCCESS)
                return st;
        }
    }
    if (!default_ok || s->best_ms < 0)
        return CLATTN_SUCCESS;
    if (memcmp(&s->best_pr, &s->default_pr, sizeof s->best_pr) != 0) {
        /* the default and the winner once more, side by side: their first times came minutes
           apart, and the machine's speed may have moved since */
        clattn_tune_config a = {s->f, s->default_pr, 1}, b = {s->f, s->best_pr, 1};
        double ma, mb;
        if ((st = clattn_tune_paired(&t->rig, &a, &b, &ma, &mb)) != CLATTN_SUCCESS)
            return clattn_fail(t->ctx, st, "%s", t->rig.pc->last_error);
        s->fr->default_ms = ma;
        s->best_ms = mb;
    }
    if (s->best_ms > KEEP_DEFAULT_MARGIN * s->fr->default_ms) {
        s->best_pr = s->default_pr;
        s->best_ms = s->fr->default_ms;
    }
    return CLATTN_SUCCESS;
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
    memset(c, 0, sizeof *c);
    c->batch = p->B;
    c->heads_kv = p->Hkv;
    c->heads_q = p->Hq;
    c->seq_q = p->Lq > 129 ? 129 : p->Lq;
    c->seq_kv = bucket > 2 && p->Lk > bucket / 2 + 1 ? bucket / 2 + 1 : p->Lk;
    c->head_dim = p->d;
    c->head_dim_v = p->dv;
    c->scale = p->scale;
    c->dtype = p->dtype;
    c->layout = p->layout;
    c->causal = p->causal;
    c->path = p->path;
    while (reference_cost(c) > MAX_REFERENCE_MACS && c->batch > 1)
        c->batch = (c->batch + 1) / 2;
    while (reference_cost(c) > MAX_REFERENCE_MACS && c->heads_kv > 1) {
        c->heads_kv = (c->heads_kv + 1) / 2;
        c->heads_q = c->heads_kv * p->group;
    }
}

static clattn_path resolve_path(clattn_path path)
{
    return path == CLATTN_PATH_AUTO ? CLATTN_PATH_FUSED : path;
}

/* Fills t->rep->families from the families the path consults for the timing problem, running it
   once with every family at its defaults (this also builds them). */
static clattn_status discover(tuner *t)
{
    clattn_caches *c = t->rig.pc->caches;
    double ms;
    c->recording = 1;
    c->n_seen = 0;
    double t0 = clattn_tune_now();
    clattn_status st = clattn_workload_time(t->rig.pc, &t->rig.timing, t->rig.events, &ms);
    c->recording = 0;
    if (st != CLATTN_SUCCESS)
        return clattn_fail(t->ctx, st, "the path fails with its default parameters: %s",
                           t->rig.pc->last_error);
    t->est_cost = clattn_tune_now() - t0;
    /* the defaults' output at full size: what every candidate must reproduce */
    st = clattn_workload_read(t->rig.pc, &t->rig.timing, t->rig.timing.expected);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(t->ctx, st, "%s", t->rig.pc->last_error);
    t->rig.timing.has_expected = 1;
    for (int i = 0; i < c->n_seen && t->rep->n_families < CLATTN_TUNE_MAX_FAMILIES; i++)
        if (wanted(t, c->seen[i])) {
            clattn_tune_family_report *fr = &t->rep->families[t->rep->n_families++];
            snprintf(fr->family, sizeof fr->family, "%s", c->seen[i]->name);
            fr->default_ms = fr->best_ms = -1;
        }
    return CLATTN_SUCCESS;
}

static const clattn_family *seen_family(const tuner *t, const char *name)
{
    const clattn_caches *c = t->rig.pc->caches;
    for (int i = 0; i < c->n_seen; i++)
        if (!strcmp(c->seen[i]->name, name))
            return c->seen[i];
    return NULL;
}

clattn_status clattn_tune_locked(clattn_context *ctx, const clattn_attention_desc *desc_in,
                                 const clattn_tune_options *opt, clattn_tune_report *rep)
{
    tuner t;
    search *s = NULL;
    clattn_attention_desc desc = *desc_in, cdesc;
    clattn_problem p;
    char err[512];
    clattn_status st;

    memset(&t, 0, sizeof t);
    memset(rep, 0, sizeof *rep);
    t.ctx = ctx;
    t.rep = rep;
    if (opt)
        t.opt = *opt;
    if (!(t.opt.budget_s > 0))
        t.opt.budget_s = DEFAULT_BUDGET_S;
    if (t.opt.repeats <= 0)
        t.opt.repeats = DEFAULT_REPEATS;
    t.rig.repeats = t.opt.repeats;
    if (t.opt.max_candidates <= 0)
        t.opt.max_candidates = 1 << 30;
    t.rng = t.opt.seed ? t.opt.seed : DEFAULT_SEED;
    t.start = clattn_tune_now();
    t.deadline = t.start + t.opt.budget_s;

    /* the shape class is what is tuned: no mask, no probs */
    desc.mask_type = CLATTN_MASK_NONE;
    desc.mask_batch_stride = desc.mask_head_stride = desc.mask_row_stride = 0;
    desc.mask_rows_broadcast = 0;
    desc.path = resolve_path(desc.path);
    rep->path = desc.path;
    if (clattn_problem_init(&desc, &p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (p.B == 0 || p.Lq == 0) {
        snprintf(rep->note, sizeof rep->note, "an empty problem runs no kernel: nothing to tune");
        return CLATTN_SUCCESS;
    }
    if (!ctx->info.compiler_available)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "device '%s' cannot compile kernels, so "
                           "candidates cannot be built: tune on a device that can",
                           ctx->info.name);
    if ((st = clattn_private_context(ctx, &t.rig.pc)) != CLATTN_SUCCESS)
        return st;
    t.rig.events = t.rig.pc->queue_profiling;
    rep->timed_with_events = t.rig.events;
    check_desc(&p, &cdesc);
    if ((st = clattn_workload_create(ctx, &desc, t.rng, 0, &t.rig.timing)) != CLATTN_SUCCESS ||
        (st = clattn_workload_create(ctx, &cdesc, t.rng ^ 1, 1, &t.rig.check)) != CLATTN_SUCCESS ||
        (st = clattn_workload_reference(ctx, &t.rig.check)) != CLATTN_SUCCESS)
        goto out;
    size_t most = t.rig.timing.out_elems > t.rig.check.out_elems ? t.rig.timing.out_elems
                                                                 : t.rig.check.out_elems;
    t.rig.got = malloc(most * sizeof(float) + 1);
    if (!t.rig.got) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        goto out;
    }
    if ((st = discover(&t)) != CLATTN_SUCCESS)
        goto out;
    rep->default_ms = rep->best_ms = -1;
    if (rep->n_families == 0)
        snprintf(rep->note, sizeof rep->note, "no kernel family of the path matches '%.400s'",
                 t.opt.families ? t.opt.families : "");

    s = calloc((size_t)(rep->n_families ? rep->n_families : 1), sizeof *s);
    if (!s) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        goto out;
    }
    for (int i = 0; i < rep->n_families; i++) {
        search *si = &s[i];
        si->f = seen_family(&t, rep->families[i].family);
        si->fr = &rep->families[i];
        si->index = i;
        si->max = t.opt.max_candidates;
        /* an equal share of what is left; what a family leaves unused goes to the next */
        double left = t.deadline - clattn_tune_now();
        si->deadline = clattn_tune_now() + (left > 0 ? left : 0) / (rep->n_families - i);
        if ((st = search_family(&t, si, i ? s[i - 1].best_ms : -1)) != CLATTN_SUCCESS)
            goto out;
        if (si->best_ms >= 0) {
            clattn_params_string(si->f, &si->best_pr, si->fr->best_params,
                                 sizeof si->fr->best_params);
            si->fr->best_ms = si->best_ms;
            /* later families run with this one's winner */
            if ((st = clattn_tuning_put(t.rig.pc, si->f, &t.rig.timing.p, &si->best_pr,
                                        si->best_ms, si->fr->default_ms)) != CLATTN_SUCCESS)
                goto out;
        }
        free(si->valid);
        free(si->tried);
        si->valid = NULL;
        si->tried = NULL;
    }

    /* the whole call with every winner, through the lookups as users will get it, checked, then
       timed side by side with every family at its defaults */
    if (rep->n_families) {
        clattn_tune_config defaults = {NULL, {{0}}, 0}, tuned = {NULL, {{0}}, 1};
        char why[256];
        int ok = clattn_tune_check(&t.rig, &tuned, NULL, why, sizeof why);
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
        } else if ((st = clattn_tune_paired(&t.rig, &defaults, &tuned, &rep->default_ms,
                                            &rep->best_ms)) != CLATTN_SUCCESS) {
            st = clattn_fail(ctx, st, "%s", t.rig.pc->last_error);
            goto out;
        }
    }
    for (int i = 0; i < rep->n_families; i++)
        if (s[i].best_ms >= 0 &&
            (st = clattn_tuning_put(ctx, s[i].f, &t.rig.timing.p, &s[i].best_pr, s[i].best_ms,
                                    s[i].fr->default_ms)) != CLATTN_SUCCESS)
            goto out;
    if (!t.opt.no_save && rep->n_families) {
        char why[CLATTN_ERROR_LEN - 128];
        if (clattn_tuning_save(ctx, &rep->saved, why, sizeof why) != CLATTN_SUCCESS)
            clattn_fail(ctx, CLATTN_IO_ERROR, "warning: tuning results kept in this context only: %s",
                        why);
        if (!rep->saved && !rep->note[0])
            snprintf(rep->note, sizeof rep->note, "not saved: %.490s", why);
    }
    if (!rep->note[0] && clattn_tune_now() > t.deadline)
        snprintf(rep->note, sizeof rep->note, "the budget of %.0f s ended the search",
                 t.opt.budget_s);
out:
    for (int i = 0; s && i < rep->n_families; i++) {
        free(s[i].valid);
        free(s[i].tried);
    }
    free(s);
    free(t.rig.got);
    clattn_workload_release(&t.rig.timing);
    clattn_workload_release(&t.rig.check);
    clattn_context_release(t.rig.pc);
    rep->elapsed_s = clattn_tune_now() - t.start;
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
