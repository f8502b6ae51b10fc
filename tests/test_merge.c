/* Merging partial attention results (host/merge.c, cl/merge.cl).
 *
 * The property under test: attention over keys [K1; K2; ...] equals the merge of the attentions over
 * each Kp, computed by clattn_attention_host on the same device. Tolerances, relative to
 * max(1, max |full|):
 *   F32  1e-5   float rounding of the parts, the full run and the merge, a few ulps each;
 *   F16  2e-3   each part's out and the full out are rounded to half (unit roundoff 2^-11 = 4.9e-4)
 *               before the merge, and the merge rounds again: 3 roundings, plus float arithmetic.
 * lse is float32 in both: |merged - full| <= 1e-5 * max(1, |full|).
 * The device merge against the CPU merge (double, same inputs): 2e-6 for F32 (the kernel's float
 * sum), one half unit in the last place (2^-10 relative) for F16. Tiled and untiled device merges,
 * and in-place and separate outputs, do the same arithmetic per element and must agree bit for bit.
 */
#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_PARTS 6

/* ---- data ------------------------------------------------------------------------------------ */

static size_t esize(clattn_dtype dtype)
{
    return dtype == CLATTN_F16 || dtype == CLATTN_BF16 ? 2 : 4;
}

static void *random_tensor(clattn_dtype dtype, size_t n, tu_rng *r)
{
    void *t = tu_alloc(n * esize(dtype));
    tu_fill_normal(t, dtype, n, 1.0f, r);
    return t;
}

/* Keys j0 .. j0+n-1 of a k or v tensor [B, H, L, w] (BHSD) or [B, L, H, w] (BSHD). */
static void *slice_keys(const void *src, clattn_layout layout, clattn_dtype dtype, int B, int H, int L,
                        int w, int j0, int n)
{
    size_t es = esize(dtype);
    char *dst = tu_alloc((size_t)B * H * n * w * es);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int j = 0; j < n; j++) {
                size_t from, to;
                if (layout == CLATTN_LAYOUT_BHSD) {
                    from = (((size_t)b * H + h) * L + j0 + j) * w;
                    to = (((size_t)b * H + h) * n + j) * w;
                } else {
                    from = (((size_t)b * L + j0 + j) * H + h) * w;
                    to = (((size_t)b * n + j) * H + h) * w;
                }
                memcpy(dst + to * es, (const char *)src + from * es, (size_t)w * es);
            }
    return dst;
}

/* ---- device buffers -------------------------------------------------------------------------- */

static cl_mem upload(clattn_context *ctx, const void *data, size_t bytes)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                              bytes, (void *)data, &err);
    assert_int_equal(err, CL_SUCCESS);
    return m;
}

static void download(clattn_context *ctx, cl_mem m, void *data, size_t bytes)
{
    assert_int_equal(clEnqueueReadBuffer(clattn_context_queue(ctx), m, CL_TRUE, 0, bytes, data, 0, NULL,
                                         NULL),
                     CL_SUCCESS);
}

/* ---- a split problem ------------------------------------------------------------------------- */

static void expect_ok(clattn_context *ctx, clattn_status st, const char *what)
{
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s (%s)", what, clattn_status_string(st), clattn_context_last_error(ctx));
}

/* Attention over all keys and over each key range, all from clattn_attention_host. */
typedef struct split {
    clattn_attention_desc desc;   /* the full problem */
    clattn_tensor_sizes sizes;
    int parts;
    int cut[MAX_PARTS + 1];       /* part p holds keys cut[p] .. cut[p+1]-1 */
    void *out_full;
    float *lse_full;
    void *out[MAX_PARTS];
    float *lse[MAX_PARTS];
} split;

/* With mask set, a bool mask hides from every query i % 3 == 1 all keys of part 1 (that part is fully
   masked for those rows), and from query head 0's rows i % 3 == 2 every key (no part sees a key). */
static void split_run(clattn_context *ctx, split *s, int mask, uint64_t seed)
{
    const clattn_attention_desc *d = &s->desc;
    tu_rng state;
    tu_rng_seed(&state, seed);
    int hkv = d->heads_kv ? d->heads_kv : d->heads_q;
    int dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    int Lk = d->seq_kv;
    assert_int_equal(clattn_attention_sizes(d, &s->sizes), CLATTN_SUCCESS);
    void *q = random_tensor(d->dtype, (size_t)d->batch * d->heads_q * d->seq_q * d->head_dim, &state);
    void *k = random_tensor(d->dtype, (size_t)d->batch * hkv * Lk * d->head_dim, &state);
    void *v = random_tensor(d->dtype, (size_t)d->batch * hkv * Lk * dv, &state);
    uint8_t *m = NULL;
    clattn_attention_desc full = *d;
    if (mask) {
        size_t n = (size_t)d->batch * d->heads_q * d->seq_q * Lk;
        m = tu_alloc(n);
        for (int b = 0; b < d->batch; b++)
            for (int h = 0; h < d->heads_q; h++)
                for (int i = 0; i < d->seq_q; i++)
                    for (int j = 0; j < Lk; j++) {
                        int hide = (i % 3 == 1 && j >= s->cut[1] && j < s->cut[2]) ||
                                   (i % 3 == 2 && h == 0);
                        m[(((size_t)b * d->heads_q + h) * d->seq_q + i) * Lk + j] = !hide;
                    }
        full.mask_type = CLATTN_MASK_BOOL_U8;
        full.mask_batch_stride = (long)d->heads_q * d->seq_q * Lk;
        full.mask_head_stride = (long)d->seq_q * Lk;
        full.mask_row_stride = Lk;
    }
    s->out_full = tu_alloc(s->sizes.out);
    s->lse_full = tu_alloc(s->sizes.lse);
    expect_ok(ctx, clattn_attention_host(ctx, &full, q, k, v, m, s->out_full, NULL, s->lse_full),
              "attention over all keys");
    for (int p = 0; p < s->parts; p++) {
        int j0 = s->cut[p], n = s->cut[p + 1] - s->cut[p];
        clattn_attention_desc part = full;
        part.seq_kv = n;
        if (n == 0)
            part.mask_type = CLATTN_MASK_NONE;   /* no key, no mask column */
        void *kp = slice_keys(k, d->layout, d->dtype, d->batch, hkv, Lk, d->head_dim, j0, n);
        void *vp = slice_keys(v, d->layout, d->dtype, d->batch, hkv, Lk, dv, j0, n);
        s->out[p] = tu_alloc(s->sizes.out);
        s->lse[p] = tu_alloc(s->sizes.lse);
        /* The part's mask is the full mask from column j0, rows still Lk apart. */
        expect_ok(ctx, clattn_attention_host(ctx, &part, q, n ? kp : NULL, n ? vp : NULL,
                                             m && n ? m + j0 : NULL, s->out[p], NULL, s->lse[p]),
                  "attention over a part");
        free(kp);
        free(vp);
    }
    free(q);
    free(k);
    free(v);
    free(m);
}

static void split_free(split *s)
{
    free(s->out_full);
    free(s->lse_full);
    for (int p = 0; p < s->parts; p++) {
        free(s->out[p]);
        free(s->lse[p]);
    }
}

/* ---- comparisons ----------------------------------------------------------------------------- */

static void expect_close(const void *got, const void *want, clattn_dtype dtype, size_t n, double tol,
                         const char *what)
{
    double scale = 1.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(tu_get(want, dtype, i)) > scale)
            scale = fabs(tu_get(want, dtype, i));
    for (size_t i = 0; i < n; i++) {
        double g = tu_get(got, dtype, i), w = tu_get(want, dtype, i);
        if (isnan(g) || isnan(w))
            fail_msg("%s[%zu]: NaN (got %g, want %g)", what, i, g, w);
        if (fabs(g - w) > worst) {
            worst = fabs(g - w);
            at = i;
        }
    }
    if (worst > tol * scale)
        fail_msg("%s: max |error| %.3g at %zu exceeds %.3g (got %g, want %g)", what, worst, at,
                 tol * scale, tu_get(got, dtype, at), tu_get(want, dtype, at));
}

static void expect_lse_close(const float *got, const float *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        if (isinf(want[i]) && want[i] < 0) {
            if (!(isinf(got[i]) && got[i] < 0))
                fail_msg("%s[%zu] = %g, want -inf", what, i, got[i]);
            continue;
        }
        if (!(fabs(got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
            fail_msg("%s[%zu] = %.9g, want %.9g", what, i, got[i], want[i]);
    }
}

/* The device merge of s's parts into host memory. */
static void merge_on_device(clattn_context *ctx, const split *s, void *out, float *lse)
{
    cl_mem outs[MAX_PARTS], lses[MAX_PARTS];
    for (int p = 0; p < s->parts; p++) {
        outs[p] = upload(ctx, s->out[p], s->sizes.out);
        lses[p] = upload(ctx, s->lse[p], s->sizes.lse);
    }
    cl_mem o = upload(ctx, s->out_full, s->sizes.out);   /* any content: overwritten */
    cl_mem l = upload(ctx, s->lse_full, s->sizes.lse);
    clattn_status st = clattn_merge_partials(ctx, s->parts, outs, lses, &s->desc, o, l);
    if (st != CLATTN_SUCCESS)
        fail_msg("clattn_merge_partials: %s (%s)", clattn_status_string(st), clattn_context_last_error(ctx));
    download(ctx, o, out, s->sizes.out);
    download(ctx, l, lse, s->sizes.lse);
    for (int p = 0; p < s->parts; p++) {
        clReleaseMemObject(outs[p]);
        clReleaseMemObject(lses[p]);
    }
    clReleaseMemObject(o);
    clReleaseMemObject(l);
}

/* Merges on the device and on the CPU and checks both against the full attention, and each other. */
static void check_split(clattn_context *ctx, split *s)
{
    /* 16-bit storage: a few units of the last place of each format */
    const double store_tol = s->desc.dtype == CLATTN_F16 ? 2e-3 : s->desc.dtype == CLATTN_BF16 ? 1.6e-2 : 1e-5;
    const double same_tol = s->desc.dtype == CLATTN_F16 ? 1.0 / 1024 : s->desc.dtype == CLATTN_BF16 ? 1.0 / 128 : 2e-6;
    size_t n_out = s->sizes.out / esize(s->desc.dtype), n_lse = s->sizes.lse / sizeof(float);
    void *out = tu_alloc(s->sizes.out), *out_cpu = tu_alloc(s->sizes.out);
    float *lse = tu_alloc(s->sizes.lse), *lse_cpu = tu_alloc(s->sizes.lse);
    merge_on_device(ctx, s, out, lse);
    expect_close(out, s->out_full, s->desc.dtype, n_out, store_tol, "merged out vs full");
    expect_lse_close(lse, s->lse_full, n_lse, 1e-5, "merged lse vs full");

    const void *outs[MAX_PARTS];
    const float *lses[MAX_PARTS];
    for (int p = 0; p < s->parts; p++) {
        outs[p] = s->out[p];
        lses[p] = s->lse[p];
    }
    assert_int_equal(clattn_merge_partials_host(s->parts, outs, lses, &s->desc, out_cpu, lse_cpu),
                     CLATTN_SUCCESS);
    expect_close(out, out_cpu, s->desc.dtype, n_out, same_tol, "device vs CPU merge");
    expect_lse_close(lse, lse_cpu, n_lse, 2e-6, "device vs CPU lse");
    free(out);
    free(out_cpu);
    free(lse);
    free(lse_cpu);
}

static clattn_attention_desc make_desc(int B, int Hq, int Hkv, int Lq, int Lk, int d, int dv,
                                       clattn_dtype dtype, clattn_layout layout)
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
    desc.dtype = dtype;
    desc.layout = layout;
    return desc;
}

/* ---- tests: the merge property --------------------------------------------------------------- */

static void test_two_parts_f32_bhsd(void **state)
{
    split s = {.desc = make_desc(2, 4, 2, 7, 45, 24, 19, CLATTN_F32, CLATTN_LAYOUT_BHSD), .parts = 2,
               .cut = {0, 17, 45}};
    split_run(*state, &s, 0, 1);
    check_split(*state, &s);
    split_free(&s);
}

static void test_two_parts_f16_bshd(void **state)
{
    split s = {.desc = make_desc(2, 3, 3, 9, 40, 32, 0, CLATTN_F16, CLATTN_LAYOUT_BSHD), .parts = 2,
               .cut = {0, 23, 40}};
    split_run(*state, &s, 0, 2);
    check_split(*state, &s);
    split_free(&s);
}

static void test_three_parts_bf16_bshd(void **state)
{
    split s = {.desc = make_desc(2, 4, 2, 9, 61, 32, 24, CLATTN_BF16, CLATTN_LAYOUT_BSHD), .parts = 3,
               .cut = {0, 20, 33, 61}};
    split_run(*state, &s, 0, 3);
    check_split(*state, &s);
    split_free(&s);
}

/* Part 1 is fully masked for rows i % 3 == 1; head 0's rows i % 3 == 2 see no key in any part. */
static void test_masked_part(void **state)
{
    clattn_dtype types[] = {CLATTN_F32, CLATTN_F16};
    clattn_layout layouts[] = {CLATTN_LAYOUT_BHSD, CLATTN_LAYOUT_BSHD};
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++) {
            split s = {.desc = make_desc(1, 2, 1, 8, 30, 16, 33, types[t], layouts[l]), .parts = 3,
                       .cut = {0, 10, 21, 30}};
            split_run(*state, &s, 1, 3 + (uint64_t)(2 * t + l));
            /* the premise: part 1 and the fully hidden rows really are -inf */
            assert_true(isinf(s.lse[1][1]) && s.lse[1][1] < 0);
            assert_true(isinf(s.lse_full[2]) && s.lse_full[2] < 0);
            check_split(*state, &s);
            split_free(&s);
        }
}

/* An empty part (Lk = 0: lse -inf everywhere) among four, uneven sizes, decode-like Lq = 1. */
static void test_empty_part_and_many_parts(void **state)
{
    clattn_layout layouts[] = {CLATTN_LAYOUT_BHSD, CLATTN_LAYOUT_BSHD};
    for (int l = 0; l < 2; l++) {
        split s = {.desc = make_desc(3, 8, 2, 1, 70, 64, 64, CLATTN_F32, layouts[l]), .parts = 5,
                   .cut = {0, 1, 1, 33, 34, 70}};
        split_run(*state, &s, 0, 10 + (uint64_t)l);
        assert_true(isinf(s.lse[1][0]) && s.lse[1][0] < 0);
        check_split(*state, &s);
        split_free(&s);
    }
    split s = {.desc = make_desc(1, 5, 5, 13, 100, 8, 8, CLATTN_F16, CLATTN_LAYOUT_BHSD), .parts = 6,
               .cut = {0, 0, 16, 50, 51, 99, 100}};
    split_run(*state, &s, 0, 20);
    check_split(*state, &s);
    split_free(&s);
}

/* ---- tests: edge values ---------------------------------------------------------------------- */

/* One row of dv columns per part, set by hand. */
static clattn_attention_desc one_row_desc(int dv)
{
    return make_desc(1, 1, 0, 1, 0, dv, dv, CLATTN_F32, CLATTN_LAYOUT_BHSD);
}

static void merge_rows_device(clattn_context *ctx, int parts, float (*outs)[5], const float *lses,
                              float *out, float *lse)
{
    clattn_attention_desc desc = one_row_desc(5);
    cl_mem o[4], l[4];
    for (int p = 0; p < parts; p++) {
        o[p] = upload(ctx, outs[p], 5 * sizeof(float));
        l[p] = upload(ctx, &lses[p], sizeof(float));
    }
    cl_mem mo = upload(ctx, outs[0], 5 * sizeof(float)), ml = upload(ctx, lses, sizeof(float));
    assert_int_equal(clattn_merge_partials(ctx, parts, o, l, &desc, mo, ml), CLATTN_SUCCESS);
    download(ctx, mo, out, 5 * sizeof(float));
    download(ctx, ml, lse, sizeof(float));
    for (int p = 0; p < parts; p++) {
        clReleaseMemObject(o[p]);
        clReleaseMemObject(l[p]);
    }
    clReleaseMemObject(mo);
    clReleaseMemObject(ml);
}

static void merge_rows_cpu(int parts, float (*outs)[5], const float *lses, float *out, float *lse)
{
    clattn_attention_desc desc = one_row_desc(5);
    const void *o[4];
    const float *l[4];
    for (int p = 0; p < parts; p++) {
        o[p] = outs[p];
        l[p] = &lses[p];
    }
    assert_int_equal(clattn_merge_partials_host(parts, o, l, &desc, out, lse), CLATTN_SUCCESS);
}

static void test_edge_values(void **state)
{
    clattn_context *ctx = *state;
    for (int dev = 0; dev < 2; dev++) {
        float out[5], lse;
#define MERGE(parts, outs, lses)                                                                  \
    (dev ? merge_rows_device(ctx, parts, outs, lses, out, &lse)                                   \
         : merge_rows_cpu(parts, outs, lses, out, &lse))
        /* A -inf part contributes nothing, even with NaN in its out; the other part comes through
           unchanged (weight exactly 1, divided by exactly 1). */
        float garbage[2][5] = {{NAN, INFINITY, -1e30f, NAN, 7}, {1.5f, -2, 0.25f, 3, -4}};
        float lses1[2] = {-INFINITY, 0.75f};
        MERGE(2, garbage, lses1);
        for (int c = 0; c < 5; c++)
            assert_true(out[c] == garbage[1][c]);
        assert_true(lse == 0.75f);

        /* Every part -inf: out 0 and lse -inf, no NaN. */
        float lses2[2] = {-INFINITY, -INFINITY};
        MERGE(2, garbage, lses2);
        for (int c = 0; c < 5; c++)
            assert_true(out[c] == 0.0f && !signbit(out[c]));
        assert_true(isinf(lse) && lse < 0);

        /* A NaN lse makes the row NaN. */
        float two[2][5] = {{1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}};
        float lses3[2] = {NAN, 0};
        MERGE(2, two, lses3);
        for (int c = 0; c < 5; c++)
            assert_true(isnan(out[c]));
        assert_true(isnan(lse));

        /* Equal lses average; lse grows by log 2. Far apart (1e4) the smaller weighs nothing and no
           exp overflows. */
        float lses4[2] = {3, 3};
        MERGE(2, two, lses4);
        for (int c = 0; c < 5; c++)
            assert_true(fabsf(out[c] - 3.0f) < 1e-6f);
        assert_true(fabsf(lse - (3.0f + logf(2.0f))) < 1e-6f);
        float lses5[2] = {1e4f, -1e4f};
        MERGE(2, two, lses5);
        for (int c = 0; c < 5; c++)
            assert_true(out[c] == two[0][c]);
        assert_true(lse == 1e4f);

        /* One part: out unchanged, -inf row zeroed. */
        float lses6[1] = {-2};
        MERGE(1, two, lses6);
        for (int c = 0; c < 5; c++)
            assert_true(out[c] == two[0][c]);
        assert_true(lse == -2.0f);
#undef MERGE
    }
}

/* ---- tests: aliasing, tiling, the split-KV entry ------------------------------------------------ */

/* In-place: out = outs[0] and lse = lses[1] give the same bits as separate outputs. */
static void test_in_place(void **state)
{
    clattn_context *ctx = *state;
    split s = {.desc = make_desc(2, 3, 1, 6, 20, 16, 12, CLATTN_F16, CLATTN_LAYOUT_BSHD), .parts = 3,
               .cut = {0, 5, 11, 20}};
    split_run(ctx, &s, 1, 30);
    void *want = tu_alloc(s.sizes.out), *got = tu_alloc(s.sizes.out);
    float *want_lse = tu_alloc(s.sizes.lse), *got_lse = tu_alloc(s.sizes.lse);
    merge_on_device(ctx, &s, want, want_lse);
    cl_mem outs[3], lses[3];
    for (int p = 0; p < 3; p++) {
        outs[p] = upload(ctx, s.out[p], s.sizes.out);
        lses[p] = upload(ctx, s.lse[p], s.sizes.lse);
    }
    assert_int_equal(clattn_merge_partials(ctx, 3, outs, lses, &s.desc, outs[0], lses[1]), CLATTN_SUCCESS);
    download(ctx, outs[0], got, s.sizes.out);
    download(ctx, lses[1], got_lse, s.sizes.lse);
    assert_memory_equal(got, want, s.sizes.out);
    assert_memory_equal(got_lse, want_lse, s.sizes.lse);

    /* The CPU merge in place as well. */
    const void *o[3] = {s.out[0], s.out[1], s.out[2]};
    const float *l[3] = {s.lse[0], s.lse[1], s.lse[2]};
    void *cpu = tu_alloc(s.sizes.out);
    float *cpu_lse = tu_alloc(s.sizes.lse);
    assert_int_equal(clattn_merge_partials_host(3, o, l, &s.desc, cpu, cpu_lse), CLATTN_SUCCESS);
    assert_int_equal(clattn_merge_partials_host(3, o, l, &s.desc, s.out[2], s.lse[0]), CLATTN_SUCCESS);
    assert_memory_equal(s.out[2], cpu, s.sizes.out);
    assert_memory_equal(s.lse[0], cpu_lse, s.sizes.lse);

    /* lse may be NULL. */
    assert_int_equal(clattn_merge_partials(ctx, 2, outs + 1, lses + 1, &s.desc, outs[0], NULL),
                     CLATTN_SUCCESS);
    assert_int_equal(clFinish(clattn_context_queue(ctx)), CL_SUCCESS);
    for (int p = 0; p < 3; p++) {
        clReleaseMemObject(outs[p]);
        clReleaseMemObject(lses[p]);
    }
    free(want);
    free(got);
    free(want_lse);
    free(got_lse);
    free(cpu);
    free(cpu_lse);
    split_free(&s);
}

/* Tiny stage budgets force tiles of whole batch entries and of query rows within one entry (the
   BHSD one copies rectangles); every tiling gives the untiled bits. */
static void test_tiled_staging(void **state)
{
    clattn_context *ctx = *state;
    clattn_layout layouts[] = {CLATTN_LAYOUT_BHSD, CLATTN_LAYOUT_BSHD};
    for (int l = 0; l < 2; l++) {
        split s = {.desc = make_desc(3, 3, 3, 7, 12, 8, 10, CLATTN_F32, layouts[l]), .parts = 2,
                   .cut = {0, 6, 12}};
        split_run(ctx, &s, 0, 40 + (uint64_t)l);
        void *want = tu_alloc(s.sizes.out), *got = tu_alloc(s.sizes.out);
        float *want_lse = tu_alloc(s.sizes.lse), *got_lse = tu_alloc(s.sizes.lse);
        merge_on_device(ctx, &s, want, want_lse);
        clattn_problem p;
        assert_int_equal(clattn_problem_init(&s.desc, &p, NULL, 0), CLATTN_SUCCESS);
        cl_mem outs[2], lses[2];
        for (int q = 0; q < 2; q++) {
            outs[q] = upload(ctx, s.out[q], s.sizes.out);
            lses[q] = upload(ctx, s.lse[q], s.sizes.lse);
        }
        /* one query row of every head of both parts is 3*10*4*2 = 240 bytes */
        size_t budgets[] = {240, 3 * 240, 7 * 240, 15 * 240};
        for (int k = 0; k < 4; k++) {
            cl_mem o = upload(ctx, s.out_full, s.sizes.out), ls = upload(ctx, s.lse_full, s.sizes.lse);
            clattn_test_lock(ctx);
            clattn_status st = clattn_merge_enqueue_staged(ctx, &p, 2, outs, lses, o, ls, budgets[k]);
            clattn_test_unlock(ctx);
            if (st != CLATTN_SUCCESS)
                fail_msg("staged merge, budget %zu: %s", budgets[k], clattn_context_last_error(ctx));
            download(ctx, o, got, s.sizes.out);
            download(ctx, ls, got_lse, s.sizes.lse);
            assert_memory_equal(got, want, s.sizes.out);
            assert_memory_equal(got_lse, want_lse, s.sizes.lse);
            clReleaseMemObject(o);
            clReleaseMemObject(ls);
        }
        for (int q = 0; q < 2; q++) {
            clReleaseMemObject(outs[q]);
            clReleaseMemObject(lses[q]);
        }
        free(want);
        free(got);
        free(want_lse);
        free(got_lse);
        split_free(&s);
    }
}

/* On a caller's out-of-order queue the staging copies, the kernel and the next tile's copies must
   still run in order: the same bits as on the fixture's in-order queue, tiled and untiled. */
static void test_out_of_order_queue(void **state)
{
    clattn_context *ctx = *state;
    cl_int err;
    cl_command_queue q = clCreateCommandQueue(clattn_context_cl_context(ctx), clattn_context_device(ctx),
                                              CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (!q)
        skip();   /* the device has no out-of-order queues */
    clattn_context *ooo = NULL;
    assert_int_equal(clattn_context_create_from_queue(q, &ooo), CLATTN_SUCCESS);
    split s = {.desc = make_desc(2, 4, 2, 9, 30, 16, 24, CLATTN_F32, CLATTN_LAYOUT_BHSD), .parts = 3,
               .cut = {0, 7, 20, 30}};
    split_run(ctx, &s, 1, 60);
    void *want = tu_alloc(s.sizes.out), *got = tu_alloc(s.sizes.out);
    float *want_lse = tu_alloc(s.sizes.lse), *got_lse = tu_alloc(s.sizes.lse);
    merge_on_device(ctx, &s, want, want_lse);
    merge_on_device(ooo, &s, got, got_lse);
    assert_memory_equal(got, want, s.sizes.out);
    assert_memory_equal(got_lse, want_lse, s.sizes.lse);

    clattn_problem p;
    assert_int_equal(clattn_problem_init(&s.desc, &p, NULL, 0), CLATTN_SUCCESS);
    cl_mem outs[3], lses[3];
    for (int i = 0; i < 3; i++) {
        outs[i] = upload(ooo, s.out[i], s.sizes.out);
        lses[i] = upload(ooo, s.lse[i], s.sizes.lse);
    }
    /* In place into outs[0] and lses[0], one query row per tile (3 parts x 4 heads x 24 x 4 bytes). */
    clattn_test_lock(ooo);
    clattn_status st = clattn_merge_enqueue_staged(ooo, &p, 3, outs, lses, outs[0], lses[0], 3 * 4 * 24 * 4);
    clattn_test_unlock(ooo);
    expect_ok(ooo, st, "tiled merge on an out-of-order queue");
    download(ooo, outs[0], got, s.sizes.out);
    download(ooo, lses[0], got_lse, s.sizes.lse);
    assert_memory_equal(got, want, s.sizes.out);
    assert_memory_equal(got_lse, want_lse, s.sizes.lse);
    for (int i = 0; i < 3; i++) {
        clReleaseMemObject(outs[i]);
        clReleaseMemObject(lses[i]);
    }
    free(want);
    free(got);
    free(want_lse);
    free(got_lse);
    split_free(&s);
    clattn_context_release(ooo);
    clReleaseCommandQueue(q);
}

/* The split-KV entry: float partials [splits][rows][dv] into F16 BSHD out, against the CPU merge of
   the same partials laid out as the public call takes them. */
static void test_contiguous_partials(void **state)
{
    clattn_context *ctx = *state;
    const int B = 2, Hq = 3, Lq = 5, dv = 13, splits = 4;
    clattn_attention_desc desc = make_desc(B, Hq, 1, Lq, 64, dv, dv, CLATTN_F16, CLATTN_LAYOUT_BSHD);
    clattn_problem p;
    assert_int_equal(clattn_problem_init(&desc, &p, NULL, 0), CLATTN_SUCCESS);
    const size_t rows = (size_t)B * Hq * Lq;
    tu_rng st;
    tu_rng_seed(&st, 50);
    float *part_out = random_tensor(CLATTN_F32, splits * rows * dv, &st);
    float *part_lse = random_tensor(CLATTN_F32, splits * rows, &st);
    for (size_t r = 0; r < rows; r++) {
        part_lse[r] *= 30.0f;                      /* spread the weights */
        if (r % 4 == 1)
            part_lse[2 * rows + r] = -INFINITY;    /* an empty split */
        if (r % 5 == 3)
            for (int q = 0; q < splits; q++)
                part_lse[q * rows + r] = -INFINITY;
    }
    part_out[2 * rows * dv + 1 * dv] = NAN;        /* row 1 of split 2: -inf, never read */

    /* The same partials per split in the desc's layout and type, for the CPU merge. */
    void *outs_h[4];
    const float *lses_h[4];
    for (int q = 0; q < splits; q++) {
        uint16_t *t = tu_alloc(p.bytes.out);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Hq; h++)
                for (int i = 0; i < Lq; i++)
                    for (int c = 0; c < dv; c++)
                        t[b * p.o_bs + h * p.o_hs + i * p.o_rs + c] = clattn_float_to_half(
                            part_out[((q * rows) + ((size_t)b * Hq + h) * Lq + i) * dv + c]);
        outs_h[q] = t;
        lses_h[q] = part_lse + q * rows;
    }
    uint16_t *want = tu_alloc(p.bytes.out), *got = tu_alloc(p.bytes.out);
    float *want_lse = tu_alloc(p.bytes.lse), *got_lse = tu_alloc(p.bytes.lse);
    assert_int_equal(clattn_merge_partials_host(splits, (const void *const *)outs_h, lses_h, &desc, want,
                                                want_lse),
                     CLATTN_SUCCESS);

    cl_mem po = upload(ctx, part_out, splits * rows * dv * sizeof(float));
    /* the split path's form: each part's row max in base 2, then its sum (here 1: the parts are
       whole lses) */
    float *part_ml = tu_alloc(2 * splits * rows * sizeof(float));
    for (size_t r = 0; r < (size_t)splits * rows; r++) {
        part_ml[r] = part_lse[r] * (float)M_LOG2E;
        part_ml[(size_t)splits * rows + r] = 1.0f;
    }
    cl_mem pl = upload(ctx, part_ml, 2 * splits * rows * sizeof(float));
    cl_mem o = upload(ctx, want, p.bytes.out), l = upload(ctx, want_lse, p.bytes.lse);
    clattn_params merge_params;
    clattn_test_lock(ctx);
    clattn_status s = clattn_params_lookup(ctx, &clattn_family_merge, &p, &merge_params);
    if (s == CLATTN_SUCCESS)
        s = clattn_merge_enqueue_contiguous(ctx, &p, &merge_params, splits, po, pl, o, l);
    clattn_test_unlock(ctx);
    assert_int_equal(s, CLATTN_SUCCESS);
    download(ctx, o, got, p.bytes.out);
    download(ctx, l, got_lse, p.bytes.lse);
    /* The device rounds its float merge to half once; the CPU merged half-rounded partials. */
    expect_close(got, want, CLATTN_F16, p.bytes.out / 2, 2e-3, "contiguous merge vs CPU");
    expect_lse_close(got_lse, want_lse, rows, 2e-6, "contiguous lse vs CPU");
    for (size_t r = 0; r < rows; r++)
        if (r % 5 == 3)
            assert_true(isinf(got_lse[r]) && got_lse[r] < 0);

    clReleaseMemObject(po);
    clReleaseMemObject(pl);
    clReleaseMemObject(o);
    clReleaseMemObject(l);
    for (int q = 0; q < splits; q++)
        free(outs_h[q]);
    free(part_out);
    free(part_lse);
    free(part_ml);
    free(want);
    free(got);
    free(want_lse);
    free(got_lse);
}

/* ---- tests: refused calls -------------------------------------------------------------------- */

static void expect_refused(clattn_context *ctx, clattn_status st, const char *needle)
{
    assert_int_equal(st, CLATTN_INVALID_ARGUMENT);
    if (!strstr(clattn_context_last_error(ctx), needle))
        fail_msg("last error '%s' does not mention '%s'", clattn_context_last_error(ctx), needle);
}

static void test_bad_arguments(void **state)
{
    clattn_context *ctx = *state;
    clattn_attention_desc desc = make_desc(1, 2, 0, 3, 0, 4, 0, CLATTN_F32, CLATTN_LAYOUT_BHSD);
    const size_t out_bytes = 1 * 2 * 3 * 4 * sizeof(float), lse_bytes = 1 * 2 * 3 * sizeof(float);
    float sentinel[24], back[24];
    for (int i = 0; i < 24; i++)
        sentinel[i] = (float)i;
    cl_mem a = upload(ctx, sentinel, out_bytes), b = upload(ctx, sentinel, out_bytes);
    cl_mem la = upload(ctx, sentinel, lse_bytes), lb = upload(ctx, sentinel, lse_bytes);
    cl_mem small = upload(ctx, sentinel, out_bytes - 4);
    cl_mem out = upload(ctx, sentinel, out_bytes), lse = upload(ctx, sentinel, lse_bytes);
    cl_mem outs[2] = {a, b}, lses[2] = {la, lb};

    assert_int_equal(clattn_merge_partials(NULL, 2, outs, lses, &desc, out, lse), CLATTN_INVALID_ARGUMENT);
    expect_refused(ctx, clattn_merge_partials(ctx, 0, outs, lses, &desc, out, lse), "parts");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, NULL, lses, &desc, out, lse), "outs");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, NULL, &desc, out, lse), "lses");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, NULL, out, lse), "desc");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &desc, NULL, lse), "out");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &desc, out, out), "same buffer");
    cl_mem outs_null[2] = {a, NULL}, lses_small[2] = {la, small}, outs_small[2] = {small, b};
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs_null, lses, &desc, out, lse), "outs[1]");
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs_small, lses, &desc, out, lse), "outs[0]");
    /* lses[1] is big enough here (lse_bytes < out_bytes - 4); the small out is not */
    assert_int_equal(clattn_merge_partials(ctx, 2, outs, lses_small, &desc, out, lse), CLATTN_SUCCESS);
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &desc, small, lse), "out");

    clattn_attention_desc bad = desc;
    bad.heads_q = 0;
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &bad, out, lse), "heads_q");
    bad = desc;
    bad.head_dim_v = 600;
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &bad, out, lse), "head_dim_v");
    bad = desc;
    bad.dtype = (clattn_dtype)7;
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &bad, out, lse), "dtype");
    bad = desc;
    bad.layout = (clattn_layout)5;
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &bad, out, lse), "layout");
    bad = desc;
    bad.batch = -1;
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs, lses, &bad, out, lse), "batch");
    assert_int_equal(clFinish(clattn_context_queue(ctx)), CL_SUCCESS);

    /* Fields that do not shape out or lse are not read: nonsense there is accepted. */
    clattn_attention_desc loose = desc;
    loose.heads_kv = 7;
    loose.seq_kv = -5;
    loose.scale = NAN;
    loose.causal = (clattn_causal)9;
    loose.mask_type = CLATTN_MASK_BOOL_U8;
    loose.mask_row_stride = -1;
    assert_int_equal(clattn_merge_partials(ctx, 2, outs, lses, &loose, out, NULL), CLATTN_SUCCESS);
    loose.head_dim = 0;   /* head_dim_v set: head_dim is not needed */
    loose.head_dim_v = 4;
    assert_int_equal(clattn_merge_partials(ctx, 2, outs, lses, &loose, out, NULL), CLATTN_SUCCESS);

    /* Refused calls changed nothing: out still holds what the last successful call wrote, and a
       refused call after it does not touch it. */
    float before[24];
    download(ctx, out, before, out_bytes);
    expect_refused(ctx, clattn_merge_partials(ctx, 2, outs_small, lses, &desc, out, lse), "outs[0]");
    download(ctx, out, back, out_bytes);
    assert_memory_equal(back, before, out_bytes);

    /* An empty problem succeeds without buffers. */
    clattn_attention_desc empty = desc;
    empty.batch = 0;
    cl_mem none[2] = {NULL, NULL};
    assert_int_equal(clattn_merge_partials(ctx, 2, none, none, &empty, NULL, NULL), CLATTN_SUCCESS);
    empty = desc;
    empty.seq_q = 0;
    assert_int_equal(clattn_merge_partials(ctx, 2, none, none, &empty, NULL, NULL), CLATTN_SUCCESS);

    /* The CPU version. */
    float h_out[24], h_lse[6], h_a[24] = {0}, h_l[6] = {0};
    const void *ho[2] = {h_a, h_a}, *ho_null[2] = {h_a, NULL};
    const float *hl[2] = {h_l, h_l};
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, &desc, h_out, h_lse), CLATTN_SUCCESS);
    assert_int_equal(clattn_merge_partials_host(0, ho, hl, &desc, h_out, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, NULL, hl, &desc, h_out, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho, NULL, &desc, h_out, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho_null, hl, &desc, h_out, h_lse),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, NULL, h_out, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, &desc, NULL, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, &bad, h_out, h_lse), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, &desc, h_out, NULL), CLATTN_SUCCESS);

    cl_mem all[] = {a, b, la, lb, small, out, lse};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
}

/* ---- tests: memory shared through sub-buffers and images -------------------------------------- */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* The merge must refuse, name needle, and leave out and lse (when given) as they were. */
static void expect_refused_untouched(clattn_context *ctx, int parts, const cl_mem *outs, const cl_mem *lses,
                                     const clattn_attention_desc *desc, cl_mem out, cl_mem lse,
                                     const char *needle)
{
    cl_command_queue queue = clattn_context_queue(ctx);
    const unsigned char pattern = 0xa5;
    cl_mem written[2] = {out, lse};
    size_t bytes[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        if (!written[i])
            continue;
        assert_int_equal(clGetMemObjectInfo(written[i], CL_MEM_SIZE, sizeof bytes[i], &bytes[i], NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueFillBuffer(queue, written[i], &pattern, 1, 0, bytes[i], 0, NULL, NULL),
                         CL_SUCCESS);
    }
    assert_int_equal(clFinish(queue), CL_SUCCESS);
    expect_refused(ctx, clattn_merge_partials(ctx, parts, outs, lses, desc, out, lse), needle);
    for (int i = 0; i < 2; i++) {
        if (!written[i])
            continue;
        unsigned char *got = tu_alloc(bytes[i]);
        download(ctx, written[i], got, bytes[i]);
        for (size_t e = 0; e < bytes[i]; e++)
            if (got[e] != pattern)
                fail_msg("%s: byte %zu of %s changed by a refused call", needle, e, i ? "lse" : "out");
        free(got);
    }
}

/* Uploads the two parts into sub[0..1] (outs) and sub[2..3] (lses). */
static void write_parts(clattn_context *ctx, const cl_mem *sub, float *const *h_out, float *const *h_lse,
                        const clattn_tensor_sizes *sz)
{
    cl_command_queue queue = clattn_context_queue(ctx);
    for (int p = 0; p < 2; p++) {
        assert_int_equal(clEnqueueWriteBuffer(queue, sub[p], CL_TRUE, 0, sz->out, h_out[p], 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueWriteBuffer(queue, sub[2 + p], CL_TRUE, 0, sz->lse, h_lse[p], 0, NULL,
                                              NULL),
                         CL_SUCCESS);
    }
}

/* Two parts, out and lse as sub-buffers of one parent, each in a slot of its own with room to shift
   a sub-buffer by one alignment without reaching the next slot. Disjoint: accepted and right;
   exactly an input's memory (another handle on the same bytes): the in-place case, accepted;
   partly overlapping, or over an input of the other kind: refused. */
static void test_sub_buffers(void **state)
{
    clattn_context *ctx = *state;
    const size_t al = tu_sub_buffer_align(ctx);
    clattn_attention_desc desc = make_desc(2, 2, 0, 8, 0, 8, 0, CLATTN_F32, CLATTN_LAYOUT_BHSD);
    clattn_tensor_sizes sz;
    for (;;) {
        assert_int_equal(clattn_attention_sizes(&desc, &sz), CLATTN_SUCCESS);
        if (sz.lse >= 2 * al)
            break;
        desc.seq_q *= 2;
    }
    enum { OUTS0, OUTS1, LSES0, LSES1, OUT, LSE, SLOTS };
    const size_t slot = 2 * round_up(sz.out, al);
    const size_t bytes[SLOTS] = {sz.out, sz.out, sz.lse, sz.lse, sz.out, sz.lse};
    cl_int err;
    cl_mem parent = clCreateBuffer(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE, SLOTS * slot, NULL,
                                   &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem sub[SLOTS];
    for (int i = 0; i < SLOTS; i++)
        sub[i] = tu_sub_buffer(parent, (size_t)i * slot, bytes[i]);

    tu_rng rng;
    tu_rng_seed(&rng, 5150);
    float *h_out[2], *h_lse[2];
    for (int p = 0; p < 2; p++) {
        h_out[p] = random_tensor(CLATTN_F32, sz.out / 4, &rng);
        h_lse[p] = random_tensor(CLATTN_F32, sz.lse / 4, &rng);
    }
    write_parts(ctx, sub, h_out, h_lse, &sz);
    float *want = tu_alloc(sz.out), *want_lse = tu_alloc(sz.lse);
    const void *ho[2] = {h_out[0], h_out[1]};
    const float *hl[2] = {h_lse[0], h_lse[1]};
    assert_int_equal(clattn_merge_partials_host(2, ho, hl, &desc, want, want_lse), CLATTN_SUCCESS);

    /* disjoint sub-buffers of one parent */
    cl_mem outs[2] = {sub[OUTS0], sub[OUTS1]}, lses[2] = {sub[LSES0], sub[LSES1]};
    expect_ok(ctx, clattn_merge_partials(ctx, 2, outs, lses, &desc, sub[OUT], sub[LSE]),
              "disjoint sub-buffers");
    float *got = tu_alloc(sz.out), *got_lse = tu_alloc(sz.lse);
    download(ctx, sub[OUT], got, sz.out);
    download(ctx, sub[LSE], got_lse, sz.lse);
    expect_close(got, want, CLATTN_F32, sz.out / 4, 2e-6, "disjoint sub-buffers vs CPU merge");
    expect_lse_close(got_lse, want_lse, sz.lse / 4, 2e-6, "disjoint sub-buffers vs CPU lse");
    float *sep = tu_alloc(sz.out), *sep_lse = tu_alloc(sz.lse);
    memcpy(sep, got, sz.out);
    memcpy(sep_lse, got_lse, sz.lse);

    /* out partly over outs[0], lse partly over lses[1] */
    cl_mem shifted = tu_sub_buffer(parent, OUTS0 * slot + al, sz.out);
    expect_refused_untouched(ctx, 2, outs, lses, &desc, shifted, sub[LSE], "out partly overlaps outs[0]");
    clReleaseMemObject(shifted);
    shifted = tu_sub_buffer(parent, LSES1 * slot + al, sz.lse);
    expect_refused_untouched(ctx, 2, outs, lses, &desc, sub[OUT], shifted, "lse partly overlaps lses[1]");
    clReleaseMemObject(shifted);
    /* out the parent of outs[0] when outs[0] starts one alignment in */
    cl_mem outs_in[2] = {tu_sub_buffer(parent, al, sz.out), sub[OUTS1]};
    expect_refused_untouched(ctx, 2, outs_in, lses, &desc, parent, sub[LSE], "out partly overlaps outs[0]");
    clReleaseMemObject(outs_in[0]);
    /* out over an lse of the parts; lse over out */
    shifted = tu_sub_buffer(parent, LSES0 * slot, sz.out);
    expect_refused_untouched(ctx, 2, outs, lses, &desc, shifted, sub[LSE], "out overlaps lses[0]");
    clReleaseMemObject(shifted);
    shifted = tu_sub_buffer(parent, OUT * slot + al, sz.lse);
    expect_refused_untouched(ctx, 2, outs, lses, &desc, sub[OUT], shifted, "out overlaps lse");
    clReleaseMemObject(shifted);
    /* an image is no buffer */
    cl_mem image = tu_image_or_null(ctx, sz.out);
    if (image) {
        cl_mem outs_image[2] = {image, sub[OUTS1]};
        expect_refused_untouched(ctx, 2, outs_image, lses, &desc, sub[OUT], sub[LSE], "outs[0]");
        clReleaseMemObject(image);
    }

    /* in place through other handles on exactly the same bytes: the same bits as separate outputs
       (the sentinels above went over the parts too) */
    write_parts(ctx, sub, h_out, h_lse, &sz);
    cl_mem same_out = tu_sub_buffer(parent, OUTS0 * slot, sz.out);
    cl_mem same_lse = tu_sub_buffer(parent, LSES1 * slot, sz.lse);
    expect_ok(ctx, clattn_merge_partials(ctx, 2, outs, lses, &desc, same_out, same_lse),
              "in place through other handles");
    download(ctx, sub[OUTS0], got, sz.out);
    download(ctx, sub[LSES1], got_lse, sz.lse);
    assert_memory_equal(got, sep, sz.out);
    assert_memory_equal(got_lse, sep_lse, sz.lse);
    clReleaseMemObject(same_out);
    clReleaseMemObject(same_lse);

    for (int i = 0; i < SLOTS; i++)
        clReleaseMemObject(sub[i]);
    clReleaseMemObject(parent);
    for (int p = 0; p < 2; p++) {
        free(h_out[p]);
        free(h_lse[p]);
    }
    free(want);
    free(want_lse);
    free(got);
    free(got_lse);
    free(sep);
    free(sep_lse);
}

/* ---- fixture --------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_parts_f32_bhsd),
        cmocka_unit_test(test_two_parts_f16_bshd),
        cmocka_unit_test(test_three_parts_bf16_bshd),
        cmocka_unit_test(test_masked_part),
        cmocka_unit_test(test_empty_part_and_many_parts),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_tiled_staging),
        cmocka_unit_test(test_out_of_order_queue),
        cmocka_unit_test(test_contiguous_partials),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_sub_buffers),
    };
    return cmocka_run_group_tests_name("merge", tests, tu_group_setup, tu_group_teardown);
}
