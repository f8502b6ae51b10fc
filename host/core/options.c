/* Context options and the environment. Every CLATTN_* variable the library honours is read here and
 * nowhere else, once, when a context is created; after that a context's behaviour is its settings. */
#include "host/core/options.h"

#include "host/core/core.h"
#include "host/core/error_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int word_off(const char *v)
{
    return v && (!strcasecmp(v, "off") || !strcmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "false"));
}

static int word_on(const char *v)
{
    return v && (!strcasecmp(v, "on") || !strcmp(v, "1") || !strcasecmp(v, "yes") ||
                 !strcasecmp(v, "true"));
}

clattn_status clattn_cache_dir_from(const char *cache, const char *cache_dir, const char *xdg,
                                    const char *home, int *enabled, char *dir, size_t dir_len,
                                    char *err, size_t err_len)
{
    int n;
    *enabled = 0;
    if (dir_len)
        dir[0] = '\0';
    if (word_off(cache))
        return CLATTN_SUCCESS;
    if (cache_dir && cache_dir[0])
        n = snprintf(dir, dir_len, "%s", cache_dir);
    else if (xdg && xdg[0] == '/')
        n = snprintf(dir, dir_len, "%s/clattn", xdg);
    else if (home && home[0])
        n = snprintf(dir, dir_len, "%s/.cache/clattn", home);
    else
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                                 "no cache directory: HOME is not set (set CLATTN_CACHE_DIR, or "
                                 "CLATTN_CACHE=off)");
    if (n < 0 || (size_t)n >= dir_len) {
        if (dir_len)
            dir[0] = '\0';
        return clattn_fail_into(err, err_len, CLATTN_IO_ERROR,
                                 "cache directory name is too long (%d bytes)", n);
    }
    *enabled = 1;
    return CLATTN_SUCCESS;
}

/* An option's switch, else the variable's word, else the default. */
static int switch_value(clattn_switch sw, const char *env, int fallback)
{
    if (sw == CLATTN_SWITCH_ON)
        return 1;
    if (sw == CLATTN_SWITCH_OFF)
        return 0;
    if (fallback)
        return !word_off(env);
    return word_on(env);
}

/* "plan" among the comma-separated words of CLATTN_LOG. */
static int log_wants_plans(const char *v)
{
    while (v && *v) {
        size_t n = strcspn(v, ",");
        if (n == 4 && !strncasecmp(v, "plan", 4))
            return 1;
        v += n + (v[n] == ',');
    }
    return 0;
}

static int dup_or_null(const char *src, char **dst)
{
    *dst = NULL;
    if (!src || !*src)
        return 0;
    *dst = strdup(src);
    return *dst == NULL;
}

/* The class an option or variable names: -1 (as reported) for REPORTED, an unknown word or an
   out-of-range enum value. */
static int device_class_value(clattn_device_class_choice opt, const char *env)
{
    switch (opt) {
    case CLATTN_DEVICE_CLASS_CPU: return CLATTN_CLASS_CPU;
    case CLATTN_DEVICE_CLASS_GPU: return CLATTN_CLASS_GPU;
    case CLATTN_DEVICE_CLASS_ACCELERATOR: return CLATTN_CLASS_ACCELERATOR;
    default: break;
    }
    if (!env)
        return -1;
    if (!strcasecmp(env, "cpu"))
        return CLATTN_CLASS_CPU;
    if (!strcasecmp(env, "gpu"))
        return CLATTN_CLASS_GPU;
    if (!strcasecmp(env, "accelerator"))
        return CLATTN_CLASS_ACCELERATOR;
    return -1;
}

/* A positive decimal count, or 0 for anything else (unset, empty, junk, zero, negative). */
static unsigned long positive_value(const char *text)
{
    if (!text || !*text)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno || text[0] == '-' || v > (unsigned long long)(unsigned long)-1)
        return 0;
    return (unsigned long)v;
}

clattn_status clattn_settings_resolve(const char *selector, const clattn_context_options *opts,
                                      clattn_settings *s)
{
    static const clattn_context_options none;
    const clattn_context_options *o = opts ? opts : &none;
    const int env = !o->ignore_environment;
#define ENV(name) (env ? getenv(name) : NULL)
    memset(s, 0, sizeof *s);

    const char *cache_dir = o->cache_dir && *o->cache_dir ? o->cache_dir : ENV("CLATTN_CACHE_DIR");
    const char *cache_word = o->cache == CLATTN_SWITCH_ON    ? "on"
                             : o->cache == CLATTN_SWITCH_OFF ? "off"
                                                             : ENV("CLATTN_CACHE");
    char dir[CLATTN_CACHE_PATH_MAX], why[512] = "";
    int cache_on = 0;
    clattn_status dir_st = clattn_cache_dir_from(cache_word, cache_dir, ENV("XDG_CACHE_HOME"),
                                                 env ? getenv("HOME") : NULL, &cache_on, dir,
                                                 sizeof dir, why, sizeof why);
    if (dir_st != CLATTN_SUCCESS && !env && !(cache_dir && *cache_dir))
        why[0] = '\0';   /* the application named no folder and read no variable: quietly off */

    s->cache = cache_on;
    s->tuning = switch_value(o->tuning, ENV("CLATTN_TUNING"), 1);
    s->autotune = switch_value(o->autotune, ENV("CLATTN_AUTOTUNE"), 0);
    s->autotune_budget_s = CLATTN_AUTOTUNE_BUDGET_S;
    const char *budget = ENV("CLATTN_AUTOTUNE_BUDGET");
    if (o->autotune_budget_s > 0 && o->autotune_budget_s < 1e6) {
        s->autotune_budget_s = o->autotune_budget_s;
    } else if (budget && *budget) {
        char *end;
        double b = strtod(budget, &end);
        if (*end == '\0' && b > 0 && b < 1e6)
            s->autotune_budget_s = b;
    }
    s->log = o->log;
    s->log_user = o->log_user;
    if (o->log_plans != CLATTN_SWITCH_DEFAULT) {
        s->log_plans = o->log_plans == CLATTN_SWITCH_ON;
    } else if (log_wants_plans(ENV("CLATTN_LOG"))) {
        s->log_plans = 1;
        s->log_to_stderr = !o->log;
    }

    s->device_class = device_class_value(o->device_class, ENV("CLATTN_DEVICE_CLASS"));
    s->max_local_mem = o->max_local_mem_bytes ? o->max_local_mem_bytes
                                              : positive_value(ENV("CLATTN_MAX_LOCAL_MEM"));
    s->max_work_group = o->max_work_group_size ? o->max_work_group_size
                                               : positive_value(ENV("CLATTN_MAX_WORK_GROUP"));

    if (!selector || !*selector)
        selector = ENV("CLATTN_DEVICE");
    int oom = dup_or_null(selector, &s->selector) ||
              dup_or_null(o->kernel_dir && *o->kernel_dir ? o->kernel_dir : ENV("CLATTN_KERNEL_DIR"),
                          &s->kernel_dir) ||
              dup_or_null(o->binary_dir && *o->binary_dir ? o->binary_dir : ENV("CLATTN_BINARY_DIR"),
                          &s->binary_dir) ||
              (cache_on && dup_or_null(dir, &s->cache_dir)) || dup_or_null(why, &s->cache_problem);
#undef ENV
    if (oom) {
        clattn_settings_free(s);
        return CLATTN_OUT_OF_MEMORY;
    }
    return CLATTN_SUCCESS;
}

void clattn_settings_as_options(const clattn_settings *s, clattn_context_options *o)
{
    memset(o, 0, sizeof *o);
    o->ignore_environment = 1;
    o->cache = s->cache ? CLATTN_SWITCH_ON : CLATTN_SWITCH_OFF;
    o->cache_dir = s->cache_dir;
    o->tuning = s->tuning ? CLATTN_SWITCH_ON : CLATTN_SWITCH_OFF;
    o->autotune = s->autotune ? CLATTN_SWITCH_ON : CLATTN_SWITCH_OFF;
    o->autotune_budget_s = s->autotune_budget_s;
    o->kernel_dir = s->kernel_dir;
    o->binary_dir = s->binary_dir;
    o->log = s->log;
    o->log_user = s->log_user;
    o->log_plans = s->log_plans ? CLATTN_SWITCH_ON : CLATTN_SWITCH_OFF;
    o->device_class = s->device_class == CLATTN_CLASS_CPU           ? CLATTN_DEVICE_CLASS_CPU
                      : s->device_class == CLATTN_CLASS_GPU         ? CLATTN_DEVICE_CLASS_GPU
                      : s->device_class == CLATTN_CLASS_ACCELERATOR ? CLATTN_DEVICE_CLASS_ACCELERATOR
                                                                    : CLATTN_DEVICE_CLASS_REPORTED;
    o->max_local_mem_bytes = s->max_local_mem;
    o->max_work_group_size = s->max_work_group;
}

void clattn_settings_free(clattn_settings *s)
{
    free(s->selector);
    free(s->cache_dir);
    free(s->cache_problem);
    free(s->kernel_dir);
    free(s->binary_dir);
    memset(s, 0, sizeof *s);
}
