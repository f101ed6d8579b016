/* This file implements the kernels that move elements around without
 * changing their values: Transpose, Concat, Split, Slice, Gather,
 * GatherElements, Pad, Tile, Trilu, DepthToSpace, SpaceToDepth and OneHot.
 *
 * All of them work on any dtype the executor holds by moving dtype_size()
 * bytes per element: the IR folds PyTorch's int64 shape arithmetic through
 * Gather, Concat and Slice, and quantized graphs move uint8/int8 tensors
 * through the same ops. */
#include <string.h>
#include <stdlib.h>
#include "ops.h"

/* ---- helpers ------------------------------------------------------------------ */

static void set_shape(xt *o, int dtype, int rank, const int64_t *dims)
{
    o->dtype = dtype;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) p *= d[i];
    return p;
}

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

/* Copies a strided view of src into the contiguous dst: dims are dst's dims
 * and sstr[d] the source stride in elements (possibly negative or 0) of dst
 * dimension d; src points at the element of dst index 0.  Transpose, Slice,
 * DepthToSpace and SpaceToDepth are all this one loop. */
static void strided_copy(void *dst, const void *src, int rank, const int64_t *dims, const int64_t *sstr,
                         size_t es)
{
    int64_t total = prod(dims, 0, rank);
    if (total <= 0) return;
    const char *s = src;
    char *d = dst;
    if (rank == 0) {
        memcpy(d, s, es);
        return;
    }
    int64_t inner = dims[rank - 1], istr = sstr[rank - 1];
    int64_t rows = total / inner;
    int64_t idx[XT_MAX_RANK] = {0};
    int64_t off = 0;
    const int64_t esz = (int64_t)es;
    for (int64_t row = 0; row < rows; row++) {
        const char *p = s + off * esz;
        if (istr == 1) {
            memcpy(d, p, (size_t)(inner * esz));
            d += inner * esz;
        } else if (es == 4) {
            for (int64_t j = 0; j < inner; j++, d += 4) memcpy(d, p + j * istr * 4, 4);
        } else {
            for (int64_t j = 0; j < inner; j++, d += es) copy_elem(d, p + j * istr * esz, es);
        }
        for (int k = rank - 2; k >= 0; k--) {
            off += sstr[k];
            if (++idx[k] < dims[k]) break;
            off -= sstr[k] * idx[k];
            idx[k] = 0;
        }
    }
}

/* ---- Transpose ---------------------------------------------------------------- */

static int get_perm(op_ctx *c, int rank, int *perm)
{
    const int64_t *p;
    int n = node_attr_ints(c->node, "perm", &p);
    if (n < 0) {
        for (int i = 0; i < rank; i++) perm[i] = rank - 1 - i;
        return QK_OK;
    }
    if (n != rank) return op_fail(c, QK_EINVAL, "perm has %d entries for rank %d", n, rank);
    int seen[XT_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) {
        int a = axis_normalize(p[i], rank);
        if (a < 0 || seen[a]) return op_fail(c, QK_EINVAL, "perm is not a permutation of 0..%d", rank - 1);
        seen[a] = 1;
        perm[i] = a;
    }
    return QK_OK;
}

static int transpose_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    int perm[XT_MAX_RANK];
    int rc = get_perm(c, x->rank, perm);
    if (rc != QK_OK) return rc;
    int64_t dims[XT_MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    set_shape(c->out[0], x->dtype, x->rank, dims);
    return QK_OK;
}

typedef struct t4_job {
    const char *src;
    char *dst;
    int64_t od[4], is[4];   /* output dims, input strides per output dim */
    size_t es;
} t4_job;

/* The 4-D case (NCHW <-> NHWC around convolutions) parallel over the first
 * two output dims, with the element copy specialised for 4-byte floats. */
static void t4_rows(void *arg, int64_t b, int64_t e, int tid)
{
    const t4_job *j = arg;
    int64_t d2 = j->od[2], d3 = j->od[3];
    int64_t s0 = j->is[0], s1 = j->is[1], s2 = j->is[2], s3 = j->is[3];
    for (int64_t r = b; r < e; r++) {
        int64_t i0 = r / j->od[1], i1 = r % j->od[1];
        const int64_t base = i0 * s0 + i1 * s1;
        if (j->es == 4) {
            const float *s = (const float *)j->src;
            float *d = (float *)j->dst + r * d2 * d3;
            for (int64_t i2 = 0; i2 < d2; i2++) {
                const float *sp = s + base + i2 * s2;
                for (int64_t i3 = 0; i3 < d3; i3++) *d++ = sp[i3 * s3];
            }
        } else {
            int64_t es = (int64_t)j->es;
            char *d = j->dst + r * d2 * d3 * es;
            for (int64_t i2 = 0; i2 < d2; i2++)
                for (int64_t i3 = 0; i3 < d3; i3++, d += es)
                    copy_elem(d, j->src + (base + i2 * s2 + i3 * s3) * es, j->es);
        }
    }
}

static int transpose_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int perm[XT_MAX_RANK];
    int rc = get_perm(c, x->rank, perm);
    if (rc != QK_OK) return rc;
    int64_t xs[XT_MAX_RANK], sstr[XT_MAX_RANK];
    xt_strides(x, xs);
    for (int i = 0; i < x->rank; i++) sstr[i] = xs[perm[i]];
    size_t es = dtype_size(x->dtype);
    if (xt_numel(y) == 0) return QK_OK;
    if (x->rank == 4 && sstr[3] != 1) {
        t4_job j = {.src = x->data, .dst = y->data, .es = es};
        for (int i = 0; i < 4; i++) {
            j.od[i] = y->dims[i];
            j.is[i] = sstr[i];
        }
        int64_t rows = y->dims[0] * y->dims[1];
        int64_t per_row = y->dims[2] * y->dims[3];
        tp_parallel_for(c->pool, rows, per_row > 4096 ? 1 : 4096 / (per_row ? per_row : 1), t4_rows, &j);
        return QK_OK;
    }
    strided_copy(y->data, x->data, y->rank, y->dims, sstr, es);
    return QK_OK;
}

/* ---- Concat ----------------------------------------------------------------- */

static int concat_axis(op_ctx *c, int rank, int *axis)
{
    if (!node_has_attr(c->node, "axis") && c->opset >= 4)
        return op_fail(c, QK_EINVAL, "missing axis attribute");
    int64_t a = node_attr_int(c->node, "axis", 1);
    *axis = axis_normalize(a, rank);
    if (*axis < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, rank);
    return QK_OK;
}

static int concat_infer(op_ctx *c)
{
    const xt *f = NULL;
    int dt = DT_UNDEFINED;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i]) continue;
        if (c->in[i]->rank < 0) return QK_UNKNOWN;
        if (!f) f = c->in[i];
        if (!dt) dt = c->in[i]->dtype;
    }
    if (!f) return op_fail(c, QK_EINVAL, "no inputs");
    int r = f->rank, axis;
    if (r == 0) return op_fail(c, QK_EINVAL, "cannot concatenate scalars");
    int rc = concat_axis(c, r, &axis);
    if (rc != QK_OK) return rc;
    int64_t dims[XT_MAX_RANK];
    memcpy(dims, f->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < c->n_in; i++) {
        const xt *t = c->in[i];
        if (!t) continue;
        char a[128], b[128];
        if (t->rank != r || (t->dtype && t->dtype != dt))
            return op_fail(c, QK_EINVAL, "input %d (%s %s) does not match input 0 (%s %s)", i,
                           dtype_name(t->dtype), xt_shape_str(t, a, sizeof a), dtype_name(f->dtype),
                           xt_shape_str(f, b, sizeof b));
        for (int d = 0; d < r; d++) {
            if (d == axis) {
                dims[d] = dims[d] < 0 || t->dims[d] < 0 ? -1 : dims[d] + t->dims[d];
            } else if (t->dims[d] >= 0 && dims[d] >= 0 && t->dims[d] != dims[d]) {
                return op_fail(c, QK_EINVAL, "input %d %s does not match input 0 %s outside axis %d", i,
                               xt_shape_str(t, a, sizeof a), xt_shape_str(f, b, sizeof b), axis);
            } else if (dims[d] < 0) {
                dims[d] = t->dims[d];
            }
        }
    }
    set_shape(c->out[0], dt, r, dims);
    return QK_OK;
}

static int concat_run(op_ctx *c)
{
    xt *y = c->out[0];
    int axis;
    int rc = concat_axis(c, y->rank, &axis);
    if (rc != QK_OK) return rc;
    size_t es = dtype_size(y->dtype);
    int64_t outer = prod(y->dims, 0, axis);
    int64_t inner = prod(y->dims, axis + 1, y->rank) * (int64_t)es;
    int64_t orow = y->dims[axis] * inner;
    int64_t at = 0;
    for (int i = 0; i < c->n_in; i++) {
        const xt *t = c->in[i];
        if (!t) continue;
        int64_t chunk = t->dims[axis] * inner;
        if (chunk > 0)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)y->data + o * orow + at, (const char *)t->data + o * chunk, (size_t)chunk);
        at += chunk;
    }
    return QK_OK;
}

/* ---- Split -------------------------------------------------------------------- */

/* Sizes of the parts along the axis: the `split` input (opset 13+) or
 * attribute, num_outputs (opset 18), or equal parts.  dim < 0 (unknown) is
 * only allowed for explicit sizes. */
static int split_sizes(op_ctx *c, int64_t dim, int64_t *sizes)
{
    int n = c->n_out;
    if (op_has_input(c, 1) && !(c->in[1]->rank == 1 && c->in[1]->dims[0] == 0)) {
        int64_t v[64];
        int k;
        if (n > 64) return op_fail(c, QK_ENOTSUP, "more than 64 outputs");
        int rc = op_read_int_list(c, c->in[1], "split", v, 64, &k);
        if (rc != QK_OK) return rc;
        if (k != n) return op_fail(c, QK_EINVAL, "split has %d sizes for %d outputs", k, n);
        memcpy(sizes, v, (size_t)n * sizeof *v);
    } else if (node_has_attr(c->node, "split")) {
        const int64_t *v;
        int k = node_attr_ints(c->node, "split", &v);
        if (k != n) return op_fail(c, QK_EINVAL, "split has %d sizes for %d outputs", k, n);
        memcpy(sizes, v, (size_t)n * sizeof *v);
    } else {
        if (dim < 0) return QK_UNKNOWN;
        if (node_has_attr(c->node, "num_outputs")) {
            int64_t k = node_attr_int(c->node, "num_outputs", n);
            if (k != n) return op_fail(c, QK_EINVAL, "num_outputs is %lld but the node has %d outputs", (long long)k, n);
            /* Opset 18: ceil-sized parts, the last one smaller. */
            int64_t part = (dim + n - 1) / n;
            for (int i = 0; i < n; i++) {
                int64_t left = dim - part * i;
                sizes[i] = left < 0 ? 0 : left < part ? left : part;
            }
            return QK_OK;
        }
        if (dim % n) return op_fail(c, QK_EINVAL, "dimension %lld does not split into %d equal parts", (long long)dim, n);
        for (int i = 0; i < n; i++) sizes[i] = dim / n;
        return QK_OK;
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) return op_fail(c, QK_EINVAL, "negative split size %lld", (long long)sizes[i]);
        sum += sizes[i];
    }
    if (dim >= 0 && sum != dim)
        return op_fail(c, QK_EINVAL, "split sizes add up to %lld, dimension is %lld", (long long)sum, (long long)dim);
    return QK_OK;
}

static int split_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    int64_t a = node_attr_int(c->node, "axis", 0);
    int axis = axis_normalize(a, x->rank);
    if (axis < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, x->rank);
    if (c->n_out > 64) return op_fail(c, QK_ENOTSUP, "more than 64 outputs");
    int64_t sizes[64];
    int rc = split_sizes(c, x->dims[axis], sizes);
    if (rc != QK_OK) return rc;
    for (int i = 0; i < c->n_out; i++) {
        if (!c->out[i]) continue;
        set_shape(c->out[i], x->dtype, x->rank, x->dims);
        c->out[i]->dims[axis] = sizes[i];
    }
    return QK_OK;
}

static int split_run(op_ctx *c)
{
    const xt *x = c->in[0];
    int axis = axis_normalize(node_attr_int(c->node, "axis", 0), x->rank);
    int64_t sizes[64];
    int rc = split_sizes(c, x->dims[axis], sizes);
    if (rc != QK_OK) return rc;
    size_t es = dtype_size(x->dtype);
    int64_t outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->rank) * (int64_t)es;
    int64_t irow = x->dims[axis] * inner;
    int64_t at = 0;
    for (int i = 0; i < c->n_out; i++) {
        int64_t chunk = sizes[i] * inner;
        if (c->out[i] && chunk > 0)
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)c->out[i]->data + o * chunk, (const char *)x->data + o * irow + at, (size_t)chunk);
        at += chunk;
    }
    return QK_OK;
}

/* ---- Slice -------------------------------------------------------------------- */

typedef struct slice_plan {
    int64_t start[XT_MAX_RANK], step[XT_MAX_RANK], count[XT_MAX_RANK];
} slice_plan;

/* Reads starts/ends/axes/steps (inputs from opset 10, attributes before) and
 * clamps them like the spec: returns QK_OK with one entry per input dim. */
static int slice_plan_make(op_ctx *c, const xt *x, slice_plan *p)
{
    int64_t st[XT_MAX_RANK], en[XT_MAX_RANK], ax[XT_MAX_RANK], sp[XT_MAX_RANK];
    int ns, ne, na = -1, nsp = -1;
    int rc;
    if (op_has_input(c, 1)) {
        if (!op_has_input(c, 2)) return op_fail(c, QK_EINVAL, "ends input missing");
        if ((rc = op_read_int_list(c, c->in[1], "starts", st, XT_MAX_RANK, &ns)) != QK_OK) return rc;
        if ((rc = op_read_int_list(c, c->in[2], "ends", en, XT_MAX_RANK, &ne)) != QK_OK) return rc;
        if (op_has_input(c, 3) && (rc = op_read_int_list(c, c->in[3], "axes", ax, XT_MAX_RANK, &na)) != QK_OK) return rc;
        if (op_has_input(c, 4) && (rc = op_read_int_list(c, c->in[4], "steps", sp, XT_MAX_RANK, &nsp)) != QK_OK) return rc;
    } else {
        const int64_t *v;
        ns = node_attr_ints(c->node, "starts", &v);
        if (ns < 0 || ns > XT_MAX_RANK) return op_fail(c, QK_EINVAL, "missing or too long starts");
        memcpy(st, v, (size_t)ns * sizeof *v);
        ne = node_attr_ints(c->node, "ends", &v);
        if (ne < 0 || ne > XT_MAX_RANK) return op_fail(c, QK_EINVAL, "missing or too long ends");
        memcpy(en, v, (size_t)ne * sizeof *v);
        na = node_attr_ints(c->node, "axes", &v);
        if (na > XT_MAX_RANK) return op_fail(c, QK_EINVAL, "too many axes");
        if (na > 0) memcpy(ax, v, (size_t)na * sizeof *v);
    }
    if (x->rank < 0) return QK_UNKNOWN;
    if (ns != ne) return op_fail(c, QK_EINVAL, "starts has %d values, ends %d", ns, ne);
    if (na < 0) {
        na = ns;
        for (int i = 0; i < na; i++) ax[i] = i;
    }
    if (nsp < 0) {
        nsp = ns;
        for (int i = 0; i < nsp; i++) sp[i] = 1;
    }
    if (na != ns || nsp != ns)
        return op_fail(c, QK_EINVAL, "starts, ends, axes and steps differ in length (%d, %d, %d, %d)", ns, ne, na, nsp);
    int seen[XT_MAX_RANK] = {0};
    for (int d = 0; d < x->rank; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->count[d] = x->dims[d];
    }
    for (int i = 0; i < ns; i++) {
        int a = axis_normalize(ax[i], x->rank);
        if (a < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)ax[i], x->rank);
        if (seen[a]) return op_fail(c, QK_EINVAL, "axis %d given twice", a);
        seen[a] = 1;
        int64_t dim = x->dims[a], s = st[i], e = en[i], step = sp[i];
        if (step == 0) return op_fail(c, QK_EINVAL, "step 0 on axis %d", a);
        p->step[a] = step;
        if (dim < 0) {
            p->count[a] = -1;
            continue;
        }
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            p->count[a] = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            p->count[a] = s > e ? (s - e + (-step) - 1) / (-step) : 0;
        }
        p->start[a] = s;
    }
    return QK_OK;
}

static int slice_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    slice_plan p;
    int rc = slice_plan_make(c, x, &p);
    if (rc != QK_OK) return rc;
    set_shape(c->out[0], x->dtype, x->rank, p.count);
    return QK_OK;
}

static int slice_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    slice_plan p;
    int rc = slice_plan_make(c, x, &p);
    if (rc != QK_OK) return rc;
    if (xt_numel(y) == 0) return QK_OK;
    int64_t xs[XT_MAX_RANK], sstr[XT_MAX_RANK], off = 0;
    xt_strides(x, xs);
    for (int d = 0; d < x->rank; d++) {
        sstr[d] = xs[d] * p.step[d];
        off += p.start[d] * xs[d];
    }
    size_t es = dtype_size(x->dtype);
    strided_copy(y->data, (const char *)x->data + off * (int64_t)es, y->rank, y->dims, sstr, es);
    return QK_OK;
}

/* ---- Gather, GatherElements ---------------------------------------------------- */

static int gather_infer(op_ctx *c)
{
    const xt *x = c->in[0], *idx = c->in[1];
    if (x->rank < 0 || idx->rank < 0) return QK_UNKNOWN;
    if (idx->dtype && idx->dtype != DT_INT32 && idx->dtype != DT_INT64)
        return op_fail(c, QK_EINVAL, "indices must be int32 or int64, got %s", dtype_name(idx->dtype));
    int64_t a = node_attr_int(c->node, "axis", 0);
    int axis = axis_normalize(a, x->rank);
    if (axis < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, x->rank);
    int r = x->rank - 1 + idx->rank;
    if (r > XT_MAX_RANK) return op_fail(c, QK_ENOTSUP, "output rank %d exceeds %d", r, XT_MAX_RANK);
    int64_t dims[XT_MAX_RANK];
    int k = 0;
    for (int i = 0; i < axis; i++) dims[k++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->rank; i++) dims[k++] = x->dims[i];
    set_shape(c->out[0], x->dtype, r, dims);
    return QK_OK;
}

static int gather_run(op_ctx *c)
{
    const xt *x = c->in[0], *idx = c->in[1];
    xt *y = c->out[0];
    int axis = axis_normalize(node_attr_int(c->node, "axis", 0), x->rank);
    size_t es = dtype_size(x->dtype);
    int64_t n = xt_numel(idx), dim = x->dims[axis];
    int64_t outer = prod(x->dims, 0, axis);
    int64_t inner = prod(x->dims, axis + 1, x->rank) * (int64_t)es;
    if (xt_numel(y) == 0) return QK_OK;
    char *d = y->data;
    const char *s = x->data;
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < n; i++) {
            int64_t k = xt_get_i64(idx, i);
            if (k < 0) k += dim;
            if (k < 0 || k >= dim)
                return op_fail(c, QK_EINVAL, "index %lld out of range for axis %d of size %lld",
                               (long long)xt_get_i64(idx, i), axis, (long long)dim);
            memcpy(d, s + (o * dim + k) * inner, (size_t)inner);
            d += inner;
        }
    }
    return QK_OK;
}

static int gather_elements_infer(op_ctx *c)
{
    const xt *x = c->in[0], *idx = c->in[1];
    if (x->rank < 0 || idx->rank < 0) return QK_UNKNOWN;
    if (idx->dtype && idx->dtype != DT_INT32 && idx->dtype != DT_INT64)
        return op_fail(c, QK_EINVAL, "indices must be int32 or int64, got %s", dtype_name(idx->dtype));
    if (idx->rank != x->rank)
        return op_fail(c, QK_EINVAL, "indices rank %d differs from data rank %d", idx->rank, x->rank);
    int64_t a = node_attr_int(c->node, "axis", 0);
    if (axis_normalize(a, x->rank) < 0)
        return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)a, x->rank);
    set_shape(c->out[0], x->dtype, idx->rank, idx->dims);
    return QK_OK;
}

static int gather_elements_run(op_ctx *c)
{
    const xt *x = c->in[0], *idx = c->in[1];
    xt *y = c->out[0];
    int r = x->rank;
    int axis = axis_normalize(node_attr_int(c->node, "axis", 0), r);
    size_t es = dtype_size(x->dtype);
    int64_t n = xt_numel(idx), xs[XT_MAX_RANK], pos[XT_MAX_RANK] = {0};
    xt_strides(x, xs);
    for (int d = 0; d < r; d++)
        if (d != axis && idx->dims[d] > x->dims[d]) {
            char a[128], b[128];
            return op_fail(c, QK_EINVAL, "indices %s exceed data %s outside the axis",
                           xt_shape_str(idx, a, sizeof a), xt_shape_str(x, b, sizeof b));
        }
    int64_t dim = x->dims[axis];
    for (int64_t i = 0; i < n; i++) {
        int64_t k = xt_get_i64(idx, i);
        if (k < 0) k += dim;
        if (k < 0 || k >= dim)
            return op_fail(c, QK_EINVAL, "index %lld out of range for axis %d of size %lld",
                           (long long)xt_get_i64(idx, i), axis, (long long)dim);
        int64_t off = 0;
        for (int d = 0; d < r; d++) off += (d == axis ? k : pos[d]) * xs[d];
        copy_elem((char *)y->data + i * (int64_t)es, (const char *)x->data + off * (int64_t)es, es);
        for (int d = r - 1; d >= 0; d--) {
            if (++pos[d] < idx->dims[d]) break;
            pos[d] = 0;
        }
    }
    return QK_OK;
}

/* ---- Pad -------------------------------------------------------------------- */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_plan {
    int64_t begin[XT_MAX_RANK], end[XT_MAX_RANK];
    int mode;
} pad_plan;

static int pad_plan_make(op_ctx *c, const xt *x, pad_plan *p)
{
    const char *m = node_attr_str(c->node, "mode", "constant");
    if (!strcmp(m, "constant")) p->mode = PAD_CONSTANT;
    else if (!strcmp(m, "reflect")) p->mode = PAD_REFLECT;
    else if (!strcmp(m, "edge")) p->mode = PAD_EDGE;
    else if (!strcmp(m, "wrap")) p->mode = PAD_WRAP;
    else return op_fail(c, QK_ENOTSUP, "pad mode '%s' is not supported", m);
    int64_t pads[2 * XT_MAX_RANK], axes[XT_MAX_RANK];
    int np, na = -1, rc;
    if (op_has_input(c, 1)) {
        if ((rc = op_read_int_list(c, c->in[1], "pads", pads, 2 * XT_MAX_RANK, &np)) != QK_OK) return rc;
        if (op_has_input(c, 3) && (rc = op_read_int_list(c, c->in[3], "axes", axes, XT_MAX_RANK, &na)) != QK_OK) return rc;
    } else {
        /* Pad-1 called the attribute `paddings`, Pad-2 `pads`. */
        const int64_t *v;
        np = node_attr_ints(c->node, "pads", &v);
        if (np < 0) np = node_attr_ints(c->node, "paddings", &v);
        if (np < 0) return op_fail(c, QK_EINVAL, "no pads given");
        if (np > 2 * XT_MAX_RANK) return op_fail(c, QK_EINVAL, "too many pads");
        memcpy(pads, v, (size_t)np * sizeof *v);
    }
    if (x->rank < 0) return QK_UNKNOWN;
    if (na < 0) {
        na = x->rank;
        for (int i = 0; i < na; i++) axes[i] = i;
    }
    if (np != 2 * na)
        return op_fail(c, QK_EINVAL, "%d pads for %d axes (need %d)", np, na, 2 * na);
    for (int d = 0; d < x->rank; d++) p->begin[d] = p->end[d] = 0;
    for (int i = 0; i < na; i++) {
        int a = axis_normalize(axes[i], x->rank);
        if (a < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for rank %d", (long long)axes[i], x->rank);
        p->begin[a] = pads[i];
        p->end[a] = pads[i + na];
    }
    return QK_OK;
}

static int pad_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    pad_plan p;
    int rc = pad_plan_make(c, x, &p);
    if (rc != QK_OK) return rc;
    int64_t dims[XT_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] < 0) {
            dims[d] = -1;
            continue;
        }
        dims[d] = x->dims[d] + p.begin[d] + p.end[d];
        if (dims[d] < 0)
            return op_fail(c, QK_EINVAL, "pads %lld,%lld make axis %d of size %lld negative",
                           (long long)p.begin[d], (long long)p.end[d], d, (long long)x->dims[d]);
        if (p.mode != PAD_CONSTANT && x->dims[d] == 0 && dims[d] > 0)
            return op_fail(c, QK_EINVAL, "cannot %s-pad the empty axis %d",
                           p.mode == PAD_REFLECT ? "reflect" : p.mode == PAD_EDGE ? "edge" : "wrap", d);
    }
    set_shape(c->out[0], x->dtype, x->rank, dims);
    return QK_OK;
}

/* Source index for output index i of an axis of size dim padded by b in
 * front, or -1 for the constant. */
static int64_t pad_src(int64_t i, int64_t b, int64_t dim, int mode)
{
    int64_t s = i - b;
    if (s >= 0 && s < dim) return s;
    if (mode == PAD_CONSTANT) return -1;
    if (mode == PAD_EDGE) return s < 0 ? 0 : dim - 1;
    if (mode == PAD_WRAP) return (s % dim + dim) % dim;
    if (dim == 1) return 0;
    /* Reflect without repeating the edge; pads wider than the axis keep
     * bouncing like numpy's reflect. */
    int64_t period = 2 * (dim - 1);
    s %= period;
    if (s < 0) s += period;
    return s < dim ? s : period - s;
}

static int pad_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    pad_plan p;
    int rc = pad_plan_make(c, x, &p);
    if (rc != QK_OK) return rc;
    size_t es = dtype_size(x->dtype);
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    /* The constant, in the data's type: the `value` input from opset 11, the
     * float attribute before. */
    char cval[8] = {0};
    if (op_has_input(c, 2) && xt_numel(c->in[2]) > 0) {
        if (c->in[2]->dtype != x->dtype)
            return op_fail(c, QK_EINVAL, "constant_value is %s, data is %s", dtype_name(c->in[2]->dtype),
                           dtype_name(x->dtype));
        memcpy(cval, c->in[2]->data, es);
    } else if (!op_has_input(c, 1)) {
        xt v = {.dtype = x->dtype, .rank = 0, .data = cval};
        xt_set_f64(&v, 0, node_attr_float(c->node, "value", 0));
    }
    int r = x->rank;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QK_OK;
    }
    int64_t nmap = 0;
    for (int d = 0; d < r; d++) nmap += y->dims[d];
    int64_t *map = malloc((size_t)nmap * sizeof *map);
    if (!map) return op_fail(c, QK_ENOMEM, "out of memory");
    int64_t *m[XT_MAX_RANK], xs[XT_MAX_RANK];
    xt_strides(x, xs);
    int64_t at = 0;
    for (int d = 0; d < r; d++) {
        m[d] = map + at;
        for (int64_t i = 0; i < y->dims[d]; i++) m[d][i] = pad_src(i, p.begin[d], x->dims[d], p.mode);
        at += y->dims[d];
    }
    int64_t inner = y->dims[r - 1], rows = total / inner;
    int64_t idx[XT_MAX_RANK] = {0};
    const char *s = x->data;
    char *dst = y->data;
    const int64_t *ml = m[r - 1];
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0;
        int outside = 0;
        for (int d = 0; d < r - 1; d++) {
            int64_t k = m[d][idx[d]];
            if (k < 0) outside = 1;
            off += k * xs[d];
        }
        if (outside) {
            for (int64_t j = 0; j < inner; j++, dst += es) memcpy(dst, cval, es);
        } else {
            const char *sp = s + off * (int64_t)es;
            for (int64_t j = 0; j < inner; j++, dst += es) {
                int64_t k = ml[j];
                copy_elem(dst, k < 0 ? cval : sp + k * (int64_t)es, es);
            }
        }
        for (int d = r - 2; d >= 0; d--) {
            if (++idx[d] < y->dims[d]) break;
            idx[d] = 0;
        }
    }
    free(map);
    return QK_OK;
}

/* ---- Tile ------------------------------------------------------------------- */

static int tile_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    int64_t rep[XT_MAX_RANK];
    int n, rc;
    if (c->opset < 6 || c->n_in > 2)
        return op_fail(c, QK_ENOTSUP, "Tile-1 (tiles/axis inputs) is not supported");
    if ((rc = op_read_int_list(c, c->in[1], "repeats", rep, XT_MAX_RANK, &n)) != QK_OK) return rc;
    if (x->rank < 0) return QK_UNKNOWN;
    if (n != x->rank) return op_fail(c, QK_EINVAL, "%d repeats for rank %d", n, x->rank);
    int64_t dims[XT_MAX_RANK];
    for (int d = 0; d < n; d++) {
        if (rep[d] < 0) return op_fail(c, QK_EINVAL, "negative repeat %lld", (long long)rep[d]);
        dims[d] = x->dims[d] < 0 ? -1 : x->dims[d] * rep[d];
    }
    set_shape(c->out[0], x->dtype, n, dims);
    return QK_OK;
}

static int tile_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int r = x->rank;
    size_t es = dtype_size(x->dtype);
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    if (r == 0) {
        memcpy(y->data, x->data, es);
        return QK_OK;
    }
    int64_t xs[XT_MAX_RANK], idx[XT_MAX_RANK] = {0};
    xt_strides(x, xs);
    int64_t inner = y->dims[r - 1], xin = x->dims[r - 1] * (int64_t)es;
    int64_t rows = total / inner;
    char *d = y->data;
    for (int64_t row = 0; row < rows; row++) {
        int64_t off = 0;
        for (int k = 0; k < r - 1; k++) off += (idx[k] % x->dims[k]) * xs[k];
        const char *sp = (const char *)x->data + off * (int64_t)es;
        for (int64_t j = 0; j < inner; j += x->dims[r - 1], d += xin) memcpy(d, sp, (size_t)xin);
        for (int k = r - 2; k >= 0; k--) {
            if (++idx[k] < y->dims[k]) break;
            idx[k] = 0;
        }
    }
    return QK_OK;
}

/* ---- Trilu ------------------------------------------------------------------ */

static int same_shape_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    set_shape(c->out[0], x->dtype, x->rank, x->dims);
    return QK_OK;
}

static int trilu_infer(op_ctx *c)
{
    if (c->in[0]->rank >= 0 && c->in[0]->rank < 2)
        return op_fail(c, QK_EINVAL, "input must have rank >= 2, got %d", c->in[0]->rank);
    return same_shape_infer(c);
}

static int trilu_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int64_t total = xt_numel(y);
    if (total == 0) return QK_OK;
    int64_t k = 0;
    if (op_has_input(c, 1) && xt_numel(c->in[1]) > 0) k = xt_get_i64(c->in[1], 0);
    int upper = node_attr_int(c->node, "upper", 1) != 0;
    size_t es = dtype_size(x->dtype);
    int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
    int64_t mats = total / (rows * cols);
    const char *s = x->data;
    char *d = y->data;
    for (int64_t mtx = 0; mtx < mats; mtx++)
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++, s += es, d += es) {
                int keep = upper ? j - i >= k : j - i <= k;
                if (keep) copy_elem(d, s, es);
                else memset(d, 0, es);
            }
    return QK_OK;
}

/* ---- DepthToSpace, SpaceToDepth ----------------------------------------------- */

static int d2s_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->rank != 4) return op_fail(c, QK_EINVAL, "input must be 4-D, got rank %d", x->rank);
    int64_t b = node_attr_int(c->node, "blocksize", 0);
    if (b <= 0) return op_fail(c, QK_EINVAL, "blocksize must be positive");
    int64_t dims[4] = {x->dims[0], -1, x->dims[2] < 0 ? -1 : x->dims[2] * b, x->dims[3] < 0 ? -1 : x->dims[3] * b};
    if (x->dims[1] >= 0) {
        if (x->dims[1] % (b * b))
            return op_fail(c, QK_EINVAL, "channels %lld not divisible by blocksize^2 = %lld",
                           (long long)x->dims[1], (long long)(b * b));
        dims[1] = x->dims[1] / (b * b);
    }
    const char *m = node_attr_str(c->node, "mode", "DCR");
    if (strcmp(m, "DCR") && strcmp(m, "CRD")) return op_fail(c, QK_EINVAL, "unknown mode '%s'", m);
    set_shape(c->out[0], x->dtype, 4, dims);
    return QK_OK;
}

/* Both ops are a 6-D reshape + transpose; these build the source strides of
 * the output's 6-D view. */
static int d2s_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int64_t b = node_attr_int(c->node, "blocksize", 0);
    int64_t N = x->dims[0], C = y->dims[1], H = x->dims[2], W = x->dims[3];
    int crd = !strcmp(node_attr_str(c->node, "mode", "DCR"), "CRD");
    /* Output view [N, C, H, b, W, b]: element (n, c, h, i, w, j). */
    int64_t dims[6] = {N, C, H, b, W, b}, s[6];
    int64_t hw = H * W;
    s[0] = C * b * b * hw;
    s[2] = W;
    s[4] = 1;
    if (crd) {   /* input channel = c*b*b + i*b + j */
        s[1] = b * b * hw;
        s[3] = b * hw;
        s[5] = hw;
    } else {     /* DCR: input channel = i*b*C + j*C + c */
        s[1] = hw;
        s[3] = b * C * hw;
        s[5] = C * hw;
    }
    strided_copy(y->data, x->data, 6, dims, s, dtype_size(x->dtype));
    return QK_OK;
}

static int s2d_infer(op_ctx *c)
{
    const xt *x = c->in[0];
    if (x->rank < 0) return QK_UNKNOWN;
    if (x->rank != 4) return op_fail(c, QK_EINVAL, "input must be 4-D, got rank %d", x->rank);
    int64_t b = node_attr_int(c->node, "blocksize", 0);
    if (b <= 0) return op_fail(c, QK_EINVAL, "blocksize must be positive");
    int64_t dims[4] = {x->dims[0], x->dims[1] < 0 ? -1 : x->dims[1] * b * b, -1, -1};
    for (int d = 2; d < 4; d++) {
        if (x->dims[d] < 0) continue;
        if (x->dims[d] % b)
            return op_fail(c, QK_EINVAL, "spatial size %lld not divisible by blocksize %lld",
                           (long long)x->dims[d], (long long)b);
        dims[d] = x->dims[d] / b;
    }
    set_shape(c->out[0], x->dtype, 4, dims);
    return QK_OK;
}

static int s2d_run(op_ctx *c)
{
    const xt *x = c->in[0];
    xt *y = c->out[0];
    int64_t b = node_attr_int(c->node, "blocksize", 0);
    int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t Ho = H / b, Wo = W / b;
    /* Output [N, b, b, C, Ho, Wo] (channel = (i*b + j)*C + c) reads input
     * element (n, c, ho*b + i, wo*b + j). */
    int64_t dims[6] = {N, b, b, C, Ho, Wo};
    int64_t s[6] = {C * H * W, W, 1, H * W, b * W, b};
    strided_copy(y->data, x->data, 6, dims, s, dtype_size(x->dtype));
    return QK_OK;
}

/* ---- OneHot ----------------------------------------------------------------- */

static int onehot_axis(op_ctx *c, int rank, int *axis)
{
    int64_t a = node_attr_int(c->node, "axis", -1);
    *axis = axis_normalize(a, rank + 1);
    if (*axis < 0) return op_fail(c, QK_EINVAL, "axis %lld out of range for output rank %d", (long long)a, rank + 1);
    return QK_OK;
}

static int64_t onehot_depth(const xt *d)
{
    return d->dtype == DT_FLOAT || d->dtype == DT_DOUBLE ? (int64_t)xt_get_f64(d, 0) : xt_get_i64(d, 0);
}

static int onehot_infer(op_ctx *c)
{
    const xt *idx = c->in[0], *dep = c->in[1], *val = c->in[2];
    if (!idx->dtype || !dep->dtype || !val->dtype) return QK_UNKNOWN;
    if (!dtype_supported(val->dtype) || !dtype_supported(dep->dtype) || !dtype_supported(idx->dtype))
        return op_fail(c, QK_ENOTSUP, "OneHot with %s/%s/%s is not supported", dtype_name(idx->dtype),
                       dtype_name(dep->dtype), dtype_name(val->dtype));
    if (!dep->data) return QK_UNKNOWN;
    if (idx->rank < 0) return QK_UNKNOWN;
    if (xt_numel(dep) != 1) return op_fail(c, QK_EINVAL, "depth must have one element");
    if (val->rank >= 0 && xt_numel(val) != 2) return op_fail(c, QK_EINVAL, "values must have two elements");
    if (idx->rank + 1 > XT_MAX_RANK) return op_fail(c, QK_ENOTSUP, "output rank exceeds %d", XT_MAX_RANK);
    int axis;
    int rc = onehot_axis(c, idx->rank, &axis);
    if (rc != QK_OK) return rc;
    int64_t depth = onehot_depth(dep);
    if (depth <= 0) return op_fail(c, QK_EINVAL, "depth must be positive, got %lld", (long long)depth);
    int64_t dims[XT_MAX_RANK];
    for (int i = 0, j = 0; i <= idx->rank; i++) dims[i] = i == axis ? depth : idx->dims[j++];
    set_shape(c->out[0], val->dtype, idx->rank + 1, dims);
    return QK_OK;
}

static int onehot_run(op_ctx *c)
{
    const xt *idx = c->in[0], *val = c->in[2];
    xt *y = c->out[0];
    int axis;
    int rc = onehot_axis(c, idx->rank, &axis);
    if (rc != QK_OK) return rc;
    int64_t depth = y->dims[axis];
    size_t es = dtype_size(val->dtype);
    int64_t outer = prod(idx->dims, 0, axis), inner = prod(idx->dims, axis, idx->rank);
    const char *off = val->data, *on = (const char *)val->data + es;
    char *d = y->data;
    int fidx = idx->dtype == DT_FLOAT || idx->dtype == DT_DOUBLE;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < depth; k++)
            for (int64_t i = 0; i < inner; i++, d += es) {
                int64_t at = o * inner + i;
                int64_t v = fidx ? (int64_t)xt_get_f64(idx, at) : xt_get_i64(idx, at);
                if (v < 0) v += depth;
                memcpy(d, v == k ? on : off, es);
            }
    return QK_OK;
}

const op_def ops_layout[] = {
    {"Transpose", transpose_infer, transpose_run},
    {"Concat", concat_infer, concat_run},
    {"Split", split_infer, split_run},
    {"Slice", slice_infer, slice_run},
    {"Gather", gather_infer, gather_run},
    {"GatherElements", gather_elements_infer, gather_elements_run},
    {"Pad", pad_infer, pad_run},
    {"Tile", tile_infer, tile_run},
    {"Trilu", trilu_infer, trilu_run},
    {"DepthToSpace", d2s_infer, d2s_run},
    {"SpaceToDepth", s2d_infer, s2d_run},
    {"OneHot", onehot_infer, onehot_run},
};
const int ops_layout_count = sizeof ops_layout / sizeof ops_layout[0];
