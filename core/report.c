/* Placeholder: the report writer is being written (issue 5). */
#include <stdlib.h>
#include "report.h"
int report_write_json(const quant_report *r, const char *path, qk_err *err)
{ return qk_fail(err, QK_ENOTSUP, "%s: reports are not implemented yet", path); }
int report_write_html(const quant_report *r, const char *path, qk_err *err)
{ return qk_fail(err, QK_ENOTSUP, "%s: reports are not implemented yet", path); }
void report_free(quant_report *r) { free(r); }
