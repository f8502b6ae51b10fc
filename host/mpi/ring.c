/* Ring attention over MPI (include/clattn_mpi.h): each rank's K/V shard travels around the ring
 * while every rank attends its Q shard to the shard in hand, merging the partial results by lse.
 *
 * Built into libclattn_mpi, on top of the public API of libclattn only (clattn_attention_host,
 * clattn_merge_partials_host), so that libclattn stays free of MPI.
 *
 * One step s of P: rank r holds the K/V of rank (r - s) mod P in one buffer; it posts the receive
 * of the next shard (from r-1) into the other buffer and the send of the one in hand (to r+1),
 * attends its Q chunks to the K/V chunks in hand, waits for the two transfers, and agrees with the
 * other ranks (a non-blocking reduction) that every rank's attention succeeded. */
#include "clattn_mpi.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_KV = 0x4C41 };   /* on a duplicate of the caller's communicator: no clash with theirs */
#define DEFAULT_TIMEOUT_S 600.0

typedef struct shard {
    int n;                    /* chunks, 1 or 2 */
    int first[2], count[2];   /* positions */
} shard;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

clattn_status clattn_ring_shard_rows(int L, int ranks, int rank, clattn_shard_layout layout,
                                     int *n_chunks, int first[2], int count[2])
{
    if (L < 0 || ranks < 1 || rank < 0 || rank >= ranks || !n_chunks || !first || !count ||
        (layout != CLATTN_SHARD_CONTIGUOUS && layout != CLATTN_SHARD_ZIGZAG))
        return CLATTN_INVALID_ARGUMENT;
    const int chunks = layout == CLATTN_SHARD_ZIGZAG ? 2 * ranks : ranks;
    const int mine[2] = {rank, 2 * ranks - 1 - rank};
    *n_chunks = layout == CLATTN_SHARD_ZIGZAG ? 2 : 1;
    for (int i = 0; i < *n_chunks; i++) {
        const long long c = mine[i];
        first[i] = (int)(c * L / chunks);
        count[i] = (int)((c + 1) * L / chunks) - first[i];
    }
    return CLATTN_SUCCESS;
}

static shard shard_of(int L, int ranks, int rank, clattn_shard_layout layout)
{
    shard s = {0};   /* a contiguous shard fills chunk 0 only */
    clattn_ring_shard_rows(L, ranks, rank, layout, &s.n, s.first, s.count);
    return s;
}

static int shard_rows(const shard *s)
{
    return s->count[0] + (s->n > 1 ? s->count[1] : 0);
}

/* ---- one call's state ------------------------------------------------------------------------ */

/* What the duplication, the agreements and the message broadcast write: allocated once before any
   collective (so no rank skips one for want of memory), and left allocated when a request may
   still be pending at a deadline (MPI may write it later). */
struct scratch {
    MPI_Comm comm;
    int io[4];
    char msg[512];
};

typedef struct ring {
    clattn_context *ctx;
    MPI_Comm comm;
    int P, rank;
    const clattn_attention_desc *d;
    clattn_shard_layout layout;
    size_t qe, kve;                 /* element sizes */
    shard qs, ks;                   /* this rank's Q and K/V shards */
    double timeout;                 /* the longest one wait may take */
    MPI_Request *reqs;              /* the step's transfers, to progress between blocks */
    int n_req;
    int broken;                     /* requests may be pending: the duplicate stays, with its buffers */
    struct scratch *s;              /* what the small collectives write (see scratch) */
    clattn_ring_stats st;
    char err[512];
} ring;

_Static_assert(sizeof(((ring *)0)->err) == sizeof(((struct scratch *)0)->msg),
               "a rank's message travels in the scratch's msg");

static clattn_status fail(ring *r, clattn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return st;
}

/* Bytes of the K then V chunks of rank src's shard (a message). */
static size_t kv_bytes(const ring *r, int src)
{
    shard s = shard_of(r->d->seq_kv, r->P, src, r->layout);
    const int hkv = r->d->heads_kv ? r->d->heads_kv : r->d->heads_q;
    const int dv = r->d->head_dim_v ? r->d->head_dim_v : r->d->head_dim;
    return (size_t)r->d->batch * (size_t)hkv * (size_t)shard_rows(&s) *
           (size_t)(r->d->head_dim + dv) * r->kve;
}

/* Polls reqs until done or r->timeout has passed in this wait, adding the time to *waited: 0 done,
   -1 the deadline, -2 an MPI error. The deadline is per wait, not per call: a long call between
   healthy ranks never meets it, a rank that never comes or has died does. */
static int wait_all(ring *r, MPI_Request *reqs, int n, double *waited)
{
    const double t0 = now_s(), deadline = t0 + r->timeout;
    for (;;) {
        int done = 0;
        if (MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
            return -2;
        if (done) {
            *waited += now_s() - t0;
            return 0;
        }
        if (now_s() > deadline)
            return -1;
        const struct timespec pause = {0, 20000};   /* 20 us: polling, not spinning a core */
        nanosleep(&pause, NULL);
    }
}

/* One reduction of io[0..count-1] into io[count..] (r->s->io: not the stack, since a reduction
   pending at a deadline writes it later), waited for with the deadline. On failure the message
   is in r->err. */
static clattn_status reduce(ring *r, int count, MPI_Datatype type, MPI_Op op)
{
    int *io = r->s->io;
    MPI_Request req;
    if (MPI_Iallreduce(io, io + 2, count, type, op, r->comm, &req) != MPI_SUCCESS)
        return fail(r, CLATTN_IO_ERROR, "MPI_Iallreduce failed");
    int w = wait_all(r, &req, 1, &r->st.sync_s);
    if (w) {
        r->broken = 1;
        return fail(r, CLATTN_IO_ERROR, w == -1 ? "the ranks did not agree within %.0f s (a rank "
                    "never called, or died); the communicator has requests pending" :
                    "MPI_Iallreduce failed (%.0f s)", r->timeout);
    }
    return CLATTN_SUCCESS;
}

/* The ranks agree: each gives its status, all get the worst (the largest code) and the lowest
   rank that had it (MPI_MAXLOC's rule for ties). 0: agreed; else an MPI failure or the deadline
   (the message in r->err). */
static clattn_status agree(ring *r, clattn_status mine, clattn_status *worst, int *who)
{
    int *io = r->s->io;
    io[0] = (int)mine;
    io[1] = r->rank;
    clattn_status st = reduce(r, 1, MPI_2INT, MPI_MAXLOC);
    if (st != CLATTN_SUCCESS)
        return st;
    *worst = (clattn_status)io[2];
    *who = io[3];
    return CLATTN_SUCCESS;
}

/* A digest of what must be the same on every rank: desc's shape and options, and the layout. */
static int desc_digest(const clattn_attention_desc *d, clattn_shard_layout layout)
{
    if (!d)
        return 0;
    const long long f[] = {d->batch, d->heads_q, d->heads_kv, d->seq_q, d->seq_kv, d->head_dim,
                           d->head_dim_v, d->dtype, d->layout, d->causal != CLATTN_CAUSAL_NONE, layout,
                           d->sinks != NULL};   /* with Lq == Lk both causal modes are one */
    unsigned h = 2166136261u;   /* FNV-1a over the fields and the float options' bits */
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        h = (h ^ (unsigned)f[i]) * 16777619u;
    unsigned bits;
    memcpy(&bits, &d->scale, sizeof bits);
    h = (h ^ bits) * 16777619u;
    memcpy(&bits, &d->softcap, sizeof bits);
    h = (h ^ bits) * 16777619u;
    return (int)(h & 0x3fffffff);
}

/* Whether every rank passed the same digest (a max and a min in one reduction): 1 yes, 0 no,
   < 0 an MPI failure or the deadline (the message in r->err). */
static int same_everywhere(ring *r, int digest)
{
    int *io = r->s->io;
    io[0] = digest;
    io[1] = -digest;
    if (reduce(r, 2, MPI_INT, MPI_MAX) != CLATTN_SUCCESS)
        return -1;
    return io[2] == -io[3];
}

/* After an agreement found a failure: every rank gets the failing rank's message (a broadcast
   from it), prefixed for the others with who failed. */
static void share_message(ring *r, int who, clattn_status mine)
{
    char *msg = r->s->msg;   /* as in agree */
    MPI_Request req;
    memcpy(msg, r->err, sizeof r->err);
    if (MPI_Ibcast(msg, (int)sizeof r->err, MPI_CHAR, who, r->comm, &req) != MPI_SUCCESS)
        return;   /* the rank's own words stay */
    if (wait_all(r, &req, 1, &r->st.sync_s) != 0) {
        r->broken = 1;
        return;
    }
    msg[sizeof r->err - 1] = '\0';
    if (mine == CLATTN_SUCCESS)
        fail(r, CLATTN_SUCCESS, "rank %d failed: %s", who, msg);
}

/* Whether the K/V chunk [kf, kf+kn) is hidden from, fully visible to, or on the diagonal of the Q
   chunk [qf, qf+qn): chunks never partly overlap (they are cut at the same positions). */
enum { HIDDEN, FULL, DIAGONAL };
static int visibility(const ring *r, int qf, int qn, int kf)
{
    if (r->d->causal == CLATTN_CAUSAL_NONE)
        return FULL;
    if (kf >= qf + qn)
        return HIDDEN;
    return kf == qf ? DIAGONAL : FULL;
}

/* Attends Q chunk i of this rank (q, running out and lse) to the K/V chunks of rank src (kv). */
static clattn_status attend(ring *r, int src, const unsigned char *kv, const unsigned char *q_chunk,
                            int qi, void *run_out, float *run_lse, void *tmp_out, float *tmp_lse)
{
    const clattn_attention_desc *d = r->d;
    const int hkv = d->heads_kv ? d->heads_kv : d->heads_q;
    const int dv = d->head_dim_v ? d->head_dim_v : d->head_dim;
    const shard ks = shard_of(d->seq_kv, r->P, src, r->layout);
    const size_t k_all = (size_t)d->batch * (size_t)hkv * (size_t)shard_rows(&ks) *
                         (size_t)d->head_dim * r->kve;
    const int qf = r->qs.first[qi], qn = r->qs.count[qi];
    size_t k_off = 0, v_off = 0;
    for (int j = 0; j < ks.n; j++) {
        const int kf = ks.first[j], kn = ks.count[j];
        const unsigned char *kc = kv + k_off, *vc = kv + k_all + v_off;
        k_off += (size_t)d->batch * (size_t)hkv * (size_t)kn * (size_t)d->head_dim * r->kve;
        v_off += (size_t)d->batch * (size_t)hkv * (size_t)kn * (size_t)dv * r->kve;
        if (qn == 0 || kn == 0)
            continue;
        const int vis = visibility(r, qf, qn, kf);
        if (vis == HIDDEN) {
            r->st.blocks_skipped++;
            continue;
        }
        clattn_attention_desc s = *d;
        s.seq_q = qn;
        s.seq_kv = kn;
        s.causal = vis == DIAGONAL ? CLATTN_CAUSAL_TOP_LEFT : CLATTN_CAUSAL_NONE;
        s.sinks = NULL;   /* joined once, at the end */
        clattn_status st = clattn_attention_host(r->ctx, &s, q_chunk, kc, vc, NULL, tmp_out, NULL, tmp_lse);
        if (st != CLATTN_SUCCESS)
            return fail(r, st, "rank %d: attention of its chunk at %d with rank %d's at %d: %s", r->rank,
                        qf, src, kf, clattn_context_last_error(r->ctx));
        clattn_attention_desc m = *d;
        m.seq_q = qn;
        const void *outs[2] = {run_out, tmp_out};
        const float *lses[2] = {run_lse, tmp_lse};
        st = clattn_merge_partials_host(2, outs, lses, &m, run_out, run_lse);
        if (st != CLATTN_SUCCESS)
            return fail(r, st, "rank %d: merging a partial result failed", r->rank);
        r->st.blocks_computed++;
        if (r->n_req) {   /* MPI moves a message on only inside MPI calls: let it, between blocks */
            int done;
            MPI_Testall(r->n_req, r->reqs, &done, MPI_STATUSES_IGNORE);
        }
    }
    return CLATTN_SUCCESS;
}

/* Checks this rank's arguments; the message in r->err. */
static clattn_status check_args(ring *r, const void *q, const void *k, const void *v, const void *out)
{
    const clattn_attention_desc *d = r->d;
    clattn_tensor_sizes sz;
    if (!d)
        return fail(r, CLATTN_INVALID_ARGUMENT, "desc must not be NULL");
    if (clattn_attention_sizes(d, &sz) != CLATTN_SUCCESS)
        return fail(r, CLATTN_INVALID_ARGUMENT, "desc is invalid (clattn_attention_sizes refuses it)");
    if (d->mask_type != CLATTN_MASK_NONE || d->window || d->alibi_slopes ||
        d->kv_storage != CLATTN_KV_SAME)
        return fail(r, CLATTN_INVALID_ARGUMENT, "ring attention takes no masks, windows, ALiBi or "
                    "int8 K/V");
    if (d->causal != CLATTN_CAUSAL_NONE && d->seq_q != d->seq_kv)
        return fail(r, CLATTN_INVALID_ARGUMENT, "causal ring attention needs seq_q == seq_kv "
                    "(%d, %d): one sequence", d->seq_q, d->seq_kv);
    if (r->layout != CLATTN_SHARD_CONTIGUOUS && r->layout != CLATTN_SHARD_ZIGZAG)
        return fail(r, CLATTN_INVALID_ARGUMENT, "layout %d is not a clattn_shard_layout", (int)r->layout);
    if (d->batch > 0 && ((shard_rows(&r->qs) > 0 && (!q || !out)) || (shard_rows(&r->ks) > 0 && (!k || !v))))
        return fail(r, CLATTN_INVALID_ARGUMENT, "rank %d: q, k, v and out must not be NULL for its "
                    "non-empty shards", r->rank);
    for (int s = 0; s < r->P; s++)
        if (kv_bytes(r, s) > INT_MAX)
            return fail(r, CLATTN_UNSUPPORTED, "rank %d's K/V shard is over 2 GiB, one MPI message's "
                        "limit here", s);
    return CLATTN_SUCCESS;
}

clattn_status clattn_ring_attention(clattn_context *ctx, MPI_Comm comm, const clattn_attention_desc *desc,
                                    clattn_shard_layout layout, const void *q, const void *k,
                                    const void *v, void *out, float *lse, double timeout_s,
                                    clattn_ring_stats *stats, char *err, size_t err_len)
{
    ring r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.d = desc;
    r.layout = layout;
    const double t_start = now_s();
    r.timeout = timeout_s > 0 ? timeout_s : DEFAULT_TIMEOUT_S;
    if (err && err_len)
        err[0] = '\0';
    /* A duplicate of comm, made without blocking: a rank that never calls is met by the deadline
       (a rank out of memory for the scratch returns before it, as one that never called). */
    r.s = malloc(sizeof *r.s);
    MPI_Request dup;
    double dup_wait = 0.0;
    const int dup_posted = r.s && MPI_Comm_idup(comm, &r.s->comm, &dup) == MPI_SUCCESS;
    if (!dup_posted || wait_all(&r, &dup, 1, &dup_wait) != 0) {
        const clattn_status st = r.s ? CLATTN_IO_ERROR : CLATTN_OUT_OF_MEMORY;
        if (err && err_len)
            snprintf(err, err_len, "%s", !r.s ? "out of host memory" :
                     "duplicating the communicator failed or took longer than the deadline (a rank "
                     "never called, or died)");
        if (!dup_posted)   /* else a pending duplication may still write it: left allocated */
            free(r.s);
        r.st.total_s = now_s() - t_start;
        if (stats)
            *stats = r.st;
        return st;
    }
    r.comm = r.s->comm;
    r.st.sync_s += dup_wait;
    MPI_Comm_set_errhandler(r.comm, MPI_ERRORS_RETURN);
    MPI_Comm_size(r.comm, &r.P);
    MPI_Comm_rank(r.comm, &r.rank);

    unsigned char *buf[2] = {NULL, NULL}, *tmp_out = NULL, *run_out = NULL;
    float *tmp_lse = NULL, *run_lse = NULL;
    int dup_usable = 1;
    clattn_status mine = CLATTN_SUCCESS, worst = CLATTN_SUCCESS;
    int who = -1;
    if (desc) {
        r.qe = desc->dtype == CLATTN_F32 ? 4 : 2;
        r.kve = r.qe;
        r.qs = shard_of(desc->seq_q, r.P, r.rank, layout == CLATTN_SHARD_ZIGZAG ? layout : CLATTN_SHARD_CONTIGUOUS);
        r.ks = shard_of(desc->seq_kv, r.P, r.rank, layout == CLATTN_SHARD_ZIGZAG ? layout : CLATTN_SHARD_CONTIGUOUS);
    }
    mine = ctx ? check_args(&r, q, k, v, out) : fail(&r, CLATTN_INVALID_ARGUMENT, "ctx must not be NULL");

    size_t max_kv = 0, run_bytes = 0, tmp_bytes = 0, lse_rows = 0;
    int hq = 0, dv = 0;
    if (mine == CLATTN_SUCCESS) {
        hq = desc->heads_q;
        dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim;
        for (int s = 0; s < r.P; s++)
            max_kv = kv_bytes(&r, s) > max_kv ? kv_bytes(&r, s) : max_kv;
        const size_t rows = (size_t)desc->batch * (size_t)hq;
        lse_rows = rows * (size_t)shard_rows(&r.qs);
        run_bytes = lse_rows * (size_t)dv * r.qe;
        const int second = r.qs.n > 1 ? r.qs.count[1] : 0;
        const int biggest = r.qs.count[0] > second ? r.qs.count[0] : second;
        tmp_bytes = rows * (size_t)biggest * (size_t)dv * r.qe;
        buf[0] = malloc(max_kv + 1);
        buf[1] = malloc(max_kv + 1);
        run_out = calloc(1, run_bytes + 1);           /* zeros: nothing seen yet */
        run_lse = malloc(lse_rows * sizeof(float) + 1);
        tmp_out = malloc(tmp_bytes + 1);
        tmp_lse = malloc(rows * (size_t)biggest * sizeof(float) + 1);
        if (!buf[0] || !buf[1] || !run_out || !run_lse || !tmp_out || !tmp_lse)
            mine = fail(&r, CLATTN_OUT_OF_MEMORY, "rank %d: out of host memory for the ring's buffers", r.rank);
        else {
            for (size_t i = 0; i < lse_rows; i++)
                run_lse[i] = -INFINITY;
            /* this rank's K then V chunks: the message it sends first */
            const size_t kb = (size_t)desc->batch * (size_t)(desc->heads_kv ? desc->heads_kv : hq) *
                              (size_t)shard_rows(&r.ks) * (size_t)desc->head_dim * r.kve;
            if (kb)
                memcpy(buf[0], k, kb);
            if (kv_bytes(&r, r.rank) - kb)
                memcpy(buf[0] + kb, v, kv_bytes(&r, r.rank) - kb);
        }
    }
    /* desc must be the same everywhere: a rank with another shape would send messages of
       other sizes (a truncation on one rank, a wait for the deadline on the others). */
    clattn_status st;
    const int same = same_everywhere(&r, desc_digest(desc, layout));
    if (same < 0) {
        st = CLATTN_IO_ERROR;
        dup_usable = 0;
        goto done;
    }
    if (!same && mine == CLATTN_SUCCESS)
        mine = fail(&r, CLATTN_INVALID_ARGUMENT, "rank %d: desc or layout differs between the ranks "
                    "(they must pass the same)", r.rank);
    st = agree(&r, mine, &worst, &who);
    if (st != CLATTN_SUCCESS) {
        dup_usable = 0;
        goto done;
    }
    if (worst != CLATTN_SUCCESS) {
        st = mine != CLATTN_SUCCESS ? mine : worst;
        share_message(&r, who, mine);
        goto done;
    }

    for (int s = 0; s < r.P; s++) {
        const int holder = (r.rank - s + r.P) % r.P, next = (r.rank - s - 1 + 2 * r.P) % r.P;
        unsigned char *cur = buf[s % 2], *nxt = buf[(s + 1) % 2];
        MPI_Request reqs[2];
        int n_req = 0;
        if (s < r.P - 1) {
            if (MPI_Irecv(nxt, (int)kv_bytes(&r, next), MPI_BYTE, (r.rank - 1 + r.P) % r.P, TAG_KV, r.comm,
                          &reqs[n_req++]) != MPI_SUCCESS ||
                MPI_Isend(cur, (int)kv_bytes(&r, holder), MPI_BYTE, (r.rank + 1) % r.P, TAG_KV, r.comm,
                          &reqs[n_req++]) != MPI_SUCCESS) {
                st = fail(&r, CLATTN_IO_ERROR, "rank %d: posting the ring's transfers failed", r.rank);
                r.broken = n_req > 0;   /* a receive may be posted into nxt */
                dup_usable = 0;
                goto done;
            }
            r.st.bytes_sent += (double)kv_bytes(&r, holder);
        }
        r.reqs = reqs;
        r.n_req = n_req;
        const double t0 = now_s();
        size_t q_off = 0, o_off = 0, l_off = 0;
        for (int i = 0; i < r.qs.n && mine == CLATTN_SUCCESS; i++) {
            const size_t rows = (size_t)desc->batch * (size_t)hq * (size_t)r.qs.count[i];
            mine = attend(&r, holder, cur, (const unsigned char *)q + q_off, i, run_out + o_off,
                          run_lse + l_off, tmp_out, tmp_lse);
            q_off += rows * (size_t)desc->head_dim * r.qe;
            o_off += rows * (size_t)dv * r.qe;
            l_off += rows;
        }
        r.st.compute_s += now_s() - t0;
        if (n_req && wait_all(&r, reqs, n_req, &r.st.wait_s)) {
            st = fail(&r, CLATTN_IO_ERROR, "rank %d: the ring's transfers did not complete within the "
                      "deadline (a rank never called, or died); the communicator has requests pending",
                      r.rank);
            r.broken = 1;   /* the transfers may still write nxt and read cur */
            dup_usable = 0;
            goto done;
        }
        r.st.steps++;
        if ((st = agree(&r, mine, &worst, &who)) != CLATTN_SUCCESS) {
            dup_usable = 0;
            goto done;
        }
        if (worst != CLATTN_SUCCESS) {
            st = mine != CLATTN_SUCCESS ? mine : worst;
            share_message(&r, who, mine);
            goto done;
        }
    }

    /* the sinks: a part with no value and lse sinks[h] joins each row's denominator once */
    if (desc->sinks && lse_rows) {
        size_t o_off = 0, l_off = 0;
        for (int i = 0; i < r.qs.n && st == CLATTN_SUCCESS; i++) {
            const int qn = r.qs.count[i];
            const size_t rows = (size_t)desc->batch * (size_t)hq * (size_t)qn;
            memset(tmp_out, 0, rows * (size_t)dv * r.qe);
            for (size_t x = 0; x < rows; x++)
                tmp_lse[x] = desc->sinks[(x / (size_t)qn) % (size_t)hq];
            clattn_attention_desc m = *desc;
            m.seq_q = qn;
            const void *outs[2] = {run_out + o_off, tmp_out};
            const float *lses[2] = {run_lse + l_off, tmp_lse};
            st = clattn_merge_partials_host(2, outs, lses, &m, run_out + o_off, run_lse + l_off);
            if (st != CLATTN_SUCCESS)
                mine = fail(&r, st, "rank %d: joining the sinks failed", r.rank);
            o_off += rows * (size_t)dv * r.qe;
            l_off += rows;
        }
    }
    /* Every rank ends with an agreement too: a rank whose last merge failed is not alone in it
       (the loop's last agreement came before the sinks). Skipped without sinks: nothing can fail
       after the last step then. */
    if (desc->sinks) {
        if ((st = agree(&r, mine, &worst, &who)) != CLATTN_SUCCESS) {
            dup_usable = 0;
            goto done;
        }
        if (worst != CLATTN_SUCCESS) {
            st = mine != CLATTN_SUCCESS ? mine : worst;
            share_message(&r, who, mine);
            goto done;
        }
    }
    if (run_bytes)
        memcpy(out, run_out, run_bytes);
    if (lse && lse_rows)
        memcpy(lse, run_lse, lse_rows * sizeof(float));
    st = CLATTN_SUCCESS;
done:
    if (st != CLATTN_SUCCESS && err && err_len)
        snprintf(err, err_len, "%s", r.err[0] ? r.err : clattn_status_string(st));
    if (!r.broken) {   /* else pending requests may still use them: left allocated */
        free(buf[0]);
        free(buf[1]);
        free(r.s);
    }
    free(run_out);
    free(run_lse);
    free(tmp_out);
    free(tmp_lse);
    if (dup_usable && !r.broken)
        MPI_Comm_free(&r.comm);
    r.st.total_s = now_s() - t_start;
    if (stats)
        *stats = r.st;
    return st;
}
