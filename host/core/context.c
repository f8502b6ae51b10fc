/* The core of a context: its settings, the device it selects (or the queue it wraps), device facts;
 * and the public accessors. The caches are cache/'s, the public constructors api/'s. */
#include "host/core/core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

/* The library's one piece of process-wide state, and why: PoCL 3.1 initialises its devices on the
   first clGetPlatformIDs/clGetDeviceIDs of a process without guarding against other threads doing
   the same, so threads creating their first contexts at once see no devices, or crash in
   clGetDeviceInfo on a device still half-built (tests/test_context_threads.c). What it guards is
   the driver's process-wide state, so no per-context lock can: device enumeration and the query of
   a context's device facts hold this lock (a caller's queue is wrapped outside it: whoever made the
   queue has initialised the driver already). Context creation is rare; the cost is nil. */
static pthread_mutex_t device_enumeration_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct candidate {
    cl_platform_id platform;
    cl_device_id device;
    int platform_index, device_index;
    cl_device_type type;
    char name[256];
    cl_ulong local_mem;          /* tie-breaks among devices of one type (best_of_type) */
    cl_bool compiler;
    int fp64;
} candidate;

static int list_devices(candidate *out, int max)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    if (clGetPlatformIDs(MAX_PLATFORMS, plats, &np) != CL_SUCCESS)
        return 0;
    int n = 0;
    for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && d < MAX_DEVICES && n < max; d++) {
            candidate *c = &out[n++];
            c->platform = plats[p];
            c->device = devs[d];
            c->platform_index = (int)p;
            c->device_index = (int)d;
            c->type = 0;
            clGetDeviceInfo(devs[d], CL_DEVICE_TYPE, sizeof c->type, &c->type, NULL);
            c->name[0] = '\0';
            clGetDeviceInfo(devs[d], CL_DEVICE_NAME, sizeof c->name, c->name, NULL);
            c->name[sizeof c->name - 1] = '\0';
            c->local_mem = 0;
            clGetDeviceInfo(devs[d], CL_DEVICE_LOCAL_MEM_SIZE, sizeof c->local_mem, &c->local_mem,
                            NULL);
            c->compiler = CL_FALSE;
            clGetDeviceInfo(devs[d], CL_DEVICE_COMPILER_AVAILABLE, sizeof c->compiler, &c->compiler,
                            NULL);
            cl_device_fp_config fp64 = 0;
            clGetDeviceInfo(devs[d], CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64, &fp64, NULL);
            c->fp64 = fp64 != 0;
        }
    }
    return n;
}

static int ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

static int icontains(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}

/* 1 when a is the better of two devices of one type, by what clattn uses: a compiler (binary-only
   devices run only what was built for them), then fp64 (a fuller implementation: Mesa's llvmpipe,
   which also ends long loops early, has none), then local memory (larger tiles fit; 32 KiB does not
   hold the CPU defaults at d = 64). Equal devices keep the ICD loader's order, which is the order
   its vendor files happen to be listed in, so not something to rely on: between PoCL and rusticl's
   llvmpipe this picks PoCL whatever the order. */
static int better(const candidate *a, const candidate *b)
{
    if (a->compiler != b->compiler)
        return a->compiler == CL_TRUE;
    if (a->fp64 != b->fp64)
        return a->fp64;
    return a->local_mem > b->local_mem;
}

static int best_of_type(const candidate *c, int n, cl_device_type type)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if ((c[i].type & type) && (best < 0 || better(&c[i], &c[best])))
            best = i;
    return best;
}

/* The index of the candidate the selector names, or -1. */
static int select_device(const candidate *c, int n, const char *sel)
{
    if (!sel || !*sel) {
        int i = best_of_type(c, n, CL_DEVICE_TYPE_GPU);
        if (i < 0)
            i = best_of_type(c, n, CL_DEVICE_TYPE_ACCELERATOR);
        if (i < 0)
            i = best_of_type(c, n, CL_DEVICE_TYPE_CPU);
        return i < 0 && n > 0 ? 0 : i;
    }
    int pi, di, used = 0;
    if (sscanf(sel, "%d:%d%n", &pi, &di, &used) == 2 && sel[used] == '\0') {
        for (int i = 0; i < n; i++)
            if (c[i].platform_index == pi && c[i].device_index == di)
                return i;
        return -1;
    }
    if (ieq(sel, "gpu"))
        return best_of_type(c, n, CL_DEVICE_TYPE_GPU);
    if (ieq(sel, "cpu"))
        return best_of_type(c, n, CL_DEVICE_TYPE_CPU);
    if (ieq(sel, "accelerator"))
        return best_of_type(c, n, CL_DEVICE_TYPE_ACCELERATOR);
    for (int i = 0; i < n; i++)
        if (icontains(c[i].name, sel))
            return i;
    return -1;
}

/* The options that make a context plan for another device than the one it has (testing, and
   devices that misreport): another class's defaults, less local memory, smaller work-groups. */
static void apply_device_overrides(const clattn_settings *s, clattn_device_info *info)
{
    if (s->device_class >= 0)
        info->cls = (clattn_device_class)s->device_class;
    if (s->max_local_mem && s->max_local_mem < info->local_mem_bytes)
        info->local_mem_bytes = s->max_local_mem;
    if (s->max_work_group) {
        if (s->max_work_group < info->max_work_group)
            info->max_work_group = s->max_work_group;
        for (int i = 0; i < 3; i++)
            if (s->max_work_group < info->max_work_item[i])
                info->max_work_item[i] = s->max_work_group;
    }
}

/* A context with its settings and locks, before any OpenCL object. */
static clattn_status context_alloc(const char *selector, const clattn_context_options *opts,
                                   int private_context, clattn_context **out)
{
    clattn_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return CLATTN_OUT_OF_MEMORY;
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        free(ctx);
        return CLATTN_OUT_OF_MEMORY;
    }
    if (pthread_mutex_init(&ctx->msg_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return CLATTN_OUT_OF_MEMORY;
    }
    clattn_status st = clattn_settings_resolve(selector, opts, &ctx->settings);
    if (st != CLATTN_SUCCESS) {
        pthread_mutex_destroy(&ctx->msg_lock);
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return st;
    }
    ctx->settings.private_context = private_context;
    ctx->kernel_dir = ctx->settings.kernel_dir;
    ctx->log_fn = ctx->settings.log;
    ctx->log_user = ctx->settings.log_user;
    *out = ctx;
    return CLATTN_SUCCESS;
}

/* The device the settings select, with a context and a profiling queue of our own. */
static clattn_status open_device(clattn_context *ctx)
{
    candidate cands[MAX_DEVICES];
    pthread_mutex_lock(&device_enumeration_lock);
    int n = list_devices(cands, MAX_DEVICES);
    pthread_mutex_unlock(&device_enumeration_lock);
    int i = select_device(cands, n, ctx->settings.selector);
    if (i < 0)
        return CLATTN_DEVICE_NOT_FOUND;
    ctx->platform = cands[i].platform;
    ctx->device = cands[i].device;

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)ctx->platform, 0};
    ctx->cl_ctx = clCreateContext(props, 1, &ctx->device, NULL, NULL, &err);
    if (!ctx->cl_ctx)
        return err == CL_OUT_OF_HOST_MEMORY ? CLATTN_OUT_OF_MEMORY : CLATTN_OPENCL_ERROR;
    /* Profiling on: the tuner and the benchmark time kernels with events; the cost is negligible. */
    ctx->queue = clCreateCommandQueue(ctx->cl_ctx, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!ctx->queue)
        return err == CL_OUT_OF_HOST_MEMORY ? CLATTN_OUT_OF_MEMORY : CLATTN_OPENCL_ERROR;
    ctx->queue_profiling = 1;
    return CLATTN_SUCCESS;
}

/* The caller's queue, retained: its context and device serve every buffer and kernel. */
static clattn_status wrap_queue(clattn_context *ctx, cl_command_queue queue)
{
    cl_context cl_ctx = NULL;
    cl_device_id device = NULL;
    cl_platform_id platform = NULL;
    cl_command_queue_properties qprops = 0;
    if (clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof cl_ctx, &cl_ctx, NULL) != CL_SUCCESS ||
        clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device, &device, NULL) != CL_SUCCESS ||
        clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof qprops, &qprops, NULL) != CL_SUCCESS ||
        clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL) != CL_SUCCESS)
        return CLATTN_INVALID_ARGUMENT;   /* not a valid command queue */
    clRetainCommandQueue(queue);
    clRetainContext(cl_ctx);
    ctx->queue = queue;
    ctx->cl_ctx = cl_ctx;
    ctx->device = device;
    ctx->platform = platform;
    ctx->queue_profiling = (qprops & CL_QUEUE_PROFILING_ENABLE) != 0;
    ctx->queue_out_of_order = (qprops & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0;
    return CLATTN_SUCCESS;
}

clattn_status clattn_context_open(const char *selector, cl_command_queue queue,
                                  const clattn_context_options *opts, int private_context,
                                  clattn_context **out)
{
    if (!out)
        return CLATTN_INVALID_ARGUMENT;
    *out = NULL;
    clattn_context *ctx = NULL;
    clattn_status st = context_alloc(queue ? NULL : selector, opts, private_context, &ctx);
    if (st != CLATTN_SUCCESS)
        return st;
    st = queue ? wrap_queue(ctx, queue) : open_device(ctx);
    if (st == CLATTN_SUCCESS) {
        pthread_mutex_lock(&device_enumeration_lock);
        st = clattn_device_query(ctx, ctx->platform, ctx->device, &ctx->info);
        pthread_mutex_unlock(&device_enumeration_lock);
    }
    if (st == CLATTN_SUCCESS)
        apply_device_overrides(&ctx->settings, &ctx->info);
    if (st != CLATTN_SUCCESS) {
        clattn_context_close(ctx);
        return st;
    }
    clattn_clear_error(ctx);
    *out = ctx;
    return CLATTN_SUCCESS;
}

void clattn_context_close(clattn_context *ctx)
{
    if (!ctx)
        return;
    clattn_scratch_release_all(ctx);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl_ctx)
        clReleaseContext(ctx->cl_ctx);
    clattn_settings_free(&ctx->settings);
    pthread_mutex_destroy(&ctx->msg_lock);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

cl_command_queue clattn_context_queue(const clattn_context *ctx)
{
    return ctx ? ctx->queue : NULL;
}

cl_context clattn_context_cl_context(const clattn_context *ctx)
{
    return ctx ? ctx->cl_ctx : NULL;
}

cl_device_id clattn_context_device(const clattn_context *ctx)
{
    return ctx ? ctx->device : NULL;
}

const char *clattn_context_device_name(const clattn_context *ctx)
{
    return ctx ? ctx->info.name : "";
}

size_t clattn_context_scratch_bytes(const clattn_context *ctx)
{
    return ctx ? ctx->scratch.high_water : 0;
}

void clattn_test_lock(clattn_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
}

void clattn_test_unlock(clattn_context *ctx)
{
    pthread_mutex_unlock(&ctx->lock);
}

clattn_device_info *clattn_test_device(clattn_context *ctx)
{
    return &ctx->info;
}

cl_mem clattn_test_scratch(const clattn_context *ctx, clattn_scratch_slot slot)
{
    return ctx->scratch.buf[slot];
}
