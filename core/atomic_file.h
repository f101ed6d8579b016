/* This file implements writing an output file atomically: everything goes
 * to a temporary file beside it, which is renamed over the target only once
 * complete, so a failure never leaves a half-written report or model. */
#ifndef QK_CORE_ATOMIC_FILE_H
#define QK_CORE_ATOMIC_FILE_H
#include <stdio.h>
#include "status.h"

typedef struct atomic_file {
    FILE *f;          /* write here between open and commit/abort */
    char *tmp;        /* the temporary file's name */
    char *path;       /* the target */
} atomic_file;

/* Creates the temporary file (mode as open() with the umask would give). */
int atomic_open(atomic_file *af, const char *path, qk_err *err);
/* Flushes, syncs and renames into place; on any failure removes the
 * temporary file and reports which step failed. */
int atomic_commit(atomic_file *af, qk_err *err);
/* Discards the temporary file (safe after a failed open; idempotent). */
void atomic_abort(atomic_file *af);

#endif
