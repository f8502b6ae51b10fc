/* A causal self-attention layer, as a decoder block runs it: the weights laid out as PyTorch's
 * nn.MultiheadAttention stores them (in_proj_weight [3E, E], in_proj_bias, out_proj), the input
 * X [B, L, E] in host memory, and clattn_mha_forward_host doing the copies. The result is checked
 * against clattn_mha_reference (double precision on the CPU).
 *
 * Exit status: 0 matched, 1 mismatch or error, 77 no OpenCL device. */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 2, L = 10, E = 64, HEADS = 8 };

/* Deterministic uniform numbers in [-scale, scale), so every run checks the same values. */
static void fill(float *x, size_t n, float scale, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = scale * ((float)(*state >> 8) / 8388608.0f - 1.0f);
    }
}

int main(void)
{
    static float in_w[3 * E * E], in_b[3 * E], out_w[E * E], out_b[E];
    static float x[B * L * E], out[B * L * E], ref[B * L * E];
    unsigned seed = 7;
    fill(in_w, 3 * E * E, 1.0f / sqrtf(E), &seed);
    fill(in_b, 3 * E, 0.1f, &seed);
    fill(out_w, E * E, 1.0f / sqrtf(E), &seed);
    fill(out_b, E, 0.1f, &seed);
    fill(x, B * L * E, 1.0f, &seed);

    /* The layer: 8 heads of width 8, PyTorch's is_causal (token i sees tokens 0..i). */
    clattn_mha_desc desc = {0};
    desc.batch = B;
    desc.seq_q = desc.seq_kv = L;
    desc.embed_dim = E;
    desc.heads_q = HEADS;
    desc.in_bias = desc.out_bias = 1;
    desc.causal = CLATTN_CAUSAL_TOP_LEFT;
    clattn_mha_weights w = {0};
    w.in_proj_weight = in_w;
    w.in_proj_bias = in_b;
    w.out_proj_weight = out_w;
    w.out_proj_bias = out_b;

    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);   /* $CLATTN_DEVICE, else the first GPU */
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_status_string(st));
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    printf("device: %s\n", clattn_context_device_name(ctx));

    /* Self-attention: x_k and x_v NULL mean "the query input". */
    st = clattn_mha_forward_host(ctx, &desc, &w, x, NULL, NULL, NULL, out, NULL);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_mha_forward_host: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        clattn_context_release(ctx);
        return st == CLATTN_UNSUPPORTED ? 77 : 1;
    }
    clattn_context_release(ctx);

    char err[256];
    if (clattn_mha_reference(&desc, &w, x, NULL, NULL, NULL, ref, NULL, err, sizeof err) != CLATTN_SUCCESS) {
        fprintf(stderr, "reference: %s\n", err);
        return 1;
    }
    double max_err = 0.0, max_ref = 0.0;
    for (int i = 0; i < B * L * E; i++) {
        max_err = fmax(max_err, fabs((double)out[i] - ref[i]));
        max_ref = fmax(max_ref, fabs((double)ref[i]));
    }
    const double tol = 1e-5 * fmax(1.0, max_ref);
    printf("causal self-attention, B=%d L=%d E=%d heads=%d: max |out - reference| = %.2e (tolerance "
           "%.1e): %s\n", B, L, E, HEADS, max_err, tol, max_err <= tol ? "OK" : "MISMATCH");
    return max_err <= tol ? 0 : 1;
}
