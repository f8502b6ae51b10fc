/* Cross-attention: decoder queries X_q [B, Lq, E] attend to an encoder memory M [B, Lk, kdim] that
 * serves as both key and value input (x_v NULL), with separate q/k/v projection weights (PyTorch's
 * layout when kdim != E) and a key padding mask: batch entry 1's memory is 4 tokens shorter.
 * Device buffers throughout: the weights are uploaded once and reused by every call, as a model
 * would keep them; the call only enqueues, and a blocking read waits for the result.
 * Checked against clattn_mha_reference.
 *
 * Exit status: 0 matched, 1 mismatch or error, 77 no OpenCL device. */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, LQ = 6, LK = 15, E = 32, KDIM = 24, HEADS = 4, PAD = 4 };

static void fill(float *x, size_t n, float scale, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = scale * ((float)(*state >> 8) / 8388608.0f - 1.0f);
    }
}

static cl_mem upload(cl_context cl, const void *data, size_t bytes)
{
    cl_int err;
    return clCreateBuffer(cl, CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0), bytes, (void *)data,
                          &err);
}

int main(void)
{
    static float wq[E * E], wk[E * KDIM], wv[E * KDIM], in_b[3 * E], wo[E * E], bo[E];
    static float xq[B * LQ * E], mem[B * LK * KDIM], out[B * LQ * E], ref[B * LQ * E];
    static unsigned char mask[B * LK];   /* key padding, [B, Lk]; nonzero: attend */
    unsigned seed = 11;
    fill(wq, E * E, 1.0f / sqrtf(E), &seed);
    fill(wk, E * KDIM, 1.0f / sqrtf(KDIM), &seed);
    fill(wv, E * KDIM, 1.0f / sqrtf(KDIM), &seed);
    fill(in_b, 3 * E, 0.1f, &seed);
    fill(wo, E * E, 1.0f / sqrtf(E), &seed);
    fill(bo, E, 0.1f, &seed);
    fill(xq, B * LQ * E, 1.0f, &seed);
    fill(mem, B * LK * KDIM, 1.0f, &seed);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < LK; j++)
            mask[b * LK + j] = !(b == 1 && j >= LK - PAD);   /* PyTorch's key_padding_mask, negated */

    clattn_mha_desc desc = {0};
    desc.batch = B;
    desc.seq_q = LQ;
    desc.seq_kv = LK;
    desc.embed_dim = E;
    desc.kdim = desc.vdim = KDIM;
    desc.heads_q = HEADS;
    desc.in_bias = desc.out_bias = 1;
    desc.mask_type = CLATTN_MASK_BOOL_U8;
    desc.mask_batch_stride = LK;        /* one row per batch entry, shared by heads ... */
    desc.mask_rows_broadcast = 1;       /* ... and by every query row */

    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "no OpenCL device: %s\n", clattn_status_string(st));
        return st == CLATTN_DEVICE_NOT_FOUND ? 77 : 1;
    }
    printf("device: %s\n", clattn_context_device_name(ctx));
    cl_context cl = clattn_context_cl_context(ctx);

    clattn_mha_weight_buffers w = {0};
    w.q_proj_weight = upload(cl, wq, sizeof wq);
    w.k_proj_weight = upload(cl, wk, sizeof wk);
    w.v_proj_weight = upload(cl, wv, sizeof wv);
    w.in_proj_bias = upload(cl, in_b, sizeof in_b);
    w.out_proj_weight = upload(cl, wo, sizeof wo);
    w.out_proj_bias = upload(cl, bo, sizeof bo);
    cl_mem d_xq = upload(cl, xq, sizeof xq), d_mem = upload(cl, mem, sizeof mem);
    cl_mem d_mask = upload(cl, mask, sizeof mask), d_out = upload(cl, NULL, sizeof out);
    int rc = 1;
    if (!w.q_proj_weight || !w.k_proj_weight || !w.v_proj_weight || !w.in_proj_bias ||
        !w.out_proj_weight || !w.out_proj_bias || !d_xq || !d_mem || !d_mask || !d_out) {
        fprintf(stderr, "clCreateBuffer failed\n");
        goto done;
    }

    /* x_k = the memory, x_v NULL: the value input is the key input */
    st = clattn_mha_forward(ctx, &desc, &w, d_xq, d_mem, NULL, d_mask, d_out, NULL);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_mha_forward: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        rc = st == CLATTN_UNSUPPORTED ? 77 : 1;
        goto done;
    }
    if (clEnqueueReadBuffer(clattn_context_queue(ctx), d_out, CL_TRUE, 0, sizeof out, out, 0, NULL,
                            NULL) != CL_SUCCESS) {
        fprintf(stderr, "reading the result failed\n");
        goto done;
    }

    clattn_mha_weights hw = {0};
    hw.q_proj_weight = wq, hw.k_proj_weight = wk, hw.v_proj_weight = wv;
    hw.in_proj_bias = in_b, hw.out_proj_weight = wo, hw.out_proj_bias = bo;
    char err[256];
    if (clattn_mha_reference(&desc, &hw, xq, mem, NULL, mask, ref, NULL, err, sizeof err) !=
        CLATTN_SUCCESS) {
        fprintf(stderr, "reference: %s\n", err);
        goto done;
    }
    double max_err = 0.0, max_ref = 0.0;
    for (int i = 0; i < B * LQ * E; i++) {
        max_err = fmax(max_err, fabs((double)out[i] - ref[i]));
        max_ref = fmax(max_ref, fabs((double)ref[i]));
    }
    const double tol = 1e-5 * fmax(1.0, max_ref);
    printf("cross-attention, B=%d Lq=%d Lk=%d E=%d kdim=vdim=%d heads=%d, %d padded keys: "
           "max |out - reference| = %.2e (tolerance %.1e): %s\n", B, LQ, LK, E, KDIM, HEADS, PAD,
           max_err, tol, max_err <= tol ? "OK" : "MISMATCH");
    rc = max_err <= tol ? 0 : 1;
done:
    {
        cl_mem all[] = {w.q_proj_weight, w.k_proj_weight, w.v_proj_weight, w.in_proj_bias,
                        w.out_proj_weight, w.out_proj_bias, d_xq, d_mem, d_mask, d_out};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (all[i])
                clReleaseMemObject(all[i]);
    }
    clattn_context_release(ctx);
    return rc;
}
