/* placeholder */
#include "qparams.h"
typedef int qk_placeholder_qparams;
