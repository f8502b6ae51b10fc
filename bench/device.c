/* The device the benchmark runs on: our own context and profiling queue, which every method shares
 * (clattn wraps the queue with clattn_context_create_from_queue; CLBlast enqueues on it). */
#include "bench/bench.h"

#include <stdio.h>
#include <string.h>

static void info_string(cl_device_id device, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(device, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

clattn_status bench_device_open(const char *selector, bench_device *dev, char *err, size_t err_len)
{
    clattn_context *probe = NULL;
    cl_platform_id platform = NULL;
    cl_int cl_err = CL_SUCCESS;
    memset(dev, 0, sizeof *dev);

    /* clattn's selector resolves the device; the probe context is dropped once it has. */
    clattn_status st = clattn_context_create(selector, &probe);
    if (st != CLATTN_SUCCESS) {
        snprintf(err, err_len, "no device for \"%s\": %s", selector ? selector : "",
                 clattn_status_string(st));
        goto out;
    }
    dev->device = clattn_context_device(probe);

    clGetDeviceInfo(dev->device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL);
    clGetDeviceInfo(dev->device, CL_DEVICE_TYPE, sizeof dev->type, &dev->type, NULL);
    clGetDeviceInfo(dev->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof dev->compute_units,
                    &dev->compute_units, NULL);
    clGetDeviceInfo(dev->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof dev->max_alloc,
                    &dev->max_alloc, NULL);
    clGetDeviceInfo(dev->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof dev->global_mem,
                    &dev->global_mem, NULL);
    clGetDeviceInfo(dev->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof dev->max_work_group,
                    &dev->max_work_group, NULL);
    info_string(dev->device, CL_DEVICE_NAME, dev->name, sizeof dev->name);
    info_string(dev->device, CL_DEVICE_VENDOR, dev->vendor, sizeof dev->vendor);
    info_string(dev->device, CL_DRIVER_VERSION, dev->driver, sizeof dev->driver);
    info_string(dev->device, CL_DEVICE_VERSION, dev->version, sizeof dev->version);
    dev->platform[0] = '\0';
    if (platform) {
        clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof dev->platform, dev->platform, NULL);
        dev->platform[sizeof dev->platform - 1] = '\0';
    }

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)platform, 0};
    dev->context = clCreateContext(props, 1, &dev->device, NULL, NULL, &cl_err);
    if (cl_err != CL_SUCCESS) {
        snprintf(err, err_len, "clCreateContext: %d", cl_err);
        st = CLATTN_OPENCL_ERROR;
        goto out;
    }
    /* Profiling on: kernel times come from events, not from the host clock. */
    dev->queue = clCreateCommandQueue(dev->context, dev->device, CL_QUEUE_PROFILING_ENABLE, &cl_err);
    if (cl_err != CL_SUCCESS) {
        snprintf(err, err_len, "clCreateCommandQueue: %d", cl_err);
        st = CLATTN_OPENCL_ERROR;
        goto out;
    }
    dev->events_report_zero = bench_events_report_zero(dev->queue);

out:
    clattn_context_release(probe);
    if (st != CLATTN_SUCCESS)
        bench_device_close(dev);
    return st;
}

void bench_device_close(bench_device *dev)
{
    if (dev->queue)
        clReleaseCommandQueue(dev->queue);
    if (dev->context)
        clReleaseContext(dev->context);
    dev->queue = NULL;
    dev->context = NULL;
}

const char *bench_device_type_name(cl_device_type type)
{
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "ACCELERATOR";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    return "OTHER";
}
