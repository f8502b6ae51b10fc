/* Unfused attention, stage 1: S = (Q·Kᵀ)·scale with the causal and mask terms applied, into a float
 * score buffer (the caller's probs buffer, or a chunk of context scratch).
 *
 * A tiled GEMM with both operands row-major along d: a work-group owns a TILE_M x TILE_N block of S
 * and stages TILE_K-wide slices of Q and K in local memory; each work-item accumulates WPT_M rows
 * (strided by the work-group's row extent) of WPT_N adjacent keys, held as one float vector per row
 * so that the inner product is vector arithmetic even where the compiler does not vectorise across
 * work-items (CPU drivers).
 *
 * Chunking: the launch covers score rows [row0, row0 + rows) of heads [bh0, bh0 + get_num_groups(2))
 * (bh = b*Hq + h). The score of (bh, i, j) sits at (bh - bh0)*s_bhs + (i - row0)*Lk + j, which is the
 * probs layout when bh0 = row0 = 0 and s_bhs = Lq*Lk.
 */
#ifndef TILE_M
#define TILE_M 32   // query rows per work-group tile
#endif
#ifndef TILE_N
#define TILE_N 32   // keys per work-group tile
#endif
#ifndef TILE_K
#define TILE_K 16   // head-dim slice staged in local memory per step
#endif
#ifndef WPT_M
#define WPT_M 4     // rows each work-item accumulates
#endif
#ifndef WPT_N
#define WPT_N 4     // adjacent keys each work-item accumulates: the vector width, 1, 2, 4, 8 or 16
#endif

#if TILE_M % WPT_M != 0 || TILE_N % WPT_N != 0
#error "TILE_M and TILE_N must be multiples of WPT_M and WPT_N"
#endif

#define THREADS_M (TILE_M / WPT_M)   // work-group extent along rows (dimension 1)
#define THREADS_N (TILE_N / WPT_N)   // work-group extent along keys (dimension 0)
#define THREADS (THREADS_M * THREADS_N)


/* Tiles are staged in runs of LV consecutive d elements: one vector load where the run lies inside
   the matrix, element by element (zero-filled) at its edges. Scalar staging costs CPUs more than
   the products it feeds. */
#if TILE_K == 4
#define LV 4
#elif TILE_K == 8
#define LV 8
#elif TILE_K % 16 == 0
#define LV 16
#else
#error "TILE_K must be 4, 8 or a multiple of 16"
#endif
#define RUNS (TILE_K / LV)   // runs per tile row
typedef CAT(float, LV) run_t;
#define LOAD_RUN(p, i) VLOAD_DATA(LV, (p) + (i))

/* The run of row `row` of a d-contiguous matrix at base + row*rs, elements kk .. kk + LV, zero where
   row >= n_rows or past d. */
inline run_t load_run(const __global data_t *p, long base, long rs, int row, int n_rows, int kk, int d)
{
    if (row >= n_rows)
        return 0.0f;
    const long at = base + row * rs + kk;
    if (kk + LV <= d)
        return LOAD_RUN(p, at);
    float t[LV];
    for (int e = 0; e < LV; ++e)
        t[e] = kk + e < d ? LOAD(p, at + e) : 0.0f;
    return CAT(vload, LV)(0, t);
}

#if KV_INT8
/* load_run for int8 K: the values times their key's scale (at s_base + row*s_rs). */
inline run_t load_k_run(const __global char *p, const __global float *sc, long base, long rs,
                        long s_base, long s_rs, int row, int n_rows, int kk, int d)
{
    if (row >= n_rows)
        return 0.0f;
    const long at = base + row * rs + kk;
    const float s = sc[s_base + row * s_rs];
    if (kk + LV <= d)
        return CAT(convert_float, LV)(CAT(vload, LV)(0, p + at)) * s;
    float t[LV];
    for (int e = 0; e < LV; ++e)
        t[e] = kk + e < d ? (float)p[at + e] * s : 0.0f;
    return CAT(vload, LV)(0, t);
}
#endif

#if WPT_N == 1
typedef float vec_t;
#define VLOAD(p) (*(p))
#define VSTORE(x, p) (*(p) = (x))
#else
typedef CAT(float, WPT_N) vec_t;
#define VLOAD(p) CAT(vload, WPT_N)(0, (p))
#define VSTORE(x, p) CAT(vstore, WPT_N)((x), 0, (p))
#endif

/* Q is kept as it lies (row-major); a spare column puts the rows that neighbouring work-items read
   in one step on different local-memory banks. K is stored transposed (d-major) so that a
   work-item's WPT_N keys are one vector read; the WPT_N spare columns keep those reads aligned
   while spreading the transposing store over banks. */
#define Q_LD (TILE_K + 1)
#define K_LD (TILE_N + WPT_N)

__kernel __attribute__((reqd_work_group_size(THREADS_N, THREADS_M, 1)))
void qk_scores(const __global data_t *q, const __global kv_t *k, const __global mask_t *mask,
               __global float *scores,
               const int Lk, const int d, const int Hq, const int group,
               const long q_bs, const long q_hs, const long q_rs,
               const long k_bs, const long k_hs, const long k_rs,
               const long m_bs, const long m_hs, const long m_rs,
               const float scale, const int causal_offset,
               const int Lq, const int lo_offset, const float softcap, const __global float *alibi,
               const __global float *k_scale, const long s_bs, const long s_hs, const long s_rs,
               const int bh0, const int row0, const int rows, const long s_bhs)
{
    __local float qs[TILE_M * Q_LD];
    __local float ks[TILE_K * K_LD];
#if MASK_TYPE == 0
    (void)mask, (void)m_bs, (void)m_hs, (void)m_rs;
#endif
#if !CAUSAL
    (void)causal_offset;
#endif
#if !WINDOW
    (void)lo_offset;
#endif
#if !SOFTCAP
    (void)softcap;
#endif
#if !ALIBI
    (void)alibi, (void)Lq;
#endif

    const int tx = get_local_id(0);
    const int ty = get_local_id(1);
    const int tid = ty * THREADS_N + tx;
    const int col0 = get_group_id(0) * TILE_N;    // first key of the tile
    const int lrow0 = get_group_id(1) * TILE_M;   // first row of the tile, relative to row0
    const int bhl = get_group_id(2);
    const int bh = bh0 + bhl;
    const int b = bh / Hq;
    const int h = bh % Hq;
    const long q_base = b * q_bs + h * q_hs + (long)row0 * q_rs;
    const long k_base = b * k_bs + (h / group) * k_hs;
#if KV_INT8
    const long s_base = b * s_bs + (h / group) * s_hs;   /* key j's scale at s_base + j*s_rs */
#else
    (void)k_scale, (void)s_bs, (void)s_hs, (void)s_rs;
#endif

    vec_t acc[WPT_M];
    for (int r = 0; r < WPT_M; ++r)
        acc[r] = 0.0f;

    int k_end = d;
#if CAUSAL
    /* A tile wholly above the diagonal is all -inf: skip its products. The test is the same for the
       whole work-group, so every work-item still meets the same barriers. */
    const int last_row = row0 + min(lrow0 + TILE_M, rows) - 1;
    if (col0 > last_row + causal_offset)
        k_end = 0;
#endif
#if WINDOW
    /* Likewise a tile wholly below the window of its first row. */
    if (col0 + TILE_N - 1 < row0 + lrow0 + lo_offset)
        k_end = 0;
#endif

    for (int k0 = 0; k0 < k_end; k0 += TILE_K) {
        /* Out-of-range rows, keys and d elements are staged as 0 so that the inner loop needs no
           bounds checks. K is transposed on its way in: consecutive work-items take consecutive
           keys, so each element of a run lands next to its neighbours' in local memory. */
        for (int idx = tid; idx < TILE_M * RUNS; idx += THREADS) {
            const int r = idx / RUNS, c = idx % RUNS * LV;
            CAT(vstore, LV)(load_run(q, q_base, q_rs, lrow0 + r, rows, k0 + c, d), 0, &qs[r * Q_LD + c]);
        }
        for (int idx = tid; idx < TILE_N * RUNS; idx += THREADS) {
            const int r = idx % TILE_N, c = idx / TILE_N * LV;
            float t[LV];
#if KV_INT8
            CAT(vstore, LV)(load_k_run(k, k_scale, k_base + (long)col0 * k_rs, k_rs,
                                       s_base + (long)col0 * s_rs, s_rs, r, Lk - col0, k0 + c, d), 0, t);
#else
            CAT(vstore, LV)(load_run(k, k_base + (long)col0 * k_rs, k_rs, r, Lk - col0, k0 + c, d), 0, t);
#endif
            for (int e = 0; e < LV; ++e)
                ks[(c + e) * K_LD + r] = t[e];
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* Each TILE_K slice is summed on its own, then added to the total: blocked summation keeps
           the rounding error of a long dot product several times smaller, which large logits
           (|score| ~ 100) turn straight into probability error. */
        vec_t part[WPT_M];
        for (int r = 0; r < WPT_M; ++r)
            part[r] = 0.0f;
        for (int kk = 0; kk < TILE_K; ++kk) {
            const vec_t kv = VLOAD(&ks[kk * K_LD + tx * WPT_N]);
            for (int r = 0; r < WPT_M; ++r)
                part[r] += qs[(ty + r * THREADS_M) * Q_LD + kk] * kv;
        }
        for (int r = 0; r < WPT_M; ++r)
            acc[r] += part[r];
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global float *s_head = scores + bhl * s_bhs;
    for (int r = 0; r < WPT_M; ++r) {
        const int lr = lrow0 + ty + r * THREADS_M;
        if (lr >= rows)
            break;
#if MASK_TYPE != 0 || CAUSAL || WINDOW || ALIBI
        const int i = row0 + lr;
#endif
        float acc_r[WPT_N];
        VSTORE(acc[r], acc_r);
        for (int c = 0; c < WPT_N; ++c) {
            const int j = col0 + tx * WPT_N + c;
            if (j >= Lk)
                break;
            float s = acc_r[c] * scale;
#if SOFTCAP
            s = softcap * tanh(s);   /* scale is scale / softcap here */
#endif
#if MASK_TYPE != 0
            s += mask_term(mask, b * m_bs + h * m_hs + i * m_rs + j);
#endif
#if ALIBI
            s -= alibi[h] * (float)abs(i + Lk - Lq - j);
#endif
#if CAUSAL
            /* A causally hidden key counts as never read (as in the reference and the fused path):
               a NaN in its K row stays out of the row. */
            if (j > i + causal_offset)
                s = -INFINITY;
#endif
#if WINDOW
            if (j < i + lo_offset)   /* below the window: hidden, as above */
                s = -INFINITY;
#endif
            s_head[(long)lr * Lk + j] = s;
        }
    }
}
