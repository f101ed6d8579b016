/* This file implements a test quantizer whose vtable claims a size smaller
 * than ABI 1.0's table: the host would read past its end. */
#include "test_plugin.h"
static const qk_fakequant_vtable vt = {sizeof(size_t) + sizeof(void *), tp_create, tp_quantize, tp_destroy};
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_FAKEQUANT, "small_vtable", &vt);
