/* The shape suites and what each shape costs: FLOPs, K/V bytes, the score matrix. */
#include "bench/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fp32, BHSD, dv = d; causal is bottom-right. A windowed shape follows the causal one of the same
   sizes, its partner, so that the window's speed-up over full causal attention is a ratio of
   medians from one run (main.c prints it after the table). */
static const bench_shape default_suite[] = {
    {"bert", 4, 12, 12, 512, 512, 64, 0, 0},
    {"gpt2-causal", 1, 12, 12, 1024, 1024, 64, 1, 0},
    {"llama-gqa-causal", 1, 32, 8, 2048, 2048, 128, 1, 0},
    {"decode", 8, 32, 8, 1, 4096, 128, 0, 0},
    {"long", 1, 8, 8, 8192, 8192, 64, 0, 0},
    {"long-causal", 1, 8, 8, 8192, 8192, 64, 1, 0},
    {"long-window512", 1, 8, 8, 8192, 8192, 64, 1, 512},
};

/* The same kinds, small enough to finish in seconds on two cores. Some lengths are deliberately
   not multiples of any power of two, so tile edges are exercised on every --quick run. */
static const bench_shape quick_suite[] = {
    {"bert-q", 2, 4, 4, 128, 128, 64, 0, 0},
    {"gpt2-causal-q", 1, 4, 4, 300, 300, 64, 1, 0},
    {"llama-gqa-causal-q", 1, 8, 2, 200, 200, 128, 1, 0},
    {"decode-q", 2, 8, 2, 1, 1000, 128, 0, 0},
    {"long-q", 1, 2, 2, 1536, 1536, 64, 0, 0},
    {"long-causal-q", 1, 2, 2, 1536, 1536, 64, 1, 0},
    {"long-window128-q", 1, 2, 2, 1536, 1536, 64, 1, 128},
};

_Static_assert(sizeof default_suite / sizeof default_suite[0] <= BENCH_MAX_SHAPES &&
                   sizeof quick_suite / sizeof quick_suite[0] <= BENCH_MAX_SHAPES,
               "a suite longer than BENCH_MAX_SHAPES: raise it (bench.h)");

const bench_shape *bench_suite(int quick, int *count)
{
    if (quick) {
        *count = (int)(sizeof quick_suite / sizeof quick_suite[0]);
        return quick_suite;
    }
    *count = (int)(sizeof default_suite / sizeof default_suite[0]);
    return default_suite;
}

const bench_shape *bench_suite_find(int quick, const char *prefix)
{
    int n;
    const bench_shape *suite = bench_suite(quick, &n);
    for (int i = 0; i < n; i++)
        if (strncmp(suite[i].name, prefix, strlen(prefix)) == 0)
            return &suite[i];
    return &suite[0];
}

#define SHAPE_SYNTAX "B,Hq,Hkv,Lq,Lk,d[,causal[,window=W]]"

int bench_shape_parse(const char *text, bench_shape *out, char *err, size_t err_len)
{
    /* B, Hq, Hkv, Lq, Lk, d, causal, window */
    long f[8] = {0};
    int n = 0;
    const char *p = text;
    memset(out, 0, sizeof *out);
    while (*p && n < 8) {
        char *end;
        if (n == 6 && strncmp(p, "window=", 7) == 0)
            f[n++] = 0;   /* the causal field left out: a window bounds the keys above anyway */
        if (n == 6 && strncmp(p, "causal", 6) == 0) {
            f[n++] = 1;
            p += 6;
        } else {
            if (n == 7 && strncmp(p, "window=", 7) == 0)
                p += 7;
            f[n++] = strtol(p, &end, 10);
            if (end == p)
                break;
            p = end;
        }
        if (*p == ',')
            p++;
        else
            break;
    }
    if (*p || n < 6) {
        snprintf(err, err_len, "--shape \"%s\": expected " SHAPE_SYNTAX, text);
        return -1;
    }
    if (f[0] < 1 || f[1] < 1 || f[2] < 1 || f[3] < 1 || f[4] < 1 || f[5] < 1 || f[5] > 512 ||
        f[1] % f[2] != 0 || f[6] < 0 || f[6] > 1 || f[7] < 0) {
        snprintf(err, err_len,
                 "--shape \"%s\": need positive sizes, d <= 512, Hq a multiple of Hkv, causal 0/1, "
                 "window >= 0", text);
        return -1;
    }
    for (int i = 0; i < 8; i++)
        if (f[i] > 1 << 30) {
            snprintf(err, err_len, "--shape \"%s\": size %ld too large", text, f[i]);
            return -1;
        }
    snprintf(out->name, sizeof out->name, "custom");
    out->B = (int)f[0];
    out->Hq = (int)f[1];
    out->Hkv = (int)f[2];
    out->Lq = (int)f[3];
    out->Lk = (int)f[4];
    out->d = (int)f[5];
    out->causal = (int)f[6];
    out->window = (int)f[7];
    return 0;
}

int bench_shape_visible(const bench_shape *s, int i, int *lo)
{
    /* i' = i + Lk - Lq: the query's position aligned bottom-right. The window's right edge is 0,
       so a window bounds the keys above as the causal rule does. */
    const long ip = (long)i + s->Lk - s->Lq;
    long first = 0, last = s->Lk - 1;
    if (s->causal || s->window)
        last = ip < last ? ip : last;
    if (s->window)
        first = ip - s->window > 0 ? ip - s->window : 0;
    *lo = (int)(first < s->Lk ? first : s->Lk);
    return last >= first ? (int)(last - first + 1) : 0;
}

double bench_shape_flops(const bench_shape *s)
{
    /* Two products of 2·Lq·Lk·d each; causal is counted as half, as FlashAttention reports it.
       A window is counted by the pairs it shows: half of L² would overstate it L/(2w) times. */
    if (s->window) {
        double pairs = 0;
        int lo;
        for (int i = 0; i < s->Lq; i++)
            pairs += bench_shape_visible(s, i, &lo);
        return 4.0 * s->B * s->Hq * pairs * s->d;
    }
    double flops = 4.0 * s->B * s->Hq * (double)s->Lq * s->Lk * s->d;
    return s->causal ? flops / 2 : flops;
}

int bench_shape_is_window_partner(const bench_shape *window, const bench_shape *full)
{
    return window->window > 0 && full->window == 0 && full->causal && window->B == full->B &&
           window->Hq == full->Hq && window->Hkv == full->Hkv && window->Lq == full->Lq &&
           window->Lk == full->Lk && window->d == full->d;
}

double bench_shape_kv_bytes(const bench_shape *s, size_t elem_size)
{
    /* The keys some row sees: from the first row's window (0 without one) to the end. */
    int lo;
    bench_shape_visible(s, 0, &lo);
    return 2.0 * s->B * s->Hkv * (double)(s->Lk - lo) * s->d * (double)elem_size;
}

double bench_shape_score_bytes(const bench_shape *s)
{
    return (double)s->B * s->Hq * (double)s->Lq * s->Lk * sizeof(float);
}

int bench_shape_is_decode(const bench_shape *s)
{
    return s->Lq == 1;
}

void bench_shape_desc(const bench_shape *s, clattn_dtype dtype, clattn_path path,
                      clattn_attention_desc *desc)
{
    memset(desc, 0, sizeof *desc);
    desc->batch = s->B;
    desc->heads_q = s->Hq;
    desc->heads_kv = s->Hkv;
    desc->seq_q = s->Lq;
    desc->seq_kv = s->Lk;
    desc->head_dim = s->d;
    desc->head_dim_v = s->d;
    /* Spelled out, so that the baselines (which pass it as the GEMM's alpha) use the same float. */
    desc->scale = 1.0f / sqrtf((float)s->d);
    desc->dtype = dtype;
    desc->layout = CLATTN_LAYOUT_BHSD;
    desc->causal = s->causal ? CLATTN_CAUSAL_BOTTOM_RIGHT : CLATTN_CAUSAL_NONE;
    if (s->window > 0) {
        desc->window = 1;
        desc->window_left = s->window;
        desc->window_right = 0;
    }
    desc->mask_type = CLATTN_MASK_NONE;
    desc->path = path;
}

void bench_serving_decode(int quick, bench_serving_batch *out)
{
    /* log-normal context lengths (sigma 1, fixed seed) around the median, one sequence at the
       longest: a long tail, as a server's mix of short chats and long documents has */
    memset(out, 0, sizeof *out);
    out->B = quick ? 16 : 64;
    out->Hq = 32;
    out->Hkv = 8;
    out->d = 128;
    out->block_size = 16;
    const int longest = quick ? 4096 : 16384, median = quick ? 512 : 1024;
    unsigned long long s = 20261203;
    for (int b = 0; b < out->B; b++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u1 = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const double u2 = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        const double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        double len = median * exp(z);
        len = len < 16 ? 16 : len > longest ? longest : len;
        out->lk[b] = b == out->B / 2 ? longest : (int)len;
        out->lq[b] = 1;
    }
}
