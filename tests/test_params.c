/* Every kernel family's valid() on hostile points (host/unfused.c, host/flash.c, host/merge.c):
 * zeros, negatives, values near INT_MAX and pairs whose products wrap a 32-bit int. valid() is
 * called on whatever a tuning entry holds and on every point the tuner and the lookup's fallbacks
 * try, so it must refuse such points without dividing by zero or overflowing (run this under
 * UBSan to see the second), and it must refuse them outright: a point with a parameter <= 0 or
 * of 2^30 and more launches nothing meaningful. No device needed: the device limits are made up.
 * Also checks that every family's defaults are among its candidates, which the lookup relies on
 * (it uses no entry whose values are not). */
#include "testutil.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const clattn_family *const families[] = {
    &clattn_family_qk,    &clattn_family_softmax,     &clattn_family_pv,
    &clattn_family_flash, &clattn_family_flash_split, &clattn_family_merge,
    &clattn_family_flash_decode,
};
#define N_FAMILIES (sizeof families / sizeof *families)

static const int values[] = {INT_MIN, INT_MIN + 1, -65536, -16, -1, 0, 1, 2, 3, 5, 16,
                             65535, 65536, 65537, 1 << 24, 1 << 30, INT_MAX - 1, INT_MAX};
#define N_VALUES (sizeof values / sizeof *values)

/* A value no point may hold. */
static int hostile(int v)
{
    return v <= 0 || v >= (1 << 30);
}

/* A CPU-like and a GPU-like device; the class picks the defaults. */
static clattn_device_info device(clattn_device_class cls)
{
    clattn_device_info dev;
    memset(&dev, 0, sizeof dev);
    snprintf(dev.name, sizeof dev.name, "made up");
    dev.cls = cls;
    dev.compute_units = 8;
    dev.max_work_group = cls == CLATTN_CLASS_CPU ? 4096 : 1024;
    dev.max_work_item[0] = dev.max_work_group;
    dev.max_work_item[1] = dev.max_work_group;
    dev.max_work_item[2] = cls == CLATTN_CLASS_CPU ? 4096 : 64;
    dev.local_mem_bytes = cls == CLATTN_CLASS_CPU ? 4 << 20 : 48 << 10;
    dev.max_alloc_bytes = 1ull << 30;
    dev.global_mem_bytes = 4ull << 30;
    return dev;
}

static clattn_problem problem(int lq, int lk, int d, int hq, int hkv)
{
    clattn_attention_desc desc;
    clattn_problem p;
    memset(&desc, 0, sizeof desc);
    desc.batch = 2;
    desc.heads_q = hq;
    desc.heads_kv = hkv;
    desc.seq_q = lq;
    desc.seq_kv = lk;
    desc.head_dim = d;
    assert_int_equal(clattn_problem_init(&desc, &p, NULL, 0), CLATTN_SUCCESS);
    return p;
}

static int is_candidate(const clattn_param_def *def, int v)
{
    for (int c = 0; c < def->n_candidates; c++)
        if (def->candidates[c] == v)
            return 1;
    return 0;
}

static void test_defaults_are_candidates(void **state)
{
    (void)state;
    for (size_t f = 0; f < N_FAMILIES; f++)
        for (int cls = 0; cls < 3; cls++)
            for (int i = 0; i < families[f]->n_params; i++) {
                const clattn_param_def *def = &families[f]->params[i];
                if (!is_candidate(def, def->default_value[cls]))
                    fail_msg("%s: the default %s=%d of class %d is not a candidate", families[f]->name,
                             def->name, def->default_value[cls], cls);
            }
}

/* valid(pt) on dev and p: refused when hostile says so, and never a crash. why is kept short on
   purpose: the message is cut, not overrun. */
static void expect(const clattn_family *f, const clattn_params *pt, const clattn_device_info *dev,
                   const clattn_problem *p, int must_refuse)
{
    char why[40];
    int ok = f->valid(pt, dev, p, why, sizeof why);
    if (ok && must_refuse) {
        char text[256];
        size_t used = 0;
        for (int i = 0; i < f->n_params; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, " %s=%d", f->params[i].name,
                                     pt->v[i]);
        fail_msg("%s accepts%s", f->name, text);
    }
}

static void test_hostile_points(void **state)
{
    (void)state;
    const clattn_problem problems[] = {problem(20, 37, 16, 2, 2), problem(1, 2048, 128, 8, 1),
                                       problem(300, 300, 512, 4, 4)};
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const clattn_family *fam = families[f];
        for (int cls = CLATTN_CLASS_CPU; cls <= CLATTN_CLASS_GPU; cls++) {
            const clattn_device_info dev = device((clattn_device_class)cls);
            clattn_params def;
            clattn_params_defaults(fam, dev.cls, &def);
            for (size_t pi = 0; pi < sizeof problems / sizeof *problems; pi++) {
                const clattn_problem *p = &problems[pi];
                clattn_params pt;
                /* one parameter at a time, the others at the defaults */
                for (int i = 0; i < fam->n_params; i++)
                    for (size_t a = 0; a < N_VALUES; a++) {
                        pt = def;
                        pt.v[i] = values[a];
                        expect(fam, &pt, &dev, p, hostile(values[a]));
                    }
                /* two at a time: the products of pairs (VW*RM, WPR*UNROLL, WPT_M*WPT_N) */
                for (int i = 0; i < fam->n_params; i++)
                    for (int j = i + 1; j < fam->n_params; j++)
                        for (size_t a = 0; a < N_VALUES; a++)
                            for (size_t b = 0; b < N_VALUES; b++) {
                                pt = def;
                                pt.v[i] = values[a];
                                pt.v[j] = values[b];
                                expect(fam, &pt, &dev, p, hostile(values[a]) || hostile(values[b]));
                            }
                /* all at once */
                for (size_t a = 0; a < N_VALUES; a++) {
                    for (int i = 0; i < fam->n_params; i++)
                        pt.v[i] = values[a];
                    expect(fam, &pt, &dev, p, hostile(values[a]));
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_candidates),
        cmocka_unit_test(test_hostile_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
