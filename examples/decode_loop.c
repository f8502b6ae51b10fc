/* A serving loop over a paged KV cache: four sequences with different prompt lengths are prefilled
 * in one ragged batch, then decoded one token per sequence per step, as vLLM-style engines do.
 *
 * The cache is a pool of fixed-size blocks on the device (k_cache, v_cache [num_blocks, block_size,
 * Hkv, d]); the host owns the bookkeeping: a free list of blocks, each sequence's block_table row
 * and its length, uploaded every step. Per step: project the new tokens to q/k/v, write their K/V
 * into their cache slots (clattn_reshape_and_cache), run clattn_attention_varlen over the packed
 * queries, then feed each sequence's output back as its next token. The "model" is one attention
 * layer with random weights and no RoPE, MLP or sampling: enough to make the data plausible.
 * Every step is checked against clattn_attention_varlen_reference on a host mirror of the cache.
 *
 * Exit status: 0 matched, 1 mismatch or error, 77 no OpenCL device. */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

enum {
    B = 4,                    /* sequences served together */
    HQ = 8, HKV = 2, D = 64,  /* grouped-query attention: 4 query heads share each KV head */
    E = HQ * D,               /* model width: one token's q (and out) row */
    KV = HKV * D,             /* one token's k (or v) row, as the cache stores it per slot */
    BLOCK = 16,               /* tokens per cache block (a power of two) */
    NUM_BLOCKS = 16,          /* the pool, shared by all sequences */
    MAX_BLOCKS = 8,           /* block_table columns: at most 128 tokens per sequence */
    STEPS = 8,                /* decode steps after the prefill */
    MAX_NEW = 72              /* new tokens one step may carry (the prefill's 65) */
};
/* Sequences 1 and 3 cross a block boundary while decoding (at lengths 17 and 49): each takes a
   fresh block from the pool then. */
static const int prompt_len[B] = {5, 14, 1, 45};

static void fill(float *x, size_t n, float scale, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = scale * ((float)(*state >> 8) / 8388608.0f - 1.0f);
    }
}

/* y[rows] = w[rows, cols] · x[cols] */
static void matvec(const float *w, int rows, int cols, const float *x, float *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0.0;
        for (int c = 0; c < cols; c++)
            s += (double)w[(size_t)r * cols + c] * x[c];
        y[r] = (float)s;
    }
}

/* The host's view of the cache. Entries of block_table past a sequence's length are never read. */
typedef struct {
    int free_ids[NUM_BLOCKS], n_free;
    int block_table[B * MAX_BLOCKS];
    int seqlen[B];
} kv_pool;

/* Reserves the slot of sequence b's next token, taking a block from the free list when the token
   starts a new block; -1 when the pool or the table row is full (a real engine would preempt). */
static int append_slot(kv_pool *p, int b)
{
    int pos = p->seqlen[b], *row = &p->block_table[b * MAX_BLOCKS];
    if (pos % BLOCK == 0) {
        if (p->n_free == 0 || pos / BLOCK >= MAX_BLOCKS)
            return -1;
        row[pos / BLOCK] = p->free_ids[--p->n_free];
    }
    p->seqlen[b]++;
    return row[pos / BLOCK] * BLOCK + pos % BLOCK;   /* slot = block_id*block_size + offset */
}

static float wq[E * E], wk[KV * E], wv[KV * E], wo[E * E];
static float x_new[MAX_NEW * E], q_new[MAX_NEW * E], k_new[MAX_NEW * KV], v_new[MAX_NEW * KV];
static float out[MAX_NEW * E], ref[MAX_NEW * E], last_x[B * E];
static float k_mirror[NUM_BLOCKS * BLOCK * KV], v_mirror[NUM_BLOCKS * BLOCK * KV];

#define CL_CHECK(call)                                                                       \
    do {                                                                                     \
        cl_int e_ = (call);                                                                  \
        if (e_ != CL_SUCCESS) {                                                              \
            fprintf(stderr, "%s: OpenCL error %d\n", #call, e_);                             \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)
#define CLATTN_CHECK(call)                                                                   \
    do {                                                                                     \
        clattn_status s_ = (call);                                                           \
        if (s_ != CLATTN_SUCCESS) {                                                          \
            fprintf(stderr, "%s: %s: %s\n", #call, clattn_status_string(s_),                 \
                    clattn_context_last_error(ctx));                                         \
            rc = s_ == CLATTN_UNSUPPORTED ? 77 : 1;                                          \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)

int main(void)
{
    unsigned seed = 5;
    fill(wq, E * E, 1.0f / sqrtf(E), &seed);
    fill(wk, KV * E, 1.0f / sqrtf(E), &seed);
    fill(wv, KV * E, 1.0f / sqrtf(E), &seed);
    fill(wo, E * E, 1.0f / sqrtf(E), &seed);

    kv_pool pool = {.n_free = NUM_BLOCKS};
    for (int i = 0; i < NUM_BLOCKS; i++)   /* popped from the end: ids need not be in order, and */
        pool.free_ids[i] = i;              /* they interleave between sequences as they grow */
    int slots[MAX_NEW], cu_seqlens_q[B + 1] = {0};

    /* Step 0's new tokens are the prompts (random embeddings), packed sequence after sequence. */
    int n_new = 0;
    for (int b = 0; b < B; b++) {
        fill(&x_new[(size_t)n_new * E], (size_t)prompt_len[b] * E, 1.0f, &seed);
        n_new += prompt_len[b];
        cu_seqlens_q[b + 1] = n_new;
    }

    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_status_string(st));
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    printf("device: %s\n", clattn_context_device_name(ctx));
    cl_command_queue queue = clattn_context_queue(ctx);

    /* The problem's fixed part; total_q and the max_seqlen_* change every step. */
    clattn_varlen_desc desc = {0};
    desc.batch = B;
    desc.heads_q = HQ;
    desc.heads_kv = HKV;
    desc.head_dim = D;
    desc.dtype = CLATTN_F32;
    desc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;   /* new queries sit at the end of their sequence */
    desc.block_size = BLOCK;
    desc.num_blocks = NUM_BLOCKS;
    desc.max_blocks_per_seq = MAX_BLOCKS;

    /* Device buffers, sized once for the largest step (the prefill) and reused by every step; the
       first seven are uploaded each step from the host arrays beside them. */
    enum { NBUF = 10, NUP = 7 };
    const void *host_src[NUP] = {q_new, k_new, v_new, slots, cu_seqlens_q, pool.seqlen,
                                 pool.block_table};
    const size_t bytes[NBUF] = {sizeof q_new, sizeof k_new, sizeof v_new, sizeof slots,
                                sizeof cu_seqlens_q, sizeof pool.seqlen, sizeof pool.block_table,
                                sizeof out, sizeof k_mirror, sizeof v_mirror};
    cl_mem buf[NBUF] = {0};
    int rc = 1;
    for (int i = 0; i < NBUF; i++) {
        cl_int err;
        buf[i] = clCreateBuffer(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE, bytes[i], NULL,
                                &err);
        CL_CHECK(err);
    }
    cl_mem d_q = buf[0], d_k_new = buf[1], d_v_new = buf[2], d_slots = buf[3], d_out = buf[7];
    cl_mem d_k_cache = buf[8], d_v_cache = buf[9];
    desc.cu_seqlens_q = buf[4];
    desc.seqlens_k = buf[5];
    desc.block_table = buf[6];

    for (int step = 0; step <= STEPS; step++) {
        /* Bookkeeping first: each new token gets a slot, which may open a new block. */
        int max_q = 0, max_k = 0;
        for (int b = 0; b < B; b++) {
            for (int t = cu_seqlens_q[b]; t < cu_seqlens_q[b + 1]; t++)
                if ((slots[t] = append_slot(&pool, b)) < 0) {
                    fprintf(stderr, "step %d: KV cache pool exhausted\n", step);
                    goto done;
                }
            const int lq = cu_seqlens_q[b + 1] - cu_seqlens_q[b];
            max_q = lq > max_q ? lq : max_q;
            max_k = pool.seqlen[b] > max_k ? pool.seqlen[b] : max_k;
        }
        desc.total_q = n_new;
        desc.max_seqlen_q = max_q;   /* sizes the launch: 1 when decoding */
        desc.max_seqlen_k = max_k;   /* sizes the key splits; a sequence longer than it (with
                                        check_indices 0) would get NaN rows, so keep it current */

        /* The layer's projections (on the host here; a real model runs them on the device). The
           host mirror of the cache is written as reshape_and_cache will write the device's. */
        for (int t = 0; t < n_new; t++) {
            matvec(wq, E, E, &x_new[(size_t)t * E], &q_new[(size_t)t * E]);
            matvec(wk, KV, E, &x_new[(size_t)t * E], &k_new[(size_t)t * KV]);
            matvec(wv, KV, E, &x_new[(size_t)t * E], &v_new[(size_t)t * KV]);
            memcpy(&k_mirror[(size_t)slots[t] * KV], &k_new[(size_t)t * KV], sizeof(float) * KV);
            memcpy(&v_mirror[(size_t)slots[t] * KV], &v_new[(size_t)t * KV], sizeof(float) * KV);
        }

        /* Non-blocking uploads of only what this step uses: the queue is in order, and the host
           arrays are not touched again before the blocking read of out, which waits for them. */
        const size_t used[NUP] = {sizeof(float) * n_new * E, sizeof(float) * n_new * KV,
                                  sizeof(float) * n_new * KV, sizeof(int) * n_new,
                                  sizeof cu_seqlens_q, sizeof pool.seqlen, sizeof pool.block_table};
        for (int i = 0; i < NUP; i++)
            CL_CHECK(clEnqueueWriteBuffer(queue, buf[i], CL_FALSE, 0, used[i], host_src[i], 0, NULL,
                                          NULL));

        /* The new K/V go into the cache before attention reads it: each token sees itself.
           check_indices stays 0: the tables come from our own allocator, and checking them costs
           a blocking read per call (the kernel never reads outside the buffers either way). */
        CLATTN_CHECK(clattn_reshape_and_cache(ctx, &desc, n_new, d_slots, d_k_new, d_v_new,
                                              d_k_cache, d_v_cache));
        CLATTN_CHECK(clattn_attention_varlen(ctx, &desc, d_q, d_k_cache, d_v_cache, d_out, NULL));
        CL_CHECK(clEnqueueReadBuffer(queue, d_out, CL_TRUE, 0, sizeof(float) * n_new * E, out, 0,
                                     NULL, NULL));

        /* The same problem on the CPU: the host tables (the device handles NULL: a desc carries
           one set or the other) and the host mirror of the cache. */
        clattn_varlen_desc host = desc;
        host.cu_seqlens_q = host.seqlens_k = host.block_table = NULL;
        host.cu_seqlens_q_host = cu_seqlens_q;
        host.seqlens_k_host = pool.seqlen;
        host.block_table_host = pool.block_table;
        char err[256];
        if (clattn_attention_varlen_reference(&host, q_new, k_mirror, v_mirror, ref, NULL, err,
                                              sizeof err) != CLATTN_SUCCESS) {
            fprintf(stderr, "reference: %s\n", err);
            goto done;
        }
        double max_err = 0.0, max_ref = 0.0;
        for (size_t i = 0; i < (size_t)n_new * E; i++) {
            const double e = fabs((double)out[i] - ref[i]);
            max_err = e > max_err || isnan(e) ? e : max_err;   /* not fmax: it drops NaN */
            max_ref = fmax(max_ref, fabs((double)ref[i]));
        }
        const int ok = max_err <= 1e-4 * fmax(1.0, max_ref);   /* false for NaN */
        printf("step %d (%-8s %2d queries) lengths %2d %2d %2d %2d, %d/%d blocks used: "
               "max |out - reference| = %.2e: %s\n", step, step ? "decode," : "prefill,", n_new,
               pool.seqlen[0], pool.seqlen[1], pool.seqlen[2], pool.seqlen[3],
               NUM_BLOCKS - pool.n_free, NUM_BLOCKS, max_err, ok ? "OK" : "MISMATCH");
        if (!ok)
            goto done;

        /* Each sequence's next token. The rest of the model (MLP, LM head, sampling, embedding)
           is stood in for by a residual output projection of its last row and an RMS norm. Token
           b goes to row b of x_new, never a row still to be read (sequence b' > b ends at a row
           >= b'). */
        for (int b = 0; b < B; b++) {
            const int last = cu_seqlens_q[b + 1] - 1;
            float *x = &x_new[(size_t)b * E], *res = &last_x[(size_t)b * E];
            if (step == 0)
                memcpy(res, &x_new[(size_t)last * E], sizeof(float) * E);
            matvec(wo, E, E, &out[(size_t)last * E], x);
            double ss = 0.0;
            for (int i = 0; i < E; i++) {
                x[i] += res[i];
                ss += (double)x[i] * x[i];
            }
            for (int i = 0; i < E; i++)
                x[i] /= (float)sqrt(ss / E + 1e-6);
            memcpy(res, x, sizeof(float) * E);
            cu_seqlens_q[b + 1] = b + 1;   /* decoding: one query per sequence */
        }
        n_new = B;
    }
    rc = 0;
done:
    clFinish(queue);   /* no upload may still be reading host memory past this point */
    for (int i = 0; i < NBUF; i++)
        if (buf[i])
            clReleaseMemObject(buf[i]);
    clattn_context_release(ctx);
    return rc;
}
