/* This file implements quantkit's status codes and the error-message buffer
 * every fallible core call writes into.  0 is success; errors are negative. */
#ifndef QK_CORE_STATUS_H
#define QK_CORE_STATUS_H
#include <stddef.h>

#include <quantkit/status.h>   /* QK_OK and the error codes, shared with plugins */

enum {
    QK_UNKNOWN = 1,      /* shape inference: result depends on values not known yet */
};

#define QK_ERRMSG_LEN 2048   /* long enough for a list of searched folders */

/* A place for the one-line message of the last error. */
typedef struct qk_err {
    int code;
    char msg[QK_ERRMSG_LEN];
} qk_err;

/* Formats the message into e (if e is non-NULL) and returns code. */
int qk_fail(qk_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
