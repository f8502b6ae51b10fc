/* The `cpu-blas` layer: what a C user without OpenCL writes, on the host with OpenBLAS, with as many
 * threads as the device has compute units (both sides get the same cores):
 *   Q, K, V = x·Wᵀ + b     each one cblas_sgemm, the bias broadcast into C first and beta = 1
 *   attention              the suite's cpu-blas baseline (bench_cpublas_attention), reading Q, K, V
 *                          in BSHD as the projections wrote them, writing the heads' output there
 *   out = O·W_oᵀ + b_o     one cblas_sgemm, likewise
 * Timed with the host clock, medians, like the suite's cpu-blas rows. */
#include "bench/mha.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>

typedef struct cpublas_layer {
    const mha_layer *m;
    mha_part what;
    float *q, *k, *v, *o, *out, *scores;
} cpublas_layer;

/* c[rows, E] = a[rows, E]·wᵀ + bias */
static void project(const float *a, const float *w, const float *bias, float *c)
{
    const int rows = MHA_B * MHA_L, E = MHA_E;
    for (int r = 0; r < rows; r++)
        memcpy(c + (size_t)r * E, bias, (size_t)E * sizeof *c);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, E, E, 1.0f, a, E, w, E, 1.0f, c, E);
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    cpublas_layer *c = state;
    const mha_layer *m = c->m;
    const size_t EE = (size_t)MHA_E * MHA_E;
    (void)note;
    (void)note_len;
    double t0 = bench_now();
    if (c->what == MHA_IN_PROJ || c->what == MHA_WHOLE) {
        project(m->x, m->w_in, m->b_in, c->q);
        project(m->x, m->w_in + EE, m->b_in + MHA_E, c->k);
        project(m->x, m->w_in + 2 * EE, m->b_in + 2 * MHA_E, c->v);
    }
    if (c->what == MHA_ATTENTION || c->what == MHA_WHOLE) {
        bench_shape s = {"mha", MHA_B, MHA_HEADS, MHA_HEADS, MHA_L, MHA_L, MHA_DH, 0, 0};
        bench_cpublas_attention(&s, CLATTN_LAYOUT_BSHD, c->q, c->k, c->v, c->o, c->scores);
    }
    if (c->what == MHA_OUT_PROJ || c->what == MHA_WHOLE)
        project(c->o, m->w_out, m->b_out, c->out);
    /* No device work: the host clock is both figures. */
    *kernel_s = *wall_s = bench_now() - t0;
    return BENCH_OK;
}

bench_outcome mha_cpublas_measure(const mha_layer *m, mha_part part, const bench_options *opt,
                                  double tol_rel, bench_result *r)
{
    const size_t act = (size_t)MHA_B * MHA_L * MHA_E;
    cpublas_layer c = {m, part, NULL, NULL, NULL, NULL, NULL, NULL};
    bench_outcome o = BENCH_FAILED;
    r->dtype = "f32";
    if (!(m->dev->type & CL_DEVICE_TYPE_CPU)) {
        snprintf(r->note, sizeof r->note, "device is a %s, not a CPU",
                 bench_device_type_name(m->dev->type));
        return BENCH_SKIPPED;
    }
    /* calloc: the parts timed alone read what an earlier part would have written */
    c.q = calloc(act, sizeof(float));
    c.k = calloc(act, sizeof(float));
    c.v = calloc(act, sizeof(float));
    c.o = calloc(act, sizeof(float));
    c.out = malloc(act * sizeof(float));
    c.scores = malloc((size_t)MHA_L * MHA_L * sizeof(float));
    if (!c.q || !c.k || !c.v || !c.o || !c.out || !c.scores) {
        snprintf(r->note, sizeof r->note, "out of host memory");
        goto out;
    }
    openblas_set_num_threads((int)m->dev->compute_units);
    if (part == MHA_ATTENTION || part == MHA_OUT_PROJ) {
        /* realistic inputs for a part timed alone: the parts before it, once, untimed */
        double k, w;
        c.what = MHA_IN_PROJ;
        run_once(&c, &k, &w, r->note, sizeof r->note);
        c.what = MHA_ATTENTION;
        if (part == MHA_OUT_PROJ)
            run_once(&c, &k, &w, r->note, sizeof r->note);
        c.what = part;
    }
    if ((o = bench_measure(run_once, &c, opt, r)) == BENCH_OK && part == MHA_WHOLE)
        mha_layer_check_host(m, c.out, tol_rel, r);
out:
    free(c.q), free(c.k), free(c.v), free(c.o), free(c.out), free(c.scores);
    return o;
}

#else /* !BENCH_HAVE_CBLAS */

bench_outcome mha_cpublas_measure(const mha_layer *m, mha_part part, const bench_options *opt,
                                  double tol_rel, bench_result *r)
{
    (void)m, (void)part, (void)opt, (void)tol_rel;
    r->dtype = "f32";
    snprintf(r->note, sizeof r->note, "not built: OpenBLAS was not found at configure time");
    return BENCH_SKIPPED;
}

#endif
