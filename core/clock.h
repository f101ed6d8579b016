/* This file implements the one wall clock the CLI, the executor's profiler
 * and the calibration driver time themselves with: monotonic seconds, so
 * images/s never jump when the system clock is set. */
#ifndef QK_CORE_CLOCK_H
#define QK_CORE_CLOCK_H
#include <time.h>

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
