"""Tell a GrainFS mount the order in which files will be read.

A training epoch's order is known before it starts. ``prefetch`` sends it to the daemon serving the GrainFS FUSE
mount that holds the files (over the daemon's local socket, found from /proc/self/mountinfo), and returns once the
daemon has accepted it; the daemon then has the cluster fetch the files ahead of the reader, at most a window of
bytes ahead of the last file read. An order stays in force after its caller exits, until a newer order of the same
job replaces it, it is cancelled, its files have all been read, or it expires (30 minutes).
"""

import hashlib
import json
import os
import socket

__all__ = ["GrainFSError", "Mount", "mounts", "mount_of", "prefetch", "cancel"]
__version__ = "0.1.0"

_FSTYPE = "fuse.grainfs"


class GrainFSError(OSError):
    """An announcement that did not reach a GrainFS daemon, or that the daemon refused."""


class Mount:
    """A GrainFS FUSE mount of this machine: its mount point and the user its daemon runs as."""

    def __init__(self, point, uid):
        self.point = point
        self.uid = uid

    @property
    def socket_path(self):
        """The daemon's socket for read orders (as the daemon names it)."""
        name = hashlib.sha256(self.point.encode("utf-8")).hexdigest()[:16] + ".sock"
        folder = "/run/grainfs" if self.uid == 0 else "/tmp/grainfs-%d" % self.uid
        return os.path.join(folder, name)

    def __repr__(self):
        return "Mount(%r, uid=%d)" % (self.point, self.uid)


def _unescape(field):
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts():
    """The GrainFS mounts this process sees."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as info:
        for line in info:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3 or tail[0] != _FSTYPE:
                continue
            uid = 0
            for option in tail[2].split(","):
                if option.startswith("user_id="):
                    uid = int(option[len("user_id="):])
            found.append(Mount(_unescape(fields[4]), uid))
    return found


def mount_of(path, known=None):
    """The GrainFS mount holding ``path`` (absolute or relative to the working directory), or None."""
    path = os.path.abspath(os.fspath(path))
    best = None
    for mount in known if known is not None else mounts():
        if path == mount.point or path.startswith(mount.point.rstrip("/") + "/"):
            if best is None or len(mount.point) > len(best.point):
                best = mount
    return best


def _send(mount, header, payload=b""):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(60)
            conn.connect(mount.socket_path)
            conn.sendall(json.dumps(header).encode("utf-8") + b"\n" + payload)
            conn.shutdown(socket.SHUT_WR)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as error:
        raise GrainFSError(error.errno, "the GrainFS daemon of %s does not answer at %s: %s" % (mount.point, mount.socket_path, error.strerror or error)) from error
    try:
        reply = json.loads(answer)
    except ValueError as error:
        raise GrainFSError("the GrainFS daemon of %s answered %r" % (mount.point, answer[:200])) from error
    if not reply.get("ok"):
        raise GrainFSError("the GrainFS daemon of %s refused the order: %s" % (mount.point, reply.get("error")))
    return reply


def prefetch(paths, job=None, window=None, window_share=None, parallel=None):
    """Announces that ``paths`` will be read in this order; returns how many files the daemons accepted.

    ``job`` names the order: a newer order of the same job replaces it (a new epoch). ``window`` is the most bytes
    fetched ahead of the reader (the daemon's default, 1 GiB, when None); ``window_share`` the most of the cache the
    window may take, from 0 (exclusive) to 1 (the daemon's default, 0.25, when None); ``parallel`` how many files are
    fetched at once, 1 to 256 (the daemon's default, 16, when None). Paths outside every GrainFS mount are ignored; a
    path of a mount that does not exist is skipped by the daemon with a warning in its log. Raises GrainFSError when a
    daemon cannot be reached or refuses.
    """
    if window_share is not None and not 0 < window_share <= 1:
        raise ValueError("window_share must be above 0 and at most 1, got %r" % (window_share,))
    if window is not None and window <= 0:
        raise ValueError("window must be a positive number of bytes, got %r" % (window,))
    if parallel is not None and not 1 <= parallel <= 256:
        raise ValueError("parallel must be from 1 to 256, got %r" % (parallel,))
    known = mounts()
    by_mount = {}
    order = []
    for path in paths:
        path = os.path.abspath(os.fspath(path))
        mount = mount_of(path, known)
        if mount is None:
            continue
        if mount.point not in by_mount:
            by_mount[mount.point] = (mount, [])
            order.append(mount.point)
        by_mount[mount.point][1].append(path)
    accepted = 0
    for point in order:
        mount, listed = by_mount[point]
        header = {"v": 1, "job": job, "window": window, "cancel": False}
        if window_share is not None:
            header["share"] = window_share
        if parallel is not None:
            header["parallel"] = parallel
        payload = b"\0".join(p.encode("utf-8", "surrogateescape") for p in listed) + b"\0"
        accepted += _send(mount, header, payload).get("accepted", 0)
    return accepted


def cancel(job, path):
    """Cancels the order ``job`` on the GrainFS mount holding ``path``; returns how many orders were cancelled."""
    mount = mount_of(path)
    if mount is None:
        raise GrainFSError("%s is not under a GrainFS mount" % path)
    return _send(mount, {"v": 1, "job": job, "window": None, "cancel": True}).get("accepted", 0)
