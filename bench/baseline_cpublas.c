/* The `cpu-blas` baseline, for CPU devices: the same three steps on the host with OpenBLAS, with as
 * many threads as the device has compute units, so both sides get the same cores:
 *   S = scale · Q·Kᵀ (cblas_sgemm), a plain C row softmax with the causal mask, O = P·V (cblas_sgemm).
 * As in the clblast baseline, the query heads sharing a kv head make one (group·Lq) × d matrix;
 * the loop runs over (b, kv head), so the score scratch is one block (group·Lq·Lk floats) on the
 * host, and the device's allocation limit does not apply. The softmax runs on one thread.
 * bench_cpublas_attention is also the attention of the layer entry's cpu-blas layer (mha_cpublas.c),
 * which reads Q, K, V in BSHD as its projections write them. */
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

void bench_cpublas_attention(const bench_shape *s, clattn_layout layout, const float *q,
                             const float *k, const float *v, float *out, float *scores)
{
    const int group = s->Hq / s->Hkv, d = s->d, n = s->Lk;
    const float scale = 1.0f / sqrtf((float)d);
    /* BHSD: a kv head's query heads are one (group·Lq) × d matrix, one GEMM pair. BSHD: rows of a
       head are Hq·d apart and the heads of a group interleave, so each query head is its own pair. */
    const int bhsd = layout == CLATTN_LAYOUT_BHSD, per_gemm = bhsd ? group : 1, m = per_gemm * s->Lq;
    const size_t ldq = bhsd ? (size_t)d : (size_t)s->Hq * d, ldk = bhsd ? (size_t)d : (size_t)s->Hkv * d;
    for (int b = 0; b < s->B; b++) {
        for (int g = 0; g < s->Hkv; g++) {
            const size_t kv_off = bhsd ? ((size_t)b * s->Hkv + g) * (size_t)n * d
                                       : (size_t)b * n * ldk + (size_t)g * d;
            for (int j = 0; j < group; j += per_gemm) {
                const int h = g * group + j;
                const size_t q_off = bhsd ? ((size_t)b * s->Hq + h) * (size_t)s->Lq * d
                                          : (size_t)b * s->Lq * ldq + (size_t)h * d;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, d, scale, q + q_off,
                            (int)ldq, k + kv_off, (int)ldk, 0.0f, scores, n);
                softmax_rows(scores, m, s->Lq, n, s->causal);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, d, n, 1.0f, scores, n,
                            v + kv_off, (int)ldk, 0.0f, out + q_off, (int)ldq);
            }
        }
    }
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    cpublas_run *run = state;
    (void)note;
    (void)note_len;

    double t0 = bench_now();
    bench_cpublas_attention(run->s, CLATTN_LAYOUT_BHSD, run->q, run->k, run->v, run->out,
                            run->scores);
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
