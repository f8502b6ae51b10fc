/* One kernel family's search inside the tuner (tune_search.c): which candidates to try, in what
 * order, within the family's share of the budget. tune.c sets up the problems and walks the
 * families; tune_measure.c builds, checks and times each candidate. */
#ifndef CLATTN_TUNE_SEARCH_H
#define CLATTN_TUNE_SEARCH_H

#include "host/tune/tune_measure.h"

#include <stdint.h>

/* A point of a family's space: the index of each parameter's candidate. */
typedef struct clattn_tune_point {
    unsigned char i[CLATTN_MAX_PARAMS];
} clattn_tune_point;

/* One clattn_tune() call. */
typedef struct clattn_tuner {
    clattn_context *ctx;                  /* the caller's */
    clattn_tune_rig rig;                  /* the private context and the problems */
    clattn_tune_options opt;
    clattn_tune_report *rep;
    uint64_t rng;
    double start, deadline;
    double est_cost;                      /* seconds one candidate takes, running estimate */
    clattn_plan plan;                     /* the timing problem's plan at the defaults: the
                                             families to tune and the problems they run */
    clattn_plan check_plan;               /* the check problem's, for the problems it runs */
} clattn_tuner;

/* The family being tuned and what is known of it. */
typedef struct clattn_tune_search {
    const clattn_family *f;
    const clattn_problem *p;              /* the timing problem as the path looks f up for it */
    const clattn_problem *check_p;        /* the check problem as its plan runs f; NULL: it does
                                             not run f (say, no split there, so no merge) */
    clattn_tune_family_report *fr;
    int index;
    clattn_tune_point *valid;             /* the listed space, or NULL when sampled */
    long n_valid;
    clattn_tune_point *tried;
    int n_tried, cap_tried;
    int max;                              /* candidates allowed, the default included */
    double deadline;
    clattn_tune_point best;               /* where the local search stands */
    clattn_params best_pr, default_pr;
    double best_ms;                       /* < 0: nothing succeeded yet */
    unsigned char rank[CLATTN_MAX_PARAMS][256];    /* position of each candidate in value order */
    unsigned char by_rank[CLATTN_MAX_PARAMS][256]; /* candidate index at each position */
} clattn_tune_search;

/* Searches family s->f (s->f, p, fr, index, max and deadline set by the caller); leaves the winner in
   s->best_pr and s->best_ms (the default when nothing beat it by the margin). known_ms >= 0: the
   default configuration's time, measured already (the previous family's winner is this family's
   default configuration). */
clattn_status clattn_tune_search_family(clattn_tuner *t, clattn_tune_search *s, double known_ms);
/* Frees what a search allocated (the listed space, the tried points); s stays reusable. */
void clattn_tune_search_free(clattn_tune_search *s);

#endif /* CLATTN_TUNE_SEARCH_H */
