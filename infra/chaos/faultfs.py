#!/usr/bin/python3
"""A pass-through FUSE file system that fails on command: a disk that returns I/O errors or runs out of space, for a
cache tier to sit on (this machine has no device-mapper to make a failing block device).

Usage: faultfs.py BACKING MOUNTPOINT CONTROL

Every call is passed to BACKING, unless CONTROL (a regular file outside the mount, read again whenever it changes)
names a fault for it, one per line: `OP ERRNO [PATH-SUBSTRING]`, e.g. `read EIO`, `write ENOSPC`, `open EIO blocks/`.
OP is one of open, read, write, create, fsync, rename, unlink, mkdir, readdir, getattr, truncate or `*`; an empty
CONTROL passes everything. The mount stays in the foreground until unmounted (fusermount -u, or SIGTERM).
Needs python3-fusepy (Debian) and libfuse2.
"""
import errno
import os
import sys
import threading

try:
    from fusepy import FUSE, FuseOSError, Operations  # Debian's python3-fusepy
except ImportError:
    from fuse import FUSE, FuseOSError, Operations  # fusepy as pip installs it


class Faults:
    """The faults CONTROL names, read again when its modification time changes."""

    def __init__(self, control):
        self.control = control
        self.stamp = None
        self.rules = []
        self.lock = threading.Lock()

    def check(self, op, path):
        try:
            stamp = os.stat(self.control).st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        with self.lock:
            if stamp != self.stamp:
                self.stamp = stamp
                self.rules = []
                if stamp:
                    with open(self.control) as f:
                        for line in f:
                            parts = line.split()
                            if len(parts) >= 2:
                                self.rules.append((parts[0], getattr(errno, parts[1]), parts[2] if len(parts) > 2 else ""))
            for rule_op, code, substring in self.rules:
                if rule_op in (op, "*") and substring in path:
                    raise FuseOSError(code)


class PassThrough(Operations):
    def __init__(self, backing, faults):
        self.backing = os.path.realpath(backing)
        self.faults = faults

    def _full(self, path, op):
        self.faults.check(op, path)
        return os.path.join(self.backing, path.lstrip("/"))

    # names and attributes
    def getattr(self, path, fh=None):
        st = os.lstat(self._full(path, "getattr"))
        return {k: getattr(st, k) for k in ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid", "st_blocks")}

    def access(self, path, mode):
        if not os.access(self._full(path, "access"), mode):
            raise FuseOSError(errno.EACCES)

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path, "readdir"))

    def chmod(self, path, mode):
        os.chmod(self._full(path, "chmod"), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path, "chown"), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._full(path, "utimens"), times)

    def statfs(self, path):
        st = os.statvfs(self._full(path, "statfs"))
        return {k: getattr(st, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    # changes of names
    def mkdir(self, path, mode):
        os.mkdir(self._full(path, "mkdir"), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path, "rmdir"))

    def unlink(self, path):
        os.unlink(self._full(path, "unlink"))

    def rename(self, old, new):
        os.rename(self._full(old, "rename"), self._full(new, "rename"))

    def truncate(self, path, length, fh=None):
        self.faults.check("truncate", path)
        if fh is not None:
            os.ftruncate(fh, length)
        else:
            os.truncate(self._full(path, "truncate"), length)

    # files
    def open(self, path, flags):
        return os.open(self._full(path, "open"), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._full(path, "create"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        self.faults.check("read", path)
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self.faults.check("write", path)
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self.faults.check("fsync", path)
        os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        self.faults.check("fsync", path)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    backing, mountpoint, control = sys.argv[1:]
    FUSE(PassThrough(backing, Faults(control)), mountpoint, foreground=True, nothreads=False, allow_other=True, default_permissions=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
