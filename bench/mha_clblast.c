/* The `clblast` layer: the layer built from CLBlast alone, as an OpenCL user would, on the bench's
 * queue: the projection GEMMs (x·Wᵀ), biases added as rank-1 updates (SGER with a ones vector), and
 * the baseline attention pipeline of baseline_clblast.c (scale·Q·Kᵀ, its row softmax kernel, P·V)
 * with batched GEMMs reading Q, K, V in place in BSHD through per-(batch, head) offsets. It runs
 * with the parameters CLBlast holds for the device: its database's, unless clattn applied its own
 * tuned ones earlier in the process (CLBlastOverrideParameters lasts), which is why the entry runs
 * it before any tuned clattn row. */
#include "bench/mha.h"

#ifdef BENCH_HAVE_CLBLAST

#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mha_clblast {
    mha_layer *m;
    cl_mem ones, scores;
    cl_kernel softmax;
    size_t wg;
    size_t qk_off[MHA_B * MHA_HEADS], s_off[MHA_B * MHA_HEADS];
    float alphas[MHA_B * MHA_HEADS], ones_h[MHA_B * MHA_HEADS], zeros[MHA_B * MHA_HEADS];
    mha_part what;
};

static bench_outcome blas(CLBlastStatusCode cs, const char *what, char *note, size_t note_len)
{
    if (cs == CLBlastSuccess)
        return BENCH_OK;
    snprintf(note, note_len, "%s: CLBlast status %d", what, (int)cs);
    return BENCH_FAILED;
}

/* C[rows, E] = A[rows, E]·Wᵀ + bias: the projection as a CLBlast user writes it. */
static bench_outcome project(mha_clblast *c, cl_mem a, cl_mem w, size_t w_off, cl_mem bias,
                             size_t bias_off, cl_mem out, char *note, size_t note_len)
{
    const size_t rows = (size_t)MHA_B * MHA_L, E = MHA_E;
    cl_command_queue q = c->m->dev->queue;
    bench_outcome o = blas(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                        rows, E, E, 1.0f, a, 0, E, w, w_off, E, 0.0f, out, 0, E, &q,
                                        NULL),
                           "SGEMM (projection)", note, note_len);
    if (o == BENCH_OK)
        o = blas(CLBlastSger(CLBlastLayoutRowMajor, rows, E, 1.0f, c->ones, 0, 1, bias, bias_off, 1,
                             out, 0, E, &q, NULL),
                 "SGER (bias)", note, note_len);
    return o;
}

static bench_outcome in_proj(mha_clblast *c, char *note, size_t note_len)
{
    const size_t EE = (size_t)MHA_E * MHA_E;
    const mha_layer *m = c->m;
    bench_outcome o = project(c, m->x_dev, m->w.in_proj_weight, 0, m->w.in_proj_bias, 0, m->q, note,
                              note_len);
    if (o == BENCH_OK)
        o = project(c, m->x_dev, m->w.in_proj_weight, EE, m->w.in_proj_bias, MHA_E, m->k, note,
                    note_len);
    if (o == BENCH_OK)
        o = project(c, m->x_dev, m->w.in_proj_weight, 2 * EE, m->w.in_proj_bias, 2 * MHA_E, m->v,
                    note, note_len);
    return o;
}

static bench_outcome attention(mha_clblast *c, char *note, size_t note_len)
{
    const size_t L = MHA_L, E = MHA_E, dh = MHA_DH, n = (size_t)MHA_B * MHA_HEADS;
    const mha_layer *m = c->m;
    cl_command_queue q = m->dev->queue;
    /* S[b,h] = scale · Q[b,:,h,:]·K[b,:,h,:]ᵀ: rows of Q and K are E apart in BSHD */
    bench_outcome o = blas(CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                               CLBlastTransposeYes, L, L, dh, c->alphas, m->q, c->qk_off,
                                               E, m->k, c->qk_off, E, c->zeros, c->scores, c->s_off, L,
                                               n, &q, NULL),
                           "SGEMM batched (Q·Kᵀ)", note, note_len);
    if (o != BENCH_OK)
        return o;
    size_t local = c->wg, global = n * L * c->wg;
    cl_int e = clEnqueueNDRangeKernel(q, c->softmax, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) {
        snprintf(note, note_len, "clEnqueueNDRangeKernel(row_softmax): %d", e);
        return BENCH_FAILED;
    }
    /* O[b,:,h,:] = P[b,h]·V[b,:,h,:], written in place into the concatenated heads */
    return blas(CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, L, dh,
                                    L, c->ones_h, c->scores, c->s_off, L, m->v, c->qk_off, E, c->zeros,
                                    m->o, c->qk_off, E, n, &q, NULL),
                "SGEMM batched (P·V)", note, note_len);
}

static bench_outcome enqueue(void *state, char *note, size_t note_len)
{
    mha_clblast *c = state;
    bench_outcome o = BENCH_OK;
    if (c->what == MHA_IN_PROJ || c->what == MHA_WHOLE)
        o = in_proj(c, note, note_len);
    if (o == BENCH_OK && (c->what == MHA_ATTENTION || c->what == MHA_WHOLE))
        o = attention(c, note, note_len);
    if (o == BENCH_OK && (c->what == MHA_OUT_PROJ || c->what == MHA_WHOLE))
        o = project(c, c->m->o, c->m->w.out_proj_weight, 0, c->m->w.out_proj_bias, 0, c->m->out, note,
                    note_len);
    return o;
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    mha_clblast *c = state;
    return bench_time_device(c->m->dev->queue, enqueue, state, kernel_s, wall_s, note, note_len);
}

bench_outcome mha_clblast_measure(mha_clblast *c, mha_part part, const bench_options *opt,
                                  bench_result *r)
{
    c->what = part;
    r->dtype = "f32";
    return bench_measure(run_once, c, opt, r);
}

bench_outcome mha_clblast_project_qkv(mha_clblast *c, char *note, size_t note_len)
{
    double k, w;
    c->what = MHA_IN_PROJ;
    return run_once(c, &k, &w, note, note_len);
}

static int build_softmax(mha_clblast *c, char *err, size_t err_len)
{
    const bench_device *dev = c->m->dev;
    cl_int e = CL_SUCCESS;
    const char *src = bench_row_softmax_source;
    char options[32];
    cl_program prog = clCreateProgramWithSource(dev->context, 1, &src, NULL, &e);
    if (!prog) {
        snprintf(err, err_len, "clCreateProgramWithSource(row_softmax): %d", e);
        return -1;
    }
    /* the baseline's work-group choice (baseline_clblast.c): 8 on a CPU, up to 256 elsewhere */
    c->wg = 1;
    while (c->wg * 2 <= 256 && c->wg * 2 <= dev->max_work_group)
        c->wg *= 2;
    if ((dev->type & CL_DEVICE_TYPE_CPU) && c->wg > 8)
        c->wg = 8;
    snprintf(options, sizeof options, "-DWG=%zu", c->wg);
    e = clBuildProgram(prog, 1, &dev->device, options, NULL, NULL);
    if (e == CL_SUCCESS)
        c->softmax = clCreateKernel(prog, "row_softmax", &e);
    clReleaseProgram(prog);
    const cl_int L = MHA_L, zero = 0;
    if (e == CL_SUCCESS && (e = clSetKernelArg(c->softmax, 0, sizeof(cl_mem), &c->scores)) == CL_SUCCESS &&
        (e = clSetKernelArg(c->softmax, 1, sizeof L, &L)) == CL_SUCCESS &&
        (e = clSetKernelArg(c->softmax, 2, sizeof L, &L)) == CL_SUCCESS &&
        (e = clSetKernelArg(c->softmax, 3, sizeof zero, &zero)) == CL_SUCCESS)
        e = clSetKernelArg(c->softmax, 4, sizeof zero, &zero);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "building row_softmax: %d", e);
        return -1;
    }
    return 0;
}

int mha_clblast_create(mha_layer *m, mha_clblast **out, char *err, size_t err_len)
{
    const size_t rows = (size_t)MHA_B * MHA_L;
    cl_int e = CL_SUCCESS;
    mha_clblast *c = calloc(1, sizeof *c);
    float *ones = malloc(rows * sizeof *ones);
    *out = NULL;
    if (!c || !ones) {
        snprintf(err, err_len, "out of host memory");
        goto fail;
    }
    c->m = m;
    for (size_t i = 0; i < rows; i++)
        ones[i] = 1.0f;
    for (int b = 0; b < MHA_B; b++)
        for (int h = 0; h < MHA_HEADS; h++) {
            const int i = b * MHA_HEADS + h;
            c->qk_off[i] = (size_t)b * MHA_L * MHA_E + (size_t)h * MHA_DH;
            c->s_off[i] = (size_t)i * MHA_L * MHA_L;
            c->alphas[i] = 1.0f / sqrtf((float)MHA_DH);
            c->ones_h[i] = 1.0f;
            c->zeros[i] = 0.0f;
        }
    c->ones = clCreateBuffer(m->dev->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                             rows * sizeof *ones, ones, &e);
    if (c->ones)
        c->scores = clCreateBuffer(m->dev->context, CL_MEM_READ_WRITE,
                                   (size_t)MHA_B * MHA_HEADS * MHA_L * MHA_L * sizeof(float), NULL, &e);
    if (!c->ones || !c->scores) {
        snprintf(err, err_len, "clCreateBuffer: %d", e);
        goto fail;
    }
    if (build_softmax(c, err, err_len))
        goto fail;
    free(ones);
    *out = c;
    return 0;
fail:
    free(ones);
    mha_clblast_release(c);
    return -1;
}

void mha_clblast_release(mha_clblast *c)
{
    if (!c)
        return;
    if (c->ones)
        clReleaseMemObject(c->ones);
    if (c->scores)
        clReleaseMemObject(c->scores);
    if (c->softmax)
        clReleaseKernel(c->softmax);
    free(c);
}

#endif /* BENCH_HAVE_CLBLAST */
