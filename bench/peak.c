/* The machine's reference rates, measured in the same run as the layer, so that its projections'
 * GFLOP/s can be read as a share of what the device and a tuned library reach:
 *   bench_fma_peak           fp32 FMA rate of the OpenCL device: every work-item runs a long chain of
 *                            fma's on several independent vector accumulators (so the FMA latency
 *                            does not bound it, only the issue rate does), over every compute unit,
 *                            timed with profiling events (clpeak's compute_sp, with fma); the best of
 *                            a few vector widths and accumulator counts
 *   bench_openblas_sgemm_nt  OpenBLAS SGEMM C = A·Wᵀ (the projections' form) on the host, as many
 *                            threads as the CPU device has compute units (beside a GPU, as the
 *                            host has cores), host clock, median */
#include "bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* T: the vector type, N its width, ACC: independent accumulators (8 or 12). The result is stored so
   that no lane's chain is dead code; a and b arrive as arguments so that nothing folds. */
static const char fma_source[] =
    "#define CAT_(a, b) a##b\n"
    "#define CAT(a, b) CAT_(a, b)\n"
    "#define STEP(x) x = fma(x, va, vb)\n"
    "__kernel void fma_chain(__global float *out, const int iters, const float a, const float b)\n"
    "{\n"
    "    const T va = (T)(a), vb = (T)(b);\n"
    "    const T x = (T)((float)get_global_id(0) * 1e-6f);\n"
    "    T x0 = x, x1 = x + 0.1f, x2 = x + 0.2f, x3 = x + 0.3f;\n"
    "    T x4 = x + 0.4f, x5 = x + 0.5f, x6 = x + 0.6f, x7 = x + 0.7f;\n"
    "#if ACC > 8\n"
    "    T x8 = x + 0.8f, x9 = x + 0.9f, x10 = x + 1.0f, x11 = x + 1.1f;\n"
    "#endif\n"
    "    for (int i = 0; i < iters; i++) {\n"
    "        STEP(x0); STEP(x1); STEP(x2); STEP(x3); STEP(x4); STEP(x5); STEP(x6); STEP(x7);\n"
    "#if ACC > 8\n"
    "        STEP(x8); STEP(x9); STEP(x10); STEP(x11);\n"
    "#endif\n"
    "    }\n"
    "    T s = (x0 + x1) + (x2 + x3) + (x4 + x5) + (x6 + x7);\n"
    "#if ACC > 8\n"
    "    s += (x8 + x9) + (x10 + x11);\n"
    "#endif\n"
    "    CAT(vstore, N)(s, get_global_id(0), out);\n"
    "}\n";

typedef struct fma_variant {
    const char *type;
    int width, acc;
} fma_variant;

static const fma_variant variants[] = {{"float8", 8, 12}, {"float16", 16, 8}, {"float16", 16, 12}};

/* The kernel's time, in seconds, for iters steps over global work-items: its profiling event, unless
   the event spans under a thousandth of the host clock's time (rusticl's events can read ~0, as
   bench_time_device notes), then the host clock. */
static cl_int time_launch(const bench_device *dev, cl_kernel k, size_t global, size_t local, int iters,
                          double *seconds)
{
    cl_event ev = NULL;
    cl_ulong t0 = 0, t1 = 0;
    const double w0 = bench_now();
    cl_int e = clSetKernelArg(k, 1, sizeof iters, &iters);
    if (e == CL_SUCCESS)
        e = clEnqueueNDRangeKernel(dev->queue, k, 1, NULL, &global, &local, 0, NULL, &ev);
    if (e == CL_SUCCESS)
        e = clWaitForEvents(1, &ev);
    const double wall = bench_now() - w0;
    if (e == CL_SUCCESS)
        e = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    if (e == CL_SUCCESS)
        e = clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (ev)
        clReleaseEvent(ev);
    const double span = t1 > t0 ? (double)(t1 - t0) * 1e-9 : 0.0;
    *seconds = span >= 1e-3 * wall ? span : wall;
    return e;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* GFLOP/s of one variant: iterations doubled until a launch fills ~50 ms, then the median of 5. */
static cl_int measure_variant(const bench_device *dev, const fma_variant *v, double *gflops)
{
    cl_int e = CL_SUCCESS;
    cl_kernel k = NULL;
    cl_mem out = NULL;
    char options[96];
    const char *src = fma_source;
    /* A CPU runs a work-group's items in a loop: one item per group, several groups per core so
       every thread gets work. A GPU needs many resident items per compute unit. */
    const int cpu = (dev->type & CL_DEVICE_TYPE_CPU) != 0;
    size_t local = cpu ? 1 : (dev->max_work_group < 256 ? dev->max_work_group : 256);
    size_t global = (size_t)dev->compute_units * (cpu ? 8 : 16) * local;
    cl_program prog = clCreateProgramWithSource(dev->context, 1, &src, NULL, &e);
    if (!prog)
        return e;
    snprintf(options, sizeof options, "-DT=%s -DN=%d -DACC=%d", v->type, v->width, v->acc);
    if ((e = clBuildProgram(prog, 1, &dev->device, options, NULL, NULL)) == CL_SUCCESS)
        k = clCreateKernel(prog, "fma_chain", &e);
    if (e == CL_SUCCESS)
        out = clCreateBuffer(dev->context, CL_MEM_WRITE_ONLY, global * (size_t)v->width * sizeof(float),
                             NULL, &e);
    const float a = 0.999f, b = 1e-3f;   /* a fixed point near 1: no overflow, no denormals */
    if (e == CL_SUCCESS && (e = clSetKernelArg(k, 0, sizeof out, &out)) == CL_SUCCESS &&
        (e = clSetKernelArg(k, 2, sizeof a, &a)) == CL_SUCCESS)
        e = clSetKernelArg(k, 3, sizeof b, &b);
    double t = 0.0, times[5];
    int iters = 256;
    if (e == CL_SUCCESS)
        e = time_launch(dev, k, global, local, iters, &t);   /* warm-up */
    while (e == CL_SUCCESS && t < 0.05 && iters < (1 << 26)) {
        iters *= 2;
        e = time_launch(dev, k, global, local, iters, &t);
    }
    for (int i = 0; e == CL_SUCCESS && i < 5; i++)
        e = time_launch(dev, k, global, local, iters, &times[i]);
    if (e == CL_SUCCESS) {
        qsort(times, 5, sizeof times[0], cmp_double);
        *gflops = 2.0 * v->acc * v->width * (double)iters * (double)global / times[2] * 1e-9;
    }
    if (out)
        clReleaseMemObject(out);
    if (k)
        clReleaseKernel(k);
    clReleaseProgram(prog);
    return e;
}

void bench_fma_peak(const bench_device *dev, bench_rate *rate)
{
    char all[160] = "";
    size_t used = 0;
    cl_int first_error = CL_SUCCESS;
    memset(rate, 0, sizeof *rate);
    rate->outcome = BENCH_FAILED;
    /* The note names the best variant and lists each, so a latency-bound one shows as such. */
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        const fma_variant *v = &variants[i];
        double g = 0.0;
        cl_int e = measure_variant(dev, v, &g);
        if (e != CL_SUCCESS && first_error == CL_SUCCESS)
            first_error = e;
        if (used < sizeof all)
            used += (size_t)snprintf(all + used, sizeof all - used, "%s%sx%d %.1f", i ? ", " : "",
                                     v->type, v->acc, e == CL_SUCCESS ? g : 0.0);
        if (e == CL_SUCCESS && g > rate->gflops) {
            rate->gflops = g;
            rate->outcome = BENCH_OK;
        }
    }
    if (rate->outcome == BENCH_OK)
        snprintf(rate->note, sizeof rate->note, "best of %s", all);
    else
        snprintf(rate->note, sizeof rate->note, "fma_chain: OpenCL error %d", first_error);
}

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>

typedef struct sgemm_run {
    int m, n, k;
    const float *a, *w;
    float *c;
} sgemm_run;

static bench_outcome sgemm_once(void *state, double *kernel_s, double *wall_s, char *note,
                                size_t note_len)
{
    sgemm_run *s = state;
    (void)note, (void)note_len;
    double t0 = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->m, s->n, s->k, 1.0f, s->a, s->k, s->w, s->k,
                0.0f, s->c, s->n);
    *kernel_s = *wall_s = bench_now() - t0;
    return BENCH_OK;
}

void bench_openblas_sgemm_nt(const bench_device *dev, int m, int n, int k, const bench_options *opt,
                             bench_rate *rate)
{
    bench_result r;
    float *a = malloc((size_t)m * k * sizeof *a), *w = malloc((size_t)n * k * sizeof *w),
          *c = malloc((size_t)m * n * sizeof *c);
    memset(rate, 0, sizeof *rate);
    memset(&r, 0, sizeof r);
    rate->outcome = BENCH_FAILED;
    if (!a || !w || !c) {
        snprintf(rate->note, sizeof rate->note, "out of host memory");
        goto out;
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 13) * 0.1f - 0.6f;
    for (size_t i = 0; i < (size_t)n * k; i++)
        w[i] = (float)(i % 7) * 0.05f - 0.15f;
    sgemm_run s = {m, n, k, a, w, c};
    /* The CPU device's cores, as the cpu-blas rows use them; beside a GPU, the host's cores (its
       compute units would ask OpenBLAS for 132 threads on an H200's 16-core host). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads =
        (dev->type & CL_DEVICE_TYPE_CPU) || cpus < 1 ? dev->compute_units : (unsigned)cpus;
    openblas_set_num_threads((int)threads);
    if ((rate->outcome = bench_measure(sgemm_once, &s, opt, &r)) != BENCH_OK) {
        snprintf(rate->note, sizeof rate->note, "%.200s", r.note);
        goto out;
    }
    rate->gflops = 2.0 * m * (double)n * k / r.kernel_s.median * 1e-9;
    snprintf(rate->note, sizeof rate->note, "%dx%dx%d, A·Wᵀ, %u threads, median of %d", m, n, k,
             threads, r.reps);
out:
    free(a), free(w), free(c);
}

#else /* !BENCH_HAVE_CBLAS */

void bench_openblas_sgemm_nt(const bench_device *dev, int m, int n, int k, const bench_options *opt,
                             bench_rate *rate)
{
    (void)dev, (void)m, (void)n, (void)k, (void)opt;
    memset(rate, 0, sizeof *rate);
    rate->outcome = BENCH_SKIPPED;
    snprintf(rate->note, sizeof rate->note, "not built: OpenBLAS was not found at configure time");
}

#endif
