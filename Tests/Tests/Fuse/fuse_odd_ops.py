"""File-system calls with odd arguments through a GrainFS FUSE mount, each with the outcome it must have: an errno
(named) or a result. Run inside a writable folder of the mount holding hello.txt (its bytes given as the second
argument, hex). Prints one JSON line per case ({"case", "expect", "got", "ok"}) and, last, {"cases": N, "passed": M}.
Everything a case makes is removed; hello.txt is read back at the end.

Usage: fuse_odd_ops.py FOLDER HELLO_HEX
"""
import errno
import json
import os
import sys

folder, hello = sys.argv[1], bytes.fromhex(sys.argv[2])
results = []


def run(name, expect, action):
    """expect: a set of errno names, or a value the action must return."""
    try:
        got = action()
        ok = not isinstance(expect, set) and got == expect
        shown = repr(got)[:80]
    except OSError as e:
        shown = errno.errorcode.get(e.errno, str(e.errno))
        ok = isinstance(expect, set) and shown in expect
    results.append({"case": name, "expect": sorted(expect) if isinstance(expect, set) else repr(expect)[:80], "got": shown, "ok": ok})


def path(*names):
    return os.path.join(folder, *names)


def with_fd(p, flags, action, mode=0o644):
    fd = os.open(p, flags, mode)
    try:
        return action(fd)
    finally:
        os.close(fd)


def made(p, data=b"x"):
    with open(p, "wb") as f:
        f.write(data)


def cleanup(*paths):
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                for root, dirs, files in os.walk(p, topdown=False):
                    for n in files:
                        os.unlink(os.path.join(root, n))
                    for n in dirs:
                        os.rmdir(os.path.join(root, n))
                os.rmdir(p)
            elif os.path.lexists(p):
                os.unlink(p)
        except OSError:
            pass


hello_path = path("hello.txt")
os.makedirs(path("odd-dir", "inner"), exist_ok=True)
made(path("odd-dir", "inner", "f"))

# Names
run("create a 256-byte name", {"ENAMETOOLONG"}, lambda: made(path("n" * 256)))
run("stat a 255-byte name that does not exist", {"ENOENT"}, lambda: os.stat(path("n" * 255)))
run("create and read back a 255-byte name", b"x", lambda: (made(path("m" * 255)), open(path("m" * 255), "rb").read(), os.unlink(path("m" * 255)))[1])
run("create a name that is not UTF-8", {"EILSEQ"}, lambda: made(os.path.join(os.fsencode(folder), b"bad\xff\xfename")))
run("stat a name that is not UTF-8", {"ENOENT"}, lambda: os.stat(os.path.join(os.fsencode(folder), b"bad\xffname")))
run("mkdir a name that is not UTF-8", {"EILSEQ"}, lambda: os.mkdir(os.path.join(os.fsencode(folder), b"dir\xc3")))
run("rename to a name that is not UTF-8", {"EILSEQ"}, lambda: os.rename(hello_path, os.path.join(os.fsencode(folder), b"h\x80")))
run("a name with a newline round-trips", b"nl", lambda: (made(path("a\nb"), b"nl"), open(path("a\nb"), "rb").read(), os.unlink(path("a\nb")))[1])
run("a name with a tab and a backslash round-trips", b"tb", lambda: (made(path("a\tb\\c"), b"tb"), open(path("a\tb\\c"), "rb").read(), os.unlink(path("a\tb\\c")))[1])
run("a name of one control byte round-trips", b"c", lambda: (made(path("\x01"), b"c"), open(path("\x01"), "rb").read(), os.unlink(path("\x01")))[1])
run("two names differing only in normalisation stay two", 2, lambda: (made(path("caf\u00e9"), b"1"), made(path("cafe\u0301"), b"2"),
    len({open(path("caf\u00e9"), "rb").read(), open(path("cafe\u0301"), "rb").read()}), os.unlink(path("caf\u00e9")), os.unlink(path("cafe\u0301")))[2])
run("a file used as a folder", {"ENOTDIR"}, lambda: os.stat(path("hello.txt", "x")))
run("create below a file", {"ENOTDIR"}, lambda: made(path("hello.txt", "x")))

# Nodes GrainFS does not hold
run("mknod a FIFO", {"EPERM"}, lambda: os.mkfifo(path("fifo")))
run("mknod a character device", {"EPERM"}, lambda: os.mknod(path("chr"), 0o20644, os.makedev(1, 3)))
run("symlink", {"EPERM"}, lambda: os.symlink("hello.txt", path("link")))
run("hard link", {"EPERM"}, lambda: os.link(hello_path, path("hard")))
run("setxattr", {"EOPNOTSUPP", "ENOTSUP"}, lambda: os.setxattr(hello_path, "user.k", b"v"))
run("getxattr", {"EOPNOTSUPP", "ENOTSUP", "ENODATA"}, lambda: os.getxattr(hello_path, "user.k"))
run("removexattr", {"EOPNOTSUPP", "ENOTSUP", "ENODATA"}, lambda: os.removexattr(hello_path, "user.k"))

# Offsets and sizes
run("pread far past the end", b"", lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.pread(fd, 4096, 1 << 62)))
run("pread at a negative offset", {"EINVAL"}, lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.pread(fd, 10, -1)))
run("read of 0 bytes", b"", lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.read(fd, 0)))
run("pread across the end returns the tail", hello[-3:], lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.pread(fd, 4096, len(hello) - 3)))
run("truncate to a negative size", {"EINVAL"}, lambda: os.truncate(hello_path, -1))
run("seek for data past the end", {"ENXIO"}, lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.lseek(fd, len(hello) + 10, os.SEEK_DATA)))
run("seek to a negative offset", {"EINVAL"}, lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.lseek(fd, -5, os.SEEK_SET)))
run("pwrite at an offset past the largest file", {"EFBIG", "EINVAL"}, lambda: with_fd(path("big"), os.O_WRONLY | os.O_CREAT, lambda fd: os.pwrite(fd, b"x", (1 << 63) - 1)))
cleanup(path("big"))

# Wrong kind of thing
run("open a file as a directory", {"ENOTDIR"}, lambda: with_fd(hello_path, os.O_RDONLY | os.O_DIRECTORY, lambda fd: 0))
run("exclusive create of an existing file", {"EEXIST"}, lambda: with_fd(hello_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, lambda fd: 0))
run("mkdir an existing folder", {"EEXIST"}, lambda: os.mkdir(path("odd-dir")))
run("rmdir a folder that is not empty", {"ENOTEMPTY"}, lambda: os.rmdir(path("odd-dir")))
run("unlink a folder", {"EISDIR", "EPERM"}, lambda: os.unlink(path("odd-dir")))
run("rmdir a file", {"ENOTDIR"}, lambda: os.rmdir(hello_path))
run("rename a folder into itself", {"EINVAL"}, lambda: os.rename(path("odd-dir"), path("odd-dir", "inner", "again")))
run("rename a missing file", {"ENOENT"}, lambda: os.rename(path("missing"), path("missing2")))
run("rename a folder over a file", {"ENOTDIR"}, lambda: os.rename(path("odd-dir", "inner"), hello_path))
run("rename a file over a folder", {"EISDIR"}, lambda: os.rename(hello_path, path("odd-dir", "inner")))
run("write to a file opened read-only", {"EBADF"}, lambda: with_fd(hello_path, os.O_RDONLY, lambda fd: os.write(fd, b"x")))
run("read a directory", {"EISDIR"}, lambda: with_fd(path("odd-dir"), os.O_RDONLY, lambda fd: os.read(fd, 10)))
run("chdir into a file", {"ENOTDIR"}, lambda: os.chdir(hello_path))
run("rename onto itself changes nothing", hello, lambda: (os.rename(hello_path, hello_path), open(hello_path, "rb").read())[1])

cleanup(path("odd-dir"), path("n" * 256), path("m" * 255), path("fifo"), path("chr"), path("link"), path("hard"))
run("hello.txt is unharmed", hello, lambda: open(hello_path, "rb").read())
run("the folder lists without leftovers", ["hello.txt"], lambda: sorted(n for n in os.listdir(folder)))

for r in results:
    print(json.dumps(r))
print(json.dumps({"cases": len(results), "passed": sum(r["ok"] for r in results)}))
sys.exit(0 if all(r["ok"] for r in results) else 1)
