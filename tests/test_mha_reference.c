/* The multi-head attention reference against PyTorch's nn.MultiheadAttention (fixtures in
   tests/data/mha_*, made by tools/make_mha_fixtures.py), and against itself for what PyTorch
   cannot check (grouped-query heads, bottom-right causal, argument errors).

   The fixtures' outputs come from PyTorch in float64 rounded to float32, so the reference (double,
   rounded at the end) must match them to float32 rounding: max |error| / max |expected| <= 2e-6.
   Data folder: $CLATTN_TEST_DATA, else argv[1], else CLATTN_TEST_DATA_DIR from the build. */
#include "mha_fixture.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TOL 2e-6

static const char *data_dir;

/* max |got - want| / max |want| */
static double rel_err(const float *got, const float *want, size_t n)
{
    double e = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i]))
            return INFINITY;
        e = fmax(e, fabs((double)got[i] - (double)want[i]));
        m = fmax(m, fabs((double)want[i]));
    }
    return m > 0.0 ? e / m : e;
}

/* Runs the reference on the fixture's inputs with desc (mask as given) and compares the output,
   the per-head weights and their mean over heads with PyTorch's. */
static void check_fixture(const char *label, const fixture *fx, const clattn_mha_desc *desc,
                          const void *mask)
{
    clattn_mha_shape s;
    clattn_mha_weights w;
    char err[256] = "";
    assert_int_equal(clattn_mha_shape_init(desc, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    const float *xq = fx_get(fx, "query", s.x_q);
    const float *xk = fx_get(fx, "key", s.x_k);
    const float *xv = fx_get(fx, "value", s.x_v);
    const float *want_out = fx_get(fx, "attn_output", s.out);
    const float *want_w = fx_get(fx, "attn_weights_per_head", s.weights);
    const float *want_mean = fx_get(fx, "attn_weights", (size_t)s.B * (size_t)s.Lq * (size_t)s.Lk);
    assert_non_null(xq);
    assert_non_null(want_out);
    assert_non_null(want_w);
    assert_non_null(want_mean);

    float *out = malloc(s.out * sizeof *out);
    float *wts = malloc(s.weights * sizeof *wts);
    float *mean = calloc((size_t)s.B * (size_t)s.Lq * (size_t)s.Lk, sizeof *mean);
    assert_non_null(out);
    assert_non_null(wts);
    assert_non_null(mean);
    clattn_status st = clattn_mha_reference(desc, &w, xq, xk, xv, mask, out, wts, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", label, err);

    const size_t LqLk = (size_t)s.Lq * (size_t)s.Lk;
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.Hq; h++)
            for (size_t e = 0; e < LqLk; e++)
                mean[(size_t)b * LqLk + e] += wts[((size_t)b * (size_t)s.Hq + (size_t)h) * LqLk + e] /
                                              (float)s.Hq;

    double e_out = rel_err(out, want_out, s.out);
    double e_w = rel_err(wts, want_w, s.weights);
    double e_mean = rel_err(mean, want_mean, (size_t)s.B * LqLk);
    printf("  %-22s out %.2e  weights %.2e  mean weights %.2e  (tolerance %.0e)\n", label, e_out, e_w,
           e_mean, TOL);
    free(out);
    free(wts);
    free(mean);
    assert_true(e_out <= TOL);
    assert_true(e_w <= TOL);
    assert_true(e_mean <= TOL);
}

static void test_self(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "self");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    check_fixture("self", fx, &d, NULL);
    fx_free(fx);
}

/* The causal fixture twice: through the causal mode, and through PyTorch's own -inf mask. */
static void test_causal(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "causal");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    assert_int_equal(fx_param(fx, "causal"), 1);
    d.causal = CLATTN_CAUSAL_TOP_LEFT;
    check_fixture("causal (top-left)", fx, &d, NULL);
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;   /* the same when Lq == Lk */
    check_fixture("causal (bottom-right)", fx, &d, NULL);

    d.causal = CLATTN_CAUSAL_NONE;
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;  /* [Lq, Lk], broadcast over batch and heads */
    const float *m = fx_get(fx, "attn_mask", (size_t)d.seq_q * (size_t)d.seq_kv);
    assert_non_null(m);
    check_fixture("causal (-inf mask)", fx, &d, m);
    fx_free(fx);
}

static void test_cross(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "cross");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    assert_int_not_equal(d.kdim, d.embed_dim);
    assert_int_not_equal(d.vdim, d.kdim);
    check_fixture("cross (kdim, vdim)", fx, &d, NULL);
    fx_free(fx);
}

/* PyTorch's bool attn_mask [Lq,Lk] (1: not allowed) and key_padding_mask [B,Lk] (1: padding)
   become one clattn bool mask [B,Lq,Lk] (nonzero: attend): a row stride of 0 means Lk, so
   a per-batch row cannot be broadcast over queries and is spelled out. */
static void test_masked(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "masked");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    assert_int_equal(fx_param(fx, "attn_mask"), 1);
    const int B = d.batch, Lq = d.seq_q, Lk = d.seq_kv;
    const float *am = fx_get(fx, "attn_mask", (size_t)Lq * (size_t)Lk);
    const float *kpm = fx_get(fx, "key_padding_mask", (size_t)B * (size_t)Lk);
    assert_non_null(am);
    assert_non_null(kpm);
    unsigned char *m = malloc((size_t)B * (size_t)Lq * (size_t)Lk);
    assert_non_null(m);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++)
            for (int j = 0; j < Lk; j++)
                m[((size_t)b * (size_t)Lq + (size_t)i) * (size_t)Lk + (size_t)j] =
                    am[i * Lk + j] == 0.0f && kpm[b * Lk + j] == 0.0f;
    d.mask_type = CLATTN_MASK_BOOL_U8;
    d.mask_batch_stride = (long)Lq * Lk;
    check_fixture("bool + key padding", fx, &d, m);
    free(m);
    fx_free(fx);
}

/* A per-head additive mask [B*H, Lq, Lk] as PyTorch takes it: batch stride H*Lq*Lk, head stride
   Lq*Lk. Packed weights with distinct key and value inputs. */
static void test_additive(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "additive");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    assert_int_equal(fx_param(fx, "attn_mask"), 2);
    const long LqLk = (long)d.seq_q * d.seq_kv;
    const float *m = fx_get(fx, "attn_mask", (size_t)d.batch * (size_t)d.heads_q * (size_t)LqLk);
    assert_non_null(m);
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;
    d.mask_batch_stride = d.heads_q * LqLk;
    d.mask_head_stride = LqLk;
    check_fixture("additive per head", fx, &d, m);
    fx_free(fx);
}

/* ---- what PyTorch cannot check ---------------------------------------------------------------- */

/* Grouped-query heads equal plain multi-head attention whose K and V projections repeat each KV
   head's rows for every query head of its group (the definition of GQA). */
static void test_gqa_matches_repeated_heads(void **state)
{
    (void)state;
    const int B = 2, L = 5, E = 24, Hq = 6, Hkv = 2, dh = E / Hq, group = Hq / Hkv;
    const int kvw = Hkv * dh;
    char err[256] = "";
    float *x = malloc(sizeof(float) * (size_t)(B * L * E));
    float *wg = malloc(sizeof(float) * (size_t)((E + 2 * kvw) * E));   /* packed, GQA */
    float *bg = malloc(sizeof(float) * (size_t)(E + 2 * kvw));
    float *wm = malloc(sizeof(float) * (size_t)(3 * E * E));           /* packed, repeated */
    float *bm = malloc(sizeof(float) * (size_t)(3 * E));
    float *wo = malloc(sizeof(float) * (size_t)(E * E));
    float *bo = malloc(sizeof(float) * (size_t)E);
    float *o1 = malloc(sizeof(float) * (size_t)(B * L * E)), *o2 = malloc(sizeof(float) * (size_t)(B * L * E));
    float *p1 = malloc(sizeof(float) * (size_t)(B * Hq * L * L)), *p2 = malloc(sizeof(float) * (size_t)(B * Hq * L * L));
    assert_true(x && wg && bg && wm && bm && wo && bo && o1 && o2 && p1 && p2);
    unsigned r = 12345u;
#define RND() ((float)((r = r * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0f - 0.5f)
    for (int i = 0; i < B * L * E; i++) x[i] = 2.0f * RND();
    for (int i = 0; i < (E + 2 * kvw) * E; i++) wg[i] = RND();
    for (int i = 0; i < E + 2 * kvw; i++) bg[i] = 0.2f * RND();
    for (int i = 0; i < E * E; i++) wo[i] = RND();
    for (int i = 0; i < E; i++) bo[i] = 0.2f * RND();
#undef RND
    /* q rows as they are; k and v: head h of the MHA layer gets the rows of kv head h / group */
    memcpy(wm, wg, sizeof(float) * (size_t)(E * E));
    memcpy(bm, bg, sizeof(float) * (size_t)E);
    for (int part = 0; part < 2; part++)
        for (int h = 0; h < Hq; h++) {
            const int g = h / group;
            memcpy(wm + (size_t)((1 + part) * E + h * dh) * (size_t)E,
                   wg + (size_t)(E + part * kvw + g * dh) * (size_t)E, sizeof(float) * (size_t)(dh * E));
            memcpy(bm + (1 + part) * E + h * dh, bg + E + part * kvw + g * dh, sizeof(float) * (size_t)dh);
        }
    clattn_mha_desc d = {0};
    d.batch = B, d.seq_q = d.seq_kv = L, d.embed_dim = E, d.heads_q = Hq, d.heads_kv = Hkv;
    d.in_bias = d.out_bias = 1;
    d.causal = CLATTN_CAUSAL_TOP_LEFT;
    clattn_mha_weights w1 = {.in_proj_weight = wg, .in_proj_bias = bg, .out_proj_weight = wo,
                             .out_proj_bias = bo};
    clattn_mha_weights w2 = {.in_proj_weight = wm, .in_proj_bias = bm, .out_proj_weight = wo,
                             .out_proj_bias = bo};
    assert_int_equal(clattn_mha_reference(&d, &w1, x, NULL, NULL, NULL, o1, p1, err, sizeof err),
                     CLATTN_SUCCESS);
    d.heads_kv = 0;
    assert_int_equal(clattn_mha_reference(&d, &w2, x, NULL, NULL, NULL, o2, p2, err, sizeof err),
                     CLATTN_SUCCESS);
    double e_out = rel_err(o1, o2, (size_t)(B * L * E)), e_p = rel_err(p1, p2, (size_t)(B * Hq * L * L));
    printf("  %-22s out %.2e  weights %.2e\n", "GQA vs repeated heads", e_out, e_p);
    assert_true(e_out <= 1e-7);
    assert_true(e_p <= 1e-7);
    free(x), free(wg), free(bg), free(wm), free(bm), free(wo), free(bo);
    free(o1), free(o2), free(p1), free(p2);
}

/* Bottom-right causal with Lq < Lk equals the explicit mask j <= i + (Lk - Lq); rows that see no
   key give zeros (weights and attention), never NaN. */
static void test_causal_alignment(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "cross");   /* Lq 3 < Lk 6 */
    clattn_mha_desc d;
    clattn_mha_shape s;
    clattn_mha_weights w;
    char err[256] = "";
    fx_desc(fx, &d);
    assert_int_equal(clattn_mha_shape_init(&d, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    const float *xq = fx_get(fx, "query", 0), *xk = fx_get(fx, "key", 0), *xv = fx_get(fx, "value", 0);
    float *o1 = malloc(s.out * sizeof *o1), *o2 = malloc(s.out * sizeof *o2);
    float *p1 = malloc(s.weights * sizeof *p1), *p2 = malloc(s.weights * sizeof *p2);
    unsigned char *m = malloc((size_t)s.Lq * (size_t)s.Lk);
    assert_true(o1 && o2 && p1 && p2 && m);
    for (int i = 0; i < s.Lq; i++)
        for (int j = 0; j < s.Lk; j++)
            m[i * s.Lk + j] = j <= i + (s.Lk - s.Lq);
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    assert_int_equal(clattn_mha_reference(&d, &w, xq, xk, xv, NULL, o1, p1, err, sizeof err),
                     CLATTN_SUCCESS);
    d.causal = CLATTN_CAUSAL_NONE;
    d.mask_type = CLATTN_MASK_BOOL_U8;
    assert_int_equal(clattn_mha_reference(&d, &w, xq, xk, xv, m, o2, p2, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_memory_equal(o1, o2, s.out * sizeof *o1);
    assert_memory_equal(p1, p2, s.weights * sizeof *p1);

    /* a mask that hides every key: zero weights; the heads give 0, so out is the out bias */
    memset(m, 0, (size_t)s.Lq * (size_t)s.Lk);
    assert_int_equal(clattn_mha_reference(&d, &w, xq, xk, xv, m, o1, p1, err, sizeof err),
                     CLATTN_SUCCESS);
    for (size_t i = 0; i < s.weights; i++)
        assert_true(p1[i] == 0.0f);
    for (int r = 0; r < s.B * s.Lq; r++)
        for (int e = 0; e < s.E; e++)
            assert_true(o1[r * s.E + e] == w.out_proj_bias[e]);
    free(o1), free(o2), free(p1), free(p2), free(m);
    fx_free(fx);

    /* bottom-right with Lq 4 > Lk 2 (the first two keys of the additive fixture): queries 0 and 1
       see no key; their weights are 0 and the other rows still sum to 1 */
    fx = fx_load(data_dir, "additive");
    fx_desc(fx, &d);
    const int B = d.batch, Lq = d.seq_q, Lk = 2, E = d.embed_dim, Lk_full = d.seq_kv;
    d.seq_kv = Lk;
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    assert_int_equal(clattn_mha_shape_init(&d, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    float *k2 = malloc(s.x_k * sizeof *k2), *v2 = malloc(s.x_v * sizeof *v2);
    o1 = malloc(s.out * sizeof *o1);
    p1 = malloc(s.weights * sizeof *p1);
    assert_true(k2 && v2 && o1 && p1);
    for (int b = 0; b < B; b++) {
        memcpy(k2 + (size_t)(b * Lk * E), fx_get(fx, "key", 0) + (size_t)(b * Lk_full * E),
               sizeof(float) * (size_t)(Lk * E));
        memcpy(v2 + (size_t)(b * Lk * E), fx_get(fx, "value", 0) + (size_t)(b * Lk_full * E),
               sizeof(float) * (size_t)(Lk * E));
    }
    assert_int_equal(clattn_mha_reference(&d, &w, fx_get(fx, "query", 0), k2, v2, NULL, o1, p1, err,
                                          sizeof err), CLATTN_SUCCESS);
    for (int bh = 0; bh < B * s.Hq; bh++)
        for (int i = 0; i < Lq; i++) {
            const float *row = p1 + ((size_t)bh * (size_t)Lq + (size_t)i) * (size_t)Lk;
            float sum = 0.0f;
            for (int j = 0; j < Lk; j++) {
                assert_false(isnan(row[j]));
                if (j > i + (Lk - Lq))
                    assert_true(row[j] == 0.0f);
                sum += row[j];
            }
            if (i < Lq - Lk)
                assert_true(sum == 0.0f);
            else
                assert_true(fabsf(sum - 1.0f) < 1e-6f);
        }
    free(k2), free(v2), free(o1), free(p1);
    fx_free(fx);
}

/* A NaN in V at a key some rows cannot see: those rows stay finite, the rows that see the key are
   NaN (clattn.h: a NaN propagates to its row). A hidden key is never read, as in
   clattn_attention_reference and the kernels; weighting it by 0 would give 0 * NaN = NaN. The NaN
   sits in x_v's row for key J, so every column of V at J is NaN (whatever the weights), K stays
   finite, and the output projection spreads a head's NaN over its whole output row. */
static void test_hidden_nan_value_stays_out(void **state)
{
    (void)state;
    enum { B = 2, L = 4, E = 8, H = 2, J = 2 };
    float x[B * L * E], xv[B * L * E], out[B * L * E], wts[B * H * L * L];
    float win[3 * E * E], wo[E * E];   /* packed q, k, v rows: E + 2*dh <= 3*E of them are read */
    unsigned char keep[L * L];
    float add[L * L];
    char err[256] = "";
    unsigned r = 777u;
#define RND() ((float)((r = r * 1103515245u + 12345u) >> 8 & 0xffff) / 65536.0f - 0.5f)
    for (int i = 0; i < B * L * E; i++) x[i] = xv[i] = RND();
    for (int i = 0; i < 3 * E * E; i++) win[i] = RND();
    for (int i = 0; i < E * E; i++) wo[i] = RND();
#undef RND
    for (int b = 0; b < B; b++)
        xv[(b * L + J) * E + 3] = NAN;
    /* rows 0 and 3 do not see key J, rows 1 and 2 do */
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            const int hidden = j == J && (i == 0 || i == 3);
            keep[i * L + j] = !hidden;
            add[i * L + j] = hidden ? -INFINITY : 0.0f;
        }
    clattn_mha_weights w = {.in_proj_weight = win, .out_proj_weight = wo};
    clattn_mha_desc d = {0};
    d.batch = B, d.seq_q = d.seq_kv = L, d.embed_dim = E, d.heads_q = H, d.heads_kv = 1;   /* GQA */

    for (int mode = 0; mode < 4; mode++) {
        const void *mask = NULL;
        int sees[L];
        d.causal = CLATTN_CAUSAL_NONE;
        d.mask_type = CLATTN_MASK_NONE;
        if (mode == 0 || mode == 1) {   /* causal: row i sees J iff J <= i */
            d.causal = mode == 0 ? CLATTN_CAUSAL_TOP_LEFT : CLATTN_CAUSAL_BOTTOM_RIGHT;
            for (int i = 0; i < L; i++)
                sees[i] = J <= i;
        } else {                        /* a [Lq,Lk] mask broadcast over batch and heads */
            d.mask_type = mode == 2 ? CLATTN_MASK_BOOL_U8 : CLATTN_MASK_ADDITIVE_F32;
            mask = mode == 2 ? (const void *)keep : (const void *)add;
            for (int i = 0; i < L; i++)
                sees[i] = keep[i * L + J];
        }
        assert_int_equal(clattn_mha_reference(&d, &w, x, x, xv, mask, out, wts, err, sizeof err),
                         CLATTN_SUCCESS);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < L; i++) {
                for (int e = 0; e < E; e++)
                    if (sees[i] ? !isnan(out[(b * L + i) * E + e]) : !isfinite(out[(b * L + i) * E + e]))
                        fail_msg("mode %d: batch %d row %d (%s key %d): out[%d] = %g", mode, b, i,
                                 sees[i] ? "sees" : "hidden from", J, e, (double)out[(b * L + i) * E + e]);
                /* the weights never read V: finite throughout, 0 at the hidden key */
                for (int h = 0; h < H; h++)
                    for (int j = 0; j < L; j++) {
                        const float p = wts[((b * H + h) * L + i) * L + j];
                        assert_true(isfinite(p));
                        if (j == J && !sees[i])
                            assert_true(p == 0.0f);
                    }
            }
    }
}

/* Refused arguments leave the caller's buffers alone and say why. */
static void test_errors(void **state)
{
    (void)state;
    fixture *fx = fx_load(data_dir, "cross");
    clattn_mha_desc d;
    clattn_mha_shape s;
    clattn_mha_weights w;
    char err[256] = "";
    fx_desc(fx, &d);
    assert_int_equal(clattn_mha_shape_init(&d, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    const float *xq = fx_get(fx, "query", 0), *xk = fx_get(fx, "key", 0), *xv = fx_get(fx, "value", 0);
    float *out = malloc(s.out * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < s.out; i++)
        out[i] = 42.0f;

    clattn_mha_weights bad = w;
    bad.in_proj_weight = w.q_proj_weight;   /* packed and separate at once */
    assert_int_equal(clattn_mha_reference(&d, &bad, xq, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    bad = w;
    bad.q_proj_weight = bad.k_proj_weight = bad.v_proj_weight = NULL;
    bad.in_proj_weight = w.q_proj_weight;   /* packed, but kdim != E */
    assert_int_equal(clattn_mha_reference(&d, &bad, xq, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "kdim"));
    bad = w;
    bad.out_proj_bias = NULL;               /* desc says there is one */
    assert_int_equal(clattn_mha_reference(&d, &bad, xq, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "out_bias"));
    assert_int_equal(clattn_mha_reference(&d, &w, xq, NULL, NULL, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);  /* self-attention with kdim != E */
    clattn_mha_desc dd = d;
    dd.heads_q = 3;                          /* does not divide 16 */
    assert_int_equal(clattn_mha_reference(&dd, &w, xq, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "heads_q"));
    dd = d;
    dd.heads_kv = 3;                         /* does not divide heads_q 2 */
    assert_int_equal(clattn_mha_shape_init(&dd, &s, err, sizeof err), CLATTN_INVALID_ARGUMENT);
    dd = d;
    dd.mask_type = CLATTN_MASK_ADDITIVE_F32; /* no mask given */
    assert_int_equal(clattn_mha_reference(&dd, &w, xq, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_INVALID_ARGUMENT);
    dd = d;
    dd.scale = INFINITY;
    assert_int_equal(clattn_mha_shape_init(&dd, &s, err, sizeof err), CLATTN_INVALID_ARGUMENT);
    for (size_t i = 0; i < s.out; i++)
        assert_true(out[i] == 42.0f);

    /* empty batch: success, nothing written */
    dd = d;
    dd.batch = 0;
    assert_int_equal(clattn_mha_reference(&dd, &w, NULL, xk, xv, NULL, out, NULL, err, sizeof err),
                     CLATTN_SUCCESS);
    assert_true(out[0] == 42.0f);
    free(out);
    fx_free(fx);
}

/* The attention the layer hands to clattn_attention(): BSHD over the projections, float32. */
static void test_attention_desc(void **state)
{
    (void)state;
    clattn_mha_desc d = {0};
    clattn_attention_desc a;
    clattn_mha_shape s;
    d.batch = 3, d.seq_q = 4, d.seq_kv = 9, d.embed_dim = 64, d.kdim = 10, d.vdim = 7;
    d.heads_q = 8, d.heads_kv = 2, d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    d.mask_type = CLATTN_MASK_BOOL_U8, d.mask_batch_stride = 36;
    assert_int_equal(clattn_mha_shape_init(&d, &s, NULL, 0), CLATTN_SUCCESS);
    clattn_mha_attention_desc(&d, &a);
    assert_int_equal(a.layout, CLATTN_LAYOUT_BSHD);
    assert_int_equal(a.head_dim, 8);
    assert_int_equal(a.head_dim_v, 8);
    assert_int_equal(a.heads_q, 8);
    assert_int_equal(a.heads_kv, 2);
    assert_int_equal(a.seq_kv, 9);
    assert_int_equal(a.causal, CLATTN_CAUSAL_BOTTOM_RIGHT);
    assert_int_equal(a.mask_batch_stride, 36);
    assert_int_equal(s.kv_width, 16);
    assert_int_equal(s.k_proj_weight, 16 * 10);
    assert_int_equal(s.v_proj_weight, 16 * 7);
    assert_int_equal(s.in_proj_weight, 0);   /* kdim != E: no packed form */
    assert_int_equal(s.mask, 2 * 36 + 3 * 9 + 9);
    assert_true(fabsf(s.scale - 1.0f / sqrtf(8.0f)) < 1e-7f);
}

/* The layer rebuilt from parts: float projections, then the library's own per-head reference
   (clattn_attention_reference, include/clattn.h) on the desc clattn_mha_attention_desc() gives,
   then the output projection; this is the path a device implementation takes, so the desc's
   layout, strides and mask must reproduce PyTorch. Inputs of the attention are float32 here, hence
   the looser tolerance. */
static void rebuild_and_compare(const char *name, clattn_mha_desc *d, const void *mask)
{
    fixture *fx = fx_load(data_dir, name);
    clattn_mha_shape s;
    clattn_mha_weights w;
    clattn_attention_desc a;
    char err[256] = "";
    assert_int_equal(clattn_mha_shape_init(d, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    const float *wq = w.in_proj_weight ? w.in_proj_weight : w.q_proj_weight;
    const float *wk = w.in_proj_weight ? wq + (size_t)s.E * (size_t)s.E : w.k_proj_weight;
    const float *wv = w.in_proj_weight ? wk + (size_t)s.kv_width * (size_t)s.E : w.v_proj_weight;
    const float *bias = w.in_proj_bias;
    const float *xq = fx_get(fx, "query", s.x_q);
    const float *xk = fx_get(fx, "key", s.x_k), *xv = fx_get(fx, "value", s.x_v);
    if (!xk) {   /* self-attention */
        xk = xq;
        xv = xq;
    }
    const int nq = s.B * s.Lq, nk = s.B * s.Lk;
    float *Q = malloc(sizeof(float) * (size_t)nq * (size_t)s.E);
    float *K = malloc(sizeof(float) * (size_t)nk * (size_t)s.kv_width);
    float *V = malloc(sizeof(float) * (size_t)nk * (size_t)s.kv_width);
    float *O = malloc(sizeof(float) * (size_t)nq * (size_t)s.E);
    float *out = malloc(sizeof(float) * s.out);
    float *P = malloc(sizeof(float) * s.weights);
    assert_true(Q && K && V && O && out && P);
    for (int r = 0; r < nq; r++)
        for (int o = 0; o < s.E; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < s.E; c++)
                acc += (double)xq[r * s.E + c] * wq[o * s.E + c];
            Q[r * s.E + o] = (float)acc;
        }
    for (int r = 0; r < nk; r++)
        for (int o = 0; o < s.kv_width; o++) {
            double ak = bias ? bias[s.E + o] : 0.0, av = bias ? bias[s.E + s.kv_width + o] : 0.0;
            for (int c = 0; c < s.kdim; c++)
                ak += (double)xk[r * s.kdim + c] * wk[o * s.kdim + c];
            for (int c = 0; c < s.vdim; c++)
                av += (double)xv[r * s.vdim + c] * wv[o * s.vdim + c];
            K[r * s.kv_width + o] = (float)ak;
            V[r * s.kv_width + o] = (float)av;
        }
    clattn_mha_attention_desc(d, &a);
    assert_int_equal(clattn_attention_reference(&a, Q, K, V, mask, O, P, NULL), CLATTN_SUCCESS);
    for (int r = 0; r < nq; r++)
        for (int o = 0; o < s.E; o++) {
            double acc = w.out_proj_bias ? w.out_proj_bias[o] : 0.0;
            for (int c = 0; c < s.E; c++)
                acc += (double)O[r * s.E + c] * w.out_proj_weight[o * s.E + c];
            out[r * s.E + o] = (float)acc;
        }
    double e_out = rel_err(out, fx_get(fx, "attn_output", s.out), s.out);
    double e_w = rel_err(P, fx_get(fx, "attn_weights_per_head", s.weights), s.weights);
    printf("  %-22s out %.2e  weights %.2e  (via clattn_attention_reference, tolerance 1e-5)\n",
           name, e_out, e_w);
    assert_true(e_out <= 1e-5);
    assert_true(e_w <= 1e-5);
    free(Q), free(K), free(V), free(O), free(out), free(P);
    fx_free(fx);
}

static void test_parts_match_pytorch(void **state)
{
    (void)state;
    clattn_mha_desc d;
    fixture *fx = fx_load(data_dir, "cross");
    fx_desc(fx, &d);
    fx_free(fx);
    rebuild_and_compare("cross", &d, NULL);

    fx = fx_load(data_dir, "causal");
    fx_desc(fx, &d);
    fx_free(fx);
    d.causal = CLATTN_CAUSAL_TOP_LEFT;
    rebuild_and_compare("causal", &d, NULL);

    fx = fx_load(data_dir, "additive");   /* a per-head mask: batch and head strides */
    fx_desc(fx, &d);
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;
    d.mask_head_stride = (long)d.seq_q * d.seq_kv;
    d.mask_batch_stride = d.heads_q * d.mask_head_stride;
    float *m = malloc(sizeof(float) * (size_t)(d.batch * d.mask_batch_stride));
    assert_non_null(m);
    memcpy(m, fx_get(fx, "attn_mask", (size_t)(d.batch * d.mask_batch_stride)),
           sizeof(float) * (size_t)(d.batch * d.mask_batch_stride));
    fx_free(fx);
    rebuild_and_compare("additive", &d, m);
    free(m);
}

int main(int argc, char **argv)
{
    data_dir = fx_data_dir(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_cross),
        cmocka_unit_test(test_masked),
        cmocka_unit_test(test_additive),
        cmocka_unit_test(test_gqa_matches_repeated_heads),
        cmocka_unit_test(test_causal_alignment),
        cmocka_unit_test(test_hidden_nan_value_stays_out),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_attention_desc),
        cmocka_unit_test(test_parts_match_pytorch),
    };
    return cmocka_run_group_tests_name("mha_reference", tests, NULL, NULL);
}
