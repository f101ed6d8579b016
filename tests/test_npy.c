/* This file implements the tests of core/npy.c: round trips through
 * npy_write/npy_read for every dtype and several shapes, reading files
 * written by numpy (format 1.0, 2.0, 3.0; committed under tests/data/npy),
 * the header syntax variants numpy has produced over the years, and every
 * refusal (bad magic, empty, truncated, Fortran order, big-endian, object
 * and structured dtypes, absurd shapes, trailing bytes) including that the
 * message names the file.  Files are made in a fresh temporary folder per
 * test. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "npy.h"
#include "suites.h"

static char dir[256];

static void setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qk_npy_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Path of a file in the test folder (static buffer: one at a time). */
static const char *tpath(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static const char *data_dir(void)
{
#ifdef TEST_DATA_DIR
    return TEST_DATA_DIR;
#else
    const char *d = getenv("TEST_DATA_DIR");
    return d && *d ? d : "tests/data";
#endif
}

static const char *fixture(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/npy/%s", data_dir(), name);
    return p;
}

static int count_files(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Writes a version 1.0 file with the given header dict (padded like numpy
 * pads) followed by n data bytes. */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data, size_t n)
{
    unsigned char buf[4096];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = (pre + dl + 1 + 63) / 64 * 64;
    ck_assert_uint_le(total + n, sizeof buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    size_t hl = total - pre;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    if (major != 1) buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', total - pre - dl - 1);
    buf[total - 1] = '\n';
    if (n) memcpy(buf + total, data, n);
    write_bytes(path, buf, total + n);
}

/* Reads path expecting failure; checks the code and that the message
 * names the file and contains `needle`. */
static void expect_refusal(const char *path, int code, const char *needle)
{
    xt t;
    qk_err err = {0, ""};
    memset(&t, 0, sizeof t);
    int r = npy_read(path, &t, &err);
    ck_assert_msg(r == code, "%s: expected %d, got %d (%s)", path, code, r, err.msg);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message lacks '%s': %s", needle, err.msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_ptr_null(t.data);
}

static void read_ok(const char *path, xt *t)
{
    qk_err err = {0, ""};
    memset(t, 0, sizeof *t);
    int r = npy_read(path, t, &err);
    ck_assert_msg(r == QK_OK, "%s: %s", path, err.msg);
    ck_assert_ptr_nonnull(t->data);
}

/* ---- round trips --------------------------------------------------------- */

START_TEST(test_roundtrip_all_dtypes_and_shapes)
{
    static const int dts[] = {DT_FLOAT, DT_DOUBLE, DT_INT8, DT_UINT8, DT_INT16, DT_UINT16,
                              DT_INT32, DT_UINT32, DT_INT64, DT_UINT64, DT_BOOL};
    static const struct { int rank; int64_t dims[XT_MAX_RANK]; } shapes[] = {
        {0, {0}}, {1, {5}}, {2, {2, 3}}, {2, {0, 3}}, {4, {1, 3, 2, 2}},
        {8, {1, 2, 1, 2, 1, 2, 1, 3}},
    };
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            xt t, u;
            qk_err err = {0, ""};
            memset(&t, 0, sizeof t);
            t.dtype = dts[d];
            t.rank = shapes[s].rank;
            memcpy(t.dims, shapes[s].dims, sizeof t.dims);
            int64_t n = xt_numel(&t), nb = xt_nbytes(&t);
            t.data = malloc(nb ? (size_t)nb : 1);
            for (int64_t i = 0; i < n; i++) xt_set_i64(&t, i, (i * 37 + 11) % 101 - 50);
            ck_assert_int_eq(npy_write(tpath("rt.npy"), &t, &err), QK_OK);
            read_ok(tpath("rt.npy"), &u);
            ck_assert_int_eq(u.dtype, t.dtype);
            ck_assert_int_eq(u.rank, t.rank);
            for (int i = 0; i < t.rank; i++) ck_assert_int_eq(u.dims[i], t.dims[i]);
            ck_assert_int_eq(memcmp(u.data, t.data, (size_t)nb), 0);
            free(t.data);
            free(u.data);
        }
    }
    ck_assert_int_eq(count_files(), 1); /* no temporary left behind */
}
END_TEST

START_TEST(test_roundtrip_float_values_exact)
{
    float v[] = {0.0f, -0.0f, 1.0f / 3.0f, 3.4028235e38f, 1e-45f, -7.25f};
    xt t = {DT_FLOAT, 1, {6}, v}, u;
    qk_err err = {0, ""};
    ck_assert_int_eq(npy_write(tpath("f.npy"), &t, &err), QK_OK);
    read_ok(tpath("f.npy"), &u);
    ck_assert_int_eq(memcmp(u.data, v, sizeof v), 0);
    free(u.data);
}
END_TEST

START_TEST(test_write_header_is_numpy_v1)
{
    int64_t v[3] = {1, 2, 3};
    xt t = {DT_INT64, 1, {3}, v};
    qk_err err = {0, ""};
    ck_assert_int_eq(npy_write(tpath("h.npy"), &t, &err), QK_OK);
    FILE *f = fopen(tpath("h.npy"), "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert_int_eq(memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
    size_t hl = buf[8] | (size_t)buf[9] << 8;
    ck_assert_uint_eq((10 + hl) % 64, 0);
    ck_assert_uint_eq(n, 10 + hl + sizeof v);
    ck_assert_int_eq(buf[10 + hl - 1], '\n');
    ck_assert_ptr_nonnull(memmem(buf, n, "'shape': (3,)", 13));
    ck_assert_ptr_nonnull(memmem(buf, n, "'descr': '<i8'", 14));
}
END_TEST

START_TEST(test_write_replaces_existing_file)
{
    write_bytes(tpath("x.npy"), "old contents", 12);
    uint8_t v[2] = {7, 9};
    xt t = {DT_UINT8, 1, {2}, v}, u;
    qk_err err = {0, ""};
    ck_assert_int_eq(npy_write(tpath("x.npy"), &t, &err), QK_OK);
    read_ok(tpath("x.npy"), &u);
    ck_assert_int_eq(((uint8_t *)u.data)[1], 9);
    free(u.data);
    ck_assert_int_eq(count_files(), 1);
}
END_TEST

START_TEST(test_write_refusals)
{
    qk_err err = {0, ""};
    float v[2] = {1, 2};
    xt t = {DT_STRING, 1, {2}, v};
    ck_assert_int_eq(npy_write(tpath("s.npy"), &t, &err), QK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(err.msg, "s.npy"));
    xt f16 = {DT_FLOAT16, 1, {2}, v};
    ck_assert_int_eq(npy_write(tpath("s.npy"), &f16, &err), QK_ENOTSUP);
    xt unk = {DT_FLOAT, 2, {-1, 2}, v};
    ck_assert_int_eq(npy_write(tpath("s.npy"), &unk, &err), QK_EINVAL);
    xt nodata = {DT_FLOAT, 1, {2}, NULL};
    ck_assert_int_eq(npy_write(tpath("s.npy"), &nodata, &err), QK_EINVAL);
    ck_assert_int_eq(count_files(), 0);
}
END_TEST

START_TEST(test_write_missing_folder_fails_cleanly)
{
    float v[1] = {1};
    xt t = {DT_FLOAT, 1, {1}, v};
    qk_err err = {0, ""};
    const char *p = tpath("no/such/dir/out.npy");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    ck_assert_int_eq(npy_write(path, &t, &err), QK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(count_files(), 0);
}
END_TEST

START_TEST(test_write_into_target_that_is_a_folder_leaves_no_temp)
{
    /* rename() onto a non-empty directory fails after the data is
     * written: the temporary must be removed. */
    char sub[512], inner[600];
    snprintf(sub, sizeof sub, "%s", tpath("d.npy"));
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    write_bytes(inner, "x", 1);
    float v[1] = {1};
    xt t = {DT_FLOAT, 1, {1}, v};
    qk_err err = {0, ""};
    ck_assert_int_eq(npy_write(sub, &t, &err), QK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "rename"));
    ck_assert_int_eq(count_files(), 1);   /* only d.npy/ */
    unlink(inner);
    rmdir(sub);
}
END_TEST

/* ---- files written by numpy ---------------------------------------------- */

START_TEST(test_read_numpy_fixtures)
{
    xt t;
    read_ok(fixture("f4_2x3_v1.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_FLOAT);
    ck_assert_int_eq(t.rank, 2);
    ck_assert_int_eq(t.dims[0], 2);
    ck_assert_int_eq(t.dims[1], 3);
    ck_assert_float_eq(((float *)t.data)[5], 1.25f);
    free(t.data);

    read_ok(fixture("i8_4_v2.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_INT64);
    ck_assert_int_eq(t.rank, 1);
    ck_assert_int_eq(t.dims[0], 4);
    ck_assert_int_eq(((int64_t *)t.data)[0], -3);
    ck_assert_int_eq(((int64_t *)t.data)[3], (int64_t)1 << 40);
    free(t.data);

    read_ok(fixture("u2_2x2_v3.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_UINT16);
    ck_assert_int_eq(((uint16_t *)t.data)[1], 65535);
    ck_assert_int_eq(((uint16_t *)t.data)[2], 256);
    free(t.data);

    read_ok(fixture("f8_scalar.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_DOUBLE);
    ck_assert_int_eq(t.rank, 0);
    ck_assert_int_eq(xt_numel(&t), 1);
    ck_assert_double_eq(((double *)t.data)[0], 2.5);
    free(t.data);

    read_ok(fixture("b1_5.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_BOOL);
    ck_assert_int_eq(t.dims[0], 5);
    ck_assert_int_eq(memcmp(t.data, "\1\0\1\1\0", 5), 0);
    free(t.data);
}
END_TEST

START_TEST(test_refuse_numpy_fixtures)
{
    expect_refusal(fixture("f4_big_endian.npy"), QK_ENOTSUP, "big-endian");
    expect_refusal(fixture("f4_fortran.npy"), QK_ENOTSUP, "Fortran");
    expect_refusal(fixture("object.npy"), QK_ENOTSUP, "object");
}
END_TEST

/* ---- header syntax variants ---------------------------------------------- */

START_TEST(test_header_variants_accepted)
{
    float v[6] = {1, 2, 3, 4, 5, 6};
    static const char *dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3,)}",
        "{'shape': (2L, 3L), 'fortran_order': False, 'descr': '<f4'}",
        "{ 'fortran_order' : False , 'descr' : 'f4' , 'shape' : ( 2 , 3 ) , }",
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        xt t;
        write_npy_raw(tpath("v.npy"), 1, dicts[i], v, sizeof v);
        read_ok(tpath("v.npy"), &t);
        ck_assert_msg(t.dtype == DT_FLOAT && t.rank == 2 && t.dims[0] == 2 && t.dims[1] == 3,
                      "header %s", dicts[i]);
        ck_assert_int_eq(memcmp(t.data, v, sizeof v), 0);
        free(t.data);
    }
}
END_TEST

START_TEST(test_header_shapes)
{
    xt t;
    float v[5] = {0};
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", v, 20);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(t.rank, 1);
    ck_assert_int_eq(t.dims[0], 5);
    free(t.data);
    /* "(5)" is not a tuple in Python, but can only mean one thing. */
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5), }", v, 20);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(t.rank, 1);
    free(t.data);
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", v, 4);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(t.rank, 0);
    free(t.data);
    /* Empty array: no data bytes, yet a non-NULL buffer. */
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }", v, 0);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(t.rank, 2);
    ck_assert_int_eq(xt_numel(&t), 0);
    free(t.data);
    /* A huge dimension times zero is an empty array, not an overflow. */
    write_npy_raw(tpath("a.npy"), 1,
                  "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 0), }", v, 0);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(xt_numel(&t), 0);
    free(t.data);
    /* Fortran order is harmless for rank <= 1. */
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (5,), }", v, 20);
    read_ok(tpath("a.npy"), &t);
    free(t.data);
    /* One-byte types may carry any byte-order mark. */
    write_npy_raw(tpath("a.npy"), 1, "{'descr': '>u1', 'fortran_order': False, 'shape': (3,), }", v, 3);
    read_ok(tpath("a.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_UINT8);
    free(t.data);
}
END_TEST

START_TEST(test_handmade_v2_v3)
{
    int32_t v[3] = {-1, 0, 1 << 30};
    xt t;
    write_npy_raw(tpath("v2.npy"), 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", v, sizeof v);
    read_ok(tpath("v2.npy"), &t);
    ck_assert_int_eq(t.dtype, DT_INT32);
    ck_assert_int_eq(memcmp(t.data, v, sizeof v), 0);
    free(t.data);
    write_npy_raw(tpath("v3.npy"), 3, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", v, sizeof v);
    read_ok(tpath("v3.npy"), &t);
    ck_assert_int_eq(memcmp(t.data, v, sizeof v), 0);
    free(t.data);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

START_TEST(test_refuse_empty_file)
{
    write_bytes(tpath("e.npy"), "", 0);
    expect_refusal(tpath("e.npy"), QK_EINVAL, "empty");
}
END_TEST

START_TEST(test_refuse_bad_magic)
{
    write_bytes(tpath("m.npy"), "PK\3\4 this is a zip, not an npy file", 36);
    expect_refusal(tpath("m.npy"), QK_EINVAL, "bad magic");
    write_bytes(tpath("m.npy"), "\x93NUM", 4);
    expect_refusal(tpath("m.npy"), QK_EINVAL, "bad magic");
}
END_TEST

START_TEST(test_refuse_missing_file)
{
    expect_refusal(tpath("absent.npy"), QK_EIO, "cannot open");
}
END_TEST

START_TEST(test_refuse_truncated_data)
{
    float v[6] = {0};
    write_npy_raw(tpath("t.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 23);
    expect_refusal(tpath("t.npy"), QK_EINVAL, "truncated");
    write_npy_raw(tpath("t.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", v, 0);
    expect_refusal(tpath("t.npy"), QK_EINVAL, "truncated");
}
END_TEST

START_TEST(test_refuse_truncated_header)
{
    unsigned char buf[40];
    static const char part[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortr";
    memcpy(buf, part, sizeof part - 1);
    write_bytes(tpath("t.npy"), buf, sizeof part - 1);
    expect_refusal(tpath("t.npy"), QK_EINVAL, "truncated");
    memcpy(buf, "\x93NUMPY\x02\x00\x76\x00", 10);   /* v2 needs 4 length bytes */
    write_bytes(tpath("t.npy"), buf, 10);
    expect_refusal(tpath("t.npy"), QK_EINVAL, "truncated");
}
END_TEST

START_TEST(test_refuse_trailing_bytes)
{
    float v[4] = {0};
    write_npy_raw(tpath("t.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", v, 16);
    expect_refusal(tpath("t.npy"), QK_EINVAL, "after the array data");
}
END_TEST

START_TEST(test_refuse_fortran_order)
{
    float v[6] = {0};
    write_npy_raw(tpath("f.npy"), 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", v, sizeof v);
    expect_refusal(tpath("f.npy"), QK_ENOTSUP, "Fortran order");
}
END_TEST

START_TEST(test_refuse_big_endian)
{
    float v[2] = {0};
    write_npy_raw(tpath("b.npy"), 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", v, sizeof v);
    expect_refusal(tpath("b.npy"), QK_ENOTSUP, "big-endian");
    write_npy_raw(tpath("b.npy"), 1, "{'descr': '>i8', 'fortran_order': False, 'shape': (1,), }", v, 8);
    expect_refusal(tpath("b.npy"), QK_ENOTSUP, "big-endian");
}
END_TEST

START_TEST(test_refuse_unsupported_dtypes)
{
    char v[16] = {0};
    write_npy_raw(tpath("d.npy"), 1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", v, 16);
    expect_refusal(tpath("d.npy"), QK_ENOTSUP, "objects");
    write_npy_raw(tpath("d.npy"), 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", v, 4);
    expect_refusal(tpath("d.npy"), QK_ENOTSUP, "not supported");
    write_npy_raw(tpath("d.npy"), 1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", v, 12);
    expect_refusal(tpath("d.npy"), QK_ENOTSUP, "not supported");
    write_npy_raw(tpath("d.npy"), 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", v, 8);
    expect_refusal(tpath("d.npy"), QK_ENOTSUP, "not supported");
    write_npy_raw(tpath("d.npy"), 1,
                  "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", v, 8);
    expect_refusal(tpath("d.npy"), QK_ENOTSUP, "structured");
}
END_TEST

START_TEST(test_refuse_absurd_shapes)
{
    char v[8] = {0};
    /* element count overflows int64 */
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (4294967296, 4294967296), }", v, 8);
    expect_refusal(tpath("s.npy"), QK_EINVAL, "too large");
    /* byte size overflows although the count does not */
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f8', 'fortran_order': False, "
                  "'shape': (4611686018427387904,), }", v, 8);
    expect_refusal(tpath("s.npy"), QK_EINVAL, "too large");
    /* a dimension that does not fit in int64 */
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (99999999999999999999,), }", v, 8);
    expect_refusal(tpath("s.npy"), QK_EINVAL, "too large");
    /* large but representable: refused as truncated before any allocation */
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (100000, 100000, 100000), }", v, 8);
    expect_refusal(tpath("s.npy"), QK_EINVAL, "truncated");
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", v, 4);
    expect_refusal(tpath("s.npy"), QK_EINVAL, "negative");
    write_npy_raw(tpath("s.npy"), 1, "{'descr': '<f4', 'fortran_order': False, "
                  "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", v, 4);
    expect_refusal(tpath("s.npy"), QK_ENOTSUP, "dimensions");
}
END_TEST

START_TEST(test_refuse_malformed_headers)
{
    char v[4] = {0};
    static const struct { const char *dict; const char *needle; } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False}", "missing 'shape'"},
        {"{'fortran_order': False, 'shape': (1,)}", "missing 'descr'"},
        {"{'descr': '<f4', 'shape': (1,)}", "missing 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unknown key"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (1,)}", "duplicate"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", "tuple of integers"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after the closing"},
        {"'descr': '<f4'", "start with '{'"},
        {"{'descr: '<f4', 'fortran_order': False, 'shape': (1,)}", "malformed"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", "expected ','"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_npy_raw(tpath("h.npy"), 1, cases[i].dict, v, 4);
        expect_refusal(tpath("h.npy"), QK_EINVAL, cases[i].needle);
    }
}
END_TEST

START_TEST(test_refuse_unknown_version)
{
    float v[1] = {0};
    write_npy_raw(tpath("v.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", v, 4);
    FILE *f = fopen(tpath("v.npy"), "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 6, SEEK_SET);
    fputc(4, f);
    fclose(f);
    expect_refusal(tpath("v.npy"), QK_ENOTSUP, "version 4.0");
}
END_TEST

START_TEST(test_refuse_null_in_header)
{
    char v[4] = {0};
    write_npy_raw(tpath("n.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", v, 4);
    FILE *f = fopen(tpath("n.npy"), "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 20, SEEK_SET);   /* inside "'descr'" */
    fputc(0, f);
    fclose(f);
    expect_refusal(tpath("n.npy"), QK_EINVAL, "NUL");
}
END_TEST

Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_roundtrip_all_dtypes_and_shapes);
    tcase_add_test(tc, test_roundtrip_float_values_exact);
    tcase_add_test(tc, test_write_header_is_numpy_v1);
    tcase_add_test(tc, test_write_replaces_existing_file);
    tcase_add_test(tc, test_write_refusals);
    tcase_add_test(tc, test_write_missing_folder_fails_cleanly);
    tcase_add_test(tc, test_write_into_target_that_is_a_folder_leaves_no_temp);
    tcase_add_test(tc, test_read_numpy_fixtures);
    tcase_add_test(tc, test_refuse_numpy_fixtures);
    tcase_add_test(tc, test_header_variants_accepted);
    tcase_add_test(tc, test_header_shapes);
    tcase_add_test(tc, test_handmade_v2_v3);
    tcase_add_test(tc, test_refuse_empty_file);
    tcase_add_test(tc, test_refuse_bad_magic);
    tcase_add_test(tc, test_refuse_missing_file);
    tcase_add_test(tc, test_refuse_truncated_data);
    tcase_add_test(tc, test_refuse_truncated_header);
    tcase_add_test(tc, test_refuse_trailing_bytes);
    tcase_add_test(tc, test_refuse_fortran_order);
    tcase_add_test(tc, test_refuse_big_endian);
    tcase_add_test(tc, test_refuse_unsupported_dtypes);
    tcase_add_test(tc, test_refuse_absurd_shapes);
    tcase_add_test(tc, test_refuse_malformed_headers);
    tcase_add_test(tc, test_refuse_unknown_version);
    tcase_add_test(tc, test_refuse_null_in_header);
    suite_add_tcase(s, tc);
    return s;
}
