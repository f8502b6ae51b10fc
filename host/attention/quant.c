/* Int8 K/V storage (CLATTN_KV_INT8): the public quantizers, clattn_quantize_kv on the device
 * (cl/quant.cl) and clattn_quantize_kv_host on the CPU. The attention kernels dequantize as they
 * load K and V (cl/flash_attention.cl, cl/qk_scores.cl, cl/pv.cl).
 *
 * Both sides see a K or V tensor as rows of `dim` contiguous elements, one per (batch, KV head,
 * token), in memory order, with one scale per row in the same order: the layout only decides which
 * (b, h, j) a row is, which neither needs to know. */
#include "host/attention/attention.h"
#include "host/core/buffer_check.h"

#include <math.h>
#include <stdio.h>

/* The rows and row length of which tensor of p. */
static void kv_rows(const clattn_problem *p, clattn_kv_tensor which, long *rows, int *dim)
{
    *rows = (long)p->B * p->Hkv * p->Lk;
    *dim = which == CLATTN_KV_KEYS ? p->d : p->dv;
}

/* The quantizing rule of clattn.h (and cl/quant.cl), on the host. */
static void quantize_row(const void *src, clattn_dtype dtype, size_t at, int dim, signed char *dst,
                         float *scale)
{
    float amax = 0.0f;
    int finite = 1;
    for (int c = 0; c < dim; c++) {
        const float a = fabsf(clattn_storage_get(src, dtype, at + (size_t)c));
        finite &= isfinite(a) != 0;
        amax = fmaxf(amax, a);
    }
    const float s = finite ? amax * (1.0f / 127.0f) : NAN;
    for (int c = 0; c < dim; c++) {
        float r = finite && s > 0.0f ? rintf(clattn_storage_get(src, dtype, at + (size_t)c) / s) : 0.0f;
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
        dst[at + (size_t)c] = (signed char)r;
    }
    *scale = s;
}

static clattn_status check_which(clattn_kv_tensor which)
{
    return which == CLATTN_KV_KEYS || which == CLATTN_KV_VALUES ? CLATTN_SUCCESS
                                                               : CLATTN_INVALID_ARGUMENT;
}

clattn_status clattn_quantize_kv_host(const clattn_attention_desc *desc, clattn_kv_tensor which,
                                      const void *src, signed char *dst, float *scale)
{
    clattn_problem p;
    if (clattn_problem_init(desc, &p, NULL, 0) != CLATTN_SUCCESS ||
        check_which(which) != CLATTN_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;
    long rows;
    int dim;
    kv_rows(&p, which, &rows, &dim);
    if (rows == 0)
        return CLATTN_SUCCESS;
    if (!src || !dst || !scale)
        return CLATTN_INVALID_ARGUMENT;
    for (long t = 0; t < rows; t++)
        quantize_row(src, p.dtype, (size_t)t * (size_t)dim, dim, dst, &scale[t]);
    return CLATTN_SUCCESS;
}

/* The kernel `name` of cl/quant.cl for p's storage type and rows of dim. */
static clattn_status quant_kernel(clattn_context *ctx, const clattn_problem *p, int dim,
                                  const char *name, cl_kernel *out)
{
    char options[128];
    snprintf(options, sizeof options, "-DDIM=%d -DUSE_F16=%d -DUSE_BF16=%d", dim,
             p->dtype == CLATTN_F16, p->dtype == CLATTN_BF16);
    return clattn_kernel_get(ctx, "quant.cl", options, name, out);
}

/* One work-item per row; the group size is the runtime's choice (the kernel has no local memory
   and no barrier, so any size the device takes will do, a capped one included). */
static clattn_status launch_rows(clattn_context *ctx, cl_kernel kernel, cl_long rows, const char *what)
{
    const size_t global = (size_t)rows;
    return clattn_launch(ctx, kernel, 1, &global, NULL, what);
}

clattn_status clattn_quantize_kv(clattn_context *ctx, const clattn_attention_desc *desc,
                                 clattn_kv_tensor which, cl_mem src, cl_mem dst, cl_mem scale)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_problem p;
    char err[512];
    clattn_status st = CLATTN_SUCCESS;
    if (clattn_problem_init(desc, &p, err, sizeof err) != CLATTN_SUCCESS)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s", err);
    else if (check_which(which) != CLATTN_SUCCESS)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                         "which = %d: not a clattn_kv_tensor (CLATTN_KV_KEYS or CLATTN_KV_VALUES)",
                         (int)which);
    long n_rows = 0;
    int dim = 0;
    if (st == CLATTN_SUCCESS) {
        kv_rows(&p, which, &n_rows, &dim);
        const size_t n = (size_t)n_rows * (size_t)dim;
        const clattn_buffer_role in = CLATTN_BUFFER_INPUT, o = CLATTN_BUFFER_OUTPUT;
        clattn_buffer_arg bufs[] = {
            {.name = "src", .mem = src, .need = n * clattn_dtype_size(p.dtype), .role = in},
            {.name = "dst", .mem = dst, .need = n, .role = o},
            {.name = "scale", .mem = scale, .need = (size_t)n_rows * sizeof(float), .role = o},
        };
        st = clattn_buffers_check(ctx, bufs, 3);
    }
    cl_kernel kernel = NULL;
    const cl_long rows = n_rows;   /* the kernel's long */
    if (st == CLATTN_SUCCESS && rows > 0)
        st = quant_kernel(ctx, &p, dim, "quantize_kv", &kernel);
    if (st == CLATTN_SUCCESS && rows > 0) {
        cl_uint a = 0;
        if ((st = clattn_set_arg(ctx, kernel, a++, sizeof src, &src)) == CLATTN_SUCCESS &&
            (st = clattn_set_arg(ctx, kernel, a++, sizeof dst, &dst)) == CLATTN_SUCCESS &&
            (st = clattn_set_arg(ctx, kernel, a++, sizeof scale, &scale)) == CLATTN_SUCCESS &&
            (st = clattn_set_arg(ctx, kernel, a++, sizeof rows, &rows)) == CLATTN_SUCCESS)
            st = launch_rows(ctx, kernel, rows, "quantize_kv");
    }
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
