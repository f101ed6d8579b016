/* This file implements the quantization arithmetic (see qparams.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "qparams.h"

void qparams_int_range(const qk_quant_spec *spec, int32_t *qmin, int32_t *qmax)
{
    int b = spec->bits;
    if (spec->is_signed) {
        *qmax = (int32_t)((1LL << (b - 1)) - 1);
        *qmin = spec->narrow_range ? -*qmax : (int32_t)(-(1LL << (b - 1)));
    } else {
        *qmin = 0;
        *qmax = (int32_t)((1LL << b) - 1);
        if (spec->narrow_range) *qmin = 1;
    }
}

int qparams_alloc(qk_qparams *qp, int64_t count, int axis)
{
    qp->count = count;
    qp->axis = axis;
    qp->scale = calloc((size_t)count, sizeof *qp->scale);
    qp->zero_point = calloc((size_t)count, sizeof *qp->zero_point);
    if (!qp->scale || !qp->zero_point) {
        qparams_free(qp);
        return QK_ENOMEM;
    }
    return QK_OK;
}

int qparams_copy(qk_qparams *dst, const qk_qparams *src)
{
    if (qparams_alloc(dst, src->count, src->axis)) return QK_ENOMEM;
    memcpy(dst->scale, src->scale, (size_t)src->count * sizeof *dst->scale);
    memcpy(dst->zero_point, src->zero_point, (size_t)src->count * sizeof *dst->zero_point);
    dst->qmin = src->qmin;
    dst->qmax = src->qmax;
    return QK_OK;
}

void qparams_free(qk_qparams *qp)
{
    free(qp->scale);
    free(qp->zero_point);
    *qp = (qk_qparams){0};
}

int qparams_from_range(const qk_quant_spec *spec, int64_t channels, const float *lo, const float *hi,
                       qk_qparams *out, const char *what, qk_err *err)
{
    if (spec->bits < 2 || spec->bits > 16)
        return qk_fail(err, QK_EINVAL, "%s: bits must be 2..16, not %d", what, spec->bits);
    int32_t qmin, qmax;
    qparams_int_range(spec, &qmin, &qmax);
    if (qparams_alloc(out, channels, spec->per_channel ? spec->axis : -1))
        return qk_fail(err, QK_ENOMEM, "%s: out of memory", what);
    out->qmin = qmin;
    out->qmax = qmax;
    for (int64_t c = 0; c < channels; c++) {
        double l = lo[c], h = hi[c];
        if (!isfinite(l) || !isfinite(h) || l > h) {
            qparams_free(out);
            return qk_fail(err, QK_EINVAL, "%s: observed range [%g, %g]%s is not usable", what, l, h,
                           channels > 1 ? " (a channel)" : "");
        }
        /* Zero must be exactly representable: padding and ReLU produce it. */
        l = fmin(l, 0.0);
        h = fmax(h, 0.0);
        double scale;
        int32_t zp;
        if (spec->symmetric) {
            double amax = fmax(-l, h);
            /* Signed symmetric: zero point 0, |x| <= amax maps to +-qmax.
             * Unsigned symmetric (rare) centres zero mid-range. */
            double half = spec->is_signed ? (double)qmax : (qmax - qmin) / 2.0;
            scale = amax / half;
            zp = spec->is_signed ? 0 : (int32_t)((qmin + qmax + 1) / 2);
        } else {
            scale = (h - l) / (double)(qmax - qmin);
            zp = 0;
            if (scale > 0) {
                double z = qmin - l / scale;
                z = nearbyint(z);
                zp = (int32_t)(z < qmin ? qmin : z > qmax ? qmax : z);
            }
        }
        /* An all-zero tensor or channel: any scale reproduces it; 1 keeps
         * runtimes away from a division by zero. */
        if (!(scale > 1e-30) || !isfinite(scale)) {
            scale = 1.0;
            if (!spec->symmetric) zp = qmin < 0 && qmax > 0 ? 0 : qmin;
        }
        out->scale[c] = (float)scale;
        out->zero_point[c] = zp;
    }
    return QK_OK;
}

void sqnr_add(sqnr_acc *a, const float *ref, const float *test, int64_t n)
{
    double s = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i], d = (double)test[i] - r;
        s += r * r;
        e += d * d;
    }
    a->signal += s;
    a->noise += e;
    a->count += n;
}

double sqnr_db(const sqnr_acc *a)
{
    if (!a->count) return NAN;
    if (a->noise <= 0) return INFINITY;
    if (a->signal <= 0) return -INFINITY;
    return 10.0 * log10(a->signal / a->noise);
}
