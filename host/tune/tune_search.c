/* The tuner's search of one kernel family's space (the family's clattn_param_def candidates and its
 * valid() constraints; nothing here knows a family by name).
 *
 * The defaults first, then one step from them (which also shows what a fresh candidate costs). A
 * space that fits what the budget and the candidate cap still allow is then tried whole, in random
 * order. Otherwise, when there is room for many candidates, a quarter of them sample the space at
 * random; then local search moves the best point one step (to the next larger or smaller candidate
 * value) in one parameter at a time while that helps, and samples afresh when stuck. Points that
 * launch the same work as another (the family's canonical() says which) are never candidates.
 * The winner is timed once more side by side with the default (runs alternating), and kept only if
 * it wins by 3%, so that drift in the machine's speed cannot pass for a gain. */
#include "host/tune/tune.h"
#include "host/tune/tune_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENUMERATED 400000L     /* larger spaces are sampled rather than listed */
#define MIN_ROOM_TO_SAMPLE 48      /* candidates the budget must allow before random sampling */
#define KEEP_DEFAULT_MARGIN 0.97   /* a winner must beat the default by 3%: less is timing noise */

/* Short names within this file. */
typedef clattn_tune_point point;
typedef clattn_tuner tuner;
typedef clattn_tune_search search;

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
    if (!f->valid(&pr, &t->rig.pc->info, s->p, why, sizeof why) ||
        (s->check_p && !f->valid(&pr, &t->rig.pc->info, s->check_p, why, sizeof why)))
        return INVALID;
    if (!f->canonical)
        return CANDIDATE;
    canon = pr;
    f->canonical(&canon, &s->default_pr, &t->rig.pc->info, s->p);
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
    clattn_plan_config cfg = {s->f, *pr, 0};
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

clattn_status clattn_tune_search_family(tuner *t, search *s, double known_ms)
{
    point x, start;
    /* the default first: the baseline every candidate is held against (and, listing the space,
       the point that stands for the launches identical to it) */
    clattn_status st = clattn_params_lookup(t->rig.pc, s->f, s->p, &s->default_pr);
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
        clattn_plan_config a = {s->f, s->default_pr, 0}, b = {s->f, s->best_pr, 0};
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

void clattn_tune_search_free(search *s)
{
    free(s->valid);
    free(s->tried);
    s->valid = NULL;
    s->tried = NULL;
}
