/* The `mha` entry: one BERT-base multi-head attention layer, B=4, L=512, E=768, 12 heads (dh 64),
 * self-attention with biases, fp32, in one run on the benchmark's queue:
 *
 *   clattn    clattn_mha_forward, each projection backend (desc.projections AUTO, OWN, CLBLAST),
 *             on a context that uses the tuning file ("tuned") and on one with tuning off
 *             ("defaults": the device class's parameters, CLBlast's built-in ones). The attention
 *             is also timed alone on each context (clattn_attention on the same BSHD Q, K, V): the
 *             library enqueues the layer as one call, so the projections are the difference.
 *   clblast   the layer from CLBlast alone (mha_clblast.c), each part timed on its own, then whole.
 *   cpu-blas  the layer from OpenBLAS on the host (mha_cpublas.c), likewise.
 *   rates     the device's FMA peak and OpenBLAS's SGEMM on the projection shape (peak.c), so the
 *             projections read as a share of what the machine and a tuned library reach.
 *
 * Every whole layer is checked against the double-precision reference on batch entry 0
 * (mha_layer.c); clattn's must meet TOL_MHA, the baselines' errors are reported. A row that fails
 * prints its status and message and the entry goes on. */
#include "bench/mha.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Error bound, relative to max(1, max|ref|): four float GEMMs with inner width 768 around the
   attention; clattn's layers must meet it, the baselines' errors are reported. */
#define TOL_MHA 1e-4

#ifdef BENCH_HAVE_CLBLAST

typedef enum { KIND_CLATTN_LAYER, KIND_CLATTN_ATTENTION, KIND_CLBLAST, KIND_CPUBLAS } row_kind;
typedef enum { CTX_DEFAULTS = 0, CTX_TUNED, CTX_COUNT } ctx_kind;

typedef struct row_def {
    const char *key, *label;
    row_kind kind;
    mha_part part;                 /* what a baseline row times; MHA_WHOLE for clattn layers */
    ctx_kind ctx;                  /* clattn rows */
    clattn_projection_impl proj;   /* clattn layer rows */
} row_def;

/* Measured in this order. CLBlast keeps a parameter override for the rest of the process
   (host/layer/gemm_clblast.c), so every row that runs CLBlast at its own parameters (the clblast
   layer, clattn's CLBLAST projections with tuning off) comes before the first tuned row. */
static const row_def row_defs[] = {
    {"clblast-in-proj", "clblast   q,k,v projections", KIND_CLBLAST, MHA_IN_PROJ, 0, 0},
    {"clblast-attention", "clblast   attention", KIND_CLBLAST, MHA_ATTENTION, 0, 0},
    {"clblast-out-proj", "clblast   out projection", KIND_CLBLAST, MHA_OUT_PROJ, 0, 0},
    {"clblast-layer", "clblast   layer (all parts)", KIND_CLBLAST, MHA_WHOLE, 0, 0},
    {"clattn-defaults-attention", "clattn    defaults: attention alone", KIND_CLATTN_ATTENTION,
     MHA_ATTENTION, CTX_DEFAULTS, 0},
    {"clattn-defaults-auto", "clattn    defaults: layer, auto", KIND_CLATTN_LAYER, MHA_WHOLE,
     CTX_DEFAULTS, CLATTN_PROJ_AUTO},
    {"clattn-defaults-own", "clattn    defaults: layer, own GEMM", KIND_CLATTN_LAYER, MHA_WHOLE,
     CTX_DEFAULTS, CLATTN_PROJ_OWN},
    {"clattn-defaults-clblast", "clattn    defaults: layer, CLBlast", KIND_CLATTN_LAYER, MHA_WHOLE,
     CTX_DEFAULTS, CLATTN_PROJ_CLBLAST},
    {"cpu-blas-in-proj", "cpu-blas  q,k,v projections", KIND_CPUBLAS, MHA_IN_PROJ, 0, 0},
    {"cpu-blas-attention", "cpu-blas  attention", KIND_CPUBLAS, MHA_ATTENTION, 0, 0},
    {"cpu-blas-out-proj", "cpu-blas  out projection", KIND_CPUBLAS, MHA_OUT_PROJ, 0, 0},
    {"cpu-blas-layer", "cpu-blas  layer (all parts)", KIND_CPUBLAS, MHA_WHOLE, 0, 0},
    {"clattn-tuned-attention", "clattn    tuned: attention alone", KIND_CLATTN_ATTENTION,
     MHA_ATTENTION, CTX_TUNED, 0},
    {"clattn-tuned-auto", "clattn    tuned: layer, auto", KIND_CLATTN_LAYER, MHA_WHOLE, CTX_TUNED,
     CLATTN_PROJ_AUTO},
    {"clattn-tuned-own", "clattn    tuned: layer, own GEMM", KIND_CLATTN_LAYER, MHA_WHOLE, CTX_TUNED,
     CLATTN_PROJ_OWN},
    {"clattn-tuned-clblast", "clattn    tuned: layer, CLBlast", KIND_CLATTN_LAYER, MHA_WHOLE,
     CTX_TUNED, CLATTN_PROJ_CLBLAST},
};
enum { ROW_COUNT = sizeof row_defs / sizeof row_defs[0] };
_Static_assert(ROW_COUNT <= BENCH_MHA_MAX_ROWS, "bench_mha_report holds every row");

/* The summary's rows, in the README's order, with the names it prints. */
static const struct {
    const char *key, *label;
} summary[] = {
    {"clattn-tuned-auto", "clattn tuned (auto)"},
    {"clattn-tuned-own", "clattn tuned, own GEMM"},
    {"clattn-tuned-clblast", "clattn tuned, CLBlast"},
    {"clattn-defaults-auto", "clattn defaults (auto)"},
    {"clattn-defaults-own", "clattn defaults, own GEMM"},
    {"clattn-defaults-clblast", "clattn, CLBlast defaults"},
    {"clblast-layer", "clblast pipeline"},
    {"cpu-blas-layer", "cpu-blas (OpenBLAS)"},
};

typedef struct clattn_run {
    mha_layer *m;
    clattn_context *ctx;
    clattn_mha_desc desc;
    int attention_only;
} clattn_run;

static bench_outcome clattn_enqueue(void *state, char *note, size_t note_len)
{
    clattn_run *c = state;
    mha_layer *m = c->m;
    clattn_status st = c->attention_only
        ? clattn_attention(c->ctx, &m->attn, m->q, m->k, m->v, NULL, m->o, NULL, NULL)
        : clattn_mha_forward(c->ctx, &c->desc, &m->w, m->x_dev, NULL, NULL, NULL, m->out, NULL);
    if (st == CLATTN_SUCCESS)
        return BENCH_OK;
    snprintf(note, note_len, "%s: %s", clattn_status_string(st), clattn_context_last_error(c->ctx));
    return st == CLATTN_UNSUPPORTED ? BENCH_UNSUPPORTED : BENCH_FAILED;
}

static bench_outcome clattn_once(void *state, double *kernel_s, double *wall_s, char *note,
                                 size_t note_len)
{
    clattn_run *c = state;
    return bench_time_device(c->m->dev->queue, clattn_enqueue, state, kernel_s, wall_s, note,
                             note_len);
}

/* The context of a kind, created on first use on the bench's queue. */
static clattn_context *context_of(const bench_device *dev, clattn_context *ctxs[CTX_COUNT], ctx_kind k,
                                  char *note, size_t note_len)
{
    if (ctxs[k])
        return ctxs[k];
    clattn_context_options o;
    memset(&o, 0, sizeof o);
    o.tuning = k == CTX_TUNED ? CLATTN_SWITCH_ON : CLATTN_SWITCH_OFF;
    clattn_status st = clattn_context_create_from_queue_with_options(dev->queue, &o, &ctxs[k]);
    if (st != CLATTN_SUCCESS) {
        snprintf(note, note_len, "clattn_context_create_from_queue_with_options: %s",
                 clattn_status_string(st));
        return NULL;
    }
    if (k == CTX_TUNED) {
        clattn_cache_info info;
        if (clattn_context_cache_info(ctxs[k], &info) == CLATTN_SUCCESS)
            printf("  (tuned context: tuning file %s, %zu entries)\n",
                   info.enabled && info.tuning_file[0] ? info.tuning_file : "none (cache off)",
                   info.tuning_entries);
    }
    return ctxs[k];
}

static bench_outcome measure_clattn(mha_layer *m, const row_def *d, clattn_context *ctxs[CTX_COUNT],
                                    mha_clblast *cb, const bench_options *opt, bench_result *r)
{
    clattn_run c;
    memset(&c, 0, sizeof c);
    c.m = m;
    r->dtype = "f32";
    if (d->ctx == CTX_TUNED && opt->no_tuning) {
        snprintf(r->note, sizeof r->note, "--no-tuning: tuned rows not run");
        return BENCH_SKIPPED;
    }
    if (!(c.ctx = context_of(m->dev, ctxs, d->ctx, r->note, sizeof r->note)))
        return BENCH_FAILED;
    c.desc = m->desc;
    c.desc.projections = d->proj;
    c.attention_only = d->kind == KIND_CLATTN_ATTENTION;
    bench_outcome o;
    if (c.attention_only) {
        /* realistic Q, K, V for the attention alone: the projections of the input */
        if ((o = mha_clblast_project_qkv(cb, r->note, sizeof r->note)) != BENCH_OK)
            return o;
    } else if (mha_layer_poison(m, r->note, sizeof r->note)) {
        return BENCH_FAILED;
    }
    /* A warning this row raised (a tuning entry not used, a point passed over) explains a tuned
       row that runs as the defaults do; the row goes on, with the warning in its note. The
       context keeps its last warning, so only a changed one is this row's. */
    char before[sizeof r->note];
    snprintf(before, sizeof before, "%s", clattn_context_last_warning(c.ctx));
    o = bench_measure(clattn_once, &c, opt, r);
    const char *warning = clattn_context_last_warning(c.ctx);
    if (o == BENCH_OK && warning[0] && strcmp(warning, before) != 0)
        snprintf(r->note, sizeof r->note, "warning: %.490s", warning);
    if (o != BENCH_OK || c.attention_only)
        return o;
    char err[256];
    if (mha_layer_check_device(m, TOL_MHA, r, err, sizeof err)) {
        snprintf(r->note, sizeof r->note, "%s", err);
        return BENCH_FAILED;
    }
    return BENCH_OK;
}

static bench_outcome measure_row(mha_layer *m, const row_def *d, clattn_context *ctxs[CTX_COUNT],
                                 mha_clblast *cb, const bench_options *opt, bench_result *r)
{
    bench_outcome o;
    switch (d->kind) {
    case KIND_CLBLAST:
        if (d->part == MHA_WHOLE && mha_layer_poison(m, r->note, sizeof r->note))
            return BENCH_FAILED;
        if ((o = mha_clblast_measure(cb, d->part, opt, r)) != BENCH_OK || d->part != MHA_WHOLE)
            return o;
        char err[256];
        if (mha_layer_check_device(m, TOL_MHA, r, err, sizeof err)) {
            snprintf(r->note, sizeof r->note, "%s", err);
            return BENCH_FAILED;
        }
        return BENCH_OK;
    case KIND_CPUBLAS:
        return mha_cpublas_measure(m, d->part, opt, TOL_MHA, r);
    case KIND_CLATTN_LAYER:
    case KIND_CLATTN_ATTENTION:
        return measure_clattn(m, d, ctxs, cb, opt, r);
    }
    return BENCH_FAILED;
}

static const char *outcome_word(bench_outcome o)
{
    return o == BENCH_SKIPPED ? "skipped" : o == BENCH_UNSUPPORTED ? "unsupported" : "FAILED";
}

static void print_row(const bench_mha_row *row)
{
    const bench_result *r = &row->r;
    printf("  %-36s ", row->label);
    if (r->outcome != BENCH_OK) {
        printf("%s: %s\n", outcome_word(r->outcome), r->note);
        return;
    }
    printf("%5d %10.2f %9.2f %9.2f %9.2f %9.1f", r->reps, r->kernel_s.median * 1e3,
           r->kernel_s.min * 1e3, r->kernel_s.max * 1e3, r->wall_s.median * 1e3, r->gflops);
    if (r->checked)
        printf("  err %.2e%s", r->max_err, r->err_ok ? "" : " > tol");
    printf("\n");
    if (r->note[0])
        printf("  %-36s (%s)\n", "", r->note);
    fflush(stdout);
}

static int find(const bench_mha_report *rep, const char *key)
{
    for (int i = 0; i < rep->n_rows; i++)
        if (strcmp(rep->rows[i].key, key) == 0)
            return i;
    return -1;
}

static double median_of(const bench_mha_report *rep, const char *key)
{
    const int i = find(rep, key);
    return i >= 0 && rep->rows[i].r.outcome == BENCH_OK ? rep->rows[i].r.kernel_s.median : 0.0;
}

/* The projections and the attention's share of each whole layer, and the speedups. */
static void derive(bench_mha_report *rep)
{
    const double cpublas = median_of(rep, "cpu-blas-layer"), clblast = median_of(rep, "clblast-layer");
    for (int i = 0; i < rep->n_rows; i++) {
        bench_mha_row *row = &rep->rows[i];
        const row_def *d = &row_defs[i];
        const double layer = row->r.outcome == BENCH_OK ? row->r.kernel_s.median : 0.0;
        if (d->part != MHA_WHOLE || layer <= 0.0)
            continue;
        double attention = 0.0;
        if (d->kind == KIND_CLATTN_LAYER) {
            attention = median_of(rep, d->ctx == CTX_TUNED ? "clattn-tuned-attention"
                                                            : "clattn-defaults-attention");
            row->proj_s = attention > 0.0 ? layer - attention : 0.0;
        } else {
            const char *in = d->kind == KIND_CLBLAST ? "clblast-in-proj" : "cpu-blas-in-proj";
            const char *at = d->kind == KIND_CLBLAST ? "clblast-attention" : "cpu-blas-attention";
            const char *out = d->kind == KIND_CLBLAST ? "clblast-out-proj" : "cpu-blas-out-proj";
            attention = median_of(rep, at);
            const double a = median_of(rep, in), b = median_of(rep, out);
            row->proj_s = a > 0.0 && b > 0.0 ? a + b : 0.0;
        }
        row->proj_gflops = row->proj_s > 0.0 ? rep->proj_flops / row->proj_s * 1e-9 : 0.0;
        row->attention_share = attention > 0.0 ? attention / layer : 0.0;
        row->over_cpublas = cpublas > 0.0 ? cpublas / layer : 0.0;
        row->over_clblast = clblast > 0.0 ? clblast / layer : 0.0;
    }
}

static void print_ratio(double x)
{
    if (x > 0.0)
        printf(" %10.2fx", x);
    else
        printf(" %11s", "-");
}

static void print_summary(const bench_mha_report *rep)
{
    const double peak = rep->fma_peak.outcome == BENCH_OK ? rep->fma_peak.gflops : 0.0;
    const double sgemm = rep->sgemm.outcome == BENCH_OK ? rep->sgemm.gflops : 0.0;
    printf("\n  layer table (medians; projections = layer - attention alone; ratios: baseline "
           "median / row median, this run)\n");
    printf("  %-26s %9s %8s | %9s %8s %6s %7s | %6s | %11s %11s\n", "layer", "ms", "GFLOP/s",
           "proj ms", "GFLOP/s", "%peak", "/sgemm", "attn", "vs cpu-blas", "vs clblast");
    for (size_t s = 0; s < sizeof summary / sizeof summary[0]; s++) {
        const int i = find(rep, summary[s].key);
        if (i < 0)
            continue;
        const bench_mha_row *row = &rep->rows[i];
        printf("  %-26s ", summary[s].label);
        if (row->r.outcome != BENCH_OK) {
            printf("%s\n", outcome_word(row->r.outcome));
            continue;
        }
        printf("%9.2f %8.1f | ", row->r.kernel_s.median * 1e3, row->r.gflops);
        if (row->proj_gflops > 0.0) {
            printf("%9.2f %8.1f ", row->proj_s * 1e3, row->proj_gflops);
            if (peak > 0.0)
                printf("%5.1f%% ", 100.0 * row->proj_gflops / peak);
            else
                printf("%6s ", "-");
            if (sgemm > 0.0)
                printf("%6.2fx", row->proj_gflops / sgemm);
            else
                printf("%7s", "-");
        } else {
            printf("%9s %8s %6s %7s", "-", "-", "-", "-");
        }
        if (row->attention_share > 0.0)
            printf(" | %5.1f%% |", 100.0 * row->attention_share);
        else
            printf(" | %6s |", "-");
        print_ratio(row->over_cpublas);
        print_ratio(row->over_clblast);
        printf("\n");
    }
    if (peak > 0.0)
        printf("  device FMA peak (measured): %.1f GFLOP/s (%s)\n", peak, rep->fma_peak.note);
    else
        printf("  device FMA peak: not measured: %s\n", rep->fma_peak.note);
    if (sgemm > 0.0)
        printf("  OpenBLAS sgemm (measured): %.1f GFLOP/s (%s)\n", sgemm, rep->sgemm.note);
    else
        printf("  OpenBLAS sgemm: not measured: %s\n", rep->sgemm.note);
}

int bench_mha_entry(const bench_device *dev, const bench_options *opt, bench_mha_report *rep)
{
    mha_layer m;
    mha_clblast *cb = NULL;
    clattn_context *ctxs[CTX_COUNT] = {NULL, NULL};
    char err[512] = "";
    int rc = 1;
    memset(rep, 0, sizeof *rep);
    memset(&m, 0, sizeof m);
    rep->B = MHA_B, rep->L = MHA_L, rep->E = MHA_E, rep->heads = MHA_HEADS;
    rep->proj_flops = 4.0 * 2.0 * MHA_B * MHA_L * (double)MHA_E * MHA_E;
    rep->attention_flops = 4.0 * MHA_B * MHA_HEADS * (double)MHA_L * MHA_L * MHA_DH;
    printf("\n== mha: B=%d L=%d E=%d heads=%d (dh %d), self-attention with biases, f32  (projections "
           "%.2f GFLOP, attention %.2f GFLOP)\n", MHA_B, MHA_L, MHA_E, MHA_HEADS, MHA_DH,
           rep->proj_flops * 1e-9, rep->attention_flops * 1e-9);
    if (mha_layer_create(dev, &m, err, sizeof err) || mha_clblast_create(&m, &cb, err, sizeof err)) {
        printf("  FAILED: %s\n", err);
        goto out;
    }
    rep->ran = 1;
    printf("  %-36s %5s %10s %9s %9s %9s %9s\n", "method and part", "reps", "median ms", "min ms",
           "max ms", "wall ms", "GFLOP/s");
    fflush(stdout);
    rc = 0;
    for (int i = 0; i < ROW_COUNT; i++) {
        const row_def *d = &row_defs[i];
        bench_mha_row *row = &rep->rows[rep->n_rows++];
        row->key = d->key;
        row->label = d->label;
        row->part = d->part == MHA_IN_PROJ ? "q,k,v projections" : d->part == MHA_ATTENTION ? "attention"
                  : d->part == MHA_OUT_PROJ ? "out projection" : "layer";
        row->flops = d->part == MHA_IN_PROJ ? 0.75 * rep->proj_flops
                   : d->part == MHA_ATTENTION ? rep->attention_flops
                   : d->part == MHA_OUT_PROJ ? 0.25 * rep->proj_flops
                   : rep->proj_flops + rep->attention_flops;
        row->r.outcome = measure_row(&m, d, ctxs, cb, opt, &row->r);
        if (row->r.outcome == BENCH_OK)
            row->r.gflops = row->flops / row->r.kernel_s.median * 1e-9;
        print_row(row);
        /* A wrong clattn layer fails the run, as does a row that could not run at all;
           the baselines' errors are only reported. */
        if (row->r.outcome == BENCH_FAILED ||
            (d->kind == KIND_CLATTN_LAYER && row->r.checked && !row->r.err_ok))
            rc = 1;
    }
    for (int k = 0; k < CTX_COUNT; k++)
        if (ctxs[k])
            printf("  scratch held by the clattn %s context: %.1f MiB\n",
                   k == CTX_TUNED ? "tuned" : "defaults",
                   (double)clattn_context_scratch_bytes(ctxs[k]) / 1048576.0);
    printf("  errors: max |out - reference| on batch entry 0, max|ref| %.2f, clattn's tolerance "
           "%.1e\n", m.max_ref, TOL_MHA * fmax(1.0, m.max_ref));

    bench_fma_peak(dev, &rep->fma_peak);
    bench_openblas_sgemm_nt(dev, MHA_B * MHA_L, MHA_E, MHA_E, opt, &rep->sgemm);
    derive(rep);
    print_summary(rep);
out:
    for (int k = 0; k < CTX_COUNT; k++)
        clattn_context_release(ctxs[k]);
    mha_clblast_release(cb);
    mha_layer_release(&m);
    return rc;
}

#else /* !BENCH_HAVE_CLBLAST */

int bench_mha_entry(const bench_device *dev, const bench_options *opt, bench_mha_report *rep)
{
    (void)dev;
    (void)opt;
    memset(rep, 0, sizeof *rep);
    printf("\n== mha: skipped: CLBlast was not found at configure time (the clblast layer and the "
           "inputs of the attention timed alone need it)\n");
    return 0;
}

#endif
