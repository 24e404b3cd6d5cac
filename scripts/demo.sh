#!/usr/bin/env bash
# The main job: a local 3-node taskorg cluster (dnsmasq, the DNS service, and per
# node the node, master, slave and webview services) with the examples running.
# Safe to run twice: a running cluster is shown, not started again.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
taskorg="$repo/.venv/bin/taskorg"
nodes="${TASKORG_NODES:-3}"

if "$taskorg" cluster status >/dev/null 2>&1; then
  echo "A local cluster is already running:"
  "$taskorg" cluster status
else
  "$taskorg" cluster up --nodes "$nodes"
  echo
  "$taskorg" submit "$repo"/examples/*.yaml
  sleep 3
fi
echo
"$taskorg" ps
echo
echo "Try: $taskorg members | $taskorg ps | $taskorg show ID | $taskorg logs ID"
echo "Failover: kill the master node's processes and watch master.taskorg.internal move:"
echo "  dig +short @127.0.1.1 master.taskorg.internal"
echo "Stop it all: $taskorg cluster down"
