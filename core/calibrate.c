/* calibrate: being written. */
#include "calibrate.h"
typedef int qk_placeholder_calibrate;
