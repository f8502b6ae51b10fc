/* The CPU reference (host/reference.c) and the host half conversion (host/half.c) against cases with
 * a closed-form answer. Every device test trusts the reference, and it shares its addressing with
 * the device paths (clattn_problem_init), so these cases pin addressing down independently: each
 * one is built so that a wrong stride, head mapping or causal offset changes the answer.
 * Unit suite: no OpenCL device is used, nothing is skipped. */
#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static clattn_attention_desc make_desc(int B, int Hq, int Hkv, int Lq, int Lk, int d, int dv)
{
    clattn_attention_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.batch = B;
    desc.heads_q = Hq;
    desc.heads_kv = Hkv;
    desc.seq_q = Lq;
    desc.seq_kv = Lk;
    desc.head_dim = d;
    desc.head_dim_v = dv;
    return desc;
}

/* Element offset of (b, h, row, 0) in a [B,H,L,w] tensor stored in layout. */
static size_t at(clattn_layout layout, int H, int L, int w, int b, int h, int row)
{
    if (layout == CLATTN_LAYOUT_BHSD)
        return (((size_t)b * H + h) * L + row) * w;
    return (((size_t)b * L + row) * H + h) * w;
}

/* Owned tensors of one problem, sized by clattn_attention_sizes. */
typedef struct problem_data {
    clattn_attention_desc desc;
    clattn_tensor_sizes s;
    void *q, *k, *v, *out;
    float *probs, *lse;
    size_t nq, nk, nv, nout, nprobs, nlse;
} problem_data;

static void data_init(problem_data *pd, const clattn_attention_desc *desc)
{
    memset(pd, 0, sizeof *pd);
    pd->desc = *desc;
    assert_int_equal(clattn_attention_sizes(desc, &pd->s), CLATTN_SUCCESS);
    size_t es = desc->dtype == CLATTN_F16 ? 2 : 4;
    pd->nq = pd->s.q / es;
    pd->nk = pd->s.k / es;
    pd->nv = pd->s.v / es;
    pd->nout = pd->s.out / es;
    pd->nprobs = pd->s.probs / 4;
    pd->nlse = pd->s.lse / 4;
    pd->q = tu_alloc(pd->s.q);
    pd->k = tu_alloc(pd->s.k);
    pd->v = tu_alloc(pd->s.v);
    pd->out = tu_alloc(pd->s.out);
    pd->probs = tu_alloc(pd->s.probs);
    pd->lse = tu_alloc(pd->s.lse);
    /* A sentinel, so that an element the reference never writes cannot pass. */
    tu_fill_value(pd->out, desc->dtype, pd->nout, -77.0f);
    tu_fill_value(pd->probs, CLATTN_F32, pd->nprobs, -77.0f);
    tu_fill_value(pd->lse, CLATTN_F32, pd->nlse, -77.0f);
}

static void data_free(problem_data *pd)
{
    free(pd->q);
    free(pd->k);
    free(pd->v);
    free(pd->out);
    free(pd->probs);
    free(pd->lse);
}

static clattn_status data_run(problem_data *pd, const void *mask)
{
    return clattn_attention_reference(&pd->desc, pd->q, pd->k, pd->v, mask, pd->out, pd->probs,
                                      pd->lse);
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.9g, want %.9g (tolerance %.3g)", got, want, tol);
}

/* ---- closed-form cases ----------------------------------------------------------------------- */

/* One key: softmax is 1, so every output row is the V row of the query head's KV head, exactly
   (also in F16), and lse is the scaled score. Grouped-query heads and both layouts. */
static void test_one_key(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        for (int lay = 0; lay < 2; lay++) {
            clattn_attention_desc desc = make_desc(2, 6, 3, 5, 1, 8, 5);
            desc.dtype = (clattn_dtype)dt;
            desc.layout = (clattn_layout)lay;
            problem_data pd;
            tu_rng r;
            tu_rng_seed(&r, 11);
            data_init(&pd, &desc);
            tu_fill_normal(pd.q, desc.dtype, pd.nq, 1.0f, &r);
            tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
            tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
            assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);
            for (int b = 0; b < 2; b++)
                for (int h = 0; h < 6; h++)
                    for (int i = 0; i < 5; i++) {
                        size_t o = at(desc.layout, 6, 5, 5, b, h, i);
                        size_t vo = at(desc.layout, 3, 1, 5, b, h / 2, 0);
                        for (int x = 0; x < 5; x++)
                            assert_true(tu_get(pd.out, desc.dtype, o + x) ==
                                        tu_get(pd.v, desc.dtype, vo + x));
                        size_t row = ((size_t)b * 6 + h) * 5 + i;
                        assert_true(pd.probs[row] == 1.0f);
                        double dot = 0.0;
                        size_t qo = at(desc.layout, 6, 5, 8, b, h, i);
                        size_t ko = at(desc.layout, 3, 1, 8, b, h / 2, 0);
                        for (int x = 0; x < 8; x++)
                            dot += (double)tu_get(pd.q, desc.dtype, qo + x) * tu_get(pd.k, desc.dtype, ko + x);
                        assert_close(pd.lse[row], dot / sqrt(8.0), 1e-6 * (1 + fabs(dot)));
                    }
            data_free(&pd);
        }
    }
}

/* q = 0 makes every score 0: out is the mean of the V rows, probs 1/Lk, lse log(Lk). */
static void test_equal_scores(void **state)
{
    (void)state;
    clattn_attention_desc desc = make_desc(1, 2, 1, 3, 7, 4, 6);
    problem_data pd;
    tu_rng r;
    tu_rng_seed(&r, 12);
    data_init(&pd, &desc);
    tu_fill_value(pd.q, desc.dtype, pd.nq, 0.0f);
    tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
    tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
    assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);
    for (int x = 0; x < 6; x++) {
        double mean = 0.0;
        for (int j = 0; j < 7; j++)
            mean += ((float *)pd.v)[j * 6 + x] / 7.0;
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 3; i++)
                assert_close(((float *)pd.out)[(h * 3 + i) * 6 + x], mean, 1e-6);
    }
    for (size_t e = 0; e < pd.nprobs; e++)
        assert_close(pd.probs[e], 1.0 / 7.0, 1e-7);
    for (size_t e = 0; e < pd.nlse; e++)
        assert_close(pd.lse[e], log(7.0), 1e-6);
    data_free(&pd);
}

/* Two keys, d = 1: s = (0, 1) * scale, p = softmax, out = p1 with V = (0, 1). Checks the scale
   (given, negative, and the 1/sqrt(d) default) and an additive mask term. */
static void test_two_keys(void **state)
{
    (void)state;
    const float scales[] = {1.0f, -2.5f, 0.0f};
    for (int sc = 0; sc < 3; sc++) {
        for (int masked = 0; masked < 2; masked++) {
            clattn_attention_desc desc = make_desc(1, 1, 1, 1, 2, 1, 1);
            desc.scale = scales[sc];
            desc.mask_type = masked ? CLATTN_MASK_ADDITIVE_F32 : CLATTN_MASK_NONE;
            float q[1] = {1.0f}, k[2] = {0.0f, 1.0f}, v[2] = {0.0f, 1.0f}, mask[2] = {0.75f, -0.5f};
            float out = -77.0f, probs[2], lse;
            assert_int_equal(clattn_attention_reference(&desc, q, k, v, masked ? mask : NULL, &out, probs,
                                                        &lse),
                             CLATTN_SUCCESS);
            double scale = scales[sc] != 0.0f ? scales[sc] : 1.0;   /* d = 1: 1/sqrt(1) */
            double s0 = masked ? 0.75 : 0.0, s1 = scale + (masked ? -0.5 : 0.0);
            double e0 = exp(s0), e1 = exp(s1);
            assert_close(out, e1 / (e0 + e1), 1e-7);
            assert_close(probs[0], e0 / (e0 + e1), 1e-7);
            assert_close(probs[1], e1 / (e0 + e1), 1e-7);
            assert_close(lse, log(e0 + e1), 1e-6);
        }
    }
}

/* q = 0 with causal masking: row i averages V over the keys it sees, j <= i + offset. Covers
   bottom-right and top-left with Lq < Lk and Lq > Lk, where the first rows see nothing. */
static void test_causal(void **state)
{
    (void)state;
    const int shapes[][2] = {{3, 5}, {5, 3}, {4, 4}};
    for (int sh = 0; sh < 3; sh++) {
        for (int mode = 1; mode <= 2; mode++) {
            int Lq = shapes[sh][0], Lk = shapes[sh][1];
            clattn_attention_desc desc = make_desc(1, 1, 1, Lq, Lk, 2, 1);
            desc.causal = (clattn_causal)mode;
            problem_data pd;
            data_init(&pd, &desc);
            tu_fill_value(pd.q, desc.dtype, pd.nq, 0.0f);
            tu_fill_value(pd.k, desc.dtype, pd.nk, 1.0f);
            for (int j = 0; j < Lk; j++)
                ((float *)pd.v)[j] = (float)(1 << j);   /* which keys were summed shows in the bits */
            assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);
            int offset = mode == CLATTN_CAUSAL_BOTTOM_RIGHT ? Lk - Lq : 0;
            for (int i = 0; i < Lq; i++) {
                int last = i + offset < Lk - 1 ? i + offset : Lk - 1;   /* keys 0..last are visible */
                float o = ((float *)pd.out)[i];
                if (last < 0) {
                    assert_true(o == 0.0f && !signbit(o));
                    assert_true(pd.lse[i] == -INFINITY);
                    for (int j = 0; j < Lk; j++)
                        assert_true(pd.probs[i * Lk + j] == 0.0f);
                    continue;
                }
                double sum = 0.0;
                for (int j = 0; j <= last; j++)
                    sum += (double)(1 << j);
                assert_close(o, sum / (last + 1), 1e-6);
                assert_close(pd.lse[i], log(last + 1.0), 1e-6);
                for (int j = 0; j < Lk; j++)
                    assert_close(pd.probs[i * Lk + j], j <= last ? 1.0 / (last + 1) : 0.0, 1e-7);
            }
            data_free(&pd);
        }
    }
}

/* Masks addressed through every stride: head h, row i attends only key (i + h) % Lk, so the output
   row is exactly that V row. Row stride padded, per-head masks shared across the batch; also the
   broadcast form (batch and head strides 0) with key i % Lk. All three mask types. */
static void test_mask_addressing(void **state)
{
    (void)state;
    const int B = 2, H = 3, Lq = 4, Lk = 5, pad = 2;
    for (int mt = CLATTN_MASK_ADDITIVE_F32; mt <= CLATTN_MASK_BOOL_U8; mt++) {
        for (int broadcast = 0; broadcast < 2; broadcast++) {
            clattn_attention_desc desc = make_desc(B, H, H, Lq, Lk, 3, 2);
            desc.layout = CLATTN_LAYOUT_BSHD;
            desc.mask_type = (clattn_mask_type)mt;
            desc.mask_row_stride = broadcast ? 0 : Lk + pad;
            desc.mask_head_stride = broadcast ? 0 : (long)Lq * (Lk + pad);
            desc.mask_batch_stride = 0;
            problem_data pd;
            tu_rng r;
            tu_rng_seed(&r, 13);
            data_init(&pd, &desc);
            tu_fill_normal(pd.q, desc.dtype, pd.nq, 1.0f, &r);
            tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
            tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
            size_t n = pd.s.mask / clattn_mask_elem_size(desc.mask_type);
            void *mask = tu_alloc(pd.s.mask);
            long rs = broadcast ? Lk : Lk + pad;
            for (size_t e = 0; e < n; e++) {
                int j = (int)(e % (size_t)rs), i = (int)(e / (size_t)rs) % Lq;
                int h = broadcast ? 0 : (int)(e / ((size_t)rs * Lq));
                /* padding (j >= Lk) is never read; fill it with "attend" so that reading it shows */
                int attend = j >= Lk || j == (i + h) % Lk;
                if (mt == CLATTN_MASK_ADDITIVE_F32)
                    ((float *)mask)[e] = attend ? 0.0f : -INFINITY;
                else if (mt == CLATTN_MASK_ADDITIVE_F16)
                    ((uint16_t *)mask)[e] = clattn_float_to_half(attend ? 0.0f : -INFINITY);
                else
                    ((unsigned char *)mask)[e] = attend ? (unsigned char)(17 * (j + 1)) : 0;
            }
            assert_int_equal(data_run(&pd, mask), CLATTN_SUCCESS);
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    for (int i = 0; i < Lq; i++) {
                        int key = (i + (broadcast ? 0 : h)) % Lk;
                        size_t o = at(desc.layout, H, Lq, 2, b, h, i);
                        size_t vo = at(desc.layout, H, Lk, 2, b, h, key);
                        for (int x = 0; x < 2; x++)
                            assert_true(((float *)pd.out)[o + x] == ((float *)pd.v)[vo + x]);
                        assert_true(pd.probs[(((size_t)b * H + h) * Lq + i) * Lk + key] == 1.0f);
                    }
            free(mask);
            data_free(&pd);
        }
    }
}

/* A row every key of which is hidden (additive -inf or bool 0) gives out 0, probs 0, lse -inf;
   the other rows are untouched by it. */
static void test_fully_masked(void **state)
{
    (void)state;
    for (int mt = CLATTN_MASK_ADDITIVE_F32; mt <= CLATTN_MASK_BOOL_U8; mt++) {
        clattn_attention_desc desc = make_desc(1, 1, 1, 3, 4, 2, 2);
        desc.mask_type = (clattn_mask_type)mt;
        desc.dtype = CLATTN_F16;
        problem_data pd;
        tu_rng r;
        tu_rng_seed(&r, 14);
        data_init(&pd, &desc);
        tu_fill_normal(pd.q, desc.dtype, pd.nq, 1.0f, &r);
        tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
        tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
        float mask[12];   /* float storage: aligned for all three element types */
        for (int e = 0; e < 12; e++) {
            int hidden = e / 4 == 1;   /* row 1 */
            if (mt == CLATTN_MASK_ADDITIVE_F32)
                ((float *)mask)[e] = hidden ? -INFINITY : 0.0f;
            else if (mt == CLATTN_MASK_ADDITIVE_F16)
                ((uint16_t *)mask)[e] = hidden ? 0xfc00u : 0;
            else
                ((unsigned char *)mask)[e] = hidden ? 0 : 1;
        }
        assert_int_equal(data_run(&pd, mask), CLATTN_SUCCESS);
        for (int i = 0; i < 3; i++) {
            if (i == 1) {
                assert_true(((uint16_t *)pd.out)[2] == 0 && ((uint16_t *)pd.out)[3] == 0);
                assert_true(pd.lse[1] == -INFINITY);
                for (int j = 0; j < 4; j++)
                    assert_true(pd.probs[4 + j] == 0.0f);
            } else {
                assert_true(isfinite(pd.lse[i]));
                double total = 0.0;
                for (int j = 0; j < 4; j++)
                    total += pd.probs[i * 4 + j];
                assert_close(total, 1.0, 1e-6);
            }
        }
        data_free(&pd);
    }
}

/* A NaN in a query row makes that row's out, lse and probs (hidden keys included) NaN, and only
   that row's. */
static void test_nan_propagates(void **state)
{
    (void)state;
    clattn_attention_desc desc = make_desc(1, 2, 1, 3, 5, 4, 3);
    desc.causal = CLATTN_CAUSAL_TOP_LEFT;   /* row 2 sees keys 0..2: keys 3, 4 are hidden */
    problem_data pd;
    tu_rng r;
    tu_rng_seed(&r, 15);
    data_init(&pd, &desc);
    tu_fill_normal(pd.q, desc.dtype, pd.nq, 1.0f, &r);
    tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
    tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
    ((float *)pd.q)[at(desc.layout, 2, 3, 4, 0, 1, 2) + 3] = NAN;   /* head 1, row 2 */
    assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 3; i++) {
            int poisoned = h == 1 && i == 2;
            for (int x = 0; x < 3; x++)
                assert_int_equal(isnan(((float *)pd.out)[at(desc.layout, 2, 3, 3, 0, h, i) + x]), poisoned);
            assert_int_equal(isnan(pd.lse[h * 3 + i]), poisoned);
            for (int j = 0; j < 5; j++)
                assert_int_equal(isnan(pd.probs[(h * 3 + i) * 5 + j]), poisoned);
        }
    data_free(&pd);
}

/* Lk == 0: no keys, so out 0 and lse -inf everywhere (k and v may be NULL); B == 0 and Lq == 0
   succeed without touching anything. */
static void test_empty(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        clattn_attention_desc desc = make_desc(2, 2, 1, 3, 0, 4, 5);
        desc.dtype = (clattn_dtype)dt;
        desc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
        problem_data pd;
        data_init(&pd, &desc);
        tu_fill_value(pd.q, desc.dtype, pd.nq, 1.0f);
        assert_int_equal(clattn_attention_reference(&desc, pd.q, NULL, NULL, NULL, pd.out, NULL, pd.lse),
                         CLATTN_SUCCESS);
        for (size_t e = 0; e < pd.nout; e++)
            assert_true(tu_get(pd.out, desc.dtype, e) == 0.0f);
        for (size_t e = 0; e < pd.nlse; e++)
            assert_true(pd.lse[e] == -INFINITY);
        data_free(&pd);
    }
    float sentinel = -77.0f;
    clattn_attention_desc desc = make_desc(0, 2, 1, 3, 4, 4, 5);
    assert_int_equal(clattn_attention_reference(&desc, NULL, NULL, NULL, NULL, &sentinel, &sentinel,
                                                &sentinel),
                     CLATTN_SUCCESS);
    desc = make_desc(1, 2, 1, 0, 4, 4, 5);
    assert_int_equal(clattn_attention_reference(&desc, NULL, NULL, NULL, NULL, &sentinel, &sentinel,
                                                &sentinel),
                     CLATTN_SUCCESS);
    assert_true(sentinel == -77.0f);
}

/* Logits in the thousands: the max subtraction keeps everything finite, and the output is the V row
   of the best key. */
static void test_large_logits(void **state)
{
    (void)state;
    clattn_attention_desc desc = make_desc(1, 1, 1, 4, 9, 16, 4);
    desc.scale = 1.0f;
    problem_data pd;
    tu_rng r;
    tu_rng_seed(&r, 16);
    data_init(&pd, &desc);
    tu_fill_normal(pd.q, desc.dtype, pd.nq, 200.0f, &r);
    tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
    tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
    assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);
    for (int i = 0; i < 4; i++) {
        double best = -INFINITY;
        int arg = 0;
        for (int j = 0; j < 9; j++) {
            double s = 0.0;
            for (int x = 0; x < 16; x++)
                s += (double)((float *)pd.q)[i * 16 + x] * ((float *)pd.k)[j * 16 + x];
            if (s > best) {
                best = s;
                arg = j;
            }
        }
        assert_true(isfinite(pd.lse[i]));
        assert_close(pd.lse[i], best, 1e-4 * fabs(best));
        for (int x = 0; x < 4; x++)
            assert_close(((float *)pd.out)[i * 4 + x], ((float *)pd.v)[arg * 4 + x], 1e-3);
    }
    data_free(&pd);
}

/* The F16 reference is the F32 reference (same values) rounded to half, bit for bit; out, probs and
   lse may each be left NULL without changing the others. */
static void test_f16_matches_f32(void **state)
{
    (void)state;
    clattn_attention_desc desc = make_desc(2, 4, 2, 7, 9, 12, 10);
    desc.dtype = CLATTN_F16;
    desc.layout = CLATTN_LAYOUT_BSHD;
    desc.causal = CLATTN_CAUSAL_TOP_LEFT;
    problem_data pd;
    tu_rng r;
    tu_rng_seed(&r, 17);
    data_init(&pd, &desc);
    tu_fill_normal(pd.q, desc.dtype, pd.nq, 1.0f, &r);
    tu_fill_normal(pd.k, desc.dtype, pd.nk, 1.0f, &r);
    tu_fill_normal(pd.v, desc.dtype, pd.nv, 1.0f, &r);
    assert_int_equal(data_run(&pd, NULL), CLATTN_SUCCESS);

    clattn_attention_desc d32 = desc;
    d32.dtype = CLATTN_F32;
    float *q = tu_widen(pd.q, desc.dtype, pd.nq), *k = tu_widen(pd.k, desc.dtype, pd.nk);
    float *v = tu_widen(pd.v, desc.dtype, pd.nv), *out = tu_alloc(pd.nout * 4);
    float *probs = tu_alloc(pd.s.probs), *lse = tu_alloc(pd.s.lse);
    assert_int_equal(clattn_attention_reference(&d32, q, k, v, NULL, out, probs, lse), CLATTN_SUCCESS);
    for (size_t e = 0; e < pd.nout; e++)
        assert_int_equal(((uint16_t *)pd.out)[e], clattn_float_to_half(out[e]));
    assert_memory_equal(probs, pd.probs, pd.s.probs);
    assert_memory_equal(lse, pd.lse, pd.s.lse);

    /* Only lse, then only out: the same values. */
    float *lse2 = tu_alloc(pd.s.lse);
    assert_int_equal(clattn_attention_reference(&d32, q, k, v, NULL, NULL, NULL, lse2), CLATTN_SUCCESS);
    assert_memory_equal(lse, lse2, pd.s.lse);
    float *out2 = tu_alloc(pd.nout * 4);
    assert_int_equal(clattn_attention_reference(&d32, q, k, v, NULL, out2, NULL, NULL), CLATTN_SUCCESS);
    assert_memory_equal(out, out2, pd.nout * 4);
    free(q);
    free(k);
    free(v);
    free(out);
    free(out2);
    free(probs);
    free(lse);
    free(lse2);
    data_free(&pd);
}

/* Refused calls: a bad desc, or a pointer the shape needs left NULL, or a mask with MASK_NONE. */
static void test_bad_arguments(void **state)
{
    (void)state;
    float x[64] = {0};
    float out[64];
    clattn_attention_desc desc = make_desc(1, 1, 1, 2, 2, 4, 4);
    assert_int_equal(clattn_attention_reference(NULL, x, x, x, NULL, out, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
    clattn_attention_desc bad = desc;
    bad.head_dim = 0;
    assert_int_equal(clattn_attention_reference(&bad, x, x, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    bad = desc;
    bad.heads_q = 3;
    bad.heads_kv = 2;
    assert_int_equal(clattn_attention_reference(&bad, x, x, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    bad = desc;
    bad.scale = NAN;
    assert_int_equal(clattn_attention_reference(&bad, x, x, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    bad = desc;
    bad.mask_type = (clattn_mask_type)9;
    assert_int_equal(clattn_attention_reference(&bad, x, x, x, x, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_reference(&desc, NULL, x, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_reference(&desc, x, NULL, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_reference(&desc, x, x, NULL, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_reference(&desc, x, x, x, x, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    bad = desc;
    bad.mask_type = CLATTN_MASK_BOOL_U8;
    assert_int_equal(clattn_attention_reference(&bad, x, x, x, NULL, out, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    /* v is not needed when out is not asked for */
    float lse[2];
    assert_int_equal(clattn_attention_reference(&desc, x, x, NULL, NULL, NULL, NULL, lse), CLATTN_SUCCESS);
    /* nothing asked: nothing needed */
    assert_int_equal(clattn_attention_reference(&desc, NULL, NULL, NULL, NULL, NULL, NULL, NULL), CLATTN_SUCCESS);
}

/* ---- half conversion ------------------------------------------------------------------------- */

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Every half survives half -> float -> half bit for bit (NaNs stay NaN), and the float is the value
   the bits encode. */
static void test_half_round_trip(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = clattn_half_to_float((uint16_t)h);
        uint16_t back = clattn_float_to_half(f);
        unsigned exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
        if (exp == 0x1f && mant) {
            assert_true(isnan(f));
            assert_true((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0);
            assert_int_equal(back & 0x8000, h & 0x8000);
            continue;
        }
        assert_int_equal(back, h);
        double want = exp == 0x1f ? INFINITY
                      : exp == 0  ? ldexp(mant, -24)
                                  : ldexp(1024 + mant, (int)exp - 25);
        if (h & 0x8000)
            want = -want;
        assert_true((double)f == want);
        assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0);
    }
}

/* Rounding at the edges: ties to even, overflow, subnormals and underflow. */
static void test_half_rounding(void **state)
{
    (void)state;
    const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},            /* tie: stays even */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* tie: up to even */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just above the tie */
        {65504.0f, 0x7bff},                   /* largest half */
        {65519.99f, 0x7bff},                  /* below the overflow tie */
        {65520.0f, 0x7c00},                   /* the tie rounds to even: infinity */
        {1e10f, 0x7c00},
        {-1e10f, 0xfc00},
        {0x1p-14f, 0x0400},                   /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},        /* tie at the subnormal top: up to even */
        {0x1p-24f, 0x0001},                   /* smallest subnormal */
        {0x1p-25f, 0x0000},                   /* tie with 0: even is 0 */
        {0x1.8p-25f, 0x0001},
        {0x1p-26f, 0x0000},
        {3 * 0x1p-25f, 0x0002},               /* 1.5 units: tie to even 2 */
        {-0.0f, 0x8000},
        {-0x1p-30f, 0x8000},                  /* underflow keeps the sign */
        {1e-45f, 0x0000},                     /* float subnormal */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = clattn_float_to_half(cases[i].f);
        if (h != cases[i].h)
            fail_msg("%a -> 0x%04x, want 0x%04x", (double)cases[i].f, h, cases[i].h);
    }
    assert_int_equal(clattn_float_to_half(INFINITY), 0x7c00);
    assert_int_equal(clattn_float_to_half(-INFINITY), 0xfc00);
    /* NaN stays NaN, including one whose payload sits only in bits a half cannot hold */
    uint16_t n1 = clattn_float_to_half(NAN);
    uint16_t n2 = clattn_float_to_half(from_bits(0x7f800001u));
    uint16_t n3 = clattn_float_to_half(from_bits(0xff800001u));
    assert_true((n1 & 0x7c00) == 0x7c00 && (n1 & 0x3ff));
    assert_true((n2 & 0x7c00) == 0x7c00 && (n2 & 0x3ff));
    assert_true((n3 & 0xfc00) == 0xfc00 && (n3 & 0x3ff));
    assert_true(isnan(clattn_half_to_float(n2)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_key),
        cmocka_unit_test(test_equal_scores),
        cmocka_unit_test(test_two_keys),
        cmocka_unit_test(test_causal),
        cmocka_unit_test(test_mask_addressing),
        cmocka_unit_test(test_fully_masked),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_large_logits),
        cmocka_unit_test(test_f16_matches_f32),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_half_round_trip),
        cmocka_unit_test(test_half_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
