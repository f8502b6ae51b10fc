/* Fused attention forward: online softmax over K/V tiles (FlashAttention-2), and its split-KV
 * (flash-decoding) variant.
 *
 * A work-group owns BLOCK_M query rows of one KV head. For grouped-query attention those are the
 * rows of all Hq/Hkv query heads that read the head, position-major (row r is query position
 * r / G of query head hk*G + r % G), so that K/V tiles are read once for the whole group and a
 * block spans few positions, which lets causal masking skip more tiles. The group walks its keys
 * in tiles of BLOCK_N, staged (as float) in local memory; the running max m, running sum l and
 * the output accumulator stay in private memory, and are rescaled by exp2(m_old - m_new) when the
 * max moves. Scores live only in a BLOCK_N x BLOCK_M local tile, never in global memory.
 *
 * Each work-item holds RM vectors of VW rows: rows are vector lanes, so the row statistics need no
 * reductions across lanes, K and V elements are broadcast, and the loops are GEMM-like register
 * blocks (UNROLL keys per step for Q·Kᵀ, UNROLL columns per step for P·V). WPR work-items share
 * a row set: they split the tile's keys for the scores and the dv columns for P·V, exchanging row
 * maxima and sums through local memory. CPUs take wide VW and WPR 1 (no exchange, two barriers
 * per tile); GPUs take VW 1 and several work-items per row. A row set whose rows cannot see any
 * key of a tile (past the end, or above the causal diagonal) skips its arithmetic there.
 *
 * Scores are computed in base 2: the host folds log2(e) into qscale and masks are scaled by
 * log2(e), so exp2 replaces exp; lse is converted back to natural log when written. The scale is
 * applied to the finished dot product, not to Q, so that a score is rounded as often as in the
 * unfused path (large logits leave little room: an ulp of a score of 200 is already 1.5e-5 of its
 * probability).
 *
 * Exactness: a row that sees no key keeps m = -inf and l = 0 and gives out 0 and lse -inf; a NaN
 * in q, k, v or the mask reaches its row through p or the accumulator (the running max ignores
 * NaN, and exp2(NaN - m) is NaN), so no -cl-fast-relaxed-math is needed or assumed. An inf or NaN
 * in V at a key a row cannot see stays out of that row, as in the reference: once the group has
 * staged such a value, hidden keys are stored with p = -1 (no probability is negative) and P·V
 * skips them (a slower loop that finite V never takes). Not -0: llvmpipe (Mesa rusticl) does not
 * keep the sign of a zero (docs/portability.md).
 *
 * SPLIT 1: get_group_id(2) picks a chunk of `chunk` keys; the group writes its normalised partial
 * output (float) to part_out [splits][B*Hq*Lq][dv], and its row max (base 2) and softmax sum apart
 * to part_lse [2][splits][B*Hq*Lq] (row (b*Hq + h)*Lq + i), for the merge kernel (cl/merge.cl,
 * PART_ML) to combine. Kept apart because m + log2(l) loses l where m is -FLT_MAX (a row of keys
 * masked with -FLT_MAX), and the merge needs every chunk's l to weigh it. A chunk that a row cannot
 * see gives that row out 0, m -inf and l 0, which the merge skips.
 *
 * Finite masks: a mask value of -FLT_MAX is FLT_MAX*log2(e) in base 2, past the float range: it is
 * held at -FLT_MAX, so a row whose keys are all masked that way is the plain softmax of equal
 * scores (as in PyTorch), and its lse, whose true value float cannot hold either, is -FLT_MAX.
 *
 * Variants (clattn.h), each a define so that plain attention pays nothing for them:
 *   WINDOW   a lower bound on the keys, j >= i + lo_offset: groups start at their first row's
 *            bound and row sets skip tiles below theirs, so a window costs O(L·w); the upper edge
 *            is the causal bound (CAUSAL, causal_offset), which the host folds it into.
 *   SOFTCAP  s = cap·tanh(scale·q·k / cap): qscale is scale / cap and softcap_l2 is cap·log2(e).
 *   ALIBI    - slope[h]·|i' - j|, i' = i + Lk - Lq, joins the mask term (alibi [Hq], natural log).
 *   SINKS    the row starts from its head's sink as if it were a key with no value: m = sink,
 *            l = 1 (sinks [Hq]); under SPLIT only chunk 0 counts it, so the merge counts it once.
 *   KV_INT8  k and v are int8: a staged element is its value times its token's scale (k_scale,
 *            v_scale at b*s_bs + hk*s_hs + j*s_rs), so everything after the copy is unchanged.
 *
 * Ragged batches and paged keys (clattn_attention_varlen):
 *   VARLEN   dim 1 is sequence x KV head; sequence b's query rows are cu_q[b] .. cu_q[b+1]-1 of the
 *            packed q and out (q_bs, o_bs unused), Lq and Lk are the launch's bounds (max_seqlen_q,
 *            max_seqlen_k) and each group works out its sequence's own Lq_b, Lk_b, causal bound
 *            (min(causal_abs, Lk_b - Lq_b + causal_offset)) and window edge (Lk_b - Lq_b +
 *            lo_offset). Keys are packed rows cu_k[b] .. cu_k[b+1]-1 of k and v, or with
 *   PAGED    seqlens_k[b] keys, key j in row block_table[b][j >> page_shift] << page_shift |
 *            (j & mask) of the caches, looked up once per tile into local memory.
 *   The tables come from the caller and are not trusted: a sequence whose query range is invalid,
 *   or that follows a decreasing step of cu_q, returns at once (there is nowhere safe to write, and
 *   sequences that run never share a row); one whose key range or length is invalid, or whose
 *   block table holds an id out of range below its length, reads no key and writes NaN to its
 *   rows. Nothing outside
 *   the buffers is read or written whatever the tables hold (tests/oclgrind_cases.c).
 */
#ifndef HEAD_D
#define HEAD_D 64        /* d: query/key head dimension (compile time, so the loops unroll) */
#endif
#ifndef HEAD_DV
#define HEAD_DV HEAD_D   /* dv: value head dimension */
#endif
#ifndef BLOCK_M
#define BLOCK_M 128      /* query rows per work-group */
#endif
#ifndef BLOCK_N
#define BLOCK_N 32       /* keys per K/V tile staged in local memory */
#endif
#ifndef VW
#define VW 16            /* rows per vector: lanes of floatVW (1, 2, 4, 8, 16) */
#endif
#ifndef RM
#define RM 1             /* row vectors per work-item */
#endif
#ifndef WPR
#define WPR 1            /* work-items sharing one set of rows (split keys and dv columns) */
#endif
#ifndef UNROLL
#define UNROLL 4         /* register block: keys per Q·Kᵀ step, dv columns per P·V step */
#endif
#ifndef LVW
#define LVW 16           /* vector width of the cooperative global -> local copies */
#endif
#ifndef SPLIT
#define SPLIT 0          /* 1: one chunk of keys per group, float partials for the merge */
#endif
#ifndef VARLEN
#define VARLEN 0         /* 1: a ragged batch, sequences' extents from cu_q and cu_k/seqlens_k */
#endif
#ifndef PAGED
#define PAGED 0          /* 1 (with VARLEN): keys in a paged cache through block_table */
#endif
/* SPLIT_OCC (work-groups per compute unit that split-KV aims for) is a host-side parameter: the
   host never passes it as a define, so its values share one program. */

#ifndef SUM_BLOCK
#define SUM_BLOCK 16     /* d elements summed apart before joining a score's total */
#endif
#define ROWS_PER_ITEM (VW * RM)
#define ROW_GROUPS (BLOCK_M / ROWS_PER_ITEM)
#define WGS (ROW_GROUPS * WPR)               /* work-group size */
#define KEYS_PER_ITEM (BLOCK_N / WPR)
/* dv padded so that every work-item owns the same whole number of UNROLL column blocks; the padding
   columns of the V tile are zero and the matching accumulators are never written out. */
#define DVP ((HEAD_DV + WPR * UNROLL - 1) / (WPR * UNROLL) * (WPR * UNROLL))
#define COLS_PER_ITEM (DVP / WPR)
/* One float of padding per K row when work-items of a row set read different keys at the same
   column: on GPUs this spreads them over the local memory banks. */
#define KD (HEAD_D + (WPR > 1 ? 1 : 0))
/* Likewise for the score tile, whose rows the work-items of a row set write at the same column,
   when rows are scalar lanes (a GPU mapping); vector lanes keep their alignment instead. */
#define SLD (BLOCK_M + (VW == 1 && WPR > 1 ? 1 : 0))
/* With scalar lanes the accumulator is meant to live in registers, which takes loops unrolled far
   enough that every index into it is a constant; with vector lanes (CPUs) it lives in memory
   anyway and full unrolling would only bloat the code. */
#if VW == 1
#define UNROLL_ACC _Pragma("unroll")
#else
#define UNROLL_ACC
#endif

#if BLOCK_M % ROWS_PER_ITEM != 0
#error "BLOCK_M must be a multiple of VW * RM"
#endif
#if BLOCK_N % (WPR * UNROLL) != 0
#error "BLOCK_N must be a multiple of WPR * UNROLL"
#endif


#if VW == 1
typedef float floatv;
typedef int intv;
#define CONVERT_FLOATV(x) ((float)(x))
#define VLOADV(p) (*(p))
#define VSTOREV(x, p) (*(p) = (x))
#define LANES 0
#else
typedef CAT(float, VW) floatv;
typedef CAT(int, VW) intv;
#define CONVERT_FLOATV(x) CAT(convert_float, VW)(x)
#define VLOADV(p) CAT(vload, VW)(0, (p))
#define VSTOREV(x, p) CAT(vstore, VW)((x), 0, (p))
#if VW == 2
#define LANES ((int2)(0, 1))
#elif VW == 4
#define LANES ((int4)(0, 1, 2, 3))
#elif VW == 8
#define LANES ((int8)(0, 1, 2, 3, 4, 5, 6, 7))
#elif VW == 16
#define LANES ((int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#else
#error "VW must be 1, 2, 4, 8 or 16"
#endif
#endif

/* Copy widths: the largest power of two up to LVW that divides the row length. */
#define WIDTH_FOR(n) (LVW >= 16 && (n) % 16 == 0 ? 16 : LVW >= 8 && (n) % 8 == 0 ? 8 : \
                      LVW >= 4 && (n) % 4 == 0 ? 4 : LVW >= 2 && (n) % 2 == 0 ? 2 : 1)
#if WIDTH_FOR(HEAD_D) == 16
#define LVK 16
#elif WIDTH_FOR(HEAD_D) == 8
#define LVK 8
#elif WIDTH_FOR(HEAD_D) == 4
#define LVK 4
#elif WIDTH_FOR(HEAD_D) == 2
#define LVK 2
#else
#define LVK 1
#endif
#if WIDTH_FOR(HEAD_DV) == 16
#define LVV 16
#elif WIDTH_FOR(HEAD_DV) == 8
#define LVV 8
#elif WIDTH_FOR(HEAD_DV) == 4
#define LVV 4
#elif WIDTH_FOR(HEAD_DV) == 2
#define LVV 2
#else
#define LVV 1
#endif

/* Loads of n contiguous K/V elements of global storage as float (n = a copy width), times the
   token's scale sc under KV_INT8 (the dequantized value); stores to local. */
#if KV_INT8
#define LOAD_N(n, src, sc) (CAT(convert_float, n)(CAT(vload, n)(0, (src))) * (sc))
#define LOAD_1(src, sc) ((float)(*(src)) * (sc))
#else
#define LOAD_N(n, src, sc) VLOAD_DATA(n, src)
#define LOAD_1(src, sc) LOAD(src, 0)
#endif
#define STORE_N(n, x, dst) CAT(vstore, n)((x), 0, (dst))
#define STORE_1(x, dst) (*(dst) = (x))
#if LVK == 1
#define COPY_K(src, sc, dst) STORE_1(LOAD_1(src, sc), dst)
#define ZERO_K(dst) STORE_1(0.0f, dst)
#else
#define COPY_K(src, sc, dst) STORE_N(LVK, LOAD_N(LVK, src, sc), dst)
#define ZERO_K(dst) STORE_N(LVK, (CAT(float, LVK))(0.0f), dst)
#endif
/* V goes through a register so that its values can be checked on the way (see v_bad). */
#if LVV == 1
typedef float vcopy_t;
typedef int vbits_t;
#define LOAD_V(src, sc) LOAD_1(src, sc)
#define STORE_V(x, dst) STORE_1(x, dst)
#define AS_VBITS(x) as_int(x)
#define ANY_V(b) ((b) != 0)
#else
typedef CAT(float, LVV) vcopy_t;
typedef CAT(int, LVV) vbits_t;
#define LOAD_V(src, sc) LOAD_N(LVV, src, sc)
#define STORE_V(x, dst) STORE_N(LVV, x, dst)
#define AS_VBITS(x) CAT(as_int, LVV)(x)
#define ANY_V(b) any(b)
#endif

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* Larger of a and b, keeping a when b is NaN: the running max never becomes NaN (a NaN score still
   reaches the row through exp2), and this is one compare and select. */
#define MAXV(a, b) select((a), (b), (b) > (a))

/* tanh through one exp2 and a division, in vector arithmetic (PoCL's vector tanh costs soft-capping
   several times more): absolute error a few float ulps, which the cap then scales. NaN stays NaN,
   ±inf gives ±1. */
inline floatv tanh_exp2(floatv x)
{
    const floatv e = exp2((floatv)(-2.0f * LOG2E) * fabs(x));
    return copysign(((floatv)(1.0f) - e) / ((floatv)(1.0f) + e), x);
}

/* Score s of key j less its ALiBi bias, for row vector rm's lanes (vector arithmetic, in the pass
   that takes the row maxima). A finite score stays finite, as a finite mask value does (below). */
#define ALIBI_BIAS(s, rm, j)                                                                      \
    alibi_bias((s), aslope[rm], apos[rm], (j))
inline floatv alibi_bias(floatv s, floatv slope, intv pos, int j)
{
    const floatv t = s - slope * CONVERT_FLOATV(abs(pos - (intv)(j)));
    return select(t, (floatv)(-FLT_MAX), isinf(t) && !isinf(s));
}

#if SPLIT
typedef float out_t;
#define STORE_OUT(p, i, x) ((p)[(i)] = (x))
#else
typedef data_t out_t;
#define STORE_OUT(p, i, x) STORE(p, i, x)
#endif

/* NDRange: dim 0 = row blocks x WGS, dim 1 = B*Hkv, dim 2 = key chunks (SPLIT) or 1.
 * Strides are in elements; qscale = scale * log2(e); key j is visible from query i iff
 * j <= i + causal_offset (CAUSAL). out/lse: the caller's tensors, or the split partials (SPLIT,
 * where o_* are the partial layout and o_split/lse_split the per-chunk offsets); lse may be
 * NULL. */
__kernel __attribute__((reqd_work_group_size(WGS, 1, 1)))
void flash_attention(FLASH_KERNEL_ARGS)
{
    __local float Ql[HEAD_D * BLOCK_M];   /* [k][row] */
    __local float Kl[BLOCK_N * KD];       /* [key][k] */
    __local float Vl[BLOCK_N * DVP];      /* [key][c] */
    __local float Sl[BLOCK_N * SLD];      /* [key][row]: scores, then probabilities */
    __local int v_bad;                    /* a staged V value was inf or NaN (stays raised) */
#if VARLEN
    __local int q_bad;                    /* a step of cu_q up to this sequence's end decreases */
#endif
#if PAGED
    __local int Rl[BLOCK_N];              /* the tile's keys' rows in the caches */
    __local int index_bad;                /* a block id was out of range (stays raised) */
#endif
#if WPR > 1
    __local float red_m[WPR * BLOCK_M];   /* partial row maxima of each share of keys */
    __local float red_s[WPR * BLOCK_M];   /* partial row sums */
#endif

    const int lid = get_local_id(0);
    const int rg = lid / WPR;
    const int w = lid - rg * WPR;
    const int G = Hq / Hkv;
    const int bh = get_group_id(1);
    const int b = bh / Hkv;
    const int hk = bh - b * Hkv;
    const int blk = get_group_id(0) * BLOCK_M;
    const int rb = rg * ROWS_PER_ITEM;       /* my first row within the block */

#if VARLEN
    /* This group's sequence, from the caller's tables (whole-group values: every work-item reads
       the same entries, so the returns below are taken by the whole group). */
    /* Valid only behind a non-decreasing prefix, so that two sequences that run can never share a
       row (their writes would race): the group reads cu_q[0..b+1] once between its work-items. */
    if (lid == 0) {
        q_bad = cu_q[0] < 0;
#if PAGED
        index_bad = 0;
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int x = lid; x <= b; x += WGS)
        if (cu_q[x] > cu_q[x + 1])
            atomic_or(&q_bad, 1);
    barrier(CLK_LOCAL_MEM_FENCE);
    const int q_first = cu_q[b], q_end = cu_q[b + 1];
    if (q_bad || q_end > total_q || q_end - q_first > Lq)
        return;
    const int Lq_b = q_end - q_first;
#if PAGED
    int k_first = 0, Lk_b = seqlens_k[b];
    int keys_bad = Lk_b < 0 || Lk_b > Lk || (long)Lk_b > ((long)max_blocks << page_shift);
    const __global int *btab = block_table + (long)b * max_blocks;
    (void)cu_k; (void)total_k;
    /* Every block id the sequence uses, checked once, before any tile: a bad one makes all its
       rows NaN, as bad lengths do, and no key is read. Then the tiles look their rows up with no
       test per key, and their copies are the packed ones' (a per-key test there cost about a
       tenth of a decode step on a CPU, clattn-bench --serving). */
    if (!keys_bad)                           /* whole-group: every work-item read the same length */
        for (int x = lid; x < (Lk_b + (1 << page_shift) - 1) >> page_shift; x += WGS)
            if (btab[x] < 0 || btab[x] >= num_blocks)
                atomic_or(&index_bad, 1);
    barrier(CLK_LOCAL_MEM_FENCE);
    keys_bad |= index_bad;
#else
    int k_first = cu_k[b];
    const int k_end = cu_k[b + 1];
    const int keys_bad = k_first < 0 || k_end < k_first || k_end > total_k || k_end - k_first > Lk;
    int Lk_b = k_end - k_first;
    (void)seqlens_k; (void)block_table; (void)num_blocks; (void)max_blocks; (void)page_shift;
#endif
    if (keys_bad) {                          /* no key is read; the rows are written NaN */
        Lk_b = 0;
        k_first = 0;
    }
    /* Per-sequence bounds in long arithmetic (a window edge may be INT_MAX), then held to the
       range where they still mean the same: at most Lk_b, at least one below any row's reach. */
    const long delta = (long)Lk_b - Lq_b;
    const int causal_offset = (int)clamp(min((long)causal_abs, delta + causal_offset_arg),
                                         -(long)Lq_b - 1, (long)Lk_b);
    const int lo_offset = (int)clamp(delta + lo_offset_arg, -(long)Lq_b - 1, (long)Lk_b + 1);
    const long q_base = (long)q_first * q_rs, o_base = (long)q_first * o_rs;
    const long lse_base = q_first, lse_hs = total_q;
    const long k_base = (long)k_first * k_rs, v_base = (long)k_first * v_rs;
    const long s_base = (long)k_first * s_rs;
    (void)q_bs; (void)o_bs; (void)k_bs; (void)v_bs; (void)s_bs;
#else
    (void)cu_q; (void)cu_k; (void)seqlens_k; (void)block_table; (void)total_q; (void)total_k;
    (void)num_blocks; (void)max_blocks; (void)page_shift; (void)causal_abs;
    const int Lq_b = Lq, Lk_b = Lk, keys_bad = 0;
    const long delta = (long)Lk - Lq;
    const int causal_offset = causal_offset_arg, lo_offset = lo_offset_arg;
    const long q_base = b * q_bs, o_base = b * o_bs;
    const long lse_base = ((long)b * Hq) * Lq, lse_hs = Lq;
    const long k_base = b * k_bs, v_base = b * v_bs, s_base = b * s_bs;
#endif
    const int rows = G * Lq_b;
#if VARLEN
    if (blk >= rows)
        return;                              /* a row block past this sequence's queries */
#if SPLIT
    if (get_group_id(2) > 0 && get_group_id(2) * chunk >= Lk_b) {
        /* A chunk past its sequence's keys saw none: its partial max is -inf, which the merge
           skips (chunk 0 always runs the whole way: it carries a sink, and a NaN for bad keys). */
        for (int r = lid; r < min(BLOCK_M, rows - blk); r += WGS) {
            const int row = blk + r, i = row / G, h = hk * G + row - i * G;
            lse[get_group_id(2) * lse_split + lse_base + h * lse_hs + i] = -INFINITY;
        }
        return;
    }
#endif
#endif
    (void)delta;

    const __global kv_t *kbase = k + k_base + hk * k_hs;
    const __global kv_t *vbase = v + v_base + hk * v_hs;
#if KV_INT8
    const __global float *ksbase = k_scale + s_base + hk * s_hs;   /* key row r's scale at r*s_rs */
    const __global float *vsbase = v_scale + s_base + hk * s_hs;
#else
    (void)k_scale; (void)v_scale; (void)s_base; (void)s_hs; (void)s_rs;
#endif
#if KV_INT8
#define K_SCALE(r) ksbase[(r) * s_rs]
#define V_SCALE(r) vsbase[(r) * s_rs]
#else
#define K_SCALE(r) 1.0f
#define V_SCALE(r) 1.0f
#endif
/* The row of tile key j in k and v (from kbase/vbase): the key itself, or its slot in the cache. */
#if PAGED
#define KV_ROW(j) ((long)Rl[(j)])
#else
#define KV_ROW(j) ((long)(j0 + (j)))
#endif
#if SPLIT
    out += get_group_id(2) * o_split;
    if (lse)
        lse += get_group_id(2) * lse_split;
#endif

    /* The keys this group visits: its chunk, and under a causal mask no key past the last row's
       diagonal. Tiles wholly before the first row's diagonal need no per-element test. */
    const int last_row = min(blk + BLOCK_M, rows) - 1;
    int n_lo = 0, n_hi = Lk_b;
#if SPLIT
    n_lo = get_group_id(2) * chunk;
    n_hi = min(Lk_b, n_lo + chunk);
#endif
    int n_full = n_hi;
#if CAUSAL
    n_hi = min(n_hi, last_row / G + causal_offset + 1);
    n_full = min(n_hi, blk / G + causal_offset + 1);
#endif
    /* The same for my own rows: a row set whose rows are all past the end, or that cannot see any
       key of a tile, skips its arithmetic there (it still meets every barrier). */
    int my_hi = blk + rb < rows ? n_hi : n_lo;
    int my_full = n_full;
#if CAUSAL
    my_hi = min(my_hi, (min(blk + rb + ROWS_PER_ITEM, rows) - 1) / G + causal_offset + 1);
    my_full = min(my_hi, (blk + rb) / G + causal_offset + 1);
#endif
#if WINDOW
    /* The window's lower edge: the group starts at its first row's, a row set runs from its own
       first row's, and below its last row's some of its rows need the per-key test. */
    const int my_lo = (blk + rb) / G + lo_offset;
    const int my_lo_full = (min(blk + rb + ROWS_PER_ITEM, rows) - 1) / G + lo_offset;
    n_lo = max(n_lo, blk / G + lo_offset);
#else
    (void)lo_offset;
#endif
#if !SOFTCAP
    (void)softcap_l2;
#endif
#if !ALIBI
    (void)alibi;
#endif

    /* Q block, transposed so that a work-item's rows are one vector load. Rows past the end are
       zero; their results are discarded. Copied in runs of LVK elements of a row, so that the
       row's position and head (a division by G) are worked out once per run, not per element:
       per element they cost as much as a window's whole block of products on a CPU. */
    for (int e = lid; e < BLOCK_M * (HEAD_D / LVK); e += WGS) {
        const int r = e / (HEAD_D / LVK), kk = (e - r * (HEAD_D / LVK)) * LVK;
        const int row = blk + r;
        float t[LVK];
        if (row < rows) {
            const int i = row / G, h = hk * G + row - i * G;
            const __global data_t *src = q + q_base + h * q_hs + i * q_rs + kk;
#if LVK == 1
            t[0] = LOAD(src, 0);
#else
            CAT(vstore, LVK)(VLOAD_DATA(LVK, src), 0, t);
#endif
        } else {
            for (int x = 0; x < LVK; x++)
                t[x] = 0.0f;
        }
        for (int x = 0; x < LVK; x++)
            Ql[(kk + x) * BLOCK_M + r] = t[x];
    }
#if DVP > HEAD_DV
    for (int e = lid; e < BLOCK_N * (DVP - HEAD_DV); e += WGS) {
        const int j = e / (DVP - HEAD_DV);
        Vl[j * DVP + HEAD_DV + e - j * (DVP - HEAD_DV)] = 0.0f;
    }
#endif

    if (lid == 0)
        v_bad = 0;                          /* read only after the first tile's barriers */
    floatv m[RM], l[RM];
    floatv o[RM][COLS_PER_ITEM];
#if CAUSAL
    intv ilim[RM];                           /* last key each lane's row may see */
#endif
#if WINDOW
    intv jlo[RM];                            /* first key each lane's row may see */
#endif
#if ALIBI
    floatv aslope[RM];                       /* each lane's head's slope, base 2 */
    intv apos[RM];                           /* each lane's i' */
#endif
#pragma unroll
    for (int rm = 0; rm < RM; rm++) {
        m[rm] = (floatv)(-INFINITY);
        l[rm] = (floatv)(0.0f);
        UNROLL_ACC
        for (int t = 0; t < COLS_PER_ITEM; t++)
            o[rm][t] = (floatv)(0.0f);
#if CAUSAL
        ilim[rm] = (blk + rb + rm * VW + LANES) / G + causal_offset;
#endif
#if WINDOW
        jlo[rm] = (blk + rb + rm * VW + LANES) / G + lo_offset;
#endif
#if ALIBI
        {
            float sl[VW];
            for (int x = 0; x < VW; x++) {
                const int row = min(blk + rb + rm * VW + x, rows - 1);
                sl[x] = alibi[hk * G + row % G] * LOG2E;
            }
            aslope[rm] = VLOADV(sl);
            apos[rm] = (blk + rb + rm * VW + LANES) / G + (int)delta;
        }
#endif
#if SINKS
        /* The sink as a key with no value: m = sink, l = exp2(sink - m) = 1 (0 for a -inf sink). */
#if SPLIT
        if (get_group_id(2) == 0)
#endif
        {
            float sk[VW];
            for (int x = 0; x < VW; x++) {
                const int row = min(blk + rb + rm * VW + x, rows - 1);
                const float t = sinks[hk * G + row % G], t2 = t * LOG2E;
                sk[x] = isinf(t2) && !isinf(t) ? copysign(FLT_MAX, t2) : t2;
            }
            m[rm] = VLOADV(sk);
            l[rm] = select((floatv)(1.0f), (floatv)(0.0f), m[rm] == (floatv)(-INFINITY));
        }
#endif
    }

    for (int j0 = n_lo; j0 < n_hi; j0 += BLOCK_N) {
        /* Whole-group control flow (the barriers): j0 and n_hi are the same for every work-item. */
#if WINDOW
        const int run = j0 < my_hi && j0 + BLOCK_N > my_lo;    /* my rows see a key of this tile */
        const int edge = j0 + BLOCK_N > my_full || j0 < my_lo_full;   /* ... but not every key */
#else
        const int run = j0 < my_hi;                 /* my rows see a key of this tile */
        const int edge = j0 + BLOCK_N > my_full;    /* ... but not every key for every row */
#endif
#if PAGED
        /* The tile's rows in the caches. Rl was last read by the previous tile's copies, which
           ended at its second barrier. Every block id below Lk_b was checked before the tiles;
           keys past n_hi are not copied. */
        for (int j = lid; j < BLOCK_N; j += WGS) {
            const int key = j0 + j;
            Rl[j] = key < n_hi ? btab[key >> page_shift] << page_shift | (key & ((1 << page_shift) - 1))
                               : 0;
        }
#endif
        barrier(CLK_LOCAL_MEM_FENCE);       /* the previous tile is no longer read */
        /* A whole tile copies without a test per element (the usual case). */
        const int whole = j0 + BLOCK_N <= n_hi;
        for (int e = lid; e < BLOCK_N * (HEAD_D / LVK); e += WGS) {
            const int j = e / (HEAD_D / LVK), kk = (e - j * (HEAD_D / LVK)) * LVK;
            __local float *dst = Kl + j * KD + kk;
            if (whole || j0 + j < n_hi)
                COPY_K(kbase + KV_ROW(j) * k_rs + kk, K_SCALE(KV_ROW(j)), dst);
            else
                ZERO_K(dst);
        }
        /* Whether any staged V value is inf or NaN: its exponent bits are all ones. Tested on the
           bits, as integers, because compilers that assume finite math fold the float tests
           (llvmpipe turns x * 0 into 0 even for a NaN x, docs/portability.md). */
        vbits_t bad = (vbits_t)(0);
        for (int e = lid; e < BLOCK_N * (HEAD_DV / LVV); e += WGS) {
            const int j = e / (HEAD_DV / LVV), c = (e - j * (HEAD_DV / LVV)) * LVV;
            __local float *dst = Vl + j * DVP + c;
            /* Keys past the end are zero, not left over: p is 0 there, but 0 * NaN is not. */
            if (whole || j0 + j < n_hi) {
                const vcopy_t x = LOAD_V(vbase + KV_ROW(j) * v_rs + c, V_SCALE(KV_ROW(j)));
                STORE_V(x, dst);
                bad |= (AS_VBITS(x) & (vbits_t)(0x7f800000)) == (vbits_t)(0x7f800000);
            } else {
                STORE_V((vcopy_t)(0.0f), dst);
            }
        }
        if (ANY_V(bad))
            atomic_or(&v_bad, 1);
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Whole-group: every work-item reads the flag after the same barrier. */
        const int skip_hidden = v_bad;

        floatv alpha[RM];
        if (run) {
            /* S = Q·Kᵀ for my rows and my keys (w, w + WPR, ...). */
            for (int t0 = 0; t0 < KEYS_PER_ITEM; t0 += UNROLL) {
                floatv s[RM][UNROLL];
#pragma unroll
                for (int rm = 0; rm < RM; rm++)
#pragma unroll
                    for (int u = 0; u < UNROLL; u++)
                        s[rm][u] = (floatv)(0.0f);
                const __local float *kp = Kl + (w + WPR * t0) * KD;
                const __local float *qp = Ql + rb;
                /* Blocked summation: each SUM_BLOCK slice of d is summed on its own and then added,
                   which keeps the rounding of a long dot product several times smaller (as the
                   unfused path does); large logits turn that error into probability error. */
                for (int k0 = 0; k0 < HEAD_D; k0 += SUM_BLOCK) {
                    floatv part[RM][UNROLL];
#pragma unroll
                    for (int rm = 0; rm < RM; rm++)
#pragma unroll
                        for (int u = 0; u < UNROLL; u++)
                            part[rm][u] = (floatv)(0.0f);
                    const int k1 = min(k0 + SUM_BLOCK, HEAD_D);
                    for (int kk = k0; kk < k1; kk++) {
                        floatv qv[RM];
#pragma unroll
                        for (int rm = 0; rm < RM; rm++)
                            qv[rm] = VLOADV(qp + kk * BLOCK_M + rm * VW);
#pragma unroll
                        for (int u = 0; u < UNROLL; u++) {
                            const float kv = kp[u * WPR * KD + kk];
#pragma unroll
                            for (int rm = 0; rm < RM; rm++)
                                part[rm][u] = fma(qv[rm], (floatv)(kv), part[rm][u]);
                        }
                    }
#pragma unroll
                    for (int rm = 0; rm < RM; rm++)
#pragma unroll
                        for (int u = 0; u < UNROLL; u++)
                            s[rm][u] += part[rm][u];
                }
#pragma unroll
                for (int u = 0; u < UNROLL; u++)
#pragma unroll
                    for (int rm = 0; rm < RM; rm++)
#if SOFTCAP
                        VSTOREV(tanh_exp2(s[rm][u] * qscale) * softcap_l2,
                                Sl + (w + WPR * (t0 + u)) * SLD + rb + rm * VW);
#else
                        VSTOREV(s[rm][u] * qscale,
                                Sl + (w + WPR * (t0 + u)) * SLD + rb + rm * VW);
#endif
            }

#if MASK_TYPE
            /* The mask, scaled to base 2 like the scores, for my rows and keys. */
            for (int r = 0; r < ROWS_PER_ITEM; r++) {
                const int row = blk + rb + r;
                if (row >= rows)
                    break;
                const int i = row / G, h = hk * G + row - i * G;
                const __global mask_t *mrow = mask + b * m_bs + h * m_hs + i * m_rs + j0;
                for (int t = 0; t < KEYS_PER_ITEM; t++) {
                    const int j = w + WPR * t;
                    if (j0 + j < n_hi) {
                        const float mt = mask_term(mrow, j);
                        /* A finite term stays finite in base 2: -FLT_MAX (PyTorch's finfo.min, as
                           Hugging Face pads) times log2(e) would overflow to -inf and hide a key
                           that PyTorch keeps. */
                        const float t2 = mt * LOG2E;
                        Sl[j * SLD + rb + r] += isinf(t2) && !isinf(mt) ? copysign(FLT_MAX, t2) : t2;
                    }
                }
            }
#endif

            /* Row maxima over my keys; keys past the end or the diagonal become -inf. */
#pragma unroll
            for (int rm = 0; rm < RM; rm++) {
                __local float *sp = Sl + rb + rm * VW;
                floatv mx = m[rm];
                if (edge) {
                    for (int t = 0; t < KEYS_PER_ITEM; t++) {
                        const int j = w + WPR * t;
                        floatv s = VLOADV(sp + j * SLD);
#if ALIBI
                        s = ALIBI_BIAS(s, rm, j0 + j);
#endif
#if CAUSAL
                        const intv past_diagonal = ilim[rm] < (intv)(j0 + j);
                        s = j0 + j < n_hi ? select(s, (floatv)(-INFINITY), past_diagonal)
                                          : (floatv)(-INFINITY);
#else
                        s = j0 + j < n_hi ? s : (floatv)(-INFINITY);
#endif
#if WINDOW
                        s = select(s, (floatv)(-INFINITY), jlo[rm] > (intv)(j0 + j));
#endif
                        VSTOREV(s, sp + j * SLD);
                        mx = MAXV(mx, s);
                    }
                } else {
#if ALIBI
                    for (int t = 0; t < KEYS_PER_ITEM; t++) {
                        const int j = w + WPR * t;
                        const floatv s = ALIBI_BIAS(VLOADV(sp + j * SLD), rm, j0 + j);
                        VSTOREV(s, sp + j * SLD);
                        mx = MAXV(mx, s);
                    }
#else
                    for (int t = 0; t < KEYS_PER_ITEM; t++)
                        mx = MAXV(mx, VLOADV(sp + (w + WPR * t) * SLD));
#endif
                }
#if WPR > 1
                VSTOREV(mx, red_m + w * BLOCK_M + rb + rm * VW);
#else
                alpha[rm] = mx;
#endif
            }
        }
#if WPR > 1
        barrier(CLK_LOCAL_MEM_FENCE);
        if (run) {
#pragma unroll
            for (int rm = 0; rm < RM; rm++) {
                floatv mx = m[rm];
                for (int x = 0; x < WPR; x++)
                    mx = MAXV(mx, VLOADV(red_m + x * BLOCK_M + rb + rm * VW));
                alpha[rm] = mx;
            }
        }
#endif

        if (run) {
            /* Probabilities relative to the new max; the accumulator is rescaled by alpha. A row
               that has seen only -inf keeps m = -inf and computes against 0: p = 0, never NaN. */
#pragma unroll
            for (int rm = 0; rm < RM; rm++) {
                __local float *sp = Sl + rb + rm * VW;
                const floatv m_new = alpha[rm];
                const floatv m_use = select(m_new, (floatv)(0.0f), m_new == (floatv)(-INFINITY));
                alpha[rm] = exp2(m[rm] - m_use);
                m[rm] = m_new;
                floatv sum = (floatv)(0.0f);
                for (int t = 0; t < KEYS_PER_ITEM; t++) {
                    const int j = w + WPR * t;
                    const floatv s = VLOADV(sp + j * SLD);
                    const floatv p = exp2(s - m_use);   /* 0 exactly where s is -inf */
                    VSTOREV(skip_hidden ? select(p, (floatv)(-1.0f), s == (floatv)(-INFINITY)) : p,
                            sp + j * SLD);
                    sum += p;
                }
#if WPR > 1
                VSTOREV(sum, red_s + w * BLOCK_M + rb + rm * VW);
#else
                l[rm] = fma(l[rm], alpha[rm], sum);
#endif
            }
        }
#if WPR > 1
        barrier(CLK_LOCAL_MEM_FENCE);       /* every share's probabilities and sums are written */
        if (run) {
#pragma unroll
            for (int rm = 0; rm < RM; rm++) {
                floatv sum = (floatv)(0.0f);
                for (int x = 0; x < WPR; x++)
                    sum += VLOADV(red_s + x * BLOCK_M + rb + rm * VW);
                l[rm] = fma(l[rm], alpha[rm], sum);
            }
        }
#endif

        if (run) {
            /* O = O·alpha + P·V for my rows and my columns (w, w + WPR, ...). */
            UNROLL_ACC
            for (int t0 = 0; t0 < COLS_PER_ITEM; t0 += UNROLL) {
                floatv acc[RM][UNROLL];
#pragma unroll
                for (int rm = 0; rm < RM; rm++)
#pragma unroll
                    for (int u = 0; u < UNROLL; u++)
                        acc[rm][u] = o[rm][t0 + u] * alpha[rm];
                const __local float *vp = Vl + w + WPR * t0;
                const __local float *pp = Sl + rb;
                for (int j = 0; j < BLOCK_N; j++) {
                    floatv pv[RM];
#pragma unroll
                    for (int rm = 0; rm < RM; rm++)
                        pv[rm] = VLOADV(pp + j * SLD + rm * VW);
                    if (!skip_hidden) {
#pragma unroll
                        for (int u = 0; u < UNROLL; u++) {
                            const float vv = vp[j * DVP + u * WPR];
#pragma unroll
                            for (int rm = 0; rm < RM; rm++)
                                acc[rm][u] = fma(pv[rm], (floatv)(vv), acc[rm][u]);
                        }
                    } else {
                        /* V holds an inf or NaN: a key a row cannot see (p = -1) is skipped
                           rather than weighted by 0, so that it stays out of the row, as in the
                           reference. A visible key with p underflowed to 0 is still weighted. */
                        intv hidden[RM];
#pragma unroll
                        for (int rm = 0; rm < RM; rm++)
                            hidden[rm] = pv[rm] < (floatv)(0.0f);
#pragma unroll
                        for (int u = 0; u < UNROLL; u++) {
                            const float vv = vp[j * DVP + u * WPR];
#pragma unroll
                            for (int rm = 0; rm < RM; rm++)
                                acc[rm][u] = select(fma(pv[rm], (floatv)(vv), acc[rm][u]),
                                                    acc[rm][u], hidden[rm]);
                        }
                    }
                }
#pragma unroll
                for (int rm = 0; rm < RM; rm++)
#pragma unroll
                    for (int u = 0; u < UNROLL; u++)
                        o[rm][t0 + u] = acc[rm][u];
            }
        }
    }

#if VARLEN
    /* Bad keys or a bad block id: the rows are NaN (a NaN l makes out and lse NaN, and under
       SPLIT the partial max, which the merge passes on). */
    if (keys_bad)
        for (int rm = 0; rm < RM; rm++)
            l[rm] = (floatv)(NAN);
#else
    (void)keys_bad;
#endif

    /* out = O / l, lse = m + log(l); a row that saw no key has l = 0: out 0, lse -inf. A NaN l
       (a NaN input) stays NaN in both. A row at the -FLT_MAX floor has lse -FLT_MAX (above). */
#pragma unroll
    for (int rm = 0; rm < RM; rm++) {
        const floatv inv = select((floatv)(1.0f) / l[rm], (floatv)(0.0f), l[rm] == (floatv)(0.0f));
#if SPLIT
        /* a NaN row (a NaN input: m -inf, l NaN) writes a NaN max, so the merge passes it on */
        const floatv lse_v = select(select(m[rm], (floatv)(NAN), isnan(l[rm])), (floatv)(-INFINITY),
                                    l[rm] == (floatv)(0.0f));
        float sb[VW];
        VSTOREV(l[rm], sb);
        const long l_at = get_num_groups(2) * lse_split;   /* the sums follow the maxima */
#else
        /* m is exactly -FLT_MAX at the floor (a score added to -FLT_MAX rounds back to it);
           a NaN row (m -inf, l NaN) must stay NaN */
        const floatv lse_v = select(select((m[rm] + log2(l[rm])) * LN2, (floatv)(-FLT_MAX),
                                           m[rm] == (floatv)(-FLT_MAX)),
                                    (floatv)(-INFINITY), l[rm] == (floatv)(0.0f));
#endif
        float ob[VW], lb[VW];
        long obase[VW];
        VSTOREV(lse_v, lb);
        for (int x = 0; x < VW; x++) {
            const int row = blk + rb + rm * VW + x;
            const int i = row / G, h = hk * G + row - i * G;
            obase[x] = row < rows ? o_base + h * o_hs + i * o_rs : -1;
            if (w == 0 && lse && row < rows) {
                lse[lse_base + h * lse_hs + i] = lb[x];
#if SPLIT
                lse[l_at + lse_base + h * lse_hs + i] = sb[x];
#endif
            }
        }
        UNROLL_ACC
        for (int t = 0; t < COLS_PER_ITEM; t++) {
            const int c = w + WPR * t;
            if (c >= HEAD_DV)
                break;
            VSTOREV(o[rm][t] * inv, ob);
            for (int x = 0; x < VW; x++)
                if (obase[x] >= 0)
                    STORE_OUT(out, obase[x] + c, ob[x]);
        }
    }
}
