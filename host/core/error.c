/* Status names and the per-context error message. */
#include "host/core/core.h"

#include <stdio.h>
#include <string.h>

const char *clattn_status_string(clattn_status status)
{
    switch (status) {
    case CLATTN_SUCCESS: return "CLATTN_SUCCESS: no error";
    case CLATTN_INVALID_ARGUMENT: return "CLATTN_INVALID_ARGUMENT: an argument is invalid";
    case CLATTN_UNSUPPORTED: return "CLATTN_UNSUPPORTED: valid request this device or build cannot serve";
    case CLATTN_OUT_OF_MEMORY: return "CLATTN_OUT_OF_MEMORY: allocation failed or the problem cannot fit";
    case CLATTN_DEVICE_NOT_FOUND: return "CLATTN_DEVICE_NOT_FOUND: no OpenCL device matches";
    case CLATTN_BUILD_FAILED: return "CLATTN_BUILD_FAILED: kernel compilation failed";
    case CLATTN_OPENCL_ERROR: return "CLATTN_OPENCL_ERROR: an OpenCL call failed";
    case CLATTN_IO_ERROR: return "CLATTN_IO_ERROR: a file could not be read or written";
    }
    return "CLATTN_UNKNOWN_STATUS: not a clattn_status value";
}

/* Messages are formatted outside the lock (an argument may be another context's message) and
   copied in under it, so that a reader on another thread never sees half of one. */
static void store_message(clattn_context *ctx, char *dst, const char *msg)
{
    pthread_mutex_lock(&ctx->msg_lock);
    snprintf(dst, CLATTN_ERROR_LEN, "%s", msg);
    pthread_mutex_unlock(&ctx->msg_lock);
}

clattn_status clattn_fail(clattn_context *ctx, clattn_status status, const char *fmt, ...)
{
    if (ctx) {
        char msg[CLATTN_ERROR_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        store_message(ctx, ctx->last_error, msg);
    }
    return status;
}

void clattn_warn(clattn_context *ctx, const char *fmt, ...)
{
    if (!ctx)
        return;
    char msg[CLATTN_ERROR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    store_message(ctx, ctx->last_warning, msg);
    clattn_log(ctx, CLATTN_LOG_WARNING, msg);
}

void clattn_log(clattn_context *ctx, clattn_log_level level, const char *msg)
{
    if (!ctx)
        return;
    if (ctx->log_fn)
        ctx->log_fn(ctx->log_user, level, msg);
    else if (level == CLATTN_LOG_PLAN && ctx->settings.log_to_stderr)
        fprintf(stderr, "clattn: %s\n", msg);   /* CLATTN_LOG=plan asked for exactly this */
}

void clattn_clear_error(clattn_context *ctx)
{
    if (ctx)
        store_message(ctx, ctx->last_error, "");
}

void clattn_clear_messages(clattn_context *ctx)
{
    if (ctx) {
        store_message(ctx, ctx->last_error, "");
        store_message(ctx, ctx->last_warning, "");
    }
}

/* The copy a thread gets back from clattn_context_last_error/last_warning: the context's buffer may
   be rewritten by another thread's failure the moment the lock is released. */
static _Thread_local char returned[CLATTN_ERROR_LEN];

static size_t copy_message(const clattn_context *ctx, const char *src, char *buf, size_t len)
{
    clattn_context *c = (clattn_context *)ctx;   /* the lock, not the message, changes */
    pthread_mutex_lock(&c->msg_lock);
    size_t n = strlen(src);
    if (len > 0)
        snprintf(buf, len, "%s", src);
    pthread_mutex_unlock(&c->msg_lock);
    return n;
}

const char *clattn_context_last_error(const clattn_context *ctx)
{
    if (!ctx)
        return "";
    copy_message(ctx, ctx->last_error, returned, sizeof returned);
    return returned;
}

size_t clattn_context_last_error_copy(const clattn_context *ctx, char *buf, size_t len)
{
    if (!ctx) {
        if (buf && len)
            buf[0] = '\0';
        return 0;
    }
    return copy_message(ctx, ctx->last_error, buf, buf ? len : 0);
}

const char *clattn_context_last_warning(const clattn_context *ctx)
{
    if (!ctx)
        return "";
    copy_message(ctx, ctx->last_warning, returned, sizeof returned);
    return returned;
}

void clattn_context_set_log(clattn_context *ctx, clattn_log_fn fn, void *user)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->lock);   /* not while a call on another thread may be logging */
    ctx->log_fn = fn;
    ctx->log_user = user;
    pthread_mutex_unlock(&ctx->lock);
}

const char *clattn_cl_error_name(cl_int err)
{
    switch (err) {
#define NAME(x) case x: return #x;
    NAME(CL_SUCCESS) NAME(CL_DEVICE_NOT_FOUND) NAME(CL_DEVICE_NOT_AVAILABLE)
    NAME(CL_COMPILER_NOT_AVAILABLE) NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE) NAME(CL_OUT_OF_RESOURCES)
    NAME(CL_OUT_OF_HOST_MEMORY) NAME(CL_PROFILING_INFO_NOT_AVAILABLE) NAME(CL_MEM_COPY_OVERLAP)
    NAME(CL_IMAGE_FORMAT_MISMATCH) NAME(CL_IMAGE_FORMAT_NOT_SUPPORTED) NAME(CL_BUILD_PROGRAM_FAILURE)
    NAME(CL_MAP_FAILURE) NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) NAME(CL_COMPILE_PROGRAM_FAILURE)
    NAME(CL_LINKER_NOT_AVAILABLE) NAME(CL_LINK_PROGRAM_FAILURE) NAME(CL_DEVICE_PARTITION_FAILED)
    NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) NAME(CL_INVALID_VALUE) NAME(CL_INVALID_DEVICE_TYPE)
    NAME(CL_INVALID_PLATFORM) NAME(CL_INVALID_DEVICE) NAME(CL_INVALID_CONTEXT)
    NAME(CL_INVALID_QUEUE_PROPERTIES) NAME(CL_INVALID_COMMAND_QUEUE) NAME(CL_INVALID_HOST_PTR)
    NAME(CL_INVALID_MEM_OBJECT) NAME(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) NAME(CL_INVALID_IMAGE_SIZE)
    NAME(CL_INVALID_SAMPLER) NAME(CL_INVALID_BINARY) NAME(CL_INVALID_BUILD_OPTIONS)
    NAME(CL_INVALID_PROGRAM) NAME(CL_INVALID_PROGRAM_EXECUTABLE) NAME(CL_INVALID_KERNEL_NAME)
    NAME(CL_INVALID_KERNEL_DEFINITION) NAME(CL_INVALID_KERNEL) NAME(CL_INVALID_ARG_INDEX)
    NAME(CL_INVALID_ARG_VALUE) NAME(CL_INVALID_ARG_SIZE) NAME(CL_INVALID_KERNEL_ARGS)
    NAME(CL_INVALID_WORK_DIMENSION) NAME(CL_INVALID_WORK_GROUP_SIZE) NAME(CL_INVALID_WORK_ITEM_SIZE)
    NAME(CL_INVALID_GLOBAL_OFFSET) NAME(CL_INVALID_EVENT_WAIT_LIST) NAME(CL_INVALID_EVENT)
    NAME(CL_INVALID_OPERATION) NAME(CL_INVALID_GL_OBJECT) NAME(CL_INVALID_BUFFER_SIZE)
    NAME(CL_INVALID_MIP_LEVEL) NAME(CL_INVALID_GLOBAL_WORK_SIZE) NAME(CL_INVALID_PROPERTY)
    NAME(CL_INVALID_IMAGE_DESCRIPTOR) NAME(CL_INVALID_COMPILER_OPTIONS) NAME(CL_INVALID_LINKER_OPTIONS)
    NAME(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef NAME
    default: return "unknown OpenCL error";
    }
}

clattn_status clattn_fail_cl(clattn_context *ctx, cl_int err, const char *what)
{
    clattn_status st = CLATTN_OPENCL_ERROR;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
        err == CL_INVALID_BUFFER_SIZE)
        st = CLATTN_OUT_OF_MEMORY;
    return clattn_fail(ctx, st, "%s: %s (%d)", what, clattn_cl_error_name(err), (int)err);
}
