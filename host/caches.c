/* The on-disk caches as the rest of the library sees them: the tuning file loaded with the context,
 * and program binaries looked up before compiling. */
#include "host/internal.h"

void clattn_context_load_caches(clattn_context *ctx)
{
    (void)ctx;
}

void clattn_context_free_caches(clattn_context *ctx)
{
    (void)ctx;
}

clattn_status clattn_program_from_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                               const char *options, cl_program *out)
{
    (void)ctx, (void)file, (void)source, (void)options;
    *out = NULL;
    return CLATTN_SUCCESS;
}

void clattn_program_to_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                    const char *options, cl_program program)
{
    (void)ctx, (void)file, (void)source, (void)options, (void)program;
}

int clattn_tuning_lookup(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                         clattn_params *out)
{
    (void)ctx, (void)family, (void)p, (void)out;
    return 0;
}
