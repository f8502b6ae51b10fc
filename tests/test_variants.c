/* The attention variants of clattn.h (sliding window, logit soft-capping, ALiBi, attention sinks),
 * each alone and combined with each other, with causal modes, masks, GQA, both layouts and F32/F16
 * storage, on the fused path (split-KV decode included) and the unfused one (probs too), against
 * the double-precision reference, which implements each from its definition.
 *
 * Closed-form checks pin the definitions themselves, since the reference and the kernels could
 * share a misreading: a window of (0, 0) is the diagonal alone (out = V of the aligned key); a sink
 * of +large takes the whole row (out 0, lse = sink); a soft-cap makes every score |s| < cap; ALiBi
 * with a huge slope is the nearest key alone.
 */
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

enum { V_WINDOW = 1, V_SOFTCAP = 2, V_ALIBI = 4, V_SINKS = 8, V_ALL = 15 };

typedef struct variant_case {
    tu_case c;
    float slopes[64], sinks[64];
} variant_case;

static void describe(const variant_case *vc, char *buf, size_t len)
{
    const clattn_attention_desc *d = &vc->c.desc;
    char base[512];
    tu_case_string(&vc->c, base, sizeof base);
    snprintf(buf, len, "%s%s window=%d(%d,%d) softcap=%g alibi=%s sinks=%s", base,
             d->path == CLATTN_PATH_FUSED ? " fused" : " unfused", d->window, d->window_left,
             d->window_right, (double)d->softcap, d->alibi_slopes ? "on" : "off",
             d->sinks ? "on" : "off");
}

/* A random case with the variants in `which` switched on. */
static void make_case(variant_case *vc, tu_rng *r, int which, int decode)
{
    memset(vc, 0, sizeof *vc);
    clattn_attention_desc *d = &vc->c.desc;
    static const int groups[] = {1, 2, 4};
    d->batch = 1 + tu_rng_below(r, 2);
    d->heads_kv = 1 + tu_rng_below(r, 2);
    d->heads_q = d->heads_kv * groups[tu_rng_below(r, 3)];
    d->seq_q = decode ? 1 + tu_rng_below(r, 3) : 1 + tu_rng_below(r, 70);
    d->seq_kv = decode ? 500 + tu_rng_below(r, 2600) : 1 + tu_rng_below(r, 150);
    /* Few head dims: each (d, dv) and variant set is a kernel build; test_attention covers dims. */
    d->head_dim = tu_rng_below(r, 2) ? 16 : 33;
    d->head_dim_v = tu_rng_below(r, 3) == 0 ? 24 : 0;
    static const clattn_dtype dtypes[] = {CLATTN_F32, CLATTN_F32, CLATTN_F16, CLATTN_BF16};
    d->dtype = dtypes[tu_rng_below(r, 4)];
    d->layout = (clattn_layout)tu_rng_below(r, 2);
    d->causal = (clattn_causal)tu_rng_below(r, 3);
    d->path = tu_rng_below(r, 2) ? CLATTN_PATH_FUSED : CLATTN_PATH_UNFUSED;
    if (tu_rng_below(r, 3) == 0) {
        d->mask_type = tu_rng_below(r, 2) ? CLATTN_MASK_ADDITIVE_F32 : CLATTN_MASK_BOOL_U8;
        vc->c.mask_kind = (tu_mask_kind)tu_rng_below(r, TU_MASK_KIND_COUNT);
    }
    vc->c.want_lse = 1;
    vc->c.want_probs = d->path == CLATTN_PATH_UNFUSED && tu_rng_below(r, 2);
    vc->c.use_buffers = tu_rng_below(r, 2);
    vc->c.seed = tu_rng_u64(r);
    if (which & V_WINDOW) {
        d->window = 1;
        /* -1, 0, small, about the sequence, past it */
        const int span = d->seq_kv + 2;
        d->window_left = tu_rng_below(r, 5) == 0 ? -1 : tu_rng_below(r, span);
        d->window_right = tu_rng_below(r, 4) == 0 ? -1 : tu_rng_below(r, 3) == 0 ? tu_rng_below(r, span)
                                                                                 : 0;
    }
    if (which & V_SOFTCAP)
        d->softcap = (float)(1.0 + 49.0 * tu_rng_uniform(r));
    if (which & V_ALIBI) {
        /* the geometric slopes of the ALiBi paper, 2^(-8 h / Hq) */
        for (int h = 0; h < d->heads_q; h++)
            vc->slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)d->heads_q);
        d->alibi_slopes = vc->slopes;
    }
    if (which & V_SINKS) {
        for (int h = 0; h < d->heads_q; h++)
            vc->sinks[h] = h == 1 ? -INFINITY : (float)(4.0 * tu_rng_normal(r));
        d->sinks = vc->sinks;
    }
    /* a large scale makes soft-capping bite */
    vc->c.q_scale = which & V_SOFTCAP ? 8.0f : 0.0f;
}

static void run(clattn_context *ctx, variant_case *vc, int *n)
{
    tu_outcome o;
    char what[1024];
    describe(vc, what, sizeof what);
    clattn_status st = tu_run_case(ctx, &vc->c, &o);
    if (st != CLATTN_SUCCESS || !o.ok)
        fail_msg("%s: %s (%s)", what, o.msg, clattn_context_last_error(ctx));
    (*n)++;
}

/* As run, but a fused case whose kernel cannot fit the device's local memory (MLA's d = 576 on a
   32 KiB device) may be refused, as clattn.h says; AUTO must then serve it through the unfused
   path, and does so against the reference. */
static void run_or_fall_back(clattn_context *ctx, variant_case *vc, int *n)
{
    tu_outcome o;
    char what[1024];
    describe(vc, what, sizeof what);
    clattn_status st = tu_run_case(ctx, &vc->c, &o);
    if (st == CLATTN_UNSUPPORTED && vc->c.desc.path == CLATTN_PATH_FUSED &&
        strstr(clattn_context_last_error(ctx), "local memory")) {
        printf("fused refused here (%s); AUTO instead\n", clattn_context_last_error(ctx));
        vc->c.desc.path = CLATTN_PATH_AUTO;
        run(ctx, vc, n);
        vc->c.desc.path = CLATTN_PATH_FUSED;
        return;
    }
    if (st != CLATTN_SUCCESS || !o.ok)
        fail_msg("%s: %s (%s)", what, o.msg, clattn_context_last_error(ctx));
    (*n)++;
}

/* Every subset of the four variants, several random shapes each. */
static void test_grid(void **state)
{
    clattn_context *ctx = *state;
    tu_rng r;
    tu_rng_seed(&r, 20261203);
    int n = 0;
    for (int which = 1; which <= V_ALL; which++)
        for (int rep = 0; rep < 3; rep++) {
            variant_case vc;
            make_case(&vc, &r, which, 0);
            run(ctx, &vc, &n);
        }
    printf("%d prefill cases\n", n);
}

/* Decode shapes: few query rows, long keys, which the fused path splits and merges. */
static void test_decode(void **state)
{
    clattn_context *ctx = *state;
    tu_rng r;
    tu_rng_seed(&r, 977);
    int n = 0;
    for (int which = 1; which <= V_ALL; which += (which < 8 ? 1 : 3))
        for (int rep = 0; rep < 1; rep++) {
            variant_case vc;
            make_case(&vc, &r, which, 1);
            vc.c.desc.path = CLATTN_PATH_FUSED;
            vc.c.want_probs = 0;
            run(ctx, &vc, &n);
        }
    printf("%d decode cases\n", n);
}

/* The definitions on closed forms, F32, both paths. */
static void closed_forms(clattn_context *ctx, clattn_path path)
{
    enum { L = 9, D = 4 };
    float q[L * D], k[L * D], v[L * D], out[L * D], lse[L];
    for (int i = 0; i < L * D; i++) {
        q[i] = (float)((i * 7) % 5) - 2.0f;
        k[i] = (float)((i * 3) % 7) - 3.0f;
        v[i] = (float)i;
    }
    clattn_attention_desc d = {.batch = 1, .heads_q = 1, .seq_q = L, .seq_kv = L, .head_dim = D,
                               .path = path};

    /* window (0, 0): each query sees its own key alone */
    d.window = 1;
    assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, NULL), CLATTN_SUCCESS);
    for (int i = 0; i < L * D; i++)
        assert_float_equal(out[i], v[i], 1e-5);

    /* a sink far above every score takes the row: out ~ 0, lse ~ sink */
    d.window = 0;
    float sink = 80.0f;
    d.sinks = &sink;
    assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, lse), CLATTN_SUCCESS);
    for (int i = 0; i < L; i++)
        assert_float_equal(lse[i], 80.0f, 1e-4);
    for (int i = 0; i < L * D; i++)
        assert_true(fabsf(out[i]) < 1e-10f);
    d.sinks = NULL;

    /* ALiBi with a huge slope: the aligned key alone (|i' - j| = 0 there, >= 1 elsewhere) */
    float slope = 1000.0f;
    d.alibi_slopes = &slope;
    assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, NULL), CLATTN_SUCCESS);
    for (int i = 0; i < L * D; i++)
        assert_float_equal(out[i], v[i], 1e-3);
    d.alibi_slopes = NULL;

    /* soft-cap: with probs, every score s satisfies |s| < cap, so every probability of a row of L
       keys is at least exp(-2 cap) / L: with cap 0.5 and huge logits, far from 0 */
    if (path == CLATTN_PATH_UNFUSED) {
        float probs[L * L];
        d.softcap = 0.5f;
        d.scale = 100.0f;
        assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, probs, NULL),
                         CLATTN_SUCCESS);
        for (int i = 0; i < L * L; i++)
            assert_true(probs[i] >= expf(-1.0f) / L * 0.999f);
    }
}

static void test_closed_forms(void **state)
{
    closed_forms(*state, CLATTN_PATH_UNFUSED);
    closed_forms(*state, CLATTN_PATH_FUSED);
}

/* Sliding window 2 on a long sequence: the plan's work shrinks, and a NaN in a key outside every
   row's window never reaches the output. */
static void test_window_hides_nan(void **state)
{
    clattn_context *ctx = *state;
    enum { L = 300, D = 16 };
    float *q = tu_alloc(L * D * 4), *k = tu_alloc(L * D * 4), *v = tu_alloc(L * D * 4);
    float *out = tu_alloc(L * D * 4);
    tu_rng r;
    tu_rng_seed(&r, 5);
    tu_fill_normal(q, CLATTN_F32, L * D, 1.0f, &r);
    tu_fill_normal(k, CLATTN_F32, L * D, 1.0f, &r);
    tu_fill_normal(v, CLATTN_F32, L * D, 1.0f, &r);
    k[5 * D] = NAN;   /* key 5: seen by queries 5..7 only, with window (2, 0) */
    v[5 * D] = NAN;
    for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++) {
        clattn_attention_desc d = {.batch = 1, .heads_q = 1, .seq_q = L, .seq_kv = L, .head_dim = D,
                                   .window = 1, .window_left = 2, .window_right = 0,
                                   .path = (clattn_path)path};
        assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, NULL),
                         CLATTN_SUCCESS);
        for (int i = 0; i < L; i++)
            for (int x = 0; x < D; x++)
                if ((i >= 5 && i <= 7) != (isnan(out[i * D + x]) != 0))
                    fail_msg("path %d: row %d col %d is %g", path, i, x, out[i * D + x]);
    }
    free(q), free(k), free(v), free(out);
}

/* MLA's head dims (DeepSeek: d = 576, dv = 512) on both paths, prefill and split-KV decode, with
   a window and soft-capping on top. */
static void test_mla_dims(void **state)
{
    clattn_context *ctx = *state;
    int n = 0;
    for (int decode = 0; decode <= 1; decode++)
        for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++) {
            variant_case vc;
            memset(&vc, 0, sizeof vc);
            clattn_attention_desc *d = &vc.c.desc;
            d->batch = 1, d->heads_q = 4, d->heads_kv = 1;
            d->seq_q = decode ? 1 : 19, d->seq_kv = decode ? 1100 : 45;
            d->head_dim = 576, d->head_dim_v = 512;
            d->causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
            d->path = (clattn_path)path;
            d->dtype = decode ? CLATTN_BF16 : CLATTN_F32;
            vc.c.want_lse = 1;
            vc.c.want_probs = path == CLATTN_PATH_UNFUSED;
            vc.c.seed = 576 + (uint64_t)(2 * decode + path);
            run_or_fall_back(ctx, &vc, &n);
            d->window = 1, d->window_left = decode ? 700 : 9, d->softcap = 30.0f;
            run_or_fall_back(ctx, &vc, &n);
        }
}

/* bfloat16 storage rounds to nearest, ties to even, on the device as on the host: with equal scores
   out is the mean of two V rows, chosen so that each column's mean is a tie (or a NaN). */
static void test_bf16_rounding(void **state)
{
    clattn_context *ctx = *state;
    enum { D = 4 };
    const float a = 1.0f, b = 1.0f + 1.0f / 128, c = 1.0f + 1.0f / 64;   /* bf16 neighbours at 1 */
    const float v0[D] = {a, b, -b, NAN}, v1[D] = {b, c, -c, 1.0f};
    const float want[D] = {a, c, -c, NAN};   /* ties: 1+2^-8 -> 1 (even), 1+3*2^-8 -> 1+2^-6 */
    uint16_t q[D], k[2 * D], v[2 * D], out[D];
    for (int x = 0; x < D; x++) {
        q[x] = clattn_float_to_bf16(0.0f);
        k[x] = k[D + x] = clattn_float_to_bf16(0.5f);
        v[x] = clattn_float_to_bf16(v0[x]);
        v[D + x] = clattn_float_to_bf16(v1[x]);
    }
    for (int x = 0; x < D; x++) {   /* the host's conversion first */
        const float mean = 0.5f * (v0[x] + v1[x]);
        const float got = clattn_bf16_to_float(clattn_float_to_bf16(mean));
        assert_true(isnan(want[x]) ? isnan(got) : got == want[x]);
    }
    for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++) {
        clattn_attention_desc d = {.batch = 1, .heads_q = 1, .seq_q = 1, .seq_kv = 2, .head_dim = D,
                                   .dtype = CLATTN_BF16, .path = (clattn_path)path};
        assert_int_equal(clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, NULL), CLATTN_SUCCESS);
        for (int x = 0; x < D; x++) {
            const float got = clattn_bf16_to_float(out[x]);
            if (isnan(want[x]) ? !isnan(got) : got != want[x])
                fail_msg("path %d column %d: %.9g, want %.9g", path, x, got, want[x]);
        }
    }
}

/* Bad variant parameters: a clear status and message, and the output untouched. */
static void test_bad_parameters(void **state)
{
    clattn_context *ctx = *state;
    float q[16], k[16], v[16], out[16];
    for (int i = 0; i < 16; i++)
        q[i] = k[i] = v[i] = 1.0f, out[i] = 42.0f;
    float nan_slope[2] = {0.5f, NAN}, inf_sink[2] = {1.0f, INFINITY}, nan_sink[2] = {NAN, 0.0f};
    const struct {
        const char *what, *says;
        clattn_attention_desc d;
    } bad[] = {
        {"window 2", "window", {.window = 2}},
        {"window_left -2", "window_left", {.window = 1, .window_left = -2}},
        {"window_right -5", "window_right", {.window = 1, .window_right = -5}},
        {"edges without window", "window = 0", {.window_left = 3}},
        {"softcap -1", "softcap", {.softcap = -1.0f}},
        {"softcap NaN", "softcap", {.softcap = NAN}},
        {"softcap inf", "softcap", {.softcap = INFINITY}},
        {"slope NaN", "alibi_slopes[1]", {.alibi_slopes = nan_slope}},
        {"sink +inf", "sinks[1]", {.sinks = inf_sink}},
        {"sink NaN", "sinks[0]", {.sinks = nan_sink}},
    };
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        clattn_attention_desc d = bad[t].d;
        d.batch = 1, d.heads_q = 2, d.seq_q = 2, d.seq_kv = 2, d.head_dim = 4;
        for (int path = CLATTN_PATH_AUTO; path <= CLATTN_PATH_FUSED; path++) {
            d.path = (clattn_path)path;
            clattn_status st = clattn_attention_host(ctx, &d, q, k, v, NULL, out, NULL, NULL);
            if (st != CLATTN_INVALID_ARGUMENT ||
                !strstr(clattn_context_last_error(ctx), bad[t].says))
                fail_msg("%s: status %d, '%s'", bad[t].what, (int)st, clattn_context_last_error(ctx));
            for (int i = 0; i < 16; i++)
                assert_true(out[i] == 42.0f);
        }
        assert_int_equal(clattn_attention_reference(&d, q, k, v, NULL, out, NULL, NULL),
                         CLATTN_INVALID_ARGUMENT);
        clattn_tensor_sizes sz;
        assert_int_equal(clattn_attention_sizes(&d, &sz), CLATTN_INVALID_ARGUMENT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_closed_forms),
        cmocka_unit_test(test_window_hides_nan),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_mla_dims),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
