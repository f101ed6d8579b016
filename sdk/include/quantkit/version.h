/* This file implements the ABI version of quantkit's plugin interface.
 *
 * The host accepts a plugin when its ABI major equals the host's and its ABI
 * minor is no higher than the host's (a plugin built against an older minor
 * only uses what that minor had; tables are append-only). */
#ifndef QUANTKIT_VERSION_H
#define QUANTKIT_VERSION_H

#define QK_ABI_MAJOR 1
#define QK_ABI_MINOR 3

/* Exported symbols of the SDK (only the plugin entry point). */
#if defined(__GNUC__)
#define QK_EXPORT __attribute__((visibility("default")))
#else
#define QK_EXPORT
#endif

#endif
