/* This file implements a test plugin whose descriptor has no name. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_OBSERVER, 0, &tp_observer_vtable);
