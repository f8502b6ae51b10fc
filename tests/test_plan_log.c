/* Plans, options, the log and the two messages, seen from the public API:
 *   - clattn_plan_describe names the path, the kernels, their parameters and their provenance, and
 *     the provenance moves from the device-class default to the exact tuning entry after tuning;
 *   - a context made with options (no environment) logs each call's plan to its callback, and a
 *     warning (a corrupt tuning file) goes to the log and last_warning, never to last_error;
 *   - last_error read on one thread while others fail is always one whole message.
 */
#include "testutil.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* A context on the test device configured by options alone; cache in dir when given. */
static clattn_context *context_with(const char *dir, clattn_log_fn log, void *user, int log_plans)
{
    clattn_context_options o;
    memset(&o, 0, sizeof o);
    o.ignore_environment = 1;
    o.cache_dir = dir;
    o.log = log;
    o.log_user = user;
    o.log_plans = log_plans ? CLATTN_SWITCH_ON : CLATTN_SWITCH_DEFAULT;
    clattn_context *ctx = NULL;
    const char *sel = getenv("CLATTN_DEVICE");   /* the fixture's device, as every test reads it */
    clattn_status st = clattn_context_create_with_options(sel, &o, &ctx);
    if (st == CLATTN_DEVICE_NOT_FOUND) {
        printf("no OpenCL device: skipping\n");
        exit(77);
    }
    assert_int_equal(st, CLATTN_SUCCESS);
    return ctx;
}

static clattn_attention_desc shape(int B, int Hq, int Hkv, int Lq, int Lk, int d, clattn_causal causal)
{
    clattn_attention_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.batch = B;
    desc.heads_q = Hq;
    desc.heads_kv = Hkv;
    desc.seq_q = Lq;
    desc.seq_kv = Lk;
    desc.head_dim = d;
    desc.causal = causal;
    return desc;
}

static void describe(clattn_context *ctx, const clattn_attention_desc *desc, int probs, char *buf,
                     size_t len)
{
    clattn_status st = clattn_plan_describe(ctx, desc, probs, buf, len);
    if (st != CLATTN_SUCCESS)
        fail_msg("plan_describe: %s: %s", clattn_status_string(st), clattn_context_last_error(ctx));
    printf("%s\n", buf);
}

/* What each shape runs, and the AUTO rule: probs take the unfused path. */
static void test_describe_paths(void **state)
{
    (void)state;
    clattn_context *ctx = context_with(NULL, NULL, NULL, 0);
    char text[2048];
    clattn_attention_desc bert = shape(2, 4, 4, 128, 128, 64, CLATTN_CAUSAL_NONE);
    describe(ctx, &bert, 0, text, sizeof text);
    assert_non_null(strstr(text, "fused path"));
    assert_non_null(strstr(text, "flash "));
    assert_non_null(strstr(text, "BLOCK_M="));
    assert_non_null(strstr(text, "device-class default"));
    describe(ctx, &bert, 1, text, sizeof text);
    assert_non_null(strstr(text, "unfused path"));
    assert_non_null(strstr(text, "qk "));
    assert_non_null(strstr(text, "softmax "));
    assert_non_null(strstr(text, "pv "));

    /* decode with grouped heads: a decode family (flash_decode on CPUs, flash_split elsewhere);
       unfused, the group's rows fold into one head */
    clattn_attention_desc decode = shape(1, 8, 2, 1, 4096, 64, CLATTN_CAUSAL_BOTTOM_RIGHT);
    describe(ctx, &decode, 0, text, sizeof text);
    clattn_problem dp;
    assert_int_equal(clattn_problem_init(&decode, &dp, NULL, 0), CLATTN_SUCCESS);
    const clattn_family *decode_family = clattn_flash_family_for(clattn_test_device(ctx), &dp);
    assert_true(decode_family == &clattn_family_flash_decode ||
                decode_family == &clattn_family_flash_split);
    if (clattn_test_device(ctx)->cls == CLATTN_CLASS_CPU)
        assert_ptr_equal(decode_family, &clattn_family_flash_decode);
    char named[32];
    snprintf(named, sizeof named, "%s ", decode_family->name);
    assert_non_null(strstr(text, named));
    decode.path = CLATTN_PATH_UNFUSED;
    describe(ctx, &decode, 0, text, sizeof text);
    assert_non_null(strstr(text, "reshaped"));

    /* empty problems run nothing; bad descs and fused-with-probs are refused */
    clattn_attention_desc empty = shape(0, 4, 4, 8, 8, 16, CLATTN_CAUSAL_NONE);
    describe(ctx, &empty, 0, text, sizeof text);
    assert_non_null(strstr(text, "no kernel runs"));
    clattn_attention_desc bad = shape(1, 4, 3, 8, 8, 16, CLATTN_CAUSAL_NONE);
    assert_int_equal(clattn_plan_describe(ctx, &bad, 0, text, sizeof text), CLATTN_INVALID_ARGUMENT);
    bert.path = CLATTN_PATH_FUSED;
    assert_int_equal(clattn_plan_describe(ctx, &bert, 1, text, sizeof text), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_plan_describe(ctx, &bert, 0, NULL, 0), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_plan_describe(NULL, &bert, 0, text, sizeof text), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_plan_describe(ctx, NULL, 0, text, sizeof text), CLATTN_INVALID_ARGUMENT);
    clattn_context_release(ctx);
}

/* After clattn_tune, the same call's parameters come from the exact tuning entry. */
static void test_provenance_after_tuning(void **state)
{
    (void)state;
    clattn_context *ctx = context_with(NULL, NULL, NULL, 0);
    char before[2048], after[2048];
    clattn_attention_desc gqa = shape(1, 4, 2, 40, 40, 16, CLATTN_CAUSAL_BOTTOM_RIGHT);
    describe(ctx, &gqa, 0, before, sizeof before);
    assert_null(strstr(before, "tuned"));
    clattn_tune_options opt;
    memset(&opt, 0, sizeof opt);
    opt.budget_s = 60;
    opt.max_candidates = 2;
    opt.no_save = 1;
    clattn_tune_report rep;
    clattn_status st = clattn_tune(ctx, &gqa, &opt, &rep);
    if (st != CLATTN_SUCCESS)
        fail_msg("tune: %s", clattn_context_last_error(ctx));
    describe(ctx, &gqa, 0, after, sizeof after);
    assert_non_null(strstr(after, "tuned, exact shape class"));
    clattn_context_release(ctx);
}

typedef struct log_record {
    int plans, warnings;
    char last_plan[2048], last_warning[1024];
} log_record;

static void record(void *user, clattn_log_level level, const char *message)
{
    log_record *r = user;
    if (level == CLATTN_LOG_PLAN) {
        r->plans++;
        snprintf(r->last_plan, sizeof r->last_plan, "%s", message);
    } else if (level == CLATTN_LOG_WARNING) {
        r->warnings++;
        snprintf(r->last_warning, sizeof r->last_warning, "%s", message);
    }
}

static void test_log_and_warnings(void **state)
{
    (void)state;
    char dir[] = "/tmp/clattn-plan-log-XXXXXX";
    assert_non_null(mkdtemp(dir));
    log_record rec;
    memset(&rec, 0, sizeof rec);

    /* a call logs its plan */
    clattn_context *ctx = context_with(dir, record, &rec, 1);
    assert_int_equal(rec.warnings, 0);
    tu_case c;
    memset(&c, 0, sizeof c);
    c.desc = shape(1, 2, 2, 9, 13, 16, CLATTN_CAUSAL_NONE);
    c.use_buffers = 1;
    c.seed = 7;
    tu_outcome res;
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        fail_msg("%s", res.msg);
    assert_true(rec.plans >= 1);
    assert_non_null(strstr(rec.last_plan, "fused path"));
    clattn_cache_info info;
    assert_int_equal(clattn_context_cache_info(ctx, &info), CLATTN_SUCCESS);
    char tuning_file[1024];
    snprintf(tuning_file, sizeof tuning_file, "%s", info.tuning_file);
    clattn_context_release(ctx);

    /* a corrupt tuning file: the context works, the log and last_warning say so, last_error not */
    FILE *f = fopen(tuning_file, "wb");
    assert_non_null(f);
    fputs("clattn-tune-cache garbage\n\x01\x02", f);
    fclose(f);
    memset(&rec, 0, sizeof rec);
    ctx = context_with(dir, record, &rec, 0);
    assert_int_equal(rec.warnings, 1);
    assert_non_null(strstr(clattn_context_last_warning(ctx), "ignoring the tuning cache"));
    assert_string_equal(clattn_context_last_warning(ctx), rec.last_warning);
    assert_string_equal(clattn_context_last_error(ctx), "");
    tu_run_case(ctx, &c, &res);
    if (!res.ok)
        fail_msg("%s", res.msg);
    assert_int_equal(rec.plans, 0);                 /* log_plans off */
    assert_string_equal(clattn_context_last_error(ctx), "");

    /* a failing call writes last_error, and the warning stays */
    clattn_attention_desc bad = shape(1, 3, 2, 4, 4, 16, CLATTN_CAUSAL_NONE);
    assert_int_equal(clattn_attention(ctx, &bad, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "heads"));
    assert_non_null(strstr(clattn_context_last_warning(ctx), "ignoring the tuning cache"));
    /* the copy variant, cut to fit, reports the full length */
    char small[8];
    size_t n = clattn_context_last_error_copy(ctx, small, sizeof small);
    assert_true(n > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(clattn_context_last_error_copy(ctx, NULL, 0), n);
    assert_int_equal(clattn_context_last_error_copy(NULL, small, sizeof small), 0);
    assert_string_equal(small, "");
    assert_string_equal(clattn_context_last_warning(NULL), "");
    clattn_context_set_log(ctx, NULL, NULL);
    clattn_context_set_log(NULL, record, &rec);   /* a no-op */
    clattn_context_release(ctx);
    unlink(tuning_file);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- last_error under threads ------------------------------------------------------------------ */

#define FAILERS 3
#define MESSAGES 2

typedef struct torn_state {
    clattn_context *ctx;
    int stop;                     /* atomic: set by the main thread */
    char expected[MESSAGES][512];
    long reads, torn;
    char example[512];
} torn_state;

/* Two descs whose refusals have messages of different lengths. */
static clattn_attention_desc failing_desc(int which)
{
    return which ? shape(1, 3, 2, 4, 4, 16, CLATTN_CAUSAL_NONE)    /* heads_q % heads_kv */
                 : shape(1, 2, 2, 4, 4, 999, CLATTN_CAUSAL_NONE);  /* head_dim too large */
}

static void *failer(void *arg)
{
    torn_state *s = arg;
    for (long i = 0; !__atomic_load_n(&s->stop, __ATOMIC_RELAXED); i++) {
        clattn_attention_desc d = failing_desc((int)(i & 1));
        clattn_attention(s->ctx, &d, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    }
    return NULL;
}

static void *reader(void *arg)
{
    torn_state *s = arg;
    while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
        const char *m = clattn_context_last_error(s->ctx);
        int whole = !strcmp(m, s->expected[0]) || !strcmp(m, s->expected[1]);
        __atomic_add_fetch(&s->reads, 1, __ATOMIC_RELAXED);
        if (!whole && __atomic_add_fetch(&s->torn, 1, __ATOMIC_RELAXED) == 1)
            snprintf(s->example, sizeof s->example, "%s", m);
    }
    return NULL;
}

static void test_last_error_threads(void **state)
{
    (void)state;
    torn_state s;
    memset(&s, 0, sizeof s);
    s.ctx = context_with(NULL, NULL, NULL, 0);
    for (int i = 0; i < MESSAGES; i++) {
        clattn_attention_desc d = failing_desc(i);
        assert_int_equal(clattn_attention(s.ctx, &d, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                         CLATTN_INVALID_ARGUMENT);
        snprintf(s.expected[i], sizeof s.expected[i], "%s", clattn_context_last_error(s.ctx));
    }
    assert_string_not_equal(s.expected[0], s.expected[1]);
    pthread_t t[FAILERS + 1];
    for (int i = 0; i < FAILERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, failer, &s), 0);
    assert_int_equal(pthread_create(&t[FAILERS], NULL, reader, &s), 0);
    usleep(1500 * 1000);
    __atomic_store_n(&s.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i <= FAILERS; i++)
        pthread_join(t[i], NULL);
    printf("%ld reads of last_error while %d threads failed, %ld torn\n", s.reads, FAILERS, s.torn);
    if (s.torn)
        fail_msg("torn message: '%s'", s.example);
    assert_true(s.reads > 1000);
    clattn_context_release(s.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_paths),
        cmocka_unit_test(test_provenance_after_tuning),
        cmocka_unit_test(test_log_and_warnings),
        cmocka_unit_test(test_last_error_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
