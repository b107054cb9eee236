"""A share that stops answering, for real: a FUSE file system (tests/stallfs.py) over a
folder, whose reads or listings block until it is unmounted. Also what the stop tests
need to watch processes: a run's descendants and conditions to wait on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from nasindex.ops.processes import descendants  # noqa: F401  (re-exported for the tests)

STALLFS = Path(__file__).with_name("stallfs.py")


@dataclass
class StalledShare:
    root: Path  # the mount point: the NAS root the run sees
    marker: Path  # exists once a call has stalled

    def wait_stalled(self, timeout: float = 60) -> None:
        wait_for(self.marker.exists, timeout, "a call to stall on the share")


@contextmanager
def stalled_share(source: Path, where: Path, stall: str) -> Iterator[StalledShare]:
    """``source`` mounted at ``where`` through FUSE; ``stall`` is "read" or "list"."""
    if not Path("/dev/fuse").exists() or os.geteuid() != 0:
        pytest.skip("mounting a FUSE file system needs /dev/fuse and root (tests run as root)")
    where.mkdir(parents=True)
    marker = where.with_name(where.name + ".stalled")
    proc = subprocess.Popen([sys.executable, str(STALLFS), str(source), str(where),
                             "--stall", stall, "--marker", str(marker)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.ismount(where) or proc.poll() is not None, 30,
                 "the FUSE mount")
        if proc.poll() is not None:
            pytest.fail(f"the stalling file system did not mount: {proc.stderr.read()!r}")
        yield StalledShare(where, marker)
    finally:
        proc.kill()  # pending calls on the mount end with an error
        proc.wait(10)
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def alive(pids: list[int]) -> list[int]:
    """The pids that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out
