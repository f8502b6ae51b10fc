/* What the library needs to know about a device: identity (for caches), class (for defaults), limits. */
#include "host/core/core.h"

#include <stdio.h>
#include <string.h>

static void device_string(cl_device_id dev, cl_device_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

static void platform_string(cl_platform_id plat, cl_platform_info what, char *buf, size_t len)
{
    buf[0] = '\0';
    if (clGetPlatformInfo(plat, what, len, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[len - 1] = '\0';
}

static int has_extension(cl_device_id dev, const char *ext)
{
    size_t n = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &n) != CL_SUCCESS || n == 0)
        return 0;
    char buf[8192];
    if (n > sizeof buf)
        n = sizeof buf;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, n, buf, NULL) != CL_SUCCESS)
        return 0;
    buf[n - 1] = '\0';
    /* Match whole words: cl_khr_fp16 must not match cl_khr_fp16_foo. */
    size_t el = strlen(ext);
    for (const char *s = strstr(buf, ext); s; s = strstr(s + 1, ext)) {
        int start_ok = s == buf || s[-1] == ' ';
        int end_ok = s[el] == '\0' || s[el] == ' ';
        if (start_ok && end_ok)
            return 1;
    }
    return 0;
}

clattn_status clattn_device_query(clattn_context *ctx, cl_platform_id platform, cl_device_id device,
                                  clattn_device_info *info)
{
    memset(info, 0, sizeof *info);
    device_string(device, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_string(device, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    device_string(device, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    device_string(device, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);
    platform_string(platform, CL_PLATFORM_NAME, info->platform_name, sizeof info->platform_name);
    platform_string(platform, CL_PLATFORM_VERSION, info->platform_version,
                    sizeof info->platform_version);

    cl_device_type type = 0;
    cl_int err = clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof info->compute_units,
                           &info->compute_units, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof info->local_mem_bytes,
                           &info->local_mem_bytes, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof info->max_alloc_bytes,
                           &info->max_alloc_bytes, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof info->global_mem_bytes,
                           &info->global_mem_bytes, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof info->max_work_group,
                           &info->max_work_group, NULL);
    err |= clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof info->max_work_item,
                           info->max_work_item, NULL);
    cl_bool compiler = CL_TRUE;
    err |= clGetDeviceInfo(device, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    if (err != CL_SUCCESS)
        return clattn_fail(ctx, CLATTN_OPENCL_ERROR, "clGetDeviceInfo failed for device '%s'", info->name);

    info->cls = (type & CL_DEVICE_TYPE_GPU)           ? CLATTN_CLASS_GPU
                : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLATTN_CLASS_ACCELERATOR
                                                      : CLATTN_CLASS_CPU;
    info->compiler_available = compiler == CL_TRUE;
    info->has_fp16 = has_extension(device, "cl_khr_fp16");
    info->has_fp64 = has_extension(device, "cl_khr_fp64");
    if (info->compute_units == 0)
        info->compute_units = 1;
    return CLATTN_SUCCESS;
}
