/* This file implements the plugin descriptor and QK_PLUGIN_DEFINE, the one
 * macro every plugin ends with.
 *
 * A plugin is a shared object exporting one data symbol,
 * `quantkit_plugin_descriptor`.  The host reads the descriptor's ABI
 * version and checks every required field *before* calling any plugin code;
 * a mismatch is refused with a message naming the file and both versions. */
#ifndef QUANTKIT_PLUGIN_H
#define QUANTKIT_PLUGIN_H
#include <stddef.h>
#include <stdint.h>
#include "version.h"
#include "host.h"

typedef enum qk_plugin_kind {
    QK_PLUGIN_OBSERVER = 1,
    QK_PLUGIN_FAKEQUANT = 2,
    QK_PLUGIN_FUSION = 3,
    QK_PLUGIN_BACKEND = 4,
    QK_PLUGIN_KIND_END    /* append new kinds above */
} qk_plugin_kind;

#define QK_PLUGIN_ENTRY_SYMBOL "quantkit_plugin_descriptor"

typedef struct qk_plugin_descriptor {
    uint32_t abi_major;       /* QK_ABI_MAJOR the plugin was built with: read first */
    uint32_t abi_minor;
    size_t size;              /* sizeof(qk_plugin_descriptor) of that SDK */
    int kind;                 /* qk_plugin_kind */
    const char *name;         /* the name written in YAML, e.g. "percentile" */
    const char *version;      /* the plugin's own version */
    const char *description;  /* one line */
    const char *license;
    /* The kind's function table: qk_observer_vtable, qk_fakequant_vtable,
     * qk_fusion_vtable or qk_backend_vtable; its first field is its size. */
    const void *vtable;
} qk_plugin_descriptor;

/* Defines the plugin's descriptor.  Use once, last in the plugin's file:
 *   QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "minmax", "1.0.0",
 *                    "min/max range of every batch", "MIT", &minmax_vtable)
 */
#define QK_PLUGIN_DEFINE(kind_, name_, version_, description_, license_, vtable_) \
    QK_EXPORT const qk_plugin_descriptor quantkit_plugin_descriptor = {           \
        QK_ABI_MAJOR, QK_ABI_MINOR, sizeof(qk_plugin_descriptor), (kind_), (name_),\
        (version_), (description_), (license_), (vtable_)}

#endif
