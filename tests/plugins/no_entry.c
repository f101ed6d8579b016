/* This file implements a test plugin that forgot QK_PLUGIN_DEFINE: it
 * exports no quantkit_plugin_descriptor. */
#include "test_plugin.h"
QK_EXPORT int not_a_descriptor(void);
QK_EXPORT int not_a_descriptor(void) { return 42; }
