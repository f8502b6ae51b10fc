/* clattn-bench: clattn's fused and unfused paths against two baselines built from existing
 * libraries (CLBlast on the same queue, OpenBLAS on the host), on a suite of shapes, in one process.
 * Per shape, method and storage type: median kernel time, GFLOP/s, GB/s of K and V for decode, and
 * the max error against the double-precision reference on a sample of rows. */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Error bounds, scaled by max(1, max|ref|). F32 is the issue's; F16 allows the half rounding of
   the output (2^-11 relative) with room for float accumulation; baselines are reported only.
   BF16 is F16's scaled by the formats' ratio of unit roundoff, 2^-8 / 2^-11 = 8: bfloat16 keeps 8
   significant bits, so one rounding is off by up to 2^-8 = 3.9e-3 relative, and 1.6e-2 (~4 of
   those, as 2e-3 is ~4 of half's) holds the output's rounding, split-KV's partials rounded to the
   storage type before their merge (a second rounding), and float arithmetic. The reference reads
   the inputs rounded to bfloat16 as the method does (check.c), so their rounding, which the
   generated data (multiples of 1/1024, exact in half) does incur, is not charged here. The tests
   hold BF16 to the same 1.6e-2 (test_merge.c). */
#define TOL_CLATTN_F32 1e-5
#define TOL_CLATTN_F16 2e-3
#define TOL_CLATTN_BF16 1.6e-2
#define TOL_BASELINE 1e-4

static void usage(FILE *f)
{
    fputs("usage: clattn-bench [options]\n"
          "  --quick             reduced suite (same kinds, smaller), shorter timing\n"
          "  --device SELECTOR   as CLATTN_DEVICE: \"P:D\", gpu, cpu, accelerator, or a name part\n"
          "  --shape B,Hq,Hkv,Lq,Lk,d[,causal[,window=W]]   one custom shape instead of the suite\n"
          "                      (causal: 1 or \"causal\", bottom-right; W > 0: a causal sliding\n"
          "                      window, query i sees keys i'-W..i', i' = i + Lk - Lq)\n"
          "  --f16               clattn paths also with F16 storage: rows of their own beside the\n"
          "                      f32 ones (the baselines are f32 only: their f16 rows are skipped)\n"
          "  --bf16              the same with BF16 (bfloat16) storage\n"
          "  --only LIST         comma-separated subset of the methods fused,unfused,clblast,\n"
          "                      cpu-blas and of the shapes by name (e.g. long-causal,\n"
          "                      long-window512); a list without methods keeps them all, one\n"
          "                      without shapes keeps the whole suite\n"
          "  --reps N            N timed runs per entry instead of calibrating to a target time\n"
          "  --mha               only the multi-head layer entry (B=4 L=512 E=768, 12 heads):\n"
          "                      clattn's layer per projection backend (auto, own, CLBlast), tuned\n"
          "                      and with tuning off, against CLBlast and OpenBLAS layers, with the\n"
          "                      device's FMA peak and OpenBLAS SGEMM on the projection shape\n"
          "  --variants          only the variants' cost: soft-capping, ALiBi, sinks and all three\n"
          "                      against plain attention on bert (bert-q with --quick), fused, f32\n"
          "  --kv-int8           only decoding with int8 K/V (CLATTN_KV_INT8) against f32 and f16\n"
          "                      storage on the decode shape (decode-q with --quick), fused: K/V\n"
          "                      bytes read, GB/s, tokens/s and speed-ups, int8 rows checked\n"
          "  --mpi               under mpiexec: ring attention over the ranks (L = 16k, 32k,\n"
          "                      64k; 2k, 4k with --quick; --f16), per rank compute, wait,\n"
          "                      bytes sent and the share of communication hidden\n"
          "  --serving           only serving steps: paged decode of mixed lengths and chunked\n"
          "                      prefill against padded dense, per-sequence dense and a uniform\n"
          "                      batch; ragged prefill against dense (smaller with --quick)\n"
          "  --no-tuning         run clattn with the device-class defaults, ignoring its tuning file\n"
          "                      (the mha entry then skips its tuned rows)\n"
          "  --json FILE         write all results, device and options as JSON\n"
          "  --help              this text\n"
          "Default suite (fp32, BHSD): bert, gpt2-causal, llama-gqa-causal, decode, long,\n"
          "long-causal, long-window512, then the mha layer entry (not with --quick, --shape or\n"
          "shapes in --only).\n"
          "FLOPs = 4*B*Hq*Lq*Lk*d, halved for causal; a window counts 4*d per (query, key) pair it\n"
          "shows. Speedup = baseline median (f32) / clattn median, per storage type. Each windowed\n"
          "shape's fused median is also set against its causal partner's (same sizes, no window)\n"
          "when both ran. The baselines have no window: they skip windowed shapes. With --f16 or\n"
          "--bf16, each decode shape's fused tokens/s in those types is set against its f32 run.\n"
          "Errors are against the reference on the inputs as the storage type holds them.\n"
          "Exit status 1 if a clattn error exceeds its tolerance (f32: 1e-5*max(1,max|ref|),\n"
          "f16: 2e-3*max(1,max|ref|), bf16: 1.6e-2*max(1,max|ref|)) or a method fails; baseline\n"
          "errors (1e-4) are only reported.\n",
          f);
}

/* Fills opt->shapes with the run's shapes (the custom one, or the suite), then narrows them and
   opt->only to what list names: its method names select methods, its shape names shapes. NULL
   list: everything. */
static int select_run(const char *list, bench_options *opt)
{
    const bench_shape *all = &opt->custom;
    int n_all = 1;
    if (!opt->has_custom)
        all = bench_suite(opt->quick, &n_all);
    for (int m = 0; m < BENCH_METHOD_COUNT; m++)
        opt->only[m] = 1;
    opt->n_shapes = 0;
    for (int i = 0; i < n_all && i < BENCH_MAX_SHAPES; i++)
        opt->shapes[opt->n_shapes++] = &all[i];
    if (!list)
        return 0;

    int methods[BENCH_METHOD_COUNT] = {0}, shapes[BENCH_MAX_SHAPES] = {0};
    int any_method = 0, any_shape = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = 0;
        for (int m = 0; m < BENCH_METHOD_COUNT; m++)
            if (strcmp(tok, bench_method_names[m]) == 0)
                methods[m] = found = any_method = 1;
        for (int i = 0; i < opt->n_shapes; i++)
            if (strcmp(tok, opt->shapes[i]->name) == 0)
                shapes[i] = found = any_shape = 1;
        if (!found) {
            fprintf(stderr, "clattn-bench: --only: \"%s\" is neither a method (", tok);
            for (int m = 0; m < BENCH_METHOD_COUNT; m++)
                fprintf(stderr, "%s%s", m ? ", " : "", bench_method_names[m]);
            fprintf(stderr, ") nor a shape of this run (");
            for (int i = 0; i < opt->n_shapes; i++)
                fprintf(stderr, "%s%s", i ? ", " : "", opt->shapes[i]->name);
            fprintf(stderr, ")%s\n", opt->quick || opt->has_custom ? "" : "; --quick has its own");
            return -1;
        }
    }
    if (any_method)
        memcpy(opt->only, methods, sizeof methods);
    if (any_shape) {
        int kept = 0;
        for (int i = 0; i < opt->n_shapes; i++)
            if (shapes[i])
                opt->shapes[kept++] = opt->shapes[i];
        opt->n_shapes = kept;
        opt->shapes_named = 1;
    }
    return 0;
}

/* Returns 0 to go on, 1 to exit successfully (--help), -1 on a usage error. */
static int parse_args(int argc, char **argv, bench_options *opt)
{
    const char *only = NULL;   /* resolved last: shape names depend on --quick and --shape */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int takes = strcmp(a, "--device") == 0 || strcmp(a, "--shape") == 0 ||
                    strcmp(a, "--only") == 0 || strcmp(a, "--reps") == 0 ||
                    strcmp(a, "--json") == 0;
        if (takes) {
            if (i + 1 >= argc) {
                fprintf(stderr, "clattn-bench: %s needs a value\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--quick") == 0) {
            opt->quick = 1;
        } else if (strcmp(a, "--f16") == 0) {
            opt->dtypes[CLATTN_F16] = 1;
        } else if (strcmp(a, "--bf16") == 0) {
            opt->dtypes[CLATTN_BF16] = 1;
        } else if (strcmp(a, "--mha") == 0) {
            opt->mha_only = 1;
        } else if (strcmp(a, "--variants") == 0) {
            opt->variants_only = 1;
        } else if (strcmp(a, "--kv-int8") == 0) {
            opt->kv_int8_only = 1;
        } else if (strcmp(a, "--serving") == 0) {
            opt->serving_only = 1;
        } else if (strcmp(a, "--no-tuning") == 0) {
            opt->no_tuning = 1;
        } else if (strcmp(a, "--device") == 0) {
            opt->device = val;
        } else if (strcmp(a, "--json") == 0) {
            opt->json_path = val;
        } else if (strcmp(a, "--reps") == 0) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*end || n < 1 || n > 1000000) {
                fprintf(stderr, "clattn-bench: --reps \"%s\": want a positive count\n", val);
                return -1;
            }
            opt->reps = (int)n;
        } else if (strcmp(a, "--only") == 0) {
            only = val;
        } else if (strcmp(a, "--shape") == 0) {
            char err[256];
            if (bench_shape_parse(val, &opt->custom, err, sizeof err)) {
                fprintf(stderr, "clattn-bench: %s\n", err);
                return -1;
            }
            opt->has_custom = 1;
        } else {
            fprintf(stderr, "clattn-bench: unknown option \"%s\" (try --help)\n", a);
            return -1;
        }
    }
    opt->dtypes[CLATTN_F32] = 1;   /* the baselines' type, and what the others are set against */
    /* The full suite fills about a second per entry; --quick a tenth, with fewer samples. */
    opt->target_s = opt->quick ? 0.1 : 1.0;
    opt->min_reps = opt->quick ? 2 : 3;
    opt->max_reps = opt->quick ? 100 : 1000;
    return select_run(only, opt);
}

static double tolerance_for(bench_method m, clattn_dtype dtype)
{
    if (m == BENCH_CLBLAST || m == BENCH_CPUBLAS)
        return TOL_BASELINE;
    switch (dtype) {
    case CLATTN_F16: return TOL_CLATTN_F16;
    case CLATTN_BF16: return TOL_CLATTN_BF16;
    case CLATTN_F32: break;
    }
    return TOL_CLATTN_F32;
}

static void run_method(const bench_device *dev, bench_data *data, bench_method m,
                       clattn_dtype dtype, const bench_options *opt, bench_result *r)
{
    const bench_shape *s = &data->shape;
    const int baseline = m == BENCH_CLBLAST || m == BENCH_CPUBLAS;
    double score_bytes = bench_shape_score_bytes(s);
    r->dtype = bench_dtype_name(dtype);
    if (baseline && dtype != CLATTN_F32) {
        /* Fed 16-bit data they would either fail or, widened first, time an f32 problem under a
           16-bit label and check it against the wrong tolerance. */
        snprintf(r->note, sizeof r->note,
                 "this baseline is f32 only (SGEMM, a float softmax); clattn's %s rows are set "
                 "against its f32 row", r->dtype);
        r->outcome = BENCH_SKIPPED;
        return;
    }
    if (s->window && baseline) {
        /* Their softmax knows the causal mask only: timing them here would set a full causal
           problem against clattn's windowed one. */
        snprintf(r->note, sizeof r->note,
                 "no sliding window in this baseline (causal mask only); windowed shapes are "
                 "compared with their causal partner instead");
        r->outcome = BENCH_SKIPPED;
        return;
    }
    switch (m) {
    case BENCH_FUSED:
        r->outcome = bench_run_clattn(dev, data, CLATTN_PATH_FUSED, dtype, opt, r);
        break;
    case BENCH_UNFUSED:
        if (score_bytes > (double)dev->max_alloc) {
            snprintf(r->note, sizeof r->note,
                     "score matrix B*Hq*Lq*Lk*4 = %.0f MiB exceeds CL_DEVICE_MAX_MEM_ALLOC_SIZE = "
                     "%.0f MiB", score_bytes / 1048576.0, (double)dev->max_alloc / 1048576.0);
            r->outcome = BENCH_SKIPPED;
            return;
        }
        r->outcome = bench_run_clattn(dev, data, CLATTN_PATH_UNFUSED, dtype, opt, r);
        break;
    case BENCH_CLBLAST:
        r->outcome = bench_run_clblast(dev, data, opt, r);
        break;
    case BENCH_CPUBLAS:
        r->outcome = bench_run_cpublas(dev, data, opt, r);
        break;
    case BENCH_METHOD_COUNT:
        return;
    }
    if (r->outcome != BENCH_OK)
        return;
    r->gflops = bench_shape_flops(s) / r->kernel_s.median * 1e-9;
    if (bench_shape_is_decode(s))
        r->gbps = bench_shape_kv_bytes(s, bench_dtype_size(dtype)) / r->kernel_s.median * 1e-9;
    char err[256];
    if (bench_check(data, dtype, tolerance_for(m, dtype), r, err, sizeof err)) {
        r->outcome = BENCH_FAILED;
        snprintf(r->note, sizeof r->note, "%s", err);
    }
}

int main(int argc, char **argv)
{
    bench_options opt;
    bench_device dev;
    bench_entry *entries = NULL;
    bench_mha_report *mha = NULL;
    char err[512];
    int rc = 1, n = 0, passed = 1;
    memset(&opt, 0, sizeof opt);
    memset(&dev, 0, sizeof dev);

    for (int i = 1; i < argc; i++)   /* --mpi runs under mpiexec, a flow of its own */
        if (strcmp(argv[i], "--mpi") == 0) {
#ifdef BENCH_HAVE_MPI
            return bench_mpi_main(argc, argv);
#else
            fprintf(stderr, "clattn-bench: --mpi: this build has no MPI (meson -Dmpi=enabled, "
                            "apt-get install libopenmpi-dev)\n");
            return 2;
#endif
        }
    int parsed = parse_args(argc, argv, &opt);
    if (parsed)
        return parsed > 0 ? 0 : 2;

    clattn_status st = bench_device_open(opt.device, &dev, err, sizeof err);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-bench: %s\n", err);
        /* 77: meson's SKIP, when the bench runs as a test on a machine without a device. */
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    bench_report_header(&dev, &opt);

    n = opt.mha_only || opt.variants_only || opt.kv_int8_only || opt.serving_only ? 0 : opt.n_shapes;
    entries = calloc((size_t)(n ? n : 1), sizeof *entries);
    if (!entries) {
        fprintf(stderr, "clattn-bench: out of host memory\n");
        goto out;
    }

    for (int i = 0; i < n; i++) {
        bench_entry *e = &entries[i];
        bench_data data;
        e->shape = *opt.shapes[i];
        memcpy(e->ran, opt.only, sizeof e->ran);
        memcpy(e->dtypes, opt.dtypes, sizeof e->dtypes);
        bench_report_shape(e, &opt);
        int data_ok = bench_data_create(&dev, &e->shape, opt.dtypes, &data, err, sizeof err) == 0;
        /* A method's storage types side by side: its f32 row, then f16 and bf16 where selected. */
        for (int m = 0; m < BENCH_METHOD_COUNT; m++) {
            for (int t = 0; t < BENCH_DTYPE_COUNT; t++) {
                bench_result *r = &e->result[t][m];
                if (!e->ran[m] || !e->dtypes[t])
                    continue;
                if (data_ok) {
                    run_method(&dev, &data, (bench_method)m, (clattn_dtype)t, &opt, r);
                } else {
                    r->dtype = bench_dtype_name((clattn_dtype)t);
                    r->outcome = BENCH_FAILED;
                    snprintf(r->note, sizeof r->note, "%s", err);
                }
                bench_report_row(e, (clattn_dtype)t, (bench_method)m);
                /* A wrong clattn result fails the run; baselines' errors are only reported. A
                   method that could not run at all (not unsupported, not skipped) fails it too. */
                if (r->outcome == BENCH_FAILED ||
                    (r->checked && !r->err_ok && (m == BENCH_FUSED || m == BENCH_UNFUSED)))
                    passed = 0;
            }
        }
        bench_report_speedups(e);
        if (data_ok)
            bench_data_release(&data);
    }

    bench_report_window_speedups(entries, n);
    bench_report_decode_storage(entries, n);

    /* The multi-head layer (mha.c) prints its own table: its methods are whole layers. */
    if (opt.variants_only)   /* their correctness is tests/test_variants.c's */
        passed &= bench_variants_entry(&dev, &opt) == 0;
    else if (opt.kv_int8_only)
        passed &= bench_kv_int8_entry(&dev, &opt) == 0;
    else if (opt.serving_only)
        passed &= bench_serving_entry(&dev, &opt) == 0;
    else if (opt.mha_only || (!opt.has_custom && !opt.quick && !opt.shapes_named)) {
        if (!(mha = calloc(1, sizeof *mha))) {
            fprintf(stderr, "clattn-bench: out of host memory\n");
            goto out;
        }
        passed &= bench_mha_entry(&dev, &opt, mha) == 0;
    }

    printf("\n%s\n", passed ? "all measured errors within tolerance"
                            : "FAILED: a clattn error exceeded its tolerance, or a method failed");
    rc = passed ? 0 : 1;
    if (opt.json_path) {
        if (bench_report_json(opt.json_path, &dev, &opt, entries, n, mha, passed, err,
                              sizeof err)) {
            fprintf(stderr, "clattn-bench: %s\n", err);
            rc = 1;
        } else {
            printf("results written to %s\n", opt.json_path);
        }
    }
out:
    free(mha);
    free(entries);
    bench_device_close(&dev);
    return rc;
}
