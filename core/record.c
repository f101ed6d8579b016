/* record: being written. */
#include "record.h"
typedef int qk_placeholder_record;
