/* clattn_export_binaries: the programs a shape needs, written out for devices that cannot compile
 * (FPGAs). The shape's path runs once on a private context that records every program it builds or
 * loads; each is then written under the name CLATTN_BINARY_DIR is searched for, with the complete
 * source of its kernel file and a manifest line giving the build options for the offline compiler. */
#include "host/cache/binary_cache.h"
#include "host/tune/tune.h"
#include "host/tune/tune_measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST "clattn-binaries.txt"

/* The kernel file's name without ".cl". */
static void stem(const char *file, char *out, size_t len)
{
    size_t n = strlen(file);
    if (n >= 3 && !strcmp(file + n - 3, ".cl"))
        n -= 3;
    snprintf(out, len, "%.*s", (int)n, file);
}

static const char *trimmed(const char *s)
{
    while (*s == ' ')
        s++;
    return s;
}

static clattn_status write_file(clattn_context *ctx, const char *dir, const char *name,
                                const void *data, size_t len)
{
    char path[CLATTN_CACHE_PATH_MAX], err[512];
    if (clattn_cache_join(path, sizeof path, dir, name))
        return clattn_fail(ctx, CLATTN_IO_ERROR, "path too long: %s/%s", dir, name);
    if (clattn_cache_write_atomic(path, data, len, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_IO_ERROR, "exporting %s: %s", name, err);
    return CLATTN_SUCCESS;
}

/* Appends the lines the manifest lacks: one per program, "name<TAB>kernel file<TAB>options". */
static clattn_status write_manifest(clattn_context *ctx, clattn_context *pc, const char *dir)
{
    char path[CLATTN_CACHE_PATH_MAX], err[512], name[256], line[1024];
    char *old = NULL, *text = NULL;
    size_t old_len = 0, len = 0, cap;
    clattn_status st;
    if (clattn_cache_join(path, sizeof path, dir, MANIFEST))
        return clattn_fail(ctx, CLATTN_IO_ERROR, "path too long: %s", dir);
    if (clattn_cache_read(path, 16u << 20, &old, &old_len, err, sizeof err) != CLATTN_SUCCESS)
        return clattn_fail(ctx, CLATTN_IO_ERROR, "exporting: %s", err);
    cap = old_len + 4096;
    text = malloc(cap);
    if (!text) {
        st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory writing the manifest");
        goto out;
    }
    if (old)
        memcpy(text, old, old_len);
    else
        old_len = (size_t)snprintf(text, cap, "# clattn offline binaries: file name, kernel file, "
                                   "build options (for CLATTN_BINARY_DIR)\n");
    len = old_len;
    text[len] = '\0';
    for (clattn_recorded_program *r = pc->caches->recorded; r; r = r->next) {
        clattn_binary_offline_name(r->file, r->options, name, sizeof name);
        int n = snprintf(line, sizeof line, "%s\t%s\t%s\n", name, r->file, trimmed(r->options));
        if (n < 0 || (size_t)n >= sizeof line || strstr(text, line))
            continue;
        if (len + (size_t)n + 1 > cap) {
            char *grown = realloc(text, cap = 2 * cap + (size_t)n);
            if (!grown) {
                st = clattn_fail(ctx, CLATTN_OUT_OF_MEMORY, "out of host memory writing the manifest");
                goto out;
            }
            text = grown;
        }
        memcpy(text + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    st = write_file(ctx, dir, MANIFEST, text, len);
out:
    free(old);
    free(text);
    return st;
}

/* Each recorded program's binary, and each kernel file's complete source once. */
static clattn_status write_programs(clattn_context *ctx, clattn_context *pc, const char *dir)
{
    clattn_status st = CLATTN_SUCCESS;
    for (clattn_recorded_program *r = pc->caches->recorded; r && st == CLATTN_SUCCESS; r = r->next) {
        char name[256], src_name[256];
        size_t len = 0;
        clattn_binary_offline_name(r->file, r->options, name, sizeof name);
        unsigned char *bin = clattn_program_binary(pc, r->program, &len);
        if (!bin)
            return clattn_fail(ctx, CLATTN_OPENCL_ERROR, "the driver gave no binary for %s", name);
        st = write_file(ctx, dir, name, bin, len);
        free(bin);
        int first = 1;
        for (clattn_recorded_program *q = pc->caches->recorded; q != r; q = q->next)
            first &= strcmp(q->file, r->file) != 0;
        if (st != CLATTN_SUCCESS || !first)
            continue;
        char *text = NULL;
        stem(r->file, src_name, sizeof src_name - 3);
        strcat(src_name, ".cl");
        st = clattn_program_source(pc, r->file, &text, &len);
        if (st == CLATTN_SUCCESS)
            st = write_file(ctx, dir, src_name, text, len);
        else
            st = clattn_fail(ctx, st, "%s", pc->last_error);
        free(text);
    }
    return st;
}

static clattn_status run_path(clattn_context *ctx, clattn_context *pc,
                              const clattn_attention_desc *desc, clattn_path path)
{
    clattn_attention_desc d = *desc;
    clattn_workload w;
    d.path = path;
    clattn_status st = clattn_workload_create(ctx, &d, 1, 0, &w);
    if (st != CLATTN_SUCCESS)
        return st;
    if (w.p.B > 0 && w.p.Lq > 0) {
        st = clattn_workload_enqueue(pc, &w, NULL);
        if (st == CLATTN_SUCCESS && clFinish(pc->queue) != CL_SUCCESS)
            st = clattn_fail(pc, CLATTN_OPENCL_ERROR, "clFinish failed");
        if (st != CLATTN_SUCCESS)
            st = clattn_fail(ctx, st, "%s", pc->last_error);
    }
    clattn_workload_release(&w);
    return st;
}

clattn_status clattn_export_binaries(clattn_context *ctx, const clattn_attention_desc *desc,
                                     const char *dir)
{
    clattn_context *pc = NULL;
    clattn_status st;
    char err[512];
    if (!ctx)
        return CLATTN_INVALID_ARGUMENT;
    pthread_mutex_lock(&ctx->lock);
    if (!desc || !dir || !*dir) {
        st = clattn_fail(ctx, CLATTN_INVALID_ARGUMENT, "desc and dir are required");
        goto out;
    }
    if ((st = clattn_private_context(ctx, &pc)) != CLATTN_SUCCESS)
        goto out;
    /* the programs this context would build: its tuning table and switch, not a blank one */
    clattn_caches *c = ctx->caches;
    pc->caches->record_programs = 1;
    pc->caches->tuning_enabled = c ? c->tuning_enabled : 1;
    for (size_t i = 0; c && c->tuning && i < clattn_tune_cache_count(c->tuning); i++)
        if ((st = clattn_tune_cache_put(pc->caches->tuning, clattn_tune_cache_entry(c->tuning, i))) !=
            CLATTN_SUCCESS) {
            st = clattn_fail(ctx, st, "cannot copy the tuning table");
            goto out;
        }
    if (desc->path == CLATTN_PATH_AUTO) {
        if ((st = run_path(ctx, pc, desc, CLATTN_PATH_FUSED)) != CLATTN_SUCCESS ||
            (st = run_path(ctx, pc, desc, CLATTN_PATH_UNFUSED)) != CLATTN_SUCCESS)
            goto out;
    } else if ((st = run_path(ctx, pc, desc, desc->path)) != CLATTN_SUCCESS) {
        goto out;
    }
    if (clattn_cache_mkdirs(dir, err, sizeof err) != CLATTN_SUCCESS) {
        st = clattn_fail(ctx, CLATTN_IO_ERROR, "exporting: %s", err);
        goto out;
    }
    if ((st = write_programs(ctx, pc, dir)) == CLATTN_SUCCESS)
        st = write_manifest(ctx, pc, dir);
out:
    clattn_context_close_cached(pc);
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
