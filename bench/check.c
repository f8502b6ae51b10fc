/* The error of a method's output against clattn's double-precision reference, on a sample of rows:
 * the reference on whole shapes would take longer than the methods it checks. The reference reads
 * the inputs as the method's storage type holds them, so a tolerance covers what the method adds
 * (arithmetic, the rounding of its output), not the rounding of its inputs. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Rows checked per shape, spread evenly over all (b, h, i); the first and last always among them. */
#define SAMPLE_ROWS 64

/* n values of src as dtype holds them, into dst. */
static void widen(float *dst, const float *src, size_t n, clattn_dtype dtype)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bench_dtype_round(dtype, src[i]);
}

int bench_check(const bench_data *data, clattn_dtype dtype, double tol_rel, bench_result *r,
                char *err, size_t err_len)
{
    const bench_shape *s = &data->shape;
    const long total = (long)s->B * s->Hq * s->Lq;
    const long n = total < SAMPLE_ROWS ? total : SAMPLE_ROWS;
    const int group = s->Hq / s->Hkv, d = s->d;
    double max_err = 0, max_ref = 0;
    int nan_seen = 0, rc = -1;
    /* One row's q, then the K and V rows it sees (at most Lk each), in dtype's values. */
    float *ref = malloc((size_t)d * sizeof *ref);
    float *in = malloc(((size_t)2 * s->Lk + 1) * d * sizeof *in);
    if (!ref || !in) {
        snprintf(err, err_len, "out of host memory for the reference");
        goto out;
    }
    for (long t = 0; t < n; t++) {
        const long row = n > 1 ? t * (total - 1) / (n - 1) : 0;
        const int b = (int)(row / ((long)s->Hq * s->Lq));
        const int h = (int)(row / s->Lq % s->Hq);
        const int i = (int)(row % s->Lq);
        /* One query row against the keys it may see: bottom-right causal lets row i see keys
           j <= i + (Lk - Lq), a window keys from i + (Lk - Lq) - w on, so the row is a plain
           problem over that range of K and V. */
        int lo;
        const int visible = bench_shape_visible(s, i, &lo);
        clattn_attention_desc desc;
        bench_shape one = *s;
        one.B = one.Hq = one.Hkv = one.Lq = 1;
        one.Lk = visible;
        one.causal = one.window = 0;
        bench_shape_desc(&one, CLATTN_F32, CLATTN_PATH_AUTO, &desc);
        const size_t qo = (((size_t)b * s->Hq + h) * s->Lq + i) * d;
        const size_t ko = (((size_t)b * s->Hkv + h / group) * s->Lk + lo) * d;
        float *q = in, *k = in + d, *v = k + (size_t)visible * d;
        widen(q, data->q + qo, (size_t)d, dtype);
        widen(k, data->k + ko, (size_t)visible * d, dtype);
        widen(v, data->v + ko, (size_t)visible * d, dtype);
        clattn_status st = clattn_attention_reference(&desc, q, k, v, NULL, ref, NULL, NULL);
        if (st != CLATTN_SUCCESS) {
            snprintf(err, err_len, "clattn_attention_reference (row %ld): %s", row,
                     clattn_status_string(st));
            goto out;
        }
        for (int c = 0; c < d; c++) {
            double got = data->out[qo + c], want = ref[c], e = fabs(got - want);
            if (e != e)
                nan_seen = 1;
            else if (e > max_err)
                max_err = e;
            if (fabs(want) > max_ref)
                max_ref = fabs(want);
        }
    }
    r->checked = 1;
    r->max_err = nan_seen ? NAN : max_err;
    r->max_ref = max_ref;
    r->tol = tol_rel * (max_ref > 1 ? max_ref : 1);
    r->err_ok = !nan_seen && max_err <= r->tol;
    rc = 0;
out:
    free(in);
    free(ref);
    return rc;
}
