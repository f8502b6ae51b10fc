/* --serving: a serving engine's steps, ragged and paged (clattn_attention_varlen) against what an
 * engine without them would do on the same work, in one process on one context:
 *   decode   bench_serving_decode's batch (suite.c): 64 sequences (16 with --quick), one new token
 *            each, context lengths drawn from a fixed-seed long-tailed (log-normal) distribution,
 *            median ~1k, the longest 16k (4k), Hq 32, Hkv 8, d 128, block_size 16; the block table
 *            shuffled;
 *   prefill  8 sequences each adding 512 new tokens (128) to cached prefixes of mixed lengths.
 * Methods: paged (one clattn_attention_varlen); paged in order (the same cache, its blocks handed
 * out in order: what the shuffle costs, a memory-order effect on a CPU); packed (the same with the
 * keys packed, not paged: what paging costs); padded (dense clattn_attention over the batch
 * padded to its longest context, in as few calls as the device's largest allocation allows, left-padded so that bottom-right causality holds, with a [B,Lk]
 * key-padding mask); loop (a dense call per sequence, on sub-buffers); uniform (a dense batch of
 * the same total K/V bytes with every length equal: what paging should cost nothing against);
 * cpu-blas (where the device is the CPU, in a build with OpenBLAS: a sequence at a time on the
 * host, bench_cpublas_attention, on the same number of threads as the device has compute units).
 * And ragged prefill with no prefix against the dense call on the same uniform batch.
 * Each row: median wall time of the call (enqueue to clFinish) over interleaved rounds, GB/s of the
 * K/V bytes the step needs (the real lengths, not the padding), tokens/s, and the ratio to paged.
 * Buffers hold a constant pattern: no kernel's speed depends on the values, and correctness is the
 * tests' (tests/test_varlen.c). */
#include "bench/bench.h"

#ifdef BENCH_HAVE_CBLAS
#include <cblas.h>
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 5
/* the shape of bench_serving_decode's batch (suite.c), for both scenarios */
#define HQ 32
#define HKV 8
#define HD 128
#define BS 16

/* One dense call of the padded method: B sequences with their own buffers. */
#define MAX_PIECES 16
typedef struct padded_piece {
    int B;
    cl_mem q, k, v, out, mask;
} padded_piece;

typedef struct method {
    const char *name;
    clattn_status (*run)(struct method *m);
    clattn_context *ctx;
    clattn_varlen_desc vdesc;           /* paged / ragged */
    clattn_attention_desc desc;         /* dense */
    cl_mem q, k, v, out, mask;
    int B, *lq, *lk;                    /* loop: per sequence */
    cl_mem *sub;                        /* loop: q, k, v, out sub-buffers per sequence */
    float *hq, *hk, *hv, *hout, *hscores;   /* cpu-blas: host tensors, packed */
    padded_piece pieces[MAX_PIECES];    /* padded: the calls it takes */
    int n_pieces;
    double t[ROUNDS];
    int ok;
} method;

static cl_mem filled(const bench_device *dev, size_t bytes, float value)
{
    cl_int e;
    cl_mem m = clCreateBuffer(dev->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &e);
    if (!m)
        return NULL;
    if (clEnqueueFillBuffer(dev->queue, m, &value, sizeof value, 0, (bytes ? bytes : 4) / 4 * 4, 0,
                            NULL, NULL) != CL_SUCCESS) {
        clReleaseMemObject(m);
        return NULL;
    }
    return m;
}

static cl_mem ints(const bench_device *dev, const int *v, size_t n)
{
    cl_int e;
    return clCreateBuffer(dev->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * sizeof(int),
                          (void *)v, &e);
}

static clattn_status run_varlen(method *m)
{
    return clattn_attention_varlen(m->ctx, &m->vdesc, m->q, m->k, m->v, m->out, NULL);
}

static clattn_status run_dense(method *m)
{
    return clattn_attention(m->ctx, &m->desc, m->q, m->k, m->v, m->mask, m->out, NULL, NULL);
}

/* padded: the batch in pieces of at most the device's largest allocation, each its own call */
static clattn_status run_padded(method *m)
{
    for (int i = 0; i < m->n_pieces; i++) {
        const padded_piece *pc = &m->pieces[i];
        clattn_attention_desc d = m->desc;
        d.batch = pc->B;
        clattn_status st = clattn_attention(m->ctx, &d, pc->q, pc->k, pc->v, pc->mask, pc->out,
                                            NULL, NULL);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    return CLATTN_SUCCESS;
}

static clattn_status run_loop(method *m)
{
    for (int b = 0; b < m->B; b++) {
        if (!m->lq[b])
            continue;
        clattn_attention_desc d = m->desc;
        d.seq_q = m->lq[b];
        d.seq_kv = m->lk[b];
        cl_mem *s = m->sub + 4 * b;
        clattn_status st = clattn_attention(m->ctx, &d, s[0], s[1], s[2], NULL, s[3], NULL, NULL);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    return CLATTN_SUCCESS;
}

#ifdef BENCH_HAVE_CBLAS
/* cpu-blas: OpenBLAS on the host, a sequence at a time (bench_cpublas_attention), packed tensors */
static clattn_status run_cpublas(method *m)
{
    const size_t qrow = (size_t)HQ * HD, krow = (size_t)HKV * HD;
    size_t q0 = 0, k0 = 0;
    for (int b = 0; b < m->B; q0 += (size_t)m->lq[b], k0 += (size_t)m->lk[b], b++) {
        if (!m->lq[b])
            continue;
        bench_shape sh = {"seq", 1, HQ, HKV, m->lq[b], m->lk[b], HD, 1, 0};
        bench_cpublas_attention(&sh, CLATTN_LAYOUT_BSHD, m->hq + q0 * qrow, m->hk + k0 * krow,
                                m->hv + k0 * krow, m->hout + q0 * qrow, m->hscores);
    }
    return CLATTN_SUCCESS;
}
#endif

static float *host_filled(size_t n, float value)
{
    float *p = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; p && i < n; i++)
        p[i] = value;
    return p;
}

static void release_method(method *m)
{
    free(m->hq);
    free(m->hk);
    free(m->hv);
    free(m->hout);
    free(m->hscores);
    cl_mem all[] = {m->q, m->k, m->v, m->out, m->mask, m->vdesc.cu_seqlens_q, m->vdesc.cu_seqlens_k,
                    m->vdesc.seqlens_k, m->vdesc.block_table};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    for (int i = 0; m->sub && i < 4 * m->B; i++)
        if (m->sub[i])
            clReleaseMemObject(m->sub[i]);
    free(m->sub);
    for (int i = 0; i < m->n_pieces; i++) {
        const padded_piece *pc = &m->pieces[i];
        cl_mem mine[] = {pc->q, pc->k, pc->v, pc->out, pc->mask};
        for (size_t j = 0; j < sizeof mine / sizeof mine[0]; j++)
            if (mine[j])
                clReleaseMemObject(mine[j]);
    }
}

static cl_mem sub(cl_mem parent, size_t origin, size_t size)
{
    cl_buffer_region r = {origin, size ? size : 4};
    cl_int e;
    return clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &r, &e);
}

static clattn_attention_desc dense_desc(int B, int lq, int lk)
{
    clattn_attention_desc d = {0};
    d.batch = B;
    d.heads_q = HQ;
    d.heads_kv = HKV;
    d.seq_q = lq;
    d.seq_kv = lk;
    d.head_dim = HD;
    d.layout = CLATTN_LAYOUT_BSHD;
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    d.path = CLATTN_PATH_FUSED;
    return d;
}

/* One scenario: B sequences adding lq[b] tokens to contexts of lk[b] keys (new ones included). */
static int scenario(const bench_device *dev, clattn_context *ctx, const char *title, int B,
                    const int *lq, const int *lk, int with_padded)
{
    long total_q = 0, total_k = 0, blocks = 0;
    int max_q = 0, max_k = 0;
    for (int b = 0; b < B; b++) {
        total_q += lq[b];
        total_k += lk[b];
        blocks += (lk[b] + BS - 1) / BS;
        max_q = lq[b] > max_q ? lq[b] : max_q;
        max_k = lk[b] > max_k ? lk[b] : max_k;
    }
    const size_t qrow = (size_t)HQ * HD * 4, krow = (size_t)HKV * HD * 4;
    const double kv_bytes = (double)total_k * 2.0 * (double)krow;
    printf("\n%s: %d sequences, %ld new tokens, contexts %ld keys in all (longest %d), K/V needed "
           "%.1f MB\n", title, B, total_q, total_k, max_k, kv_bytes / 1e6);
    enum { PAGED, IN_ORDER, PACKED, PADDED, LOOP, UNIFORM, CPUBLAS, N };
    method ms[N];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < N; i++)
        ms[i].ctx = ctx;
    int *cu_q = calloc((size_t)B + 1, sizeof(int)), *table = NULL;
    const int max_blocks = (max_k + BS - 1) / BS;
    const size_t table_len = (size_t)B * (size_t)(max_blocks ? max_blocks : 1);
    table = calloc(table_len, sizeof(int));
    int *perm = calloc((size_t)(blocks ? blocks : 1), sizeof(int));
    int *ordered = calloc(table_len, sizeof(int));
    for (long i = 0; i < blocks; i++)
        perm[i] = (int)i;
    unsigned long long seed = 12345;
    for (long i = blocks - 1; i > 0; i--) {   /* a shuffled pool: blocks are handed out in any order */
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        long j = (long)((seed >> 33) % (unsigned long long)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    long next = 0;
    for (int b = 0; b < B; b++) {
        cu_q[b + 1] = cu_q[b] + lq[b];
        for (int i = 0; i < (lk[b] + BS - 1) / BS; i++, next++) {
            table[(size_t)b * max_blocks + i] = perm[next];
            ordered[(size_t)b * max_blocks + i] = (int)next;
        }
    }
    /* paged */
    method *m = &ms[PAGED];
    m->name = "paged";
    m->run = run_varlen;
    clattn_varlen_desc *v = &m->vdesc;
    v->batch = B;
    v->heads_q = HQ;
    v->heads_kv = HKV;
    v->head_dim = HD;
    v->causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    v->total_q = (int)total_q;
    v->max_seqlen_q = max_q;
    v->max_seqlen_k = max_k;
    v->block_size = BS;
    v->num_blocks = (int)blocks;
    v->max_blocks_per_seq = max_blocks;
    v->cu_seqlens_q = ints(dev, cu_q, (size_t)B + 1);
    v->seqlens_k = ints(dev, lk, (size_t)B);
    v->block_table = ints(dev, table, table_len);
    m->q = filled(dev, (size_t)total_q * qrow, 0.01f);
    m->k = filled(dev, (size_t)blocks * BS * krow, 0.02f);
    m->v = filled(dev, (size_t)blocks * BS * krow, 0.03f);
    m->out = filled(dev, (size_t)total_q * qrow, 0.0f);
    m->ok = m->q && m->k && m->v && m->out && v->cu_seqlens_q && v->seqlens_k && v->block_table;
    /* paged, blocks in order: the same cache buffers (retained), another table */
    m = &ms[IN_ORDER];
    m->name = "paged, in order";
    m->run = run_varlen;
    m->vdesc = ms[PAGED].vdesc;
    v = &m->vdesc;
    v->cu_seqlens_q = ints(dev, cu_q, (size_t)B + 1);
    v->seqlens_k = ints(dev, lk, (size_t)B);
    v->block_table = ints(dev, ordered, table_len);
    if ((m->k = ms[PAGED].k) != NULL)
        clRetainMemObject(m->k);
    if ((m->v = ms[PAGED].v) != NULL)
        clRetainMemObject(m->v);
    m->q = filled(dev, (size_t)total_q * qrow, 0.01f);
    m->out = filled(dev, (size_t)total_q * qrow, 0.0f);
    m->ok = m->q && m->k && m->v && m->out && v->cu_seqlens_q && v->seqlens_k && v->block_table;
    /* packed: the same ragged call with the keys packed instead of paged (what paging costs) */
    m = &ms[PACKED];
    m->name = "ragged, packed keys";
    m->run = run_varlen;
    m->vdesc = ms[PAGED].vdesc;
    v = &m->vdesc;
    v->block_size = v->num_blocks = v->max_blocks_per_seq = 0;
    v->seqlens_k = v->block_table = NULL;
    v->total_k = (int)total_k;
    int *cu_k = calloc((size_t)B + 1, sizeof(int));
    for (int b = 0; b < B; b++)
        cu_k[b + 1] = cu_k[b] + lk[b];
    v->cu_seqlens_q = ints(dev, cu_q, (size_t)B + 1);
    v->cu_seqlens_k = ints(dev, cu_k, (size_t)B + 1);
    free(cu_k);
    m->q = filled(dev, (size_t)total_q * qrow, 0.01f);
    m->k = filled(dev, (size_t)total_k * krow, 0.02f);
    m->v = filled(dev, (size_t)total_k * krow, 0.03f);
    m->out = filled(dev, (size_t)total_q * qrow, 0.0f);
    m->ok = m->q && m->k && m->v && m->out && v->cu_seqlens_q && v->cu_seqlens_k;
    /* padded: left-padded to the longest context, keys before each sequence's start masked */
    if (with_padded) {
        m = &ms[PADDED];
        m->name = "padded dense";
        m->run = run_padded;
        m->desc = dense_desc(B, max_q, max_k);
        m->desc.mask_type = CLATTN_MASK_BOOL_U8;
        m->desc.mask_batch_stride = max_k;
        m->desc.mask_rows_broadcast = 1;
        /* as many sequences per call as the device's largest allocation holds */
        const size_t per_seq = (size_t)max_k * krow;
        int per_piece = (int)(dev->max_alloc / (per_seq ? per_seq : 1));
        per_piece = per_piece < 1 ? 1 : per_piece > B ? B : per_piece;
        m->ok = (B + per_piece - 1) / per_piece <= MAX_PIECES;
        for (int b0 = 0; m->ok && b0 < B; b0 += per_piece) {
            padded_piece *pc = &m->pieces[m->n_pieces++];
            pc->B = B - b0 < per_piece ? B - b0 : per_piece;
            unsigned char *mask = calloc((size_t)pc->B * (size_t)max_k, 1);
            for (int b = 0; b < pc->B; b++)
                memset(mask + (size_t)b * max_k + (max_k - lk[b0 + b]), 1, (size_t)lk[b0 + b]);
            cl_int e;
            pc->mask = clCreateBuffer(dev->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                      (size_t)pc->B * max_k, mask, &e);
            free(mask);
            pc->q = filled(dev, (size_t)pc->B * max_q * qrow, 0.01f);
            pc->k = filled(dev, (size_t)pc->B * per_seq, 0.02f);
            pc->v = filled(dev, (size_t)pc->B * per_seq, 0.03f);
            pc->out = filled(dev, (size_t)pc->B * max_q * qrow, 0.0f);
            m->ok = pc->q && pc->k && pc->v && pc->out && pc->mask;
        }
        if (m->n_pieces > 1)
            printf("  (padded dense: %d calls of at most %d sequences, the device's largest "
                   "allocation being %.0f MB)\n", m->n_pieces, per_piece, (double)dev->max_alloc / 1e6);
    }
    /* loop: one dense call per sequence on sub-buffers of packed tensors */
    m = &ms[LOOP];
    m->name = "dense per sequence";
    m->run = run_loop;
    m->desc = dense_desc(1, 1, 1);
    m->B = B;
    m->lq = (int *)lq;
    m->lk = (int *)lk;
    m->q = filled(dev, (size_t)total_q * qrow, 0.01f);
    m->k = filled(dev, (size_t)total_k * krow, 0.02f);
    m->v = filled(dev, (size_t)total_k * krow, 0.03f);
    m->out = filled(dev, (size_t)total_q * qrow, 0.0f);
    m->sub = calloc((size_t)B * 4, sizeof(cl_mem));
    m->ok = m->q && m->k && m->v && m->out && m->sub;
    for (int b = 0, k0 = 0; m->ok && b < B; k0 += lk[b], b++) {
        if (!lq[b])
            continue;
        cl_mem *s = m->sub + 4 * b;
        s[0] = sub(m->q, (size_t)cu_q[b] * qrow, (size_t)lq[b] * qrow);
        s[1] = sub(m->k, (size_t)k0 * krow, (size_t)lk[b] * krow);
        s[2] = sub(m->v, (size_t)k0 * krow, (size_t)lk[b] * krow);
        s[3] = sub(m->out, (size_t)cu_q[b] * qrow, (size_t)lq[b] * qrow);
        m->ok = s[0] && s[1] && s[2] && s[3];
    }
    /* uniform: the same K/V bytes, every sequence as long as their mean */
    m = &ms[UNIFORM];
    m->name = "uniform dense";
    m->run = run_dense;
    const int mean_k = (int)(total_k / B), mean_q = (int)((total_q + B - 1) / B);
    m->desc = dense_desc(B, mean_q, mean_k);
    m->q = filled(dev, (size_t)B * mean_q * qrow, 0.01f);
    m->k = filled(dev, (size_t)B * mean_k * krow, 0.02f);
    m->v = filled(dev, (size_t)B * mean_k * krow, 0.03f);
    m->out = filled(dev, (size_t)B * mean_q * qrow, 0.0f);
    m->ok = m->q && m->k && m->v && m->out;
#ifdef BENCH_HAVE_CBLAS
    /* cpu-blas: where the device is the CPU, OpenBLAS on the same cores, a sequence at a time */
    if (dev->type & CL_DEVICE_TYPE_CPU) {
        openblas_set_num_threads((int)dev->compute_units);
        m = &ms[CPUBLAS];
        m->name = "cpu-blas per sequence";
        m->run = run_cpublas;
        m->B = B;
        m->lq = (int *)lq;
        m->lk = (int *)lk;
        m->hq = host_filled((size_t)total_q * HQ * HD, 0.01f);
        m->hk = host_filled((size_t)total_k * HKV * HD, 0.02f);
        m->hv = host_filled((size_t)total_k * HKV * HD, 0.03f);
        m->hout = host_filled((size_t)total_q * HQ * HD, 0.0f);
        m->hscores = host_filled((size_t)max_q * max_k, 0.0f);
        m->ok = m->hq && m->hk && m->hv && m->hout && m->hscores;
    }
#endif
    clFinish(dev->queue);

    int failed = 0;
    for (int round = -1; round < ROUNDS; round++)   /* round -1 warms up (builds, scratch) */
        for (int i = 0; i < N; i++) {
            m = &ms[i];
            if (!m->run || !m->ok)
                continue;
            const double t0 = bench_now();
            clattn_status st = m->run(m);
            clFinish(dev->queue);
            const double t = bench_now() - t0;
            if (st != CLATTN_SUCCESS) {
                printf("  %s failed: %s\n", m->name, clattn_context_last_error(ctx));
                m->ok = 0;
                failed = 1;
            } else if (round >= 0) {
                m->t[round] = t;
            }
        }
    double med[N] = {0};
    printf("  %-20s %10s %10s %12s %10s\n", "method", "median ms", "K/V GB/s", "tokens/s", "vs paged");
    for (int i = 0; i < N; i++) {
        m = &ms[i];
        if (!m->run) {
            continue;
        }
        if (!m->ok) {
            printf("  %-20s %10s (could not allocate or run)\n", m->name, "-");
            continue;
        }
        med[i] = bench_median(m->t, ROUNDS);
        /* uniform reads its own (equal) bytes; the others need the real lengths' */
        const double bytes = i == UNIFORM ? (double)B * mean_k * 2.0 * (double)krow : kv_bytes;
        const double toks = i == UNIFORM ? (double)B * mean_q : (double)total_q;
        printf("  %-20s %10.2f %10.2f %12.0f %9.2fx\n", m->name, med[i] * 1e3, bytes / med[i] / 1e9,
               toks / med[i], med[PAGED] > 0 ? med[i] / med[PAGED] : 0.0);
    }
    if (med[PAGED] > 0 && med[UNIFORM] > 0) {
        const double uni_gbps = (double)B * mean_k * 2.0 * (double)krow / med[UNIFORM];
        printf("  paged GB/s / uniform dense GB/s: %.2f\n", kv_bytes / med[PAGED] / uni_gbps);
    }
    for (int i = 0; i < N; i++)
        release_method(&ms[i]);
    free(cu_q);
    free(table);
    free(ordered);
    free(perm);
    return failed;
}

/* Ragged prefill with no prefix (packed keys, cu_seqlens_k = cu_seqlens_q) against the dense call on
   the same uniform batch: what raggedness costs. */
static int ragged_vs_dense(const bench_device *dev, clattn_context *ctx, int B, int L)
{
    const size_t qrow = (size_t)HQ * HD * 4, krow = (size_t)HKV * HD * 4, n = (size_t)B * L;
    int *cu = calloc((size_t)B + 1, sizeof(int));
    for (int b = 0; b < B; b++)
        cu[b + 1] = cu[b] + L;
    method r = {0}, d = {0};
    r.ctx = d.ctx = ctx;
    r.run = run_varlen;
    r.vdesc.batch = B;
    r.vdesc.heads_q = HQ;
    r.vdesc.heads_kv = HKV;
    r.vdesc.head_dim = HD;
    r.vdesc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    r.vdesc.total_q = r.vdesc.total_k = (int)n;
    r.vdesc.max_seqlen_q = r.vdesc.max_seqlen_k = L;
    r.vdesc.cu_seqlens_q = ints(dev, cu, (size_t)B + 1);
    r.vdesc.cu_seqlens_k = ints(dev, cu, (size_t)B + 1);
    d.run = run_dense;
    d.desc = dense_desc(B, L, L);
    method *both[2] = {&r, &d};
    for (int i = 0; i < 2; i++) {
        both[i]->q = filled(dev, n * qrow, 0.01f);
        both[i]->k = filled(dev, n * krow, 0.02f);
        both[i]->v = filled(dev, n * krow, 0.03f);
        both[i]->out = filled(dev, n * qrow, 0.0f);
    }
    clFinish(dev->queue);
    int failed = 0;
    for (int round = -1; round < ROUNDS; round++)
        for (int i = 0; i < 2; i++) {
            const double t0 = bench_now();
            clattn_status st = both[i]->run(both[i]);
            clFinish(dev->queue);
            if (st != CLATTN_SUCCESS) {
                printf("  failed: %s\n", clattn_context_last_error(ctx));
                failed = 1;
                round = ROUNDS;
                break;
            }
            if (round >= 0)
                both[i]->t[round] = bench_now() - t0;
        }
    if (!failed) {
        const double tr = bench_median(r.t, ROUNDS), td = bench_median(d.t, ROUNDS);
        printf("\nragged prefill, %d sequences of %d tokens (causal), no prefix: ragged %.2f ms, dense "
               "%.2f ms: ragged / dense %.3f\n", B, L, tr * 1e3, td * 1e3, tr / td);
    }
    release_method(&r);
    release_method(&d);
    free(cu);
    return failed;
}

int bench_serving_entry(const bench_device *dev, const bench_options *opt)
{
    clattn_context *ctx;
    if (clattn_context_create_from_queue(dev->queue, &ctx) != CLATTN_SUCCESS) {
        printf("serving: no context\n");
        return -1;
    }
    if (opt->no_tuning)
        clattn_context_set_tuning(ctx, 0);
    const int quick = opt->quick;
    bench_serving_batch batch;
    bench_serving_decode(quick, &batch);
    const int B = batch.B;
    const int *lq = batch.lq, *lk = batch.lk;
    printf("\nserving steps (Hq %d, Hkv %d, d %d, f32, block_size %d, bottom-right causal; %d rounds, "
           "medians)\n", HQ, HKV, HD, BS, ROUNDS);
    int failed = scenario(dev, ctx, "decode", B, lq, lk, 1);
    /* chunked prefill: 8 sequences add 512 (128) tokens on prefixes of mixed lengths */
    static const int prefixes[8] = {0, 300, 1000, 2500, 64, 4000, 700, 1500};
    const int chunk = quick ? 128 : 512;
    int pq[8], pk[8];
    for (int b = 0; b < 8; b++) {
        pq[b] = chunk;
        pk[b] = (quick ? prefixes[b] / 4 : prefixes[b]) + chunk;
    }
    failed |= scenario(dev, ctx, "chunked prefill", 8, pq, pk, 1);
    failed |= ragged_vs_dense(dev, ctx, 8, chunk);
    clattn_context_release(ctx);
    return failed ? -1 : 0;
}
