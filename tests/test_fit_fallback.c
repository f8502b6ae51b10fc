/* Parameter points whose kernels do not run on this driver (host/attention/params.c
 * clattn_params_try, host/cache/fit.c): a point that fails to build, or whose built kernel takes
 * more local memory than the device allows, is passed over for the next valid point, with a
 * warning naming the family, the parameters and the reason; the user's call succeeds with the
 * reference's result, and the point is not tried again by the same context.
 *
 * The failures are made with a copy of the kernel sources (options.kernel_dir) in which one
 * parameter value is broken: an #error for one BLOCK_M of cl/flash_attention.cl (a stale tuning
 * entry after a driver update, or a default the driver's compiler rejects), and a padding __local
 * array for one SM_WG of cl/softmax.cl (a compiler that takes more local memory than clattn's
 * mirror of the kernel says, on a device capped at 32 KiB). Forced parameters (the tuner's) that
 * do not run are the call's failure, never silently replaced. */
#define _XOPEN_SOURCE 700     /* nftw, mkdtemp */
#include "host/cache/cache.h"
#include "host/attention/defaults.h"
#include "testutil.h"

#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef CLATTN_CL_DIR
#error "CLATTN_CL_DIR (the kernel sources) must be defined by the build"
#endif

/* ---- a broken copy of the kernels ------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = tu_alloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void write_all(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* A fresh folder holding every kernel file, file with insert placed right after the first
   occurrence of anchor (NULL: at its start). */
static char *kernel_dir_with(const char *file, const char *anchor, const char *insert)
{
    char *dir = strdup("/tmp/clattn-fit-XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    DIR *d = opendir(CLATTN_CL_DIR);
    assert_non_null(d);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 3, ".cl"))
            continue;
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", CLATTN_CL_DIR, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dir, e->d_name);
        char *text = read_all(src);
        if (strcmp(e->d_name, file) == 0) {
            const char *at = anchor ? strstr(text, anchor) : text;
            assert_non_null(at);
            size_t head = (size_t)(at - text) + (anchor ? strlen(anchor) : 0);
            char *out = tu_alloc(strlen(text) + strlen(insert) + 1);
            memcpy(out, text, head);
            strcpy(out + head, insert);
            strcat(out, text + head);
            write_all(dst, out);
            free(out);
            found = 1;
        } else {
            write_all(dst, text);
        }
        free(text);
    }
    closedir(d);
    assert_true(found);
    return dir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_dir(char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* ---- contexts and calls ----------------------------------------------------------------------- */

/* Tuning on, no cache folder (no file is read, no binary is reused), kernels from kernel_dir. */
static clattn_context *new_context(const char *kernel_dir, unsigned long max_local)
{
    clattn_context *ctx = NULL;
    clattn_context_options o = {.ignore_environment = 1, .tuning = CLATTN_SWITCH_ON,
                                .kernel_dir = kernel_dir, .max_local_mem_bytes = max_local};
    clattn_status st = clattn_context_create_with_options(getenv("CLATTN_DEVICE"), &o, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_context_create: %s", clattn_status_string(st));
    return ctx;
}

/* Fused and prefill-shaped (20 rows per KV head): the flash family. */
static clattn_attention_desc prefill_desc(void)
{
    clattn_attention_desc d = {0};
    d.batch = 1;
    d.heads_q = 2;
    d.seq_q = 20;
    d.seq_kv = 37;
    d.head_dim = 16;
    d.path = CLATTN_PATH_FUSED;
    return d;
}

static clattn_attention_desc unfused_desc(void)
{
    clattn_attention_desc d = prefill_desc();
    d.path = CLATTN_PATH_UNFUSED;
    return d;
}

static clattn_problem problem_of(const clattn_attention_desc *d)
{
    clattn_problem p;
    char err[256];
    assert_int_equal(clattn_problem_init(d, &p, err, sizeof err), CLATTN_SUCCESS);
    return p;
}

/* The call against the reference; fails the test unless it succeeded and matched. */
static void expect_correct(clattn_context *ctx, const clattn_attention_desc *desc, const char *what)
{
    tu_case c;
    tu_outcome res;
    memset(&c, 0, sizeof c);
    c.desc = *desc;
    c.want_lse = 1;
    c.use_buffers = 1;
    c.seed = 5;
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        fail_msg("%s: %s\n%s", what, res.msg, clattn_context_last_error(ctx));
}

static void expect_text(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("expected '%s' in:\n%s", part, text);
}

static void describe(clattn_context *ctx, const clattn_attention_desc *d, char *buf, size_t len)
{
    assert_int_equal(clattn_plan_describe(ctx, d, 0, buf, len), CLATTN_SUCCESS);
}

/* The defaults of family for p on ctx (no tuning entry yet). */
static clattn_params defaults_of(clattn_context *ctx, const clattn_family *f, const clattn_problem *p)
{
    clattn_params pr;
    clattn_test_lock(ctx);
    assert_int_equal(clattn_params_lookup(ctx, f, p, &pr), CLATTN_SUCCESS);
    clattn_test_unlock(ctx);
    return pr;
}

/* A BLOCK_M other than the defaults' that valid() accepts with the rest of the defaults. */
static clattn_params other_block_m(clattn_context *ctx, const clattn_problem *p, const clattn_params *def)
{
    const clattn_param_def *bm = &clattn_flash_params[P_BLOCK_M];
    char why[256];
    for (int i = 0; i < bm->n_candidates; i++) {
        clattn_params pr = *def;
        pr.v[P_BLOCK_M] = bm->candidates[i];
        if (pr.v[P_BLOCK_M] != def->v[P_BLOCK_M] &&
            clattn_family_flash.valid(&pr, clattn_test_device(ctx), p, why, sizeof why))
            return pr;
    }
    fail_msg("no other valid BLOCK_M");
    return *def;
}

static char *error_dir_for_block_m(int bm)
{
    char insert[128];
    snprintf(insert, sizeof insert, "#if BLOCK_M == %d\n#error \"a stale point\"\n#endif\n", bm);
    return kernel_dir_with("flash_attention.cl", NULL, insert);
}

/* ---- tests ------------------------------------------------------------------------------------ */

/* A tuning entry that passes valid() but does not build on this driver: dropped with a warning,
   the defaults run, and the next call neither builds it again nor warns again. */
static void stale_tuning_entry_is_dropped(void **state)
{
    (void)state;
    const clattn_attention_desc d = prefill_desc();
    const clattn_problem p = problem_of(&d);
    clattn_context *probe = new_context(NULL, 0);
    const clattn_params def = defaults_of(probe, &clattn_family_flash, &p);
    const clattn_params entry = other_block_m(probe, &p, &def);
    clattn_context_release(probe);

    char *dir = error_dir_for_block_m(entry.v[P_BLOCK_M]);
    clattn_context *ctx = new_context(dir, 0);
    clattn_test_lock(ctx);
    assert_int_equal(clattn_tuning_put(ctx, &clattn_family_flash, &p, &entry, 1.0, 2.0), CLATTN_SUCCESS);
    clattn_test_unlock(ctx);
    clattn_clear_messages(ctx);
    expect_correct(ctx, &d, "stale tuning entry");
    char text[2048], bm[32];
    snprintf(text, sizeof text, "%s", clattn_context_last_warning(ctx));
    snprintf(bm, sizeof bm, "BLOCK_M=%d", entry.v[P_BLOCK_M]);
    print_message("warning: %.300s\n", text);
    expect_text(text, "flash at ");
    expect_text(text, bm);
    expect_text(text, "tuned, exact shape class");
    expect_text(text, "a stale point");
    assert_string_equal(clattn_context_last_error(ctx), "");   /* the call succeeded */
    describe(ctx, &d, text, sizeof text);
    expect_text(text, "device-class default");

    clattn_clear_messages(ctx);
    expect_correct(ctx, &d, "second call");
    assert_string_equal(clattn_context_last_warning(ctx), "");

    /* The tuner's forced point is its own failure, not replaced. */
    clattn_plan plan;
    clattn_plan_config cfg = {&clattn_family_flash, entry, 0};
    clattn_test_lock(ctx);
    clattn_status st = clattn_plan_resolve(ctx, &p, 0, &cfg, &plan);
    clattn_test_unlock(ctx);
    assert_int_not_equal(st, CLATTN_SUCCESS);
    expect_text(clattn_context_last_error(ctx), "a stale point");
    clattn_context_release(ctx);
    remove_dir(dir);
}

/* The class defaults themselves do not build: the nearest valid point runs instead. */
static void defaults_that_do_not_build_fall_back(void **state)
{
    (void)state;
    const clattn_attention_desc d = prefill_desc();
    const clattn_problem p = problem_of(&d);
    clattn_context *probe = new_context(NULL, 0);
    const clattn_params def = defaults_of(probe, &clattn_family_flash, &p);
    clattn_context_release(probe);

    char *dir = error_dir_for_block_m(def.v[P_BLOCK_M]);
    clattn_context *ctx = new_context(dir, 0);
    expect_correct(ctx, &d, "defaults that do not build");
    char text[2048];
    snprintf(text, sizeof text, "%s", clattn_context_last_warning(ctx));
    print_message("warning: %.300s\n", text);
    expect_text(text, "device-class default");
    expect_text(text, "a stale point");
    describe(ctx, &d, text, sizeof text);
    expect_text(text, "fallback");
    clattn_context_release(ctx);
    remove_dir(dir);
}

/* A built kernel that takes more local memory than the (capped) device has: passed over. */
static void kernel_over_local_memory_falls_back(void **state)
{
    (void)state;
    const unsigned long cap = 32768;
    const clattn_attention_desc d = unfused_desc();
    const clattn_problem p = problem_of(&d);
    clattn_context *probe = new_context(NULL, cap);
    const clattn_params def = defaults_of(probe, &clattn_family_softmax, &p);
    clattn_context_release(probe);

    char insert[256];
    snprintf(insert, sizeof insert,
             "\n#if SM_WG == %d\n    __local volatile float pad[%lu];\n"
             "    pad[get_local_id(0)] = 0.0f;\n#endif\n",
             def.v[P_SM_WG], cap / sizeof(float));
    char *dir = kernel_dir_with("softmax.cl", "__local float red[SM_WG];", insert);
    clattn_context *ctx = new_context(dir, cap);
    expect_correct(ctx, &d, "softmax over local memory");
    char text[2048], wg[32];
    snprintf(text, sizeof text, "%s", clattn_context_last_warning(ctx));
    print_message("warning: %.300s\n", text);
    snprintf(wg, sizeof wg, "SM_WG=%d", def.v[P_SM_WG]);
    expect_text(text, "softmax at ");
    expect_text(text, "local memory");
    describe(ctx, &d, text, sizeof text);
    expect_text(text, "fallback");
    const char *sm = strstr(text, "\n  softmax");   /* the softmax step runs another SM_WG */
    assert_non_null(sm);
    const char *next = strchr(sm + 1, '\n');
    const char *at = strstr(sm, wg);
    assert_true(!at || (next && at > next));
    clattn_context_release(ctx);
    remove_dir(dir);
}

int main(void)
{
    clattn_context_release(tu_context_or_skip(NULL));   /* exits 77 without a device */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stale_tuning_entry_is_dropped),
        cmocka_unit_test(defaults_that_do_not_build_fall_back),
        cmocka_unit_test(kernel_over_local_memory_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
