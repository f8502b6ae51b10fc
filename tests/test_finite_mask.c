/* Masks of large *finite* negative values, as Hugging Face models build their padding masks
 * (torch.finfo(float32).min = -FLT_MAX): PyTorch adds them to the scores, so a row whose every key
 * carries one is the plain softmax of equal scores, a mean of V, not a row that sees no key. Both
 * paths, prefill and split-KV decode (whose chunks differ in size, so the merge must weigh them by
 * their sums), F32 and F16 storage, against the double-precision reference, and the mean of V
 * checked directly. A fully masked row's lse is -FLT_MAX (its true value, -FLT_MAX + log Lk, is
 * the same float). A NaN in one query row must still make that row NaN, split or not.
 */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Key padding [B,Lk]: batch 0 masks every key with -FLT_MAX; batch 1 its last third (and one
   key with -inf, which hides it outright). */
static float *padding_mask(int B, int Lk)
{
    float *m = tu_alloc((size_t)B * Lk * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int j = 0; j < Lk; j++)
            m[(size_t)b * Lk + j] = b == 0 || j >= Lk - Lk / 3 ? -FLT_MAX : 0.0f;
    if (B > 1)
        m[(size_t)Lk + 1] = -INFINITY;
    return m;
}

static void run_shape(clattn_context *ctx, int B, int Hq, int Hkv, int Lq, int Lk, int d,
                      clattn_dtype dtype, clattn_path path)
{
    clattn_attention_desc desc = {0};
    desc.batch = B;
    desc.heads_q = Hq;
    desc.heads_kv = Hkv;
    desc.seq_q = Lq;
    desc.seq_kv = Lk;
    desc.head_dim = d;
    desc.dtype = dtype;
    desc.path = path;
    desc.mask_type = CLATTN_MASK_ADDITIVE_F32;
    desc.mask_batch_stride = Lk;
    desc.mask_rows_broadcast = 1;
    clattn_tensor_sizes sz;
    assert_int_equal(clattn_attention_sizes(&desc, &sz), CLATTN_SUCCESS);
    const size_t es = dtype == CLATTN_F16 ? 2 : 4;
    tu_rng rng;
    tu_rng_seed(&rng, 1234 + (uint64_t)Lk);
    void *q = tu_alloc(sz.q), *k = tu_alloc(sz.k), *v = tu_alloc(sz.v), *out = tu_alloc(sz.out);
    tu_fill_normal(q, dtype, sz.q / es, 1.0f, &rng);
    tu_fill_normal(k, dtype, sz.k / es, 1.0f, &rng);
    tu_fill_normal(v, dtype, sz.v / es, 1.0f, &rng);
    /* a NaN in one query row of batch 1: its row stays NaN through the split chunks' merge */
    tu_set(q, dtype, ((size_t)1 * Hq * Lq) * d, NAN);
    float *mask = padding_mask(B, Lk), *lse = tu_alloc(sz.lse), *ref_lse = tu_alloc(sz.lse);

    /* the reference on the inputs widened to float (exact), in F32 */
    clattn_attention_desc rdesc = desc;
    rdesc.dtype = CLATTN_F32;
    float *qf = tu_widen(q, dtype, sz.q / es), *kf = tu_widen(k, dtype, sz.k / es);
    float *vf = tu_widen(v, dtype, sz.v / es), *ref = tu_alloc(sz.out / es * sizeof(float));
    assert_int_equal(clattn_attention_reference(&rdesc, qf, kf, vf, mask, ref, NULL, ref_lse),
                     CLATTN_SUCCESS);

    char what[160];
    snprintf(what, sizeof what, "B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d %s %s", B, Hq, Hkv, Lq, Lk, d,
             dtype == CLATTN_F16 ? "F16" : "F32", path == CLATTN_PATH_FUSED ? "fused" : "unfused");
    clattn_status st = clattn_attention_host(ctx, &desc, q, k, v, mask, out, NULL, lse);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: %s", what, clattn_context_last_error(ctx));
    const size_t n = sz.out / es;
    tu_diff diff;
    double tol = tu_out_tolerance(dtype, ref, n, 1.0);
    if (!tu_compare_out(dtype, out, ref, n, tol, &diff))
        fail_msg("%s: out differs from the reference by %.3g at %zu (got %g, want %g; tol %.3g)",
                 what, diff.err, diff.worst, diff.got, diff.ref, tol);

    /* batch 0's rows are PyTorch's softmax of equal scores: the mean of V over every key */
    for (int h = 0; h < Hq; h++) {
        const int g = h / (Hq / Hkv);
        for (int c = 0; c < d; c++) {
            double mean = 0;
            for (int j = 0; j < Lk; j++)
                mean += vf[((size_t)g * Lk + j) * d + c];   /* BHSD, batch 0 */
            mean /= Lk;
            const float got = tu_get(out, dtype, ((size_t)h * Lq + 0) * d + c);
            if (fabs(got - mean) > (dtype == CLATTN_F16 ? 2e-3 : 1e-5))
                fail_msg("%s: head %d col %d of a fully masked row is %g, the mean of V is %g", what,
                         h, c, got, mean);
        }
    }
    for (size_t r = 0; r < sz.lse / sizeof(float); r++) {
        const int fully_masked = r < (size_t)Hq * Lq;   /* batch 0 */
        if (fully_masked ? lse[r] != -FLT_MAX || ref_lse[r] != -FLT_MAX
            : isnan(ref_lse[r]) ? !isnan(lse[r])
                                : !(fabs(lse[r] - ref_lse[r]) <= 1e-5 * fmax(1.0, fabs(ref_lse[r]))))
            fail_msg("%s: lse row %zu is %.9g, the reference's %.9g", what, r, lse[r], ref_lse[r]);
    }
    free(q), free(k), free(v), free(out), free(mask), free(lse), free(ref_lse);
    free(qf), free(kf), free(vf), free(ref);
}

static void test_prefill(void **state)
{
    clattn_context *ctx = *state;
    for (int dt = 0; dt < 2; dt++)
        for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++)
            run_shape(ctx, 2, 4, 2, 37, 300, 40, (clattn_dtype)dt, (clattn_path)path);
}

/* Decode: the fused path splits the keys (3000 in chunks of unequal length on a device with few
   compute units) and merges the chunks by their maxima and sums. */
static void test_decode(void **state)
{
    clattn_context *ctx = *state;
    clattn_attention_desc desc = {.batch = 2, .heads_q = 4, .heads_kv = 1, .seq_q = 1,
                                  .seq_kv = 3000, .head_dim = 64};
    char plan[2048];
    assert_int_equal(clattn_plan_describe(ctx, &desc, 0, plan, sizeof plan), CLATTN_SUCCESS);
    printf("%s\n", plan);
    cl_uint units = 0;
    clGetDeviceInfo(clattn_context_device(ctx), CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units,
                    NULL);
    if (units <= 4 && !strstr(plan, "keys split"))   /* few compute units: the keys must split */
        fail_msg("the decode shape does not split its keys here:\n%s", plan);
    for (int dt = 0; dt < 2; dt++)
        for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++)
            run_shape(ctx, 2, 4, 1, 1, 3000, 64, (clattn_dtype)dt, (clattn_path)path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefill),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
