/* Unfused attention, stage 2: each score row becomes its probabilities, in place, and lse = max +
 * log(sum of exp(score - max)).
 *
 * One work-group of SM_WG work-items per row, three passes over the row: the max, then exp(score -
 * max) written back and summed, then the scaling by 1/sum. The max and the sum are each reduced in
 * local memory. Each work-item takes SM_VEC adjacent elements at a time as one float vector: CPU
 * drivers do not vectorise a strided loop across work-items, and a vector exp is many times faster
 * there than a scalar one. The last Lk % SM_VEC elements of a row go one at a time.
 *
 * Rows are addressed as in qk_scores.cl: row (bh, i) of the launch starts at
 * (bh - bh0)*s_bhs + (i - row0)*Lk; lse (may be NULL) is [B*Hq, Lq] and indexed absolutely.
 * A row that sees no key (max -inf, or Lk == 0) gives probabilities 0 and lse -inf; a NaN score
 * makes its whole row NaN.
 *
 * SINKS: the row's head has a sink logit (sinks [Hq]) that joins the max and the sum as a key with
 * no value, so the probabilities sum to less than 1 and lse counts it; a row that sees no key then
 * has max = sink, probabilities 0 and lse = sink.
 */
#ifndef SM_WG
#define SM_WG 64    // work-items per row; a power of two (tree reduction)
#endif
#ifndef SM_VEC
#define SM_VEC 4    // adjacent elements a work-item handles at once: 1, 2, 4, 8 or 16
#endif

#if (SM_WG & (SM_WG - 1)) != 0
#error "SM_WG must be a power of two"
#endif

#if SM_VEC == 1
typedef float svec_t;
#define SVLOAD(p) (*(p))
#define SVSTORE(x, p) (*(p) = (x))
#define SVMAX(a, b) max_nan((a), (b))
#else
typedef CAT(float, SM_VEC) svec_t;
#define SVLOAD(p) CAT(vload, SM_VEC)(0, (p))
#define SVSTORE(x, p) CAT(vstore, SM_VEC)((x), 0, (p))
/* Lane-wise max_nan: a NaN in either lane wins. */
#define SVMAX(a, b) select(fmax((a), (b)), (a) + (b), isnan(a) || isnan(b))
#endif

/* Horizontal max (NaN-propagating) and sum of one vector. */
inline float svec_max(svec_t x)
{
#if SM_VEC == 1
    return x;
#else
    float lanes[SM_VEC];
    SVSTORE(x, lanes);
    float m = lanes[0];
    for (int c = 1; c < SM_VEC; ++c)
        m = max_nan(m, lanes[c]);
    return m;
#endif
}

inline float svec_sum(svec_t x)
{
#if SM_VEC == 1
    return x;
#else
    float lanes[SM_VEC];
    SVSTORE(x, lanes);
    float s = 0.0f;
    for (int c = 0; c < SM_VEC; ++c)
        s += lanes[c];
    return s;
#endif
}

inline float add(float a, float b)
{
    return a + b;
}

/* Tree reduction of red[0..SM_WG) into red[0]. Every work-item must reach it: it holds barriers. */
#define REDUCE(red, lid, op)                                                \
    for (int step = SM_WG / 2; step > 0; step >>= 1) {                      \
        if ((lid) < step)                                                   \
            red[lid] = op(red[lid], red[(lid) + step]);                     \
        barrier(CLK_LOCAL_MEM_FENCE);                                       \
    }

__kernel __attribute__((reqd_work_group_size(SM_WG, 1, 1)))
void softmax_rows(__global float *scores, __global float *lse,
                  const int Lq, const int Lk, const int Hq, const __global float *sinks,
                  const int bh0, const int row0, const long s_bhs)
{
    __local float red[SM_WG];

    const int lid = get_local_id(0);
    const int lr = get_group_id(0);
    const int bhl = get_group_id(1);
    __global float *row = scores + bhl * s_bhs + (long)lr * Lk;
    const int n_vec = Lk / SM_VEC * SM_VEC;   // elements covered by whole vectors

    svec_t mv = -INFINITY;
    for (int j = lid * SM_VEC; j < n_vec; j += SM_WG * SM_VEC)
        mv = SVMAX(mv, SVLOAD(row + j));
    float m = svec_max(mv);
    for (int j = n_vec + lid; j < Lk; j += SM_WG)
        m = max_nan(m, row[j]);
    red[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    REDUCE(red, lid, max_nan)
    m = red[0];
#if SINKS
    const float sink = sinks[(bh0 + bhl) % Hq];
    if (!isnan(m) && sink > m)
        m = sink;
#else
    (void)Hq, (void)sinks;
#endif
    /* Everyone holds the max before red is reused for the sums. */
    barrier(CLK_LOCAL_MEM_FENCE);

    /* A row that sees no key has max -inf, where exp(-inf - -inf) would be NaN: it sums to 0.
       In a NaN row (max NaN) every probability is NaN, hidden keys included, as in the reference. */
    float s = 0.0f;
    if (m != -INFINITY) {
        svec_t sv = 0.0f;
        for (int j = lid * SM_VEC; j < n_vec; j += SM_WG * SM_VEC) {
            const svec_t e = exp(SVLOAD(row + j) - m);
            SVSTORE(e, row + j);
            sv += e;
        }
        s = svec_sum(sv);
        for (int j = n_vec + lid; j < Lk; j += SM_WG) {
            const float e = exp(row[j] - m);
            row[j] = e;
            s += e;
        }
    }
#if SINKS
    if (lid == 0 && m != -INFINITY)
        s += exp(sink - m);   /* 0 for a -inf sink */
#endif
    red[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    REDUCE(red, lid, add)
    s = red[0];

    if (m == -INFINITY) {
        /* The row still holds its raw -inf scores. */
        for (int j = lid * SM_VEC; j < n_vec; j += SM_WG * SM_VEC)
            SVSTORE((svec_t)0.0f, row + j);
        for (int j = n_vec + lid; j < Lk; j += SM_WG)
            row[j] = 0.0f;
    } else {
        const float inv = 1.0f / s;
        for (int j = lid * SM_VEC; j < n_vec; j += SM_WG * SM_VEC)
            SVSTORE(SVLOAD(row + j) * inv, row + j);
        for (int j = n_vec + lid; j < Lk; j += SM_WG)
            row[j] *= inv;
    }
    if (lid == 0 && lse)
        lse[(long)(bh0 + bhl) * Lq + row0 + lr] = (m == -INFINITY) ? -INFINITY : m + log(s);
}
