/* No call may read device scratch it did not write. The context's scratch (host/scratch.c) is kept
 * and reused across calls, so a kernel reading a region the call never wrote would see a previous
 * call's values and could pass every other test. Here the test seam clattn_scratch_poison fills
 * every scratch buffer with NaN each time a call takes it (after growing it), and each path that
 * uses scratch must still match the double-precision reference, with the tolerances of
 * tests/testutil.h:
 *   - the unfused path's score chunks (clattn_unfused_enqueue_chunked with small chunks: whole
 *     heads, rows of one head, short last chunks; probs none, or write-only so that scores go
 *     through scratch and are copied);
 *   - the fused path's split-KV partials (clattn_flash_enqueue_with with forced split counts, and
 *     the library's own choice on decode shapes), merged from scratch;
 *   - clattn_merge_partials, which stages the parts in scratch (and tiled, with tiny stages);
 *   - the multi-head layer, whose Q, K, V and heads live in scratch;
 *   - GQA, odd widths, masks, F16, both layouts through the public calls.
 * Each case runs twice, so that the second takes scratch that is already big enough.
 */
#include "testutil.h"

#include "mha_fixture.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_PARTS 4   /* parts of a merge case */

static int setup(void **state)
{
    tu_group_setup(state);   /* exits 77 without a device */
    clattn_scratch_poison(*state, 1);
    return 0;
}

typedef struct shape {
    int B, Hq, Hkv, Lq, Lk, d, dv;
    clattn_dtype dtype;
    clattn_layout layout;
    clattn_causal causal;
} shape;

static clattn_attention_desc desc_of(const shape *s)
{
    clattn_attention_desc d = {0};
    d.batch = s->B, d.heads_q = s->Hq, d.heads_kv = s->Hkv, d.seq_q = s->Lq, d.seq_kv = s->Lk;
    d.head_dim = s->d, d.head_dim_v = s->dv, d.dtype = s->dtype, d.layout = s->layout;
    d.causal = s->causal;
    return d;
}

static cl_mem buffer(clattn_context *ctx, cl_mem_flags flags, size_t bytes, const void *src)
{
    cl_int err;
    cl_mem m = clCreateBuffer(clattn_context_cl_context(ctx), flags | (src ? CL_MEM_COPY_HOST_PTR : 0),
                              bytes ? bytes : 1, (void *)src, &err);
    if (!m)
        fail_msg("clCreateBuffer(%zu bytes): %d", bytes, (int)err);
    return m;
}

static void download(clattn_context *ctx, cl_mem m, void *dst, size_t bytes)
{
    assert_int_equal(clEnqueueReadBuffer(clattn_context_queue(ctx), m, CL_TRUE, 0, bytes, dst, 0, NULL,
                                         NULL), CL_SUCCESS);
}

/* ---- the seam itself ---------------------------------------------------------------------------- */

/* Takes bytes of scratch slot WORK3 as a call would, and checks that all of its first `check` bytes
   read back as NaN; then writes 1.0 over them, as a call would. */
static void take_and_expect_nan(clattn_context *ctx, size_t bytes, size_t check)
{
    float got[128];
    cl_mem m = NULL;
    assert_true(check <= sizeof got);
    clattn_test_lock(ctx);
    clattn_status st = clattn_scratch_get(ctx, CLATTN_SCRATCH_WORK3, bytes, &m);
    clattn_test_unlock(ctx);
    assert_int_equal(st, CLATTN_SUCCESS);
    download(ctx, m, got, check);
    for (size_t i = 0; i < check / sizeof(float); i++)
        if (!isnan(got[i]))
            fail_msg("scratch of %zu bytes: float %zu is %g, not NaN", bytes, i, got[i]);
    const float one = 1.0f;
    assert_int_equal(clEnqueueFillBuffer(clattn_context_queue(ctx), m, &one, sizeof one, 0, check, 0, NULL,
                                         NULL), CL_SUCCESS);
    assert_int_equal(clFinish(clattn_context_queue(ctx)), CL_SUCCESS);
}

/* The premise of the rest: with the seam on, scratch reads back as NaN when created, when taken
   again (all of the buffer, not only the part asked for) and when grown. */
static void test_seam_fills_scratch(void **state)
{
    clattn_context *ctx = *state;
    take_and_expect_nan(ctx, 256, 256);
    take_and_expect_nan(ctx, 64, 256);
    take_and_expect_nan(ctx, 512, 512);
}

/* ---- internal entry points against the reference --------------------------------------------- */

typedef enum {
    RUN_CHUNKED,        /* clattn_unfused_enqueue_chunked, arg = chunk bytes, no probs */
    RUN_CHUNKED_PROBS,  /* the same with a write-only probs buffer (scores copied from scratch) */
    RUN_SPLITS,         /* clattn_flash_enqueue_with, arg = split count */
} run_kind;

static void check_internal(clattn_context *ctx, const shape *sh, run_kind kind, size_t arg)
{
    clattn_attention_desc d = desc_of(sh);
    clattn_problem p;
    char err[256] = "";
    assert_int_equal(clattn_problem_init(&d, &p, err, sizeof err), CLATTN_SUCCESS);
    const size_t es = clattn_dtype_size(sh->dtype);
    const size_t nq = p.bytes.q / es, nk = p.bytes.k / es, nv = p.bytes.v / es, no = p.bytes.out / es;
    const size_t np = p.bytes.probs / 4, nl = p.bytes.lse / 4;
    const int with_probs = kind == RUN_CHUNKED_PROBS;
    tu_rng r;
    tu_rng_seed(&r, 0x5c7a + (uint64_t)kind * 7919 + arg + (uint64_t)sh->Lk * 31 + (uint64_t)sh->Lq);
    void *q = tu_alloc(p.bytes.q), *k = tu_alloc(p.bytes.k), *v = tu_alloc(p.bytes.v);
    tu_fill_normal(q, sh->dtype, nq, 1.0f, &r);
    tu_fill_normal(k, sh->dtype, nk, 1.0f, &r);
    tu_fill_normal(v, sh->dtype, nv, 1.0f, &r);
    float *q32 = tu_widen(q, sh->dtype, nq), *k32 = tu_widen(k, sh->dtype, nk);
    float *v32 = tu_widen(v, sh->dtype, nv);
    float *ref = tu_alloc(no * 4), *ref_probs = tu_alloc(p.bytes.probs), *ref_lse = tu_alloc(p.bytes.lse);
    clattn_attention_desc d32 = d;
    d32.dtype = CLATTN_F32;
    assert_int_equal(clattn_attention_reference(&d32, q32, k32, v32, NULL, ref, ref_probs, ref_lse),
                     CLATTN_SUCCESS);
    const double kappa = tu_conditioning(tu_score_magnitude(&d, q32, k32));

    cl_mem bq = buffer(ctx, CL_MEM_READ_ONLY, p.bytes.q, q), bk = buffer(ctx, CL_MEM_READ_ONLY, p.bytes.k, k);
    cl_mem bv = buffer(ctx, CL_MEM_READ_ONLY, p.bytes.v, v);
    cl_mem bo = buffer(ctx, CL_MEM_READ_WRITE, p.bytes.out, NULL);
    cl_mem bl = buffer(ctx, CL_MEM_READ_WRITE, p.bytes.lse, NULL);
    cl_mem bp = with_probs ? buffer(ctx, CL_MEM_WRITE_ONLY, p.bytes.probs, NULL) : NULL;
    void *out = tu_alloc(p.bytes.out);
    float *probs = tu_alloc(p.bytes.probs), *lse = tu_alloc(p.bytes.lse);
    char label[160];
    snprintf(label, sizeof label, "B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d dv=%d %s %s causal=%d %s %zu",
             sh->B, sh->Hq, sh->Hkv, sh->Lq, sh->Lk, sh->d, sh->dv, sh->dtype == CLATTN_F16 ? "F16" : "F32",
             sh->layout == CLATTN_LAYOUT_BSHD ? "BSHD" : "BHSD", (int)sh->causal,
             kind == RUN_SPLITS ? "splits" : with_probs ? "chunk bytes (probs)" : "chunk bytes", arg);

    for (int rep = 0; rep < 2; rep++) {
        clattn_status st;
        clattn_test_lock(ctx);   /* the internal entry points run with it held */
        if (kind == RUN_SPLITS) {
            clattn_params params;
            st = clattn_params_lookup(ctx, clattn_flash_family_for(clattn_test_device(ctx), &p), &p, &params);
            if (st == CLATTN_SUCCESS)
                st = clattn_flash_enqueue_with(ctx, &p, &params, (int)arg, bq, bk, bv, NULL, bo, bl);
        } else {
            st = clattn_unfused_enqueue_chunked(ctx, &p, bq, bk, bv, NULL, bo, bp, bl, arg);
        }
        clattn_test_unlock(ctx);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
        download(ctx, bo, out, p.bytes.out);
        download(ctx, bl, lse, p.bytes.lse);
        if (bp)
            download(ctx, bp, probs, p.bytes.probs);
        tu_diff dout, dlse, dprobs;
        const double tol = tu_out_tolerance(sh->dtype, ref, no, kappa);
        int ok_out = tu_compare_out(sh->dtype, out, ref, no, tol, &dout);
        int ok_lse = tu_compare_rel(lse, ref_lse, nl, TU_LSE_REL * kappa, &dlse);
        int ok_probs = !bp || tu_compare_rel(probs, ref_probs, np, TU_PROBS_REL * kappa, &dprobs);
        printf("  %-72s run %d: out %.2e lse %.2e\n", label, rep, dout.err, dlse.err);
        if (!ok_out)
            fail_msg("%s: out: %d bad, first [%zu] = %g vs %g", label, dout.mismatches, dout.worst,
                     dout.got, dout.ref);
        if (!ok_lse)
            fail_msg("%s: lse: %d bad, first [%zu] = %g vs %g", label, dlse.mismatches, dlse.worst,
                     dlse.got, dlse.ref);
        if (!ok_probs)
            fail_msg("%s: probs: %d bad, first [%zu] = %g vs %g", label, dprobs.mismatches, dprobs.worst,
                     dprobs.got, dprobs.ref);
    }
    cl_mem all[] = {bq, bk, bv, bo, bl, bp};
    for (int i = 0; i < 6; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(q), free(k), free(v), free(q32), free(k32), free(v32);
    free(ref), free(ref_probs), free(ref_lse), free(out), free(probs), free(lse);
}

/* Score chunks of whole heads (several per chunk, the last one short) and of rows within a head
   (the last rows short); GQA, odd widths, both layouts, causal, F16. */
static void test_unfused_chunks(void **state)
{
    clattn_context *ctx = *state;
    static const struct {
        shape s;
        size_t chunk;
    } cases[] = {
        /* 33 * 5 * 4 = 660 bytes a head: 3 heads per chunk of 2000, 8 heads */
        {{2, 4, 2, 5, 33, 40, 24, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE}, 2000},
        /* 70 rows of 33 * 4 = 132 bytes: 7 rows per chunk of 1000 */
        {{1, 3, 1, 70, 33, 16, 8, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT}, 1000},
        {{2, 2, 2, 9, 130, 8, 12, CLATTN_F16, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_TOP_LEFT}, 3 * 130 * 4},
        /* decode, GQA: the group's rows are folded into one head's rows */
        {{2, 6, 2, 1, 77, 24, 24, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_NONE}, 2 * 77 * 4 * 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_internal(ctx, &cases[i].s, RUN_CHUNKED, cases[i].chunk);
        check_internal(ctx, &cases[i].s, RUN_CHUNKED_PROBS, cases[i].chunk);
    }
}

/* Split-KV: partial outputs and lse in scratch, merged into out. Split counts that leave the last
   chunk of keys short, and one split per (rounded) tile. */
static void test_fused_splits(void **state)
{
    clattn_context *ctx = *state;
    static const shape shapes[] = {
        {1, 8, 2, 1, 600, 40, 24, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE},
        {2, 4, 4, 3, 257, 16, 16, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT},
        {1, 6, 1, 2, 1000, 8, 12, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_NONE},
    };
    static const int splits[] = {2, 3, 7};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (size_t j = 0; j < sizeof splits / sizeof splits[0]; j++)
            check_internal(ctx, &shapes[i], RUN_SPLITS, (size_t)splits[j]);
}

/* ---- public calls ---------------------------------------------------------------------------- */

static void run_public(clattn_context *ctx, tu_case *c)
{
    for (int rep = 0; rep < 2; rep++) {
        tu_outcome o;
        tu_run_case(ctx, c, &o);
        printf("  %s run %d: %s\n", o.msg, rep, o.ok ? "ok" : "FAILED");
        if (!o.ok)
            fail_msg("%s", o.msg);
    }
}

/* Both paths through clattn_attention and clattn_attention_host: decode shapes (the library picks
   the split count), GQA, odd widths, masks of every kind, probs and lse. */
static void test_public_paths(void **state)
{
    clattn_context *ctx = *state;
    static const struct {
        int B, Hq, Hkv, Lq, Lk, d, dv;
        clattn_dtype dtype;
        clattn_layout layout;
        clattn_causal causal;
        clattn_mask_type mask;
        tu_mask_kind kind;
    } shapes[] = {
        {1, 8, 2, 1, 700, 40, 24, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_NONE, TU_MASK_DENSE},
        {2, 4, 1, 4, 333, 16, 8, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_MASK_BOOL_U8, TU_MASK_KEYPAD},
        {2, 6, 3, 17, 45, 24, 40, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_TOP_LEFT, CLATTN_MASK_ADDITIVE_F32, TU_MASK_PADDED},
        {1, 3, 3, 70, 70, 8, 8, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_BOOL_U8, TU_MASK_BROADCAST},
    };
    static const clattn_path paths[] = {CLATTN_PATH_UNFUSED, CLATTN_PATH_FUSED};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        for (int pi = 0; pi < 2; pi++) {
            tu_case c;
            memset(&c, 0, sizeof c);
            c.desc.batch = shapes[i].B, c.desc.heads_q = shapes[i].Hq, c.desc.heads_kv = shapes[i].Hkv;
            c.desc.seq_q = shapes[i].Lq, c.desc.seq_kv = shapes[i].Lk;
            c.desc.head_dim = shapes[i].d, c.desc.head_dim_v = shapes[i].dv;
            c.desc.dtype = shapes[i].dtype, c.desc.layout = shapes[i].layout;
            c.desc.causal = shapes[i].causal, c.desc.mask_type = shapes[i].mask;
            c.desc.path = paths[pi];
            c.mask_kind = shapes[i].kind;
            c.want_probs = paths[pi] == CLATTN_PATH_UNFUSED && i % 2 == 0;
            c.want_lse = 1;
            c.use_buffers = (int)(i + (size_t)pi) % 2;
            c.seed = 0x9015 + i * 2 + (uint64_t)pi;
            run_public(ctx, &c);
        }
    }
}

/* ---- the merge --------------------------------------------------------------------------------- */

/* Attention over keys [0, Lk) from the attentions over parts of the keys: each part is the
   reference over its keys (the others masked off; rounded to half for F16), merged on the device,
   against the reference over all keys. The merge's staging goes through scratch: whole, and in
   tiles of a few rows. Tolerance: F32 as tu_out_tolerance; F16 2e-3 * max(1, max |ref|), as in
   tests/test_merge.c (the parts and the result are each rounded to half). */
static void test_merge(void **state)
{
    clattn_context *ctx = *state;
    static const struct {
        shape s;
        int parts;
    } cases[] = {
        {{2, 4, 2, 5, 50, 8, 12, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE}, 3},
        {{3, 3, 1, 7, 31, 16, 10, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_NONE}, 2},
        {{2, 2, 2, 6, 40, 8, 9, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_NONE}, 4},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const shape *sh = &cases[ci].s;
        const int parts = cases[ci].parts;
        clattn_attention_desc d = desc_of(sh);
        clattn_problem p;
        assert_int_equal(clattn_problem_init(&d, &p, NULL, 0), CLATTN_SUCCESS);
        const size_t es = clattn_dtype_size(sh->dtype), no = p.bytes.out / es, nl = p.bytes.lse / 4;
        clattn_attention_desc d32 = d;   /* the reference in float on the same (float) inputs */
        d32.dtype = CLATTN_F32;
        tu_rng r;
        tu_rng_seed(&r, 0x3e76 + ci);
        float *q = tu_alloc(p.bytes.q / es * 4), *k = tu_alloc(p.bytes.k / es * 4);
        float *v = tu_alloc(p.bytes.v / es * 4);
        tu_fill_normal(q, CLATTN_F32, p.bytes.q / es, 1.0f, &r);
        tu_fill_normal(k, CLATTN_F32, p.bytes.k / es, 1.0f, &r);
        tu_fill_normal(v, CLATTN_F32, p.bytes.v / es, 1.0f, &r);
        float *ref = tu_alloc(no * 4), *ref_lse = tu_alloc(p.bytes.lse);
        assert_int_equal(clattn_attention_reference(&d32, q, k, v, NULL, ref, NULL, ref_lse), CLATTN_SUCCESS);
        double tol = tu_out_tolerance(CLATTN_F32, ref, no, 1);
        if (sh->dtype == CLATTN_F16) {
            double m = 1.0;
            for (size_t i = 0; i < no; i++)
                m = fmax(m, fabs(ref[i]));
            tol = 2e-3 * m;
        }

        /* Part j sees keys [Lk*j/parts, Lk*(j+1)/parts): a bool mask [Lq, Lk] shared by every batch
           entry and head. */
        clattn_attention_desc dm = d32;
        dm.mask_type = CLATTN_MASK_BOOL_U8;
        unsigned char *mask = tu_alloc((size_t)sh->Lq * (size_t)sh->Lk);
        cl_mem outs[MAX_PARTS], lses[MAX_PARTS];
        assert_true(parts <= MAX_PARTS);
        float *part = tu_alloc(no * 4), *part_lse = tu_alloc(p.bytes.lse);
        void *part_stored = tu_alloc(p.bytes.out);
        for (int j = 0; j < parts; j++) {
            const int lo = sh->Lk * j / parts, hi = sh->Lk * (j + 1) / parts;
            for (int i = 0; i < sh->Lq; i++)
                for (int key = 0; key < sh->Lk; key++)
                    mask[(size_t)i * (size_t)sh->Lk + (size_t)key] = key >= lo && key < hi;
            assert_int_equal(clattn_attention_reference(&dm, q, k, v, mask, part, NULL, part_lse),
                             CLATTN_SUCCESS);
            for (size_t i = 0; i < no; i++)
                tu_set(part_stored, sh->dtype, i, part[i]);
            outs[j] = buffer(ctx, CL_MEM_READ_ONLY, p.bytes.out, part_stored);
            lses[j] = buffer(ctx, CL_MEM_READ_ONLY, p.bytes.lse, part_lse);
        }
        void *out = tu_alloc(p.bytes.out);
        float *lse = tu_alloc(p.bytes.lse);
        cl_mem bo = buffer(ctx, CL_MEM_READ_WRITE, p.bytes.out, NULL);
        cl_mem bl = buffer(ctx, CL_MEM_READ_WRITE, p.bytes.lse, NULL);
        /* 0: the public call (one stage); then stages of one query row of every head of every
           part, and of three */
        const size_t row = (size_t)sh->Hq * (size_t)sh->dv * es * (size_t)parts;
        const size_t stages[] = {0, row, 3 * row};
        for (int si = 0; si < 3; si++) {
            for (int rep = 0; rep < 2; rep++) {
                clattn_status st;
                if (stages[si] == 0) {
                    st = clattn_merge_partials(ctx, parts, outs, lses, &d, bo, bl);
                } else {
                    clattn_test_lock(ctx);
                    st = clattn_merge_enqueue_staged(ctx, &p, parts, outs, lses, bo, bl, stages[si]);
                    clattn_test_unlock(ctx);
                }
                if (st != CLATTN_SUCCESS)
                    fail_msg("merge case %zu, stage %zu: %s", ci, stages[si], clattn_context_last_error(ctx));
                download(ctx, bo, out, p.bytes.out);
                download(ctx, bl, lse, p.bytes.lse);
                tu_diff dout, dlse;
                int ok_out = tu_compare_out(sh->dtype, out, ref, no, tol, &dout);
                int ok_lse = tu_compare_rel(lse, ref_lse, nl, TU_LSE_REL, &dlse);
                printf("  merge case %zu, %d parts, stage %zu bytes, run %d: out %.2e lse %.2e\n", ci, parts,
                       stages[si], rep, dout.err, dlse.err);
                if (!ok_out || !ok_lse)
                    fail_msg("merge case %zu, stage %zu: %d bad out (first [%zu] = %g vs %g), %d bad lse", ci,
                             stages[si], dout.mismatches, dout.worst, dout.got, dout.ref, dlse.mismatches);
            }
        }
        for (int j = 0; j < parts; j++) {
            clReleaseMemObject(outs[j]);
            clReleaseMemObject(lses[j]);
        }
        clReleaseMemObject(bo);
        clReleaseMemObject(bl);
        free(q), free(k), free(v), free(ref), free(ref_lse), free(mask), free(part), free(part_lse);
        free(part_stored);
        free(out), free(lse);
    }
}

/* ---- the multi-head layer -------------------------------------------------------------------- */

/* The fused path never stores weights, which fx_check_layer asks for: the same check without. */
static void check_mha_fused(clattn_context *ctx, const char *label, const fx_layer *L, int via_buffers)
{
    const float *xk = L->d.kdim || L->s.Lk != L->s.Lq ? L->xk : NULL;   /* NULL: self-attention */
    const float *xv = xk ? L->xv : NULL;
    float *out = tu_alloc(L->s.out * 4), *ref = tu_alloc(L->s.out * 4);
    clattn_status st = via_buffers
        ? fx_forward_buffers(ctx, &L->d, &L->s, &L->w, L->xq, xk, xv, L->mask, L->mask_bytes, out, NULL)
        : clattn_mha_forward_host(ctx, &L->d, &L->w, L->xq, xk, xv, L->mask, out, NULL);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s: %s", label, clattn_status_string(st), clattn_context_last_error(ctx));
    assert_int_equal(clattn_mha_reference(&L->d, &L->w, L->xq, xk, xv, L->mask, ref, NULL, NULL, 0),
                     CLATTN_SUCCESS);
    fx_err e = fx_compare(out, ref, L->s.out);
    printf("  %-40s out max|err| %.2e (max|ref| %.2f)\n", label, e.err, e.ref);
    assert_false(e.nan);
    assert_true(e.err <= FX_OUT_REL * fmax(1.0, e.ref));
    free(out), free(ref);
}

/* Q, K, V and the heads' output in scratch (and CLBlast's temporaries): self- and cross-attention,
   GQA, odd head widths, a padding mask, both attention paths, host and buffer entry points. */
static void test_mha(void **state)
{
#ifndef CLATTN_HAVE_CLBLAST
    (void)state;
    skip();   /* without CLBlast the layer answers CLATTN_UNSUPPORTED (test_mha checks that) */
#else
    clattn_context *ctx = *state;
    clattn_mha_desc d = {0};
    fx_layer L;
    d.batch = 2, d.seq_q = d.seq_kv = 21, d.embed_dim = 40, d.heads_q = 4, d.heads_kv = 2;   /* dh 10 */
    d.in_bias = d.out_bias = 1, d.path = CLATTN_PATH_UNFUSED;
    fx_layer_make(&L, &d, 1, 0x3a1);
    fx_layer_padding_mask(&L, 5);
    for (int rep = 0; rep < 2; rep++) {
        L.d.path = CLATTN_PATH_UNFUSED;
        fx_check_layer(ctx, "self, GQA 4/2, dh 10, mask, unfused", &L, rep);
        L.d.path = CLATTN_PATH_FUSED;
        check_mha_fused(ctx, "self, GQA 4/2, dh 10, mask, fused", &L, rep);
    }
    fx_layer_free(&L);

    clattn_mha_desc c = {0};
    c.batch = 3, c.seq_q = 5, c.seq_kv = 47, c.embed_dim = 36, c.kdim = 20, c.vdim = 28;
    c.heads_q = 3;   /* dh 12 */
    c.in_bias = 1, c.causal = CLATTN_CAUSAL_BOTTOM_RIGHT, c.path = CLATTN_PATH_AUTO;
    fx_layer_make(&L, &c, 0, 0x3a2);
    for (int rep = 0; rep < 2; rep++) {
        fx_check_layer(ctx, "cross, kdim 20 vdim 28, dh 12, causal BR", &L, rep);
        check_mha_fused(ctx, "cross, kdim 20 vdim 28, dh 12, causal BR, auto", &L, rep);
    }
    fx_layer_free(&L);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seam_fills_scratch),
        cmocka_unit_test(test_unfused_chunks),
        cmocka_unit_test(test_fused_splits),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_public_paths),
    };
    return cmocka_run_group_tests(tests, setup, tu_group_teardown);
}
