"""Best-effort forwarding of audit records to a syslog audit repository (``[audit]
syslog``): the index's audit table is the record of truth; this copy must never block or
break a user's request.

Messages wait in a bounded queue for one sender thread. While the repository cannot be
reached the sender retries the message at hand with a growing pause (1 s to 30 s); when
the queue is full, new messages are dropped and counted. :meth:`Forwarder.status` says
how it goes (the dashboard's Health page shows it); a short-lived process (the CLI)
waits up to ``EXIT_WAIT`` seconds at exit for its messages to go (not at all while the
repository is known to be away), then says on stderr how many were not delivered.
"""

from __future__ import annotations

import atexit
import logging
import queue
import socket
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from nasindex.access.atna import audit_message, syslog_frame
from nasindex.access.audit import Event
from nasindex.config import AuditSettings

log = logging.getLogger(__name__)
EXIT_WAIT = 3.0
CONNECT_TIMEOUT = 5.0
MAX_PAUSE = 30.0


class Forwarder:
    """Sends DICOM audit messages over syslog (TCP with octet counting, UDP, or TLS)."""

    def __init__(self, settings: AuditSettings) -> None:
        url = urllib.parse.urlsplit(settings.syslog or "")
        self.target = settings.syslog or ""
        self.scheme, self.host, self.port = url.scheme, url.hostname or "", url.port or 0
        self.ca_file = settings.syslog_ca_file
        self.source_id = settings.source_id
        self.queue: queue.Queue[bytes] = queue.Queue(settings.queue_size)
        self.sent = self.dropped = 0
        self.last_error: str | None = None
        self.failing_since: datetime | None = None
        self._sock: socket.socket | None = None
        self._busy = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, event: Event) -> None:
        """Queue one record; never waits. A full queue drops it (and counts it)."""
        try:
            frame = syslog_frame(audit_message(event, self.source_id), event.at)
            self.queue.put_nowait(frame)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self.last_error = f"queue full ({self.queue.maxsize} messages waiting)"
            return
        self._start()

    def status(self) -> dict[str, Any]:
        """What a health page shows: ok, or failing since when and why."""
        with self._lock:
            return {"target": self.target, "ok": self.failing_since is None and not
                    self.dropped, "sent": self.sent, "queued": self.queue.qsize(),
                    "dropped": self.dropped, "last_error": self.last_error,
                    "failing_since": self.failing_since.isoformat() if self.failing_since
                    else None}

    def flush(self, timeout: float) -> bool:
        """Wait until every queued message has gone (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while self.queue.qsize() or self._busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -- the sender thread --------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-syslog",
                                                daemon=True)
                self._thread.start()
                atexit.register(self._at_exit)

    def _run(self) -> None:
        while True:
            frame = self.queue.get()
            self._busy = True
            pause = 1.0
            while not self._send(frame):
                time.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
            self._busy = False

    def _send(self, frame: bytes) -> bool:
        try:
            if self.scheme == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(frame, (self.host, self.port))
            else:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(f"{len(frame)} ".encode() + frame)  # RFC 6587 framing
        except OSError as exc:
            self._failed(exc)
            return False
        with self._lock:
            if self.failing_since is not None:
                log.warning("audit forwarding to %s works again", self.target)
            self.sent += 1
            self.failing_since = None
        return True

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        if self.scheme == "tls":
            import ssl  # only for tls:// (its import is not free)

            context = ssl.create_default_context(cafile=self.ca_file)
            sock = context.wrap_socket(sock, server_hostname=self.host)
        return sock

    def _failed(self, exc: OSError) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with self._lock:
            first = self.failing_since is None
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            self.failing_since = self.failing_since or datetime.now(UTC)
        if first:  # once per outage: the target and the error, never a message's content
            log.warning("audit forwarding to %s failed (%s); retrying, the index keeps "
                        "the record", self.target, self.last_error)

    def _at_exit(self) -> None:
        # Wait for messages in flight, unless the repository is known to be away.
        if self.failing_since is None and self.flush(EXIT_WAIT) and not self.dropped:
            return
        lost = self.queue.qsize() + (1 if self._busy else 0) + self.dropped
        print(f"nasindex: {lost} audit message(s) not forwarded to {self.target} "
              f"({self.last_error}); the index's audit trail has them (`nasindex audit`).",
              file=sys.stderr)


_forwarders: dict[tuple, Forwarder] = {}
_forwarders_lock = threading.Lock()


def forwarder(settings: AuditSettings) -> Forwarder | None:
    """The process's forwarder for these settings, or None without ``[audit] syslog``."""
    if not settings.syslog:
        return None
    key = (settings.syslog, settings.syslog_ca_file, settings.queue_size, settings.source_id)
    with _forwarders_lock:
        if key not in _forwarders:
            _forwarders[key] = Forwarder(settings)
        return _forwarders[key]
