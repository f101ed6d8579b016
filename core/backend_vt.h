/* This file implements safe reads of a backend's vtable members that later
 * ABI minors appended: a backend built against an older SDK has a shorter
 * table, and its `size` says which members exist. */
#ifndef QK_CORE_BACKEND_VT_H
#define QK_CORE_BACKEND_VT_H
#include <stddef.h>
#include <quantkit/backend.h>

#define BACKEND_HAS(vt, member) \
    ((vt)->size >= offsetof(qk_backend_vtable, member) + sizeof(((qk_backend_vtable *)0)->member))

static inline const char *const *backend_shared_scale_ops(const qk_backend_vtable *vt)
{
    return BACKEND_HAS(vt, shared_scale_ops) ? vt->shared_scale_ops : NULL;
}

#endif
