#!/usr/bin/env bash
# Installs what nasindex needs from outside PyPI, once: uv, and on Debian/Ubuntu the
# Firebird engine (embedded + server, for the PACS NAS type and its tests), OpenJPEG
# (JPEG 2000 previews through glymur), Chromium (the dashboard's browser test),
# PostgreSQL (the at-scale index and its tests), rsyslog with its TLS driver and openssl
# (the audit repository the ATNA tests send to, over TCP, UDP and TLS) and Node.js with npm (the OpenID Connect provider of the login tests) and libfuse3
# (the tests' stalling file system), and Orthanc with its DICOMweb plugin (the reference
# DICOMweb server the QIDO-RS answers are compared with, and the bench's baseline).
# Safe to run again: it skips what is there.
set -euo pipefail

PACKAGES=(firebird3.0-server-core firebird3.0-server firebird3.0-utils libfbclient2
          libopenjp2-7 chromium postgresql rsyslog rsyslog-openssl openssl
          libfuse3-3 orthanc orthanc-dicomweb)

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  echo "installing uv" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
# Node.js may come from another source than Debian (with npm inside): only if there is
# no npm at all are Debian's nodejs and npm installed.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "nasindex needs these Debian packages: ${missing[*]}; run 'sudo $0' once." >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # The Firebird server and Orthanc packages must not start their own services here.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
