/* The layer entry's data: seeded input and weights (PyTorch's layout, weights of variance ~1/E),
 * their device copies, the buffers the methods write, and the reference every method's output is
 * checked against: batch entry 0 of clattn_mha_reference in double precision (the entries are
 * independent; the double-precision layer on all four would take a while). */
#include "bench/mha.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *p, size_t n, float scale, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(*state >> 40) / 8388608.0f - 1.0f);
    }
}

static cl_mem buffer(const mha_layer *m, const void *host, size_t bytes, char *err, size_t err_len)
{
    cl_int e = CL_SUCCESS;
    cl_mem b = clCreateBuffer(m->dev->context, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes, (void *)host, &e);
    if (!b)
        snprintf(err, err_len, "clCreateBuffer(%zu bytes): %d", bytes, e);
    return b;
}

static int reference(mha_layer *m, char *err, size_t err_len)
{
    clattn_mha_desc d0 = m->desc;
    d0.batch = 1;
    clattn_mha_weights hw = {0};
    hw.in_proj_weight = m->w_in, hw.in_proj_bias = m->b_in;
    hw.out_proj_weight = m->w_out, hw.out_proj_bias = m->b_out;
    if (clattn_mha_reference(&d0, &hw, m->x, NULL, NULL, NULL, m->ref, NULL, err, err_len) !=
        CLATTN_SUCCESS)
        return -1;
    m->max_ref = 0.0;
    for (size_t i = 0; i < (size_t)MHA_L * MHA_E; i++)
        m->max_ref = fmax(m->max_ref, fabs((double)m->ref[i]));
    return 0;
}

int mha_layer_create(const bench_device *dev, mha_layer *m, char *err, size_t err_len)
{
    const size_t E = MHA_E, nx = (size_t)MHA_B * MHA_L * E, EE = E * E, act = nx * sizeof(float);
    uint64_t seed = 2024;
    memset(m, 0, sizeof *m);
    m->dev = dev;
    clattn_mha_desc *d = &m->desc;
    d->batch = MHA_B;
    d->seq_q = d->seq_kv = MHA_L;
    d->embed_dim = MHA_E;
    d->heads_q = MHA_HEADS;
    d->in_bias = d->out_bias = 1;
    clattn_attention_desc *a = &m->attn;
    a->batch = MHA_B;
    a->heads_q = MHA_HEADS;
    a->seq_q = a->seq_kv = MHA_L;
    a->head_dim = MHA_DH;
    a->layout = CLATTN_LAYOUT_BSHD;

    m->x = malloc(act);
    m->w_in = malloc(3 * EE * sizeof(float));
    m->b_in = malloc(3 * E * sizeof(float));
    m->w_out = malloc(EE * sizeof(float));
    m->b_out = malloc(E * sizeof(float));
    m->ref = malloc((size_t)MHA_L * E * sizeof(float));
    m->out_host = malloc((size_t)MHA_L * E * sizeof(float));
    if (!m->x || !m->w_in || !m->b_in || !m->w_out || !m->b_out || !m->ref || !m->out_host) {
        snprintf(err, err_len, "out of host memory");
        return -1;
    }
    fill(m->x, nx, 1.0f, &seed);
    fill(m->w_in, 3 * EE, 1.7f / sqrtf((float)E), &seed);   /* uniform, variance ~1/E */
    fill(m->b_in, 3 * E, 0.1f, &seed);
    fill(m->w_out, EE, 1.7f / sqrtf((float)E), &seed);
    fill(m->b_out, E, 0.1f, &seed);

    m->w.in_proj_weight = buffer(m, m->w_in, 3 * EE * sizeof(float), err, err_len);
    m->w.in_proj_bias = buffer(m, m->b_in, 3 * E * sizeof(float), err, err_len);
    m->w.out_proj_weight = buffer(m, m->w_out, EE * sizeof(float), err, err_len);
    m->w.out_proj_bias = buffer(m, m->b_out, E * sizeof(float), err, err_len);
    m->x_dev = buffer(m, m->x, act, err, err_len);
    m->out = buffer(m, NULL, act, err, err_len);
    m->q = buffer(m, NULL, act, err, err_len);
    m->k = buffer(m, NULL, act, err, err_len);
    m->v = buffer(m, NULL, act, err, err_len);
    m->o = buffer(m, NULL, act, err, err_len);
    if (!m->w.in_proj_weight || !m->w.in_proj_bias || !m->w.out_proj_weight ||
        !m->w.out_proj_bias || !m->x_dev || !m->out || !m->q || !m->k || !m->v || !m->o)
        return -1;
    if (reference(m, err, err_len))
        return -1;
    return 0;
}

void mha_layer_release(mha_layer *m)
{
    cl_mem all[] = {m->w.in_proj_weight, m->w.in_proj_bias, m->w.out_proj_weight,
                    m->w.out_proj_bias, m->x_dev, m->out, m->q, m->k, m->v, m->o};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(m->x), free(m->w_in), free(m->b_in), free(m->w_out), free(m->b_out);
    free(m->ref), free(m->out_host);
    memset(m, 0, sizeof *m);
}

int mha_layer_poison(mha_layer *m, char *err, size_t err_len)
{
    const float nan = NAN;
    const size_t bytes = (size_t)MHA_B * MHA_L * MHA_E * sizeof(float);
    cl_int e = clEnqueueFillBuffer(m->dev->queue, m->out, &nan, sizeof nan, 0, bytes, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clFinish(m->dev->queue);
    if (e != CL_SUCCESS)
        snprintf(err, err_len, "filling the output with NaN: %d", e);
    return e == CL_SUCCESS ? 0 : -1;
}

void mha_layer_check_host(const mha_layer *m, const float *out, double tol_rel, bench_result *r)
{
    double max_err = 0.0;
    for (size_t i = 0; i < (size_t)MHA_L * MHA_E; i++) {
        const double d = fabs((double)out[i] - m->ref[i]);
        max_err = d > max_err || isnan(d) ? d : max_err;
    }
    r->checked = 1;
    r->max_err = max_err;
    r->max_ref = m->max_ref;
    r->tol = tol_rel * fmax(1.0, m->max_ref);
    r->err_ok = max_err <= r->tol;   /* false for NaN */
}

int mha_layer_check_device(mha_layer *m, double tol_rel, bench_result *r, char *err,
                           size_t err_len)
{
    cl_int e = clEnqueueReadBuffer(m->dev->queue, m->out, CL_TRUE, 0,
                                   (size_t)MHA_L * MHA_E * sizeof(float), m->out_host, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "reading the output: %d", e);
        return -1;
    }
    mha_layer_check_host(m, m->out_host, tol_rel, r);
    return 0;
}
