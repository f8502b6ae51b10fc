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
 */
#ifndef DIM
#define DIM 64     /* elements per row: head_dim (K) or head_dim_v (V) */
#endif

__kernel void quantize_kv(const __global data_t *src, __global char *dst, __global float *scale,
                          const long rows)
{
    const long t = get_global_id(0);
    if (t >= rows)
        return;
    const __global data_t *x = src + t * DIM;
    float amax = 0.0f;
    int finite = 1;
    for (int c = 0; c < DIM; c++) {
        const float a = fabs(LOAD(x, c));
        finite &= isfinite(a);
        amax = fmax(amax, a);
    }
    const float s = finite ? amax * (1.0f / 127.0f) : NAN;
    __global char *y = dst + t * DIM;
    for (int c = 0; c < DIM; c++) {
        const float r = (finite && s > 0.0f) ? rint(LOAD(x, c) / s) : 0.0f;
        y[c] = (char)clamp(r, -127.0f, 127.0f);
    }
    scale[t] = s;
}
