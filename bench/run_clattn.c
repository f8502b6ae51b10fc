/* clattn's own paths (fused, unfused) on the benchmark's queue. */
#include "bench/bench.h"

#include <stdio.h>
#include <string.h>

typedef struct clattn_run {
    clattn_context *ctx;
    clattn_attention_desc desc;
    cl_mem q, k, v, out;
} clattn_run;

static bench_outcome enqueue(void *state, char *note, size_t note_len)
{
    clattn_run *run = state;
    clattn_status st = clattn_attention(run->ctx, &run->desc, run->q, run->k, run->v, NULL, run->out,
                                        NULL, NULL);
    if (st == CLATTN_SUCCESS)
        return BENCH_OK;
    snprintf(note, note_len, "%s %s", clattn_status_string(st), clattn_context_last_error(run->ctx));
    return st == CLATTN_UNSUPPORTED ? BENCH_UNSUPPORTED : BENCH_FAILED;
}

static bench_outcome run_once(void *state, double *kernel_s, double *wall_s, char *note,
                              size_t note_len)
{
    clattn_run *run = state;
    return bench_time_device(clattn_context_queue(run->ctx), enqueue, state, kernel_s, wall_s, note,
                             note_len);
}

/* --no-tuning: the context ignores the device's tuning file and runs the device-class defaults, so
   that a run with and a run without it measure what tuning (clattn-tune) bought. Called once per
   context, before the warm-up call. */
static void apply_tuning_choice(clattn_context *ctx, int no_tuning)
{
    clattn_context_set_tuning(ctx, !no_tuning);
}

bench_outcome bench_time_clattn_desc(clattn_context *ctx, const clattn_attention_desc *desc,
                                     const bench_buffers *buf, const bench_options *opt,
                                     bench_result *r)
{
    clattn_run run = {ctx, *desc, buf->q, buf->k, buf->v, buf->out};
    return bench_measure(run_once, &run, opt, r);
}

bench_outcome bench_run_clattn(const bench_device *dev, bench_data *data, clattn_path path,
                               clattn_dtype dtype, const bench_options *opt, bench_result *r)
{
    clattn_run run;
    bench_outcome o = BENCH_FAILED;
    memset(&run, 0, sizeof run);
    r->dtype = bench_dtype_name(dtype);

    /* A fresh context per shape and path, so that its scratch high-water mark is this call's. */
    clattn_status st = clattn_context_create_from_queue(dev->queue, &run.ctx);
    if (st != CLATTN_SUCCESS) {
        snprintf(r->note, sizeof r->note, "clattn_context_create_from_queue: %s",
                 clattn_status_string(st));
        goto out;
    }
    apply_tuning_choice(run.ctx, opt->no_tuning);
    bench_shape_desc(&data->shape, dtype, path, &run.desc);
    run.q = data->buf[dtype].q;
    run.k = data->buf[dtype].k;
    run.v = data->buf[dtype].v;
    run.out = data->buf[dtype].out;

    if (bench_data_poison(dev, data, dtype, r->note, sizeof r->note))
        goto out;
    if ((o = bench_measure(run_once, &run, opt, r)) != BENCH_OK)
        goto out;
    r->has_scratch = 1;
    r->scratch_bytes = clattn_context_scratch_bytes(run.ctx);
    o = BENCH_FAILED;
    if (bench_data_read_out(dev, data, dtype, r->note, sizeof r->note))
        goto out;
    o = BENCH_OK;
out:
    clattn_context_release(run.ctx);
    return o;
}

int bench_entry_open(const bench_device *dev, const bench_options *opt, const bench_shape *s,
                     const int dtypes[BENCH_DTYPE_COUNT], bench_data *data, clattn_context **ctx)
{
    char err[512];
    *ctx = NULL;
    if (bench_data_create(dev, s, dtypes, data, err, sizeof err)) {
        printf("  failed: %s\n", err);
        return -1;
    }
    clattn_status st = clattn_context_create_from_queue(dev->queue, ctx);
    if (st != CLATTN_SUCCESS) {
        printf("  failed: clattn_context_create_from_queue: %s\n", clattn_status_string(st));
        bench_data_release(data);
        return -1;
    }
    clattn_context_set_tuning(*ctx, !opt->no_tuning);
    return 0;
}
