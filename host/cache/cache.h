/* The cache module: the tuning table and its file, the program-binary cache, building programs from
 * the embedded or CLATTN_KERNEL_DIR sources, and a context's caches from creation to release.
 * Depends on core/ only. Never installed.
 *
 * Exports (files of host/cache/):
 *   caches.c       the caches as a context sees them: clattn_context_open_cached/close_cached,
 *                  clattn_tuning_lookup/put/save/key, binary-cache loads and stores, the public
 *                  clattn_context_cache_info, clattn_context_set_tuning, clattn_tuning_entry_string,
 *                  clattn_cache_clear
 *   program.c      clattn_program_source, clattn_program_get, clattn_kernel_get
 *   fit.c          clattn_kernel_fits, clattn_fit_lookup/record/release: what fits this device
 *   tune_cache.c, tune_file.c   the tuning table and its file format (tune_cache.h)
 *   binary_cache.c the binary cache's files (binary_cache.h)
 *   cache_file.c   safe file reads and atomic writes, locks (cache_file.h)
 *   sha256.c       hashing (sha256.h)
 */
#ifndef CLATTN_CACHE_H
#define CLATTN_CACHE_H

#include "host/cache/cache_file.h"
#include "host/cache/sha256.h"
#include "host/cache/tune_cache.h"
#include "host/core/core.h"

/* ---- a context with its caches --------------------------------------------------------------- */

/* clattn_context_open, then the caches: the tuning file read (a problem becomes a warning). */
clattn_status clattn_context_open_cached(const char *selector, cl_command_queue queue,
                                         const clattn_context_options *opts, int private_context,
                                         clattn_context **out);
/* The caches and programs released, then clattn_context_close. NULL: no-op. */
void clattn_context_close_cached(clattn_context *ctx);

/* ---- programs (program.c) -------------------------------------------------------------------- */

/* The full program text for file (cl/common.h.cl, then the file), malloc'd. */
clattn_status clattn_program_source(clattn_context *ctx, const char *file, char **out, size_t *out_len);
/* The program for (file, options), built once per context. Lock held. */
clattn_status clattn_program_get(clattn_context *ctx, const char *file, const char *options,
                                 cl_program *out);
void clattn_programs_release(clattn_context *ctx);

/* A kernel from file built with options, created once per context and cached by (file, options,
   kernel name). Must be called with ctx->lock held; the kernel stays owned by the context. */
clattn_status clattn_kernel_get(clattn_context *ctx, const char *file, const char *options,
                                const char *kernel_name, cl_kernel *out);

/* ---- what fits this device (fit.c) ----------------------------------------------------------- */

typedef enum { CLATTN_FIT_UNKNOWN = 0, CLATTN_FIT_OK, CLATTN_FIT_REJECTED } clattn_fit;
typedef struct clattn_fit_entry clattn_fit_entry;

/* What this context learnt of family at params for p's compile-time shape (head sizes, storage
   type, mask, causality): nothing yet, that its kernel built and fitted its launch, or that it
   did not (then why, if not NULL, says why). Lock held. */
clattn_fit clattn_fit_lookup(const clattn_context *ctx, const clattn_family *family,
                             const clattn_problem *p, const clattn_params *params, char *why,
                             size_t why_len);
/* Remembers the verdict (ok 1: fits; 0: rejected for why) for the context's life. 0 when it
   cannot (no host memory, or a context without caches). Lock held. */
int clattn_fit_record(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                      const clattn_params *params, int ok, const char *why);
void clattn_fit_release(clattn_caches *c);
/* Holds a built kernel against its launch: work_group work-items per group (0: not checked)
   against the kernel's CL_KERNEL_WORK_GROUP_SIZE, its CL_KERNEL_LOCAL_MEM_SIZE against the
   device's local memory as the context sees it (capped by options.max_local_mem_bytes). *fits 0
   and why when it does not fit; a failed query is the status. */
clattn_status clattn_kernel_fits(clattn_context *ctx, cl_kernel kernel, size_t work_group,
                                 int *fits, char *why, size_t why_len);

/* Test seam: 1 when a program ctx holds was built with options containing part (say "-DSM_WG=4"). */
int clattn_test_program_built(const clattn_context *ctx, const char *part);

/* ---- the caches (caches.c) ------------------------------------------------------------------- */

/* *out NULL when the binary cache has no usable program (then the caller compiles the source). */
clattn_status clattn_program_from_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                               const char *options, cl_program *out);
/* Stores a freshly built program's binary; failures are ignored (the cache is an optimisation). */
void clattn_program_to_binary_cache(clattn_context *ctx, const char *file, const char *source,
                                    const char *options, cl_program program);
/* The tuned parameters for family and this problem's shape class, if the context's tuning table has
   them (caches.c: exact key, then the nearest shape class; *exact says which). Returns 1 and fills
   out when found; 0 with tuning off. Reads only. Lock held. */
int clattn_tuning_lookup(clattn_context *ctx, const clattn_family *family, const clattn_problem *p,
                         clattn_params *out, int *exact);
/* The measured time (ms) of the exact tuning entry for family and p's shape class; -1 when there
   is none, its time is unknown, or tuning is off. Lock held. */
double clattn_tuning_time_ms(clattn_context *ctx, const clattn_family *family, const clattn_problem *p);


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

    /* options.autotune: the classes the after_call hook (tune/autotune.c) has tried */
    double autotune_budget_s;
    clattn_autotune_class *autotuned;

    /* fit.c: parameter points whose kernels built and fitted their launch here, or did not */
    clattn_fit_entry *fits;
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

#endif /* CLATTN_CACHE_H */
