/* The multi-head attention layer on the device (clattn_mha_forward, clattn_mha_forward_host),
 * through each projection backend (clattn_mha_desc.projections):
 *   - AUTO (what users get): every PyTorch fixture (tests/data/mha_*) reproduced, through host
 *     memory and device buffers; grouped-query heads, causal modes and masks against the
 *     double-precision reference (clattn_mha_reference); both attention paths;
 *   - OWN (cl/proj_gemm.cl) and CLBLAST forced, and AUTO again: the fixtures whose projections
 *     differ (self: packed with biases; cross: separate, kdim != vdim != E; masked: no biases),
 *     and a grid against the reference (grid[] below): E not a multiple of any tile (36/4 heads,
 *     50/5, 12/3, 100/5), kdim != vdim != E, GQA and MQA, cross-attention with Lk != Lq, B*L odd
 *     (B 3, L 7), single-token decode (Lq 1), packed and separate weights, with and without each
 *     bias, some through device buffers too;
 *   - per backend: empty shapes (Lk 0: out is the bias; B 0), scratch reuse, a caller's
 *     out-of-order queue, and F16 storage (F16 below).
 * CLBLAST runs where the build has CLBlast; without it, CLBLAST answers CLATTN_UNSUPPORTED naming
 * CLBlast (F32 and F16, nothing written) and every other case runs as above: the own kernel
 * needs nothing but OpenCL 1.2. Bad input is test_mha_bad_input.c's.
 *
 * Tolerance, F32: mha_fixture.h (out 1e-5 * max(1, max |ref|), weights 1e-5).
 * F16 storage runs OWN and AUTO on every device (the own kernel reads and writes half through
 * vload_half/vstore_half, no cl_khr_fp16 needed); CLBLAST (HGEMM) runs where the device has
 * cl_khr_fp16 and must answer CLATTN_UNSUPPORTED naming cl_khr_fp16 elsewhere, writing nothing.
 * Held to out within 2e-2 * max(1, max |ref|) and weights within 5e-3, as before the own kernel:
 * the reference sees the same float32 tensors, the device rounds inputs, weights, biases, Q, K,
 * V, the heads' output and out to half, each a relative error of at most 2^-11 (4.9e-4) on O(1)
 * values (fx_layer scales weights by 1/sqrt(width)); the sums are short (inner width at most 36
 * here), accumulated in float by the own kernel (vload_half) and in half by CLBlast's HGEMM. A
 * chain of about ten such roundings stays near 5e-3 of max |ref|, and a score off by d moves a
 * probability by at most d/2. Measured on PoCL (own): out 1.3e-3 at max |ref| 1.7-2.5, weights
 * 4.4e-4, both over 10x inside.
 * The max errors are printed for every case.
 */
#include "mha_fixture.h"
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

#define F16_OUT_REL 2e-2
#define F16_WEIGHTS_ABS 5e-3
#define SENTINEL 42.0f

static const char *data_dir;

/* The projection backends the reference comparisons run through: AUTO (what users get) and each
   one forced; CLBLAST only where the build has CLBlast (test_clblast_absent otherwise). */
static const clattn_projection_impl backends[] = {
    CLATTN_PROJ_AUTO,
    CLATTN_PROJ_OWN,
#ifdef CLATTN_HAVE_CLBLAST
    CLATTN_PROJ_CLBLAST,
#endif
};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

/* "<backend>: what", the label a case prints under */
static const char *label_of(char *buf, size_t len, clattn_projection_impl impl, const char *what)
{
    snprintf(buf, len, "%s: %s", fx_proj_name(impl), what);
    return buf;
}

/* ---- PyTorch's fixtures ----------------------------------------------------------------------- */

/* Runs the fixture's layer with desc (mask as given) both ways and holds output and per-head
   weights to PyTorch's. */
static void check_fixture(clattn_context *ctx, const char *label, const fixture *fx,
                          const clattn_mha_desc *desc, const void *mask, size_t mask_bytes)
{
    clattn_mha_shape s;
    clattn_mha_weights w;
    char err[256] = "";
    assert_int_equal(clattn_mha_shape_init(desc, &s, err, sizeof err), CLATTN_SUCCESS);
    fx_weights(fx, &s, &w);
    const float *xq = fx_get(fx, "query", s.x_q);
    const float *xk = fx_get(fx, "key", s.x_k), *xv = fx_get(fx, "value", s.x_v);
    const float *want_out = fx_get(fx, "attn_output", s.out);
    const float *want_w = fx_get(fx, "attn_weights_per_head", s.weights);
    assert_true(xq && want_out && want_w);
    float *out = tu_alloc(s.out * sizeof *out), *wts = tu_alloc(s.weights * sizeof *wts);

    for (int via_buffers = 0; via_buffers < 2; via_buffers++) {
        clattn_status st = via_buffers
            ? fx_forward_buffers(ctx, desc, &s, &w, xq, xk, xv, mask, mask_bytes, out, wts)
            : clattn_mha_forward_host(ctx, desc, &w, xq, xk, xv, mask, out, wts);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
        fx_err eo = fx_compare(out, want_out, s.out), ew = fx_compare(wts, want_w, s.weights);
        printf("  %-36s %-7s out max|err| %.2e (max|ref| %.2f, tol %.1e)  weights max|err| %.2e\n",
               label, via_buffers ? "buffers" : "host", eo.err, eo.ref, FX_OUT_REL * fmax(1.0, eo.ref),
               ew.err);
        assert_false(eo.nan || ew.nan);
        assert_true(eo.err <= FX_OUT_REL * fmax(1.0, eo.ref));
        assert_true(ew.err <= FX_WEIGHTS_ABS);
    }
    free(out);
    free(wts);
}

/* Packed weights with biases: through every backend. */
static void test_fixture_self(void **state)
{
    fixture *fx = fx_load(data_dir, "self");
    clattn_mha_desc d;
    char label[96];
    fx_desc(fx, &d);
    for (size_t i = 0; i < N_BACKENDS; i++) {
        d.projections = backends[i];
        check_fixture(*state, label_of(label, sizeof label, backends[i], "self"), fx, &d, NULL, 0);
    }
    fx_free(fx);
}

/* PyTorch's is_causal three ways: top-left, bottom-right (Lq == Lk) and its own -inf mask. */
static void test_fixture_causal(void **state)
{
    fixture *fx = fx_load(data_dir, "causal");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    d.causal = CLATTN_CAUSAL_TOP_LEFT;
    check_fixture(*state, "causal (top-left)", fx, &d, NULL, 0);
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    check_fixture(*state, "causal (bottom-right)", fx, &d, NULL, 0);
    d.causal = CLATTN_CAUSAL_NONE;
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;   /* [Lq, Lk], broadcast over batch and heads */
    const size_t n = (size_t)d.seq_q * (size_t)d.seq_kv;
    check_fixture(*state, "causal (-inf mask)", fx, &d, fx_get(fx, "attn_mask", n), n * 4);
    fx_free(fx);
}

/* Separate weights, kdim != vdim != E: through every backend. */
static void test_fixture_cross(void **state)
{
    fixture *fx = fx_load(data_dir, "cross");
    clattn_mha_desc d;
    char label[96];
    fx_desc(fx, &d);
    for (size_t i = 0; i < N_BACKENDS; i++) {
        d.projections = backends[i];
        check_fixture(*state, label_of(label, sizeof label, backends[i], "cross (kdim, vdim)"), fx, &d,
                      NULL, 0);
    }
    fx_free(fx);
}

/* PyTorch's bool attn_mask (true: hidden) and key_padding_mask folded into one clattn bool mask
   [B,Lq,Lk] (nonzero: attend); a layer without biases, through every backend. */
static void test_fixture_masked(void **state)
{
    fixture *fx = fx_load(data_dir, "masked");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    const int B = d.batch, Lq = d.seq_q, Lk = d.seq_kv;
    const float *am = fx_get(fx, "attn_mask", (size_t)Lq * (size_t)Lk);
    const float *kpm = fx_get(fx, "key_padding_mask", (size_t)B * (size_t)Lk);
    assert_true(am && kpm);
    unsigned char *m = tu_alloc((size_t)B * (size_t)Lq * (size_t)Lk);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Lq; i++)
            for (int j = 0; j < Lk; j++)
                m[((size_t)b * (size_t)Lq + (size_t)i) * (size_t)Lk + (size_t)j] =
                    am[i * Lk + j] == 0.0f && kpm[b * Lk + j] == 0.0f;
    d.mask_type = CLATTN_MASK_BOOL_U8;
    d.mask_batch_stride = (long)Lq * Lk;
    char label[96];
    for (size_t i = 0; i < N_BACKENDS; i++) {
        d.projections = backends[i];
        check_fixture(*state, label_of(label, sizeof label, backends[i], "bool + key padding, no bias"),
                      fx, &d, m, (size_t)B * (size_t)Lq * (size_t)Lk);
    }
    free(m);
    fx_free(fx);
}

/* A per-head additive mask [B*H, Lq, Lk] as PyTorch takes it. */
static void test_fixture_additive(void **state)
{
    fixture *fx = fx_load(data_dir, "additive");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    const long LqLk = (long)d.seq_q * d.seq_kv;
    const size_t n = (size_t)d.batch * (size_t)d.heads_q * (size_t)LqLk;
    d.mask_type = CLATTN_MASK_ADDITIVE_F32;
    d.mask_batch_stride = d.heads_q * LqLk;
    d.mask_head_stride = LqLk;
    check_fixture(*state, "additive per head", fx, &d, fx_get(fx, "attn_mask", n), n * 4);
    fx_free(fx);
}

/* Grouped-query heads, cross-attention with kdim != vdim != E, bottom-right causal (Lq < Lk: a KV
   cache) and a padding mask, sizes that divide nothing. */
static void test_gqa_cross_causal_mask(void **state)
{
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = 7, d.seq_kv = 13, d.embed_dim = 48, d.kdim = 20, d.vdim = 11;
    d.heads_q = 6, d.heads_kv = 2, d.in_bias = d.out_bias = 1;
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    fx_layer_make(&L, &d, 0, 11);
    fx_layer_padding_mask(&L, 4);
    fx_check_layer(*state, "GQA 6/2 cross, causal BR, bool mask", &L, 0);
    fx_check_layer(*state, "  same through buffers", &L, 1);
    fx_layer_free(&L);

    /* the same with a key-padding mask as PyTorch takes it, [B,Lk], rows broadcast, no causal;
       the attention weights too (unfused path) */
    d.causal = CLATTN_CAUSAL_NONE;
    fx_layer_make(&L, &d, 0, 12);
    fx_layer_key_padding(&L, 5);
    fx_check_layer(*state, "GQA 6/2 cross, [B,Lk] key padding", &L, 0);
    fx_check_layer(*state, "  same through buffers", &L, 1);
    fx_layer_free(&L);

    /* self-attention, packed GQA weights, top-left causal, an additive mask per head, no biases,
       an explicit scale, multi-query (one KV head) */
    d = (clattn_mha_desc){0};
    d.batch = 3, d.seq_q = d.seq_kv = 19, d.embed_dim = 40, d.heads_q = 5, d.heads_kv = 1;
    d.causal = CLATTN_CAUSAL_TOP_LEFT, d.scale = 0.3f;
    fx_layer_make(&L, &d, 1, 12);
    const size_t n = (size_t)d.heads_q * 19 * 19;
    float *m = tu_alloc(n * 4);
    tu_rng r;
    tu_rng_seed(&r, 99);
    tu_fill_normal(m, CLATTN_F32, n, 1.0f, &r);
    L.d.mask_type = CLATTN_MASK_ADDITIVE_F32;
    L.d.mask_head_stride = 19 * 19;   /* batch stride 0: shared over the batch */
    L.mask = m;
    L.mask_bytes = n * 4;
    fx_check_layer(*state, "MQA 5/1 self, causal TL, additive/head", &L, 0);
    fx_layer_free(&L);
}

/* The attention variants inside the layer (sliding window, soft-capping, ALiBi, sinks), against
   the layer's reference, which runs the attention reference with the same variants. */
static void test_variants(void **state)
{
    clattn_mha_desc d = {0};
    fx_layer L;
    float slopes[6], sinks[6];
    for (int h = 0; h < 6; h++) {
        slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / 6.0f);
        sinks[h] = h == 4 ? -INFINITY : 0.5f * (float)(h % 3);
    }
    d.batch = 2, d.seq_q = 9, d.seq_kv = 17, d.embed_dim = 48, d.kdim = 20, d.vdim = 11;
    d.heads_q = 6, d.heads_kv = 2, d.in_bias = d.out_bias = 1;
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    d.window = 1, d.window_left = 5, d.window_right = 0;
    d.softcap = 3.0f, d.alibi_slopes = slopes, d.sinks = sinks;
    fx_layer_make(&L, &d, 0, 21);
    fx_check_layer(*state, "GQA 6/2 cross, window 5 + softcap + ALiBi + sinks", &L, 0);
    fx_check_layer(*state, "  same through buffers", &L, 1);
    L.d.path = CLATTN_PATH_FUSED;
    float *out = tu_alloc(L.s.out * 4), *ref = tu_alloc(L.s.out * 4);
    clattn_status st = clattn_mha_forward_host(*state, &L.d, &L.w, L.xq, L.xk, L.xv, NULL, out, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("fused path: %s (%s)", clattn_status_string(st), clattn_context_last_error(*state));
    assert_int_equal(clattn_mha_reference(&L.d, &L.w, L.xq, L.xk, L.xv, NULL, ref, NULL, NULL, 0),
                     CLATTN_SUCCESS);
    fx_err e = fx_compare(out, ref, L.s.out);
    printf("  %-40s out max|err| %.2e (max|ref| %.2f)\n", "  fused", e.err, e.ref);
    assert_false(e.nan);
    assert_true(e.err <= FX_OUT_REL * fmax(1.0, e.ref));
    free(out), free(ref);
    fx_layer_free(&L);
}

/* ---- the projection backends on odd shapes ----------------------------------------------------- */

/* Shapes whose projection GEMMs straddle every tile edge: rows B*L, columns E, Hkv*dh, inner E,
   kdim, vdim; none a multiple of the own kernel's blocks (CPU: 24 x 16 per group, VK 16; GPU: 64 x
   64, TILE_K 16) nor of CLBlast's. */
typedef struct grid_case {
    const char *label;
    int batch, seq_q, seq_kv, embed_dim, kdim, vdim, heads_q, heads_kv;
    int packed, in_bias, out_bias;
    clattn_causal causal;
    int via_buffers;   /* 1: through device buffers as well as host memory */
} grid_case;

#define TL CLATTN_CAUSAL_TOP_LEFT
#define BR CLATTN_CAUSAL_BOTTOM_RIGHT
static const grid_case grid[] = {
    /* label                                      B  Lq  Lk    E  kd  vd  Hq Hkv pk ib ob causal buf */
    {"E 36/4h self, packed, biases",              2,  5,  5,  36,  0,  0,  4, 0,  1, 1, 1, 0,  0},
    {"E 36 GQA 4/2, B 3 L 7, separate, no bias",  3,  7,  7,  36,  0,  0,  4, 2,  0, 0, 0, TL, 1},
    {"E 50/5h MQA cross kd 23 vd 17, in bias",    2,  4,  9,  50, 23, 17,  5, 1,  0, 1, 0, 0,  1},
    {"E 12/3h self B 3 L 7, packed, out bias",    3,  7,  7,  12,  0,  0,  3, 0,  1, 0, 1, 0,  0},
    {"decode Lq 1 Lk 13, E 48 GQA 6/2, kd 20 vd 11", 3, 1, 13, 48, 20, 11, 6, 2, 0, 1, 1, BR, 0},
    {"E 40 GQA 8/2 (dh 5) self L 17, packed",     1, 17, 17,  40,  0,  0,  8, 2,  1, 1, 1, 0,  1},
    {"E 100/5h cross kd 70 vd 45, L 29/31",       3, 29, 31, 100, 70, 45,  5, 5,  0, 1, 1, 0,  0},
};
#undef TL
#undef BR

static void run_grid(clattn_context *ctx, clattn_projection_impl impl)
{
    char label[96];
    for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) {
        const grid_case *g = &grid[i];
        clattn_mha_desc d = {0};
        fx_layer L;
        d.batch = g->batch, d.seq_q = g->seq_q, d.seq_kv = g->seq_kv, d.embed_dim = g->embed_dim;
        d.kdim = g->kdim, d.vdim = g->vdim, d.heads_q = g->heads_q, d.heads_kv = g->heads_kv;
        d.in_bias = g->in_bias, d.out_bias = g->out_bias, d.causal = g->causal;
        d.projections = impl;
        fx_layer_make(&L, &d, g->packed, 100 + i);
        fx_check_layer(ctx, label_of(label, sizeof label, impl, g->label), &L, 0);
        if (g->via_buffers)
            fx_check_layer(ctx, label_of(label, sizeof label, impl, "  same through buffers"), &L, 1);
        fx_layer_free(&L);
    }
}

static void test_grid_auto(void **state)
{
    run_grid(*state, CLATTN_PROJ_AUTO);
}

static void test_grid_own(void **state)
{
    run_grid(*state, CLATTN_PROJ_OWN);
}

#ifdef CLATTN_HAVE_CLBLAST
static void test_grid_clblast(void **state)
{
    run_grid(*state, CLATTN_PROJ_CLBLAST);
}
#endif

/* A head width that is not a power of two and a longer sequence, through both attention paths.
   The fused path may refuse only a head width whose smallest tile overflows the device's local
   memory (tests/test_attention.c, may_refuse); at dh 24 that needs under 2 KiB, so it must serve. */
static void test_paths(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = d.seq_kv = 70, d.embed_dim = 72, d.heads_q = 3;   /* dh = 24 */
    d.in_bias = d.out_bias = 1, d.path = CLATTN_PATH_UNFUSED;
    fx_layer_make(&L, &d, 1, 13);
    fx_check_layer(ctx, "unfused, dh 24, L 70", &L, 0);

    /* fused: no weights (it never stores them) */
    L.d.path = CLATTN_PATH_FUSED;
    float *out = tu_alloc(L.s.out * 4), *ref = tu_alloc(L.s.out * 4);
    clattn_status st = clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("fused path: %s (%s)", clattn_status_string(st), clattn_context_last_error(ctx));
    assert_int_equal(clattn_mha_reference(&L.d, &L.w, L.xq, NULL, NULL, NULL, ref, NULL, NULL, 0),
                     CLATTN_SUCCESS);
    fx_err e = fx_compare(out, ref, L.s.out);
    printf("  %-40s out max|err| %.2e (max|ref| %.2f)\n", "fused, dh 24, L 70", e.err, e.ref);
    assert_false(e.nan);
    assert_true(e.err <= FX_OUT_REL * fmax(1.0, e.ref));
    free(out), free(ref);
    fx_layer_free(&L);
}

/* No key tokens: every head gives 0, so out is the output bias; no batch: nothing is written.
   Through every backend (a projection with no rows, then an out-projection of zeros). */
static void test_empty(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = 3, d.seq_kv = 0, d.embed_dim = 8, d.kdim = 5, d.heads_q = 2;
    d.in_bias = d.out_bias = 1;
    fx_layer_make(&L, &d, 0, 14);
    float *out = tu_alloc(L.s.out * 4);
    for (size_t k = 0; k < N_BACKENDS; k++) {
        L.d.projections = backends[k];
        L.d.batch = 2;
        tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
        clattn_status st = clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, L.xk, L.xv, NULL, out, NULL);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: Lk = 0: %s: %s", fx_proj_name(backends[k]), clattn_status_string(st),
                     clattn_context_last_error(ctx));
        for (size_t i = 0; i < L.s.out; i++)
            assert_float_equal(out[i], L.bo[i % 8], 1e-7);
        L.d.batch = 0;
        tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
        assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, NULL, L.xk, L.xv, NULL, out, NULL),
                         CLATTN_SUCCESS);   /* the tensors are empty: x_q may be NULL */
        assert_true(out[0] == SENTINEL);
        printf("  %s: Lk 0 gives the output bias, B 0 writes nothing\n", fx_proj_name(backends[k]));
    }
    free(out);
    fx_layer_free(&L);
}

/* The workspace belongs to the context: a second call of the same shape allocates nothing, through
   whichever backend. */
static void test_scratch_reuse(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = d.seq_kv = 33, d.embed_dim = 64, d.heads_q = 4, d.in_bias = 1;
    fx_layer_make(&L, &d, 1, 15);
    float *out = tu_alloc(L.s.out * 4);
    for (size_t k = 0; k < N_BACKENDS; k++) {
        L.d.projections = backends[k];
        assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL),
                         CLATTN_SUCCESS);
        size_t first = clattn_context_scratch_bytes(ctx);
        assert_true(first >= 4 * L.s.out * 4);   /* Q, K, V and the heads' output */
        assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL),
                         CLATTN_SUCCESS);
        assert_int_equal(clattn_context_scratch_bytes(ctx), first);
    }
    free(out);
    fx_layer_free(&L);
}

/* A caller's out-of-order queue: the layer orders its own steps, each backend's GEMMs included,
   with barriers. */
static void test_out_of_order_queue(void **state)
{
    clattn_context *base = *state, *ctx = NULL;
    cl_int e;
    cl_command_queue q = clCreateCommandQueue(clattn_context_cl_context(base), clattn_context_device(base),
                                              CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &e);
    if (!q) {
        printf("  out-of-order queues: not offered here (%d)\n", (int)e);
        return;
    }
    assert_int_equal(clattn_context_create_from_queue(q, &ctx), CLATTN_SUCCESS);
    clattn_mha_desc d = {0};
    fx_layer L;
    char label[96];
    d.batch = 2, d.seq_q = 37, d.seq_kv = 41, d.embed_dim = 48, d.kdim = 24, d.heads_q = 4;
    d.heads_kv = 2, d.in_bias = d.out_bias = 1, d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    fx_layer_make(&L, &d, 0, 18);
    for (size_t k = 0; k < N_BACKENDS; k++) {
        L.d.projections = backends[k];
        label_of(label, sizeof label, backends[k], "out-of-order queue");
        for (int i = 0; i < 2; i++)   /* the second call reuses the scratch the first one used */
            fx_check_layer(ctx, label, &L, i);
    }
    fx_layer_free(&L);
    clattn_context_release(ctx);
    clReleaseCommandQueue(q);
}

/* ---- F16 storage ---------------------------------------------------------------------------------- */

/* Whether impl serves F16 storage on ctx's device: the own kernel everywhere, CLBlast's HGEMM
   only with cl_khr_fp16, AUTO by picking one that does. */
static int f16_served(clattn_context *ctx, clattn_projection_impl impl)
{
    return impl != CLATTN_PROJ_CLBLAST || clattn_test_device(ctx)->has_fp16;
}

/* One F16 layer through impl on the host API: within the F16 tolerance of the reference where
   served, else CLATTN_UNSUPPORTED naming cl_khr_fp16 with out untouched. */
static void check_f16(clattn_context *ctx, const char *what, fx_layer *L, clattn_projection_impl impl)
{
    char label[96];
    label_of(label, sizeof label, impl, what);
    L->d.projections = impl;
    const float *xk = L->d.kdim || L->s.Lk != L->s.Lq ? L->xk : NULL;   /* NULL: self-attention */
    const float *xv = xk ? L->xv : NULL;
    float *out = tu_alloc(L->s.out * 4), *wts = tu_alloc(L->s.weights * 4);
    float *ref = tu_alloc(L->s.out * 4), *ref_w = tu_alloc(L->s.weights * 4);
    tu_fill_value(out, CLATTN_F32, L->s.out, SENTINEL);
    clattn_status st = clattn_mha_forward_host(ctx, &L->d, &L->w, L->xq, xk, xv, NULL, out, wts);
    if (!f16_served(ctx, impl)) {
        printf("  %-46s unsupported, as it must be: %s\n", label, clattn_context_last_error(ctx));
        assert_int_equal(st, CLATTN_UNSUPPORTED);
        assert_non_null(strstr(clattn_context_last_error(ctx), "cl_khr_fp16"));
        for (size_t i = 0; i < L->s.out; i++)
            assert_true(out[i] == SENTINEL);
    } else {
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
        char err[256] = "";
        if (clattn_mha_reference(&L->d, &L->w, L->xq, xk, xv, NULL, ref, ref_w, err, sizeof err) !=
            CLATTN_SUCCESS)
            fail_msg("%s: reference: %s", label, err);
        fx_err eo = fx_compare(out, ref, L->s.out), ew = fx_compare(wts, ref_w, L->s.weights);
        printf("  %-46s out max|err| %.2e (max|ref| %.2f, tol %.1e)  weights max|err| %.2e\n", label,
               eo.err, eo.ref, F16_OUT_REL * fmax(1.0, eo.ref), ew.err);
        assert_false(eo.nan || ew.nan);
        assert_true(eo.err <= F16_OUT_REL * fmax(1.0, eo.ref));
        assert_true(ew.err <= F16_WEIGHTS_ABS);
    }
    free(out), free(wts), free(ref), free(ref_w);
}

static void test_f16(void **state)
{
    clattn_context *ctx = *state;
    printf("  F16 on %s (cl_khr_fp16: %s)\n", clattn_context_device_name(ctx),
           clattn_test_device(ctx)->has_fp16 ? "yes" : "no");
    clattn_mha_desc d = {0};
    fx_layer self, cross;
    d.batch = 3, d.seq_q = d.seq_kv = 7, d.embed_dim = 36, d.heads_q = 4, d.in_bias = d.out_bias = 1;
    d.dtype = CLATTN_F16;
    fx_layer_make(&self, &d, 1, 17);
    d = (clattn_mha_desc){0};
    d.batch = 3, d.seq_q = 7, d.seq_kv = 5, d.embed_dim = 36, d.kdim = 20, d.vdim = 11;
    d.heads_q = 4, d.heads_kv = 2, d.in_bias = 1, d.dtype = CLATTN_F16;
    fx_layer_make(&cross, &d, 0, 20);
    const clattn_projection_impl all[] = {CLATTN_PROJ_AUTO, CLATTN_PROJ_OWN, CLATTN_PROJ_CLBLAST};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
#ifndef CLATTN_HAVE_CLBLAST
        if (all[k] == CLATTN_PROJ_CLBLAST)
            continue;   /* test_clblast_absent */
#endif
        check_f16(ctx, "F16 E 36/4h self B 3 L 7, packed", &self, all[k]);
        check_f16(ctx, "F16 E 36 GQA 4/2 cross kd 20 vd 11", &cross, all[k]);
    }
    fx_layer_free(&self);
    fx_layer_free(&cross);
}

#ifndef CLATTN_HAVE_CLBLAST
/* The build has no CLBlast: CLATTN_PROJ_CLBLAST is refused as unsupported, naming CLBlast, in F32
   and F16, through host memory and buffers, writing nothing (AUTO and OWN ran above). */
static void test_clblast_absent(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 1, d.seq_q = d.seq_kv = 3, d.embed_dim = 8, d.heads_q = 2;
    d.projections = CLATTN_PROJ_CLBLAST;
    fx_layer_make(&L, &d, 1, 19);
    float *out = tu_alloc(L.s.out * 4);
    for (int f16 = 0; f16 < 2; f16++) {
        L.d.dtype = f16 ? CLATTN_F16 : CLATTN_F32;
        for (int via_buffers = 0; via_buffers < 2 - f16; via_buffers++) {   /* buffers: F32 only */
            tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
            clattn_status st = via_buffers
                ? fx_forward_buffers(ctx, &L.d, &L.s, &L.w, L.xq, NULL, NULL, NULL, 0, out, NULL)
                : clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL);
            printf("  CLBLAST without CLBlast, %s, %s: %s\n", f16 ? "F16" : "F32",
                   via_buffers ? "buffers" : "host", clattn_context_last_error(ctx));
            assert_int_equal(st, CLATTN_UNSUPPORTED);
            assert_non_null(strstr(clattn_context_last_error(ctx), "CLBlast"));
            assert_true(out[0] == SENTINEL);
        }
    }
    free(out);
    fx_layer_free(&L);
}
#endif

int main(int argc, char **argv)
{
    data_dir = fx_data_dir(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_self),
        cmocka_unit_test(test_fixture_causal),
        cmocka_unit_test(test_fixture_cross),
        cmocka_unit_test(test_fixture_masked),
        cmocka_unit_test(test_fixture_additive),
        cmocka_unit_test(test_gqa_cross_causal_mask),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_grid_auto),
        cmocka_unit_test(test_grid_own),
#ifdef CLATTN_HAVE_CLBLAST
        cmocka_unit_test(test_grid_clblast),
#else
        cmocka_unit_test(test_clblast_absent),
#endif
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_scratch_reuse),
        cmocka_unit_test(test_out_of_order_queue),
        cmocka_unit_test(test_f16),
    };
    return cmocka_run_group_tests_name("mha", tests, tu_group_setup, tu_group_teardown);
}
