"""Child processes of a supervisor: started in sessions of their own, stopped with
everything they spawned (found by parent id in /proc), by pid; and waiting for a
service to answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nasindex.errors import NasIndexError


class ServiceError(NasIndexError):
    """A part of the local stack could not start; the message says which and where its log is."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    _log_file: IO[bytes] | None = None


@dataclass
class Children:
    """The processes a supervisor started; stops them (and what they spawned) by pid,
    ``stop_order`` first (e.g. a Prefect worker before its server)."""

    log_dir: Path
    stop_order: tuple[str, ...] = ()
    started: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, cmd: list[str], env: dict[str, str],
              cwd: Path | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        out = log.open("ab")
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        child = Child(name, proc, log, out)
        self.started[name] = child
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.started.values() if c.proc.poll() is not None]

    def stop(self, name: str, timeout: float = 20) -> None:
        child = self.started.pop(name, None)
        if child is None:
            return
        family = [child.proc.pid, *descendants(child.proc.pid)]
        _signal_all(child.proc.pid, family, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(timeout)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_all(child.proc.pid, [p for p in family if alive(p)], signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)
        if child._log_file:
            child._log_file.close()

    def stop_all(self, announce: Callable[[str], None] = print) -> None:
        for name in [*self.stop_order, *self.started]:
            if name in self.started:
                announce(f"stopping {name}")
                self.stop(name)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, from /proc (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.append(kid)
            todo.append(kid)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is already dead


def _signal_all(leader: int, pids: list[int], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)  # the child's own session: itself and what shares its group
    for pid in pids:  # and anything that moved to a session of its own
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_until(check: Callable[[], bool], timeout: float, what: str, child: Child | None = None,
               every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if child is not None and child.proc.poll() is not None:
            raise ServiceError(f"{what} exited ({child.proc.returncode}); see {child.log}")
        time.sleep(every)
    where = f"; see {child.log}" if child else ""
    raise ServiceError(f"{what} did not answer within {timeout:.0f}s{where}")


def http_ok(url: str, expect: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200 and (expect is None or expect in resp.read())
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0
