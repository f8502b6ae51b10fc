/* Implementations that stop loops after a fixed number of iterations, and how far clattn's kernels
 * stay under that.
 *
 * Mesa's llvmpipe (under rusticl, Mesa 22.3.6 in Debian 12) compiles kernels through gallivm, whose
 * loop limiter (LP_MAX_TGSI_LOOP_ITERATIONS, "shared between every loop in a shader") ends every
 * loop of a work-item once 65535 iterations have run in all its loops together, without an error:
 * a kernel that needs more returns unfinished results. A six-line kernel shows it: a loop of n
 * iterations counts n on PoCL and min(n, 65535) on llvmpipe; after a first loop of 60000, a second
 * one of 10000 stops at 5534 (docs/portability.md has the reproducer). The count a kernel reaches
 * depends on what the compiler leaves rolled, so the bounds below are measured, with a margin. */
#include "host/core/core.h"

#include <string.h>

long clattn_device_loop_cap(const clattn_device_info *dev)
{
    /* The limiter lives in gallivm, under every Mesa frontend that runs OpenCL on llvmpipe. */
    return strncmp(dev->name, "llvmpipe", 8) == 0 ? 65535 : 0;
}

int clattn_flash_keys_under_cap(const clattn_device_info *dev, int d, int dv, int rm)
{
    if (!clattn_device_loop_cap(dev))
        return 0;
    /* At the only point flash_valid accepts here (VW 1, RM 1, UNROLL 4) one work-group's keys ran
       correctly up to 1728 at d = 64, 864 at d = 128 and 432 at d = 256 (keys x d ~ 110 000); a
       third of that. */
    const int width = d > dv ? d : dv;
    const int keys = 32768 / (width > 0 ? width : 1) / (rm > 0 ? rm : 1);
    return keys > 0 ? keys : 1;
}

int clattn_unfused_keys_under_cap(const clattn_device_info *dev)
{
    /* The unfused path's P·V and softmax loops over keys ran correctly at Lk = 16384 and stopped
       early at 65536 (d = 64, the CPU defaults). */
    return clattn_device_loop_cap(dev) ? 16384 : 0;
}
