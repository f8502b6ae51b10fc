/* Unfused attention, stage 3: O = P·V, P the probabilities left by softmax.cl (float, Lq x Lk per
 * head), V [Lk, dv] of the query head's KV head, O stored as data_t through the out strides.
 *
 * Tiled like qk_scores.cl: a work-group owns a TILE_M x TILE_N block of O (rows x dv) and stages
 * TILE_K keys of P and of V in local memory; each work-item accumulates WPT_M rows (strided by the
 * work-group's row extent) of WPT_N adjacent output columns, one float vector per row.
 *
 * P is addressed as in qk_scores.cl: (bh, i, j) at (bh - bh0)*s_bhs + (i - row0)*Lk + j.
 */
#ifndef TILE_M
#define TILE_M 32   // query rows per work-group tile
#endif
#ifndef TILE_N
#define TILE_N 32   // output columns (of dv) per work-group tile
#endif
#ifndef TILE_K
#define TILE_K 16   // keys staged in local memory per step
#endif
#ifndef WPT_M
#define WPT_M 4     // rows each work-item accumulates
#endif
#ifndef WPT_N
#define WPT_N 4     // adjacent columns each work-item accumulates: the vector width, 1, 2, 4, 8 or 16
#endif

#if TILE_M % WPT_M != 0 || TILE_N % WPT_N != 0
#error "TILE_M and TILE_N must be multiples of WPT_M and WPT_N"
#endif

#define THREADS_M (TILE_M / WPT_M)   // work-group extent along rows (dimension 1)
#define THREADS_N (TILE_N / WPT_N)   // work-group extent along dv (dimension 0)
#define THREADS (THREADS_M * THREADS_N)


/* Tiles are staged in runs of consecutive elements (LV keys of P, LVN columns of V): one vector load
   where the run lies inside the matrix, element by element (zero-filled) at its edges. Scalar
   staging costs CPUs more than the products it feeds. */
#if TILE_K == 4
#define LV 4
#elif TILE_K == 8
#define LV 8
#elif TILE_K % 16 == 0
#define LV 16
#else
#error "TILE_K must be 4, 8 or a multiple of 16"
#endif
#if TILE_N == 8
#define LVN 8
#elif TILE_N % 16 == 0
#define LVN 16
#else
#error "TILE_N must be 8 or a multiple of 16"
#endif
#define RUNS_P (TILE_K / LV)    // runs per row of the P tile
#define RUNS_V (TILE_N / LVN)   // runs per row of the V tile

/* Keys j .. j + LV of P row lr (of `rows`), zero where lr >= rows or j >= k_end. */
inline CAT(float, LV) load_p_run(const __global float *p_head, int Lk, int lr, int rows, int j, int k_end)
{
    if (lr >= rows)
        return 0.0f;
    const __global float *src = p_head + (long)lr * Lk + j;
    if (j + LV <= k_end)
        return CAT(vload, LV)(0, src);
    float t[LV];
    for (int e = 0; e < LV; ++e)
        t[e] = j + e < k_end ? src[e] : 0.0f;
    return CAT(vload, LV)(0, t);
}

/* Columns col .. col + LVN of V row j, zero where j >= k_end or col >= dv; int8 V (KV_INT8) times
   the row's scale sc (1 otherwise). */
inline CAT(float, LVN) load_v_run(const __global kv_t *v, long v_row, int j, int k_end, int col, int dv,
                                  float sc)
{
    if (j >= k_end)
        return 0.0f;
    const long at = v_row + col;
#if KV_INT8
    if (col + LVN <= dv)
        return CAT(convert_float, LVN)(CAT(vload, LVN)(0, v + at)) * sc;
    float t[LVN];
    for (int e = 0; e < LVN; ++e)
        t[e] = col + e < dv ? (float)v[at + e] * sc : 0.0f;
#else
    (void)sc;
    if (col + LVN <= dv)
        return VLOAD_DATA(LVN, v + at);
    float t[LVN];
    for (int e = 0; e < LVN; ++e)
        t[e] = col + e < dv ? LOAD(v, at + e) : 0.0f;
#endif
    return CAT(vload, LVN)(0, t);
}

#if WPT_N == 1
typedef float vec_t;
#define VLOAD(p) (*(p))
#define VSTORE(x, p) (*(p) = (x))
#else
typedef CAT(float, WPT_N) vec_t;
#define VLOAD(p) CAT(vload, WPT_N)(0, (p))
#define VSTORE(x, p) CAT(vstore, WPT_N)((x), 0, (p))
#endif

/* P is kept row-major; a spare column puts the rows that neighbouring work-items read in one step
   on different local-memory banks. V is already key-major, as the vector reads want it. */
#define P_LD (TILE_K + 1)
#define V_LD TILE_N

__kernel __attribute__((reqd_work_group_size(THREADS_N, THREADS_M, 1)))
void pv(const __global float *probs, const __global kv_t *v, __global data_t *out,
        const int Lk, const int dv, const int Hq, const int group,
        const long v_bs, const long v_hs, const long v_rs,
        const long o_bs, const long o_hs, const long o_rs,
        const int causal_offset, const int lo_offset,
        const __global float *v_scale, const long s_bs, const long s_hs, const long s_rs,
        const int bh0, const int row0, const int rows, const long s_bhs)
{
    __local float ps[TILE_M * P_LD];
    __local float vs[TILE_K * V_LD];
#if !CAUSAL
    (void)causal_offset;
#endif
#if !WINDOW
    (void)lo_offset;
#endif

    const int tx = get_local_id(0);
    const int ty = get_local_id(1);
    const int tid = ty * THREADS_N + tx;
    const int col0 = get_group_id(0) * TILE_N;    // first output column of the tile
    const int lrow0 = get_group_id(1) * TILE_M;   // first row of the tile, relative to row0
    const int bhl = get_group_id(2);
    const int bh = bh0 + bhl;
    const int b = bh / Hq;
    const int h = bh % Hq;
    const __global float *p_head = probs + bhl * s_bhs;
    const long v_base = b * v_bs + (h / group) * v_hs;
#if KV_INT8
    const __global float *v_sc = v_scale + b * s_bs + (h / group) * s_hs;   /* row j's at j*s_rs */
#else
    (void)v_scale, (void)s_bs, (void)s_hs, (void)s_rs;
#endif

    vec_t acc[WPT_M];
    for (int r = 0; r < WPT_M; ++r)
        acc[r] = 0.0f;

    int k_end = Lk;
#if CAUSAL
    /* Keys past the tile's last diagonal have probability 0 in every row of the tile: stop there.
       The bound is the same for the whole work-group, so the barriers stay uniform. */
    const int last_row = row0 + min(lrow0 + TILE_M, rows) - 1;
    k_end = clamp(last_row + causal_offset + 1, 0, Lk);
#endif

    /* A key a row cannot see has probability 0, but 0 times a NaN or inf in its V row would still
       poison the row's output. Products with p == 0 are skipped only once a staged V value has been
       found non-finite (a rare case): the flag, once raised, stays raised for the work-group. */
    __local int v_nonfinite;
    if (tid == 0)
        v_nonfinite = 0;
    barrier(CLK_LOCAL_MEM_FENCE);

    int k_begin = 0;
#if WINDOW
    /* Keys below the window of the tile's first row have probability 0 in every row of it: start
       at the slice that holds that row's first key. */
    k_begin = clamp(row0 + lrow0 + lo_offset, 0, k_end) / TILE_K * TILE_K;
#endif

    for (int k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        /* Out-of-range entries are staged as 0 so that the inner loop needs no bounds checks. */
        for (int idx = tid; idx < TILE_M * RUNS_P; idx += THREADS) {
            const int r = idx / RUNS_P, c = idx % RUNS_P * LV;
            CAT(vstore, LV)(load_p_run(p_head, Lk, lrow0 + r, rows, k0 + c, k_end), 0, &ps[r * P_LD + c]);
        }
        for (int idx = tid; idx < TILE_K * RUNS_V; idx += THREADS) {
            const int r = idx / RUNS_V, c = idx % RUNS_V * LVN;
            const int j = k0 + r;
#if KV_INT8
            const float sc = j < k_end ? v_sc[(long)j * s_rs] : 0.0f;
#else
            const float sc = 1.0f;
#endif
            const CAT(float, LVN) x = load_v_run(v, v_base + j * v_rs, j, k_end, col0 + c, dv, sc);
            CAT(vstore, LVN)(x, 0, &vs[r * V_LD + c]);
            if (any(!isfinite(x)))
                atomic_or(&v_nonfinite, 1);
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* Blocked summation, as in qk_scores.cl: each slice of TILE_K keys is summed on its own. */
        vec_t part[WPT_M];
        for (int r = 0; r < WPT_M; ++r)
            part[r] = 0.0f;
        if (!v_nonfinite) {
            for (int kk = 0; kk < TILE_K; ++kk) {
                const vec_t vv = VLOAD(&vs[kk * V_LD + tx * WPT_N]);
                for (int r = 0; r < WPT_M; ++r)
                    part[r] += ps[(ty + r * THREADS_M) * P_LD + kk] * vv;
            }
        } else {
            for (int kk = 0; kk < TILE_K; ++kk) {
                const vec_t vv = VLOAD(&vs[kk * V_LD + tx * WPT_N]);
                for (int r = 0; r < WPT_M; ++r) {
                    const float pr = ps[(ty + r * THREADS_M) * P_LD + kk];
                    if (pr != 0.0f)
                        part[r] += pr * vv;
                }
            }
        }
        for (int r = 0; r < WPT_M; ++r)
            acc[r] += part[r];
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const long o_base = b * o_bs + h * o_hs;
    for (int r = 0; r < WPT_M; ++r) {
        const int lr = lrow0 + ty + r * THREADS_M;
        if (lr >= rows)
            break;
        const long o_row = o_base + (long)(row0 + lr) * o_rs;
        float acc_r[WPT_N];
        VSTORE(acc[r], acc_r);
        for (int c = 0; c < WPT_N; ++c) {
            const int col = col0 + tx * WPT_N + c;
            if (col >= dv)
                break;
            STORE(out, o_row + col, acc_r[c]);
        }
    }
}
