/* This file implements a test observer whose vtable lacks a required
 * function (observe). */
#include "test_plugin.h"
static const qk_observer_vtable vt = {sizeof(qk_observer_vtable), tp_create, 0, tp_merge, tp_range, tp_destroy};
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_OBSERVER, "null_function", &vt);
