/* The readable table on stdout. */
#include "bench/bench.h"

#include <stdio.h>

const char *const bench_method_names[BENCH_METHOD_COUNT] = {"fused", "unfused", "clblast",
                                                            "cpu-blas"};

static const char *outcome_word(bench_outcome o)
{
    switch (o) {
    case BENCH_OK: return "ok";
    case BENCH_SKIPPED: return "skipped";
    case BENCH_UNSUPPORTED: return "unsupported";
    case BENCH_FAILED: return "FAILED";
    }
    return "?";
}

void bench_report_header(const bench_device *dev, const bench_options *opt)
{
    printf("clattn-bench: clattn %s (built against %s)\n", clattn_version(), CLATTN_VERSION_STRING);
    printf("device: %s [%s, %s, driver %s, %s, %u compute units, max alloc %.0f MiB]\n", dev->name,
           bench_device_type_name(dev->type), dev->platform, dev->driver, dev->version,
           dev->compute_units, (double)dev->max_alloc / 1048576.0);
    printf("suite: %s, clattn storage ", opt->has_custom ? "custom shape"
           : opt->quick ? "quick" : "default");
    for (int t = 0, first = 1; t < BENCH_DTYPE_COUNT; t++)
        if (opt->dtypes[t]) {
            printf("%s%s", first ? "" : "+", bench_dtype_name((clattn_dtype)t));
            first = 0;
        }
    printf(", baselines f32, ");
    if (opt->reps > 0)
        printf("%d timed reps per entry", opt->reps);
    else
        printf("reps sized to %.2f s per entry (%d..%d)", opt->target_s, opt->min_reps,
               opt->max_reps);
    printf(", tuning %s\n", opt->no_tuning ? "off (--no-tuning)" : "on");
    if (dev->events_report_zero)
        printf("times: WALL CLOCK for every method (this implementation's profiling events report "
               "0), enqueue to clFinish; median and wall columns agree\n");
    else
        printf("times: median of kernel time from profiling events (host clock for cpu-blas, and "
               "wherever an event times nothing); wall = enqueue to clFinish\n");
}

void bench_report_shape(const bench_entry *e, const bench_options *opt)
{
    const bench_shape *s = &e->shape;
    (void)opt;
    printf("\n== %s: B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d%s", s->name, s->B, s->Hq, s->Hkv, s->Lq,
           s->Lk, s->d, s->causal ? " causal(bottom-right)" : "");
    if (s->window)
        printf(" window=%d (keys i'-%d..i')", s->window, s->window);
    printf("  (%.3f GFLOP", bench_shape_flops(s) * 1e-9);
    if (bench_shape_is_decode(s))
        printf(", K+V %.1f MiB in f32", bench_shape_kv_bytes(s, 4) / 1048576.0);
    printf(")\n");
    printf("  %-9s %-5s %5s %11s %10s %10s %10s %9s %8s %9s %8s %4s %11s\n", "method", "dtype",
           "reps", "median ms", "min ms", "max ms", "wall ms", "GFLOP/s", "GB/s", "max err", "tol",
           "", "scratch MiB");
    fflush(stdout);
}

void bench_report_row(const bench_entry *e, clattn_dtype dtype, bench_method m)
{
    const bench_result *r = &e->result[dtype][m];
    if (!e->ran[m] || !e->dtypes[dtype])
        return;
    printf("  %-9s %-5s ", bench_method_names[m], r->dtype ? r->dtype : "-");
    if (r->outcome != BENCH_OK) {
        printf("%s: %s\n", outcome_word(r->outcome), r->note);
        fflush(stdout);
        return;
    }
    printf("%5d %11.3f %10.3f %10.3f %10.3f %9.2f ", r->reps, r->kernel_s.median * 1e3,
           r->kernel_s.min * 1e3, r->kernel_s.max * 1e3, r->wall_s.median * 1e3, r->gflops);
    if (r->gbps > 0)
        printf("%8.2f ", r->gbps);
    else
        printf("%8s ", "-");
    if (r->checked)
        printf("%9.2e %8.1e %-4s ", r->max_err, r->tol, r->err_ok ? "ok" : "BAD");
    else
        printf("%9s %8s %-4s ", "-", "-", "");
    if (r->has_scratch)
        printf("%11.2f", (double)r->scratch_bytes / 1048576.0);
    else
        printf("%11s", "-");
    printf("\n");
    fflush(stdout);
}

double bench_speedup(const bench_entry *e, clattn_dtype dtype, bench_method clattn,
                     bench_method baseline)
{
    /* The baselines run in float only: a 16-bit clattn row is set against their f32 row. */
    const bench_result *a = &e->result[dtype][clattn], *b = &e->result[CLATTN_F32][baseline];
    if (!e->ran[clattn] || !e->ran[baseline] || !e->dtypes[dtype] || a->outcome != BENCH_OK ||
        b->outcome != BENCH_OK || a->kernel_s.median <= 0)
        return 0;
    return b->kernel_s.median / a->kernel_s.median;
}

void bench_report_speedups(const bench_entry *e)
{
    static const bench_method clattn[] = {BENCH_FUSED, BENCH_UNFUSED};
    static const bench_method base[] = {BENCH_CLBLAST, BENCH_CPUBLAS};
    if (e->shape.window) {
        printf("  speedup: - (the baselines have no window; the window's speed-up over its causal "
               "partner follows the table)\n");
        fflush(stdout);
        return;
    }
    for (int t = 0; t < BENCH_DTYPE_COUNT; t++) {
        const clattn_dtype dtype = (clattn_dtype)t;
        /* the f32 line always, as before 16-bit rows existed; theirs only where a baseline ran */
        if (!e->dtypes[t] ||
            (dtype != CLATTN_F32 && !e->ran[BENCH_CLBLAST] && !e->ran[BENCH_CPUBLAS]))
            continue;
        if (dtype == CLATTN_F32)
            printf("  speedup (baseline median / clattn median):");
        else
            printf("  speedup, clattn %s (f32 baseline median / clattn %s median):",
                   bench_dtype_name(dtype), bench_dtype_name(dtype));
        for (int c = 0; c < 2; c++) {
            printf("%s %s", c ? " |" : "", bench_method_names[clattn[c]]);
            for (int b = 0; b < 2; b++) {
                double x = bench_speedup(e, dtype, clattn[c], base[b]);
                if (x > 0)
                    printf(" %.3gx vs %s%s", x, bench_method_names[base[b]], b ? "" : ",");
                else
                    printf(" - vs %s%s", bench_method_names[base[b]], b ? "" : ",");
            }
        }
        printf("\n");
    }
    fflush(stdout);
}

double bench_window_speedup(const bench_entry *entries, int n, int i, int *partner)
{
    const bench_entry *w = &entries[i];
    *partner = -1;
    if (!w->shape.window)
        return 0;
    for (int p = 0; p < n; p++)
        if (bench_shape_is_window_partner(&w->shape, &entries[p].shape)) {
            *partner = p;
            break;
        }
    if (*partner < 0)
        return 0;
    /* f32: the storage type every run has */
    const bench_result *a = &w->result[CLATTN_F32][BENCH_FUSED],
                       *b = &entries[*partner].result[CLATTN_F32][BENCH_FUSED];
    if (!w->ran[BENCH_FUSED] || !entries[*partner].ran[BENCH_FUSED] || a->outcome != BENCH_OK ||
        b->outcome != BENCH_OK || a->kernel_s.median <= 0)
        return 0;
    return b->kernel_s.median / a->kernel_s.median;
}

void bench_report_window_speedups(const bench_entry *entries, int n)
{
    int printed = 0;
    for (int i = 0; i < n; i++) {
        const bench_shape *s = &entries[i].shape;
        int p;
        if (!s->window)
            continue;
        if (!printed++)
            printf("\n");
        double x = bench_window_speedup(entries, n, i, &p);
        if (x > 0) {
            /* The FLOP ratio is the speed-up the window would give at equal GFLOP/s. */
            printf("window speed-up: %s is %.1fx faster than %s (fused path, f32, medians of the "
                   "same run; FLOP ratio %.1fx)\n", s->name, x, entries[p].shape.name,
                   bench_shape_flops(&entries[p].shape) / bench_shape_flops(s));
        } else if (p < 0) {
            printf("window speed-up: %s: - (no causal shape of the same sizes in this run)\n",
                   s->name);
        } else {
            printf("window speed-up: %s vs %s: - (the fused path did not run on both)\n", s->name,
                   entries[p].shape.name);
        }
    }
    fflush(stdout);
}

double bench_decode_storage_ratio(const bench_entry *e, clattn_dtype dtype)
{
    const bench_result *a = &e->result[dtype][BENCH_FUSED],
                       *b = &e->result[CLATTN_F32][BENCH_FUSED];
    if (!bench_shape_is_decode(&e->shape) || !e->ran[BENCH_FUSED] || !e->dtypes[dtype] ||
        a->outcome != BENCH_OK || b->outcome != BENCH_OK || a->kernel_s.median <= 0)
        return 0;
    /* A call is one decode step of B tokens, whatever the storage: tokens/s go as 1 / median. */
    return b->kernel_s.median / a->kernel_s.median;
}

void bench_report_decode_storage(const bench_entry *entries, int n)
{
    int printed = 0;
    for (int i = 0; i < n; i++) {
        const bench_entry *e = &entries[i];
        if (!bench_shape_is_decode(&e->shape) ||
            !(e->dtypes[CLATTN_F16] || e->dtypes[CLATTN_BF16]))
            continue;
        if (!printed++)
            printf("\n");
        printf("decode storage: %s: ", e->shape.name);
        if (!e->ran[BENCH_FUSED] || e->result[CLATTN_F32][BENCH_FUSED].outcome != BENCH_OK) {
            printf("- (the fused path did not run in f32)\n");
            continue;
        }
        for (int t = CLATTN_F16, first = 1; t < BENCH_DTYPE_COUNT; t++) {
            if (!e->dtypes[t])
                continue;
            double x = bench_decode_storage_ratio(e, (clattn_dtype)t);
            printf("%s%s ", first ? "" : ", ", bench_dtype_name((clattn_dtype)t));
            if (x > 0)
                printf("%.1fx", x);
            else
                printf("-");
            first = 0;
        }
        printf(" the tokens/s of f32 (K/V bytes read:");
        for (int t = 0, first = 1; t < BENCH_DTYPE_COUNT; t++) {
            if (!e->dtypes[t])
                continue;
            printf("%s %s %.1f MB", first ? "" : ",", bench_dtype_name((clattn_dtype)t),
                   bench_shape_kv_bytes(&e->shape, bench_dtype_size((clattn_dtype)t)) * 1e-6);
            first = 0;
        }
        printf(")\n");
    }
    fflush(stdout);
}
