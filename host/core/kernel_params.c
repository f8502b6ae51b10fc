/* Kernel families' parameters as data: the device-class defaults, the -D option strings (also the
 * program-cache key), the tuning file's spelling, and the checks every valid() starts with. */
#include "host/core/core.h"

#include <stdio.h>
#include <string.h>

void clattn_params_defaults(const clattn_family *family, clattn_device_class cls, clattn_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < family->n_params; i++)
        out->v[i] = family->params[i].default_value[cls];
}

void clattn_params_string(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (int i = 0; i < family->n_params && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s=%d", i ? " " : "", family->params[i].name,
                         params->v[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int clattn_params_in_space(const clattn_family *family, const clattn_params *params, char *why,
                           size_t why_len)
{
    for (int i = 0; i < family->n_params; i++) {
        const clattn_param_def *def = &family->params[i];
        int found = 0;
        for (int c = 0; c < def->n_candidates && !found; c++)
            found = def->candidates[c] == params->v[i];
        if (!found) {
            snprintf(why, why_len, "%s=%d is not one of its candidates", def->name, params->v[i]);
            return 0;
        }
    }
    return 1;
}

int clattn_params_in_range(const clattn_param_def *defs, int n, const clattn_params *params,
                           char *why, size_t why_len)
{
    for (int i = 0; i < n; i++)
        if (params->v[i] < 1 || params->v[i] > CLATTN_PARAM_MAX) {
            snprintf(why, why_len, "%s=%d is outside 1..%d", defs[i].name, params->v[i],
                     CLATTN_PARAM_MAX);
            return 0;
        }
    return 1;
}

int clattn_is_vector_width(int v)
{
    return v == 1 || v == 2 || v == 4 || v == 8 || v == 16;
}

int clattn_param_index(const clattn_family *family, const char *name)
{
    for (int i = 0; i < family->n_params; i++)
        if (strcmp(family->params[i].name, name) == 0)
            return i;
    return -1;
}

static int appendf(char *buf, size_t len, const char *fmt, int value)
{
    size_t used = strlen(buf);
    int n = snprintf(buf + used, len - used, fmt, value);
    return n < 0 || (size_t)n >= len - used;
}

int clattn_params_defines(const clattn_family *family, const clattn_params *params, char *buf,
                          size_t len)
{
    for (int i = 0; i < family->n_params; i++) {
        char fmt[64];
        if (family->params[i].host_only)
            continue;
        snprintf(fmt, sizeof fmt, " -D%s=%%d", family->params[i].name);
        if (appendf(buf, len, fmt, params->v[i]))
            return 1;
    }
    return 0;
}

int clattn_problem_defines(const clattn_problem *p, char *buf, size_t len)
{
    return appendf(buf, len, " -DUSE_F16=%d", p->dtype == CLATTN_F16) ||
           appendf(buf, len, " -DUSE_BF16=%d", p->dtype == CLATTN_BF16) ||
           appendf(buf, len, " -DMASK_TYPE=%d", (int)p->mask_type) ||
           appendf(buf, len, " -DCAUSAL=%d", p->causal_bound) ||
           appendf(buf, len, " -DWINDOW=%d", p->window_lo) ||
           appendf(buf, len, " -DSOFTCAP=%d", p->softcap > 0.0f) ||
           appendf(buf, len, " -DALIBI=%d", p->alibi != NULL) ||
           appendf(buf, len, " -DSINKS=%d", p->sinks != NULL) ||
           appendf(buf, len, " -DKV_INT8=%d", p->kv_int8) ||
           /* only when set, so that dense programs keep their options (and cached binaries) */
           (p->varlen && appendf(buf, len, " -DVARLEN=1 -DPAGED=%d", p->paged));
}

