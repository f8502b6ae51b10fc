/* A group of contexts and the plan of a call over them: which split, each device's share (from
 * the speeds clattn_group_calibrate measured, else equal) and the range each device takes. */
#include "host/group/group.h"
#include "host/cache/cache.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int UNIT_ONE[] = {1};
static const clattn_param_def SPEED_PARAMS[] = {{"UNIT", UNIT_ONE, 1, {1, 1, 1}, 1}};
const clattn_family clattn_group_speed_family = {.name = "group_speed", .n_params = 1,
                                                 .params = SPEED_PARAMS};

/* Decode-like calls and very long keys split the keys; see clattn.h. */
enum { KEYS_MAX_LQ = 16, KEYS_MIN_LK = 32768 };

clattn_status clattn_group_fail(clattn_group *g, clattn_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&g->msg_lock);
    vsnprintf(g->last_error, sizeof g->last_error, fmt, ap);
    pthread_mutex_unlock(&g->msg_lock);
    va_end(ap);
    return status;
}

static clattn_status group_new(int n, clattn_group **out)
{
    clattn_group *g = calloc(1, sizeof *g);
    if (!g)
        return CLATTN_OUT_OF_MEMORY;
    g->n = n;
    if (pthread_mutex_init(&g->lock, NULL) != 0 || pthread_mutex_init(&g->msg_lock, NULL) != 0 ||
        pthread_mutex_init(&g->serial_lock, NULL) != 0) {
        free(g);   /* (a mutex that initialised holds nothing to destroy on Linux) */
        return CLATTN_OUT_OF_MEMORY;
    }
    *out = g;
    return CLATTN_SUCCESS;
}

/* Whether two of the group's contexts are on one PoCL platform (see group.h, serial). */
static int needs_serial(const clattn_group *g)
{
    for (int i = 0; i < g->n; i++)
        for (int j = i + 1; j < g->n; j++) {
            const clattn_device_info *a = &g->ctx[i]->info, *b = &g->ctx[j]->info;
            if (strstr(a->platform_name, "Portable Computing Language") &&
                !strcmp(a->platform_name, b->platform_name))
                return 1;
        }
    return 0;
}

clattn_status clattn_group_create(int n, const char *const *selectors,
                                  const clattn_context_options *options, clattn_group **out,
                                  char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || !selectors || n < 1 || n > CLATTN_GROUP_MAX) {
        if (err && err_len)
            snprintf(err, err_len, "clattn_group_create: n = %d must be 1..%d, selectors and out "
                     "not NULL", n, CLATTN_GROUP_MAX);
        return CLATTN_INVALID_ARGUMENT;
    }
    clattn_group *g;
    clattn_status st = group_new(n, &g);
    if (st != CLATTN_SUCCESS)
        return st;
    g->owned = 1;
    for (int i = 0; i < n; i++) {
        st = clattn_context_create_with_options(selectors[i], options, &g->ctx[i]);
        if (st != CLATTN_SUCCESS) {
            if (err && err_len)
                snprintf(err, err_len, "device %d (\"%s\"): %s", i, selectors[i] ? selectors[i] : "",
                         clattn_status_string(st));
            clattn_group_release(g);
            return st;
        }
    }
    g->serial = needs_serial(g);
    *out = g;
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_create_from_contexts(int n, clattn_context *const *contexts,
                                                clattn_group **out)
{
    if (out)
        *out = NULL;
    if (!out || !contexts || n < 1 || n > CLATTN_GROUP_MAX)
        return CLATTN_INVALID_ARGUMENT;
    for (int i = 0; i < n; i++) {
        if (!contexts[i])
            return CLATTN_INVALID_ARGUMENT;
        for (int j = 0; j < i; j++)   /* one context twice would run two parts on one device at
                                         once, and their messages would mix */
            if (contexts[j] == contexts[i])
                return CLATTN_INVALID_ARGUMENT;
    }
    clattn_group *g;
    clattn_status st = group_new(n, &g);
    if (st != CLATTN_SUCCESS)
        return st;
    memcpy(g->ctx, contexts, (size_t)n * sizeof *contexts);
    g->serial = needs_serial(g);
    *out = g;
    return CLATTN_SUCCESS;
}

void clattn_group_release(clattn_group *g)
{
    if (!g)
        return;
    if (g->owned)
        for (int i = 0; i < g->n; i++)
            clattn_context_release(g->ctx[i]);
    pthread_mutex_destroy(&g->lock);
    pthread_mutex_destroy(&g->msg_lock);
    pthread_mutex_destroy(&g->serial_lock);
    free(g);
}

int clattn_group_size(const clattn_group *g)
{
    return g ? g->n : 0;
}

clattn_context *clattn_group_context(const clattn_group *g, int i)
{
    return g && i >= 0 && i < g->n ? g->ctx[i] : NULL;
}

static _Thread_local char returned[CLATTN_GROUP_ERROR_LEN];

const char *clattn_group_last_error(const clattn_group *g)
{
    if (!g)
        return "";
    clattn_group *m = (clattn_group *)g;   /* the lock, not the message, changes */
    pthread_mutex_lock(&m->msg_lock);
    snprintf(returned, sizeof returned, "%s", g->last_error);
    pthread_mutex_unlock(&m->msg_lock);
    return returned;
}

/* Why a key range of desc is not a problem of its own, or NULL when it is. */
static const char *keys_refusal(const clattn_attention_desc *d, int with_probs)
{
    if (with_probs)
        return "probs need every key's score in one place";
    if (d->alibi_slopes)
        return "ALiBi's bias depends on the key's position in the whole sequence";
    if (d->window)
        return "a window's edges depend on the key's position in the whole sequence";
    if (d->causal == CLATTN_CAUSAL_TOP_LEFT)
        return "the top-left causal bound of a key range is not a window of it";
    if (d->mask_type == CLATTN_MASK_ADDITIVE_F32 || d->mask_type == CLATTN_MASK_ADDITIVE_F16)
        return "a row whose keys an additive mask sets to -FLT_MAX merges by part, not by key "
               "(its parts' lse all equal -FLT_MAX)";
    return NULL;
}

/* Each device's time for p's shape class, or -1 when not measured (or not a usable time). */
static double device_time_ms(clattn_context *ctx, const clattn_problem *p)
{
    pthread_mutex_lock(&ctx->lock);
    double t = clattn_tuning_time_ms(ctx, &clattn_group_speed_family, p);
    pthread_mutex_unlock(&ctx->lock);
    return isfinite(t) && t >= 1e-6 ? t : -1.0;
}

clattn_status clattn_group_plan_make(clattn_group *g, const clattn_attention_desc *desc,
                                     int with_probs, clattn_split split, clattn_problem *p,
                                     clattn_group_plan *plan)
{
    char err[512];
    if (!desc || !plan)
        return clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "desc and plan must not be NULL");
    if (split < CLATTN_SPLIT_AUTO || split > CLATTN_SPLIT_KEYS)
        return clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "split = %d is not a clattn_split",
                                 (int)split);
    clattn_status st = clattn_problem_init(desc, p, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        return clattn_group_fail(g, st, "%s", err);
    const char *no_keys = keys_refusal(desc, with_probs);
    if (!no_keys && p->Lk < 1)
        no_keys = "there are no keys to split";
    const long long units_ll = (long long)p->B * (long long)p->Hkv;
    if (units_ll > INT_MAX)
        return clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "B * Hkv = %lld units is over INT_MAX",
                                 units_ll);
    const int units = (int)units_ll;
    if (split == CLATTN_SPLIT_KEYS && no_keys)
        return clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "CLATTN_SPLIT_KEYS: %s", no_keys);
    /* causal prefill split by keys would give the first range almost every query's work */
    if (split == CLATTN_SPLIT_AUTO)
        split = !no_keys && (p->Lq <= KEYS_MAX_LQ ||
                             (desc->causal == CLATTN_CAUSAL_NONE && (p->Lk >= KEYS_MIN_LK || units < g->n)))
                    ? CLATTN_SPLIT_KEYS
                    : CLATTN_SPLIT_HEADS;

    memset(plan, 0, sizeof *plan);
    plan->split = split;
    plan->n = g->n;
    plan->units = split == CLATTN_SPLIT_KEYS ? p->Lk : units;
    double speed[CLATTN_GROUP_MAX], total = 0.0;
    plan->measured = 1;
    for (int i = 0; i < g->n; i++) {
        double t = device_time_ms(g->ctx[i], p);
        if (!(t > 0.0))
            plan->measured = 0;
        speed[i] = t > 0.0 ? 1.0 / t : 0.0;
        total += speed[i];
    }
    if (!isfinite(total) || !(total > 0.0))
        plan->measured = 0;
    double cum = 0.0;
    for (int i = 0; i < g->n; i++) {
        plan->share[i] = plan->measured ? speed[i] / total : 1.0 / g->n;
        long long f = llround(cum * plan->units);
        const int lo = i ? plan->first[i - 1] : 0;   /* monotone, within 0 .. units */
        plan->first[i] = (int)(f < lo ? lo : f > plan->units ? plan->units : f);
        cum += plan->share[i];
    }
    plan->first[0] = 0;
    plan->first[g->n] = plan->units;
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_plan_for(clattn_group *g, const clattn_attention_desc *desc,
                                    int with_probs, clattn_split split, clattn_group_plan *plan)
{
    clattn_problem p;
    if (!g)
        return CLATTN_INVALID_ARGUMENT;
    return clattn_group_plan_make(g, desc, with_probs, split, &p, plan);
}
