/* The on-disk caches as the rest of the library sees them: the tuning file, loaded once when the
 * context is created and consulted by every parameter lookup without file I/O; and program
 * binaries, looked up before compiling and stored after. Nothing here ever fails a call: a cache
 * that cannot be read or written becomes a warning in last_error and the library carries on. */
#include "host/cache/cache.h"

#include "host/cache/binary_cache.h"
#include "host/cache/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The hash cl/embed.py takes over the embedded sources, over the files the context really compiles:
   with CLATTN_KERNEL_DIR set, tuning results follow the edited kernels, not the built-in ones. */
static void sources_hash(const clattn_context *ctx, char hex[CLATTN_SHA256_HEX])
{
    clattn_sha256 s;
    unsigned char digest[CLATTN_SHA256_BYTES];
    if (!ctx->kernel_dir) {
        memcpy(hex, clattn_kernel_sources_sha256, CLATTN_SHA256_HEX);
        return;
    }
    clattn_sha256_init(&s);
    for (size_t i = 0; i < clattn_kernel_source_count; i++) {
        const clattn_kernel_source *src = &clattn_kernel_sources[i];
        char path[CLATTN_CACHE_PATH_MAX], *data = NULL;
        size_t len = 0;
        clattn_sha256_update(&s, src->name, strlen(src->name) + 1);
        /* a file missing from the folder (or one its build refuses: a FIFO, a link, too large)
           fails its build anyway; hash what would be embedded */
        if (clattn_cache_join(path, sizeof path, ctx->kernel_dir, src->name) == 0 &&
            clattn_cache_read(path, CLATTN_KERNEL_SOURCE_MAX_BYTES, &data, &len, NULL, 0) ==
                CLATTN_SUCCESS && data)
            clattn_sha256_update(&s, data, len);
        else
            clattn_sha256_update(&s, src->text, src->length);
        clattn_sha256_update(&s, "", 1);
        free(data);
    }
    clattn_sha256_final(&s, digest);
    clattn_sha256_hex(digest, hex);
}

static void load_caches(clattn_context *ctx)
{
    char why[CLATTN_ERROR_LEN - 64];
    const clattn_device_info *in = &ctx->info;
    clattn_caches *c = calloc(1, sizeof *c);
    if (!c) {
        clattn_warn(ctx, "no host memory for the caches; running "
                    "without them");
        return;
    }
    ctx->caches = c;
    const clattn_settings *set = &ctx->settings;
    c->tuning_enabled = set->tuning;
    c->store_binaries = !set->private_context;   /* a tuner's candidates are waste */
    c->autotune_budget_s = set->autotune_budget_s;
    clattn_cache_identity(c->identity, sizeof c->identity, in->platform_name, in->platform_version,
                          in->vendor, in->name, in->driver_version, in->compute_units);
    /* A context planning for another class or smaller limits tunes for those: its own file. */
    const size_t used = strlen(c->identity);
    if (set->device_class >= 0 || set->max_local_mem || set->max_work_group)
        snprintf(c->identity + used, sizeof c->identity - used, " / as %s, local %lu, work-group %lu",
                 set->device_class == CLATTN_CLASS_GPU           ? "gpu"
                 : set->device_class == CLATTN_CLASS_ACCELERATOR ? "accelerator"
                 : set->device_class == CLATTN_CLASS_CPU         ? "cpu"
                                                                 : "reported",
                 (unsigned long)in->local_mem_bytes, (unsigned long)in->max_work_group);
    sources_hash(ctx, c->sources_sha256);
    if (clattn_tune_cache_create(c->identity, c->sources_sha256, CLATTN_VERSION_STRING,
                                 &c->tuning) != CLATTN_SUCCESS) {
        clattn_warn(ctx, "cannot hold a tuning table; running with "
                    "the default kernel parameters");
        return;
    }
    if (set->cache_problem && set->cache_problem[0])
        clattn_warn(ctx, "caching is off: %s", set->cache_problem);
    c->enabled = set->cache && set->cache_dir &&
                 snprintf(c->dir, sizeof c->dir, "%s", set->cache_dir) < (int)sizeof c->dir;
    if (!c->enabled)
        return;
    char name[CLATTN_TUNE_FILE_NAME_LEN];
    clattn_tune_cache_file_name(c->identity, name);
    clattn_cache_join(c->tuning_path, sizeof c->tuning_path, c->dir, name);
    /* a private context starts with an empty table: it tunes, it does not follow old results */
    if (!set->private_context &&
        clattn_tune_cache_load(c->tuning, c->dir, why, sizeof why) != CLATTN_SUCCESS)
        clattn_warn(ctx, "%s", why);
}

void clattn_recorded_programs_free(clattn_caches *c)
{
    clattn_recorded_program *r = c->recorded;
    while (r) {
        clattn_recorded_program *next = r->next;
        clReleaseProgram(r->program);
        free(r->file);
        free(r->options);
        free(r);
        r = next;
    }
    c->recorded = NULL;
}

static void free_caches(clattn_context *ctx)
{
    clattn_caches *c = ctx->caches;
    if (!c)
        return;
    clattn_tune_cache_release(c->tuning);
    clattn_recorded_programs_free(c);
    clattn_fit_release(c);
    while (c->autotuned) {
        clattn_autotune_class *next = c->autotuned->next;
        free(c->autotuned);
        c->autotuned = next;
    }
    free(c);
    ctx->caches = NULL;
}

clattn_status clattn_context_open_cached(const char *selector, cl_command_queue queue,
                                         const clattn_context_options *opts, int private_context,
                                         clattn_context **out)
{
    clattn_status st = clattn_context_open(selector, queue, opts, private_context, out);
    if (st == CLATTN_SUCCESS)
        load_caches(*out);
    return st;
}

void clattn_context_close_cached(clattn_context *ctx)
{
    if (!ctx)
        return;
    free_caches(ctx);
    clattn_programs_release(ctx);
    clattn_context_close(ctx);
}

/* ---- program binaries ------------------------------------------------------------------------ */

/* Notes a program an export asked for; the export writes it out afterwards. */
static void record_program(clattn_context *ctx, const char *file, const char *options,
                           cl_program program)
{
    clattn_caches *c = ctx->caches;
    if (!c || !c->record_programs)
        return;
    for (clattn_recorded_program *r = c->recorded; r; r = r->next)
        if (!strcmp(r->file, file) && !strcmp(r->options, options))
            return;
    clattn_recorded_program *r = calloc(1, sizeof *r);
    if (r) {
        r->file = strdup(file);
        r->options = strdup(options);
    }
    if (!r || !r->file || !r->options) {
        if (r) {
            free(r->file);
            free(r->options);
        }
        free(r);
        return;                  /* the export finds it missing and says so */
    }
    clRetainProgram(program);
    r->program = program;
    r->next = c->recorded;
    c->recorded = r;
}

/* A program from binary bytes, built (drivers finish or check the binary in clBuildProgram). NULL
   with *err set when the driver refuses it. */
static cl_program program_from_binary(clattn_context *ctx, const unsigned char *data, size_t len,
                                      const char *options, cl_int *err)
{
    cl_int bin_status = CL_SUCCESS;
    cl_program program = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &len, &data,
                                                   &bin_status, err);
    if (!program)
        return NULL;
    if (bin_status != CL_SUCCESS) {
        *err = bin_status;
        clReleaseProgram(program);
        return NULL;
    }
    *err = clBuildProgram(program, 1, &ctx->device, options, NULL, NULL);
    if (*err != CL_SUCCESS) {
        clReleaseProgram(program);
        return NULL;
    }
    return program;
}

/* Devices without a compiler (FPGAs): the binary built offline for (file, options), from
   $CLATTN_BINARY_DIR; missing, it is CLATTN_UNSUPPORTED naming the file wanted. */
static clattn_status offline_program(clattn_context *ctx, const char *file, const char *options,
                                     cl_program *out)
{
    char err[CLATTN_ERROR_LEN - 256], name[256];
    const char *dir = ctx->settings.binary_dir;
    unsigned char *data = NULL;
    size_t len = 0;
    cl_int cl_err;
    clattn_status st;
    if (!dir || !*dir) {
        clattn_binary_offline_name(file, options, name, sizeof name);
        return clattn_fail(ctx, CLATTN_UNSUPPORTED,
                           "device '%s' cannot compile OpenCL C and CLATTN_BINARY_DIR is not set: "
                           "it needs %s, built offline from %s with the options '%s' "
                           "(clattn-tune --export-binaries lists them all)",
                           ctx->info.name, name, file, options);
    }
    st = clattn_binary_offline_load(dir, file, options, &data, &len, err, sizeof err);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "%s", err);
    *out = program_from_binary(ctx, data, len, options, &cl_err);
    free(data);
    if (!*out) {
        clattn_binary_offline_name(file, options, name, sizeof name);
        return clattn_fail(ctx, CLATTN_BUILD_FAILED, "the offline binary %s/%s for %s was refused "
                           "by device '%s': %s (%d)", dir, name, file, ctx->info.name,
                           clattn_cl_error_name(cl_err), (int)cl_err);
    }
    ctx->caches->loaded++;
    record_program(ctx, file, options, *out);
    return CLATTN_SUCCESS;
}

static void binary_key(const clattn_context *ctx, const char *source, const char *options,
                       char key[CLATTN_SHA256_HEX])
{
    clattn_binary_cache_key(source, strlen(source), options, ctx->caches->identity,
                            ctx->info.driver_version, key);
}

clattn_status clattn_program_from_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                               const char *options, cl_program *out)
{
    clattn_caches *c = ctx->caches;
    char key[CLATTN_SHA256_HEX], warn[CLATTN_ERROR_LEN - 64];
    unsigned char *data = NULL;
    size_t len = 0;
    cl_int err;
    *out = NULL;
    if (!c)
        return CLATTN_SUCCESS;
    if (!ctx->info.compiler_available)
        return offline_program(ctx, file, options, out);
    if (!c->enabled)
        return CLATTN_SUCCESS;
    binary_key(ctx, source, options, key);
    if (clattn_binary_cache_load(c->dir, key, &data, &len, warn, sizeof warn) != CLATTN_SUCCESS) {
        clattn_warn(ctx, "%s (compiling %s instead)", warn, file);
        return CLATTN_SUCCESS;
    }
    if (!data)
        return CLATTN_SUCCESS;   /* a miss */
    /* marked while in the driver's hands, so that a binary that crashes the process is evicted
       by the next one instead of loaded again by every run */
    clattn_binary_mark mark;
    switch (clattn_binary_cache_mark(c->dir, key, &mark, warn, sizeof warn)) {
    case CLATTN_BINARY_GUARD_EVICTED:
        clattn_warn(ctx, "%s; compiling %s instead", warn, file);
        free(data);
        return CLATTN_SUCCESS;
    case CLATTN_BINARY_GUARD_BUSY:
        free(data);              /* another loader's: if it crashes, we must not follow it */
        return CLATTN_SUCCESS;
    case CLATTN_BINARY_GUARD_MARKED:
    case CLATTN_BINARY_GUARD_UNMARKED:
        break;
    }
    *out = program_from_binary(ctx, data, len, options, &err);
    clattn_binary_cache_unmark(&mark);
    free(data);
    if (!*out) {
        /* a driver update the identity did not show, or a binary the driver no longer takes */
        clattn_warn(ctx, "the cached binary for %s was refused (%s); "
                    "compiling it instead", file, clattn_cl_error_name(err));
        return CLATTN_SUCCESS;
    }
    c->loaded++;
    record_program(ctx, file, options, *out);
    return CLATTN_SUCCESS;
}

unsigned char *clattn_program_binary(clattn_context *ctx, cl_program program, size_t *len)
{
    cl_uint n = 0;
    cl_device_id devs[1];
    unsigned char *data;
    if (clGetProgramInfo(program, CL_PROGRAM_NUM_DEVICES, sizeof n, &n, NULL) != CL_SUCCESS ||
        n != 1 ||
        clGetProgramInfo(program, CL_PROGRAM_DEVICES, sizeof devs, devs, NULL) != CL_SUCCESS ||
        devs[0] != ctx->device ||
        clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof *len, len, NULL) != CL_SUCCESS ||
        *len == 0)
        return NULL;
    data = malloc(*len);
    if (data &&
        clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof data, &data, NULL) != CL_SUCCESS) {
        free(data);
        data = NULL;
    }
    return data;
}

void clattn_program_to_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                    const char *options, cl_program program)
{
    clattn_caches *c = ctx->caches;
    char key[CLATTN_SHA256_HEX], err[CLATTN_ERROR_LEN - 64];
    unsigned char *data;
    size_t len = 0;
    if (!c)
        return;
    c->compiled++;
    record_program(ctx, file, options, program);
    if (!c->enabled || !c->store_binaries)
        return;
    data = clattn_program_binary(ctx, program, &len);
    if (!data) {
        if (!c->store_warned++)
            clattn_warn(ctx, "the driver gave no binary for %s; it "
                        "is not cached", file);
        return;
    }
    binary_key(ctx, source, options, key);
    if (clattn_binary_cache_store(c->dir, key, data, len, err, sizeof err) != CLATTN_SUCCESS &&
        !c->store_warned++)
        clattn_warn(ctx, "program binaries are not cached: %s", err);
    free(data);
}

/* ---- tuning lookups -------------------------------------------------------------------------- */

int clattn_tuning_key(const char *family, const clattn_problem *p, clattn_tune_key *key)
{
    return clattn_tune_key_make(key, family ? family : "any", p->dtype, p->d, p->dv, p->Lq, p->Lk,
                                p->causal_bound, p->group, clattn_problem_variants(p)) == CLATTN_SUCCESS
               ? 0 : -1;
}

int clattn_tuning_same_class(const clattn_tune_key *a, const clattn_tune_key *b)
{
    return a->dtype == b->dtype && a->d == b->d && a->dv == b->dv && a->lq_class == b->lq_class &&
           a->lk_bucket == b->lk_bucket && a->causal == b->causal && a->group == b->group &&
           a->variants == b->variants;
}

/* The entry's values in the family's order; 0 when it names exactly the family's parameters. */
static int params_from_entry(const clattn_family *family, const clattn_tune_entry *e,
                             clattn_params *out)
{
    if (e->n_params != family->n_params)
        return -1;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < family->n_params; i++)
        if (clattn_tune_entry_param(e, family->params[i].name, &out->v[i]))
            return -1;
    return 0;
}

int clattn_tuning_lookup(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                         clattn_params *out, int *exact)
{
    clattn_caches *c = ctx->caches;
    clattn_tune_key key;
    *exact = 0;
    if (!c || !c->tuning || !c->tuning_enabled || clattn_tuning_key(family->name, p, &key))
        return 0;
    const clattn_tune_entry *e = clattn_tune_cache_lookup(c->tuning, &key, exact);
    return e && params_from_entry(family, e, out) == 0;
}

double clattn_tuning_time_ms(clattn_context *ctx, const clattn_family *family, const clattn_problem *p)
{
    clattn_caches *c = ctx->caches;
    clattn_tune_key key;
    int exact = 0;
    if (!c || !c->tuning || !c->tuning_enabled || clattn_tuning_key(family->name, p, &key))
        return -1.0;
    const clattn_tune_entry *e = clattn_tune_cache_lookup(c->tuning, &key, &exact);
    return e && exact && e->time_ms >= 0 ? e->time_ms : -1.0;
}

_Static_assert(CLATTN_TUNE_MAX_PARAMS >= CLATTN_MAX_PARAMS, "a family's parameters must fit an entry");

clattn_status clattn_tuning_put(clattn_context *ctx, const clattn_family *family,
                                const clattn_problem *p, const clattn_params *params, double time_ms,
                                double default_ms)
{
    clattn_caches *c = ctx->caches;
    clattn_tune_entry e;
    if (!c || !c->tuning)
        return clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "the context has no tuning table");
    memset(&e, 0, sizeof e);
    if (clattn_tuning_key(family->name, p, &e.key) || family->n_params > CLATTN_TUNE_MAX_PARAMS)
        return clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "no tuning key for %s at d=%d dv=%d",
                           family->name, p->d, p->dv);
    e.n_params = family->n_params;
    for (int i = 0; i < family->n_params; i++) {
        snprintf(e.params[i].name, sizeof e.params[i].name, "%s", family->params[i].name);
        e.params[i].value = params->v[i];
    }
    e.time_ms = time_ms;
    e.default_ms = default_ms;
    clattn_status st = clattn_tune_cache_put(c->tuning, &e);
    if (st != CLATTN_SUCCESS)
        return clattn_fail(ctx, st, "cannot record the tuning entry for %s", family->name);
    return CLATTN_SUCCESS;
}

clattn_status clattn_tuning_save(clattn_context *ctx, int *saved, char *err, size_t err_len)
{
    clattn_caches *c = ctx->caches;
    *saved = 0;
    if (!c || !c->tuning || !c->enabled) {
        snprintf(err, err_len, "caching is off (CLATTN_CACHE): results kept in this context only");
        return CLATTN_SUCCESS;
    }
    clattn_status st = clattn_tune_cache_save(c->tuning, c->dir, err, err_len);
    *saved = st == CLATTN_SUCCESS;
    return st;
}

/* ---- public ---------------------------------------------------------------------------------- */

void clattn_context_set_tuning(clattn_context *ctx, int enabled)
{
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->lock);
    if (ctx->caches)
        ctx->caches->tuning_enabled = enabled != 0;   /* CLATTN_AUTOTUNE waits on it too */
    pthread_mutex_unlock(&ctx->lock);
}

clattn_status clattn_context_cache_info(clattn_context *ctx, clattn_cache_info *info)
{
    if (!ctx || !info)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    clattn_caches *c = ctx->caches;
    memset(info, 0, sizeof *info);
    info->dir = info->tuning_file = info->identity = "";
    if (c) {
        info->enabled = c->enabled;
        info->tuning_enabled = c->tuning_enabled;
        info->dir = c->dir;
        info->tuning_file = c->tuning_path;
        info->identity = c->identity;
        info->tuning_entries = c->tuning ? clattn_tune_cache_count(c->tuning) : 0;
        info->programs_compiled = c->compiled;
        info->programs_loaded = c->loaded;
    }
    pthread_mutex_unlock(&ctx->lock);
    return CLATTN_SUCCESS;
}

clattn_status clattn_tuning_entry_string(clattn_context *ctx, size_t i, char *buf, size_t len)
{
    if (!ctx || !buf || !len)
        return CLATTN_INVALID_ARGUMENT;
    clattn_status st = CLATTN_SUCCESS;
    pthread_mutex_lock(&ctx->lock);
    clattn_caches *c = ctx->caches;
    const clattn_tune_entry *e = c && c->tuning ? clattn_tune_cache_entry(c->tuning, i) : NULL;
    if (!e)
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "tuning entry %zu: the table has %zu", i,
                         c && c->tuning ? clattn_tune_cache_count(c->tuning) : (size_t)0);
    else
        clattn_tune_entry_format(e, buf, len);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

/* Removes dir/name when it is one of ours: the tuning file of this device, or any binary. */
static clattn_status remove_cache_file(clattn_context *ctx, const char *dir, const char *name)
{
    char path[CLATTN_CACHE_PATH_MAX];
    if (clattn_cache_join(path, sizeof path, dir, name))
        return clattn_fail(ctx, CLATTN_IO_ERROR, "path too long: %s/%s", dir, name);
    if (unlink(path) != 0 && errno != ENOENT)
        return clattn_fail(ctx, CLATTN_IO_ERROR, "cannot remove %s: %s", path, strerror(errno));
    return CLATTN_SUCCESS;
}

/* "bin-<key>.bin", and its load mark "bin-<key>.bin.loading" (binary_cache.h) */
static int is_binary_name(const char *name)
{
    size_t n = strlen(name), base = CLATTN_BINARY_FILE_NAME_LEN - 1;
    return (n == base || (n == base + strlen(CLATTN_BINARY_MARK_SUFFIX) &&
                          !strcmp(name + base, CLATTN_BINARY_MARK_SUFFIX))) &&
           !strncmp(name, "bin-", 4) && !strncmp(name + base - 4, ".bin", 4);
}

clattn_status clattn_cache_clear(clattn_context *ctx, int binaries)
{
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    clattn_status st = CLATTN_SUCCESS;
    pthread_mutex_lock(&ctx->lock);
    clattn_caches *c = ctx->caches;
    if (!c)
        goto out;
    if (c->tuning)
        clattn_tune_cache_clear(c->tuning);
    if (!c->enabled)
        goto out;
    char name[CLATTN_TUNE_FILE_NAME_LEN];
    clattn_tune_cache_file_name(c->identity, name);
    /* under the writers' lock, so a save in flight elsewhere is not half undone */
    char lock_path[CLATTN_CACHE_PATH_MAX + 8];
    clattn_cache_lock lock = {-1, 0};
    char err[512] = "path too long";
    snprintf(lock_path, sizeof lock_path, "%s.lock", c->tuning_path);
    if (access(c->dir, F_OK) != 0)
        goto out;                /* nothing was ever saved */
    if (clattn_cache_lock_acquire(lock_path, CLATTN_CACHE_LOCK_TIMEOUT_MS, &lock, err, sizeof err) ==
        CLATTN_IO_ERROR) {
        st = clattn_fail(ctx, CLATTN_IO_ERROR, "clearing the tuning cache: %s", err);
        goto out;
    }
    st = remove_cache_file(ctx, c->dir, name);
    clattn_cache_lock_release(&lock);
    if (st != CLATTN_SUCCESS || !binaries)
        goto out;
    /* the binaries' writers share one lock: hold it so no store lands mid-listing */
    if (clattn_cache_join(lock_path, sizeof lock_path, c->dir, CLATTN_CACHE_STORE_LOCK) ||
        clattn_cache_lock_acquire(lock_path, CLATTN_CACHE_LOCK_TIMEOUT_MS, &lock, err,
                                  sizeof err) == CLATTN_IO_ERROR) {
        st = clattn_fail(ctx, CLATTN_IO_ERROR, "clearing the binary cache: %s", err);
        goto out;
    }
    DIR *d = opendir(c->dir);
    if (!d) {
        st = clattn_fail(ctx, CLATTN_IO_ERROR, "cannot list %s: %s", c->dir, strerror(errno));
    } else {
        for (struct dirent *de; (de = readdir(d)) && st == CLATTN_SUCCESS;)
            if (is_binary_name(de->d_name))
                st = remove_cache_file(ctx, c->dir, de->d_name);
        closedir(d);
    }
    clattn_cache_lock_release(&lock);
out:
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
