/* This file implements a valid test observer named "minmax" like the
 * built-in one, built twice (tests/plugins/path_a and path_b; SHADOW_COPY
 * says which) to test search order and duplicate warnings: its description
 * tells the copies apart. */
#include "test_plugin.h"
QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "minmax", "0.0.1", "test copy in " SHADOW_COPY, "MIT", &tp_observer_vtable);
