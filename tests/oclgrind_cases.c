/* Small shapes through every kernel family, for running under
 * `oclgrind --data-races --uninitialized` (tests/oclgrind.sh): unfused with probs, fused, split-KV
 * with 2 and 3 splits (and so the merge kernel), masks (dense and [B,Lk] key padding), both causal
 * modes, F16, BSHD. Each result is
 * also compared with the reference, so the run checks numbers as well as memory behaviour.
 *
 * Every case runs on one context, as a user's calls do (its scratch grows between cases), and no
 * buffer is released before the end of the run: oclgrind's uninitialised-value checker gives a
 * buffer created in a released buffer's slot that buffer's stale state (tests/oclgrind_slot_reuse.c
 * shows it without clattn), which reports reads of written memory and misses reads of unwritten
 * memory. So the cases' own buffers, and each scratch buffer the context holds after a case (its
 * scratch releases a buffer when it grows), are kept in one list released at exit. */
#include "testutil.h"

#include "host/attention/attention.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_case(clattn_context *ctx, const tu_case *c, tu_keep *keep)
{
    tu_outcome res;
    char name[256];
    tu_case_string(c, name, sizeof name);
    clattn_status st = tu_run_case(ctx, c, &res);
    tu_keep_scratch(keep, ctx);
    printf("%-4s %s\n", res.ok ? "ok" : "FAIL", name);
    if (!res.ok)
        printf("     %s (%s)\n", res.msg, st == CLATTN_SUCCESS ? "" : clattn_context_last_error(ctx));
    return res.ok;
}

/* Split-KV with an explicit split count, compared with the reference. */
static int run_split(clattn_context *ctx, int splits, clattn_causal causal, tu_keep *keep)
{
    clattn_attention_desc d = {0};
    d.batch = 1, d.heads_q = 4, d.heads_kv = 2, d.seq_q = 1, d.seq_kv = 45, d.head_dim = 8;
    d.head_dim_v = 6, d.causal = causal;
    int ok;
    tu_diff dout, dlse;
    clattn_status st = tu_run_fused_with(ctx, &d, 0, splits, 7 + (uint64_t)splits, keep, &ok, &dout,
                                         &dlse);   /* ok is 0 unless st is CLATTN_SUCCESS */
    printf("%-4s split-KV splits=%d causal=%d\n", ok ? "ok" : "FAIL", splits, (int)causal);
    if (st != CLATTN_SUCCESS)
        printf("     %s\n", clattn_context_last_error(ctx));
    return ok;
}

typedef struct small_shape {
    int B, Hq, Hkv, Lq, Lk, d, dv;
    clattn_dtype dtype;
    clattn_layout layout;
    clattn_causal causal;
    clattn_mask_type mask;
    clattn_path path;
} small_shape;

/* The case of a shape: on buffers kept in keep, probs on the unfused path, lse always. */
static tu_case shape_case(const small_shape *sh, uint64_t seed, tu_keep *keep)
{
    tu_case c;
    memset(&c, 0, sizeof c);
    c.desc.batch = sh->B, c.desc.heads_q = sh->Hq, c.desc.heads_kv = sh->Hkv;
    c.desc.seq_q = sh->Lq, c.desc.seq_kv = sh->Lk;
    c.desc.head_dim = sh->d, c.desc.head_dim_v = sh->dv;
    c.desc.dtype = sh->dtype, c.desc.layout = sh->layout;
    c.desc.causal = sh->causal, c.desc.mask_type = sh->mask;
    c.mask_kind = TU_MASK_DENSE;
    c.desc.path = sh->path;
    c.want_probs = sh->path == CLATTN_PATH_UNFUSED;
    c.want_lse = 1;
    c.use_buffers = 1;
    c.seed = seed;
    c.keep = keep;
    return c;
}

int main(void)
{
    clattn_context *ctx = tu_context_or_skip(NULL);   /* exits 77 without a device */
    printf("device: %s\n", clattn_context_device_name(ctx));
    static const small_shape shapes[] = {
        {1, 2, 1, 5, 9, 8, 6, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_NONE, CLATTN_PATH_UNFUSED},
        {2, 2, 2, 7, 3, 5, 5, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_MASK_BOOL_U8, CLATTN_PATH_UNFUSED},
        {1, 4, 2, 3, 11, 7, 9, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_TOP_LEFT, CLATTN_MASK_ADDITIVE_F32, CLATTN_PATH_UNFUSED},
        {1, 2, 1, 5, 9, 8, 6, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_NONE, CLATTN_PATH_FUSED},
        {2, 2, 2, 7, 3, 5, 5, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_MASK_BOOL_U8, CLATTN_PATH_FUSED},
        {1, 4, 2, 3, 11, 7, 9, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_TOP_LEFT, CLATTN_MASK_ADDITIVE_F16, CLATTN_PATH_FUSED},
        {1, 2, 2, 9, 20, 16, 16, CLATTN_F32, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_MASK_NONE, CLATTN_PATH_FUSED},
        /* decode through the public call: the library picks the split count and merges */
        {1, 2, 1, 1, 600, 8, 8, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_NONE, CLATTN_PATH_FUSED},
        /* decode with d and dv multiples of 16: cl/flash_decode.cl on a CPU-class device (a GQA
           group of 4 over keys split and merged; 3 positions of causal rows over an odd length) */
        {1, 4, 1, 1, 600, 16, 32, CLATTN_F32, CLATTN_LAYOUT_BHSD, CLATTN_CAUSAL_NONE, CLATTN_MASK_NONE, CLATTN_PATH_FUSED},
        {2, 4, 2, 3, 37, 16, 16, CLATTN_F16, CLATTN_LAYOUT_BSHD, CLATTN_CAUSAL_BOTTOM_RIGHT, CLATTN_MASK_NONE, CLATTN_PATH_FUSED},
    };
    tu_keep keep = {0};
    int ok = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        tu_case c = shape_case(&shapes[i], 100 + i, &keep);
        ok &= run_case(ctx, &c, &keep);
        if (shapes[i].mask == CLATTN_MASK_BOOL_U8) {   /* once more as key padding, [B,Lk] */
            c.mask_kind = TU_MASK_KEYPAD;
            ok &= run_case(ctx, &c, &keep);
        }
    }
    /* Every variant at once (window, soft-cap, ALiBi, sinks) on the unfused path, the fused one and
       split-KV decode: their extra reads (slopes, sinks) and the window's skipped tiles. */
    static const float slopes[4] = {0.5f, 0.25f, 0.125f, 0.0625f}, sinks[4] = {0.3f, -INFINITY, 2.0f, -1.0f};
    static const size_t with_variants[] = {2, 6, 7};
    for (size_t t = 0; t < sizeof with_variants / sizeof with_variants[0]; t++) {
        const size_t i = with_variants[t];
        tu_case c = shape_case(&shapes[i], 200 + i, &keep);
        c.desc.window = 1, c.desc.window_left = i == 7 ? 300 : 3, c.desc.window_right = 1;
        c.desc.softcap = 5.0f, c.desc.alibi_slopes = slopes, c.desc.sinks = sinks;
        printf("     (window, softcap, ALiBi and sinks:)\n");
        ok &= run_case(ctx, &c, &keep);
    }
    /* Int8 K/V (their per-token scales are two more buffers each kernel reads) on the unfused path,
       the fused one and split-KV decode, F32 and F16 q. */
    static const size_t with_int8[] = {1, 4, 7, 8};
    for (size_t t = 0; t < sizeof with_int8 / sizeof with_int8[0]; t++) {
        tu_case c = shape_case(&shapes[with_int8[t]], 300 + t, &keep);
        c.desc.kv_storage = CLATTN_KV_INT8;
        printf("     (int8 K/V:)\n");
        ok &= run_case(ctx, &c, &keep);
    }
    for (int splits = 2; splits <= 3; splits++)
        ok &= run_split(ctx, splits, splits == 2 ? CLATTN_CAUSAL_NONE : CLATTN_CAUSAL_BOTTOM_RIGHT, &keep);
    clattn_context_release(ctx);
    tu_keep_release(&keep);
    printf("%s\n", ok ? "all cases ok" : "some cases FAILED");
    return ok ? 0 : 1;
}
