/* Causal self-attention over one long sequence sharded across MPI ranks (clattn_mpi.h):
 *
 *   mpiexec -n 4 build/examples/example_ring_attention [L]
 *
 * Every rank makes the same sequence from one seed (a real program would read only its shard),
 * keeps its zig-zag shard of Q, K and V, and runs clattn_ring_attention; rank 0 then checks its
 * own output rows against the double-precision reference of the whole sequence. Exit 77 without
 * an OpenCL device. */
#include <clattn.h>
#include <clattn_mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H = 4, D = 32 };

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int P, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int L = argc > 1 ? atoi(argv[1]) : 1000;

    clattn_context *ctx;
    int ok = clattn_context_create(NULL, &ctx) == CLATTN_SUCCESS, all;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all || L < 1) {
        if (rank == 0)
            fprintf(stderr, L < 1 ? "L must be >= 1\n" : "a rank has no OpenCL device\n");
        MPI_Finalize();
        return L < 1 ? 1 : 77;
    }

    /* the whole sequence, [1, H, L, D] (BHSD), as every rank can make it */
    float *q = malloc(sizeof(float) * H * L * D), *k = malloc(sizeof(float) * H * L * D),
          *v = malloc(sizeof(float) * H * L * D);
    unsigned s = 1;
    for (int i = 0; i < H * L * D; i++) {
        s = s * 1103515245u + 12345u;
        q[i] = (float)((s >> 8) % 2001) / 1000.0f - 1.0f;
        k[i] = (float)((s >> 4) % 2001) / 1000.0f - 1.0f;
        v[i] = (float)((s >> 12) % 2001) / 1000.0f - 1.0f;
    }

    /* this rank's shard: its chunks one after the other, each [1, H, rows, D] */
    int n, first[2], count[2];
    clattn_ring_shard_rows(L, P, rank, CLATTN_SHARD_ZIGZAG, &n, first, count);
    const int rows = count[0] + (n > 1 ? count[1] : 0);
    float *qs = malloc(sizeof(float) * H * (rows + 1) * D), *ks = malloc(sizeof(float) * H * (rows + 1) * D),
          *vs = malloc(sizeof(float) * H * (rows + 1) * D), *out = malloc(sizeof(float) * H * (rows + 1) * D);
    size_t at = 0;
    for (int c = 0; c < n; c++)
        for (int h = 0; h < H; h++) {
            const size_t from = ((size_t)h * L + (size_t)first[c]) * D, len = (size_t)count[c] * D;
            memcpy(qs + at, q + from, len * sizeof(float));
            memcpy(ks + at, k + from, len * sizeof(float));
            memcpy(vs + at, v + from, len * sizeof(float));
            at += len;
        }

    clattn_attention_desc desc = {0};   /* the whole problem */
    desc.batch = 1, desc.heads_q = H, desc.seq_q = desc.seq_kv = L, desc.head_dim = D;
    desc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    clattn_ring_stats st;
    char err[512];
    clattn_status status = clattn_ring_attention(ctx, MPI_COMM_WORLD, &desc, CLATTN_SHARD_ZIGZAG, qs, ks, vs,
                                                 out, NULL, 0, &st, err, sizeof err);
    int rc = 0;
    if (status != CLATTN_SUCCESS) {
        fprintf(stderr, "rank %d: %s: %s\n", rank, clattn_status_string(status), err);
        rc = 1;
    } else if (rank == 0) {
        float *ref = malloc(sizeof(float) * H * L * D);
        clattn_attention_reference(&desc, q, k, v, NULL, ref, NULL, NULL);
        double worst = 0.0;
        at = 0;
        for (int c = 0; c < n; c++)
            for (int h = 0; h < H; h++)
                for (size_t i = 0; i < (size_t)count[c] * D; i++)
                    worst = fmax(worst, fabs(out[at++] - ref[((size_t)h * L + (size_t)first[c]) * D + i]));
        printf("%d ranks, L = %d: rank 0 holds positions %d..%d and %d..%d; %d blocks computed, %d "
               "hidden ones skipped, %.1f KiB sent, %.1f ms; max |out - reference| = %.2e\n", P, L, first[0],
               first[0] + count[0] - 1, n > 1 ? first[1] : 0, n > 1 ? first[1] + count[1] - 1 : -1,
               st.blocks_computed, st.blocks_skipped, st.bytes_sent / 1024, 1e3 * st.total_s, worst);
        rc = worst <= 1e-4 ? 0 : 1;
        free(ref);
    }
    free(q), free(k), free(v), free(qs), free(ks), free(vs), free(out);
    clattn_context_release(ctx);
    MPI_Finalize();
    return rc;
}
