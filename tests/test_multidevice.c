/* Two contexts on two devices in one process, as the no-global-state rule promises. meson runs this
 * with POCL_DEVICES="pthread pthread", which gives PoCL's platform two CPU devices, "0:0" and
 * "0:1"; elsewhere the selectors come from $CLATTN_DEVICE_A and $CLATTN_DEVICE_B. With fewer than
 * two devices the binary exits 77 (SKIP).
 * Each context is checked alone, interleaved with the other, and concurrently from two threads.
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

#define CALLS 12

typedef struct fixture {
    clattn_context *ctx[2];
} fixture;

static const char *selector(int i)
{
    const char *env = getenv(i ? "CLATTN_DEVICE_B" : "CLATTN_DEVICE_A");
    return env && *env ? env : i ? "0:1" : "0:0";
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    for (int i = 0; i < 2; i++)
        f->ctx[i] = tu_context_or_skip(selector(i));   /* exits 77 when the device is not there */
    if (clattn_context_device(f->ctx[0]) == clattn_context_device(f->ctx[1])) {
        printf("SKIP: \"%s\" and \"%s\" are the same device\n", selector(0), selector(1));
        exit(77);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clattn_context_release(f->ctx[0]);
    clattn_context_release(f->ctx[1]);
    free(f);
    return 0;
}

static void make_case(int dev, int n, tu_case *c)
{
    memset(c, 0, sizeof *c);
    clattn_attention_desc *d = &c->desc;
    d->batch = 1 + n % 2;
    d->heads_q = 4;
    d->heads_kv = n % 3 == 0 ? 1 : 2;
    d->seq_q = 1 + 13 * (n % 5);
    d->seq_kv = 3 + 17 * ((n + dev) % 4);
    d->head_dim = n % 2 ? 40 : 64;
    d->dtype = (clattn_dtype)((n / 2) % 2);
    d->layout = (clattn_layout)(n % 2);
    d->causal = (clattn_causal)(n % 3);
    d->mask_type = n % 4 == 1 ? CLATTN_MASK_BOOL_U8 : CLATTN_MASK_NONE;
    d->path = CLATTN_PATH_UNFUSED;
    c->mask_kind = TU_MASK_BROADCAST;
    c->want_probs = n % 2;
    c->want_lse = 1;
    c->use_buffers = (n / 3) % 2;
    c->seed = 0xd0u + (uint64_t)dev * 100u + (uint64_t)n;
}

/* Alternating calls: device 0, device 1, device 0, ... each checked. */
static void test_interleaved(void **state)
{
    fixture *f = *state;
    for (int n = 0; n < CALLS; n++)
        for (int dev = 0; dev < 2; dev++) {
            tu_case c;
            tu_outcome o;
            make_case(dev, n, &c);
            tu_run_case(f->ctx[dev], &c, &o);
            if (!o.ok)
                fail_msg("device %d (%s): %s", dev, clattn_context_device_name(f->ctx[dev]), o.msg);
        }
}

typedef struct worker {
    pthread_t thread;
    clattn_context *ctx;
    int dev, failed;
    char first_failure[1100];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int n = 0; n < CALLS; n++) {
        tu_case c;
        tu_outcome o;
        make_case(w->dev, n + CALLS, &c);
        tu_run_case(w->ctx, &c, &o);
        if (!o.ok && w->failed++ == 0)
            snprintf(w->first_failure, sizeof w->first_failure, "%s", o.msg);
    }
    return NULL;
}

/* One thread per device, both at once. */
static void test_concurrent(void **state)
{
    fixture *f = *state;
    worker w[2];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 2; i++) {
        w[i].ctx = f->ctx[i];
        w[i].dev = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    for (int i = 0; i < 2; i++)
        if (w[i].failed)
            fail_msg("device %d: %d of %d calls failed; first: %s", i, w[i].failed, CALLS, w[i].first_failure);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
