/* Status names and the per-context error message. */
#include "host/internal.h"

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

clattn_status clattn_fail(clattn_context *ctx, clattn_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
        va_end(ap);
    }
    return status;
}

void clattn_clear_error(clattn_context *ctx)
{
    if (ctx)
        ctx->last_error[0] = '\0';
}

const char *clattn_context_last_error(const clattn_context *ctx)
{
    return ctx ? ctx->last_error : "";
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
