"""A read-only FUSE file system over a folder that stops answering, as a stalled NFS or
SMB share does: ``--stall read`` blocks every read of a file's content, ``--stall
list`` blocks the listing of every folder below the root, ``--stall slow`` makes every
read take a second. Run as its own process by the tests (killing it ends the mount's
pending calls with an error):

    python stallfs.py SOURCE MOUNTPOINT --stall read|list|slow [--marker FILE]

``--marker`` names a file created when a call first stalls or is slowed (tests wait
for it). A process waiting for a FUSE answer the daemon has taken cannot be killed
until it comes: a stalled read holds its reader until the mount goes away, which is
why the stop tests use the slow mode.
"""

from __future__ import annotations

import argparse
import errno
import os
import threading
import time

from mfusepy import FUSE, FuseOSError, Operations

FOREVER = threading.Event()  # never set: a stalled call waits on it


class StallFS(Operations):
    def __init__(self, source: str, stall: str, marker: str | None) -> None:
        self.source = source
        self.stall = stall
        self.marker = marker

    def _stall(self) -> None:
        if self.marker:
            open(self.marker, "a").close()  # noqa: SIM115 - touched, nothing written
        FOREVER.wait()

    def _real(self, path: str) -> str:
        return os.path.join(self.source, path.lstrip("/"))

    def getattr(self, path: str, fh: int | None = None) -> dict:
        try:
            st = os.lstat(self._real(path))
        except OSError as exc:
            raise FuseOSError(exc.errno or errno.EIO) from None
        return {k: getattr(st, k) for k in ("st_mode", "st_size", "st_mtime", "st_atime",
                                             "st_ctime", "st_nlink", "st_uid", "st_gid")}

    def readdir(self, path: str, fh: int) -> list[str]:
        if self.stall == "list" and path != "/":
            self._stall()
        return [".", "..", *os.listdir(self._real(path))]

    def open(self, path: str, flags: int) -> int:
        return os.open(self._real(path), os.O_RDONLY)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if self.stall == "read":
            self._stall()
        if self.stall == "slow":
            if self.marker:
                open(self.marker, "a").close()  # noqa: SIM115 - touched, nothing written
            time.sleep(1)
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("mountpoint")
    parser.add_argument("--stall", choices=("read", "list", "slow"), required=True)
    parser.add_argument("--marker")
    args = parser.parse_args()
    FUSE(StallFS(args.source, args.stall, args.marker), args.mountpoint, foreground=True,
         ro=True, allow_other=True, direct_io=True)  # every read reaches it: no cache
