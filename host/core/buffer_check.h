/* The one check of the buffers a call is given (clattn_attention, clattn_merge_partials,
 * clattn_mha_forward): each is a buffer object of the context's cl_context, large enough, present
 * where needed; and no output shares memory with another argument. Memory is compared by range, not
 * by handle: a sub-buffer is resolved to its root buffer and the byte range it covers there, and a
 * buffer over caller memory (CL_MEM_USE_HOST_PTR) to that host range, so two handles on one memory
 * are seen as one. */
#ifndef CLATTN_BUFFER_CHECK_H
#define CLATTN_BUFFER_CHECK_H

#include "host/core/core.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CLATTN_BUFFER_INPUT = 0,   /* only read: may overlap other inputs (q, k, v in one buffer) */
    CLATTN_BUFFER_OUTPUT,      /* written: may overlap nothing, except exactly its in_place_of input */
} clattn_buffer_role;

typedef struct clattn_buffer_arg {
    const char *name;          /* as the caller's documentation spells it: "q"; for an element of an
                                  array argument, the array's: "outs" */
    int in_array;              /* 1: element index of the array name, "outs[2]" in messages */
    int index;
    cl_mem mem;
    size_t need;               /* bytes the call reads or writes, from the buffer's offset 0;
                                  0: nothing is touched and NULL is accepted */
    clattn_buffer_role role;
    int optional;              /* NULL accepted even when need > 0 (the tensor is not wanted) */
    /* An output that may be the very memory of any input named so (in-place accumulation): the
       same bytes of the same memory, not merely overlapping them. NULL: none. */
    const char *in_place_of;

    /* Filled by clattn_buffers_check: where the need bytes lie. space is the root buffer, or NULL
       for host memory under CL_MEM_USE_HOST_PTR (then start is the host address). */
    cl_mem space;
    uintptr_t start;
} clattn_buffer_arg;

/* Checks every argument of one call, in order, then every output against every other argument.
   The first problem is recorded on ctx (clattn_fail) with the argument's name and returned as
   CLATTN_INVALID_ARGUMENT. */
clattn_status clattn_buffers_check(clattn_context *ctx, clattn_buffer_arg *args, int n);

#endif /* CLATTN_BUFFER_CHECK_H */
