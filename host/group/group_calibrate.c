/* clattn_group_calibrate: each device's time for a shape class, measured alone and kept in its
 * tuning table (the pseudo family "group_speed", time_ms the measured median), which HEADS plans
 * read to share work in proportion to speed. */
#include "host/group/group.h"
#include "host/cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median ms of repeats runs of desc on ctx after one warm-up (which builds the kernels). */
static clattn_status time_device(clattn_context *ctx, const clattn_attention_desc *sd, int repeats,
                                 void *const buf[4], double *ms)
{
    double t[64];
    for (int r = -1; r < repeats; r++) {
        double t0 = now_ms();
        clattn_status st = clattn_attention_host(ctx, sd, buf[0], buf[1], buf[2], NULL, buf[3], NULL,
                                                 NULL);
        if (st != CLATTN_SUCCESS)
            return st;
        if (r >= 0)
            t[r] = now_ms() - t0;
    }
    qsort(t, (size_t)repeats, sizeof *t, by_value);
    *ms = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_calibrate(clattn_group *g, const clattn_attention_desc *desc, int repeats,
                                     double *ms)
{
    if (!g)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&g->lock);
    clattn_problem p;
    clattn_attention_desc sd;
    clattn_tensor_sizes sz;
    char err[512];
    void *buf[4] = {NULL, NULL, NULL, NULL};
    double times[CLATTN_GROUP_MAX];
    clattn_status st;
    if (!desc) {
        st = clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "desc must not be NULL");
        goto done;
    }
    if (repeats < 0 || repeats > 64) {
        st = clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "repeats = %d must be 0 (3) .. 64", repeats);
        goto done;
    }
    repeats = repeats ? repeats : 3;
    if ((st = clattn_problem_init(desc, &p, err, sizeof err)) != CLATTN_SUCCESS) {
        clattn_group_fail(g, st, "%s", err);
        goto done;
    }
    /* the class's shape without a mask or int8 K/V (an int8 class is timed as its plain twin: the
       shares need the devices' ratio, not the absolute time); inputs of zeros (the kernels' time
       does not depend on the values) */
    clattn_problem_shape_desc(&p, &sd);
    clattn_attention_sizes(&sd, &sz);
    const size_t bytes[4] = {sz.q, sz.k, sz.v, sz.out};
    for (int i = 0; i < 4; i++)
        if (!(buf[i] = calloc(1, bytes[i] ? bytes[i] : 1))) {
            st = clattn_group_fail(g, CLATTN_OUT_OF_MEMORY, "out of host memory for the inputs");
            goto done;
        }
    for (int i = 0; i < g->n; i++) {
        clattn_context *ctx = g->ctx[i];
        if ((st = time_device(ctx, &sd, repeats, buf, &times[i])) != CLATTN_SUCCESS) {
            clattn_group_fail(g, st, "device %d (%s): %s", i, clattn_context_device_name(ctx),
                              clattn_context_last_error(ctx));
            goto done;
        }
    }
    /* every device's entry first, then the files: a failure leaves no device half-recorded */
    const clattn_params unit = {{1}};
    for (int i = 0; i < g->n; i++) {
        clattn_context *ctx = g->ctx[i];
        pthread_mutex_lock(&ctx->lock);
        st = clattn_tuning_put(ctx, &clattn_group_speed_family, &p, &unit, times[i], -1.0);
        pthread_mutex_unlock(&ctx->lock);
        if (st != CLATTN_SUCCESS) {
            clattn_group_fail(g, st, "device %d (%s): %s", i, clattn_context_device_name(ctx),
                              clattn_context_last_error(ctx));
            goto done;
        }
    }
    for (int i = 0; i < g->n; i++) {
        clattn_context *ctx = g->ctx[i];
        int saved;
        pthread_mutex_lock(&ctx->lock);
        st = clattn_tuning_save(ctx, &saved, err, sizeof err);
        pthread_mutex_unlock(&ctx->lock);
        if (st != CLATTN_SUCCESS) {
            clattn_group_fail(g, st, "device %d (%s): its time is recorded in its context but its "
                              "tuning file could not be written: %s", i,
                              clattn_context_device_name(ctx), err);
            goto done;
        }
    }
    if (ms)
        memcpy(ms, times, (size_t)g->n * sizeof *ms);
done:
    for (int i = 0; i < 4; i++)
        free(buf[i]);
    pthread_mutex_unlock(&g->lock);
    return st;
}
