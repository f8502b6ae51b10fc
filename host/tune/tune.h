/* The tune module: the tuner (clattn_tune), automatic tuning after a call, and exports of program
 * binaries. Depends on core/, cache/ and attention/. Never installed.
 *
 * Exports (files of host/tune/):
 *   tune.c          clattn_tune_locked, clattn_tune_varlen_locked, the public clattn_tune and
 *                   clattn_tune_varlen
 *   autotune.c      clattn_autotune_after_call: the after_call hook of contexts made with autotune
 *   tune_measure.c  workloads, timing, checks, private contexts (tune_measure.h, private)
 *   tune_search.c   the search within one family (tune_search.h, private)
 *   tune_export.c   the public clattn_export_binaries
 */
#ifndef CLATTN_TUNE_H
#define CLATTN_TUNE_H

#include "host/attention/attention.h"

/* clattn_tune with ctx's lock held; report is required. */
clattn_status clattn_tune_locked(clattn_context *ctx, const clattn_attention_desc *desc,
                                 const clattn_tune_options *opt, clattn_tune_report *report);
/* clattn_tune_varlen with ctx's lock held; report is required. */
clattn_status clattn_tune_varlen_locked(clattn_context *ctx, const clattn_varlen_desc *desc,
                                        const clattn_tune_options *opt, clattn_tune_report *report);
/* The after_call hook of contexts made with automatic tuning: tunes the plan's shape class when a
   step's parameters came from no exact tuning entry, once per class and context. */
void clattn_autotune_after_call(clattn_context *ctx, const clattn_plan *plan);

#endif /* CLATTN_TUNE_H */
