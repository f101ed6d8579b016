/* ptq: being written. */
#include "ptq.h"
typedef int qk_placeholder_ptq;
