/* clattn's own projection GEMM (host/layer/gemm_own.c, cl/proj_gemm.cl) against a double-precision
 * CPU GEMM, C = A·Wᵀ + bias, at every device class's default parameters (the CPU mapping reads
 * global memory directly; the GPU and accelerator ones stage TILE_K slices in local memory behind
 * barriers) and at points that exercise the edges (scalar VK, register blocks that divide nothing,
 * a tile deeper than inner), over shapes that are not multiples of any block, F32 and F16, with and
 * without bias, with the weight and bias read at an offset (the packed in_proj_weight's k and v
 * parts). Each kernel's CL_KERNEL_LOCAL_MEM_SIZE is held to the family's local_bytes().
 *
 * Tolerance: a dot product of n float products carries at most about n·eps·Σ|a·w| of rounding
 * (here 4·eps·Σ|a·w|·sqrt(n) is ample and still fails a wrong element by orders of magnitude);
 * F16 storage adds one rounding of the output, 2^-11·|c|. The inputs are the rounded ones for both.
 *
 * `--small`: the two smallest shapes only, for the oclgrind run (tests/meson.build), and no VK 16
 * point: oclgrind 21.10 reports "Controlflow depends on uninitialized value" for every element when
 * a float16 accumulator set to zero is summed without the vector loop having run (inner < 16),
 * though the same code at VK 8, or at VK 16 with inner >= 16, is clean; the CPU mapping it runs
 * has no local memory or barriers for the simulator to check anyway.
 */
#include "host/cache/cache.h"
#include "host/layer/gemm.h"
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int small_only;

typedef struct shape {
    size_t rows, cols, inner, w_off, bias_off;
} shape;

static const shape shapes[] = {
    {5, 7, 3, 0, 0},
    {37, 50, 23, 11, 5},
    {1, 12, 36, 0, 0},
    {129, 33, 100, 33 * 100, 33},
    {64, 64, 64, 0, 0},
    {200, 96, 131, 0, 0},
};

/* Runs g's own-kernel GEMM at params and checks every element. Returns 1 when within tolerance. */
static int check_gemm(clattn_context *ctx, const shape *sh, clattn_dtype dtype, int with_bias,
                      const clattn_params *params, const char *label)
{
    cl_context cl = clattn_context_cl_context(ctx);
    cl_command_queue q = clattn_context_queue(ctx);
    const size_t es = clattn_dtype_size(dtype);
    const size_t na = sh->rows * sh->inner, nw = sh->w_off + sh->cols * sh->inner;
    const size_t nb = sh->bias_off + sh->cols, nc = sh->rows * sh->cols;
    tu_rng r;
    tu_rng_seed(&r, 1000u + sh->rows * 7u + sh->cols);
    void *ha = tu_alloc(na * es), *hw = tu_alloc(nw * es), *hb = tu_alloc(nb * es), *hc = tu_alloc(nc * es);
    tu_fill_normal(ha, dtype, na, 1.0f, &r);
    tu_fill_normal(hw, dtype, nw, 0.5f, &r);
    tu_fill_normal(hb, dtype, nb, 1.0f, &r);
    tu_fill_value(hc, dtype, nc, 42.0f);
    cl_int err;
    cl_mem a = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, na * es, ha, &err);
    cl_mem w = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nw * es, hw, &err);
    cl_mem b = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nb * es, hb, &err);
    cl_mem c = clCreateBuffer(cl, CL_MEM_COPY_HOST_PTR, nc * es, hc, &err);
    assert_true(a && w && b && c);

    clattn_gemm g = {"test", dtype, a, w, with_bias ? b : NULL, c, sh->w_off, sh->bias_off,
                     sh->rows, sh->cols, sh->inner};
    clattn_test_lock(ctx);
    clattn_status st = clattn_gemm_own.enqueue(ctx, &g, params, NULL);
    clattn_test_unlock(ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
    assert_int_equal(clEnqueueReadBuffer(q, c, CL_TRUE, 0, nc * es, hc, 0, NULL, NULL), CL_SUCCESS);

    double worst = 0.0;   /* error as a share of the element's tolerance */
    for (size_t i = 0; i < sh->rows; i++)
        for (size_t j = 0; j < sh->cols; j++) {
            double sum = with_bias ? tu_get(hb, dtype, sh->bias_off + j) : 0.0, mag = fabs(sum);
            for (size_t k = 0; k < sh->inner; k++) {
                double p = (double)tu_get(ha, dtype, i * sh->inner + k) *
                           tu_get(hw, dtype, sh->w_off + j * sh->inner + k);
                sum += p;
                mag += fabs(p);
            }
            double tol = 4.0 * FLT_EPSILON * mag * sqrt((double)sh->inner + 1.0) + 1e-30;
            if (dtype == CLATTN_F16)
                tol += fabs(sum) * 0x1p-11;
            const double got = tu_get(hc, dtype, i * sh->cols + j);
            const double share = fabs(got - sum) / tol;
            if (!(share <= 1.0))
                fail_msg("%s: C[%zu][%zu] = %.8g, want %.8g (tolerance %.3g)", label, i, j, got, sum, tol);
            if (share > worst)
                worst = share;
        }
    clReleaseMemObject(a);
    clReleaseMemObject(w);
    clReleaseMemObject(b);
    clReleaseMemObject(c);
    free(ha), free(hw), free(hb), free(hc);
    return worst <= 1.0;
}

/* The parameter points: each device class's defaults, then the edge points. */
static int points(clattn_params *out, char labels[][96], int max)
{
    static const int edge[][6] = {
        /* RM RN VK WG_M WG_N TILE_K */
        {3, 5, 1, 2, 4, 1},      /* scalar, blocks that divide nothing */
        {7, 3, 2, 3, 2, 1},      /* RM 7: not a candidate, but the kernel takes it */
        {2, 2, 8, 4, 4, 32},     /* local tiles deeper than some inner sizes */
        {1, 1, 16, 1, 1, 1},     /* one element per item, the k tail of every shape */
        {8, 8, 4, 2, 2, 64},
    };
    int n = 0;
    for (int cls = 0; cls < 3 && n < max; cls++, n++) {
        clattn_params_defaults(&clattn_proj_family, (clattn_device_class)cls, &out[n]);
        snprintf(labels[n], sizeof labels[n], "%s defaults", cls == 0 ? "CPU" : cls == 1 ? "GPU" : "accelerator");
    }
    for (size_t e = 0; e < sizeof edge / sizeof edge[0] && n < max; e++, n++) {
        memset(&out[n], 0, sizeof out[n]);
        for (int i = 0; i < 6; i++)
            out[n].v[i] = edge[e][i];
        snprintf(labels[n], sizeof labels[n], "edge point %zu", e);
    }
    return n;
}

static void test_against_reference(void **state)
{
    clattn_context *ctx = *state;
    clattn_params pts[16];
    char labels[16][96];
    const int n_pts = points(pts, labels, 16);
    const size_t n_shapes = small_only ? 2 : sizeof shapes / sizeof shapes[0];
    int cases = 0;
    for (int pi = 0; pi < n_pts; pi++) {
        char params[160], why[256];
        int ran = 0;
        clattn_params_string(&clattn_proj_family, &pts[pi], params, sizeof params);
        for (size_t si = 0; si < n_shapes; si++) {
            const shape *sh = &shapes[si];
            clattn_problem p;
            clattn_gemm_problem(CLATTN_F32, sh->rows, sh->cols, sh->inner, &p);
            if (small_only && pts[pi].v[2] == 16) {   /* VK: see the comment on top */
                printf("  %s (%s): skipped under --small\n", labels[pi], params);
                break;
            }
            if (!clattn_proj_family.valid(&pts[pi], clattn_test_device(ctx), &p, why, sizeof why)) {
                printf("  %s (%s): not valid here: %s\n", labels[pi], params, why);
                break;
            }
            for (int dt = 0; dt < 2; dt++)
                for (int bias = 0; bias < 2; bias++) {
                    /* F16 and no-bias on every other shape: the kernel variants, not every product */
                    if ((dt || !bias) && si % 2)
                        continue;
                    char label[2048];
                    snprintf(label, sizeof label, "%s (%s), %zux%zux%zu, %s, %s", labels[pi], params,
                             sh->rows, sh->cols, sh->inner, dt ? "F16" : "F32", bias ? "bias" : "no bias");
                    assert_true(check_gemm(ctx, sh, dt ? CLATTN_F16 : CLATTN_F32, bias, &pts[pi], label));
                    cases++;
                    ran++;
                }
        }
        if (ran)
            printf("  %-18s %s: ok\n", labels[pi], params);
    }
    printf("%d cases, all within tolerance\n", cases);
}

/* The family's local_bytes() against each compiled kernel's CL_KERNEL_LOCAL_MEM_SIZE. */
static void test_local_memory(void **state)
{
    clattn_context *ctx = *state;
    clattn_params pts[16];
    char labels[16][96];
    const int n_pts = points(pts, labels, 16);
    clattn_problem p;
    clattn_gemm_problem(CLATTN_F32, 64, 64, 64, &p);
    for (int pi = 0; pi < n_pts; pi++) {
        char options[256], why[256];
        if (!clattn_proj_family.valid(&pts[pi], clattn_test_device(ctx), &p, why, sizeof why))
            continue;
        snprintf(options, sizeof options, " -DUSE_F16=0 -DHAS_BIAS=1");
        assert_int_equal(clattn_params_defines(&clattn_proj_family, &pts[pi], options, sizeof options), 0);
        cl_kernel k;
        clattn_test_lock(ctx);
        clattn_status st = clattn_kernel_get(ctx, clattn_proj_family.file, options, "proj_gemm", &k);
        clattn_test_unlock(ctx);
        assert_int_equal(st, CLATTN_SUCCESS);
        cl_ulong reported = 0;
        cl_device_id dev;
        assert_int_equal(clGetCommandQueueInfo(clattn_context_queue(ctx), CL_QUEUE_DEVICE, sizeof dev,
                                               &dev, NULL), CL_SUCCESS);
        assert_int_equal(clGetKernelWorkGroupInfo(k, dev, CL_KERNEL_LOCAL_MEM_SIZE, sizeof reported,
                                                  &reported, NULL), CL_SUCCESS);
        const size_t declared = clattn_proj_family.local_bytes(&pts[pi], &p);
        printf("  %-18s declared %6zu  kernel %6llu\n", labels[pi], declared, (unsigned long long)reported);
        /* Never less than the arrays. PoCL reports exactly them (a little slack for alignment);
           llvmpipe (Mesa rusticl) reports twice as much, which clattn's launch check reads from
           the kernel itself (cache/fit.c), so only the lower bound holds everywhere. */
        char platform[256] = "";
        cl_platform_id pl;
        if (clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof pl, &pl, NULL) == CL_SUCCESS)
            clGetPlatformInfo(pl, CL_PLATFORM_NAME, sizeof platform, platform, NULL);
        assert_true(reported >= declared);
        if (strstr(platform, "Portable Computing Language"))
            assert_true(reported <= declared + 256);
    }
}

int main(int argc, char **argv)
{
    small_only = argc > 1 && strcmp(argv[1], "--small") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_local_memory),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
