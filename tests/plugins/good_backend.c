/* This file implements a valid test backend that sits among the broken
 * plugins: a lookup of it must load it and nothing else, and listing must
 * show it although its neighbours are refused. */
#include "test_plugin.h"
QK_PLUGIN_DEFINE(QK_PLUGIN_BACKEND, "good", "0.0.1", "registry test backend", "MIT", &tp_backend_vtable);
