/* clattn_mha_tune: the layer's projection GEMMs with every backend, then its attention.
 *
 * The GEMMs come first and get three quarters of the budget, as they are most of the layer's time
 * on devices without a tuned BLAS (issue 16: 97 % on PoCL at CLBlast's defaults); each
 * (backend, distinct shape) tune gets an equal share of what is left for them, so time one leaves
 * unused goes to the next. The attention is tuned by the attention tuner on the shape the layer
 * hands it. Everything is saved once, at the end.
 * Module direction: layer/ uses tune/ (the attention tuner, private contexts); tune/ never
 * includes layer/.
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"
#include "host/layer/layer.h"
#include "host/tune/tune.h"
#include "host/tune/tune_measure.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_BUDGET_S 60.0
#define GEMM_SHARE 0.75
#define MAX_SHAPES 4

typedef struct gemm_shape {
    const char *names;            /* the projections of this shape, "q,out" */
    size_t rows, cols, inner;
    int count;                    /* projections of this shape in one call */
} gemm_shape;

/* 1 when name is in the comma-separated list (NULL or empty: everything is). */
static int listed(const char *list, const char *name)
{
    const size_t n = strlen(name);
    if (!list || !*list)
        return 1;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}

/* The distinct GEMM shapes of the layer, each with how many of the four projections have it. */
static int layer_shapes(const clattn_mha_shape *s, gemm_shape out[MAX_SHAPES])
{
    const size_t rq = (size_t)s->B * (size_t)s->Lq, rk = (size_t)s->B * (size_t)s->Lk;
    const gemm_shape all[4] = {
        {"q", rq, (size_t)s->E, (size_t)s->E, 1},
        {"k", rk, (size_t)s->kv_width, (size_t)s->kdim, 1},
        {"v", rk, (size_t)s->kv_width, (size_t)s->vdim, 1},
        {"out", rq, (size_t)s->E, (size_t)s->E, 1},
    };
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (all[i].rows == 0)
            continue;   /* no key tokens: no k and v GEMMs */
        int j = 0;
        while (j < n && !(out[j].rows == all[i].rows && out[j].cols == all[i].cols &&
                          out[j].inner == all[i].inner))
            j++;
        if (j == n)
            out[n++] = all[i];
        else
            out[j].count++;
    }
    return n;
}

/* The backends to tune: the one desc forces, or every one the build and device have for dtype. */
static int layer_backends(const clattn_context *ctx, const clattn_mha_desc *desc,
                          const clattn_gemm_backend *out[2])
{
    char why[256];
    int n = 0;
    if (desc->projections != CLATTN_PROJ_CLBLAST)
        out[n++] = &clattn_gemm_own;
    if (desc->projections != CLATTN_PROJ_OWN && clattn_gemm_clblast &&
        clattn_gemm_clblast->supports(ctx, desc->dtype, why, sizeof why) == CLATTN_SUCCESS)
        out[n++] = clattn_gemm_clblast;
    return n;
}

/* The time (ms) a user's call now spends on sh's projections: the backend clattn_gemm_choose
   takes, at its exact tuning entry's time, times the projections of that shape; < 0 when unknown. */
static double chosen_ms(clattn_context *ctx, const clattn_mha_desc *desc, const gemm_shape *sh)
{
    const clattn_gemm_backend *b = NULL;
    clattn_params params;
    clattn_problem p;
    clattn_gemm g = {.name = sh->names, .dtype = desc->dtype, .rows = sh->rows, .cols = sh->cols,
                     .inner = sh->inner};
    if (clattn_gemm_choose(ctx, &g, desc->projections, &b, &params) != CLATTN_SUCCESS)
        return -1.0;
    clattn_gemm_problem(desc->dtype, sh->rows, sh->cols, sh->inner, &p);
    const double ms = clattn_tuning_time_ms(ctx, b->family, &p);
    return ms >= 0 ? ms * sh->count : -1.0;
}

static clattn_status mha_tune_locked(clattn_context *ctx, const clattn_mha_desc *desc,
                                     const clattn_tune_options *opt_in, clattn_tune_report *rep)
{
    clattn_tune_options opt;
    clattn_mha_shape s;
    gemm_shape shapes[MAX_SHAPES];
    const clattn_gemm_backend *backends[2];
    const clattn_gemm_backend *before[MAX_SHAPES] = {NULL};
    char err[512];
    clattn_status st;
    const double start = clattn_tune_now();

    memset(rep, 0, sizeof *rep);
    rep->default_ms = rep->best_ms = -1;
    memset(&opt, 0, sizeof opt);
    if (opt_in)
        opt = *opt_in;
    if (!(opt.budget_s > 0))
        opt.budget_s = DEFAULT_BUDGET_S;
    if ((st = clattn_mha_shape_init(desc, &s, err, sizeof err)) != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "%s", err);
    if (desc->dtype != CLATTN_F32 && desc->dtype != CLATTN_F16)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->dtype %d is not a clattn_dtype",
                           (int)desc->dtype);
    if ((int)desc->projections < CLATTN_PROJ_AUTO || desc->projections > CLATTN_PROJ_CLBLAST)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->projections %d is not a "
                           "clattn_projection_impl", (int)desc->projections);
    if ((int)desc->path < CLATTN_PATH_AUTO || desc->path > CLATTN_PATH_FUSED)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc->path %d is not a clattn_path",
                           (int)desc->path);
    if (desc->projections == CLATTN_PROJ_CLBLAST && !clattn_gemm_clblast)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "projections = CLATTN_PROJ_CLBLAST, but this "
                           "build of clattn has no CLBlast (configure with -Dclblast=enabled)");
    if (s.B == 0 || s.Lq == 0) {
        snprintf(rep->note, sizeof rep->note, "an empty layer runs no kernel: nothing to tune");
        return CLATTN_SUCCESS;
    }
    const int n_shapes = layer_shapes(&s, shapes);
    const int n_backends = layer_backends(ctx, desc, backends);
    if (n_backends == 0) {
        char why[256] = "";
        clattn_gemm_clblast->supports(ctx, desc->dtype, why, sizeof why);
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "no projection backend for this layer: %s", why);
    }

    /* what the layer ran before: its projections' time at the chosen backend's defaults comes
       from the entries this call writes, so only the choice is taken now */
    for (int i = 0; i < n_shapes; i++) {
        clattn_params params;
        clattn_gemm g = {.name = shapes[i].names, .dtype = desc->dtype, .rows = shapes[i].rows,
                         .cols = shapes[i].cols, .inner = shapes[i].inner};
        if (clattn_gemm_choose(ctx, &g, desc->projections, &before[i], &params) != CLATTN_SUCCESS)
            before[i] = NULL;
    }

    clattn_tune_options gopt = opt;
    gopt.no_save = 1;   /* saved once, below */
    double before_ms = 0, after_ms = 0;
    int parts_known = 1;
    const double gemm_deadline = start + GEMM_SHARE * opt.budget_s;
    int tunes_left = 0;
    for (int b = 0; b < n_backends; b++)
        tunes_left += listed(opt.families, backends[b]->family->name) ? n_shapes : 0;
    for (int i = 0; i < n_shapes; i++) {
        double shape_before = -1;
        for (int b = 0; b < n_backends; b++) {
            if (!listed(opt.families, backends[b]->family->name))
                continue;
            clattn_tune_family_report fr;
            const double left = gemm_deadline - clattn_tune_now();
            gopt.budget_s = (left > 1.0 ? left : 1.0) / tunes_left--;
            st = clattn_gemm_tune(ctx, backends[b], desc->dtype, shapes[i].rows, shapes[i].cols,
                                  shapes[i].inner, &gopt, &fr);
            if (st != CLATTN_SUCCESS)
                return st;
            if (backends[b] == before[i])
                shape_before = fr.default_ms * shapes[i].count;
            if (rep->n_families < CLATTN_TUNE_MAX_FAMILIES)
                rep->families[rep->n_families++] = fr;
        }
        const double shape_after = chosen_ms(ctx, desc, &shapes[i]);
        parts_known &= shape_before >= 0 && shape_after >= 0;
        before_ms += shape_before;
        after_ms += shape_after;
    }

    /* the attention, on what is left */
    clattn_attention_desc a;
    clattn_tune_report arep;
    clattn_mha_attention_desc(desc, &a);
    a.dtype = desc->dtype;
    a.path = desc->path;
    clattn_tune_options aopt = opt;
    aopt.no_save = 1;
    const double left = start + opt.budget_s - clattn_tune_now();
    aopt.budget_s = left > 1.0 ? left : 1.0;
    if ((st = clattn_tune_locked(ctx, &a, &aopt, &arep)) != CLATTN_SUCCESS)
        return st;
    rep->path = arep.path;
    rep->timed_with_events = arep.timed_with_events;
    for (int i = 0; i < arep.n_families && rep->n_families < CLATTN_TUNE_MAX_FAMILIES; i++)
        rep->families[rep->n_families++] = arep.families[i];
    if (parts_known && arep.default_ms >= 0 && arep.best_ms >= 0) {
        rep->default_ms = before_ms + arep.default_ms;
        rep->best_ms = after_ms + arep.best_ms;
    }
    if (arep.note[0])
        snprintf(rep->note, sizeof rep->note, "attention: %.490s", arep.note);

    if (!opt.no_save) {
        char why[CLATTN_ERROR_LEN - 128];
        if (clattn_tuning_save(ctx, &rep->saved, why, sizeof why) != CLATTN_SUCCESS)
            clattn_warn(ctx, "tuning results kept in this context only: %s", why);
        if (!rep->saved && !rep->note[0])
            snprintf(rep->note, sizeof rep->note, "not saved: %.490s", why);
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_mha_tune(clattn_context *ctx, const clattn_mha_desc *desc,
                              const clattn_tune_options *opt, clattn_tune_report *report)
{
    clattn_tune_report scratch;
    if (report)
        memset(report, 0, sizeof *report);
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    const double start = clattn_tune_now();
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = desc ? mha_tune_locked(ctx, desc, opt, report ? report : &scratch)
                            : clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc is NULL");
    pthread_mutex_unlock(&ctx->lock);
    if (report)
        report->elapsed_s = clattn_tune_now() - start;
    return st;
}
