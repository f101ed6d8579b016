/* Placeholder: the `mse` observer is being written (issue 5). */
#include <quantkit/quantkit.h>
static int create(const qk_host *host, const qk_params *args, const qk_quant_spec *spec, void **state)
{
    *state = 0;
    return host->log->error(host, QK_ENOTSUP, "observer mse is not implemented yet");
}
static int observe(void *s, const qk_tensor *t) { return QK_ENOTSUP; }
static int merge(void *s, const void *o) { return QK_ENOTSUP; }
static int range(void *s, int64_t c, float *lo, float *hi) { return QK_ENOTSUP; }
static void destroy(void *s) {}
static const qk_observer_vtable vt = {sizeof vt, create, observe, merge, range, destroy};
QK_PLUGIN_DEFINE(QK_PLUGIN_OBSERVER, "mse", "0.0.0", "placeholder", "MIT", &vt);
