/* The multi-head attention layer on the device (clattn_mha_forward, clattn_mha_forward_host):
 *   - every PyTorch fixture (tests/data/mha_*) reproduced, through host memory and device buffers;
 *   - grouped-query heads, causal modes and masks against the double-precision reference
 *     (clattn_mha_reference), on sizes that are not multiples of anything;
 *   - both attention paths, empty shapes, scratch reuse, a caller's out-of-order queue, and F16
 *     storage (CLATTN_UNSUPPORTED on a device without cl_khr_fp16).
 * Bad input is test_mha_bad_input.c's.
 *
 * Tolerance, F32: mha_fixture.h (out 1e-5 * max(1, max |ref|), weights 1e-5).
 * F16 storage (run only where the device has cl_khr_fp16): out within 2e-2 * max(1, max |ref|)
 * (inputs and weights rounded to half, half GEMMs), weights within 5e-3.
 * The max errors are printed for every case. Without CLBlast in the build the layer answers
 * CLATTN_UNSUPPORTED, checked once, and the binary exits 77 (SKIP).
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
        printf("  %-24s %-7s out max|err| %.2e (max|ref| %.2f, tol %.1e)  weights max|err| %.2e\n",
               label, via_buffers ? "buffers" : "host", eo.err, eo.ref, FX_OUT_REL * fmax(1.0, eo.ref),
               ew.err);
        assert_false(eo.nan || ew.nan);
        assert_true(eo.err <= FX_OUT_REL * fmax(1.0, eo.ref));
        assert_true(ew.err <= FX_WEIGHTS_ABS);
    }
    free(out);
    free(wts);
}

static void test_fixture_self(void **state)
{
    fixture *fx = fx_load(data_dir, "self");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    check_fixture(*state, "self", fx, &d, NULL, 0);
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

static void test_fixture_cross(void **state)
{
    fixture *fx = fx_load(data_dir, "cross");
    clattn_mha_desc d;
    fx_desc(fx, &d);
    check_fixture(*state, "cross (kdim, vdim)", fx, &d, NULL, 0);
    fx_free(fx);
}

/* PyTorch's bool attn_mask (true: hidden) and key_padding_mask folded into one clattn bool mask
   [B,Lq,Lk] (nonzero: attend). */
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
    check_fixture(*state, "bool + key padding", fx, &d, m, (size_t)B * (size_t)Lq * (size_t)Lk);
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

/* No key tokens: every head gives 0, so out is the output bias; no batch: nothing is written. */
static void test_empty(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = 3, d.seq_kv = 0, d.embed_dim = 8, d.kdim = 5, d.heads_q = 2;
    d.in_bias = d.out_bias = 1;
    fx_layer_make(&L, &d, 0, 14);
    float *out = tu_alloc(L.s.out * 4);
    tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
    clattn_status st = clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, L.xk, L.xv, NULL, out, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("Lk = 0: %s: %s", clattn_status_string(st), clattn_context_last_error(ctx));
    for (size_t i = 0; i < L.s.out; i++)
        assert_float_equal(out[i], L.bo[i % 8], 1e-7);
    L.d.batch = 0;
    tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
    assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, NULL, L.xk, L.xv, NULL, out, NULL),
                     CLATTN_SUCCESS);   /* the tensors are empty: x_q may be NULL */
    assert_true(out[0] == SENTINEL);
    free(out);
    fx_layer_free(&L);
}

/* The workspace belongs to the context: a second call of the same shape allocates nothing. */
static void test_scratch_reuse(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = d.seq_kv = 33, d.embed_dim = 64, d.heads_q = 4, d.in_bias = 1;
    fx_layer_make(&L, &d, 1, 15);
    float *out = tu_alloc(L.s.out * 4);
    assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL),
                     CLATTN_SUCCESS);
    size_t first = clattn_context_scratch_bytes(ctx);
    assert_true(first >= 4 * L.s.out * 4);   /* Q, K, V and the heads' output */
    assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL),
                     CLATTN_SUCCESS);
    assert_int_equal(clattn_context_scratch_bytes(ctx), first);
    free(out);
    fx_layer_free(&L);
}

/* A caller's out-of-order queue: the layer orders its own steps with barriers. */
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
    d.batch = 2, d.seq_q = 37, d.seq_kv = 41, d.embed_dim = 48, d.kdim = 24, d.heads_q = 4;
    d.heads_kv = 2, d.in_bias = d.out_bias = 1, d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    fx_layer_make(&L, &d, 0, 18);
    for (int i = 0; i < 2; i++)   /* the second call reuses the scratch the first one used */
        fx_check_layer(ctx, "out-of-order queue", &L, i);
    fx_layer_free(&L);
    clattn_context_release(ctx);
    clReleaseCommandQueue(q);
}

static void test_f16(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = d.seq_kv = 9, d.embed_dim = 32, d.heads_q = 4, d.in_bias = d.out_bias = 1;
    d.dtype = CLATTN_F16;
    fx_layer_make(&L, &d, 1, 17);
    float *out = tu_alloc(L.s.out * 4), *wts = tu_alloc(L.s.weights * 4);
    float *ref = tu_alloc(L.s.out * 4), *ref_w = tu_alloc(L.s.weights * 4);
    tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
    clattn_status st = clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, wts);
    const int has_fp16 = clattn_test_device(ctx)->has_fp16;
    printf("  F16 on %s (cl_khr_fp16: %s): %s %s\n", clattn_context_device_name(ctx),
           has_fp16 ? "yes" : "no", clattn_status_string(st), clattn_context_last_error(ctx));
    if (!has_fp16) {
        assert_int_equal(st, CLATTN_UNSUPPORTED);
        assert_non_null(strstr(clattn_context_last_error(ctx), "cl_khr_fp16"));
        assert_true(out[0] == SENTINEL);
    } else {
        assert_int_equal(st, CLATTN_SUCCESS);
        assert_int_equal(clattn_mha_reference(&L.d, &L.w, L.xq, NULL, NULL, NULL, ref, ref_w, NULL, 0),
                         CLATTN_SUCCESS);
        fx_err eo = fx_compare(out, ref, L.s.out), ew = fx_compare(wts, ref_w, L.s.weights);
        printf("  F16 out max|err| %.2e (max|ref| %.2f)  weights max|err| %.2e\n", eo.err, eo.ref,
               ew.err);
        assert_true(eo.err <= F16_OUT_REL * fmax(1.0, eo.ref));
        assert_true(ew.err <= F16_WEIGHTS_ABS);
    }
    free(out), free(wts), free(ref), free(ref_w);
    fx_layer_free(&L);
}

#ifndef CLATTN_HAVE_CLBLAST
/* The build has no CLBlast: a valid layer is refused as unsupported, naming CLBlast. */
static void test_without_clblast(void **state)
{
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 1, d.seq_q = d.seq_kv = 3, d.embed_dim = 8, d.heads_q = 2;
    fx_layer_make(&L, &d, 1, 19);
    float *out = tu_alloc(L.s.out * 4);
    tu_fill_value(out, CLATTN_F32, L.s.out, SENTINEL);
    assert_int_equal(clattn_mha_forward_host(ctx, &L.d, &L.w, L.xq, NULL, NULL, NULL, out, NULL),
                     CLATTN_UNSUPPORTED);
    printf("  without CLBlast: %s\n", clattn_context_last_error(ctx));
    assert_non_null(strstr(clattn_context_last_error(ctx), "CLBlast"));
    assert_true(out[0] == SENTINEL);
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
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_scratch_reuse),
        cmocka_unit_test(test_out_of_order_queue),
        cmocka_unit_test(test_f16),
    };
#ifdef CLATTN_HAVE_CLBLAST
    return cmocka_run_group_tests_name("mha", tests, tu_group_setup, tu_group_teardown);
#else
    const struct CMUnitTest without[] = {cmocka_unit_test(test_without_clblast)};
    (void)tests;
    int failed = cmocka_run_group_tests_name("mha_without_clblast", without, tu_group_setup,
                                             tu_group_teardown);
    printf("SKIP: this build has no CLBlast: the layer answers CLATTN_UNSUPPORTED\n");
    return failed ? failed : 77;
#endif
}
