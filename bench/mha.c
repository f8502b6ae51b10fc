/* The `mha` entry: one BERT-base multi-head attention layer, B=4, L=512, E=768, 12 heads (dh 64),
 * self-attention with biases, fp32, timed two ways in one run on the benchmark's queue:
 *
 *   clattn   clattn_mha_forward: CLBlast GEMMs for the projections, written straight into BSHD,
 *            clattn's attention (AUTO path), the output projection. Timed as one call; the attention
 *            is also timed alone (clattn_attention on the same BSHD Q, K, V), and the projections'
 *            share is the difference (the library enqueues the layer as one call).
 *   clblast  the same layer built from CLBlast alone as an OpenCL user would: the same projection
 *            GEMMs, biases added as rank-1 updates (SGER with a ones vector), and the baseline
 *            attention pipeline of baseline_clblast.c (scale·Q·Kᵀ, its row softmax kernel, P·V) with
 *            batched GEMMs reading Q, K, V in place in BSHD through per-(batch, head) offsets. Each
 *            phase is timed on its own, and the whole layer once more.
 *
 * Both outputs are checked against clattn_mha_reference on batch entry 0 (the entries are
 * independent; the double-precision layer on all four would take a while).
 */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BENCH_HAVE_CLBLAST
#include <clblast_c.h>
#endif

enum { MHA_B = 4, MHA_L = 512, MHA_E = 768, MHA_HEADS = 12, MHA_DH = MHA_E / MHA_HEADS };

/* Error bound, relative to max(1, max|ref|): four float GEMMs with inner width 768 around the
   attention; the clattn layer must meet it, the baseline's error is reported. */
#define TOL_MHA 1e-4

#ifdef BENCH_HAVE_CLBLAST

typedef enum {
    CLATTN_LAYER = 0,    /* clattn_mha_forward */
    CLATTN_ATTENTION,    /* clattn_attention on the BSHD projections */
    BASE_IN_PROJ,        /* q, k, v GEMMs and their biases */
    BASE_ATTENTION,      /* Q·Kᵀ, softmax, P·V */
    BASE_OUT_PROJ,       /* output GEMM and bias */
    BASE_LAYER,          /* the three above */
    PART_COUNT
} part;

static const char *const part_names[PART_COUNT] = {
    "layer (one call)", "attention alone", "q,k,v projections", "attention", "out projection",
    "layer (all parts)",
};

typedef struct mha_run {
    const bench_device *dev;
    clattn_context *ctx;
    clattn_mha_desc desc;
    clattn_attention_desc attn;
    float *x, *w_in, *b_in, *w_out, *b_out, *out_host;
    clattn_mha_weight_buffers w;
    cl_mem x_dev, out, q, k, v, o, scores, ones;
    cl_kernel softmax;
    size_t wg;
    size_t qk_off[MHA_B * MHA_HEADS], s_off[MHA_B * MHA_HEADS];
    float alphas[MHA_B * MHA_HEADS], ones_h[MHA_B * MHA_HEADS], zeros[MHA_B * MHA_HEADS];
    part what;
} mha_run;

static bench_outcome blas(CLBlastStatusCode cs, const char *what, char *note, size_t note_len)
{
    if (cs == CLBlastSuccess)
        return BENCH_OK;
    snprintf(note, note_len, "%s: CLBlast status %d", what, (int)cs);
    return BENCH_FAILED;
}

/* C[rows, E] = A[rows, E]·Wᵀ + bias: the projection as a CLBlast user writes it. */
static bench_outcome project(mha_run *r, cl_mem a, cl_mem w, size_t w_off, cl_mem bias,
                             size_t bias_off, cl_mem c, char *note, size_t note_len)
{
    const size_t rows = (size_t)MHA_B * MHA_L, E = MHA_E;
    cl_command_queue q = r->dev->queue;
    bench_outcome o = blas(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        rows, E, E, 1.0f, a, 0, E, w, w_off, E, 0.0f, c, 0, E, &q, NULL),
                           "SGEMM (projection)", note, note_len);
    if (o == BENCH_OK)
        o = blas(CLBlastSger(CLBlastLayoutRowMajor, rows, E, 1.0f, r->ones, 0, 1, bias, bias_off, 1, c, 0,
                             E, &q, NULL),
                 "SGER (bias)", note, note_len);
    return o;
}

static bench_outcome base_attention(mha_run *r, char *note, size_t note_len)
{
    const size_t L = MHA_L, E = MHA_E, dh = MHA_DH, n = (size_t)MHA_B * MHA_HEADS;
    cl_command_queue q = r->dev->queue;
    /* S[b,h] = scale · Q[b,:,h,:]·K[b,:,h,:]ᵀ: rows of Q and K are E apart in BSHD */
    bench_outcome o = blas(CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                               CLBlastTransposeYes, L, L, dh, r->alphas, r->q, r->qk_off,
                                               E, r->k, r->qk_off, E, r->zeros, r->scores, r->s_off, L,
                                               n, &q, NULL),
                           "SGEMM batched (Q·Kᵀ)", note, note_len);
    if (o != BENCH_OK)
        return o;
    size_t local = r->wg, global = n * L * r->wg;
    cl_int e = clEnqueueNDRangeKernel(q, r->softmax, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(note, note_len, "clEnqueueNDRangeKernel(row_softmax): %d", e);
        return BENCH_FAILED;
    }
    /* O[b,:,h,:] = P[b,h]·V[b,:,h,:], written in place into the concatenated heads */
    return blas(CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, L, dh,
                                    L, r->ones_h, r->scores, r->s_off, L, r->v, r->qk_off, E, r->zeros,
                                    r->o, r->qk_off, E, n, &q, NULL),
                "SGEMM batched (P·V)", note, note_len);
}

static bench_outcome enqueue(void *state, char *note, size_t note_len)
{
    mha_run *r = state;
    const size_t EE = (size_t)MHA_E * MHA_E;
    clattn_status st = CLATTN_SUCCESS;
    bench_outcome o = BENCH_OK;
    switch (r->what) {
    case CLATTN_LAYER:
        st = clattn_mha_forward(r->ctx, &r->desc, &r->w, r->x_dev, NULL, NULL, NULL, r->out, NULL);
        break;
    case CLATTN_ATTENTION:
        st = clattn_attention(r->ctx, &r->attn, r->q, r->k, r->v, NULL, r->o, NULL, NULL);
        break;
    case BASE_LAYER:
    case BASE_IN_PROJ:
        o = project(r, r->x_dev, r->w.in_proj_weight, 0, r->w.in_proj_bias, 0, r->q, note, note_len);
        if (o == BENCH_OK)
            o = project(r, r->x_dev, r->w.in_proj_weight, EE, r->w.in_proj_bias, MHA_E, r->k, note,
                        note_len);
        if (o == BENCH_OK)
            o = project(r, r->x_dev, r->w.in_proj_weight, 2 * EE, r->w.in_proj_bias, 2 * MHA_E, r->v,
                        note, note_len);
        if (o != BENCH_OK || r->what == BASE_IN_PROJ)
            return o;
        /* fall through */
    case BASE_ATTENTION:
        o = base_attention(r, note, note_len);
        if (o != BENCH_OK || r->what == BASE_ATTENTION)
            return o;
        /* fall through */
    case BASE_OUT_PROJ:
        return project(r, r->o, r->w.out_proj_weight, 0, r->w.out_proj_bias, 0, r->out, note, note_len);
    case PART_COUNT:
        break;
    }
    if (st == CLATTN_SUCCESS)
        return BENCH_OK;
    snprintf(note, note_len, "%s %s", clattn_status_string(st), clattn_context_last_error(r->ctx));
    return st == CLATTN_UNSUPPORTED ? BENCH_UNSUPPORTED : BENCH_FAILED;
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    mha_run *r = state;
    return bench_time_device(r->dev->queue, enqueue, state, kernel_s, wall_s, note, note_len);
}

static void fill(float *p, size_t n, float scale, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(*state >> 40) / 8388608.0f - 1.0f);
    }
}

static cl_mem buffer(const mha_run *r, const void *host, size_t bytes, char *err, size_t err_len)
{
    cl_int e = CL_SUCCESS;
    cl_mem m = clCreateBuffer(r->dev->context, CL_MEM_READ_WRITE | (host ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes, (void *)host, &e);
    if (!m)
        snprintf(err, err_len, "clCreateBuffer(%zu bytes): %d", bytes, e);
    return m;
}

static int build_softmax(mha_run *r, char *err, size_t err_len)
{
    cl_int e = CL_SUCCESS;
    const char *src = bench_row_softmax_source;
    char options[32];
    cl_program prog = clCreateProgramWithSource(r->dev->context, 1, &src, NULL, &e);
    if (!prog) {
        snprintf(err, err_len, "clCreateProgramWithSource(row_softmax): %d", e);
        return -1;
    }
    /* the baseline's work-group choice (baseline_clblast.c): 8 on a CPU, up to 256 elsewhere */
    r->wg = 1;
    while (r->wg * 2 <= 256 && r->wg * 2 <= r->dev->max_work_group)
        r->wg *= 2;
    if ((r->dev->type & CL_DEVICE_TYPE_CPU) && r->wg > 8)
        r->wg = 8;
    snprintf(options, sizeof options, "-DWG=%zu", r->wg);
    e = clBuildProgram(prog, 1, &r->dev->device, options, NULL, NULL);
    if (e == CL_SUCCESS)
        r->softmax = clCreateKernel(prog, "row_softmax", &e);
    clReleaseProgram(prog);
    const cl_int L = MHA_L, zero = 0;
    if (e == CL_SUCCESS && (e = clSetKernelArg(r->softmax, 0, sizeof(cl_mem), &r->scores)) == CL_SUCCESS &&
        (e = clSetKernelArg(r->softmax, 1, sizeof L, &L)) == CL_SUCCESS &&
        (e = clSetKernelArg(r->softmax, 2, sizeof L, &L)) == CL_SUCCESS &&
        (e = clSetKernelArg(r->softmax, 3, sizeof zero, &zero)) == CL_SUCCESS)
        e = clSetKernelArg(r->softmax, 4, sizeof zero, &zero);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "building row_softmax: %d", e);
        return -1;
    }
    return 0;
}

static int setup(mha_run *r, char *err, size_t err_len)
{
    const size_t E = MHA_E, nx = (size_t)MHA_B * MHA_L * E, EE = E * E;
    uint64_t seed = 2024;
    clattn_mha_desc *d = &r->desc;
    d->batch = MHA_B;
    d->seq_q = d->seq_kv = MHA_L;
    d->embed_dim = MHA_E;
    d->heads_q = MHA_HEADS;
    d->in_bias = d->out_bias = 1;
    clattn_attention_desc *a = &r->attn;   /* what the layer runs inside */
    a->batch = MHA_B;
    a->heads_q = MHA_HEADS;
    a->seq_q = a->seq_kv = MHA_L;
    a->head_dim = MHA_DH;
    a->layout = CLATTN_LAYOUT_BSHD;

    r->x = malloc(nx * sizeof(float));
    r->w_in = malloc(3 * EE * sizeof(float));
    r->b_in = malloc(3 * E * sizeof(float));
    r->w_out = malloc(EE * sizeof(float));
    r->b_out = malloc(E * sizeof(float));
    r->out_host = malloc(nx * sizeof(float));
    float *ones = malloc((size_t)MHA_B * MHA_L * sizeof(float));
    if (!r->x || !r->w_in || !r->b_in || !r->w_out || !r->b_out || !r->out_host || !ones) {
        free(ones);
        snprintf(err, err_len, "out of host memory");
        return -1;
    }
    fill(r->x, nx, 1.0f, &seed);
    fill(r->w_in, 3 * EE, 1.7f / sqrtf((float)E), &seed);   /* uniform, variance ~1/E */
    fill(r->b_in, 3 * E, 0.1f, &seed);
    fill(r->w_out, EE, 1.7f / sqrtf((float)E), &seed);
    fill(r->b_out, E, 0.1f, &seed);
    for (size_t i = 0; i < (size_t)MHA_B * MHA_L; i++)
        ones[i] = 1.0f;
    for (int b = 0; b < MHA_B; b++)
        for (int h = 0; h < MHA_HEADS; h++) {
            const int i = b * MHA_HEADS + h;
            r->qk_off[i] = (size_t)b * MHA_L * E + (size_t)h * MHA_DH;
            r->s_off[i] = (size_t)i * MHA_L * MHA_L;
            r->alphas[i] = 1.0f / sqrtf((float)MHA_DH);
            r->ones_h[i] = 1.0f;
            r->zeros[i] = 0.0f;
        }

    const size_t act = nx * sizeof(float);
    r->w.in_proj_weight = buffer(r, r->w_in, 3 * EE * sizeof(float), err, err_len);
    r->w.in_proj_bias = buffer(r, r->b_in, 3 * E * sizeof(float), err, err_len);
    r->w.out_proj_weight = buffer(r, r->w_out, EE * sizeof(float), err, err_len);
    r->w.out_proj_bias = buffer(r, r->b_out, E * sizeof(float), err, err_len);
    r->x_dev = buffer(r, r->x, act, err, err_len);
    r->ones = buffer(r, ones, (size_t)MHA_B * MHA_L * sizeof(float), err, err_len);
    free(ones);
    r->out = buffer(r, NULL, act, err, err_len);
    r->q = buffer(r, NULL, act, err, err_len);
    r->k = buffer(r, NULL, act, err, err_len);
    r->v = buffer(r, NULL, act, err, err_len);
    r->o = buffer(r, NULL, act, err, err_len);
    r->scores = buffer(r, NULL, (size_t)MHA_B * MHA_HEADS * MHA_L * MHA_L * sizeof(float), err, err_len);
    if (!r->w.in_proj_weight || !r->w.in_proj_bias || !r->w.out_proj_weight || !r->w.out_proj_bias ||
        !r->x_dev || !r->ones || !r->out || !r->q || !r->k || !r->v || !r->o || !r->scores)
        return -1;
    if (build_softmax(r, err, err_len))
        return -1;
    clattn_status st = clattn_context_create_from_queue(r->dev->queue, &r->ctx);
    if (st != CLATTN_SUCCESS) {
        snprintf(err, err_len, "clattn_context_create_from_queue: %s", clattn_status_string(st));
        return -1;
    }
    return 0;
}

static void teardown(mha_run *r)
{
    cl_mem all[] = {r->w.in_proj_weight, r->w.in_proj_bias, r->w.out_proj_weight, r->w.out_proj_bias,
                    r->x_dev, r->ones, r->out, r->q, r->k, r->v, r->o, r->scores};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    if (r->softmax)
        clReleaseKernel(r->softmax);
    clattn_context_release(r->ctx);
    free(r->x), free(r->w_in), free(r->b_in), free(r->w_out), free(r->b_out), free(r->out_host);
}

/* max |out - ref| over batch entry 0, ref from the double-precision layer; 0 on success. */
static int check(mha_run *r, const float *ref, double *err, double *max_ref, char *msg, size_t len)
{
    const size_t n = (size_t)MHA_L * MHA_E;
    cl_int e = clEnqueueReadBuffer(r->dev->queue, r->out, CL_TRUE, 0, n * sizeof(float), r->out_host, 0,
                                   NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(msg, len, "reading the output: %d", e);
        return -1;
    }
    *err = 0.0, *max_ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)r->out_host[i] - ref[i]);
        *err = d > *err || isnan(d) ? d : *err;
        *max_ref = fmax(*max_ref, fabs((double)ref[i]));
    }
    return 0;
}

static void report_row(const char *method, part p, const bench_result *res, double flops)
{
    printf("  %-8s %-20s ", method, part_names[p]);
    if (res->outcome != BENCH_OK) {
        printf("%s: %s\n", res->outcome == BENCH_UNSUPPORTED ? "unsupported" : "FAILED", res->note);
        return;
    }
    printf("%5d %10.2f %9.2f %9.2f %9.2f", res->reps, res->kernel_s.median * 1e3,
           res->kernel_s.min * 1e3, res->kernel_s.max * 1e3, res->wall_s.median * 1e3);
    if (flops > 0)
        printf(" %9.1f", flops / res->kernel_s.median * 1e-9);
    printf("\n");
}

int bench_mha_entry(const bench_device *dev, const bench_options *opt)
{
    mha_run r;
    bench_result res[PART_COUNT];
    char err[512] = "";
    float *ref = NULL;
    int rc = 1;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof res);
    r.dev = dev;
    const double proj_flops = 4.0 * 2.0 * MHA_B * MHA_L * (double)MHA_E * MHA_E;
    const double attn_flops = 4.0 * MHA_B * MHA_HEADS * (double)MHA_L * MHA_L * MHA_DH;
    printf("\n== mha: B=%d L=%d E=%d heads=%d (dh %d), self-attention with biases, f32  (projections "
           "%.2f GFLOP, attention %.2f GFLOP)\n", MHA_B, MHA_L, MHA_E, MHA_HEADS, MHA_DH,
           proj_flops * 1e-9, attn_flops * 1e-9);
    if (setup(&r, err, sizeof err)) {
        printf("  FAILED: %s\n", err);
        goto out;
    }
    printf("  %-8s %-20s %5s %10s %9s %9s %9s %9s\n", "method", "part", "reps", "median ms", "min ms",
           "max ms", "wall ms", "GFLOP/s");
    fflush(stdout);

    /* The reference first: batch entry 0 of the layer in double precision. */
    clattn_mha_desc d0 = r.desc;
    d0.batch = 1;
    clattn_mha_weights hw = {0};
    hw.in_proj_weight = r.w_in, hw.in_proj_bias = r.b_in;
    hw.out_proj_weight = r.w_out, hw.out_proj_bias = r.b_out;
    ref = malloc((size_t)MHA_L * MHA_E * sizeof *ref);
    if (!ref || clattn_mha_reference(&d0, &hw, r.x, NULL, NULL, NULL, ref, NULL, err, sizeof err) !=
                    CLATTN_SUCCESS) {
        printf("  FAILED: reference: %s\n", ref ? err : "out of host memory");
        goto out;
    }

    double err_clattn = NAN, err_base = NAN, max_ref = 0.0;
    rc = 0;
    for (int p = 0; p < PART_COUNT; p++) {
        r.what = (part)p;
        if (p == CLATTN_ATTENTION || p == BASE_ATTENTION) {
            /* realistic Q, K, V for the attention-only runs: the projections of the input */
            r.what = BASE_IN_PROJ;
            char note[256];
            double k, w;
            if (run_once(&r, &k, &w, note, sizeof note) != BENCH_OK) {
                printf("  FAILED: %s\n", note);
                rc = 1;
                break;
            }
            r.what = (part)p;
        }
        res[p].outcome = bench_measure(run_once, &r, opt, &res[p]);
        const double flops = p == CLATTN_ATTENTION || p == BASE_ATTENTION ? attn_flops
                           : p == BASE_IN_PROJ ? proj_flops * 0.75
                           : p == BASE_OUT_PROJ ? proj_flops * 0.25 : proj_flops + attn_flops;
        report_row(p < BASE_IN_PROJ ? "clattn" : "clblast", (part)p, &res[p], flops);
        if (res[p].outcome == BENCH_OK && (p == CLATTN_LAYER || p == BASE_LAYER) &&
            check(&r, ref, p == CLATTN_LAYER ? &err_clattn : &err_base, &max_ref, err, sizeof err)) {
            printf("  FAILED: %s\n", err);
            rc = 1;
        }
        if (res[p].outcome == BENCH_FAILED || (p == CLATTN_LAYER && res[p].outcome != BENCH_OK))
            rc = 1;
    }

    const double tol = TOL_MHA * fmax(1.0, max_ref);
    if (res[CLATTN_LAYER].outcome == BENCH_OK && res[CLATTN_ATTENTION].outcome == BENCH_OK) {
        const double layer = res[CLATTN_LAYER].kernel_s.median,
                     attn = res[CLATTN_ATTENTION].kernel_s.median;
        printf("  clattn   projections (layer - attention): %.2f ms (%.0f%% of the layer)\n",
               (layer - attn) * 1e3, 100.0 * (layer - attn) / layer);
    }
    if (res[BASE_LAYER].outcome == BENCH_OK) {
        const double proj = res[BASE_IN_PROJ].kernel_s.median + res[BASE_OUT_PROJ].kernel_s.median;
        printf("  clblast  projections (q,k,v + out): %.2f ms (%.0f%% of the layer)\n", proj * 1e3,
               100.0 * proj / res[BASE_LAYER].kernel_s.median);
    }
    if (res[CLATTN_LAYER].outcome == BENCH_OK && res[BASE_LAYER].outcome == BENCH_OK)
        printf("  speedup (clblast median / clattn median): layer %.2fx, attention %.2fx\n",
               res[BASE_LAYER].kernel_s.median / res[CLATTN_LAYER].kernel_s.median,
               res[CLATTN_ATTENTION].outcome == BENCH_OK
                   ? res[BASE_ATTENTION].kernel_s.median / res[CLATTN_ATTENTION].kernel_s.median
                   : 0.0);
    printf("  max |out - reference| on batch entry 0 (max|ref| %.2f, tolerance %.1e): clattn %.2e%s, "
           "clblast %.2e\n", max_ref, tol, err_clattn, !(err_clattn <= tol) ? " EXCEEDS" : "", err_base);
    if (!(err_clattn <= tol))
        rc = 1;
    printf("  scratch held by the clattn context: %.1f MiB\n",
           (double)clattn_context_scratch_bytes(r.ctx) / 1048576.0);
out:
    free(ref);
    teardown(&r);
    return rc;
}

#else /* !BENCH_HAVE_CLBLAST */

int bench_mha_entry(const bench_device *dev, const bench_options *opt)
{
    (void)dev;
    (void)opt;
    printf("\n== mha: skipped: CLBlast was not found at configure time (both the clattn layer and "
           "its baseline need it)\n");
    return 0;
}

#endif
