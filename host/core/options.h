/* The context's settings: the caller's clattn_context_options with what they leave unset filled in,
 * from the environment (unless told not to) and then from built-in defaults. options.c is the only
 * file of the library that reads the environment. */
#ifndef CLATTN_OPTIONS_H
#define CLATTN_OPTIONS_H

#include "clattn.h"

#include <stddef.h>

#define CLATTN_AUTOTUNE_BUDGET_S 10.0     /* the automatic tuner's default budget per shape class */
#define CLATTN_CACHE_PATH_MAX 4096          /* a path the caches build, at most */

typedef struct clattn_settings {
    char *selector;               /* the device wanted ("" or NULL: the default order) */
    int cache;                    /* 1: on-disk caches in cache_dir */
    char *cache_dir;              /* NULL when cache is 0 */
    char *cache_problem;          /* why the cache is off although asked for (no folder named), or NULL */
    int tuning, autotune;
    double autotune_budget_s;
    char *kernel_dir, *binary_dir;   /* NULL: embedded kernels / no offline binaries */
    clattn_log_fn log;
    void *log_user;
    int log_plans;
    int log_to_stderr;            /* CLATTN_LOG=plan without a callback: the one switch that prints */
    int device_class;             /* -1: as reported, else a clattn_device_class */
    unsigned long max_local_mem;  /* 0: the device's; else a cap on it */
    unsigned long max_work_group; /* 0: the device's; else a cap on it */

    /* for contexts the library makes for itself (the tuner's, exports'); never from options */
    int private_context;          /* no tuning table loaded, never autotunes, stores no binaries */
} clattn_settings;

/* The cache directory from the given values (any may be NULL: the options' or the environment's):
     cache       $CLATTN_CACHE: "off", "0", "no" or "false" (any case) disables every cache;
     cache_dir   $CLATTN_CACHE_DIR: used as is when not empty;
     xdg         $XDG_CACHE_HOME: "<xdg>/clattn" when absolute (the XDG spec ignores relative ones);
     home        $HOME: "<home>/.cache/clattn".
   Success with *enabled 0 and dir "" when disabled. CLATTN_IO_ERROR when caching is on but no
   directory can be named (no HOME) or the name does not fit in dir. Nothing is created here. */
clattn_status clattn_cache_dir_from(const char *cache, const char *cache_dir, const char *xdg,
                                    const char *home, int *enabled, char *dir, size_t dir_len,
                                    char *err, size_t err_len);

/* Fills s from opts (NULL: all default) and selector. CLATTN_OUT_OF_MEMORY when a string cannot be
   copied; nothing else fails (an unusable value is a default, and cache_problem says so for the
   cache). */
clattn_status clattn_settings_resolve(const char *selector, const clattn_context_options *opts,
                                      clattn_settings *s);
/* Options that reproduce s exactly, without the environment: for the library's private contexts.
   The strings point into s. */
void clattn_settings_as_options(const clattn_settings *s, clattn_context_options *opts);
void clattn_settings_free(clattn_settings *s);

#endif /* CLATTN_OPTIONS_H */
