/* Bad input to the multi-head layer (clattn_mha_forward, clattn_mha_forward_host): mismatched E,
 * heads not dividing E, NULL and inconsistent weights, every buffer one element short, a buffer of
 * another OpenCL context, aliasing outputs, a fused path asked for weights, a dtype or a
 * `projections` out of its enum (7, -1; through both entry points). Each call returns
 * CLATTN_INVALID_ARGUMENT, clattn_context_last_error() names the argument, and nothing the caller
 * owns changes (outputs hold a sentinel, read back after the refused call). A backend that cannot
 * serve a valid call (CLATTN_PROJ_CLBLAST in a build without CLBlast, or with F16 storage on a
 * device without cl_khr_fp16) answers CLATTN_UNSUPPORTED with the reason, writing nothing. A
 * valid call then still passes and matches the reference, through every backend the build has
 * (AUTO and OWN need no CLBlast). Each case's message is printed.
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

#define SENTINEL 42.0f

typedef struct bad_fixture {
    clattn_context *ctx;
    fx_layer L;   /* valid: cross-attention, separate weights, biases, a mask */
    clattn_mha_weight_buffers w;
    cl_mem xq, xk, xv, mask, out, wts;
    cl_mem short_xq, short_wq, short_out, short_wts, short_mask, packed_other_e;
} bad_fixture;

static cl_mem sentinel_buffer(clattn_context *ctx, size_t bytes)
{
    float *host = tu_alloc(bytes);
    tu_fill_value(host, CLATTN_F32, bytes / 4, SENTINEL);
    cl_mem m = fx_upload(ctx, host, bytes);
    free(host);
    return m;
}

static void expect_untouched(clattn_context *ctx, cl_mem m, size_t bytes)
{
    float *host = tu_alloc(bytes);
    fx_read_buffer(ctx, m, host, bytes);
    for (size_t i = 0; i < bytes / 4; i++)
        if (host[i] != SENTINEL)
            fail_msg("a refused call wrote element %zu of an output", i);
    free(host);
}

/* Calls with the fixture's buffers, swapping in what the case changes, and expects a refusal whose
   message contains want; the outputs keep their sentinel. */
static void expect_refused(bad_fixture *f, const char *what, const clattn_mha_desc *d,
                           const clattn_mha_weight_buffers *w, cl_mem xq, cl_mem xk, cl_mem xv,
                           cl_mem mask, cl_mem out, cl_mem wts, clattn_status want_st, const char *want)
{
    clattn_status st = clattn_mha_forward(f->ctx, d, w, xq, xk, xv, mask, out, wts);
    const char *msg = clattn_context_last_error(f->ctx);
    printf("  %-34s -> %s: %s\n", what, clattn_status_string(st), msg);
    assert_int_equal(st, want_st);
    if (!strstr(msg, want))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", what, msg, want);
    expect_untouched(f->ctx, f->out, f->L.s.out * 4);
    expect_untouched(f->ctx, f->wts, f->L.s.weights * 4);
}

static int bad_setup(void **state)
{
    bad_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->ctx = tu_context_or_skip(NULL);
    clattn_mha_desc d = {0};
    d.batch = 2, d.seq_q = 3, d.seq_kv = 5, d.embed_dim = 16, d.kdim = 6, d.vdim = 7;
    d.heads_q = 4, d.heads_kv = 2, d.in_bias = d.out_bias = 1;
    fx_layer_make(&f->L, &d, 0, 16);
    fx_layer_padding_mask(&f->L, 2);
    const clattn_mha_shape *s = &f->L.s;
    clattn_context *ctx = f->ctx;
    f->w.q_proj_weight = fx_upload(ctx, f->L.wq, s->q_proj_weight * 4);
    f->w.k_proj_weight = fx_upload(ctx, f->L.wk, s->k_proj_weight * 4);
    f->w.v_proj_weight = fx_upload(ctx, f->L.wv, s->v_proj_weight * 4);
    f->w.in_proj_bias = fx_upload(ctx, f->L.bin, s->in_proj_bias * 4);
    f->w.out_proj_weight = fx_upload(ctx, f->L.wo, s->out_proj_weight * 4);
    f->w.out_proj_bias = fx_upload(ctx, f->L.bo, s->out_proj_bias * 4);
    f->xq = fx_upload(ctx, f->L.xq, s->x_q * 4);
    f->xk = fx_upload(ctx, f->L.xk, s->x_k * 4);
    f->xv = fx_upload(ctx, f->L.xv, s->x_v * 4);
    f->mask = fx_upload(ctx, f->L.mask, f->L.mask_bytes);
    f->out = sentinel_buffer(ctx, s->out * 4);
    f->wts = sentinel_buffer(ctx, s->weights * 4);
    f->short_xq = fx_upload(ctx, f->L.xq, s->x_q * 4 - 4);
    f->short_wq = fx_upload(ctx, f->L.wq, s->q_proj_weight * 4 - 4);
    f->short_out = fx_upload(ctx, NULL, s->out * 4 - 4);
    f->short_wts = fx_upload(ctx, NULL, s->weights * 4 - 4);
    f->short_mask = fx_upload(ctx, f->L.mask, f->L.mask_bytes - 1);
    f->packed_other_e = fx_upload(ctx, NULL, (size_t)(3 * 12 * 12) * 4);   /* a layer with E = 12 */
    *state = f;
    return 0;
}

static int bad_teardown(void **state)
{
    bad_fixture *f = *state;
    cl_mem all[] = {f->w.q_proj_weight, f->w.k_proj_weight, f->w.v_proj_weight, f->w.in_proj_bias,
                    f->w.out_proj_weight, f->w.out_proj_bias, f->xq, f->xk, f->xv, f->mask, f->out,
                    f->wts, f->short_xq, f->short_wq, f->short_out, f->short_wts, f->short_mask,
                    f->packed_other_e};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        fx_release(all[i]);
    fx_layer_free(&f->L);
    clattn_context_release(f->ctx);
    free(f);
    return 0;
}

static void test_bad_input(void **state)
{
    bad_fixture *f = *state;
    const clattn_status bad = CLATTN_INVALID_ARGUMENT;
    const clattn_mha_desc d0 = f->L.d;
    clattn_mha_desc d;
    clattn_mha_weight_buffers w;
#define CALL(what, dd, ww, xq, xk, xv, m, o, a, st, msg) \
    expect_refused(f, what, dd, ww, xq, xk, xv, m, o, a, st, msg)

    CALL("NULL weights", &d0, NULL, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "weights");
    CALL("NULL desc", NULL, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "desc");
    w = f->w;
    w.out_proj_weight = NULL;
    CALL("NULL out_proj_weight", &d0, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "out_proj_weight");
    w = f->w;
    w.k_proj_weight = NULL;
    CALL("NULL k_proj_weight", &d0, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "k NULL");
    w = f->w;
    w.in_proj_weight = f->packed_other_e;
    CALL("packed and separate weights", &d0, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "not both");
    w = f->w;
    w.in_proj_bias = NULL;
    CALL("in_bias without in_proj_bias", &d0, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "in_proj_bias");

    d = d0;
    d.heads_q = 3;   /* does not divide 16 */
    CALL("heads not dividing E", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "heads_q");
    d = d0;
    d.heads_kv = 3;  /* does not divide heads_q 4 */
    CALL("heads_kv not dividing heads_q", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "heads_kv");
    d = d0;
    d.embed_dim = 20, d.heads_q = 4;   /* mismatched E: every buffer was made for E = 16 */
    CALL("mismatched E (x_q too small)", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "x_q holds");
    d = d0;
    d.kdim = d.vdim = 0, d.heads_kv = 0, d.seq_kv = d.seq_q;   /* self; packed weights for E = 12 */
    w = (clattn_mha_weight_buffers){0};
    w.in_proj_weight = f->packed_other_e, w.in_proj_bias = f->w.in_proj_bias;
    w.out_proj_weight = f->w.out_proj_weight, w.out_proj_bias = f->w.out_proj_bias;
    CALL("mismatched E (packed weight)", &d, &w, f->xq, NULL, NULL, f->mask, f->out, f->wts, bad,
         "in_proj_weight holds");
    d = d0;
    w = (clattn_mha_weight_buffers){0};
    w.in_proj_weight = f->packed_other_e, w.in_proj_bias = f->w.in_proj_bias;
    w.out_proj_weight = f->w.out_proj_weight, w.out_proj_bias = f->w.out_proj_bias;
    CALL("packed weights with kdim != E", &d, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "kdim");
    CALL("self-attention with kdim != E", &d0, &f->w, f->xq, NULL, NULL, f->mask, f->out, f->wts, bad,
         "x_k NULL");

    /* wrong buffer sizes, each one element short */
    CALL("short x_q", &d0, &f->w, f->short_xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "x_q holds");
    w = f->w;
    w.q_proj_weight = f->short_wq;
    CALL("short q_proj_weight", &d0, &w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "q_proj_weight holds");
    CALL("short x_v (x_k swapped in)", &d0, &f->w, f->xq, f->xk, f->xk, f->mask, f->out, f->wts, bad,
         "x_v holds");
    CALL("short out", &d0, &f->w, f->xq, f->xk, f->xv, f->mask, f->short_out, f->wts, bad, "out holds");
    CALL("short attn_weights", &d0, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->short_wts, bad,
         "attn_weights holds");
    CALL("short mask", &d0, &f->w, f->xq, f->xk, f->xv, f->short_mask, f->out, f->wts, bad,
         "mask holds");
    CALL("NULL mask with a mask type", &d0, &f->w, f->xq, f->xk, f->xv, NULL, f->out, f->wts, bad,
         "mask is NULL");
    CALL("NULL out", &d0, &f->w, f->xq, f->xk, f->xv, f->mask, NULL, f->wts, bad, "out is NULL");
    d = d0;
    d.mask_rows_broadcast = 2;
    CALL("mask_rows_broadcast 2", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "mask_rows_broadcast");
    d = d0;
    d.mask_rows_broadcast = 1, d.mask_row_stride = d.seq_kv;
    CALL("rows broadcast with a row stride", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts,
         bad, "mask_row_stride");
    d = d0;
    d.mask_type = CLATTN_MASK_NONE;
    CALL("mask without a mask type", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "mask_type");

    /* aliasing and paths */
    CALL("out aliasing x_q", &d0, &f->w, f->xq, f->xk, f->xv, f->mask, f->xq, f->wts, bad, "alias");
    CALL("out aliasing attn_weights", &d0, &f->w, f->xq, f->xk, f->xv, f->mask, f->wts, f->wts, bad,
         "alias");
    d = d0;
    d.path = CLATTN_PATH_FUSED;
    CALL("attn_weights on the fused path", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "FUSED");
    d = d0;
    d.dtype = (clattn_dtype)7;
    CALL("dtype out of range", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "dtype");
    d.dtype = CLATTN_BF16;
    CALL("dtype BF16", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, CLATTN_UNSUPPORTED, "BF16");
    d = d0;
    d.scale = NAN;
    CALL("NaN scale", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "scale");
    d = d0;
    d.softcap = -1.0f;
    CALL("softcap -1", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "softcap");
    d = d0;
    d.window = 1, d.window_left = -3;
    CALL("window_left -3", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "window_left");
    d = d0;
    const float nan_slopes[16] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                                  NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    d.alibi_slopes = nan_slopes;
    CALL("NaN ALiBi slope", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "alibi_slopes[0]");
    d = d0;
    d.projections = (clattn_projection_impl)7;
    CALL("projections 7", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "projections");
    d.projections = (clattn_projection_impl)-1;
    CALL("projections -1", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad, "projections");
    d.dtype = CLATTN_F16;   /* an argument error, whatever the backend could serve */
    CALL("projections -1 with F16", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "projections");

    /* valid, but the backend cannot serve it: unsupported, with the reason */
    d = d0;
    d.projections = CLATTN_PROJ_CLBLAST;
#ifndef CLATTN_HAVE_CLBLAST
    CALL("CLBLAST in a build without it", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts,
         CLATTN_UNSUPPORTED, "CLBlast");
#endif
    if (!clattn_test_device(f->ctx)->has_fp16) {
        d.dtype = CLATTN_F16;   /* the F32 buffers hold more than F16 needs */
#ifdef CLATTN_HAVE_CLBLAST
        CALL("CLBLAST F16 without cl_khr_fp16", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts,
             CLATTN_UNSUPPORTED, "cl_khr_fp16");
#else
        CALL("CLBLAST F16 without CLBlast", &d, &f->w, f->xq, f->xk, f->xv, f->mask, f->out, f->wts,
             CLATTN_UNSUPPORTED, "CLBlast");
#endif
    }

    /* a buffer of another OpenCL context */
    cl_int e;
    cl_device_id dev = clattn_context_device(f->ctx);
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    assert_non_null(other);
    cl_mem foreign = clCreateBuffer(other, CL_MEM_READ_WRITE, f->L.s.x_q * 4, NULL, &e);
    assert_non_null(foreign);
    CALL("x_q from another cl_context", &d0, &f->w, foreign, f->xk, f->xv, f->mask, f->out, f->wts, bad,
         "another cl_context");
    clReleaseMemObject(foreign);
    clReleaseContext(other);

    /* host API: a NULL the shape needs */
    float *out = tu_alloc(f->L.s.out * 4);
    tu_fill_value(out, CLATTN_F32, f->L.s.out, SENTINEL);
    assert_int_equal(clattn_mha_forward_host(f->ctx, &d0, &f->L.w, NULL, f->L.xk, f->L.xv, f->L.mask,
                                             out, NULL), bad);
    assert_non_null(strstr(clattn_context_last_error(f->ctx), "x_q"));
    assert_int_equal(clattn_mha_forward_host(f->ctx, &d0, NULL, f->L.xq, f->L.xk, f->L.xv, f->L.mask,
                                             out, NULL), bad);
    assert_int_equal(clattn_mha_forward_host(NULL, &d0, &f->L.w, f->L.xq, f->L.xk, f->L.xv, f->L.mask,
                                             out, NULL), bad);
    assert_true(out[0] == SENTINEL);

    /* host API: projections out of range, refused before anything is copied either way */
    const int bad_projections[] = {7, -1, CLATTN_PROJ_CLBLAST + 1};
    float *wts = tu_alloc(f->L.s.weights * 4);
    for (size_t k = 0; k < sizeof bad_projections / sizeof bad_projections[0]; k++) {
        d = d0;
        d.projections = (clattn_projection_impl)bad_projections[k];
        tu_fill_value(out, CLATTN_F32, f->L.s.out, SENTINEL);
        tu_fill_value(wts, CLATTN_F32, f->L.s.weights, SENTINEL);
        clattn_status st = clattn_mha_forward_host(f->ctx, &d, &f->L.w, f->L.xq, f->L.xk, f->L.xv,
                                                   f->L.mask, out, wts);
        const char *msg = clattn_context_last_error(f->ctx);
        printf("  host: projections %-16d -> %s: %s\n", bad_projections[k], clattn_status_string(st),
               msg);
        assert_int_equal(st, bad);
        if (!strstr(msg, "projections"))
            fail_msg("host projections %d: message \"%s\" does not name projections", bad_projections[k],
                     msg);
        for (size_t i = 0; i < f->L.s.out; i++)
            assert_true(out[i] == SENTINEL);
        for (size_t i = 0; i < f->L.s.weights; i++)
            assert_true(wts[i] == SENTINEL);
    }
    free(wts);

    /* refusals did not poison the context: the valid call passes and matches the reference,
       through every backend this build has */
    fx_layer valid = f->L;
    const clattn_projection_impl served[] = {
        CLATTN_PROJ_AUTO,
        CLATTN_PROJ_OWN,
#ifdef CLATTN_HAVE_CLBLAST
        CLATTN_PROJ_CLBLAST,
#endif
    };
    char label[64];
    for (size_t k = 0; k < sizeof served / sizeof served[0]; k++) {
        valid.d.projections = served[k];
        snprintf(label, sizeof label, "%s: valid call after the refusals", fx_proj_name(served[k]));
        fx_check_layer(f->ctx, label, &valid, 1);
    }
    free(out);
#undef CALL
}

/* ---- memory shared through sub-buffers and images -------------------------------------------- */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* Fills out and attn_weights with the sentinel, expects a refusal whose message contains want, and
   finds both unchanged. */
static void expect_refused_shared(bad_fixture *f, const char *what, const clattn_mha_weight_buffers *w,
                                  cl_mem xq, cl_mem xk, cl_mem xv, cl_mem mask, cl_mem out, cl_mem wts,
                                  const char *want)
{
    cl_command_queue queue = clattn_context_queue(f->ctx);
    const float pattern = SENTINEL;
    cl_mem written[2] = {out, wts};
    size_t bytes[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(clGetMemObjectInfo(written[i], CL_MEM_SIZE, sizeof bytes[i], &bytes[i], NULL),
                         CL_SUCCESS);
        bytes[i] -= bytes[i] % sizeof pattern;
        assert_int_equal(clEnqueueFillBuffer(queue, written[i], &pattern, sizeof pattern, 0, bytes[i], 0,
                                             NULL, NULL),
                         CL_SUCCESS);
    }
    assert_int_equal(clFinish(queue), CL_SUCCESS);
    clattn_status st = clattn_mha_forward(f->ctx, &f->L.d, w, xq, xk, xv, mask, out, wts);
    const char *msg = clattn_context_last_error(f->ctx);
    printf("  %-34s -> %s: %s\n", what, clattn_status_string(st), msg);
    assert_int_equal(st, CLATTN_INVALID_ARGUMENT);
    if (!strstr(msg, want))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", what, msg, want);
    for (int i = 0; i < 2; i++)
        expect_untouched(f->ctx, written[i], bytes[i]);
}

/* Every buffer of the layer a sub-buffer of one parent. Disjoint: accepted and right. An output
   sharing bytes with an input or with the other output, through whatever handle: refused. */
static void test_shared_memory(void **state)
{
    bad_fixture *f = *state;
    const fx_layer *L = &f->L;
    const clattn_mha_shape *s = &L->s;
    const size_t al = tu_sub_buffer_align(f->ctx);
    enum { XQ, XK, XV, MASK, WQ, WK, WV, BIN, WO, BO, OUT, WTS, N };
    const size_t bytes[N] = {s->x_q * 4, s->x_k * 4, s->x_v * 4, L->mask_bytes, s->q_proj_weight * 4,
                             s->k_proj_weight * 4, s->v_proj_weight * 4, s->in_proj_bias * 4,
                             s->out_proj_weight * 4, s->out_proj_bias * 4, s->out * 4, s->weights * 4};
    const void *host[N] = {L->xq, L->xk, L->xv, L->mask, L->wq, L->wk, L->wv, L->bin, L->wo, L->bo,
                           NULL, NULL};
    /* a gap after each: a sub-buffer shifted one alignment into a slot stays clear of the next */
    size_t origin[N], total = 0, widest = 0;
    for (int i = 0; i < N; i++)
        widest = bytes[i] > widest ? bytes[i] : widest;
    for (int i = 0; i < N; i++) {
        origin[i] = total;
        total += round_up(bytes[i], al) + round_up(widest, al);
    }
    cl_mem parent = fx_upload(f->ctx, NULL, total);
    cl_mem sub[N];
    for (int i = 0; i < N; i++) {
        sub[i] = tu_sub_buffer(parent, origin[i], bytes[i]);
        if (host[i])
            assert_int_equal(clEnqueueWriteBuffer(clattn_context_queue(f->ctx), sub[i], CL_TRUE, 0, bytes[i],
                                                  host[i], 0, NULL, NULL),
                             CL_SUCCESS);
    }
    clattn_mha_weight_buffers w = {0};
    w.q_proj_weight = sub[WQ], w.k_proj_weight = sub[WK], w.v_proj_weight = sub[WV];
    w.in_proj_bias = sub[BIN], w.out_proj_weight = sub[WO], w.out_proj_bias = sub[BO];

    /* disjoint: the legitimate case */
    clattn_status st = clattn_mha_forward(f->ctx, &L->d, &w, sub[XQ], sub[XK], sub[XV], sub[MASK],
                                          sub[OUT], sub[WTS]);
    if (st != CLATTN_SUCCESS)
        fail_msg("disjoint sub-buffers: %s (%s)", clattn_status_string(st),
                 clattn_context_last_error(f->ctx));
    float *ref = tu_alloc(s->out * 4), *ref_w = tu_alloc(s->weights * 4);
    float *out = tu_alloc(s->out * 4), *wts = tu_alloc(s->weights * 4);
    char err[256] = "";
    if (clattn_mha_reference(&L->d, &L->w, L->xq, L->xk, L->xv, L->mask, ref, ref_w, err, sizeof err) !=
        CLATTN_SUCCESS)
        fail_msg("reference: %s", err);
    fx_read_buffer(f->ctx, sub[OUT], out, s->out * 4);
    fx_read_buffer(f->ctx, sub[WTS], wts, s->weights * 4);
    fx_err eo = fx_compare(out, ref, s->out), ew = fx_compare(wts, ref_w, s->weights);
    printf("  %-34s -> out max|err| %.2e, weights max|err| %.2e\n", "disjoint sub-buffers", eo.err,
           ew.err);
    assert_false(eo.nan || ew.nan);
    assert_true(eo.err <= FX_OUT_REL * fmax(1.0, eo.ref));
    assert_true(ew.err <= FX_WEIGHTS_ABS);
    free(ref), free(ref_w), free(out), free(wts);

    /* outputs over inputs and over each other, through sub-buffers at other origins */
    cl_mem m;
    if (al < bytes[XQ]) {
        m = tu_sub_buffer(parent, origin[XQ] + al, bytes[OUT]);
        expect_refused_shared(f, "out a sub-buffer inside x_q", &w, sub[XQ], sub[XK], sub[XV], sub[MASK], m,
                              sub[WTS], "out overlaps x_q");
        clReleaseMemObject(m);
    }
    if (al < bytes[XK]) {
        m = tu_sub_buffer(parent, origin[XK] + round_up(bytes[XK], al) - al, bytes[OUT]);
        expect_refused_shared(f, "out over the end of x_k", &w, sub[XQ], sub[XK], sub[XV], sub[MASK], m,
                              sub[WTS], "out overlaps x_k");
        clReleaseMemObject(m);
    }
    if (al < bytes[OUT]) {
        m = tu_sub_buffer(parent, origin[OUT] + al, bytes[WTS]);
        expect_refused_shared(f, "attn_weights partly over out", &w, sub[XQ], sub[XK], sub[XV], sub[MASK],
                              sub[OUT], m, "out overlaps attn_weights");
        clReleaseMemObject(m);
    }
    if (al < bytes[WQ]) {
        m = tu_sub_buffer(parent, origin[WQ] + al, bytes[WTS]);
        expect_refused_shared(f, "attn_weights inside q_proj_weight", &w, sub[XQ], sub[XK], sub[XV],
                              sub[MASK], sub[OUT], m, "attn_weights overlaps q_proj_weight");
        clReleaseMemObject(m);
    }
    /* out the parent of the mask's sub-buffer */
    cl_mem outer = fx_upload(f->ctx, NULL, round_up(bytes[OUT], al) + al);
    cl_mem inner_mask = tu_sub_buffer(outer, al, bytes[MASK]);
    assert_int_equal(clEnqueueWriteBuffer(clattn_context_queue(f->ctx), inner_mask, CL_TRUE, 0, bytes[MASK],
                                          L->mask, 0, NULL, NULL),
                     CL_SUCCESS);
    if (al < bytes[OUT])
        expect_refused_shared(f, "out the parent of mask", &w, sub[XQ], sub[XK], sub[XV], inner_mask, outer,
                              sub[WTS], "out overlaps mask");
    clReleaseMemObject(inner_mask);
    clReleaseMemObject(outer);
    /* an image is no buffer */
    cl_mem image = tu_image_or_null(f->ctx, bytes[XQ]);
    if (image) {
        expect_refused_shared(f, "x_q an image", &w, image, sub[XK], sub[XV], sub[MASK], sub[OUT], sub[WTS],
                              "x_q is not a buffer");
        clReleaseMemObject(image);
    }

    for (int i = 0; i < N; i++)
        clReleaseMemObject(sub[i]);
    clReleaseMemObject(parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_input, bad_setup, bad_teardown),
        cmocka_unit_test_setup_teardown(test_shared_memory, bad_setup, bad_teardown),
    };
    return cmocka_run_group_tests_name("mha_bad_input", tests, NULL, NULL);
}
