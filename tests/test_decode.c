/* Decode-shaped problems on the fused path (at most 16 query rows per KV head): on a CPU they take
 * cl/flash_decode.cl (host/attention/flash.c, decode_serves), elsewhere flash_split. Both run
 * against the double-precision reference over a grid of odd sizes: head dims 16..256 with dv != d,
 * GQA groups of 1..16 rows, a few query positions (speculative decoding), key lengths around the
 * 16-key steps and the split chunks, both causal modes, F32, F16 and BF16 storage, int8 K/V, both
 * layouts, large logits, and a NaN in V that only the rows seeing its key may carry. Then every
 * row block size (BLOCK_M 1..16, rows not a multiple of it) at forced split counts, through the
 * internal entry point, where the kernel's edge steps and empty chunks are reached on purpose.
 */
#include "testutil.h"

#include "host/attention/attention.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Whether this device's plan for d takes cl/flash_decode.cl (CPUs do). */
static int takes_decode(clattn_context *ctx, const clattn_attention_desc *d)
{
    clattn_problem p;
    assert_int_equal(clattn_problem_init(d, &p, NULL, 0), CLATTN_SUCCESS);
    return clattn_flash_family_for(clattn_test_device(ctx), &p) == &clattn_family_flash_decode;
}

static int pick(tu_rng *r, const int *v, int n)
{
    return v[tu_rng_below(r, n)];
}
#define PICK(r, v) pick((r), (v), (int)(sizeof(v) / sizeof *(v)))

/* Cases a round; $CLATTN_TEST_GRID_ROUNDS (1..GRID_ROUNDS) rounds, as in test_attention (the
   sanitizer stage walks 2): each case is a new kernel variant, a compile of 2-10 s on PoCL. */
#define GRID_ROUNDS 8
#define CASES_PER_ROUND 2
static int grid_rounds(void)
{
    const char *e = getenv("CLATTN_TEST_GRID_ROUNDS");
    const int n = e ? atoi(e) : GRID_ROUNDS;
    return n >= 1 && n <= GRID_ROUNDS ? n : GRID_ROUNDS;
}

static void test_grid(void **state)
{
    clattn_context *ctx = *state;
    const int cpu = clattn_test_device(ctx)->cls == CLATTN_CLASS_CPU;
    static const int dims[][2] = {{16, 16}, {32, 48}, {80, 16}, {128, 128}, {256, 64}};
    static const int groups[] = {1, 2, 4, 5, 8, 16};
    static const int lks[] = {1, 15, 16, 17, 255, 257, 600, 1031, 2500};
    static const clattn_dtype dtypes[] = {CLATTN_F32, CLATTN_F16, CLATTN_BF16};
    tu_rng r;
    tu_rng_seed(&r, 2026);
    int n = 0, on_decode = 0;
    double worst = 0.0;   /* the largest out error as a share of its tolerance */
    for (int i = 0; i < grid_rounds() * CASES_PER_ROUND; i++) {
        tu_case c;
        memset(&c, 0, sizeof c);
        const int *dim = dims[tu_rng_below(&r, (int)(sizeof dims / sizeof *dims))];
        const int g = PICK(&r, groups);
        const int lq = tu_rng_below(&r, 16 / g) + 1;   /* G·Lq <= 16 */
        const int hkv = 1 + tu_rng_below(&r, 3);
        c.desc.batch = 1 + tu_rng_below(&r, 3);
        c.desc.heads_kv = hkv;
        c.desc.heads_q = hkv * g;
        c.desc.seq_q = lq;
        c.desc.seq_kv = PICK(&r, lks);
        c.desc.head_dim = dim[0];
        c.desc.head_dim_v = dim[1];
        c.desc.dtype = dtypes[i % 3];
        c.desc.layout = i % 2 ? CLATTN_LAYOUT_BSHD : CLATTN_LAYOUT_BHSD;
        c.desc.causal = (clattn_causal)tu_rng_below(&r, 3);
        c.desc.kv_storage = i % 4 == 3 ? CLATTN_KV_INT8 : CLATTN_KV_SAME;
        c.desc.path = CLATTN_PATH_FUSED;
        c.want_lse = 1;
        c.use_buffers = i % 2;
        c.q_scale = i % 5 == 0 ? 50.0f : 0.0f;
        c.nan_in_v = i % 7 == 6 && c.desc.kv_storage != CLATTN_KV_INT8;   /* int8: NaN scales */
        c.seed = 500 + (uint64_t)i;
        const int decode = takes_decode(ctx, &c.desc);
        if (cpu && !decode)
            fail_msg("case %d: a CPU's decode-shaped problem does not take flash_decode", i);
        on_decode += decode;
        tu_outcome res;
        tu_run_case(ctx, &c, &res);
        if (!res.ok)
            fail_msg("%s\n%s", res.msg, clattn_context_last_error(ctx));
        worst = res.out.ratio > worst ? res.out.ratio : worst;
        n++;
    }
    printf("%d decode cases, %d on flash_decode, largest out error %.3f of the tolerance\n", n,
           on_decode, worst);
}

/* One problem at BLOCK_M block_m and splits key ranges against the reference (F32). */
static void run_forced(clattn_context *ctx, const clattn_attention_desc *d, int block_m, int splits)
{
    int ok;
    tu_diff dout, dlse;
    clattn_status st = tu_run_fused_with(ctx, d, block_m, splits,
                                         77 + (uint64_t)(block_m * 16 + splits), NULL, &ok, &dout,
                                         &dlse);
    if (st != CLATTN_SUCCESS)
        fail_msg("BLOCK_M=%d splits=%d: %s", block_m, splits, clattn_context_last_error(ctx));
    if (!ok)
        fail_msg("BLOCK_M=%d splits=%d causal=%d Lq=%d Lk=%d: out err %g (tol %g), lse err %g",
                 block_m, splits, (int)d->causal, d->seq_q, d->seq_kv, dout.err, dout.tol,
                 dlse.err);
}

/* Every BLOCK_M at 3 splits, bottom-right causal: 6 rows per KV head (a group of 3, two
   positions), so the last row block is partial for BLOCK_M 4, 8 and 16; 333 keys, so the last
   16-key step is partial, and 3 chunks of 112 keys end in a short one. One unsplit run, and
   BLOCK_M 16 at 2 and 5 splits (5 chunks of 80 keys: the fifth holds 13) without a mask and
   top-left causal, whose rows see fewer keys than the chunks hold. With fewer grid rounds (the
   sanitizer stage) a subset: BLOCK_M 1, 4, 8 and 16, and no top-left runs. */
static void test_forced(void **state)
{
    clattn_context *ctx = *state;
    clattn_attention_desc d = {.batch = 2, .heads_q = 6, .heads_kv = 2, .seq_q = 2, .seq_kv = 333,
                               .head_dim = 32, .head_dim_v = 16, .path = CLATTN_PATH_FUSED,
                               .causal = CLATTN_CAUSAL_BOTTOM_RIGHT};
    if (!takes_decode(ctx, &d))
        skip();
    const int all = grid_rounds() == GRID_ROUNDS;
    for (int bm = 1; bm <= 16; bm *= 2)
        if (all || bm != 2)
            run_forced(ctx, &d, bm, 3);
    run_forced(ctx, &d, 4, 1);
    static const clattn_causal others[] = {CLATTN_CAUSAL_NONE, CLATTN_CAUSAL_TOP_LEFT};
    for (int c = 0; c < (all ? 2 : 1); c++) {
        d.causal = others[c];
        run_forced(ctx, &d, 16, 2);
        run_forced(ctx, &d, 16, 5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_forced),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
