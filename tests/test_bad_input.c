/* Every public entry point given bad input: the call returns CLATTN_INVALID_ARGUMENT (or the
 * documented code), clattn_context_last_error() names the offending argument, and nothing the caller
 * owns changes: output buffers are filled with a sentinel before the call and read back after a
 * clFinish. A refused call must not poison the context: a valid call afterwards still passes.
 */
#include "testutil.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SENTINEL 0xa5          /* byte written over every output before a refused call */
#define HOST_BYTES (1 << 20)   /* host arrays: ample for every shape below, even a wrongly accepted one */

/* The fixture: a context, a valid problem and buffers exactly the size it needs. */
typedef struct fixture {
    clattn_context *ctx;
    clattn_attention_desc desc;      /* valid: additive F32 mask, dense */
    clattn_tensor_sizes sizes;
    cl_mem q, k, v, mask, out, probs, lse;
    cl_mem small[7];                 /* one byte short of q, k, v, mask, out, probs, lse */
    cl_context other_cl;             /* a second OpenCL context, for a foreign buffer */
    cl_mem foreign_q;
} fixture;

static cl_mem buffer(cl_context cl, size_t bytes)
{
    cl_int err;
    cl_mem m = clCreateBuffer(cl, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!m)
        fprintf(stderr, "clCreateBuffer(%zu): %d\n", bytes, (int)err);
    return m;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->ctx = tu_context_or_skip(NULL);
    clattn_attention_desc *d = &f->desc;
    d->batch = 2;
    d->heads_q = 4;
    d->heads_kv = 2;
    d->seq_q = 5;
    d->seq_kv = 6;
    d->head_dim = 8;
    d->head_dim_v = 8;
    d->mask_type = CLATTN_MASK_ADDITIVE_F32;
    d->mask_batch_stride = 4L * 5 * 6;
    d->mask_head_stride = 5L * 6;
    d->path = CLATTN_PATH_UNFUSED;
    if (clattn_attention_sizes(d, &f->sizes) != CLATTN_SUCCESS)
        return -1;
    cl_context cl = clattn_context_cl_context(f->ctx);
    const size_t need[7] = {f->sizes.q, f->sizes.k, f->sizes.v, f->sizes.mask, f->sizes.out,
                            f->sizes.probs, f->sizes.lse};
    cl_mem *full[7] = {&f->q, &f->k, &f->v, &f->mask, &f->out, &f->probs, &f->lse};
    for (int i = 0; i < 7; i++) {
        *full[i] = buffer(cl, need[i]);
        f->small[i] = buffer(cl, need[i] - 1);
        if (!*full[i] || !f->small[i])
            return -1;
    }
    /* The inputs hold zeros: a refused call reads nothing, and the valid call after them needs
       defined data. */
    cl_command_queue queue = clattn_context_queue(f->ctx);
    float zero = 0.0f;
    cl_mem inputs[4] = {f->q, f->k, f->v, f->mask};
    for (int i = 0; i < 4; i++)
        if (clEnqueueFillBuffer(queue, inputs[i], &zero, sizeof zero, 0, need[i], 0, NULL, NULL) != CL_SUCCESS)
            return -1;
    clFinish(queue);
    cl_device_id dev = clattn_context_device(f->ctx);
    cl_int err;
    f->other_cl = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    if (!f->other_cl)
        return -1;
    f->foreign_q = buffer(f->other_cl, f->sizes.q);
    if (!f->foreign_q)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl_mem all[] = {f->q, f->k, f->v, f->mask, f->out, f->probs, f->lse, f->foreign_q};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    for (int i = 0; i < 7; i++)
        if (f->small[i])
            clReleaseMemObject(f->small[i]);
    if (f->other_cl)
        clReleaseContext(f->other_cl);
    clattn_context_release(f->ctx);
    free(f);
    return 0;
}

/* ---- checking one refused call --------------------------------------------------------------- */

static int is_ident(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Whether msg mentions word as a whole identifier ("q" in "q is NULL", not in "seq_q"). */
static int mentions_word(const char *msg, const char *word, size_t n)
{
    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
        if (!(p > msg && is_ident(p[-1])) && !is_ident(p[n]))
            return 1;
    }
    return 0;
}

/* mention: one name, or alternatives separated by '|'. */
static int mentions(const char *msg, const char *mention)
{
    char word[64];
    while (*mention) {
        size_t n = strcspn(mention, "|");
        if (n >= sizeof word)
            n = sizeof word - 1;
        memcpy(word, mention, n);
        word[n] = '\0';
        if (mentions_word(msg, word, n))
            return 1;
        mention += n;
        if (*mention == '|')
            mention++;
    }
    return 0;
}

/* A refused call leaves an earlier message in place if it records none; a known message first
   makes that visible. */
static void prime_last_error(clattn_context *ctx)
{
    clattn_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = -12345;
    assert_int_equal(clattn_attention(ctx, &d, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                     CLATTN_INVALID_ARGUMENT);
}

static void check_message(clattn_context *ctx, const char *label, const char *mention)
{
    const char *msg = clattn_context_last_error(ctx);
    if (strstr(msg, "-12345"))
        fail_msg("%s: no message recorded (last_error still holds the previous one)", label);
    if (!mentions(msg, mention))
        fail_msg("%s: last_error \"%s\" does not mention \"%s\"", label, msg, mention);
}

typedef struct call_buffers {
    cl_mem q, k, v, mask, out, probs, lse;
} call_buffers;

static call_buffers valid_buffers(const fixture *f)
{
    call_buffers b = {f->q, f->k, f->v, f->mask, f->out, f->probs, f->lse};
    return b;
}

/* clattn_attention must refuse, name `mention`, and leave every output buffer as it was. */
static void expect_refused(fixture *f, const clattn_attention_desc *desc, const call_buffers *b,
                           const char *label, const char *mention)
{
    cl_command_queue queue = clattn_context_queue(f->ctx);
    cl_mem outs[3] = {b->out, b->probs, b->lse};
    size_t bytes[3] = {0, 0, 0};
    unsigned char pattern = SENTINEL;
    for (int i = 0; i < 3; i++) {
        if (!outs[i])
            continue;
        assert_int_equal(clGetMemObjectInfo(outs[i], CL_MEM_SIZE, sizeof bytes[i], &bytes[i], NULL), CL_SUCCESS);
        assert_int_equal(clEnqueueFillBuffer(queue, outs[i], &pattern, 1, 0, bytes[i], 0, NULL, NULL),
                         CL_SUCCESS);
    }
    clFinish(queue);
    prime_last_error(f->ctx);

    clattn_status st = clattn_attention(f->ctx, desc, b->q, b->k, b->v, b->mask, b->out, b->probs, b->lse);
    if (st != CLATTN_INVALID_ARGUMENT)
        fail_msg("%s: clattn_attention returned %s", label, clattn_status_string(st));
    check_message(f->ctx, label, mention);

    clFinish(queue);
    for (int i = 0; i < 3; i++) {
        if (!outs[i])
            continue;
        unsigned char *got = tu_alloc(bytes[i]);
        assert_int_equal(clEnqueueReadBuffer(queue, outs[i], CL_TRUE, 0, bytes[i], got, 0, NULL, NULL),
                         CL_SUCCESS);
        for (size_t e = 0; e < bytes[i]; e++)
            if (got[e] != SENTINEL)
                fail_msg("%s: output %d byte %zu changed by a refused call", label, i, e);
        free(got);
    }
}

/* Host memory for clattn_attention_host: inputs zero, outputs sentinel. */
typedef struct host_buffers {
    void *q, *k, *v, *mask, *out;
    float *probs, *lse;
} host_buffers;

static void host_alloc(host_buffers *h)
{
    h->q = calloc(1, HOST_BYTES);
    h->k = calloc(1, HOST_BYTES);
    h->v = calloc(1, HOST_BYTES);
    h->mask = calloc(1, HOST_BYTES);
    h->out = tu_alloc(HOST_BYTES);
    h->probs = tu_alloc(HOST_BYTES);
    h->lse = tu_alloc(HOST_BYTES);
    assert_true(h->q && h->k && h->v && h->mask);
}

static void host_free(host_buffers *h)
{
    free(h->q);
    free(h->k);
    free(h->v);
    free(h->mask);
    free(h->out);
    free(h->probs);
    free(h->lse);
}

static void expect_refused_host(clattn_context *ctx, const clattn_attention_desc *desc,
                                const host_buffers *h, const char *label, const char *mention)
{
    void *outs[3] = {h->out, h->probs, h->lse};
    for (int i = 0; i < 3; i++)
        if (outs[i])
            memset(outs[i], SENTINEL, HOST_BYTES);
    prime_last_error(ctx);
    clattn_status st = clattn_attention_host(ctx, desc, h->q, h->k, h->v, h->mask, h->out, h->probs, h->lse);
    if (st != CLATTN_INVALID_ARGUMENT)
        fail_msg("%s: clattn_attention_host returned %s", label, clattn_status_string(st));
    check_message(ctx, label, mention);
    for (int i = 0; i < 3; i++) {
        const unsigned char *p = outs[i];
        for (size_t e = 0; p && e < HOST_BYTES; e++)
            if (p[e] != SENTINEL)
                fail_msg("%s: host output %d byte %zu changed by a refused call", label, i, e);
    }
}

/* ---- the bad descs --------------------------------------------------------------------------- */

/* Applies bad desc number i to d; 0 when there is no such case. */
static int bad_desc(int i, clattn_attention_desc *d, const char **label, const char **mention)
{
    /* per-head arrays for every head the fixture's descs have, one entry bad */
    static float bad_slopes[64], bad_sinks[64];
    for (int h = 0; h < 64; h++)
        bad_slopes[h] = h == 1 ? NAN : 0.5f, bad_sinks[h] = h == 0 ? INFINITY : 0.0f;
#define CASE(n, text, name, stmt) \
    case n: stmt; *label = text; *mention = name; return 1;
    switch (i) {
    CASE(0, "batch -1", "batch", d->batch = -1)
    CASE(1, "heads_q 0", "heads_q", d->heads_q = 0)
    CASE(2, "heads_q -4", "heads_q", d->heads_q = -4)
    CASE(3, "heads_kv -1", "heads_kv", d->heads_kv = -1)
    CASE(4, "heads_q 4 % heads_kv 3", "heads_kv", d->heads_kv = 3)
    CASE(5, "seq_q -1", "seq_q", d->seq_q = -1)
    CASE(6, "seq_kv -1", "seq_kv", d->seq_kv = -1)
    CASE(7, "head_dim 0", "head_dim", d->head_dim = 0)
    CASE(8, "head_dim 577", "head_dim", d->head_dim = 577)
    CASE(9, "head_dim -8", "head_dim", d->head_dim = -8)
    CASE(10, "head_dim_v 513", "head_dim_v", d->head_dim_v = 513)
    CASE(11, "head_dim_v -1", "head_dim_v", d->head_dim_v = -1)
    CASE(12, "scale NaN", "scale", d->scale = NAN)
    CASE(13, "scale +inf", "scale", d->scale = INFINITY)
    CASE(14, "scale -inf", "scale", d->scale = -INFINITY)
    CASE(15, "dtype 3", "dtype", d->dtype = (clattn_dtype)3)
    CASE(16, "dtype -1", "dtype", d->dtype = (clattn_dtype)-1)
    CASE(17, "layout 2", "layout", d->layout = (clattn_layout)2)
    CASE(18, "causal 3", "causal", d->causal = (clattn_causal)3)
    CASE(19, "causal -1", "causal", d->causal = (clattn_causal)-1)
    CASE(20, "mask_type 4", "mask_type", d->mask_type = (clattn_mask_type)4)
    CASE(21, "path 3", "path", d->path = (clattn_path)3)
    /* the strides may be named together */
    CASE(22, "mask_row_stride -1", "mask_row_stride|mask_*_stride", d->mask_row_stride = -1)
    CASE(23, "mask_head_stride -5", "mask_head_stride|mask_*_stride", d->mask_head_stride = -5)
    CASE(24, "mask_batch_stride -1", "mask_batch_stride|mask_*_stride", d->mask_batch_stride = -1)
    CASE(25, "mask_rows_broadcast 2", "mask_rows_broadcast", d->mask_rows_broadcast = 2)
    CASE(26, "mask_rows_broadcast with a row stride", "mask_row_stride",
         (d->mask_rows_broadcast = 1, d->mask_row_stride = d->seq_kv))
    CASE(27, "head_dim 520 with head_dim_v 0", "head_dim_v", (d->head_dim = 520, d->head_dim_v = 0))
    CASE(28, "window 2", "window", d->window = 2)
    CASE(29, "window_left -2", "window_left", (d->window = 1, d->window_left = -2))
    CASE(30, "window edges without window", "window = 0", d->window_right = 4)
    CASE(31, "softcap -1", "softcap", d->softcap = -1.0f)
    CASE(32, "softcap NaN", "softcap", d->softcap = NAN)
    CASE(33, "an ALiBi slope NaN", "alibi_slopes", d->alibi_slopes = bad_slopes)
    CASE(34, "a sink +inf", "sinks", d->sinks = bad_sinks)
    default: return 0;
    }
#undef CASE
}

static void test_attention_bad_desc(void **state)
{
    fixture *f = *state;
    call_buffers b = valid_buffers(f);
    expect_refused(f, NULL, &b, "desc NULL", "desc");
    for (int i = 0;; i++) {
        clattn_attention_desc d = f->desc;
        const char *label, *mention;
        if (!bad_desc(i, &d, &label, &mention))
            break;
        expect_refused(f, &d, &b, label, mention);
    }
}

static void test_attention_bad_buffers(void **state)
{
    fixture *f = *state;
    const clattn_attention_desc *d = &f->desc;
    call_buffers b;
    static const char *names[7] = {"q", "k", "v", "mask", "out", "probs", "lse"};
    char label[64];

    /* NULL where the shape needs a buffer (probs and lse are optional) */
    for (int i = 0; i < 5; i++) {
        b = valid_buffers(f);
        cl_mem *slot[5] = {&b.q, &b.k, &b.v, &b.mask, &b.out};
        *slot[i] = NULL;
        snprintf(label, sizeof label, "%s NULL", names[i]);
        expect_refused(f, d, &b, label, names[i]);
    }
    /* one byte short */
    for (int i = 0; i < 7; i++) {
        b = valid_buffers(f);
        cl_mem *slot[7] = {&b.q, &b.k, &b.v, &b.mask, &b.out, &b.probs, &b.lse};
        *slot[i] = f->small[i];
        snprintf(label, sizeof label, "%s one byte short", names[i]);
        expect_refused(f, d, &b, label, names[i]);
    }
    /* mask strides that reach past the mask buffer */
    b = valid_buffers(f);
    clattn_attention_desc m = *d;
    m.mask_row_stride = m.seq_kv + 1;
    expect_refused(f, &m, &b, "mask row stride past the buffer", "mask");
    m = *d;
    m.mask_head_stride += 1;
    expect_refused(f, &m, &b, "mask head stride past the buffer", "mask");
    m = *d;
    m.mask_batch_stride = 1L << 40;
    expect_refused(f, &m, &b, "mask batch stride past the buffer", "mask");
    /* key padding: [B,Lk] floats are all a broadcast-rows mask needs */
    m = *d;
    m.mask_batch_stride = m.seq_kv, m.mask_head_stride = 0, m.mask_row_stride = 0;
    m.mask_rows_broadcast = 1;
    clattn_tensor_sizes keypad;
    assert_int_equal(clattn_attention_sizes(&m, &keypad), CLATTN_SUCCESS);
    assert_int_equal(keypad.mask, (size_t)m.batch * (size_t)m.seq_kv * sizeof(float));
    /* a mask with CLATTN_MASK_NONE */
    m = *d;
    m.mask_type = CLATTN_MASK_NONE;
    expect_refused(f, &m, &b, "mask given with CLATTN_MASK_NONE", "mask");
    /* probs from the fused path, which never stores scores */
    m = *d;
    m.path = CLATTN_PATH_FUSED;
    expect_refused(f, &m, &b, "probs with CLATTN_PATH_FUSED", "probs");
    /* F16 buffers are half the size: F32 with them is too small */
    m = *d;
    m.dtype = CLATTN_F16;
    clattn_tensor_sizes s16;
    assert_int_equal(clattn_attention_sizes(&m, &s16), CLATTN_SUCCESS);
    assert_int_equal(s16.q * 2, f->sizes.q);
    /* a buffer from another OpenCL context */
    b = valid_buffers(f);
    b.q = f->foreign_q;
    expect_refused(f, d, &b, "q from another cl_context", "q");
    /* an output aliasing an input */
    b = valid_buffers(f);
    b.out = b.q;
    m = *d;
    m.head_dim_v = m.head_dim;   /* same size, so only the aliasing is wrong */
    expect_refused(f, &m, &b, "out aliasing q", "out");
    /* NULL context */
    b = valid_buffers(f);
    assert_int_equal(clattn_attention(NULL, d, b.q, b.k, b.v, b.mask, b.out, b.probs, b.lse),
                     CLATTN_INVALID_ARGUMENT);
}

/* ---- memory shared through sub-buffers, host memory and images -------------------------------- */

static size_t round_up(size_t x, size_t to)
{
    return (x + to - 1) / to * to;
}

/* The fixture's desc on the fused path with no probs (the path that returned wrong values when an
   output overlapped an input), grown until each tensor spans several sub-buffer alignments, so that
   an aligned origin can fall inside another tensor. */
static clattn_attention_desc overlap_desc(const fixture *f, size_t align, clattn_tensor_sizes *s)
{
    clattn_attention_desc d = f->desc;
    d.mask_type = CLATTN_MASK_NONE;
    d.mask_batch_stride = d.mask_head_stride = 0;
    d.path = CLATTN_PATH_FUSED;
    for (;;) {
        assert_int_equal(clattn_attention_sizes(&d, s), CLATTN_SUCCESS);
        if (s->k >= 3 * align && s->lse >= 2 * align)
            return d;
        d.seq_q *= 2;
        d.seq_kv *= 2;
    }
}

/* Outputs that share memory with another argument through a different handle: each is refused
   with both names, and nothing is written. */
static void test_attention_overlap(void **state)
{
    fixture *f = *state;
    cl_context cl = clattn_context_cl_context(f->ctx);
    const size_t al = tu_sub_buffer_align(f->ctx);
    clattn_tensor_sizes s;
    clattn_attention_desc d = overlap_desc(f, al, &s);
    const size_t big = round_up(s.q, al) + round_up(s.k, al) + round_up(s.v, al) + round_up(s.out, al) +
                       round_up(s.lse, al) + round_up(s.probs, al) + 4 * al;
    cl_mem parent = buffer(cl, big);
    cl_mem q = buffer(cl, s.q), k = buffer(cl, s.k), v = buffer(cl, s.v), out = buffer(cl, s.out);
    cl_mem lse = buffer(cl, s.lse), probs = buffer(cl, s.probs);
    assert_true(parent && q && k && v && out && lse && probs);
    call_buffers b;

    /* out a sub-buffer starting one alignment into q's */
    cl_mem sq = tu_sub_buffer(parent, 0, s.q), so = tu_sub_buffer(parent, al, s.out);
    b = (call_buffers){sq, k, v, NULL, so, NULL, lse};
    expect_refused(f, &d, &b, "out a sub-buffer overlapping q", "out");
    check_message(f->ctx, "out a sub-buffer overlapping q", "q");
    clReleaseMemObject(so);
    /* the same bytes as q through a second sub-buffer */
    so = tu_sub_buffer(parent, 0, s.out);
    b = (call_buffers){sq, k, v, NULL, so, NULL, lse};
    expect_refused(f, &d, &b, "out the same bytes as q, another handle", "out");
    check_message(f->ctx, "out the same bytes as q, another handle", "q");
    clReleaseMemObject(so);
    clReleaseMemObject(sq);

    /* out over the last part of k only */
    cl_mem sk = tu_sub_buffer(parent, 0, s.k);
    so = tu_sub_buffer(parent, round_up(s.k, al) - al, s.out);
    b = (call_buffers){q, sk, v, NULL, so, NULL, lse};
    expect_refused(f, &d, &b, "out partly overlapping k", "out");
    check_message(f->ctx, "out partly overlapping k", "k");
    clReleaseMemObject(so);
    clReleaseMemObject(sk);

    /* out the parent of q's sub-buffer */
    sq = tu_sub_buffer(parent, al, s.q);
    b = (call_buffers){sq, k, v, NULL, parent, NULL, lse};
    expect_refused(f, &d, &b, "out the parent of q", "out");
    check_message(f->ctx, "out the parent of q", "q");
    clReleaseMemObject(sq);

    /* lse, then probs (the unfused path), overlapping out */
    so = tu_sub_buffer(parent, 0, s.out);
    cl_mem sl = tu_sub_buffer(parent, al, s.lse);
    b = (call_buffers){q, k, v, NULL, so, NULL, sl};
    expect_refused(f, &d, &b, "lse overlapping out", "lse");
    check_message(f->ctx, "lse overlapping out", "out");
    clReleaseMemObject(sl);
    clattn_attention_desc du = d;
    du.path = CLATTN_PATH_UNFUSED;
    cl_mem sp = tu_sub_buffer(parent, round_up(s.out, al) - al, s.probs);
    b = (call_buffers){q, k, v, NULL, so, sp, lse};
    expect_refused(f, &du, &b, "probs overlapping out", "probs");
    check_message(f->ctx, "probs overlapping out", "out");
    clReleaseMemObject(sp);
    clReleaseMemObject(so);

    /* two buffers over one host array (CL_MEM_USE_HOST_PTR): out's memory is q's */
    void *host = aligned_alloc(4096, round_up(s.q > s.out ? s.q : s.out, 4096));
    assert_non_null(host);
    memset(host, 0, s.q);
    cl_int err;
    cl_mem hq = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, s.q, host, &err);
    cl_mem ho = clCreateBuffer(cl, CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, s.out, host, &err);
    assert_true(hq && ho);
    b = (call_buffers){hq, k, v, NULL, ho, NULL, lse};
    expect_refused(f, &d, &b, "out over q's host memory", "out");
    check_message(f->ctx, "out over q's host memory", "q");
    clReleaseMemObject(ho);
    clReleaseMemObject(hq);
    free(host);

    cl_mem all[] = {parent, q, k, v, out, lse, probs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        clReleaseMemObject(all[i]);
}

/* The legitimate sharing: q, k, v, out, probs and lse disjoint sub-buffers of one parent, and inputs
   sharing memory (v the very buffer of k). Accepted, and the results match the reference. */
static void test_attention_disjoint_sub_buffers(void **state)
{
    fixture *f = *state;
    cl_command_queue queue = clattn_context_queue(f->ctx);
    const size_t al = tu_sub_buffer_align(f->ctx);
    clattn_tensor_sizes s;
    clattn_attention_desc d = overlap_desc(f, al, &s);
    enum { Q, K, V, OUT, PROBS, LSE, N };
    const size_t bytes[N] = {s.q, s.k, s.v, s.out, s.probs, s.lse};
    size_t origin[N], total = 0;
    for (int i = 0; i < N; i++) {
        origin[i] = total;
        total += round_up(bytes[i], al);
    }
    cl_mem parent = buffer(clattn_context_cl_context(f->ctx), total);
    assert_non_null(parent);
    cl_mem sub[N];
    for (int i = 0; i < N; i++)
        sub[i] = tu_sub_buffer(parent, origin[i], bytes[i]);

    tu_rng rng;
    tu_rng_seed(&rng, 77);
    float *q = tu_alloc(s.q), *k = tu_alloc(s.k), *v = tu_alloc(s.v);
    tu_fill_normal(q, CLATTN_F32, s.q / 4, 1.0f, &rng);
    tu_fill_normal(k, CLATTN_F32, s.k / 4, 1.0f, &rng);
    tu_fill_normal(v, CLATTN_F32, s.v / 4, 1.0f, &rng);
    const float *in[3] = {q, k, v};
    for (int i = Q; i <= V; i++)
        assert_int_equal(clEnqueueWriteBuffer(queue, parent, CL_TRUE, origin[i], bytes[i], in[i], 0, NULL,
                                              NULL),
                         CL_SUCCESS);
    const double kappa = tu_conditioning(tu_score_magnitude(&d, q, k));
    float *out = tu_alloc(s.out), *probs = tu_alloc(s.probs), *lse = tu_alloc(s.lse);
    float *ref_out = tu_alloc(s.out), *ref_probs = tu_alloc(s.probs), *ref_lse = tu_alloc(s.lse);

    /* the unfused path (probs), the fused one, and the fused one with v = k */
    for (int variant = 0; variant < 3; variant++) {
        clattn_attention_desc dv = d;
        dv.path = variant == 0 ? CLATTN_PATH_UNFUSED : CLATTN_PATH_FUSED;
        cl_mem v_mem = variant == 2 ? sub[K] : sub[V];
        const float *v_host = variant == 2 ? k : v;
        clattn_status st = clattn_attention(f->ctx, &dv, sub[Q], sub[K], v_mem, NULL, sub[OUT],
                                            variant == 0 ? sub[PROBS] : NULL, sub[LSE]);
        if (st != CLATTN_SUCCESS)
            fail_msg("variant %d: %s (%s)", variant, clattn_status_string(st),
                     clattn_context_last_error(f->ctx));
        assert_int_equal(clEnqueueReadBuffer(queue, sub[OUT], CL_TRUE, 0, s.out, out, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(queue, sub[LSE], CL_TRUE, 0, s.lse, lse, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clEnqueueReadBuffer(queue, sub[PROBS], CL_TRUE, 0, s.probs, probs, 0, NULL, NULL),
                         CL_SUCCESS);
        assert_int_equal(clattn_attention_reference(&dv, q, k, v_host, NULL, ref_out, ref_probs, ref_lse),
                         CLATTN_SUCCESS);
        tu_diff diff;
        size_t n_out = s.out / 4;
        if (!tu_compare_out(CLATTN_F32, out, ref_out, n_out,
                            tu_out_tolerance(CLATTN_F32, ref_out, n_out, kappa), &diff))
            fail_msg("variant %d: out element %zu is %g, reference %g", variant, diff.worst, diff.got,
                     diff.ref);
        if (!tu_compare_rel(lse, ref_lse, s.lse / 4, TU_LSE_REL * kappa, &diff))
            fail_msg("variant %d: lse element %zu is %g, reference %g", variant, diff.worst, diff.got,
                     diff.ref);
        if (variant == 0 && !tu_compare_rel(probs, ref_probs, s.probs / 4, TU_PROBS_REL * kappa, &diff))
            fail_msg("variant %d: probs element %zu is %g, reference %g", variant, diff.worst,
                     diff.got, diff.ref);
    }
    /* the inputs were only read */
    float *back = tu_alloc(s.q + s.k + s.v);
    for (int i = Q; i <= V; i++) {
        assert_int_equal(clEnqueueReadBuffer(queue, parent, CL_TRUE, origin[i], bytes[i], back, 0, NULL,
                                             NULL),
                         CL_SUCCESS);
        assert_memory_equal(back, in[i], bytes[i]);
    }
    free(back);
    for (int i = 0; i < N; i++)
        clReleaseMemObject(sub[i]);
    clReleaseMemObject(parent);
    free(q);
    free(k);
    free(v);
    free(out);
    free(probs);
    free(lse);
    free(ref_out);
    free(ref_probs);
    free(ref_lse);
}

/* An image is a memory object but not a buffer: the kernels index q as an array. */
static void test_attention_image(void **state)
{
    fixture *f = *state;
    cl_mem image = tu_image_or_null(f->ctx, f->sizes.q);
    if (!image)
        return;
    call_buffers b = valid_buffers(f);
    b.q = image;
    expect_refused(f, &f->desc, &b, "q an image", "q");
    clattn_attention_desc d = f->desc;
    d.path = CLATTN_PATH_FUSED;
    b.probs = NULL;
    expect_refused(f, &d, &b, "q an image, fused path", "q");
    clReleaseMemObject(image);
}

static void test_attention_host_bad(void **state)
{
    fixture *f = *state;
    host_buffers h;
    host_alloc(&h);
    assert_int_equal(clattn_attention_host(NULL, &f->desc, h.q, h.k, h.v, h.mask, h.out, h.probs, h.lse),
                     CLATTN_INVALID_ARGUMENT);
    expect_refused_host(f->ctx, NULL, &h, "host: desc NULL", "desc");
    for (int i = 0;; i++) {
        clattn_attention_desc d = f->desc;
        const char *label, *mention;
        if (!bad_desc(i, &d, &label, &mention))
            break;
        expect_refused_host(f->ctx, &d, &h, label, mention);
    }
    static const char *names[] = {"q", "k", "v", "mask", "out"};
    for (int i = 0; i < 5; i++) {
        host_buffers n = h;
        void **slot[] = {&n.q, &n.k, &n.v, &n.mask, &n.out};
        *slot[i] = NULL;
        char label[64];
        snprintf(label, sizeof label, "host: %s NULL", names[i]);
        expect_refused_host(f->ctx, &f->desc, &n, label, names[i]);
    }
    clattn_attention_desc m = f->desc;
    m.mask_type = CLATTN_MASK_NONE;
    expect_refused_host(f->ctx, &m, &h, "host: mask given with CLATTN_MASK_NONE", "mask");
    m = f->desc;
    m.path = CLATTN_PATH_FUSED;
    expect_refused_host(f->ctx, &m, &h, "host: probs with CLATTN_PATH_FUSED", "probs");
    host_free(&h);
}

/* After all the refusals the context still computes, and a negative scale is valid. */
static void test_still_works(void **state)
{
    fixture *f = *state;
    for (int variant = 0; variant < 3; variant++) {
        tu_case c;
        memset(&c, 0, sizeof c);
        c.desc = f->desc;
        c.desc.scale = variant == 0 ? -0.5f : variant == 1 ? 0.0f : 3.0f;
        c.desc.causal = (clattn_causal)variant;
        c.want_probs = c.want_lse = 1;
        c.use_buffers = variant & 1;
        c.seed = 4242u + (uint64_t)variant;
        tu_outcome o;
        tu_run_case(f->ctx, &c, &o);
        if (!o.ok)
            fail_msg("%s", o.msg);
    }
}

static void test_sizes_bad(void **state)
{
    fixture *f = *state;
    clattn_tensor_sizes s;
    assert_int_equal(clattn_attention_sizes(NULL, &s), CLATTN_INVALID_ARGUMENT);
    for (int i = 0;; i++) {
        clattn_attention_desc d = f->desc;
        const char *label, *mention;
        if (!bad_desc(i, &d, &label, &mention))
            break;
        if (clattn_attention_sizes(&d, &s) != CLATTN_INVALID_ARGUMENT)
            fail_msg("clattn_attention_sizes accepted %s", label);
    }
    assert_int_equal(clattn_attention_sizes(&f->desc, NULL), CLATTN_SUCCESS);
    assert_int_equal(clattn_attention_sizes(&f->desc, &s), CLATTN_SUCCESS);
    assert_int_equal(s.q, 2 * 4 * 5 * 8 * 4);
    assert_int_equal(s.k, 2 * 2 * 6 * 8 * 4);
    assert_int_equal(s.probs, 2 * 4 * 5 * 6 * 4);
    assert_int_equal(s.lse, 2 * 4 * 5 * 4);
    assert_int_equal(s.mask, 2 * 4 * 5 * 6 * 4);
}

/* ---- contexts and status strings ------------------------------------------------------------- */

static void test_context_bad(void **state)
{
    fixture *f = *state;
    clattn_context *c = (clattn_context *)f;   /* anything non-NULL: it must be overwritten */
    assert_int_equal(clattn_context_create("no-such-device-xyzzy", &c), CLATTN_DEVICE_NOT_FOUND);
    assert_null(c);
    c = (clattn_context *)f;
    assert_int_equal(clattn_context_create("97:97", &c), CLATTN_DEVICE_NOT_FOUND);
    assert_null(c);
    assert_int_equal(clattn_context_create(NULL, NULL), CLATTN_INVALID_ARGUMENT);

    c = (clattn_context *)f;
    assert_int_equal(clattn_context_create_from_queue(NULL, &c), CLATTN_INVALID_ARGUMENT);
    assert_null(c);
    assert_int_equal(clattn_context_create_from_queue(clattn_context_queue(f->ctx), NULL),
                     CLATTN_INVALID_ARGUMENT);

    clattn_context_release(NULL);
    assert_string_equal(clattn_context_last_error(NULL), "");

    /* A wrapped queue works, and releasing the wrapper leaves the queue to its owner. */
    assert_int_equal(clattn_context_create_from_queue(clattn_context_queue(f->ctx), &c), CLATTN_SUCCESS);
    assert_non_null(c);
    assert_string_equal(clattn_context_last_error(c), "");
    tu_case tc;
    memset(&tc, 0, sizeof tc);
    tc.desc = f->desc;
    tc.want_lse = 1;
    tc.seed = 99;
    tu_outcome o;
    tu_run_case(c, &tc, &o);
    clattn_context_release(c);
    if (!o.ok)
        fail_msg("wrapped queue: %s", o.msg);
    tu_run_case(f->ctx, &tc, &o);
    if (!o.ok)
        fail_msg("after releasing the wrapper: %s", o.msg);
}

static void test_status_strings(void **state)
{
    (void)state;
    const char *seen[CLATTN_IO_ERROR + 1];
    for (int s = CLATTN_SUCCESS; s <= CLATTN_IO_ERROR; s++) {
        const char *str = clattn_status_string((clattn_status)s);
        assert_non_null(str);
        assert_true(strncmp(str, "CLATTN_", 7) == 0);
        for (int t = 0; t < s; t++)
            assert_string_not_equal(str, seen[t]);
        seen[s] = str;
    }
    assert_true(strstr(clattn_status_string(CLATTN_INVALID_ARGUMENT), "CLATTN_INVALID_ARGUMENT"));
    const int out_of_range[] = {CLATTN_IO_ERROR + 1, 99, -1};
    for (int i = 0; i < 3; i++) {
        const char *str = clattn_status_string((clattn_status)out_of_range[i]);
        assert_non_null(str);
        for (int t = 0; t <= CLATTN_IO_ERROR; t++)
            assert_string_not_equal(str, seen[t]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_bad_desc),
        cmocka_unit_test(test_attention_bad_buffers),
        cmocka_unit_test(test_attention_overlap),
        cmocka_unit_test(test_attention_disjoint_sub_buffers),
        cmocka_unit_test(test_attention_image),
        cmocka_unit_test(test_attention_host_bad),
        cmocka_unit_test(test_sizes_bad),
        cmocka_unit_test(test_context_bad),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_still_works),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
