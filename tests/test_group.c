/* Several devices in one process: clattn_group_* over PoCL's CPU devices (meson runs this with
 * POCL_DEVICES="pthread pthread pthread": "0:0", "0:1", "0:2"). Groups of two and three devices,
 * split by heads and by keys, against the double-precision reference and against one device alone
 * (bit for bit where the parts run the same arithmetic); shares from measured speeds; a device that
 * fails mid-call; bad arguments. With fewer than three devices the binary exits 77 (SKIP).
 */
#include "host/group/group.h"
#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fixture {
    clattn_context *ctx[3];
    clattn_group *g2, *g3;
} fixture;

static int setup(void **state)
{
    static fixture f;
    const char *sel[3] = {"0:0", "0:1", "0:2"};
    for (int i = 0; i < 3; i++)
        f.ctx[i] = tu_context_or_skip(sel[i]);
    if (clattn_context_device(f.ctx[0]) == clattn_context_device(f.ctx[2])) {
        printf("SKIP: fewer than three devices (POCL_DEVICES=\"pthread pthread pthread\")\n");
        exit(77);
    }
    if (clattn_group_create_from_contexts(2, f.ctx, &f.g2) != CLATTN_SUCCESS ||
        clattn_group_create_from_contexts(3, f.ctx, &f.g3) != CLATTN_SUCCESS)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clattn_group_release(f->g2);
    clattn_group_release(f->g3);
    for (int i = 0; i < 3; i++)
        clattn_context_release(f->ctx[i]);
    return 0;
}

typedef struct io {
    clattn_attention_desc d;
    clattn_tensor_sizes sz;
    void *q, *k, *v, *mask;
    float *ks, *vs, *slopes, *sinks;
} io;

/* Random inputs for d (int8 K/V quantized from random floats). A mask of mask_type hides about a
   fifth of the keys, never a whole row: dense [B,Hq,Lq,Lk] when d leaves the strides 0 (so each
   part reads its own batch entries and heads of it), else as d's strides say. */
static void make_io(io *x, const clattn_attention_desc *d, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    memset(x, 0, sizeof *x);
    x->d = *d;
    if (d->mask_type != CLATTN_MASK_NONE && !d->mask_batch_stride && !d->mask_head_stride &&
        !d->mask_rows_broadcast) {
        x->d.mask_head_stride = (long)d->seq_q * d->seq_kv;
        x->d.mask_batch_stride = (long)d->heads_q * x->d.mask_head_stride;
    }
    if (d->alibi_slopes || d->sinks) {
        x->slopes = tu_alloc((size_t)d->heads_q * sizeof(float));
        x->sinks = tu_alloc((size_t)d->heads_q * sizeof(float));
        for (int h = 0; h < d->heads_q; h++) {
            x->slopes[h] = 0.05f * (float)(h + 1);
            x->sinks[h] = (float)tu_rng_normal(&r);
        }
        x->d.alibi_slopes = d->alibi_slopes ? x->slopes : NULL;
        x->d.sinks = d->sinks ? x->sinks : NULL;
    }
    if (d->kv_storage == CLATTN_KV_INT8) {
        /* quantize float K and V with the library's host quantizer */
        clattn_attention_desc f = x->d;
        f.kv_storage = CLATTN_KV_SAME;
        clattn_tensor_sizes fs;
        assert_int_equal(clattn_attention_sizes(&f, &fs), CLATTN_SUCCESS);
        void *kf = tu_alloc(fs.k), *vf = tu_alloc(fs.v);
        tu_fill_normal(kf, d->dtype, fs.k / clattn_dtype_size(d->dtype), 1.0f, &r);
        tu_fill_normal(vf, d->dtype, fs.v / clattn_dtype_size(d->dtype), 1.0f, &r);
        size_t sb = tu_kv_scale_bytes(&x->d);
        x->k = tu_alloc(fs.k / clattn_dtype_size(d->dtype));
        x->v = tu_alloc(fs.v / clattn_dtype_size(d->dtype));
        x->ks = tu_alloc(sb);
        x->vs = tu_alloc(sb);
        assert_int_equal(clattn_quantize_kv_host(&f, CLATTN_KV_KEYS, kf, x->k, x->ks), CLATTN_SUCCESS);
        assert_int_equal(clattn_quantize_kv_host(&f, CLATTN_KV_VALUES, vf, x->v, x->vs), CLATTN_SUCCESS);
        x->d.k_scale_host = x->ks;
        x->d.v_scale_host = x->vs;
        free(kf);
        free(vf);
    }
    assert_int_equal(clattn_attention_sizes(&x->d, &x->sz), CLATTN_SUCCESS);
    const size_t e = clattn_dtype_size(d->dtype);
    x->q = tu_alloc(x->sz.q + 1);
    tu_fill_normal(x->q, d->dtype, x->sz.q / e, 1.0f, &r);
    if (d->kv_storage != CLATTN_KV_INT8) {
        x->k = tu_alloc(x->sz.k + 1);
        x->v = tu_alloc(x->sz.v + 1);
        tu_fill_normal(x->k, d->dtype, x->sz.k / e, 1.0f, &r);
        tu_fill_normal(x->v, d->dtype, x->sz.v / e, 1.0f, &r);
    }
    if (d->mask_type == CLATTN_MASK_BOOL_U8) {
        unsigned char *m = tu_alloc(x->sz.mask + 1);
        for (size_t i = 0; i < x->sz.mask; i++)
            m[i] = (i % (size_t)d->seq_kv) == 0 || tu_rng_uniform(&r) > 0.2;
        x->mask = m;
    }
}

static void free_io(io *x)
{
    free(x->q);
    free(x->k);
    free(x->v);
    free(x->mask);
    free(x->ks);
    free(x->vs);
    free(x->slopes);
    free(x->sinks);
}

/* out, probs (when asked) and lse of the group call against the reference; and, when exact_ctx is
   given, against that one device bit for bit. */
static void check_case(clattn_group *g, const clattn_attention_desc *d, clattn_split split,
                       int want_probs, clattn_context *exact_ctx, const char *what)
{
    io x;
    make_io(&x, d, 1234u + (uint64_t)d->seq_kv * 7u + (uint64_t)d->heads_q);
    const size_t n_out = x.sz.out / clattn_dtype_size(d->dtype);
    void *out = tu_alloc(x.sz.out + 1), *ref = tu_alloc(x.sz.out + 1);
    float *lse = tu_alloc(x.sz.lse + 4), *ref_lse = tu_alloc(x.sz.lse + 4);
    float *probs = want_probs ? tu_alloc(x.sz.probs + 4) : NULL;
    float *ref_probs = want_probs ? tu_alloc(x.sz.probs + 4) : NULL;
    clattn_status st = clattn_group_attention_host(g, &x.d, split, x.q, x.k, x.v, x.mask, out, probs, lse);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", what, clattn_status_string(st), clattn_group_last_error(g));
    assert_int_equal(clattn_attention_reference(&x.d, x.q, x.k, x.v, x.mask, ref, ref_probs, ref_lse),
                     CLATTN_SUCCESS);
    float *ref_f = tu_widen(ref, d->dtype, n_out);
    tu_diff diff;
    /* a merge adds a rounding to the storage type per part: twice the one-device tolerance */
    double tol = 2.0 * tu_out_tolerance(d->dtype, ref_f, n_out, 1.0);
    if (!tu_compare_out(d->dtype, out, ref_f, n_out, tol, &diff))
        fail_msg("%s: out differs at %zu: %g vs %g (tol %g)", what, diff.worst, diff.got, diff.ref, tol);
    const size_t n_lse = x.sz.lse / sizeof(float);
    if (!tu_compare_rel(lse, ref_lse, n_lse, 4 * TU_LSE_REL, &diff))
        fail_msg("%s: lse differs at %zu: %g vs %g", what, diff.worst, diff.got, diff.ref);
    if (want_probs && !tu_compare_rel(probs, ref_probs, x.sz.probs / sizeof(float), TU_PROBS_REL, &diff))
        fail_msg("%s: probs differ at %zu: %g vs %g", what, diff.worst, diff.got, diff.ref);
    if (exact_ctx) {
        void *one = tu_alloc(x.sz.out + 1);
        float *one_lse = tu_alloc(x.sz.lse + 4), *one_probs = want_probs ? tu_alloc(x.sz.probs + 4) : NULL;
        assert_int_equal(clattn_attention_host(exact_ctx, &x.d, x.q, x.k, x.v, x.mask, one, one_probs,
                                               one_lse), CLATTN_SUCCESS);
        if (memcmp(one, out, x.sz.out) != 0 || memcmp(one_lse, lse, x.sz.lse) != 0 ||
            (want_probs && memcmp(one_probs, probs, x.sz.probs) != 0))
            fail_msg("%s: not bit-exact against one device", what);
        free(one);
        free(one_lse);
        free(one_probs);
    }
    free(ref_f);
    free(out);
    free(ref);
    free(lse);
    free(ref_lse);
    free(probs);
    free(ref_probs);
    free_io(&x);
}

static clattn_attention_desc shape(int B, int Hq, int Hkv, int Lq, int Lk, int d, clattn_dtype t)
{
    clattn_attention_desc x;
    memset(&x, 0, sizeof x);
    x.batch = B, x.heads_q = Hq, x.heads_kv = Hkv, x.seq_q = Lq, x.seq_kv = Lk, x.head_dim = d;
    x.dtype = t;
    return x;
}

/* a non-NULL marker for alibi_slopes and sinks: make_io puts real arrays there. The planner
   validates the caller's per-head array before that, so the marker holds a value for every
   query head a test uses. */
#define MAX_TEST_HEADS 16
static const float ONES[MAX_TEST_HEADS] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

static void test_heads_split(void **state)
{
    fixture *f = *state;
    int n = 0;
    for (int gi = 0; gi < 2; gi++) {
        clattn_group *g = gi ? f->g3 : f->g2;
        for (int c = 0; c < 8; c++) {
            clattn_attention_desc d = shape(c % 3 + 1, 6, c % 2 ? 2 : 6, 17 + 16 * (c % 3), 33 + 20 * c,
                                            c % 4 ? 40 : 64, c % 4 == 3 ? CLATTN_F16 : CLATTN_F32);
            d.layout = c % 2 ? CLATTN_LAYOUT_BSHD : CLATTN_LAYOUT_BHSD;
            d.causal = (clattn_causal)(c % 3);
            d.head_dim_v = c == 5 ? 24 : 0;
            if (c == 2 || c == 6)
                d.mask_type = CLATTN_MASK_BOOL_U8;
            if (c == 6) {   /* key padding: one row per batch entry, for every head and query */
                d.mask_batch_stride = d.seq_kv;
                d.mask_rows_broadcast = 1;
            }
            if (c == 4) {   /* per-head arrays of a GQA group of 3 */
                d.heads_kv = 2;
                d.alibi_slopes = ONES;
                d.sinks = ONES;
            }
            if (c == 7)
                d.kv_storage = CLATTN_KV_INT8;
            char what[128];
            snprintf(what, sizeof what, "%d devices, heads, case %d", g->n, c);
            check_case(g, &d, CLATTN_SPLIT_HEADS, c == 1 || c == 6, NULL, what);
            n++;
        }
    }
    /* ranges cut inside a KV head's batch entries (4 units on 3 devices: 0, 1..2, 3): parts
       starting at b0 = 1 read their own mask rows, dense and as key padding */
    for (int m = 0; m < 2; m++) {
        clattn_attention_desc e = shape(2, 6, 2, 13, 29, 16, CLATTN_F32);
        e.mask_type = CLATTN_MASK_BOOL_U8;
        if (m) {
            e.mask_batch_stride = e.seq_kv;
            e.mask_rows_broadcast = 1;
        }
        e.alibi_slopes = ONES;
        clattn_group_plan plan;
        assert_int_equal(clattn_group_plan_for(f->g3, &e, 0, CLATTN_SPLIT_HEADS, &plan), CLATTN_SUCCESS);
        assert_int_equal(plan.first[1], 1);
        check_case(f->g3, &e, CLATTN_SPLIT_HEADS, m == 0, NULL, m ? "3 devices, heads, key padding cut "
                   "inside a head" : "3 devices, heads, dense mask cut inside a head");
        n++;
    }
    /* the unfused path runs each (batch, head) row alike whatever else is in the call: the
       parts' results are the one device's, bit for bit */
    clattn_attention_desc d = shape(2, 8, 4, 40, 70, 32, CLATTN_F32);
    d.path = CLATTN_PATH_UNFUSED;
    check_case(f->g3, &d, CLATTN_SPLIT_HEADS, 1, f->ctx[0], "3 devices, heads, unfused, bit-exact");
    printf("  %d head-split cases on 2 and 3 devices against the reference, 1 bit-exact\n", n + 1);
}

static void test_keys_split(void **state)
{
    fixture *f = *state;
    int n = 0;
    for (int gi = 0; gi < 2; gi++) {
        clattn_group *g = gi ? f->g3 : f->g2;
        for (int c = 0; c < 7; c++) {
            clattn_attention_desc d = shape(c % 2 + 1, 8, 2, c < 3 ? 1 : 5 + c, 301 + 250 * c,
                                            c % 3 ? 64 : 128, c == 4 ? CLATTN_F16 : CLATTN_F32);
            d.layout = c % 2 ? CLATTN_LAYOUT_BSHD : CLATTN_LAYOUT_BHSD;
            d.causal = c >= 3 ? CLATTN_CAUSAL_BOTTOM_RIGHT : CLATTN_CAUSAL_NONE;
            if (c == 2 || c == 5)
                d.mask_type = CLATTN_MASK_BOOL_U8;
            if (c == 3)
                d.sinks = ONES;
            if (c == 6) {
                d.kv_storage = CLATTN_KV_INT8;
                d.softcap = 30.0f;
            }
            char what[128];
            snprintf(what, sizeof what, "%d devices, keys, case %d", g->n, c);
            check_case(g, &d, c == 0 ? CLATTN_SPLIT_AUTO : CLATTN_SPLIT_KEYS, 0, NULL, what);
            n++;
        }
    }
    /* more queries than keys (rows that see no key in a part, or at all), fewer keys than
       devices, F16 with sinks */
    clattn_attention_desc e = shape(2, 4, 2, 9, 5, 16, CLATTN_F32);
    e.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    e.sinks = ONES;
    check_case(f->g3, &e, CLATTN_SPLIT_KEYS, 0, NULL, "3 devices, keys, Lq > Lk, sinks");
    e = shape(1, 4, 4, 3, 2, 16, CLATTN_F32);
    check_case(f->g3, &e, CLATTN_SPLIT_KEYS, 0, NULL, "3 devices, keys, Lk = 2");
    e = shape(1, 8, 2, 1, 700, 64, CLATTN_F16);
    e.sinks = ONES;
    check_case(f->g3, &e, CLATTN_SPLIT_KEYS, 0, NULL, "3 devices, keys, F16, sinks");
    n += 3;
    clattn_group_plan plan;
    clattn_attention_desc d = shape(1, 8, 2, 1, 1000, 64, CLATTN_F32);
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_int_equal(plan.split, CLATTN_SPLIT_KEYS);   /* decoding splits the keys */
    assert_int_equal(plan.first[3], 1000);
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;   /* -FLT_MAX rows: never by keys */
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_int_equal(plan.split, CLATTN_SPLIT_HEADS);
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_KEYS, &plan), CLATTN_INVALID_ARGUMENT);
    d = shape(1, 8, 2, 40000, 40000, 64, CLATTN_F32);
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;   /* causal prefill: by heads, whatever Lk */
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_int_equal(plan.split, CLATTN_SPLIT_HEADS);
    printf("  %d key-split cases (decode, chunked prefill with bottom-right causality, masks, sinks, "
           "int8) on 2 and 3 devices\n", n);
}

/* Shares follow the measured speeds: a device recorded as 3 times slower gets a third of the work
   of each other one. */
static void test_shares(void **state)
{
    fixture *f = *state;
    clattn_attention_desc d = shape(4, 8, 8, 64, 64, 32, CLATTN_F32);
    clattn_group_plan plan;
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_int_equal(plan.split, CLATTN_SPLIT_HEADS);
    assert_int_equal(plan.units, 32);
    double ms[3];
    assert_int_equal(clattn_group_calibrate(f->g3, &d, 3, ms), CLATTN_SUCCESS);
    for (int i = 0; i < 3; i++)
        assert_true(ms[i] > 0.0);
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_int_equal(plan.measured, 1);
    /* make device 2 three times slower in its own table */
    clattn_problem p;
    char err[256];
    assert_int_equal(clattn_problem_init(&d, &p, err, sizeof err), CLATTN_SUCCESS);
    const clattn_params unit = {{1}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(clattn_tuning_put(f->ctx[i], &clattn_group_speed_family, &p, &unit,
                                           i == 2 ? 3.0 : 1.0, -1.0), CLATTN_SUCCESS);
    assert_int_equal(clattn_group_plan_for(f->g3, &d, 0, CLATTN_SPLIT_AUTO, &plan), CLATTN_SUCCESS);
    assert_true(fabs(plan.share[2] - 1.0 / 7.0) < 1e-9 && fabs(plan.share[0] - 3.0 / 7.0) < 1e-9);
    assert_int_equal(plan.first[1], 14);   /* 32 * 3/7 = 13.7 */
    assert_int_equal(plan.first[2], 27);   /* 32 * 6/7 = 27.4 */
    check_case(f->g3, &d, CLATTN_SPLIT_HEADS, 0, NULL, "3 devices, uneven shares");
    printf("  calibrated: %.2f %.2f %.2f ms; shares 3:3:1 give units 0..13, 14..26, 27..31\n", ms[0],
           ms[1], ms[2]);
}

/* A device whose kernels do not build fails the call: its status (what it answers alone) and
   name come back, and the caller's out and lse are untouched. */
static void test_device_failure(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/clattn-broken-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *files[] = {"common.h.cl", "flash_attention.cl", "merge.cl", "qk_scores.cl", "softmax.cl", "pv.cl"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs("__kernel void broken( { this is not OpenCL C }\n", fp);
        fclose(fp);
    }
    clattn_context_options o;
    memset(&o, 0, sizeof o);
    o.kernel_dir = dir;
    o.cache = CLATTN_SWITCH_OFF;
    clattn_context *bad;
    assert_int_equal(clattn_context_create_with_options("0:1", &o, &bad), CLATTN_SUCCESS);
    clattn_context *ctxs[2] = {f->ctx[0], bad};
    clattn_group *g;
    assert_int_equal(clattn_group_create_from_contexts(2, ctxs, &g), CLATTN_SUCCESS);
    for (int split = CLATTN_SPLIT_HEADS; split <= CLATTN_SPLIT_KEYS; split++) {
        io x;
        clattn_attention_desc d = shape(2, 4, 4, split == CLATTN_SPLIT_KEYS ? 1 : 20, 300, 32, CLATTN_F32);
        make_io(&x, &d, 5);
        float *out = tu_alloc(x.sz.out), *lse = tu_alloc(x.sz.lse);
        tu_fill_value(out, CLATTN_F32, x.sz.out / 4, 7.0f);
        tu_fill_value(lse, CLATTN_F32, x.sz.lse / 4, 7.0f);
        /* what the broken device answers alone (its kernels fail to build: the fused path finds
           no configuration that builds, the unfused one a build failure) */
        float *alone = tu_alloc(x.sz.out);
        clattn_status want = clattn_attention_host(bad, &x.d, x.q, x.k, x.v, NULL, alone, NULL, NULL);
        free(alone);
        assert_int_not_equal(want, CLATTN_SUCCESS);
        clattn_status st = clattn_group_attention_host(g, &x.d, (clattn_split)split, x.q, x.k, x.v, NULL,
                                                       out, NULL, lse);
        assert_int_equal(st, want);
        const char *msg = clattn_group_last_error(g);
        assert_non_null(strstr(msg, "device 1"));
        for (size_t i = 0; i < x.sz.out / 4; i++)
            assert_true(out[i] == 7.0f);
        for (size_t i = 0; i < x.sz.lse / 4; i++)
            assert_true(lse[i] == 7.0f);
        if (split == CLATTN_SPLIT_KEYS)
            printf("  a failing device: %s; %.100s...\n", clattn_status_string(st), msg);
        free(out);
        free(lse);
        free_io(&x);
    }
    clattn_group_release(g);
    clattn_context_release(bad);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

static void test_bad_arguments(void **state)
{
    fixture *f = *state;
    clattn_group *g = (clattn_group *)1;
    char err[256];
    const char *sel[2] = {"0:0", "no such device"};
    assert_int_equal(clattn_group_create(0, sel, NULL, &g, err, sizeof err), CLATTN_INVALID_ARGUMENT);
    assert_null(g);
    assert_int_equal(clattn_group_create(CLATTN_GROUP_MAX + 1, sel, NULL, &g, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_create(2, NULL, NULL, &g, err, sizeof err), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_create(2, sel, NULL, &g, err, sizeof err), CLATTN_DEVICE_NOT_FOUND);
    assert_null(g);
    assert_non_null(strstr(err, "device 1"));
    assert_int_equal(clattn_group_create(1, sel, NULL, &g, NULL, 0), CLATTN_SUCCESS);
    assert_int_equal(clattn_group_size(g), 1);
    clattn_group_release(g);
    clattn_context *none[2] = {f->ctx[0], NULL};
    assert_int_equal(clattn_group_create_from_contexts(2, none, &g), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_create_from_contexts(2, f->ctx, NULL), CLATTN_INVALID_ARGUMENT);
    clattn_context *twice[2] = {f->ctx[0], f->ctx[0]};
    assert_int_equal(clattn_group_create_from_contexts(2, twice, &g), CLATTN_INVALID_ARGUMENT);
    assert_null(g);
    clattn_group_release(NULL);
    assert_int_equal(clattn_group_size(NULL), 0);
    assert_null(clattn_group_context(f->g2, 2));
    assert_ptr_equal(clattn_group_context(f->g2, 1), f->ctx[1]);
    assert_string_equal(clattn_group_last_error(NULL), "");

    clattn_attention_desc d = shape(1, 2, 2, 4, 8, 16, CLATTN_F32);
    float q[2 * 4 * 16], k[2 * 8 * 16], out[2 * 4 * 16], probs[2 * 4 * 8];
    memset(q, 0, sizeof q);
    memset(k, 0, sizeof k);
    for (size_t i = 0; i < 128; i++)
        out[i] = 3.0f;
    clattn_group_plan plan;
    assert_int_equal(clattn_group_attention_host(NULL, &d, 0, q, k, k, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_attention_host(f->g2, NULL, 0, q, k, k, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_attention_host(f->g2, &d, (clattn_split)7, q, k, k, NULL, out, NULL,
                                                 NULL), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "split"));
    assert_int_equal(clattn_group_attention_host(f->g2, &d, CLATTN_SPLIT_KEYS, q, k, k, NULL, out, probs,
                                                 NULL), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "probs"));
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, NULL, k, k, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    d.mask_type = CLATTN_MASK_BOOL_U8;
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, q, k, k, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    d.mask_type = CLATTN_MASK_NONE;
    /* as clattn_attention_host: out is required, and a mask needs a mask type (even when empty) */
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, q, k, k, NULL, NULL, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "out"));
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, q, k, k, q, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "mask_type"));
    d.seq_q = 0;
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, q, k, k, q, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    d.seq_q = 4;
    d.head_dim = 0;
    assert_int_equal(clattn_group_attention_host(f->g2, &d, 0, q, k, k, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "head_dim"));
    d.head_dim = 16;
    d.window = 1;
    d.window_left = 2;
    assert_int_equal(clattn_group_plan_for(f->g2, &d, 0, CLATTN_SPLIT_KEYS, &plan), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_group_last_error(f->g2), "window"));
    assert_int_equal(clattn_group_plan_for(f->g2, &d, 0, CLATTN_SPLIT_AUTO, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_calibrate(f->g2, &d, 65, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_group_calibrate(NULL, &d, 0, NULL), CLATTN_INVALID_ARGUMENT);
    for (size_t i = 0; i < 128; i++)
        assert_true(out[i] == 3.0f);
    printf("  refusals: sizes, NULLs, an unknown device, a bad split, KEYS with probs or a window\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads_split),
        cmocka_unit_test(test_keys_split),
        cmocka_unit_test(test_shares),
        cmocka_unit_test(test_device_failure),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("group", tests, setup, teardown);
}
