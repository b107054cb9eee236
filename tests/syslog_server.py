"""A real rsyslog (Debian's) receiving audit messages on free TCP, UDP and TLS ports
(RFC 5425, with rsyslog's openssl driver and a certificate made for the session), started
once per test session with its own configuration and folder, stopped by its pid."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import free_port, stop_process, wait_listening

RSYSLOGD = "/usr/sbin/rsyslogd"
CONFIG = """
global(workDirectory="{dir}" DefaultNetstreamDriverCAFile="{dir}/cert.pem"
       DefaultNetstreamDriverCertFile="{dir}/cert.pem"
       DefaultNetstreamDriverKeyFile="{dir}/key.pem")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" port="{tcp}" address="127.0.0.1" ruleset="audit")
input(type="imtcp" port="{tls}" address="127.0.0.1" ruleset="audit"
      streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" port="{udp}" address="127.0.0.1" ruleset="audit")
ruleset(name="audit") {{
  action(type="omfile" file="{dir}/audit.log" template="RSYSLOG_SyslogProtocol23Format")
}}
"""


@dataclass
class Rsyslog:
    dir: Path
    tcp: int
    udp: int
    tls: int

    @property
    def ca_file(self) -> Path:
        """The certificate the TLS input presents (self-signed for 127.0.0.1)."""
        return self.dir / "cert.pem"

    @property
    def log(self) -> Path:
        return self.dir / "audit.log"

    def messages(self) -> list[tuple[str, ET.Element]]:
        """(RFC 5424 header, parsed AuditMessage) of every line received so far."""
        if not self.log.exists():
            return []
        found = []
        text = self.log.read_text(encoding="utf-8")
        # Only whole lines: rsyslog may be writing the last one right now.
        for line in text[:text.rfind("\n") + 1].splitlines():
            head, sep, xml = line.partition("<AuditMessage")
            if sep:
                found.append((head, ET.fromstring(sep + xml)))
        return found

    def wait_for(self, match, what: str, timeout: float = 20) -> ET.Element:
        """The first received message for which ``match(message)`` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _head, message in self.messages():
                if match(message):
                    return message
            time.sleep(0.1)
        raise TimeoutError(f"rsyslog received no {what} within {timeout:.0f} s")


@pytest.fixture(scope="session")
def rsyslog() -> Iterator[Rsyslog]:
    if not Path(RSYSLOGD).exists():
        raise RuntimeError(f"{RSYSLOGD} not found: install the 'rsyslog' Debian package "
                           "(scripts/install-system-deps.sh).")
    server = Rsyslog(Path(tempfile.mkdtemp(prefix="nasindex-rsyslog-")), free_port(),
                     free_port(), free_port())
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(server.dir / "key.pem"), "-out", str(server.ca_file)],
                   check=True, capture_output=True, timeout=60)
    conf = server.dir / "rsyslog.conf"
    conf.write_text(CONFIG.format(dir=server.dir, tcp=server.tcp, udp=server.udp,
                                  tls=server.tls))
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i",
                             str(server.dir / "rsyslogd.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening((server.tcp, server.tls), proc, "rsyslogd", 20)
        yield server
    finally:
        stop_process(proc)
        shutil.rmtree(server.dir, ignore_errors=True)
