/* clattn-info: the OpenCL platforms and devices this machine offers, with the selector string that
 * picks each one (clattn_context_create, $CLATTN_DEVICE, --device). */
#include <clattn.h>

#include <stdio.h>
#include <string.h>

static void print_device(cl_uint p, cl_uint d, cl_device_id dev)
{
    char name[256] = "", version[256] = "", cversion[256] = "", ext[8192] = "";
    cl_device_type type = 0;
    cl_uint cus = 0;
    cl_ulong local = 0, max_alloc = 0, global = 0;
    size_t wg = 0;
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof name, name, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_VERSION, sizeof version, version, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_OPENCL_C_VERSION, sizeof cversion, cversion, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, sizeof ext, ext, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    const char *tname = (type & CL_DEVICE_TYPE_GPU)           ? "gpu"
                        : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator"
                        : (type & CL_DEVICE_TYPE_CPU)         ? "cpu"
                                                              : "other";
    printf("  device %u:%u  %s\n", p, d, name);
    printf("    selector        \"%u:%u\"  (or \"%s\", or a part of the name)\n", p, d, tname);
    printf("    type            %s\n", tname);
    printf("    compute units   %u\n", cus);
    printf("    work-group max  %zu\n", wg);
    printf("    local memory    %llu KiB\n", (unsigned long long)(local / 1024));
    printf("    global memory   %llu MiB\n", (unsigned long long)(global >> 20));
    printf("    max allocation  %llu MiB\n", (unsigned long long)(max_alloc >> 20));
    printf("    version         %s; %s\n", version, cversion);
    printf("    fp16            %s\n", strstr(ext, "cl_khr_fp16") ? "yes" : "no (half storage only)");
    printf("    fp64            %s\n", strstr(ext, "cl_khr_fp64") ? "yes" : "no");
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: clattn-info\nLists OpenCL platforms and devices with their clattn selectors.\n");
        return 0;
    }
    printf("clattn %s\n", clattn_version());
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (clGetPlatformIDs(16, plats, &np) != CL_SUCCESS || np == 0) {
        printf("no OpenCL platform found (is an ICD installed? e.g. pocl-opencl-icd)\n");
        return 1;
    }
    for (cl_uint p = 0; p < np && p < 16; p++) {
        char name[256] = "", version[256] = "";
        clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof name, name, NULL);
        clGetPlatformInfo(plats[p], CL_PLATFORM_VERSION, sizeof version, version, NULL);
        printf("platform %u: %s (%s)\n", p, name, version);
        cl_device_id devs[64];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 64, devs, &nd) != CL_SUCCESS)
            continue;
        for (cl_uint d = 0; d < nd && d < 64; d++)
            print_device(p, d, devs[d]);
    }
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create(NULL, &ctx);
    if (st == CLATTN_SUCCESS)
        printf("default device (no selector, $CLATTN_DEVICE unset or as set): %s\n",
               clattn_context_device_name(ctx));
    else
        printf("default device: none (%s)\n", clattn_status_string(st));
    clattn_context_release(ctx);
    return 0;
}
