/* The `cpu-blas` baseline, for CPU devices: the same three steps on the host with OpenBLAS, with as
 * many threads as the device has compute units, so both sides get the same cores:
 *   S = scale · Q·Kᵀ (cblas_sgemm), a plain C row softmax with the causal mask, O = P·V (cblas_sgemm).
 * As in the clblast baseline, the query heads sharing a kv head make one (group·Lq) × d matrix;
 * the loop runs over (b, kv head), so the score scratch is one block (group·Lq·Lk floats) on the
 * host, and the device's allocation limit does not apply. The softmax runs on one thread. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>

typedef struct cpublas_run {
    const bench_shape *s;
    const float *q, *k, *v;
    float *out, *scores;
    float scale;
} cpublas_run;

static void softmax_rows(float *s, int rows, int Lq, int Lk, int causal)
{
    for (int r = 0; r < rows; r++) {
        float *p = s + (size_t)r * Lk;
        const int i = r % Lq;
        int visible = Lk;
        if (causal) {
            long last = (long)i + (Lk - Lq);
            visible = last < 0 ? 0 : last + 1 < Lk ? (int)(last + 1) : Lk;
        }
        float m = -INFINITY, sum = 0.0f;
        for (int j = 0; j < visible; j++)
            m = p[j] > m ? p[j] : m;
        for (int j = 0; j < visible; j++) {
            p[j] = expf(p[j] - m);
            sum += p[j];
        }
        const float inv = visible > 0 ? 1.0f / sum : 0.0f;
        for (int j = 0; j < visible; j++)
            p[j] *= inv;
        for (int j = visible; j < Lk; j++)
            p[j] = 0.0f;
    }
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    cpublas_run *run = state;
    const bench_shape *s = run->s;
    const int group = s->Hq / s->Hkv, d = s->d, m = group * s->Lq, n = s->Lk;
    (void)note;
    (void)note_len;

    double t0 = bench_now();
    for (int b = 0; b < s->B; b++) {
        for (int g = 0; g < s->Hkv; g++) {
            const size_t blk = (size_t)b * s->Hkv + g;
            const float *q = run->q + blk * (size_t)m * d;
            const float *k = run->k + blk * (size_t)n * d;
            const float *v = run->v + blk * (size_t)n * d;
            float *o = run->out + blk * (size_t)m * d;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, run->scale, q, d, k, d,
                        0.0f, run->scores, n);
            softmax_rows(run->scores, m, s->Lq, n, s->causal);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, n, 1.0f, run->scores, n, v,
                        d, 0.0f, o, d);
        }
    }
    /* No device work: the host clock is both figures. */
    *kernel_s = *wall_s = bench_now() - t0;
    return BENCH_OK;
}

bench_outcome bench_run_cpublas(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r)
{
    cpublas_run run;
    bench_outcome o = BENCH_FAILED;
    const bench_shape *s = &data->shape;
    r->dtype = "f32";
    if (!(dev->type & CL_DEVICE_TYPE_CPU)) {
        snprintf(r->note, sizeof r->note, "device is a %s, not a CPU",
                 bench_device_type_name(dev->type));
        return BENCH_SKIPPED;
    }
    memset(&run, 0, sizeof run);
    run.s = s;
    run.q = data->q;
    run.k = data->k;
    run.v = data->v;
    run.out = data->out;
    run.scale = 1.0f / sqrtf((float)s->d);
    const size_t block = (size_t)(s->Hq / s->Hkv) * s->Lq * s->Lk;
    run.scores = malloc(block * sizeof(float));
    if (!run.scores) {
        snprintf(r->note, sizeof r->note, "out of host memory for a %zu-float score block", block);
        goto out;
    }
    openblas_set_num_threads((int)dev->compute_units);
    /* NaN first, so that a row the loop never reaches fails the check. */
    for (size_t i = 0; i < data->no; i++)
        data->out[i] = NAN;
    o = bench_measure(run_once, &run, opt, r);
out:
    free(run.scores);
    return o;
}

#else /* !BENCH_HAVE_CBLAS */

bench_outcome bench_run_cpublas(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r)
{
    (void)dev;
    (void)data;
    (void)opt;
    r->dtype = "f32";
    snprintf(r->note, sizeof r->note, "not built: OpenBLAS was not found at configure time");
    return BENCH_SKIPPED;
}

#endif
