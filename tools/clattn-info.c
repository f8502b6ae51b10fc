/* clattn-info: the OpenCL platforms and devices this machine offers, with the selector string that
 * picks each one (clattn_context_create, $CLATTN_DEVICE, --device); with --plan, what an attention
 * call of a given shape would run on the chosen device (clattn_plan_describe). Public API only. */
#include <clattn.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
    const char *device;          /* NULL: $CLATTN_DEVICE, else the default order */
    const char *plan;            /* "B,Hq,Hkv,Lq,Lk,d[,dv]", or NULL: list the devices */
    int causal, probs, f16, bshd;
    clattn_path path;
} options;

static void usage(FILE *f)
{
    fputs("usage: clattn-info [--device SELECTOR]\n"
          "       clattn-info [--device SELECTOR] --plan B,Hq,Hkv,Lq,Lk,d[,dv] [--causal] [--probs]\n"
          "                   [--path fused|unfused|auto] [--f16] [--bshd]\n"
          "Lists OpenCL platforms and devices with their clattn selectors, and the device a context\n"
          "picks. With --plan, prints instead what an attention call of that shape would run on the\n"
          "device: the path, and per kernel family the problem it runs, its parameters and where they\n"
          "came from (tuning file or defaults). Nothing is run; the caches and $CLATTN_* variables\n"
          "apply as to any context.\n"
          "  --device SELECTOR   as CLATTN_DEVICE: \"P:D\", gpu, cpu, accelerator, or a name part\n"
          "                      (default: $CLATTN_DEVICE, else GPU, accelerator, CPU)\n"
          "  --plan SHAPE        batch, query heads, KV heads, query and key lengths, head width\n"
          "                      (and value head width, default d)\n"
          "  --causal            bottom-right causal mask\n"
          "  --probs             the call asks for the attention weights (auto: unfused path)\n"
          "  --path PATH         fused, unfused or auto (default auto)\n"
          "  --f16               F16 storage (default F32)\n"
          "  --bshd              CLATTN_LAYOUT_BSHD (default BHSD)\n"
          "  --help              this text\n",
          f);
}

/* 0 to go on, 1 to exit successfully, -1 on a usage error. */
static int parse_args(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        if (!strcmp(a, "--device") || !strcmp(a, "--plan") || !strcmp(a, "--path")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "clattn-info: %s needs a value\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--device")) {
            o->device = val;
        } else if (!strcmp(a, "--plan")) {
            o->plan = val;
        } else if (!strcmp(a, "--path")) {
            if (!strcmp(val, "fused"))
                o->path = CLATTN_PATH_FUSED;
            else if (!strcmp(val, "unfused"))
                o->path = CLATTN_PATH_UNFUSED;
            else if (!strcmp(val, "auto"))
                o->path = CLATTN_PATH_AUTO;
            else {
                fprintf(stderr, "clattn-info: --path \"%s\": fused, unfused or auto\n", val);
                return -1;
            }
        } else if (!strcmp(a, "--causal")) {
            o->causal = 1;
        } else if (!strcmp(a, "--probs")) {
            o->probs = 1;
        } else if (!strcmp(a, "--f16")) {
            o->f16 = 1;
        } else if (!strcmp(a, "--bshd")) {
            o->bshd = 1;
        } else {
            fprintf(stderr, "clattn-info: unknown option \"%s\" (try --help)\n", a);
            return -1;
        }
    }
    if (!o->plan && (o->causal || o->probs || o->f16 || o->bshd || o->path != CLATTN_PATH_AUTO)) {
        fprintf(stderr, "clattn-info: --causal, --probs, --path, --f16 and --bshd go with --plan\n");
        return -1;
    }
    return 0;
}

/* "B,Hq,Hkv,Lq,Lk,d[,dv]" into desc; the library judges the values (clattn_plan_describe). */
static int parse_shape(const char *text, clattn_attention_desc *desc)
{
    long f[7] = {0};
    int n = 0;
    const char *p = text;
    int bad = 0;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9') {   /* digits only: no sign, blank or empty field */
            bad = 1;
            break;
        }
        errno = 0;
        f[n] = strtol(p, &end, 10);
        if (errno || f[n] > 1L << 30) {
            bad = 1;
            break;
        }
        n++;
        p = end;
        if (*p != ',' || n == 7)
            break;
        p++;
    }
    if (bad || *p || n < 6) {
        fprintf(stderr, "clattn-info: --plan \"%s\": expected B,Hq,Hkv,Lq,Lk,d[,dv] (integers)\n",
                text);
        return -1;
    }
    desc->batch = (int)f[0];
    desc->heads_q = (int)f[1];
    desc->heads_kv = (int)f[2];
    desc->seq_q = (int)f[3];
    desc->seq_kv = (int)f[4];
    desc->head_dim = (int)f[5];
    desc->head_dim_v = (int)f[6];   /* 0 when not given: d */
    return 0;
}

static void on_log(void *user, clattn_log_level level, const char *message)
{
    (void)user;
    if (level == CLATTN_LOG_WARNING)
        fprintf(stderr, "clattn-info: warning: %s\n", message);
}

static int print_plan(const options *o)
{
    clattn_attention_desc desc;
    memset(&desc, 0, sizeof desc);
    if (parse_shape(o->plan, &desc))
        return 2;
    desc.dtype = o->f16 ? CLATTN_F16 : CLATTN_F32;
    desc.layout = o->bshd ? CLATTN_LAYOUT_BSHD : CLATTN_LAYOUT_BHSD;
    desc.causal = o->causal ? CLATTN_CAUSAL_BOTTOM_RIGHT : CLATTN_CAUSAL_NONE;
    desc.path = o->path;

    /* zero options: the environment and caches as for any context, plus a log for the warnings
       (a tuning file ignored, a tuning entry skipped: the plan then shows what replaced it) */
    clattn_context_options copt;
    memset(&copt, 0, sizeof copt);
    copt.log = on_log;
    clattn_context *ctx = NULL;
    clattn_status st = clattn_context_create_with_options(o->device, &copt, &ctx);
    if (st != CLATTN_SUCCESS) {
        fprintf(stderr, "clattn-info: no device: %s\n", clattn_status_string(st));
        return 1;
    }
    char text[4096];
    int rc = 0;
    printf("device: %s\n", clattn_context_device_name(ctx));
    st = clattn_plan_describe(ctx, &desc, o->probs, text, sizeof text);
    if (st == CLATTN_SUCCESS) {
        printf("%s\n", text);
    } else {
        fprintf(stderr, "clattn-info: %s\n  %s\n", clattn_status_string(st),
                clattn_context_last_error(ctx));
        rc = 1;
    }
    clattn_context_release(ctx);
    return rc;
}

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
    options o;
    memset(&o, 0, sizeof o);
    int parsed = parse_args(argc, argv, &o);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    if (o.plan)
        return print_plan(&o);

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
    clattn_status st = clattn_context_create(o.device, &ctx);
    const char *which = o.device ? "selected device (--device)"
                                 : "default device (no selector, $CLATTN_DEVICE unset or as set)";
    if (st == CLATTN_SUCCESS)
        printf("%s: %s\n", which, clattn_context_device_name(ctx));
    else
        printf("%s: none (%s)\n", which, clattn_status_string(st));
    clattn_context_release(ctx);
    return 0;
}
