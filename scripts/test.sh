#!/usr/bin/env bash
# The whole test suite, every tier: unit, local cluster (real dnsmasq, dockerd,
# one process per service on loopback addresses), webview in real Chromium,
# and the multi-host testbed (Debian hosts booting systemd, provisioned by the
# real Ansible playbook). Installs what it needs first. Extra pytest
# arguments pass through, e.g. `bash scripts/test.sh -k placement`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TASKORG_SETUP_EXTRAS="test" bash "$repo/scripts/setup.sh"
cd "$repo"
set +e
"$repo/.venv/bin/python" -m pytest -p no:cacheprovider -raP "$@" tests
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests ran: that is a failure" >&2
  exit 1
fi
exit "$status"
