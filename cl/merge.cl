/* Merging attention computed over disjoint key sets into the attention over their union.
 *
 * Part p of a row holds out_p (its softmax-weighted values) and lse_p (log of its softmax sum). Over
 * the union of the key sets the softmax sum is Σ exp(lse_p), so with m = max_p lse_p and
 * w_p = exp(lse_p - m):   out = Σ w_p out_p / Σ w_p,   lse = m + log Σ w_p.   Subtracting m keeps every
 * w_p <= 1 (no overflow) and the largest part's weight exactly 1.
 *
 * One kernel serves both callers, told apart by where the parts live:
 *   split-KV partials (host/attention/merge.c, clattn_merge_enqueue_contiguous): float [parts][rows][dv],
 *     PART_DATA 0;
 *   the public clattn_merge_partials: the caller's parts staged one after another in scratch, in the
 *     storage type and layout of out, PART_DATA 1.
 * A launch covers a tile of B' batch entries x Hq heads x Lq' query rows (the whole problem, unless
 * the public call had to stage its parts in pieces). Tile row r = (b*Hq + h)*Lq' + i; part p's element
 * (b, h, i, c) sits at p*p_ps + b*p_bs + h*p_hs + i*p_rs + c and its lse at p*l_ps + r; out and lse are
 * addressed from o_base and lse_base with the strides of the whole problem.
 *
 * A part whose lse is -inf saw no key: it is skipped, so whatever its out holds (zeros, garbage, NaN)
 * cannot reach the result. A row with no part left gives out 0 and lse -inf. A NaN lse makes m NaN
 * and so the whole row NaN, as a NaN input does in attention.
 *
 * One work-item per VEC consecutive columns of one row; consecutive work-items take consecutive
 * chunks of a row, then the next row, so reads and writes are coalesced in every contiguous layout.
 */
#ifndef WGS
#define WGS 64      /* work-group size (1-D) */
#endif
#ifndef VEC
#define VEC 4       /* columns per work-item, loaded as one vector when the chunk is whole */
#endif
#ifndef PART_DATA
#define PART_DATA 1 /* 1: parts are in the storage type, data_t (the public call); 0: float */
#endif
#ifndef PART_ML
#define PART_ML 0   /* 1: split-KV partials: part_lse holds each part's row max in base 2, then,
                       from parts * l_ps on, its softmax sum (cl/flash_attention.cl, SPLIT) */
#endif

#if PART_DATA
typedef data_t part_t;
#else
typedef float part_t;
#endif


#if VEC == 1
typedef float vec_t;
#define VLOAD_F(p) (*(p))
#define VLOAD_D(p) LOAD((p), 0)
#define VSTORE_F(x, p) (*(p) = (x))
#define VSTORE_D(x, p) STORE((p), 0, (x))
#else
typedef CAT(float, VEC) vec_t;
/* vector loads and stores need only element alignment, which any column offset has */
#define VLOAD_F(p) CAT(vload, VEC)(0, (p))
#define VLOAD_D(p) VLOAD_DATA(VEC, (p))
#define VSTORE_F(x, p) CAT(vstore, VEC)((x), 0, (p))
#define VSTORE_D(x, p) VSTORE_DATA(VEC, (x), (p))
#endif

#if PART_DATA
#define PART_VLOAD(p) VLOAD_D(p)
#define PART_LOAD(p) LOAD((p), 0)
#else
#define PART_VLOAD(p) VLOAD_F(p)
#define PART_LOAD(p) (*(p))
#endif

#define OUT_VSTORE(x, p) VSTORE_D((x), (p))

__kernel __attribute__((reqd_work_group_size(WGS, 1, 1)))
void merge_parts(const int parts, const int Hq, const int Lq, const int dv, const long rows,
                 const __global part_t *part_out, const long p_ps, const long p_bs, const long p_hs,
                 const long p_rs,
                 const __global float *part_lse, const long l_ps,
                 __global data_t *out, const long o_base, const long o_bs, const long o_hs,
                 const long o_rs,
                 __global float *lse, const long lse_base, const long lse_bs, const long lse_hs)
{
    const long chunks = (dv + VEC - 1) / VEC;
    const long gid = get_global_id(0);
    if (gid >= rows * chunks)
        return;
    const long row = gid / chunks;
    const int c0 = (int)(gid - row * chunks) * VEC;
    const long b = row / ((long)Hq * Lq);
    const long h = (row / Lq) % Hq;
    const long i = row % Lq;
    const long p_off = b * p_bs + h * p_hs + i * p_rs + c0;
    const long o_off = o_base + b * o_bs + h * o_hs + i * o_rs + c0;
    /* Whole chunks use vector loads; the last chunk of a row whose dv is not a multiple of VEC goes
       element by element. */
    const int whole = c0 + VEC <= dv;

    float m = -INFINITY;
    for (int p = 0; p < parts; p++)
        m = max_nan(m, part_lse[p * l_ps + row]);

    vec_t acc = (vec_t)(0.0f);
    float sum = 0.0f;
    if (m != -INFINITY) {
        for (int p = 0; p < parts; p++) {
            const float l = part_lse[p * l_ps + row];
            if (l == -INFINITY)
                continue;
            /* exp(NaN - NaN) is NaN, so a NaN lse anywhere in the row reaches sum and acc. */
#if PART_ML
            const float w = exp2(l - m) * part_lse[(parts + p) * l_ps + row];
#else
            const float w = exp(l - m);
#endif
            sum += w;
            const __global part_t *src = part_out + p * p_ps + p_off;
            if (whole) {
                acc += w * PART_VLOAD(src);
            } else {
#if VEC == 1
                acc += w * PART_LOAD(src);
#else
                float t[VEC];
                for (int v = 0; v < VEC; v++)
                    t[v] = c0 + v < dv ? PART_LOAD(src + v) : 0.0f;
                acc += w * VLOAD_F(t);
#endif
            }
        }
        acc /= sum;
    }

    __global data_t *dst = out + o_off;
    if (whole) {
        OUT_VSTORE(acc, dst);
    } else {
#if VEC == 1
        OUT_VSTORE(acc, dst);
#else
        float t[VEC];
        VSTORE_F(acc, t);
        for (int v = 0; v < VEC && c0 + v < dv; v++)
            STORE(dst, v, t[v]);
#endif
    }
#if PART_ML
    /* back to natural log; at the -FLT_MAX floor of a row of finitely masked keys, -FLT_MAX */
    const float row_lse = m == -FLT_MAX ? m : (m + log2(sum)) * M_LN2_F;
#else
    const float row_lse = m + log(sum);
#endif
    if (lse && c0 == 0)
        lse[lse_base + b * lse_bs + h * lse_hs + i] = m == -INFINITY ? -INFINITY : row_lse;
}

/* n floats set to value: the split maxima of a ragged batch, before its attention kernel runs, so
   that rows no work-group writes (a sequence skipped for bad tables) read as "saw no key" rather
   than as stale scratch (host/attention/flash.c). No local memory, any work-group size. */
__kernel void fill_floats(__global float *p, const float value, const long n)
{
    const long i = get_global_id(0);
    if (i < n)
        p[i] = value;
}
