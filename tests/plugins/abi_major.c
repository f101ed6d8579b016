/* This file implements a test plugin built for the next ABI major: the
 * registry must refuse it naming the file and both versions. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR + 1, 0, QK_PLUGIN_OBSERVER, "abi_major", &tp_observer_vtable);
