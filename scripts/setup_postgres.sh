#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries for the tests that run the label store on
# PostgreSQL (tests/postgres.py starts a throw-away cluster of its own; no system service is used).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's postgresql for the PostgreSQL tests..." >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: PostgreSQL is missing and this user cannot install it; run 'apt-get install postgresql' as root" >&2
  exit 1
fi
$SUDO apt-get update -qq
# the package's own cluster and service are not needed: the tests start their own
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null
