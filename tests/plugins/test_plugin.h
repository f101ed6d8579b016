/* This file implements the pieces shared by the registry's test plugins
 * (tests/plugins/*.c): do-nothing functions and complete vtables of every
 * kind, so that each test plugin differs from a valid one in exactly the
 * defect it is named after.  None of these functions is ever meant to run:
 * the registry must refuse the broken plugins before calling anything. */
#ifndef QK_TESTS_TEST_PLUGIN_H
#define QK_TESTS_TEST_PLUGIN_H
#include <quantkit/quantkit.h>

static int tp_create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    (void)host, (void)args, (void)spec;
    *state = 0;
    return QK_OK;
}
static int tp_observe(void *state, const qk_tensor *t) { (void)state, (void)t; return QK_OK; }
static int tp_merge(void *state, const void *other) { (void)state, (void)other; return QK_OK; }
static int tp_range(void *state, int64_t channels, float *lo, float *hi)
{
    (void)state, (void)channels, (void)lo, (void)hi;
    return QK_ERR;
}
static void tp_destroy(void *state) { (void)state; }
static int tp_quantize(void *state, const qk_tensor *w, const qk_qparams *qp, int32_t *q)
{
    (void)state, (void)w, (void)qp, (void)q;
    return QK_ERR;
}
static int tp_apply(const qk_host *host, qk_graph *g, const qk_params *args, int *count)
{
    (void)host, (void)g, (void)args;
    *count = 0;
    return QK_OK;
}
static int tp_emit(const qk_host *host, qk_graph *g, const qk_plan *plan, const qk_params *options)
{
    (void)host, (void)g, (void)plan, (void)options;
    return QK_ERR;
}
static const char *const tp_ops[] = {"Conv", "MatMul", 0};

/* Each plugin uses one or two of these; keep -Wunused quiet about the rest. */
static const qk_observer_vtable tp_observer_vtable __attribute__((unused)) = {
    sizeof(qk_observer_vtable), tp_create, tp_observe, tp_merge, tp_range, tp_destroy};
static const qk_fakequant_vtable tp_fakequant_vtable __attribute__((unused)) = {
    sizeof(qk_fakequant_vtable), tp_create, tp_quantize, tp_destroy};
static const qk_fusion_vtable tp_fusion_vtable __attribute__((unused)) = {sizeof(qk_fusion_vtable), tp_apply};
static const qk_backend_vtable tp_backend_vtable __attribute__((unused)) = {
    sizeof(qk_backend_vtable), tp_ops, 0, 0, tp_emit};

/* A descriptor written out by hand (QK_PLUGIN_DEFINE cannot express the
 * defects): ABI, kind, name, vtable. */
#define TP_DESCRIPTOR(major_, minor_, kind_, name_, vtable_)                                               \
    QK_EXPORT const qk_plugin_descriptor quantkit_plugin_descriptor = {                                   \
        (major_), (minor_), sizeof(qk_plugin_descriptor), (kind_), (name_), "0.0.1", "registry test plugin", \
        "MIT", (vtable_)}

#endif
