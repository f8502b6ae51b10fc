/* Tuning entries the library must not trust (host/params.c, clattn_params_lookup): an entry whose
 * value is 0, negative, so large that a product of parameters wraps, or simply not one of the
 * family's candidates is not used. The call runs on the parameters it would have had without the
 * entry, gives the reference's result, records a warning, and builds no program for the entry
 * (bad entries are refused before any build, so a bad value costs no compile).
 *
 * For every family (qk, softmax, pv, flash, flash_split, flash_decode, merge) and every parameter
 * of it, the bad values are put into the context's tuning table for the exact shape class of a call
 * that consults the family; one more test goes through a tuning file on disk. The problems are small
 * and each test builds its programs once, on the first (untuned) call. */
#define _XOPEN_SOURCE 700     /* nftw, mkdtemp, strdup */
#include "host/cache/cache.h"
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the calls ------------------------------------------------------------------------------- */

/* Unfused: consults qk, softmax and pv. */
static clattn_attention_desc unfused_desc(void)
{
    clattn_attention_desc d = {0};
    d.batch = 1;
    d.heads_q = 2;
    d.seq_q = 20;
    d.seq_kv = 37;
    d.head_dim = 16;
    d.path = CLATTN_PATH_UNFUSED;
    return d;
}

/* Fused, prefill-shaped (20 rows per KV head): consults flash. */
static clattn_attention_desc prefill_desc(void)
{
    clattn_attention_desc d = unfused_desc();
    d.path = CLATTN_PATH_FUSED;
    return d;
}

/* Fused, decode-shaped and long: consults flash_decode on CPUs (flash_split elsewhere), splits the
   keys and so consults merge. */
static clattn_attention_desc decode_desc(void)
{
    clattn_attention_desc d = {0};
    d.batch = 1;
    d.heads_q = 4;
    d.heads_kv = 1;
    d.seq_q = 1;
    d.seq_kv = 2048;
    d.head_dim = 16;
    d.path = CLATTN_PATH_FUSED;
    return d;
}

/* The same with d = 24, which flash_decode does not take (multiples of 16): flash_split everywhere. */
static clattn_attention_desc split_desc(void)
{
    clattn_attention_desc d = decode_desc();
    d.head_dim = 24;
    return d;
}

/* A context with tuning on and no tuning entry but those a test puts: cache_dir NULL keeps the
   caches off (with options alone, no folder is named), else the tuning file there is read. */
static clattn_context *new_context_in(const char *cache_dir)
{
    clattn_context *ctx = NULL;
    clattn_context_options o = {.ignore_environment = 1, .cache_dir = cache_dir,
                                .tuning = CLATTN_SWITCH_ON};
    clattn_status st = clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &o, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_context_create: %s", clattn_status_string(st));
    return ctx;
}

static clattn_context *new_context(int clear)
{
    assert_true(clear);
    return new_context_in(NULL);
}

static unsigned long programs(clattn_context *ctx)
{
    clattn_cache_info info;
    assert_int_equal(clattn_context_cache_info(ctx, &info), CLATTN_SUCCESS);
    return info.programs_compiled + info.programs_loaded;
}

/* The attention call on ctx against the reference; 1 when it succeeded and matched. */
static int run_call(clattn_context *ctx, const clattn_attention_desc *desc, const char *what)
{
    tu_case c;
    tu_outcome res;
    memset(&c, 0, sizeof c);
    c.desc = *desc;
    c.want_lse = 1;
    c.use_buffers = 1;
    c.seed = 11;
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        print_message("%s: %s\n%s\n", what, res.msg, clattn_context_last_error(ctx));
    return res.ok;
}

static cl_mem upload(clattn_context *ctx, const void *data, size_t bytes)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                              bytes, (void *)data, &err);
    assert_int_equal(err, CL_SUCCESS);
    return m;
}

/* clattn_merge_partials (consults merge) on two random parts against clattn_merge_partials_host;
   1 when it succeeded and agreed to 2e-6 (the device's float sum against the host's double). */
static int run_merge_partials(clattn_context *ctx, const char *what)
{
    clattn_attention_desc d = {0};
    d.batch = 1;
    d.heads_q = 4;
    d.seq_q = 3;
    d.head_dim = 16;
    const size_t n_out = 4 * 3 * 16, n_lse = 4 * 3;
    float outs[2][4 * 3 * 16], lses[2][4 * 3], want[4 * 3 * 16], want_lse[4 * 3];
    float got[4 * 3 * 16], got_lse[4 * 3];
    tu_rng r;
    tu_rng_seed(&r, 5);
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < n_out; i++)
            outs[p][i] = (float)tu_rng_normal(&r);
        for (size_t i = 0; i < n_lse; i++)
            lses[p][i] = (float)tu_rng_normal(&r);
    }
    const void *host_outs[2] = {outs[0], outs[1]};
    const float *host_lses[2] = {lses[0], lses[1]};
    assert_int_equal(clattn_merge_partials_host(2, host_outs, host_lses, &d, want, want_lse),
                     CLATTN_SUCCESS);

    cl_mem dev_outs[2], dev_lses[2];
    for (int p = 0; p < 2; p++) {
        dev_outs[p] = upload(ctx, outs[p], sizeof outs[p]);
        dev_lses[p] = upload(ctx, lses[p], sizeof lses[p]);
    }
    cl_mem out = upload(ctx, got, sizeof got), lse = upload(ctx, got_lse, sizeof got_lse);
    clattn_status st = clattn_merge_partials(ctx, 2, dev_outs, dev_lses, &d, out, lse);
    cl_command_queue q = clattn_context_queue(ctx);
    if (st == CLATTN_SUCCESS) {
        assert_int_equal(clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(q, lse, CL_TRUE, 0, sizeof got_lse, got_lse, 0, NULL,
                                             NULL),
                         CL_SUCCESS);
    }
    for (int p = 0; p < 2; p++) {
        clReleaseMemObject(dev_outs[p]);
        clReleaseMemObject(dev_lses[p]);
    }
    clReleaseMemObject(out);
    clReleaseMemObject(lse);
    if (st != CLATTN_SUCCESS) {
        print_message("%s: clattn_merge_partials: %s\n%s\n", what, clattn_status_string(st),
                      clattn_context_last_error(ctx));
        return 0;
    }
    for (size_t i = 0; i < n_out; i++)
        if (!(fabs(got[i] - want[i]) <= 2e-6 * fmax(1.0, fabs(want[i])))) {
            print_message("%s: merged out[%zu] = %g, want %g\n", what, i, got[i], want[i]);
            return 0;
        }
    for (size_t i = 0; i < n_lse; i++)
        if (!(fabs(got_lse[i] - want_lse[i]) <= 2e-6 * fmax(1.0, fabs(want_lse[i])))) {
            print_message("%s: merged lse[%zu] = %g, want %g\n", what, i, got_lse[i], want_lse[i]);
            return 0;
        }
    return 1;
}

/* ---- one family ------------------------------------------------------------------------------ */

typedef struct scenario {
    const clattn_family *family;
    clattn_attention_desc desc;   /* a call that looks family up for desc's problem */
    int merge_partials;           /* clattn_merge_partials consults it too */
} scenario;

static void params_text(const clattn_family *f, const clattn_params *pr, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < f->n_params && used < len; i++) {
        int n = snprintf(buf + used, len - used, " %s=%d", f->params[i].name, pr->v[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int has_warning(clattn_context *ctx, const clattn_family *f)
{
    const char *e = clattn_context_last_warning(ctx);
    return strstr(e, "not used") != NULL && strstr(e, f->name) != NULL &&
           clattn_context_last_error(ctx)[0] == '\0';   /* a warning, not a failure */
}

/* Puts entry for the scenario's exact shape class and checks that nothing uses it: the lookup
   gives ref (what it gives with no entry) and warns; the call succeeds, matches the reference,
   warns and builds no program. */
static void expect_refused(clattn_context *ctx, const scenario *sc, const clattn_problem *p,
                           const clattn_params *ref, const clattn_params *entry)
{
    const clattn_family *f = sc->family;
    char what[256], text[200];
    clattn_params got;
    params_text(f, entry, text, sizeof text);
    snprintf(what, sizeof what, "%s entry%s", f->name, text);

    clattn_test_lock(ctx);
    assert_int_equal(clattn_tuning_put(ctx, f, p, entry, 1.0, 2.0), CLATTN_SUCCESS);
    clattn_clear_messages(ctx);
    clattn_status st = clattn_params_lookup(ctx, f, p, &got);
    clattn_test_unlock(ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: lookup %s (%s)", what, clattn_status_string(st), clattn_context_last_error(ctx));
    if (memcmp(&got, ref, sizeof got) != 0) {
        char used[200];
        params_text(f, &got, used, sizeof used);
        fail_msg("%s: the lookup gave%s", what, used);
    }
    if (!has_warning(ctx, f))
        fail_msg("%s: no warning from the lookup (last_warning '%s')", what,
                 clattn_context_last_warning(ctx));

    const unsigned long before = programs(ctx);
    clattn_clear_messages(ctx);
    if (!run_call(ctx, &sc->desc, what))
        fail_msg("%s: the call failed or disagreed with the reference", what);
    if (!has_warning(ctx, f))
        fail_msg("%s: no warning from the call (last_warning '%s')", what,
                 clattn_context_last_warning(ctx));
    if (sc->merge_partials) {
        clattn_clear_messages(ctx);
        if (!run_merge_partials(ctx, what))
            fail_msg("%s: clattn_merge_partials failed or disagreed with the host merge", what);
        if (!has_warning(ctx, f))
            fail_msg("%s: no warning from clattn_merge_partials (last_error '%s')", what,
                     clattn_context_last_error(ctx));
    }
    if (programs(ctx) != before)
        fail_msg("%s: %lu program(s) built for it", what, programs(ctx) - before);
}

static int is_candidate(const clattn_param_def *def, int v)
{
    for (int c = 0; c < def->n_candidates; c++)
        if (def->candidates[c] == v)
            return 1;
    return 0;
}

/* A positive value not among parameter i's candidates; preferably one the family's constraints
   accept with the other values of ref, so that only the candidate lists stand in its way (VW=32
   with BLOCK_M=128 passes every divisibility rule, and the kernel has no floatv of 32 lanes). */
static int off_list_value(const clattn_family *f, const clattn_device_info *dev,
                          const clattn_problem *p, const clattn_params *ref, int i)
{
    static const int tries[] = {5, 3, 6, 12, 24, 32, 48, 64, 96, 256, 512, 1024};
    int first = 0;
    char why[256];
    for (size_t t = 0; t < sizeof tries / sizeof *tries; t++) {
        if (is_candidate(&f->params[i], tries[t]))
            continue;
        if (!first)
            first = tries[t];
        clattn_params pt = *ref;
        pt.v[i] = tries[t];
        if (f->valid(&pt, dev, p, why, sizeof why))
            return tries[t];
    }
    return first;
}

static void run_scenario(const scenario *sc)
{
    const clattn_family *f = sc->family;
    clattn_problem p;
    clattn_params ref, entry;
    assert_int_equal(clattn_problem_init(&sc->desc, &p, NULL, 0), CLATTN_SUCCESS);
    clattn_context *ctx = new_context(1);

    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, f, &p, &ref), CLATTN_SUCCESS);
    clattn_test_unlock(ctx);
    const clattn_family *fused = clattn_flash_family_for(clattn_test_device(ctx), &p);
    if (f == &clattn_family_merge) {
        /* the decode call only consults merge when it splits the keys */
        clattn_params split_ref;
        clattn_test_lock(ctx);
        assert_int_equal(clattn_params_lookup(ctx, fused, &p, &split_ref), CLATTN_SUCCESS);
        clattn_test_unlock(ctx);
        assert_true(clattn_flash_splits(ctx, &p, &split_ref) > 1);
    } else if (sc->desc.path == CLATTN_PATH_FUSED) {
        assert_ptr_equal(fused, f);   /* the call consults the family under test */
        if (f != &clattn_family_flash)
            assert_true(clattn_flash_splits(ctx, &p, &ref) > 1);
    }
    /* builds the programs, on the parameters the bad entries must leave in place */
    assert_true(run_call(ctx, &sc->desc, "untuned"));
    if (sc->merge_partials)
        assert_true(run_merge_partials(ctx, "untuned"));

    const int bad[] = {0, -1, -64, INT_MIN, 1 << 30, INT_MAX};
    for (int i = 0; i < f->n_params; i++) {
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            entry = ref;
            entry.v[i] = bad[b];
            expect_refused(ctx, sc, &p, &ref, &entry);
        }
        entry = ref;
        entry.v[i] = off_list_value(f, clattn_test_device(ctx), &p, &ref, i);
        expect_refused(ctx, sc, &p, &ref, &entry);
    }
    /* products of two parameters that wrap a 32-bit int to 0 (65536 * 65536) or past INT_MAX */
    for (int i = 0; i < f->n_params; i++)
        for (int j = i + 1; j < f->n_params; j++) {
            entry = ref;
            entry.v[i] = entry.v[j] = 65536;
            expect_refused(ctx, sc, &p, &ref, &entry);
            entry.v[i] = entry.v[j] = 1 << 30;
            expect_refused(ctx, sc, &p, &ref, &entry);
        }
    /* every parameter at once */
    const int all[] = {0, -1, 65536, INT_MAX};
    for (size_t a = 0; a < sizeof all / sizeof *all; a++) {
        for (int i = 0; i < f->n_params; i++)
            entry.v[i] = all[a];
        expect_refused(ctx, sc, &p, &ref, &entry);
    }
    clattn_context_release(ctx);
}

static void test_qk(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_qk, unfused_desc(), 0};
    run_scenario(&sc);
}

static void test_softmax(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_softmax, unfused_desc(), 0};
    run_scenario(&sc);
}

static void test_pv(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_pv, unfused_desc(), 0};
    run_scenario(&sc);
}

static void test_flash(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_flash, prefill_desc(), 0};
    run_scenario(&sc);
}

static void test_flash_split(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_flash_split, split_desc(), 0};
    run_scenario(&sc);
}

/* flash_decode serves decode on CPUs only: elsewhere the decode call takes flash_split. */
static void test_flash_decode(void **state)
{
    (void)state;
    clattn_context *ctx = new_context(1);
    const int cpu = clattn_test_device(ctx)->cls == CLATTN_CLASS_CPU;
    clattn_context_release(ctx);
    if (!cpu)
        skip();
    scenario sc = {&clattn_family_flash_decode, decode_desc(), 0};
    run_scenario(&sc);
}

/* The decode call's merge and the public merge share one program (float parts, F32 out), and the
   public merge's shape class is the nearest one to the decode entry (same d and dv). */
static void test_merge(void **state)
{
    (void)state;
    scenario sc = {&clattn_family_merge, decode_desc(), 1};
    run_scenario(&sc);
}

/* The same through a tuning file: the file is valid (it loads with no warning, its entry
   counts), but its flash entry is not used: VW=5 with BLOCK_M=40 passes every divisibility rule
   and would reach the kernel's #error; BLOCK_M=0 would divide by zero. */
static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    remove(path);
    return 0;
}

static void test_entries_from_file(void **state)
{
    (void)state;
    const clattn_family *f = &clattn_family_flash;
    const clattn_attention_desc desc = prefill_desc();
    char root[256], dir[300];
    snprintf(root, sizeof root, "%s/clattn-test-entries-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof dir, "%s/cache", root);

    clattn_problem p;
    assert_int_equal(clattn_problem_init(&desc, &p, NULL, 0), CLATTN_SUCCESS);
    const struct {
        const char *name;
        int value;
    } bad[][2] = {{{"VW", 5}, {"BLOCK_M", 40}}, {{"BLOCK_M", 0}, {"BLOCK_M", 0}}};
    for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        clattn_context *ctx = new_context_in(dir);
        clattn_params ref, entry;
        char err[512];
        int saved = 0;
        clattn_test_lock(ctx);
        assert_int_equal(clattn_params_lookup(ctx, f, &p, &ref), CLATTN_SUCCESS);
        entry = ref;
        for (int k = 0; k < 2; k++)
            entry.v[clattn_param_index(f, bad[b][k].name)] = bad[b][k].value;
        assert_int_equal(clattn_tuning_put(ctx, f, &p, &entry, 1.0, 2.0), CLATTN_SUCCESS);
        assert_int_equal(clattn_tuning_save(ctx, &saved, err, sizeof err), CLATTN_SUCCESS);
        assert_true(saved);
        clattn_test_unlock(ctx);
        clattn_context_release(ctx);

        ctx = new_context_in(dir);             /* loads the file */
        clattn_cache_info info;
        assert_int_equal(clattn_context_cache_info(ctx, &info), CLATTN_SUCCESS);
        assert_string_equal(clattn_context_last_error(ctx), "");
        assert_int_equal(info.tuning_entries, 1);
        if (!run_call(ctx, &desc, bad[b][0].name))
            fail_msg("entry %s=%d from the file: the call failed or disagreed with the reference",
                     bad[b][0].name, bad[b][0].value);
        if (!has_warning(ctx, f))
            fail_msg("entry %s=%d from the file: no warning (last_warning '%s')", bad[b][0].name,
                     bad[b][0].value, clattn_context_last_warning(ctx));
        clattn_context_release(ctx);
    }
    nftw(root, remove_one, 16, FTW_PHYS | FTW_DEPTH);
}

int main(void)
{
    clattn_context_release(tu_context_or_skip(NULL));   /* 77 without a device */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qk),          cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_pv),          cmocka_unit_test(test_flash),
        cmocka_unit_test(test_flash_split), cmocka_unit_test(test_flash_decode),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_entries_from_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
