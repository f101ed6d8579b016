/* This file implements the quantization vocabulary shared by observers,
 * quantizers and backends (see DESIGN.md, "Quantization conventions"):
 *   q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)
 *   x^ = (q - zero_point) * scale
 * Symmetric means zero_point = 0; signed b-bit range is [-2^(b-1), 2^(b-1)-1],
 * narrow range [-(2^(b-1)-1), 2^(b-1)-1]. */
#ifndef QUANTKIT_QUANT_H
#define QUANTKIT_QUANT_H
#include <stddef.h>
#include <stdint.h>

/* What is being quantized and how; resolved from the YAML rules. */
typedef struct qk_quant_spec {
    size_t size;          /* sizeof(qk_quant_spec) of the host */
    int bits;             /* 2..16 */
    int symmetric;        /* zero_point fixed at 0 */
    int is_signed;        /* signed integer range */
    int narrow_range;     /* drop the most negative code (weights) */
    int per_channel;      /* one range per channel of `axis` */
    int axis;             /* channel axis when per_channel */
    int is_weight;        /* a constant (weight) rather than an activation */
} qk_quant_spec;

/* Scales and zero points, one per channel (count 1 for per-tensor).
 * Arrays are owned by whoever filled the struct. */
typedef struct qk_qparams {
    int64_t count;
    int axis;             /* -1 for per-tensor */
    float *scale;
    int32_t *zero_point;
    int32_t qmin, qmax;
} qk_qparams;

#endif
