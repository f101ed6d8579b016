/* This file implements the calibration driver: the float graph runs over
 * the calibration data batch by batch, and every planned activation streams
 * into its observer plugin the moment it is computed.  Nothing is kept
 * across batches but the observers' summaries, so memory does not grow
 * with the number of calibration samples. */
#ifndef QK_CORE_CALIBRATE_H
#define QK_CORE_CALIBRATE_H
#include <stdint.h>
#include <quantkit/observer.h>
#include "data_input.h"
#include "executor.h"
#include "plan.h"
#include "registry.h"

typedef struct calibrator calibrator;

/* The spec an observer or quantizer of entry e gets (bits, scheme, axis). */
qk_quant_spec calib_spec_of(const plan_entry *e);

/* Creates one observer per activation group of the plan (groups share one;
 * see plan.h), loading each observer plugin by name; errors name the tensor
 * and the plugin. */
int calib_new(registry *reg, ir_graph *g, const quant_plan *p, calibrator **out, qk_err *err);
void calib_free(calibrator *c);   /* NULL is a no-op */

/* Runs samples [0, batch_num * batch) of ds (all when batch_num <= 0)
 * through e in batches, observing graph inputs and computed values.
 * Order-free observers (QK_OBSERVER_SHARDABLE) observe on all of e's
 * threads, one state per thread merged at the end, and take the values of
 * e's sample passes sample by sample (calibrate.c); the ranges are those
 * of one sequential run.  Refuses non-finite input values (naming the
 * input and sample).  Shows a progress bar on stderr when it is a
 * terminal. */
int calib_run(calibrator *c, executor *e, const data_set *ds, int64_t batch, int64_t batch_num, qk_err *err);

/* The observed range of entry i's group: *channels entries in lo/hi
 * (malloc'd, caller frees).  Fails when the observer saw nothing. */
int calib_range(calibrator *c, int entry, int64_t *channels, float **lo, float **hi, qk_err *err);

/* Images and batches run, and seconds spent inside calib_run. */
int64_t calib_images(const calibrator *c);
int calib_batches(const calibrator *c);
double calib_seconds(const calibrator *c);

/* Runs a single tensor through a fresh observer named by entry e's rule
 * (weights: observed once, whole) and returns its range like calib_range. */
int observe_once(registry *reg, const ir_graph *g, const plan_entry *e, const xt *t, const char *name,
                 int64_t *channels, float **lo, float **hi, qk_err *err);

#endif
