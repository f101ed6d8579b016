/* This file implements a test backend without its required list of
 * quantized op types (a data member, checked like the functions). */
#include "test_plugin.h"
static const qk_backend_vtable vt = {sizeof(qk_backend_vtable), 0, 0, 0, tp_emit};
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_BACKEND, "no_ops", &vt);
