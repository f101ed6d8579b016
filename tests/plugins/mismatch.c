/* This file implements a test plugin whose descriptor names another plugin
 * than its file (observer-mismatch.so declares "other_name"): a lazy lookup
 * by file name would hand out the wrong plugin, so it is refused. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR, QK_PLUGIN_OBSERVER, "other_name", &tp_observer_vtable);
