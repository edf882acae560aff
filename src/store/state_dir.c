/* state_dir: creation, permissions, umask and the instance lock
 * (store/state_dir.h). */
#include "store/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct tr_state_dir {
    char *path;
    int lock_fd;
};

/* mkdir -p with mode 0700 for every directory we create. */
static int
make_dirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf)) {
        snprintf(err, errlen, "state_dir: path empty or too long");
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "state_dir: cannot create %s: %s", buf,
                     strerror(errno));
            return -1;
        }
        buf[i] = i == n ? '\0' : '/';
    }
    return 0;
}

static int
check_dir(const char *path, char *note, size_t notelen, char *err,
          size_t errlen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "state_dir %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "state_dir %s: not a directory", path);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        /* Someone else's directory: we could neither trust nor fix it. */
        snprintf(err, errlen,
                 "state_dir %s: owned by uid %u, treaty runs as uid %u; "
                 "give it to this user (chown) or use another directory",
                 path, (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        if (chmod(path, 0700) != 0) {
            snprintf(err, errlen, "state_dir %s: mode %03o and chmod "
                     "failed: %s", path, (unsigned)(st.st_mode & 0777),
                     strerror(errno));
            return -1;
        }
        if (note)
            snprintf(note, notelen,
                     "state_dir %s: mode was %03o, narrowed to 700", path,
                     (unsigned)(st.st_mode & 0777));
    }
    return 0;
}

/* Reads the pid the holder wrote, or 0. */
static long
holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    char *end;
    long pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno || end == buf || pid <= 0)
        return 0;
    return pid;
}

static int
take_lock(tr_state_dir *sd, char *err, size_t errlen)
{
    char path[PATH_MAX], buf[32];
    int fd, n;

    if (snprintf(path, sizeof(path), "%s/%s", sd->path,
                 TR_STATE_DIR_LOCK_FILE) >= (int)sizeof(path)) {
        snprintf(err, errlen, "state_dir: path too long");
        return -1;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "state_dir: cannot open %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? holder_pid(fd) : 0;

        if (e != EWOULDBLOCK)
            snprintf(err, errlen, "state_dir: cannot lock %s: %s", path,
                     strerror(e));
        else if (pid > 0)
            snprintf(err, errlen,
                     "state_dir %s is in use by another treaty (pid %ld); "
                     "stop it or give this instance its own state_dir",
                     sd->path, pid);
        else
            snprintf(err, errlen,
                     "state_dir %s is in use by another treaty; stop it "
                     "or give this instance its own state_dir", sd->path);
        close(fd);
        return -1;
    }
    n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        snprintf(err, errlen, "state_dir: cannot write %s: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    sd->lock_fd = fd;
    return 0;
}

tr_state_dir *
tr_state_dir_open(const char *path, char *note, size_t notelen, char *err,
                  size_t errlen)
{
    tr_state_dir *sd;

    if (note && notelen)
        note[0] = '\0';
    if (!path || !*path) {
        snprintf(err, errlen, "state_dir is not set");
        return NULL;
    }
    /* Before creating anything, so the lock file, databases and their
     * -wal/-shm files are all 0600. */
    umask(077);
    if (make_dirs(path, err, errlen) != 0 ||
        check_dir(path, note, notelen, err, errlen) != 0)
        return NULL;
    sd = calloc(1, sizeof(*sd));
    if (!sd || !(sd->path = strdup(path))) {
        free(sd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sd->lock_fd = -1;
    if (take_lock(sd, err, errlen) != 0) {
        free(sd->path);
        free(sd);
        return NULL;
    }
    return sd;
}

const char *
tr_state_dir_path(const tr_state_dir *sd)
{
    return sd->path;
}

void
tr_state_dir_close(tr_state_dir *sd)
{
    if (!sd)
        return;
    if (sd->lock_fd >= 0)
        close(sd->lock_fd); /* releases the flock */
    free(sd->path);
    free(sd);
}
