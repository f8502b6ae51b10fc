/* Definitions every clattn kernel shares. host/cache/program.c builds each kernel file as this text
 * followed by the file, so each file compiles on its own with the defaults below.
 *
 * Problem defines (host/core/kernel_params.c, clattn_problem_defines):
 *   USE_F16    1: q, k, v, out are IEEE half in memory (vload_half/vstore_half: core OpenCL 1.2,
 *              no cl_khr_fp16 needed); 0: float. Arithmetic is float either way.
 *   MASK_TYPE  0 none, 1 additive float, 2 additive half, 3 bool bytes (nonzero = attend)
 *   CAUSAL     0 none, 1 causal (the host passes the diagonal offset: bottom-right Lk-Lq, top-left 0)
 */
#ifndef USE_F16
#define USE_F16 0
#endif
#ifndef MASK_TYPE
#define MASK_TYPE 0
#endif
#ifndef CAUSAL
#define CAUSAL 0
#endif

/* Token pasting after expansion, for names built from parameters: CAT(vload, VW) is vload8 at VW 8. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

#if USE_F16
typedef half data_t;
#define LOAD(p, i) vload_half((i), (p))
#define STORE(p, i, x) vstore_half_rte((x), (i), (p))
#else
typedef float data_t;
#define LOAD(p, i) ((p)[(i)])
#define STORE(p, i, x) ((p)[(i)] = (x))
#endif

#if MASK_TYPE == 1
typedef float mask_t;
#elif MASK_TYPE == 2
typedef half mask_t;
#else
typedef uchar mask_t;
#endif

/* The additive term a mask contributes to a scaled score: 0 or the mask value, -inf for a hidden
 * key. The index is the element offset computed from the mask strides. */
inline float mask_term(const __global mask_t *mask, long index)
{
#if MASK_TYPE == 1
    return mask[index];
#elif MASK_TYPE == 2
    return vload_half(index, mask);
#elif MASK_TYPE == 3
    return mask[index] ? 0.0f : -INFINITY;
#else
    (void)mask; (void)index;
    return 0.0f;
#endif
}

/* NaN-propagating max: fmax() drops NaN, but a NaN score must reach its row's output. */
inline float max_nan(float a, float b)
{
    return (isnan(a) || isnan(b)) ? (a + b) : fmax(a, b);
}
