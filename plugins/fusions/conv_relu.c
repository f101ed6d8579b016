/* Placeholder: the `conv_relu` fusion is being written (issue 5). */
#include <quantkit/quantkit.h>
static int apply(const qk_host *host, qk_graph *g, const qk_params *args, int *count)
{
    return host->log->error(host, QK_ENOTSUP, "fusion conv_relu is not implemented yet");
}
static const qk_fusion_vtable vt = {sizeof vt, apply};
QK_PLUGIN_DEFINE(QK_PLUGIN_FUSION, "conv_relu", "0.0.0", "placeholder", "MIT", &vt);
