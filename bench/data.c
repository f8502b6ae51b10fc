/* A shape's inputs on the host and the device in each storage type, and the half and bfloat16
 * conversions --f16 and --bf16 need. */
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

uint16_t bench_float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)         /* NaN: keep it one (quiet) after truncation */
        return (uint16_t)((x >> 16) | 0x40u);
    /* Round the 16 dropped bits to nearest even; a carry into the exponent is the correct result,
       up to infinity. */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float bench_bf16_to_float(uint16_t b)
{
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

const char *bench_dtype_name(clattn_dtype dtype)
{
    switch (dtype) {
    case CLATTN_F32: return "f32";
    case CLATTN_F16: return "f16";
    case CLATTN_BF16: return "bf16";
    }
    return "?";
}

size_t bench_dtype_size(clattn_dtype dtype)
{
    return dtype == CLATTN_F32 ? 4 : 2;
}

float bench_dtype_round(clattn_dtype dtype, float x)
{
    switch (dtype) {
    case CLATTN_F16: return bench_half_to_float(bench_float_to_half(x));
    case CLATTN_BF16: return bench_bf16_to_float(bench_float_to_bf16(x));
    case CLATTN_F32: break;
    }
    return x;
}

/* Multiples of 1/1024 in [-1, 1]: exact in half, so --f16 and the f32 baselines read identical
   values and one reference serves both. Not in bfloat16 (8 significant bits: 1023/1024 is not
   one), whose rows are checked against a reference on the rounded inputs (check.c). */
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

/* src in a 16-bit storage type (half or bfloat16) on the device. */
static cl_mem upload_16(const bench_device *dev, clattn_dtype dtype, const float *src, size_t n,
                        const char *what, char *err, size_t err_len)
{
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) {
        snprintf(err, err_len, "out of host memory for %s", what);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = dtype == CLATTN_BF16 ? bench_float_to_bf16(src[i]) : bench_float_to_half(src[i]);
    cl_mem m = upload(dev, h, n * sizeof *h, CL_MEM_READ_ONLY, what, err, err_len);
    free(h);
    return m;
}

int bench_data_create(const bench_device *dev, const bench_shape *s,
                      const int dtypes[BENCH_DTYPE_COUNT], bench_data *data, char *err,
                      size_t err_len)
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

    bench_buffers *b = &data->buf[CLATTN_F32];
    if (!(b->q = upload(dev, data->q, data->nq * 4, CL_MEM_READ_ONLY, "q", err, err_len)) ||
        !(b->k = upload(dev, data->k, data->nk * 4, CL_MEM_READ_ONLY, "k", err, err_len)) ||
        !(b->v = upload(dev, data->v, data->nv * 4, CL_MEM_READ_ONLY, "v", err, err_len)) ||
        !(b->out = upload(dev, NULL, data->no * 4, CL_MEM_READ_WRITE, "out", err, err_len)))
        goto out;
    for (int t = CLATTN_F16; t < BENCH_DTYPE_COUNT; t++) {
        const clattn_dtype dt = (clattn_dtype)t;
        char what[4][32];
        if (!dtypes[t])
            continue;
        snprintf(what[0], sizeof what[0], "q (%s)", bench_dtype_name(dt));
        snprintf(what[1], sizeof what[1], "k (%s)", bench_dtype_name(dt));
        snprintf(what[2], sizeof what[2], "v (%s)", bench_dtype_name(dt));
        snprintf(what[3], sizeof what[3], "out (%s)", bench_dtype_name(dt));
        b = &data->buf[t];
        if (!(b->q = upload_16(dev, dt, data->q, data->nq, what[0], err, err_len)) ||
            !(b->k = upload_16(dev, dt, data->k, data->nk, what[1], err, err_len)) ||
            !(b->v = upload_16(dev, dt, data->v, data->nv, what[2], err, err_len)) ||
            !(b->out = upload(dev, NULL, data->no * 2, CL_MEM_READ_WRITE, what[3], err, err_len)))
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
    for (int t = 0; t < BENCH_DTYPE_COUNT; t++) {
        cl_mem *mems[] = {&data->buf[t].q, &data->buf[t].k, &data->buf[t].v, &data->buf[t].out};
        for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
            if (*mems[i])
                clReleaseMemObject(*mems[i]);
            *mems[i] = NULL;
        }
    }
    free(data->q);
    free(data->k);
    free(data->v);
    free(data->out);
    data->q = data->k = data->v = data->out = NULL;
}

int bench_data_poison(const bench_device *dev, const bench_data *data, clattn_dtype dtype,
                      char *err, size_t err_len)
{
    /* All-ones bytes are a NaN in float, half and bfloat16. */
    const cl_uchar ones = 0xff;
    cl_mem out = data->buf[dtype].out;
    size_t bytes = data->no * bench_dtype_size(dtype);
    cl_int e = clEnqueueFillBuffer(dev->queue, out, &ones, 1, 0, bytes, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clFinish(dev->queue);
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clEnqueueFillBuffer(out): %d", e);
        return -1;
    }
    return 0;
}

int bench_data_read_out(const bench_device *dev, bench_data *data, clattn_dtype dtype, char *err,
                        size_t err_len)
{
    cl_int e;
    if (dtype == CLATTN_F32) {
        e = clEnqueueReadBuffer(dev->queue, data->buf[dtype].out, CL_TRUE, 0, data->no * 4,
                                data->out, 0, NULL, NULL);
    } else {
        uint16_t *h = malloc(data->no * sizeof *h);
        if (!h) {
            snprintf(err, err_len, "out of host memory reading the output");
            return -1;
        }
        e = clEnqueueReadBuffer(dev->queue, data->buf[dtype].out, CL_TRUE, 0, data->no * 2, h, 0,
                                NULL, NULL);
        for (size_t i = 0; e == CL_SUCCESS && i < data->no; i++)
            data->out[i] = dtype == CLATTN_BF16 ? bench_bf16_to_float(h[i])
                                                : bench_half_to_float(h[i]);
        free(h);
    }
    if (e != CL_SUCCESS) {
        snprintf(err, err_len, "clEnqueueReadBuffer(out): %d", e);
        return -1;
    }
    return 0;
}
