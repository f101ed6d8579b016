/* This file implements the arithmetic of DESIGN.md's quantization
 * conventions: integer ranges, scale and zero point from an observed range,
 * quantize/dequantize, and SQNR accumulation. */
#ifndef QK_CORE_QPARAMS_H
#define QK_CORE_QPARAMS_H
#include <stdint.h>
#include <quantkit/quant.h>
#include "status.h"

/* [qmin, qmax] for a spec: signed (or unsigned) b bits, narrow drops the
 * most negative code. */
void qparams_int_range(const qk_quant_spec *spec, int32_t *qmin, int32_t *qmax);
/* Fills out (arrays malloc'd; free with qparams_free) from `channels`
 * observed ranges.  The range is widened to include 0 so zero is exact;
 * symmetric ranges use max(|lo|, |hi|).  An empty range gets scale 1.
 * Fails on a non-finite range, naming `what`. */
int qparams_from_range(const qk_quant_spec *spec, int64_t channels, const float *lo, const float *hi,
                       qk_qparams *out, const char *what, qk_err *err);
/* Allocates count scales and zero points (zeroed); axis as given. */
int qparams_alloc(qk_qparams *qp, int64_t count, int axis);
/* dst becomes a copy of src (own arrays); dst is overwritten, not freed. */
int qparams_copy(qk_qparams *dst, const qk_qparams *src);
void qparams_free(qk_qparams *qp);   /* frees the arrays, leaves the struct zeroed */

static inline int32_t qk_quantize_one(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax)
{
    float r = __builtin_nearbyintf(x / scale);   /* ties to even in the default rounding mode */
    float q = r + (float)zp;
    if (!(q >= (float)qmin)) return qmin;        /* also maps NaN to qmin */
    if (q > (float)qmax) return qmax;
    return (int32_t)q;
}

static inline float qk_dequantize_one(int32_t q, float scale, int32_t zp) { return (float)(q - zp) * scale; }

/* Signal and noise energy, summed over batches. */
typedef struct sqnr_acc {
    double signal, noise;
    int64_t count;
} sqnr_acc;
void sqnr_add(sqnr_acc *a, const float *ref, const float *test, int64_t n);
/* 10*log10(signal/noise) dB; +INFINITY when there is no noise, NAN when
 * nothing was added, -INFINITY for noise on a zero signal. */
double sqnr_db(const sqnr_acc *a);

#endif
