/* This file implements the kernels that make, reshape or retype tensors
 * without arithmetic on their elements: Shape, Size, Reshape, Flatten,
 * Squeeze, Unsqueeze, Expand, Identity, Dropout (inference), Constant,
 * ConstantOfShape, Range, Cast, CastLike and EyeLike.
 *
 * Most of them are what PyTorch exports as shape arithmetic
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape), which the IR folds by
 * running these kernels on int64 constants at load time.  So every kernel here
 * works on any dtype the executor holds, moving elements by dtype_size(), and
 * every infer whose output shape depends on an input's values returns
 * QK_UNKNOWN while that value is not known yet. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include "ops.h"

/* ---- helpers shared by the kernels of this file ---------------------------- */

/* Writes "[4,-1,0]" into buf: a target shape as given, -1 and all. */
static const char *ints_str(const int64_t *v, int n, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? "," : "", (long long)v[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

/* Product of dims[from, to); -1 if any of them is unknown. */
static int64_t dims_prod(const xt *t, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) {
        if (t->dims[i] < 0) return -1;
        p *= t->dims[i];
    }
    return p;
}

static void set_shape(xt *o, int dtype, int rank, const int64_t *dims)
{
    o->dtype = dtype;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

/* Output 0 gets input 0's bytes; used by every op that only relabels the
 * shape.  The executor may hand the same buffer back, hence the check. */
static int run_copy(op_ctx *c)
{
    int64_t nb = xt_nbytes(c->in[0]);
    if (nb > 0 && c->out[0]->data != c->in[0]->data)
        memcpy(c->out[0]->data, c->in[0]->data, (size_t)nb);
    return QK_OK;
}

/* ---- Shape, Size ----------------------------------------------------------- */

/* Opset 15's start/end, clamped like Python slicing. */
static void shape_range(op_ctx *c, int rank, int *start, int *end)
{
    int64_t s = node_attr_int(c->node, "start", 0);
    int64_t e = node_attr_int(c->node, "end", rank);
    if (s < 0) s += rank;
    if (e < 0) e += rank;
    s = s < 0 ? 0 : s > rank ? rank : s;
    e = e < 0 ? 0 : e > rank ? rank : e;
    *start = (int)s;
    *end = (int)(e < s ? s : e);
}

static int shape_infer(op_ctx *c)
{
    if (c->in[0]->rank < 0) return QK_UNKNOWN;
    int s, e;
    shape_range(c, c->in[0]->rank, &s, &e);
    int64_t n = e - s;
    set_shape(c->out[0], DT_INT64, 1, &n);
    return QK_OK;
}

static int shape_run(op_ctx *c)
{
    int s, e;
    shape_range(c, c->in[0]->rank, &s, &e);
    int64_t *o = c->out[0]->data;
    for (int i = s; i < e; i++) o[i - s] = c->in[0]->dims[i];
    return QK_OK;
}

static int size_infer(op_ctx *c)
{
    set_shape(c->out[0], DT_INT64, 0, NULL);
    return QK_OK;
}

static int size_run(op_ctx *c)
{
    *(int64_t *)c->out[0]->data = xt_numel(c->in[0]);
    return QK_OK;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---------------------------------- */

static int reshape_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t shape[XT_MAX_RANK];
    int n = 0;
    if (op_has_input(c, 1)) {
        int rc = op_read_int_list(c, c->in[1], "Reshape's shape", shape, XT_MAX_RANK, &n);
        if (rc != QK_OK) return rc;
    } else {
        /* Reshape-1 took the shape as an attribute. */
        const int64_t *v;
        n = node_attr_ints(c->node, "shape", &v);
        if (n < 0) return op_fail(c, QK_EINVAL, "no shape input or attribute");
        if (n > XT_MAX_RANK)
            return op_fail(c, QK_ENOTSUP, "target rank %d exceeds %d", n, XT_MAX_RANK);
        memcpy(shape, v, (size_t)n * sizeof *v);
    }
    int allowzero = (int)node_attr_int(c->node, "allowzero", 0);
    int infer_at = -1;
    int64_t known = 1;    /* product of the target dims other than -1 */
    int unknown = 0;      /* some copied dim is not known yet */
    int64_t dims[XT_MAX_RANK];
    for (int i = 0; i < n; i++) {
        int64_t d = shape[i];
        if (d == 0 && !allowzero) {
            if (x->rank < 0) return QK_UNKNOWN;
            if (i >= x->rank) {
                char b[128];
                return op_fail(c, QK_EINVAL, "shape[%d] = 0 copies a dimension the input %s lacks",
                               i, xt_shape_str(x, b, sizeof b));
            }
            d = x->dims[i];
        } else if (d == -1) {
            if (infer_at >= 0) return op_fail(c, QK_EINVAL, "more than one -1 in the target shape");
            infer_at = i;
        } else if (d < 0) {
            return op_fail(c, QK_EINVAL, "invalid target dimension %lld", (long long)d);
        }
        dims[i] = d;
        if (i != infer_at) {
            if (d < 0) unknown = 1;
            else known *= d;
        }
    }
    int64_t total = xt_numel(x);
    if (infer_at >= 0) {
        if (total < 0 || unknown) {
            dims[infer_at] = -1;
        } else if (known == 0 || total % known) {
            char a[128], b[128];
            return op_fail(c, QK_EINVAL, "cannot reshape %s (%lld elements) into %s", xt_shape_str(x, a, sizeof a),
                           (long long)total, ints_str(shape, n, b, sizeof b));
        } else {
            dims[infer_at] = total / known;
        }
    } else if (total >= 0 && !unknown && total != known) {
        char a[128], b[128];
        xt tgt = {.rank = n};
        memcpy(tgt.dims, dims, (size_t)n * sizeof *dims);
        return op_fail(c, QK_EINVAL, "cannot reshape %s (%lld elements) into %s (%lld elements)",
                       xt_shape_str(x, a, sizeof a), (long long)total,
                       xt_shape_str(&tgt, b, sizeof b), (long long)known);
    }
    set_shape(c->out[0], x->dtype, n, dims);
    return QK_OK;
}

static int flatten_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    int64_t axis = node_attr_int(c->node, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d",
                       (long long)node_attr_int(c->node, "axis", 1), x->rank);
    int64_t dims[2] = {dims_prod(x, 0, (int)axis), dims_prod(x, (int)axis, x->rank)};
    set_shape(c->out[0], x->dtype, 2, dims);
    return QK_OK;
}

/* Axes of Squeeze/Unsqueeze: the attribute before opset 13, the optional
 * input from 13 on.  Sets *n (and *absent when none are given); returns
 * QK_OK, QK_UNKNOWN or an error. */
static int get_axes(op_ctx *c, int input, int64_t *axes, int *n, int *absent)
{
    *absent = 0;
    *n = 0;
    if (op_has_input(c, input)) return op_read_int_list(c, c->in[input], "axes", axes, XT_MAX_RANK, n);
    const int64_t *v;
    int k = node_attr_ints(c->node, "axes", &v);
    if (k < 0) {
        *absent = 1;
        return QK_OK;
    }
    if (k > XT_MAX_RANK) return op_fail(c, QK_ENOTSUP, "%d axes; at most %d are supported", k, XT_MAX_RANK);
    memcpy(axes, v, (size_t)k * sizeof *v);
    *n = k;
    return QK_OK;
}

static int squeeze_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t axes[XT_MAX_RANK];
    int absent, n;
    int rc = get_axes(c, 1, axes, &n, &absent);
    if (rc != QK_OK) return rc;
    if (x->rank < 0) return QK_UNKNOWN;
    int drop[XT_MAX_RANK] = {0};
    /* Empty axes mean "all size-1 dims" too, as in onnxruntime. */
    if (absent || n == 0) {
        for (int i = 0; i < x->rank; i++) {
            if (x->dims[i] < 0) return QK_UNKNOWN;   /* might be 1 */
            drop[i] = x->dims[i] == 1;
        }
    }
    for (int i = 0; i < n; i++) {
        int a = axis_normalize(axes[i], x->rank);
        if (a < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)axes[i], x->rank);
        if (x->dims[a] > 1 || x->dims[a] == 0) {
            char b[128];
            return op_fail(c, QK_EINVAL, "cannot squeeze axis %d of %s: size is not 1", a,
                           xt_shape_str(x, b, sizeof b));
        }
        drop[a] = 1;
    }
    int64_t dims[XT_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i]) dims[r++] = x->dims[i];
    set_shape(c->out[0], x->dtype, r, dims);
    return QK_OK;
}

static int unsqueeze_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t axes[XT_MAX_RANK];
    int absent, n;
    int rc = get_axes(c, 1, axes, &n, &absent);
    if (rc != QK_OK) return rc;
    if (absent) return op_fail(c, QK_EINVAL, "no axes given");
    if (x->rank < 0) return QK_UNKNOWN;
    int r = x->rank + n;
    if (r > XT_MAX_RANK) return op_fail(c, QK_ENOTSUP, "output rank %d exceeds %d", r, XT_MAX_RANK);
    int ins[XT_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a = axis_normalize(axes[i], r);
        if (a < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for output rank %d", (long long)axes[i], r);
        if (ins[a]) return op_fail(c, QK_EINVAL, "axis %d given twice", a);
        ins[a] = 1;
    }
    int64_t dims[XT_MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) dims[i] = ins[i] ? 1 : x->dims[j++];
    set_shape(c->out[0], x->dtype, r, dims);
    return QK_OK;
}

/* ---- Expand ------------------------------------------------------------------ */

static int expand_infer(op_ctx *c)
{
    int64_t shape[XT_MAX_RANK];
    int n;
    int rc = op_read_int_list(c, c->in[1], "Expand's shape", shape, XT_MAX_RANK, &n);
    if (rc != QK_OK) return rc;
    if (c->in[0]->rank < 0) return QK_UNKNOWN;
    xt tgt = {.dtype = c->in[0]->dtype, .rank = n};
    for (int i = 0; i < n; i++) {
        if (shape[i] < 0) return op_fail(c, QK_EINVAL, "negative dimension %lld in shape", (long long)shape[i]);
        tgt.dims[i] = shape[i];
    }
    xt o;
    if (xt_broadcast_shape(c->in[0], &tgt, &o) != QK_OK) {
        char a[128], b[128];
        return op_fail(c, QK_EINVAL, "cannot expand %s to %s", xt_shape_str(c->in[0], a, sizeof a),
                       xt_shape_str(&tgt, b, sizeof b));
    }
    set_shape(c->out[0], c->in[0]->dtype, o.rank, o.dims);
    return QK_OK;
}

/* Copies element by element, es bytes each. */
static inline void copy_elem(char *d, const char *s, size_t es)
{
    switch (es) {
    case 1: *d = *s; break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    case 8: memcpy(d, s, 8); break;
    default: memcpy(d, s, es); break;
    }
}

static int expand_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    size_t es = dtype_size(x->dtype);
    int r = y->rank;
    int64_t xs[XT_MAX_RANK], sstr[XT_MAX_RANK] = {0};
    xt_strides(x, xs);
    /* Input dims align to the right; a broadcast dim reads with stride 0. */
    for (int i = 0; i < x->rank; i++) {
        int o = i + r - x->rank;
        sstr[o] = x->dims[i] == 1 ? 0 : xs[i];
    }
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QK_OK;
    }
    int64_t inner = y->dims[r - 1], istr = sstr[r - 1];
    int64_t rows = total / inner;
    int64_t idx[XT_MAX_RANK] = {0};
    const char *src = x->data;
    char *dst = y->data;
    int64_t off = 0;
    for (int64_t row = 0; row < rows; row++) {
        if (istr == 1) {
            memcpy(dst, src + off * (int64_t)es, (size_t)inner * es);
            dst += inner * (int64_t)es;
        } else {
            for (int64_t j = 0; j < inner; j++, dst += es) copy_elem(dst, src + (off + j * istr) * (int64_t)es, es);
        }
        for (int d = r - 2; d >= 0; d--) {
            off += sstr[d];
            if (++idx[d] < y->dims[d]) break;
            off -= sstr[d] * idx[d];
            idx[d] = 0;
        }
    }
    return QK_OK;
}

/* ---- Identity, Dropout ------------------------------------------------------- */

static int identity_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    set_shape(c->out[0], x->dtype, x->rank, x->dims);
    return QK_OK;
}

static int dropout_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    set_shape(c->out[0], x->dtype, x->rank, x->dims);
    if (c->n_out > 1 && c->out[1])
        /* The mask was typed like the data until opset 10 made it bool. */
        set_shape(c->out[1], c->opset >= 10 ? DT_BOOL : x->dtype, x->rank, x->dims);
    return QK_OK;
}

static int dropout_run(op_ctx *c)
{
    int training = 0;
    if (op_has_input(c, 2) && xt_numel(c->in[2]) > 0) training = xt_get_i64(c->in[2], 0) != 0;
    double ratio = node_attr_float(c->node, "ratio", 0.5f);
    if (op_has_input(c, 1) && xt_numel(c->in[1]) > 0) ratio = xt_get_f64(c->in[1], 0);
    /* Only inference is deterministic; training with a zero ratio is too. */
    if (training && ratio != 0)
        return op_fail(c, QK_ENOTSUP, "training-mode dropout (ratio %g) is random; only inference is supported",
                       ratio);
    run_copy(c);
    if (c->n_out > 1 && c->out[1]) {
        xt *m = c->out[1];
        int64_t n = xt_numel(m);
        if (m->dtype == DT_BOOL) {
            if (n > 0) memset(m->data, 1, (size_t)n);
        } else {
            for (int64_t i = 0; i < n; i++) xt_set_f64(m, i, 1.0);
        }
    }
    return QK_OK;
}

/* ---- Constant, ConstantOfShape ----------------------------------------------- */

/* The value of a Constant node, whichever attribute holds it.  Scalar
 * attributes are returned through *scalar_f / *scalar_i and the list ones
 * through *fl / *il; a tensor goes to *t. */
typedef struct const_val {
    int kind;             /* 0 tensor, 1 float, 2 floats, 3 int, 4 ints */
    xt t;
    float f;
    int64_t i;
    const float *fl;
    const int64_t *il;
    int n;
} const_val;

static int constant_get(op_ctx *c, const_val *v)
{
    const struct ir_node *nd = c->node;
    memset(v, 0, sizeof *v);
    if (node_has_attr(nd, "sparse_value"))
        return op_fail(c, QK_ENOTSUP, "sparse_value constants are not supported");
    if (node_has_attr(nd, "value_string") || node_has_attr(nd, "value_strings"))
        return op_fail(c, QK_ENOTSUP, "string constants are not supported");
    if (node_has_attr(nd, "value")) {
        int rc = node_attr_tensor(nd, "value", &v->t, c->err);
        if (rc != QK_OK) return rc;
        if (!dtype_supported(v->t.dtype))
            return op_fail(c, QK_ENOTSUP, "constant of type %s is not supported", dtype_name(v->t.dtype));
        v->kind = 0;
        return QK_OK;
    }
    if (node_has_attr(nd, "value_float")) {
        v->kind = 1;
        v->f = node_attr_float(nd, "value_float", 0);
        return QK_OK;
    }
    if (node_has_attr(nd, "value_floats")) {
        v->kind = 2;
        v->n = node_attr_floats(nd, "value_floats", &v->fl);
        return QK_OK;
    }
    if (node_has_attr(nd, "value_int")) {
        v->kind = 3;
        v->i = node_attr_int(nd, "value_int", 0);
        return QK_OK;
    }
    if (node_has_attr(nd, "value_ints")) {
        v->kind = 4;
        v->n = node_attr_ints(nd, "value_ints", &v->il);
        return QK_OK;
    }
    return op_fail(c, QK_EINVAL, "Constant has no value attribute");
}

static int constant_infer(op_ctx *c)
{
    const_val v;
    int rc = constant_get(c, &v);
    if (rc != QK_OK) return rc;
    int64_t n = v.n < 0 ? 0 : v.n;
    switch (v.kind) {
    case 0: set_shape(c->out[0], v.t.dtype, v.t.rank, v.t.dims); break;
    case 1: set_shape(c->out[0], DT_FLOAT, 0, NULL); break;
    case 2: set_shape(c->out[0], DT_FLOAT, 1, &n); break;
    case 3: set_shape(c->out[0], DT_INT64, 0, NULL); break;
    case 4: set_shape(c->out[0], DT_INT64, 1, &n); break;
    }
    return QK_OK;
}

static int constant_run(op_ctx *c)
{
    const_val v;
    int rc = constant_get(c, &v);
    if (rc != QK_OK) return rc;
    void *d = c->out[0]->data;
    switch (v.kind) {
    case 0: {
        int64_t nb = xt_nbytes(&v.t);
        if (nb != xt_nbytes(c->out[0])) return op_fail(c, QK_EINVAL, "constant shape changed");
        if (nb > 0) memcpy(d, v.t.data, (size_t)nb);
        break;
    }
    case 1: *(float *)d = v.f; break;
    case 2: if (v.n > 0) memcpy(d, v.fl, (size_t)v.n * sizeof(float)); break;
    case 3: *(int64_t *)d = v.i; break;
    case 4: if (v.n > 0) memcpy(d, v.il, (size_t)v.n * sizeof(int64_t)); break;
    }
    return QK_OK;
}

/* ConstantOfShape's fill value: the one-element `value` tensor, or float 0. */
static int cos_value(op_ctx *c, xt *v)
{
    static const float zero = 0;
    if (!node_has_attr(c->node, "value")) {
        *v = (xt){.dtype = DT_FLOAT, .rank = 0, .data = (void *)&zero};
        return QK_OK;
    }
    int rc = node_attr_tensor(c->node, "value", v, c->err);
    if (rc != QK_OK) return rc;
    if (!dtype_supported(v->dtype))
        return op_fail(c, QK_ENOTSUP, "fill value of type %s is not supported", dtype_name(v->dtype));
    if (xt_numel(v) != 1) return op_fail(c, QK_EINVAL, "value must have exactly one element");
    return QK_OK;
}

static int cos_infer(op_ctx *c)
{
    xt v;
    int rc = cos_value(c, &v);
    if (rc != QK_OK) return rc;
    int64_t dims[XT_MAX_RANK];
    int n;
    rc = op_read_int_list(c, c->in[0], "ConstantOfShape's input", dims, XT_MAX_RANK, &n);
    if (rc != QK_OK) return rc;
    for (int i = 0; i < n; i++)
        if (dims[i] < 0) return op_fail(c, QK_EINVAL, "negative dimension %lld", (long long)dims[i]);
    set_shape(c->out[0], v.dtype, n, dims);
    return QK_OK;
}

static int cos_run(op_ctx *c)
{
    xt v;
    int rc = cos_value(c, &v);
    if (rc != QK_OK) return rc;
    size_t es = dtype_size(v.dtype);
    int64_t n = xt_numel(c->out[0]);
    char *d = c->out[0]->data;
    for (int64_t i = 0; i < n; i++) memcpy(d + i * (int64_t)es, v.data, es);
    return QK_OK;
}

/* ---- Range ------------------------------------------------------------------- */

/* Element count of Range(start, limit, delta), or -1 for a zero delta or a
 * range int64 cannot span. */
static int64_t range_count(const xt *s, const xt *l, const xt *d)
{
    if (s->dtype == DT_FLOAT || s->dtype == DT_DOUBLE) {
        double a = xt_get_f64(s, 0), b = xt_get_f64(l, 0), dl = xt_get_f64(d, 0);
        if (dl == 0 || isnan(a) || isnan(b) || isnan(dl)) return -1;
        double n = ceil((b - a) / dl);
        return n > 0 ? (int64_t)n : 0;
    }
    int64_t a = xt_get_i64(s, 0), b = xt_get_i64(l, 0), dl = xt_get_i64(d, 0);
    if (dl == 0) return -1;
    /* Integer ceil division without going through double. */
    int64_t num;
    if (__builtin_sub_overflow(b, a, &num) || dl == INT64_MIN) return -1;
    int64_t q = num / dl;
    if ((num % dl != 0) && ((num > 0) == (dl > 0))) q++;
    return q > 0 ? q : 0;
}

static int range_infer(op_ctx *c)
{
    const xt *s = c->in[0], *l = c->in[1], *d = c->in[2];
    int dt = s->dtype;
    if (!dt || !l->dtype || !d->dtype) return QK_UNKNOWN;
    if (!dtype_supported(dt) || dt == DT_BOOL)
        return op_fail(c, QK_ENOTSUP, "Range of %s is not supported", dtype_name(dt));
    if (l->dtype != dt || d->dtype != dt) return op_fail(c, QK_EINVAL, "start, limit and delta differ in type");
    if (!s->data || !l->data || !d->data) return QK_UNKNOWN;
    if (xt_numel(s) != 1 || xt_numel(l) != 1 || xt_numel(d) != 1)
        return op_fail(c, QK_EINVAL, "start, limit and delta must be scalars");
    int64_t n = range_count(s, l, d);
    if (n < 0) return op_fail(c, QK_EINVAL, "delta must be non-zero, values finite and the range within int64");
    set_shape(c->out[0], dt, 1, &n);
    return QK_OK;
}

static int range_run(op_ctx *c)
{
    const xt *s = c->in[0], *d = c->in[2];
    xt *y = c->out[0];
    int64_t n = xt_numel(y);
    if (s->dtype == DT_FLOAT || s->dtype == DT_DOUBLE) {
        double a = xt_get_f64(s, 0), dl = xt_get_f64(d, 0);
        for (int64_t i = 0; i < n; i++) xt_set_f64(y, i, a + (double)i * dl);
    } else {
        int64_t a = xt_get_i64(s, 0), dl = xt_get_i64(d, 0);
        for (int64_t i = 0; i < n; i++) xt_set_i64(y, i, a + i * dl);
    }
    return QK_OK;
}

/* ---- Cast, CastLike ---------------------------------------------------------- */

static int cast_check(op_ctx *c, int from, int to)
{
    if (!dtype_supported(from) || !dtype_supported(to))
        return op_fail(c, QK_ENOTSUP, "cast from %s to %s is not supported", dtype_name(from), dtype_name(to));
    return QK_OK;
}

static int cast_to(op_ctx *c)
{
    if (strcmp(node_op_type(c->node), "CastLike") == 0) return c->in[1]->dtype;
    int to = (int)node_attr_int(c->node, "to", DT_UNDEFINED);
    const char *name = to ? NULL : node_attr_str(c->node, "to", NULL);
    if (name) {
        /* Cast-1 named the type ("FLOAT") instead of numbering it. */
        static const struct { const char *name; int dt; } names[] = {
            {"FLOAT", DT_FLOAT}, {"UINT8", DT_UINT8}, {"INT8", DT_INT8}, {"UINT16", DT_UINT16},
            {"INT16", DT_INT16}, {"INT32", DT_INT32}, {"INT64", DT_INT64}, {"STRING", DT_STRING},
            {"BOOL", DT_BOOL}, {"FLOAT16", DT_FLOAT16}, {"DOUBLE", DT_DOUBLE}, {"UINT32", DT_UINT32},
            {"UINT64", DT_UINT64},
        };
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcasecmp(name, names[i].name)) return names[i].dt;
    }
    return to;
}

static int cast_infer(op_ctx *c)
{
    int to = cast_to(c);
    if (to == DT_UNDEFINED) {
        if (c->n_in > 1) return QK_UNKNOWN;   /* CastLike's target not typed yet */
        return op_fail(c, QK_EINVAL, "no target type ('to' attribute)");
    }
    /* The output type is known even when the input's is not yet. */
    int rc = cast_check(c, c->in[0]->dtype ? c->in[0]->dtype : to, to);
    if (rc != QK_OK) return rc;
    set_shape(c->out[0], to, c->in[0]->rank, c->in[0]->dims);
    return QK_OK;
}

/* float -> integer: truncate toward zero, then wrap like numpy's astype; the
 * saturation before the int64 conversion keeps NaN/inf/huge values from being
 * undefined behaviour in C. */
static int64_t f2i(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static int cast_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int64_t n = xt_numel(x);
    if (n <= 0) return QK_OK;
    int from = x->dtype, to = y->dtype;
    if (from == to) return run_copy(c);
    int ffloat = from == DT_FLOAT || from == DT_DOUBLE;
    int tfloat = to == DT_FLOAT || to == DT_DOUBLE;
    if (from == DT_FLOAT && to == DT_INT64) {   /* common in exported shape math */
        const float *s = x->data;
        int64_t *d = y->data;
        for (int64_t i = 0; i < n; i++) d[i] = f2i(s[i]);
    } else if (from == DT_INT64 && to == DT_FLOAT) {
        const int64_t *s = x->data;
        float *d = y->data;
        for (int64_t i = 0; i < n; i++) d[i] = (float)s[i];
    } else if (to == DT_BOOL) {
        for (int64_t i = 0; i < n; i++) xt_set_i64(y, i, xt_get_f64(x, i) != 0);
    } else if (tfloat) {
        /* uint64 goes through double so values above INT64_MAX stay positive. */
        if (ffloat || from == DT_UINT64)
            for (int64_t i = 0; i < n; i++) xt_set_f64(y, i, xt_get_f64(x, i));
        else
            for (int64_t i = 0; i < n; i++) xt_set_i64(y, i, xt_get_i64(x, i));
    } else if (ffloat) {
        if (to == DT_UINT64) {
            for (int64_t i = 0; i < n; i++) {
                double v = xt_get_f64(x, i);
                ((uint64_t *)y->data)[i] = v >= 9223372036854775808.0 && v < 18446744073709551616.0
                                               ? (uint64_t)v : (uint64_t)f2i(v);
            }
        } else {
            for (int64_t i = 0; i < n; i++) xt_set_i64(y, i, f2i(xt_get_f64(x, i)));
        }
    } else {
        for (int64_t i = 0; i < n; i++) xt_set_i64(y, i, xt_get_i64(x, i));
    }
    return QK_OK;
}

/* ---- EyeLike ----------------------------------------------------------------- */

static int eyelike_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->rank != 2) return op_fail(c, QK_EINVAL, "input must be 2-D, got rank %d", x->rank);
    int dt = (int)node_attr_int(c->node, "dtype", x->dtype);
    if (dt == DT_UNDEFINED) return QK_UNKNOWN;
    if (!dtype_supported(dt)) return op_fail(c, QK_ENOTSUP, "dtype %s is not supported", dtype_name(dt));
    set_shape(c->out[0], dt, 2, x->dims);
    return QK_OK;
}

static int eyelike_run(op_ctx *c)
{
    xt *y = c->out[0];
    int64_t nb = xt_nbytes(y);
    if (nb <= 0) return QK_OK;
    memset(y->data, 0, (size_t)nb);
    int64_t k = node_attr_int(c->node, "k", 0);
    int64_t rows = y->dims[0], cols = y->dims[1];
    for (int64_t i = 0; i < rows; i++) {
        int64_t j = i + k;
        if (j >= 0 && j < cols) xt_set_i64(y, i * cols + j, 1);
    }
    return QK_OK;
}

const op_def ops_shape[] = {
    {"Shape", shape_infer, shape_run},
    {"Size", size_infer, size_run},
    {"Reshape", reshape_infer, run_copy},
    {"Flatten", flatten_infer, run_copy},
    {"Squeeze", squeeze_infer, run_copy},
    {"Unsqueeze", unsqueeze_infer, run_copy},
    {"Expand", expand_infer, expand_run},
    {"Identity", identity_infer, run_copy},
    {"Dropout", dropout_infer, dropout_run},
    {"Constant", constant_infer, constant_run},
    {"ConstantOfShape", cos_infer, cos_run},
    {"Range", range_infer, range_run},
    {"Cast", cast_infer, cast_run},
    {"CastLike", cast_infer, cast_run},
    {"EyeLike", eyelike_infer, eyelike_run},
};
const int ops_shape_count = sizeof ops_shape / sizeof ops_shape[0];
