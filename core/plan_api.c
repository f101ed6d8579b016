/* plan_api: being written. */
#include "plan_api.h"
typedef int qk_placeholder_plan_api;
