/* clattn-demo: attention for one BERT-base layer (B=4, H=12, L=512, d=64) on the default device,
 * checked against the double-precision reference; prints the device, the time per call and the
 * largest error. Usage: clattn-demo [--device SELECTOR] [--reps N] */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Deterministic N(0,1) inputs, so every run checks the same numbers. */
static void fill_normal(float *x, size_t n, unsigned long long *state)
{
    for (size_t i = 0; i < n; i++) {
        double u[2];
        for (int j = 0; j < 2; j++) {
            *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
            u[j] = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
        }
        x[i] = (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *selector = NULL;
    int reps = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            selector = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--device SELECTOR] [--reps N]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 1000)
        reps = 10;

    clattn_attention_desc desc = {0};
    desc.batch = 4;
    desc.heads_q = 12;
    desc.seq_q = desc.seq_kv = 512;
    desc.head_dim = 64;

    clattn_tensor_sizes sz;
    clattn_attention_sizes(&desc, &sz);
    float *q = malloc(sz.q), *k = malloc(sz.k), *v = malloc(sz.v);
    float *out = malloc(sz.out), *ref = malloc(sz.out);
    int rc = 1;
    clattn_context *ctx = NULL;
    if (!q || !k || !v || !out || !ref) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    unsigned long long seed = 42;
    fill_normal(q, sz.q / 4, &seed);
    fill_normal(k, sz.k / 4, &seed);
    fill_normal(v, sz.v / 4, &seed);

    clattn_status st = clattn_context_create(selector, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no device: %s\n", clattn_status_string(st));
        goto done;
    }
    printf("clattn %s on %s\n", clattn_version(), clattn_context_device_name(ctx));
    printf("shape: B=%d H=%d L=%d d=%d (BERT-base attention), fp32\n", desc.batch, desc.heads_q,
           desc.seq_q, desc.head_dim);

    /* The first call compiles the kernels for this device (or loads them from the binary cache). */
    double t0 = now_s();
    st = clattn_attention_host(ctx, &desc, q, k, v, NULL, out, NULL, NULL);
    double first = now_s() - t0;
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_attention_host: %s\n%s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        goto done;
    }
    double times[1000];
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        st = clattn_attention_host(ctx, &desc, q, k, v, NULL, out, NULL, NULL);
        times[r] = now_s() - t0;
        if (st != CLATTN_SUCCESS) {
            fprintf(stderr, "clattn_attention_host: %s\n", clattn_context_last_error(ctx));
            goto done;
        }
    }
    qsort(times, (size_t)reps, sizeof times[0], cmp_double);
    double med = times[reps / 2];
    double flops = 4.0 * desc.batch * desc.heads_q * (double)desc.seq_q * desc.seq_kv * desc.head_dim;

    clattn_attention_reference(&desc, q, k, v, NULL, ref, NULL, NULL);
    double max_err = 0, max_ref = 0;
    for (size_t i = 0; i < sz.out / 4; i++) {
        double e = fabs((double)out[i] - ref[i]);
        if (!(e <= max_err))
            max_err = e;
        if (fabs(ref[i]) > max_ref)
            max_ref = fabs(ref[i]);
    }
    double tol = 1e-5 * (max_ref > 1 ? max_ref : 1);
    printf("first call (incl. kernel build or cache load): %.1f ms\n", first * 1e3);
    printf("time per call (median of %d, host copies included): %.2f ms, %.1f GFLOP/s\n", reps,
           med * 1e3, flops / med * 1e-9);
    printf("max |out - reference| = %.3g (tolerance %.3g): %s\n", max_err, tol,
           max_err <= tol ? "OK" : "FAILED");
    rc = max_err <= tol ? 0 : 1;
done:
    clattn_context_release(ctx);
    free(q);
    free(k);
    free(v);
    free(out);
    free(ref);
    return rc;
}
