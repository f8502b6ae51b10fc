/* Ring attention over MPI (clattn_mpi.h), run by meson under mpiexec with 1 to 4 ranks on this
 * machine, each rank on its own PoCL context (one thread each). Every rank makes the same whole
 * problem from one seed, takes its shard, runs clattn_ring_attention, and compares its output and
 * lse shard with the double-precision reference of the whole problem: causal (contiguous and
 * zig-zag shards) and not, lengths that the ranks do not divide, cross-attention (Lq != Lk), GQA,
 * both layouts, F16 and BF16 storage, soft-capping and sinks, decoding (one query, contiguous:
 * ranks with no query); then one rank fails on purpose, one passes another desc, and one never
 * calls: every rank must return an error (the last within the deadline), none hang, nothing
 * written. Only the public API.
 * Exit 0 when every rank passed, 1 when any failed, 77 (SKIP) without an OpenCL device.
 */
#include <clattn.h>
#include <clattn_mpi.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int P, rank;

static float frand(uint64_t *s)   /* N(0,1)-ish: the sum of 4 uniforms, centred and scaled */
{
    float acc = 0.0f;
    for (int i = 0; i < 4; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        acc += (float)((*s >> 40) & 0xFFFFFF) / 16777216.0f;
    }
    return (acc - 2.0f) * 1.732f;
}

static uint16_t to_half_bits(float x, clattn_dtype t)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if (t == CLATTN_BF16)
        return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    /* binary16, round to nearest even, values here are small and normal */
    uint32_t sign = (u >> 16) & 0x8000, mant = u & 0x7FFFFF;
    int exp = (int)((u >> 23) & 0xFF) - 127 + 15;
    if (exp <= 0)
        return (uint16_t)sign;
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)h;
}

static void fill(void *t, clattn_dtype dt, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        float x = frand(s);
        if (dt == CLATTN_F32)
            ((float *)t)[i] = x;
        else
            ((uint16_t *)t)[i] = to_half_bits(x, dt);
    }
}

static float get(const void *t, clattn_dtype dt, size_t i)
{
    if (dt == CLATTN_F32)
        return ((const float *)t)[i];
    uint16_t h = ((const uint16_t *)t)[i];
    uint32_t u;
    if (dt == CLATTN_BF16) {
        u = (uint32_t)h << 16;
    } else {
        uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
        u = exp == 0 ? sign : sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rows first .. first+count-1 of a whole [B, H, L, dim] tensor in layout, as a tensor of its own
   [B, H, count, dim] (or [B, count, H, dim]), at dst; returns the bytes written. */
static size_t take_rows(unsigned char *dst, const unsigned char *src, clattn_layout lay, int B, int H,
                        int L, int dim, int first, int count, size_t e)
{
    size_t n = 0;
    for (int b = 0; b < B; b++)
        for (int x = 0; x < (lay == CLATTN_LAYOUT_BHSD ? H : count); x++) {
            size_t off, len;
            if (lay == CLATTN_LAYOUT_BHSD) {   /* head x: rows first.. of it */
                off = (((size_t)b * H + (size_t)x) * (size_t)L + (size_t)first) * (size_t)dim;
                len = (size_t)count * (size_t)dim;
            } else {                          /* position first+x: every head */
                off = (((size_t)b * L + (size_t)(first + x)) * (size_t)H) * (size_t)dim;
                len = (size_t)H * (size_t)dim;
            }
            memcpy(dst + n, src + off * e, len * e);
            n += len * e;
        }
    return n;
}

typedef struct ring_case {
    const char *name;
    int B, Hq, Hkv, Lq, Lk, d, dv;
    clattn_causal causal;
    clattn_layout layout;
    clattn_dtype dtype;
    clattn_shard_layout shard;
    float softcap;
    int sinks;
} ring_case;

/* 0 when this rank's shard matches the reference. */
static int run_case(clattn_context *ctx, const ring_case *c)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = c->B, d.heads_q = c->Hq, d.heads_kv = c->Hkv, d.seq_q = c->Lq, d.seq_kv = c->Lk;
    d.head_dim = c->d, d.head_dim_v = c->dv, d.causal = c->causal, d.layout = c->layout, d.dtype = c->dtype;
    d.softcap = c->softcap;
    float sinks[16];
    for (int h = 0; h < c->Hq; h++)
        sinks[h] = 0.3f * (float)h - 1.0f;
    d.sinks = c->sinks ? sinks : NULL;
    const size_t e = c->dtype == CLATTN_F32 ? 4 : 2;
    clattn_tensor_sizes sz;
    if (clattn_attention_sizes(&d, &sz) != CLATTN_SUCCESS)
        return fprintf(stderr, "%s: bad case\n", c->name), 1;
    unsigned char *q = malloc(sz.q + 1), *k = malloc(sz.k + 1), *v = malloc(sz.v + 1), *ref = malloc(sz.out + 1);
    float *ref_lse = malloc(sz.lse + 4);
    uint64_t seed = 42;
    fill(q, c->dtype, sz.q / e, &seed);
    fill(k, c->dtype, sz.k / e, &seed);
    fill(v, c->dtype, sz.v / e, &seed);
    if (clattn_attention_reference(&d, q, k, v, NULL, ref, NULL, ref_lse) != CLATTN_SUCCESS)
        return fprintf(stderr, "%s: reference failed\n", c->name), 1;

    int nq, qf[2], qn[2], nk, kf[2], kn[2];
    clattn_ring_shard_rows(c->Lq, P, rank, c->shard, &nq, qf, qn);
    clattn_ring_shard_rows(c->Lk, P, rank, c->shard, &nk, kf, kn);
    unsigned char *qs = malloc(sz.q + 1), *ks = malloc(sz.k + 1), *vs = malloc(sz.v + 1);
    unsigned char *want = malloc(sz.out + 1), *out = malloc(sz.out + 1);
    float *want_lse = malloc(sz.lse + 4), *lse = malloc(sz.lse + 4);
    size_t nq_b = 0, nk_b = 0, nv_b = 0, no_b = 0, rows = 0;
    for (int i = 0; i < nq; i++) {
        nq_b += take_rows(qs + nq_b, q, c->layout, c->B, c->Hq, c->Lq, c->d, qf[i], qn[i], e);
        no_b += take_rows(want + no_b, ref, c->layout, c->B, c->Hq, c->Lq, c->dv, qf[i], qn[i], e);
        /* lse is [B, Hq, L] whatever the layout */
        rows += take_rows((unsigned char *)(want_lse + rows), (const unsigned char *)ref_lse,
                          CLATTN_LAYOUT_BHSD, c->B, c->Hq, c->Lq, 1, qf[i], qn[i], 4) / 4;
    }
    for (int i = 0; i < nk; i++) {
        nk_b += take_rows(ks + nk_b, k, c->layout, c->B, c->Hkv, c->Lk, c->d, kf[i], kn[i], e);
        nv_b += take_rows(vs + nv_b, v, c->layout, c->B, c->Hkv, c->Lk, c->dv, kf[i], kn[i], e);
    }
    clattn_ring_stats st;
    char err[512];
    clattn_status s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, c->shard, qs, ks, vs, out, lse, 60.0,
                                            &st, err, sizeof err);
    int bad = 0;
    if (s != CLATTN_SUCCESS) {
        fprintf(stderr, "rank %d, %s: %s: %s\n", rank, c->name, clattn_status_string(s), err);
        bad = 1;
    } else {
        /* each merge rounds to the storage type: a few of its units in the last place */
        const double tol = c->dtype == CLATTN_F32 ? 3e-5 : c->dtype == CLATTN_F16 ? 6e-3 : 4e-2;
        double worst = 0.0, big = 1.0;
        for (size_t i = 0; i < no_b / e; i++)
            big = fmax(big, fabs(get(want, c->dtype, i)));
        for (size_t i = 0; i < no_b / e; i++)
            worst = fmax(worst, fabs(get(out, c->dtype, i) - get(want, c->dtype, i)));
        double worst_lse = 0.0;
        for (size_t i = 0; i < rows; i++)
            if (!(isinf(want_lse[i]) && isinf(lse[i])))
                worst_lse = fmax(worst_lse, fabs(lse[i] - want_lse[i]));
        if (!(worst <= tol * big) || !(worst_lse <= 1e-4 * fmax(1.0, big))) {
            fprintf(stderr, "rank %d, %s: max|out - ref| %.3g (tol %.3g), max|lse - ref| %.3g\n", rank,
                    c->name, worst, tol * big, worst_lse);
            bad = 1;
        }
        if (rank == P - 1)
            printf("  %-34s rank %d: %d blocks, %d hidden skipped, %.0f KiB sent, compute %.1f ms, "
                   "waiting %.1f ms\n", c->name, rank, st.blocks_computed, st.blocks_skipped,
                   st.bytes_sent / 1024.0, 1e3 * st.compute_s, 1e3 * st.wait_s);
    }
    free(q), free(k), free(v), free(ref), free(ref_lse), free(qs), free(ks), free(vs);
    free(want), free(out), free(want_lse), free(lse);
    return bad;
}

/* The small problem of the error cases (2 heads, 8 positions a rank, d 8), q of 0.5 and out
   filled with 7 (it must stay so). q and out hold 2 * 16 * 8 floats (up to 4 ranks). */
static clattn_attention_desc small_problem(float *q, float *out, size_t n)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = 1, d.heads_q = 2, d.seq_q = d.seq_kv = 8 * P, d.head_dim = 8;
    for (size_t i = 0; i < n; i++)
        q[i] = 0.5f, out[i] = 7.0f;
    return d;
}

/* Rank P-1 passes a NULL q: every rank must return an error, no rank may hang, out stays. */
static int failing_rank(clattn_context *ctx)
{
    float q[2 * 16 * 8], out[2 * 16 * 8], lse[2 * 16];
    clattn_attention_desc d = small_problem(q, out, sizeof q / sizeof *q);
    char err[512];
    clattn_status s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, CLATTN_SHARD_CONTIGUOUS,
                                            rank == P - 1 ? NULL : q, q, q, out, lse, 30.0, NULL, err,
                                            sizeof err);
    int bad = s != CLATTN_INVALID_ARGUMENT;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        bad |= out[i] != 7.0f;
    if (rank != P - 1) {
        char who[32];
        snprintf(who, sizeof who, "rank %d", P - 1);
        bad |= strstr(err, who) == NULL;
    }
    if (bad)
        fprintf(stderr, "rank %d, failing rank: %s: %s\n", rank, clattn_status_string(s), err);
    else if (rank == 0)
        printf("  a failing rank: every rank returned %s; rank 0 read \"%s\"\n", clattn_status_string(s), err);
    return bad;
}

/* Rank P-1 passes another scale: the shapes agree, the messages would too, but the results would
   not be one problem's. Every rank must refuse it (CLATTN_INVALID_ARGUMENT), nothing written. */
static int mismatched_desc(clattn_context *ctx)
{
    float q[2 * 16 * 8], out[2 * 16 * 8];
    clattn_attention_desc d = small_problem(q, out, sizeof q / sizeof *q);
    d.scale = rank == P - 1 ? 0.5f : 0.0f;
    char err[512];
    clattn_status s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, CLATTN_SHARD_CONTIGUOUS, q, q, q,
                                            out, NULL, 30.0, NULL, err, sizeof err);
    int bad = s != CLATTN_INVALID_ARGUMENT || strstr(err, "differs") == NULL;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        bad |= out[i] != 7.0f;
    if (bad)
        fprintf(stderr, "rank %d, mismatched desc: %s: %s\n", rank, clattn_status_string(s), err);
    else if (rank == 0)
        printf("  another desc on rank %d: every rank returned %s; rank 0 read \"%s\"\n", P - 1,
               clattn_status_string(s), err);
    return bad;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Rank P-1 never calls: the others must return CLATTN_IO_ERROR at the deadline (0.5 s here), not
   hang. Afterwards rank P-1 joins the duplication they left pending, so that the job's later
   collectives match (what an application would do instead is abort). */
static int missing_rank(clattn_context *ctx)
{
    const double timeout = 0.5;
    if (rank == P - 1) {
        struct timespec pause = {4, 0};
        nanosleep(&pause, NULL);
        MPI_Comm late;
        MPI_Request req;
        MPI_Comm_idup(MPI_COMM_WORLD, &late, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        return 0;
    }
    float q[2 * 16 * 8], out[2 * 16 * 8];
    clattn_attention_desc d = small_problem(q, out, sizeof q / sizeof *q);
    char err[512];
    const double t0 = seconds();
    clattn_status s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, CLATTN_SHARD_CONTIGUOUS, q, q, q,
                                            out, NULL, timeout, NULL, err, sizeof err);
    const double took = seconds() - t0;
    /* at the deadline, not before it, and well before the late rank comes (4 s; a loaded
       machine may be slow to wake a rank, hence the margin) */
    int bad = s != CLATTN_IO_ERROR || took < timeout || took > 3.5;
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        bad |= out[i] != 7.0f;
    if (bad)
        fprintf(stderr, "rank %d, missing rank: %s after %.2f s: %s\n", rank, clattn_status_string(s),
                took, err);
    else if (rank == 0)
        printf("  rank %d never called: the others returned %s after %.2f s (deadline %.1f s): \"%s\"\n",
               P - 1, clattn_status_string(s), took, timeout, err);
    return bad;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    clattn_context *ctx = NULL;
    int have = clattn_context_create(NULL, &ctx) == CLATTN_SUCCESS, all_have;
    MPI_Allreduce(&have, &all_have, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_have) {
        if (rank == 0)
            printf("SKIP: a rank has no OpenCL device\n");
        clattn_context_release(ctx);
        MPI_Finalize();
        return 77;
    }
    static const ring_case cases[] = {
        {"causal zig-zag L=37", 1, 4, 2, 37, 37, 16, 16, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_LAYOUT_BHSD,
         CLATTN_F32, CLATTN_SHARD_ZIGZAG, 0.0f, 0},
        {"causal contiguous L=50 BSHD", 2, 4, 4, 50, 50, 32, 32, CLATTN_CAUSAL_TOP_LEFT, CLATTN_LAYOUT_BSHD,
         CLATTN_F32, CLATTN_SHARD_CONTIGUOUS, 0.0f, 0},
        {"cross Lq=23 Lk=41 dv=24", 2, 6, 2, 23, 41, 16, 24, CLATTN_CAUSAL_NONE, CLATTN_LAYOUT_BHSD,
         CLATTN_F32, CLATTN_SHARD_CONTIGUOUS, 0.0f, 0},
        {"causal zig-zag F16 L=64 GQA", 1, 8, 2, 64, 64, 32, 32, CLATTN_CAUSAL_BOTTOM_RIGHT,
         CLATTN_LAYOUT_BSHD, CLATTN_F16, CLATTN_SHARD_ZIGZAG, 0.0f, 0},
        {"BF16 softcap sinks L=30", 1, 4, 4, 30, 30, 16, 16, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_LAYOUT_BHSD,
         CLATTN_BF16, CLATTN_SHARD_ZIGZAG, 5.0f, 1},
        {"decode Lq=1 Lk=41 contiguous", 2, 4, 2, 1, 41, 16, 16, CLATTN_CAUSAL_NONE, CLATTN_LAYOUT_BHSD,
         CLATTN_F32, CLATTN_SHARD_CONTIGUOUS, 0.0f, 0},
        {"tiny L=3 (empty chunks)", 1, 2, 2, 3, 3, 8, 8, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_LAYOUT_BHSD,
         CLATTN_F32, CLATTN_SHARD_ZIGZAG, 0.0f, 1},
    };
    if (rank == 0)
        printf("ring attention on %d rank%s\n", P, P > 1 ? "s" : "");
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        bad |= run_case(ctx, &cases[i]);
    bad |= failing_rank(ctx);
    if (P > 1) {
        bad |= mismatched_desc(ctx);
        bad |= missing_rank(ctx);
    }
    int any;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf(any ? "FAILED on some rank\n" : "PASSED on every rank\n");
    clattn_context_release(ctx);
    MPI_Finalize();
    return any ? 1 : 0;
}
