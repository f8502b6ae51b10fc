/* Definitions every clattn kernel shares. host/cache/program.c builds each kernel file as this text
 * followed by the file, so each file compiles on its own with the defaults below.
 *
 * Problem defines (host/core/kernel_params.c, clattn_problem_defines):
 *   USE_F16    1: q, k, v, out are IEEE half in memory (vload_half/vstore_half: core OpenCL 1.2,
 *              no cl_khr_fp16 needed); 0: float. Arithmetic is float either way.
 *   USE_BF16   1: they are bfloat16 (ushort bits: a float's top half), converted by bit operations.
 *   MASK_TYPE  0 none, 1 additive float, 2 additive half, 3 bool bytes (nonzero = attend)
 *   CAUSAL     0 none, 1 causal (the host passes the diagonal offset: bottom-right Lk-Lq, top-left 0)
 *   KV_INT8    1: k and v are int8 with a float scale per token and KV head; the kernels that
 *              read them multiply each value by its token's scale as they load it
 */
#ifndef USE_F16
#define USE_F16 0
#endif
#ifndef USE_BF16
#define USE_BF16 0
#endif
#ifndef MASK_TYPE
#define MASK_TYPE 0
#endif
#ifndef CAUSAL
#define CAUSAL 0
#endif
#ifndef KV_INT8
#define KV_INT8 0
#endif

/* Token pasting after expansion, for names built from parameters: CAT(vload, VW) is vload8 at VW 8. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/* Storage: data_t, element i as float (LOAD) and a float rounded into it (STORE), and n elements at
   p as one floatn (VLOAD_DATA, VSTORE_DATA; n = 2, 4, 8, 16; element alignment suffices). */
#if USE_F16
typedef half data_t;
#define LOAD(p, i) vload_half((i), (p))
#define STORE(p, i, x) vstore_half_rte((x), (i), (p))
#define VLOAD_DATA(n, p) CAT(vload_half, n)(0, (p))
#define VSTORE_DATA(n, x, p) CAT(CAT(vstore_half, n), _rte)((x), 0, (p))
#elif USE_BF16
typedef ushort data_t;
/* Widening is a shift. Narrowing rounds to nearest, ties to even (a carry out of the mantissa
   bumps the exponent, to inf at the top), and keeps a NaN a NaN by forcing its quiet bit. */
#define BF16_ROUND(T, UT, u)                                                                     \
    select(((u) + (UT)(0x7fffu) + (((u) >> 16) & (UT)(1u))) >> 16, ((u) >> 16) | (UT)(0x40u),     \
           CAT(as_, T)(((u) & (UT)(0x7fffffffu)) > (UT)(0x7f800000u)))
inline float bf16_load(ushort b)
{
    return as_float((uint)b << 16);
}
inline ushort bf16_round(float x)
{
    const uint u = as_uint(x);
    return (ushort)(((u & 0x7fffffffu) > 0x7f800000u) ? (u >> 16) | 0x40u
                                                      : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
#define BF16_ROUND_N(n)                                                                          \
    inline CAT(ushort, n) CAT(bf16_round, n)(CAT(float, n) x)                                    \
    {                                                                                            \
        const CAT(uint, n) u = CAT(as_uint, n)(x);                                               \
        return CAT(convert_ushort, n)(BF16_ROUND(CAT(uint, n), CAT(uint, n), u));                  \
    }
BF16_ROUND_N(2)
BF16_ROUND_N(4)
BF16_ROUND_N(8)
BF16_ROUND_N(16)
#define LOAD(p, i) bf16_load((p)[(i)])
#define STORE(p, i, x) ((p)[(i)] = bf16_round(x))
#define VLOAD_DATA(n, p) CAT(as_float, n)(CAT(convert_uint, n)(CAT(vload, n)(0, (p))) << 16)
#define VSTORE_DATA(n, x, p) CAT(vstore, n)(CAT(bf16_round, n)(x), 0, (p))
#else
typedef float data_t;
#define LOAD(p, i) ((p)[(i)])
#define STORE(p, i, x) ((p)[(i)] = (x))
#define VLOAD_DATA(n, p) CAT(vload, n)(0, (p))
#define VSTORE_DATA(n, x, p) CAT(vstore, n)((x), 0, (p))
#endif

/* K/V storage: q's type, or int8 (KV_INT8). */
#if KV_INT8
typedef char kv_t;
#else
typedef data_t kv_t;
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

/* The arguments of the fused kernels (cl/flash_attention.cl, cl/flash_decode.cl), one list for
 * both: the host sets them in one routine (host/attention/flash.c, flash_launch) whichever kernel
 * the plan took. out_t is each kernel's own (the partials' float under SPLIT). */
#define FLASH_KERNEL_ARGS                                                                         \
    const __global data_t *q, const __global kv_t *k, const __global kv_t *v,                      \
        const __global mask_t *mask, __global out_t *out, __global float *lse, const int Hq,       \
        const int Hkv, const int Lq, const int Lk, const float qscale,                             \
        const int causal_offset_arg, const int chunk, const long q_bs, const long q_hs,            \
        const long q_rs, const long k_bs, const long k_hs, const long k_rs, const long v_bs,       \
        const long v_hs, const long v_rs, const long o_bs, const long o_hs, const long o_rs,       \
        const long o_split, const long lse_split, const long m_bs, const long m_hs,                \
        const long m_rs, const int lo_offset_arg, const float softcap_l2,                          \
        const __global float *alibi, const __global float *sinks,                                  \
        const __global float *k_scale, const __global float *v_scale, const long s_bs,             \
        const long s_hs, const long s_rs, const __global int *cu_q, const __global int *cu_k,      \
        const __global int *seqlens_k, const __global int *block_table, const int total_q,         \
        const int total_k, const int num_blocks, const int max_blocks, const int page_shift,       \
        const int causal_abs
