/* What caches.c (the caches as a context sees them) and tune.c (the tuner) share: the per-context
 * cache state hung off ctx->caches, and the seams the tuner uses to force and observe kernel
 * parameters while it times candidates. Never installed. */
#ifndef CLATTN_CACHES_H
#define CLATTN_CACHES_H

#include "host/cache_file.h"
#include "host/internal.h"
#include "host/sha256.h"
#include "host/tune_cache.h"

#define CLATTN_IDENTITY_LEN 1024

/* A program the context built or loaded while an export recorded (clattn_export_binaries). */
typedef struct clattn_recorded_program {
    char *file, *options;
    cl_program program;                   /* retained */
    struct clattn_recorded_program *next;
} clattn_recorded_program;

/* A shape class CLATTN_AUTOTUNE has already tuned (or tried to) in this context. */
typedef struct clattn_autotune_class {
    clattn_path path;
    clattn_tune_key key;                  /* family "any" */
    struct clattn_autotune_class *next;
} clattn_autotune_class;

struct clattn_caches {
    /* where: the context's settings (options.c) */
    int enabled;                          /* 0: CLATTN_CACHE=off (or no directory): no file I/O */
    char dir[CLATTN_CACHE_PATH_MAX];
    char tuning_path[CLATTN_CACHE_PATH_MAX];
    char identity[CLATTN_IDENTITY_LEN];   /* clattn_cache_identity() of the device */
    char sources_sha256[CLATTN_SHA256_HEX]; /* of the kernel sources this context compiles */

    /* tuning: always present (clattn_tune results live here even with the cache off) */
    clattn_tune_cache *tuning;
    int tuning_enabled;                   /* 0: lookups ignore it (CLATTN_TUNING=off, set_tuning 0) */

    /* program binaries */
    int store_binaries;                   /* 0 in the tuner's private context: candidates are waste */
    int store_warned;                     /* report one failed store per context, not every one */
    unsigned long compiled, loaded;       /* programs built from source / loaded from a binary */

    clattn_recorded_program *recorded;    /* programs met while recording (exports) */
    int record_programs;

    /* CLATTN_AUTOTUNE=1: tune an untuned shape class after its first call */
    int autotune;
    double autotune_budget_s;
    int in_tuner;                         /* a private tuning context: never autotunes itself */
    clattn_autotune_class *autotuned;
};

/* The tuning key for family and p (family NULL: "any", the shape class alone). 0 on success. */
int clattn_tuning_key(const char *family, const clattn_problem *p, clattn_tune_key *key);
/* The same shape class (all but the family). */
int clattn_tuning_same_class(const clattn_tune_key *a, const clattn_tune_key *b);
/* Adds a tuned entry to ctx's tuning table (not to the file). */
clattn_status clattn_tuning_put(clattn_context *ctx, const clattn_family *family,
                                const clattn_problem *p, const clattn_params *params, double time_ms,
                                double default_ms);
/* Merges ctx's table into the device's tuning file under its lock. Success with *saved 0 when the
   cache is off; CLATTN_IO_ERROR (message in err) when the directory cannot be written. */
clattn_status clattn_tuning_save(clattn_context *ctx, int *saved, char *err, size_t err_len);
void clattn_recorded_programs_free(clattn_caches *c);
/* The program's binary for ctx's device (malloc'ed, *len bytes), or NULL. */
unsigned char *clattn_program_binary(clattn_context *ctx, cl_program program, size_t *len);
/* A context of its own on ctx's queue for the tuner and exports: same device, kernel sources and
   cache directory; tuning table empty; never autotunes; stores no binaries. */
clattn_status clattn_private_context(clattn_context *ctx, clattn_context **out);

/* clattn_tune with ctx's lock held (tune.c); report is required. */
clattn_status clattn_tune_locked(clattn_context *ctx, const clattn_attention_desc *desc,
                                 const clattn_tune_options *opt, clattn_tune_report *report);

#endif /* CLATTN_CACHES_H */
