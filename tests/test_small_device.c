/* Small devices (clattn_context_options.max_local_mem_bytes, .max_work_group_size) of every device
 * class (.device_class): local memory capped at 16 or 32 KiB and work-groups at 64 or 256
 * work-items, as on small GPUs and FPGAs, with each class's defaults and search space. Every kernel
 * family (qk, softmax, pv; flash; flash_split or, on the CPU class, flash_decode, with the merge)
 * runs at the parameters the capped context chooses (with the fallbacks of
 * host/attention/params.c) and must match the reference
 * (tolerances: testutil.h); so must the multi-head layer with the own projection GEMM (tolerances:
 * mha_fixture.h). Where the capped device genuinely cannot serve a shape (the fused kernel's
 * smallest tiles for d = dv = 256 need 17 KiB, for d = dv = 512 35 KiB), the call must answer
 * CLATTN_UNSUPPORTED with a message naming the family and the head sizes, and the unfused path,
 * whose tiles do not grow with d, must still serve it.
 *
 * Shapes are few and chosen to keep the number of kernel variants down (each costs a compile on
 * PoCL): d = 128 and 256, dv != d, causal and masked, F32 and F16, and split decode (Lq 1, Lk 4096).
 * The binary cache (CLATTN_CACHE_DIR of the test environment) shares identical variants across the
 * contexts. */
#include "mha_fixture.h"
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct small_device {
    const char *name;
    clattn_device_class_choice cls;
    unsigned long local_bytes, work_group;
} small_device;

/* 1 when dev's local memory is capped below what the fused kernel's smallest tiles need. */
static int fused_too_big(const small_device *dev, int d, int dv);

/* The fused kernel's local memory at its smallest tiles (BLOCK_M 1, BLOCK_N 8, one work-item per
   row: cl/flash_attention.cl's Ql, Kl, Vl, Sl and a flag) for head sizes d, dv. */
static unsigned long fused_min_bytes(int d, int dv)
{
    return (unsigned long)(d + 8 * d + 8 * dv + 8) * 4 + 4;
}

static int fused_too_big(const small_device *dev, int d, int dv)
{
    return dev->local_bytes && dev->local_bytes < fused_min_bytes(d, dv);
}

static clattn_context *open_small(const small_device *dev)
{
    clattn_context *ctx = NULL;
    clattn_context_options o = {.device_class = dev->cls, .max_local_mem_bytes = dev->local_bytes,
                                .max_work_group_size = dev->work_group};
    clattn_status st = clattn_context_create_with_options(NULL, &o, &ctx);
    if (st != CLATTN_SUCCESS)
        fail_msg("%s: clattn_context_create: %s", dev->name, clattn_status_string(st));
    return ctx;
}

static clattn_attention_desc shape(int B, int hq, int hkv, int lq, int lk, int d, int dv, clattn_dtype t,
                                   clattn_path path)
{
    clattn_attention_desc desc = {0};
    desc.batch = B;
    desc.heads_q = hq;
    desc.heads_kv = hkv;
    desc.seq_q = lq;
    desc.seq_kv = lk;
    desc.head_dim = d;
    desc.head_dim_v = dv;
    desc.dtype = t;
    desc.path = path;
    return desc;
}

/* One case on ctx: it must match the reference, or (expect_unsupported) answer CLATTN_UNSUPPORTED
   naming the head sizes. */
static void check_case(clattn_context *ctx, const small_device *dev, const char *label,
                       const clattn_attention_desc *desc, int want_probs, int expect_unsupported)
{
    tu_case c;
    tu_outcome res;
    memset(&c, 0, sizeof c);
    c.desc = *desc;
    c.want_probs = want_probs;
    c.want_lse = 1;
    c.use_buffers = 1;
    c.seed = 17;
    clattn_clear_messages(ctx);
    tu_run_case(ctx, &c, &res);
    if (expect_unsupported) {
        char dims[64];
        snprintf(dims, sizeof dims, "d=%d dv=%d", desc->head_dim, desc->head_dim_v);
        const char *msg = clattn_context_last_error(ctx);
        print_message("%-28s %-26s UNSUPPORTED: %.160s\n", dev->name, label, msg);
        if (res.status != CLATTN_UNSUPPORTED || !strstr(msg, dims))
            fail_msg("%s, %s: expected CLATTN_UNSUPPORTED naming %s, got %s: %s", dev->name, label,
                     dims, clattn_status_string(res.status), msg);
        return;
    }
    if (!res.ok)
        fail_msg("%s, %s: %s\n%s", dev->name, label, res.msg, clattn_context_last_error(ctx));
    print_message("%-28s %-26s ok (%.2f of the tolerance)\n", dev->name, label, res.out.ratio);
}

static void run_device(const small_device *dev)
{
    clattn_context *ctx = open_small(dev);
    const clattn_path F = CLATTN_PATH_FUSED, U = CLATTN_PATH_UNFUSED;

    /* unfused: qk, softmax, pv (with the scores returned), F32 causal, dv != d */
    clattn_attention_desc d = shape(1, 2, 1, 33, 70, 128, 64, CLATTN_F32, U);
    d.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;
    check_case(ctx, dev, "unfused F32 d128/64 causal", &d, 1, 0);

    /* flash, F16, a dense additive mask */
    d = shape(2, 2, 2, 19, 45, 128, 128, CLATTN_F16, F);
    d.mask_type = CLATTN_MASK_ADDITIVE_F16;
    check_case(ctx, dev, "fused F16 d128 masked", &d, 0, 0);

    /* flash, F32, causal, d = 256 with dv = 128 */
    d = shape(1, 2, 2, 17, 40, 256, 128, CLATTN_F32, F);
    d.causal = CLATTN_CAUSAL_TOP_LEFT;
    check_case(ctx, dev, "fused F32 d256/128 causal", &d, 0, 0);

    /* flash_split (flash_decode on the CPU class) and the merge: decode of a GQA group over 4096
       keys */
    d = shape(1, 4, 1, 1, 4096, 128, 128, CLATTN_F16, F);
    char plan[2048];
    assert_int_equal(clattn_plan_describe(ctx, &d, 0, plan, sizeof plan), CLATTN_SUCCESS);
    const char *decode_family =
        clattn_test_device(ctx)->cls == CLATTN_CLASS_CPU ? "flash_decode " : "flash_split ";
    if (!strstr(plan, decode_family) || !strstr(plan, "merge"))
        fail_msg("%s: the decode does not split on %s:\n%s", dev->name, decode_family, plan);
    check_case(ctx, dev, "split decode F16 Lk4096", &d, 0, 0);

    /* d = dv = 256: the fused kernel's smallest tiles need more than 16 KiB */
    d = shape(1, 2, 2, 20, 37, 256, 256, CLATTN_F16, F);
    check_case(ctx, dev, "fused F16 d256", &d, 0, fused_too_big(dev, 256, 256));
    /* d = dv = 512: more than 32 KiB; the unfused path serves it */
    d = shape(1, 1, 1, 20, 37, 512, 512, CLATTN_F32, F);
    check_case(ctx, dev, "fused F32 d512", &d, 0, fused_too_big(dev, 512, 512));
    d.path = U;
    check_case(ctx, dev, "unfused F32 d512", &d, 0, 0);
    /* AUTO where the fused path cannot run: the unfused path serves it, with a warning */
    d.path = CLATTN_PATH_AUTO;
    check_case(ctx, dev, "auto F32 d512", &d, 0, 0);
    if (fused_too_big(dev, 512, 512) && !strstr(clattn_context_last_warning(ctx), "unfused"))
        fail_msg("%s: AUTO fell back without saying so (last warning: %s)", dev->name,
                 clattn_context_last_warning(ctx));

    /* the multi-head layer: own projections and the fused attention under the same caps */
    clattn_mha_desc md = {0};
    md.batch = 2;
    md.seq_q = md.seq_kv = 9;
    md.embed_dim = 48;
    md.heads_q = 4;
    md.heads_kv = 2;
    md.in_bias = md.out_bias = 1;
    md.causal = CLATTN_CAUSAL_TOP_LEFT;
    md.projections = CLATTN_PROJ_OWN;
    fx_layer L;
    fx_layer_make(&L, &md, 0, 23);
    char label[128];
    snprintf(label, sizeof label, "%s: layer E48 GQA 4/2 causal", dev->name);
    fx_check_layer(ctx, label, &L, 0);
    fx_layer_free(&L);
    clattn_context_release(ctx);
}

#define DEVICE_TEST(fn, cls_, local_, wg_)                                                         \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        const small_device dev = {#fn, cls_, local_, wg_};                                         \
        run_device(&dev);                                                                          \
    }

DEVICE_TEST(cpu_16k_wg64, CLATTN_DEVICE_CLASS_CPU, 16384, 64)
DEVICE_TEST(cpu_32k_wg256, CLATTN_DEVICE_CLASS_CPU, 32768, 256)
DEVICE_TEST(gpu_16k_wg64, CLATTN_DEVICE_CLASS_GPU, 16384, 64)
DEVICE_TEST(gpu_32k_wg256, CLATTN_DEVICE_CLASS_GPU, 32768, 256)
DEVICE_TEST(gpu_16k, CLATTN_DEVICE_CLASS_GPU, 16384, 0)
DEVICE_TEST(gpu_wg64, CLATTN_DEVICE_CLASS_GPU, 0, 64)
DEVICE_TEST(accelerator_16k_wg64, CLATTN_DEVICE_CLASS_ACCELERATOR, 16384, 64)
DEVICE_TEST(accelerator_32k_wg256, CLATTN_DEVICE_CLASS_ACCELERATOR, 32768, 256)

int main(void)
{
    clattn_context_release(tu_context_or_skip(NULL));   /* exits 77 without a device */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_16k_wg64),         cmocka_unit_test(cpu_32k_wg256),
        cmocka_unit_test(gpu_16k_wg64),         cmocka_unit_test(gpu_32k_wg256),
        cmocka_unit_test(gpu_16k),              cmocka_unit_test(gpu_wg64),
        cmocka_unit_test(accelerator_16k_wg64), cmocka_unit_test(accelerator_32k_wg256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
