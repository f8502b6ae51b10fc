/* The local memory each kernel family says its kernel declares (clattn_family.local_bytes, what
 * valid() holds against the device) against what the compiled kernel reports
 * (CL_KERNEL_LOCAL_MEM_SIZE), for every family, at the device's defaults and at the other device
 * classes' defaults (GPU mapping: several work-items per row, scalar lanes), over shapes that
 * straddle the tiles. An estimate below the kernel's own figure would let a configuration through
 * that the device cannot launch; one far above would refuse configurations that fit. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The kernel may round each __local array up to an alignment; it may not need more than that. */
#define SLACK_BYTES 256
/* An implementation may reserve a few bytes of local memory per kernel beyond its arrays: NVIDIA's
   OpenCL (driver 580, H200) reported 8708 bytes for a kernel whose arrays take 8704. The fit check
   after the build (cache/fit.c) holds the reported figure against the device, so such a reserve
   can turn a configuration at the limit into a fallback, never into a failed launch. */
#define IMPLEMENTATION_RESERVE_BYTES 16

typedef struct shape {
    int B, Hq, Hkv, Lq, Lk, d, dv;
    clattn_dtype dtype;
    clattn_causal causal;
} shape;

static const shape shapes[] = {
    {2, 4, 4, 70, 90, 64, 64, CLATTN_F32, CLATTN_CAUSAL_NONE},        /* prefill */
    {1, 8, 2, 1, 3000, 40, 24, CLATTN_F16, CLATTN_CAUSAL_BOTTOM_RIGHT}, /* decode, split keys */
    {2, 8, 2, 2, 1500, 64, 32, CLATTN_F32, CLATTN_CAUSAL_BOTTOM_RIGHT}, /* decode: flash_decode */
    {1, 6, 3, 33, 33, 128, 80, CLATTN_F32, CLATTN_CAUSAL_TOP_LEFT},   /* GQA, odd dv */
    {1, 2, 2, 17, 5, 7, 7, CLATTN_F16, CLATTN_CAUSAL_NONE},           /* tiny, odd d */
};

typedef struct tally {
    int steps, families_seen;
    const clattn_family *seen[8];
} tally;

static void note_family(tally *t, const clattn_family *f)
{
    for (int i = 0; i < t->families_seen; i++)
        if (t->seen[i] == f)
            return;
    if (t->families_seen < 8)
        t->seen[t->families_seen++] = f;
}

/* Every step of plan: the family's figure against the kernel's. */
static void check_plan(clattn_context *ctx, const clattn_plan *plan, const char *what, tally *t)
{
    for (int i = 0; i < plan->n_steps; i++) {
        const clattn_plan_step *s = &plan->step[i];
        cl_kernel k;
        clattn_status st = clattn_plan_step_kernel(ctx, plan, i, &k);
        if (st != CLATTN_SUCCESS)
            fail_msg("%s, %s: %s", what, s->family->name, clattn_context_last_error(ctx));
        cl_ulong reported = 0;
        assert_int_equal(clGetKernelWorkGroupInfo(k, clattn_context_device(ctx), CL_KERNEL_LOCAL_MEM_SIZE,
                                                  sizeof reported, &reported, NULL),
                         CL_SUCCESS);
        size_t declared = s->family->local_bytes(&s->params, &s->p);
        char params[256];
        clattn_params_string(s->family, &s->params, params, sizeof params);
        printf("  %-11s %-60s declared %6zu  kernel %6llu\n", s->family->name, params, declared,
               (unsigned long long)reported);
        if (declared + IMPLEMENTATION_RESERVE_BYTES < reported || declared > reported + SLACK_BYTES)
            fail_msg("%s, %s (%s): the family declares %zu bytes of local memory, the kernel %llu",
                     what, s->family->name, params, declared, (unsigned long long)reported);
        t->steps++;
        note_family(t, s->family);
    }
}

static void test_local_memory(void **state)
{
    clattn_context *ctx = *state;
    tally t = {0, 0, {NULL}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const shape *sh = &shapes[si];
        clattn_attention_desc desc = {0};
        desc.batch = sh->B;
        desc.heads_q = sh->Hq;
        desc.heads_kv = sh->Hkv;
        desc.seq_q = sh->Lq;
        desc.seq_kv = sh->Lk;
        desc.head_dim = sh->d;
        desc.head_dim_v = sh->dv;
        desc.dtype = sh->dtype;
        desc.causal = sh->causal;
        for (int path = CLATTN_PATH_UNFUSED; path <= CLATTN_PATH_FUSED; path++) {
            desc.path = (clattn_path)path;
            clattn_problem p;
            char err[256];
            assert_int_equal(clattn_problem_init(&desc, &p, err, sizeof err), CLATTN_SUCCESS);
            clattn_test_lock(ctx);
            clattn_plan plan;
            clattn_status st = clattn_plan_resolve(ctx, &p, 0, NULL, &plan);
            if (st != CLATTN_SUCCESS)
                fail_msg("shape %zu: %s", si, clattn_context_last_error(ctx));
            char what[64];
            snprintf(what, sizeof what, "shape %zu, %s path", si,
                     path == CLATTN_PATH_FUSED ? "fused" : "unfused");
            printf("%s, this device's parameters\n", what);
            check_plan(ctx, &plan, what, &t);
            /* each step again at every device class's defaults that fit this device */
            for (int i = 0; i < plan.n_steps; i++)
                for (int cls = CLATTN_CLASS_CPU; cls <= CLATTN_CLASS_ACCELERATOR; cls++) {
                    clattn_plan_config cfg = {plan.step[i].family, {{0}}, 0};
                    char why[256];
                    clattn_params_defaults(cfg.forced_family, (clattn_device_class)cls, &cfg.forced);
                    if (cfg.forced_family->fit_defaults)
                        cfg.forced_family->fit_defaults(&cfg.forced, &plan.step[i].p);
                    if (!cfg.forced_family->valid(&cfg.forced, clattn_test_device(ctx), &plan.step[i].p, why,
                                                  sizeof why))
                        continue;
                    clattn_plan forced;
                    if (clattn_plan_resolve(ctx, &p, 0, &cfg, &forced) != CLATTN_SUCCESS)
                        fail_msg("%s: %s", what, clattn_context_last_error(ctx));
                    snprintf(what, sizeof what, "shape %zu, %s path, class %d defaults", si,
                             path == CLATTN_PATH_FUSED ? "fused" : "unfused", cls);
                    check_plan(ctx, &forced, what, &t);
                }
            clattn_test_unlock(ctx);
        }
    }
    printf("%d kernels of %d families checked\n", t.steps, t.families_seen);
    /* qk, softmax, pv, flash, flash_split, merge; and flash_decode where the device takes it */
    int decode_seen = 0;
    for (int i = 0; i < t.families_seen; i++)
        decode_seen |= t.seen[i] == &clattn_family_flash_decode;
    assert_int_equal(t.families_seen, 6 + decode_seen);
    const clattn_device_info *dev = clattn_test_device(ctx);
    if (dev->cls == CLATTN_CLASS_CPU && !clattn_device_loop_cap(dev))
        assert_true(decode_seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_memory),
    };
    return cmocka_run_group_tests(tests, tu_group_setup, tu_group_teardown);
}
