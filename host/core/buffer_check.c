/* The buffers of one call: each valid on its own, then no output sharing memory with another
 * argument. Kernels read inputs while other work-items write outputs, so an output over an input
 * (or over another output) gives wrong values, whichever handles the caller used to reach it. */
#include "host/core/buffer_check.h"

#include <stdio.h>
#include <string.h>

/* OpenCL 1.2 forbids a sub-buffer of a sub-buffer, so a root is one step away; the bound only keeps
   a driver's broken chain from looping. */
#define MAX_NESTING 8

static void arg_name(const clattn_buffer_arg *a, char *buf, size_t len)
{
    if (a->in_array)
        snprintf(buf, len, "%s[%d]", a->name, a->index);
    else
        snprintf(buf, len, "%s", a->name);
}

/* Where a's memory lies: its root buffer and offset there, or for a root over caller memory
   (CL_MEM_USE_HOST_PTR) the host address, since two such buffers may share that memory. */
static clattn_status resolve(clattn_context *ctx, clattn_buffer_arg *a, const char *name)
{
    cl_mem m = a->mem;
    size_t offset = 0;
    cl_int err = CL_SUCCESS;
    for (int depth = 0;; depth++) {
        cl_mem parent = NULL;
        err = clGetMemObjectInfo(m, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL);
        if (err != CL_SUCCESS || !parent)
            break;
        if (depth == MAX_NESTING)
            return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                               "%s: the driver reports sub-buffers nested deeper than %d", name,
                               MAX_NESTING);
        size_t o = 0;
        err = clGetMemObjectInfo(m, CL_MEM_OFFSET, sizeof o, &o, NULL);
        if (err != CL_SUCCESS)
            break;
        offset += o;
        m = parent;
    }
    cl_mem_flags flags = 0;
    void *host = NULL;
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(m, CL_MEM_FLAGS, sizeof flags, &flags, NULL);
    if (err == CL_SUCCESS && (flags & CL_MEM_USE_HOST_PTR))
        err = clGetMemObjectInfo(m, CL_MEM_HOST_PTR, sizeof host, &host, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s: cannot tell which memory it covers (%s)",
                           name, clattn_cl_error_name(err));
    a->space = host ? NULL : m;
    a->start = host ? (uintptr_t)host + offset : (uintptr_t)offset;
    return CLATTN_SUCCESS;
}

/* Present when needed, a buffer object (not an image or pipe: the kernels index it as an array),
   of this context, large enough. */
static clattn_status check_one(clattn_context *ctx, clattn_buffer_arg *a)
{
    char name[64];
    arg_name(a, name, sizeof name);
    if (!a->mem) {
        if (a->need == 0 || a->optional)
            return CLATTN_SUCCESS;
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is NULL but the call needs %zu bytes",
                           name, a->need);
    }
    cl_mem_object_type type = 0;
    cl_context owner = NULL;
    size_t size = 0;
    cl_int err = clGetMemObjectInfo(a->mem, CL_MEM_TYPE, sizeof type, &type, NULL);
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(a->mem, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    if (err == CL_SUCCESS)
        err = clGetMemObjectInfo(a->mem, CL_MEM_SIZE, sizeof size, &size, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s is not a valid cl_mem (%s)", name,
                           clattn_cl_error_name(err));
    if (type != CL_MEM_OBJECT_BUFFER)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s is not a buffer object (CL_MEM_TYPE 0x%x; images are not accepted)",
                           name, (unsigned)type);
    if (owner != ctx->cl_ctx)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s belongs to another cl_context than the clattn context's", name);
    if (size < a->need)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "%s holds %zu bytes but the call needs %zu",
                           name, size, a->need);
    return resolve(ctx, a, name);
}

/* Whether the touched bytes of a and b share memory. Neither touches anything when need is 0. */
static int overlap(const clattn_buffer_arg *a, const clattn_buffer_arg *b)
{
    if (!a->mem || !b->mem || a->need == 0 || b->need == 0 || a->space != b->space)
        return 0;
    return a->start < b->start + b->need && b->start < a->start + a->need;
}

/* The in-place case: out is exactly the memory of one of its named inputs. */
static int in_place(const clattn_buffer_arg *out, const clattn_buffer_arg *in)
{
    return in->role == CLATTN_BUFFER_INPUT && out->in_place_of && strcmp(out->in_place_of, in->name) == 0;
}

static clattn_status refuse_overlap(clattn_context *ctx, const clattn_buffer_arg *out,
                                    const clattn_buffer_arg *other)
{
    char a[64], b[64];
    arg_name(out, a, sizeof a);
    arg_name(other, b, sizeof b);
    if (out->mem == other->mem && !in_place(out, other))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s and %s are the same buffer; an output may not alias another argument",
                           a, b);
    /* Offsets within the root buffer; for host memory, relative to the lower start. */
    uintptr_t base = out->space ? 0 : (out->start < other->start ? out->start : other->start);
    const char *where = out->space ? "of one buffer" : "of the same host memory (CL_MEM_USE_HOST_PTR)";
    size_t a0 = (size_t)(out->start - base), b0 = (size_t)(other->start - base);
    if (in_place(out, other))
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                           "%s partly overlaps %s (bytes [%zu, %zu) and [%zu, %zu) %s): in place, %s must "
                           "be exactly the memory of %s, the same bytes of the same buffer",
                           a, b, a0, a0 + out->need, b0, b0 + other->need, where, a, b);
    return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT,
                       "%s overlaps %s (bytes [%zu, %zu) and [%zu, %zu) %s); an output may not alias "
                       "another argument", a, b, a0, a0 + out->need, b0, b0 + other->need, where);
}

clattn_status clattn_buffers_check(clattn_context *ctx, clattn_buffer_arg *args, int n)
{
    for (int i = 0; i < n; i++) {
        args[i].space = NULL;
        args[i].start = 0;
        clattn_status st = check_one(ctx, &args[i]);
        if (st != CLATTN_SUCCESS)
            return st;
    }
    /* A handful of buffers (merge: two per part): every output against every other argument. */
    for (int i = 0; i < n; i++) {
        if (args[i].role != CLATTN_BUFFER_OUTPUT)
            continue;
        for (int j = 0; j < n; j++) {
            if (j == i || !overlap(&args[i], &args[j]))
                continue;
            if (in_place(&args[i], &args[j]) && args[i].space == args[j].space &&
                args[i].start == args[j].start && args[i].need == args[j].need)
                continue;
            return refuse_overlap(ctx, &args[i], &args[j]);
        }
    }
    return CLATTN_SUCCESS;
}
