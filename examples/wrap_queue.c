/* clattn inside an application that already owns its OpenCL context and command queue: the queue is
 * wrapped with clattn_context_create_from_queue, so clattn's kernels run in order with the
 * application's own commands, on its buffers, with no extra synchronisation. Here the application
 * uploads Q, K and V with non-blocking writes, clattn enqueues grouped-query attention behind them,
 * and the application's blocking read returns the result. Releasing the clattn context leaves the
 * queue to its owner. Checked against clattn_attention_reference.
 *
 * Exit status: 0 matched, 1 mismatch or error, 77 no OpenCL device. */
#include <clattn.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 2, HQ = 8, HKV = 2, LQ = 33, LK = 47, D = 40 };

static void fill(float *x, size_t n, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = (float)(*state >> 8) / 8388608.0f - 1.0f;
    }
}

/* The application's own setup: the first device of the first platform that has one. */
static int open_device(cl_context *cl, cl_command_queue *queue)
{
    cl_platform_id platforms[16];
    cl_uint n = 0;
    if (clGetPlatformIDs(16, platforms, &n) != CL_SUCCESS)
        n = 0;
    for (cl_uint p = 0; p < n && p < 16; p++) {
        cl_device_id dev;
        cl_int err;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 1, &dev, NULL) != CL_SUCCESS)
            continue;
        *cl = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
        if (!*cl)
            return -1;
        *queue = clCreateCommandQueue(*cl, dev, 0, &err);
        return *queue ? 0 : -1;
    }
    return 1;   /* no device */
}

int main(void)
{
    cl_context cl = NULL;
    cl_command_queue queue = NULL;
    int rc = open_device(&cl, &queue);
    if (rc) {
        fprintf(stderr, rc > 0 ? "no OpenCL device\n" : "OpenCL setup failed\n");
        if (cl)
            clReleaseContext(cl);
        return rc > 0 ? 77 : 1;
    }
    rc = 1;

    clattn_attention_desc desc = {0};
    desc.batch = B;
    desc.heads_q = HQ;
    desc.heads_kv = HKV;   /* grouped-query: 4 query heads per KV head */
    desc.seq_q = LQ;
    desc.seq_kv = LK;
    desc.head_dim = D;
    desc.causal = CLATTN_CAUSAL_BOTTOM_RIGHT;   /* the last query sees every key (KV-cache decoding) */
    clattn_tensor_sizes sz;
    clattn_attention_sizes(&desc, &sz);
    float *q = malloc(sz.q), *k = malloc(sz.k), *v = malloc(sz.v), *out = malloc(sz.out),
          *ref = malloc(sz.out);
    cl_mem bq = NULL, bk = NULL, bv = NULL, bo = NULL;
    clattn_context *ctx = NULL;
    if (!q || !k || !v || !out || !ref)
        goto done;
    unsigned seed = 3;
    fill(q, sz.q / 4, &seed);
    fill(k, sz.k / 4, &seed);
    fill(v, sz.v / 4, &seed);

    cl_int err;
    bq = clCreateBuffer(cl, CL_MEM_READ_ONLY, sz.q, NULL, &err);
    bk = clCreateBuffer(cl, CL_MEM_READ_ONLY, sz.k, NULL, &err);
    bv = clCreateBuffer(cl, CL_MEM_READ_ONLY, sz.v, NULL, &err);
    bo = clCreateBuffer(cl, CL_MEM_WRITE_ONLY, sz.out, NULL, &err);
    if (!bq || !bk || !bv || !bo)
        goto done;

    clattn_status st = clattn_context_create_from_queue(queue, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_context_create_from_queue: %s\n", clattn_status_string(st));
        goto done;
    }
    printf("wrapped the application's queue on %s\n", clattn_context_device_name(ctx));

    /* The application's commands and clattn's share the in-order queue: no waits in between. */
    clEnqueueWriteBuffer(queue, bq, CL_FALSE, 0, sz.q, q, 0, NULL, NULL);
    clEnqueueWriteBuffer(queue, bk, CL_FALSE, 0, sz.k, k, 0, NULL, NULL);
    clEnqueueWriteBuffer(queue, bv, CL_FALSE, 0, sz.v, v, 0, NULL, NULL);
    st = clattn_attention(ctx, &desc, bq, bk, bv, NULL, bo, NULL, NULL);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn_attention: %s: %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        rc = st == CLATTN_UNSUPPORTED ? 77 : 1;
        goto done;
    }
    if (clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, sz.out, out, 0, NULL, NULL) != CL_SUCCESS)
        goto done;

    clattn_attention_reference(&desc, q, k, v, NULL, ref, NULL, NULL);
    double max_err = 0.0, max_ref = 0.0;
    for (size_t i = 0; i < sz.out / 4; i++) {
        max_err = fmax(max_err, fabs((double)out[i] - ref[i]));
        max_ref = fmax(max_ref, fabs((double)ref[i]));
    }
    const double tol = 1e-5 * fmax(1.0, max_ref);
    printf("GQA attention B=%d Hq=%d Hkv=%d Lq=%d Lk=%d d=%d, causal: max |out - reference| = %.2e "
           "(tolerance %.1e): %s\n", B, HQ, HKV, LQ, LK, D, max_err, tol,
           max_err <= tol ? "OK" : "MISMATCH");
    rc = max_err <= tol ? 0 : 1;
done:
    clattn_context_release(ctx);   /* drops clattn's reference; the queue stays the application's */
    if (rc == 0 && clFinish(queue) != CL_SUCCESS) {
        fprintf(stderr, "the application's queue is unusable after clattn released it\n");
        rc = 1;
    }
    cl_mem all[] = {bq, bk, bv, bo};
    for (int i = 0; i < 4; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    clReleaseCommandQueue(queue);
    clReleaseContext(cl);
    free(q), free(k), free(v), free(out), free(ref);
    return rc;
}
