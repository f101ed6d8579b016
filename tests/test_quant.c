/* placeholder */
#include <stdlib.h>
#include "quant_suites.h"
int main(void)
{
    SRunner *r = srunner_create(report_suite());
    srunner_run_all(r, CK_NORMAL);
    int f = srunner_ntests_failed(r);
    srunner_free(r);
    return f ? EXIT_FAILURE : EXIT_SUCCESS;
}
