/* clattn-tune: tunes clattn's kernels for this device on the benchmark's shape suite (the shapes of
 * bench/suite.c, shared) and the benchmark's multi-head layer (its projection GEMMs with each
 * backend, then its attention), or on one shape or one layer, saves the winners in the device's
 * tuning file, and prints default vs tuned time per kernel family. Also lists and clears the caches, and exports the
 * program binaries a device needs (the FPGA flow). Public API only. */
#include <clattn.h>

#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct options {
    const char *device, *export_dir, *families;
    int quick, f16, list, clear, clear_binaries, no_save, has_shape, paths;
    int has_mha, no_mha;
    int serving, no_serving;      /* --serving: the serving batch alone; --no-serving: not it */
    int mha[5];                   /* B, L, E, Hq, Hkv (0: Hq) */
    int max_candidates, repeats;
    double budget_s;
    unsigned long long seed;
    bench_shape shape;
} options;

enum { PATH_FUSED = 1, PATH_UNFUSED = 2 };

static void usage(FILE *f)
{
    fputs("usage: clattn-tune [options]\n"
          "Tunes the benchmark suite's shapes (or --shape) for the device and saves the results in\n"
          "its tuning file; then clattn (and clattn-bench) use them.\n"
          "  --device SELECTOR      as CLATTN_DEVICE: \"P:D\", gpu, cpu, accelerator, or a name part\n"
          "  --shape B,Hq,Hkv,Lq,Lk,d[,causal[,window=W]]   one shape instead of the suite (causal:\n"
          "                         bottom-right; W > 0: a causal sliding window, query i sees keys\n"
          "                         i'-W..i', i' = i + Lk - Lq; 0: none)\n"
          "  --mha B,L,E,H[,Hkv]    one multi-head layer (self-attention, biases) instead of the suite:\n"
          "                         its projection GEMMs with each backend, then its attention\n"
          "  --no-mha               the suite without the benchmark's layer (B 4, L 512, E 768, 12 heads)\n"
          "  --serving              only the serving class: clattn-bench --serving's paged decode batch\n"
          "                         (64 sequences of mixed lengths; 16 with --quick), clattn_tune_varlen\n"
          "  --no-serving           the suite without the serving class\n"
          "  --quick                the benchmark's reduced suite (clattn-bench --quick)\n"
          "  --path fused|unfused|both   which path to tune (default both)\n"
          "  --f16                  F16 storage (the suite is fp32 otherwise)\n"
          "  --budget SECONDS       per shape and path (default 60), and per layer (default 90)\n"
          "  --max-candidates N     per kernel family, the default included\n"
          "  --repeats N            timed runs per candidate (median; default 5)\n"
          "  --families LIST        only these families (e.g. qk,pv)\n"
          "  --seed N               of the random sampling\n"
          "  --no-save              measure and print, but keep the tuning file as it is\n"
          "  --list                 what the caches hold for this device\n"
          "  --clear                remove this device's tuning file\n"
          "  --clear-binaries       remove every cached program binary too\n"
          "  --export-binaries DIR  write the program binaries, kernel sources and their names\n"
          "                         (DIR/clattn-binaries.txt) that the shapes need: see the README,\n"
          "                         \"FPGAs: offline binaries\"\n"
          "  --help                 this text\n",
          f);
}

static int parse_number(const char *opt, const char *val, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(val, &end);
    if (*end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "clattn-tune: %s \"%s\": want a number in [%g, %g]\n", opt, val, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* 0 to go on, 1 to exit successfully, -1 on a usage error. */
static int parse_args(int argc, char **argv, options *o)
{
    o->paths = PATH_FUSED | PATH_UNFUSED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        double num;
        int takes = !strcmp(a, "--device") || !strcmp(a, "--shape") || !strcmp(a, "--mha") ||
                    !strcmp(a, "--path") ||
                    !strcmp(a, "--budget") || !strcmp(a, "--max-candidates") ||
                    !strcmp(a, "--repeats") || !strcmp(a, "--families") || !strcmp(a, "--seed") ||
                    !strcmp(a, "--export-binaries");
        if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "clattn-tune: %s needs a value\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--device")) {
            o->device = val;
        } else if (!strcmp(a, "--shape")) {
            char err[256];
            if (bench_shape_parse(val, &o->shape, err, sizeof err)) {
                fprintf(stderr, "clattn-tune: %s\n", err);
                return -1;
            }
            o->has_shape = 1;
        } else if (!strcmp(a, "--mha")) {
            int *m = o->mha, used = 0;
            m[4] = 0;
            if (sscanf(val, "%d,%d,%d,%d%n,%d%n", &m[0], &m[1], &m[2], &m[3], &used, &m[4], &used) < 4 ||
                val[used] || m[0] < 1 || m[1] < 1 || m[2] < 1 || m[3] < 1 || m[4] < 0) {
                fprintf(stderr, "clattn-tune: --mha \"%s\": want B,L,E,H[,Hkv], all positive\n", val);
                return -1;
            }
            o->has_mha = 1;
        } else if (!strcmp(a, "--no-mha")) {
            o->no_mha = 1;
        } else if (!strcmp(a, "--serving")) {
            o->serving = 1;
        } else if (!strcmp(a, "--no-serving")) {
            o->no_serving = 1;
        } else if (!strcmp(a, "--path")) {
            o->paths = !strcmp(val, "fused") ? PATH_FUSED : !strcmp(val, "unfused") ? PATH_UNFUSED
                     : !strcmp(val, "both") ? PATH_FUSED | PATH_UNFUSED : 0;
            if (!o->paths) {
                fprintf(stderr, "clattn-tune: --path \"%s\": fused, unfused or both\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--budget")) {
            if (parse_number(a, val, 0.1, 1e6, &o->budget_s))
                return -1;
        } else if (!strcmp(a, "--max-candidates")) {
            if (parse_number(a, val, 1, 1e6, &num))
                return -1;
            o->max_candidates = (int)num;
        } else if (!strcmp(a, "--repeats")) {
            if (parse_number(a, val, 1, 64, &num))
                return -1;
            o->repeats = (int)num;
        } else if (!strcmp(a, "--seed")) {
            if (parse_number(a, val, 0, 1e18, &num))
                return -1;
            o->seed = (unsigned long long)num;
        } else if (!strcmp(a, "--families")) {
            o->families = val;
        } else if (!strcmp(a, "--export-binaries")) {
            o->export_dir = val;
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--f16")) {
            o->f16 = 1;
        } else if (!strcmp(a, "--no-save")) {
            o->no_save = 1;
        } else if (!strcmp(a, "--list")) {
            o->list = 1;
        } else if (!strcmp(a, "--clear")) {
            o->clear = 1;
        } else if (!strcmp(a, "--clear-binaries")) {
            o->clear = o->clear_binaries = 1;
        } else {
            fprintf(stderr, "clattn-tune: unknown option \"%s\" (try --help)\n", a);
            return -1;
        }
    }
    return 0;
}

/* ---- progress -------------------------------------------------------------------------------- */

typedef struct progress_state {
    int tty;
    const char *shape, *path;
    int drawn;                   /* a bar is on the line */
} progress_state;

static void on_progress(void *user, const clattn_tune_progress_info *in)
{
    progress_state *ps = user;
    double frac = in->budget_s > 0 ? in->elapsed_s / in->budget_s : 0;
    if (frac > 1)
        frac = 1;
    if (ps->tty) {
        char bar[31];
        int fill = (int)(frac * 30 + 0.5);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r  [%s] %3.0f%%  %s %s (%d/%d): %d tried, %d failed, best %.3f ms   ",
                bar, frac * 100, ps->path, in->family, in->family_index + 1, in->n_families,
                in->tried, in->failed, in->best_ms);
        ps->drawn = 1;
    } else {
        if (in->candidate_ms >= 0)
            printf("  %s %s: %s %.3f ms\n", ps->shape, in->family, in->params, in->candidate_ms);
        else
            printf("  %s %s: %s failed\n", ps->shape, in->family, in->params);
    }
    fflush(ps->tty ? stderr : stdout);
}

static void clear_bar(progress_state *ps)
{
    if (ps->tty && ps->drawn) {
        fprintf(stderr, "\r%100s\r", "");
        ps->drawn = 0;
    }
}

/* ---- the work -------------------------------------------------------------------------------- */

static void print_ms(double ms)
{
    if (ms >= 0)
        printf(" %10.3f", ms);
    else
        printf(" %10s", "-");
}

static void print_speedup(double def, double best)
{
    if (def > 0 && best > 0)
        printf(" %7.2fx", def / best);
    else
        printf(" %8s", "-");
}

static void print_report(const clattn_tune_report *r)
{
    printf("    %-12s %5s %6s %10s %10s %8s  %s\n", "family", "tried", "failed", "default ms",
           "tuned ms", "speedup", "parameters (tuned; default)");
    for (int i = 0; i < r->n_families; i++) {
        const clattn_tune_family_report *f = &r->families[i];
        printf("    %-12s %5d %6d", f->family, f->tried, f->failed);
        print_ms(f->default_ms);
        print_ms(f->best_ms);
        print_speedup(f->default_ms, f->best_ms);
        printf("  %s", f->best_params[0] ? f->best_params : "(none)");
        if (strcmp(f->best_params, f->default_params))
            printf("; %s", f->default_params);
        else
            printf(" (the default)");
        printf("\n");
        if (f->first_failure[0])
            printf("      first failure: %s\n", f->first_failure);
    }
    printf("    %-12s %5s %6s", "whole call", "", "");
    print_ms(r->default_ms);
    print_ms(r->best_ms);
    print_speedup(r->default_ms, r->best_ms);
    printf("  (%s, %.1f s%s)\n", r->timed_with_events ? "profiling events" : "wall clock",
           r->elapsed_s, r->saved ? ", saved" : "");
    if (r->note[0])
        printf("    note: %s\n", r->note);
}

/* The tuning options the command line gives, with budget (0: the library's default) and the
   progress display. */
static void tune_options(const options *o, double budget_s, progress_state *ps,
                         clattn_tune_options *topt)
{
    memset(topt, 0, sizeof *topt);
    topt->budget_s = budget_s;
    topt->max_candidates = o->max_candidates;
    topt->repeats = o->repeats;
    topt->seed = o->seed;
    topt->families = o->families;
    topt->no_save = o->no_save;
    topt->progress = on_progress;
    topt->progress_user = ps;
}

/* After a tuning call: its report, or why it failed (UNSUPPORTED is not a failure of the run). */
static int finish(clattn_context *ctx, clattn_status st, const clattn_tune_report *rep,
                  progress_state *ps)
{
    clear_bar(ps);
    if (st != CLATTN_SUCCESS) {
        printf("    %s\n    %s\n", clattn_status_string(st), clattn_context_last_error(ctx));
        return st == CLATTN_UNSUPPORTED ? 0 : 1;
    }
    print_report(rep);
    fflush(stdout);
    return 0;
}

static int tune_shape(clattn_context *ctx, const options *o, const bench_shape *s, clattn_path path,
                      progress_state *ps)
{
    clattn_attention_desc desc;
    clattn_tune_options topt;
    clattn_tune_report rep;
    bench_shape_desc(s, o->f16 ? CLATTN_F16 : CLATTN_F32, path, &desc);
    tune_options(o, o->budget_s, ps, &topt);
    ps->path = path == CLATTN_PATH_FUSED ? "fused" : "unfused";
    printf("%s (B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d%s, %s), %s path:\n", s->name, s->B, s->Hq,
           s->Hkv, s->Lq, s->Lk, s->d, s->causal ? " causal" : "", o->f16 ? "f16" : "f32",
           ps->path);
    fflush(stdout);
    return finish(ctx, clattn_tune(ctx, &desc, &topt, &rep), &rep, ps);
}

/* The serving class: clattn-bench --serving's decode batch (bench_serving_decode) in a paged cache,
   tuned through clattn_tune_varlen. */
static int tune_serving(clattn_context *ctx, const options *o, progress_state *ps)
{
    bench_serving_batch batch;
    bench_serving_decode(o->quick, &batch);
    clattn_varlen_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.batch = batch.B;
    desc.heads_q = batch.Hq;
    desc.heads_kv = batch.Hkv;
    desc.head_dim = batch.d;
    desc.dtype = o->f16 ? CLATTN_F16 : CLATTN_F32;
    desc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    desc.block_size = batch.block_size;
    int cu_q[BENCH_SERVING_MAX_B + 1] = {0}, blocks = 0, max_k = 0;
    for (int b = 0; b < batch.B; b++) {
        cu_q[b + 1] = cu_q[b] + batch.lq[b];
        blocks += (batch.lk[b] + batch.block_size - 1) / batch.block_size;
        max_k = batch.lk[b] > max_k ? batch.lk[b] : max_k;
    }
    const int max_blocks = (max_k + batch.block_size - 1) / batch.block_size;
    int *table = calloc((size_t)batch.B * (size_t)max_blocks + 1, sizeof(int));
    if (!table)
        return 1;
    for (int b = 0, next = 0; b < batch.B; b++)   /* blocks in order: their order costs nothing */
        for (int i = 0; i < (batch.lk[b] + batch.block_size - 1) / batch.block_size; i++)
            table[(size_t)b * max_blocks + i] = next++;
    desc.total_q = cu_q[batch.B];
    desc.max_seqlen_q = 1;
    desc.max_seqlen_k = max_k;
    desc.num_blocks = blocks;
    desc.max_blocks_per_seq = max_blocks;
    desc.cu_seqlens_q_host = cu_q;
    desc.seqlens_k_host = batch.lk;
    desc.block_table_host = table;
    clattn_tune_options topt;
    clattn_tune_report rep;
    tune_options(o, o->budget_s, ps, &topt);
    ps->path = "paged";
    printf("serving decode (%d sequences of mixed lengths up to %d, Hq=%d Hkv=%d d=%d, block_size "
           "%d, %s), paged:\n", batch.B, max_k, batch.Hq, batch.Hkv, batch.d, batch.block_size,
           o->f16 ? "f16" : "f32");
    fflush(stdout);
    clattn_status st = clattn_tune_varlen(ctx, &desc, &topt, &rep);
    free(table);
    return finish(ctx, st, &rep, ps);
}

/* The layer: B tokens batches of L, width E, Hq query heads (Hkv key/value heads), self-attention
   with biases, as clattn-bench --mha runs it. */
static int tune_layer(clattn_context *ctx, const options *o, const int m[5], progress_state *ps)
{
    clattn_mha_desc desc;
    clattn_tune_options topt;
    clattn_tune_report rep;
    memset(&desc, 0, sizeof desc);
    desc.batch = m[0];
    desc.seq_q = desc.seq_kv = m[1];
    desc.embed_dim = m[2];
    desc.heads_q = m[3];
    desc.heads_kv = m[4];
    desc.in_bias = desc.out_bias = 1;
    desc.dtype = o->f16 ? CLATTN_F16 : CLATTN_F32;
    tune_options(o, o->budget_s > 0 ? o->budget_s : 90.0, ps, &topt);
    ps->path = "layer";
    printf("layer B=%d L=%d E=%d Hq=%d Hkv=%d (%s, biases), budget %.0f s: projections (GEMM "
           "backends), then attention:\n", m[0], m[1], m[2], m[3], m[4] ? m[4] : m[3],
           o->f16 ? "f16" : "f32", topt.budget_s);
    fflush(stdout);
    clattn_status st = clattn_mha_tune(ctx, &desc, &topt, &rep);
    clear_bar(ps);
    if (st != CLATTN_SUCCESS) {
        printf("    %s\n    %s\n", clattn_status_string(st), clattn_context_last_error(ctx));
        return st == CLATTN_UNSUPPORTED ? 0 : 1;
    }
    print_report(&rep);
    printf("    (whole call: the layer, summed from its projections and attention)\n");
    fflush(stdout);
    return 0;
}

static void list_caches(clattn_context *ctx)
{
    clattn_cache_info info;
    char line[1024];
    clattn_context_cache_info(ctx, &info);
    printf("device:      %s\n", info.identity);
    if (!info.enabled) {
        printf("caching:     off (CLATTN_CACHE)\n");
    } else {
        printf("cache dir:   %s\n", info.dir);
        printf("tuning file: %s%s\n", info.tuning_file,
               access(info.tuning_file, F_OK) == 0 ? "" : " (not written yet)");
    }
    printf("tuning:      %s, %zu entries for these kernel sources\n",
           info.tuning_enabled ? "on" : "off (CLATTN_TUNING)", info.tuning_entries);
    for (size_t i = 0; i < info.tuning_entries; i++)
        if (clattn_tuning_entry_string(ctx, i, line, sizeof line) == CLATTN_SUCCESS)
            printf("  %s\n", line);
}

int main(int argc, char **argv)
{
    options o;
    clattn_context *ctx = NULL;
    int rc = 0;
    memset(&o, 0, sizeof o);
    int parsed = parse_args(argc, argv, &o);
    if (parsed)
        return parsed > 0 ? 0 : 2;

    clattn_status st = clattn_context_create(o.device, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-tune: no device: %s\n", clattn_status_string(st));
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    /* a broken cache file is a warning: say so, it is about to be rewritten */
    if (clattn_context_last_warning(ctx)[0])
        fprintf(stderr, "clattn-tune: %s\n", clattn_context_last_warning(ctx));

    if (o.clear) {
        st = clattn_cache_clear(ctx, o.clear_binaries);
        printf("%s\n", st == CLATTN_SUCCESS ? (o.clear_binaries ? "tuning file and binaries removed"
                                                                : "tuning file removed")
                                            : clattn_context_last_error(ctx));
        rc = st != CLATTN_SUCCESS;
        if (!o.list)
            goto out;
    }
    if (o.list) {
        list_caches(ctx);
        goto out;
    }

    const bench_shape *shapes = &o.shape;
    int n = 1;
    if ((o.has_mha || o.serving) && !o.has_shape)
        n = 0;   /* the layer or the serving class alone */
    else if (!o.has_shape)
        shapes = bench_suite(o.quick, &n);
    /* the benchmark's layer (clattn-bench --mha) comes with the suite */
    static const int bench_layer[5] = {4, 512, 768, 12, 0};
    const int *layer = o.has_mha ? o.mha : !o.has_shape && !o.no_mha && !o.serving ? bench_layer : NULL;
    /* and the serving class */
    const int serving = o.serving || (!o.has_shape && !o.has_mha && !o.no_serving);

    if (o.export_dir) {
        for (int i = 0; i < n; i++) {
            clattn_attention_desc desc;
            clattn_path path = o.paths == PATH_FUSED     ? CLATTN_PATH_FUSED
                               : o.paths == PATH_UNFUSED ? CLATTN_PATH_UNFUSED
                                                         : CLATTN_PATH_AUTO;
            bench_shape_desc(&shapes[i], o.f16 ? CLATTN_F16 : CLATTN_F32, path, &desc);
            st = clattn_export_binaries(ctx, &desc, o.export_dir);
            printf("%-20s %s\n", shapes[i].name,
                   st == CLATTN_SUCCESS ? "exported" : clattn_context_last_error(ctx));
            rc |= st != CLATTN_SUCCESS;
        }
        printf("names and build options: %s/clattn-binaries.txt\n", o.export_dir);
        goto out;
    }

    progress_state ps = {isatty(fileno(stderr)) && isatty(fileno(stdout)), NULL, NULL, 0};
    printf("clattn %s on %s; budget %.0f s per shape and path\n", clattn_version(),
           clattn_context_device_name(ctx), o.budget_s > 0 ? o.budget_s : 60.0);
    for (int i = 0; i < n; i++) {
        ps.shape = shapes[i].name;
        if (o.paths & PATH_FUSED)
            rc |= tune_shape(ctx, &o, &shapes[i], CLATTN_PATH_FUSED, &ps);
        if (o.paths & PATH_UNFUSED)
            rc |= tune_shape(ctx, &o, &shapes[i], CLATTN_PATH_UNFUSED, &ps);
    }
    if (layer) {
        ps.shape = "layer";
        rc |= tune_layer(ctx, &o, layer, &ps);
    }
    if (serving && !o.export_dir) {
        ps.shape = "serving";
        rc |= tune_serving(ctx, &o, &ps);
    }
    if (clattn_context_last_warning(ctx)[0])
        printf("last warning: %s\n", clattn_context_last_warning(ctx));
out:
    clattn_context_release(ctx);
    return rc;
}
