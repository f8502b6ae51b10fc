/* clattn-bench --mpi (under mpiexec): ring attention (clattn_ring_attention) over the ranks of
 * MPI_COMM_WORLD on long sequences, per rank: its compute time, the K/V bytes it sent, how long
 * it waited for transfers after its compute, and the share of the communication hidden behind
 * compute. That share needs the communication's own time: each L first times the same ring of
 * transfers with no compute (median of 3), then the attention (median of --reps, default 3).
 *
 *   hidden = 1 - wait / comm      (clamped to 0..1; 1: the transfers cost nothing)
 *
 * wait is the time blocked on a step's transfers after its compute; sync the time in the
 * agreements after each step, i.e. waiting for slower ranks (load imbalance, not communication).
 *
 * Problem per L: B = 1, Hq = 8, Hkv = 2 (GQA), d = 64, causal, zig-zag shards, F32 (--f16: F16).
 * docs/scaling.md builds its model on these figures. */
#include "bench/bench.h"

#ifdef BENCH_HAVE_MPI
#include <clattn_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double median3(double *t, int n)
{
    for (int i = 1; i < n; i++)   /* insertion sort: n is a handful */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* The ring's transfers alone: P-1 steps of sending this rank's K/V-sized message on. */
static double comm_only(size_t bytes, int P, int rank)
{
    char *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    memset(a, 1, bytes + 1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int s = 0; s < P - 1; s++) {
        MPI_Request r[2];
        MPI_Irecv(b, (int)bytes, MPI_BYTE, (rank - 1 + P) % P, 7, MPI_COMM_WORLD, &r[0]);
        MPI_Isend(a, (int)bytes, MPI_BYTE, (rank + 1) % P, 7, MPI_COMM_WORLD, &r[1]);
        MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
        char *x = a;
        a = b;
        b = x;
    }
    double t = MPI_Wtime() - t0;
    free(a);
    free(b);
    return t;
}

int bench_mpi_main(int argc, char **argv)
{
    int provided, P, rank;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int quick = 0, reps = 3;
    clattn_dtype dtype = CLATTN_F32;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--f16") == 0)
            dtype = CLATTN_F16;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 3;
    }
    clattn_context *ctx;
    int ok = clattn_context_create(NULL, &ctx) == CLATTN_SUCCESS, all;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        if (rank == 0)
            fprintf(stderr, "clattn-bench --mpi: a rank has no OpenCL device\n");
        MPI_Finalize();
        return 77;
    }
    const int lengths_full[] = {16384, 32768, 65536}, lengths_quick[] = {2048, 4096};
    const int *lengths = quick ? lengths_quick : lengths_full;
    const int n_len = quick ? 2 : 3;
    const size_t e = dtype == CLATTN_F32 ? 4 : 2;
    if (rank == 0)
        printf("ring attention: %d rank%s on %s, B=1 Hq=8 Hkv=2 d=64 causal zig-zag %s, medians of %d\n"
               "%8s %4s %10s %10s %10s %10s %10s %10s %7s %9s\n", P, P > 1 ? "s" : "",
               clattn_context_device_name(ctx), dtype == CLATTN_F32 ? "f32" : "f16", reps, "L", "rank",
               "total ms", "compute ms", "wait ms", "sync ms", "comm ms", "MiB sent", "hidden", "GFLOP/s");
    int failed = 0;
    for (int li = 0; li < n_len && !failed; li++) {
        const int L = lengths[li];
        clattn_attention_desc d;
        memset(&d, 0, sizeof d);
        d.batch = 1, d.heads_q = 8, d.heads_kv = 2, d.seq_q = d.seq_kv = L, d.head_dim = 64;
        d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT, d.dtype = dtype;
        int n, first[2], count[2];
        clattn_ring_shard_rows(L, P, rank, CLATTN_SHARD_ZIGZAG, &n, first, count);
        const size_t rows = (size_t)(count[0] + (n > 1 ? count[1] : 0));
        const size_t qb = rows * 8 * 64 * e, kb = rows * 2 * 64 * e;
        unsigned char *q = malloc(qb + 1), *k = malloc(kb + 1), *v = malloc(kb + 1), *o = malloc(qb + 1);
        float *lse = malloc(rows * 8 * sizeof(float) + 1);
        for (size_t i = 0; i < qb; i++)
            q[i] = (unsigned char)(i * 31 % 61);   /* small finite values in either type */
        for (size_t i = 0; i < kb; i++)
            k[i] = v[i] = (unsigned char)(i * 17 % 53);
        double tc[9], ta[9], tw[9], tt[9], ts[9];
        clattn_ring_stats st;
        char err[512];
        for (int r = 0; r < 3; r++)
            tc[r] = comm_only(2 * kb, P, rank);
        /* a warm-up builds the kernels */
        clattn_status s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, CLATTN_SHARD_ZIGZAG, q, k, v, o, lse,
                                                0, &st, err, sizeof err);
        for (int r = 0; r < reps && r < 9 && s == CLATTN_SUCCESS; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            s = clattn_ring_attention(ctx, MPI_COMM_WORLD, &d, CLATTN_SHARD_ZIGZAG, q, k, v, o, lse, 0, &st, err,
                                      sizeof err);
            tt[r] = st.total_s, ta[r] = st.compute_s, tw[r] = st.wait_s, ts[r] = st.sync_s;
        }
        if (s != CLATTN_SUCCESS) {
            fprintf(stderr, "rank %d: %s: %s\n", rank, clattn_status_string(s), err);
            failed = 1;
        } else {
            const int m = reps < 9 ? reps : 9;
            double row[8] = {median3(tt, m), median3(ta, m), median3(tw, m), median3(ts, m), median3(tc, 3),
                             st.bytes_sent, 0, 0};
            row[6] = row[4] > 0 ? fmax(0.0, fmin(1.0, 1.0 - row[2] / row[4])) : 1.0;
            /* the visible (query, key) pairs this rank computed: its blocks, diagonals halved */
            double flops = 4.0 * 8 * 64 * ((double)L * L / 2.0) / P;
            row[7] = flops / row[1] * 1e-9;
            double *all = rank == 0 ? malloc(sizeof row * (size_t)P) : NULL;
            MPI_Gather(row, 8, MPI_DOUBLE, all, 8, MPI_DOUBLE, 0, MPI_COMM_WORLD);
            if (rank == 0)
                for (int r = 0; r < P; r++) {
                    const double *x = all + 8 * r;
                    printf("%8d %4d %10.1f %10.1f %10.1f %10.1f %10.1f %10.2f %6.0f%% %9.1f\n", L, r,
                           1e3 * x[0], 1e3 * x[1], 1e3 * x[2], 1e3 * x[3], 1e3 * x[4], x[5] / (1 << 20),
                           100 * x[6], x[7]);
                }
            free(all);
        }
        free(q), free(k), free(v), free(o), free(lse);
        int any;
        MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        failed = any;
    }
    clattn_context_release(ctx);
    MPI_Finalize();
    return failed;
}
#endif
