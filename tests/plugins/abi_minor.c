/* This file implements a test plugin built for a newer ABI minor than the
 * host's: it may call host functions the host lacks, so it is refused. */
#include "test_plugin.h"
TP_DESCRIPTOR(QK_ABI_MAJOR, QK_ABI_MINOR + 1, QK_PLUGIN_OBSERVER, "abi_minor", &tp_observer_vtable);
