/* --json FILE: everything the table shows, and what produced it, machine-readable. */
#include "bench/bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"   /* meson passes get_option('buildtype') */
#endif
#ifndef BENCH_COMPILER
#define BENCH_COMPILER "unknown"    /* meson passes the compiler id and version */
#endif

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinity: those become null. */
static void put_number(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, "%.9g", x);
    else
        fputs("null", f);
}

static void put_stats(FILE *f, const char *key, const bench_stats *s)
{
    fprintf(f, "\"%s\": {\"min\": ", key);
    put_number(f, s->min);
    fputs(", \"median\": ", f);
    put_number(f, s->median);
    fputs(", \"max\": ", f);
    put_number(f, s->max);
    fputs("}", f);
}

static const char *status_word(bench_outcome o)
{
    switch (o) {
    case BENCH_OK: return "ok";
    case BENCH_SKIPPED: return "skipped";
    case BENCH_UNSUPPORTED: return "unsupported";
    case BENCH_FAILED: return "failed";
    }
    return "?";
}

static void put_result(FILE *f, const bench_result *r)
{
    fprintf(f, "{\"status\": \"%s\", \"dtype\": ", status_word(r->outcome));
    put_string(f, r->dtype ? r->dtype : "");
    if (r->outcome != BENCH_OK) {
        fputs(", \"note\": ", f);
        put_string(f, r->note);
        fputs("}", f);
        return;
    }
    fprintf(f, ", \"reps\": %d, ", r->reps);
    put_stats(f, "kernel_s", &r->kernel_s);
    fputs(", ", f);
    put_stats(f, "wall_s", &r->wall_s);
    fputs(", \"gflops\": ", f);
    put_number(f, r->gflops);
    fputs(", \"kv_gbps\": ", f);
    if (r->gbps > 0)
        put_number(f, r->gbps);
    else
        fputs("null", f);
    if (r->checked) {
        fputs(", \"max_abs_error\": ", f);
        put_number(f, r->max_err);
        fputs(", \"max_abs_ref\": ", f);
        put_number(f, r->max_ref);
        fputs(", \"tolerance\": ", f);
        put_number(f, r->tol);
        fprintf(f, ", \"error_ok\": %s", r->err_ok ? "true" : "false");
    }
    if (r->has_scratch)
        fprintf(f, ", \"scratch_bytes\": %zu", r->scratch_bytes);
    if (r->note[0]) {   /* a warning the method went on despite */
        fputs(", \"note\": ", f);
        put_string(f, r->note);
    }
    fputs("}", f);
}

static void put_positive(FILE *f, double x)
{
    if (x > 0.0)
        put_number(f, x);
    else
        fputs("null", f);
}

static void put_entry(FILE *f, const bench_entry *entries, int n, int i)
{
    const bench_entry *e = &entries[i];
    const bench_shape *s = &e->shape;
    fputs("    {\"name\": ", f);
    put_string(f, s->name);
    fprintf(f, ", \"B\": %d, \"Hq\": %d, \"Hkv\": %d, \"Lq\": %d, \"Lk\": %d, \"d\": %d, "
               "\"dv\": %d, \"causal\": %s, \"layout\": \"BHSD\", \"flops\": ",
            s->B, s->Hq, s->Hkv, s->Lq, s->Lk, s->d, s->d,
            s->causal ? "\"bottom-right\"" : "null");
    put_number(f, bench_shape_flops(s));
    fputs(", \"window\": ", f);
    if (s->window)
        fprintf(f, "{\"left\": %d, \"right\": 0}", s->window);
    else
        fputs("null", f);
    fputs(", \"kv_bytes_f32\": ", f);
    put_number(f, bench_shape_kv_bytes(s, 4));
    fputs(", \"score_bytes\": ", f);
    put_number(f, bench_shape_score_bytes(s));
    /* "results": the f32 rows; "results_f16", "results_bf16": the rows of --f16 and --bf16 */
    for (int t = 0; t < BENCH_DTYPE_COUNT; t++) {
        const clattn_dtype dtype = (clattn_dtype)t;
        if (!e->dtypes[t])
            continue;
        if (dtype == CLATTN_F32)
            fputs(",\n     \"results\": {", f);
        else
            fprintf(f, ",\n     \"results_%s\": {", bench_dtype_name(dtype));
        int first = 1;
        for (int m = 0; m < BENCH_METHOD_COUNT; m++) {
            if (!e->ran[m])
                continue;
            fprintf(f, "%s\n       \"%s\": ", first ? "" : ",", bench_method_names[m]);
            put_result(f, &e->result[t][m]);
            first = 0;
        }
        fputs("}", f);
    }
    /* "fused_over_clblast" and so on for f32; "fused_f16_over_clblast" for a 16-bit type, against
       the same f32 baselines */
    fputs(",\n     \"speedups\": {", f);
    static const bench_method clattn[] = {BENCH_FUSED, BENCH_UNFUSED};
    static const bench_method base[] = {BENCH_CLBLAST, BENCH_CPUBLAS};
    for (int t = 0, first = 1; t < BENCH_DTYPE_COUNT; t++) {
        const clattn_dtype dtype = (clattn_dtype)t;
        if (!e->dtypes[t])
            continue;
        for (int c = 0; c < 2; c++)
            for (int b = 0; b < 2; b++) {
                double x = bench_speedup(e, dtype, clattn[c], base[b]);
                fprintf(f, "%s\"%s%s%s_over_%s\": ", first ? "" : ", ",
                        bench_method_names[clattn[c]], dtype == CLATTN_F32 ? "" : "_",
                        dtype == CLATTN_F32 ? "" : bench_dtype_name(dtype),
                        bench_method_names[base[b]]);
                put_positive(f, x);
                first = 0;
            }
    }
    if (s->window) {
        /* partner median / this median, fused path, as the line after the table */
        int p;
        double x = bench_window_speedup(entries, n, i, &p);
        fputs(", \"fused_window_over_causal\": ", f);
        if (p >= 0) {
            fputs("{\"causal_shape\": ", f);
            put_string(f, entries[p].shape.name);
            fputs(", \"speedup\": ", f);
            put_positive(f, x);
            fputs(", \"flop_ratio\": ", f);
            put_number(f, bench_shape_flops(&entries[p].shape) / bench_shape_flops(s));
            fputs("}", f);
        } else {
            fputs("null", f);
        }
    }
    if (bench_shape_is_decode(s) && (e->dtypes[CLATTN_F16] || e->dtypes[CLATTN_BF16])) {
        /* the line after the table: the fused path per storage type of the run, tokens/s (B per
           call) and K/V bytes read; over_f32 = f32 median / this median (null: did not run) */
        fputs(",\n       \"fused_decode_storage\": {", f);
        for (int t = 0, first = 1; t < BENCH_DTYPE_COUNT; t++) {
            const clattn_dtype dtype = (clattn_dtype)t;
            const bench_result *r = &e->result[t][BENCH_FUSED];
            if (!e->dtypes[t])
                continue;
            fprintf(f, "%s\"%s\": {\"kv_bytes\": ", first ? "" : ", ", bench_dtype_name(dtype));
            put_number(f, bench_shape_kv_bytes(s, bench_dtype_size(dtype)));
            fputs(", \"tokens_per_s\": ", f);
            put_positive(f, e->ran[BENCH_FUSED] && r->outcome == BENCH_OK && r->kernel_s.median > 0
                                ? s->B / r->kernel_s.median : 0.0);
            if (dtype != CLATTN_F32) {
                fputs(", \"tokens_per_s_over_f32\": ", f);
                put_positive(f, bench_decode_storage_ratio(e, dtype));
            }
            fputs("}", f);
            first = 0;
        }
        fputs("}", f);
    }
    fputs("}}", f);
}

static void put_rate(FILE *f, const char *key, const bench_rate *r)
{
    fprintf(f, "\"%s\": {\"status\": \"%s\", \"gflops\": ", key, status_word(r->outcome));
    put_positive(f, r->outcome == BENCH_OK ? r->gflops : 0.0);
    fputs(", \"note\": ", f);
    put_string(f, r->note);
    fputs("}", f);
}

/* The layer entry: its shape, every row (whole layers with their derived figures), the rates. */
static void put_mha(FILE *f, const bench_mha_report *m)
{
    fprintf(f, "  \"mha\": {\"B\": %d, \"L\": %d, \"E\": %d, \"heads\": %d, \"dtype\": \"f32\", "
               "\"projection_flops\": ", m->B, m->L, m->E, m->heads);
    put_number(f, m->proj_flops);
    fputs(", \"attention_flops\": ", f);
    put_number(f, m->attention_flops);
    fputs(",\n    ", f);
    put_rate(f, "fma_peak", &m->fma_peak);
    fputs(",\n    ", f);
    put_rate(f, "openblas_sgemm", &m->sgemm);
    fputs(",\n    \"rows\": {", f);
    for (int i = 0; i < m->n_rows; i++) {
        const bench_mha_row *row = &m->rows[i];
        fprintf(f, "%s\n      ", i ? "," : "");
        put_string(f, row->key);
        fputs(": {\"part\": ", f);
        put_string(f, row->part);
        fputs(", \"flops\": ", f);
        put_number(f, row->flops);
        fputs(", \"result\": ", f);
        put_result(f, &row->r);
        if (row->r.outcome == BENCH_OK && strcmp(row->part, "layer") == 0) {
            fputs(", \"projections_s\": ", f);
            put_positive(f, row->proj_s);
            fputs(", \"projections_gflops\": ", f);
            put_positive(f, row->proj_gflops);
            fputs(", \"projections_share_of_fma_peak\": ", f);
            put_positive(f, m->fma_peak.outcome == BENCH_OK && m->fma_peak.gflops > 0
                                ? row->proj_gflops / m->fma_peak.gflops : 0.0);
            fputs(", \"projections_over_openblas_sgemm\": ", f);
            put_positive(f, m->sgemm.outcome == BENCH_OK && m->sgemm.gflops > 0
                                ? row->proj_gflops / m->sgemm.gflops : 0.0);
            fputs(", \"attention_share\": ", f);
            put_positive(f, row->attention_share);
            fputs(", \"speedup_over_cpu_blas\": ", f);
            put_positive(f, row->over_cpublas);
            fputs(", \"speedup_over_clblast\": ", f);
            put_positive(f, row->over_clblast);
        }
        fputs("}", f);
    }
    fputs("\n    }},\n", f);
}

int bench_report_json(const char *path, const bench_device *dev, const bench_options *opt,
                      const bench_entry *entries, int n, const bench_mha_report *mha, int passed,
                      char *err, size_t err_len)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fputs("{\n  \"tool\": \"clattn-bench\",\n  \"clattn_version\": ", f);
    put_string(f, clattn_version());
    fputs(",\n  \"build\": {\"header_version\": ", f);
    put_string(f, CLATTN_VERSION_STRING);
    fputs(", \"buildtype\": ", f);
    put_string(f, BENCH_BUILDTYPE);
    fputs(", \"compiler\": ", f);
    put_string(f, BENCH_COMPILER);
#ifdef BENCH_HAVE_CLBLAST
    fputs(", \"clblast\": true", f);
#else
    fputs(", \"clblast\": false", f);
#endif
#ifdef BENCH_HAVE_CBLAS
    fputs(", \"openblas\": true},\n", f);
#else
    fputs(", \"openblas\": false},\n", f);
#endif
    fputs("  \"device\": {\"name\": ", f);
    put_string(f, dev->name);
    fputs(", \"vendor\": ", f);
    put_string(f, dev->vendor);
    fputs(", \"type\": ", f);
    put_string(f, bench_device_type_name(dev->type));
    fputs(", \"platform\": ", f);
    put_string(f, dev->platform);
    fputs(", \"driver_version\": ", f);
    put_string(f, dev->driver);
    fputs(", \"device_version\": ", f);
    put_string(f, dev->version);
    fprintf(f, ", \"compute_units\": %u, \"max_alloc_bytes\": %llu, \"global_mem_bytes\": %llu},\n",
            dev->compute_units, (unsigned long long)dev->max_alloc,
            (unsigned long long)dev->global_mem);
    fputs("  \"options\": {\"device_selector\": ", f);
    if (opt->device)
        put_string(f, opt->device);
    else
        fputs("null", f);
    fprintf(f, ", \"quick\": %s, \"f16\": %s, \"bf16\": %s, \"no_tuning\": %s, \"reps\": %d, "
               "\"target_s\": ", opt->quick ? "true" : "false",
            opt->dtypes[CLATTN_F16] ? "true" : "false", opt->dtypes[CLATTN_BF16] ? "true" : "false",
            opt->no_tuning ? "true" : "false", opt->reps);
    put_number(f, opt->target_s);
    fprintf(f, ", \"min_reps\": %d, \"max_reps\": %d, \"only\": [", opt->min_reps, opt->max_reps);
    for (int m = 0, first = 1; m < BENCH_METHOD_COUNT; m++)
        if (opt->only[m]) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", bench_method_names[m]);
            first = 0;
        }
    fputs("], \"only_shapes\": ", f);   /* null: the whole suite (or the custom shape) */
    if (opt->shapes_named) {
        fputs("[", f);
        for (int i = 0; i < opt->n_shapes; i++) {
            fputs(i ? ", " : "", f);
            put_string(f, opt->shapes[i]->name);
        }
        fputs("]", f);
    } else {
        fputs("null", f);
    }
    fputs("},\n  \"shapes\": [\n", f);
    for (int i = 0; i < n; i++) {
        put_entry(f, entries, n, i);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("  ],\n", f);
    if (mha && mha->ran)
        put_mha(f, mha);
    fprintf(f, "  \"passed\": %s\n}\n", passed ? "true" : "false");
    if (fclose(f) != 0) {
        snprintf(err, err_len, "writing %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}
