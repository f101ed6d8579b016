/* This file implements a test fusion with no vtable at all. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_FUSION, "null_vtable", 0);
