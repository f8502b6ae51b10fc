/* --kv-int8: decoding with int8 K/V (CLATTN_KV_INT8) against F32 and F16 storage on the suite's
 * decode shape (decode-q with --quick), the fused path, one context and one set of buffers.
 *
 * Decoding reads every key and value once per step, so what storage buys is bytes: each row reports
 * the K/V bytes the step reads (int8 counts its scales), the median kernel time, the GB/s and
 * tokens/s (B sequences, one token each per step) that gives, and the speed-up over the F32 and F16
 * rows. The configurations run in interleaved rounds and each ratio is the median over rounds of
 * the per-round ratio, as in --variants. K/V are quantized on the device (clattn_quantize_kv) from
 * the F32 inputs; each int8 row's output is checked against the double-precision reference run on
 * the same int8 values and scales (read back), with the tolerance of q's storage type. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 3

enum { F32 = 0, F16, INT8_Q32, INT8_Q16, CONFIGS };
static const char *const storage_names[CONFIGS] = {"f32", "f16", "int8", "int8"};
static const clattn_dtype q_types[CONFIGS] = {CLATTN_F32, CLATTN_F16, CLATTN_F32, CLATTN_F16};

/* Int8 copies of data's F32 K and V, quantized on the device, and their scales. */
typedef struct int8_kv {
    cl_mem k, v, k_scale, v_scale;
    size_t nk, nv, rows;
} int8_kv;

static void int8_kv_release(int8_kv *q)
{
    cl_mem all[] = {q->k, q->v, q->k_scale, q->v_scale};
    for (int i = 0; i < 4; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
}

static int make_int8_kv(const bench_device *dev, clattn_context *ctx, const bench_data *data,
                        const clattn_attention_desc *desc, int8_kv *q, char *err, size_t err_len)
{
    const bench_shape *s = &data->shape;
    memset(q, 0, sizeof *q);
    q->nk = data->nk;
    q->nv = data->nv;
    q->rows = (size_t)s->B * (size_t)s->Hkv * (size_t)s->Lk;
    cl_int e = CL_SUCCESS;
    q->k = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, q->nk, NULL, &e);
    if (e == CL_SUCCESS)
        q->v = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, q->nv, NULL, &e);
    if (e == CL_SUCCESS)
        q->k_scale = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, q->rows * sizeof(float), NULL, &e);
    if (e == CL_SUCCESS)
        q->v_scale = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, q->rows * sizeof(float), NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clCreateBuffer: %d", (int)e);
        return -1;
    }
    clattn_attention_desc f32 = *desc;
    f32.dtype = CLATTN_F32;
    f32.kv_storage = CLATTN_KV_SAME;
    f32.k_scale = f32.v_scale = NULL;
    if (clattn_quantize_kv(ctx, &f32, CLATTN_KV_KEYS, data->buf[CLATTN_F32].k, q->k, q->k_scale) !=
            CLATTN_SUCCESS ||
        clattn_quantize_kv(ctx, &f32, CLATTN_KV_VALUES, data->buf[CLATTN_F32].v, q->v, q->v_scale) !=
            CLATTN_SUCCESS) {
        snprintf(err, err_len, "clattn_quantize_kv: %s", clattn_context_last_error(ctx));
        return -1;
    }
    return 0;
}

/* The largest error of out (q's storage type dtype, read back) against the reference on the int8
   values; 0 when within dtype's tolerance. */
static int check_int8(const bench_device *dev, const bench_data *data, const clattn_attention_desc *desc,
                      const int8_kv *q, clattn_dtype dtype, double *max_err, double *tol, char *err,
                      size_t err_len)
{
    signed char *k8 = malloc(q->nk), *v8 = malloc(q->nv);
    float *ks = malloc(q->rows * sizeof(float)), *vs = malloc(q->rows * sizeof(float));
    float *ref = malloc(data->no * sizeof(float));
    float *qf = malloc(data->nq * sizeof(float));
    int rc = -1;
    if (!k8 || !v8 || !ks || !vs || !ref || !qf) {
        snprintf(err, err_len, "out of host memory");
        goto out;
    }
    cl_int e = clEnqueueReadBuffer(dev->queue, q->k, CL_FALSE, 0, q->nk, k8, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueReadBuffer(dev->queue, q->v, CL_FALSE, 0, q->nv, v8, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueReadBuffer(dev->queue, q->k_scale, CL_FALSE, 0, q->rows * 4, ks, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueReadBuffer(dev->queue, q->v_scale, CL_TRUE, 0, q->rows * 4, vs, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clEnqueueReadBuffer: %d", (int)e);
        goto out;
    }
    /* q as its storage type holds it (the suite's values are exact in half) */
    for (size_t i = 0; i < data->nq; i++)
        qf[i] = bench_dtype_round(dtype, data->q[i]);
    clattn_attention_desc rd = *desc;
    rd.dtype = CLATTN_F32;
    rd.k_scale = rd.v_scale = NULL;
    rd.k_scale_host = ks;
    rd.v_scale_host = vs;
    if (clattn_attention_reference(&rd, qf, k8, v8, NULL, ref, NULL, NULL) != CLATTN_SUCCESS) {
        snprintf(err, err_len, "the reference refused the int8 problem");
        goto out;
    }
    double worst = 0.0, top = 1.0;
    for (size_t i = 0; i < data->no; i++) {
        worst = fmax(worst, fabs((double)data->out[i] - ref[i]));
        top = fmax(top, fabs((double)ref[i]));
    }
    *max_err = worst;
    *tol = (dtype == CLATTN_F16 ? 2e-3 : 1e-5) * top;
    rc = worst <= *tol ? 0 : 1;
out:
    free(k8), free(v8), free(ks), free(vs), free(ref), free(qf);
    return rc;
}

int bench_kv_int8_entry(const bench_device *dev, const bench_options *opt)
{
    const bench_shape *s = bench_suite_find(opt->quick, "decode");
    printf("\n== int8 K/V on %s: B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d, fused, %d interleaved rounds\n",
           s->name, s->B, s->Hq, s->Hkv, s->Lq, s->Lk, s->d, ROUNDS);
    const int dtypes[BENCH_DTYPE_COUNT] = {1, 1, 0};
    bench_data data;
    clattn_context *ctx;
    if (bench_entry_open(dev, opt, s, dtypes, &data, &ctx))
        return -1;
    char err[512];
    clattn_attention_desc base;
    bench_shape_desc(s, CLATTN_F32, CLATTN_PATH_FUSED, &base);
    int8_kv q8;
    int ok = make_int8_kv(dev, ctx, &data, &base, &q8, err, sizeof err) == 0;
    if (!ok)
        printf("  failed: %s\n", err);

    /* K/V bytes one step reads */
    const double kv_elems = (double)(data.nk + data.nv);
    const double bytes[CONFIGS] = {kv_elems * 4, kv_elems * 2, kv_elems + 2.0 * q8.rows * 4,
                                   kv_elems + 2.0 * q8.rows * 4};
    double ms[CONFIGS][ROUNDS], vs32[CONFIGS][ROUNDS], vs16[CONFIGS][ROUNDS];
    double max_err[CONFIGS] = {0}, tol[CONFIGS] = {0};
    int checked[CONFIGS] = {0};
    for (int round = 0; round < ROUNDS && ok; round++) {
        for (int c = 0; c < CONFIGS && ok; c++) {
            clattn_attention_desc desc;
            bench_shape_desc(s, q_types[c], CLATTN_PATH_FUSED, &desc);
            bench_buffers buf = data.buf[q_types[c]];
            if (c >= INT8_Q32) {
                desc.kv_storage = CLATTN_KV_INT8;
                desc.k_scale = q8.k_scale;
                desc.v_scale = q8.v_scale;
                buf.k = q8.k;
                buf.v = q8.v;
            }
            bench_result r;
            memset(&r, 0, sizeof r);
            if (bench_data_poison(dev, &data, q_types[c], r.note, sizeof r.note) ||
                bench_time_clattn_desc(ctx, &desc, &buf, opt, &r) != BENCH_OK) {
                printf("  %s K/V, q %s: failed: %s\n", storage_names[c],
                       bench_dtype_name(q_types[c]), r.note);
                ok = 0;
                break;
            }
            ms[c][round] = r.kernel_s.median * 1e3;
            if (c >= INT8_Q32 && round == 0) {
                if (bench_data_read_out(dev, &data, q_types[c], err, sizeof err) ||
                    check_int8(dev, &data, &desc, &q8, q_types[c], &max_err[c], &tol[c], err,
                               sizeof err) < 0) {
                    printf("  int8 K/V, q %s: check failed: %s\n", bench_dtype_name(q_types[c]), err);
                    ok = 0;
                    break;
                }
                checked[c] = 1;
            }
        }
        for (int c = 0; c < CONFIGS && ok; c++) {
            vs32[c][round] = ms[F32][round] / ms[c][round];
            vs16[c][round] = ms[F16][round] / ms[c][round];
        }
    }
    int errors_ok = 1;
    if (ok) {
        printf("  %-8s %-5s %12s %10s %8s %10s %8s %8s %9s %9s\n", "K/V", "q", "K/V MB read",
               "median ms", "GB/s", "tokens/s", "vs f32", "vs f16", "max err", "tol");
        for (int c = 0; c < CONFIGS; c++) {
            const double med = bench_median(ms[c], ROUNDS);
            printf("  %-8s %-5s %12.1f %10.3f %8.2f %10.0f %7.2fx %7.2fx", storage_names[c],
                   bench_dtype_name(q_types[c]), bytes[c] / 1e6, med, bytes[c] / (med * 1e-3) / 1e9,
                   s->B / (med * 1e-3), bench_median(vs32[c], ROUNDS), bench_median(vs16[c], ROUNDS));
            if (checked[c]) {
                printf(" %9.2e %9.1e %s\n", max_err[c], tol[c], max_err[c] <= tol[c] ? "ok" : "EXCEEDED");
                errors_ok &= max_err[c] <= tol[c];
            } else {
                printf(" %9s %9s (checked by the suite's rows)\n", "-", "-");
            }
        }
    }
    int8_kv_release(&q8);
    clattn_context_release(ctx);
    bench_data_release(&data);
    return ok && errors_ok ? 0 : -1;
}
