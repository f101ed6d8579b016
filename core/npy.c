/* This file implements reading and writing NumPy .npy files (see npy.h).
 *
 * The .npy format is a 6-byte magic, a version, a header length, a header
 * that is the text of a Python dict literal ({'descr': '<f4',
 * 'fortran_order': False, 'shape': (2, 3), }) padded with spaces and a
 * newline, then the raw elements.  Users' scripts hand us such files, so
 * the reader trusts nothing: every length is checked against the file size
 * before anything is allocated, and every refusal names the file and says
 * why in one line.  The writer emits version 1.0 (what numpy itself writes
 * for any header under 64 KiB, which an 8-dimensional shape always is). */
#define _GNU_SOURCE /* madvise, sysconf under -std=gnu11 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"
#include "npy.h"

/* The element bytes are copied as they are, so the host must be
 * little-endian like the files we accept and write. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
/* numpy refuses headers over 10000 bytes by default; a header we could
 * accept (rank <= 8) is far shorter, so anything past this is garbage. */
#define MAX_HEADER_LEN (1u << 20)

/* descr type codes ("f4" after the byte-order mark) we can hold. */
static const struct { const char *code; int dt; } codes[] = {
    {"f4", DT_FLOAT}, {"f8", DT_DOUBLE}, {"i1", DT_INT8},  {"u1", DT_UINT8},
    {"i2", DT_INT16}, {"u2", DT_UINT16}, {"i4", DT_INT32}, {"u4", DT_UINT32},
    {"i8", DT_INT64}, {"u8", DT_UINT64}, {"b1", DT_BOOL},
};

/* ---- header parsing ------------------------------------------------------ */

/* A cursor over the header text.  Parse errors are written into err with
 * the file name, so callers just propagate the status. */
typedef struct {
    const char *s, *end;
    const char *path;
    qk_err *err;
} cur;

static void skip_ws(cur *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

static int bad(cur *c, const char *what)
{
    return qk_fail(c->err, QK_EINVAL, "%s: malformed .npy header: %s", c->path, what);
}

static int expect(cur *c, char ch, const char *what)
{
    skip_ws(c);
    if (c->s >= c->end || *c->s != ch) return bad(c, what);
    c->s++;
    return QK_OK;
}

/* Reads a quoted Python string ('...' or "...", no escapes: keys and
 * dtype codes never need them) into buf. */
static int parse_str(cur *c, char *buf, size_t len, const char *what)
{
    skip_ws(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return bad(c, what);
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (*c->s == '\\' || n + 1 >= len) return bad(c, what);
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return bad(c, "unterminated string");
    c->s++;
    buf[n] = '\0';
    return QK_OK;
}

static int parse_bool(cur *c, int *v)
{
    skip_ws(c);
    size_t left = (size_t)(c->end - c->s);
    if (left >= 4 && !memcmp(c->s, "True", 4)) { *v = 1; c->s += 4; return QK_OK; }
    if (left >= 5 && !memcmp(c->s, "False", 5)) { *v = 0; c->s += 5; return QK_OK; }
    return bad(c, "'fortran_order' is not True or False");
}

/* Reads a non-negative decimal integer, refusing values over INT64_MAX.
 * A trailing 'L' (written by numpy under Python 2) is accepted. */
static int parse_dim(cur *c, int64_t *v)
{
    skip_ws(c);
    if (c->s >= c->end || *c->s < '0' || *c->s > '9') {
        if (c->s < c->end && *c->s == '-')
            return qk_fail(c->err, QK_EINVAL, "%s: .npy shape has a negative dimension", c->path);
        return bad(c, "'shape' is not a tuple of integers");
    }
    int64_t x = 0;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
        int d = *c->s++ - '0';
        if (x > (INT64_MAX - d) / 10)
            return qk_fail(c->err, QK_EINVAL, "%s: .npy shape has a dimension too large to address", c->path);
        x = x * 10 + d;
    }
    if (c->s < c->end && (*c->s == 'L' || *c->s == 'l')) c->s++;
    *v = x;
    return QK_OK;
}

/* Python tuple syntax: (), (5,), (3, 4), (3, 4,).  "(5)" is an int in
 * Python, but a file saying so can only mean a 1-D shape; we accept it. */
static int parse_shape(cur *c, xt *t)
{
    int r;
    if ((r = expect(c, '(', "'shape' is not a tuple")) < 0) return r;
    t->rank = 0;
    for (;;) {
        skip_ws(c);
        if (c->s < c->end && *c->s == ')') { c->s++; return QK_OK; }
        if (t->rank >= XT_MAX_RANK)
            return qk_fail(c->err, QK_ENOTSUP, "%s: .npy array has more than %d dimensions",
                           c->path, XT_MAX_RANK);
        if ((r = parse_dim(c, &t->dims[t->rank])) < 0) return r;
        t->rank++;
        skip_ws(c);
        if (c->s < c->end && *c->s == ',') { c->s++; continue; }
        if (c->s < c->end && *c->s == ')') { c->s++; return QK_OK; }
        return bad(c, "'shape' is not a tuple of integers");
    }
}

/* Maps a descr string to a dtype, or fails saying why it is refused. */
static int parse_descr(cur *c, const char *d, int *dt)
{
    char order = d[0];
    const char *code = d + 1;
    if (order != '<' && order != '>' && order != '|' && order != '=') {
        order = '=';   /* numpy also reads a bare "f4" as native order */
        code = d;
    }
    if (code[0] == 'O')
        return qk_fail(c->err, QK_ENOTSUP, "%s: .npy holds Python objects (dtype '%s'), "
                       "which cannot be read without pickle", c->path, d);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(code, codes[i].code)) continue;
        /* Byte order only matters for multi-byte elements. */
        if (order == '>' && dtype_size(codes[i].dt) > 1)
            return qk_fail(c->err, QK_ENOTSUP, "%s: .npy array is big-endian (dtype '%s'); "
                           "convert it with arr.astype(arr.dtype.newbyteorder('<'))", c->path, d);
        *dt = codes[i].dt;
        return QK_OK;
    }
    return qk_fail(c->err, QK_ENOTSUP, "%s: .npy dtype '%s' is not supported (supported: "
                   "float32, float64, int8..int64, uint8..uint64, bool)", c->path, d);
}

/* Parses the header dict into t's dtype and shape. */
static int parse_header(const char *path, const char *h, size_t len, xt *t, qk_err *err)
{
    cur c = {h, h + len, path, err};
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, r;
    char key[32], descr[64];

    if ((r = expect(&c, '{', "does not start with '{'")) < 0) return r;
    for (;;) {
        skip_ws(&c);
        if (c.s < c.end && *c.s == '}') { c.s++; break; }
        if ((r = parse_str(&c, key, sizeof key, "expected a quoted key")) < 0) return r;
        if ((r = expect(&c, ':', "expected ':' after a key")) < 0) return r;
        if (!strcmp(key, "descr")) {
            skip_ws(&c);
            if (c.s < c.end && *c.s == '[')
                return qk_fail(err, QK_ENOTSUP, "%s: .npy holds a structured array; "
                               "only plain numeric arrays are supported", path);
            if (have_descr) return bad(&c, "duplicate key 'descr'");
            if ((r = parse_str(&c, descr, sizeof descr, "'descr' is not a dtype string")) < 0)
                return r;
            if ((r = parse_descr(&c, descr, &t->dtype)) < 0) return r;
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran) return bad(&c, "duplicate key 'fortran_order'");
            if ((r = parse_bool(&c, &fortran)) < 0) return r;
            have_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            if (have_shape) return bad(&c, "duplicate key 'shape'");
            if ((r = parse_shape(&c, t)) < 0) return r;
            have_shape = 1;
        } else {
            return qk_fail(err, QK_EINVAL, "%s: malformed .npy header: unknown key '%s'", path, key);
        }
        skip_ws(&c);
        if (c.s < c.end && *c.s == ',') { c.s++; continue; }
        if (c.s < c.end && *c.s == '}') { c.s++; break; }
        return bad(&c, "expected ',' or '}' after a value");
    }
    skip_ws(&c);
    if (c.s != c.end) return bad(&c, "text after the closing '}'");
    if (!have_descr || !have_fortran || !have_shape)
        return bad(&c, !have_descr ? "missing 'descr'" : !have_fortran ? "missing 'fortran_order'"
                                                                       : "missing 'shape'");
    /* A Fortran-ordered array of rank <= 1 has the same bytes as a C one. */
    if (fortran && t->rank > 1)
        return qk_fail(err, QK_ENOTSUP, "%s: .npy array is in Fortran order; "
                       "save it with np.save(f, np.ascontiguousarray(arr))", path);
    return QK_OK;
}

/* ---- reading ------------------------------------------------------------- */

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads exactly n bytes; returns 0 on success, -1 on a short read. */
static int read_all(FILE *f, void *buf, size_t n) { return fread(buf, 1, n, f) == n ? 0 : -1; }

/* Reads and checks the header of the open file f: on success *out holds
 * dtype and shape (no data) and *data_off, *nbytes where the data lies. */
static int read_header(FILE *f, const char *path, xt *t, int64_t *data_off_out, int64_t *nbytes_out, qk_err *err)
{
    xt out;
    memset(&out, 0, sizeof out);

    int r = QK_OK;
    char *header = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        r = qk_fail(err, QK_EIO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        r = qk_fail(err, QK_EIO, "%s: not a regular file", path);
        goto done;
    }
    int64_t fsize = (int64_t)st.st_size;

    unsigned char pre[12];
    if (fsize == 0) {
        r = qk_fail(err, QK_EINVAL, "%s: empty file, not a .npy file", path);
        goto done;
    }
    if (fsize < 10 || read_all(f, pre, 8) != 0 || memcmp(pre, MAGIC, MAGIC_LEN) != 0) {
        r = qk_fail(err, QK_EINVAL, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    unsigned major = pre[6], minor = pre[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        r = qk_fail(err, QK_ENOTSUP, "%s: unsupported .npy format version %u.%u "
                    "(supported: 1.0, 2.0, 3.0)", path, major, minor);
        goto done;
    }
    size_t lenbytes = major == 1 ? 2 : 4;
    if (read_all(f, pre + 8, lenbytes) != 0) {
        r = qk_fail(err, QK_EINVAL, "%s: truncated .npy file (header length missing)", path);
        goto done;
    }
    uint32_t hlen = major == 1 ? le16(pre + 8) : le32(pre + 8);
    int64_t data_off = 8 + (int64_t)lenbytes + hlen;
    if (hlen > MAX_HEADER_LEN) {
        r = qk_fail(err, QK_EINVAL, "%s: malformed .npy header: length %u is absurd", path, hlen);
        goto done;
    }
    if (data_off > fsize) {
        r = qk_fail(err, QK_EINVAL, "%s: truncated .npy file (header of %u bytes, file has %lld)",
                    path, hlen, (long long)fsize);
        goto done;
    }
    header = malloc(hlen + 1);
    if (!header) {
        r = qk_fail(err, QK_ENOMEM, "%s: out of memory reading the .npy header", path);
        goto done;
    }
    if (read_all(f, header, hlen) != 0) {
        r = qk_fail(err, QK_EIO, "%s: read error in the .npy header", path);
        goto done;
    }
    header[hlen] = '\0';
    if (memchr(header, '\0', hlen)) {
        r = qk_fail(err, QK_EINVAL, "%s: malformed .npy header: contains a NUL byte", path);
        goto done;
    }
    if ((r = parse_header(path, header, hlen, &out, err)) < 0) goto done;

    /* Element count and byte size, refusing shapes whose size overflows
     * before comparing with what the file holds. */
    int64_t esize = (int64_t)dtype_size(out.dtype), n = 1;
    for (int i = 0; i < out.rank; i++) {
        if (out.dims[i] != 0 && n > INT64_MAX / out.dims[i]) {
            char sb[256];
            r = qk_fail(err, QK_EINVAL, "%s: .npy shape %s is too large (element count overflows)",
                        path, xt_shape_str(&out, sb, sizeof sb));
            goto done;
        }
        n *= out.dims[i];
    }
    if (n > INT64_MAX / esize || (uint64_t)(n * esize) > (uint64_t)SIZE_MAX) {
        char sb[256];
        r = qk_fail(err, QK_EINVAL, "%s: .npy shape %s is too large (byte size overflows)",
                    path, xt_shape_str(&out, sb, sizeof sb));
        goto done;
    }
    int64_t nbytes = n * esize, have = fsize - data_off;
    if (have < nbytes) {
        char sb[256];
        r = qk_fail(err, QK_EINVAL, "%s: truncated .npy file: shape %s of %s needs %lld data bytes, "
                    "file has %lld", path, xt_shape_str(&out, sb, sizeof sb), dtype_name(out.dtype),
                    (long long)nbytes, (long long)have);
        goto done;
    }
    if (have > nbytes) {
        r = qk_fail(err, QK_EINVAL, "%s: .npy file has %lld bytes after the array data "
                    "(corrupt or not written by np.save)", path, (long long)(have - nbytes));
        goto done;
    }
    *t = out;
    *data_off_out = data_off;
    *nbytes_out = nbytes;
done:
    free(header);
    return r;
}

int npy_read(const char *path, xt *t, qk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return qk_fail(err, QK_EIO, "%s: cannot open: %s", path, strerror(errno));
    xt out;
    int64_t data_off = 0, nbytes = 0;
    int r = read_header(f, path, &out, &data_off, &nbytes, err);
    out.data = NULL;
    if (r < 0) goto done;
    /* At least one byte, so an empty array still has non-NULL data
     * (NULL means "value unknown" to the executor). */
    out.data = malloc(nbytes ? (size_t)nbytes : 1);
    if (!out.data) {
        r = qk_fail(err, QK_ENOMEM, "%s: out of memory for %lld bytes of .npy data", path,
                    (long long)nbytes);
        goto done;
    }
    if (read_all(f, out.data, (size_t)nbytes) != 0) {
        r = qk_fail(err, QK_EIO, "%s: read error in the .npy data%s", path,
                    ferror(f) ? "" : " (file shrank while reading)");
        goto done;
    }
    if (out.dtype == DT_BOOL) {   /* the executor relies on bools being 0 or 1 */
        unsigned char *b = out.data;
        for (int64_t i = 0; i < nbytes; i++) b[i] = b[i] != 0;
    }
    *t = out;
    out.data = NULL;
done:
    free(out.data);
    fclose(f);
    return r;
}

int npy_map(const char *path, xt *t, npy_mapping *m, qk_err *err)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return qk_fail(err, QK_EIO, "%s: cannot open: %s", path, strerror(errno));
    xt out;
    int64_t data_off = 0, nbytes = 0;
    int r = read_header(f, path, &out, &data_off, &nbytes, err);
    if (r == QK_OK && (out.dtype == DT_BOOL || nbytes == 0)) {
        fclose(f);
        return npy_read(path, t, err);   /* bools are normalized; nothing to map */
    }
    if (r == QK_OK) {
        size_t len = (size_t)(data_off + nbytes);
        void *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fileno(f), 0);
        if (base == MAP_FAILED) {
            fclose(f);
            return npy_read(path, t, err);   /* e.g. a pipe or a file system without mmap */
        }
        m->base = base;
        m->len = len;
        out.data = (char *)base + data_off;
        *t = out;
    }
    fclose(f);
    return r;
}

void npy_unmap(npy_mapping *m)
{
    if (m->base) munmap(m->base, m->len);
    memset(m, 0, sizeof *m);
}

void npy_release(const npy_mapping *m, const void *p, size_t n)
{
    if (!m->base || !n) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    /* Rounding the start down is safe: callers release in sample order, so
     * what precedes p is done with; the page holding the end of the range
     * may still hold the next samples and stays. */
    uintptr_t lo = (uintptr_t)p / page * page, hi = ((uintptr_t)p + n) / page * page;
    if (lo < (uintptr_t)m->base) lo = (uintptr_t)m->base;
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* ---- writing ------------------------------------------------------------- */

static const char *descr_of(int dt)
{
    switch (dt) {
    case DT_FLOAT: return "<f4";
    case DT_DOUBLE: return "<f8";
    case DT_INT8: return "|i1";
    case DT_UINT8: return "|u1";
    case DT_INT16: return "<i2";
    case DT_UINT16: return "<u2";
    case DT_INT32: return "<i4";
    case DT_UINT32: return "<u4";
    case DT_INT64: return "<i8";
    case DT_UINT64: return "<u8";
    case DT_BOOL: return "|b1";
    default: return NULL;
    }
}

int npy_write(const char *path, const xt *t, qk_err *err)
{
    const char *descr = descr_of(t->dtype);
    if (!descr)
        return qk_fail(err, QK_ENOTSUP, "%s: cannot write a %s tensor to .npy", path,
                       dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > XT_MAX_RANK || !xt_shape_known(t))
        return qk_fail(err, QK_EINVAL, "%s: cannot write a tensor of unknown shape to .npy", path);
    int64_t nbytes = xt_nbytes(t);
    if (nbytes > 0 && !t->data)
        return qk_fail(err, QK_EINVAL, "%s: cannot write a tensor without data to .npy", path);

    /* Header: magic, version 1.0, little-endian length, dict padded with
     * spaces to a multiple of 64 bytes overall and ended by '\n'. */
    char h[512];
    int o = snprintf(h + 10, sizeof h - 10, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr);
    for (int i = 0; i < t->rank; i++)
        o += snprintf(h + 10 + o, sizeof h - 10 - (size_t)o, "%s%lld", i ? ", " : "",
                      (long long)t->dims[i]);
    o += snprintf(h + 10 + o, sizeof h - 10 - (size_t)o, "%s), }", t->rank == 1 ? "," : "");
    size_t total = ((size_t)(10 + o + 1) + 63) / 64 * 64;   /* +1 for '\n' */
    memset(h + 10 + o, ' ', total - 10 - (size_t)o - 1);
    h[total - 1] = '\n';
    memcpy(h, MAGIC, MAGIC_LEN);
    h[6] = 1;
    h[7] = 0;
    h[8] = (char)((total - 10) & 0xff);
    h[9] = (char)((total - 10) >> 8);

    atomic_file af;
    int r = atomic_open(&af, path, err);
    if (r) return r;
    if (fwrite(h, 1, total, af.f) != total || fwrite(t->data, 1, (size_t)nbytes, af.f) != (size_t)nbytes) {
        r = qk_fail(err, QK_EIO, "%s: write failed: %s", path, strerror(errno));
        atomic_abort(&af);
        return r;
    }
    return atomic_commit(&af, err);
}
