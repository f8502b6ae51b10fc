/* Calls from several threads at once: THREADS threads x CALLS mixed-shape calls on one shared context,
 * then the same with one context per thread. Every result is checked against the reference; a
 * thread never asserts (CMocka is not thread-safe) but files its failures for the main thread.
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

#include <cmocka.h>

#define THREADS 4
#define CALLS 50

typedef struct worker {
    pthread_t thread;
    int id;
    clattn_context *ctx;      /* shared, or NULL: the worker makes its own */
    int passed, failed;
    char first_failure[1100];   /* "call n: " and a tu_outcome message */
} worker;

/* Call n of worker id: small mixed shapes, both entry points, every option; the kernel variants
   used stay few (F32/F16 x no mask/bool/additive x causal or not) so that per-thread contexts do
   not spend the test compiling. */
static void make_case(int id, int n, tu_case *c)
{
    static const int lens[] = {1, 5, 16, 33, 70};
    static const int dims[][2] = {{8, 8}, {16, 16}, {40, 24}, {64, 64}};
    static const int heads[][2] = {{1, 1}, {4, 1}, {4, 2}};
    tu_rng r;
    tu_rng_seed(&r, 0x7e57u + (uint64_t)id * 1000u + (uint64_t)n);
    memset(c, 0, sizeof *c);
    clattn_attention_desc *d = &c->desc;
    int hd = tu_rng_below(&r, 3), dd = tu_rng_below(&r, 4);
    d->batch = 1 + tu_rng_below(&r, 2);
    d->heads_q = heads[hd][0];
    d->heads_kv = heads[hd][1];
    d->seq_q = lens[tu_rng_below(&r, 5)];
    d->seq_kv = lens[tu_rng_below(&r, 5)];
    d->head_dim = dims[dd][0];
    d->head_dim_v = dims[dd][1];
    d->dtype = (clattn_dtype)tu_rng_below(&r, 2);
    d->layout = (clattn_layout)tu_rng_below(&r, 2);
    d->causal = tu_rng_below(&r, 2) ? CLATTN_CAUSAL_BOTTOM_RIGHT : CLATTN_CAUSAL_NONE;
    static const clattn_mask_type masks[] = {CLATTN_MASK_NONE, CLATTN_MASK_BOOL_U8, CLATTN_MASK_ADDITIVE_F32};
    d->mask_type = masks[tu_rng_below(&r, 3)];
    d->path = CLATTN_PATH_UNFUSED;
    c->mask_kind = (tu_mask_kind)tu_rng_below(&r, TU_MASK_KIND_COUNT);
    c->want_probs = tu_rng_below(&r, 2);
    c->want_lse = tu_rng_below(&r, 2);
    c->use_buffers = tu_rng_below(&r, 2);
    c->seed = tu_rng_u64(&r);
}

static void *work(void *arg)
{
    worker *w = arg;
    clattn_context *ctx = w->ctx;
    if (!ctx) {
        clattn_status st = clattn_context_create(NULL, &ctx);
        if (st != CLATTN_SUCCESS) {
            w->failed = CALLS;
            snprintf(w->first_failure, sizeof w->first_failure, "clattn_context_create: %s",
                     clattn_status_string(st));
            return NULL;
        }
    }
    for (int n = 0; n < CALLS; n++) {
        tu_case c;
        tu_outcome o;
        make_case(w->id, n, &c);
        tu_run_case(ctx, &c, &o);
        if (o.ok) {
            w->passed++;
        } else if (w->failed++ == 0) {
            snprintf(w->first_failure, sizeof w->first_failure, "call %d: %s", n, o.msg);
        }
    }
    if (!w->ctx)
        clattn_context_release(ctx);
    return NULL;
}

static void run_workers(clattn_context *shared, const char *name)
{
    worker w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i;
        w[i].ctx = shared;
        assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
    }
    int failed = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
        printf("%s: thread %d: %d passed, %d failed%s%s\n", name, i, w[i].passed, w[i].failed,
               w[i].failed ? ": first: " : "", w[i].first_failure);
        failed += w[i].failed;
    }
    fflush(stdout);
    if (failed)
        fail_msg("%s: %d of %d calls failed", name, failed, THREADS * CALLS);
}

static void test_shared_context(void **state)
{
    run_workers(*state, "shared context");
}

static void test_context_per_thread(void **state)
{
    (void)state;   /* the fixture's context only proved that a device exists */
    run_workers(NULL, "context per thread");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_context),
        cmocka_unit_test(test_context_per_thread),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
