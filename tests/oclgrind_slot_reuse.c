/* A minimal reproducer of an oclgrind bug (21.10, and still in 26.03's source), without clattn: the
 * uninitialised-value checker keeps a released buffer's shadow memory and hands it to the next
 * buffer created in the same slot.
 *
 * Run:   oclgrind --uninitialized build/tests/oclgrind_slot_reuse
 *
 * Why: oclgrind numbers buffers by slot and reuses a released buffer's slot for the next buffer
 * (Memory::getNextBuffer). Its Uninitialized plugin gives a buffer a fresh, all-uninitialised
 * shadow only when it first sees a slot with no shadow at all (Uninitialized::kernelBegin), or a
 * host write to it; it has no hook for a release, so a slot's shadow outlives its buffer. The next
 * buffer there, unless created from host data, inherits the old buffer's size and state:
 *   step 1, the control: a fresh buffer read before any write: REPORTED (correct).
 *   step 2, false reports: a buffer of 2n floats in the slot of a released n-float one, every
 *           element written by one kernel, then read by another: the stores past n fall outside
 *           the stale shadow and are dropped, so the reads past n are REPORTED as uninitialised
 *           although every value was written (kernel read_grown).
 *   step 3, missed reports: an n-float buffer in the slot of a released, fully written one, read
 *           before any write: NOT reported (kernel read_reused), unlike step 1.
 * So expect oclgrind's "Uninitialized value written to global memory" from read_fresh and
 * read_grown, and none from read_reused; a fixed oclgrind reports read_fresh and read_reused only.
 * (Without oclgrind the program just runs the steps on any OpenCL device and exits 0.)
 *
 * clattn's own oclgrind run (tests/oclgrind.sh, tests/oclgrind_cases.c) therefore never lets a
 * buffer be released before the end of the run, so no slot is reused. This program is built with
 * the tests but is not one: the suite does not depend on the bug.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <stdio.h>

static const char *source =
    "kernel void write_all(global float *a) { a[get_global_id(0)] = 1.0f; }\n"
    "kernel void read_fresh(global const float *a, global float *out)\n"
    "{ out[get_global_id(0)] = a[get_global_id(0)]; }\n"
    "kernel void read_grown(global const float *a, global float *out)\n"
    "{ out[get_global_id(0)] = a[get_global_id(0)]; }\n"
    "kernel void read_reused(global const float *a, global float *out)\n"
    "{ out[get_global_id(0)] = a[get_global_id(0)]; }\n";

#define N 16

static cl_context ctx;
static cl_command_queue queue;
static cl_program program;

static cl_mem buffer(size_t floats)
{
    cl_int err;
    return clCreateBuffer(ctx, CL_MEM_READ_WRITE, floats * sizeof(float), NULL, &err);
}

/* Runs kernel name over n items with arguments a (and out, if any), then waits. */
static int run(const char *name, size_t n, cl_mem a, cl_mem out)
{
    cl_int err;
    cl_kernel k = clCreateKernel(program, name, &err);
    if (!k)
        return 0;
    clSetKernelArg(k, 0, sizeof a, &a);
    if (out)
        clSetKernelArg(k, 1, sizeof out, &out);
    err = clEnqueueNDRangeKernel(queue, k, 1, NULL, &n, NULL, 0, NULL, NULL);
    clFinish(queue);
    clReleaseKernel(k);
    return err == CL_SUCCESS;
}

int main(void)
{
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    if (clGetPlatformIDs(1, &platform, NULL) != CL_SUCCESS ||
        clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL) != CL_SUCCESS) {
        printf("no OpenCL device\n");
        return 77;
    }
    ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    queue = ctx ? clCreateCommandQueue(ctx, device, 0, &err) : NULL;
    program = ctx ? clCreateProgramWithSource(ctx, 1, &source, NULL, &err) : NULL;
    if (!program || clBuildProgram(program, 1, &device, "", NULL, NULL) != CL_SUCCESS) {
        printf("OpenCL setup failed\n");
        return 1;
    }
    /* The outputs are created first and live to the end: they never take a reused slot. */
    cl_mem out_fresh = buffer(N), out_grown = buffer(2 * N), out_reused = buffer(N);
    int ok = 1;

    printf("step 1: read_fresh reads a fresh, never written buffer: expect a report\n");
    fflush(stdout);
    cl_mem fresh = buffer(N);
    ok &= run("read_fresh", N, fresh, out_fresh);
    clReleaseMemObject(fresh);

    printf("step 2: read_grown reads a fully written buffer in a reused, smaller slot: "
           "a report here is false\n");
    fflush(stdout);
    cl_mem small = buffer(N);   /* takes fresh's slot; it does not matter, only its size does */
    ok &= run("write_all", N, small, NULL);
    clReleaseMemObject(small);
    cl_mem grown = buffer(2 * N);
    ok &= run("write_all", 2 * N, grown, NULL);
    ok &= run("read_grown", 2 * N, grown, out_grown);
    clReleaseMemObject(grown);

    printf("step 3: read_reused reads a never written buffer in a reused slot: no report here is a miss\n");
    fflush(stdout);
    cl_mem written = buffer(N);
    ok &= run("write_all", N, written, NULL);
    clReleaseMemObject(written);
    cl_mem reused = buffer(N);
    ok &= run("read_reused", N, reused, out_reused);
    clReleaseMemObject(reused);

    clReleaseMemObject(out_fresh);
    clReleaseMemObject(out_grown);
    clReleaseMemObject(out_reused);
    clReleaseProgram(program);
    clReleaseCommandQueue(queue);
    clReleaseContext(ctx);
    printf("%s\n", ok ? "done" : "an OpenCL call failed");
    return ok ? 0 : 1;
}
