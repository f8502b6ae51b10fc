/* What the tuner measures with: a problem's device buffers and inputs (a workload), one run of the
 * real path on it, its time (profiling events, else the wall clock), its output checked against an
 * expected one, and a configuration (a family's parameters forced) checked, timed, or timed side by
 * side with another. tune.c decides what to run; this file runs and compares. */
#include "host/tune/tune_measure.h"

#include "host/tune/tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 64
#define LONG_RUN_MS 1000.0
#define MIN_TIMED_MS 50.0          /* small problems repeat until their runs fill this much */
#define PRUNE_FACTOR 1.25          /* a first timed run this much slower than the best ends a candidate */
#define WARM_PRUNE_FACTOR 3.0      /* the same for the warm-up run, which may run cold */
#define REL_CHECK_F32 2e-5         /* vs the double reference, scaled by max(1, max|ref|) */
#define REL_CHECK_F16 2e-3         /* half output rounding (2^-11) with room */
#define REL_SAME_F32 4e-5          /* vs the defaults' output: two results, each within the above */
#define REL_SAME_F16 4e-3
#define REL_CHECK_BF16 1.6e-2      /* bfloat16 output rounding (2^-8) with room */
#define REL_SAME_BF16 3.2e-2

double clattn_tune_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t clattn_tune_rng(uint64_t *state)
{
    /* splitmix64: tiny, and every seed (0 too) gives a good stream */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* N(0,1) by Box-Muller, as float in the storage type. */
static void fill_normal(void *t, clattn_dtype dtype, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(clattn_tune_rng(rng) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(clattn_tune_rng(rng) >> 11) / 9007199254740992.0;
        float x = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        clattn_storage_set(t, dtype, i, x);
    }
}

static clattn_status upload(clattn_context *ctx, size_t bytes, const void *host, cl_mem *out)
{
    cl_int err;
    /* a token byte for an empty tensor keeps every argument a valid buffer */
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
                          bytes ? bytes : 1, bytes ? (void *)host : NULL, &err);
    if (!*out)
        return clattn_fail_cl(ctx, err, "allocating a tuning buffer");
    return CLATTN_SUCCESS;
}

clattn_status clattn_workload_create(clattn_context *ctx, const clattn_attention_desc *desc,
                                     uint64_t seed, int keep_inputs, clattn_workload *w)
{
    char err[512];
    clattn_status st = CLATTN_SUCCESS;
    size_t es = clattn_dtype_size(desc->dtype);
    memset(w, 0, sizeof *w);
    w->desc = *desc;
    if (clattn_problem_init(desc, &w->p, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    w->out_elems = w->p.bytes.out / es;
    w->out_bytes = w->p.bytes.out;
    w->hq = malloc(w->p.bytes.q + 1);
    w->hk = malloc(w->p.bytes.k + 1);
    w->hv = malloc(w->p.bytes.v + 1);
    w->hmask = calloc(1, w->p.bytes.mask + 1);
    w->host_out = malloc(w->p.bytes.out + 1);
    w->expected = malloc(w->out_elems * sizeof(float) + 1);
    if (!w->hq || !w->hk || !w->hv || !w->hmask || !w->host_out || !w->expected) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory for the tuning inputs");
        goto out;
    }
    uint64_t rng = seed;
    fill_normal(w->hq, desc->dtype, w->p.bytes.q / es, &rng);
    fill_normal(w->hk, desc->dtype, w->p.bytes.k / es, &rng);
    fill_normal(w->hv, desc->dtype, w->p.bytes.v / es, &rng);
    /* any mask serves an export, which only needs the kernels built: all zeros */
    if ((st = upload(ctx, w->p.bytes.q, w->hq, &w->q)) != CLATTN_SUCCESS ||
        (st = upload(ctx, w->p.bytes.k, w->hk, &w->k)) != CLATTN_SUCCESS ||
        (st = upload(ctx, w->p.bytes.v, w->hv, &w->v)) != CLATTN_SUCCESS ||
        (w->p.mask_type != CLATTN_MASK_NONE &&
         (st = upload(ctx, w->p.bytes.mask, w->hmask, &w->mask)) != CLATTN_SUCCESS) ||
        (st = upload(ctx, w->p.bytes.out, NULL, &w->out)) != CLATTN_SUCCESS)
        goto out;
out:
    if (st != CLATTN_SUCCESS || !keep_inputs) {
        free(w->hq);
        free(w->hk);
        free(w->hv);
        free(w->hmask);
        w->hq = w->hk = w->hv = w->hmask = NULL;
    }
    if (st != CLATTN_SUCCESS)
        clattn_workload_release(w);
    return st;
}

clattn_status clattn_workload_create_varlen(clattn_context *ctx, const clattn_varlen_desc *vdesc,
                                            uint64_t seed, int keep_inputs, clattn_workload *w)
{
    char err[512];
    clattn_status st = CLATTN_SUCCESS;
    memset(w, 0, sizeof *w);
    w->varlen = 1;
    if (clattn_varlen_problem_init(vdesc, &w->vp, err, sizeof err) != CLATTN_SUCCESS ||
        clattn_varlen_host_tables_given(&w->vp, vdesc, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    const clattn_varlen_problem *vp = &w->vp;
    const int paged = vp->paged;
    if (!vdesc->cu_seqlens_q_host ||
        (paged ? !vdesc->seqlens_k_host || !vdesc->block_table_host : !vdesc->cu_seqlens_k_host))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "tuning a ragged batch takes its host "
                           "tables (cu_seqlens_q_host and cu_seqlens_k_host, or seqlens_k_host and "
                           "block_table_host): the lengths to tune for");
    if (clattn_varlen_tables_check(vp, vdesc->cu_seqlens_q_host, vdesc->cu_seqlens_k_host,
                                   vdesc->seqlens_k_host, vdesc->block_table_host, err,
                                   sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    if (vp->p.kv_int8)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "tune int8 K/V as its plain twin");
    /* the tables, owned: the check workload's are cut-down copies */
    const size_t nt = vp->cu_q_bytes + vp->cu_k_bytes + vp->seqlens_bytes + vp->table_bytes;
    w->h_tables = malloc(nt + 1);
    w->p = vp->p;
    w->vdesc = *vdesc;
    w->t = vp->t;
    const size_t es = clattn_dtype_size(w->p.dtype);
    w->out_bytes = vp->out_bytes;
    w->out_elems = vp->out_bytes / es;
    w->hq = malloc(vp->q_bytes + 1);
    w->hk = malloc(vp->k_bytes + 1);
    w->hv = malloc(vp->v_bytes + 1);
    w->host_out = malloc(vp->out_bytes + 1);
    w->expected = malloc(w->out_elems * sizeof(float) + 1);
    if (!w->h_tables || !w->hq || !w->hk || !w->hv || !w->host_out || !w->expected) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory for the tuning inputs");
        goto out;
    }
    int *at = w->h_tables;
    const struct {
        const int *src;
        size_t bytes;
        const int **dst;
        cl_mem *mem;
    } tables[] = {
        {vdesc->cu_seqlens_q_host, vp->cu_q_bytes, &w->vdesc.cu_seqlens_q_host, &w->t.cu_q},
        {vdesc->cu_seqlens_k_host, vp->cu_k_bytes, &w->vdesc.cu_seqlens_k_host, &w->t.cu_k},
        {vdesc->seqlens_k_host, vp->seqlens_bytes, &w->vdesc.seqlens_k_host, &w->t.seqlens_k},
        {vdesc->block_table_host, vp->table_bytes, &w->vdesc.block_table_host, &w->t.block_table},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0] && st == CLATTN_SUCCESS; i++) {
        if (!tables[i].bytes)
            continue;
        memcpy(at, tables[i].src, tables[i].bytes);
        *tables[i].dst = at;
        st = upload(ctx, tables[i].bytes, at, tables[i].mem);
        at += tables[i].bytes / sizeof(int);
    }
    uint64_t rng = seed;
    fill_normal(w->hq, w->p.dtype, vp->q_bytes / es, &rng);
    fill_normal(w->hk, w->p.dtype, vp->k_bytes / es, &rng);
    fill_normal(w->hv, w->p.dtype, vp->v_bytes / es, &rng);
    if (st == CLATTN_SUCCESS && ((st = upload(ctx, vp->q_bytes, w->hq, &w->q)) != CLATTN_SUCCESS ||
                                 (st = upload(ctx, vp->k_bytes, w->hk, &w->k)) != CLATTN_SUCCESS ||
                                 (st = upload(ctx, vp->v_bytes, w->hv, &w->v)) != CLATTN_SUCCESS ||
                                 (st = upload(ctx, vp->out_bytes, NULL, &w->out)) != CLATTN_SUCCESS))
        goto out;
out:
    if (st != CLATTN_SUCCESS || !keep_inputs) {
        free(w->hq);
        free(w->hk);
        free(w->hv);
        w->hq = w->hk = w->hv = NULL;
    }
    if (st != CLATTN_SUCCESS)
        clattn_workload_release(w);
    return st;
}

void clattn_workload_release(clattn_workload *w)
{
    cl_mem *bufs[] = {&w->q, &w->k, &w->v, &w->mask, &w->out, &w->t.cu_q, &w->t.cu_k,
                      &w->t.seqlens_k, &w->t.block_table};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) {
            clReleaseMemObject(*bufs[i]);
            *bufs[i] = NULL;
        }
    free(w->hq);
    free(w->hk);
    free(w->hv);
    free(w->hmask);
    free(w->host_out);
    free(w->expected);
    free(w->h_tables);
    memset(w, 0, sizeof *w);
}

clattn_status clattn_workload_reference(clattn_context *ctx, clattn_workload *w)
{
    clattn_status st =
        w->varlen ? clattn_attention_varlen_reference(&w->vdesc, w->hq, w->hk, w->hv, w->host_out,
                                                      NULL, NULL, 0)
                  : clattn_attention_reference(&w->desc, w->hq, w->hk, w->hv,
                                               w->mask ? w->hmask : NULL, w->host_out, NULL, NULL);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "the reference refused the tuning check problem");
    for (size_t i = 0; i < w->out_elems; i++)
        w->expected[i] = clattn_storage_get(w->host_out, w->p.dtype, i);
    w->has_expected = 1;
    return CLATTN_SUCCESS;
}

clattn_status clattn_workload_enqueue(clattn_context *ctx, clattn_workload *w,
                                      const clattn_plan_config *cfg)
{
    clattn_plan plan;
    pthread_mutex_lock(&ctx->lock);
    clattn_status st = clattn_plan_resolve(ctx, &w->p, 0, cfg, &plan);
    if (st == CLATTN_SUCCESS && w->varlen)
        st = plan.n_steps ? clattn_flash_run_varlen(ctx, &plan, &w->t, w->q, w->k, w->v, w->out, NULL)
                          : CLATTN_SUCCESS;
    else if (st == CLATTN_SUCCESS)
        st = clattn_plan_enqueue(ctx, &plan, w->q, w->k, w->v, w->mask, w->out, NULL, NULL);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

clattn_status clattn_workload_time(clattn_context *ctx, clattn_workload *w,
                                   const clattn_plan_config *cfg, int events, double *ms)
{
    cl_event e0 = NULL, e1 = NULL;
    cl_int err = CL_SUCCESS;
    clattn_status st;
    double t0 = clattn_tune_now();
    if (events)
        err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &e0);
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "clEnqueueMarkerWithWaitList");
    st = clattn_workload_enqueue(ctx, w, cfg);
    if (st == CLATTN_SUCCESS && events && (err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL,
                                                                              &e1)) != CL_SUCCESS)
        st = clattn_fail_cl(ctx, err, "clEnqueueMarkerWithWaitList");
    /* finish even after a failure: the queue must be empty before the next candidate */
    err = clFinish(ctx->queue);
    if (st == CLATTN_SUCCESS && err != CL_SUCCESS)
        st = clattn_fail_cl(ctx, err, "clFinish after a tuning run");
    *ms = (clattn_tune_now() - t0) * 1e3;
    if (st == CLATTN_SUCCESS && events) {
        cl_ulong start = 0, end = 0;
        if (clGetEventProfilingInfo(e0, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) ==
                CL_SUCCESS &&
            clGetEventProfilingInfo(e1, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) ==
                CL_SUCCESS &&
            end > start)
            *ms = (double)(end - start) * 1e-6;
    }
    if (e0)
        clReleaseEvent(e0);
    if (e1)
        clReleaseEvent(e1);
    return st;
}

clattn_status clattn_workload_read(clattn_context *ctx, clattn_workload *w, float *out)
{
    cl_int err = clEnqueueReadBuffer(ctx->queue, w->out, CL_TRUE, 0, w->out_bytes, w->host_out, 0,
                                     NULL, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail_cl(ctx, err, "reading a tuning output");
    for (size_t i = 0; i < w->out_elems; i++)
        out[i] = clattn_storage_get(w->host_out, w->p.dtype, i);
    return CLATTN_SUCCESS;
}

int clattn_tune_compare(const float *got, const float *want, size_t n, double rel, double *max_err,
                        double *tol)
{
    double max_ref = 1;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > max_ref)
            max_ref = fabs(want[i]);
    *tol = rel * max_ref;
    *max_err = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (isnan(got[i]) != isnan(want[i]) || e > *tol) {
            *max_err = isnan(e) ? INFINITY : e;
            return 0;
        }
        if (!isnan(e) && e > *max_err)
            *max_err = e;
    }
    return 1;
}

/* A context of its own on ctx's queue, for the tuner and exports: the same device, kernel sources
   and cache directory, so programs and scratch made while measuring are freed with it. */
clattn_status clattn_private_context(clattn_context *ctx, clattn_context **out)
{
    clattn_context_options o;
    clattn_settings_as_options(&ctx->settings, &o);
    o.log = NULL;                 /* a candidate's troubles are the tuner's to report, not the log's */
    o.log_plans = CLATTN_SWITCH_OFF;
    o.tuning = CLATTN_SWITCH_ON;  /* its table holds the winners so far, whatever the caller's switch */
    clattn_status st = clattn_context_open_cached(NULL, ctx->queue, &o, 1, out);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "cannot make the tuner's context on the queue");
    if (!(*out)->caches || !(*out)->caches->tuning) {
        clattn_context_close_cached(*out);
        *out = NULL;
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory for the tuner's context");
    }
    return CLATTN_SUCCESS;
}

/* ---- configurations ------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The status by its name alone: a report's failure line is short, and the cause is in the message. */
static int fail_why(clattn_tune_rig *r, clattn_status st, char *why, size_t why_len)
{
    const char *name = clattn_status_string(st), *colon = strchr(name, ':');
    snprintf(why, why_len, "%.*s: %.200s", colon ? (int)(colon - name) : (int)strlen(name), name,
             r->pc->last_error);
    return 0;
}

static int check_config(clattn_tune_rig *r, const clattn_tune_config *cfg, double *warm_ms, char *why,
                        size_t why_len)
{
    double err, tol, ms;
    const clattn_dtype dt = r->timing.p.dtype;
    clattn_status st = clattn_workload_enqueue(r->pc, &r->check, cfg);
    if (st == CLATTN_SUCCESS && clFinish(r->pc->queue) != CL_SUCCESS)
        st = clattn_fail(r->pc, CLATTN_OPENCL_ERROR, "clFinish failed on the check problem");
    if (st == CLATTN_SUCCESS)
        st = clattn_workload_read(r->pc, &r->check, r->got);
    if (st != CLATTN_SUCCESS)
        return fail_why(r, st, why, why_len);
    if (!clattn_tune_compare(r->got, r->check.expected, r->check.out_elems,
                             dt == CLATTN_BF16 ? REL_CHECK_BF16 : dt == CLATTN_F16 ? REL_CHECK_F16
                                                                               : REL_CHECK_F32,
                             &err, &tol)) {
        snprintf(why, why_len, "wrong result on the check problem (Hq=%d Lq=%d Lk=%d): error %.3g, "
                 "tolerance %.3g", r->check.p.Hq, r->check.p.Lq, r->check.p.Lk, err, tol);
        return 0;
    }
    st = clattn_workload_time(r->pc, &r->timing, cfg, r->events, &ms);
    if (warm_ms)
        *warm_ms = ms;
    if (st == CLATTN_SUCCESS)
        st = clattn_workload_read(r->pc, &r->timing, r->got);
    if (st != CLATTN_SUCCESS)
        return fail_why(r, st, why, why_len);
    if (r->timing.has_expected &&
        !clattn_tune_compare(r->got, r->timing.expected, r->timing.out_elems,
                             dt == CLATTN_BF16 ? REL_SAME_BF16 : dt == CLATTN_F16 ? REL_SAME_F16
                                                                             : REL_SAME_F32,
                             &err, &tol)) {
        snprintf(why, why_len, "result differs from the defaults' at full size: error %.3g, "
                 "tolerance %.3g", err, tol);
        return 0;
    }
    return 1;
}

int clattn_tune_check(clattn_tune_rig *r, const clattn_tune_config *cfg, double *warm_ms, char *why,
                      size_t why_len)
{
    return check_config(r, cfg, warm_ms, why, why_len);
}

int clattn_tune_measure(clattn_tune_rig *r, const clattn_tune_config *cfg, double best_ms,
                        double *ms, char *why, size_t why_len)
{
    double samples[MAX_SAMPLES], total = 0, warm;
    int n, ok = 0;
    if (!check_config(r, cfg, &warm, why, why_len))
        goto out;
    if (r->events && best_ms > 0 && warm > WARM_PRUNE_FACTOR * best_ms) {
        /* far slower even allowing for a cold first run: not worth the timed runs */
        *ms = warm;
        ok = 1;
        goto out;
    }
    /* runs of seconds each: three say enough, and the budget is better spent on candidates */
    int reps = warm > LONG_RUN_MS && r->repeats > 3 ? 3 : r->repeats;
    for (n = 0; n < MAX_SAMPLES && (n < reps || total < MIN_TIMED_MS); n++) {
        clattn_status st = clattn_workload_time(r->pc, &r->timing, cfg, r->events, &samples[n]);
        if (st != CLATTN_SUCCESS) {
            fail_why(r, st, why, why_len);
            goto out;
        }
        total += samples[n];
        if (n == 0 && best_ms > 0 && samples[0] > PRUNE_FACTOR * best_ms) {
            n = 1;               /* clearly slower: one run says enough */
            break;
        }
    }
    qsort(samples, (size_t)n, sizeof samples[0], cmp_double);
    *ms = samples[n / 2];
    ok = 1;
out:
    return ok;
}

clattn_status clattn_tune_paired(clattn_tune_rig *r, const clattn_tune_config *a,
                                 const clattn_tune_config *b, double *ma, double *mb)
{
    double sa[MAX_SAMPLES], sb[MAX_SAMPLES], total = 0;
    clattn_status st = CLATTN_SUCCESS;
    int n, reps = r->repeats;
    for (n = 0; n < MAX_SAMPLES && (n < reps || total < MIN_TIMED_MS); n++) {
        st = clattn_workload_time(r->pc, &r->timing, a, r->events, &sa[n]);
        if (st == CLATTN_SUCCESS)
            st = clattn_workload_time(r->pc, &r->timing, b, r->events, &sb[n]);
        if (st != CLATTN_SUCCESS)
            goto out;
        total += sa[n] + sb[n];
        if (n == 0 && sa[0] > LONG_RUN_MS && reps > 3)
            reps = 3;
    }
    qsort(sa, (size_t)n, sizeof sa[0], cmp_double);
    qsort(sb, (size_t)n, sizeof sb[0], cmp_double);
    *ma = sa[n / 2];
    *mb = sb[n / 2];
out:
    return st;
}
