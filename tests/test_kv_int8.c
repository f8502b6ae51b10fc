/* Int8 K/V storage (CLATTN_KV_INT8): the quantizer's definition on closed forms and its bound on
 * random data, the device quantizer against the host one, the reference's reading of int8 against
 * the reference on the dequantized values, and both paths (split-KV decode included) against the
 * reference over a grid of shapes, storage types of q, layouts, GQA, masks, causal modes and the
 * variants. Bad arguments of every entry point that takes int8 K/V get a clear error and leave the
 * caller's memory alone.
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

/* A desc of K/V rows for the quantizer: B·Hkv·Lk rows of head_dim (K) or head_dim_v (V). */
static clattn_attention_desc rows_desc(int rows, int dim, clattn_dtype dtype)
{
    clattn_attention_desc d = {0};
    d.batch = 1;
    d.heads_q = 1;
    d.seq_q = 1;
    d.seq_kv = rows;
    d.head_dim = dim;
    d.dtype = dtype;
    return d;
}

/* The rule of clattn.h on rows whose answer is known. */
static void test_quantizer_closed_forms(void **state)
{
    (void)state;
    enum { DIM = 4, ROWS = 5 };
    const float x[ROWS][DIM] = {
        {0.0f, 0.0f, -0.0f, 0.0f},        /* zeros: scale 0, zeros */
        {127.0f, -63.5f, 1.0f, 0.5f},     /* scale 1: ties to even (-63.5 -> -64, 0.5 -> 0) */
        {-2.54f, 1.27f, 0.0f, 2.0f},      /* the largest magnitude is negative: -127 */
        {1.0f, NAN, 2.0f, 3.0f},          /* NaN: NaN scale, zeros */
        {1.0f, -INFINITY, 2.0f, 3.0f},    /* inf: likewise */
    };
    signed char q[ROWS * DIM];
    float s[ROWS];
    clattn_attention_desc d = rows_desc(ROWS, DIM, CLATTN_F32);
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, x, q, s), CLATTN_SUCCESS);
    assert_true(s[0] == 0.0f);
    for (int c = 0; c < DIM; c++)
        assert_int_equal(q[c], 0);
    assert_true(s[1] == 127.0f * (1.0f / 127.0f));
    assert_int_equal(q[4], 127);
    assert_int_equal(q[5], -64);
    assert_int_equal(q[6], 1);
    assert_int_equal(q[7], 0);
    assert_int_equal(q[8], -127);
    assert_int_equal(q[9], (int)rintf(1.27f / (2.54f * (1.0f / 127.0f))));
    for (int r = 3; r < 5; r++) {
        assert_true(isnan(s[r]));
        for (int c = 0; c < DIM; c++)
            assert_int_equal(q[r * DIM + c], 0);
    }
}

/* Random rows in every storage type: |x - x8·scale| <= scale/2 (plus the float rounding of x/scale),
   |x8| <= 127, and each row's largest magnitude lands on ±127. */
static void test_quantizer_bound(void **state)
{
    (void)state;
    enum { ROWS = 200, DIM = 37 };
    tu_rng r;
    tu_rng_seed(&r, 8);
    for (int t = 0; t < 3; t++) {
        const clattn_dtype dtype = (clattn_dtype)t;
        void *x = tu_alloc((size_t)ROWS * DIM * 4);
        tu_fill_normal(x, dtype, (size_t)ROWS * DIM, 3.0f, &r);
        signed char *q = tu_alloc((size_t)ROWS * DIM);
        float *s = tu_alloc(ROWS * sizeof(float));
        clattn_attention_desc d = rows_desc(ROWS, DIM, dtype);
        assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, x, q, s), CLATTN_SUCCESS);
        for (int row = 0; row < ROWS; row++) {
            int top = 0;
            for (int c = 0; c < DIM; c++) {
                const size_t i = (size_t)row * DIM + (size_t)c;
                const double v = tu_get(x, dtype, i), back = (double)q[i] * s[row];
                assert_true(q[i] >= -127 && q[i] <= 127);
                if (fabs(v - back) > (0.5 + 1e-5) * s[row])
                    fail_msg("dtype %d row %d col %d: %.9g -> %d * %.9g", t, row, c, v, q[i], s[row]);
                top |= q[i] == 127 || q[i] == -127;
            }
            assert_true(top);
        }
        free(x);
        free(q);
        free(s);
    }
}

/* clattn_quantize_kv on the device against the host quantizer: the same scales bit for bit (both
   are max|x| · (1/127)), and values within one step (the device's division may round differently
   by an ulp, which can move a value off a tie); K and V dims, both layouts, every storage type, and
   a row holding NaN. */
static void test_quantizer_device(void **state)
{
    clattn_context *ctx = *state;
    cl_context cl = clattn_context_cl_context(ctx);
    cl_command_queue queue = clattn_context_queue(ctx);
    tu_rng r;
    tu_rng_seed(&r, 99);
    int moved = 0;
    size_t total = 0;
    for (int t = 0; t < 3; t++)
        for (int which = 0; which < 2; which++) {
            clattn_attention_desc d = {0};
            d.batch = 2;
            d.heads_q = 6;
            d.heads_kv = 3;
            d.seq_q = 1;
            d.seq_kv = 45;
            d.head_dim = 33;
            d.head_dim_v = 24;
            d.dtype = (clattn_dtype)t;
            d.layout = (clattn_layout)which;
            const int dim = which == CLATTN_KV_KEYS ? 33 : 24;
            const size_t rows = 2 * 3 * 45, n = rows * (size_t)dim, es = t == 0 ? 4 : 2;
            void *x = tu_alloc(n * es);
            tu_fill_normal(x, d.dtype, n, 2.0f, &r);
            tu_set(x, d.dtype, 7 * (size_t)dim + 3, NAN);
            signed char *qh = tu_alloc(n), *qd = tu_alloc(n);
            float *sh = tu_alloc(rows * 4), *sd = tu_alloc(rows * 4);
            assert_int_equal(clattn_quantize_kv_host(&d, (clattn_kv_tensor)which, x, qh, sh),
                             CLATTN_SUCCESS);
            cl_int err;
            cl_mem bx = clCreateBuffer(cl, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * es, x, &err);
            cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_WRITE, n, NULL, &err);
            cl_mem bs = clCreateBuffer(cl, CL_MEM_READ_WRITE, rows * 4, NULL, &err);
            assert_non_null(bs);
            if (clattn_quantize_kv(ctx, &d, (clattn_kv_tensor)which, bx, bq, bs) != CLATTN_SUCCESS)
                fail_msg("clattn_quantize_kv: %s", clattn_context_last_error(ctx));
            assert_int_equal(clEnqueueReadBuffer(queue, bq, CL_TRUE, 0, n, qd, 0, NULL, NULL), CL_SUCCESS);
            assert_int_equal(clEnqueueReadBuffer(queue, bs, CL_TRUE, 0, rows * 4, sd, 0, NULL, NULL),
                             CL_SUCCESS);
            for (size_t row = 0; row < rows; row++) {
                if (isnan(sh[row]) ? !isnan(sd[row]) : memcmp(&sh[row], &sd[row], 4) != 0)
                    fail_msg("dtype %d which %d row %zu: scale %.9g on the device, %.9g on the host",
                             t, which, row, (double)sd[row], (double)sh[row]);
                for (int c = 0; c < dim; c++) {
                    const size_t i = row * (size_t)dim + (size_t)c;
                    if (abs(qd[i] - qh[i]) > 1)
                        fail_msg("dtype %d which %d [%zu]: %d on the device, %d on the host", t, which,
                                 i, qd[i], qh[i]);
                    moved += qd[i] != qh[i];
                }
            }
            assert_true(isnan(sd[7]));
            total += n;
            clReleaseMemObject(bx);
            clReleaseMemObject(bq);
            clReleaseMemObject(bs);
            free(x);
            free(qh);
            free(qd);
            free(sh);
            free(sd);
        }
    printf("device quantizer: %d of %zu values one step from the host's\n", moved, total);
    /* a tie moved by an ulp is rare; a systematic difference is not */
    assert_true(moved * 1000 < (int)total);
}

/* The reference reads int8 K/V as x8 · scale: the same answer as on those values in float. */
static void test_reference_reads_int8(void **state)
{
    (void)state;
    clattn_attention_desc d = {0};
    d.batch = 2, d.heads_q = 4, d.heads_kv = 2, d.seq_q = 5, d.seq_kv = 19, d.head_dim = 8;
    d.head_dim_v = 6, d.layout = CLATTN_LAYOUT_BSHD, d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    tu_rng r;
    tu_rng_seed(&r, 5);
    const size_t nq = 2 * 4 * 5 * 8, nk = 2 * 2 * 19 * 8, nv = 2 * 2 * 19 * 6, no = 2 * 4 * 5 * 6;
    float *q = tu_alloc(nq * 4), *k = tu_alloc(nk * 4), *v = tu_alloc(nv * 4);
    tu_fill_normal(q, CLATTN_F32, nq, 1.0f, &r);
    tu_fill_normal(k, CLATTN_F32, nk, 1.0f, &r);
    tu_fill_normal(v, CLATTN_F32, nv, 1.0f, &r);
    signed char *k8 = tu_alloc(nk), *v8 = tu_alloc(nv);
    float ks[2 * 2 * 19], vs[2 * 2 * 19];
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, k, k8, ks), CLATTN_SUCCESS);
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_VALUES, v, v8, vs), CLATTN_SUCCESS);
    float *kf = tu_dequantize(&d, CLATTN_KV_KEYS, k8, ks), *vf = tu_dequantize(&d, CLATTN_KV_VALUES, v8, vs);
    float out_f[2 * 4 * 5 * 6], out_8[2 * 4 * 5 * 6], lse_f[40], lse_8[40];
    assert_int_equal(clattn_attention_reference(&d, q, kf, vf, NULL, out_f, NULL, lse_f), CLATTN_SUCCESS);
    clattn_attention_desc d8 = d;
    d8.kv_storage = CLATTN_KV_INT8;
    d8.k_scale_host = ks;
    d8.v_scale_host = vs;
    assert_int_equal(clattn_attention_reference(&d8, q, k8, v8, NULL, out_8, NULL, lse_8), CLATTN_SUCCESS);
    for (size_t i = 0; i < no; i++)
        assert_true(fabsf(out_f[i] - out_8[i]) <= 1e-6f * (1.0f + fabsf(out_f[i])));
    for (int i = 0; i < 40; i++)
        assert_true(fabsf(lse_f[i] - lse_8[i]) <= 1e-6f * (1.0f + fabsf(lse_f[i])));
    free(q), free(k), free(v), free(k8), free(v8), free(kf), free(vf);
}

static void run(clattn_context *ctx, tu_case *c, int *n)
{
    tu_outcome o;
    clattn_status st = tu_run_case(ctx, c, &o);
    if (st != CLATTN_SUCCESS || !o.ok)
        fail_msg("%s (%s)", o.msg, clattn_context_last_error(ctx));
    (*n)++;
}

static float slopes[64], sinks[64];

/* A random int8 case: prefill or decode, either path, any storage type of q, some variants. */
static void make_case(tu_case *c, tu_rng *r, int decode)
{
    memset(c, 0, sizeof *c);
    clattn_attention_desc *d = &c->desc;
    static const int groups[] = {1, 2, 4};
    d->batch = 1 + tu_rng_below(r, 2);
    d->heads_kv = 1 + tu_rng_below(r, 2);
    d->heads_q = d->heads_kv * groups[tu_rng_below(r, 3)];
    d->seq_q = decode ? 1 + tu_rng_below(r, 2) : 1 + tu_rng_below(r, 70);
    d->seq_kv = decode ? 300 + tu_rng_below(r, 2500) : tu_rng_below(r, 150);
    static const int dims[] = {16, 33, 64, 128};
    d->head_dim = dims[tu_rng_below(r, 4)];
    d->head_dim_v = tu_rng_below(r, 3) == 0 ? 24 : 0;
    static const clattn_dtype dtypes[] = {CLATTN_F32, CLATTN_F32, CLATTN_F16, CLATTN_BF16};
    d->dtype = dtypes[tu_rng_below(r, 4)];
    d->layout = (clattn_layout)tu_rng_below(r, 2);
    d->causal = (clattn_causal)tu_rng_below(r, 3);
    d->path = decode || tu_rng_below(r, 2) ? CLATTN_PATH_FUSED : CLATTN_PATH_UNFUSED;
    d->kv_storage = CLATTN_KV_INT8;
    if (tu_rng_below(r, 3) == 0) {
        d->mask_type = tu_rng_below(r, 2) ? CLATTN_MASK_ADDITIVE_F32 : CLATTN_MASK_BOOL_U8;
        c->mask_kind = (tu_mask_kind)tu_rng_below(r, TU_MASK_KIND_COUNT);
    }
    const int which = tu_rng_below(r, 4) == 0 ? tu_rng_below(r, 16) : 0;
    if (which & 1) {
        d->window = 1;
        d->window_left = tu_rng_below(r, d->seq_kv + 2);
        d->window_right = tu_rng_below(r, 2) ? -1 : 0;
    }
    if (which & 2)
        d->softcap = 20.0f;
    for (int h = 0; h < d->heads_q; h++) {
        slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)d->heads_q);
        sinks[h] = (float)tu_rng_normal(r);
    }
    if (which & 4)
        d->alibi_slopes = slopes;
    if (which & 8)
        d->sinks = sinks;
    c->want_lse = 1;
    c->want_probs = d->path == CLATTN_PATH_UNFUSED && tu_rng_below(r, 2);
    c->use_buffers = tu_rng_below(r, 2);
    c->seed = tu_rng_u64(r);
}

static void test_grid(void **state)
{
    clattn_context *ctx = *state;
    tu_rng r;
    tu_rng_seed(&r, 20261203);
    int n = 0;
    for (int i = 0; i < 40; i++) {
        tu_case c;
        make_case(&c, &r, 0);
        run(ctx, &c, &n);
    }
    printf("%d prefill cases\n", n);
}

static void test_decode(void **state)
{
    clattn_context *ctx = *state;
    tu_rng r;
    tu_rng_seed(&r, 31);
    int n = 0;
    for (int i = 0; i < 12; i++) {
        tu_case c;
        make_case(&c, &r, 1);
        run(ctx, &c, &n);
    }
    /* the unfused path's decode fold (a GQA group's query heads become the rows of one KV head),
       where the scales are indexed through the folded problem */
    tu_case f;
    memset(&f, 0, sizeof f);
    f.desc = (clattn_attention_desc){.batch = 2, .heads_q = 8, .heads_kv = 2, .seq_q = 1, .seq_kv = 77,
                                     .head_dim = 40, .layout = CLATTN_LAYOUT_BSHD,
                                     .path = CLATTN_PATH_UNFUSED, .kv_storage = CLATTN_KV_INT8};
    f.want_lse = f.want_probs = 1;
    f.use_buffers = 1;
    f.seed = 3;
    run(ctx, &f, &n);
    f.desc.layout = CLATTN_LAYOUT_BHSD;
    f.use_buffers = 0;
    run(ctx, &f, &n);
    /* the benchmark's decode shape class, small: GQA 4, d 128, F16 q */
    tu_case c;
    memset(&c, 0, sizeof c);
    c.desc = (clattn_attention_desc){.batch = 2, .heads_q = 8, .heads_kv = 2, .seq_q = 1, .seq_kv = 1500,
                                     .head_dim = 128, .dtype = CLATTN_F16,
                                     .path = CLATTN_PATH_FUSED, .kv_storage = CLATTN_KV_INT8};
    c.want_lse = 1;
    c.use_buffers = 1;
    c.seed = 4;
    run(ctx, &c, &n);
    printf("%d decode cases\n", n);
}

/* Bad int8 arguments on every entry point that takes them: a clear status and message, and the
   caller's outputs untouched. */
static void test_bad_arguments(void **state)
{
    clattn_context *ctx = *state;
    cl_context cl = clattn_context_cl_context(ctx);
    enum { N = 2 * 4 };   /* Lk 2 x d 4 */
    signed char k8[N] = {1, 2, 3, 4, 5, 6, 7, 8}, v8[N] = {1, 2, 3, 4, 5, 6, 7, 8};
    float q[4] = {1, 2, 3, 4}, out[4], lse[1];
    float good[2] = {0.5f, 0.25f}, nan_scale[2] = {0.5f, NAN}, inf_scale[2] = {INFINITY, 1.0f};
    clattn_attention_desc base = {.batch = 1, .heads_q = 1, .seq_q = 1, .seq_kv = 2, .head_dim = 4,
                                  .kv_storage = CLATTN_KV_INT8};
    cl_int err;
    cl_mem small = clCreateBuffer(cl, CL_MEM_READ_WRITE, 4, NULL, &err);
    const struct {
        const char *what, *says;
        const float *ks, *vs;
        cl_mem kb, vb;
        int kv_storage;
    } host_bad[] = {
        {"k_scale_host NULL", "k_scale_host is NULL", NULL, good, NULL, NULL, CLATTN_KV_INT8},
        {"v_scale_host NULL", "v_scale_host is NULL", good, NULL, NULL, NULL, CLATTN_KV_INT8},
        {"k scale NaN", "k_scale_host[1]", nan_scale, good, NULL, NULL, CLATTN_KV_INT8},
        {"v scale inf", "v_scale_host[0]", good, inf_scale, NULL, NULL, CLATTN_KV_INT8},
        {"device scales to the host call", "device buffers", good, good, small, NULL, CLATTN_KV_INT8},
        {"scales with SAME", "CLATTN_KV_SAME", good, good, NULL, NULL, CLATTN_KV_SAME},
        {"kv_storage 7", "kv_storage", good, good, NULL, NULL, 7},
    };
    for (size_t t = 0; t < sizeof host_bad / sizeof host_bad[0]; t++) {
        clattn_attention_desc d = base;
        d.k_scale_host = host_bad[t].ks;
        d.v_scale_host = host_bad[t].vs;
        d.k_scale = host_bad[t].kb;
        d.v_scale = host_bad[t].vb;
        d.kv_storage = (clattn_kv_storage)host_bad[t].kv_storage;
        for (int path = CLATTN_PATH_AUTO; path <= CLATTN_PATH_FUSED; path++) {
            d.path = (clattn_path)path;
            for (int i = 0; i < 4; i++)
                out[i] = 42.0f;
            lse[0] = 42.0f;
            clattn_status st = clattn_attention_host(ctx, &d, q, k8, v8, NULL, out, NULL, lse);
            if (st != CLATTN_INVALID_ARGUMENT || !strstr(clattn_context_last_error(ctx), host_bad[t].says))
                fail_msg("%s: status %d, '%s'", host_bad[t].what, (int)st, clattn_context_last_error(ctx));
            for (int i = 0; i < 4; i++)
                assert_true(out[i] == 42.0f);
            assert_true(lse[0] == 42.0f);
        }
        assert_int_equal(clattn_attention_reference(&d, q, k8, v8, NULL, out, NULL, lse),
                         CLATTN_INVALID_ARGUMENT);
        assert_true(out[0] == 42.0f);
    }

    /* the device call: scales missing, too small, host arrays instead, an output over a scale */
    cl_mem bq = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof q, q, &err);
    cl_mem bk = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, N, k8, &err);
    cl_mem bv = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, N, v8, &err);
    cl_mem bs = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof good, good, &err);
    cl_mem bo = clCreateBuffer(cl, CL_MEM_READ_WRITE, 64, NULL, &err);
    assert_non_null(bo);
    const float sentinel = 42.0f;
    const struct {
        const char *what, *says;
        cl_mem kb, vb, out;
        const float *ks_host;
    } dev_bad[] = {
        {"k_scale NULL", "desc->k_scale is NULL", NULL, bs, bo, NULL},
        {"v_scale NULL", "desc->v_scale is NULL", bs, NULL, bo, NULL},
        {"k_scale too small", "desc->k_scale", small, bs, bo, NULL},
        {"host scales to the device call", "k_scale_host", bs, bs, bo, good},
        {"out over v_scale", "out", bs, bo, bo, NULL},
    };
    for (size_t t = 0; t < sizeof dev_bad / sizeof dev_bad[0]; t++) {
        clattn_attention_desc d = base;
        d.k_scale = dev_bad[t].kb;
        d.v_scale = dev_bad[t].vb;
        d.k_scale_host = dev_bad[t].ks_host;
        assert_int_equal(clEnqueueFillBuffer(clattn_context_queue(ctx), bo, &sentinel, 4, 0, 64, 0,
                                             NULL, NULL), CL_SUCCESS);
        clattn_status st = clattn_attention(ctx, &d, bq, bk, bv, NULL, dev_bad[t].out, NULL, NULL);
        if (st != CLATTN_INVALID_ARGUMENT || !strstr(clattn_context_last_error(ctx), dev_bad[t].says))
            fail_msg("%s: status %d, '%s'", dev_bad[t].what, (int)st, clattn_context_last_error(ctx));
        float back[16];
        assert_int_equal(clEnqueueReadBuffer(clattn_context_queue(ctx), bo, CL_TRUE, 0, 64, back, 0,
                                             NULL, NULL), CL_SUCCESS);
        for (int i = 0; i < 16; i++)
            assert_true(back[i] == 42.0f);
    }

    /* the quantizers */
    float src[N] = {0};
    signed char dst[N];
    float sc[2];
    clattn_attention_desc d = base;
    d.kv_storage = CLATTN_KV_SAME;
    cl_mem bsrc = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof src, src, &err);
    assert_non_null(bsrc);
    assert_int_equal(clattn_quantize_kv(NULL, &d, CLATTN_KV_KEYS, bsrc, bk, bs), CLATTN_INVALID_ARGUMENT);
    const struct {
        const char *what, *says;
        const clattn_attention_desc *desc;
        int which;
        cl_mem src, dst, scale;
    } qbad[] = {
        {"desc NULL", "desc is NULL", NULL, CLATTN_KV_KEYS, bsrc, bk, bs},
        {"which 2", "which = 2", &d, 2, bsrc, bk, bs},
        {"src NULL", "src is NULL", &d, CLATTN_KV_KEYS, NULL, bk, bs},
        {"dst too small", "dst", &d, CLATTN_KV_KEYS, bsrc, small, bs},
        {"scale NULL", "scale is NULL", &d, CLATTN_KV_KEYS, bsrc, bk, NULL},
        {"dst is scale", "scale", &d, CLATTN_KV_KEYS, bsrc, bo, bo},
    };
    for (size_t t = 0; t < sizeof qbad / sizeof qbad[0]; t++) {
        clattn_status st = clattn_quantize_kv(ctx, qbad[t].desc, (clattn_kv_tensor)qbad[t].which,
                                              qbad[t].src, qbad[t].dst, qbad[t].scale);
        if (st != CLATTN_INVALID_ARGUMENT || !strstr(clattn_context_last_error(ctx), qbad[t].says))
            fail_msg("%s: status %d, '%s'", qbad[t].what, (int)st, clattn_context_last_error(ctx));
    }
    assert_int_equal(clattn_quantize_kv_host(NULL, CLATTN_KV_KEYS, src, dst, sc), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_quantize_kv_host(&d, (clattn_kv_tensor)5, src, dst, sc), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, NULL, dst, sc), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_VALUES, src, NULL, sc), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_quantize_kv_host(&d, CLATTN_KV_KEYS, src, dst, NULL), CLATTN_INVALID_ARGUMENT);
    cl_mem all[] = {small, bq, bk, bv, bs, bo, bsrc};
    for (int i = 0; i < 7; i++)
        clReleaseMemObject(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantizer_closed_forms),
        cmocka_unit_test(test_quantizer_bound),
        cmocka_unit_test(test_reference_reads_int8),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_quantizer_device),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
