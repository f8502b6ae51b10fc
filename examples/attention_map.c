/* Reading a layer's attention map: a small causal self-attention layer runs on a sentence with
 * attn_weights requested (float32 [B, heads, Lq, Lk], through the unfused path), and
 * clattn_attention_map_png draws them with the words on the axes: every head in a grid
 * (attention_map_heads.png) and their mean (attention_map_mean.png), masked future tokens grey.
 * The weights are checked against clattn_mha_reference, and each row must sum to 1.
 *
 * Exit status: 0 matched and written, 1 mismatch or error, 77 no OpenCL device (or a build
 * without CLBlast or libpng). */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 10, E = 32, HEADS = 4 };

static const char *const words[L] = {"the", "cat", "sat", "on", "the", "mat", "because", "it", "was",
                                     "warm"};

static void fill(float *x, size_t n, float scale, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = scale * ((float)(*state >> 8) / 8388608.0f - 1.0f);
    }
}

/* Token embeddings: a vector per distinct word plus the sinusoidal position encoding, so that the
   two "the"s differ only by position. */
static void embed(float *x)
{
    for (int i = 0; i < L; i++) {
        unsigned seed = 1;
        for (const char *c = words[i]; *c; c++)
            seed = seed * 31u + (unsigned char)*c;
        fill(x + i * E, E, 1.0f, &seed);
        for (int k = 0; k < E / 2; k++) {
            const double w = pow(10000.0, -2.0 * k / E);
            x[i * E + 2 * k] += (float)sin(i * w);
            x[i * E + 2 * k + 1] += (float)cos(i * w);
        }
    }
}

int main(void)
{
    static float in_w[3 * E * E], out_w[E * E], x[L * E], out[L * E];
    static float wts[HEADS * L * L], ref[HEADS * L * L];
    unsigned seed = 5;
    fill(in_w, 3 * E * E, 2.0f / sqrtf(E), &seed);
    fill(out_w, E * E, 1.0f / sqrtf(E), &seed);
    embed(x);

    clattn_mha_desc desc = {0};
    desc.batch = 1;
    desc.seq_q = desc.seq_kv = L;
    desc.embed_dim = E;
    desc.heads_q = HEADS;
    desc.causal = CLATTN_CAUSAL_TOP_LEFT;
    clattn_mha_weights w = {0};
    w.in_proj_weight = in_w;
    w.out_proj_weight = out_w;

    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_status_string(st));
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    printf("device: %s\n", clattn_context_device_name(ctx));
    int rc = 1;
    st = clattn_mha_forward_host(ctx, &desc, &w, x, NULL, NULL, NULL, out, wts);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_mha_forward_host: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        rc = st == CLATTN_UNSUPPORTED ? 77 : 1;
        goto done;
    }

    /* The weights: as the reference has them, rows summing to 1, the future exactly 0. */
    char err[256];
    if (clattn_mha_reference(&desc, &w, x, NULL, NULL, NULL, NULL, ref, err, sizeof err) !=
        CLATTN_SUCCESS) {
        fprintf(stderr, "reference: %s\n", err);
        goto done;
    }
    double max_err = 0.0, worst_sum = 0.0;
    int future = 0;
    for (int h = 0; h < HEADS; h++)
        for (int i = 0; i < L; i++) {
            double sum = 0.0;
            for (int j = 0; j < L; j++) {
                const float p = wts[(h * L + i) * L + j];
                max_err = fmax(max_err, fabs((double)p - ref[(h * L + i) * L + j]));
                sum += p;
                future += j > i && p != 0.0f;
            }
            worst_sum = fmax(worst_sum, fabs(sum - 1.0));
        }
    printf("attention weights: max |w - reference| = %.2e, worst |row sum - 1| = %.2e, %d future "
           "weights not 0\n", max_err, worst_sum, future);
    if (max_err > 1e-5 || worst_sum > 1e-5 || future) {
        fprintf(stderr, "MISMATCH\n");
        goto done;
    }

    /* Most attended earlier word of the last token, per head: what the picture's bottom row shows. */
    for (int h = 0; h < HEADS; h++) {
        const float *row = wts + (h * L + L - 1) * L;
        int best = 0;
        for (int j = 1; j < L; j++)
            if (row[j] > row[best])
                best = j;
        printf("  head %d: \"%s\" attends most to \"%s\" (%.2f)\n", h, words[L - 1], words[best],
               row[best]);
    }

    clattn_attention_map_desc map = {0};
    map.batch = 1, map.heads = HEADS, map.seq_q = map.seq_kv = L;
    map.q_labels = map.k_labels = words;
    map.head = CLATTN_MAP_GRID;
    st = clattn_attention_map_png(ctx, &map, wts, "attention_map_heads.png");
    if (st == CLATTN_SUCCESS) {
        map.head = CLATTN_MAP_MEAN;
        map.title = "mean over heads: the cat sat on the mat";
        st = clattn_attention_map_png(ctx, &map, wts, "attention_map_mean.png");
    }
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_attention_map_png: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        rc = st == CLATTN_UNSUPPORTED ? 77 : 1;
        goto done;
    }
    printf("wrote attention_map_heads.png and attention_map_mean.png\n");
    rc = 0;
done:
    clattn_context_release(ctx);
    return rc;
}
