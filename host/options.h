/* The context's settings: the caller's clattn_context_options with what they leave unset filled in,
 * from the environment (unless told not to) and then from built-in defaults. options.c is the only
 * file of the library that reads the environment. */
#ifndef CLATTN_OPTIONS_H
#define CLATTN_OPTIONS_H

#include "clattn.h"

#include <stddef.h>

#define CLATTN_AUTOTUNE_BUDGET_S 10.0     /* the automatic tuner's default budget per shape class */

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

    /* for contexts the library makes for itself (the tuner's, exports'); never from options */
    int private_context;          /* no tuning table loaded, never autotunes, stores no binaries */
} clattn_settings;

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
