/* CLBlast as a projection backend with clattn's tuned parameters (host/layer/gemm_clblast.c), the
 * GEMM tuner (host/layer/gemm_tune.c) and clattn_mha_tune's argument checks.
 *
 * - CLBlast's GEMM plus the bias pass against a double-precision GEMM, C = A·Wᵀ + bias, on shapes
 *   that divide no tile, with the weight and bias read at an offset, with and without bias, at the
 *   defaults (no override: CLBlast's own choice, XgemmDirect at these sizes) and at parameter sets
 *   that differ from them (applied with CLBlastOverrideParameters, which also forces the indirect
 *   Xgemm kernel they belong to: both CLBlast kernels, GEMMK 0 and 1, and padding on every side),
 *   and at the defaults again afterwards.
 * - clattn_gemm_tune with a budget of a few seconds, for CLBlast and for the own kernel: the entry
 *   it files is what clattn_tuning_lookup returns, and that entry computes the right GEMM.
 * - clattn_mha_tune on bad input: a clear status and message.
 * Tolerance as tests/test_proj_gemm.c: 4·eps·Σ|a·w|·sqrt(n+1).
 * Without CLBlast in the build the test exits 77 (SKIP).
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct shape {
    size_t rows, cols, inner, w_off, bias_off;
} shape;

static const shape shapes[] = {
    {37, 50, 23, 11, 5},
    {5, 7, 3, 0, 0},
    {129, 33, 100, 33 * 100, 33},
};

/* Sets that differ from the defaults, in CLBlast's order (GEMMK KREG KWG KWI MDIMA MDIMC MWG NDIMB
   NDIMC NWG SA SB STRM STRN VWM VWN). */
static const int tuned_sets[][16] = {
    {0, 1, 16, 2, 16, 16, 64, 8, 8, 64, 0, 1, 1, 0, 2, 4},   /* kernel 0, A from global, strided m */
    {1, 4, 1, 1, 8, 8, 32, 8, 8, 32, 0, 0, 0, 0, 2, 4},      /* kernel 1: k in registers */
    {0, 1, 32, 1, 16, 16, 64, 4, 4, 16, 1, 1, 0, 1, 4, 4},   /* a 16 x 4 group, strided n */
};

static void set_params(clattn_params *pr, const int v[16])
{
    memset(pr, 0, sizeof *pr);
    for (int i = 0; i < 16; i++)
        pr->v[i] = v[i];
}

/* Runs backend at params on sh and checks every element. */
static void check_gemm(clattn_context *ctx, const clattn_gemm_backend *backend, const shape *sh,
                       int with_bias, const clattn_params *params, const char *label)
{
    const clattn_dtype dtype = CLATTN_F32;
    cl_context cl = clattn_context_cl_context(ctx);
    cl_command_queue q = clattn_context_queue(ctx);
    const size_t es = sizeof(float);
    const size_t na = sh->rows * sh->inner, nw = sh->w_off + sh->cols * sh->inner;
    const size_t nb = sh->bias_off + sh->cols, nc = sh->rows * sh->cols;
    tu_rng r;
    tu_rng_seed(&r, 77u + sh->rows * 5u + sh->cols);
    float *ha = tu_alloc(na * es), *hw = tu_alloc(nw * es), *hb = tu_alloc(nb * es), *hc = tu_alloc(nc * es);
    tu_fill_normal(ha, dtype, na, 1.0f, &r);
    tu_fill_normal(hw, dtype, nw, 0.5f, &r);
    tu_fill_normal(hb, dtype, nb, 1.0f, &r);
    tu_fill_value(hc, dtype, nc, 42.0f);
    cl_int err;
    cl_mem a = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, na * es, ha, &err);
    cl_mem w = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nw * es, hw, &err);
    cl_mem b = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nb * es, hb, &err);
    cl_mem c = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nc * es, hc, &err);
    assert_true(a && w && b && c);

    clattn_gemm g = {"test", dtype, a, w, with_bias ? b : NULL, c, sh->w_off, sh->bias_off,
                     sh->rows, sh->cols, sh->inner};
    size_t temp_bytes = 0;
    cl_mem temp = NULL;
    clattn_test_lock(ctx);
    clattn_status st = backend->temp_bytes(ctx, &g, params, &temp_bytes);
    if (st == CLATTN_SUCCESS && temp_bytes) {
        temp = clCreateBuffer(cl, CL_MEM_READ_WRITE, temp_bytes, NULL, &err);
        assert_non_null(temp);
    }
    if (st == CLATTN_SUCCESS)
        st = backend->enqueue(ctx, &g, params, temp);
    clattn_test_unlock(ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
    assert_int_equal(clEnqueueReadBuffer(q, c, CL_TRUE, 0, nc * es, hc, 0, NULL, NULL), CL_SUCCESS);

    for (size_t i = 0; i < sh->rows; i++)
        for (size_t j = 0; j < sh->cols; j++) {
            double sum = with_bias ? hb[sh->bias_off + j] : 0.0, mag = fabs(sum);
            for (size_t k = 0; k < sh->inner; k++) {
                double p = (double)ha[i * sh->inner + k] * hw[sh->w_off + j * sh->inner + k];
                sum += p;
                mag += fabs(p);
            }
            const double tol = 4.0 * FLT_EPSILON * mag * sqrt((double)sh->inner + 1.0) + 1e-30;
            const double got = hc[i * sh->cols + j];
            if (!(fabs(got - sum) <= tol))
                fail_msg("%s: C[%zu][%zu] = %.8g, want %.8g (tolerance %.3g)", label, i, j, got, sum, tol);
        }
    if (temp)
        clReleaseMemObject(temp);
    clReleaseMemObject(a);
    clReleaseMemObject(w);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
    free(ha), free(hw), free(hb), free(hc);
}

static void check_all_shapes(clattn_context *ctx, const clattn_params *pr, const char *what)
{
    char label[256];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int bias = 0; bias <= 1; bias++) {
            snprintf(label, sizeof label, "%.160s, %zu x %zu x %zu, bias %d", what, shapes[s].rows,
                     shapes[s].cols, shapes[s].inner, bias);
            check_gemm(ctx, clattn_gemm_clblast, &shapes[s], bias, pr, label);
        }
}

static void test_clblast_against_reference(void **state)
{
    clattn_context *ctx = *state;
    const clattn_family *f = clattn_gemm_clblast->family;
    clattn_params def, pr;
    char why[256], label[256];
    clattn_problem p;
    clattn_gemm_problem(CLATTN_F32, 37, 50, 23, &p);

    clattn_params_defaults(f, CLATTN_CLASS_CPU, &def);
    assert_int_equal(f->n_params, 16);
    if (!f->valid(&def, clattn_test_device(ctx), &p, why, sizeof why))
        fail_msg("the defaults are not valid: %s", why);
    check_all_shapes(ctx, &def, "defaults");

    for (size_t t = 0; t < sizeof tuned_sets / sizeof tuned_sets[0]; t++) {
        set_params(&pr, tuned_sets[t]);
        clattn_params_string(f, &pr, label, sizeof label);
        assert_true(memcmp(&pr, &def, sizeof pr) != 0);
        if (!clattn_params_in_space(f, &pr, why, sizeof why) ||
            !f->valid(&pr, clattn_test_device(ctx), &p, why, sizeof why))
            fail_msg("%s is refused: %s", label, why);
        check_all_shapes(ctx, &pr, label);
    }
    /* an override stays in CLBlast for the process: the defaults still compute the same GEMM */
    check_all_shapes(ctx, &def, "defaults after overrides");
}

/* valid() holds CLBlast's tuner's constraints. */
static void test_clblast_valid(void **state)
{
    clattn_context *ctx = *state;
    const clattn_family *f = clattn_gemm_clblast->family;
    clattn_params pr;
    char why[256];
    clattn_problem p;
    clattn_gemm_problem(CLATTN_F32, 64, 64, 64, &p);
    static const struct { int index, value; const char *needle; } bad[] = {
        {6, 48, "MWG"},      /* MWG 48 not a multiple of MDIMC*VWM = 32 */
        {2, 8, "KWG"},       /* KWG 8 not a multiple of MDIMC*NDIMC/NDIMB = 16 */
        {0, 1, "GEMMK=1"},   /* kernel 1 with kernel 0's KWG */
        {1, 2, "KREG"},      /* KREG with GEMMK 0 */
        {14, 3, "vector"},   /* VWM 3 */
        {10, 2, "SA=2"},     /* a flag out of 0..1 */
        {5, 0, "MDIMC=0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        clattn_params_defaults(f, CLATTN_CLASS_CPU, &pr);
        pr.v[bad[i].index] = bad[i].value;
        why[0] = 0;
        assert_false(f->valid(&pr, clattn_test_device(ctx), &p, why, sizeof why));
        if (!strstr(why, bad[i].needle))
            fail_msg("case %zu: '%s' does not name %s", i, why, bad[i].needle);
    }
    /* local memory: SA and SB tiles of 128 x 32 floats each need 32 KiB */
    clattn_device_info dev = *clattn_test_device(ctx);
    dev.local_mem_bytes = 16384;
    set_params(&pr, (const int[16]){0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 1, 1, 0, 0, 4, 4});
    assert_true(f->valid(&pr, clattn_test_device(ctx), &p, why, sizeof why));
    assert_false(f->valid(&pr, &dev, &p, why, sizeof why));
    assert_non_null(strstr(why, "local memory"));
    dev = *clattn_test_device(ctx);
    dev.max_work_group = 32;
    assert_false(f->valid(&pr, &dev, &p, why, sizeof why));
    assert_non_null(strstr(why, "work-group"));
}

/* A tiny tuning run for backend: its entry is what the lookup returns, and it computes right. */
static void tune_and_use(clattn_context *ctx, const clattn_gemm_backend *backend, int candidates)
{
    const shape sh = {37, 50, 23, 11, 5};
    clattn_tune_options opt;
    clattn_tune_family_report fr;
    clattn_params pr;
    clattn_problem p;
    char got[160];
    int exact = 0;
    memset(&opt, 0, sizeof opt);
    opt.budget_s = 2.5;
    opt.max_candidates = candidates;
    opt.no_save = 1;
    opt.repeats = 3;
    clattn_test_lock(ctx);
    clattn_status st = clattn_gemm_tune(ctx, backend, CLATTN_F32, sh.rows, sh.cols, sh.inner, &opt, &fr);
    clattn_test_unlock(ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", backend->name, clattn_status_string(st), clattn_context_last_error(ctx));
    print_message("%s: %d tried (%d failed), defaults %.3f ms, best %.3f ms: %s\n", fr.family,
                  fr.tried, fr.failed, fr.default_ms, fr.best_ms, fr.best_params);
    if (fr.failed)
        print_message("  first failure: %s\n", fr.first_failure);
    assert_string_equal(fr.family, backend->family->name);
    assert_true(fr.tried >= 1);
    assert_true(fr.default_ms > 0 && fr.best_ms > 0 && fr.best_ms <= fr.default_ms);
    assert_int_equal(fr.failed, 0);   /* every candidate is valid, so every one must compute right */

    clattn_gemm_problem(CLATTN_F32, sh.rows, sh.cols, sh.inner, &p);
    clattn_test_lock(ctx);
    const int found = clattn_tuning_lookup(ctx, backend->family, &p, &pr, &exact);
    const double ms = clattn_tuning_time_ms(ctx, backend->family, &p);
    clattn_test_unlock(ctx);
    assert_true(found);
    assert_true(exact);
    assert_true(fabs(ms - fr.best_ms) < 1e-3);
    clattn_params_string(backend->family, &pr, got, sizeof got);
    assert_string_equal(got, fr.best_params);
    check_gemm(ctx, backend, &sh, 1, &pr, "the tuned entry");
    check_gemm(ctx, backend, &sh, 0, &pr, "the tuned entry, no bias");
}

static void test_gemm_tune_clblast(void **state)
{
    /* the defaults alone: one CLBlast candidate can take PoCL a minute and more to build (large
       tiles unrolled); test_clblast_against_reference runs other sets through the override */
    tune_and_use(*state, clattn_gemm_clblast, 1);
}

static void test_gemm_tune_own(void **state)
{
    tune_and_use(*state, &clattn_gemm_own, 4);
}

static void test_gemm_tune_bad_input(void **state)
{
    clattn_context *ctx = *state;
    clattn_tune_family_report fr;
    clattn_test_lock(ctx);
    assert_int_equal(clattn_gemm_tune(ctx, NULL, CLATTN_F32, 4, 4, 4, NULL, &fr), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_gemm_tune(ctx, clattn_gemm_clblast, CLATTN_F32, 0, 4, 4, NULL, &fr),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_gemm_tune(ctx, clattn_gemm_clblast, (clattn_dtype)7, 4, 4, 4, NULL, &fr),
                     CLATTN_INVALID_ARGUMENT);
    clattn_test_unlock(ctx);
    assert_non_null(strstr(clattn_context_last_error(ctx), "dtype"));
}

static void test_mha_tune_bad_input(void **state)
{
    clattn_context *ctx = *state;
    clattn_tune_report rep;
    clattn_mha_desc d;
    memset(&d, 0, sizeof d);
    d.batch = 1, d.seq_q = d.seq_kv = 8, d.embed_dim = 16, d.heads_q = 2;
    assert_int_equal(clattn_mha_tune(NULL, &d, NULL, &rep), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_mha_tune(ctx, NULL, NULL, &rep), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "desc"));
    d.heads_q = 3;   /* 16 % 3 */
    assert_int_equal(clattn_mha_tune(ctx, &d, NULL, &rep), CLATTN_INVALID_ARGUMENT);
    assert_true(strlen(clattn_context_last_error(ctx)) > 0);
    d.heads_q = 2;
    d.embed_dim = 0;
    assert_int_equal(clattn_mha_tune(ctx, &d, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    d.embed_dim = 16;
    d.projections = (clattn_projection_impl)9;
    assert_int_equal(clattn_mha_tune(ctx, &d, NULL, &rep), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "projections"));
    d.projections = CLATTN_PROJ_AUTO;
    d.dtype = (clattn_dtype)5;
    assert_int_equal(clattn_mha_tune(ctx, &d, NULL, &rep), CLATTN_INVALID_ARGUMENT);
    /* an empty layer: nothing to tune, and it says so */
    d.dtype = CLATTN_F32;
    d.batch = 0;
    assert_int_equal(clattn_mha_tune(ctx, &d, NULL, &rep), CLATTN_SUCCESS);
    assert_int_equal(rep.n_families, 0);
    assert_non_null(strstr(rep.note, "nothing to tune"));
}

/* A tiny layer end to end: one row per backend and distinct shape, then the attention's. */
static void test_mha_tune_small(void **state)
{
    clattn_context *ctx = *state;
    clattn_tune_report rep;
    clattn_tune_options opt;
    clattn_mha_desc d;
    memset(&d, 0, sizeof d);
    memset(&opt, 0, sizeof opt);
    d.batch = 1, d.seq_q = d.seq_kv = 9, d.embed_dim = 24, d.heads_q = 2, d.in_bias = d.out_bias = 1;
    opt.budget_s = 4;
    opt.max_candidates = 1;   /* the defaults only: the flow and the report, not the search */
    opt.no_save = 1;
    opt.repeats = 3;
    clattn_status st = clattn_mha_tune(ctx, &d, &opt, &rep);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", clattn_status_string(st), clattn_context_last_error(ctx));
    for (int i = 0; i < rep.n_families; i++)
        print_message("%-14s tried %3d  defaults %.3f ms  best %.3f ms  %s\n", rep.families[i].family,
                      rep.families[i].tried, rep.families[i].default_ms, rep.families[i].best_ms,
                      rep.families[i].best_params);
    /* self-attention with kdim = vdim = E and Hkv = Hq: q, k, v and out share one shape */
    assert_true(rep.n_families >= 3);
    assert_string_equal(rep.families[0].family, "proj");
    assert_string_equal(rep.families[1].family, "clblast_xgemm");
    assert_int_equal(rep.saved, 0);
    assert_true(rep.elapsed_s > 0);
}

int main(void)
{
    if (!clattn_gemm_clblast) {
        printf("SKIP: this build has no CLBlast\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clblast_valid),
        cmocka_unit_test(test_clblast_against_reference),
        cmocka_unit_test(test_gemm_tune_bad_input),
        cmocka_unit_test(test_gemm_tune_clblast),
        cmocka_unit_test(test_gemm_tune_own),
        cmocka_unit_test(test_mha_tune_bad_input),
        cmocka_unit_test(test_mha_tune_small),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
