/* The multi-head layer's test fixtures (see mha_fixture.h). */
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

#ifndef CLATTN_TEST_DATA_DIR
#define CLATTN_TEST_DATA_DIR "tests/data"
#endif

const char *fx_data_dir(int argc, char **argv)
{
    const char *env = getenv("CLATTN_TEST_DATA");
    if (env && *env)
        return env;
    if (argc > 1)
        return argv[1];
    return CLATTN_TEST_DATA_DIR;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

void fx_free(fixture *fx)
{
    for (int i = 0; i < fx->n_tensors; i++)
        free(fx->t[i].data);
    free(fx);
}

fixture *fx_load(const char *data_dir, const char *name)
{
    char path[1024], line[512];
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(path, sizeof path, "%s/mha_%s/manifest.txt", data_dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s (set CLATTN_TEST_DATA to tests/data)", path);
    while (fgets(line, sizeof line, f)) {
        char key[64], file[256];
        long v;
        int used = 0;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "param %31s %ld", key, &v) == 2) {
            assert_true(fx->n_params < FX_MAX);
            strcpy(fx->pkey[fx->n_params], key);
            fx->pval[fx->n_params++] = v;
            continue;
        }
        assert_true(fx->n_tensors < FX_MAX);
        fx_tensor *t = &fx->t[fx->n_tensors];
        if (sscanf(line, "tensor %63s %255s %d%n", t->name, file, &t->ndim, &used) != 3 ||
            t->ndim < 1 || t->ndim > 8)
            fail_msg("%s: bad line: %s", path, line);
        t->n = 1;
        const char *rest = line + used;
        for (int d = 0; d < t->ndim; d++) {
            int k = 0;
            if (sscanf(rest, "%d%n", &t->dims[d], &k) != 1 || t->dims[d] < 0)
                fail_msg("%s: bad shape: %s", path, line);
            rest += k;
            t->n *= (size_t)t->dims[d];
        }
        char tpath[1400];
        snprintf(tpath, sizeof tpath, "%s/mha_%s/%s", data_dir, name, file);
        FILE *tf = fopen(tpath, "rb");
        if (!tf)
            fail_msg("cannot open %s", tpath);
        t->data = malloc((t->n ? t->n : 1) * sizeof(float));
        assert_non_null(t->data);
        size_t got = fread(t->data, sizeof(float), t->n, tf);
        int extra = fgetc(tf);
        fclose(tf);
        if (got != t->n || extra != EOF)
            fail_msg("%s: expected exactly %zu float32 values", tpath, t->n);
        if (!host_is_little_endian())
            for (size_t i = 0; i < t->n; i++) {
                unsigned char *b = (unsigned char *)&t->data[i], c;
                c = b[0], b[0] = b[3], b[3] = c;
                c = b[1], b[1] = b[2], b[2] = c;
            }
        fx->n_tensors++;
    }
    fclose(f);
    return fx;
}

long fx_param(const fixture *fx, const char *key)
{
    for (int i = 0; i < fx->n_params; i++)
        if (strcmp(fx->pkey[i], key) == 0)
            return fx->pval[i];
    fail_msg("fixture has no param %s", key);
    return 0;
}

const fx_tensor *fx_find(const fixture *fx, const char *name)
{
    for (int i = 0; i < fx->n_tensors; i++)
        if (strcmp(fx->t[i].name, name) == 0)
            return &fx->t[i];
    return NULL;
}

const float *fx_get(const fixture *fx, const char *name, size_t expect_n)
{
    const fx_tensor *t = fx_find(fx, name);
    if (!t)
        return NULL;
    if (expect_n && t->n != expect_n)
        fail_msg("tensor %s has %zu elements, expected %zu", name, t->n, expect_n);
    return t->data;
}

void fx_desc(const fixture *fx, clattn_mha_desc *d)
{
    memset(d, 0, sizeof *d);
    d->batch = (int)fx_param(fx, "batch");
    d->seq_q = (int)fx_param(fx, "seq_q");
    d->seq_kv = (int)fx_param(fx, "seq_kv");
    d->embed_dim = (int)fx_param(fx, "embed_dim");
    d->kdim = (int)fx_param(fx, "kdim");
    d->vdim = (int)fx_param(fx, "vdim");
    d->heads_q = (int)fx_param(fx, "heads");
    d->in_bias = d->out_bias = (int)fx_param(fx, "bias");
}

void fx_weights(const fixture *fx, const clattn_mha_shape *s, clattn_mha_weights *w)
{
    memset(w, 0, sizeof *w);
    w->in_proj_weight = fx_get(fx, "in_proj_weight", s->in_proj_weight);
    w->q_proj_weight = fx_get(fx, "q_proj_weight", s->q_proj_weight);
    w->k_proj_weight = fx_get(fx, "k_proj_weight", s->k_proj_weight);
    w->v_proj_weight = fx_get(fx, "v_proj_weight", s->v_proj_weight);
    w->in_proj_bias = fx_get(fx, "in_proj_bias", s->in_proj_bias);
    w->out_proj_weight = fx_get(fx, "out_proj.weight", s->out_proj_weight);
    w->out_proj_bias = fx_get(fx, "out_proj.bias", s->out_proj_bias);
}

/* ---- the layer on the device ----------------------------------------------------------------- */

const char *fx_proj_name(clattn_projection_impl impl)
{
    switch (impl) {
    case CLATTN_PROJ_AUTO: return "auto";
    case CLATTN_PROJ_OWN: return "own";
    case CLATTN_PROJ_CLBLAST: return "clblast";
    }
    return "?";
}

fx_err fx_compare(const float *got, const float *want, size_t n)
{
    fx_err e = {0.0, 0.0, 0};
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(want[i])) {
            e.nan = 1;
            continue;
        }
        if (isnan(want[i]))
            continue;
        e.err = fmax(e.err, fabs((double)got[i] - (double)want[i]));
        e.ref = fmax(e.ref, fabs((double)want[i]));
    }
    return e;
}

cl_mem fx_upload(clattn_context *ctx, const void *data, size_t bytes)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_cl_context(ctx),
                              CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes ? bytes : 1, (void *)data, &err);
    if (!m)
        fail_msg("clCreateBuffer(%zu bytes): %d", bytes, (int)err);
    return m;
}

cl_mem fx_upload_or_null(clattn_context *ctx, const void *data, size_t bytes)
{
    return data ? fx_upload(ctx, data, bytes) : NULL;
}

void fx_release(cl_mem m)
{
    if (m)
        clReleaseMemObject(m);
}

void fx_read_buffer(clattn_context *ctx, cl_mem m, void *dst, size_t bytes)
{
    assert_int_equal(clFinish(clattn_context_queue(ctx)), CL_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(clattn_context_queue(ctx), m, CL_TRUE, 0, bytes, dst, 0, NULL,
                                         NULL), CL_SUCCESS);
}

/* The layer through device buffers: weights and inputs uploaded, the call, results read back. */
clattn_status fx_forward_buffers(clattn_context *ctx, const clattn_mha_desc *d,
                                     const clattn_mha_shape *s, const clattn_mha_weights *w,
                                     const float *xq, const float *xk, const float *xv,
                                     const void *mask, size_t mask_bytes, float *out, float *weights)
{
    clattn_mha_weight_buffers wb = {
        fx_upload_or_null(ctx, w->in_proj_weight, s->in_proj_weight * 4),
        fx_upload_or_null(ctx, w->q_proj_weight, s->q_proj_weight * 4),
        fx_upload_or_null(ctx, w->k_proj_weight, s->k_proj_weight * 4),
        fx_upload_or_null(ctx, w->v_proj_weight, s->v_proj_weight * 4),
        fx_upload_or_null(ctx, w->in_proj_bias, s->in_proj_bias * 4),
        fx_upload_or_null(ctx, w->out_proj_weight, s->out_proj_weight * 4),
        fx_upload_or_null(ctx, w->out_proj_bias, s->out_proj_bias * 4),
    };
    cl_mem bq = fx_upload(ctx, xq, s->x_q * 4);
    cl_mem bk = fx_upload_or_null(ctx, xk, s->x_k * 4), bv = fx_upload_or_null(ctx, xv, s->x_v * 4);
    cl_mem bm = fx_upload_or_null(ctx, mask, mask_bytes);
    cl_mem bo = fx_upload(ctx, NULL, s->out * 4);
    cl_mem bw = weights ? fx_upload(ctx, NULL, s->weights * 4) : NULL;
    clattn_status st = clattn_mha_forward(ctx, d, &wb, bq, bk, bv, bm, bo, bw);
    if (st == CLATTN_SUCCESS) {
        fx_read_buffer(ctx, bo, out, s->out * 4);
        if (bw)
            fx_read_buffer(ctx, bw, weights, s->weights * 4);
    }
    clFinish(clattn_context_queue(ctx));
    cl_mem all[] = {wb.in_proj_weight, wb.q_proj_weight, wb.k_proj_weight, wb.v_proj_weight,
                    wb.in_proj_bias, wb.out_proj_weight, wb.out_proj_bias, bq, bk, bv, bm, bo, bw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        fx_release(all[i]);
    return st;
}

/* Random weights and inputs for d (N(0,1)/sqrt(width), so activations stay O(1)); packed weights
   when kdim == vdim == E and packed is set, separate otherwise. */
void fx_layer_make(fx_layer *L, const clattn_mha_desc *d, int packed, uint64_t seed)
{
    tu_rng r;
    char err[256] = "";
    memset(L, 0, sizeof *L);
    L->d = *d;
    assert_int_equal(clattn_mha_shape_init(d, &L->s, err, sizeof err), CLATTN_SUCCESS);
    const clattn_mha_shape *s = &L->s;
    tu_rng_seed(&r, seed);
    L->wq = tu_alloc(s->q_proj_weight * 4);
    L->wk = tu_alloc(s->k_proj_weight * 4);
    L->wv = tu_alloc(s->v_proj_weight * 4);
    L->wo = tu_alloc(s->out_proj_weight * 4);
    tu_fill_normal(L->wq, CLATTN_F32, s->q_proj_weight, 1.0f / sqrtf((float)s->E), &r);
    tu_fill_normal(L->wk, CLATTN_F32, s->k_proj_weight, 1.0f / sqrtf((float)s->kdim), &r);
    tu_fill_normal(L->wv, CLATTN_F32, s->v_proj_weight, 1.0f / sqrtf((float)s->vdim), &r);
    tu_fill_normal(L->wo, CLATTN_F32, s->out_proj_weight, 1.0f / sqrtf((float)s->E), &r);
    L->bin = tu_alloc((size_t)(s->E + 2 * s->kv_width) * 4);
    L->bo = tu_alloc((size_t)s->E * 4);
    tu_fill_normal(L->bin, CLATTN_F32, (size_t)(s->E + 2 * s->kv_width), 0.1f, &r);
    tu_fill_normal(L->bo, CLATTN_F32, (size_t)s->E, 0.1f, &r);
    L->xq = tu_alloc(s->x_q * 4);
    L->xk = tu_alloc(s->x_k * 4);
    L->xv = tu_alloc(s->x_v * 4);
    tu_fill_normal(L->xq, CLATTN_F32, s->x_q, 1.0f, &r);
    tu_fill_normal(L->xk, CLATTN_F32, s->x_k, 1.0f, &r);
    tu_fill_normal(L->xv, CLATTN_F32, s->x_v, 1.0f, &r);
    if (packed) {
        const size_t qn = s->q_proj_weight, kn = s->k_proj_weight;
        L->win = tu_alloc(s->in_proj_weight * 4);
        memcpy(L->win, L->wq, qn * 4);
        memcpy(L->win + qn, L->wk, kn * 4);
        memcpy(L->win + qn + kn, L->wv, s->v_proj_weight * 4);
        L->w.in_proj_weight = L->win;
    } else {
        L->w.q_proj_weight = L->wq;
        L->w.k_proj_weight = L->wk;
        L->w.v_proj_weight = L->wv;
    }
    L->w.out_proj_weight = L->wo;
    L->w.in_proj_bias = d->in_bias ? L->bin : NULL;
    L->w.out_proj_bias = d->out_bias ? L->bo : NULL;
}

void fx_layer_free(fx_layer *L)
{
    void *p[] = {L->wq, L->wk, L->wv, L->win, L->bin, L->wo, L->bo, L->xq, L->xk, L->xv, L->mask};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        free(p[i]);
}

/* A bool mask [B, Lq, Lk] hiding the last `pad` keys of batch entry 1 (padding) and every key of
   query row 0 of batch entry 0 (a row that sees nothing). */
void fx_layer_padding_mask(fx_layer *L, int pad)
{
    const clattn_mha_shape *s = &L->s;
    const size_t n = (size_t)s->B * (size_t)s->Lq * (size_t)s->Lk;
    unsigned char *m = tu_alloc(n);
    for (int b = 0; b < s->B; b++)
        for (int i = 0; i < s->Lq; i++)
            for (int j = 0; j < s->Lk; j++)
                m[((size_t)b * (size_t)s->Lq + (size_t)i) * (size_t)s->Lk + (size_t)j] =
                    !(b == 1 && j >= s->Lk - pad) && !(b == 0 && i == 0);
    L->d.mask_type = CLATTN_MASK_BOOL_U8;
    L->d.mask_batch_stride = (long)s->Lq * s->Lk;
    L->mask = m;
    L->mask_bytes = n;
}

void fx_layer_key_padding(fx_layer *L, int pad)
{
    const clattn_mha_shape *s = &L->s;
    const size_t n = (size_t)s->B * (size_t)s->Lk;
    unsigned char *m = tu_alloc(n);
    for (int b = 0; b < s->B; b++)
        for (int j = 0; j < s->Lk; j++)
            m[(size_t)b * (size_t)s->Lk + (size_t)j] = !(b == 1 && j >= s->Lk - pad);
    L->d.mask_type = CLATTN_MASK_BOOL_U8;
    L->d.mask_batch_stride = s->Lk;
    L->d.mask_head_stride = 0;
    L->d.mask_row_stride = 0;
    L->d.mask_rows_broadcast = 1;
    L->mask = m;
    L->mask_bytes = n;
}

/* The layer on the device (host API, and buffers when via_buffers) against the reference. */
void fx_check_layer(clattn_context *ctx, const char *label, const fx_layer *L, int via_buffers)
{
    const clattn_mha_shape *s = &L->s;
    const float *xk = L->d.kdim || L->s.Lk != L->s.Lq ? L->xk : NULL;   /* NULL: self-attention */
    const float *xv = xk ? L->xv : NULL;
    float *ref = tu_alloc(s->out * 4), *ref_w = tu_alloc(s->weights * 4);
    float *out = tu_alloc(s->out * 4), *wts = tu_alloc(s->weights * 4);
    char err[256] = "";
    if (clattn_mha_reference(&L->d, &L->w, L->xq, xk, xv, L->mask, ref, ref_w, err, sizeof err) !=
        CLATTN_SUCCESS)
        fail_msg("%s: reference: %s", label, err);
    clattn_status st = via_buffers
        ? fx_forward_buffers(ctx, &L->d, s, &L->w, L->xq, xk, xv, L->mask, L->mask_bytes, out, wts)
        : clattn_mha_forward_host(ctx, &L->d, &L->w, L->xq, xk, xv, L->mask, out, wts);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
    fx_err eo = fx_compare(out, ref, s->out), ew = fx_compare(wts, ref_w, s->weights);
    printf("  %-52s out max|err| %.2e (max|ref| %.2f)  weights max|err| %.2e\n", label, eo.err, eo.ref,
           ew.err);
    assert_false(eo.nan || ew.nan);
    assert_true(eo.err <= FX_OUT_REL * fmax(1.0, eo.ref));
    assert_true(ew.err <= FX_WEIGHTS_ABS);
    free(ref), free(ref_w), free(out), free(wts);
}
