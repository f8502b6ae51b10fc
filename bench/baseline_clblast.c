/* The `clblast` baseline: attention as an OpenCL user would write it with existing libraries, on
 * the benchmark's queue:
 *   S = scale · Q·Kᵀ      CLBlastSgemmStridedBatched (scale as alpha), into a float score matrix
 *   P = softmax(S)        a plain kernel, one work-group per row, causal mask applied, in place
 *   O = P·V               CLBlastSgemmStridedBatched
 * GQA: batched over (b, kv head); the query heads that share a kv head are adjacent in BHSD, so
 * they form one (group·Lq) × d matrix and a single GEMM per kv head serves the whole group (the
 * K/V block is read once per group, as a fused kernel would). The batch count is B·Hkv. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef BENCH_HAVE_CLBLAST
#include <clblast_c.h>

/* A baseline's own kernel, kept beside the only code that uses it; the library's kernels live in
   cl/ and are embedded by the build. */
const char bench_row_softmax_source[] =
    "#ifndef WG\n"
    "#define WG 8 /* work-group size, a power of two: one group per row */\n"
    "#endif\n"
    "__kernel __attribute__((reqd_work_group_size(WG, 1, 1)))\n"
    "void row_softmax(__global float *s, int Lq, int Lk, int causal, int causal_offset)\n"
    "{\n"
    "    __local float red[WG];\n"
    "    const int t = (int)get_local_id(0);\n"
    "    const long row = (long)get_group_id(0);\n"
    "    __global float *p = s + row * Lk;\n"
    "    /* rows run (b, h, i) with i innermost; key j is visible iff j <= i + causal_offset */\n"
    "    const int i = (int)(row % Lq);\n"
    "    const int visible = causal ? clamp(i + causal_offset + 1, 0, Lk) : Lk;\n"
    "    float m = -INFINITY;\n"
    "    for (int j = t; j < visible; j += WG)\n"
    "        m = fmax(m, p[j]);\n"
    "    red[t] = m;\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    for (int w = WG / 2; w > 0; w >>= 1) {\n"
    "        if (t < w)\n"
    "            red[t] = fmax(red[t], red[t + w]);\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    }\n"
    "    m = red[0];\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    float sum = 0.0f;\n"
    "    for (int j = t; j < visible; j += WG) {\n"
    "        const float x = exp(p[j] - m);\n"
    "        p[j] = x;\n"
    "        sum += x;\n"
    "    }\n"
    "    red[t] = sum;\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    for (int w = WG / 2; w > 0; w >>= 1) {\n"
    "        if (t < w)\n"
    "            red[t] += red[t + w];\n"
    "        barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    }\n"
    "    /* a row that sees no key is all zeros, never NaN */\n"
    "    const float inv = visible > 0 ? 1.0f / red[0] : 0.0f;\n"
    "    for (int j = t; j < Lk; j += WG)\n"
    "        p[j] = j < visible ? p[j] * inv : 0.0f;\n"
    "}\n";

typedef struct clblast_run {
    const bench_device *dev;
    const bench_shape *s;
    cl_command_queue queue;
    cl_mem q, k, v, out, scores;
    cl_kernel softmax;
    size_t wg;
    float scale;
} clblast_run;

static bench_outcome enqueue(void *state, char *note, size_t note_len)
{
    clblast_run *run = state;
    const bench_shape *s = run->s;
    const size_t group = (size_t)(s->Hq / s->Hkv), d = (size_t)s->d;
    const size_t m = group * (size_t)s->Lq, n = (size_t)s->Lk, batch = (size_t)s->B * s->Hkv;
    CLBlastStatusCode cs;

    cs = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                    m, n, d, run->scale,
                                    run->q, 0, d, m * d,
                                    run->k, 0, d, n * d,
                                    0.0f, run->scores, 0, n, m * n,
                                    batch, &run->queue, NULL);
    if (cs != CLBlastSuccess) {
        snprintf(note, note_len, "CLBlastSgemmStridedBatched(Q·Kᵀ): status %d", (int)cs);
        return BENCH_FAILED;
    }
    size_t local = run->wg, global = batch * m * run->wg;
    cl_int e = clEnqueueNDRangeKernel(run->queue, run->softmax, 1, NULL, &global, &local, 0, NULL,
                                      NULL);
    if (e != CL_SUCCESS) {
        snprintf(note, note_len, "clEnqueueNDRangeKernel(row_softmax): %d", e);
        return BENCH_FAILED;
    }
    cs = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo,
                                    m, d, n, 1.0f,
                                    run->scores, 0, n, m * n,
                                    run->v, 0, d, n * d,
                                    0.0f, run->out, 0, d, m * d,
                                    batch, &run->queue, NULL);
    if (cs != CLBlastSuccess) {
        snprintf(note, note_len, "CLBlastSgemmStridedBatched(P·V): status %d", (int)cs);
        return BENCH_FAILED;
    }
    return BENCH_OK;
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    clblast_run *run = state;
    return bench_time_device(run->queue, enqueue, state, kernel_s, wall_s, note, note_len);
}

static int build_softmax(clblast_run *run, char *note, size_t note_len)
{
    cl_int e = CL_SUCCESS;
    const char *src = bench_row_softmax_source;
    char options[64];
    cl_program prog = clCreateProgramWithSource(run->dev->context, 1, &src, NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(note, note_len, "clCreateProgramWithSource(row_softmax): %d", e);
        return -1;
    }
    run->wg = 1;
    while (run->wg * 2 <= 256 && run->wg * 2 <= run->dev->max_work_group)
        run->wg *= 2;
    /* 8 on a CPU: PoCL runs a work-group's items as loops split at each barrier, so a wide group
       only adds overhead (bert on PoCL, softmax alone: 8 -> ~100 ms, 64 -> ~200 ms, 128 -> ~380 ms);
       a GPU wants many items in flight per row. */
    if ((run->dev->type & CL_DEVICE_TYPE_CPU) && run->wg > 8)
        run->wg = 8;
    snprintf(options, sizeof options, "-DWG=%zu", run->wg);
    e = clBuildProgram(prog, 1, &run->dev->device, options, NULL, NULL);
    if (e == CL_SUCCESS)
        run->softmax = clCreateKernel(prog, "row_softmax", &e);
    clReleaseProgram(prog);
    if (e != CL_SUCCESS) {
        snprintf(note, note_len, "building row_softmax: %d", e);
        return -1;
    }
    const cl_int Lq = run->s->Lq, Lk = run->s->Lk, causal = run->s->causal,
                 offset = run->s->Lk - run->s->Lq;
    if ((e = clSetKernelArg(run->softmax, 0, sizeof(cl_mem), &run->scores)) != CL_SUCCESS ||
        (e = clSetKernelArg(run->softmax, 1, sizeof Lq, &Lq)) != CL_SUCCESS ||
        (e = clSetKernelArg(run->softmax, 2, sizeof Lk, &Lk)) != CL_SUCCESS ||
        (e = clSetKernelArg(run->softmax, 3, sizeof causal, &causal)) != CL_SUCCESS ||
        (e = clSetKernelArg(run->softmax, 4, sizeof offset, &offset)) != CL_SUCCESS) {
        snprintf(note, note_len, "clSetKernelArg(row_softmax): %d", e);
        return -1;
    }
    return 0;
}

bench_outcome bench_run_clblast(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r)
{
    clblast_run run;
    bench_outcome o = BENCH_FAILED;
    cl_int e = CL_SUCCESS;
    memset(&run, 0, sizeof run);
    r->dtype = "f32";
    run.dev = dev;
    run.s = &data->shape;
    run.queue = dev->queue;
    run.q = data->buf[CLATTN_F32].q;
    run.k = data->buf[CLATTN_F32].k;
    run.v = data->buf[CLATTN_F32].v;
    run.out = data->buf[CLATTN_F32].out;
    run.scale = 1.0f / sqrtf((float)data->shape.d);

    double score_bytes = bench_shape_score_bytes(&data->shape);
    if (score_bytes > (double)dev->max_alloc) {
        snprintf(r->note, sizeof r->note,
                 "score matrix B*Hq*Lq*Lk*4 = %.0f MiB exceeds CL_DEVICE_MAX_MEM_ALLOC_SIZE = %.0f MiB",
                 score_bytes / 1048576.0, (double)dev->max_alloc / 1048576.0);
        o = BENCH_SKIPPED;
        goto out;
    }
    run.scores = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, (size_t)score_bytes, NULL, &e);
    if (e != CL_SUCCESS) {
        snprintf(r->note, sizeof r->note, "clCreateBuffer(scores, %.0f MiB): %d",
                 score_bytes / 1048576.0, e);
        goto out;
    }
    if (build_softmax(&run, r->note, sizeof r->note))
        goto out;
    if (bench_data_poison(dev, data, CLATTN_F32, r->note, sizeof r->note))
        goto out;
    if ((o = bench_measure(run_once, &run, opt, r)) != BENCH_OK)
        goto out;
    o = BENCH_FAILED;
    if (bench_data_read_out(dev, data, CLATTN_F32, r->note, sizeof r->note))
        goto out;
    o = BENCH_OK;
out:
    if (run.softmax)
        clReleaseKernel(run.softmax);
    if (run.scores)
        clReleaseMemObject(run.scores);
    return o;
}

#else /* !BENCH_HAVE_CLBLAST */

bench_outcome bench_run_clblast(const bench_device *dev, bench_data *data,
                                const bench_options *opt, bench_result *r)
{
    (void)dev;
    (void)data;
    (void)opt;
    r->dtype = "f32";
    snprintf(r->note, sizeof r->note, "not built: CLBlast was not found at configure time");
    return BENCH_SKIPPED;
}

#endif
