/* A shape's inputs on the host and the device, and the half conversions --f16 needs. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t bench_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)                       /* inf, or NaN kept quiet */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    if (ax >= 0x477ff000u)                       /* rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {                      /* below 2^-14: a half subnormal, or zero */
        uint32_t e = ax >> 23;
        if (e < 102)
            return (uint16_t)sign;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u, s = 126 - e;
        uint32_t h = m >> s, rem = m & ((1u << s) - 1), halfway = 1u << (s - 1);
        if (rem > halfway || (rem == halfway && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    /* Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry into
       the exponent is the correct result. */
    uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float bench_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31)
        x = sign | 0x7f800000u | (m << 13);
    else
        x = sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* Multiples of 1/1024 in [-1, 1]: exact in half, so --f16 and the f32 baselines read identical
   values and one reference serves both. */
static void fill(float *p, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((*state >> 33) % 2049u) - 1024;
        p[i] = (float)k / 1024.0f;
    }
}

static cl_mem upload(const bench_device *dev, const void *host, size_t bytes, cl_mem_flags flags,
                     const char *what, char *err, size_t err_len)
{
    cl_int e = CL_SUCCESS;
    cl_mem m = clCreateBuffer(dev->context, flags | (host ? CL_MEM_COPY_HOST_PTR : 0), bytes,
                              (void *)host, &e);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clCreateBuffer(%s, %zu bytes): %d", what, bytes, e);
        return NULL;
    }
    return m;
}

static cl_mem upload_half(const bench_device *dev, const float *src, size_t n, const char *what,
                          char *err, size_t err_len)
{
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of host memory for %s", what);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = bench_float_to_half(src[i]);
    cl_mem m = upload(dev, h, n * sizeof *h, CL_MEM_READ_ONLY, what, err, err_len);
    free(h);
    return m;
}

int bench_data_create(const bench_device *dev, const bench_shape *s, int f16, bench_data *data,
                      char *err, size_t err_len)
{
    int rc = -1;
    memset(data, 0, sizeof *data);
    data->shape = *s;
    data->nq = (size_t)s->B * s->Hq * s->Lq * s->d;
    data->nk = (size_t)s->B * s->Hkv * s->Lk * s->d;
    data->nv = data->nk;
    data->no = data->nq;
    data->q = malloc(data->nq * sizeof(float));
    data->k = malloc(data->nk * sizeof(float));
    data->v = malloc(data->nv * sizeof(float));
    data->out = malloc(data->no * sizeof(float));
    if (!data->q || !data->k || !data->v || !data->out) {
        snprintf(err, err_len, "out of host memory for shape %s", s->name);
        goto out;
    }
    /* Seeded by the shape, so reruns of one shape see the same data. */
    uint64_t state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s->B << 48) ^ ((uint64_t)s->Hq << 36) ^
                     ((uint64_t)s->Lq << 20) ^ ((uint64_t)s->Lk << 4) ^ (uint64_t)s->d;
    fill(data->q, data->nq, &state);
    fill(data->k, data->nk, &state);
    fill(data->v, data->nv, &state);

    if (!(data->q32 = upload(dev, data->q, data->nq * 4, CL_MEM_READ_ONLY, "q", err, err_len)) ||
        !(data->k32 = upload(dev, data->k, data->nk * 4, CL_MEM_READ_ONLY, "k", err, err_len)) ||
        !(data->v32 = upload(dev, data->v, data->nv * 4, CL_MEM_READ_ONLY, "v", err, err_len)) ||
        !(data->out32 = upload(dev, NULL, data->no * 4, CL_MEM_READ_WRITE, "out", err, err_len)))
        goto out;
    if (f16) {
        if (!(data->q16 = upload_half(dev, data->q, data->nq, "q (half)", err, err_len)) ||
            !(data->k16 = upload_half(dev, data->k, data->nk, "k (half)", err, err_len)) ||
            !(data->v16 = upload_half(dev, data->v, data->nv, "v (half)", err, err_len)) ||
            !(data->out16 = upload(dev, NULL, data->no * 2, CL_MEM_READ_WRITE, "out (half)", err,
                                   err_len)))
            goto out;
    }
    rc = 0;
out:
    if (rc)
        bench_data_release(data);
    return rc;
}

void bench_data_release(bench_data *data)
{
    cl_mem *mems[] = {&data->q32, &data->k32, &data->v32, &data->out32,
                      &data->q16, &data->k16, &data->v16, &data->out16};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        if (*mems[i])
            clReleaseMemObject(*mems[i]);
        *mems[i] = NULL;
    }
    free(data->q);
    free(data->k);
    free(data->v);
    free(data->out);
    data->q = data->k = data->v = data->out = NULL;
}

int bench_data_poison(const bench_device *dev, const bench_data *data, int f16, char *err,
                      size_t err_len)
{
    /* All-ones bytes are a NaN in both float and half. */
    const cl_uchar ones = 0xff;
    cl_mem out = f16 ? data->out16 : data->out32;
    size_t bytes = data->no * (f16 ? 2 : 4);
    cl_int e = clEnqueueFillBuffer(dev->queue, out, &ones, 1, 0, bytes, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clFinish(dev->queue);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clEnqueueFillBuffer(out): %d", e);
        return -1;
    }
    return 0;
}

int bench_data_read_out(const bench_device *dev, bench_data *data, int f16, char *err,
                        size_t err_len)
{
    cl_int e;
    if (!f16) {
        e = clEnqueueReadBuffer(dev->queue, data->out32, CL_TRUE, 0, data->no * 4, data->out, 0,
                                NULL, NULL);
    } else {
        uint16_t *h = malloc(data->no * sizeof *h);
        if (!h) {
            snprintf(err, err_len, "out of host memory reading the output");
            return -1;
        }
        e = clEnqueueReadBuffer(dev->queue, data->out16, CL_TRUE, 0, data->no * 2, h, 0, NULL,
                                NULL);
        for (size_t i = 0; e == CL_SUCCESS && i < data->no; i++)
            data->out[i] = bench_half_to_float(h[i]);
        free(h);
    }
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clEnqueueReadBuffer(out): %d", e);
        return -1;
    }
    return 0;
}
