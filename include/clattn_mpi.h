/* clattn_mpi: attention over a sequence sharded across MPI ranks (ring attention).
 *
 * An optional component: libclattn_mpi, built when meson finds MPI (-Dmpi=auto|enabled|disabled);
 * libclattn itself never links MPI. Link clattn_mpi, clattn and MPI.
 *
 * Each of the P ranks of comm holds a shard of Q, K and V along the sequence and gets back its
 * shard of the output (and lse). The K/V shards travel around the ring (rank r sends to r+1 and
 * receives from r-1) with non-blocking sends and receives into a second buffer, overlapped with
 * the attention on the shard in hand; each rank merges the partial results by their lse
 * (clattn_merge_partials_host) as they arrive. OpenCL buffers are not MPI-aware, so shards travel
 * through host memory and each block runs through clattn_attention_host on the rank's context.
 *
 * Sharding. The sequence of L positions (Lq for Q, Lk for K and V) is cut into chunks, chunk c
 * covering positions floor(c*L/C) .. floor((c+1)*L/C)-1, so any L is fine (chunks differ by at
 * most one position; a chunk may be empty):
 *   CLATTN_SHARD_CONTIGUOUS: C = P, rank r holds chunk r;
 *   CLATTN_SHARD_ZIGZAG:     C = 2P, rank r holds chunks r and 2P-1-r. With causal attention
 *     the contiguous split gives rank P-1 all of the work and rank 0 almost none (query i sees
 *     keys 0..i); pairing an early chunk with a late one gives every rank the same number of
 *     visible (query, key) pairs, up to one chunk's diagonal, the sharding Striped/Zig-zag ring
 *     attention (Brandon et al. 2023; Zhu's ring-flash-attention) use for the same reason.
 * A shard is its chunks one after the other, each a tensor of its own in desc's layout:
 * [B, H, Lc, d] (BHSD) or [B, Lc, H, d] (BSHD), Lc the chunk's length; out likewise with dv; lse
 * float32 [B, Hq, Lc] per chunk. clattn_ring_shard_rows says which positions a rank holds.
 *
 * desc describes the whole problem (seq_q = Lq, seq_kv = Lk of the whole sequence) and must be
 * the same on every rank. Supported: causal none, or causal with Lq == Lk (self-attention; both
 * causal modes are then the same), GQA (only the Hkv heads travel), F32/F16/BF16 (16-bit storage
 * sends half the bytes), scale, soft-capping and sinks (joined once, with the rank's own block).
 * Not supported (CLATTN_INVALID_ARGUMENT): masks, windows, ALiBi, int8 K/V, probs.
 *
 * Causality: a K/V chunk entirely after a Q chunk is hidden from it and not computed; a chunk
 * entirely before it is attended in full; a chunk with itself is causal within.
 *
 * Errors. Every rank checks its arguments, then the ranks agree (a reduction) before anything is
 * sent, and again after each ring step whether every rank's attention succeeded, so a rank whose
 * call fails makes every rank return, none hangs: the failing rank returns its own status, the
 * others the worst status across ranks, with a message (err) naming the rank. A desc or layout
 * that differs between ranks is found in the first agreement (CLATTN_INVALID_ARGUMENT on every
 * rank). Each wait (for the duplicate communicator, a step's transfers, an agreement) polls with
 * a deadline of timeout_s seconds (0: 600) from its start, so the whole call may take longer; an
 * agreement also waits for the slowest rank's step, so timeout_s must exceed the longest step's
 * compute. A rank that never calls, or has died, makes the others return CLATTN_IO_ERROR
 * at the deadline, with requests still pending on the communicator (then unusable: abort the
 * job, as MPI_Abort would) and the host buffers they use left allocated, since MPI may still
 * write them. On any failure the out and lse shards are not written. The call works on a
 * duplicate of comm (MPI_Comm_idup, collective), so its messages never meet the caller's. */
#ifndef CLATTN_MPI_H
#define CLATTN_MPI_H

#include "clattn.h"

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CLATTN_SHARD_CONTIGUOUS = 0, CLATTN_SHARD_ZIGZAG } clattn_shard_layout;

/* Per-rank figures of one call. */
typedef struct clattn_ring_stats {
    double total_s;          /* the whole call */
    double compute_s;        /* in clattn_attention_host and the merges */
    double wait_s;           /* blocked on the step's transfers after its compute was done */
    double sync_s;           /* in the agreements after each step: waiting for slower ranks */
    double bytes_sent;       /* K/V bytes this rank sent */
    int steps;               /* ring steps (P) */
    int blocks_computed;     /* (Q chunk, K/V chunk) pairs computed */
    int blocks_skipped;      /* pairs causality hides entirely */
} clattn_ring_stats;

/* The positions a rank holds: n_chunks (1 or 2) ranges first[i] .. first[i]+count[i]-1, in the
   order its shard stores them. L is Lq or Lk. */
CLATTN_API clattn_status clattn_ring_shard_rows(int L, int ranks, int rank, clattn_shard_layout layout,
                                                int *n_chunks, int first[2], int count[2]);

/* Ring attention on comm. ctx: this rank's context. q, k, v: this rank's shards;
   out: its output shard; lse: NULL or its lse shard. Returns on every rank once all are done.
   Status: the rank's own failure if it failed; else the worst status across ranks when another
   rank failed; CLATTN_IO_ERROR for an MPI failure or the deadline. err (err_len bytes, may be
   NULL) gets the message: which rank failed and why. stats may be NULL. */
CLATTN_API clattn_status clattn_ring_attention(clattn_context *ctx, MPI_Comm comm,
                                               const clattn_attention_desc *desc,
                                               clattn_shard_layout layout, const void *q,
                                               const void *k, const void *v, void *out, float *lse,
                                               double timeout_s, clattn_ring_stats *stats,
                                               char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* CLATTN_MPI_H */
