/* This file implements a test plugin whose kind is no plugin kind. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, 99, "bad_kind", &tp_observer_vtable);
