/* This file implements atomic output files (see atomic_file.h). */
#define _GNU_SOURCE /* mkstemp, fsync, fchmod under -std=gnu11 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "atomic_file.h"

int atomic_open(atomic_file *af, const char *path, qk_err *err)
{
    memset(af, 0, sizeof *af);
    size_t plen = strlen(path);
    af->tmp = malloc(plen + sizeof ".tmpXXXXXX");
    af->path = strdup(path);
    if (!af->tmp || !af->path) {
        atomic_abort(af);
        return qk_fail(err, QK_ENOMEM, "%s: out of memory", path);
    }
    memcpy(af->tmp, path, plen);
    memcpy(af->tmp + plen, ".tmpXXXXXX", sizeof ".tmpXXXXXX");
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int r = qk_fail(err, QK_EIO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        free(af->tmp);
        af->tmp = NULL;
        atomic_abort(af);
        return r;
    }
    /* mkstemp makes the file 0600; give it the mode open() would have.
     * Reading the umask means setting it, briefly: the CLI writes outputs
     * from its main thread only. */
    mode_t mask = umask(022);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        atomic_abort(af);
        return qk_fail(err, QK_EIO, "%s: cannot open the temporary file: %s", path, strerror(errno));
    }
    return QK_OK;
}

/* Best effort: make the rename itself durable (some file systems refuse to
 * fsync a folder, which is not an error). */
static void sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (!slash) strcpy(dir, ".");
    else if (n == 0) strcpy(dir, "/");
    else if (n < sizeof dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    } else return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int atomic_commit(atomic_file *af, qk_err *err)
{
    int r = QK_OK;
    if (!af->f) return qk_fail(err, QK_EIO, "%s: not open", af->path ? af->path : "?");
    if (fflush(af->f) != 0 || ferror(af->f)) r = qk_fail(err, QK_EIO, "%s: write failed: %s", af->path, strerror(errno));
    else if (fsync(fileno(af->f)) != 0) r = qk_fail(err, QK_EIO, "%s: fsync failed: %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && r == QK_OK) r = qk_fail(err, QK_EIO, "%s: close failed: %s", af->path, strerror(errno));
    af->f = NULL;
    if (r == QK_OK && rename(af->tmp, af->path) != 0)
        r = qk_fail(err, QK_EIO, "%s: cannot rename the temporary file into place: %s", af->path, strerror(errno));
    if (r == QK_OK) {
        sync_dir_of(af->path);
        free(af->tmp);
        af->tmp = NULL;
    }
    atomic_abort(af);
    return r;
}

void atomic_abort(atomic_file *af)
{
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}
