/* Kernel sources (embedded, or $CLATTN_KERNEL_DIR), program builds, and the per-context cache of
 * built programs and their kernel objects, keyed by (file, options). */
#include "host/cache/cache_file.h"
#include "host/cache/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMMON_FILE "common.h.cl"

typedef struct kernel_entry {
    char *name;
    cl_kernel kernel;
    struct kernel_entry *next;
} kernel_entry;

struct clattn_program_entry {
    char *file;
    char *options;
    cl_program program;
    kernel_entry *kernels;
    clattn_program_entry *next;
};

static const clattn_kernel_source *embedded(const char *file)
{
    for (size_t i = 0; i < clattn_kernel_source_count; i++)
        if (strcmp(clattn_kernel_sources[i].name, file) == 0)
            return &clattn_kernel_sources[i];
    return NULL;
}

/* Reads dir/file into a malloc'd NUL-terminated string, through the library's one file reader:
   a regular file only (a FIFO, a directory, a device or a symbolic link in the folder is refused
   at once, never waited on), at most CLATTN_KERNEL_SOURCE_MAX_BYTES. */
static clattn_status read_file(clattn_context *ctx, const char *dir, const char *file, char **text,
                               size_t *len)
{
    char path[CLATTN_CACHE_PATH_MAX], err[CLATTN_ERROR_LEN - 64];
    clattn_status st;
    if (clattn_cache_join(path, sizeof path, dir, file))
        return clattn_fail(ctx, CLATTN_IO_ERROR, "CLATTN_KERNEL_DIR: path too long: %s/%s", dir,
                           file);
    st = clattn_cache_read(path, CLATTN_KERNEL_SOURCE_MAX_BYTES, text, len, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "CLATTN_KERNEL_DIR: %s", err);
    if (!*text)
        return clattn_fail(ctx, CLATTN_IO_ERROR, "CLATTN_KERNEL_DIR: '%s' is missing", path);
    return CLATTN_SUCCESS;
}

/* The complete program text for file: the shared definitions, then the file. */
clattn_status clattn_program_source(clattn_context *ctx, const char *file, char **out, size_t *out_len)
{
    clattn_status st = CLATTN_SUCCESS;
    char *common = NULL, *body = NULL, *text = NULL;
    size_t common_len = 0, body_len = 0;
    if (ctx->kernel_dir) {
        st = read_file(ctx, ctx->kernel_dir, COMMON_FILE, &common, &common_len);
        if (st == CLATTN_SUCCESS)
            st = read_file(ctx, ctx->kernel_dir, file, &body, &body_len);
        if (st != CLATTN_SUCCESS)
            goto out;
    } else {
        const clattn_kernel_source *c = embedded(COMMON_FILE), *b = embedded(file);
        if (!c || !b) {
            st = clattn_fail(ctx, CLATTN_UNSUPPORTED, "kernel source '%s' is not in this build",
                             b ? COMMON_FILE : file);
            goto out;
        }
        common_len = c->length;
        body_len = b->length;
        common = malloc(common_len + 1);
        body = malloc(body_len + 1);
        if (common && body) {
            memcpy(common, c->text, common_len + 1);
            memcpy(body, b->text, body_len + 1);
        }
    }
    text = (common && body) ? malloc(common_len + body_len + 64) : NULL;
    if (!text) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory for kernel source '%s'", file);
        goto out;
    }
    /* #line keeps build-log line numbers pointing into the file itself. */
    size_t n = (size_t)sprintf(text, "%s\n#line 1\n", common);
    memcpy(text + n, body, body_len + 1);
    *out = text;
    *out_len = n + body_len;
    text = NULL;
out:
    free(common);
    free(body);
    free(text);
    return st;
}

static clattn_status build_log_fail(clattn_context *ctx, cl_program program, const char *file,
                                    const char *options, cl_int err)
{
    char log[CLATTN_ERROR_LEN - 256];
    size_t n = 0;
    log[0] = '\0';
    if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log, log, &n) !=
        CL_SUCCESS) {
        /* The log is longer than our buffer: take its head, which names the first error. */
        size_t full = 0;
        clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &full);
        char *all = full ? malloc(full) : NULL;
        if (all && clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, full, all, NULL) ==
                       CL_SUCCESS) {
            memcpy(log, all, sizeof log - 1);
            log[sizeof log - 1] = '\0';
        }
        free(all);
    }
    return clattn_fail(ctx, CLATTN_BUILD_FAILED, "building %s with '%s' failed (%s):\n%s", file, options,
                       clattn_cl_error_name(err), log);
}

/* Builds file with options for the context's device: from the binary cache when it holds the
   program, else from source (then stores the binary). */
static clattn_status build_program(clattn_context *ctx, const char *file, const char *options,
                                   cl_program *out)
{
    char *text = NULL;
    size_t len = 0;
    cl_program program = NULL;
    cl_int err;
    clattn_status st = clattn_program_source(ctx, file, &text, &len);
    if (st != CLATTN_SUCCESS)
        return st;

    st = clattn_program_from_binary_cache(ctx, file, text, options, &program);
    if (st != CLATTN_SUCCESS)
        goto out;
    if (program) {
        *out = program;
        goto out;
    }
    if (!ctx->info.compiler_available) {
        st = clattn_fail(ctx, CLATTN_UNSUPPORTED,
                         "device '%s' has no OpenCL C compiler and no binary for %s with '%s' was found",
                         ctx->info.name, file, options);
        goto out;
    }
    const char *src = text;
    program = clCreateProgramWithSource(ctx->cl_ctx, 1, &src, &len, &err);
    if (!program) {
        st = clattn_fail_cl(ctx, err, "clCreateProgramWithSource");
        goto out;
    }
    err = clBuildProgram(program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        st = build_log_fail(ctx, program, file, options, err);
        clReleaseProgram(program);
        goto out;
    }
    clattn_program_to_binary_cache(ctx, file, text, options, program);
    *out = program;
out:
    free(text);
    return st;
}

static clattn_program_entry *find_program(clattn_context *ctx, const char *file, const char *options)
{
    for (clattn_program_entry *e = ctx->programs; e; e = e->next)
        if (strcmp(e->file, file) == 0 && strcmp(e->options, options) == 0)
            return e;
    return NULL;
}

int clattn_test_program_built(const clattn_context *ctx, const char *part)
{
    for (const clattn_program_entry *e = ctx->programs; e; e = e->next)
        if (strstr(e->options, part))
            return 1;
    return 0;
}

clattn_status clattn_program_get(clattn_context *ctx, const char *file, const char *options,
                                 cl_program *out)
{
    clattn_program_entry *e = find_program(ctx, file, options);
    if (e) {
        *out = e->program;
        return CLATTN_SUCCESS;
    }
    cl_program program = NULL;
    clattn_status st = build_program(ctx, file, options, &program);
    if (st != CLATTN_SUCCESS)
        return st;
    e = calloc(1, sizeof *e);
    if (e) {
        e->file = strdup(file);
        e->options = strdup(options);
    }
    if (!e || !e->file || !e->options) {
        if (e) {
            free(e->file);
            free(e->options);
        }
        free(e);
        clReleaseProgram(program);
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory caching %s", file);
    }
    e->program = program;
    e->next = ctx->programs;
    ctx->programs = e;
    *out = program;
    return CLATTN_SUCCESS;
}

clattn_status clattn_kernel_get(clattn_context *ctx, const char *file, const char *options,
                                const char *kernel_name, cl_kernel *out)
{
    cl_program program;
    clattn_status st = clattn_program_get(ctx, file, options, &program);
    if (st != CLATTN_SUCCESS)
        return st;
    clattn_program_entry *e = find_program(ctx, file, options);
    for (kernel_entry *k = e->kernels; k; k = k->next)
        if (strcmp(k->name, kernel_name) == 0) {
            *out = k->kernel;
            return CLATTN_SUCCESS;
        }
    cl_int err;
    cl_kernel kernel = clCreateKernel(program, kernel_name, &err);
    if (!kernel)
        return clattn_fail(ctx, err == CL_INVALID_KERNEL_NAME ? CLATTN_BUILD_FAILED : CLATTN_OPENCL_ERROR,
                           "clCreateKernel(%s) from %s: %s (%d)", kernel_name, file,
                           clattn_cl_error_name(err), (int)err);
    kernel_entry *k = calloc(1, sizeof *k);
    if (k)
        k->name = strdup(kernel_name);
    if (!k || !k->name) {
        free(k);
        clReleaseKernel(kernel);
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory caching kernel %s", kernel_name);
    }
    k->kernel = kernel;
    k->next = e->kernels;
    e->kernels = k;
    *out = kernel;
    return CLATTN_SUCCESS;
}

void clattn_programs_release(clattn_context *ctx)
{
    clattn_program_entry *e = ctx->programs;
    while (e) {
        clattn_program_entry *next = e->next;
        kernel_entry *k = e->kernels;
        while (k) {
            kernel_entry *kn = k->next;
            clReleaseKernel(k->kernel);
            free(k->name);
            free(k);
            k = kn;
        }
        clReleaseProgram(e->program);
        free(e->file);
        free(e->options);
        free(e);
        e = next;
    }
    ctx->programs = NULL;
}
