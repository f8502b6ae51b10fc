/* The tuner for one projection backend on one GEMM shape (clattn_gemm_tune, gemm.h).
 *
 * Any backend: it only uses the backend interface (supports, temp_bytes, enqueue) and its family's
 * table (candidates, valid()), so the own kernel and CLBlast are tuned alike. On random inputs
 * (A, W and a bias, as the layer has one), each candidate is
 *   1. run once (the warm-up, which builds it) and checked against a double-precision GEMM on a
 *      sample of the output: 256 random entries plus the four corners and entries of the last row
 *      and the last column, where edge tiles go wrong; cheap at any size, and it catches wrong
 *      tiling, padding and bias offsets;
 *   2. timed: median of at least `repeats` runs filling 50 ms (profiling events around the
 *      backend's commands, else the wall clock), cut short when the first run is clearly slower
 *      than the best so far.
 * The defaults are measured first (for CLBlast, before any override of this call: gemm_clblast.c),
 * then candidates drawn at random from the valid ones, and later also mutations of the best, until
 * the budget or max_candidates ends it. The winner is timed again and kept only if it beats the
 * defaults by 3 %, so that noise cannot pass for a gain. The entry goes into ctx's tuning table
 * under clattn_gemm_problem's class with both times (gemm_choose.c compares backends by them), and
 * into the tuning file unless no_save.
 * Candidates run on a private context on ctx's queue, so their programs and scratch go afterwards.
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"
#include "host/tune/tune_measure.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUDGET_S 30.0
#define DEFAULT_REPEATS 5
#define DEFAULT_SEED 0x67656d6d74756e65ULL
#define SAMPLE_ENTRIES 256
#define EDGE_ENTRIES 16            /* of the last row and of the last column each */
#define MAX_SAMPLES 64
#define MIN_TIMED_MS 50.0
#define PRUNE_FACTOR 1.25          /* a first timed run this much slower than the best ends it */
#define WIN_MARGIN 0.97            /* a winner must take at most this fraction of the defaults' time */
#define DRAW_TRIES 20000           /* random draws to find one untried valid point */
#define REL_F32 2e-5               /* of sum |a_k w_k| + |bias|: float accumulation */
#define REL_F16 1e-2               /* the same for F16 storage (HGEMM accumulates in half) */

typedef struct gemm_rig {
    clattn_context *ctx, *pc;
    const clattn_gemm_backend *backend;
    clattn_problem p;              /* the class, for valid() and the tuning key */
    clattn_gemm g;                 /* on the private context's buffers */
    cl_mem temp;
    size_t temp_bytes;
    int events, repeats;
    size_t n_check;
    size_t *check_r, *check_c;
    double *check_want, *check_tol;
    void *host_c;                  /* the output read back, in the storage type */
} gemm_rig;

/* Uniform in [-1, 1), stored in the dtype. */
static void fill_uniform(void *t, clattn_dtype dtype, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        float x = (float)((double)(clattn_tune_rng(rng) >> 11) / 4503599627370496.0 - 1.0);
        clattn_storage_set(t, dtype, i, x);
    }
}

static clattn_status make_buffer(clattn_context *ctx, size_t bytes, void *host, cl_mem *out)
{
    cl_int err;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
                          bytes ? bytes : 1, host, &err);
    return *out ? CLATTN_SUCCESS : clattn_fail_cl(ctx, err, "allocating a GEMM tuning buffer");
}

/* The entries checked and their double-precision values with a tolerance each. */
static clattn_status make_check(gemm_rig *r, const void *a, const void *w, const void *bias,
                                uint64_t *rng)
{
    const size_t rows = r->g.rows, cols = r->g.cols, inner = r->g.inner;
    const size_t most = SAMPLE_ENTRIES + 4 + 2 * EDGE_ENTRIES;
    r->check_r = malloc(most * sizeof *r->check_r);
    r->check_c = malloc(most * sizeof *r->check_c);
    r->check_want = malloc(most * sizeof *r->check_want);
    r->check_tol = malloc(most * sizeof *r->check_tol);
    if (!r->check_r || !r->check_c || !r->check_want || !r->check_tol)
        return clattn_fail(r->ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
    size_t n = 0;
    const size_t corner_r[4] = {0, 0, rows - 1, rows - 1}, corner_c[4] = {0, cols - 1, 0, cols - 1};
    for (int i = 0; i < 4; i++, n++)
        r->check_r[n] = corner_r[i], r->check_c[n] = corner_c[i];
    for (int i = 0; i < EDGE_ENTRIES; i++, n += 2) {
        r->check_r[n] = rows - 1, r->check_c[n] = clattn_tune_rng(rng) % cols;
        r->check_r[n + 1] = clattn_tune_rng(rng) % rows, r->check_c[n + 1] = cols - 1;
    }
    for (int i = 0; i < SAMPLE_ENTRIES; i++, n++)
        r->check_r[n] = clattn_tune_rng(rng) % rows, r->check_c[n] = clattn_tune_rng(rng) % cols;
    const double rel = r->g.dtype == CLATTN_F16 ? REL_F16 : REL_F32;
    for (size_t i = 0; i < n; i++) {
        double sum = 0, mag = 0;
        for (size_t k = 0; k < inner; k++) {
            const double x = clattn_storage_get(a, r->g.dtype, r->check_r[i] * inner + k) *
                             (double)clattn_storage_get(w, r->g.dtype, r->check_c[i] * inner + k);
            sum += x;
            mag += fabs(x);
        }
        const double b = clattn_storage_get(bias, r->g.dtype, r->check_c[i]);
        r->check_want[i] = sum + b;
        r->check_tol[i] = rel * (mag + fabs(b)) + 1e-6;
    }
    r->n_check = n;
    return CLATTN_SUCCESS;
}

static clattn_status rig_create(gemm_rig *r, uint64_t seed)
{
    clattn_context *ctx = r->ctx;
    const size_t es = clattn_dtype_size(r->g.dtype);
    const size_t na = r->g.rows * r->g.inner, nw = r->g.cols * r->g.inner, nc = r->g.rows * r->g.cols;
    void *a = malloc(na * es + 1), *w = malloc(nw * es + 1), *bias = malloc(r->g.cols * es + 1);
    uint64_t rng = seed;
    clattn_status st = CLATTN_SUCCESS;
    r->host_c = malloc(nc * es + 1);
    if (!a || !w || !bias || !r->host_c) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory for the GEMM tuning inputs");
        goto out;
    }
    fill_uniform(a, r->g.dtype, na, &rng);
    fill_uniform(w, r->g.dtype, nw, &rng);
    fill_uniform(bias, r->g.dtype, r->g.cols, &rng);
    if ((st = make_buffer(ctx, na * es, a, &r->g.a)) != CLATTN_SUCCESS ||
        (st = make_buffer(ctx, nw * es, w, &r->g.w)) != CLATTN_SUCCESS ||
        (st = make_buffer(ctx, r->g.cols * es, bias, &r->g.bias)) != CLATTN_SUCCESS ||
        (st = make_buffer(ctx, nc * es, NULL, &r->g.c)) != CLATTN_SUCCESS)
        goto out;
    st = make_check(r, a, w, bias, &rng);
out:
    free(a);
    free(w);
    free(bias);
    return st;
}

static void rig_release(gemm_rig *r)
{
    cl_mem *bufs[] = {&r->g.a, &r->g.w, &r->g.bias, &r->g.c, &r->temp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i])
            clReleaseMemObject(*bufs[i]);
    free(r->check_r);
    free(r->check_c);
    free(r->check_want);
    free(r->check_tol);
    free(r->host_c);
    clattn_context_close_cached(r->pc);
}

/* One run of the GEMM at pr to completion, its time in *ms. */
static clattn_status run_once(gemm_rig *r, const clattn_params *pr, double *ms)
{
    clattn_context *pc = r->pc;
    cl_event e0 = NULL, e1 = NULL;
    cl_int err = CL_SUCCESS;
    size_t need = 0;
    pthread_mutex_lock(&pc->lock);
    clattn_status st = r->backend->temp_bytes(pc, &r->g, pr, &need);
    if (st == CLATTN_SUCCESS && need > r->temp_bytes) {
        if (r->temp)
            clReleaseMemObject(r->temp);
        r->temp = NULL;
        r->temp_bytes = 0;
        if ((st = make_buffer(pc, need, NULL, &r->temp)) == CLATTN_SUCCESS)
            r->temp_bytes = need;
    }
    const double t0 = clattn_tune_now();
    if (st == CLATTN_SUCCESS && r->events &&
        (err = clEnqueueMarkerWithWaitList(pc->queue, 0, NULL, &e0)) != CL_SUCCESS)
        st = clattn_fail_cl(pc, err, "clEnqueueMarkerWithWaitList");
    if (st == CLATTN_SUCCESS)
        st = r->backend->enqueue(pc, &r->g, pr, r->temp ? r->temp : r->g.c);
    if (st == CLATTN_SUCCESS && r->events &&
        (err = clEnqueueMarkerWithWaitList(pc->queue, 0, NULL, &e1)) != CL_SUCCESS)
        st = clattn_fail_cl(pc, err, "clEnqueueMarkerWithWaitList");
    /* finish even after a failure: the queue must be empty before the next candidate */
    err = clFinish(pc->queue);
    if (st == CLATTN_SUCCESS && err != CL_SUCCESS)
        st = clattn_fail_cl(pc, err, "clFinish after a GEMM tuning run");
    *ms = (clattn_tune_now() - t0) * 1e3;
    if (st == CLATTN_SUCCESS && e0 && e1) {
        cl_ulong start = 0, end = 0;
        if (clGetEventProfilingInfo(e0, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(e1, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) == CL_SUCCESS &&
            end > start)
            *ms = (double)(end - start) * 1e-6;
    }
    if (e0)
        clReleaseEvent(e0);
    if (e1)
        clReleaseEvent(e1);
    pthread_mutex_unlock(&pc->lock);
    return st;
}

/* The output against the double-precision values: 1 when every sampled entry is within. */
static int check_output(gemm_rig *r, char *why, size_t why_len)
{
    const size_t es = clattn_dtype_size(r->g.dtype);
    cl_int err = clEnqueueReadBuffer(r->pc->queue, r->g.c, CL_TRUE, 0, r->g.rows * r->g.cols * es,
                                     r->host_c, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "reading the output: %s", clattn_cl_error_name(err));
        return 0;
    }
    for (size_t i = 0; i < r->n_check; i++) {
        const double got = clattn_storage_get(r->host_c, r->g.dtype, r->check_r[i] * r->g.cols + r->check_c[i]);
        if (!(fabs(got - r->check_want[i]) <= r->check_tol[i])) {
            snprintf(why, why_len, "C[%zu][%zu] = %.6g, the double-precision GEMM gives %.6g "
                     "(tolerance %.3g)", r->check_r[i], r->check_c[i], got, r->check_want[i],
                     r->check_tol[i]);
            return 0;
        }
    }
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs pr (the warm-up builds it), checks it, then times it: 1 with *ms, or 0 with why. A first
   timed run clearly slower than best_ms (> 0) ends it early with that run's time. */
static int measure(gemm_rig *r, const clattn_params *pr, double best_ms, double *ms, char *why,
                   size_t why_len)
{
    double t, samples[MAX_SAMPLES], sum = 0;
    int n = 0;
    /* a clean output: a candidate that writes nothing must not pass on the last one's */
    const float zero = 0.0f;
    cl_int err = clEnqueueFillBuffer(r->pc->queue, r->g.c, &zero, clattn_dtype_size(r->g.dtype), 0,
                                     r->g.rows * r->g.cols * clattn_dtype_size(r->g.dtype), 0, NULL,
                                     NULL);
    if (err != CL_SUCCESS) {
        snprintf(why, why_len, "clearing the output: %s", clattn_cl_error_name(err));
        return 0;
    }
    clattn_status st = run_once(r, pr, &t);
    if (st != CLATTN_SUCCESS) {
        snprintf(why, why_len, "%s: %.200s", clattn_status_string(st), r->pc->last_error);
        return 0;
    }
    if (!check_output(r, why, why_len))
        return 0;
    while (n < MAX_SAMPLES && (n < r->repeats || sum < MIN_TIMED_MS)) {
        if ((st = run_once(r, pr, &t)) != CLATTN_SUCCESS) {
            snprintf(why, why_len, "%s: %.200s", clattn_status_string(st), r->pc->last_error);
            return 0;
        }
        samples[n++] = t;
        sum += t;
        if (n == 1 && best_ms > 0 && t > PRUNE_FACTOR * best_ms)
            break;
    }
    qsort(samples, (size_t)n, sizeof samples[0], cmp_double);
    *ms = samples[n / 2];
    return 1;
}

/* ---- the search ---------------------------------------------------------------------------- */

typedef struct search {
    const clattn_family *f;
    clattn_params *tried;
    int n_tried, cap_tried;
    uint64_t rng;
} search;

static int was_tried(const search *s, const clattn_params *pr)
{
    for (int i = 0; i < s->n_tried; i++)
        if (!memcmp(s->tried[i].v, pr->v, sizeof pr->v))
            return 1;
    return 0;
}

static clattn_status remember(clattn_context *ctx, search *s, const clattn_params *pr)
{
    if (s->n_tried == s->cap_tried) {
        int cap = s->cap_tried ? 2 * s->cap_tried : 64;
        clattn_params *t = realloc(s->tried, (size_t)cap * sizeof *t);
        if (!t)
            return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory while tuning");
        s->tried = t;
        s->cap_tried = cap;
    }
    s->tried[s->n_tried++] = *pr;
    return CLATTN_SUCCESS;
}

/* An untried valid point: a mutation of one to three parameters of best (when given), else a
   uniform draw. 0 when none turned up. */
static int draw(search *s, const clattn_params *best, const clattn_device_info *dev,
                const clattn_problem *p, clattn_params *out)
{
    char why[256];
    const clattn_family *f = s->f;
    for (int tries = 0; tries < DRAW_TRIES; tries++) {
        memset(out, 0, sizeof *out);
        if (best) {
            *out = *best;
            const int changes = 1 + (int)(clattn_tune_rng(&s->rng) % 3);
            for (int c = 0; c < changes; c++) {
                const int i = (int)(clattn_tune_rng(&s->rng) % (uint64_t)f->n_params);
                out->v[i] = f->params[i].candidates[clattn_tune_rng(&s->rng) %
                                                    (uint64_t)f->params[i].n_candidates];
            }
        } else {
            for (int i = 0; i < f->n_params; i++)
                out->v[i] = f->params[i].candidates[clattn_tune_rng(&s->rng) %
                                                    (uint64_t)f->params[i].n_candidates];
        }
        if (f->canonical)
            f->canonical(out, best ? best : out, dev, p);
        if (f->valid(out, dev, p, why, sizeof why) && !was_tried(s, out))
            return 1;
    }
    return 0;
}

static long space_size(const clattn_family *f)
{
    long n = 1;
    for (int i = 0; i < f->n_params; i++)
        n = n > LONG_MAX / f->params[i].n_candidates ? LONG_MAX : n * f->params[i].n_candidates;
    return n;
}

static void progress(const clattn_tune_options *opt, const clattn_tune_family_report *fr,
                     const char *params, double ms, double start, double budget)
{
    if (!opt->progress)
        return;
    clattn_tune_progress_info info = {
        .family = fr->family, .family_index = 0, .n_families = 1, .tried = fr->tried,
        .failed = fr->failed, .params = params, .candidate_ms = ms, .default_ms = fr->default_ms,
        .best_ms = fr->best_ms, .elapsed_s = clattn_tune_now() - start, .budget_s = budget,
    };
    opt->progress(opt->progress_user, &info);
}

/* Checks the arguments: CLATTN_SUCCESS when the shape can be tuned with backend on ctx. */
static clattn_status check_args(clattn_context *ctx, const clattn_gemm_backend *backend,
                                clattn_dtype dtype, size_t rows, size_t cols, size_t inner)
{
    char why[256] = "";
    if (!backend)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "no GEMM backend given (NULL: CLBlast in a "
                           "build without it?)");
    if (dtype != CLATTN_F32 && dtype != CLATTN_F16)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "dtype %d is not a clattn_dtype", (int)dtype);
    /* the tuning key's ranges: rows as Lq and Lk, cols as dv, inner as d */
    if (rows == 0 || cols == 0 || inner == 0 || rows > CLATTN_TUNE_MAX_LK_BUCKET ||
        cols > CLATTN_TUNE_MAX_DIM || inner > CLATTN_TUNE_MAX_DIM)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "GEMM %zu x %zu x %zu: rows must be in "
                           "1..%d, cols and inner in 1..%d", rows, cols, inner,
                           CLATTN_TUNE_MAX_LK_BUCKET, CLATTN_TUNE_MAX_DIM);
    clattn_status st = backend->supports(ctx, dtype, why, sizeof why);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "%s backend: %s", backend->name, why);
    if (!ctx->info.compiler_available)
        return clattn_fail(ctx, CLATTN_UNSUPPORTED, "device '%s' cannot compile kernels, so "
                           "candidates cannot be built: tune on a device that can", ctx->info.name);
    return CLATTN_SUCCESS;
}

clattn_status clattn_gemm_tune(clattn_context *ctx, const clattn_gemm_backend *backend, clattn_dtype dtype,
                               size_t rows, size_t cols, size_t inner, const clattn_tune_options *opt_in,
                               clattn_tune_family_report *fr)
{
    gemm_rig r;
    search s;
    clattn_tune_options opt;
    clattn_params def, best, cand;
    char why[256], params[160];
    double ms;
    memset(&r, 0, sizeof r);
    memset(&s, 0, sizeof s);
    memset(&opt, 0, sizeof opt);
    memset(fr, 0, sizeof *fr);
    fr->default_ms = fr->best_ms = -1;
    if (opt_in)
        opt = *opt_in;
    if (!(opt.budget_s > 0))
        opt.budget_s = DEFAULT_BUDGET_S;
    if (opt.max_candidates <= 0)
        opt.max_candidates = INT_MAX;
    const double start = clattn_tune_now(), deadline = start + opt.budget_s;

    clattn_status st = check_args(ctx, backend, dtype, rows, cols, inner);
    if (st != CLATTN_SUCCESS)
        return st;
    const clattn_family *f = backend->family;
    snprintf(fr->family, sizeof fr->family, "%s", f->name);
    fr->space = space_size(f);
    fr->valid = -1;   /* sampled */
    r.ctx = ctx;
    r.backend = backend;
    r.repeats = opt.repeats > 0 ? opt.repeats : DEFAULT_REPEATS;
    r.g = (clattn_gemm){.name = "tuned", .dtype = dtype, .rows = rows, .cols = cols, .inner = inner};
    clattn_gemm_problem(dtype, rows, cols, inner, &r.p);
    s.f = f;
    s.rng = opt.seed ? opt.seed : DEFAULT_SEED;
    if ((st = clattn_private_context(ctx, &r.pc)) != CLATTN_SUCCESS)
        return st;
    r.events = r.pc->queue_profiling;
    if ((st = rig_create(&r, s.rng ^ 0x5eed)) != CLATTN_SUCCESS)
        goto out;

    /* the defaults, fitted and checked as a user's call takes them */
    clattn_params_defaults(f, ctx->info.cls, &def);
    if (f->fit_defaults)
        f->fit_defaults(&def, &r.p);
    if (!f->valid(&def, &ctx->info, &r.p, why, sizeof why)) {
        st = clattn_fail(ctx, CLATTN_UNSUPPORTED, "%s at its defaults does not fit device '%s': %s",
                         f->name, ctx->info.name, why);
        goto out;
    }
    clattn_params_string(f, &def, fr->default_params, sizeof fr->default_params);
    if ((st = remember(ctx, &s, &def)) != CLATTN_SUCCESS)
        goto out;
    fr->tried = 1;
    if (!measure(&r, &def, -1, &fr->default_ms, why, sizeof why)) {
        st = clattn_fail(ctx, CLATTN_OPENCL_ERROR, "%s fails at its defaults (%s): %s", f->name,
                         fr->default_params, why);
        goto out;
    }
    best = def;
    fr->best_ms = fr->default_ms;
    progress(&opt, fr, fr->default_params, fr->default_ms, start, opt.budget_s);

    double est = clattn_tune_now() - start;   /* seconds per candidate, running estimate */
    while (fr->tried < opt.max_candidates && clattn_tune_now() + est <= deadline) {
        /* a third of the draws near the best once something beat the defaults */
        const int near = memcmp(best.v, def.v, sizeof def.v) && clattn_tune_rng(&s.rng) % 3 == 0;
        if (!draw(&s, near ? &best : NULL, &ctx->info, &r.p, &cand) &&
            !(near && draw(&s, NULL, &ctx->info, &r.p, &cand)))
            break;   /* the space is used up */
        if ((st = remember(ctx, &s, &cand)) != CLATTN_SUCCESS)
            goto out;
        const double t0 = clattn_tune_now();
        clattn_params_string(f, &cand, params, sizeof params);
        fr->tried++;
        if (measure(&r, &cand, fr->best_ms, &ms, why, sizeof why)) {
            if (ms < fr->best_ms) {
                fr->best_ms = ms;
                best = cand;
            }
        } else {
            ms = -1;
            if (fr->failed++ == 0)
                snprintf(fr->first_failure, sizeof fr->first_failure, "%.60s: %.190s", params, why);
        }
        est = 0.7 * est + 0.3 * (clattn_tune_now() - t0);
        progress(&opt, fr, params, ms, start, opt.budget_s);
    }

    /* the winner once more, as the search's minimum flatters it: kept only if it still clearly
       wins, and filed with this second time */
    if (memcmp(best.v, def.v, sizeof def.v)) {
        if (measure(&r, &best, -1, &ms, why, sizeof why))
            fr->best_ms = ms;
        if (!(fr->best_ms <= WIN_MARGIN * fr->default_ms)) {
            best = def;
            fr->best_ms = fr->default_ms;
        }
    }
    clattn_params_string(f, &best, fr->best_params, sizeof fr->best_params);
    if ((st = clattn_tuning_put(ctx, f, &r.p, &best, fr->best_ms, fr->default_ms)) != CLATTN_SUCCESS)
        goto out;
    if (!opt.no_save) {
        int saved = 0;
        char err[CLATTN_ERROR_LEN - 128];
        if (clattn_tuning_save(ctx, &saved, err, sizeof err) != CLATTN_SUCCESS)
            clattn_warn(ctx, "GEMM tuning results kept in this context only: %s", err);
    }
out:
    free(s.tried);
    rig_release(&r);
    return st;
}
