/*
 * Preloaded into the programs of a phase under runsc, through LD_PRELOAD (see
 * RUNSC_ENVIRONMENT in runtime/cutor/sandbox/options.py).
 *
 * runsc release-20221219 (gVisor) fails statx(2) with EINVAL when the flags include
 * AT_NO_AUTOMOUNT, and coreutils 9.1 always passes it, so `ls`, `stat`, `cp -a` and
 * the like fail on every file under that runtime. The flag only keeps statx from
 * triggering an automount, and a sandbox container has no automount points, so
 * clearing it changes no result. Remove this file when runsc is a release that
 * accepts the flag.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int statx(int dirfd, const char *restrict path, int flags, unsigned int mask,
          struct statx *restrict buffer)
{
    return (int)syscall(SYS_statx, dirfd, path, flags & ~AT_NO_AUTOMOUNT, mask, buffer);
}
