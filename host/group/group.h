/* Several devices in one process (clattn.h, "several devices"): a group of contexts, the plan that
 * shares a call out between them, the call itself and the speed measurements the shares come from.
 *
 *   group.c            the group's lifetime, its messages, the plan (split and shares)
 *   group_run.c        clattn_group_attention_host: the parts, a thread per device, the results
 *   group_calibrate.c  each device's time for a shape class, kept in its tuning table
 */
#ifndef CLATTN_GROUP_H
#define CLATTN_GROUP_H

#include "host/core/core.h"

#include <pthread.h>

#define CLATTN_GROUP_ERROR_LEN 2048

struct clattn_group {
    int n;
    clattn_context *ctx[CLATTN_GROUP_MAX];
    int owned;                    /* 1: made by clattn_group_create, released with the group */
    pthread_mutex_t lock;         /* one call at a time: the parts use every context */
    pthread_mutex_t msg_lock;     /* guards last_error, read from any thread */
    /* PoCL 3.1 is not safe for kernels launched from several of its devices at once: its
       dlhandle cache, shared by devices that build the same kernel, asserts
       (pocl_release_dlhandle_cache: ref_count > 0; seen with three pthread devices). When two
       devices of the group are on one PoCL platform, their parts take serial_lock in turn. */
    int serial;
    pthread_mutex_t serial_lock;
    char last_error[CLATTN_GROUP_ERROR_LEN];
};

/* The pseudo kernel family whose tuning entries hold a device's measured time for a shape class
   (one parameter, UNIT = 1; the time is the entry's time_ms). */
extern const clattn_family clattn_group_speed_family;

/* Records a failure (printf-style) as the group's last error; returns status. */
clattn_status clattn_group_fail(clattn_group *g, clattn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Validates desc into p and fills plan (clattn_group_plan_for without the lock). */
clattn_status clattn_group_plan_make(clattn_group *g, const clattn_attention_desc *desc,
                                     int with_probs, clattn_split split, clattn_problem *p,
                                     clattn_group_plan *plan);

#endif
