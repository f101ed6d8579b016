/* This file implements tests of the runtime tensor helpers and broadcasting. */
#include <string.h>
#include "suites.h"
#include "op.h"

static xt shape(int rank, const int64_t *d)
{
    xt t = {.dtype = DT_FLOAT, .rank = rank};
    if (rank > 0) memcpy(t.dims, d, (size_t)rank * sizeof *d);
    return t;
}

START_TEST(test_numel_and_unknown_dims)
{
    xt s = shape(0, NULL);
    ck_assert_int_eq(xt_numel(&s), 1);
    xt t = shape(3, (int64_t[]){2, 3, 4});
    ck_assert_int_eq(xt_numel(&t), 24);
    ck_assert_int_eq(xt_nbytes(&t), 96);
    t.dims[0] = -1;
    ck_assert_int_eq(xt_numel(&t), -1);
    ck_assert(!xt_shape_known(&t));
    char buf[64];
    ck_assert_str_eq(xt_shape_str(&t, buf, sizeof buf), "[?,3,4]");
    t.rank = -1;
    ck_assert_str_eq(xt_shape_str(&t, buf, sizeof buf), "[unknown rank]");
}
END_TEST

START_TEST(test_broadcast_numpy_rules)
{
    xt a = shape(3, (int64_t[]){8, 1, 6}), b = shape(2, (int64_t[]){7, 1}), o = {0};
    ck_assert_int_eq(xt_broadcast_shape(&a, &b, &o), QK_OK);
    ck_assert_int_eq(o.rank, 3);
    ck_assert_int_eq(o.dims[0], 8);
    ck_assert_int_eq(o.dims[1], 7);
    ck_assert_int_eq(o.dims[2], 6);
    xt c = shape(1, (int64_t[]){5});
    ck_assert_int_eq(xt_broadcast_shape(&a, &c, &o), QK_EINVAL);
    xt s = shape(0, NULL);
    ck_assert_int_eq(xt_broadcast_shape(&s, &c, &o), QK_OK);
    ck_assert_int_eq(o.rank, 1);
    ck_assert_int_eq(o.dims[0], 5);
}
END_TEST

START_TEST(test_element_access_converts)
{
    int8_t v8[2] = {-3, 7};
    xt t = {.dtype = DT_INT8, .rank = 1, .dims = {2}, .data = v8};
    ck_assert_int_eq(xt_get_i64(&t, 0), -3);
    xt_set_f64(&t, 1, -5.9);
    ck_assert_int_eq(v8[1], -5);
    ck_assert_str_eq(dtype_name(DT_FLOAT16), "float16");
    ck_assert(!dtype_supported(DT_STRING));
}
END_TEST

Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_numel_and_unknown_dims);
    tcase_add_test(tc, test_broadcast_numpy_rules);
    tcase_add_test(tc, test_element_access_converts);
    suite_add_tcase(s, tc);
    return s;
}
