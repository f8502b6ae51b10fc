/* The tuner (host/tune.c) on the device, with tiny budgets: what its report says, that a candidate
 * that fails to build or gives a wrong result is recorded and never chosen, that the winners are
 * saved and looked up, that the candidate cap holds, and CLATTN_AUTOTUNE.
 *
 * Broken candidates come from a copy of the kernel sources (CLATTN_KERNEL_DIR) whose softmax.cl
 * refuses to build with SM_VEC=8 and computes a wrong softmax (scores scaled by 1.25) with any
 * parameters but the CPU defaults. */
#define _XOPEN_SOURCE 700     /* nftw */
#include "host/cache/cache.h"
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef CLATTN_CL_DIR
#error "CLATTN_CL_DIR (the kernel sources) must be defined by the build"
#endif

typedef struct fixture {
    char root[256];
    char dir[300];      /* root/cache */
    char kernels[300];  /* root/cl, for the broken sources */
    clattn_context_options opt;   /* what every context of a test is made with */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "%s/clattn-test-tune-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/cache", f->root);
    snprintf(f->kernels, sizeof f->kernels, "%s/cl", f->root);
    /* configured by options alone: the environment of whoever runs the suite steers nothing */
    f->opt.ignore_environment = 1;
    f->opt.cache_dir = f->dir;
    *state = f;
    return 0;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    nftw(f->root, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    free(f);
    return 0;
}

static clattn_context *new_context(const fixture *f)
{
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &f->opt, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_context_create: %s", clattn_status_string(st));
    return ctx;
}

static cl_device_type device_type(clattn_context *ctx)
{
    cl_device_type t = 0;
    clGetDeviceInfo(clattn_context_device(ctx), CL_DEVICE_TYPE, sizeof t, &t, NULL);
    return t;
}

static cl_uint compute_units(clattn_context *ctx)
{
    cl_uint n = 0;
    clGetDeviceInfo(clattn_context_device(ctx), CL_DEVICE_MAX_COMPUTE_UNITS, sizeof n, &n, NULL);
    return n;
}

/* Every kernel desc's call runs takes its parameters from its exact tuning entry. */
static void assert_all_tuned(clattn_context *ctx, const clattn_attention_desc *desc)
{
    char plan[2048];
    assert_int_equal(clattn_plan_describe(ctx, desc, 0, plan, sizeof plan), CLATTN_SUCCESS);
    if (strstr(plan, "default") || strstr(plan, "nearest") || strstr(plan, "fallback"))
        fail_msg("a kernel is not tuned for its exact shape class:\n%s", plan);
    assert_non_null(strstr(plan, "tuned, exact shape class"));
}

static void small_desc(clattn_attention_desc *d, clattn_path path)
{
    memset(d, 0, sizeof *d);
    d->batch = 1;
    d->heads_q = 4;
    d->heads_kv = 2;
    d->seq_q = 24;
    d->seq_kv = 45;
    d->head_dim = 16;
    d->causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    d->path = path;
}

/* Runs desc on ctx with inputs from seed and fails the test unless it matches the reference. */
static void run_checked(clattn_context *ctx, const clattn_attention_desc *desc, uint64_t seed)
{
    tu_case c;
    tu_outcome res;
    memset(&c, 0, sizeof c);
    c.desc = *desc;
    c.seed = seed;
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        fail_msg("%s", res.msg);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void spill(const char *path, const char *prefix, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(prefix, f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The kernel sources copied to f->kernels, softmax.cl broken as described above. */
static void broken_kernels(fixture *f)
{
    static const char prefix[] =
        "#if SM_VEC == 8\n"
        "#error \"test_tune: a candidate that does not build\"\n"
        "#endif\n"
        "#if !(SM_WG == 1 && SM_VEC == 16)\n"
        "/* test_tune: a candidate with a wrong result (exp is the driver's macro: wrap, not redefine) */\n"
        "#define WRONG(T) __attribute__((overloadable)) T wrong_exp(T x) { return exp(x * 1.25f); }\n"
        "WRONG(float) WRONG(float2) WRONG(float4) WRONG(float8) WRONG(float16)\n"
        "#undef exp\n"
        "#define exp(x) wrong_exp(x)\n"
        "#endif\n";
    DIR *d = opendir(CLATTN_CL_DIR);
    assert_non_null(d);
    assert_int_equal(mkdir(f->kernels, 0700), 0);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name), len;
        if (n < 4 || strcmp(e->d_name + n - 3, ".cl"))
            continue;
        char from[512], to[512];
        snprintf(from, sizeof from, "%s/%s", CLATTN_CL_DIR, e->d_name);
        snprintf(to, sizeof to, "%s/%s", f->kernels, e->d_name);
        char *text = slurp(from, &len);
        spill(to, strcmp(e->d_name, "softmax.cl") ? "" : prefix, text, len);
        free(text);
    }
    closedir(d);
    f->opt.kernel_dir = f->kernels;
}

static const clattn_tune_family_report *family(const clattn_tune_report *r, const char *name)
{
    for (int i = 0; i < r->n_families; i++)
        if (!strcmp(r->families[i].family, name))
            return &r->families[i];
    fail_msg("no family '%s' in the report", name);
    return NULL;
}

/* A small tuning run: the report adds up, the winner is saved, looked up and correct. */
static void test_report_and_save(void **state)
{
    fixture *f = *state;
    clattn_attention_desc desc;
    clattn_tune_report rep;
    clattn_tune_options opt = {.budget_s = 120, .max_candidates = 3, .families = "softmax",
                               .repeats = 3, .seed = 5};
    small_desc(&desc, CLATTN_PATH_UNFUSED);
    clattn_context *ctx = new_context(f);
    assert_int_equal(clattn_tune(ctx, &desc, &opt, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.path, CLATTN_PATH_UNFUSED);
    assert_int_equal(rep.n_families, 1);           /* --families: softmax alone */
    const clattn_tune_family_report *sm = family(&rep, "softmax");
    const long space = (long)clattn_family_softmax.params[0].n_candidates *
                       clattn_family_softmax.params[1].n_candidates;   /* SM_WG x SM_VEC */
    assert_int_equal(sm->space, space);
    assert_true(sm->valid > 3 && sm->valid <= space);
    assert_int_equal(sm->tried, 3);
    assert_int_equal(sm->failed, 0);
    assert_true(sm->default_ms > 0 && sm->best_ms > 0 && rep.default_ms > 0 && rep.best_ms > 0);
    assert_true(sm->best_params[0] && sm->default_params[0]);
    assert_true(rep.saved);
    assert_int_equal(rep.timed_with_events, 1);    /* our own queue profiles */
    clattn_context_release(ctx);

    /* a fresh context looks the winner up from the file, and computes right with it */
    ctx = new_context(f);
    char plan[2048], want[256];
    assert_int_equal(clattn_plan_describe(ctx, &desc, 0, plan, sizeof plan), CLATTN_SUCCESS);
    snprintf(want, sizeof want, "softmax     %s  [tuned, exact shape class]", sm->best_params);
    if (!strstr(plan, want))
        fail_msg("the plan does not take the winner '%s':\n%s", want, plan);
    run_checked(ctx, &desc, 3);
    clattn_context_release(ctx);
}

/* Candidates that do not build or compute wrong are counted as failed and never chosen: with every
   candidate but the default broken, the default wins and is what the file records. */
static void test_broken_candidates_never_chosen(void **state)
{
    fixture *f = *state;
    broken_kernels(f);
    clattn_context *ctx = new_context(f);
    if (device_type(ctx) != CL_DEVICE_TYPE_CPU) {
        clattn_context_release(ctx);
        skip();                  /* the broken sources spare the CPU defaults only */
    }
    clattn_attention_desc desc;
    clattn_tune_report rep;
    clattn_tune_options opt = {.budget_s = 300, .max_candidates = 6, .families = "softmax",
                               .repeats = 2, .seed = 11};
    small_desc(&desc, CLATTN_PATH_UNFUSED);
    assert_int_equal(clattn_tune(ctx, &desc, &opt, &rep), CLATTN_SUCCESS);
    const clattn_tune_family_report *sm = family(&rep, "softmax");
    assert_int_equal(sm->tried, 6);
    assert_int_equal(sm->failed, 5);
    assert_string_equal(sm->best_params, "SM_WG=1 SM_VEC=16");
    assert_string_equal(sm->default_params, "SM_WG=1 SM_VEC=16");
    assert_true(strstr(sm->first_failure, "wrong result") || strstr(sm->first_failure, "build failed"));
    assert_true(rep.saved);
    char line[512];
    clattn_cache_info info;
    clattn_context_cache_info(ctx, &info);
    assert_int_equal(info.tuning_entries, 1);
    assert_int_equal(clattn_tuning_entry_string(ctx, 0, line, sizeof line), CLATTN_SUCCESS);
    assert_non_null(strstr(line, ": SM_WG=1 SM_VEC=16"));
    clattn_context_release(ctx);
}

/* Both kinds of failure show up over a space small enough to try whole. */
static void test_failures_are_recorded(void **state)
{
    fixture *f = *state;
    broken_kernels(f);
    clattn_context *ctx = new_context(f);
    if (device_type(ctx) != CL_DEVICE_TYPE_CPU) {
        clattn_context_release(ctx);
        skip();
    }
    int seen_build = 0, seen_wrong = 0;
    for (unsigned long long seed = 1; seed <= 8 && !(seen_build && seen_wrong); seed++) {
        clattn_attention_desc desc;
        clattn_tune_report rep;
        clattn_tune_options opt = {.budget_s = 300, .max_candidates = 2, .families = "softmax",
                                   .repeats = 1, .seed = seed, .no_save = 1};
        small_desc(&desc, CLATTN_PATH_UNFUSED);
        assert_int_equal(clattn_tune(ctx, &desc, &opt, &rep), CLATTN_SUCCESS);
        const clattn_tune_family_report *sm = family(&rep, "softmax");
        assert_int_equal(sm->failed, 1);
        seen_build |= strstr(sm->first_failure, "SM_VEC=8") && strstr(sm->first_failure, "build failed");
        seen_wrong |= strstr(sm->first_failure, "wrong result on the check problem") != NULL;
        assert_string_equal(sm->best_params, "SM_WG=1 SM_VEC=16");
    }
    assert_true(seen_build);
    assert_true(seen_wrong);
    clattn_context_release(ctx);
}

/* max_candidates 1: only the defaults are measured, for every family the path uses, and they are
   what gets saved (the class then counts as tuned). */
static void test_candidate_cap(void **state)
{
    fixture *f = *state;
    clattn_attention_desc desc;
    clattn_tune_report rep;
    clattn_tune_options opt = {.budget_s = 300, .max_candidates = 1, .repeats = 1};
    small_desc(&desc, CLATTN_PATH_UNFUSED);
    clattn_context *ctx = new_context(f);
    assert_int_equal(clattn_tune(ctx, &desc, &opt, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.n_families, 3);
    assert_string_equal(rep.families[0].family, "qk");
    assert_string_equal(rep.families[1].family, "softmax");
    assert_string_equal(rep.families[2].family, "pv");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rep.families[i].tried, 1);
        assert_string_equal(rep.families[i].best_params, rep.families[i].default_params);
    }
    clattn_cache_info info;
    clattn_context_cache_info(ctx, &info);
    assert_int_equal(info.tuning_entries, 3);
    clattn_context_release(ctx);
}

typedef struct occ_seen {
    char default_occ[32];        /* "SPLIT_OCC=<default>" */
    int candidates, other;       /* candidates seen, and of those with another SPLIT_OCC */
} occ_seen;

static void note_occ(void *user, const clattn_tune_progress_info *info)
{
    occ_seen *seen = user;
    const char *occ = strstr(info->params, "SPLIT_OCC=");
    if (!occ)
        return;
    seen->candidates++;
    if (!seen->default_occ[0])   /* the first candidate is the default */
        snprintf(seen->default_occ, sizeof seen->default_occ, "%.*s", (int)strcspn(occ, " "), occ);
    else if (strcspn(occ, " ") != strlen(seen->default_occ) ||
             strncmp(occ, seen->default_occ, strlen(seen->default_occ)) != 0)
        seen->other++;   /* compared whole: SPLIT_OCC=16 is not SPLIT_OCC=1 */
}

/* Where no split-occupancy value splits the keys (far more work-groups than the device has compute
   units), every value launches the same work: the tuner must not spend candidates on them. */
static void test_no_candidates_on_identical_launches(void **state)
{
    fixture *f = *state;
    clattn_attention_desc desc;
    clattn_tune_report rep;
    occ_seen seen = {"", 0, 0};
    /* 8 candidates: each is compiled on first use (seconds each in a sanitizer build with a cold
       PoCL cache), and the budget only bounds the run: how many fit is not asserted */
    clattn_tune_options opt = {.budget_s = 120, .max_candidates = 8, .repeats = 1,
                               .no_save = 1, .progress = note_occ, .progress_user = &seen};
    small_desc(&desc, CLATTN_PATH_FUSED);
    desc.batch = 8;
    desc.heads_q = desc.heads_kv = 8;
    desc.seq_q = 256;            /* >= 8 * 8 * 2 work-groups whatever BLOCK_M (at most 128) */
    desc.causal = CLATTN_CAUSAL_NONE;
    clattn_context *ctx = new_context(f);
    if (compute_units(ctx) * 16 > 128) {   /* 16: the largest SPLIT_OCC */
        clattn_context_release(ctx);
        skip();
    }
    clattn_status st = clattn_tune(ctx, &desc, &opt, &rep);
    clattn_context_release(ctx);              /* before any assertion can leave */
    assert_int_equal(st, CLATTN_SUCCESS);
    assert_int_equal(rep.n_families, 1);
    assert_string_equal(rep.families[0].family, "flash");
    assert_true(rep.families[0].tried >= 3);   /* the default and at least two candidates */
    assert_true(seen.candidates >= rep.families[0].tried);
    assert_int_equal(seen.other, 0);
}

/* CLATTN_AUTOTUNE=1: the first call of an untuned class tunes it (and saves), the second does not
   tune again, and both give right results. */
static void test_autotune(void **state)
{
    fixture *f = *state;
    f->opt.autotune = CLATTN_SWITCH_ON;
    f->opt.autotune_budget_s = 4;
    clattn_context *ctx = new_context(f);
    clattn_attention_desc desc;
    clattn_cache_info info;
    small_desc(&desc, CLATTN_PATH_UNFUSED);
    clattn_context_cache_info(ctx, &info);
    assert_int_equal(info.tuning_entries, 0);
    run_checked(ctx, &desc, 9);
    clattn_context_cache_info(ctx, &info);
    assert_int_equal(info.tuning_entries, 3);        /* qk, softmax, pv for this class */
    assert_int_equal(access(info.tuning_file, R_OK), 0);
    run_checked(ctx, &desc, 10);
    clattn_context_cache_info(ctx, &info);
    assert_int_equal(info.tuning_entries, 3);
    clattn_context_release(ctx);

    /* a new process finds the class tuned: no lookup misses, nothing pending */
    ctx = new_context(f);
    run_checked(ctx, &desc, 10);
    assert_all_tuned(ctx, &desc);                  /* nothing left for autotune */
    clattn_context_release(ctx);
}

/* A path that reshapes its problem before looking parameters up (unfused decode with GQA folds
   the group's heads into rows): the tuner files its winners under the reshaped problem, so that
   the next process finds them exactly and CLATTN_AUTOTUNE has nothing left to tune. */
static void test_reshaped_problem_entries_hit(void **state)
{
    fixture *f = *state;
    clattn_attention_desc desc;
    clattn_tune_report rep;
    clattn_tune_options opt = {.budget_s = 120, .max_candidates = 1, .repeats = 1};
    small_desc(&desc, CLATTN_PATH_UNFUSED);
    desc.seq_q = 1;                          /* heads_q 4 over heads_kv 2: the fold applies */
    desc.causal = CLATTN_CAUSAL_NONE;
    clattn_context *ctx = new_context(f);
    assert_int_equal(clattn_tune(ctx, &desc, &opt, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.n_families, 3);
    assert_true(rep.saved);
    clattn_context_release(ctx);

    f->opt.autotune = CLATTN_SWITCH_ON;
    f->opt.autotune_budget_s = 4;
    ctx = new_context(f);
    run_checked(ctx, &desc, 11);
    assert_all_tuned(ctx, &desc);                  /* every family found its exact entry */
    clattn_context_release(ctx);
}

/* The plan texts a context logs (options.log_plans), for the varlen test below. */
static void keep_plan(void *user, clattn_log_level level, const char *message)
{
    if (level == CLATTN_LOG_PLAN)
        snprintf(user, 2048, "%s", message);
}

/* A ragged, paged batch tuned with clattn_tune_varlen: the winner is filed under the varlen+paged
   class, a later varlen call of the class takes it, and computes right with it; bad descs refused. */
static void test_tune_varlen(void **state)
{
    fixture *f = *state;
    enum { B = 3, HQ = 4, HKV = 2, D = 32, BS = 16 };
    const int cu_q[B + 1] = {0, 1, 2, 3}, lens[B] = {300, 40, 5};
    int table[B * 19];
    for (int i = 0, next = 0; i < B * 19; i++)
        table[i] = i % 19 < (lens[i / 19] + BS - 1) / BS ? next++ : -1;
    clattn_varlen_desc vd = {0};
    vd.batch = B;
    vd.heads_q = HQ;
    vd.heads_kv = HKV;
    vd.head_dim = D;
    vd.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    vd.total_q = 3;
    vd.max_seqlen_q = 1;
    vd.max_seqlen_k = 300;
    vd.block_size = BS;
    vd.num_blocks = 19 + 3 + 1;
    vd.max_blocks_per_seq = 19;
    vd.cu_seqlens_q_host = cu_q;
    vd.seqlens_k_host = lens;
    vd.block_table_host = table;
    clattn_context *ctx = new_context(f);
    clattn_tune_report rep;
    /* the decode family this device's plan takes (flash.c, clattn_flash_family_for) */
    clattn_tune_options opt = {.budget_s = 120, .max_candidates = 3, .repeats = 1, .seed = 9,
                               .families = clattn_test_device(ctx)->cls == CLATTN_CLASS_CPU
                                               ? "flash_decode"
                                               : "flash_split"};
    assert_int_equal(clattn_tune_varlen(ctx, &vd, &opt, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.path, CLATTN_PATH_FUSED);
    assert_int_equal(rep.n_families, 1);
    assert_int_equal(rep.families[0].failed, 0);
    assert_true(rep.saved);
    char line[512];
    int found = 0;
    for (size_t i = 0; clattn_tuning_entry_string(ctx, i, line, sizeof line) == CLATTN_SUCCESS; i++)
        found |= strstr(line, "variants=varlen+paged") != NULL && strstr(line, "lk=512") != NULL;
    if (!found)
        fail_msg("no varlen+paged entry in the tuning table");
    /* bad descs: NULL, no host tables, a bad table (named) */
    assert_int_equal(clattn_tune_varlen(ctx, NULL, &opt, &rep), CLATTN_INVALID_ARGUMENT);
    clattn_varlen_desc bad = vd;
    bad.block_table_host = NULL;
    assert_int_equal(clattn_tune_varlen(ctx, &bad, &opt, &rep), CLATTN_INVALID_ARGUMENT);
    bad = vd;
    bad.max_seqlen_k = 100;
    assert_int_equal(clattn_tune_varlen(ctx, &bad, &opt, &rep), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "seqlens_k[0]"));
    assert_int_equal(clattn_tune_varlen(NULL, &vd, &opt, &rep), CLATTN_INVALID_ARGUMENT);
    clattn_context_release(ctx);

    /* a fresh context reads the entry from the file and a call of the class takes it */
    char plan[2048] = "";
    clattn_context_options o = f->opt;
    o.log = keep_plan;
    o.log_user = plan;
    o.log_plans = CLATTN_SWITCH_ON;
    clattn_context *ctx2 = NULL;
    assert_int_equal(clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &o, &ctx2),
                     CLATTN_SUCCESS);
    const size_t nq = 3 * HQ * D, nkv = (size_t)vd.num_blocks * BS * HKV * D;
    float *q = calloc(nq, 4), *k = calloc(nkv, 4), *v = calloc(nkv, 4);
    float *out = calloc(nq, 4), *ref = calloc(nq, 4);
    for (size_t i = 0; i < nkv; i++) {
        k[i] = (float)sin((double)i);
        v[i] = (float)cos((double)i * 0.7);
    }
    for (size_t i = 0; i < nq; i++)
        q[i] = (float)sin((double)i * 1.3);
    assert_int_equal(clattn_attention_varlen_host(ctx2, &vd, q, k, v, out, NULL), CLATTN_SUCCESS);
    if (!strstr(plan, "tuned, exact shape class"))
        fail_msg("the varlen call does not take its tuned entry:\n%s", plan);
    assert_int_equal(clattn_attention_varlen_reference(&vd, q, k, v, ref, NULL, NULL, 0),
                     CLATTN_SUCCESS);
    for (size_t i = 0; i < nq; i++)
        assert_true(fabsf(out[i] - ref[i]) <= 1e-5f * fmaxf(1.0f, fabsf(ref[i])));
    free(q);
    free(k);
    free(v);
    free(out);
    free(ref);
    clattn_context_release(ctx2);
}

int main(void)
{
    clattn_context_release(tu_context_or_skip(NULL));   /* 77 without a device */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_and_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tune_varlen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_candidates_never_chosen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_are_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_candidates_on_identical_launches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autotune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reshaped_problem_entries_hit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
