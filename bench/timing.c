/* How every method is timed: warm up, calibrate, then a batch of samples sized to a target time
 * (clpeak's run_kernel); kernel time from profiling events, wall time from the host clock. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static cl_int event_time(cl_event ev, cl_profiling_info what, cl_ulong *ns)
{
    return clGetEventProfilingInfo(ev, what, sizeof *ns, ns, NULL);
}

int bench_events_report_zero(cl_command_queue queue)
{
    cl_event ev = NULL;
    cl_ulong start = 1, end = 1;
    if (clEnqueueMarkerWithWaitList(queue, 0, NULL, &ev) != CL_SUCCESS)
        return 0;
    int zero = clFinish(queue) == CL_SUCCESS &&
               event_time(ev, CL_PROFILING_COMMAND_START, &start) == CL_SUCCESS &&
               event_time(ev, CL_PROFILING_COMMAND_END, &end) == CL_SUCCESS && start == 0 && end == 0;
    clReleaseEvent(ev);
    return zero;
}

bench_outcome bench_time_device(cl_command_queue queue, bench_enqueue_fn enqueue, void *state,
                                double *kernel_s, double *wall_s, char *note, size_t note_len)
{
    cl_event first = NULL, last = NULL;
    cl_ulong start = 0, end = 0;
    bench_outcome o = BENCH_FAILED;
    cl_int e;

    double t0 = bench_now();
    /* Markers rather than the methods' own events: a method may enqueue several kernels, or
       (clattn) none we can see. On an in-order queue the first marker starts once everything
       before it is done, and the second ends once everything between them is. */
    if ((e = clEnqueueMarkerWithWaitList(queue, 0, NULL, &first)) != CL_SUCCESS) {
        snprintf(note, note_len, "clEnqueueMarkerWithWaitList: %d", e);
        goto out;
    }
    o = enqueue(state, note, note_len);
    if (o != BENCH_OK) {
        clFinish(queue);
        goto out;
    }
    o = BENCH_FAILED;
    if ((e = clEnqueueMarkerWithWaitList(queue, 0, NULL, &last)) != CL_SUCCESS) {
        snprintf(note, note_len, "clEnqueueMarkerWithWaitList: %d", e);
        goto out;
    }
    if ((e = clFinish(queue)) != CL_SUCCESS) {
        snprintf(note, note_len, "clFinish: %d", e);
        goto out;
    }
    *wall_s = bench_now() - t0;
    if ((e = event_time(first, CL_PROFILING_COMMAND_START, &start)) != CL_SUCCESS ||
        (e = event_time(last, CL_PROFILING_COMMAND_END, &end)) != CL_SUCCESS) {
        snprintf(note, note_len, "clGetEventProfilingInfo: %d", e);
        goto out;
    }
    /* Events that time nothing (rusticl 22.3: 0, or a span of nanoseconds, for every command)
       leave only the host clock; the header says so. */
    *kernel_s = end > start ? (double)(end - start) * 1e-9 : 0.0;
    /* A span under a thousandth of the wall time is not a measurement (rusticl's markers span a
       few ns around seconds of work). */
    if (*kernel_s < 1e-3 * *wall_s)
        *kernel_s = *wall_s;
    o = BENCH_OK;
out:
    if (first)
        clReleaseEvent(first);
    if (last)
        clReleaseEvent(last);
    return o;
}

/* The most time, in units of the target, one entry's timed samples may take. */
#define ENTRY_BUDGET 10

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void stats_of(double *v, int n, bench_stats *s)
{
    s->median = bench_median(v, n);
    s->min = v[0];
    s->max = v[n - 1];
}

bench_outcome bench_measure(bench_run_fn run, void *state, const bench_options *opt,
                            bench_result *r)
{
    double *ks = NULL, *ws = NULL, k = 0, w = 0;
    int reps, have = 0;
    bench_outcome o;

    /* Warm-up: kernel builds, first-touch allocations, CLBlast's program cache. Not timed. */
    if ((o = run(state, &k, &w, r->note, sizeof r->note)) != BENCH_OK)
        return o;
    if (opt->reps > 0) {
        reps = opt->reps;
    } else {
        /* Calibrate on one warm run; it counts as the first sample. */
        if ((o = run(state, &k, &w, r->note, sizeof r->note)) != BENCH_OK)
            return o;
        have = 1;
        const double t = w > 1e-7 ? w : 1e-7, want = ceil(opt->target_s / t);
        reps = want < opt->min_reps ? opt->min_reps
             : want > opt->max_reps ? opt->max_reps : (int)want;
        /* min_reps yields to a budget of ENTRY_BUDGET targets: a 20 s run (the clblast baseline
           on `long`) is timed once or twice rather than holding the suite for minutes. */
        const double fit = floor(ENTRY_BUDGET * opt->target_s / t);
        if (reps > fit)
            reps = fit < 1 ? 1 : (int)fit;
    }
    ks = malloc((size_t)reps * sizeof *ks);
    ws = malloc((size_t)reps * sizeof *ws);
    if (!ks || !ws) {
        snprintf(r->note, sizeof r->note, "out of host memory for %d samples", reps);
        o = BENCH_FAILED;
        goto out;
    }
    if (have) {
        ks[0] = k;
        ws[0] = w;
    }
    for (int i = have; i < reps; i++)
        if ((o = run(state, &ks[i], &ws[i], r->note, sizeof r->note)) != BENCH_OK)
            goto out;
    r->reps = reps;
    stats_of(ks, reps, &r->kernel_s);
    stats_of(ws, reps, &r->wall_s);
    o = BENCH_OK;
out:
    free(ks);
    free(ws);
    return o;
}
