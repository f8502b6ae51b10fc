/* --variants: the cost of the score variants (clattn.h: soft-capping, ALiBi, attention sinks) over
 * plain attention on one shape, the fused path, f32, all on one context and one set of buffers.
 * The variants add work per score (a tanh; a multiply-add; one more term per row), so their cost
 * is a ratio of medians measured in the same run. The configurations run in interleaved rounds
 * and each ratio is the median over rounds of (variant median / plain median of that round), so
 * that a slow phase of a shared machine weighs on both sides of each ratio. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 3
#define MAX_HEADS 64

enum { PLAIN = 0, SOFTCAP, ALIBI, SINKS, ALL, CONFIGS };
static const char *const config_names[CONFIGS] = {"plain", "softcap 50", "ALiBi", "sinks",
                                                  "all three"};

int bench_variants_entry(const bench_device *dev, const bench_options *opt)
{
    const bench_shape *s = bench_suite_find(opt->quick, "bert");
    float slopes[MAX_HEADS], sinks[MAX_HEADS];
    for (int h = 0; h < MAX_HEADS; h++) {
        slopes[h] = powf(2.0f, -8.0f * (float)(h + 1) / (float)(s->Hq < MAX_HEADS ? s->Hq : MAX_HEADS));
        sinks[h] = 0.5f * (float)(h % 3);
    }
    printf("\n== variants on %s: B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d, fused, f32, %d interleaved "
           "rounds\n", s->name, s->B, s->Hq, s->Hkv, s->Lq, s->Lk, s->d, ROUNDS);
    if (s->Hq > MAX_HEADS) {
        printf("  skipped: more than %d heads\n", MAX_HEADS);
        return 0;
    }
    const int dtypes[BENCH_DTYPE_COUNT] = {1, 0, 0};
    bench_data data;
    clattn_context *ctx;
    if (bench_entry_open(dev, opt, s, dtypes, &data, &ctx))
        return -1;

    double ms[CONFIGS][ROUNDS], ratio[CONFIGS][ROUNDS];
    int ok = 1;
    for (int round = 0; round < ROUNDS && ok; round++) {
        for (int c = 0; c < CONFIGS && ok; c++) {
            clattn_attention_desc desc;
            bench_shape_desc(s, CLATTN_F32, CLATTN_PATH_FUSED, &desc);
            if (c == SOFTCAP || c == ALL)
                desc.softcap = 50.0f;   /* Gemma 2's attention cap */
            if (c == ALIBI || c == ALL)
                desc.alibi_slopes = slopes;
            if (c == SINKS || c == ALL)
                desc.sinks = sinks;
            bench_result r;
            memset(&r, 0, sizeof r);
            if (bench_time_clattn_desc(ctx, &desc, &data.buf[CLATTN_F32], opt, &r) != BENCH_OK) {
                printf("  %s: failed: %s\n", config_names[c], r.note);
                ok = 0;
                break;
            }
            ms[c][round] = r.kernel_s.median * 1e3;
        }
        for (int c = 0; c < CONFIGS && ok; c++)
            ratio[c][round] = ms[c][round] / ms[PLAIN][round];
    }
    if (ok) {
        printf("  %-11s %10s %10s\n", "variant", "median ms", "vs plain");
        for (int c = 0; c < CONFIGS; c++) {
            printf("  %-11s %10.3f %+9.1f%%\n", config_names[c], bench_median(ms[c], ROUNDS),
                   100.0 * (bench_median(ratio[c], ROUNDS) - 1.0));
        }
    }
    clattn_context_release(ctx);
    bench_data_release(&data);
    return ok ? 0 : -1;
}
