/* Int8 K/V storage (CLATTN_KV_INT8): quantizing a K or V tensor of the storage type. The attention
 * kernels dequantize as they load (value times its token's scale).
 *
 * A tensor is rows of DIM contiguous elements, one row per (batch, KV head, token), and its scales
 * hold one float per row in the same order, whatever the layout: row t's elements are
 * [t*DIM, (t+1)*DIM) and its scale is scale[t]: one work-item per row.
 *
 * Quantizing is symmetric: scale = max|x| / 127 (as a product by 1/127, which rounds the same on
 * every device), x8 = x / scale rounded to nearest even, clamped to ±127. A row of zeros gets scale
 * 0 and zeros; a row holding inf or NaN gets a NaN scale (and zeros), so its token reads back NaN.
 * USE_F16 / USE_BF16 select the float side's storage (common.h.cl).
 *
 * Also here: cache_write, which puts new tokens' K or V rows into their slots of a paged cache,
 * quantizing them by the same rule when the cache is int8.
 */
#ifndef DIM
#define DIM 64     /* elements per row: head_dim (K) or head_dim_v (V) */
#endif

/* The quantizing rule for one row of DIM values: writes y, returns the scale. */
inline float quantize_row(const __global data_t *x, __global char *y)
{
    float amax = 0.0f;
    int finite = 1;
    for (int c = 0; c < DIM; c++) {
        const float a = fabs(LOAD(x, c));
        finite &= isfinite(a);
        amax = fmax(amax, a);
    }
    const float s = finite ? amax * (1.0f / 127.0f) : NAN;
    for (int c = 0; c < DIM; c++) {
        const float r = (finite && s > 0.0f) ? rint(LOAD(x, c) / s) : 0.0f;
        y[c] = (char)clamp(r, -127.0f, 127.0f);
    }
    return s;
}

__kernel void quantize_kv(const __global data_t *src, __global char *dst, __global float *scale,
                          const long rows)
{
    const long t = get_global_id(0);
    if (t >= rows)
        return;
    scale[t] = quantize_row(src + t * DIM, dst + t * DIM);
}

/* New tokens into a paged cache (clattn_reshape_and_cache): src row r = t*heads + h (token t's KV
 * head h) goes to cache row slots[t]*heads + h, copied in the storage type or, under KV_INT8,
 * quantized with its scale beside it. The slots come from the caller: one outside
 * 0..n_slots-1 (negative is vLLM's padding) is skipped, so nothing outside the cache is written. */
__kernel void cache_write(const __global data_t *src, __global kv_t *cache, __global float *scale,
                          const __global int *slots, const int tokens, const int heads,
                          const int n_slots)
{
    const long r = get_global_id(0);
    if (r >= (long)tokens * heads)
        return;
    const int t = (int)(r / heads), h = (int)(r - (long)t * heads);
    const int slot = slots[t];
    if (slot < 0 || slot >= n_slots)
        return;
    const long dr = (long)slot * heads + h;
#if KV_INT8
    scale[dr] = quantize_row(src + r * DIM, cache + dr * DIM);
#else
    /* as raw bits: without cl_khr_fp16 a half may not be read or written directly */
#if USE_F16
    const __global ushort *x = (const __global ushort *)(src + r * DIM);
    __global ushort *y = (__global ushort *)(cache + dr * DIM);
#else
    const __global data_t *x = src + r * DIM;
    __global kv_t *y = cache + dr * DIM;
#endif
    (void)scale;
    for (int c = 0; c < DIM; c++)
        y[c] = x[c];
#endif
}
