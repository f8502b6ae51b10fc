/* Ragged batches and the paged KV cache (clattn_attention_varlen and friends): every result against
 * the double-precision reference of each sequence as a dense problem (clattn_attention_varlen_reference,
 * which gathers the sequence and calls clattn_attention_reference), within the dense tolerances
 * (testutil.h), over batches of 1..17 sequences mixing lengths 0, 1 and odd sizes, packed keys and
 * block sizes 1, 16 and 256 with shuffled tables and a prefix shared by two sequences, GQA, F32,
 * F16 and BF16, causal modes, the variants and int8 K/V, split-KV decode, host and device entry
 * points. Also: the answer equals the dense call's on the same sequence; clattn_reshape_and_cache
 * against a host-built cache; corrupted tables give the documented rows (never a crash) and the
 * checking mode names the first bad entry; bad arguments of every entry point.
 */
#include "testutil.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAXB 32

typedef struct vcase {
    int B, Hq, Hkv, d, dv;
    clattn_dtype dtype;
    clattn_causal causal;
    int block_size;             /* 0: packed keys */
    int lq[MAXB], lk[MAXB];     /* per sequence; lk includes the new tokens (bottom-right) */
    int share_prefix;           /* paged: sequence 1 reads sequence 0's first blocks */
    int window, window_left, window_right;
    float softcap;
    int alibi, sinks, kv_int8;
    int use_buffers;            /* clattn_attention_varlen on cl_mem, else the _host call */
    int check_indices;
    uint64_t seed;
} vcase;

/* Everything a case builds: the desc (host tables set), its tensors and the reference. */
typedef struct vdata {
    clattn_varlen_desc desc;
    int *cu_q, *cu_k, *seqlens, *table;
    void *q, *k, *v;            /* q in dtype; k, v in dtype or int8 (the cache when paged) */
    float *ks, *vs;             /* int8 scales */
    float alibi[64], sinks[64];
    size_t nq, nk, nv, no;      /* elements */
} vdata;

static void vdata_free(vdata *x)
{
    free(x->cu_q);
    free(x->cu_k);
    free(x->seqlens);
    free(x->table);
    free(x->q);
    free(x->k);
    free(x->v);
    free(x->ks);
    free(x->vs);
}

static void case_string(const vcase *c, char *buf, size_t len)
{
    static const char *dt[] = {"F32", "F16", "BF16"}, *cm[] = {"none", "BR", "TL"};
    int at = snprintf(buf, len, "B=%d Hq=%d Hkv=%d d=%d dv=%d %s causal=%s %s%d%s%s%s%s%s%s lens",
                      c->B, c->Hq, c->Hkv, c->d, c->dv, dt[c->dtype], cm[c->causal],
                      c->block_size ? "block=" : "packed", c->block_size,
                      c->share_prefix ? " shared-prefix" : "", c->window ? " window" : "",
                      c->softcap > 0 ? " softcap" : "", c->alibi ? " alibi" : "",
                      c->sinks ? " sinks" : "", c->kv_int8 ? " int8" : "");
    for (int b = 0; b < c->B && at > 0 && (size_t)at < len; b++)
        at += snprintf(buf + at, len - (size_t)at, " %d/%d", c->lq[b], c->lk[b]);
    if (at > 0 && (size_t)at < len)
        snprintf(buf + at, len - (size_t)at, " %s", c->use_buffers ? "buffers" : "host");
}

/* Builds the tables and random tensors of c. Paged: each sequence's blocks are drawn from a shuffled
   pool (plus spare blocks no one uses), unused table entries hold garbage the kernel must not read. */
static void build(const vcase *c, vdata *x)
{
    memset(x, 0, sizeof *x);
    tu_rng r;
    tu_rng_seed(&r, c->seed);
    clattn_varlen_desc *d = &x->desc;
    d->batch = c->B;
    d->heads_q = c->Hq;
    d->heads_kv = c->Hkv;
    d->head_dim = c->d;
    d->head_dim_v = c->dv;
    d->dtype = c->dtype;
    d->causal = c->causal;
    d->window = c->window;
    d->window_left = c->window_left;
    d->window_right = c->window_right;
    d->softcap = c->softcap;
    d->kv_storage = c->kv_int8 ? CLATTN_KV_INT8 : CLATTN_KV_SAME;
    d->check_indices = c->check_indices;
    for (int h = 0; h < c->Hq; h++) {
        x->alibi[h] = exp2f(-8.0f * (float)(h + 1) / (float)c->Hq);
        x->sinks[h] = (float)tu_rng_normal(&r);
    }
    d->alibi_slopes = c->alibi ? x->alibi : NULL;
    d->sinks = c->sinks ? x->sinks : NULL;
    x->cu_q = tu_alloc(((size_t)c->B + 1) * sizeof(int));
    int total_q = 0, max_q = 0, total_k = 0, max_k = 0;
    x->cu_q[0] = 0;
    for (int b = 0; b < c->B; b++) {
        total_q += c->lq[b];
        x->cu_q[b + 1] = total_q;
        max_q = c->lq[b] > max_q ? c->lq[b] : max_q;
        total_k += c->lk[b];
        max_k = c->lk[b] > max_k ? c->lk[b] : max_k;
    }
    d->total_q = total_q;
    d->max_seqlen_q = max_q + (c->seed % 3 == 0);   /* a bound, not always tight */
    d->max_seqlen_k = max_k;
    d->cu_seqlens_q_host = x->cu_q;
    size_t kv_rows;
    if (!c->block_size) {
        x->cu_k = tu_alloc(((size_t)c->B + 1) * sizeof(int));
        x->cu_k[0] = 0;
        for (int b = 0; b < c->B; b++)
            x->cu_k[b + 1] = x->cu_k[b] + c->lk[b];
        d->total_k = total_k;
        d->cu_seqlens_k_host = x->cu_k;
        kv_rows = (size_t)total_k;
    } else {
        const int bs = c->block_size;
        int max_blocks = (max_k + bs - 1) / bs + 1;   /* one spare column of garbage */
        int used = 0;
        for (int b = 0; b < c->B; b++)
            used += (c->lk[b] + bs - 1) / bs;
        const int nblocks = used + 3;                 /* spare blocks no sequence reads */
        int *pool = tu_alloc((size_t)nblocks * sizeof(int));
        for (int i = 0; i < nblocks; i++)
            pool[i] = i;
        for (int i = nblocks - 1; i > 0; i--) {
            int j = tu_rng_below(&r, i + 1), t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
        }
        x->seqlens = tu_alloc((size_t)c->B * sizeof(int));
        x->table = tu_alloc((size_t)c->B * (size_t)max_blocks * sizeof(int));
        int next = 0;
        for (int b = 0; b < c->B; b++) {
            x->seqlens[b] = c->lk[b];
            const int nb = (c->lk[b] + bs - 1) / bs;
            for (int i = 0; i < max_blocks; i++)
                x->table[b * max_blocks + i] = i < nb ? pool[next++] : (i % 2 ? -5 : INT_MAX);
        }
        if (c->share_prefix && c->B >= 2) {
            const int n0 = (c->lk[0] + bs - 1) / bs, n1 = (c->lk[1] + bs - 1) / bs;
            for (int i = 0; i + 1 < n0 && i + 1 < n1; i++)
                x->table[max_blocks + i] = x->table[i];
        }
        free(pool);
        d->block_size = bs;
        d->num_blocks = nblocks;
        d->max_blocks_per_seq = max_blocks;
        d->seqlens_k_host = x->seqlens;
        d->block_table_host = x->table;
        kv_rows = (size_t)nblocks * (size_t)bs;
    }
    x->nq = (size_t)total_q * c->Hq * c->d;
    x->no = (size_t)total_q * c->Hq * c->dv;
    x->nk = kv_rows * c->Hkv * c->d;
    x->nv = kv_rows * c->Hkv * c->dv;
    x->q = tu_alloc(x->nq * 4);
    tu_fill_normal(x->q, c->dtype, x->nq, 1.0f, &r);
    void *kf = tu_alloc(x->nk * 4), *vf = tu_alloc(x->nv * 4);
    tu_fill_normal(kf, c->dtype, x->nk, 1.0f, &r);
    tu_fill_normal(vf, c->dtype, x->nv, 1.0f, &r);
    if (!c->kv_int8) {
        x->k = kf;
        x->v = vf;
        return;
    }
    /* int8: each row of the packed tensor or cache quantized on its own, as the quantizer does */
    clattn_attention_desc rows = {0};
    rows.batch = 1;
    rows.heads_q = c->Hkv;
    rows.seq_q = 1;
    rows.seq_kv = (int)kv_rows;
    rows.head_dim = c->d;
    rows.head_dim_v = c->dv;
    rows.dtype = c->dtype;
    rows.layout = CLATTN_LAYOUT_BSHD;
    x->k = tu_alloc(x->nk);
    x->v = tu_alloc(x->nv);
    x->ks = tu_alloc(kv_rows * c->Hkv * sizeof(float));
    x->vs = tu_alloc(kv_rows * c->Hkv * sizeof(float));
    assert_int_equal(clattn_quantize_kv_host(&rows, CLATTN_KV_KEYS, kf, x->k, x->ks), CLATTN_SUCCESS);
    assert_int_equal(clattn_quantize_kv_host(&rows, CLATTN_KV_VALUES, vf, x->v, x->vs), CLATTN_SUCCESS);
    free(kf);
    free(vf);
    d->k_scale_host = x->ks;
    d->v_scale_host = x->vs;
}

static cl_mem upload(clattn_context *ctx, const void *src, size_t bytes)
{
    if (!bytes)
        return NULL;
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_cl_context(ctx), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                              bytes, (void *)src, &err);
    assert_non_null(m);
    return m;
}

static void download(clattn_context *ctx, cl_mem m, void *dst, size_t bytes)
{
    if (m && bytes)
        assert_int_equal(clEnqueueReadBuffer(clattn_context_queue(ctx), m, CL_TRUE, 0, bytes, dst, 0,
                                             NULL, NULL), CL_SUCCESS);
}

/* The device buffers of a built case; released by release_all. */
typedef struct vbufs {
    cl_mem q, k, v, out, lse, cu_q, cu_k, seqlens, table, ks, vs;
} vbufs;

/* Under oclgrind (--oclgrind) every buffer is kept to the end of the run (testutil.h, tu_keep). */
static tu_keep *keep_all;

static void drop(cl_mem m)
{
    if (keep_all)
        tu_keep_add(keep_all, m);
    clReleaseMemObject(m);
}

static void release_all(vbufs *m)
{
    cl_mem *all = (cl_mem *)m;
    for (size_t i = 0; i < sizeof *m / sizeof(cl_mem); i++)
        if (all[i]) {
            if (keep_all)
                tu_keep_add(keep_all, all[i]);
            clReleaseMemObject(all[i]);
        }
    memset(m, 0, sizeof *m);
}

/* Runs x on the device (as c says), into out (dtype) and lse. */
static clattn_status run_device(clattn_context *ctx, const vcase *c, const vdata *x, void *out,
                                float *lse)
{
    if (!c->use_buffers)
        return clattn_attention_varlen_host(ctx, &x->desc, x->q, x->k, x->v, out, lse);
    clattn_tensor_sizes sz;
    size_t sb;
    assert_int_equal(clattn_varlen_sizes(&x->desc, &sz, &sb), CLATTN_SUCCESS);
    vbufs m = {0};
    const clattn_varlen_desc *h = &x->desc;
    m.q = upload(ctx, x->q, sz.q);
    m.k = upload(ctx, x->k, sz.k);
    m.v = upload(ctx, x->v, sz.v);
    m.out = upload(ctx, out, sz.out);
    m.lse = upload(ctx, lse, sz.lse);
    m.cu_q = upload(ctx, h->cu_seqlens_q_host, ((size_t)h->batch + 1) * sizeof(int));
    if (h->cu_seqlens_k_host)
        m.cu_k = upload(ctx, h->cu_seqlens_k_host, ((size_t)h->batch + 1) * sizeof(int));
    if (h->seqlens_k_host) {
        m.seqlens = upload(ctx, h->seqlens_k_host, (size_t)h->batch * sizeof(int));
        m.table = upload(ctx, h->block_table_host,
                         (size_t)h->batch * (size_t)h->max_blocks_per_seq * sizeof(int));
    }
    m.ks = upload(ctx, h->k_scale_host, sb);
    m.vs = upload(ctx, h->v_scale_host, sb);
    clattn_varlen_desc d = *h;
    d.cu_seqlens_q_host = d.cu_seqlens_k_host = d.seqlens_k_host = d.block_table_host = NULL;
    d.k_scale_host = d.v_scale_host = NULL;
    d.cu_seqlens_q = m.cu_q;
    d.cu_seqlens_k = m.cu_k;
    d.seqlens_k = m.seqlens;
    d.block_table = m.table;
    d.k_scale = m.ks;
    d.v_scale = m.vs;
    clattn_status st = clattn_attention_varlen(ctx, &d, m.q, m.k, m.v, m.out, m.lse);
    /* read back even after a failure: the buffers then hold what was uploaded, unless the call
       wrote them, which a refused call must not */
    download(ctx, m.out, out, sz.out);
    download(ctx, m.lse, lse, sz.lse);
    release_all(&m);
    return st;
}

/* The reference of x in F32 on the inputs widened to float (int8 K/V stay int8), so that the F16
   and BF16 tolerances see it before its rounding. */
static void run_reference(const vcase *c, const vdata *x, float *out, float *lse)
{
    clattn_varlen_desc d = x->desc;
    float *qf = tu_widen(x->q, c->dtype, x->nq);
    float *kf = c->kv_int8 ? NULL : tu_widen(x->k, c->dtype, x->nk);
    float *vf = c->kv_int8 ? NULL : tu_widen(x->v, c->dtype, x->nv);
    d.dtype = CLATTN_F32;
    char err[256];
    clattn_status st = clattn_attention_varlen_reference(&d, qf, c->kv_int8 ? x->k : kf,
                                                         c->kv_int8 ? x->v : vf, out, lse, err,
                                                         sizeof err);
    if (st != CLATTN_SUCCESS)
        fail_msg("reference: %s", err);
    free(qf);
    free(kf);
    free(vf);
}

/* c on the device against the reference; fails the test with the case and the worst element. */
static void check_case(clattn_context *ctx, const vcase *c)
{
    vdata x;
    build(c, &x);
    char name[512];
    case_string(c, name, sizeof name);
    const size_t nl = (size_t)x.desc.total_q * c->Hq;
    void *out = tu_alloc(x.no * 4);
    float *lse = tu_alloc(nl * 4), *ref_out = tu_alloc(x.no * 4), *ref_lse = tu_alloc(nl * 4);
    clattn_status st = run_device(ctx, c, &x, out, lse);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: status %d: %s", name, (int)st, clattn_context_last_error(ctx));
    run_reference(c, &x, ref_out, ref_lse);
    tu_diff dout, dlse;
    const double tol = tu_out_tolerance(c->dtype, ref_out, x.no, 1.0);
    if (!tu_compare_out(c->dtype, out, ref_out, x.no, tol, &dout))
        fail_msg("%s: out element %zu: %g, reference %g (max error %g, tolerance %g)", name, dout.worst,
                 dout.got, dout.ref, dout.err, dout.tol);
    if (!tu_compare_rel(lse, ref_lse, nl, TU_LSE_REL, &dlse))
        fail_msg("%s: lse element %zu: %g, reference %g", name, dlse.worst, dlse.got, dlse.ref);
    free(out);
    free(lse);
    free(ref_out);
    free(ref_lse);
    vdata_free(&x);
}

/* lengths for B sequences mixing 0, 1, odd and larger sizes; lq <= lk unless allow_more_q */
static void mixed_lengths(vcase *c, tu_rng *r, int max_len, int decode)
{
    static const int pick[] = {0, 1, 3, 7, 13, 31, 64, 100};
    for (int b = 0; b < c->B; b++) {
        int lk = b % 5 == 0 ? pick[b % 8] : 1 + tu_rng_below(r, max_len);
        int lq = decode ? (lk > 0 || b % 2 ? 1 : 0) : (lk ? 1 + tu_rng_below(r, lk) : b % 3);
        if (b == 1 && !decode)
            lq = lk;          /* a whole prompt: prefill */
        c->lk[b] = lk;
        c->lq[b] = lq;
    }
}

static vcase base_case(int B, int Hq, int Hkv, int d, clattn_dtype dtype, int block_size, uint64_t seed)
{
    vcase c;
    memset(&c, 0, sizeof c);
    c.B = B;
    c.Hq = Hq;
    c.Hkv = Hkv;
    c.d = d;
    c.dv = d;
    c.dtype = dtype;
    c.block_size = block_size;
    c.seed = seed;
    return c;
}

/* The grid: batch sizes 1..17, packed and paged with block sizes 1, 16, 256, GQA, three storage types,
   causal modes, host and device entry points. */
static void test_grid(void **state)
{
    clattn_context *ctx = *state;
    static const int Bs[] = {1, 2, 5, 17};
    static const int blocks[] = {0, 1, 16, 256};
    int n = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int ki = 0; ki < 4; ki++) {
            const int t = bi * 4 + ki;
            const clattn_dtype dtype = (clattn_dtype)(t % 3);
            vcase c = base_case(Bs[bi], t % 2 ? 4 : 6, t % 2 ? 4 : 2, t % 4 == 3 ? 40 : 64, dtype,
                                blocks[ki], 100 + (uint64_t)t);
            c.causal = (clattn_causal)(t % 3);
            c.use_buffers = t % 2;
            c.share_prefix = ki > 0 && bi > 0;
            tu_rng r;
            tu_rng_seed(&r, c.seed);
            mixed_lengths(&c, &r, 90, 0);
            check_case(ctx, &c);
            n++;
        }
    printf("  %d ragged/paged cases within the dense tolerances\n", n);
}

/* Decode and speculative decoding against long, mixed contexts: the keys split (the longest is
   past the split length, so chunks of short sequences are skipped), with F32, F16 and int8 K/V. */
static void keep_plan(void *user, clattn_log_level level, const char *message)
{
    if (level == CLATTN_LOG_PLAN)
        snprintf(user, 2048, "%s", message);
}

static void test_decode_split(void **state)
{
    (void)state;
    char plan[2048] = "";
    clattn_context_options o = {0};
    o.log = keep_plan;
    o.log_user = plan;
    o.log_plans = CLATTN_SWITCH_ON;
    clattn_context *ctx = NULL;
    assert_int_equal(clattn_context_create_with_options(NULL, &o, &ctx), CLATTN_SUCCESS);
    for (int t = 0; t < 4; t++) {
        vcase c = base_case(5, 8, 2, 64, t == 1 ? CLATTN_F16 : CLATTN_F32, t == 3 ? 0 : 16,
                            200 + (uint64_t)t);
        c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
        c.kv_int8 = t == 2;
        c.use_buffers = t != 1;
        const int lens[5] = {5000, 1281, 1793, 0, 3841};   /* just past chunk starts */
        for (int b = 0; b < 5; b++) {
            c.lk[b] = lens[b];
            c.lq[b] = lens[b] ? (t == 3 ? 1 + b % 3 : 1) : 0;   /* t 3: a few draft tokens each */
            if (c.lq[b] > c.lk[b])
                c.lq[b] = c.lk[b];
        }
        check_case(ctx, &c);
        if (!strstr(plan, "keys split"))
            fail_msg("the keys were not split: %s", plan);
    }
    clattn_context_release(ctx);
}

/* The variants per sequence (each sequence's own Lk - Lq aligns them), with int8 K/V. */
static void test_variants(void **state)
{
    clattn_context *ctx = *state;
    for (int t = 0; t < 8; t++) {
        vcase c = base_case(6, 4, 2, 32, t == 4 ? CLATTN_F16 : CLATTN_F32, t % 2 ? 16 : 0,
                            300 + (uint64_t)t);
        c.causal = t % 3 == 1 ? CLATTN_CAUSAL_TOP_LEFT : CLATTN_CAUSAL_BOTTOM_RIGHT;
        c.window = t != 2;
        c.window_left = !c.window ? 0 : t == 3 ? -1 : 5 + t;
        c.window_right = !c.window ? 0 : t == 5 ? 3 : (t == 3 ? 2 : -1);
        c.softcap = t >= 2 ? 2.5f : 0.0f;
        c.alibi = t % 2 == 0;
        c.sinks = t >= 3;
        c.kv_int8 = t == 1 || t == 4;
        c.use_buffers = t % 2;
        if (t == 5)
            c.causal = CLATTN_CAUSAL_NONE;
        if (t == 6) {        /* top-left causal with a right edge, an unbounded left one */
            c.causal = CLATTN_CAUSAL_TOP_LEFT;
            c.window_left = INT_MAX;
            c.window_right = 2;
        }
        if (t == 7) {        /* bottom-right, left edge INT_MAX, right edge 0 */
            c.window_left = INT_MAX;
            c.window_right = 0;
        }
        tu_rng r;
        tu_rng_seed(&r, c.seed);
        mixed_lengths(&c, &r, 60, 0);
        check_case(ctx, &c);
    }
}

/* The ragged answer is the dense call's on each sequence: the same kernels, the same rounding. */
static void test_equals_dense(void **state)
{
    clattn_context *ctx = *state;
    vcase c = base_case(3, 4, 2, 64, CLATTN_F32, 16, 400);
    c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    const int lq[3] = {7, 1, 33}, lk[3] = {40, 19, 33};
    memcpy(c.lq, lq, sizeof lq);
    memcpy(c.lk, lk, sizeof lk);
    vdata x;
    build(&c, &x);
    void *out = tu_alloc(x.no * 4);
    float *lse = tu_alloc((size_t)x.desc.total_q * c.Hq * 4);
    assert_int_equal(run_device(ctx, &c, &x, out, lse), CLATTN_SUCCESS);
    const size_t krow = (size_t)c.Hkv * c.d;
    for (int b = 0; b < c.B; b++) {
        float *kd = tu_alloc((size_t)lk[b] * krow * 4), *vd = tu_alloc((size_t)lk[b] * krow * 4);
        for (int j = 0; j < lk[b]; j++) {
            const int slot = x.table[b * x.desc.max_blocks_per_seq + j / 16] * 16 + j % 16;
            memcpy(kd + (size_t)j * krow, (float *)x.k + (size_t)slot * krow, krow * 4);
            memcpy(vd + (size_t)j * krow, (float *)x.v + (size_t)slot * krow, krow * 4);
        }
        clattn_attention_desc d = {0};
        d.batch = 1;
        d.heads_q = c.Hq;
        d.heads_kv = c.Hkv;
        d.seq_q = lq[b];
        d.seq_kv = lk[b];
        d.head_dim = c.d;
        d.layout = CLATTN_LAYOUT_BSHD;
        d.causal = c.causal;
        float *od = tu_alloc((size_t)lq[b] * c.Hq * c.d * 4), *ld = tu_alloc((size_t)lq[b] * c.Hq * 4);
        const size_t q0 = (size_t)x.cu_q[b];
        assert_int_equal(clattn_attention_host(ctx, &d, (float *)x.q + q0 * c.Hq * c.d, kd, vd, NULL,
                                               od, NULL, ld), CLATTN_SUCCESS);
        tu_diff diff;
        const size_t n = (size_t)lq[b] * c.Hq * c.d;
        assert_true(tu_compare_out(CLATTN_F32, (float *)out + q0 * c.Hq * c.d, od, n,
                                   tu_out_tolerance(CLATTN_F32, od, n, 1.0), &diff));
        for (int h = 0; h < c.Hq; h++)
            for (int i = 0; i < lq[b]; i++) {
                const float a = lse[(size_t)h * x.desc.total_q + q0 + (size_t)i], e = ld[h * lq[b] + i];
                assert_true(fabsf(a - e) <= 1e-5f * fmaxf(1.0f, fabsf(e)));
            }
        free(kd);
        free(vd);
        free(od);
        free(ld);
    }
    free(out);
    free(lse);
    vdata_free(&x);
}

/* clattn_reshape_and_cache against a host-built cache, in F32, F16 and int8: slots anywhere in the
   cache, a padding slot (-1) and slots past the end skipped, nothing else written. */
static void test_reshape_and_cache(void **state)
{
    clattn_context *ctx = *state;
    for (int t = 0; t < 3; t++) {
        const clattn_dtype dtype = t == 1 ? CLATTN_F16 : CLATTN_F32;
        const int int8 = t == 2, Hkv = 3, d = 24, dv = 40, bs = 4, nblocks = 5, ntok = 9;
        const size_t slots_all = (size_t)nblocks * bs, es = int8 ? 1 : clattn_dtype_size(dtype);
        clattn_varlen_desc desc = {0};
        desc.heads_q = 6;
        desc.heads_kv = Hkv;
        desc.head_dim = d;
        desc.head_dim_v = dv;
        desc.dtype = dtype;
        desc.block_size = bs;
        desc.num_blocks = nblocks;
        desc.kv_storage = int8 ? CLATTN_KV_INT8 : CLATTN_KV_SAME;
        const int slots[9] = {7, 0, -1, 19, 20, 1000, 3, 12, INT_MIN};   /* 3 skipped */
        tu_rng r;
        tu_rng_seed(&r, 500 + (uint64_t)t);
        void *kn = tu_alloc((size_t)ntok * Hkv * d * 4), *vn = tu_alloc((size_t)ntok * Hkv * dv * 4);
        tu_fill_normal(kn, dtype, (size_t)ntok * Hkv * d, 1.0f, &r);
        tu_fill_normal(vn, dtype, (size_t)ntok * Hkv * dv, 1.0f, &r);
        /* the caches start as a pattern that must survive where nothing is written */
        const size_t kb = slots_all * Hkv * d * es, vb = slots_all * Hkv * dv * es;
        unsigned char *kc = tu_alloc(kb), *vc = tu_alloc(vb);
        memset(kc, 0x5a, kb);
        memset(vc, 0x5a, vb);
        float *ks = tu_alloc(slots_all * Hkv * 4), *vs = tu_alloc(slots_all * Hkv * 4);
        for (size_t i = 0; i < slots_all * Hkv; i++)
            ks[i] = vs[i] = -3.0f;
        /* the expected caches */
        unsigned char *ek = tu_alloc(kb), *ev = tu_alloc(vb);
        float *eks = tu_alloc(slots_all * Hkv * 4), *evs = tu_alloc(slots_all * Hkv * 4);
        memcpy(ek, kc, kb);
        memcpy(ev, vc, vb);
        memcpy(eks, ks, slots_all * Hkv * 4);
        memcpy(evs, vs, slots_all * Hkv * 4);
        for (int i = 0; i < ntok; i++) {
            if (slots[i] < 0 || (size_t)slots[i] >= slots_all)
                continue;
            for (int h = 0; h < Hkv; h++) {
                const size_t src = (size_t)i * Hkv + h, dst = (size_t)slots[i] * Hkv + h;
                if (!int8) {
                    memcpy(ek + dst * d * es, (char *)kn + src * d * es, d * es);
                    memcpy(ev + dst * dv * es, (char *)vn + src * dv * es, dv * es);
                    continue;
                }
                clattn_attention_desc rows = {0};
                rows.batch = rows.heads_q = rows.seq_q = rows.seq_kv = 1;
                rows.head_dim = d;
                rows.head_dim_v = dv;
                assert_int_equal(clattn_quantize_kv_host(&rows, CLATTN_KV_KEYS, (float *)kn + src * d,
                                                         (signed char *)ek + dst * d, eks + dst), 0);
                assert_int_equal(clattn_quantize_kv_host(&rows, CLATTN_KV_VALUES,
                                                         (float *)vn + src * dv,
                                                         (signed char *)ev + dst * dv, evs + dst), 0);
            }
        }
        cl_mem mslots = upload(ctx, slots, sizeof slots);
        cl_mem mkn = upload(ctx, kn, (size_t)ntok * Hkv * d * clattn_dtype_size(dtype));
        cl_mem mvn = upload(ctx, vn, (size_t)ntok * Hkv * dv * clattn_dtype_size(dtype));
        cl_mem mkc = upload(ctx, kc, kb), mvc = upload(ctx, vc, vb);
        cl_mem mks = int8 ? upload(ctx, ks, slots_all * Hkv * 4) : NULL;
        cl_mem mvs = int8 ? upload(ctx, vs, slots_all * Hkv * 4) : NULL;
        desc.k_scale = mks;
        desc.v_scale = mvs;
        assert_int_equal(clattn_reshape_and_cache(ctx, &desc, ntok, mslots, mkn, mvn, mkc, mvc),
                         CLATTN_SUCCESS);
        download(ctx, mkc, kc, kb);
        download(ctx, mvc, vc, vb);
        assert_memory_equal(kc, ek, kb);
        assert_memory_equal(vc, ev, vb);
        if (int8) {
            download(ctx, mks, ks, slots_all * Hkv * 4);
            download(ctx, mvs, vs, slots_all * Hkv * 4);
            assert_memory_equal(ks, eks, slots_all * Hkv * 4);
            assert_memory_equal(vs, evs, slots_all * Hkv * 4);
            drop(mks);
            drop(mvs);
        }
        drop(mslots);
        drop(mkn);
        drop(mvn);
        drop(mkc);
        drop(mvc);
        free(kn);
        free(vn);
        free(kc);
        free(vc);
        free(ks);
        free(vs);
        free(ek);
        free(ev);
        free(eks);
        free(evs);
    }
}

/* A small paged case whose device tables the tests below corrupt. */
static vcase small_paged(uint64_t seed)
{
    vcase c = base_case(4, 4, 2, 16, CLATTN_F32, 4, seed);
    c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    const int lq[4] = {2, 1, 3, 1}, lk[4] = {9, 5, 12, 3};
    memcpy(c.lq, lq, sizeof lq);
    memcpy(c.lk, lk, sizeof lk);
    c.use_buffers = 1;
    return c;
}

/* Corrupted device tables without the checking mode: never a crash, and the documented rows: a
   sequence with bad keys (a length past the bound, a block id past the cache) is NaN, one with a
   bad query range is not written, the others are right. With the checking mode, each is refused
   naming the entry, and nothing is written. */
static void test_corrupt_tables(void **state)
{
    clattn_context *ctx = *state;
    enum { SEQLEN, BLOCK_ID, NEG_BLOCK, UNSEEN_BLOCK, CU_Q_DOWN, CU_Q_PAST, CASES };
    static const char *names[] = {"seqlens_k[1]", "block_table[2][1]", "block_table[0][0]",
                                  "block_table[2][2]", "cu_seqlens_q[2]", "cu_seqlens_q[4]"};
    for (int kase = 0; kase < CASES; kase++) {
        for (int check = 0; check < 2; check++) {
            vcase c = small_paged(600 + (uint64_t)kase);
            if (kase == UNSEEN_BLOCK)   /* top-left: sequence 2's 3 queries see keys 0..2 only */
                c.causal = CLATTN_CAUSAL_TOP_LEFT;
            vdata x;
            build(&c, &x);
            const int mb = x.desc.max_blocks_per_seq;
            int bad_seq = -1, skipped_seq = -1, skipped_too = -1, skipped_last = -1;
            switch (kase) {
            case SEQLEN: x.seqlens[1] = 1 << 20; bad_seq = 1; break;
            case BLOCK_ID: x.table[2 * mb + 1] = x.desc.num_blocks + 7; bad_seq = 2; break;
            case NEG_BLOCK: x.table[0] = -1; bad_seq = 0; break;
            case UNSEEN_BLOCK: x.table[2 * mb + 2] = -9; bad_seq = 2; break;   /* never read */
            case CU_Q_DOWN:     /* 0 2 0 6 7: sequence 1 runs backwards; 2 and 3 come after it */
                x.cu_q[2] = 0;
                skipped_seq = 1;
                skipped_too = 2;
                skipped_last = 3;
                break;
            case CU_Q_PAST: x.cu_q[4] = x.desc.total_q + 50; skipped_seq = 3; break;
            }
            /* the reference on the uncorrupted tables, for the sequences that must stay right */
            vdata good;
            build(&c, &good);
            const size_t nl = (size_t)x.desc.total_q * c.Hq, row = (size_t)c.Hq * c.dv;
            float *ref_out = tu_alloc(x.no * 4), *ref_lse = tu_alloc(nl * 4);
            run_reference(&c, &good, ref_out, ref_lse);
            float *out = tu_alloc(x.no * 4), *lse = tu_alloc(nl * 4);
            for (size_t i = 0; i < x.no; i++)
                out[i] = 1234.0f;
            for (size_t i = 0; i < nl; i++)
                lse[i] = 1234.0f;
            x.desc.check_indices = check;
            clattn_status st = run_device(ctx, &c, &x, out, lse);
            if (check) {
                assert_int_equal(st, CLATTN_INVALID_ARGUMENT);
                for (size_t i = 0; i < x.no; i++)    /* the device buffers, read back: untouched */
                    assert_true(out[i] == 1234.0f);
                if (!strstr(clattn_context_last_error(ctx), names[kase]))
                    fail_msg("corruption %d: the error does not name %s: %s", kase, names[kase],
                             clattn_context_last_error(ctx));
                /* the host entry point always checks */
                c.use_buffers = 0;
                assert_int_equal(run_device(ctx, &c, &x, out, lse), CLATTN_INVALID_ARGUMENT);
                for (size_t i = 0; i < x.no; i++)
                    assert_true(out[i] == 1234.0f);
            } else {
                assert_int_equal(st, CLATTN_SUCCESS);
                for (int b = 0; b < c.B; b++) {
                    const int q0 = good.cu_q[b], lq = c.lq[b];
                    for (int i = 0; i < lq; i++)
                        for (size_t e = 0; e < row; e++) {
                            const size_t at = (size_t)(q0 + i) * row + e;
                            if (b == bad_seq)
                                assert_true(isnan(out[at]) && isnan(lse[(size_t)q0 + i]));
                            else if (b == skipped_seq || b == skipped_too || b == skipped_last)
                                assert_true(out[at] == 1234.0f && lse[(size_t)q0 + i] == 1234.0f);
                            else if (!(fabsf(out[at] - ref_out[at]) <= 1e-5f * fmaxf(1.0f, fabsf(ref_out[at]))))
                                fail_msg("corruption %d: sequence %d row %d: %g, reference %g", kase,
                                         b, i, (double)out[at], (double)ref_out[at]);
                        }
                }
            }
            free(ref_out);
            free(ref_lse);
            free(out);
            free(lse);
            vdata_free(&x);
            vdata_free(&good);
        }
    }
}

/* Corruption with the keys split (long contexts) and with packed keys: a bad block id in a block
   only a later chunk reads, a skipped sequence (its rows merge to 0 and lse -inf), and packed key
   ranges that are negative, past the end or decreasing: NaN rows and lse for the sequence hit,
   the others right. At d 8 and 16: on a CPU the second is cl/flash_decode.cl's (d a multiple of
   16), the first cl/flash_attention.cl's. */
static void corrupt_split_and_packed(clattn_context *ctx, int d);
static void test_corrupt_split_and_packed(void **state)
{
    corrupt_split_and_packed(*state, 8);
    corrupt_split_and_packed(*state, 16);
}

static void corrupt_split_and_packed(clattn_context *ctx, int d)
{
    enum { SPLIT_BLOCK, SPLIT_SKIP, PACKED_NEG, PACKED_PAST, PACKED_DOWN, CASES };
    enum { REF, NANS, ZEROS };
    for (int kase = 0; kase < CASES; kase++) {
        const int packed = kase >= PACKED_NEG;
        vcase c = base_case(3, 2, 1, d, CLATTN_F32, packed ? 0 : 16, 800 + (uint64_t)kase);
        c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
        c.use_buffers = 1;
        const int lq[3] = {1, 2, 1}, lk[3] = {packed ? 40 : 700, 30, packed ? 25 : 300};
        memcpy(c.lq, lq, sizeof lq);
        memcpy(c.lk, lk, sizeof lk);
        vdata x, good;
        build(&c, &x);
        build(&c, &good);
        int expect[3] = {REF, REF, REF};
        switch (kase) {
        case SPLIT_BLOCK:     /* block 40 of sequence 0: keys 640..655, a later chunk's */
            x.table[40] = 1 << 28;
            expect[0] = NANS;
            break;
        case SPLIT_SKIP:      /* cu_q 0 1 0 4: sequence 1 runs backwards, 2 comes after it */
            x.cu_q[2] = 0;
            expect[1] = expect[2] = ZEROS;
            break;
        case PACKED_NEG: x.cu_k[1] = -3; expect[0] = expect[1] = NANS; break;
        case PACKED_PAST: x.cu_k[3] = x.desc.total_k + 9; expect[2] = NANS; break;
        case PACKED_DOWN: x.cu_k[2] = x.cu_k[1] - 1; expect[1] = expect[2] = NANS; break;
        }
        const size_t nl = (size_t)x.desc.total_q * c.Hq, row = (size_t)c.Hq * c.dv;
        float *ref_out = tu_alloc(x.no * 4), *ref_lse = tu_alloc(nl * 4);
        float *out = tu_alloc(x.no * 4), *lse = tu_alloc(nl * 4);
        run_reference(&c, &good, ref_out, ref_lse);
        for (size_t i = 0; i < x.no; i++)
            out[i] = 1234.0f;
        for (size_t i = 0; i < nl; i++)
            lse[i] = 1234.0f;
        assert_int_equal(run_device(ctx, &c, &x, out, lse), CLATTN_SUCCESS);
        if (keep_all)   /* d 16 grows the scratch that d 8 made: keep the old (testutil.h) */
            tu_keep_scratch(keep_all, ctx);
        for (int b = 0; b < c.B; b++)
            for (int i = 0; i < lq[b]; i++) {
                const size_t t = (size_t)(good.cu_q[b] + i);
                for (int h = 0; h < c.Hq; h++) {
                    const float l = lse[(size_t)h * nl / c.Hq + t];
                    const float r = ref_lse[(size_t)h * nl / c.Hq + t];
                    const int ok = expect[b] == NANS    ? isnan(l)
                                   : expect[b] == ZEROS ? l == -INFINITY
                                                        : fabsf(l - r) <= 1e-5f * fmaxf(1.0f, fabsf(r));
                    if (!ok)
                        fail_msg("corruption %d: sequence %d head %d lse %g (reference %g)", kase, b,
                                 h, (double)l, (double)r);
                }
                for (size_t e = 0; e < row; e++) {
                    const float o = out[t * row + e], r = ref_out[t * row + e];
                    const int ok = expect[b] == NANS    ? isnan(o)
                                   : expect[b] == ZEROS ? o == 0.0f
                                                        : fabsf(o - r) <= 1e-5f * fmaxf(1.0f, fabsf(r));
                    if (!ok)
                        fail_msg("corruption %d: sequence %d: %g (reference %g)", kase, b, (double)o,
                                 (double)r);
                }
            }
        free(ref_out);
        free(ref_lse);
        free(out);
        free(lse);
        vdata_free(&x);
        vdata_free(&good);
    }
}

/* Bad arguments of every entry point: a clear status and message, nothing written. */
static void test_bad_input(void **state)
{
    clattn_context *ctx = *state;
    vcase c = small_paged(700);
    vdata x;
    build(&c, &x);
    float out[4096], lse[256];
    for (size_t i = 0; i < 4096; i++)
        out[i] = 7.0f;
    clattn_varlen_desc d;
#define REFUSE(field_edit, needle)                                                                \
    do {                                                                                          \
        d = x.desc;                                                                               \
        field_edit;                                                                               \
        clattn_status st_ = clattn_attention_varlen_host(ctx, &d, x.q, x.k, x.v, out, lse);       \
        assert_int_equal(st_, CLATTN_INVALID_ARGUMENT);                                           \
        if (!strstr(clattn_context_last_error(ctx), needle))                                      \
            fail_msg("%s: the message does not say %s: %s", #field_edit, needle,                  \
                     clattn_context_last_error(ctx));                                             \
        char err_[512] = "";                                                                      \
        assert_int_equal(clattn_attention_varlen_reference(&d, x.q, x.k, x.v, out, lse, err_,     \
                                                           sizeof err_),                          \
                         CLATTN_INVALID_ARGUMENT);                                                \
        assert_true(err_[0] != '\0');                                                             \
        for (size_t i_ = 0; i_ < 4096; i_++)                                                      \
            assert_true(out[i_] == 7.0f);                                                         \
    } while (0)
    REFUSE(d.block_size = 3, "block_size");
    REFUSE(d.block_size = 512, "block_size");
    REFUSE(d.total_q = -1, "total_q");
    REFUSE(d.max_seqlen_q = -2, "max_seqlen_q");
    REFUSE(d.num_blocks = -1, "num_blocks");
    REFUSE(d.total_k = 5, "total_k");
    REFUSE(d.check_indices = 2, "check_indices");
    REFUSE(d.heads_kv = 3, "heads_kv");
    REFUSE(d.head_dim = 0, "head_dim");
    REFUSE(d.softcap = -1.0f, "softcap");
    REFUSE((d.window = 1, d.window_left = -3), "window_left");
    REFUSE(d.cu_seqlens_k_host = x.cu_q, "cu_seqlens_k");
    REFUSE(d.k_scale_host = x.alibi, "kv_storage");
    REFUSE(d.max_seqlen_k = 2, "seqlens_k[0]");
    REFUSE(d.max_seqlen_q = 1, "cu_seqlens_q");
    REFUSE(d.num_blocks = 2, "block_table");
    REFUSE(d.dtype = (clattn_dtype)9, "dtype");
    /* the host call: device tables given, NULL tensors */
    d = x.desc;
    d.cu_seqlens_q = (cl_mem)1;
    assert_int_equal(clattn_attention_varlen_host(ctx, &d, x.q, x.k, x.v, out, lse),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen_host(ctx, &x.desc, NULL, x.k, x.v, out, lse),
                     CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "q is NULL"));
    assert_int_equal(clattn_attention_varlen_host(ctx, &x.desc, x.q, x.k, x.v, NULL, lse),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen_host(NULL, &x.desc, x.q, x.k, x.v, out, lse),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen_host(ctx, NULL, x.q, x.k, x.v, out, lse),
                     CLATTN_INVALID_ARGUMENT);
    for (size_t i = 0; i < 4096; i++)
        assert_true(out[i] == 7.0f);
    assert_int_equal(clattn_attention_varlen_reference(NULL, x.q, x.k, x.v, out, lse, NULL, 0),
                     CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_varlen_sizes(NULL, NULL, NULL), CLATTN_INVALID_ARGUMENT);

    /* the device call: host tables given, a missing table, a buffer too small, an output that
       overlaps an input */
    clattn_tensor_sizes sz;
    assert_int_equal(clattn_varlen_sizes(&x.desc, &sz, NULL), CLATTN_SUCCESS);
    cl_mem q = upload(ctx, x.q, sz.q), k = upload(ctx, x.k, sz.k), v = upload(ctx, x.v, sz.v);
    cl_mem o = upload(ctx, out, sz.out), small = upload(ctx, out, 8);
    cl_mem cu = upload(ctx, x.cu_q, ((size_t)c.B + 1) * 4), sl = upload(ctx, x.seqlens, (size_t)c.B * 4);
    cl_mem tb = upload(ctx, x.table, (size_t)c.B * x.desc.max_blocks_per_seq * 4);
    clattn_varlen_desc dd = x.desc;
    dd.cu_seqlens_q_host = dd.seqlens_k_host = dd.block_table_host = NULL;
    dd.cu_seqlens_q = cu;
    dd.seqlens_k = sl;
    dd.block_table = tb;
    assert_int_equal(clattn_attention_varlen(ctx, &dd, q, k, v, o, NULL), CLATTN_SUCCESS);
    clattn_varlen_desc e = dd;
    e.cu_seqlens_q_host = x.cu_q;
    assert_int_equal(clattn_attention_varlen(ctx, &e, q, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);
    e = dd;
    e.block_table = NULL;
    assert_int_equal(clattn_attention_varlen(ctx, &e, q, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "block_table"));
    e = dd;
    e.cu_seqlens_k = cu;
    assert_int_equal(clattn_attention_varlen(ctx, &e, q, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen(ctx, &dd, small, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "q"));
    assert_int_equal(clattn_attention_varlen(ctx, &dd, q, k, v, q, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen(ctx, &dd, q, k, v, NULL, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen(NULL, &dd, q, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_attention_varlen(ctx, NULL, q, k, v, o, NULL), CLATTN_INVALID_ARGUMENT);

    /* clattn_reshape_and_cache: packed desc, negative count, caches too small, int8 without scales */
    int slot = 0;
    cl_mem ms = upload(ctx, &slot, sizeof slot);
    e = dd;
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, ms, q, q, k, v), CLATTN_SUCCESS);
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, -1, ms, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, ms, q, q, small, v), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "k_cache"));
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, NULL, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, ms, q, q, k, k), CLATTN_INVALID_ARGUMENT);
    e.kv_storage = CLATTN_KV_INT8;
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, ms, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "scale"));
    e = dd;
    e.block_size = 0;
    e.num_blocks = e.max_blocks_per_seq = 0;
    e.seqlens_k = e.block_table = NULL;
    assert_int_equal(clattn_reshape_and_cache(ctx, &e, 1, ms, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    assert_non_null(strstr(clattn_context_last_error(ctx), "block_size"));
    assert_int_equal(clattn_reshape_and_cache(NULL, &dd, 1, ms, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    assert_int_equal(clattn_reshape_and_cache(ctx, NULL, 1, ms, q, q, k, v), CLATTN_INVALID_ARGUMENT);
    cl_mem all[] = {q, k, v, o, small, cu, sl, tb, ms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
    vdata_free(&x);
}

/* --oclgrind: small cases for `oclgrind --data-races --uninitialized` (tests/oclgrind.sh): packed and
   paged (block sizes 1 and 4), int8 K/V, split keys, then every corruption of the tables the kernel
   must survive (negative and past-the-end lengths and block ids, decreasing cu_seqlens), and cache
   writes to slots past the end. Results are checked as in the tests above; the run fails on any
   report of an access outside a buffer, a race or an uninitialised read. */
static int run_oclgrind(void)
{
    clattn_context *ctx = tu_context_or_skip(NULL);
    tu_keep keep = {0};
    keep_all = &keep;
    void *state = ctx;
    for (int t = 0; t < 4; t++) {
        vcase c = base_case(3, 2, 1, 8, t == 2 ? CLATTN_F16 : CLATTN_F32, t == 0 ? 0 : t == 1 ? 1 : 4,
                            900 + (uint64_t)t);
        c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
        c.kv_int8 = t == 3;
        c.use_buffers = 1;
        c.share_prefix = t > 0;
        const int lq[3] = {3, 1, 0}, lk[3] = {9, 5, 2};
        memcpy(c.lq, lq, sizeof lq);
        memcpy(c.lk, lk, sizeof lk);
        check_case(ctx, &c);
        tu_keep_scratch(&keep, ctx);
        printf("ok   ragged case %d\n", t);
    }
    {   /* decode with the keys split: one long sequence and a short one */
        vcase c = base_case(2, 2, 1, 8, CLATTN_F32, 16, 950);
        c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
        c.use_buffers = 1;
        c.lq[0] = c.lq[1] = 1;
        c.lk[0] = 700;
        c.lk[1] = 20;
        check_case(ctx, &c);
        tu_keep_scratch(&keep, ctx);
        printf("ok   split decode\n");
    }
    test_corrupt_tables(&state);
    tu_keep_scratch(&keep, ctx);
    printf("ok   corrupted tables\n");
    test_corrupt_split_and_packed(&state);
    tu_keep_scratch(&keep, ctx);
    printf("ok   corrupted tables, keys split and packed\n");
    test_reshape_and_cache(&state);
    printf("ok   cache writes\n");
    clattn_context_release(ctx);
    tu_keep_release(&keep);
    printf("all cases ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--oclgrind") == 0)
        return run_oclgrind();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_decode_split),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_equals_dense),
        cmocka_unit_test(test_reshape_and_cache),
        cmocka_unit_test(test_corrupt_tables),
        cmocka_unit_test(test_corrupt_split_and_packed),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
