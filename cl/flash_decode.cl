/* Fused attention for decode-shaped problems on CPUs: a handful of query rows per KV head over a
 * long key range, with vector lanes along the head dimension.
 *
 * Why a kernel of its own: cl/flash_attention.cl puts query rows in its vector lanes, which on a
 * CPU leaves most lanes idle when a KV head has 4 query rows, and stages every K/V element through
 * local memory before a broadcast multiply: per key and KV head about a thousand instructions for
 * d = 128. Here one work-item owns BLOCK_M query rows of one KV head and a chunk of keys; a key's
 * K row is VW-wide vector loads (int8 and half widened on the way) that every row multiplies into
 * its own partial vector, and VW keys' partial vectors are summed across lanes together by a
 * shuffle tree, one vector of VW scores per row. P·V is one fma per VW columns. Nothing goes
 * through local memory, and a K/V element is read once from memory for the group's rows. On a
 * 2-core AVX-512 CPU (PoCL), B 8, Hq 32, Hkv 8, Lk 4096, d 128: this kernel 13 ms (f32) / 6 ms
 * (f16) / 4 ms (int8) against 19 / 16 / 15 ms for flash_attention.cl's decode mapping.
 *
 * Same arguments, NDRange (dim 0: row blocks, one work-item each; dim 1: B*Hkv; dim 2: key chunks)
 * and results as flash_attention, including the SPLIT partials the merge reads and the rules for
 * empty and NaN rows (see there): the host launches either with one argument list. The host routes
 * only problems this kernel serves (host/attention/flash.c, decode_serves): no mask, window,
 * soft-cap, ALiBi or sinks, d and dv multiples of VW; dense, ragged (VARLEN) and paged (PAGED)
 * batches alike, with the caller's tables checked as flash_attention checks them.
 *
 * Rows are position-major as in flash_attention (row r: query position r / G of query head
 * hk*G + r % G). Scores are in base 2 (qscale holds log2(e)), scaled after the dot product. A key a
 * row cannot see (past its causal diagonal, or past the chunk) is -inf before the max and is left
 * out of P·V rather than weighted by 0, so an inf or NaN in V there stays out of the row.
 */
#ifndef HEAD_D
#define HEAD_D 128
#endif
#ifndef HEAD_DV
#define HEAD_DV HEAD_D
#endif
#ifndef BLOCK_M
#define BLOCK_M 4        /* query rows per work-item */
#endif
#ifndef VW
#define VW 16            /* lanes along d; also the keys one reduction tree sums */
#endif
#ifndef SPLIT
#define SPLIT 0          /* 1: one chunk of keys per work-item, float partials for the merge */
#endif
#ifndef VARLEN
#define VARLEN 0         /* 1: a ragged batch, sequences' extents from cu_q and cu_k/seqlens_k */
#endif
#ifndef PAGED
#define PAGED 0          /* 1 (with VARLEN): keys in a paged cache through block_table */
#endif
#if VW != 16
#error "flash_decode: VW must be 16"
#endif
#if HEAD_D % VW != 0 || HEAD_DV % VW != 0
#error "flash_decode: d and dv must be multiples of VW"
#endif
#define ND (HEAD_D / VW)
#define NDV (HEAD_DV / VW)

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f
#define LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))

/* VW elements of K/V storage at p as float (int8: the stored integers; the token's scale is
   applied to the score and to p instead). */
#if KV_INT8
#define LOAD_KV(p) convert_float16(vload16(0, (p)))
#else
#define LOAD_KV(p) VLOAD_DATA(16, (p))
#endif

/* One level of the tree: x and y each hold n keys' partial sums in groups of 16/n lanes; the result
   holds the 2n keys (x's, then y's) in groups half as wide, each group's halves added. */
#define SUM_PAIRS(x, y, lo, hi) (shuffle2((x), (y), (uint16)lo) + shuffle2((x), (y), (uint16)hi))
#define L1(x, y) SUM_PAIRS(x, y, (0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), \
                           (8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31))
#define L2(x, y) SUM_PAIRS(x, y, (0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27), \
                           (4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31))
#define L3(x, y) SUM_PAIRS(x, y, (0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29), \
                           (2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31))
#define L4(x, y) SUM_PAIRS(x, y, (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), \
                           (1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31))

/* 16 keys' partial vectors (a[u]: key u's products summed per lane) to one vector of their 16 dot
   products, key u in lane u: pairwise sums, 15 levels' worth of shuffles and adds in all. */
inline float16 sum_lanes16(const float16 *a)
{
    const float16 b0 = L1(a[0], a[1]), b1 = L1(a[2], a[3]), b2 = L1(a[4], a[5]);
    const float16 b3 = L1(a[6], a[7]), b4 = L1(a[8], a[9]), b5 = L1(a[10], a[11]);
    const float16 b6 = L1(a[12], a[13]), b7 = L1(a[14], a[15]);
    const float16 c0 = L2(b0, b1), c1 = L2(b2, b3), c2 = L2(b4, b5), c3 = L2(b6, b7);
    return L4(L3(c0, c1), L3(c2, c3));
}

/* Larger of a and b, keeping a when b is NaN (as flash_attention's MAXV). */
#define MAXF(a, b) ((b) > (a) ? (b) : (a))

/* A vector's halves by shuffle(), not .lo/.hi: oclgrind 21.10 reports lane 3 of a float16's
   (v.lo + v.hi) as uninitialised (a false report; with shuffle() it reports nothing, and the code
   PoCL generates is the same). */
#define LO8(v) shuffle((v), (uint8)(0, 1, 2, 3, 4, 5, 6, 7))
#define HI8(v) shuffle((v), (uint8)(8, 9, 10, 11, 12, 13, 14, 15))
#define LO4(v) shuffle((v), (uint4)(0, 1, 2, 3))
#define HI4(v) shuffle((v), (uint4)(4, 5, 6, 7))
#define LO2(v) shuffle((v), (uint2)(0, 1))
#define HI2(v) shuffle((v), (uint2)(2, 3))

inline float max_lanes16(float16 s)
{
    const float8 a = LO8(s), b = HI8(s);
    const float8 h = select(a, b, b > a);
    const float4 c = LO4(h), d = HI4(h);
    const float4 q = select(c, d, d > c);
    const float2 e = LO2(q), f = HI2(q);
    const float2 t = select(e, f, f > e);
    return MAXF(t.x, t.y);
}
inline float sum_lanes(float16 s)
{
    const float8 h = LO8(s) + HI8(s);
    const float4 q = LO4(h) + HI4(h);
    const float2 t = LO2(q) + HI2(q);
    return t.x + t.y;
}

#if SPLIT
typedef float out_t;
#define VSTORE_OUT(x, p) vstore16((x), 0, (p))
#else
typedef data_t out_t;
#define VSTORE_OUT(x, p) VSTORE_DATA(16, (x), (p))
#endif

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void flash_decode(FLASH_KERNEL_ARGS)
{
    /* what this kernel is never routed (decode_serves): masks, windows, soft-caps, ALiBi, sinks */
    (void)mask; (void)m_bs; (void)m_hs; (void)m_rs; (void)lo_offset_arg; (void)softcap_l2;
    (void)alibi; (void)sinks;
    const int G = Hq / Hkv;
    const int bh = get_group_id(1);
    const int b = bh / Hkv;
    const int hk = bh - b * Hkv;
    const int blk = get_group_id(0) * BLOCK_M;

#if VARLEN
    /* This work-item's sequence from the caller's tables, checked as flash_attention checks them
       (see there): a query range it cannot trust returns at once, a key range or block id it
       cannot trust reads no key and writes NaN rows. */
    int q_bad = cu_q[0] < 0;
    for (int x = 0; x <= b; x++)
        q_bad |= cu_q[x] > cu_q[x + 1];
    const int q_first = cu_q[b], q_end = cu_q[b + 1];
    if (q_bad || q_end > total_q || q_end - q_first > Lq)
        return;
    const int Lq_b = q_end - q_first;
#if PAGED
    int k_first = 0, Lk_b = seqlens_k[b];
    int keys_bad = Lk_b < 0 || Lk_b > Lk || (long)Lk_b > ((long)max_blocks << page_shift);
    const __global int *btab = block_table + (long)b * max_blocks;
    (void)cu_k; (void)total_k;
    if (!keys_bad)
        for (int x = 0; x < (Lk_b + (1 << page_shift) - 1) >> page_shift; x++)
            keys_bad |= btab[x] < 0 || btab[x] >= num_blocks;
#else
    int k_first = cu_k[b];
    const int k_end = cu_k[b + 1];
    const int keys_bad = k_first < 0 || k_end < k_first || k_end > total_k || k_end - k_first > Lk;
    int Lk_b = k_end - k_first;
    (void)seqlens_k; (void)block_table; (void)num_blocks; (void)max_blocks; (void)page_shift;
#endif
    if (keys_bad) {
        Lk_b = 0;
        k_first = 0;
    }
    const long delta = (long)Lk_b - Lq_b;
    const int causal_offset = (int)clamp(min((long)causal_abs, delta + causal_offset_arg),
                                         -(long)Lq_b - 1, (long)Lk_b);
    const long q_base = (long)q_first * q_rs, o_base = (long)q_first * o_rs;
    const long lse_base = q_first, lse_hs = total_q;
    const long k_base = (long)k_first * k_rs, v_base = (long)k_first * v_rs;
    const long s_base = (long)k_first * s_rs;
    (void)q_bs; (void)o_bs; (void)k_bs; (void)v_bs; (void)s_bs;
#else
    (void)cu_q; (void)cu_k; (void)seqlens_k; (void)block_table; (void)total_q; (void)total_k;
    (void)num_blocks; (void)max_blocks; (void)page_shift; (void)causal_abs;
    const int Lq_b = Lq, Lk_b = Lk, keys_bad = 0;
    const int causal_offset = causal_offset_arg;
    const long q_base = b * q_bs, o_base = b * o_bs;
    const long lse_base = ((long)b * Hq) * Lq, lse_hs = Lq;
    const long k_base = b * k_bs, v_base = b * v_bs, s_base = b * s_bs;
#endif
    const int rows = G * Lq_b;
    if (blk >= rows)
        return;                              /* a row block past this sequence's queries */
#if SPLIT
    if (get_group_id(2) > 0 && get_group_id(2) * chunk >= Lk_b) {
        /* a chunk past its sequence's keys saw none: partial max -inf, which the merge skips */
        if (lse)
            for (int row = blk; row < min(blk + BLOCK_M, rows); row++) {
                const int i = row / G, h = hk * G + row - i * G;
                lse[get_group_id(2) * lse_split + lse_base + h * lse_hs + i] = -INFINITY;
            }
        return;
    }
#endif
    const int last_row = min(blk + BLOCK_M, rows) - 1;

    int n_lo = 0, n_hi = Lk_b;
#if SPLIT
    n_lo = get_group_id(2) * chunk;
    n_hi = min(Lk_b, n_lo + chunk);
    out += get_group_id(2) * o_split;
    if (lse)
        lse += get_group_id(2) * lse_split;
#else
    (void)chunk; (void)o_split; (void)lse_split;
#endif
    int n_full = n_hi;   /* keys below this are visible to every row */
#if CAUSAL
    n_hi = min(n_hi, last_row / G + causal_offset + 1);
    n_full = min(n_hi, blk / G + causal_offset + 1);
#else
    (void)causal_offset;
#endif

    const __global kv_t *kbase = k + k_base + hk * k_hs;
    const __global kv_t *vbase = v + v_base + hk * v_hs;
#if KV_INT8
    const __global float *ksbase = k_scale + s_base + hk * s_hs;
    const __global float *vsbase = v_scale + s_base + hk * s_hs;
#else
    (void)k_scale; (void)v_scale; (void)s_base; (void)s_hs; (void)s_rs;
#endif

    float16 qv[BLOCK_M][ND];
    float16 o[BLOCK_M][NDV];
    float m[BLOCK_M], l[BLOCK_M];
    int lim[BLOCK_M];                         /* last key each row sees */
#pragma unroll
    for (int r = 0; r < BLOCK_M; r++) {
        const int row = blk + r;
        const int i = row / G, h = hk * G + row - i * G;
        const __global data_t *qp = q + q_base + h * q_hs + i * q_rs;
#pragma unroll
        for (int x = 0; x < ND; x++)
            qv[r][x] = row < rows ? VLOAD_DATA(16, qp + x * VW) : (float16)(0.0f);
#pragma unroll
        for (int x = 0; x < NDV; x++)
            o[r][x] = (float16)(0.0f);
        m[r] = -INFINITY;
        l[r] = 0.0f;
#if CAUSAL
        lim[r] = row < rows ? i + causal_offset : -1;
#else
        lim[r] = row < rows ? INT_MAX : -1;
#endif
    }

    for (int j0 = n_lo; j0 < n_hi; j0 += VW) {
        const int nk = min(VW, n_hi - j0);   /* keys of this step in range */
        /* Every row sees every key of the step: no per-key test (the usual case). */
        const int whole = nk == VW && j0 + VW <= n_full;

        /* The step's keys' rows in k and v (keys past the range take key j0's, in bounds, and are
           hidden below): the keys themselves, or their slots in the paged cache. */
        long kv_row[VW];
#pragma unroll
        for (int u = 0; u < VW; u++) {
            const int j = j0 + (u < nk ? u : 0);
#if PAGED
            kv_row[u] = (long)btab[j >> page_shift] << page_shift | (j & ((1 << page_shift) - 1));
#else
            kv_row[u] = j;
#endif
        }
        float16 acc[BLOCK_M][VW];            /* key u's products for row r, summed per lane */
#pragma unroll
        for (int u = 0; u < VW; u++) {
            const __global kv_t *kp = kbase + kv_row[u] * k_rs;
            float16 kr[ND];
#pragma unroll
            for (int x = 0; x < ND; x++)
                kr[x] = LOAD_KV(kp + x * VW);
#pragma unroll
            for (int r = 0; r < BLOCK_M; r++) {
                float16 a = qv[r][0] * kr[0];
#pragma unroll
                for (int x = 1; x < ND; x++)
                    a = fma(qv[r][x], kr[x], a);
                acc[r][u] = a;
            }
        }
#if KV_INT8
        /* the step's scales: one load where they are contiguous (a whole step of a dense BHSD
           tensor), else one per key */
        float16 kscale, vscale;
        if (!PAGED && s_rs == 1 && nk == VW) {
            kscale = vload16(0, ksbase + kv_row[0]) * qscale;
            vscale = vload16(0, vsbase + kv_row[0]);
        } else {
            float ksc[VW], vsc[VW];
#pragma unroll
            for (int u = 0; u < VW; u++) {
                ksc[u] = ksbase[kv_row[u] * s_rs] * qscale;
                vsc[u] = vsbase[kv_row[u] * s_rs];
            }
            kscale = vload16(0, ksc);
            vscale = vload16(0, vsc);
        }
#else
        const float16 kscale = (float16)(qscale);
#endif
        const int16 keys = (int16)(j0) + LANES;

        float pr[BLOCK_M][VW];               /* probabilities (times V's scales) for P·V */
#pragma unroll
        for (int r = 0; r < BLOCK_M; r++) {
            float16 s = sum_lanes16(acc[r]) * kscale;
            if (!whole)
                s = select(s, (float16)(-INFINITY), keys > (int16)(lim[r]) || LANES >= (int16)(nk));
            const float m_new = MAXF(m[r], max_lanes16(s));
            /* a row that has seen only -inf computes against 0: p = 0, never NaN */
            const float m_use = m_new == -INFINITY ? 0.0f : m_new;
            const float alpha = exp2(m[r] - m_use);
            const float16 p = exp2(s - (float16)(m_use));
            l[r] = fma(l[r], alpha, sum_lanes(p));
            m[r] = m_new;
#if KV_INT8
            vstore16(p * vscale, 0, pr[r]);
#else
            vstore16(p, 0, pr[r]);
#endif
            if (alpha != 1.0f) {
#pragma unroll
                for (int x = 0; x < NDV; x++)
                    o[r][x] *= alpha;
            }
        }

        /* O += P·V. */
        if (whole) {
#pragma unroll
            for (int u = 0; u < VW; u++) {
                const __global kv_t *vp = vbase + kv_row[u] * v_rs;
#pragma unroll
                for (int x = 0; x < NDV; x++) {
                    const float16 vr = LOAD_KV(vp + x * VW);
#pragma unroll
                    for (int r = 0; r < BLOCK_M; r++)
                        o[r][x] = fma((float16)(pr[r][u]), vr, o[r][x]);
                }
            }
        } else {
            /* a key a row cannot see is skipped, not weighted by 0 (0 * inf is NaN) */
            for (int u = 0; u < nk; u++) {
                const __global kv_t *vp = vbase + kv_row[u] * v_rs;
#pragma unroll
                for (int x = 0; x < NDV; x++) {
                    const float16 vr = LOAD_KV(vp + x * VW);
#pragma unroll
                    for (int r = 0; r < BLOCK_M; r++)
                        if (j0 + u <= lim[r])
                            o[r][x] = fma((float16)(pr[r][u]), vr, o[r][x]);
                }
            }
        }
    }

#if VARLEN
    if (keys_bad)                            /* bad keys or a bad block id: NaN rows */
        for (int r = 0; r < BLOCK_M; r++)
            l[r] = NAN;
#else
    (void)keys_bad;
#endif
    /* out = O / l, lse = m + log(l), with flash_attention's rules for empty and NaN rows. */
#pragma unroll
    for (int r = 0; r < BLOCK_M; r++) {
        const int row = blk + r;
        if (row >= rows)
            break;
        const int i = row / G, h = hk * G + row - i * G;
        const float inv = l[r] == 0.0f ? 0.0f : 1.0f / l[r];
        const long lse_at = lse_base + h * lse_hs + i;
#if SPLIT
        if (lse) {
            lse[lse_at] = l[r] == 0.0f ? -INFINITY : isnan(l[r]) ? NAN : m[r];
            lse[get_num_groups(2) * lse_split + lse_at] = l[r];
        }
#else
        if (lse)
            lse[lse_at] = l[r] == 0.0f ? -INFINITY
                          : m[r] == -FLT_MAX ? -FLT_MAX : (m[r] + log2(l[r])) * LN2;
#endif
        __global out_t *op = out + o_base + h * o_hs + i * o_rs;
#pragma unroll
        for (int x = 0; x < NDV; x++)
            VSTORE_OUT(o[r][x] * inv, op + x * VW);
    }
}
