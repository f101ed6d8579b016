/* placeholder: the YAML configuration (issue: registry, SDK and YAML) */
#include "config.h"
