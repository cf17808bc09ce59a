#!/usr/bin/env python3
"""A load process of the soak (infra/chaos/soak.sh): reads or writes through a GrainFS FUSE mount until SIGTERM.

  soak_fuse.py read FOLDER MANIFEST   read random files of FOLDER (their pages dropped first, so each read reaches the
                                      mount's server) and compare each one's SHA-256 with MANIFEST ("name sha256" lines)
  soak_fuse.py write FOLDER ACKED     write files of 4 KiB..256 KiB into FOLDER; a file whose close() succeeded is
                                      acknowledged: "name sha256" appended to ACKED (flushed), for the soak to check

Every 10 s and at the end it prints a JSON line: ops, bytes, errors, wrong, and the first errors with their times.
"""
import hashlib
import json
import os
import random
import signal
import sys
import time

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("read", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, folder, listing = sys.argv[1:]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stats = {"mode": mode, "pid": os.getpid(), "ops": 0, "bytes": 0, "errors": 0, "wrong": 0, "first_errors": []}
    rng = random.Random(os.getpid())
    manifest = []
    if mode == "read":
        with open(listing, encoding="utf-8") as f:
            manifest = [line.split() for line in f if line.strip()]
        acked = None
    else:
        acked = open(listing, "a", encoding="utf-8")
    n = 0
    last = time.monotonic()
    while not stopping:
        try:
            if mode == "read":
                name, want = rng.choice(manifest)
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    chunks = []
                    while True:
                        chunk = os.read(fd, 1 << 20)
                        if not chunk:
                            break
                        chunks.append(chunk)
                finally:
                    os.close(fd)
                data = b"".join(chunks)
                stats["ops"] += 1
                stats["bytes"] += len(data)
                if hashlib.sha256(data).hexdigest() != want:
                    stats["wrong"] += 1
                    note(stats, f"{name}: {len(data)} bytes read, wrong content")
            else:
                n += 1
                name = f"fuse-{os.getpid()}-{n:06d}"
                data = rng.randbytes(rng.randint(4 << 10, 256 << 10))
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
                # close() succeeded: acknowledged.
                acked.write(f"{name} {hashlib.sha256(data).hexdigest()}\n")
                acked.flush()
                stats["ops"] += 1
                stats["bytes"] += len(data)
                time.sleep(0.2)
        except OSError as e:
            stats["errors"] += 1
            note(stats, f"{type(e).__name__}: {e}")
            time.sleep(0.1)
        now = time.monotonic()
        if now - last >= 10:
            last = now
            print(json.dumps(stats), flush=True)
    print(json.dumps(stats), flush=True)
    return 0


def note(stats, message):
    if len(stats["first_errors"]) < 20:
        stats["first_errors"].append(f"{time.strftime('%H:%M:%S', time.gmtime())} {message}")


if __name__ == "__main__":
    sys.exit(main())
