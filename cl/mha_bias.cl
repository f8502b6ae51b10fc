/* The multi-head layer's projection biases: c[r*cols + j] += bias[j], in place, after a CLBlast GEMM
 * has written c = x·Wᵀ. A separate pass rather than a ones-column GEMM: it needs no ones vector in
 * scratch and serves half storage (USE_F16, common.h.cl) with one rounding of the sum.
 *
 * One work-item per element; dimension 0 runs along a row so neighbouring items touch neighbouring
 * addresses. bias_off selects the q, k or v part of the packed in_proj_bias.
 */
__kernel void mha_add_bias(__global data_t *c, const __global data_t *bias, long bias_off, int rows,
                           int cols)
{
    const int j = (int)get_global_id(0);
    const int r = (int)get_global_id(1);
    if (j >= cols || r >= rows)
        return;   /* the launch is rounded up to whole work-groups */
    const long i = (long)r * cols + j;
    STORE(c, i, LOAD(c, i) + LOAD(bias, bias_off + j));
}
