/* This file implements the status codes every fallible quantkit call
 * returns, in the host and in plugins alike: 0 is success, errors are
 * negative.  The message of an error lives on the host (report it with
 * host->log->error); plugins never exit(), abort() or longjmp(). */
#ifndef QUANTKIT_STATUS_H
#define QUANTKIT_STATUS_H

enum qk_status {
    QK_OK = 0,
    QK_ERR = -1,       /* generic failure; the reported message says what */
    QK_ENOMEM = -2,
    QK_EINVAL = -3,    /* bad input: model, data, shapes, arguments */
    QK_ENOTSUP = -4,   /* valid request the implementation does not support */
    QK_EIO = -5,
};

#endif
