/* clattn_group_attention_host: one call shared out over a group's devices.
 *
 * The plan (group.c) gives each device a range. Each range becomes one or more parts: a problem of
 * its own in packed host memory, gathered from the caller's tensors by the device's thread and run
 * there with clattn_attention_host. HEADS parts are runs of (KV head g, batch entries b0..b0+nb-1)
 * with their GQA group's query heads; KEYS parts are key ranges over every query, their causal
 * bound turned into the right edge of a window. Only when every part succeeded are the results
 * written where the caller wants them (scattered, or merged by lse), so a failure leaves the
 * caller's memory as it was. */
#include "host/group/group.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct part {
    int device;
    clattn_attention_desc desc;   /* the part's own problem */
    int g, b0, nb;                /* HEADS: KV head g, batch entries b0 .. b0+nb-1 */
    int j0, j1;                   /* KEYS: keys j0 .. j1-1 */
    void *q, *k, *v;              /* packed inputs (HEADS: q too; KEYS: q is the caller's) */
    float *k_scale, *v_scale;
    void *out;
    float *probs, *lse;
    clattn_status status;
    char err[CLATTN_GROUP_ERROR_LEN / 2];
} part;

typedef struct call {
    clattn_group *g;
    const clattn_attention_desc *desc;
    const clattn_problem *p;
    const clattn_group_plan *plan;
    const void *q, *k, *v, *mask;
    int want_probs;
    part *parts;
    int n_parts;
} call;

/* Copies the box start .. start+count of a row-major 4-D array of dims (elem bytes each) to
   (to_full 0) or from (to_full 1) a packed array of count. */
static void box_copy(unsigned char *packed, unsigned char *full, const int dims[4], const int start[4],
                     const int count[4], size_t elem, int to_full)
{
    const size_t row = (size_t)count[3] * elem;
    for (int a = 0; a < count[0]; a++)
        for (int b = 0; b < count[1]; b++)
            for (int c = 0; c < count[2]; c++) {
                size_t f = ((((size_t)(start[0] + a) * (size_t)dims[1] + (size_t)(start[1] + b)) *
                                 (size_t)dims[2] + (size_t)(start[2] + c)) * (size_t)dims[3] +
                            (size_t)start[3]) * elem;
                size_t pk = (((size_t)a * (size_t)count[1] + (size_t)b) * (size_t)count[2] + (size_t)c) * row;
                if (to_full)
                    memcpy(full + f, packed + pk, row);
                else
                    memcpy(packed + pk, full + f, row);
            }
}

/* The 4-D view of a [B, H, L, dim] tensor in desc's layout, and the box of heads h0..h0+nh-1,
   batch entries b0..b0+nb-1 and positions l0..l0+nl-1 in it. dim 1 views scales and lse. */
static void view(const clattn_attention_desc *d, int B, int H, int L, int dim, int b0, int nb, int h0,
                 int nh, int l0, int nl, int dims[4], int start[4], int count[4])
{
    const int bshd = d->layout == CLATTN_LAYOUT_BSHD;
    const int D[4] = {B, bshd ? L : H, bshd ? H : L, dim};
    const int S[4] = {b0, bshd ? l0 : h0, bshd ? h0 : l0, 0};
    const int C[4] = {nb, bshd ? nl : nh, bshd ? nh : nl, dim};
    memcpy(dims, D, sizeof D);
    memcpy(start, S, sizeof S);
    memcpy(count, C, sizeof C);
}

static void *gather(const clattn_attention_desc *d, const void *src, size_t elem, int B, int H, int L,
                    int dim, int b0, int nb, int h0, int nh, int l0, int nl)
{
    int dims[4], start[4], count[4];
    view(d, B, H, L, dim, b0, nb, h0, nh, l0, nl, dims, start, count);
    size_t bytes = (size_t)nb * (size_t)nh * (size_t)nl * (size_t)dim * elem;
    unsigned char *dst = malloc(bytes ? bytes : 1);
    if (dst)
        box_copy(dst, (unsigned char *)src, dims, start, count, elem, 0);
    return dst;
}

static size_t kv_elem(const clattn_attention_desc *d)
{
    return d->kv_storage == CLATTN_KV_INT8 ? 1 : clattn_dtype_size(d->dtype);
}

/* The part's problem, gathered; runs on the device's thread. */
static clattn_status run_part(const call *c, part *pt)
{
    const clattn_attention_desc *d = c->desc;
    const clattn_problem *p = c->p;
    const size_t qe = clattn_dtype_size(d->dtype), ke = kv_elem(d);
    const int keys = c->plan->split == CLATTN_SPLIT_KEYS;
    const int G = p->Hq / p->Hkv;
    const void *q = c->q;
    const unsigned char *mask = c->mask;
    const size_t me = clattn_mask_elem_size(d->mask_type);
    clattn_attention_desc *s = &pt->desc;
    *s = *d;
    if (keys) {
        const int nk = pt->j1 - pt->j0;
        s->seq_kv = nk;
        pt->k = gather(d, c->k, ke, p->B, p->Hkv, p->Lk, p->d, 0, p->B, 0, p->Hkv, pt->j0, nk);
        pt->v = gather(d, c->v, ke, p->B, p->Hkv, p->Lk, p->dv, 0, p->B, 0, p->Hkv, pt->j0, nk);
        if (d->kv_storage == CLATTN_KV_INT8) {
            pt->k_scale = gather(d, d->k_scale_host, 4, p->B, p->Hkv, p->Lk, 1, 0, p->B, 0, p->Hkv, pt->j0, nk);
            pt->v_scale = gather(d, d->v_scale_host, 4, p->B, p->Hkv, p->Lk, 1, 0, p->B, 0, p->Hkv, pt->j0, nk);
        }
        if (d->causal == CLATTN_CAUSAL_BOTTOM_RIGHT) {
            /* key j0+j' is visible from query i iff j0+j' <= i + Lk - Lq, i.e. j' <= i' + (Lk - j1)
               with i' = i + nk - Lq: a window unbounded on the left */
            s->causal = CLATTN_CAUSAL_NONE;
            s->window = 1;
            s->window_left = -1;
            s->window_right = p->Lk - pt->j1;
        }
        if (mask) {
            mask += (size_t)pt->j0 * me;
            if (!d->mask_rows_broadcast && d->mask_row_stride == 0)
                s->mask_row_stride = p->Lk;   /* 0 meant the whole row, Lk */
        }
        if (pt->j0 != c->parts[0].j0 || pt->device != c->parts[0].device)
            s->sinks = NULL;   /* each sink joins one denominator once: the first part's */
        pt->out = malloc(p->bytes.out ? p->bytes.out : 1);
        pt->lse = malloc((size_t)p->B * (size_t)p->Hq * (size_t)p->Lq * sizeof(float) + 1);
    } else {
        s->batch = pt->nb;
        s->heads_q = G;
        s->heads_kv = 1;
        pt->q = gather(d, c->q, qe, p->B, p->Hq, p->Lq, p->d, pt->b0, pt->nb, pt->g * G, G, 0, p->Lq);
        pt->k = gather(d, c->k, ke, p->B, p->Hkv, p->Lk, p->d, pt->b0, pt->nb, pt->g, 1, 0, p->Lk);
        pt->v = gather(d, c->v, ke, p->B, p->Hkv, p->Lk, p->dv, pt->b0, pt->nb, pt->g, 1, 0, p->Lk);
        if (d->kv_storage == CLATTN_KV_INT8) {
            pt->k_scale = gather(d, d->k_scale_host, 4, p->B, p->Hkv, p->Lk, 1, pt->b0, pt->nb, pt->g, 1, 0, p->Lk);
            pt->v_scale = gather(d, d->v_scale_host, 4, p->B, p->Hkv, p->Lk, 1, pt->b0, pt->nb, pt->g, 1, 0, p->Lk);
        }
        if (d->alibi_slopes)
            s->alibi_slopes = d->alibi_slopes + (size_t)pt->g * (size_t)G;
        if (d->sinks)
            s->sinks = d->sinks + (size_t)pt->g * (size_t)G;
        if (mask)
            mask += ((size_t)pt->b0 * (size_t)d->mask_batch_stride +
                     (size_t)pt->g * (size_t)G * (size_t)d->mask_head_stride) * me;
        q = pt->q;
        const size_t rows = (size_t)pt->nb * (size_t)G * (size_t)p->Lq;
        pt->out = malloc(rows * (size_t)p->dv * qe + 1);
        pt->lse = malloc(rows * sizeof(float) + 1);
        if (c->want_probs)
            pt->probs = malloc(rows * (size_t)p->Lk * sizeof(float) + 1);
    }
    s->k_scale_host = pt->k_scale;
    s->v_scale_host = pt->v_scale;
    if ((!keys && !pt->q) || !pt->k || !pt->v || !pt->out || !pt->lse || (c->want_probs && !pt->probs) ||
        (d->kv_storage == CLATTN_KV_INT8 && (!pt->k_scale || !pt->v_scale))) {
        snprintf(pt->err, sizeof pt->err, "out of host memory for the part's tensors");
        return CLATTN_OUT_OF_MEMORY;
    }
    clattn_context *ctx = c->g->ctx[pt->device];
    if (c->g->serial)
        pthread_mutex_lock(&c->g->serial_lock);
    clattn_status st = clattn_attention_host(ctx, s, q, pt->k, pt->v, mask, pt->out, pt->probs, pt->lse);
    if (c->g->serial)
        pthread_mutex_unlock(&c->g->serial_lock);
    if (st != CLATTN_SUCCESS)
        clattn_context_last_error_copy(ctx, pt->err, sizeof pt->err);
    return st;
}

typedef struct worker {
    const call *c;
    int device;
    pthread_t thread;
    int started;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < w->c->n_parts; i++) {
        part *pt = &w->c->parts[i];
        if (pt->device != w->device)
            continue;
        pt->status = run_part(w->c, pt);
        if (pt->status != CLATTN_SUCCESS)
            break;   /* this device has failed the call; its other parts stay undone */
    }
    return NULL;
}

/* The parts of the plan: per device its key range, or its units cut at each change of KV head. */
static int make_parts(const clattn_group_plan *plan, const clattn_problem *p, part *parts)
{
    int n = 0;
    for (int i = 0; i < plan->n; i++) {
        const int u0 = plan->first[i], u1 = plan->first[i + 1];
        if (u0 >= u1)
            continue;
        if (plan->split == CLATTN_SPLIT_KEYS) {
            parts[n].device = i;
            parts[n].j0 = u0;
            parts[n].j1 = u1;
            n++;
            continue;
        }
        for (int u = u0; u < u1;) {   /* unit u = g*B + b */
            const int g = u / p->B, b = u % p->B;
            const int nb = (u1 - u < p->B - b) ? u1 - u : p->B - b;
            parts[n].device = i;
            parts[n].g = g;
            parts[n].b0 = b;
            parts[n].nb = nb;
            n++;
            u += nb;
        }
    }
    return n;
}

/* Every part succeeded: the results where the caller wants them. */
static clattn_status deliver(const call *c, void *out, float *probs, float *lse)
{
    const clattn_attention_desc *d = c->desc;
    const clattn_problem *p = c->p;
    const size_t qe = clattn_dtype_size(d->dtype);
    if (c->plan->split == CLATTN_SPLIT_KEYS) {
        const void *outs[CLATTN_GROUP_MAX];
        const float *lses[CLATTN_GROUP_MAX];
        for (int i = 0; i < c->n_parts; i++) {
            outs[i] = c->parts[i].out;
            lses[i] = c->parts[i].lse;
        }
        /* into the first part's buffers (merge_partials_host merges in place), then out */
        clattn_status st = clattn_merge_partials_host(c->n_parts, outs, lses, d, c->parts[0].out,
                                                      c->parts[0].lse);
        if (st != CLATTN_SUCCESS)
            return clattn_group_fail(c->g, st, "merging the devices' partial results failed");
        if (out)
            memcpy(out, c->parts[0].out, p->bytes.out);
        if (lse)
            memcpy(lse, c->parts[0].lse, p->bytes.lse);
        return CLATTN_SUCCESS;
    }
    const int G = p->Hq / p->Hkv;
    for (int i = 0; i < c->n_parts; i++) {
        const part *pt = &c->parts[i];
        int dims[4], start[4], count[4];
        if (out) {
            view(d, p->B, p->Hq, p->Lq, p->dv, pt->b0, pt->nb, pt->g * G, G, 0, p->Lq, dims, start, count);
            box_copy(pt->out, out, dims, start, count, qe, 1);
        }
        const int Dl[4] = {p->B, p->Hq, p->Lq, 1}, Sl[4] = {pt->b0, pt->g * G, 0, 0},
                  Cl[4] = {pt->nb, G, p->Lq, 1};
        if (lse)
            box_copy((unsigned char *)pt->lse, (unsigned char *)lse, Dl, Sl, Cl, sizeof(float), 1);
        const int Dp[4] = {p->B, p->Hq, p->Lq, p->Lk}, Cp[4] = {pt->nb, G, p->Lq, p->Lk};
        if (probs)
            box_copy((unsigned char *)pt->probs, (unsigned char *)probs, Dp, Sl, Cp, sizeof(float), 1);
    }
    return CLATTN_SUCCESS;
}

clattn_status clattn_group_attention_host(clattn_group *g, const clattn_attention_desc *desc,
                                          clattn_split split, const void *q, const void *k,
                                          const void *v, const void *mask, void *out, float *probs,
                                          float *lse)
{
    if (!g)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&g->lock);
    clattn_problem p;
    clattn_group_plan plan;
    part *parts = NULL;
    int max_parts = 0;
    worker workers[CLATTN_GROUP_MAX];
    memset(workers, 0, sizeof workers);
    clattn_status st = clattn_group_plan_make(g, desc, probs != NULL, split, &p, &plan);
    if (st != CLATTN_SUCCESS)
        goto done;
    /* clattn_attention_host's rules, so that the group refuses what one device would */
    if ((p.bytes.q && !q) || (p.bytes.k && (!k || !v)) || (p.bytes.out && !out) ||
        (desc->mask_type != CLATTN_MASK_NONE && p.bytes.mask && !mask)) {
        st = clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "q, k, v, out (and mask, with a mask "
                               "type) must not be NULL for a non-empty problem");
        goto done;
    }
    if (mask && desc->mask_type == CLATTN_MASK_NONE) {
        st = clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "mask buffer given but desc->mask_type is "
                               "CLATTN_MASK_NONE");
        goto done;
    }
    if (desc->kv_storage == CLATTN_KV_INT8 && (!desc->k_scale_host || !desc->v_scale_host)) {
        st = clattn_group_fail(g, CLATTN_INVALID_ARGUMENT, "CLATTN_KV_INT8 needs k_scale_host and "
                               "v_scale_host");
        goto done;
    }
    if (p.B == 0 || p.Hq == 0 || p.Lq == 0) {
        st = CLATTN_SUCCESS;   /* nothing to compute or write */
        goto done;
    }
    /* at most one part per device (KEYS), or per device and KV head it touches (HEADS) */
    /* every part has a unit at least, so min(units, n + Hkv), in long long: Hkv may be near INT_MAX */
    const long long head_parts = (long long)g->n + p.Hkv < plan.units ? (long long)g->n + p.Hkv : plan.units;
    max_parts = plan.split == CLATTN_SPLIT_KEYS ? g->n : (int)head_parts;
    parts = calloc((size_t)max_parts, sizeof *parts);
    if (!parts) {
        st = clattn_group_fail(g, CLATTN_OUT_OF_MEMORY, "out of host memory for the plan");
        goto done;
    }
    call c = {g, desc, &p, &plan, q, k, v, mask, probs != NULL, parts, 0};
    c.n_parts = make_parts(&plan, &p, parts);
    for (int i = 0; i < g->n; i++) {
        workers[i].c = &c;
        workers[i].device = i;
    }
    /* a thread per device with work, the last one on this thread */
    int last = -1;
    for (int i = 0; i < c.n_parts; i++)
        last = parts[i].device;
    for (int i = 0; i < g->n; i++) {
        int has = 0;
        for (int j = 0; j < c.n_parts; j++)
            has |= parts[j].device == i;
        if (!has || i == last)
            continue;
        workers[i].started = pthread_create(&workers[i].thread, NULL, work, &workers[i]) == 0;
        if (!workers[i].started)
            work(&workers[i]);   /* no thread to be had: do it here, in turn */
    }
    if (last >= 0)
        work(&workers[last]);
    for (int i = 0; i < g->n; i++)
        if (workers[i].started)
            pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < c.n_parts; i++)
        if (parts[i].status != CLATTN_SUCCESS) {
            const int dev = parts[i].device;
            st = clattn_group_fail(g, parts[i].status, "device %d (%s) failed its part: %s", dev,
                                   clattn_context_device_name(g->ctx[dev]), parts[i].err);
            goto done;
        }
    st = deliver(&c, out, probs, lse);
done:
    if (parts)
        for (int i = 0; i < max_parts; i++) {
            free(parts[i].q);
            free(parts[i].k);
            free(parts[i].v);
            free(parts[i].k_scale);
            free(parts[i].v_scale);
            free(parts[i].out);
            free(parts[i].probs);
            free(parts[i].lse);
        }
    free(parts);
    pthread_mutex_unlock(&g->lock);
    return st;
}
