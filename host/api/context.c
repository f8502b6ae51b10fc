/* The public constructors and release of a context: the core, its caches, and the automatic tuner as
 * its after_call hook when its settings ask for one. The one place that ties the modules together;
 * nothing below includes it. */
#include "host/tune/tune.h"

static clattn_status create(const char *selector, cl_command_queue queue,
                            const clattn_context_options *opts, clattn_context **out)
{
    clattn_status st = clattn_context_open_cached(selector, queue, opts, 0, out);
    if (st == CLATTN_SUCCESS && (*out)->settings.autotune)
        (*out)->after_call = clattn_autotune_after_call;
    return st;
}

clattn_status clattn_context_create(const char *selector, clattn_context **out)
{
    return create(selector, NULL, NULL, out);
}

clattn_status clattn_context_create_with_options(const char *selector,
                                                 const clattn_context_options *options,
                                                 clattn_context **out)
{
    return create(selector, NULL, options, out);
}

clattn_status clattn_context_create_from_queue(cl_command_queue queue, clattn_context **out)
{
    return clattn_context_create_from_queue_with_options(queue, NULL, out);
}

clattn_status clattn_context_create_from_queue_with_options(cl_command_queue queue,
                                                            const clattn_context_options *options,
                                                            clattn_context **out)
{
    if (out)
        *out = NULL;
    if (!out || !queue)
        return CLATTN_INVALID_ARGUMENT;
    return create(NULL, queue, options, out);
}

void clattn_context_release(clattn_context *ctx)
{
    clattn_context_close_cached(ctx);
}
